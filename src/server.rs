//! The rendezvous server: introduces peers in a room to each other and answers STUN Binding
//! Requests on the same port. With an alternate address (`--alt`) it also serves RFC 5780
//! behaviour discovery: it listens on every combination of the two IPs and two ports, answers
//! CHANGE-REQUEST from the asked-for one, and names the alternate in OTHER-ADDRESS.
//! A sans-IO core (`Server::handle`) under a thin tokio loop (`run`). It never sees chat
//! content or keys: peers speak to each other directly.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use crate::consts::{
    CODE_TTL, MAX_DATAGRAM_BYTES, MAX_MAIL_BODY_BYTES, MAX_NAME_CHARS, MAX_PHASE_CHARS,
    MAX_POSTS_PER_MEMBER, MAX_PRIVATE_ENDPOINTS, MAX_REGISTRATIONS, MAX_ROOM_CHARS,
    MAX_ROOM_MEMBERS, NAMEPLATE_PREFIX, RECV_BUFFER_BYTES, REGISTRATION_TTL, TURN_CREDENTIAL_TTL,
};
use crate::proto::Transmit;
use crate::proto::stun::{self, Stun};
use crate::proto::wire::{self, Class, FromServer, ToServer, TurnOffer};

/// Datagrams the server dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerDrops {
    /// Larger than `MAX_DATAGRAM_BYTES`.
    pub oversized: u64,
    /// Not STUN and not a register request we could read.
    pub malformed: u64,
    /// Readable, but refused (bad room or name, full room, full server).
    pub refused: u64,
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    public: SocketAddr,
    private: Vec<SocketAddr>,
    nat: Option<String>,
    relay: Option<SocketAddr>,
    expires: Instant,
    /// TURN credentials handed to it, reused until half their life has passed.
    turn: Option<TurnOffer>,
}

/// The TURN relay the server offers its peers: where coturn listens, and the secret it shares
/// with coturn (`static-auth-secret`). The secret is never printed or logged.
#[derive(Clone)]
pub struct TurnRelay {
    /// coturn's UDP address, as peers reach it.
    pub server: SocketAddr,
    secret: Vec<u8>,
}

impl TurnRelay {
    /// The relay at `server` sharing `secret` with us.
    pub fn new(server: SocketAddr, secret: Vec<u8>) -> Self {
        Self { server, secret }
    }
}

impl std::fmt::Debug for TurnRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRelay").field("server", &self.server).finish_non_exhaustive()
    }
}

/// coturn REST credentials (`use-auth-secret`; draft-uberti-behave-turn-rest-00): the username
/// `EXPIRY:USER` and its password, base64 (standard, padded) of HMAC-SHA1(username) keyed with
/// the shared secret. `user` must not contain ':'.
pub fn turn_credentials(secret: &[u8], user: &str, expiry_unix: u64) -> (String, String) {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let username = format!("{expiry_unix}:{user}");
    // HMAC takes keys of any length: this never fails.
    let Ok(mut mac) = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret) else {
        return (username, String::new());
    };
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// A message a member left in a room.
#[derive(Debug, Clone)]
struct Post {
    from: String,
    phase: String,
    body: String,
}

impl Member {
    fn introduction(&self) -> FromServer {
        FromServer::Peer {
            name: self.name.clone(),
            public: self.public,
            private: self.private.clone(),
            nat: self.nat.clone(),
            relay: self.relay,
        }
    }
}

/// A datagram to send, and the local address to send it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The server address it must come from (matters for CHANGE-REQUEST).
    pub via: SocketAddr,
    /// Where and what.
    pub transmit: Transmit,
}

/// The server's addresses: the primary one (rendezvous and STUN) and an optional alternate
/// (a second IP and port) for RFC 5780.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// Where peers register.
    pub primary: SocketAddr,
    /// The alternate IP and port.
    pub alt: Option<SocketAddr>,
}

impl Addresses {
    /// Every address the server listens on: each combination of the IPs and ports.
    pub fn all(&self) -> Vec<SocketAddr> {
        let mut all = vec![self.primary];
        if let Some(alt) = self.alt {
            for ip in [self.primary.ip(), alt.ip()] {
                for port in [self.primary.port(), alt.port()] {
                    let addr = SocketAddr::new(ip, port);
                    if !all.contains(&addr) {
                        all.push(addr);
                    }
                }
            }
        }
        all
    }

    /// The address that differs from `local` in IP if `ip`, and in port if `port`.
    fn changed(&self, local: SocketAddr, ip: bool, port: bool) -> Option<SocketAddr> {
        let alt = self.alt?;
        let flip_ip = if local.ip() == alt.ip() { self.primary.ip() } else { alt.ip() };
        let flip_port = if local.port() == alt.port() { self.primary.port() } else { alt.port() };
        let addr = SocketAddr::new(
            if ip { flip_ip } else { local.ip() },
            if port { flip_port } else { local.port() },
        );
        self.all().contains(&addr).then_some(addr)
    }

    /// OTHER-ADDRESS for a request received at `local`: only with both an IP and a port to
    /// change to (RFC 5780 §7.2 tests need both).
    fn other(&self, local: SocketAddr) -> Option<SocketAddr> {
        let alt = self.alt?;
        (alt.ip() != self.primary.ip() && alt.port() != self.primary.port())
            .then(|| self.changed(local, true, true))
            .flatten()
    }
}

/// The server's whole state.
#[derive(Debug)]
pub struct Server {
    addresses: Addresses,
    rooms: HashMap<String, Vec<Member>>,
    /// (expiry, room, name) of every registration, soonest first: expiring costs what
    /// expires, not a sweep of every room.
    expiries: BTreeSet<(Instant, String, String)>,
    /// What members left for each other, by room.
    mail: HashMap<String, Vec<Post>>,
    /// Nameplates someone has claimed (each takes one claim).
    claimed: HashSet<String>,
    /// How long a nameplate lives.
    code_ttl: Duration,
    registrations: usize,
    drops: ServerDrops,
    registered_total: u64,
    stun_answered: u64,
    /// The relay offered to registered peers, and the wall clock's reading at an instant (TURN
    /// credentials carry Unix times).
    turn: Option<(TurnRelay, Instant, u64)>,
}

impl Server {
    /// An empty server on `addresses`.
    pub fn new(addresses: Addresses) -> Self {
        Self {
            addresses,
            rooms: HashMap::new(),
            expiries: BTreeSet::new(),
            mail: HashMap::new(),
            claimed: HashSet::new(),
            code_ttl: CODE_TTL,
            registrations: 0,
            drops: ServerDrops::default(),
            registered_total: 0,
            stun_answered: 0,
            turn: None,
        }
    }

    /// Offers `relay` to every registered peer: credentials good for `TURN_CREDENTIAL_TTL`.
    /// `now` and `unix_now` are the same moment on the monotonic and the wall clock.
    pub fn with_turn(mut self, relay: TurnRelay, now: Instant, unix_now: u64) -> Self {
        self.turn = Some((relay, now, unix_now));
        self
    }

    /// Nameplates live `ttl` instead of `CODE_TTL`.
    pub fn with_code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl;
        self
    }

    /// Drop counters so far.
    pub fn drops(&self) -> ServerDrops {
        self.drops
    }

    /// Live registrations across all rooms.
    pub fn registrations(&self) -> usize {
        self.registrations
    }

    /// Feeds one datagram that arrived at our address `local`; returns what to send.
    pub fn handle(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Vec<Reply> {
        if bytes.len() > MAX_DATAGRAM_BYTES {
            self.drops.oversized += 1;
            return Vec::new();
        }
        match wire::classify(bytes) {
            Class::Stun => match stun::parse(bytes) {
                Some(Stun::BindingRequest { txid, change }) => {
                    let unknown = stun::unknown_required(bytes);
                    if unknown.is_empty() {
                        self.answer_binding(local, from, txid, change).into_iter().collect()
                    } else {
                        self.drops.refused += 1;
                        let payload = stun::binding_error(txid, &unknown);
                        let reply = |payload| Reply {
                            via: local,
                            transmit: Transmit { to: from, payload, ttl: None },
                        };
                        payload.map(reply).into_iter().collect()
                    }
                }
                _ => {
                    self.drops.malformed += 1;
                    Vec::new()
                }
            },
            // Rendezvous happens on the primary address only.
            Class::Control if local == self.addresses.primary => {
                match serde_json::from_slice::<ToServer>(bytes) {
                    Ok(request) => {
                        self.expire(now);
                        let via = self.addresses.primary;
                        let out = match request {
                            ToServer::Register { room, name, private, nat, relay } => {
                                let about = Endpoints { private, nat, relay };
                                self.register(now, from, room, name, about)
                            }
                            ToServer::Allocate { name } => self.allocate(now, from, name),
                            ToServer::Claim { nameplate, name } => {
                                self.claim(now, from, nameplate, name)
                            }
                            ToServer::Post { room, phase, body } => {
                                self.post(from, room, phase, body)
                            }
                            ToServer::Fetch { room, phase } => self.fetch(from, room, phase),
                            ToServer::Opened { room, to } => self.opened(from, &room, &to),
                        };
                        out.into_iter().map(|transmit| Reply { via, transmit }).collect()
                    }
                    Err(_) => {
                        self.drops.malformed += 1;
                        Vec::new()
                    }
                }
            }
            Class::Unknown => match stun::classic_binding_request(bytes) {
                // An RFC 3489 client (RFC 5389 §12.2: a server SHOULD answer it).
                Some((txid, change)) => {
                    let Some(via) = self.via(local, change) else {
                        self.drops.refused += 1;
                        return Vec::new();
                    };
                    self.stun_answered += 1;
                    let other = self.addresses.other(local);
                    let payload = stun::classic_binding_success(txid, from, via, other);
                    vec![Reply { via, transmit: Transmit { to: from, payload, ttl: None } }]
                }
                None => {
                    self.drops.malformed += 1;
                    Vec::new()
                }
            },
            Class::Control | Class::Token(_) => {
                self.drops.malformed += 1;
                Vec::new()
            }
        }
    }

    /// The address an answer asked for with `change` comes from: the one it arrived at, or the
    /// alternate that differs as asked (none without one).
    fn via(&self, local: SocketAddr, change: stun::Change) -> Option<SocketAddr> {
        if change == stun::Change::default() {
            Some(local)
        } else {
            self.addresses.changed(local, change.ip, change.port)
        }
    }

    fn answer_binding(
        &mut self,
        local: SocketAddr,
        from: SocketAddr,
        txid: stun::TxId,
        change: stun::Change,
    ) -> Option<Reply> {
        let Some(via) = self.via(local, change) else {
            self.drops.refused += 1;
            let payload = stun::binding_error(txid, &[stun::CHANGE_REQUEST])?;
            return Some(Reply { via: local, transmit: Transmit { to: from, payload, ttl: None } });
        };
        self.stun_answered += 1;
        let payload = stun::binding_success(txid, from, via, self.addresses.other(local))?;
        Some(Reply { via, transmit: Transmit { to: from, payload, ttl: None } })
    }

    /// Removes expired registrations.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When the next registration expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _, _)| *at)
    }

    fn expire(&mut self, now: Instant) {
        while self.expiries.first().is_some_and(|(at, _, _)| *at <= now) {
            let Some((_, room, name)) = self.expiries.pop_first() else { break };
            let Some(members) = self.rooms.get_mut(&room) else { continue };
            members.retain(|m| m.name != name);
            if members.is_empty() {
                self.rooms.remove(&room);
                self.mail.remove(&room);
                self.claimed.remove(&room);
            } else if let Some(posts) = self.mail.get_mut(&room) {
                posts.retain(|p| p.from != name);
            }
            self.registrations -= 1;
        }
    }

    fn refuse(&mut self, to: SocketAddr, reason: String) -> Vec<Transmit> {
        self.drops.refused += 1;
        encode(to, &FromServer::Refused { reason }).into_iter().collect()
    }

    fn register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        room: String,
        name: String,
        about: Endpoints,
    ) -> Vec<Transmit> {
        if room.starts_with(NAMEPLATE_PREFIX) {
            return self
                .refuse(from, "room names starting with np- are kept for pairing codes".into());
        }
        let changed = match self.admit(now, from, &room, name.clone(), about, REGISTRATION_TTL) {
            Ok(changed) => changed,
            Err(reason) => return self.refuse(from, reason),
        };
        let turn = self.offer_turn(now, &room, &name);
        let members = self.rooms.get(&room).map(Vec::as_slice).unwrap_or_default();
        let mut out: Vec<Transmit> = Vec::new();
        out.extend(encode(
            from,
            &FromServer::Registered { public: from, ttl_secs: REGISTRATION_TTL.as_secs(), turn },
        ));
        let Some(me) = members.iter().find(|m| m.name == name) else { return out };
        for other in members.iter().filter(|m| m.name != name) {
            out.extend(encode(from, &other.introduction()));
            if changed {
                out.extend(encode(other.public, &me.introduction()));
            }
        }
        out
    }

    /// TURN credentials for a registered member: the ones it was given while they have more
    /// than half their life left, else fresh ones (so issuing costs one HMAC per member per
    /// half-TTL, however often it registers). `None` without a relay.
    fn offer_turn(&mut self, now: Instant, room: &str, name: &str) -> Option<TurnOffer> {
        let (relay, anchor, unix_anchor) = self.turn.as_ref()?;
        let unix_now = unix_anchor + now.saturating_duration_since(*anchor).as_secs();
        let member = self.rooms.get_mut(room)?.iter_mut().find(|m| m.name == name)?;
        let ttl = TURN_CREDENTIAL_TTL.as_secs();
        let fresh_enough = member.turn.as_ref().is_some_and(|offer| {
            let expiry = offer.username.split(':').next().and_then(|e| e.parse::<u64>().ok());
            expiry.is_some_and(|e| e.saturating_sub(unix_now) > ttl / 2)
        });
        if !fresh_enough {
            let expiry = unix_now + ttl;
            let (username, credential) =
                turn_credentials(&relay.secret, &turn_user(room, name), expiry);
            member.turn =
                Some(TurnOffer { server: relay.server, username, credential, ttl_secs: ttl });
        }
        let mut offer = member.turn.clone()?;
        let expiry = offer.username.split(':').next().and_then(|e| e.parse::<u64>().ok());
        offer.ttl_secs = expiry.map_or(0, |e| e.saturating_sub(unix_now));
        Some(offer)
    }

    /// Puts `name` in `room` (or refreshes it) for `ttl`; true when it is new or its endpoints
    /// changed (others should hear of it). A member back at a new address (a restart) loses
    /// its old posts.
    fn admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        room: &str,
        name: String,
        about: Endpoints,
        ttl: Duration,
    ) -> Result<bool, String> {
        let Endpoints { mut private, nat, relay } = about;
        if room.is_empty() || room.chars().count() > MAX_ROOM_CHARS {
            return Err(format!("room names are 1 to {MAX_ROOM_CHARS} characters"));
        }
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(format!("names are 1 to {MAX_NAME_CHARS} characters"));
        }
        private.truncate(MAX_PRIVATE_ENDPOINTS);
        let expires = now + ttl;
        let members = self.rooms.get(room).map_or(0, Vec::len);
        let existing = self.rooms.get(room).and_then(|ms| ms.iter().position(|m| m.name == name));
        if existing.is_none() {
            if members >= MAX_ROOM_MEMBERS {
                return Err(format!("room is full ({MAX_ROOM_MEMBERS} members)"));
            }
            if self.registrations >= MAX_REGISTRATIONS {
                return Err("server is full; try again later".to_owned());
            }
            self.registrations += 1;
        }
        self.registered_total += 1;
        if let Some(old) = existing.and_then(|i| self.rooms.get(room)?.get(i)) {
            self.expiries.remove(&(old.expires, room.to_owned(), name.clone()));
        }
        self.expiries.insert((expires, room.to_owned(), name.clone()));
        let members = self.rooms.entry(room.to_owned()).or_default();
        let nat = nat.map(|n| n.chars().take(MAX_NAME_CHARS).collect());
        let mut me = Member { name, public: from, private, nat, relay, expires, turn: None };
        let (changed, moved) = match existing {
            Some(i) => {
                let old = &members[i];
                let moved = old.public != me.public;
                let changed = moved
                    || old.private != me.private
                    || old.nat != me.nat
                    || old.relay != me.relay;
                me.turn = old.turn.clone();
                members[i] = me.clone();
                (changed, moved)
            }
            None => {
                members.push(me.clone());
                (true, false)
            }
        };
        // A member at a new address restarted: what it posted before is stale.
        if moved && let Some(posts) = self.mail.get_mut(room) {
            posts.retain(|p| p.from != me.name);
        }
        Ok(changed)
    }

    /// A fresh nameplate (the lowest number not in use) with the asker in it.
    fn allocate(&mut self, now: Instant, from: SocketAddr, name: String) -> Vec<Transmit> {
        let Some(number) = (1..=MAX_REGISTRATIONS)
            .find(|n| !self.rooms.contains_key(&format!("{NAMEPLATE_PREFIX}{n}")))
        else {
            return self.refuse(from, "server is full; try again later".to_owned());
        };
        let room = format!("{NAMEPLATE_PREFIX}{number}");
        let about = Endpoints::default();
        if let Err(reason) = self.admit(now, from, &room, name, about, self.code_ttl) {
            return self.refuse(from, reason);
        }
        let nameplate = number.to_string();
        let ttl_secs = self.code_ttl.as_secs();
        encode(from, &FromServer::Nameplate { nameplate, ttl_secs }).into_iter().collect()
    }

    /// Joins a friend's nameplate: once, while it lives.
    fn claim(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nameplate: String,
        name: String,
    ) -> Vec<Transmit> {
        let room = format!("{NAMEPLATE_PREFIX}{nameplate}");
        let members = self.rooms.get(&room).map(Vec::as_slice).unwrap_or_default();
        let again = members.iter().any(|m| m.name == name && m.public == from);
        if !again {
            if members.is_empty() {
                return self.refuse(
                    from,
                    format!(
                        "no code with number {nameplate} is waiting: it expired (codes last {}) or was never given out",
                        crate::text::duration_words(self.code_ttl.as_secs())
                    ),
                );
            }
            if self.claimed.contains(&room) {
                return self.refuse(
                    from,
                    format!("the code with number {nameplate} was already used: ask for a new one"),
                );
            }
            if members.iter().any(|m| m.name == name) {
                return self.refuse(
                    from,
                    format!("your friend is also called {name}: choose another --name"),
                );
            }
        }
        let expires_in = members
            .iter()
            .map(|m| m.expires.saturating_duration_since(now))
            .min()
            .unwrap_or(self.code_ttl);
        if let Err(reason) = self.admit(now, from, &room, name, Endpoints::default(), expires_in) {
            return self.refuse(from, reason);
        }
        self.claimed.insert(room);
        encode(from, &FromServer::Claimed { nameplate }).into_iter().collect()
    }

    /// The member of `room` at `from`, by name.
    fn member_at(&self, room: &str, from: SocketAddr) -> Option<String> {
        self.rooms.get(room)?.iter().find(|m| m.public == from).map(|m| m.name.clone())
    }

    fn post(
        &mut self,
        from: SocketAddr,
        room: String,
        phase: String,
        body: String,
    ) -> Vec<Transmit> {
        let Some(name) = self.member_at(&room, from) else {
            return self.refuse(from, format!("not a member of {room}: register first"));
        };
        if phase.len() > MAX_PHASE_CHARS || body.len() > MAX_MAIL_BODY_BYTES {
            return self.refuse(from, "post too long".to_owned());
        }
        let posts = self.mail.entry(room.clone()).or_default();
        posts.retain(|p| !(p.from == name && p.phase == phase));
        if posts.iter().filter(|p| p.from == name).count() >= MAX_POSTS_PER_MEMBER {
            return self.refuse(from, "too many posts".to_owned());
        }
        posts.push(Post { from: name, phase: phase.clone(), body });
        encode(from, &FromServer::Posted { room, phase }).into_iter().collect()
    }

    /// Passes "my NAT is open toward you" from one member of a room to another (and nothing
    /// from anyone else: the sender must be the member registered at its address).
    fn opened(&mut self, from: SocketAddr, room: &str, to: &str) -> Vec<Transmit> {
        let Some(name) = self.member_at(room, from) else {
            self.drops.refused += 1;
            return Vec::new();
        };
        let target = self.rooms.get(room).and_then(|ms| ms.iter().find(|m| m.name == to));
        match target {
            Some(member) if member.name != name => {
                encode(member.public, &FromServer::Opened { from: name }).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    fn fetch(&mut self, from: SocketAddr, room: String, phase: String) -> Vec<Transmit> {
        let Some(name) = self.member_at(&room, from) else {
            return self.refuse(from, format!("not a member of {room}: register first"));
        };
        let found = self
            .mail
            .get(&room)
            .and_then(|posts| posts.iter().find(|p| p.phase == phase && p.from != name).cloned());
        match found {
            Some(Post { from: author, phase, body }) => {
                encode(from, &FromServer::Mail { room, phase, from: author, body })
                    .into_iter()
                    .collect()
            }
            None => Vec::new(),
        }
    }
}

/// What a member says about how to reach it.
#[derive(Debug, Default)]
struct Endpoints {
    private: Vec<SocketAddr>,
    nat: Option<String>,
    relay: Option<SocketAddr>,
}

/// The TURN user id for a member: short, without ':', the same for the same room and name (so
/// coturn's per-user quota counts a member's allocations together), and revealing neither.
fn turn_user(room: &str, name: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(room.as_bytes())
        .chain_update([0])
        .chain_update(name.as_bytes())
        .finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn encode(to: SocketAddr, message: &FromServer) -> Option<Transmit> {
    serde_json::to_vec(message).ok().map(|payload| Transmit { to, payload, ttl: None })
}

/// The bound sockets of a server.
pub struct Sockets {
    addresses: Addresses,
    sockets: Vec<Arc<UdpSocket>>,
}

impl Sockets {
    /// Binds the primary address and, with `alt`, every combination of the two IPs and ports.
    /// A port of 0 in either picks a free one.
    pub async fn bind(primary: SocketAddr, alt: Option<SocketAddr>) -> std::io::Result<Self> {
        let first = UdpSocket::bind(primary).await?;
        let mut sockets = vec![Arc::new(first)];
        let primary = sockets[0].local_addr()?;
        let alt = match alt {
            Some(alt) => {
                let second = UdpSocket::bind(alt).await?;
                let alt = second.local_addr()?;
                sockets.push(Arc::new(second));
                Some(alt)
            }
            None => None,
        };
        let addresses = Addresses { primary, alt };
        for addr in addresses.all() {
            if !sockets.iter().any(|s| s.local_addr().ok() == Some(addr)) {
                sockets.push(Arc::new(UdpSocket::bind(addr).await?));
            }
        }
        Ok(Self { addresses, sockets })
    }

    /// The primary address as bound (a port of 0 resolved).
    pub fn primary(&self) -> SocketAddr {
        self.addresses.primary
    }
}

/// Serves on `sockets` until `shutdown` completes; pairing codes live `code_ttl`; with `turn`,
/// registered peers get credentials for that relay.
pub async fn run(
    sockets: Sockets,
    code_ttl: Duration,
    turn: Option<TurnRelay>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let Sockets { addresses, sockets } = sockets;
    let mut server = Server::new(addresses).with_code_ttl(code_ttl);
    if let Some(relay) = turn {
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        server = server.with_turn(relay, Instant::now(), unix_now);
    }
    let (tx, mut rx) = mpsc::channel::<(SocketAddr, SocketAddr, Vec<u8>)>(1024);
    let mut readers = Vec::new();
    for socket in &sockets {
        let (socket, tx) = (Arc::clone(socket), tx.clone());
        let local = socket.local_addr()?;
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; RECV_BUFFER_BYTES];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((len, from)) => {
                        if tx.send((local, from, buf[..len].to_vec())).await.is_err() {
                            return;
                        }
                    }
                    // ICMP errors from earlier sends surface here on some systems; not fatal.
                    Err(error) => tracing::debug!(%error, "recv_from failed"),
                }
            }
        }));
    }
    drop(tx);
    tokio::pin!(shutdown);
    let mut last_drops = ServerDrops::default();
    let result = loop {
        let deadline = server.poll_timeout().unwrap_or_else(|| Instant::now() + REGISTRATION_TTL);
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = sleep_until(deadline.into()) => server.handle_timeout(Instant::now()),
            received = rx.recv() => {
                let Some((local, from, bytes)) = received else { break Ok(()) };
                for reply in server.handle(Instant::now(), local, from, &bytes) {
                    let Some(socket) = sockets.iter().find(|s| s.local_addr().ok() == Some(reply.via)) else {
                        continue;
                    };
                    if let Err(error) = socket.send_to(&reply.transmit.payload, reply.transmit.to).await {
                        tracing::debug!(%error, to = %reply.transmit.to, "send_to failed");
                    }
                }
                if server.drops != last_drops {
                    last_drops = server.drops;
                    tracing::info!(drops = ?last_drops, "dropped datagrams");
                }
            }
        }
    };
    for reader in readers {
        reader.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::stun::Change;

    const PRIMARY: &str = "198.51.100.1:7777";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn server() -> Server {
        Server::new(Addresses { primary: addr(PRIMARY), alt: None })
    }

    /// Feeds a datagram to the primary address; returns what goes out (all via primary).
    fn handle(s: &mut Server, now: Instant, from: SocketAddr, bytes: &[u8]) -> Vec<Transmit> {
        let replies = s.handle(now, addr(PRIMARY), from, bytes);
        assert!(replies.iter().all(|r| r.via == addr(PRIMARY)));
        replies.into_iter().map(|r| r.transmit).collect()
    }

    fn register(room: &str, name: &str) -> Vec<u8> {
        serde_json::to_vec(&ToServer::Register {
            room: room.into(),
            name: name.into(),
            private: vec![addr("192.0.2.10:5000")],
            nat: Some("Full Cone".into()),
            relay: None,
        })
        .unwrap()
    }

    fn decode(t: &Transmit) -> FromServer {
        serde_json::from_slice(&t.payload).unwrap()
    }

    fn ask(s: &mut Server, now: Instant, from: SocketAddr, request: ToServer) -> Vec<FromServer> {
        handle(s, now, from, &serde_json::to_vec(&request).unwrap()).iter().map(decode).collect()
    }

    fn refused(answers: &[FromServer]) -> String {
        match answers {
            [FromServer::Refused { reason }] => reason.clone(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn nameplates_are_claimed_once_carry_posts_and_expire() {
        let mut s = server();
        let now = Instant::now();
        let (a, b, c) = (addr("198.51.100.11:1"), addr("198.51.100.12:2"), addr("198.51.100.13:3"));
        let answer = ask(&mut s, now, a, ToServer::Allocate { name: "ann".into() });
        assert_eq!(
            answer,
            vec![FromServer::Nameplate { nameplate: "1".into(), ttl_secs: CODE_TTL.as_secs() }]
        );
        // The next asker gets the next number.
        let answer = ask(&mut s, now, c, ToServer::Allocate { name: "cat".into() });
        assert!(
            matches!(&answer[..], [FromServer::Nameplate { nameplate, .. }] if nameplate == "2")
        );
        let claim = |name: &str| ToServer::Claim { nameplate: "1".into(), name: name.into() };
        assert_eq!(
            ask(&mut s, now, b, claim("bob")),
            vec![FromServer::Claimed { nameplate: "1".into() }]
        );
        // A lost answer is asked for again: the same claimant is let in again.
        assert_eq!(
            ask(&mut s, now, b, claim("bob")),
            vec![FromServer::Claimed { nameplate: "1".into() }]
        );
        assert!(refused(&ask(&mut s, now, c, claim("eve"))).contains("already used"));
        // Posts reach the other member only; outsiders can neither post nor read.
        let post = |body: &str| ToServer::Post {
            room: "np-1".into(),
            phase: "pake".into(),
            body: body.into(),
        };
        let fetch = ToServer::Fetch { room: "np-1".into(), phase: "pake".into() };
        assert_eq!(ask(&mut s, now, b, fetch.clone()), vec![]);
        assert_eq!(
            ask(&mut s, now, a, post("from ann")),
            vec![FromServer::Posted { room: "np-1".into(), phase: "pake".into() }]
        );
        ask(&mut s, now, a, post("from ann, again"));
        assert_eq!(ask(&mut s, now, a, fetch.clone()), vec![]);
        let mail = FromServer::Mail {
            room: "np-1".into(),
            phase: "pake".into(),
            from: "ann".into(),
            body: "from ann, again".into(),
        };
        assert_eq!(ask(&mut s, now, b, fetch.clone()), vec![mail]);
        assert!(refused(&ask(&mut s, now, c, fetch.clone())).contains("not a member"));
        assert!(refused(&ask(&mut s, now, c, post("x"))).contains("not a member"));
        let long = "x".repeat(MAX_MAIL_BODY_BYTES + 1);
        assert!(refused(&ask(&mut s, now, a, post(&long))).contains("too long"));
        // Nobody registers into a nameplate's room.
        let answer = handle(&mut s, now, c, &register("np-1", "eve"));
        assert!(refused(&answer.iter().map(decode).collect::<Vec<_>>()).contains("pairing codes"));
        // After the code's lifetime the nameplate is gone, with its posts, and can be reissued.
        let later = now + CODE_TTL;
        assert!(refused(&ask(&mut s, later, b, claim("bob"))).contains("expired"));
        let answer = ask(&mut s, later, c, ToServer::Allocate { name: "cat".into() });
        assert!(
            matches!(&answer[..], [FromServer::Nameplate { nameplate, .. }] if nameplate == "1")
        );
        assert_eq!(s.registrations(), 1);
    }

    #[test]
    fn posts_outlive_refreshes_but_not_a_restart() {
        let mut s = server();
        let now = Instant::now();
        let (a, b, a2) =
            (addr("198.51.100.11:1"), addr("198.51.100.12:2"), addr("198.51.100.11:9"));
        let reg = |private: Vec<SocketAddr>| ToServer::Register {
            room: "rv-x".into(),
            name: "ann".into(),
            private,
            nat: None,
            relay: None,
        };
        ask(&mut s, now, a, reg(Vec::new()));
        handle(&mut s, now, b, &register("rv-x", "bob"));
        let post = ToServer::Post { room: "rv-x".into(), phase: "hello".into(), body: "hi".into() };
        let fetch = ToServer::Fetch { room: "rv-x".into(), phase: "hello".into() };
        ask(&mut s, now, a, post);
        // The chat that follows a handshake registers again with its LAN endpoints: kept.
        ask(&mut s, now, a, reg(vec![addr("192.0.2.10:1")]));
        assert_eq!(ask(&mut s, now, b, fetch.clone()).len(), 1);
        // Back from another address: a restart, and its old post is stale.
        ask(&mut s, now, a2, reg(Vec::new()));
        assert_eq!(ask(&mut s, now, b, fetch), vec![]);
    }

    #[test]
    fn second_member_triggers_mutual_introduction() {
        let mut s = server();
        let now = Instant::now();
        let (a, b) = (addr("198.51.100.11:1000"), addr("198.51.100.12:2000"));
        let out = handle(&mut s, now, a, &register("r", "alice"));
        assert_eq!(out.len(), 1);
        assert_eq!(decode(&out[0]), FromServer::Registered { public: a, ttl_secs: 60, turn: None });
        let out = handle(&mut s, now, b, &register("r", "bob"));
        let to_b: Vec<_> = out.iter().filter(|t| t.to == b).map(decode).collect();
        let to_a: Vec<_> = out.iter().filter(|t| t.to == a).map(decode).collect();
        assert_eq!(to_b.len(), 2);
        assert!(
            matches!(&to_b[1], FromServer::Peer { name, public, .. } if name == "alice" && *public == a)
        );
        assert_eq!(to_a.len(), 1);
        assert!(matches!(&to_a[0], FromServer::Peer { name, public, private, nat, relay: None }
            if name == "bob" && *public == b && private == &vec![addr("192.0.2.10:5000")]
               && nat.as_deref() == Some("Full Cone")));
        // A refresh from the same endpoint tells the others nothing new.
        let out = handle(&mut s, now, b, &register("r", "bob"));
        assert!(out.iter().all(|t| t.to == b));
        // A restart (new port) re-introduces bob to alice.
        let b2 = addr("198.51.100.12:2001");
        let out = handle(&mut s, now, b2, &register("r", "bob"));
        assert!(
            out.iter().any(|t| t.to == a
                && matches!(decode(t), FromServer::Peer { public, .. } if public == b2))
        );
        assert_eq!(s.registrations(), 2);
    }

    #[test]
    fn registrations_expire_without_refresh() {
        let mut s = server();
        let now = Instant::now();
        handle(&mut s, now, addr("198.51.100.11:1"), &register("r", "a"));
        assert_eq!(s.poll_timeout(), Some(now + REGISTRATION_TTL));
        s.handle_timeout(now + REGISTRATION_TTL - std::time::Duration::from_secs(1));
        assert_eq!(s.registrations(), 1);
        s.handle_timeout(now + REGISTRATION_TTL);
        assert_eq!(s.registrations(), 0);
        assert_eq!(s.poll_timeout(), None);
        // A refresh moves the expiry; the other member still expires on time.
        let second = std::time::Duration::from_secs(1);
        let later = now + REGISTRATION_TTL + second;
        handle(&mut s, later, addr("198.51.100.11:1"), &register("r", "a"));
        handle(&mut s, later, addr("198.51.100.12:1"), &register("r", "b"));
        handle(&mut s, later + 10 * second, addr("198.51.100.11:1"), &register("r", "a"));
        assert_eq!(s.poll_timeout(), Some(later + REGISTRATION_TTL));
        s.handle_timeout(later + REGISTRATION_TTL);
        assert_eq!(s.registrations(), 1);
        assert_eq!(s.poll_timeout(), Some(later + 10 * second + REGISTRATION_TTL));
        s.handle_timeout(later + 10 * second + REGISTRATION_TTL);
        assert_eq!((s.registrations(), s.poll_timeout()), (0, None));
    }

    #[test]
    fn answers_stun_binding_requests() {
        let mut s = server();
        let from = addr("198.51.100.9:4242");
        let req = stun::binding_request([9; 12], Change::default()).unwrap();
        let out = handle(&mut s, Instant::now(), from, &req);
        assert_eq!(out.len(), 1);
        assert_eq!(
            stun::parse(&out[0].payload),
            Some(Stun::BindingSuccess { txid: [9; 12], mapped: from, other: None })
        );
        // Without an alternate address a CHANGE-REQUEST gets an error, not a wrong answer.
        let req = stun::binding_request([8; 12], Change { ip: true, port: false }).unwrap();
        let out = handle(&mut s, Instant::now(), from, &req);
        assert_eq!(stun::parse(&out[0].payload), Some(Stun::BindingError { txid: [8; 12] }));
    }

    #[test]
    fn alternate_address_serves_rfc5780() {
        let addresses = Addresses { primary: addr(PRIMARY), alt: Some(addr("198.51.100.2:7778")) };
        assert_eq!(addresses.all().len(), 4);
        let mut s = Server::new(addresses);
        let from = addr("203.0.113.9:5000");
        let now = Instant::now();
        let ask = |s: &mut Server, local: &str, ip: bool, port: bool| {
            let req = stun::binding_request([1; 12], Change { ip, port }).unwrap();
            let replies = s.handle(now, addr(local), from, &req);
            assert_eq!(replies.len(), 1);
            let other = match stun::parse(&replies[0].transmit.payload) {
                Some(Stun::BindingSuccess { other, .. }) => other,
                other => panic!("{other:?}"),
            };
            (replies[0].via, other)
        };
        assert_eq!(
            ask(&mut s, PRIMARY, false, false),
            (addr(PRIMARY), Some(addr("198.51.100.2:7778")))
        );
        assert_eq!(ask(&mut s, PRIMARY, true, true).0, addr("198.51.100.2:7778"));
        assert_eq!(ask(&mut s, PRIMARY, false, true).0, addr("198.51.100.1:7778"));
        assert_eq!(ask(&mut s, PRIMARY, true, false).0, addr("198.51.100.2:7777"));
        // Asked on the alternate IP, "change IP" means back to the primary one.
        assert_eq!(ask(&mut s, "198.51.100.2:7777", true, false).0, addr("198.51.100.1:7777"));
        assert_eq!(ask(&mut s, "198.51.100.2:7778", false, false).1, Some(addr(PRIMARY)));
        // Rendezvous only on the primary address.
        assert!(s.handle(now, addr("198.51.100.2:7778"), from, &register("r", "x")).is_empty());
        assert_eq!(s.registrations(), 0);
    }

    #[test]
    fn garbage_and_bad_registrations_are_counted_not_fatal() {
        let mut s = server();
        let now = Instant::now();
        let from = addr("198.51.100.11:1");
        assert!(handle(&mut s, now, from, &[0u8; 1300]).is_empty());
        assert!(handle(&mut s, now, from, b"{not json").is_empty());
        assert!(handle(&mut s, now, from, b"{\"op\":\"register\"}").is_empty());
        assert!(handle(&mut s, now, from, b"gAAAAAxyz").is_empty());
        assert!(handle(&mut s, now, from, &[]).is_empty());
        let out = handle(&mut s, now, from, &register("", "a"));
        assert!(matches!(decode(&out[0]), FromServer::Refused { .. }));
        let out = handle(&mut s, now, from, &register("r", &"n".repeat(40)));
        assert!(matches!(decode(&out[0]), FromServer::Refused { .. }));
        assert_eq!(s.drops(), ServerDrops { oversized: 1, malformed: 4, refused: 2 });
        assert_eq!(s.registrations(), 0);
    }

    #[test]
    fn full_room_is_refused() {
        let mut s = server();
        let now = Instant::now();
        for i in 0..MAX_ROOM_MEMBERS {
            let from = addr(&format!("198.51.100.11:{}", 1000 + i));
            handle(&mut s, now, from, &register("r", &format!("p{i}")));
        }
        let out = handle(&mut s, now, addr("198.51.100.12:1"), &register("r", "late"));
        assert!(out.iter().any(|t| matches!(decode(t), FromServer::Refused { .. })));
        assert_eq!(s.registrations(), MAX_ROOM_MEMBERS);
    }

    fn offer(answers: &[FromServer]) -> Option<TurnOffer> {
        answers.iter().find_map(|a| match a {
            FromServer::Registered { turn, .. } => Some(turn.clone()),
            _ => None,
        })?
    }

    #[test]
    fn registered_peers_get_short_lived_rest_credentials_for_the_relay() {
        use base64::Engine as _;
        use hmac::{Hmac, Mac};
        let secret = b"coturn static-auth-secret".to_vec();
        let turn = addr("198.51.100.3:3478");
        let t0 = Instant::now();
        let unix0 = 1_900_000_000;
        let mut s = server().with_turn(TurnRelay::new(turn, secret.clone()), t0, unix0);
        let (a, b) = (addr("198.51.100.11:1"), addr("198.51.100.12:2"));
        let reg = |relay: Option<SocketAddr>| ToServer::Register {
            room: "r".into(),
            name: "ann".into(),
            private: Vec::new(),
            nat: None,
            relay,
        };
        let first = offer(&ask(&mut s, t0, a, reg(None))).expect("credentials with the relay");
        assert_eq!(first.server, turn);
        let (expiry, user) = first.username.split_once(':').unwrap();
        assert_eq!(expiry.parse::<u64>().unwrap(), unix0 + TURN_CREDENTIAL_TTL.as_secs());
        assert!(user.len() == 16 && user.chars().all(|c| c.is_ascii_hexdigit()), "{user}");
        assert!(!first.username.contains("ann"), "the user id does not give the name away");
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&secret).unwrap();
        mac.update(first.username.as_bytes());
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(first.credential, want, "coturn's REST password");
        assert_eq!(first.credential.len(), 28);
        assert_eq!(first.ttl_secs, TURN_CREDENTIAL_TTL.as_secs());
        // Registering again (every 20 s) reuses them until half their life has passed.
        let half = TURN_CREDENTIAL_TTL.as_secs() / 2;
        let mut at = 0;
        while at + 20 < half {
            at += 20;
            let again = offer(&ask(&mut s, t0 + Duration::from_secs(at), a, reg(None))).unwrap();
            assert_eq!(again.username, first.username, "at {at} s");
            assert_eq!(again.ttl_secs, TURN_CREDENTIAL_TTL.as_secs() - at);
        }
        let much_later = t0 + Duration::from_secs(at + 20);
        let fresh = offer(&ask(&mut s, much_later, a, reg(None))).unwrap();
        assert_ne!(fresh.username, first.username);
        assert_eq!(fresh.username.split_once(':').unwrap().1, user, "the same user id");
        // A relayed address a member announces reaches the others, and a change is news.
        let relayed = addr("198.51.100.3:49153");
        ask(
            &mut s,
            much_later,
            b,
            ToServer::Register {
                room: "r".into(),
                name: "bob".into(),
                private: Vec::new(),
                nat: None,
                relay: None,
            },
        );
        let out = handle(&mut s, much_later, a, &serde_json::to_vec(&reg(Some(relayed))).unwrap());
        assert!(out.iter().any(|t| t.to == b
            && matches!(decode(t), FromServer::Peer { relay: Some(r), .. } if r == relayed)));
        // Pairing by code never hands out relay credentials: only registered members get them.
        let np = ask(
            &mut s,
            much_later,
            addr("198.51.100.13:3"),
            ToServer::Allocate { name: "carol".into() },
        );
        assert!(np.iter().all(|a| !matches!(a, FromServer::Registered { .. })), "{np:?}");
        // The secret never shows in debug output (logs).
        let shown = format!("{s:?}");
        assert!(!shown.contains("static-auth-secret"), "{shown}");
        assert!(!format!("{first:?}").contains(&first.credential));
    }

    #[test]
    fn without_a_relay_registrations_carry_no_credentials() {
        let mut s = server();
        let out = ask(
            &mut s,
            Instant::now(),
            addr("198.51.100.11:1"),
            ToServer::Register {
                room: "r".into(),
                name: "ann".into(),
                private: Vec::new(),
                nat: None,
                relay: None,
            },
        );
        assert_eq!(offer(&out), None);
    }

    #[test]
    fn word_that_a_nat_is_open_goes_only_between_members_of_a_room() {
        let mut s = server();
        let now = Instant::now();
        let (a, b, stranger) =
            (addr("198.51.100.11:1"), addr("198.51.100.12:2"), addr("203.0.113.9:9"));
        handle(&mut s, now, a, &register("r", "ann"));
        handle(&mut s, now, b, &register("r", "bob"));
        let opened = |room: &str, to: &str| {
            serde_json::to_vec(&ToServer::Opened { room: room.into(), to: to.into() }).unwrap()
        };
        let out = handle(&mut s, now, a, &opened("r", "bob"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, b);
        assert_eq!(decode(&out[0]), FromServer::Opened { from: "ann".into() });
        // Not from outside the room, not to oneself, not to nobody, and no answer to the sender.
        assert!(handle(&mut s, now, stranger, &opened("r", "bob")).is_empty());
        assert!(handle(&mut s, now, a, &opened("r", "ann")).is_empty());
        assert!(handle(&mut s, now, a, &opened("r", "carol")).is_empty());
        assert!(handle(&mut s, now, a, &opened("elsewhere", "bob")).is_empty());
    }

    #[test]
    fn stun_answers_follow_the_rfcs_for_unknown_attributes_and_classic_clients() {
        let mut s = server();
        let now = Instant::now();
        let from = addr("198.51.100.11:1");
        let mut req = stun::binding_request([5; 12], Change::default()).unwrap();
        req.extend_from_slice(&[0x00, 0x31, 0x00, 0x04, 1, 2, 3, 4]);
        let len = u16::try_from(req.len() - 20).unwrap();
        req[2..4].copy_from_slice(&len.to_be_bytes());
        let out = handle(&mut s, now, from, &req);
        assert_eq!(out.len(), 1);
        assert_eq!(stun::parse(&out[0].payload), Some(Stun::BindingError { txid: [5; 12] }));
        // An RFC 3489 request (no magic cookie) gets a classic answer with MAPPED-ADDRESS.
        let classic = [&[0x00, 0x01, 0x00, 0x00][..], &[9; 16]].concat();
        let out = handle(&mut s, now, from, &classic);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].payload[..2], &[0x01, 0x01]);
        assert_eq!(&out[0].payload[4..20], &[9; 16]);
        assert_eq!(&out[0].payload[20..24], &[0, 1, 0, 8]);
    }
}
