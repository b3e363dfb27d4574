//! Scrolling and searching a log far longer than the window, through `update` and a small
//! runner that does what `Chat::apply` does with the log (append, read pages, search) on a
//! real file, and reads the screen off ratatui's TestBackend.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{Local, TimeZone};

use crate::app::keymap::Action;
use crate::app::model::{Me, Public};
use crate::app::{Effect, Message, Model, update};
use crate::chat::{answer_load, answer_search};
use crate::consts::{HISTORY_PRELOAD_RECORDS, HISTORY_WINDOW_ENTRIES};
use crate::history::{self, History, Record};
use crate::proto::{MsgId, NetEvent};
use crate::ui::tests::screen;

struct Runner {
    n: usize,
    model: Model,
    log: History,
    dir: PathBuf,
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn when(i: usize) -> chrono::DateTime<Local> {
    Local.timestamp_opt(1_780_000_000 + i64::try_from(i).unwrap(), 0).unwrap()
}

/// A log of `n` messages "message {i}{suffix(i)}": every 7th ours, each of ours confirmed two
/// records later (so confirmations often land in a newer page than their message).
fn runner(name: &str, n: usize, suffix: impl Fn(usize) -> &'static str) -> Runner {
    runner_with_junk(name, n, suffix, &[])
}

/// As `runner`, with an unreadable line after each message numbered in `junk`.
fn runner_with_junk(
    name: &str,
    n: usize,
    suffix: impl Fn(usize) -> &'static str,
    junk: &[usize],
) -> Runner {
    let dir = std::env::temp_dir().join(format!("p2pchat-scroll-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut log = History::open(&dir, "room-r").unwrap();
    for i in 0..n {
        let id = MsgId(format!("{i:016x}"));
        let text = format!("message {i}{}", suffix(i));
        let event = if i % 7 == 0 {
            NetEvent::Sent { id, text, timestamp: "t".into() }
        } else {
            NetEvent::Message {
                from: "bob".into(),
                text,
                timestamp: "t".into(),
                id: Some(id),
                receipt: None,
            }
        };
        log.append(&Record::from_event(&event, when(i), "ann").unwrap()).unwrap();
        if junk.contains(&i) {
            let mut raw = std::fs::OpenOptions::new().append(true).open(log.path()).unwrap();
            std::io::Write::write_all(&mut raw, b"{\"v\":1,\"kind\":\"mess\n").unwrap();
        }
        if i % 7 == 2 && i >= 2 {
            let delivered = NetEvent::Delivered { id: MsgId(format!("{:016x}", i - 2)) };
            log.append(&Record::from_event(&delivered, when(i), "ann").unwrap()).unwrap();
        }
    }
    let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let me = Me { name: "ann".into(), local, public: Public::NotAsked, nat: None, server: None };
    let page = history::tail(log.path(), HISTORY_PRELOAD_RECORDS).unwrap();
    let mut model = Model::new(me, "room r".into(), page, when(n));
    model.size = (80, 24);
    Runner { n, model, log, dir }
}

impl Runner {
    /// One message through `update`, and the log effects carried out as the chat does.
    fn send(&mut self, message: Message) {
        let mut pending = vec![message];
        while let Some(message) = pending.pop() {
            for effect in update(&mut self.model, message) {
                match effect {
                    Effect::Log { record, .. } => self.log.append(&record).unwrap(),
                    Effect::Load(load) => pending.push(answer_load(self.log.path(), load)),
                    Effect::Search(term) => pending.push(answer_search(self.log.path(), term)),
                    Effect::Net(_) | Effect::Exit | Effect::Suspend => {}
                }
            }
        }
        assert!(self.model.entries.len() <= HISTORY_WINDOW_ENTRIES + HISTORY_PRELOAD_RECORDS);
    }

    fn key(&mut self, action: Action) {
        self.send(Message::Key(action));
    }

    fn type_line(&mut self, line: &str) {
        for c in line.chars() {
            self.key(Action::Insert(c));
        }
        self.key(Action::Submit);
    }

    /// The message numbers on screen, top to bottom, and whether each of ours shows ✓.
    fn visible(&self) -> Vec<usize> {
        let lines = screen(&self.model);
        let number = |l: &String| -> Option<usize> {
            let rest = &l[l.find(": message ")? + ": message ".len()..];
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        for line in lines.iter().filter(|l| l.contains(" ann: message")) {
            let confirmed = number(line).is_some_and(|i| i + 2 < self.n);
            assert_eq!(line.contains('✓'), confirmed, "wrong delivery mark: {line}");
        }
        lines.iter().filter_map(number).collect()
    }
}

#[test]
fn holding_page_up_walks_to_the_first_message_and_end_comes_back() {
    let n = 12_000;
    let mut r = runner("pgup", n, |_| "");
    assert_eq!(r.visible().last(), Some(&(n - 1)));
    let mut seen = vec![false; n];
    let mut previous_top = n - 1;
    for _ in 0..2000 {
        let shown = r.visible();
        for &i in &shown {
            seen[i] = true;
        }
        // Each screen follows on from the last: no message is skipped between pages.
        assert!(*shown.last().unwrap() + 1 >= previous_top, "{shown:?} after {previous_top}");
        previous_top = shown[0];
        if previous_top == 0 {
            break;
        }
        r.key(Action::PageUp);
    }
    assert_eq!(previous_top, 0, "never reached the first message");
    assert!(seen.iter().all(|&s| s), "some messages were never on screen");
    assert!(r.model.paging.newer.is_some(), "the window let its newest end go");
    r.key(Action::Bottom);
    assert_eq!(r.visible().last(), Some(&(n - 1)));
    assert_eq!(r.model.paging.newer, None);
    // And Home goes straight to the first message.
    r.key(Action::Top);
    assert_eq!(r.visible().first(), Some(&0));
    // Scrolling forward from there loads newer pages again.
    for _ in 0..30 {
        r.key(Action::PageDown);
    }
    assert!(r.visible()[0] > 400);
}

#[test]
fn search_jumps_between_matches_anywhere_in_the_log() {
    let n = 10_000;
    let mut r = runner("search", n, |i| match i {
        100 | 5000 | 9990 => " with a Needle in it",
        _ => "",
    });
    r.type_line("/search needle");
    let search = r.model.search.as_ref().unwrap();
    assert_eq!((search.matches.len(), search.current), (3, 2));
    assert!(r.visible().contains(&9990));
    assert!(screen(&r.model)[21].contains("\"needle\": match 1 of 3"), "{:?}", screen(&r.model));
    r.key(Action::Insert('n'));
    assert!(r.visible().contains(&5000));
    assert!(!r.model.entries.iter().any(|e| format!("{e:?}").contains("message 9999")));
    r.key(Action::Submit);
    assert!(r.visible().contains(&100));
    r.key(Action::Submit); // no older match: stays
    assert!(r.visible().contains(&100));
    r.key(Action::Insert('N'));
    assert!(r.visible().contains(&5000));
    assert!(screen(&r.model)[21].contains("match 2 of 3"));
    // Shift-Enter (a new line, to the keymap) is "newer" too while nothing is typed.
    r.key(Action::Insert('\n'));
    assert!(r.visible().contains(&9990));
    r.key(Action::RecallPrevious);
    assert!(r.visible().contains(&5000));
    r.key(Action::Cancel);
    assert!(r.model.search.is_none());
    r.type_line("/search no such thing");
    assert!(screen(&r.model).iter().any(|l| l.contains("no message contains \"no such thing\"")));
}

#[test]
fn messages_arriving_while_far_back_wait_in_the_log_until_end() {
    let mut r = runner("live", 8000, |_| "");
    r.key(Action::Top);
    assert_eq!(r.visible().first(), Some(&0));
    let event = NetEvent::Message {
        from: "bob".into(),
        text: "message 8000 just now".into(),
        timestamp: "t".into(),
        id: Some(MsgId("new".into())),
        receipt: None,
    };
    r.send(Message::Net(event.clone(), when(9000)));
    assert_eq!(r.visible().first(), Some(&0), "the view stayed put");
    assert_eq!(r.model.unread, 1);
    assert!(screen(&r.model)[19].contains("↓ 1 new — End to jump"));
    r.key(Action::Bottom);
    let lines = screen(&r.model);
    assert!(lines.iter().any(|l| l.contains("bob: message 8000 just now")), "{lines:?}");
    assert_eq!(r.model.unread, 0);
    // A command's answer shows at the newest end, so the view goes there.
    r.key(Action::Top);
    r.type_line("/who");
    let lines = screen(&r.model);
    assert!(lines[lines.len() - 5].contains("no peers"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("bob: message 8000 just now")), "{lines:?}");
}

#[test]
fn unreadable_lines_anywhere_are_skipped_and_counted_once() {
    let mut r = runner_with_junk("junk", 6000, |_| "", &[10, 3000, 5990]);
    let status = |r: &Runner| screen(&r.model).iter().any(|l| l.contains("skipped 1 unreadable"));
    assert!(status(&r), "the one near the end is counted at open");
    r.key(Action::Top);
    assert_eq!(r.visible().first(), Some(&0));
    for _ in 0..400 {
        r.key(Action::PageDown);
    }
    r.key(Action::Bottom);
    for _ in 0..400 {
        r.key(Action::PageUp);
    }
    let lines = screen(&r.model);
    assert!(lines.iter().any(|l| l.contains("skipped 3 unreadable")), "{lines:?}");
    // Every message is still there around them.
    r.key(Action::Top);
    assert_eq!(r.visible()[..12], (0..12).collect::<Vec<_>>());
}
