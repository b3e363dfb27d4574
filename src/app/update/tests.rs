//! `update` tests: messages in, model and effects out. No terminal, no network.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{Local, TimeZone};

use super::*;
use crate::app::model::{EntryKind, Me, ServerView};
use crate::history::{Entry as LogEntry, Page};
use crate::proto::{DropCounts, MsgId, OfflineReason, PathKind, PeerId, Rejection};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn at(secs: i64) -> DateTime<Local> {
    Local.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
}

fn model() -> Model {
    let me = Me {
        name: "ann".into(),
        local: addr("0.0.0.0:4000"),
        public: Public::Asking(addr("127.0.0.1:7777")),
        nat: None,
        server: Some(ServerView {
            addr: addr("127.0.0.1:7777"),
            room: "r".into(),
            state: ServerState::Registering,
        }),
    };
    let mut m = Model::new(me, "room r".into(), Page::default(), at(0));
    m.size = (80, 24);
    m
}

fn type_text(m: &mut Model, text: &str) -> Vec<Effect> {
    for c in text.chars() {
        update(m, Message::Key(Action::Insert(c)));
    }
    update(m, Message::Key(Action::Submit))
}

fn net(m: &mut Model, event: NetEvent, secs: i64) -> Vec<Effect> {
    update(m, Message::Net(event, at(secs)))
}

fn system_lines(m: &Model) -> Vec<String> {
    m.entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::System(t) => Some(t.clone()),
            EntryKind::Chat { .. } | EntryKind::Unread => None,
        })
        .collect()
}

fn online(m: &mut Model, secs: i64) {
    let event = NetEvent::PeerOnline {
        peer: PeerId(0),
        name: "bob".into(),
        addr: addr("198.51.100.2:5000"),
        kind: PathKind::Public,
    };
    net(m, event, secs);
}

#[test]
fn typing_and_enter_sends_and_clears() {
    let mut m = model();
    let effects = type_text(&mut m, "hello");
    assert_eq!(effects, vec![Effect::Net(NetCommand::Send { text: "hello".into() })]);
    assert_eq!(m.input.text(), "");
    // The line appears when the network reports it taken, and is logged then; only once it
    // is written may it leave (what leaves must be in our own log first).
    let sent =
        NetEvent::Sent { id: MsgId("01".into()), text: "hello".into(), timestamp: "t".into() };
    let effects = net(&mut m, sent, 1);
    assert!(
        matches!(&effects[..], [Effect::Log { record: r, confirm: Some(NetCommand::Logged(id)) }]
            if id.0 == "01" && matches!(&r.entry, LogEntry::Message { text, .. } if text == "hello"))
    );
    assert!(matches!(&m.entries.last().unwrap().kind,
        EntryKind::Chat { own: true, text, delivery: Some(Delivery::Sent), .. } if text == "hello"));
    // Up recalls it.
    update(&mut m, Message::Key(Action::RecallPrevious));
    assert_eq!(m.input.text(), "hello");
}

#[test]
fn commands_are_not_sent() {
    let mut m = model();
    assert!(type_text(&mut m, "/help").is_empty());
    assert!(system_lines(&m).iter().any(|l| l.contains("/who")));
    assert!(type_text(&mut m, "/who").is_empty());
    assert!(system_lines(&m).contains(&"no peers yet".to_owned()));
    let effects = type_text(&mut m, "/bogus");
    assert!(effects.is_empty());
    assert!(system_lines(&m).last().unwrap().contains("unknown command /bogus"));
    // A failed command leaves the input empty, and one Up brings it back to be corrected.
    assert_eq!(m.input.text(), "");
    update(&mut m, Message::Key(Action::RecallPrevious));
    assert_eq!(m.input.text(), "/bogus");
    update(&mut m, Message::Key(Action::ClearLine));
    assert!(type_text(&mut m, "/search").is_empty());
    assert!(system_lines(&m).last().unwrap().starts_with("usage: /search TEXT"));
    assert_eq!(m.input.text(), "");
    // Commands are the same in any case.
    assert!(type_text(&mut m, "/WHO").is_empty());
    assert_eq!(system_lines(&m).last().unwrap(), "no peers yet");
    assert_eq!(type_text(&mut m, "/quit"), vec![Effect::Net(NetCommand::Shutdown)]);
    assert!(m.quitting);
    assert!(update(&mut m, Message::Quit).is_empty(), "quit is asked once");
    assert_eq!(net(&mut m, NetEvent::Closed, 1), vec![Effect::Exit]);
}

#[test]
fn presence_changes_are_shown_logged_and_tracked() {
    let mut m = model();
    online(&mut m, 1);
    assert!(m.peers[0].online);
    assert_eq!(m.peers[0].addr, Some(addr("198.51.100.2:5000")));
    assert!(system_lines(&m).last().unwrap().contains("bob is online"));
    let effects = net(
        &mut m,
        NetEvent::PeerOffline {
            peer: PeerId(0),
            name: "bob".into(),
            reason: OfflineReason::Silent,
        },
        20,
    );
    assert!(
        matches!(&effects[..], [Effect::Log { record: r, .. }] if matches!(r.entry, LogEntry::Presence { online: false, .. }))
    );
    assert!(!m.peers[0].online);
    assert!(system_lines(&m).last().unwrap().contains("bob is offline"));
    type_text(&mut m, "/who");
    update(&mut m, Message::Tick(at(30)));
    type_text(&mut m, "/who");
    let who = system_lines(&m);
    assert!(
        who.iter().any(|l| l.starts_with("○ bob offline · via 198.51.100.2:5000 · seen 29s ago")),
        "{who:?}"
    );
}

#[test]
fn incoming_messages_are_logged_and_update_last_seen() {
    let mut m = model();
    online(&mut m, 1);
    let msg = NetEvent::Message {
        from: "bob".into(),
        text: "hi\x1b[2J".into(),
        timestamp: "x".into(),
        id: None,
        receipt: None,
    };
    let effects = net(&mut m, msg, 7);
    assert_eq!(effects.len(), 1);
    assert_eq!(m.peers[0].last_seen, Some(at(7)));
    assert!(
        matches!(&m.entries.last().unwrap().kind, EntryKind::Chat { from, own: false, .. } if from == "bob")
    );
}

#[test]
fn queued_message_turns_sent_in_place() {
    let mut m = model();
    let id = MsgId("aa".into());
    net(
        &mut m,
        NetEvent::Queued { id: id.clone(), text: "later".into(), timestamp: "t".into() },
        1,
    );
    let before = m.entries.len();
    online(&mut m, 2);
    let effects =
        net(&mut m, NetEvent::Sent { id, text: "later".into(), timestamp: "t".into() }, 2);
    assert!(effects.is_empty(), "the log keeps one record per message: queued is pending too");
    assert_eq!(m.entries.len(), before + 1, "only the presence line was added");
    let states: Vec<_> = m
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Chat { text, delivery, .. } if text == "later" => Some(*delivery),
            _ => None,
        })
        .collect();
    assert_eq!(states, vec![Some(Delivery::Sent)]);
}

#[test]
fn not_sent_text_comes_back_to_the_input() {
    let mut m = model();
    type_text(&mut m, "too long");
    net(&mut m, NetEvent::NotSent { text: "too long".into(), reason: "limit".into() }, 1);
    assert_eq!(m.input.text(), "too long");
    assert!(system_lines(&m).last().unwrap().starts_with("not sent: \"too long\""));
}

#[test]
fn scrolling_is_clamped_and_new_messages_keep_the_view_still() {
    let mut m = model();
    for i in 0..100 {
        let msg = NetEvent::Message {
            from: "bob".into(),
            text: format!("line {i}"),
            timestamp: String::new(),
            id: None,
            receipt: None,
        };
        net(&mut m, msg, i);
    }
    update(&mut m, Message::Key(Action::PageUp));
    let page = usize::from(ui::history_height(&m)) - 1;
    assert_eq!(m.scroll, page);
    update(&mut m, Message::Key(Action::Top));
    let max = ui::history::max_scroll(&m);
    assert_eq!(m.scroll, max);
    assert!(max > 0);
    update(&mut m, Message::Scroll(-3));
    assert_eq!(m.scroll, max - 3);
    let msg = NetEvent::Message {
        from: "bob".into(),
        text: "new one".into(),
        timestamp: String::new(),
        id: None,
        receipt: None,
    };
    net(&mut m, msg, 200);
    assert_eq!(m.scroll, max - 2, "view stays on the same lines");
    assert_eq!(m.unread, 1);
    update(&mut m, Message::Key(Action::Bottom));
    assert_eq!((m.scroll, m.unread), (0, 0));
    update(&mut m, Message::Scroll(-5));
    assert_eq!(m.scroll, 0);
}

#[test]
fn status_events_update_me_and_rejections_are_explained() {
    let mut m = model();
    net(&mut m, NetEvent::PublicEndpoint { addr: addr("203.0.113.9:40000") }, 1);
    assert_eq!(m.me.public, Public::Known(addr("203.0.113.9:40000")));
    net(&mut m, NetEvent::Registered { server: addr("127.0.0.1:7777") }, 1);
    assert_eq!(m.me.server.as_ref().unwrap().state, ServerState::Registered);
    net(
        &mut m,
        NetEvent::Rejected { from: addr("203.0.113.66:1"), reason: Rejection::WrongKey },
        2,
    );
    assert!(
        system_lines(&m)
            .last()
            .unwrap()
            .contains("undecryptable packets from 203.0.113.66:1 — wrong key?")
    );
    let drops = DropCounts { unauthentic: 5, ..DropCounts::default() };
    net(&mut m, NetEvent::Drops(drops), 3);
    assert_eq!(m.drops.total(), 5);
    online(&mut m, 4);
    net(&mut m, NetEvent::Rtt { peer: PeerId(0), rtt: Duration::from_micros(250) }, 5);
    assert_eq!(m.peers[0].rtt, Some(Duration::from_micros(250)));
    assert_eq!(m.peers[0].last_seen, Some(at(5)));
}

#[test]
fn paste_keeps_its_lines() {
    let mut m = model();
    update(&mut m, Message::Paste("one\ntwo\r\nthree\rfour".into()));
    assert_eq!(m.input.text(), "one\ntwo\nthree\nfour");
    update(&mut m, Message::Key(Action::Insert('\n')));
    assert!(m.input.text().ends_with("four\n"));
}

#[test]
fn ticks_redraw_only_when_relative_times_are_shown() {
    let mut m = model();
    m.dirty = false;
    update(&mut m, Message::Tick(at(5)));
    assert!(!m.dirty);
    online(&mut m, 5);
    m.dirty = false;
    update(&mut m, Message::Tick(at(6)));
    assert!(m.dirty);
}

#[test]
fn log_failure_is_told_once() {
    let mut m = model();
    update(&mut m, Message::Failed("disk full".into()));
    update(&mut m, Message::Failed("disk full".into()));
    let n = system_lines(&m).iter().filter(|l| l.contains("disk full")).count();
    assert_eq!(n, 1);
}

#[test]
fn ctrl_z_asks_the_terminal_owner_to_suspend_and_changes_nothing_else() {
    let mut m = model();
    for c in "half a line".chars() {
        update(&mut m, Message::Key(Action::Insert(c)));
    }
    let effects = update(&mut m, Message::Key(Action::Suspend));
    assert!(matches!(effects.as_slice(), [Effect::Suspend]), "{effects:?}");
    assert!(!m.quitting);
    assert_eq!(m.input.text(), "half a line");
}

#[test]
fn an_over_long_refusal_does_not_quote_the_whole_text_and_keeps_it_in_the_input() {
    let mut m = model();
    let long = "x".repeat(70_000);
    let reason = "longer than 64 KiB".to_owned();
    let effects = net(&mut m, NetEvent::NotSent { text: long.clone(), reason }, 1);
    assert_eq!(m.input.text(), long, "nothing typed is lost");
    let logged: Vec<String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log { record, .. } => serde_json::to_string(record).ok(),
            _ => None,
        })
        .collect();
    assert_eq!(logged.len(), 1);
    assert!(logged[0].len() < 1000, "the log gets its start: {} bytes", logged[0].len());
    let shown = system_lines(&m).into_iter().find(|l| l.starts_with("not sent")).unwrap();
    assert!(shown.len() < 300 && shown.contains("64 KiB") && shown.contains('…'), "{shown}");
}

#[test]
fn verify_and_contacts_say_what_is_true_in_the_demo_and_out_of_it() {
    let mut m = model();
    type_text(&mut m, "/verify");
    assert!(system_lines(&m).last().unwrap().contains("shared key (--key)"));
    m.demo = true;
    type_text(&mut m, "/verify");
    let said = system_lines(&m).last().unwrap().clone();
    assert!(said.contains("in the demo") && !said.contains("--key"), "{said}");
    type_text(&mut m, "/contacts");
    let lines = system_lines(&m);
    let said = &lines[lines.len() - 2..];
    assert!(said[0].contains("bot is not a contact"), "{said:?}");
    assert!(said[1].starts_with("no contacts yet: pair with a friend by code"), "{said:?}");
}
