//! The two enums at the app's edges: `Message` (everything that can happen to the app) and
//! `Effect` (everything the app asks the runner to do).

use chrono::{DateTime, Local};

use super::keymap::Action;
use crate::history::Record;
use crate::proto::{NetCommand, NetEvent, Receipt};

/// Input to `update`.
#[derive(Debug, Clone)]
pub enum Message {
    /// A mapped key.
    Key(Action),
    /// Text pasted into the terminal (bracketed paste).
    Paste(String),
    /// Mouse wheel: positive scrolls back in history, negative forward (rows).
    Scroll(i32),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    /// The clock moved on (drives "seen 3s ago").
    Tick(DateTime<Local>),
    /// A line submitted outside the keyboard path (headless stdin).
    Submit(String),
    /// Something from the network actor, stamped with its arrival time.
    Net(NetEvent, DateTime<Local>),
    /// An effect could not be carried out; shown to the user.
    Failed(String),
    /// Leave (SIGTERM, end of input).
    Quit,
}

/// What `update` asks the runner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Hand a command to the network actor.
    Net(NetCommand),
    /// Append a record to the conversation log; then, if it succeeded, confirm the message to
    /// the network so it is acknowledged.
    Log {
        /// The record.
        record: Record,
        /// The incoming message it holds, if any.
        confirm: Option<Receipt>,
    },
    /// Stop the runner (after the network said it closed).
    Exit,
}
