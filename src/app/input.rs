//! The input line: text plus a cursor that always sits on a grapheme boundary, so editing
//! never splits an emoji or a combining sequence; and the recall list of sent lines.

use std::cell::Cell;

use unicode_segmentation::UnicodeSegmentation;

/// The line being typed (it may hold new lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    text: String,
    cursor: usize,
    /// Where the box's first shown row starts (a byte offset) and the width it was wrapped
    /// at: the view follows the cursor from there, so a keystroke wraps only the rows in
    /// view, however long the text. Kept by the view; reset when the text is replaced.
    pub view: Cell<(usize, usize)>,
}

impl Input {
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Cursor position as a byte offset into `text`.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replaces the text, cursor at the end.
    pub fn set(&mut self, text: String) {
        self.cursor = text.len();
        self.text = text;
        self.view.take();
    }

    /// Takes the text out, leaving the line empty.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        self.view.take();
        std::mem::take(&mut self.text)
    }

    /// Inserts at the cursor and moves past the insertion.
    pub fn insert(&mut self, s: &str) {
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
    }

    /// Deletes the grapheme before the cursor.
    pub fn backspace(&mut self) {
        if let Some(start) = self.prev_boundary() {
            self.text.replace_range(start..self.cursor, "");
            self.cursor = start;
        }
    }

    /// Deletes the grapheme at the cursor.
    pub fn delete(&mut self) {
        if let Some(end) = self.next_boundary() {
            self.text.replace_range(self.cursor..end, "");
        }
    }

    /// Moves one grapheme left.
    pub fn left(&mut self) {
        if let Some(start) = self.prev_boundary() {
            self.cursor = start;
        }
    }

    /// Moves one grapheme right.
    pub fn right(&mut self) {
        if let Some(end) = self.next_boundary() {
            self.cursor = end;
        }
    }

    /// Moves to the start of the line.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// Moves to the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Deletes the word before the cursor (and the spaces after it), like readline's Ctrl-W.
    pub fn delete_word_back(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed
            .split_word_bound_indices()
            .rev()
            .find(|(_, w)| !w.trim().is_empty())
            .map_or(0, |(i, _)| i);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor].grapheme_indices(true).next_back().map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..].graphemes(true).next().map(|g| self.cursor + g.len())
    }
}

/// Sent lines, recalled with Up/Down like a shell history; the unsent draft is kept aside.
#[derive(Debug, Clone, Default)]
pub struct Recall {
    lines: Vec<String>,
    position: Option<usize>,
    draft: String,
}

/// Lines remembered for recall.
const RECALL_CAPACITY: usize = 500;

impl Recall {
    /// Remembers a sent line and ends any browsing.
    pub fn push(&mut self, line: String) {
        if self.lines.last() != Some(&line) {
            self.lines.push(line);
            if self.lines.len() > RECALL_CAPACITY {
                self.lines.remove(0);
            }
        }
        self.position = None;
    }

    /// One line further back, given what is typed now; `None` at the oldest.
    pub fn back(&mut self, current: &str) -> Option<String> {
        let next = match self.position {
            None if self.lines.is_empty() => return None,
            None => {
                self.draft = current.to_owned();
                self.lines.len() - 1
            }
            Some(0) => return None,
            Some(p) => p - 1,
        };
        self.position = Some(next);
        Some(self.lines[next].clone())
    }

    /// One line forward; past the newest, the draft comes back. `None` when not browsing.
    pub fn forward(&mut self) -> Option<String> {
        let p = self.position?;
        if p + 1 < self.lines.len() {
            self.position = Some(p + 1);
            Some(self.lines[p + 1].clone())
        } else {
            self.position = None;
            Some(std::mem::take(&mut self.draft))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_by_grapheme() {
        let mut i = Input::default();
        i.insert("héllo 👋🏽 e\u{301}!");
        i.backspace();
        assert_eq!(i.text(), "héllo 👋🏽 e\u{301}");
        i.backspace(); // the whole e + combining accent
        assert_eq!(i.text(), "héllo 👋🏽 ");
        i.left();
        i.left(); // over the skin-toned emoji in one step
        assert_eq!(&i.text()[i.cursor()..], "👋🏽 ");
        i.delete();
        assert_eq!(i.text(), "héllo  ");
        i.home();
        i.right();
        i.right();
        i.insert("X");
        assert_eq!(i.text(), "héXllo  ");
        i.end();
        i.delete(); // nothing after the cursor: no-op
        assert_eq!(i.take(), "héXllo  ");
        assert_eq!((i.text(), i.cursor()), ("", 0));
        i.backspace();
        i.left();
    }

    #[test]
    fn delete_word_back_like_readline() {
        let mut i = Input::default();
        i.insert("hello big world  ");
        i.delete_word_back();
        assert_eq!(i.text(), "hello big ");
        i.delete_word_back();
        i.delete_word_back();
        assert_eq!(i.text(), "");
    }

    #[test]
    fn recall_walks_back_and_restores_the_draft() {
        let mut r = Recall::default();
        assert_eq!(r.back("x"), None);
        r.push("one".into());
        r.push("two".into());
        assert_eq!(r.back("draft").as_deref(), Some("two"));
        assert_eq!(r.back("two").as_deref(), Some("one"));
        assert_eq!(r.back("one"), None);
        assert_eq!(r.forward().as_deref(), Some("two"));
        assert_eq!(r.forward().as_deref(), Some("draft"));
        assert_eq!(r.forward(), None);
    }
}
