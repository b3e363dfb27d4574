//! Every colour and style the UI uses, in one place.

use ratatui::style::{Color, Modifier, Style};

const PEER_COLOURS: [Color; 6] =
    [Color::Cyan, Color::Green, Color::Yellow, Color::Magenta, Color::LightRed, Color::LightBlue];

/// A peer's name: a stable colour picked from its name.
pub fn peer(name: &str) -> Style {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let index = usize::try_from(hash % PEER_COLOURS.len() as u64).unwrap_or(0);
    Style::new().fg(PEER_COLOURS[index]).add_modifier(Modifier::BOLD)
}

/// Our own name.
pub fn own() -> Style {
    Style::new().fg(Color::White).add_modifier(Modifier::BOLD)
}

/// Timestamps.
pub fn time() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Lines from p2pchat itself.
pub fn system() -> Style {
    Style::new().fg(Color::DarkGray).add_modifier(Modifier::ITALIC)
}

/// Delivery marks on our messages.
pub fn delivery() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Pane borders and titles.
pub fn border() -> Style {
    Style::new().fg(Color::Gray)
}

/// Section headings in the status pane.
pub fn heading() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// Online marker.
pub fn online() -> Style {
    Style::new().fg(Color::Green)
}

/// Offline marker and warnings.
pub fn offline() -> Style {
    Style::new().fg(Color::Red)
}

/// Secondary facts (addresses, ages).
pub fn detail() -> Style {
    Style::new().fg(Color::Gray)
}

/// The "↓ N new" marker while scrolled back.
pub fn marker() -> Style {
    Style::new().fg(Color::Black).bg(Color::Yellow)
}

/// The messenger's "unread since you left" line.
pub fn unread() -> Style {
    Style::new().fg(Color::LightRed).add_modifier(Modifier::BOLD)
}

/// Escapes standing for invisible characters ("⟨U+200B⟩"): dim, so they read as marks.
pub fn invisible() -> Style {
    Style::new().fg(Color::DarkGray).add_modifier(Modifier::DIM)
}

/// Our own name where someone else's message says it. A search match over it keeps the
/// search's colours (what the user is looking for) and the name's weight.
pub fn mention() -> Style {
    Style::new().fg(Color::Black).bg(Color::LightMagenta).add_modifier(Modifier::BOLD)
}

/// Search matches in the history.
pub fn found() -> Style {
    Style::new().fg(Color::Black).bg(Color::Yellow)
}

/// The search match in view.
pub fn current_match() -> Style {
    Style::new().fg(Color::Black).bg(Color::LightGreen).add_modifier(Modifier::BOLD)
}
