//! The history pane: turns entries into styled, wrapped rows (unicode-correct: by grapheme and
//! display width, breaking at spaces when it can), highlights search matches and wraps only the
//! entries in view (the others are counted by their remembered row counts). Also the row
//! arithmetic `update` needs to keep a scrolled-back view still.

use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::theme;
use crate::app::model::{Entry, EntryKind};
use crate::app::{Model, texts};
use crate::history::Delivery;
use crate::text::{escapes, matches_ignoring_case, sanitize, sanitize_lines};

/// What is highlighted in a message's text: the search term (`current`: this entry is the
/// match in view) and our own name, where someone else says it. Highlighting never changes
/// where rows break, so rows are counted without it (`Marks::default()`).
#[derive(Debug, Clone, Copy, Default)]
struct Marks<'a> {
    term: Option<&'a str>,
    current: bool,
    me: Option<&'a str>,
}

/// The styled pieces of one entry, before wrapping, and the column its continuation rows start
/// at. Untrusted text is neutralised here; what `marks` asks for is highlighted.
fn pieces(entry: &Entry, marks: Marks<'_>) -> (Vec<(String, Style)>, usize) {
    let stamp = entry.at.format("[%H:%M:%S] ").to_string();
    let mut hang = stamp.width();
    let mut out = vec![(stamp, theme::time())];
    match &entry.kind {
        EntryKind::Chat { from, text, own, delivery, .. } => {
            let name_style = if *own { theme::own() } else { theme::peer(from) };
            let from = sanitize(from);
            // A message's rows line up under its first word.
            hang += from.width() + 2;
            push_dimming_escapes(&mut out, &from, name_style);
            out.push((": ".to_owned(), Style::new()));
            let text = sanitize_lines(text);
            let found =
                marks.term.map(|t| matches_ignoring_case(&text, &sanitize(t))).unwrap_or_default();
            let mark = if marks.current { theme::current_match() } else { theme::found() };
            let me = marks.me.filter(|_| !*own);
            let named = me.map(|me| mentions(&text, &sanitize(me))).unwrap_or_default();
            push_highlighted(&mut out, &text, &[(&named, theme::mention()), (&found, mark)]);
            match delivery {
                Some(Delivery::Queued) => {
                    out.push((" ⧗ waiting for a peer".to_owned(), theme::delivery()));
                }
                Some(Delivery::Sent) => out.push((" … sending".to_owned(), theme::delivery())),
                Some(Delivery::Delivered) => out.push((" ✓".to_owned(), theme::delivery())),
                Some(Delivery::Unsent) => out.push((" ✗ not sent".to_owned(), theme::offline())),
                None => {}
            }
        }
        EntryKind::System(text) => {
            let text = sanitize(text);
            hang += 2 + hanging_indent(&text);
            out.push((format!("— {text}"), theme::system()));
        }
        EntryKind::Unread => out.push((texts::UNREAD_SINCE.to_owned(), theme::unread())),
    }
    (out, hang)
}

/// Where `text` names `name` as a word (ignoring case): "Ann," and "ANN!" name ann, "annoying"
/// and "joanna" do not.
fn mentions(text: &str, name: &str) -> Vec<Range<usize>> {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    matches_ignoring_case(text, name)
        .into_iter()
        .filter(|r| {
            !word(text[..r.start].chars().next_back()) && !word(text[r.end..].chars().next())
        })
        .collect()
}

/// Pushes `text` with its highlights: each layer's ranges patched with its style, in order,
/// so a later layer wins where they overlap (a search match stays a search match where it is
/// our name, and keeps the name's weight).
fn push_highlighted(
    out: &mut Vec<(String, Style)>,
    text: &str,
    layers: &[(&[Range<usize>], Style)],
) {
    let mut cuts: Vec<usize> = layers
        .iter()
        .flat_map(|(ranges, _)| ranges.iter().flat_map(|r| [r.start, r.end]))
        .chain([0, text.len()])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    for piece in cuts.windows(2) {
        let (start, end) = (piece[0], piece[1]);
        let style = layers
            .iter()
            .filter(|(ranges, _)| ranges.iter().any(|r| r.start <= start && end <= r.end))
            .fold(Style::new(), |style, (_, layer)| style.patch(*layer));
        push_dimming_escapes(out, &text[start..end], style);
    }
}

/// Where the rows of a wrapped line of text go on: after its label, so that wrapped tables and
/// facts stay readable — after the last gap of two or more spaces in its first half
/// ("  /who        peers: online…" goes on under "peers"), or, in an indented line, after
/// its first word ("   via 203.0.113.5:4000" under the address); prose goes on where it began.
pub fn hanging_indent(text: &str) -> usize {
    let half = text.width() / 2;
    let mut column = 0;
    let mut spaces = 0;
    let mut seen_text = false;
    let mut after_gap = None;
    let mut after_first_word = None;
    for g in text.graphemes(true) {
        if g == " " {
            spaces += 1;
        } else {
            if seen_text && spaces >= 2 && column <= half {
                after_gap = Some(column);
            }
            if seen_text && spaces >= 1 && after_first_word.is_none() {
                after_first_word = Some(column);
            }
            seen_text = true;
            spaces = 0;
        }
        column += g.width();
    }
    let indented = text.starts_with(' ');
    after_gap.or(after_first_word.filter(|_| indented)).unwrap_or(0)
}

/// Pushes `text` in `style`, its escapes of invisible characters ("⟨U+200B⟩") dimmed, so they
/// read as marks, not as text someone typed.
fn push_dimming_escapes(out: &mut Vec<(String, Style)>, text: &str, style: Style) {
    let mut done = 0;
    for range in escapes(text) {
        out.push((text[done..range.start].to_owned(), style));
        out.push((text[range.clone()].to_owned(), style.patch(theme::invisible())));
        done = range.end;
    }
    out.push((text[done..].to_owned(), style));
}

/// The grapheme clusters of `text`. Sanitised ASCII (no CR, no controls) has one per byte, so
/// it skips the segmentation tables: most chat text takes the fast way.
fn graphemes(text: &str) -> Box<dyn Iterator<Item = &str> + '_> {
    if text.is_ascii() {
        Box::new((0..text.len()).map(move |i| &text[i..=i]))
    } else {
        Box::new(text.graphemes(true))
    }
}

/// Columns a hanging indent must leave for text, or the rows start at the left edge.
const MIN_HANGING_ROOM: usize = 16;

/// Wraps styled pieces to `width` columns, breaking after a space where possible; rows after
/// the first start `hang` columns in (unless that leaves too little room).
pub fn wrap(pieces: &[(String, Style)], width: usize, hang: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = " ".repeat(if hang + MIN_HANGING_ROOM <= width { hang } else { 0 });
    // A continuation row starts with the indent (one piece), then what it carries.
    let start = || match indent.as_str() {
        "" => Vec::new(),
        indent => vec![(indent, Style::new())],
    };
    let lead = usize::from(!indent.is_empty());
    let mut rows: Vec<Vec<(&str, Style)>> = Vec::new();
    let mut row: Vec<(&str, Style)> = Vec::new();
    let mut row_width = 0;
    let mut break_at: Option<usize> = None;
    for (text, style) in pieces {
        for g in graphemes(text) {
            if g == "\n" {
                rows.push(std::mem::replace(&mut row, start()));
                row_width = indent.len();
                break_at = None;
                continue;
            }
            let w = g.width();
            let head = if rows.is_empty() { 0 } else { lead };
            if row_width + w > width && row.len() > head {
                let mut carried = start();
                if let Some(at) = break_at.filter(|at| *at < row.len()) {
                    carried.extend(row.split_off(at));
                }
                rows.push(std::mem::replace(&mut row, carried));
                row_width = row.iter().map(|(g, _)| g.width()).sum();
                break_at = None;
                if g == " " && row.len() == lead {
                    continue;
                }
            }
            row.push((g, *style));
            row_width += w;
            if g == " " {
                break_at = Some(row.len());
            }
        }
    }
    rows.push(row);
    rows.into_iter().map(merge).collect()
}

/// Joins runs of graphemes with one style into spans.
fn merge(row: Vec<(&str, Style)>) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut current = String::new();
    let mut style = None;
    for (g, s) in row {
        if style.is_some_and(|st| st != s) {
            spans.push(Span::styled(std::mem::take(&mut current), style.unwrap_or_default()));
        }
        style = Some(s);
        current.push_str(g);
    }
    if !current.is_empty() {
        spans.push(Span::styled(current, style.unwrap_or_default()));
    }
    Line::from(spans)
}

/// Text columns inside the history pane.
fn inner_width(model: &Model) -> usize {
    usize::from(super::panes(model).history.width.saturating_sub(2))
}

/// Rows an entry takes at `width` (highlighting never changes where rows break).
fn rows_at(entry: &Entry, width: usize) -> usize {
    entry.rows.get(width, || {
        let (pieces, hang) = pieces(entry, Marks::default());
        wrap(&pieces, width, hang).len()
    })
}

/// Rows one entry takes at the model's current size.
pub fn entry_rows(entry: &Entry, model: &Model) -> usize {
    rows_at(entry, inner_width(model))
}

/// Rows the whole loaded window takes.
pub fn total_rows(model: &Model) -> usize {
    let width = inner_width(model);
    model.entries.iter().map(|e| rows_at(e, width)).sum()
}

/// How far back the view can scroll: all rows minus one screen.
pub fn max_scroll(model: &Model) -> usize {
    total_rows(model).saturating_sub(usize::from(super::history_height(model)))
}

/// Rows of the window counted from its newest end, stopping once there are `limit`: the
/// total when it is smaller. Costs what the rows near the view cost, not the whole window.
pub fn rows_up_to(model: &Model, limit: usize) -> usize {
    let width = inner_width(model);
    let mut rows = 0;
    for entry in model.entries.iter().rev() {
        if rows >= limit {
            break;
        }
        rows += rows_at(entry, width);
    }
    rows
}

/// Draws the pane: entries below the view are skipped by their row counts; only entries that
/// reach the visible rows are wrapped.
pub fn render(model: &Model, frame: &mut Frame, area: Rect) {
    let title = format!(" p2pchat · {} ", sanitize(&model.conversation));
    let block = Block::bordered().title(title).border_style(theme::border());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = usize::from(inner.height);
    let width = usize::from(inner.width);
    let term = model.search.as_ref().map(|s| s.term.as_str());
    let current = model.search.as_ref().and_then(|s| s.current_offset());
    let me = Some(model.me.name.as_str());
    // Rows below the view's bottom edge that belong to the entry straddling it.
    let mut below = model.scroll;
    let mut rows: Vec<Line<'static>> = Vec::new();
    for entry in model.entries.iter().rev() {
        if rows.len() >= height {
            break;
        }
        let count = rows_at(entry, width);
        if below >= count {
            below -= count;
            continue;
        }
        let is_current = current.is_some() && entry.offset() == current;
        let (pieces, hang) = pieces(entry, Marks { term, current: is_current, me });
        let mut lines = wrap(&pieces, width, hang);
        lines.truncate(count - below);
        below = 0;
        lines.extend(rows);
        rows = lines;
    }
    let visible = rows.split_off(rows.len().saturating_sub(height));
    let buffer = frame.buffer_mut();
    for (y, line) in (inner.y..).zip(&visible) {
        buffer.set_line(inner.x, y, line, inner.width);
    }
    if (model.scroll > 0 || model.paging.newer.is_some()) && inner.height > 0 {
        let text = if model.unread > 0 {
            format!(" ↓ {} new — End to jump ", model.unread)
        } else {
            " ↓ scrolled back — End to return ".to_owned()
        };
        let bottom = Rect::new(inner.x, inner.y + inner.height - 1, inner.width, 1);
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme::marker())).alignment(Alignment::Right),
            bottom,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    #[test]
    fn wraps_at_spaces_and_by_display_width() {
        let p = vec![("hello wide world".to_owned(), Style::new())];
        assert_eq!(texts(&wrap(&p, 11, 0)), vec!["hello wide ", "world"]);
        let p = vec![("世界世界世界".to_owned(), Style::new())];
        assert_eq!(texts(&wrap(&p, 5, 0)), vec!["世界", "世界", "世界"]);
        let p = vec![("👋🏽👋🏽".to_owned(), Style::new())];
        assert_eq!(texts(&wrap(&p, 2, 0)), vec!["👋🏽", "👋🏽"]);
        let p = vec![("abcdefghij".to_owned(), Style::new())];
        assert_eq!(texts(&wrap(&p, 4, 0)), vec!["abcd", "efgh", "ij"]);
        assert_eq!(texts(&wrap(&[], 4, 0)), vec![""]);
    }

    #[test]
    fn rows_after_the_first_hang_under_the_label() {
        let p = vec![("  /who   peers: online or offline, endpoint".to_owned(), Style::new())];
        assert_eq!(hanging_indent(&p[0].0), 9);
        assert_eq!(
            texts(&wrap(&p, 27, 9)),
            vec!["  /who   peers: online or ", "         offline, endpoint"]
        );
        // New lines of a message hang too; a hang wider than half the row is dropped.
        let p = vec![("ab: one\ntwo".to_owned(), Style::new())];
        assert_eq!(texts(&wrap(&p, 20, 4)), vec!["ab: one", "    two"]);
        assert_eq!(texts(&wrap(&p, 19, 4)), vec!["ab: one", "two"]);
        assert_eq!(texts(&wrap(&p, 6, 4)), vec!["ab: ", "one", "two"]);
        assert_eq!(hanging_indent("   via 203.0.113.5:4000"), 7);
        assert_eq!(hanging_indent(" local  0.0.0.0:40000"), 8);
        assert_eq!(hanging_indent("bob is online (via 198.51.100.2:5000)"), 0);
        assert_eq!(hanging_indent("  /help   commands and keys"), 10);
    }

    #[test]
    fn styles_survive_wrapping() {
        let bold = theme::own();
        let p = vec![("ab".to_owned(), bold), ("cd ef".to_owned(), Style::new())];
        let lines = wrap(&p, 4, 0);
        assert_eq!(texts(&lines), vec!["abcd", "ef"]);
        assert_eq!(lines[0].spans[0].style, bold);
        assert_eq!(lines[0].spans[1].style, Style::new());
    }
}
