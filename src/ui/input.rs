//! The input box: the line being typed, scrolled sideways so the cursor stays visible, with
//! the terminal cursor placed by display width (wide characters count two columns).

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::widgets::{Block, Paragraph};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::theme;
use crate::app::{Model, texts};
use crate::text::sanitize;

/// Draws the box and places the cursor.
pub fn render(model: &Model, frame: &mut Frame, area: Rect) {
    let title = match &model.search {
        _ if model.quitting => " leaving… ".to_owned(),
        Some(search) => texts::search_status(
            &sanitize(&search.term),
            search.current,
            search.matches.len(),
            search.truncated,
        ),
        None => " message (Enter sends · /help) ".to_owned(),
    };
    let block = Block::bordered().title(title).border_style(theme::border());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let text = model.input.text();
    let (before, after) = text.split_at(model.input.cursor());
    // Keep the cursor inside the box: drop graphemes from the left until it fits.
    let room = usize::from(inner.width.saturating_sub(1));
    let mut shown_before = sanitize(before);
    while shown_before.width() > room {
        let first = shown_before.graphemes(true).next().map_or(0, str::len);
        shown_before.drain(..first.max(1));
    }
    let cursor_x = u16::try_from(shown_before.width()).unwrap_or(inner.width);
    let line = format!("{shown_before}{}", sanitize(after));
    frame.render_widget(Paragraph::new(line), inner);
    if !model.quitting && inner.width > 0 && inner.height > 0 {
        frame.set_cursor_position(Position::new(inner.x + cursor_x, inner.y));
    }
}
