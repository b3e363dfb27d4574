//! One socket, many conversations: the sans-IO endpoint under the messenger. It owns what
//! belongs to the socket — the one TURN client (one allocation serves every conversation) and
//! the routing of each datagram to its conversation — and hosts one `Session` per
//! conversation (a contact or a room: its keys, peers, reliable streams, log state).
//!
//! Routing, cheapest first, so that a datagram is opened with one key in the steady state
//! whatever the number of conversations: a tagged token (`TAG.token`, see `crypto::Tag`) goes
//! to the conversation whose key the tag names; a rendezvous answer to the conversation of the
//! room it names (answers naming none — a cookie — to every conversation on that server); STUN
//! to the conversation that asked; TURN to the TURN client, whose relayed payloads are routed
//! again. An untagged token (a seed client, a first probe) goes to the one conversation that
//! knows its source address, or to the first of several that opens it; a token nobody opens is
//! counted. What the endpoint must not do: read a clock, touch a socket, or decide anything a
//! conversation decides (paths, liveness, delivery).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::crypto::Tag;
use super::stun;
use super::turn::TurnClient;
use super::wire::{self, Class, FromServer, Membership, ToServer};
use super::{NetCommand, NetEvent, Session, Transmit};
use crate::consts::{MAX_DATAGRAM_BYTES, MAX_ROOMS_PER_REGISTER};

/// A conversation, as numbered by its endpoint (stable while the process runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(pub u32);

/// What the app asks of an endpoint.
pub enum EndpointCommand {
    /// Host a new conversation (a session made for this socket) under this id.
    Add(ConversationId, Box<Session>),
    /// A command for one conversation.
    To(ConversationId, NetCommand),
    /// Say goodbye in one conversation and stop hosting it (a room left).
    Remove(ConversationId),
    /// Say goodbye in every conversation and delete the relay allocation (`shutdown`).
    Shutdown,
}

impl std::fmt::Debug for EndpointCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Add(id, _) => write!(f, "Add({id:?})"),
            Self::To(id, command) => write!(f, "To({id:?}, {command:?})"),
            Self::Remove(id) => write!(f, "Remove({id:?})"),
            Self::Shutdown => f.write_str("Shutdown"),
        }
    }
}

/// Datagrams the endpoint could give to no conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointDrops {
    /// Larger than `MAX_DATAGRAM_BYTES`.
    pub oversized: u64,
    /// A tag no conversation has, a token no conversation opens, an answer about a room we are
    /// not in.
    pub unrouted: u64,
    /// Not anything we speak.
    pub malformed: u64,
}

/// The socket-level state machine (see the module docs).
pub struct Endpoint {
    conversations: Vec<(ConversationId, Session)>,
    next_id: u32,
    /// Tag → index in `conversations`.
    by_tag: HashMap<Tag, usize>,
    turn: Option<TurnClient>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(ConversationId, NetEvent)>,
    drops: EndpointDrops,
    shut_down: bool,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Endpoint {
    /// An endpoint with no conversation yet.
    pub fn new() -> Self {
        Self {
            conversations: Vec::new(),
            next_id: 0,
            by_tag: HashMap::new(),
            turn: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            drops: EndpointDrops::default(),
            shut_down: false,
        }
    }

    /// Adds a conversation (a session made for this socket, `SessionConfig::shared_socket`)
    /// at `now`; returns its id.
    pub fn add(&mut self, now: Instant, session: Session) -> ConversationId {
        let id = ConversationId(self.next_id);
        self.insert(now, id, session);
        id
    }

    /// Adds a conversation under an id the caller chose (unused so far) at `now`.
    pub fn insert(&mut self, now: Instant, id: ConversationId, session: Session) {
        self.next_id = self.next_id.max(id.0.saturating_add(1));
        self.by_tag.insert(session.recv_tag(), self.conversations.len());
        self.conversations.push((id, session));
        let index = self.conversations.len() - 1;
        self.drain(index);
        self.send_registrations(now);
    }

    /// Carries out one command of the app's.
    pub fn handle(&mut self, now: Instant, command: EndpointCommand) {
        match command {
            EndpointCommand::Add(id, session) => self.insert(now, id, *session),
            EndpointCommand::To(id, command) => self.handle_command(now, id, command),
            EndpointCommand::Remove(id) => self.remove(now, id),
            EndpointCommand::Shutdown => self.shutdown(now),
        }
    }

    /// Says goodbye in conversation `id` and stops hosting it; its last events (`Closed`) are
    /// still told. The TURN allocation stays the socket's.
    pub fn remove(&mut self, now: Instant, id: ConversationId) {
        let Some(index) = self.index_of(id) else { return };
        self.with(index, now, |s| s.handle_command(now, NetCommand::Shutdown));
        self.conversations.remove(index);
        // Indices after it moved down by one.
        self.by_tag =
            self.conversations.iter().enumerate().map(|(i, (_, s))| (s.recv_tag(), i)).collect();
    }

    /// `shutdown` has run: every goodbye is queued.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Datagrams no conversation took.
    pub fn drops(&self) -> EndpointDrops {
        self.drops
    }

    /// The conversation `id`, to read its state.
    pub fn conversation(&self, id: ConversationId) -> Option<&Session> {
        self.conversations.iter().find(|(i, _)| *i == id).map(|(_, s)| s)
    }

    fn index_of(&self, id: ConversationId) -> Option<usize> {
        self.conversations.iter().position(|(i, _)| *i == id)
    }

    /// Runs `call` on conversation `index` with the socket's TURN client lent to it, then
    /// takes back what it sent and raised; when the relayed address changed, every other
    /// conversation hears of it.
    fn with(&mut self, index: usize, now: Instant, call: impl FnOnce(&mut Session)) {
        let before = self.turn.as_ref().and_then(TurnClient::relayed);
        let session = &mut self.conversations[index].1;
        let tag = session.recv_tag();
        session.lend_turn(self.turn.take());
        call(session);
        self.turn = session.return_turn();
        // New keys (a contact agreed them again) come with a new tag.
        let new_tag = session.recv_tag();
        if new_tag != tag {
            self.by_tag.remove(&tag);
            self.by_tag.insert(new_tag, index);
        }
        self.drain(index);
        let after = self.turn.as_ref().and_then(TurnClient::relayed);
        if after != before {
            for other in (0..self.conversations.len()).filter(|i| *i != index) {
                let session = &mut self.conversations[other].1;
                session.lend_turn(self.turn.take());
                session.relay_changed(now);
                self.turn = session.return_turn();
                self.drain(other);
            }
        }
    }

    /// Sends what registrations are due as one request per server (a datagram's worth of
    /// rooms each): when any conversation's is due, every conversation on that server
    /// registers with it, so a socket refreshes all its rooms at once.
    fn send_registrations(&mut self, now: Instant) {
        let mut due: Vec<Option<ToServer>> =
            self.conversations.iter_mut().map(|(_, s)| s.take_registration()).collect();
        if due.iter().all(Option::is_none) {
            return;
        }
        for (index, request) in due.iter_mut().enumerate() {
            if request.is_none() && self.conversations[index].1.rendezvous().is_some() {
                let session = &mut self.conversations[index].1;
                session.lend_turn(self.turn.take());
                session.register_now(now);
                *request = session.take_registration();
                self.turn = session.return_turn();
                self.drain(index);
            }
        }
        let mut by_server: Vec<(SocketAddr, Vec<ToServer>)> = Vec::new();
        for (index, request) in due.into_iter().enumerate() {
            let (Some(request), Some((server, _))) =
                (request, self.conversations[index].1.rendezvous())
            else {
                continue;
            };
            match by_server.iter_mut().find(|(s, _)| *s == server) {
                Some((_, list)) => list.push(request),
                None => by_server.push((server, vec![request])),
            }
        }
        for (server, list) in by_server {
            for chunk in list.chunks(MAX_ROOMS_PER_REGISTER) {
                let Some(request) = batch(chunk) else { continue };
                if let Ok(payload) = serde_json::to_vec(&request) {
                    self.transmits.push_back(Transmit { to: server, payload, ttl: None });
                }
            }
        }
    }

    fn drain(&mut self, index: usize) {
        let (id, session) = &mut self.conversations[index];
        while let Some(transmit) = session.poll_transmit() {
            self.transmits.push_back(transmit);
        }
        while let Some(event) = session.poll_event() {
            self.events.push_back((*id, event));
        }
    }

    /// Feeds one datagram received on the socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.route(now, from, bytes);
        self.send_registrations(now);
    }

    fn route(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if bytes.len() > MAX_DATAGRAM_BYTES {
            self.drops.oversized += 1;
            return;
        }
        if self.turn.as_ref().is_some_and(|t| t.server() == from) {
            self.on_turn_server(now, bytes);
            return;
        }
        match wire::classify(bytes) {
            Class::Tagged { tag, .. } => {
                let index = self.by_tag.iter().find(|(t, _)| t.as_str() == tag).map(|(_, i)| *i);
                match index {
                    Some(index) => self.with(index, now, |s| s.handle_datagram(now, from, bytes)),
                    None => self.drops.unrouted += 1,
                }
            }
            Class::Token(token) => match self.untagged(from, token) {
                Some(index) => self.with(index, now, |s| s.handle_datagram(now, from, bytes)),
                None => self.drops.unrouted += 1,
            },
            Class::Control => self.on_server(now, from, bytes),
            Class::Stun => {
                // The answer to a conversation's STUN request: the one whose transaction it
                // names (several may ask the same server).
                let txid = stun::transaction(bytes);
                let asked = (0..self.conversations.len())
                    .find(|i| txid.is_some_and(|t| self.conversations[*i].1.awaits_stun(from, &t)));
                match asked {
                    Some(index) => self.with(index, now, |s| s.handle_datagram(now, from, bytes)),
                    None => self.drops.unrouted += 1,
                }
            }
            Class::Unknown => self.drops.malformed += 1,
        }
    }

    /// The conversation an untagged token from `from` is for: the one that knows the address,
    /// else the first of those that open it (a first probe, or a seed client in a room).
    fn untagged(&self, from: SocketAddr, token: &str) -> Option<usize> {
        let knowing: Vec<usize> = (0..self.conversations.len())
            .filter(|i| self.conversations[*i].1.knows(from))
            .collect();
        match knowing[..] {
            [only] => Some(only),
            [] => (0..self.conversations.len()).find(|i| self.conversations[*i].1.opens(token)),
            _ => knowing.into_iter().find(|i| self.conversations[*i].1.opens(token)),
        }
    }

    fn on_turn_server(&mut self, now: Instant, bytes: &[u8]) {
        let Some(turn) = self.turn.as_mut() else { return };
        let relayed = turn.handle_datagram(now, bytes);
        while let Some(transmit) = turn.poll_transmit() {
            self.transmits.push_back(transmit);
        }
        let Some((peer, payload)) = relayed else {
            // An answer of the TURN server's own: the first conversation takes what it means
            // (allocated: its peers let in and the server told; failed: said once), and when
            // the relayed address changed, `with` tells the others.
            if !self.conversations.is_empty() {
                self.with(0, now, |s| s.relay_changed(now));
            }
            return;
        };
        let index = match wire::classify(&payload) {
            Class::Tagged { tag, .. } => {
                self.by_tag.iter().find(|(t, _)| t.as_str() == tag).map(|(_, i)| *i)
            }
            Class::Token(token) => self.untagged(peer, token),
            _ => None,
        };
        match index {
            Some(index) => self.with(index, now, |s| s.handle_relayed(now, peer, &payload)),
            None => self.drops.unrouted += 1,
        }
    }

    fn on_server(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(answer) = serde_json::from_slice::<FromServer>(bytes) else {
            self.drops.malformed += 1;
            return;
        };
        let on_server: Vec<usize> = (0..self.conversations.len())
            .filter(|i| self.conversations[*i].1.rendezvous().is_some_and(|(s, _)| s == from))
            .collect();
        let targets: Vec<usize> = match answer.room() {
            Some(room) => on_server
                .into_iter()
                .filter(|i| self.conversations[*i].1.rendezvous().is_some_and(|(_, r)| r == room))
                .collect(),
            None => on_server,
        };
        if targets.is_empty() {
            self.drops.unrouted += 1;
        }
        for index in targets {
            self.with(index, now, |s| s.handle_datagram(now, from, bytes));
        }
    }

    /// Feeds one command for conversation `id`.
    pub fn handle_command(&mut self, now: Instant, id: ConversationId, command: NetCommand) {
        if let Some(index) = self.index_of(id) {
            self.with(index, now, |s| s.handle_command(now, command));
        }
        self.send_registrations(now);
    }

    /// Says goodbye in every conversation, then deletes the relay allocation once (a
    /// conversation on a shared socket leaves the allocation to its endpoint).
    pub fn shutdown(&mut self, now: Instant) {
        self.shut_down = true;
        for index in 0..self.conversations.len() {
            self.with(index, now, |s| s.handle_command(now, NetCommand::Shutdown));
        }
        if let Some(turn) = &mut self.turn {
            turn.close();
            while let Some(transmit) = turn.poll_transmit() {
                self.transmits.push_back(transmit);
            }
        }
    }

    /// Runs everything whose deadline is at or before `now`, in every conversation.
    pub fn handle_timeout(&mut self, now: Instant) {
        for index in 0..self.conversations.len() {
            let due = self.conversations[index].1.poll_timeout().is_some_and(|t| t <= now);
            let turn_due = index == 0
                && self.turn.as_ref().and_then(TurnClient::poll_timeout).is_some_and(|t| t <= now);
            if due || turn_due {
                self.with(index, now, |s| s.handle_timeout(now));
            }
        }
        self.send_registrations(now);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, and the conversation it is about.
    pub fn poll_event(&mut self) -> Option<(ConversationId, NetEvent)> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let turn = self.turn.as_ref().and_then(TurnClient::poll_timeout);
        self.conversations.iter().filter_map(|(_, s)| s.poll_timeout()).chain(turn).min()
    }
}

#[cfg(test)]
impl Endpoint {
    /// The deadlines due at `now`, by conversation (tests: none may stay due after a
    /// timeout).
    pub(crate) fn due_at(&self, now: Instant) -> Vec<(ConversationId, &'static str)> {
        let turn = self.turn.as_ref().and_then(TurnClient::poll_timeout).filter(|t| *t <= now);
        let own = turn.map(|_| (ConversationId(u32::MAX), "turn"));
        let each = self
            .conversations
            .iter()
            .flat_map(|(id, s)| s.due_at(now).into_iter().map(move |n| (*id, n)));
        own.into_iter().chain(each).collect()
    }
}

/// One request for several rooms: the first request's endpoints, and every room under its
/// own name.
fn batch(requests: &[ToServer]) -> Option<ToServer> {
    let mut rooms = Vec::new();
    let mut endpoints = None;
    for request in requests {
        if let ToServer::Register { room, name, private, nat, relay, cookie, .. } = request {
            rooms.push(Membership { room: room.clone(), name: name.clone() });
            endpoints.get_or_insert((private, nat, relay, cookie));
        }
    }
    let (private, nat, relay, cookie) = endpoints?;
    let mut rooms = rooms.into_iter();
    let Membership { room, name } = rooms.next()?;
    Some(ToServer::Register {
        room,
        name,
        private: private.clone(),
        nat: nat.clone(),
        relay: *relay,
        cookie: cookie.clone(),
        also: rooms.collect(),
    })
}

#[cfg(test)]
mod tests;
