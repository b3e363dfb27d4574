//! One chat participant's protocol state: the rendezvous client, STUN, hole punching,
//! keepalive, liveness, path selection, message ids, duplicate suppression, and reliable
//! delivery (see `reliable`): segmenting, retransmission, acknowledgement, reordering.
//! Sans-IO: `handle_*` feed input, `poll_*` drain output; the caller owns the socket and clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::crypto::{Cipher, OpenError};
use super::reliable::{PeerSend, RecvStream, Segment, SendBuffer};
use super::stun::{self, Stun, TxId};
use super::turn::{Credentials, TurnClient, TurnEvent};
use super::wire::{self, Class, Envelope, FromServer, StreamFields, ToServer};
use super::{
    DropCounts, MsgId, NetCommand, NetEvent, OfflineReason, PathKind, PeerId, Pending, Receipt,
    Rejection, Transmit,
};
use crate::consts::{
    CONSENT_ROUTES, DEDUP_CAPACITY, DIRECT_RETRY_FIRST, DIRECT_RETRY_MAX, DROPS_REPORT_INTERVAL,
    KEEPALIVE_INTERVAL, KEY_CHANGE_GRACE, LISTING_MISSES, MAX_DATAGRAM_BYTES, MAX_MESSAGE_BYTES,
    MAX_PEERS, MAX_PLAINTEXT_BYTES, MAX_PRIVATE_ENDPOINTS, NOTICE_SOURCES_CAPACITY, OFFLINE_AFTER,
    OPENER_TTL, OPENER_WAIT, PAST_INSTANCES_REMEMBERED, PATH_STALE_AFTER, PING_JUMP_SLACK,
    PINGS_REMEMBERED, PROBE_GAP_FIRST, PROBE_GAP_MAX, PROBE_INTERVAL, PUNCH_INTERVAL, PUNCH_WINDOW,
    REGISTER_REFRESH, REGISTER_REFRESH_ALONE, REGISTER_RETRY, REGISTER_RETRY_MAX, RELAY_AFTER,
    RELAY_FALLBACK_AFTER, RELAY_RETRY, RELAY_SILENCE, SEND_BUFFER_SEGMENTS,
    SERVER_SILENT_NOTICE_AFTER, STUN_MAX_TRANSMITS, STUN_RTO,
};
pub use rekey::Rekey;
use rekey::RekeyState;

/// How this session finds its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The seed's manual setup: the peer's address is known.
    Direct {
        /// Where the peer listens.
        peer: SocketAddr,
    },
    /// Meet peers in a room on a rendezvous server.
    Room {
        /// The server.
        server: SocketAddr,
        /// The room.
        room: String,
    },
}

/// Everything a session needs to know at start.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our display name.
    pub name: String,
    /// Direct or through a server.
    pub mode: Mode,
    /// Where to ask for our public endpoint (in room mode, usually the server).
    pub stun_server: Option<SocketAddr>,
    /// Our addresses on local interfaces, announced to the server.
    pub private_endpoints: Vec<SocketAddr>,
    /// Silence after which a peer is offline.
    pub offline_after: Duration,
    /// Our messages from earlier runs not yet confirmed by a peer: sent again.
    pub pending: Vec<Pending>,
    /// (sender, id) of messages already shown in earlier runs: never shown twice.
    pub seen: Vec<(String, String)>,
    /// For a chat with a contact: how to agree keys again when the contact restarts.
    pub rekey: Option<Rekey>,
    /// One of several conversations on a socket (`proto::endpoint`): the relay allocation is
    /// the endpoint's, so quitting leaves it to the endpoint to delete.
    pub shared_socket: bool,
}

impl SessionConfig {
    /// A first run as `name`: no STUN server, no local endpoints announced, the default offline
    /// threshold, nothing pending or seen, no contact to agree keys with again.
    pub fn new(name: &str, mode: Mode) -> Self {
        Self {
            name: name.to_owned(),
            mode,
            stun_server: None,
            private_endpoints: Vec::new(),
            offline_after: OFFLINE_AFTER,
            pending: Vec::new(),
            seen: Vec::new(),
            rekey: None,
            shared_socket: false,
        }
    }
}

/// Where a datagram for a peer goes: straight to `addr`, or through our TURN allocation to
/// `addr` (the peer's address as the TURN server sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    addr: SocketAddr,
    relayed: bool,
}

impl Route {
    fn direct(addr: SocketAddr) -> Self {
        Self { addr, relayed: false }
    }

    fn relayed(addr: SocketAddr) -> Self {
        Self { addr, relayed: true }
    }
}

struct Peer {
    id: PeerId,
    name: Option<String>,
    candidates: Vec<SocketAddr>,
    /// Its relayed transport address on the TURN server, as the rendezvous server told us.
    relay: Option<SocketAddr>,
    /// Its address as our TURN server sees it (from its last relayed datagram).
    relayed_from: Option<SocketAddr>,
    path: Option<Route>,
    path_heard: Option<Instant>,
    instance: Option<u64>,
    nat: Option<String>,
    configured: bool,
    /// The rendezvous server introduced it (or `--peer` named it): we look for it. A peer known
    /// only from its own packets is answered while it talks, never probed, and forgotten once
    /// silent.
    listed: bool,
    online: bool,
    last_seen: Option<Instant>,
    fast_until: Instant,
    /// When this punch window began: the relay is wanted `RELAY_AFTER` later without a path.
    punch_started: Instant,
    next_probe: Instant,
    /// While relayed: when to try a direct path again, and the wait after that.
    next_direct_try: Instant,
    direct_retry: Duration,
    /// While relayed: this direct try's opening probes are out; full probes follow.
    opened: bool,
    /// This punch window: the peer said its NAT holds a mapping toward us (`on_opened`).
    heard_opened: bool,
    /// When opening probes last went out (and the peer was told).
    opened_at: Option<Instant>,
    next_keepalive: Instant,
    reported_no_path: bool,
    ping_seq: u64,
    ping_sent: Option<(u64, Instant)>,
    /// Our recent pings, by sequence number and route: a pong counts only as the answer to one
    /// of them, from where it went, once (the route is then proven to reach the peer).
    pings_out: VecDeque<(u64, Route, Instant)>,
    /// The highest ping sequence number heard from the peer's current run, when it came, and
    /// the addresses it came from (a probe round reaches several of ours): older are replays.
    pings_in: (u64, Instant, Vec<SocketAddr>),
    /// The peer's earlier run ids: their packets are replays.
    past_instances: VecDeque<u64>,
    /// Per route, whether it answered our pings and when it may be probed next.
    consent: Vec<Consent>,
    /// The server's answer to our registration that last listed it (see `Rendezvous::answers`).
    listed_in: u32,
    send: PeerSend,
}

/// Consent to our probes, per route (after RFC 7675): a route that answered a ping of ours is
/// probed freely; one that has not, with doubling gaps (`PROBE_GAP_FIRST` to `PROBE_GAP_MAX`).
#[derive(Debug, Clone, Copy)]
struct Consent {
    route: Route,
    answered: bool,
    unanswered: u32,
    next: Instant,
}

impl Peer {
    fn new(id: PeerId, name: Option<String>, candidates: Vec<SocketAddr>, now: Instant) -> Self {
        Self {
            id,
            name,
            candidates,
            relay: None,
            relayed_from: None,
            path: None,
            path_heard: None,
            instance: None,
            nat: None,
            configured: false,
            listed: false,
            online: false,
            last_seen: None,
            fast_until: now + PUNCH_WINDOW,
            punch_started: now,
            next_probe: now,
            next_direct_try: now + DIRECT_RETRY_FIRST,
            direct_retry: DIRECT_RETRY_FIRST,
            opened: false,
            heard_opened: false,
            opened_at: None,
            next_keepalive: now + KEEPALIVE_INTERVAL,
            reported_no_path: false,
            ping_seq: 0,
            ping_sent: None,
            pings_out: VecDeque::new(),
            pings_in: (0, now, Vec::new()),
            past_instances: VecDeque::new(),
            consent: Vec::new(),
            listed_in: 0,
            send: PeerSend::default(),
        }
    }

    /// Which of `routes` may be probed now; counts the probe of each one that has not
    /// answered yet. While the peer is online (it proved the key, on some path) its other
    /// routes follow the direct-retry schedule instead, itself doubling to once a minute.
    fn consented(&mut self, now: Instant, routes: &[Route]) -> Vec<Route> {
        if self.online {
            return routes.to_vec();
        }
        let mut allowed = Vec::with_capacity(routes.len());
        for &route in routes {
            let index = match self.consent.iter().position(|c| c.route == route) {
                Some(index) => index,
                None => {
                    if self.consent.len() == CONSENT_ROUTES {
                        // The longest silent goes first; it starts afresh if named again.
                        let oldest =
                            self.consent.iter().enumerate().max_by_key(|(_, c)| c.unanswered);
                        let at = oldest.map_or(0, |(i, _)| i);
                        self.consent.remove(at);
                    }
                    self.consent.push(Consent { route, answered: false, unanswered: 0, next: now });
                    self.consent.len() - 1
                }
            };
            let consent = &mut self.consent[index];
            if consent.answered {
                allowed.push(route);
            } else if now >= consent.next {
                let doublings = consent.unanswered.min(16);
                let gap = PROBE_GAP_FIRST.saturating_mul(1 << doublings).min(PROBE_GAP_MAX);
                consent.unanswered = consent.unanswered.saturating_add(1);
                consent.next = now + gap;
                allowed.push(route);
            }
        }
        allowed
    }

    /// `route` answered a ping of ours.
    fn answered(&mut self, route: Route) {
        if let Some(consent) = self.consent.iter_mut().find(|c| c.route == route) {
            *consent = Consent { answered: true, unanswered: 0, ..*consent };
        }
    }

    /// Every route starts its probe schedule afresh (a new punch window).
    fn reset_consent(&mut self, now: Instant) {
        for consent in &mut self.consent {
            *consent = Consent { answered: false, unanswered: 0, next: now, ..*consent };
        }
    }

    fn display_name(&self) -> String {
        match (&self.name, self.candidates.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(addr)) => format!("peer at {addr}"),
            (None, None) => "peer".to_owned(),
        }
    }

    /// Starts a new punch window: probe every candidate quickly again.
    fn restart_punching(&mut self, now: Instant) {
        self.reset_consent(now);
        self.fast_until = now + PUNCH_WINDOW;
        self.punch_started = now;
        self.next_probe = now;
        self.reported_no_path = false;
        self.heard_opened = false;
    }

    /// Direct routes through NATs (the public endpoint, a peer-reflexive path): they get
    /// opening probes first. A LAN route crosses no NAT.
    fn nat_routes(&self) -> Vec<Route> {
        if self.configured {
            return Vec::new();
        }
        let lan = |r: &Route| self.kind_of(*r) == PathKind::Lan;
        self.direct_routes().into_iter().filter(|r| !lan(r)).collect()
    }

    /// What kind of path `route` would be.
    fn kind_of(&self, route: Route) -> PathKind {
        if route.relayed || Some(route.addr) == self.relay {
            return PathKind::Relay;
        }
        match self.candidates.iter().position(|c| *c == route.addr) {
            Some(0) if self.configured => PathKind::Configured,
            Some(0) => PathKind::Public,
            Some(_) => PathKind::Lan,
            None => PathKind::Reflexive,
        }
    }

    /// True while its path goes through a relay (ours or its own).
    fn relayed_now(&self) -> bool {
        self.online && self.path.is_some_and(|path| self.kind_of(path) == PathKind::Relay)
    }

    /// The direct ways to it: every candidate, plus the last direct path that worked.
    fn direct_routes(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = self.candidates.iter().copied().map(Route::direct).collect();
        if let Some(path) = self.path.filter(|p| self.kind_of(*p) != PathKind::Relay)
            && !routes.contains(&path)
        {
            routes.push(path);
        }
        routes
    }

    /// The relayed ways to it: straight to its relayed address, and through our allocation
    /// (`ours`) to where the TURN server last heard it from, else to its public endpoint.
    fn relay_routes(&self, ours: bool) -> Vec<Route> {
        let mut routes: Vec<Route> = self.relay.map(Route::direct).into_iter().collect();
        if ours && let Some(addr) = self.relayed_from.or_else(|| self.candidates.first().copied()) {
            routes.push(Route::relayed(addr));
        }
        routes
    }
}

struct Rendezvous {
    server: SocketAddr,
    room: String,
    next_register: Instant,
    retry: Duration,
    awaiting_since: Option<Instant>,
    silent_reported: bool,
    registered_once: bool,
    /// The server's last cookie (it asks for one under load), echoed in registrations.
    cookie: Option<String>,
    /// How many answers to our registration came (each lists the room's other members).
    answers: u32,
    /// On a shared socket, the refresh gap while nobody is online: from
    /// `REGISTER_REFRESH_ALONE`, doubling to `REGISTER_REFRESH` (the server introduces a member
    /// that arrives; refreshing only covers a lost introduction).
    alone_gap: Duration,
}

struct StunProbe {
    server: SocketAddr,
    txid: TxId,
    transmits: u32,
    next: Instant,
    done: bool,
}

/// Bounded memory of (sender, id) pairs already shown.
#[derive(Default)]
struct SeenIds {
    set: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl SeenIds {
    /// Records the pair; false when it was already there.
    fn insert(&mut self, key: (String, String)) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() == DEDUP_CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(key.clone());
        self.set.insert(key);
        true
    }
}

/// One participant's protocol state machine.
pub struct Session {
    config: SessionConfig,
    instance: u64,
    nat: Option<String>,
    cipher: Cipher,
    rng: StdRng,
    mono_anchor: Instant,
    wall_anchor: DateTime<Utc>,
    peers: Vec<Peer>,
    next_peer_id: u32,
    rendezvous: Option<Rendezvous>,
    stun: Option<StunProbe>,
    seen: SeenIds,
    /// Messages handed to the app whose log write it has not confirmed, each with the other
    /// copies (a restarted sender's new stream) that are confirmed once it is written.
    unlogged: HashMap<(String, String), Vec<(u64, u64)>>,
    sendbuf: SendBuffer,
    streams: HashMap<(String, u64), RecvStream>,
    drops: DropCounts,
    drops_reported: DropCounts,
    next_drops_report: Instant,
    notified_sources: HashSet<SocketAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NetEvent>,
    rekey: Option<RekeyState>,
    /// The cipher holds agreed keys (false while a contact conversation agrees its first ones:
    /// nothing is sealed or opened, no peer probed).
    keys_ready: bool,
    /// When a contact's keys were last agreed in this session (old-key tokens are expected for
    /// `KEY_CHANGE_GRACE` after).
    keys_changed_at: Option<Instant>,
    /// On a shared socket: our next registration, for the endpoint to send with the others'.
    registration: Option<ToServer>,
    closed: bool,
    /// `frame_bytes` for our name.
    frame_bytes: usize,
    /// Our TURN client, once the rendezvous server offered a relay.
    turn: Option<TurnClient>,
    /// After a relay failure: no new allocation before this.
    turn_retry_at: Option<Instant>,
    /// When whether to allocate may next change (a peer's relay delay ends, a retry is due).
    relay_check_at: Option<Instant>,
}

impl Session {
    /// A session starting at `now`, when the wall clock reads `wall`. `seed` drives ids and
    /// STUN transaction ids.
    pub fn new(
        config: SessionConfig,
        cipher: Cipher,
        now: Instant,
        wall: DateTime<Utc>,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let stun = config.stun_server.map(|server| {
            let mut txid = [0; 12];
            rng.fill_bytes(&mut txid);
            StunProbe { server, txid, transmits: 0, next: now, done: false }
        });
        let rendezvous = match &config.mode {
            Mode::Room { server, room } => Some(Rendezvous {
                server: *server,
                room: room.clone(),
                next_register: now,
                retry: REGISTER_RETRY,
                awaiting_since: None,
                silent_reported: false,
                registered_once: false,
                cookie: None,
                answers: 0,
                alone_gap: REGISTER_REFRESH_ALONE,
            }),
            Mode::Direct { .. } => None,
        };
        let instance = rng.next_u64();
        let frame_bytes = frame_bytes(&config.name);
        let mut session = Self {
            config,
            instance,
            nat: None,
            cipher,
            rng,
            mono_anchor: now,
            wall_anchor: wall,
            peers: Vec::new(),
            next_peer_id: 0,
            rendezvous,
            stun,
            seen: SeenIds::default(),
            unlogged: HashMap::new(),
            sendbuf: SendBuffer::new(),
            streams: HashMap::new(),
            drops: DropCounts::default(),
            drops_reported: DropCounts::default(),
            next_drops_report: now,
            notified_sources: HashSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rekey: None,
            keys_ready: true,
            keys_changed_at: None,
            registration: None,
            closed: false,
            frame_bytes,
            turn: None,
            turn_retry_at: None,
            relay_check_at: None,
        };
        session.keys_ready = !session.config.rekey.as_ref().is_some_and(|r| r.initiate);
        session.rekey = session.config.rekey.take().map(|r| RekeyState::new(r, now));
        if let Mode::Direct { peer } = session.config.mode
            && let Some(index) = session.add_peer(None, vec![peer], now)
        {
            session.peers[index].configured = true;
            session.peers[index].listed = true;
        }
        for (from, id) in std::mem::take(&mut session.config.seen) {
            session.seen.insert((from, id));
        }
        for pending in std::mem::take(&mut session.config.pending) {
            let parts = session.split(&pending.id, &pending.text, &pending.timestamp);
            session.sendbuf.push(&pending.id.0, parts, &pending.timestamp, true, true);
        }
        session
    }

    /// Drop counters so far.
    pub fn drops(&self) -> DropCounts {
        self.drops
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.closed {
            return;
        }
        if bytes.len() > MAX_DATAGRAM_BYTES {
            self.drops.oversized += 1;
            return;
        }
        if let Some(turn) = self.turn.as_mut().filter(|t| t.server() == from) {
            // From our TURN server: its answers, and what peers sent through the relay.
            let relayed = turn.handle_datagram(now, bytes);
            if let Some((peer, payload)) = relayed {
                self.handle_relayed(now, peer, &payload);
            }
            self.flush_turn(now);
            return;
        }
        match wire::classify(bytes) {
            Class::Stun => self.on_stun(from, bytes),
            Class::Control => self.on_control(now, from, bytes),
            Class::Token(token) => self.on_token(now, Route::direct(from), token),
            Class::Tagged { tag, token } => self.on_tagged(now, Route::direct(from), tag, token),
            Class::Unknown => self.drops.malformed += 1,
        }
    }

    /// A payload that came through our TURN allocation from `peer` (the peer's address as the
    /// TURN server sees it), unwrapped by the TURN client.
    pub fn handle_relayed(&mut self, now: Instant, peer: SocketAddr, payload: &[u8]) {
        if self.closed {
            return;
        }
        match wire::classify(payload) {
            Class::Token(token) => self.on_token(now, Route::relayed(peer), token),
            Class::Tagged { tag, token } => self.on_tagged(now, Route::relayed(peer), tag, token),
            _ => self.drops.malformed += 1,
        }
        self.flush_turn(now);
    }

    /// For an endpoint carrying several conversations on one socket (`proto::endpoint`): the
    /// socket's one TURN client, lent to this conversation for the length of one call.
    pub fn lend_turn(&mut self, turn: Option<TurnClient>) {
        self.turn = turn;
    }

    /// Gives the lent TURN client back (or the one this conversation made from the server's
    /// first offer).
    pub fn return_turn(&mut self) -> Option<TurnClient> {
        self.turn.take()
    }

    /// The socket's relayed address changed while another conversation held the TURN client:
    /// let our peers in through it and tell the server (with the client lent).
    pub fn relay_changed(&mut self, now: Instant) {
        self.permit_relayed_peers(now);
        if let Some(rv) = &mut self.rendezvous {
            rv.next_register = now;
        }
        self.flush_turn(now);
    }

    /// The room this conversation meets in, and its server.
    pub fn rendezvous(&self) -> Option<(SocketAddr, &str)> {
        self.rendezvous.as_ref().map(|rv| (rv.server, rv.room.as_str()))
    }

    /// Whether a STUN answer from `from` with transaction `txid` is the one this session
    /// waits for (several conversations on a socket ask the same server).
    pub fn awaits_stun(&self, from: SocketAddr, txid: &stun::TxId) -> bool {
        self.stun.as_ref().is_some_and(|p| p.server == from && !p.done && p.txid == *txid)
    }

    /// The tag of tokens this conversation opens.
    pub fn recv_tag(&self) -> crate::proto::crypto::Tag {
        self.cipher.recv_tag()
    }

    /// Whether a datagram from `addr` may be this conversation's: a peer's path, candidate
    /// or address at our TURN server.
    pub fn knows(&self, addr: SocketAddr) -> bool {
        self.peers.iter().any(|p| {
            p.path.is_some_and(|r| r.addr == addr)
                || p.candidates.contains(&addr)
                || p.relayed_from == Some(addr)
        })
    }

    /// Whether `token` authenticates under this conversation's key (nothing is counted or
    /// changed): for a token that came without a tag from an address several conversations
    /// know.
    pub fn opens(&self, token: &str) -> bool {
        self.cipher.open_whenever(token).is_ok()
    }

    /// A token behind a conversation tag: opened when the tag is ours, else refused unopened
    /// (it belongs to a conversation this session is not).
    fn on_tagged(&mut self, now: Instant, from: Route, tag: &str, token: &str) {
        if tag == self.cipher.recv_tag().as_str() {
            self.on_token(now, from, token);
        } else {
            self.wrong_key(now, from.addr);
        }
    }

    /// A token that does not open under our key: said once per source as a wrong key, except
    /// just after a contact's keys changed, when it is most likely under the old ones.
    fn wrong_key(&mut self, now: Instant, from: SocketAddr) {
        if self.keys_changed_at.is_some_and(|at| now < at + KEY_CHANGE_GRACE) {
            self.drops.stale += 1;
        } else {
            self.drops.unauthentic += 1;
            self.reject_once(from, Rejection::WrongKey);
        }
    }

    /// Feeds one command from the app.
    pub fn handle_command(&mut self, now: Instant, command: NetCommand) {
        if self.closed {
            return;
        }
        match command {
            NetCommand::Send { text } => self.send_message(now, text),
            NetCommand::Persisted(receipt) => self.on_persisted(now, receipt),
            NetCommand::Logged(id) => {
                if self.sendbuf.logged(&id.0) {
                    self.pump(now);
                }
            }
            NetCommand::SetNat { nat } => {
                self.nat = Some(nat.clone());
                self.events.push_back(NetEvent::OwnNat { nat });
                // Tell the server now, so peers hear it even if no path ever forms.
                if let Some(rv) = &mut self.rendezvous {
                    rv.next_register = now;
                }
            }
            NetCommand::Shutdown => self.shutdown(now),
        }
    }

    /// Runs everything whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.stun_timers(now);
        self.rendezvous_timers(now);
        self.rekey_timers(now);
        if let Some(turn) = &mut self.turn {
            turn.handle_timeout(now);
        }
        self.relay_timers(now);
        for index in 0..self.peers.len() {
            self.peer_timers(now, index);
        }
        // Peers known only from their own packets are forgotten once they fall silent.
        while let Some(index) = self.peers.iter().position(|p| !p.online && !p.listed) {
            self.forget_peer(index);
        }
        self.pump(now);
        self.flush_turn(now);
        if now >= self.next_drops_report {
            if self.drops != self.drops_reported {
                self.drops_reported = self.drops;
                self.events.push_back(NetEvent::Drops(self.drops));
            }
            self.next_drops_report = now + DROPS_REPORT_INTERVAL;
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the app.
    pub fn poll_event(&mut self) -> Option<NetEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called; `None` when nothing is scheduled (always once
    /// closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        self.deadlines(|_, t| next = Some(next.map_or(t, |n| n.min(t))));
        next
    }

    /// The deadlines that make up `poll_timeout`, each with its name (for tests that find
    /// one that stays due).
    fn deadlines(&self, mut consider: impl FnMut(&'static str, Instant)) {
        if self.closed {
            return;
        }
        // Drop counts are reported only when they changed: an idle session sleeps until its
        // next keepalive instead of waking every second.
        if self.drops != self.drops_reported {
            consider("drops report", self.next_drops_report);
        }
        if let Some(stun) = self.stun.as_ref().filter(|s| !s.done) {
            consider("stun", stun.next);
        }
        // Looking for a contact's hello needs a membership first (`rekey_timers`).
        let alone = !self.peers.iter().any(|p| p.online);
        let member = self.rendezvous.as_ref().is_some_and(|rv| rv.registered_once);
        if let Some(due) = self.rekey.as_ref().filter(|_| member).and_then(|r| r.due(alone)) {
            consider("rekey", due);
        }
        if let Some(rv) = &self.rendezvous {
            consider("register", rv.next_register);
            if let Some(since) = rv.awaiting_since.filter(|_| !rv.silent_reported) {
                consider("server silent", since + SERVER_SILENT_NOTICE_AFTER);
            }
        }
        if let Some(due) = self.turn.as_ref().and_then(TurnClient::poll_timeout) {
            consider("turn", due);
        }
        if let Some(due) = self.relay_check_at {
            consider("relay check", due);
        }
        // The peers' timers run only once there are keys (`peer_timers`), and an offline
        // peer is probed only while the server lists it: a deadline that running it would not
        // move must not be asked for (the actor would wake for it again at once).
        for peer in self.peers.iter().filter(|_| self.keys_ready) {
            if peer.relayed_now() {
                consider("direct try", peer.next_direct_try);
            }
            if peer.online {
                consider("keepalive", peer.next_keepalive);
                if let Some(due) = peer.send.next_due() {
                    consider("resend", due);
                }
                if let Some(seen) = peer.last_seen {
                    consider("offline", seen + self.config.offline_after);
                }
            } else if peer.listed {
                consider("probe", peer.next_probe);
            }
        }
    }

    /// The names of the deadlines due at `now` (tests: none may stay due after a timeout).
    #[cfg(test)]
    pub(crate) fn due_at(&self, now: Instant) -> Vec<&'static str> {
        let mut due = Vec::new();
        self.deadlines(|name, t| {
            if t <= now {
                due.push(name);
            }
        });
        due
    }

    fn wall(&self, now: Instant) -> DateTime<Utc> {
        let elapsed = now.saturating_duration_since(self.mono_anchor);
        self.wall_anchor + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::zero())
    }

    fn unix_secs(&self, now: Instant) -> u64 {
        u64::try_from(self.wall(now).timestamp()).unwrap_or(0)
    }

    /// A new peer; with `MAX_PEERS` known already, the one heard from least recently among
    /// those that are offline and not listed makes room, else there is none (`None`).
    fn add_peer(
        &mut self,
        name: Option<String>,
        candidates: Vec<SocketAddr>,
        now: Instant,
    ) -> Option<usize> {
        if self.peers.len() >= MAX_PEERS {
            let evictable = self
                .peers
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.online && !p.listed)
                .min_by_key(|(_, p)| p.last_seen)
                .map(|(i, _)| i)?;
            self.forget_peer(evictable);
        }
        let id = PeerId(self.next_peer_id);
        self.next_peer_id = self.next_peer_id.wrapping_add(1);
        self.peers.push(Peer::new(id, name, candidates, now));
        Some(self.peers.len() - 1)
    }

    /// Forgets a peer and its streams.
    fn forget_peer(&mut self, index: usize) {
        let peer = self.peers.remove(index);
        if let Some(name) = peer.name {
            self.streams.retain(|(n, _), _| *n != name);
        }
    }

    /// The envelope sealed with our keys (nothing while a contact conversation has only its
    /// stand-in key).
    fn seal(&self, now: Instant, envelope: &Envelope) -> Option<Vec<u8>> {
        if !self.keys_ready {
            return None;
        }
        let json = serde_json::to_vec(envelope).ok()?;
        Some(self.cipher.seal(&json, self.unix_secs(now)).into_bytes())
    }

    fn send_envelope(&mut self, now: Instant, to: Route, envelope: &Envelope) {
        let Some(mut payload) = self.seal(now, envelope) else { return };
        // A p2pchat peer (its envelopes carry a run id; a seed client's do not) gets the
        // conversation's tag first on its path, so that a socket with many conversations
        // opens the datagram with the right key at once.
        if self.peers.iter().any(|p| p.instance.is_some() && p.path == Some(to)) {
            let tag = self.cipher.send_tag();
            payload = [tag.as_str().as_bytes(), b".", &payload].concat();
        }
        if !to.relayed {
            self.transmits.push_back(Transmit { to: to.addr, payload, ttl: None });
        } else if let Some(turn) = &mut self.turn {
            turn.send(now, to.addr, &payload);
            self.flush_turn(now);
        }
    }

    /// Moves what the TURN client queued onto our transmits, in order, and acts on its events.
    fn flush_turn(&mut self, now: Instant) {
        let Some(turn) = self.turn.as_mut() else { return };
        while let Some(transmit) = turn.poll_transmit() {
            self.transmits.push_back(transmit);
        }
        let mut events = Vec::new();
        while let Some(event) = turn.poll_event() {
            events.push(event);
        }
        for event in events {
            match event {
                TurnEvent::Allocated { relayed } => {
                    self.turn_retry_at = None;
                    self.permit_relayed_peers(now);
                    self.events.push_back(NetEvent::RelayReady { relayed });
                }
                TurnEvent::Failed { reason } => {
                    self.turn_retry_at = Some(now + RELAY_RETRY);
                    self.events.push_back(NetEvent::RelayFailed { reason });
                }
                TurnEvent::Lost => {
                    self.turn_retry_at = None;
                    let reason = "the relay lost our allocation (it restarted?); asking for a new \
                                  one"
                    .to_owned();
                    self.events.push_back(NetEvent::RelayFailed { reason });
                }
                TurnEvent::PeerRefused { peer } => {
                    let reason = format!(
                        "the relay refuses to reach {peer} (its policy denies that address)"
                    );
                    self.events.push_back(NetEvent::RelayFailed { reason });
                }
            }
            // Tell the server (and through it the peers) where our relay is, or that it is gone.
            if let Some(rv) = &mut self.rendezvous {
                rv.next_register = now;
            }
        }
        if let Some(turn) = self.turn.as_mut() {
            while let Some(transmit) = turn.poll_transmit() {
                self.transmits.push_back(transmit);
            }
        }
    }

    /// Lets every known peer reach us through our allocation (permissions are per IP; a room
    /// has few members and `MAX_RELAYED_PEERS` bounds the rest).
    fn permit_relayed_peers(&mut self, now: Instant) {
        let Some(turn) = self.turn.as_mut().filter(|t| t.relayed().is_some()) else { return };
        for peer in &self.peers {
            if let Some(addr) = peer.relayed_from.or_else(|| peer.candidates.first().copied()) {
                turn.permit(now, addr);
            }
        }
    }

    /// Whether to allocate a relay now: some peer has had no path for `RELAY_AFTER` (or its
    /// NAT type and ours say punching cannot work), and we are the side that allocates for it
    /// — the one whose name sorts first, or the other one too when the first announced no
    /// relay within `RELAY_FALLBACK_AFTER`. One allocation serves every peer.
    fn relay_timers(&mut self, now: Instant) {
        self.relay_check_at = None;
        let Some(turn) = self.turn.as_ref() else { return };
        if turn.is_active() {
            return;
        }
        if let Some(retry) = self.turn_retry_at.filter(|at| now < *at) {
            self.relay_check_at = Some(retry);
            return;
        }
        let ours = self.nat.as_deref();
        let mut wanted = false;
        let mut next: Option<Instant> = None;
        for peer in self.peers.iter().filter(|p| p.name.is_some() && p.listed) {
            // Pathless since: the start of punching, or (online) a silence of `RELAY_SILENCE`.
            let since = if peer.online {
                match peer.last_seen {
                    Some(seen) if !peer.relayed_now() => seen + RELAY_SILENCE,
                    _ => continue,
                }
            } else {
                peer.punch_started
            };
            let doomed = ours
                .zip(peer.nat.as_deref())
                .and_then(|(a, b)| super::nat::NatType::can_punch(a, b))
                == Some(false);
            let first = peer.name.as_deref().is_some_and(|name| self.config.name.as_str() < name);
            let due = since
                + match (first, doomed) {
                    (true, true) => Duration::ZERO,
                    (true, false) => RELAY_AFTER,
                    (false, _) => RELAY_FALLBACK_AFTER,
                };
            let mine = first || peer.relay.is_none();
            if mine && now >= due {
                wanted = true;
            } else if mine {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        if wanted {
            if let Some(turn) = self.turn.as_mut() {
                turn.allocate(now);
            }
        } else {
            self.relay_check_at = next;
        }
    }

    /// Pings peer `index` on those of `targets` that consent to probes now.
    fn send_ping(&mut self, now: Instant, index: usize, targets: &[Route]) {
        let targets = self.peers[index].consented(now, targets);
        if targets.is_empty() {
            return;
        }
        let ping = self.next_ping(now, index, &targets);
        for &to in &targets {
            self.send_envelope(now, to, &ping);
        }
    }

    /// A new ping to peer `index`, remembered as sent to each of `targets` (its pong counts
    /// only from one of them).
    fn next_ping(&mut self, now: Instant, index: usize, targets: &[Route]) -> Envelope {
        let peer = &mut self.peers[index];
        peer.ping_seq += 1;
        peer.ping_sent = Some((peer.ping_seq, now));
        for &to in targets {
            if peer.pings_out.len() == PINGS_REMEMBERED {
                peer.pings_out.pop_front();
            }
            peer.pings_out.push_back((peer.ping_seq, to, now));
        }
        Envelope::Ping {
            name: self.config.name.clone(),
            seq: peer.ping_seq,
            instance: Some(self.instance),
            nat: self.nat.clone(),
        }
    }

    fn on_stun(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Some(probe) = self.stun.as_mut().filter(|p| p.server == from && !p.done) else {
            self.drops.unexpected_source += 1;
            return;
        };
        match stun::parse(bytes) {
            Some(Stun::BindingSuccess { txid, mapped, .. }) if txid == probe.txid => {
                probe.done = true;
                self.events.push_back(NetEvent::PublicEndpoint { addr: mapped });
            }
            Some(_) => self.drops.unexpected_source += 1,
            None => self.drops.malformed += 1,
        }
    }

    fn on_control(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        // Alone, refresh often: every refresh brings the room's members again, so a lost
        // introduction costs seconds, not a whole refresh period.
        let online = self.peers.iter().any(|p| p.online);
        let shared = self.config.shared_socket;
        let Some(rv) = self.rendezvous.as_mut().filter(|rv| rv.server == from) else {
            self.drops.unexpected_source += 1;
            return;
        };
        let Ok(message) = serde_json::from_slice::<FromServer>(bytes) else {
            self.drops.malformed += 1;
            return;
        };
        // An answer about another room is not ours (another conversation on this socket).
        if message.room().is_some_and(|room| room != rv.room) {
            self.drops.unexpected_source += 1;
            return;
        }
        match message {
            FromServer::Registered { turn, .. } => {
                let refresh = match (online, shared) {
                    (true, _) => REGISTER_REFRESH,
                    (false, false) => REGISTER_REFRESH_ALONE,
                    (false, true) => {
                        let gap = rv.alone_gap;
                        rv.alone_gap = (gap * 2).min(REGISTER_REFRESH);
                        gap
                    }
                };
                // The members follow this answer; one the server left out of the last few
                // answers is gone from the room: stop looking for it (unless it is talking
                // to us now).
                rv.answers = rv.answers.wrapping_add(1);
                let answers = rv.answers;
                for peer in self.peers.iter_mut().filter(|p| p.listed && !p.online && !p.configured)
                {
                    if answers.wrapping_sub(peer.listed_in) > LISTING_MISSES {
                        peer.listed = false;
                    }
                }
                let announce = !rv.registered_once || rv.silent_reported;
                rv.registered_once = true;
                rv.awaiting_since = None;
                rv.silent_reported = false;
                rv.retry = REGISTER_RETRY;
                rv.next_register = now + refresh;
                if announce {
                    let server = rv.server;
                    self.events.push_back(NetEvent::Registered { server });
                }
                if let Some(offer) = turn {
                    self.take_turn_offer(offer);
                }
            }
            FromServer::Peer { name, public, private, nat, relay, .. } => {
                self.on_introduction(now, Introduction { name, public, private, nat, relay });
            }
            // Under load the server wants proof that we receive here: register again with it
            // at once (once per new cookie, so a server repeating itself cannot spin us).
            FromServer::Cookie { cookie } => {
                if rv.cookie.as_ref() != Some(&cookie) {
                    rv.cookie = Some(cookie);
                    rv.next_register = now;
                }
            }
            FromServer::Refused { reason, .. } => {
                rv.awaiting_since = None;
                rv.next_register = now + REGISTER_REFRESH;
                self.events.push_back(NetEvent::ServerRefused { reason });
            }
            FromServer::Opened { from, .. } => self.on_opened(now, &from),
            FromServer::Posted { phase, .. } => self.rekey_posted(&phase),
            FromServer::Mail { phase, body, .. } => self.rekey_mail(now, &phase, &body),
            // Late answers to the key handshake that ran before this session on the socket.
            FromServer::Nameplate { .. }
            | FromServer::Claimed { .. }
            | FromServer::Joined { .. } => {}
        }
    }

    /// TURN credentials from the server: the first ones make our TURN client; later ones
    /// replace them for the next allocation, and new ones after a credential failure earn one
    /// more attempt (at most one per issue: the server reissues after half their life).
    fn take_turn_offer(&mut self, offer: wire::TurnOffer) {
        let credentials = Credentials {
            server: offer.server,
            username: offer.username,
            password: offer.credential,
        };
        match self.turn.as_mut() {
            Some(turn) => {
                if !turn.is_active() && turn.credentials() != &credentials {
                    turn.update_credentials(credentials);
                    self.turn_retry_at = None;
                }
            }
            None => self.turn = Some(TurnClient::new(credentials, self.rng.next_u64())),
        }
    }

    fn on_introduction(&mut self, now: Instant, intro: Introduction) {
        let Introduction { name, public, private, nat, relay } = intro;
        if name == self.config.name {
            return;
        }
        let answers = self.rendezvous.as_ref().map_or(0, |rv| rv.answers);
        let mut candidates = vec![public];
        // Private endpoints are addresses on the peer's LAN: one routed on the internet is
        // refused, so nobody can name a stranger's address for the room's chats to probe.
        let local = private.into_iter().filter(|a| !globally_routed(a.ip()));
        for addr in local.take(MAX_PRIVATE_ENDPOINTS) {
            if !candidates.contains(&addr) {
                candidates.push(addr);
            }
        }
        match self.peers.iter().position(|p| p.name.as_deref() == Some(name.as_str())) {
            Some(index) => {
                let peer = &mut self.peers[index];
                peer.listed = true;
                peer.listed_in = answers;
                if peer.relay != relay {
                    peer.relay = relay;
                    // A relayed address to try: probe it now, whatever the state of the path.
                    if let Some(relay) = relay.filter(|_| !peer.online || peer.relayed_now()) {
                        self.send_ping(now, index, &[Route::direct(relay)]);
                    }
                }
                let peer = &mut self.peers[index];
                if peer.candidates != candidates {
                    peer.candidates = candidates.clone();
                    // Somewhere new: it may have restarted, with keys to agree again.
                    self.rekey_soon(now);
                    let peer = &mut self.peers[index];
                    if peer.online {
                        // Still on the old path for now; one probe to the new endpoints opens
                        // our NAT towards them, so the restarted peer's probes can get in.
                        let routes: Vec<Route> =
                            candidates.iter().copied().map(Route::direct).collect();
                        self.send_ping(now, index, &routes);
                    } else {
                        peer.restart_punching(now);
                        self.peer_timers(now, index);
                    }
                }
                self.learn_nat(index, nat.as_deref());
            }
            None => {
                let Some(index) = self.add_peer(Some(name.clone()), candidates, now) else {
                    return;
                };
                self.peers[index].relay = relay;
                self.peers[index].listed = true;
                self.peers[index].listed_in = answers;
                self.permit_relayed_peers(now);
                self.flush_turn(now);
                let peer = self.peers[index].id;
                self.events.push_back(NetEvent::PeerIntroduced { peer, name, public });
                // A contact that just arrived may have posted a new hello.
                self.rekey_soon(now);
                self.learn_nat(index, nat.as_deref());
                // Probe at once, not at the next timer tick: the server introduced both sides
                // in the same instant, and a hole opens most reliably when both sides' first
                // probes leave their NATs before either arrives at the other's.
                self.peer_timers(now, index);
            }
        }
    }

    fn on_token(&mut self, now: Instant, from: Route, token: &str) {
        if !self.keys_ready {
            // A contact that finished the exchange first already speaks (or its chat still
            // uses the keys of our previous run); we answer once ours finishes too (it resends
            // what we miss). Not opened, and no sign of a wrong key: stale.
            self.drops.stale += 1;
            return;
        }
        let plain = match self.cipher.open(token, self.unix_secs(now)) {
            Ok(plain) => plain,
            Err(OpenError::Unauthentic) => {
                self.wrong_key(now, from.addr);
                return;
            }
            Err(OpenError::Stale { skew_secs }) => {
                self.drops.stale += 1;
                self.reject_once(from.addr, Rejection::Clock { skew_secs });
                return;
            }
        };
        match serde_json::from_slice::<Envelope>(&plain) {
            Ok(envelope) => self.on_envelope(now, from, token, envelope),
            Err(_) => self.drops.malformed += 1,
        }
    }

    fn reject_once(&mut self, from: SocketAddr, reason: Rejection) {
        if self.notified_sources.len() < NOTICE_SOURCES_CAPACITY
            && self.notified_sources.insert(from)
        {
            self.events.push_back(NetEvent::Rejected { from, reason });
        }
    }

    /// The peer an authenticated envelope belongs to: by name; else the direct-mode peer whose
    /// name we have not learnt yet; else a new peer (anyone holding the key is a participant).
    fn peer_for(&mut self, name: &str, from: SocketAddr, now: Instant) -> Option<usize> {
        if let Some(index) = self.peers.iter().position(|p| p.name.as_deref() == Some(name)) {
            return Some(index);
        }
        if let Some(index) = self.peers.iter().position(|p| p.name.is_none()) {
            self.peers[index].name = Some(name.to_owned());
            return Some(index);
        }
        self.add_peer(Some(name.to_owned()), vec![from], now)
    }

    fn on_envelope(&mut self, now: Instant, from: Route, token: &str, envelope: Envelope) {
        if envelope.instance() == Some(self.instance) {
            self.drops.reflected += 1;
            return;
        }
        let Some(index) = self.peer_for(envelope.name(), from.addr, now) else {
            // As many peers as we keep, all listed or online: a flood of names, not a peer.
            self.drops.invalid += 1;
            return;
        };
        if from.relayed {
            self.peers[index].relayed_from = Some(from.addr);
        }
        self.learn_nat(index, envelope.nat());
        let instance = envelope.instance();
        if instance.is_some_and(|i| self.peers[index].past_instances.contains(&i)) {
            // A packet of the peer's earlier run, sent again: it changes nothing.
            self.drops.replayed += 1;
            return;
        }
        // Only a fresh envelope (never seen before) proves the peer alive at `from`; a copy
        // of an old one, from anywhere, changes no state.
        match envelope {
            Envelope::Bye { instance, .. } => {
                let peer = &self.peers[index];
                let known_run = instance.is_some() && instance == peer.instance;
                if known_run || (peer.instance.is_none() && self.token_fresh(token)) {
                    self.peers[index].last_seen = Some(now);
                    self.go_offline(now, index, OfflineReason::Left);
                    // It left: its silence says nothing about a path, so no "no direct path"
                    // notice (a new run of it, at new endpoints, starts punching afresh).
                    self.peers[index].reported_no_path = true;
                } else {
                    self.drops.replayed += 1;
                }
            }
            Envelope::Ping { seq, .. } => {
                match self.ping_fresh(now, index, instance, seq, from.addr) {
                    Freshness::Fresh => {}
                    Freshness::Replayed => {
                        self.drops.replayed += 1;
                        return;
                    }
                    Freshness::Forged => {
                        self.drops.invalid += 1;
                        return;
                    }
                }
                self.mark_alive(now, index, from, instance, false);
                let pong = Envelope::Pong {
                    name: self.config.name.clone(),
                    seq,
                    instance: Some(self.instance),
                    nat: self.nat.clone(),
                };
                self.send_envelope(now, from, &pong);
            }
            Envelope::Pong { seq, .. } => {
                let peer = &mut self.peers[index];
                let answered = |out: &(u64, Route, Instant)| (out.0, out.1) == (seq, from);
                let Some(at) = peer.pings_out.iter().position(answered) else {
                    // Not the answer to a ping we sent there: a replay, or a stranger's.
                    self.drops.replayed += 1;
                    return;
                };
                peer.pings_out.remove(at);
                peer.answered(from);
                self.mark_alive(now, index, from, instance, true);
                let peer = &mut self.peers[index];
                if let Some((sent_seq, sent_at)) = peer.ping_sent
                    && sent_seq == seq
                {
                    peer.ping_sent = None;
                    let rtt = now.saturating_duration_since(sent_at);
                    self.events.push_back(NetEvent::Rtt { peer: peer.id, rtt });
                }
            }
            Envelope::Message { name, timestamp, text, id, stream: Some(stream) } => {
                let timestamp = wire::timestamp_text(&timestamp);
                let segment = Segment {
                    seq: stream.seq,
                    id: id.unwrap_or_default(),
                    part: stream.part,
                    parts: stream.parts,
                    text,
                    timestamp,
                };
                if self.on_segment(now, from, index, name, stream, segment) {
                    self.mark_alive(now, index, from, instance, false);
                }
            }
            Envelope::Message { name, timestamp, text, id, stream: None } => {
                let fresh = match &id {
                    Some(id) => self.seen.insert((name.clone(), id.clone())),
                    // A seed client's message has no id: its token (random IV) is its identity.
                    None => self.token_fresh(token),
                };
                if !fresh {
                    self.drops.duplicate += 1;
                    return;
                }
                self.mark_alive(now, index, from, instance, false);
                self.events.push_back(NetEvent::Message {
                    from: name,
                    text,
                    timestamp: wire::timestamp_text(&timestamp),
                    id: id.map(MsgId),
                    receipt: None,
                });
            }
            Envelope::Ack { epoch, cum, sack, .. } => {
                if epoch != self.instance {
                    return;
                }
                if cum > self.peers[index].send.cum() {
                    self.mark_alive(now, index, from, instance, false);
                }
                self.on_ack(now, index, cum, &sack);
            }
        }
    }

    /// True the first time `token` is seen (within the last `DEDUP_CAPACITY` such tokens):
    /// for envelopes that carry no counter of their own.
    fn token_fresh(&mut self, token: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut hasher);
        self.seen.insert(("\0token".to_owned(), format!("{:016x}", hasher.finish())))
    }

    /// Whether a ping is new: a higher sequence number than any heard from the peer's current
    /// run (or the first of a new run), or the highest again from another of our addresses
    /// within a punch interval (one probe round reaches several). A jump further than the
    /// peer could have counted since its last ping (one per punch interval, and some) is
    /// refused as forged.
    fn ping_fresh(
        &mut self,
        now: Instant,
        index: usize,
        instance: Option<u64>,
        seq: u64,
        from: SocketAddr,
    ) -> Freshness {
        let peer = &mut self.peers[index];
        let (highest, at, addrs) = &mut peer.pings_in;
        // The first ping of a run has nothing to be compared with.
        let new_run = instance != peer.instance || *highest == 0;
        if new_run || seq > *highest {
            let rounds =
                now.saturating_duration_since(*at).as_millis() / PUNCH_INTERVAL.as_millis().max(1);
            let plausible = highest
                .saturating_add(PING_JUMP_SLACK)
                .saturating_add(u64::try_from(rounds).unwrap_or(u64::MAX));
            if !new_run && seq > plausible {
                return Freshness::Forged;
            }
            (*highest, *at) = (seq, now);
            addrs.clear();
            addrs.push(from);
            return Freshness::Fresh;
        }
        let same_round = now < *at + PUNCH_INTERVAL;
        if seq == *highest
            && same_round
            && !addrs.contains(&from)
            && addrs.len() < MAX_PRIVATE_ENDPOINTS + 2
        {
            addrs.push(from);
            return Freshness::Fresh;
        }
        Freshness::Replayed
    }

    /// Records a peer's NAT type, telling the app when it is new.
    fn learn_nat(&mut self, index: usize, nat: Option<&str>) {
        let peer = &mut self.peers[index];
        if let Some(nat) = nat
            && peer.nat.as_deref() != Some(nat)
        {
            peer.nat = Some(nat.to_owned());
            let (peer, name) = (peer.id, peer.display_name());
            let event = NetEvent::PeerNat { peer, name, nat: nat.to_owned() };
            self.events.push_back(event);
        }
    }

    /// An authenticated packet from `from`: the peer is alive, and `from` becomes its path
    /// unless the current path is still live (see `PATH_STALE_AFTER`) and at least as good
    /// (a LAN path beats a public one) — or the peer restarted (a new run id), whose old path
    /// is dead whatever we last heard on it.
    ///
    /// Moving an online peer's path needs proof that the new address reaches the peer
    /// (`validated`: the envelope is a pong answering a ping we sent there); any other fresh
    /// envelope from a new address gets such a ping (a challenge) and moves nothing yet.
    fn mark_alive(
        &mut self,
        now: Instant,
        index: usize,
        from: Route,
        instance: Option<u64>,
        validated: bool,
    ) {
        let peer = &mut self.peers[index];
        peer.last_seen = Some(now);
        let restarted = instance.is_some() && peer.instance.is_some() && instance != peer.instance;
        if restarted && let Some(old) = peer.instance {
            if peer.past_instances.len() == PAST_INSTANCES_REMEMBERED {
                peer.past_instances.pop_front();
            }
            peer.past_instances.push_back(old);
        }
        if instance.is_some() {
            peer.instance = instance;
        }
        if restarted {
            // Its log may lack what its previous run had not written: send everything held.
            peer.send.reset();
            // Its old path died with its old run, whatever we last heard on it.
            peer.path_heard = None;
        }
        let current_live = peer.online
            && !restarted
            && peer.path_heard.is_some_and(|heard| now < heard + PATH_STALE_AFTER);
        let moved = peer.path != Some(from);
        let better = peer.path.is_some_and(|path| peer.kind_of(from) > peer.kind_of(path));
        if moved && current_live && !better {
            return;
        }
        if moved && peer.online && peer.instance.is_some() && !validated {
            // One challenge per route per punch interval, however many packets come from it.
            let asked = peer
                .pings_out
                .iter()
                .any(|(_, route, at)| *route == from && now < *at + PUNCH_INTERVAL);
            if !asked {
                self.send_ping(now, index, &[from]);
            }
            return;
        }
        peer.path = Some(from);
        peer.path_heard = Some(now);
        let (id, name, kind) = (peer.id, peer.display_name(), peer.kind_of(from));
        if kind == PathKind::Relay && (moved || !peer.online) {
            // Relayed: try the direct way again soon, then less and less often.
            peer.direct_retry = DIRECT_RETRY_FIRST;
            peer.next_direct_try = now + DIRECT_RETRY_FIRST;
            peer.opened = false;
        }
        let addr = from.addr;
        if !peer.online {
            peer.online = true;
            peer.next_keepalive = now + KEEPALIVE_INTERVAL;
            let event = NetEvent::PeerOnline { peer: id, name, addr, kind };
            self.events.push_back(event);
            self.pump(now);
        } else if moved {
            let event = NetEvent::PathChanged { peer: id, name, addr, kind };
            self.events.push_back(event);
        }
    }

    fn go_offline(&mut self, now: Instant, index: usize, reason: OfflineReason) {
        let peer = &mut self.peers[index];
        if !peer.online {
            return;
        }
        peer.online = false;
        peer.ping_sent = None;
        peer.send.pause();
        peer.restart_punching(now);
        let (id, name) = (peer.id, peer.display_name());
        self.events.push_back(NetEvent::PeerOffline { peer: id, name, reason });
        // Ask the server again: a restarted peer has a new endpoint only the server knows.
        if let Some(rv) = &mut self.rendezvous {
            rv.next_register = now;
            rv.alone_gap = REGISTER_REFRESH_ALONE;
        }
    }

    fn stun_timers(&mut self, now: Instant) {
        let Some(probe) = self.stun.as_mut().filter(|p| !p.done && now >= p.next) else {
            return;
        };
        if probe.transmits == STUN_MAX_TRANSMITS {
            probe.done = true;
            let server = probe.server;
            self.events.push_back(NetEvent::StunFailed { server });
            return;
        }
        probe.next = now + STUN_RTO * 2u32.pow(probe.transmits);
        probe.transmits += 1;
        if let Some(payload) = stun::binding_request(probe.txid, stun::Change::default()) {
            self.transmits.push_back(Transmit { to: probe.server, payload, ttl: None });
        }
    }

    fn rendezvous_timers(&mut self, now: Instant) {
        let Some(rv) = self.rendezvous.as_mut() else {
            return;
        };
        if let Some(since) = rv.awaiting_since
            && !rv.silent_reported
            && now >= since + SERVER_SILENT_NOTICE_AFTER
        {
            rv.silent_reported = true;
            self.events.push_back(NetEvent::ServerSilent { server: rv.server });
        }
        if now < rv.next_register {
            return;
        }
        if rv.awaiting_since.is_some() {
            rv.retry = (rv.retry * 2).min(REGISTER_RETRY_MAX);
        } else {
            rv.awaiting_since = Some(now);
        }
        rv.next_register = now + rv.retry;
        let register = ToServer::Register {
            room: rv.room.clone(),
            name: self.config.name.clone(),
            private: self.config.private_endpoints.clone(),
            nat: self.nat.clone(),
            relay: self.turn.as_ref().and_then(TurnClient::relayed),
            cookie: rv.cookie.clone(),
            also: Vec::new(),
        };
        if self.config.shared_socket {
            self.registration = Some(register);
        } else if let Ok(payload) = serde_json::to_vec(&register) {
            self.transmits.push_back(Transmit { to: rv.server, payload, ttl: None });
        }
    }

    /// On a shared socket: the registration this conversation wants sent now, if any (the
    /// endpoint sends it with the others', see `register_now`).
    pub fn take_registration(&mut self) -> Option<ToServer> {
        self.registration.take()
    }

    /// On a shared socket: registers with the others now (one request carries them all),
    /// whenever its own refresh would be due.
    pub fn register_now(&mut self, now: Instant) {
        if let Some(rv) = &mut self.rendezvous {
            rv.next_register = rv.next_register.min(now);
        }
        self.rendezvous_timers(now);
    }

    fn peer_timers(&mut self, now: Instant, index: usize) {
        if !self.keys_ready {
            return; // no probe before there are keys to seal it with
        }
        let offline_after = self.config.offline_after;
        let ours = self.turn.as_ref().is_some_and(|t| t.relayed().is_some());
        let peer = &mut self.peers[index];
        if peer.online {
            if peer.last_seen.is_some_and(|seen| now >= seen + offline_after) {
                self.go_offline(now, index, OfflineReason::Silent);
            } else {
                let mut targets: Vec<Route> = Vec::new();
                if now >= peer.next_keepalive {
                    peer.next_keepalive = now + KEEPALIVE_INTERVAL;
                    // A peer the server does not list is answered, never kept alive by us.
                    targets.extend(peer.path.filter(|_| peer.listed));
                    // The last keepalive went unanswered: the path may have died. Ask the
                    // relay's way too, so a dead direct path falls back to it in seconds.
                    let unanswered = peer.listed
                        && peer.last_seen.is_some_and(|seen| now >= seen + KEEPALIVE_INTERVAL);
                    if unanswered && !peer.relayed_now() {
                        for route in peer.relay_routes(ours) {
                            if !targets.contains(&route) {
                                targets.push(route);
                            }
                        }
                    }
                    if unanswered && peer.path.is_some_and(|p| p.relayed) {
                        // Through our relay and unanswered: is the allocation still there?
                        if let Some(turn) = &mut self.turn {
                            turn.check(now);
                        }
                    }
                }
                let mut openers = Vec::new();
                if peer.relayed_now() && now >= peer.next_direct_try {
                    // Relayed: keep trying the direct way, often at first, then once a minute;
                    // each try opens our NAT first, then probes.
                    if peer.opened {
                        peer.opened = false;
                        peer.next_direct_try = now + peer.direct_retry;
                        peer.direct_retry = (peer.direct_retry * 2).min(DIRECT_RETRY_MAX);
                        targets.extend(peer.direct_routes());
                    } else {
                        peer.opened = true;
                        peer.next_direct_try = now + OPENER_WAIT;
                        openers = peer.nat_routes();
                    }
                }
                self.send_openers(now, index, &openers);
                if !targets.is_empty() {
                    self.send_ping(now, index, &targets);
                }
                return;
            }
        }
        let relay_offered = self.turn.is_some();
        let peer = &mut self.peers[index];
        if now < peer.next_probe || !peer.listed {
            return;
        }
        let fast = now < peer.fast_until;
        peer.next_probe = now + if fast { PUNCH_INTERVAL } else { PROBE_INTERVAL };
        // Packets from the peer's address that do not authenticate (a wrong key, a clock far
        // off) were already said, with their reason: NATs are not why nothing connects.
        let refused = peer.candidates.iter().any(|c| self.notified_sources.contains(c));
        if !fast && !peer.reported_no_path && !refused {
            peer.reported_no_path = true;
            let event = NetEvent::NoPathYet {
                peer: peer.id,
                name: peer.display_name(),
                ours: self.nat.clone(),
                theirs: peer.nat.clone(),
                relay_offered,
            };
            self.events.push_back(event);
        }
        let mut targets = peer.direct_routes();
        targets.extend(peer.relay_routes(ours));
        let opening = fast && !peer.heard_opened && now < peer.punch_started + OPENER_WAIT;
        if opening && !peer.nat_routes().is_empty() {
            // Until the peer says its NAT is open too (`on_opened`; or `OPENER_WAIT` without a
            // word, from a peer that does not say it): open our NAT toward its public side
            // with probes that expire before its NAT, and probe in full only where no NAT is
            // crossed (LAN) or through the relay.
            let openers = peer.nat_routes();
            targets.retain(|r| !openers.contains(r));
            self.send_openers(now, index, &openers);
        }
        if !targets.is_empty() {
            self.send_ping(now, index, &targets);
        }
    }

    /// The peer's NAT holds a mapping toward us now: open ours too if this window has not
    /// yet, then probe its public side in full — neither probe can reach a router whose NAT
    /// has no mapping for it, so neither router keeps state that would remap the other's.
    fn on_opened(&mut self, now: Instant, name: &str) {
        let Some(index) = self.peers.iter().position(|p| p.name.as_deref() == Some(name)) else {
            return;
        };
        let peer = &mut self.peers[index];
        if peer.online && !peer.relayed_now() {
            return;
        }
        // The peer's word through the server opens a new schedule once per punch window (so
        // a member repeating it cannot make us probe faster).
        if !peer.heard_opened {
            peer.reset_consent(now);
        }
        let routes = peer.nat_routes();
        // Open ours unless we just did: the peer's word may be its answer to ours.
        if peer.opened_at.is_none_or(|at| now >= at + OPENER_WAIT) {
            self.send_openers(now, index, &routes);
        }
        let peer = &mut self.peers[index];
        if peer.relayed_now() {
            // This direct try is done; the next one opens again.
            peer.opened = false;
            peer.next_direct_try = now + peer.direct_retry;
            peer.direct_retry = (peer.direct_retry * 2).min(DIRECT_RETRY_MAX);
        } else {
            // Both NATs are open: this window's later rounds probe in full.
            peer.heard_opened = true;
            peer.next_probe = now + PUNCH_INTERVAL;
        }
        self.send_ping(now, index, &routes);
    }

    /// Opening probes: pings whose IP TTL (`OPENER_TTL`) lets them through our NAT and no
    /// further, so that our mapping toward the peer exists before its probes arrive; then word
    /// to the peer, through the server, that they are out.
    fn send_openers(&mut self, now: Instant, index: usize, routes: &[Route]) {
        let routes = self.peers[index].consented(now, routes);
        if routes.is_empty() {
            return;
        }
        // Where no router lies between (a LAN, loopback) an opener arrives and is answered.
        let ping = self.next_ping(now, index, &routes);
        let Some(payload) = self.seal(now, &ping) else { return };
        self.peers[index].opened_at = Some(now);
        for route in routes.iter().filter(|r| !r.relayed) {
            let transmit =
                Transmit { to: route.addr, payload: payload.clone(), ttl: Some(OPENER_TTL) };
            self.transmits.push_back(transmit);
        }
        let (Some(rv), Some(to)) = (&self.rendezvous, self.peers[index].name.clone()) else {
            return;
        };
        let opened = ToServer::Opened { room: rv.room.clone(), to };
        if let Ok(payload) = serde_json::to_vec(&opened) {
            self.transmits.push_back(Transmit { to: rv.server, payload, ttl: None });
        }
    }

    fn send_message(&mut self, now: Instant, text: String) {
        let mut raw = [0u8; 8];
        self.rng.fill_bytes(&mut raw);
        let id = MsgId(raw.iter().fold(String::with_capacity(16), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        }));
        let timestamp = self.wall(now).to_rfc3339_opts(SecondsFormat::Millis, true);
        if text.len() > MAX_MESSAGE_BYTES {
            let reason = format!(
                "too long ({} bytes; at most {} KiB per message): nothing was sent",
                text.len(),
                MAX_MESSAGE_BYTES / 1024
            );
            self.events.push_back(NetEvent::NotSent { text, reason });
            return;
        }
        let parts = self.split(&id, &text, &timestamp);
        if self.sendbuf.len() + parts.len() > SEND_BUFFER_SEGMENTS {
            let reason = "too many messages are waiting for a peer; try again when it is back";
            self.events.push_back(NetEvent::NotSent { text, reason: reason.to_owned() });
            return;
        }
        // It leaves once the app has it in our own log (`NetCommand::Logged`): a sender killed
        // mid-burst must have in its log whatever a peer received. So it is told now, sent or
        // queued, rather than when it first goes out.
        let online = self.peers.iter().any(|p| p.online);
        self.sendbuf.push(&id.0, parts, &timestamp, online, false);
        self.events.push_back(if online {
            NetEvent::Sent { id, text, timestamp }
        } else {
            NetEvent::Queued { id, text, timestamp }
        });
    }

    /// Splits a text into parts whose segments each fit one datagram. Parts break between
    /// characters, never inside one; reassembly concatenates them.
    fn split(&self, id: &MsgId, text: &str, timestamp: &str) -> Vec<String> {
        let overhead = self.frame_bytes + escaped_len(timestamp) + escaped_len(&id.0);
        let budget = MAX_PLAINTEXT_BYTES.saturating_sub(overhead).max(8);
        if escaped_len(text) <= budget {
            return vec![text.to_owned()];
        }
        let mut parts = Vec::new();
        let (mut start, mut used) = (0, 0);
        for (at, c) in text.char_indices() {
            let cost = json_escaped_len(c);
            if used + cost > budget {
                parts.push(text[start..at].to_owned());
                (start, used) = (at, 0);
            }
            used += cost;
        }
        parts.push(text[start..].to_owned());
        parts
    }

    /// Sends what is due to every online peer: new segments within the window, and
    /// retransmissions whose timeout has passed.
    fn pump(&mut self, now: Instant) {
        let base = self.sendbuf.base();
        let mut legacy_sent = false;
        for index in 0..self.peers.len() {
            let peer = &mut self.peers[index];
            let Some(path) = peer.path.filter(|_| peer.online) else { continue };
            // A peer that never sent a run id is a seed-style client: it cannot acknowledge.
            let due = if peer.instance.is_some() {
                peer.send.due(now, &self.sendbuf)
            } else {
                legacy_sent = true;
                peer.send.send_once(&self.sendbuf)
            };
            for seq in due {
                let Some(segment) = self.sendbuf.get(seq) else { continue };
                let envelope = Envelope::Message {
                    name: self.config.name.clone(),
                    timestamp: segment.timestamp.clone().into(),
                    text: segment.text.clone(),
                    id: Some(segment.id.clone()),
                    stream: Some(StreamFields {
                        epoch: self.instance,
                        seq,
                        base,
                        part: segment.part,
                        parts: segment.parts,
                    }),
                };
                self.send_envelope(now, path, &envelope);
                if let Some((id, text, timestamp)) = self.sendbuf.announce(seq) {
                    self.events.push_back(NetEvent::Sent { id: MsgId(id), text, timestamp });
                }
            }
        }
        if legacy_sent {
            self.sendbuf.release(self.peers.iter().map(|p| p.send.cum()).min());
        }
    }

    fn on_ack(&mut self, now: Instant, index: usize, cum: u64, sack: &[u64]) {
        let peer = &mut self.peers[index];
        match peer.send.on_ack(now, cum, sack) {
            Ok(Some(rtt)) => {
                let id = peer.id;
                self.events.push_back(NetEvent::Rtt { peer: id, rtt });
            }
            Ok(None) => {}
            Err(refused) => {
                tracing::debug!(peer = %peer.display_name(), %refused, "ack refused");
                self.drops.invalid += 1;
                return;
            }
        }
        let cum = peer.send.cum();
        for id in self.sendbuf.delivered_up_to(cum) {
            self.events.push_back(NetEvent::Delivered { id: MsgId(id) });
        }
        self.sendbuf.release(self.peers.iter().map(|p| p.send.cum()).min());
        self.pump(now);
    }

    /// Takes a message segment from peer `index`; true when it was new (not a copy).
    fn on_segment(
        &mut self,
        now: Instant,
        from: Route,
        index: usize,
        name: String,
        fields: StreamFields,
        segment: Segment,
    ) -> bool {
        // A new run of the sender starts a new stream; the old one is finished.
        self.streams.retain(|(n, epoch), _| *n != name || *epoch == fields.epoch);
        let key = (name.clone(), fields.epoch);
        let stream = self.streams.entry(key).or_default();
        let (complete, new) = match stream.on_segment(segment, fields.base) {
            Ok(received) => {
                if received.too_long {
                    self.drops.invalid += 1;
                }
                (received.complete, received.new)
            }
            Err(refused) => {
                tracing::debug!(%name, %refused, "segment refused");
                self.drops.invalid += 1;
                return false;
            }
        };
        if !new {
            self.drops.duplicate += 1;
        }
        let mut handed_over = false;
        for message in complete {
            let key = (name.clone(), message.id.clone());
            if !self.seen.insert(key.clone()) {
                self.drops.duplicate += 1;
                match self.unlogged.get_mut(&key) {
                    // Shown, but not in the log yet (a write failed): confirmed once it is.
                    Some(copies) => copies.push((fields.epoch, message.last_seq)),
                    // Shown and logged in an earlier run or from an earlier copy: only confirm.
                    None => {
                        stream_persisted(&mut self.streams, &name, fields.epoch, message.last_seq)
                    }
                }
                continue;
            }
            self.unlogged.insert(key, Vec::new());
            let receipt = Receipt {
                from: name.clone(),
                epoch: fields.epoch,
                last_seq: message.last_seq,
                id: MsgId(message.id.clone()),
            };
            self.events.push_back(NetEvent::Message {
                from: name.clone(),
                text: message.text,
                timestamp: message.timestamp,
                id: Some(MsgId(message.id)),
                receipt: Some(receipt),
            });
            handed_over = true;
        }
        // A segment that completes a message for the app is acknowledged once the app has
        // logged it (`on_persisted`): one ack per message instead of two. Anything else (a
        // duplicate, a gap, part of a long message) is acknowledged now, so the sender stops
        // retransmitting it; a slow log write costs at most one retransmission, answered here.
        if !handed_over {
            // A copy is answered on the path in use: a replay from elsewhere gets nothing.
            let to = if new { Some(from) } else { self.peers[index].path };
            if let Some(to) = to {
                self.send_ack(now, to, &name, fields.epoch);
            }
        }
        new
    }

    fn send_ack(&mut self, now: Instant, to: Route, from: &str, epoch: u64) {
        let Some(stream) = self.streams.get(&(from.to_owned(), epoch)) else { return };
        let (cum, sack) = stream.ack();
        let ack = Envelope::Ack { name: self.config.name.clone(), epoch, cum, sack };
        self.send_envelope(now, to, &ack);
    }

    fn on_persisted(&mut self, now: Instant, receipt: Receipt) {
        stream_persisted(&mut self.streams, &receipt.from, receipt.epoch, receipt.last_seq);
        let key = (receipt.from.clone(), receipt.id.0.clone());
        let mut epochs = vec![receipt.epoch];
        for (epoch, last_seq) in self.unlogged.remove(&key).unwrap_or_default() {
            stream_persisted(&mut self.streams, &receipt.from, epoch, last_seq);
            epochs.push(epoch);
        }
        let path = self
            .peers
            .iter()
            .find(|p| p.online && p.name.as_deref() == Some(receipt.from.as_str()))
            .and_then(|p| p.path);
        if let Some(path) = path {
            epochs.dedup();
            for epoch in epochs {
                self.send_ack(now, path, &receipt.from, epoch);
            }
        }
    }

    /// Sends `envelope` on the path of every online peer.
    fn send_to_online(&mut self, now: Instant, envelope: &Envelope) {
        let paths: Vec<Route> =
            self.peers.iter().filter(|p| p.online).filter_map(|p| p.path).collect();
        for to in paths {
            self.send_envelope(now, to, envelope);
        }
    }

    fn shutdown(&mut self, now: Instant) {
        let bye = Envelope::Bye { name: self.config.name.clone(), instance: Some(self.instance) };
        self.send_to_online(now, &bye);
        // After the goodbyes (some may go through the relay): delete the allocation, unless
        // other conversations on the socket still use it.
        if let Some(turn) = self.turn.as_mut().filter(|_| !self.config.shared_socket) {
            turn.close();
        }
        self.flush_turn(now);
        self.closed = true;
        self.events.push_back(NetEvent::Closed);
    }
}

fn stream_persisted(
    streams: &mut HashMap<(String, u64), RecvStream>,
    from: &str,
    epoch: u64,
    last_seq: u64,
) {
    if let Some(stream) = streams.get_mut(&(from.to_owned(), epoch)) {
        stream.persisted(last_seq);
    }
}

/// What a ping's sequence number says of it.
enum Freshness {
    /// Not seen before.
    Fresh,
    /// A copy of one already taken.
    Replayed,
    /// Further ahead than the peer could have counted: not from a well-behaved peer.
    Forged,
}

/// A member of the room, as the rendezvous server introduced it.
struct Introduction {
    name: String,
    public: SocketAddr,
    private: Vec<SocketAddr>,
    nat: Option<String>,
    relay: Option<SocketAddr>,
}

/// A message segment with the widest numbers its stream fields can carry: the largest envelope
/// these strings can travel in.
fn widest_segment(name: &str, timestamp: &str, id: &str, text: &str) -> Envelope {
    let widest = StreamFields {
        epoch: u64::MAX,
        seq: u64::MAX,
        base: u64::MAX,
        part: u32::MAX,
        parts: u32::MAX,
    };
    Envelope::Message {
        name: name.to_owned(),
        timestamp: timestamp.into(),
        text: text.to_owned(),
        id: Some(id.to_owned()),
        stream: Some(widest),
    }
}

/// The JSON of our widest segment with an empty part, timestamp and id: a segment's size is this
/// plus its escaped strings.
fn frame_bytes(name: &str) -> usize {
    let frame = widest_segment(name, "", "", "");
    serde_json::to_vec(&frame).map_or(MAX_PLAINTEXT_BYTES, |v| v.len())
}

/// Bytes `s` takes inside a JSON string as serde_json writes it.
fn escaped_len(s: &str) -> usize {
    s.chars().map(json_escaped_len).sum()
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn json_escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        '\0'..='\u{1f}' => 6,
        _ => c.len_utf8(),
    }
}

mod rekey;
/// Whether `ip` is routed on the internet: not private (RFC 1918, RFC 4193), shared (RFC
/// 6598), loopback, link-local, documentation (RFC 5737, RFC 3849), benchmarking (RFC 2544) or
/// unspecified, after IANA's special-purpose registries.
fn globally_routed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, c, _] = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0))
        }
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => globally_routed(IpAddr::V4(v4)),
            None => {
                let first = ip.segments()[0];
                !(ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_unique_local()
                    || ip.is_unicast_link_local()
                    || (first == 0x2001 && ip.segments()[1] == 0x0db8))
            }
        },
    }
}

#[cfg(test)]
mod tests;
