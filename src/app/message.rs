//! The two enums at the app's edges: `Message` (everything that can happen to the app) and
//! `Effect` (everything the app asks the runner to do).

use chrono::{DateTime, Local};

use super::keymap::Action;
use crate::history::{Found, Page, Record};
use crate::proto::{NetCommand, NetEvent};

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
    /// The conversation log is written again after failing: what waited is in it now.
    LogRecovered,
    /// A page of the log asked for with `Effect::Load` (or why it could not be read).
    Loaded(Load, Result<Page, String>),
    /// What `Effect::Search` found (or why the log could not be searched).
    Found(String, Result<Found, String>),
    /// Leave (SIGTERM, end of input).
    Quit,
}

/// What `update` asks the runner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Hand a command to the network actor.
    Net(NetCommand),
    /// Append a record to the conversation log; then, once it is written (and never before),
    /// tell the network so: an incoming message is then acknowledged, one of ours may leave.
    Log {
        /// The record.
        record: Record,
        /// What to tell the network once it is written (`Persisted` or `Logged`), if anything.
        confirm: Option<NetCommand>,
    },
    /// Read a page of the conversation log; answered with `Message::Loaded`.
    Load(Load),
    /// Search the whole conversation log for a text; answered with `Message::Found`.
    Search(String),
    /// Stop the runner (after the network said it closed).
    Exit,
    /// Stop the program until the shell resumes it (Ctrl-Z); the terminal's owner does it.
    Suspend,
}

/// Which page of the log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Records just before this offset.
    Older(u64),
    /// Records from this offset on.
    Newer(u64),
    /// Records on both sides of this offset (a search match), replacing the window.
    Around(u64),
    /// The first records of the log, replacing the window.
    First,
    /// The last records of the log, replacing the window.
    Latest,
}
