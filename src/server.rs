//! The rendezvous server: introduces peers in a room to each other and answers STUN Binding
//! Requests on the same port. With an alternate address (`--alt`) it also serves RFC 5780
//! behaviour discovery: it listens on every combination of the two IPs and two ports, answers
//! CHANGE-REQUEST from the asked-for one, and names the alternate in OTHER-ADDRESS.
//! A sans-IO core (`Server::handle`) under a thin tokio loop (`run`). It never sees chat
//! content or keys: peers speak to each other directly.

mod limits;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;
use tokio::time::sleep_until;

use crate::consts::{
    CODE_TTL, MAX_DATAGRAM_BYTES, MAX_MAIL_BODY_BYTES, MAX_NAME_CHARS, MAX_PHASE_CHARS,
    MAX_POSTS_PER_MEMBER, MAX_PRIVATE_ENDPOINTS, MAX_ROOM_CHARS, MAX_ROOM_MEMBERS,
    MAX_ROOMS_PER_REGISTER, NAMEPLATE_PREFIX, RECV_BUFFER_BYTES, REGISTRATION_TTL, SERVER_BATCH,
    SERVER_DROPS_REPORT_EVERY, SOURCE_RATE, TURN_CREDENTIAL_TTL,
};
use crate::proto::Transmit;
use crate::proto::stun::{self, Stun};
use crate::proto::wire::{self, Class, FromServer, Membership, ToServer, TurnOffer};
use limits::{Entry, Limits, NoRoom, Pool, source_of};

/// Datagrams the server dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerDrops {
    /// Larger than `MAX_DATAGRAM_BYTES`.
    pub oversized: u64,
    /// Not STUN and not a register request we could read.
    pub malformed: u64,
    /// Readable, but refused (bad room or name, full room, full server, a quota).
    pub refused: u64,
    /// Over the sender's rate (`SOURCE_RATE`), dropped before parsing.
    pub limited: u64,
    /// New entries asked for under load without a valid cookie (answered with one; a claim's
    /// routine first cookie is not counted).
    pub cookies: u64,
    /// Entries removed early to make room for a source holding less (fair eviction).
    pub evicted: u64,
}

impl ServerDrops {
    /// The counts that grew since `before`, in words ("12,345 over their sender's rate, 3
    /// malformed"); empty when none did.
    pub fn since(&self, before: &Self) -> String {
        // What each count says, with one and with more.
        let rate = "over their sender's rate";
        let parts = [
            (self.limited.saturating_sub(before.limited), rate, rate),
            (self.malformed.saturating_sub(before.malformed), "malformed", "malformed"),
            (self.oversized.saturating_sub(before.oversized), "oversized", "oversized"),
            (self.refused.saturating_sub(before.refused), "refused", "refused"),
            (
                self.cookies.saturating_sub(before.cookies),
                "answered with a cookie",
                "answered with a cookie",
            ),
            (
                self.evicted.saturating_sub(before.evicted),
                "entry evicted for fairness",
                "entries evicted for fairness",
            ),
        ];
        let words: Vec<String> = parts
            .iter()
            .filter(|(n, ..)| *n > 0)
            .map(|&(n, one, many)| crate::text::count(n, one, many))
            .collect();
        words.join(", ")
    }
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    public: SocketAddr,
    private: Vec<SocketAddr>,
    nat: Option<String>,
    relay: Option<SocketAddr>,
    expires: Instant,
    /// The expiry its entries (in `Server::expiries` and the limits) are filed under: its
    /// expiry when it was last filed, at most `expires`. A refresh moves only `expires`;
    /// the entries are filed again when they come due (`Server::expire`).
    filed: Instant,
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
    /// How it is introduced to the other members of `room`.
    fn introduction(&self, room: &str) -> FromServer {
        FromServer::Peer {
            name: self.name.clone(),
            public: self.public,
            private: self.private.clone(),
            nat: self.nat.clone(),
            relay: self.relay,
            room: Some(room.to_owned()),
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
    /// (expiry, room, name) of every registration as filed (see `Member::filed`), soonest
    /// first: expiring costs what comes due, not a sweep of every room.
    expiries: BTreeSet<(Instant, String, String)>,
    /// What members left for each other, by room.
    mail: HashMap<String, Vec<Post>>,
    /// Nameplates someone has claimed (each takes one claim).
    claimed: HashSet<String>,
    /// How long a nameplate lives.
    code_ttl: Duration,
    /// Rate limits, quotas and cookies.
    limits: Limits,
    /// Nameplate numbers and cookie secrets.
    rng: StdRng,
    drops: ServerDrops,
    registered_total: u64,
    stun_answered: u64,
    /// The relay offered to registered peers, and the wall clock's reading at an instant (TURN
    /// credentials carry Unix times).
    turn: Option<(TurnRelay, Instant, u64)>,
}

impl Server {
    /// An empty server on `addresses`, its randomness (nameplate numbers, cookie secrets)
    /// seeded with 0: tests replay; a served server takes `with_seed`.
    pub fn new(addresses: Addresses) -> Self {
        let mut rng = StdRng::seed_from_u64(0);
        Self {
            addresses,
            rooms: HashMap::new(),
            expiries: BTreeSet::new(),
            mail: HashMap::new(),
            claimed: HashSet::new(),
            code_ttl: CODE_TTL,
            limits: Limits::new(&mut rng),
            rng,
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

    /// Draws nameplates and secrets from `seed` (a served server: a random one).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = StdRng::seed_from_u64(seed);
        self.limits = Limits::new(&mut self.rng);
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

    /// Live registrations across all rooms and nameplates.
    pub fn registrations(&self) -> usize {
        self.limits.live(Pool::Rooms) + self.limits.live(Pool::Nameplates)
    }

    /// Sources (addresses, IPv6 /64s) holding a registration or nameplate.
    pub fn holders(&self) -> usize {
        self.limits.holders()
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
        self.limits.tick(now, &mut self.rng);
        let source = source_of(from);
        if !self.limits.allow(now, source) {
            self.drops.limited += 1;
            // Told, rarely, so a busy NAT's users learn why; every other excess datagram
            // costs one hash and gets no answer.
            let control =
                wire::classify(bytes) == Class::Control && local == self.addresses.primary;
            if control && self.limits.notice_due(now, source) {
                let reason = format!(
                    "too many requests from your address (more than {SOURCE_RATE} a second): the server ignores it for a while"
                );
                let transmit = encode(from, &FromServer::Refused { reason, room: None });
                return transmit
                    .map(|transmit| Reply { via: local, transmit })
                    .into_iter()
                    .collect();
            }
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
                            ToServer::Register {
                                room,
                                name,
                                private,
                                nat,
                                relay,
                                cookie,
                                also,
                            } => {
                                let about = Endpoints { private, nat, relay };
                                let first = Membership { room, name };
                                let rooms = std::iter::once(first).chain(also).collect();
                                self.register(now, from, rooms, &about, cookie.as_deref())
                            }
                            ToServer::Allocate { name, cookie } => {
                                self.allocate(now, from, name, cookie.as_deref())
                            }
                            ToServer::Claim { nameplate, name, cookie } => {
                                self.claim(now, from, nameplate, name, cookie.as_deref())
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
            Class::Control | Class::Token(_) | Class::Tagged { .. } => {
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

    /// Forgets the registrations that expired by `now`; one refreshed since it was filed is
    /// filed again under its expiry instead.
    fn expire(&mut self, now: Instant) {
        while self.expiries.first().is_some_and(|(at, _, _)| *at <= now) {
            let Some(entry) = self.expiries.pop_first() else { break };
            match self.refreshed(&entry) {
                Some(expires) if expires > now => self.refile(entry, expires),
                _ => self.forget(&entry),
            }
        }
    }

    /// The expiry of the member `entry` names when a refresh moved it past the entry's.
    fn refreshed(&self, entry: &Entry) -> Option<Instant> {
        let (filed, room, name) = entry;
        let member = self.rooms.get(room)?.iter().find(|m| &m.name == name)?;
        (member.expires > *filed).then_some(member.expires)
    }

    /// Files `entry` (already taken out of `expiries`) again under `expires`, in the expiries
    /// and in its source's holdings, moving its strings.
    fn refile(&mut self, entry: Entry, expires: Instant) {
        let Some(member) =
            self.rooms.get_mut(&entry.1).and_then(|ms| ms.iter_mut().find(|m| m.name == entry.2))
        else {
            return;
        };
        member.filed = expires;
        let (pool, source) = (pool_of(&entry.1), source_of(member.public));
        self.limits.release(pool, source, &entry);
        let (_, room, name) = entry;
        let entry = (expires, room, name);
        self.limits.hold(pool, source, entry.clone());
        self.expiries.insert(entry);
    }

    /// Removes the member `entry` names (already taken out of `expiries`), its posts, and its
    /// room when it was the last.
    fn forget(&mut self, entry: &Entry) {
        let (_, room, name) = entry;
        let Some(members) = self.rooms.get_mut(room) else { return };
        let Some(index) = members.iter().position(|m| &m.name == name) else { return };
        let member = members.remove(index);
        self.limits.release(pool_of(room), source_of(member.public), entry);
        if members.is_empty() {
            self.rooms.remove(room);
            self.mail.remove(room);
            self.claimed.remove(room);
        } else if let Some(posts) = self.mail.get_mut(room) {
            posts.retain(|p| &p.from != name);
        }
    }

    fn refuse(&mut self, to: SocketAddr, reason: String) -> Vec<Transmit> {
        self.refuse_in(to, reason, None)
    }

    /// A refusal about `room` (named in the answer) or about the whole request.
    fn refuse_in(&mut self, to: SocketAddr, reason: String, room: Option<&str>) -> Vec<Transmit> {
        self.drops.refused += 1;
        let room = room.map(str::to_owned);
        encode(to, &FromServer::Refused { reason, room }).into_iter().collect()
    }

    /// Asks `to` to repeat its request with a cookie (no state kept).
    fn ask_cookie(&self, to: SocketAddr) -> Vec<Transmit> {
        let cookie = self.limits.cookie(to);
        encode(to, &FromServer::Cookie { cookie }).into_iter().collect()
    }

    fn refusal(&mut self, to: SocketAddr, refusal: Refusal, room: Option<&str>) -> Vec<Transmit> {
        match refusal {
            Refusal::Reason(reason) => self.refuse_in(to, reason, room),
            Refusal::Cookie => {
                self.drops.cookies += 1;
                self.ask_cookie(to)
            }
        }
    }

    /// Joins (or refreshes) every room of `rooms` from `from`, with the same endpoints: at
    /// most `MAX_ROOMS_PER_REGISTER`. Each room is answered on its own, its answers naming it.
    fn register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        rooms: Vec<Membership>,
        about: &Endpoints,
        cookie: Option<&str>,
    ) -> Vec<Transmit> {
        if rooms.len() > MAX_ROOMS_PER_REGISTER {
            return self.refuse(
                from,
                format!("at most {MAX_ROOMS_PER_REGISTER} rooms in one registration"),
            );
        }
        let mut out = Vec::new();
        for Membership { room, name } in rooms {
            out.extend(self.register_in(now, from, room, name, about, cookie));
        }
        out
    }

    fn register_in(
        &mut self,
        now: Instant,
        from: SocketAddr,
        room: String,
        name: String,
        about: &Endpoints,
        cookie: Option<&str>,
    ) -> Vec<Transmit> {
        if room.starts_with(NAMEPLATE_PREFIX) {
            let reason = "room names starting with np- are kept for pairing codes".to_owned();
            return self.refuse_in(from, reason, Some(&room));
        }
        let about = about.clone();
        let admission = Admission { name: name.clone(), about, ttl: REGISTRATION_TTL, cookie };
        let changed = match self.admit(now, from, &room, admission) {
            Ok(changed) => changed,
            Err(refusal) => return self.refusal(from, refusal, Some(&room)),
        };
        let turn = self.offer_turn(now, &room, &name);
        let members = self.rooms.get(&room).map(Vec::as_slice).unwrap_or_default();
        let mut out: Vec<Transmit> = Vec::new();
        let registered = FromServer::Registered {
            public: from,
            ttl_secs: REGISTRATION_TTL.as_secs(),
            turn,
            room: Some(room.clone()),
        };
        out.extend(encode(from, &registered));
        let Some(me) = members.iter().find(|m| m.name == name) else { return out };
        for other in members.iter().filter(|m| m.name != name) {
            out.extend(encode(from, &other.introduction(&room)));
            if changed {
                out.extend(encode(other.public, &me.introduction(&room)));
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

    /// Puts a member in `room` (or refreshes it); true when it is new or its endpoints changed
    /// (others should hear of it). A member back at a new address (a restart) loses its old
    /// posts. A new entry, or one moving to another address, needs a cookie under load and
    /// counts against its source's quota; with its pool full it evicts the soonest-expiring
    /// entry of a source holding at least two more, or is refused.
    fn admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        room: &str,
        admission: Admission<'_>,
    ) -> Result<bool, Refusal> {
        let Admission { name, about, ttl, cookie } = admission;
        let Endpoints { mut private, nat, relay } = about;
        if room.is_empty() || room.chars().count() > MAX_ROOM_CHARS {
            return Err(format!("room names are 1 to {MAX_ROOM_CHARS} characters").into());
        }
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(format!("names are 1 to {MAX_NAME_CHARS} characters").into());
        }
        private.truncate(MAX_PRIVATE_ENDPOINTS);
        let pool = pool_of(room);
        let source = source_of(from);
        let find = |rooms: &HashMap<String, Vec<Member>>| {
            rooms.get(room).and_then(|ms| ms.iter().find(|m| m.name == name)).map(|m| m.public)
        };
        let known_at = find(&self.rooms);
        if known_at != Some(from)
            && self.limits.under_load()
            && !self.limits.cookie_ok(from, cookie)
        {
            return Err(Refusal::Cookie);
        }
        if known_at.is_none() && self.rooms.get(room).map_or(0, Vec::len) >= MAX_ROOM_MEMBERS {
            return Err(format!("room is full ({MAX_ROOM_MEMBERS} members)").into());
        }
        if known_at.map(source_of) != Some(source) {
            // The victim is the soonest to expire: one refreshed since it was filed is filed
            // again and the next asked for (at most the holder's entries, each once).
            let mut room_for = self.limits.room_for(pool, source);
            while let Ok(Some(victim)) = &room_for
                && let Some(expires) = self.refreshed(victim)
            {
                let victim = victim.clone();
                self.expiries.remove(&victim);
                self.refile(victim, expires);
                room_for = self.limits.room_for(pool, source);
            }
            match room_for {
                Ok(None) => {}
                Ok(Some(victim)) => {
                    self.expiries.remove(&victim);
                    self.forget(&victim);
                    self.drops.evicted += 1;
                }
                Err(NoRoom::SourceQuota(most)) => {
                    return Err(format!(
                        "your address already holds {most} {}, the most one address may; try again when one has expired",
                        match pool {
                            Pool::Rooms => "registrations",
                            Pool::Nameplates => "pairing codes",
                        }
                    )
                    .into());
                }
                Err(NoRoom::Full) => {
                    return Err("server is full; try again later".to_owned().into());
                }
            }
            self.limits.admitted();
        }
        let expires = now + ttl;
        let nat = nat.map(|n| n.chars().take(MAX_NAME_CHARS).collect::<String>());
        self.registered_total += 1;
        // A refresh from where it was: only its expiry moves; its entries stay filed under the
        // earlier one until that comes (`expire` files them again then), so the registrations
        // online peers repeat cost no ordered-set work and no copies.
        if known_at == Some(from)
            && let Some(member) =
                self.rooms.get_mut(room).and_then(|ms| ms.iter_mut().find(|m| m.name == name))
            && expires >= member.filed
        {
            member.expires = expires;
            let changed = member.private != private || member.nat != nat || member.relay != relay;
            if changed {
                (member.private, member.nat, member.relay) = (private, nat, relay);
            }
            return Ok(changed);
        }
        let existing = self.rooms.get(room).and_then(|ms| ms.iter().position(|m| m.name == name));
        if let Some(old) = existing.and_then(|i| self.rooms.get(room)?.get(i)) {
            let entry = (old.filed, room.to_owned(), name.clone());
            self.limits.release(pool, source_of(old.public), &entry);
            self.expiries.remove(&entry);
        }
        let entry = (expires, room.to_owned(), name.clone());
        self.limits.hold(pool, source, entry.clone());
        self.expiries.insert(entry);
        let members = self.rooms.entry(room.to_owned()).or_default();
        let mut me =
            Member { name, public: from, private, nat, relay, expires, filed: expires, turn: None };
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

    /// A fresh nameplate with the asker in it: a number drawn at random from a range at least
    /// 100 times the number of nameplates live (three digits while fewer than ten are), so a
    /// guessed number is a live code at most 1 % of the time.
    fn allocate(
        &mut self,
        now: Instant,
        from: SocketAddr,
        name: String,
        cookie: Option<&str>,
    ) -> Vec<Transmit> {
        let range = nameplate_range(self.limits.live(Pool::Nameplates));
        // At most 1 % of the range is taken: 16 draws all missing is a 1-in-10^32 event.
        let free = (0..16)
            .map(|_| self.rng.random_range(1..=range))
            .find(|n| !self.rooms.contains_key(&format!("{NAMEPLATE_PREFIX}{n}")));
        let Some(number) = free else {
            return self.refuse(from, "server is full; try again later".to_owned());
        };
        let room = format!("{NAMEPLATE_PREFIX}{number}");
        let admission = Admission { name, about: Endpoints::default(), ttl: self.code_ttl, cookie };
        if let Err(refusal) = self.admit(now, from, &room, admission) {
            return self.refusal(from, refusal, None);
        }
        let nameplate = number.to_string();
        let ttl_secs = self.code_ttl.as_secs();
        encode(from, &FromServer::Nameplate { nameplate, ttl_secs }).into_iter().collect()
    }

    /// Joins a friend's nameplate: once, while it lives, from an address that proved with a
    /// cookie that it receives there; every new claim spends one of the source's claims
    /// (`SOURCE_CLAIM_BURST`). The nameplate's owner is told who claimed it.
    fn claim(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nameplate: String,
        name: String,
        cookie: Option<&str>,
    ) -> Vec<Transmit> {
        if !self.limits.cookie_ok(from, cookie) {
            return self.ask_cookie(from);
        }
        let room = format!("{NAMEPLATE_PREFIX}{nameplate}");
        let members = self.rooms.get(&room).map(Vec::as_slice).unwrap_or_default();
        let again = members.iter().any(|m| m.name == name && m.public == from);
        if !again {
            if !self.limits.claim(now, source_of(from)) {
                return self.refuse(
                    from,
                    "too many codes tried from your address: wait a minute, then check the code and try again".to_owned(),
                );
            }
            let members = self.rooms.get(&room).map(Vec::as_slice).unwrap_or_default();
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
        let members = self.rooms.get(&room).map(Vec::as_slice).unwrap_or_default();
        let expires_in = members
            .iter()
            .map(|m| m.expires.saturating_duration_since(now))
            .min()
            .unwrap_or(self.code_ttl);
        let owners: Vec<SocketAddr> =
            members.iter().filter(|m| m.name != name).map(|m| m.public).collect();
        let admission =
            Admission { name: name.clone(), about: Endpoints::default(), ttl: expires_in, cookie };
        if let Err(refusal) = self.admit(now, from, &room, admission) {
            return self.refusal(from, refusal, None);
        }
        self.claimed.insert(room);
        let mut out: Vec<Transmit> =
            encode(from, &FromServer::Claimed { nameplate: nameplate.clone() })
                .into_iter()
                .collect();
        if !again {
            let joined = FromServer::Joined { nameplate, name };
            out.extend(owners.into_iter().filter_map(|owner| encode(owner, &joined)));
        }
        out
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
            let reason = format!("not a member of {room}: register first");
            return self.refuse_in(from, reason, Some(&room));
        };
        if phase.len() > MAX_PHASE_CHARS || body.len() > MAX_MAIL_BODY_BYTES {
            return self.refuse_in(from, "post too long".to_owned(), Some(&room));
        }
        let posts = self.mail.entry(room.clone()).or_default();
        posts.retain(|p| !(p.from == name && p.phase == phase));
        if posts.iter().filter(|p| p.from == name).count() >= MAX_POSTS_PER_MEMBER {
            return self.refuse_in(from, "too many posts".to_owned(), Some(&room));
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
                let opened = FromServer::Opened { from: name, room: Some(room.to_owned()) };
                encode(member.public, &opened).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    fn fetch(&mut self, from: SocketAddr, room: String, phase: String) -> Vec<Transmit> {
        let Some(name) = self.member_at(&room, from) else {
            let reason = format!("not a member of {room}: register first");
            return self.refuse_in(from, reason, Some(&room));
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

/// Which pool a room's entries count in.
fn pool_of(room: &str) -> Pool {
    if room.starts_with(NAMEPLATE_PREFIX) { Pool::Nameplates } else { Pool::Rooms }
}

/// The numbers nameplates are drawn from, 1 to this: the smallest power of ten, less one, of
/// at least three digits and at least 100 times the nameplates live (with one more).
fn nameplate_range(live: usize) -> u32 {
    let wanted = u64::try_from(live).unwrap_or(u64::MAX).saturating_add(1).saturating_mul(100);
    let mut range: u64 = 1_000;
    while range < wanted && range < 1_000_000 {
        range *= 10;
    }
    u32::try_from(range - 1).unwrap_or(999_999)
}

/// A request for an entry in a room.
struct Admission<'a> {
    name: String,
    about: Endpoints,
    ttl: Duration,
    cookie: Option<&'a str>,
}

/// Why an entry was not admitted.
enum Refusal {
    /// In words, for the user.
    Reason(String),
    /// Under load and without a valid cookie: ask for one.
    Cookie,
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Self::Reason(reason)
    }
}

/// What a member says about how to reach it.
#[derive(Debug, Default, Clone)]
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
    let mut server = Server::new(addresses).with_seed(rand::random()).with_code_ttl(code_ttl);
    if let Some(relay) = turn {
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        server = server.with_turn(relay, Instant::now(), unix_now);
    }
    let locals = sockets.iter().map(|s| s.local_addr()).collect::<std::io::Result<Vec<_>>>()?;
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    // Which socket is tried first for the next datagram (in turn, so none starves).
    let mut first = 0;
    tokio::pin!(shutdown);
    // What was dropped is said once a second at most, in one line, however many datagrams.
    let mut report = tokio::time::interval(SERVER_DROPS_REPORT_EVERY);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = ServerDrops::default();
    // One timer, moved only when the core's deadline moves (not one made per datagram).
    let idle = || Instant::now() + REGISTRATION_TTL;
    let timer = sleep_until(server.poll_timeout().unwrap_or_else(idle).into());
    tokio::pin!(timer);
    loop {
        let deadline = server.poll_timeout().unwrap_or_else(idle).into();
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            _ = report.tick() => {
                let words = server.drops.since(&reported);
                if !words.is_empty() {
                    tracing::info!("in the last second: {words}");
                    reported = server.drops;
                }
            }
            () = &mut timer => server.handle_timeout(Instant::now()),
            (index, received) = recv_any(&sockets, &mut buf, first) => {
                first = (index + 1) % sockets.len();
                serve(&mut server, &sockets, &locals, index, received, &buf).await;
                // Under load more are waiting: take up to a batch of them without going back
                // through the select (timers and shutdown are looked at between batches).
                for _ in 1..SERVER_BATCH {
                    let Some((index, received)) = try_recv_any(&sockets, &mut buf, first) else {
                        break;
                    };
                    first = (index + 1) % sockets.len();
                    serve(&mut server, &sockets, &locals, index, received, &buf).await;
                }
            }
        }
    }
}

/// Hands one datagram (`received` on `sockets[index]`, its bytes in `buf`) to the core and
/// sends what it answers, each from the local address the core names.
async fn serve(
    server: &mut Server,
    sockets: &[Arc<UdpSocket>],
    locals: &[SocketAddr],
    index: usize,
    received: std::io::Result<(usize, SocketAddr)>,
    buf: &[u8],
) {
    let (len, from) = match received {
        Ok(received) => received,
        // ICMP errors from earlier sends surface here on some systems; not fatal.
        Err(error) => {
            tracing::debug!(%error, "recv_from failed");
            return;
        }
    };
    for reply in server.handle(Instant::now(), locals[index], from, &buf[..len]) {
        let Some(via) = locals.iter().position(|l| *l == reply.via) else { continue };
        let Transmit { to, payload, .. } = reply.transmit;
        // Sent at once when the socket's buffer has room (nearly always), else when it has.
        let sent = match sockets[via].try_send_to(&payload, to) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                sockets[via].send_to(&payload, to).await
            }
            sent => sent,
        };
        if let Err(error) = sent {
            tracing::debug!(%error, %to, "send_to failed");
        }
    }
}

/// Waits for a datagram on any of `sockets`, trying them in turn from `first`; returns which
/// socket it came to, and its length (the bytes in `buf`) and sender. Read in place: no copy,
/// no task between the socket and the server.
async fn recv_any(
    sockets: &[Arc<UdpSocket>],
    buf: &mut [u8],
    first: usize,
) -> (usize, std::io::Result<(usize, SocketAddr)>) {
    std::future::poll_fn(|cx| {
        for k in 0..sockets.len() {
            let index = (first + k) % sockets.len();
            let mut read = tokio::io::ReadBuf::new(&mut *buf);
            if let std::task::Poll::Ready(result) = sockets[index].poll_recv_from(cx, &mut read) {
                let len = read.filled().len();
                return std::task::Poll::Ready((index, result.map(|from| (len, from))));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// A datagram already waiting on any of `sockets`, tried in turn from `first`, without
/// waiting: as `recv_any`, or `None` when none has one.
fn try_recv_any(
    sockets: &[Arc<UdpSocket>],
    buf: &mut [u8],
    first: usize,
) -> Option<(usize, std::io::Result<(usize, SocketAddr)>)> {
    (0..sockets.len()).map(|k| (first + k) % sockets.len()).find_map(|index| {
        match sockets[index].try_recv_from(buf) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => None,
            received => Some((index, received)),
        }
    })
}

#[cfg(test)]
mod tests;
