//! The application state as plain data: who we are, the peers, the loaded window of history
//! and where it lies in the log, the search, the input line, scroll position and the clock.
//! No channels, no terminal, no IO.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Local};

use super::input::{Input, Recall};
use super::texts;
use crate::consts::{HISTORY_LATE_DELIVERIES, HISTORY_UNREADABLE_REMEMBERED};
use crate::history::{Delivery, Direction, Entry as LogEntry, Page, Record};
use crate::identity::Contact;
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
    /// Where it came from.
    pub origin: Origin,
    /// Rows it wraps to, remembered for the last width asked.
    pub rows: RowCache,
}

/// Where a history item came from, which says whether it can be read again from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from the log; its line starts at this byte offset.
    Log(u64),
    /// Written to the log by this run (after `Paging::live_from`).
    Live,
    /// A notice from p2pchat itself, not in the log.
    Notice,
}

/// A remembered (width, rows) for an entry. Not part of the entry's value: equal entries
/// compare equal whatever they remember.
#[derive(Clone, Default)]
pub struct RowCache(Cell<Option<(usize, usize)>>);

impl RowCache {
    /// The rows at `width`, computing them with `wrap` only when the width changed.
    pub fn get(&self, width: usize, wrap: impl FnOnce() -> usize) -> usize {
        match self.0.get() {
            Some((w, rows)) if w == width => rows,
            _ => {
                let rows = wrap();
                self.0.set(Some((width, rows)));
                rows
            }
        }
    }

    /// Forgets (the entry's text changed).
    pub fn clear(&self) {
        self.0.set(None);
    }
}

impl PartialEq for RowCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for RowCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RowCache")
    }
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
    /// The messenger's line above the first message that came while the user was in another
    /// conversation ("unread since you left"); never in the log.
    Unread,
}

impl Entry {
    /// A system line at `at` (a notice, not in the log).
    pub fn system(at: DateTime<Local>, text: impl Into<String>) -> Self {
        Self::new(at, EntryKind::System(text.into()), Origin::Notice)
    }

    /// An item of any kind.
    pub fn new(at: DateTime<Local>, kind: EntryKind, origin: Origin) -> Self {
        Self { at, kind, origin, rows: RowCache::default() }
    }

    /// The log offset it was read from, if it was.
    pub fn offset(&self) -> Option<u64> {
        match self.origin {
            Origin::Log(offset) => Some(offset),
            Origin::Live | Origin::Notice => None,
        }
    }

    /// The history item for a log record (delivery confirmations change items; they are not
    /// items of their own), as written by this run.
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
        Some(Self::new(at, kind, Origin::Live))
    }
}

/// Sets the delivery state of our message `id`, newest first; false when it is not shown.
pub fn set_delivery(entries: &mut [Entry], id: &str, state: Delivery) -> bool {
    let found = entries.iter_mut().rev().find_map(|e| match &mut e.kind {
        EntryKind::Chat { id: Some(eid), delivery, .. } if eid == id => Some((delivery, &e.rows)),
        _ => None,
    });
    match found {
        Some((delivery, rows)) => {
            *delivery = Some(state);
            rows.clear();
            true
        }
        None => false,
    }
}

/// The peer's proven identity, for `/verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    /// Their name.
    pub peer: String,
    /// The number both screens show.
    pub safety_number: String,
}

/// Where the loaded window of history lies in the log, and what is waiting to join it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paging {
    /// Older records exist before this offset (the window's first line).
    pub older: Option<u64>,
    /// Newer records exist from this offset: the window does not reach the end of the log, and
    /// new items go to the log without joining it.
    pub newer: Option<u64>,
    /// Records this run writes start at or after this offset.
    pub live_from: u64,
    /// A page was asked for and has not arrived.
    pub loading: bool,
    /// Deliveries read from newer pages whose message is older than the window.
    pub late: HashMap<String, Delivery>,
    /// Notices that came while the window was away from the newest items.
    pub parked: Vec<Entry>,
    /// Offsets of the unreadable lines met so far (each counted once however often read).
    pub unreadable: BTreeSet<u64>,
}

impl Paging {
    /// Counts the page's unreadable lines (once each, up to a bound).
    pub fn note_unreadable(&mut self, page: &Page) {
        for &offset in &page.unreadable {
            if self.unreadable.len() < HISTORY_UNREADABLE_REMEMBERED {
                self.unreadable.insert(offset);
            }
        }
    }

    /// Keeps deliveries whose messages are older than the window, for when they are read
    /// (bounded: past the limit the oldest knowledge goes, and those show as unconfirmed).
    pub fn remember_late(&mut self, ids: Vec<String>) {
        if self.late.len() + ids.len() > HISTORY_LATE_DELIVERIES {
            self.late.clear();
        }
        self.late.extend(ids.into_iter().map(|id| (id, Delivery::Delivered)));
    }
}

/// A search through the whole log.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// What was searched for.
    pub term: String,
    /// Log offsets of the matching messages, oldest first.
    pub matches: Vec<u64>,
    /// Index into `matches` of the one in view.
    pub current: usize,
    /// Older matches were let go (too many to keep).
    pub truncated: bool,
}

impl Search {
    /// The offset of the match in view.
    pub fn current_offset(&self) -> Option<u64> {
        self.matches.get(self.current).copied()
    }
}

/// History items for a page of records, oldest first. Deliveries apply to the page's own
/// messages and to those in `late` (read earlier from newer pages); the ids of deliveries
/// whose message is not in the page are returned.
pub fn entries_from_page(
    page: Page,
    late: &mut HashMap<String, Delivery>,
) -> (Vec<Entry>, Vec<String>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut unmatched = Vec::new();
    for (offset, record) in page.records {
        if let LogEntry::Delivered { id } = &record.entry {
            if !set_delivery(&mut entries, id, Delivery::Delivered) {
                unmatched.push(id.clone());
            }
            continue;
        }
        let Some(mut entry) = Entry::from_record(&record) else { continue };
        entry.origin = Origin::Log(offset);
        if let EntryKind::Chat { id: Some(id), delivery, .. } = &mut entry.kind
            && let Some(state) = late.remove(id.as_str())
        {
            *delivery = Some(state);
        }
        entries.push(entry);
    }
    (entries, unmatched)
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
    /// The loaded window of history items, oldest first.
    pub entries: Vec<Entry>,
    /// Where that window lies in the log.
    pub paging: Paging,
    /// The search in progress, if any.
    pub search: Option<Search>,
    /// Ids of our messages logged as queued this run and not sent yet.
    pub queued: HashSet<String>,
    /// The peer's proven identity (chats whose keys were agreed, not given).
    pub verify: Option<Verify>,
    /// Our contacts, for `/contacts`.
    pub contacts: Vec<Contact>,
    /// Rows scrolled back from the window's newest (0 = following new messages).
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
    /// The demo: the peer is a bot in this process, with a key made for this run.
    pub demo: bool,
    /// Draw in colour (false when the user set NO_COLOR): styles keep their weight and
    /// emphasis, markers show reversed.
    pub colour: bool,
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
    /// A fresh model: `history` is the end of what the log holds for this conversation.
    pub fn new(me: Me, conversation: String, history: Page, now: DateTime<Local>) -> Self {
        let mut paging = Paging {
            older: (history.start > 0).then_some(history.start),
            live_from: history.len,
            ..Paging::default()
        };
        paging.note_unreadable(&history);
        let (mut entries, unmatched) = entries_from_page(history, &mut paging.late);
        paging.remember_late(unmatched);
        if !entries.is_empty() {
            entries.push(Entry::system(now, texts::HISTORY_ABOVE));
        }
        Self {
            me,
            conversation,
            peers: Vec::new(),
            entries,
            paging,
            search: None,
            queued: HashSet::new(),
            verify: None,
            contacts: Vec::new(),
            scroll: 0,
            unread: 0,
            input: Input::default(),
            recall: Recall::default(),
            now,
            size: (80, 24),
            demo: false,
            colour: true,
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
