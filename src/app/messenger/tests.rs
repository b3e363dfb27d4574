//! Messenger `update` tests: events in; the conversations, what is shown and unread, and what
//! the runner is asked to do out. No terminal, no network, a fixed clock.

use std::net::SocketAddr;

use chrono::TimeZone;

use super::*;
use crate::app::model::{Me, Public};
use crate::history::Page;
use crate::proto::MsgId;

fn at(secs: i64) -> DateTime<Local> {
    Local.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
}

fn model(title: &str) -> Model {
    let me = Me {
        name: "ann".into(),
        local: "0.0.0.0:4000".parse::<SocketAddr>().unwrap(),
        public: Public::NotAsked,
        nat: None,
        server: None,
    };
    Model::new(me, title.into(), Page::default(), at(0))
}

fn contact(name: &str) -> Conversation {
    Conversation::new(With::Contact(name.into()), model(name))
}

fn room(name: &str) -> Conversation {
    Conversation::new(With::Room(name.into()), model(&format!("room {name}")))
}

/// bob, cat and the room lobby, none with any activity yet: the pane lists them by name,
/// and bob (index 0) is shown.
fn messenger_with(notify: Notify) -> Messenger {
    let mut m = Messenger::new(vec![contact("bob"), contact("cat"), room("lobby")], notify);
    update(&mut m, Event::Ui(Message::Resize(100, 30)));
    m
}

fn messenger() -> Messenger {
    messenger_with(Notify::default())
}

const BOB: usize = 0;
const CAT: usize = 1;
const LOBBY: usize = 2;

fn key(m: &mut Messenger, action: Action) -> Vec<Do> {
    update(m, Event::Ui(Message::Key(action)))
}

/// Types `line` into the conversation shown and presses Enter.
fn type_line(m: &mut Messenger, line: &str) -> Vec<Do> {
    for c in line.chars() {
        key(m, Action::Insert(c));
    }
    key(m, Action::Submit)
}

fn net(m: &mut Messenger, index: usize, event: NetEvent, secs: i64) -> Vec<Do> {
    update(m, Event::To(index, Message::Net(event, at(secs))))
}

fn incoming(m: &mut Messenger, index: usize, from: &str, text: &str, secs: i64) -> Vec<Do> {
    let message = NetEvent::Message {
        from: from.into(),
        text: text.into(),
        timestamp: String::new(),
        id: None,
        receipt: None,
    };
    net(m, index, message, secs)
}

fn shown(m: &Messenger) -> String {
    m.shown().unwrap().with.label()
}

fn unread_lines(m: &Messenger, index: usize) -> usize {
    m.conversations[index].model.entries.iter().filter(|e| e.kind == EntryKind::Unread).count()
}

fn system_lines(m: &Messenger, index: usize) -> Vec<String> {
    let entries = &m.conversations[index].model.entries;
    entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::System(text) => Some(text.clone()),
            EntryKind::Chat { .. } | EntryKind::Unread => None,
        })
        .collect()
}

fn last_system_line(m: &Messenger, index: usize) -> String {
    system_lines(m, index).pop().unwrap_or_default()
}

/// The texts of the chat messages and where the unread line is, in order.
fn history(m: &Messenger, index: usize) -> Vec<String> {
    let entries = &m.conversations[index].model.entries;
    entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Chat { text, .. } => Some(text.clone()),
            EntryKind::Unread => Some("<unread>".to_owned()),
            EntryKind::System(_) => None,
        })
        .collect()
}

fn count(effects: &[Do], wanted: impl Fn(&Do) -> bool) -> usize {
    effects.iter().filter(|d| wanted(d)).count()
}

#[test]
fn next_and_previous_wrap_round_the_pane() {
    let mut m = messenger();
    assert_eq!(m.order(), vec![BOB, CAT, LOBBY]);
    assert_eq!(shown(&m), "bob");
    key(&mut m, Action::NextConversation);
    assert_eq!(shown(&m), "cat");
    key(&mut m, Action::NextConversation);
    assert_eq!(shown(&m), "room:lobby");
    key(&mut m, Action::NextConversation);
    assert_eq!(shown(&m), "bob", "after the last comes the first");
    key(&mut m, Action::PreviousConversation);
    assert_eq!(shown(&m), "room:lobby", "before the first comes the last");
    key(&mut m, Action::PreviousConversation);
    assert_eq!(shown(&m), "cat");
}

#[test]
fn alt_number_follows_the_pane_order_most_recent_first() {
    let mut m = messenger();
    incoming(&mut m, CAT, "cat", "first", 3);
    incoming(&mut m, LOBBY, "dan", "later", 5);
    assert_eq!(m.order(), vec![LOBBY, CAT, BOB], "most recent activity first, none last");
    key(&mut m, Action::Conversation(1));
    assert_eq!(shown(&m), "room:lobby");
    key(&mut m, Action::Conversation(3));
    assert_eq!(shown(&m), "bob");
    key(&mut m, Action::Conversation(2));
    assert_eq!(shown(&m), "cat");
    key(&mut m, Action::Conversation(9));
    assert_eq!(shown(&m), "cat", "a place nobody is at changes nothing");
    // Our own message counts as activity too.
    let sent = NetEvent::Sent { id: MsgId("01".into()), text: "hi".into(), timestamp: "t".into() };
    net(&mut m, BOB, sent, 9);
    assert_eq!(m.order(), vec![BOB, LOBBY, CAT]);
    key(&mut m, Action::Conversation(1));
    assert_eq!(shown(&m), "bob");
}

#[test]
fn open_finds_contacts_by_name_and_rooms_as_room_name() {
    let mut m = messenger();
    assert!(type_line(&mut m, "/open CAT").is_empty());
    assert_eq!(shown(&m), "cat");
    assert_eq!(m.conversations[CAT].model.input.text(), "", "the command leaves the input");
    type_line(&mut m, "/open room:lobby");
    assert_eq!(shown(&m), "room:lobby");
    type_line(&mut m, "/open bob");
    type_line(&mut m, "/open lobby");
    assert_eq!(shown(&m), "room:lobby", "a room's bare name, when no contact has it");
    type_line(&mut m, "/open dave");
    assert_eq!(shown(&m), "room:lobby");
    assert_eq!(
        last_system_line(&m, LOBBY),
        texts::no_conversation("dave", "bob, cat, room:lobby"),
        "an unknown name lists the conversations there are"
    );
    assert!(last_system_line(&m, LOBBY).contains("(conversations: bob, cat, room:lobby)"));
    // A contact comes before a room of the same name; room:NAME still means the room.
    m.conversations.push(contact("lobby"));
    assert_eq!(m.find("lobby"), Some(3));
    assert_eq!(m.find("room:lobby"), Some(LOBBY));
    assert_eq!(m.find("#lobby"), Some(LOBBY));
    // Case is ignored in any script.
    m.conversations.push(contact("åsa"));
    assert_eq!(m.find("ÅSA"), Some(4));
    assert_eq!(m.find("@Åsa"), Some(4));
}

#[test]
fn answers_and_notices_bring_a_scrolled_back_view_to_the_newest() {
    let mut m = messenger();
    for i in 0..60 {
        incoming(&mut m, BOB, "bob", &format!("line {i}"), i);
    }
    key(&mut m, Action::PageUp);
    assert!(m.conversations[BOB].model.scroll > 0);
    type_line(&mut m, "/open dave");
    assert_eq!(m.conversations[BOB].model.scroll, 0, "the answer is in view");
    key(&mut m, Action::PageUp);
    update(&mut m, Event::Notice("your code: 7-apple-banjo".into()));
    assert_eq!(m.conversations[BOB].model.scroll, 0, "the notice is in view");
    assert_eq!(last_system_line(&m, BOB), "your code: 7-apple-banjo");
}

#[test]
fn to_sends_in_that_conversation_and_nowhere_else() {
    let mut m = messenger();
    let effects = type_line(&mut m, "/to cat hello there");
    assert_eq!(
        effects,
        vec![Do::In(CAT, Effect::Net(NetCommand::Send { text: "hello there".into() }))]
    );
    assert_eq!(shown(&m), "bob", "/to does not switch");
    assert_eq!(m.conversations[BOB].model.input.text(), "");
    let effects = type_line(&mut m, "/to room:lobby hi all");
    assert_eq!(
        effects,
        vec![Do::In(LOBBY, Effect::Net(NetCommand::Send { text: "hi all".into() }))]
    );
    // Nobody by that name: nothing is sent, and the user is told who there is.
    let said = texts::no_conversation("dave", "bob, cat, room:lobby");
    assert_eq!(type_line(&mut m, "/to dave hi"), vec![Do::Said(said.clone())]);
    assert_eq!(last_system_line(&m, BOB), said);
    assert_eq!(type_line(&mut m, "/to cat"), vec![Do::Said(texts::TO_USAGE.into())]);
    assert_eq!(last_system_line(&m, BOB), texts::TO_USAGE);
}

#[test]
fn to_sends_its_text_as_a_message_even_when_it_starts_with_a_slash() {
    let mut m = messenger();
    let effects = type_line(&mut m, "/to cat /quit is how you leave");
    let send = Effect::Net(NetCommand::Send { text: "/quit is how you leave".into() });
    assert_eq!(effects, vec![Do::In(CAT, send)]);
    assert!(!m.conversations[CAT].model.quitting, "cat's conversation did not run /quit");
    assert!(system_lines(&m, CAT).is_empty(), "nor answered a command nobody sees");
}

#[test]
fn a_message_elsewhere_is_unread_under_one_line_and_rings() {
    let mut m = messenger();
    let effects = incoming(&mut m, CAT, "cat", "one", 1);
    assert_eq!(count(&effects, |d| *d == Do::Bell), 1, "{effects:?}");
    assert_eq!(count(&effects, |d| matches!(d, Do::Desktop { .. })), 0, "off by default");
    assert_eq!(count(&effects, |d| matches!(d, Do::In(CAT, Effect::Log { .. }))), 1);
    incoming(&mut m, CAT, "cat", "two", 2);
    incoming(&mut m, CAT, "cat", "three", 3);
    assert_eq!(m.conversations[CAT].unread, 3);
    assert_eq!(unread_lines(&m, CAT), 1, "one line, not one per message");
    assert_eq!(history(&m, CAT), vec!["<unread>", "one", "two", "three"]);
    assert_eq!(m.conversations[BOB].unread, 0);
    assert_eq!(m.conversations[LOBBY].unread, 0);
}

#[test]
fn desktop_notifications_say_who_and_what_only_when_asked_to() {
    let notify = Notify { bell: false, desktop: true, content: true };
    let mut m = messenger_with(notify);
    let effects = incoming(&mut m, CAT, "cat", "lunch?", 1);
    let desktop = Do::Desktop { title: "p2pchat: cat".into(), body: Some("lunch?".into()) };
    assert_eq!(count(&effects, |d| *d == desktop), 1, "{effects:?}");
    assert_eq!(count(&effects, |d| *d == Do::Bell), 0, "the bell is off");
    let effects = incoming(&mut m, LOBBY, "dan", "hi", 2);
    let desktop =
        Do::Desktop { title: "p2pchat: dan in room lobby".into(), body: Some("hi".into()) };
    assert_eq!(count(&effects, |d| *d == desktop), 1, "{effects:?}");

    let notify = Notify { bell: true, desktop: true, content: false };
    let mut m = messenger_with(notify);
    let effects = incoming(&mut m, CAT, "cat", "a secret", 1);
    let desktop = Do::Desktop { title: "p2pchat: cat".into(), body: None };
    assert_eq!(count(&effects, |d| *d == desktop), 1, "{effects:?}");
    assert_eq!(count(&effects, |d| *d == Do::Bell), 1);
}

#[test]
fn a_message_in_the_conversation_looked_at_neither_rings_nor_counts() {
    let notify = Notify { bell: true, desktop: true, content: true };
    let mut m = messenger_with(notify);
    let effects = incoming(&mut m, BOB, "bob", "hi ann", 1);
    assert_eq!(count(&effects, |d| matches!(d, Do::Bell | Do::Desktop { .. })), 0);
    assert_eq!(m.conversations[BOB].unread, 0);
    assert_eq!(unread_lines(&m, BOB), 0);
    assert_eq!(history(&m, BOB), vec!["hi ann"]);
}

#[test]
fn the_shown_conversation_is_unread_while_the_terminal_is_unfocused() {
    let mut m = messenger();
    update(&mut m, Event::Focus(false));
    let effects = incoming(&mut m, BOB, "bob", "are you there?", 1);
    assert_eq!(count(&effects, |d| *d == Do::Bell), 1);
    assert_eq!(m.conversations[BOB].unread, 1);
    update(&mut m, Event::Focus(true));
    assert_eq!(m.conversations[BOB].unread, 0, "back in the terminal, it is read");
    let effects = incoming(&mut m, BOB, "bob", "ah, hi", 2);
    assert_eq!(count(&effects, |d| *d == Do::Bell), 0);
    assert_eq!(m.conversations[BOB].unread, 0);
}

#[test]
fn switching_away_takes_the_unread_line_from_the_conversation_left() {
    let mut m = messenger();
    incoming(&mut m, CAT, "cat", "one", 1);
    incoming(&mut m, CAT, "cat", "two", 2);
    type_line(&mut m, "/open cat");
    assert_eq!(m.conversations[CAT].unread, 0, "shown is read");
    assert_eq!(history(&m, CAT), vec!["<unread>", "one", "two"], "the line shows where");
    key(&mut m, Action::NextConversation);
    assert_ne!(shown(&m), "cat");
    assert_eq!(unread_lines(&m, CAT), 0, "gone from the conversation left");
    // The next message while away marks the new place.
    incoming(&mut m, CAT, "cat", "three", 3);
    assert_eq!(history(&m, CAT), vec!["one", "two", "<unread>", "three"]);
}

#[test]
fn removing_the_unread_line_keeps_a_scrolled_back_view_still() {
    let mut m = messenger();
    type_line(&mut m, "/open cat");
    for i in 0..60 {
        incoming(&mut m, CAT, "cat", &format!("old {i}"), i);
    }
    type_line(&mut m, "/open bob");
    incoming(&mut m, CAT, "cat", "new 1", 100);
    incoming(&mut m, CAT, "cat", "new 2", 101);
    type_line(&mut m, "/open cat");
    // Back a page: the unread line and what came after it are below the view.
    key(&mut m, Action::PageUp);
    let scroll = m.conversations[CAT].model.scroll;
    let before = crate::ui::tests::screen(&m.conversations[CAT].model);
    type_line(&mut m, "/open bob");
    assert_eq!(unread_lines(&m, CAT), 0);
    assert_eq!(m.conversations[CAT].model.scroll, scroll - 1);
    let after = crate::ui::tests::screen(&m.conversations[CAT].model);
    assert_eq!(before, after, "the same rows in view");
}

#[test]
fn our_own_messages_never_ring() {
    let notify = Notify { bell: true, desktop: true, content: true };
    let mut m = messenger_with(notify);
    let sent = NetEvent::Sent { id: MsgId("01".into()), text: "hi".into(), timestamp: "t".into() };
    let effects = net(&mut m, CAT, sent, 1);
    assert_eq!(count(&effects, |d| matches!(d, Do::Bell | Do::Desktop { .. })), 0);
    assert_eq!(m.conversations[CAT].unread, 0);
    assert_eq!(unread_lines(&m, CAT), 0);
    let queued =
        NetEvent::Queued { id: MsgId("02".into()), text: "later".into(), timestamp: "t".into() };
    let effects = net(&mut m, LOBBY, queued, 2);
    assert_eq!(count(&effects, |d| matches!(d, Do::Bell | Do::Desktop { .. })), 0);
    assert_eq!(m.conversations[LOBBY].unread, 0);
}

#[test]
fn quit_shuts_down_once_and_exits_when_every_conversation_has_closed() {
    let mut m = messenger();
    assert_eq!(type_line(&mut m, "/quit"), vec![Do::Shutdown]);
    assert!(m.quitting);
    assert!(key(&mut m, Action::Quit).is_empty(), "asked once");
    assert!(update(&mut m, Event::Ui(Message::Quit)).is_empty());
    assert!(net(&mut m, CAT, NetEvent::Closed, 1).is_empty());
    assert!(net(&mut m, BOB, NetEvent::Closed, 1).is_empty());
    assert!(update(&mut m, Event::Ui(Message::Tick(at(2)))).is_empty());
    assert_eq!(net(&mut m, LOBBY, NetEvent::Closed, 3), vec![Do::Exit]);
    // Once is enough: the clock and a late echo ask nothing more.
    assert!(update(&mut m, Event::Ui(Message::Tick(at(4)))).is_empty());
    assert!(net(&mut m, LOBBY, NetEvent::Closed, 5).is_empty());
}

#[test]
fn ctrl_c_quits_every_conversation_at_once() {
    let mut m = messenger();
    assert_eq!(key(&mut m, Action::Quit), vec![Do::Shutdown]);
    assert!(m.conversations.iter().all(|c| c.model.quitting));
    // No conversation's own goodbye goes out: the shutdown says it for all.
    assert!(type_line(&mut m, "/quit").is_empty());
}

#[test]
fn room_without_a_key_asks_and_the_next_line_is_the_key_never_a_message() {
    let mut m = messenger();
    let prompt = texts::room_key_prompt("secret");
    assert_eq!(type_line(&mut m, "/room secret"), vec![Do::Said(prompt.clone())]);
    assert_eq!(last_system_line(&m, BOB), prompt);
    let key_text = "c2VjcmV0IGtleSBvZiB0aGUgcm9vbQ";
    let effects = type_line(&mut m, key_text);
    assert_eq!(effects, vec![Do::Room { name: "secret".into(), key: key_text.into() }]);
    assert_eq!(m.conversations[BOB].model.input.text(), "");
    assert!(m.asking_key_for.is_none());
    // The key is nowhere to be read again: not in the history, not one Up away.
    let everywhere = format!("{:?}", m.conversations[BOB].model.entries);
    assert!(!everywhere.contains(key_text));
    key(&mut m, Action::RecallPrevious);
    assert_ne!(m.conversations[BOB].model.input.text(), key_text);
    key(&mut m, Action::ClearLine);
    // The line after that is a message again.
    let effects = type_line(&mut m, "hello");
    assert_eq!(effects, vec![Do::In(BOB, Effect::Net(NetCommand::Send { text: "hello".into() }))]);
}

#[test]
fn room_key_prompt_is_cancelled_by_an_empty_line() {
    let mut m = messenger();
    type_line(&mut m, "/room secret");
    assert!(key(&mut m, Action::Submit).is_empty());
    assert!(m.asking_key_for.is_none());
    let effects = type_line(&mut m, "hello");
    assert_eq!(effects, vec![Do::In(BOB, Effect::Net(NetCommand::Send { text: "hello".into() }))]);
}

#[test]
fn room_pair_and_join_ask_the_runner_or_say_how() {
    let mut m = messenger();
    let effects = type_line(&mut m, "/room lobby2 K3y=");
    assert_eq!(effects, vec![Do::Room { name: "lobby2".into(), key: "K3y=".into() }]);
    key(&mut m, Action::RecallPrevious);
    assert_eq!(m.conversations[BOB].model.input.text(), "", "a line with a key is not kept");
    assert_eq!(type_line(&mut m, "/room"), vec![Do::Said(texts::ROOM_USAGE.into())]);
    assert_eq!(last_system_line(&m, BOB), texts::ROOM_USAGE);
    assert_eq!(type_line(&mut m, "/join"), vec![Do::Said(texts::JOIN_USAGE.into())]);
    assert_eq!(last_system_line(&m, BOB), texts::JOIN_USAGE);
    assert_eq!(type_line(&mut m, "/join 7-apple-banjo"), vec![Do::Join("7-apple-banjo".into())]);
    assert_eq!(type_line(&mut m, "/pair"), vec![Do::Pair]);
    assert_eq!(m.conversations[BOB].model.input.text(), "");
}

#[test]
fn ctrl_b_gives_the_pane_s_columns_to_the_history() {
    let mut m = messenger();
    let pane = crate::ui::conversations::PANE_COLS;
    let sizes = |m: &Messenger| m.conversations.iter().map(|c| c.model.size).collect::<Vec<_>>();
    assert_eq!(sizes(&m), vec![(100 - pane, 30); 3]);
    key(&mut m, Action::TogglePane);
    assert!(m.pane_hidden);
    assert_eq!(sizes(&m), vec![(100, 30); 3]);
    key(&mut m, Action::TogglePane);
    assert_eq!(sizes(&m), vec![(100 - pane, 30); 3]);
    // A terminal too narrow for the pane gives every column to the history.
    let narrow = crate::ui::conversations::PANE_MIN_TERMINAL_COLS - 1;
    update(&mut m, Event::Ui(Message::Resize(narrow, 20)));
    assert_eq!(sizes(&m), vec![(narrow, 20); 3]);
}

#[test]
fn an_added_conversation_is_shown_at_the_history_s_width() {
    let mut m = messenger();
    incoming(&mut m, CAT, "cat", "hi", 1);
    update(&mut m, Event::Added(contact("dan")));
    assert_eq!(shown(&m), "dan");
    let dan = m.conversations.len() - 1;
    assert_eq!(m.conversations[dan].model.size, (100 - crate::ui::conversations::PANE_COLS, 30));
    assert_eq!(last_system_line(&m, dan), texts::conversation_opened("dan"));
    update(&mut m, Event::Notice("code 7-apple-banjo".into()));
    assert_eq!(last_system_line(&m, dan), "code 7-apple-banjo");
}

#[test]
fn enter_steps_through_search_matches_while_the_line_is_empty() {
    let mut m = messenger();
    m.conversations[BOB].model.search = Some(crate::app::model::Search {
        term: "x".into(),
        matches: vec![10, 20],
        current: 1,
        truncated: false,
    });
    let effects = key(&mut m, Action::Submit);
    assert_eq!(effects, vec![Do::In(BOB, Effect::Load(crate::app::message::Load::Around(10)))]);
}

#[test]
fn without_conversations_lines_are_answered_and_quitting_exits() {
    let mut m = Messenger::new(Vec::new(), Notify::default());
    assert!(m.shown().is_none());
    // No input line to type in; a line from headless stdin is answered.
    assert!(type_line(&mut m, "hello").is_empty());
    let effects = update(&mut m, Event::Ui(Message::Submit("hello".into())));
    assert_eq!(effects, vec![Do::Said(texts::NO_CONVERSATION_YET.into())]);
    assert_eq!(update(&mut m, Event::Ui(Message::Submit("/pair".into()))), vec![Do::Pair]);
    assert!(key(&mut m, Action::NextConversation).is_empty());
    assert!(incoming(&mut m, 3, "x", "y", 1).is_empty(), "no such conversation");
    assert_eq!(key(&mut m, Action::Quit), vec![Do::Shutdown, Do::Exit]);
}

#[test]
fn contacts_lists_the_messengers_saved_contacts_in_the_conversation_shown() {
    let mut m = messenger();
    let saved = |name: &str| crate::identity::Contact {
        name: name.into(),
        key: "a2V5".into(),
        room: "rv-1".into(),
        first_seen: "2026-11-29T10:00:00+00:00".into(),
        me: Some("ann".into()),
        server: Some("127.0.0.1:7777".into()),
    };
    m.contacts = vec![saved("bob"), saved("cat")];
    let effects = type_line(&mut m, "/contacts");
    let lines = system_lines(&m, BOB);
    assert!(
        lines.iter().any(|l| l.contains("bob")) && lines.iter().any(|l| l.contains("cat")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("no contacts")), "{lines:?}");
    assert!(
        effects.iter().all(|e| matches!(e, Do::Said(_) | Do::In(_, Effect::Load(_)))),
        "{effects:?}"
    );
}

#[test]
fn the_home_screen_without_conversations_runs_the_messengers_commands_from_the_keyboard() {
    let mut m = Messenger::new(Vec::new(), Notify::default());
    m.home = Some(Box::new(model("no conversation yet")));
    update(&mut m, Event::Ui(Message::Resize(100, 30)));
    assert_eq!(type_line(&mut m, "/pair"), vec![Do::Pair]);
    assert!(type_line(&mut m, "/join 7-apple-banjo").contains(&Do::Join("7-apple-banjo".into())));
    // A message has nowhere to go: said, not lost silently, and the line is one Up away.
    let effects = type_line(&mut m, "hello?");
    assert!(effects.iter().any(|e| matches!(e, Do::Said(t) if t.contains("no conversation yet"))));
    assert_eq!(m.home.as_ref().unwrap().input.text(), "");
    key(&mut m, Action::RecallPrevious);
    assert_eq!(m.home.as_ref().unwrap().input.text(), "hello?");
    key(&mut m, Action::ClearLine);
    // The clock moves on the home screen too.
    update(&mut m, Event::Ui(Message::Tick(at(90))));
    assert_eq!(m.home.as_ref().unwrap().now, at(90));
    let effects = type_line(&mut m, "/quit");
    assert_eq!(effects, vec![Do::Shutdown, Do::Exit]);
}

#[test]
fn a_command_at_the_key_prompt_cancels_it_and_runs() {
    let mut m = messenger();
    type_line(&mut m, "/room club");
    assert_eq!(m.asking_key_for.as_deref(), Some("club"));
    let effects = type_line(&mut m, "/open cat");
    assert!(effects.iter().all(|e| !matches!(e, Do::Room { .. })), "{effects:?}");
    assert_eq!(shown(&m), "cat");
    assert_eq!(m.asking_key_for, None);
    // Switching away drops the question as well.
    type_line(&mut m, "/room club");
    key(&mut m, Action::NextConversation);
    assert_eq!(m.asking_key_for, None);
    let effects = type_line(&mut m, "not a key, a message");
    assert!(effects.iter().all(|e| !matches!(e, Do::Room { .. })), "{effects:?}");
}

#[test]
fn leave_takes_a_room_out_of_the_pane_and_only_a_room() {
    let mut m = messenger();
    type_line(&mut m, "/open room:lobby");
    assert_eq!(shown(&m), "room:lobby");
    let effects = type_line(&mut m, "/leave");
    assert!(effects.contains(&Do::Leave(LOBBY)), "{effects:?}");
    assert!(m.conversations[LOBBY].left);
    assert!(!m.order().contains(&LOBBY));
    assert_ne!(shown(&m), "room:lobby");
    assert_eq!(m.find("room:lobby"), None);
    // Gone from every command: /open and /to do not find it, /leave again neither.
    let effects = type_line(&mut m, "/to room:lobby hello");
    assert!(effects.iter().all(|e| !matches!(e, Do::In(LOBBY, _))), "{effects:?}");
    let effects = type_line(&mut m, "/leave bob");
    assert!(!effects.iter().any(|e| matches!(e, Do::Leave(_))), "{effects:?}");
    assert!(effects.iter().any(|e| matches!(e, Do::Said(t) if t.contains("/leave is for rooms"))));
    // The pane's own name for a room is taken by /room too.
    let effects = type_line(&mut m, "/room room:club K3y");
    assert!(effects.contains(&Do::Room { name: "club".into(), key: "K3y".into() }), "{effects:?}");
}

#[test]
fn a_burst_asks_for_attention_once_and_again_after_a_quiet_spell() {
    let notify = Notify { bell: true, desktop: true, content: true };
    let mut m = messenger_with(notify);
    let mut rang = Vec::new();
    // Twenty messages a second apart, then one after 15 s of quiet, and one in another
    // conversation meanwhile.
    for secs in 1..=20 {
        rang.push(incoming(&mut m, CAT, "cat", "spam", secs).contains(&Do::Bell));
    }
    let lobby = incoming(&mut m, LOBBY, "dan", "hi", 5);
    assert!(lobby.contains(&Do::Bell), "another conversation asks on its own");
    rang.push(incoming(&mut m, CAT, "cat", "later", 35).contains(&Do::Bell));
    let times: Vec<usize> = rang.iter().enumerate().filter(|(_, r)| **r).map(|(i, _)| i).collect();
    assert_eq!(times, vec![0, 20], "the first, and the one after the quiet spell");
    assert_eq!(m.conversations[CAT].unread, 21, "every message still counts");
}

#[test]
fn to_finds_a_contact_whose_name_has_spaces() {
    let mut m = Messenger::new(vec![contact("Max Hohenzoller"), contact("Max")], Notify::default());
    update(&mut m, Event::Ui(Message::Resize(100, 30)));
    let effects = type_line(&mut m, "/to Max Hohenzoller guten Tag");
    let sent = |effects: &[Do], index: usize, text: &str| {
        effects.iter().any(|e| {
            matches!(e, Do::In(i, Effect::Net(NetCommand::Send { text: t })) if *i == index && t == text)
        })
    };
    assert!(sent(&effects, 0, "guten Tag"), "{effects:?}");
    // The shorter name is someone else: its own words stay the message.
    let effects = type_line(&mut m, "/to Max hello there");
    assert!(sent(&effects, 1, "hello there"), "{effects:?}");
}

#[test]
fn a_conversation_with_more_unread_than_fits_opens_at_the_unread_line() {
    let mut m = messenger();
    for secs in 1..=60 {
        incoming(&mut m, CAT, "cat", &format!("line {secs}"), secs);
    }
    // A couple that fit open at the bottom as usual.
    incoming(&mut m, LOBBY, "dan", "hi", 61);
    type_line(&mut m, "/open room:lobby");
    assert_eq!(m.conversations[LOBBY].model.scroll, 0);
    type_line(&mut m, "/open cat");
    let model = &m.conversations[CAT].model;
    let height = usize::from(crate::ui::history_height(model));
    let at = model.entries.iter().position(|e| e.kind == EntryKind::Unread).unwrap();
    let below: usize =
        model.entries[at..].iter().map(|e| crate::ui::history::entry_rows(e, model)).sum();
    assert!(below > height, "{below} rows of unread do not fit {height}");
    assert_eq!(model.scroll, below - height, "the unread line is the view's first row");
    // "↓ N new" counts what is below the view: one row for the line itself, and one a
    // message, are on screen.
    assert_eq!(model.unread, 60 - (height - 1), "the unread below the view");
    assert_eq!(m.conversations[CAT].unread, 0, "read now: the pane's count is gone");
}

#[test]
fn after_leaving_the_last_conversation_the_home_screen_takes_the_keyboard() {
    let mut m = Messenger::new(vec![room("x")], Notify::default());
    m.home = Some(Box::new(model("no conversation yet")));
    update(&mut m, Event::Ui(Message::Resize(100, 30)));
    let effects = type_line(&mut m, "/leave");
    assert!(effects.contains(&Do::Leave(0)), "{effects:?}");
    assert!(m.shown().is_none());
    // The notice is on the screen the user sees, and typing goes there too.
    let home = m.home.as_ref().unwrap();
    assert!(
        home.entries
            .iter()
            .any(|e| matches!(&e.kind, EntryKind::System(t) if t.contains("left room:x")))
    );
    assert_eq!(type_line(&mut m, "/pair"), vec![Do::Pair]);
    let effects = type_line(&mut m, "a message");
    assert!(effects.iter().all(|e| !matches!(e, Do::In(..))), "not to the room left: {effects:?}");
    key(&mut m, Action::Insert('h'));
    assert_eq!(m.home.as_ref().unwrap().input.text(), "h");
}
