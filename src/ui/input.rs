//! The input box: the text being typed, wrapped by display width into rows (a new line starts
//! a row), growing up to `MAX_INPUT_ROWS` rows and then scrolling to keep the cursor in view,
//! with the terminal cursor placed by display width (wide characters count two columns).
//! Only the rows from the first one shown to the cursor are measured, so a keystroke costs
//! the same with 64 KiB in the box as with a word.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::theme;
use crate::app::input::Input;
use crate::app::{Model, texts};
use crate::text::sanitize;

/// Most text rows the box grows to; past them it scrolls.
pub const MAX_INPUT_ROWS: u16 = 5;

/// Columns a grapheme takes on screen (neutralised: an invisible character shows as an escape).
fn shown(g: &str) -> usize {
    sanitize(g).width()
}

fn is_newline(g: &str) -> bool {
    g == "\n" || g == "\r\n"
}

/// The row that starts at byte `start`: where its shown text ends, and where the next row
/// starts (`None`: this is the last row). A row ends at a new line (not shown) or before the
/// grapheme that would pass `width`; a row filled to the end of the text is followed by an
/// empty one, where the cursor goes after it.
fn row(text: &str, start: usize, width: usize) -> (usize, Option<usize>) {
    let mut columns = 0;
    for (at, g) in text[start..].grapheme_indices(true) {
        let at = start + at;
        if is_newline(g) {
            return (at, Some(at + g.len()));
        }
        let w = shown(g);
        if columns + w > width && columns > 0 {
            return (at, Some(at));
        }
        columns += w;
    }
    let full = columns >= width && columns > 0;
    (text.len(), full.then_some(text.len()))
}

/// The starts of the rows from `from` (a row start) to the cursor's row, at most `keep` of
/// them (the last ones), and how many rows that walk passed.
fn rows_to_cursor(input: &Input, from: usize, width: usize, keep: usize) -> (Vec<usize>, usize) {
    let (text, cursor) = (input.text(), input.cursor());
    let mut starts = std::collections::VecDeque::with_capacity(keep + 1);
    let mut start = from;
    let mut passed = 0;
    loop {
        starts.push_back(start);
        if starts.len() > keep {
            starts.pop_front();
        }
        match row(text, start, width).1 {
            Some(next) if next <= cursor && next > start => {
                start = next;
                passed += 1;
            }
            _ => return (starts.into(), passed),
        }
    }
}

/// The first row the box shows at `width` columns and `rows` rows, with the cursor's row in
/// view: the remembered one when the cursor is still at or below it, else found again from
/// the start of the text (then the cursor's row is the last one shown).
fn first_row(input: &Input, width: usize, rows: usize) -> usize {
    let (top, at_width) = input.view.get();
    let from = if at_width == width && top <= input.cursor() { top } else { 0 };
    let (starts, _) = rows_to_cursor(input, from, width, rows.max(1));
    let top = starts[0];
    input.view.set((top, width));
    top
}

/// Text rows the box needs in a terminal `columns` wide: one per row of text, up to
/// `MAX_INPUT_ROWS`.
pub fn text_rows(input: &Input, columns: u16) -> u16 {
    let width = usize::from(columns.saturating_sub(2)).max(1);
    let max = usize::from(MAX_INPUT_ROWS);
    if first_row(input, width, max) > 0 {
        return MAX_INPUT_ROWS;
    }
    let text = input.text();
    let mut count = 1;
    let mut start = 0;
    while count < max {
        match row(text, start, width).1 {
            Some(next) => {
                start = next;
                count += 1;
            }
            None => break,
        }
    }
    u16::try_from(count).unwrap_or(MAX_INPUT_ROWS)
}

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
        None => texts::INPUT_TITLE.to_owned(),
    };
    let block = Block::bordered().title(title).border_style(theme::border());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (lines, cursor) = window(&model.input, inner.width, inner.height);
    frame.render_widget(Paragraph::new(lines), inner);
    if !model.quitting && inner.width > 0 && inner.height > 0 {
        frame.set_cursor_position(Position::new(inner.x + cursor.0, inner.y + cursor.1));
    }
}

/// The rows of the input shown in a box `width` × `height`, neutralised for the screen, and
/// the cursor's column and row in it.
fn window(input: &Input, width: u16, height: u16) -> (Vec<Line<'static>>, (u16, u16)) {
    let (columns, rows) = (usize::from(width).max(1), usize::from(height).max(1));
    let text = input.text();
    let mut start = first_row(input, columns, rows);
    let mut lines = Vec::new();
    let mut cursor = (0, 0);
    for y in 0..rows {
        let (end, next) = row(text, start, columns);
        let mut line = String::new();
        let mut x = 0;
        for (at, g) in text[start..end].grapheme_indices(true) {
            if start + at == input.cursor() {
                cursor = (x, y);
            }
            line.push_str(&sanitize(g));
            x += shown(g);
        }
        let here = input.cursor() >= end && next.is_none_or(|n| input.cursor() < n);
        if here {
            cursor = (x, y);
        }
        lines.push(Line::raw(line));
        match next {
            Some(next) => start = next,
            None => break,
        }
    }
    let cursor = (u16::try_from(cursor.0).unwrap_or(width), u16::try_from(cursor.1).unwrap_or(0));
    (lines, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str, cursor: usize) -> Input {
        let mut input = Input::default();
        input.set(text.to_owned());
        while input.cursor() > cursor {
            input.left();
        }
        input
    }

    fn shown_rows(input: &Input, width: u16, height: u16) -> (Vec<String>, (u16, u16)) {
        let (lines, cursor) = window(input, width, height);
        (
            lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect(),
            cursor,
        )
    }

    #[test]
    fn text_wraps_into_rows_and_new_lines_start_rows() {
        let i = input("hello world", 11);
        assert_eq!(shown_rows(&i, 20, 5), (vec!["hello world".to_owned()], (11, 0)));
        assert_eq!(shown_rows(&i, 5, 5).0, ["hello", " worl", "d"]);
        assert_eq!(shown_rows(&i, 5, 5).1, (1, 2));
        let i = input("one\ntwo\n", 8);
        assert_eq!(
            shown_rows(&i, 20, 5),
            (vec!["one".into(), "two".into(), String::new()], (0, 2))
        );
        let i = input("one\r\ntwo", 3);
        assert_eq!(shown_rows(&i, 20, 5), (vec!["one".into(), "two".into()], (3, 0)));
        // A row filled to the end of the text: the cursor after it starts the next row.
        let i = input("abcde", 5);
        assert_eq!(shown_rows(&i, 5, 5), (vec!["abcde".into(), String::new()], (0, 1)));
        // Wide and invisible characters by their width on screen.
        let i = input("ab世界cd", 8);
        assert_eq!(
            shown_rows(&i, 4, 5),
            (vec!["ab世".into(), "界cd".into(), String::new()], (2, 1))
        );
        let i = input("a👋🏽b\u{200b}", 2);
        assert_eq!(shown_rows(&i, 40, 5), (vec!["a👋🏽b⟨U+200B⟩".into()], (1, 0)));
    }

    #[test]
    fn the_box_grows_to_five_rows_then_scrolls_with_the_cursor() {
        let text = "1\n2\n3\n4\n5\n6\n7";
        let i = input(text, text.len());
        assert_eq!(text_rows(&input("", 0), 80), 1);
        assert_eq!(text_rows(&input("a\nb", 3), 80), 2);
        assert_eq!(text_rows(&i, 80), 5);
        assert_eq!(
            shown_rows(&i, 10, 5),
            (vec!["3", "4", "5", "6", "7"].into_iter().map(String::from).collect(), (1, 4))
        );
        // Back to the top: the view follows; down again, it follows back.
        let mut i = i;
        i.home();
        assert_eq!(shown_rows(&i, 10, 5).0[0], "1");
        assert_eq!(shown_rows(&i, 10, 5).1, (0, 0));
        i.end();
        assert_eq!(shown_rows(&i, 10, 5).0[4], "7");
        // A new text forgets the old view.
        i.set("x".into());
        assert_eq!(shown_rows(&i, 10, 5), (vec!["x".into()], (1, 0)));
    }

    #[test]
    fn a_huge_text_shows_only_the_rows_around_the_cursor() {
        let unit = "p2p 世界 👋🏽 text ";
        let text = unit.repeat(64 * 1024 / unit.len());
        let mut i = input(&text, text.len());
        assert_eq!(text_rows(&i, 80), MAX_INPUT_ROWS);
        let (rows, cursor) = shown_rows(&i, 78, 5);
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r.width() <= 78));
        assert!(text.ends_with(rows[4].as_str()) && cursor.1 == 4, "the end, where typing goes");
        // Typing and deleting at the end keeps the view where it is.
        let before = i.view.get();
        i.insert("x");
        shown_rows(&i, 78, 5);
        i.backspace();
        shown_rows(&i, 78, 5);
        assert_eq!(i.view.get(), before);
        i.home();
        let (rows, cursor) = shown_rows(&i, 78, 5);
        assert!(text.starts_with(rows[0].as_str()) && cursor == (0, 0));
    }
}
