//! Drawing the model: the layout of the three panes and `render`, which has no side effects
//! and touches only what is visible. The pane modules draw one pane each; `theme` holds styles.

pub mod conversations;
pub mod history;
pub mod input;
pub mod peers;
pub mod theme;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::messenger::Messenger;
use crate::app::{Model, texts};

/// Below this width the status pane gives its room to the history.
const SIDE_PANE_MIN_TERMINAL_COLS: u16 = 64;

/// The smallest terminal the panes fit in: a line of history and a line of input, each with
/// its borders, and room for a few words.
const MIN_TERMINAL: (u16, u16) = (20, 6);

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

/// Splits the terminal into the panes, with `input_rows` rows of text in the input box.
pub fn layout(area: Rect, input_rows: u16) -> Panes {
    let input_height = input_rows.saturating_add(2).min(area.height.saturating_sub(3)).max(3);
    let [top, input] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(input_height)]).areas(area);
    if area.width < SIDE_PANE_MIN_TERMINAL_COLS {
        return Panes { history: top, status: None, input };
    }
    let side = (area.width / 3).clamp(30, 42);
    let [history, status] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(side)]).areas(top);
    Panes { history, status: Some(status), input }
}

/// The panes for the model's terminal size and input.
pub fn panes(model: &Model) -> Panes {
    let (columns, rows) = model.size;
    layout(Rect::new(0, 0, columns, rows), input::text_rows(&model.input, columns))
}

/// Text rows inside the history pane.
pub fn history_height(model: &Model) -> u16 {
    panes(model).history.height.saturating_sub(2)
}

/// Draws the whole screen (or, in a terminal too small for it, says so).
pub fn render(model: &Model, frame: &mut Frame) {
    let area = frame.area();
    render_chat(model, frame, area);
    if !model.colour {
        without_colour(frame.buffer_mut());
    }
}

/// Draws a conversation's panes (history, status, input) in `area`.
fn render_chat(model: &Model, frame: &mut Frame, area: Rect) {
    if area.width < MIN_TERMINAL.0 || area.height < MIN_TERMINAL.1 {
        let text = texts::too_small((area.width, area.height), MIN_TERMINAL);
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
    } else {
        let panes = layout(area, input::text_rows(&model.input, area.width));
        history::render(model, frame, panes.history);
        if let Some(status) = panes.status {
            peers::render(model, frame, status);
        }
        input::render(model, frame, panes.input);
    }
}

/// Columns the messenger's conversations pane takes: none while hidden (Ctrl-B) or when the
/// terminal is too narrow for it beside a conversation.
pub fn conversations_width(messenger: &Messenger) -> u16 {
    let fits = messenger.size.0 >= conversations::PANE_MIN_TERMINAL_COLS;
    if messenger.pane_hidden || !fits { 0 } else { conversations::PANE_COLS }
}

/// Draws the messenger: the conversations pane, then the conversation shown in the rest.
pub fn render_messenger(messenger: &Messenger, frame: &mut Frame) {
    let area = frame.area();
    let pane = conversations_width(messenger).min(area.width);
    let [list, rest] =
        Layout::horizontal([Constraint::Length(pane), Constraint::Min(0)]).areas(area);
    if pane > 0 {
        conversations::render(messenger, frame, list);
    }
    match messenger.screen() {
        Some(model) => {
            render_chat(model, frame, rest);
            if pane == 0 {
                unread_elsewhere(messenger, model, frame, rest);
            }
        }
        None => {
            let text = texts::NO_CONVERSATION_YET;
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), rest);
        }
    }
    if messenger.screen().is_some_and(|m| !m.colour) {
        without_colour(frame.buffer_mut());
    }
}

/// With the conversations pane hidden or folded away: how many messages wait in the other
/// conversations, on the history pane's top border at its right end.
fn unread_elsewhere(messenger: &Messenger, model: &Model, frame: &mut Frame, area: Rect) {
    let unread: usize = messenger
        .order()
        .into_iter()
        .filter(|&i| i != messenger.selected)
        .map(|i| messenger.conversations[i].unread)
        .sum();
    if unread == 0 || area.width < MIN_TERMINAL.0 || area.height < MIN_TERMINAL.1 {
        return;
    }
    let history = layout(area, input::text_rows(&model.input, area.width)).history;
    let text = texts::unread_elsewhere(unread);
    let width =
        u16::try_from(unicode_width::UnicodeWidthStr::width(text.as_str())).unwrap_or(u16::MAX);
    // Leave the corner and the start of the title alone.
    if width.saturating_add(24) > history.width {
        return;
    }
    let x = history.right().saturating_sub(width + 2);
    frame.buffer_mut().set_string(x, history.y, text, theme::unread());
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

#[cfg(test)]
mod messenger_tests;
