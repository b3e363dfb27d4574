//! Drawing the model: the layout of the three panes and `render`, which has no side effects
//! and touches only what is visible. The pane modules draw one pane each; `theme` holds styles.

pub mod history;
pub mod input;
pub mod peers;
pub mod theme;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{Model, texts};

/// Below this width the status pane gives its room to the history.
const SIDE_PANE_MIN_TERMINAL_COLS: u16 = 64;

/// Rows of the input box (one line of text between borders).
const INPUT_ROWS: u16 = 3;

/// The smallest terminal the panes fit in: a line of history and the input box, each with
/// its borders, and room for a few words.
const MIN_TERMINAL: (u16, u16) = (20, INPUT_ROWS + 3);

/// Where each pane goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panes {
    /// Message history (with border).
    pub history: Rect,
    /// Peer status (with border), when there is room.
    pub status: Option<Rect>,
    /// Input box (with border).
    pub input: Rect,
}

/// Splits the terminal into the panes.
pub fn layout(area: Rect) -> Panes {
    let [top, input] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(INPUT_ROWS)]).areas(area);
    if area.width < SIDE_PANE_MIN_TERMINAL_COLS {
        return Panes { history: top, status: None, input };
    }
    let side = (area.width / 3).clamp(30, 42);
    let [history, status] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(side)]).areas(top);
    Panes { history, status: Some(status), input }
}

/// Text rows inside the history pane for a terminal of `size` (columns, rows).
pub fn history_height(size: (u16, u16)) -> u16 {
    layout(Rect::new(0, 0, size.0, size.1)).history.height.saturating_sub(2)
}

/// Draws the whole screen (or, in a terminal too small for it, says so).
pub fn render(model: &Model, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_TERMINAL.0 || area.height < MIN_TERMINAL.1 {
        let text = texts::too_small((area.width, area.height), MIN_TERMINAL);
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
    } else {
        let panes = layout(area);
        history::render(model, frame, panes.history);
        if let Some(status) = panes.status {
            peers::render(model, frame, status);
        }
        input::render(model, frame, panes.input);
    }
    if !model.colour {
        without_colour(frame.buffer_mut());
    }
}

/// Takes the colours out of a drawn screen (NO_COLOR): what stood out by its background —
/// search matches, the "↓ new" marker — stands out reversed.
fn without_colour(buffer: &mut Buffer) {
    for cell in &mut buffer.content {
        if cell.bg != Color::Reset {
            cell.modifier.insert(Modifier::REVERSED);
        }
        cell.fg = Color::Reset;
        cell.bg = Color::Reset;
    }
}

#[cfg(test)]
pub(crate) mod tests;
