//! The messenger's conversations pane, at the left: every contact and room, in the pane's
//! order (`Messenger::order`), each with its place (Alt-1…9), presence (a dot for a contact,
//! "k/n" online for a room), unread count and last activity; the one shown is highlighted,
//! and kept in view when they do not all fit.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::theme;
use crate::app::messenger::{Messenger, With};
use crate::app::texts;
use crate::text::sanitize;

/// The pane's width, borders included.
pub const PANE_COLS: u16 = 24;

/// Below this terminal width the pane folds away by itself (the history needs the room).
pub const PANE_MIN_TERMINAL_COLS: u16 = 60;

/// Cuts `text` to `width` columns, with "…" when it was longer.
fn fit(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        if out.width() + c.to_string().width() + 1 > width {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// Draws the pane.
pub fn render(messenger: &Messenger, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" conversations ").border_style(theme::border());
    let width = usize::from(block.inner(area).width);
    let mut lines = Vec::new();
    if messenger.order().is_empty() {
        lines.push(Line::styled(" none yet", theme::detail()));
        lines.push(Line::styled(" /pair, /join CODE", theme::detail()));
        lines.push(Line::styled(" or /room NAME KEY", theme::detail()));
    }
    let now = messenger.shown().map(|c| c.model.now);
    let order = messenger.order();
    // Two rows a conversation; when they do not all fit, the list starts late enough for the
    // one shown to be in view (its number still says its place).
    let fits = usize::from(block.inner(area).height / 2).max(1);
    let shown_at = order.iter().position(|&i| i == messenger.selected).unwrap_or(0);
    let skip = (shown_at + 1).saturating_sub(fits);
    for (place, &index) in order.iter().enumerate().skip(skip) {
        let conversation = &messenger.conversations[index];
        let (online, known) = conversation.presence();
        let (dot, dot_style) =
            if online > 0 { ("● ", theme::online()) } else { ("○ ", theme::offline()) };
        let presence = match &conversation.with {
            With::Contact(_) if online > 0 => "online".to_owned(),
            With::Contact(_) => "offline".to_owned(),
            With::Room(_) => format!("{online}/{known} online"),
        };
        let number = if place < 9 { format!("{}", place + 1) } else { " ".to_owned() };
        let unread = match conversation.unread {
            0 => String::new(),
            n if n > 99 => " 99+".to_owned(),
            n => format!(" {n}"),
        };
        let name_width = width.saturating_sub(number.width() + 1 + dot.width() + unread.width());
        let label = fit(&sanitize(&conversation.with.label()), name_width);
        let mut name_style = match &conversation.with {
            With::Contact(name) => theme::peer(name),
            With::Room(_) => theme::heading(),
        };
        if index == messenger.selected {
            name_style = name_style.add_modifier(Modifier::REVERSED);
        }
        lines.push(Line::from(vec![
            Span::styled(format!("{number} "), theme::time()),
            Span::styled(dot, dot_style),
            Span::styled(label, name_style),
            Span::styled(unread, theme::unread()),
        ]));
        let activity = match (conversation.last_activity, now) {
            (Some(at), Some(now)) => format!("  {presence} · {}", texts::ago(now, at)),
            _ => format!("  {presence}"),
        };
        lines.push(Line::styled(fit(&activity, width), theme::detail()));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
