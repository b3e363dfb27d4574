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
    let (line, cursor_x) = window(model.input.text(), model.input.cursor(), inner.width);
    frame.render_widget(Paragraph::new(line), inner);
    if !model.quitting && inner.width > 0 && inner.height > 0 {
        frame.set_cursor_position(Position::new(inner.x + cursor_x, inner.y));
    }
}

/// What of `text` fits a box `width` columns wide with the cursor (at byte `cursor`) inside
/// it, neutralised for the screen, and the cursor's column. Only the graphemes around the
/// cursor are measured, walking out from it, so a keystroke costs the same with 64 KiB in
/// the box as with a word.
fn window(text: &str, cursor: usize, width: u16) -> (String, u16) {
    let (before, after) = text.split_at(cursor);
    let room = usize::from(width.saturating_sub(1));
    let shown = |g: &str| sanitize(g).width();
    let mut start = before.len();
    let mut used = 0;
    for (at, g) in before.grapheme_indices(true).rev() {
        used += shown(g);
        if used > room {
            break;
        }
        start = at;
    }
    let mut shown_before = sanitize(&before[start..]);
    // Neutralised as a run, the text can come out wider than grapheme by grapheme (an
    // invisible character shown as an escape): drop from the left until it fits.
    while shown_before.width() > room {
        let first = shown_before.graphemes(true).next().map_or(0, str::len);
        shown_before.drain(..first.max(1));
    }
    let cursor_x = u16::try_from(shown_before.width()).unwrap_or(width);
    let mut end = 0;
    let mut left = usize::from(width).saturating_sub(usize::from(cursor_x));
    for (at, g) in after.grapheme_indices(true) {
        let w = shown(g);
        if w > left {
            break;
        }
        left -= w;
        end = at + g.len();
    }
    (format!("{shown_before}{}", sanitize(&after[..end])), cursor_x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_the_cursor_and_only_what_fits() {
        assert_eq!(window("hello", 5, 10), ("hello".to_owned(), 5));
        assert_eq!(window("hello world", 0, 5), ("hello".to_owned(), 0));
        // Scrolled sideways: the end of the text before the cursor, by whole graphemes.
        assert_eq!(window("abcdefghij", 10, 5), ("ghij".to_owned(), 4));
        assert_eq!(window("ab世界cd", 8, 4), ("界cd".to_owned(), 2));
        let (line, x) = window("a👋🏽b", "a👋🏽".len(), 10);
        assert_eq!((line.as_str(), x), ("a👋🏽b", 3));
        // Invisible characters show as escapes and count as such.
        let (line, x) = window("a\u{200b}b", 4, 40);
        assert_eq!((line.as_str(), x), ("a⟨U+200B⟩b", 9));
    }

    #[test]
    fn a_huge_text_gives_a_window_as_small_as_the_box() {
        let unit = "p2p 世界 👋🏽 text ";
        let text = unit.repeat(64 * 1024 / unit.len());
        for cursor in [0, text.len() / 2 - text.len() / 2 % unit.len(), text.len()] {
            let (line, x) = window(&text, cursor, 80);
            assert!(line.width() <= 80, "{}", line.width());
            assert!(line.width() >= 70, "the box is filled: {}", line.width());
            assert!(x < 80);
            assert!(text.contains(&line), "a piece of the text, whole graphemes");
            if cursor == text.len() {
                assert!(text.ends_with(&line), "at the end: what was typed last");
            }
            if cursor == 0 {
                assert!(text.starts_with(&line) && x == 0, "at the start: the beginning");
            }
        }
    }
}
