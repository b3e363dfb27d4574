//! The application state as plain data: who we are, the peers, the visible history, the input
//! line, scroll position and the clock. No channels, no terminal, no IO.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Local};

use super::input::{Input, Recall};
use super::texts;
use crate::history::{Delivery, Direction, Entry as LogEntry, Record};
use crate::proto::{DropCounts, PathKind, PeerId};

/// What we know of our public endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Public {
    /// No STUN server configured (direct mode without `--stun`).
    NotAsked,
    /// Waiting for the STUN server's answer.
    Asking(SocketAddr),
    /// Learnt.
    Known(SocketAddr),
    /// The STUN server did not answer.
    Failed(SocketAddr),
}

/// Our standing with the rendezvous server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// Registration sent, no answer yet.
    Registering,
    /// Registered; peers are introduced as they come.
    Registered,
    /// No answer for a while; retrying.
    Silent,
    /// Refused, with the server's reason.
    Refused(String),
}

/// The rendezvous server, in room mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    /// Its address.
    pub addr: SocketAddr,
    /// Our room.
    pub room: String,
    /// How it is going.
    pub state: ServerState,
}

/// Ourselves, for the status pane.
#[derive(Debug, Clone)]
pub struct Me {
    /// Display name.
    pub name: String,
    /// The socket's local address.
    pub local: SocketAddr,
    /// Public endpoint.
    pub public: Public,
    /// Our NAT type, once detected.
    pub nat: Option<String>,
    /// The server, in room mode.
    pub server: Option<ServerView>,
}

/// A peer, for the status pane and `/who`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    /// Session-local id.
    pub id: PeerId,
    /// Display name.
    pub name: String,
    /// Reachable now?
    pub online: bool,
    /// When we last heard from it.
    pub last_seen: Option<DateTime<Local>>,
    /// The endpoint in use.
    pub addr: Option<SocketAddr>,
    /// What kind of path that is.
    pub path: Option<PathKind>,
    /// Its NAT type, when it told us.
    pub nat: Option<String>,
    /// Latest round-trip time.
    pub rtt: Option<Duration>,
}

/// One item of the visible history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it happened (local time).
    pub at: DateTime<Local>,
    /// What it is.
    pub kind: EntryKind,
}

/// The kinds of history item.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryKind {
    /// A chat message.
    Chat {
        /// Sender.
        from: String,
        /// Text (unsanitised; the view neutralises it).
        text: String,
        /// Ours?
        own: bool,
        /// Message id, to update delivery in place.
        id: Option<String>,
        /// For ours: what became of it.
        delivery: Option<Delivery>,
    },
    /// A line from p2pchat itself (presence, notices, command output).
    System(String),
}

impl Entry {
    /// A system line at `at`.
    pub fn system(at: DateTime<Local>, text: impl Into<String>) -> Self {
        Self { at, kind: EntryKind::System(text.into()) }
    }

    /// The history item for a log record (delivery confirmations change items; they are not
    /// items of their own).
    pub fn from_record(record: &Record) -> Option<Self> {
        let at = record.at.with_timezone(&Local);
        let kind = match &record.entry {
            LogEntry::Message { dir, from, text, id, state, reason, .. } => match (state, reason) {
                (Some(Delivery::Unsent), Some(reason)) => {
                    EntryKind::System(texts::not_sent(text, reason))
                }
                _ => EntryKind::Chat {
                    from: from.clone(),
                    text: text.clone(),
                    own: *dir == Direction::Out,
                    id: id.clone(),
                    delivery: *state,
                },
            },
            LogEntry::Presence { peer, online, addr, reason } => EntryKind::System(
                texts::presence(peer, *online, addr.as_deref(), reason.as_deref()),
            ),
            LogEntry::Delivered { .. } => return None,
        };
        Some(Self { at, kind })
    }
}

/// Sets the delivery state of our message `id`, newest first; false when it is not shown.
pub fn set_delivery(entries: &mut [Entry], id: &str, state: Delivery) -> bool {
    let found = entries.iter_mut().rev().find_map(|e| match &mut e.kind {
        EntryKind::Chat { id: Some(eid), delivery, .. } if eid == id => Some(delivery),
        _ => None,
    });
    match found {
        Some(delivery) => {
            *delivery = Some(state);
            true
        }
        None => false,
    }
}

/// The whole application state.
#[derive(Debug, Clone)]
pub struct Model {
    /// Ourselves.
    pub me: Me,
    /// The conversation's title (room or peer address).
    pub conversation: String,
    /// Known peers.
    pub peers: Vec<PeerView>,
    /// History items, oldest first.
    pub entries: Vec<Entry>,
    /// Rows scrolled back from the newest (0 = following new messages).
    pub scroll: usize,
    /// Messages that arrived while scrolled back.
    pub unread: usize,
    /// The line being typed.
    pub input: Input,
    /// Sent lines for Up/Down.
    pub recall: Recall,
    /// The current time.
    pub now: DateTime<Local>,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// Datagrams dropped so far.
    pub drops: DropCounts,
    /// The log could not be written (told once).
    pub log_failed: bool,
    /// `/quit` was given; waiting for the network to close.
    pub quitting: bool,
    /// Something visible changed since the last draw.
    pub dirty: bool,
}

impl Model {
    /// A fresh model: `history` is what the log already holds for this conversation.
    pub fn new(me: Me, conversation: String, history: &[Record], now: DateTime<Local>) -> Self {
        let mut entries: Vec<Entry> = Vec::new();
        for record in history {
            match &record.entry {
                LogEntry::Delivered { id } => {
                    set_delivery(&mut entries, id, Delivery::Delivered);
                }
                _ => entries.extend(Entry::from_record(record)),
            }
        }
        if !entries.is_empty() {
            entries.push(Entry::system(now, texts::history_loaded(entries.len())));
        }
        Self {
            me,
            conversation,
            peers: Vec::new(),
            entries,
            scroll: 0,
            unread: 0,
            input: Input::default(),
            recall: Recall::default(),
            now,
            size: (80, 24),
            drops: DropCounts::default(),
            log_failed: false,
            quitting: false,
            dirty: true,
        }
    }

    /// The peer with this id, if known.
    pub fn peer_mut(&mut self, id: PeerId) -> Option<&mut PeerView> {
        self.peers.iter_mut().find(|p| p.id == id)
    }
}
