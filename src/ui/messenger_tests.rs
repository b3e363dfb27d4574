//! Whole-screen renders of the messenger on ratatui's TestBackend: the conversations pane
//! beside the conversation shown, with a fixed clock.

use std::net::SocketAddr;

use chrono::{DateTime, Local, TimeZone};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::{Buffer, Cell};
use ratatui::style::Modifier;

use super::conversations::{PANE_COLS, PANE_MIN_TERMINAL_COLS};
use super::tests::{cells_at, picked, text_rows};
use super::{render_messenger, theme};
use crate::app::keymap::Action;
use crate::app::messenger::{Conversation, Event, Messenger, Notify, With, update};
use crate::app::model::{Entry, EntryKind, Me, Origin, PeerView, Public};
use crate::app::{Message, Model, texts};
use crate::history::Page;
use crate::proto::{NetEvent, PeerId};

fn at(h: u32, m: u32, s: u32) -> DateTime<Local> {
    Local.with_ymd_and_hms(2026, 5, 1, h, m, s).unwrap()
}

fn chat(from: &str, text: &str, when: DateTime<Local>) -> Entry {
    let kind = EntryKind::Chat {
        from: from.into(),
        text: text.into(),
        own: false,
        id: None,
        delivery: None,
    };
    Entry::new(when, kind, Origin::Live)
}

fn peer(id: u32, name: &str, online: bool) -> PeerView {
    PeerView {
        id: PeerId(id),
        name: name.into(),
        online,
        last_seen: None,
        addr: None,
        path: None,
        nat: None,
        rtt: None,
    }
}

fn model(title: &str, peers: Vec<PeerView>, entries: Vec<Entry>) -> Model {
    let me = Me {
        name: "ann".into(),
        local: "0.0.0.0:40000".parse::<SocketAddr>().unwrap(),
        public: Public::NotAsked,
        nat: None,
        server: None,
    };
    let mut m = Model::new(me, title.into(), Page::default(), at(12, 0, 30));
    m.peers = peers;
    m.entries = entries;
    m
}

/// bob (online, spoke last), the room lobby (2 of 3 online) and cat (offline, spoke first),
/// on a terminal of `size`.
fn messenger(size: (u16, u16)) -> Messenger {
    let bob = model(
        "bob",
        vec![peer(0, "bob", true)],
        vec![chat("bob", "hi ann, lunch today?", at(12, 0, 1))],
    );
    let cat = model(
        "cat",
        vec![peer(0, "cat", false)],
        vec![chat("cat", "see you next week", at(11, 30, 0))],
    );
    let lobby = model(
        "room lobby",
        vec![peer(0, "dan", true), peer(1, "eve", false), peer(2, "fay", true)],
        vec![chat("dan", "the build is green again", at(11, 58, 0))],
    );
    let conversations = vec![
        Conversation::new(With::Contact("cat".into()), cat),
        Conversation::new(With::Contact("bob".into()), bob),
        Conversation::new(With::Room("lobby".into()), lobby),
    ];
    let mut m = Messenger::new(conversations, Notify::default());
    update(&mut m, Event::Ui(Message::Resize(size.0, size.1)));
    m
}

const CAT: usize = 0;
const BOB: usize = 1;

fn draw(m: &Messenger) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(m.size.0, m.size.1)).unwrap();
    terminal.draw(|f| render_messenger(m, f)).unwrap();
    terminal.backend().buffer().clone()
}

fn screen(m: &Messenger) -> Vec<String> {
    text_rows(&draw(m))
}

/// The conversations pane's columns of each row.
fn pane(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| l.chars().take(usize::from(PANE_COLS)).collect()).collect()
}

/// A row of the pane: `text` between its borders, padded with spaces.
fn row(text: &str) -> String {
    format!("│{text:<width$}│", width = usize::from(PANE_COLS) - 2)
}

fn key(m: &mut Messenger, action: Action) {
    update(m, Event::Ui(Message::Key(action)));
}

fn incoming(m: &mut Messenger, index: usize, from: &str, text: &str, when: DateTime<Local>) {
    let message = NetEvent::Message {
        from: from.into(),
        text: text.into(),
        timestamp: String::new(),
        id: None,
        receipt: None,
    };
    update(m, Event::To(index, Message::Net(message, when)));
}

#[test]
fn the_pane_lists_conversations_by_last_activity_with_presence() {
    let m = messenger((100, 24));
    let lines = screen(&m);
    let pane = pane(&lines);
    assert_eq!(pane[0], "┌ conversations ───────┐");
    assert_eq!(pane[1], row("1 ● bob"), "{pane:#?}");
    assert_eq!(pane[2], row("  online · 29s ago"));
    assert_eq!(pane[3], row("2 ● room:lobby"));
    assert_eq!(pane[4], row("  2/3 online · 2m ago"), "online of known, for a room");
    assert_eq!(pane[5], row("3 ○ cat"));
    assert_eq!(pane[6], row("  offline · 30m ago"));
    assert_eq!(pane[7], row(""));
    // The one shown (spoke last, so first) is highlighted, and its history is beside it.
    let buffer = draw(&m);
    let reversed = |c: &Cell| c.modifier.contains(Modifier::REVERSED);
    assert_eq!(picked(&cells_at(&buffer, "1 ● bob"), reversed), "bob");
    assert_eq!(picked(&cells_at(&buffer, "3 ○ cat"), reversed), "");
    assert_eq!(cells_at(&buffer, "●")[0].fg, theme::online().fg.unwrap());
    assert_eq!(cells_at(&buffer, "○")[0].fg, theme::offline().fg.unwrap());
    assert!(lines[0][lines[0].find("┐┌").unwrap()..].starts_with("┐┌ p2pchat · bob "));
    assert!(lines[1].contains("│[12:00:01] bob: hi ann, lunch today?"), "{lines:#?}");
}

#[test]
fn unread_counts_show_and_new_activity_moves_a_conversation_up() {
    let mut m = messenger((100, 24));
    incoming(&mut m, CAT, "cat", "ann?", at(12, 0, 40));
    incoming(&mut m, CAT, "cat", "are you there?", at(12, 0, 41));
    let lines = screen(&m);
    let pane = pane(&lines);
    assert_eq!(pane[1], row("1 ○ cat 2"), "{pane:#?}");
    assert_eq!(pane[3], row("2 ● bob"), "still shown, now second");
    let buffer = draw(&m);
    let count = cells_at(&buffer, "cat 2");
    assert_eq!(count[4].fg, theme::unread().fg.unwrap());
    assert_eq!(
        picked(&cells_at(&buffer, "2 ● bob"), |c| c.modifier.contains(Modifier::REVERSED)),
        "bob"
    );
    // Still bob's history beside it: a message elsewhere does not switch.
    assert!(lines[1].contains("bob: hi ann, lunch today?"), "{lines:#?}");
}

#[test]
fn switching_changes_the_history_shown() {
    let mut m = messenger((100, 24));
    key(&mut m, Action::NextConversation);
    let lines = screen(&m);
    assert!(lines[0].contains("┌ p2pchat · room lobby "), "{lines:#?}");
    assert!(lines[1].contains("│[11:58:00] dan: the build is green again"), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("lunch today")));
    let buffer = draw(&m);
    let reversed = |c: &Cell| c.modifier.contains(Modifier::REVERSED);
    assert_eq!(picked(&cells_at(&buffer, "2 ● room:lobby"), reversed), "room:lobby");
    assert_eq!(picked(&cells_at(&buffer, "1 ● bob"), reversed), "");
    key(&mut m, Action::Conversation(3));
    let lines = screen(&m);
    assert!(lines[0].contains("┌ p2pchat · cat "), "{lines:#?}");
    assert!(lines[1].contains("cat: see you next week"), "{lines:#?}");
}

#[test]
fn a_narrow_terminal_folds_the_pane_away() {
    let narrow = PANE_MIN_TERMINAL_COLS - 1;
    let m = messenger((narrow, 20));
    let lines = screen(&m);
    assert!(!lines.iter().any(|l| l.contains("conversations")), "{lines:#?}");
    assert!(lines[0].starts_with("┌ p2pchat · bob "), "{lines:#?}");
    assert!(lines[0].ends_with('┐'), "the history takes the whole width: {}", lines[0]);
    assert_eq!(lines[0].chars().count(), usize::from(narrow));
    assert!(lines[1].starts_with("│[12:00:01] bob: hi ann, lunch today?"), "{lines:#?}");
    // Nothing waits elsewhere: the border says nothing more.
    assert!(!lines[0].contains("unread"), "{}", lines[0]);
    // Messages elsewhere: the history's border counts them, since no pane shows them.
    let mut m = messenger((narrow, 20));
    incoming(&mut m, CAT, "cat", "ann?", at(12, 0, 40));
    incoming(&mut m, CAT, "cat", "are you there?", at(12, 0, 41));
    let lines = screen(&m);
    assert!(lines[0].starts_with("┌ p2pchat · bob "), "{lines:#?}");
    assert!(lines[0].ends_with(" 2 unread elsewhere · Ctrl-N ─┐"), "{}", lines[0]);
    // Wide enough again, it is back, and the pane shows the count instead.
    m.size = (PANE_MIN_TERMINAL_COLS, 20);
    update(&mut m, Event::Ui(Message::Resize(PANE_MIN_TERMINAL_COLS, 20)));
    let lines = screen(&m);
    assert!(lines[0].starts_with("┌ conversations "));
    assert!(!lines[0].contains("unread elsewhere"), "{}", lines[0]);
}

#[test]
fn ctrl_b_hides_the_pane_on_a_wide_terminal() {
    let mut m = messenger((100, 24));
    key(&mut m, Action::TogglePane);
    let lines = screen(&m);
    assert!(!lines.iter().any(|l| l.contains("conversations")), "{lines:#?}");
    assert!(lines[0].starts_with("┌ p2pchat · bob "), "{lines:#?}");
    assert!(lines[1].starts_with("│[12:00:01] bob: hi ann, lunch today?"), "{lines:#?}");
    assert_eq!(m.conversations[BOB].model.size, (100, 24), "the history has every column");
    key(&mut m, Action::TogglePane);
    assert!(screen(&m)[0].starts_with("┌ conversations "));
}

#[test]
fn the_unread_line_marks_where_the_unread_messages_start() {
    let mut m = messenger((100, 24));
    incoming(&mut m, CAT, "cat", "ann?", at(12, 0, 40));
    incoming(&mut m, CAT, "cat", "are you there?", at(12, 0, 41));
    key(&mut m, Action::Conversation(1));
    let lines = screen(&m);
    let history: Vec<String> = lines
        .iter()
        .map(|l| l.chars().skip(usize::from(PANE_COLS) + 1).take_while(|c| *c != '│'))
        .map(|l| l.collect::<String>().trim_end().to_owned())
        .collect();
    let line_of = |text: &str| history.iter().position(|l| l.contains(text)).unwrap();
    let unread = line_of(texts::UNREAD_SINCE);
    assert_eq!(history[unread], format!("[12:00:40] {}", texts::UNREAD_SINCE));
    assert!(line_of("see you next week") < unread, "{history:#?}");
    assert_eq!(line_of("cat: ann?"), unread + 1, "{history:#?}");
    assert_eq!(line_of("cat: are you there?"), unread + 2);
    let buffer = draw(&m);
    let line = cells_at(&buffer, "unread since you left");
    assert!(line.iter().all(|c| c.fg == theme::unread().fg.unwrap()));
    // The count is gone: it is read.
    assert_eq!(pane(&lines)[1], row("1 ○ cat"), "{lines:#?}");
}

#[test]
fn the_conversation_shown_stays_in_view_in_a_long_list() {
    let conversations: Vec<Conversation> = (0..20)
        .map(|i| {
            let name = format!("friend{i:02}");
            let entries = vec![chat(&name, "hello", at(11, i, 0))];
            Conversation::new(With::Contact(name.clone()), model(&name, Vec::new(), entries))
        })
        .collect();
    let mut m = Messenger::new(conversations, Notify::default());
    update(&mut m, Event::Ui(Message::Resize(100, 12)));
    // Ten rows inside the pane: five conversations. The most recent is first and shown.
    let lines = pane(&screen(&m));
    assert!(lines[1].starts_with("│1 ○ friend19"), "{lines:#?}");
    for _ in 0..7 {
        key(&mut m, Action::NextConversation);
    }
    let lines = pane(&screen(&m));
    assert!(lines[9].starts_with("│8 ○ friend12"), "the shown one, at the bottom: {lines:#?}");
    assert!(lines[1].starts_with("│4 ○ friend16"), "{lines:#?}");
    let reversed = |c: &Cell| c.modifier.contains(Modifier::REVERSED);
    assert_eq!(picked(&cells_at(&draw(&m), "8 ○ friend12"), reversed), "friend12");
    // Wrapping round to the first scrolls back up.
    key(&mut m, Action::Conversation(1));
    assert!(pane(&screen(&m))[1].starts_with("│1 ○ friend19"));
}

#[test]
fn a_long_name_is_cut_and_the_pane_keeps_its_border() {
    let name = "a-contact-with-a-very-long-name";
    let talk = model(name, Vec::new(), vec![chat(name, "hi", at(12, 0, 0))]);
    let mut m = Messenger::new(
        vec![Conversation::new(With::Contact(name.into()), talk)],
        Notify::default(),
    );
    update(&mut m, Event::Ui(Message::Resize(100, 24)));
    update(&mut m, Event::Focus(false));
    incoming(&mut m, 0, name, "still there?", at(12, 0, 2));
    let lines = pane(&screen(&m));
    assert_eq!(lines[1], row("1 ○ a-contact-with-… 1"), "{lines:#?}");
}

#[test]
fn without_conversations_the_screen_says_how_to_start_one() {
    let mut m = Messenger::new(Vec::new(), Notify::default());
    update(&mut m, Event::Ui(Message::Resize(100, 24)));
    let lines = screen(&m);
    let pane = pane(&lines);
    assert_eq!(pane[1], row(" none yet"), "{lines:#?}");
    assert_eq!(pane[2], row(" /pair, /join CODE"));
    let rest: String = lines
        .iter()
        .map(|l| l.chars().skip(usize::from(PANE_COLS)).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = rest.split_whitespace().collect();
    let expected: Vec<&str> = texts::NO_CONVERSATION_YET.split_whitespace().collect();
    assert_eq!(words, expected);
}
