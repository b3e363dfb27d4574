//! Whole-screen renders on ratatui's TestBackend, at three sizes, with a fixed clock.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::render;
use ratatui::buffer::Cell;
use ratatui::style::{Color, Modifier};

use crate::app::model::{
    Entry, EntryKind, Me, Origin, PeerView, Public, Search, ServerState, ServerView,
};
use crate::app::{Message, Model, update};
use crate::history::Delivery;
use crate::proto::{DropCounts, PathKind, PeerId};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Local> {
    Local.with_ymd_and_hms(2026, 5, 1, h, m, s).unwrap()
}

fn chat(from: &str, text: &str, own: bool, when: DateTime<Local>) -> Entry {
    let delivery = own.then_some(Delivery::Delivered);
    let kind = EntryKind::Chat { from: from.into(), text: text.into(), own, id: None, delivery };
    Entry::new(when, kind, Origin::Live)
}

fn model(size: (u16, u16)) -> Model {
    let me = Me {
        name: "ann".into(),
        local: addr("0.0.0.0:40000"),
        public: Public::Known(addr("203.0.113.5:51000")),
        nat: Some("Port-Restricted Cone".into()),
        server: Some(ServerView {
            addr: addr("198.51.100.1:7777"),
            room: "team".into(),
            state: ServerState::Registered,
        }),
    };
    let mut m = Model::new(me, "room team".into(), crate::history::Page::default(), at(12, 0, 30));
    m.size = size;
    m.entries = vec![
        Entry::system(at(12, 0, 0), "bob is online (via 198.51.100.2:5000)"),
        chat(
            "bob",
            "hi ann, this line is long enough that it has to wrap inside the history pane",
            false,
            at(12, 0, 1),
        ),
        chat("ann", "hello 世界 👋", true, at(12, 0, 2)),
        chat("bob", "evil \x1b[31mred", false, at(12, 0, 3)),
    ];
    m.peers = vec![
        PeerView {
            id: PeerId(0),
            name: "bob".into(),
            online: true,
            last_seen: Some(at(12, 0, 27)),
            addr: Some(addr("198.51.100.2:5000")),
            path: Some(PathKind::Public),
            nat: Some("Full Cone".into()),
            rtt: Some(Duration::from_millis(12)),
        },
        PeerView {
            id: PeerId(1),
            name: "cat".into(),
            online: false,
            last_seen: Some(at(11, 58, 30)),
            addr: None,
            path: None,
            nat: None,
            rtt: None,
        },
    ];
    m.drops = DropCounts { unauthentic: 3, ..DropCounts::default() };
    m
}

/// The screen as text rows, one string per terminal row (wide characters once).
pub(crate) fn screen(m: &Model) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(m.size.0, m.size.1)).unwrap();
    terminal.draw(|f| render(m, f)).unwrap();
    text_rows(terminal.backend().buffer())
}

/// A drawn buffer as text rows, one string per terminal row (wide characters once).
pub(crate) fn text_rows(buffer: &ratatui::buffer::Buffer) -> Vec<String> {
    (0..buffer.area.height)
        .map(|y| {
            let mut line = String::new();
            let mut skip = 0;
            for x in 0..buffer.area.width {
                // A wide character's second cell holds no symbol of its own.
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let symbol = buffer[(x, y)].symbol();
                skip = unicode_width::UnicodeWidthStr::width(symbol).saturating_sub(1);
                line.push_str(symbol);
            }
            line
        })
        .collect()
}

fn contains(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

#[test]
fn one_dropped_packet_is_one_bad_packet() {
    let mut m = model((80, 24));
    m.drops = DropCounts { malformed: 1, ..DropCounts::default() };
    let lines = screen(&m);
    assert!(contains(&lines, "dropped 1 bad packet "), "{lines:#?}");
    // What a lossy network does by itself is not "bad": duplicates, replays, reflections.
    m.drops = DropCounts { duplicate: 40, replayed: 7, reflected: 2, ..DropCounts::default() };
    let lines = screen(&m);
    assert!(!lines.iter().any(|l| l.contains("bad packet")), "{lines:#?}");
}

#[test]
fn three_panes_at_80x24() {
    let lines = screen(&model((80, 24)));
    assert_eq!(lines.len(), 24);
    assert!(lines[0].starts_with("┌ p2pchat · room team "), "{}", lines[0]);
    assert!(lines[0].contains("┌ status "));
    let expect = |row: usize, text: &str| assert!(lines[row].starts_with(text), "{}", lines[row]);
    expect(1, "│[12:00:00] — bob is online (via                 │");
    // Wrapped rows go on under the text, not under the time.
    expect(2, "│             198.51.100.2:5000)                 │");
    expect(3, "│[12:00:01] bob: hi ann, this line is long       │");
    expect(4, "│                enough that it has to wrap      │");
    assert!(contains(&lines, "[12:00:02] ann: hello 世界 👋 ✓"));
    // The escape sequence is shown, not obeyed.
    assert!(contains(&lines, "bob: evil ␛[31mred"));
    // Status pane: us, then peers.
    assert!(contains(&lines, "│You ann"));
    assert!(contains(&lines, " public 203.0.113.5:51000"));
    assert!(contains(&lines, " NAT    Port-Restricted Cone"));
    assert!(contains(&lines, " server 198.51.100.1:7777"));
    assert!(contains(&lines, "✓ registered"));
    assert!(contains(&lines, " ● bob online"));
    assert!(contains(&lines, "   via 198.51.100.2:5000"));
    assert!(contains(&lines, "   direct public · rtt 12 ms"));
    assert!(contains(&lines, "   NAT Full Cone"));
    assert!(contains(&lines, "   seen 3s ago"));
    assert!(contains(&lines, " ○ cat offline"));
    assert!(contains(&lines, "   seen 2m ago"));
    assert!(contains(&lines, "dropped 3 bad packets"));
    // Input box at the bottom.
    assert!(lines[21].starts_with("┌ message (Enter sends · Alt-Enter new line · /help) "));
    assert!(lines[23].starts_with("└"));
}

#[test]
fn wide_terminal_gives_history_more_room() {
    let lines = screen(&model((120, 40)));
    assert!(
        lines[2].contains("bob: hi ann, this line is long enough that it has to wrap inside   │"),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("│                the history pane "), "{}", lines[3]);
    assert!(lines[37].starts_with("┌ message"));
}

#[test]
fn narrow_terminal_drops_the_status_pane() {
    let lines = screen(&model((50, 20)));
    assert!(!contains(&lines, "status"));
    assert!(lines[0].starts_with("┌ p2pchat · room team "));
    assert!(lines[0].ends_with("┐"));
}

#[test]
fn scrolled_back_view_shows_the_new_marker() {
    let mut m = model((80, 24));
    for i in 0..60 {
        m.entries.push(Entry::system(at(12, 1, 0), format!("filler {i}")));
    }
    update(&mut m, Message::Scroll(10));
    m.unread = 2;
    let lines = screen(&m);
    assert!(lines[19].contains("filler 49    ↓ 2 new — End to jump │"), "{}", lines[19]);
    assert!(lines[1].contains("filler 31 "), "{}", lines[1]);
}

#[test]
fn the_input_box_grows_with_its_text_and_keeps_the_cursor_in_view() {
    let mut m = model((80, 24));
    let long = "x".repeat(100) + "END";
    update(&mut m, Message::Paste(long));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| render(&m, f)).unwrap();
    let lines = screen(&m);
    // Two rows of text: the box is a row taller, the history a row shorter.
    assert!(lines[20].starts_with("┌ message (Enter sends · Alt-Enter new line"), "{}", lines[20]);
    assert_eq!(lines[21], format!("│{}│", "x".repeat(78)));
    assert!(lines[22].starts_with("│xxxxxxxxxxxxxxxxxxxxxxEND "), "{}", lines[22]);
    let cursor = terminal.get_cursor_position().unwrap();
    assert_eq!((cursor.x, cursor.y), (26, 22));
    // New lines (Alt-Enter) add rows up to five; then the box scrolls with the cursor.
    for n in 0..8 {
        update(&mut m, Message::Paste(format!("\nline {n}")));
    }
    terminal.draw(|f| render(&m, f)).unwrap();
    let lines = screen(&m);
    assert!(lines[17].starts_with("┌ message"), "{lines:#?}");
    assert!(lines[18].starts_with("│line 3 "), "{lines:#?}");
    assert!(lines[22].starts_with("│line 7 "), "{lines:#?}");
    let cursor = terminal.get_cursor_position().unwrap();
    assert_eq!((cursor.x, cursor.y), (7, 22));
}

#[test]
fn invisible_characters_show_dimmed_in_texts_and_names() {
    let mut m = model((120, 24));
    m.entries.push(chat(
        "b\u{200b}ob",
        "zero\u{200b}\u{200c}\u{200d}\u{feff}width",
        false,
        at(12, 0, 4),
    ));
    m.peers[1].name = "b\u{202e}ob".into();
    let mut terminal = Terminal::new(TestBackend::new(120, 24)).unwrap();
    terminal.draw(|f| render(&m, f)).unwrap();
    let lines = screen(&m);
    assert!(contains(&lines, "b⟨U+200B⟩ob:"), "{lines:#?}");
    assert!(contains(&lines, "zero⟨U+200B⟩⟨U+200C⟩⟨U+200D⟩⟨U+FEFF⟩width"), "{lines:#?}");
    assert!(contains(&lines, "b⟨U+202E⟩ob"), "a peer's name in the status pane: {lines:#?}");
    // The escape is drawn dim; the letters around it are not.
    let buffer = terminal.backend().buffer().clone();
    let row = (0..24u16).find(|&y| {
        (0..120u16)
            .map(|x| buffer[(x, y)].symbol().to_owned())
            .collect::<String>()
            .contains("zero⟨")
    });
    let y = row.expect("the message row");
    let cells: Vec<_> = (0..120u16).map(|x| buffer[(x, y)].clone()).collect();
    let start = cells.iter().position(|c| c.symbol() == "z").unwrap();
    let dim = |i: usize| cells[i].modifier.contains(ratatui::style::Modifier::DIM);
    assert!(!dim(start), "z");
    assert!(dim(start + 4), "⟨ of the first escape");
    let after = start + 4 + 4 * "⟨U+200B⟩".chars().count();
    assert_eq!(cells[after].symbol(), "w");
    assert!(!dim(after), "w");
}

#[test]
fn a_relayed_peer_shows_its_path_as_relay() {
    let mut m = model((80, 24));
    m.peers[0].path = Some(PathKind::Relay);
    m.peers[0].addr = Some(addr("198.51.100.3:49153"));
    let lines = screen(&m);
    assert!(contains(&lines, "relay"), "{lines:#?}");
    assert!(!contains(&lines, "direct public"), "{lines:#?}");
}

/// The column (in characters) where `needle` starts in `line`.
fn column(line: &str, needle: &str) -> usize {
    line[..line.find(needle).unwrap()].chars().count()
}

#[test]
fn help_and_the_status_pane_wrap_under_their_text() {
    let mut m = model((80, 60));
    m.entries = crate::app::texts::help(false)
        .into_iter()
        .map(|l| Entry::system(at(12, 0, 0), l))
        .collect();
    m.me.server.as_mut().unwrap().state =
        ServerState::Refused("the room is full: at most 64 peers may be in one room".into());
    let lines = screen(&m);
    // A help row too long for the pane goes on under its explanation.
    let row = lines.iter().position(|l| l.contains("/search TEXT")).unwrap();
    let start = column(&lines[row], "find TEXT");
    let next: Vec<char> = lines[row + 1].chars().collect();
    assert!(next[1..start].iter().all(|c| *c == ' '), "{}\n{}", lines[row], lines[row + 1]);
    assert_ne!(next[start], ' ', "{}\n{}", lines[row], lines[row + 1]);
    // A fact too long for the status pane goes on under its value, not at the border.
    let status = |row: usize| lines[row].split('│').nth(3).unwrap().to_owned();
    let row = lines.iter().position(|l| l.contains("✗ refused:")).unwrap();
    assert!(status(row).starts_with("        ✗ refused:"), "{}", status(row));
    let next = status(row + 1);
    assert!(next.starts_with(&" ".repeat(8)) && next.trim_start().len() > 3, "{next}");
}

#[test]
fn a_terminal_too_small_says_so() {
    for size in [(19, 24), (80, 5), (10, 3)] {
        let lines = screen(&model(size));
        let text: String = lines.join(" ");
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words[..3], ["Terminal", "too", "small"], "{size:?}: {lines:#?}");
    }
    let lines = screen(&model((20, 6)));
    assert!(lines[0].starts_with("┌ p2pchat"), "{lines:#?}");
}

#[test]
fn no_color_draws_without_colours_and_reverses_the_markers() {
    let mut m = model((80, 24));
    m.scroll = 1;
    m.unread = 2;
    let draw = |m: &Model| {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| render(m, f)).unwrap();
        terminal.backend().buffer().clone()
    };
    let coloured = draw(&m);
    let colours = |b: &ratatui::buffer::Buffer| {
        b.content
            .iter()
            .filter(|c| {
                c.fg != ratatui::style::Color::Reset || c.bg != ratatui::style::Color::Reset
            })
            .count()
    };
    assert!(colours(&coloured) > 0);
    m.colour = false;
    let plain = draw(&m);
    assert_eq!(colours(&plain), 0);
    // The same text; the marker that stood out by its background is reversed.
    assert_eq!(screen(&m), {
        m.colour = true;
        screen(&m)
    });
    let reversed =
        plain.content.iter().filter(|c| c.modifier.contains(ratatui::style::Modifier::REVERSED));
    let marked: String = reversed.map(|c| c.symbol()).collect();
    assert!(marked.contains("2 new"), "{marked}");
}

fn draw(m: &Model) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(m.size.0, m.size.1)).unwrap();
    terminal.draw(|f| render(m, f)).unwrap();
    terminal.backend().buffer().clone()
}

/// The cells where `needle` (characters one cell wide) is first drawn.
pub(crate) fn cells_at(buffer: &ratatui::buffer::Buffer, needle: &str) -> Vec<Cell> {
    let area = buffer.area;
    let needle: Vec<String> = needle.chars().map(String::from).collect();
    let n = u16::try_from(needle.len()).unwrap();
    for y in 0..area.height {
        for x in 0..area.width.saturating_sub(n - 1) {
            if (0..n).all(|i| buffer[(x + i, y)].symbol() == needle[usize::from(i)]) {
                return (x..x + n).map(|x| buffer[(x, y)].clone()).collect();
            }
        }
    }
    panic!("{needle:?} is not on the screen:\n{:#?}", text_rows(buffer));
}

/// The symbols of the cells `wanted` picks, joined.
pub(crate) fn picked(cells: &[Cell], wanted: impl Fn(&Cell) -> bool) -> String {
    cells.iter().filter(|c| wanted(c)).map(Cell::symbol).collect()
}

#[test]
fn our_name_stands_out_in_other_peoples_messages_not_in_ours() {
    let mut m = model((100, 24));
    m.entries = vec![
        chat("bob", "hi Ann, annoying ANN! joanna", false, at(12, 0, 1)),
        chat("ann", "ann here, ann", true, at(12, 0, 2)),
    ];
    let mention = super::theme::mention();
    let named = |c: &Cell| c.bg == mention.bg.unwrap() && c.modifier.contains(Modifier::BOLD);
    let theirs = cells_at(&draw(&m), "bob: hi Ann, annoying ANN! joanna");
    assert_eq!(picked(&theirs, named), "AnnANN", "the name as a word, in any case");
    assert_eq!(theirs[9].fg, mention.fg.unwrap(), "A");
    let ours = cells_at(&draw(&m), "ann: ann here, ann");
    assert_eq!(picked(&ours, |c| c.bg != Color::Reset), "", "not in our own message");
    // A search for the name: its matches show as matches, and our name keeps its weight.
    m.search = Some(Search { term: "ann".into(), matches: vec![], current: 0, truncated: false });
    let theirs = cells_at(&draw(&m), "bob: hi Ann, annoying ANN! joanna");
    let found = super::theme::found().bg.unwrap();
    assert_eq!(picked(&theirs, |c| c.bg == found), "AnnannANNann");
    let bold_found = |c: &Cell| c.bg == found && c.modifier.contains(Modifier::BOLD);
    assert_eq!(picked(&theirs, bold_found), "AnnANN");
    assert_eq!(picked(&theirs, named), "");
    // Without colour the name is still marked: reversed, as the markers are.
    m.search = None;
    m.colour = false;
    let theirs = cells_at(&draw(&m), "bob: hi Ann, annoying ANN! joanna");
    let reversed = |c: &Cell| c.modifier.contains(Modifier::REVERSED);
    assert_eq!(picked(&theirs, reversed), "AnnANN");
}
