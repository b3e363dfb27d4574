//! Session tests: peers and the rendezvous server over a simulated network with simulated
//! time. No sockets, no sleeping; a minute of protocol runs in microseconds.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::consts::{
    MAX_MESSAGE_BYTES, MAX_PEERS, MAX_PLAINTEXT_BYTES, MAX_ROOM_MEMBERS, OFFLINE_AFTER,
    PUNCH_WINDOW, REGISTRATION_TTL,
};
use crate::proto::crypto::{Cipher, generate_key};
use crate::proto::turn::sim::FakeTurn;
use crate::server::{Addresses, Server, TurnRelay};

use crate::proto::testnet::{LATENCY, SERVER, TURN_SECRET, TURN_SERVER, addr};

fn wall() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
}

struct Node {
    addr: SocketAddr,
    session: Session,
    events: Vec<NetEvent>,
    alive: bool,
    confirms: bool,
}

struct Packet {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// A simulated network: nodes, an optional server, per-packet loss and latency.
struct Sim {
    now: Instant,
    start: Instant,
    nodes: Vec<Node>,
    server: Option<Server>,
    in_flight: Vec<Packet>,
    loss_percent: u32,
    dup_percent: u32,
    jitter: Duration,
    rng: StdRng,
    sent: Vec<(Instant, SocketAddr, SocketAddr)>,
    /// A TURN server, when the rendezvous server offers one.
    turn: Option<FakeTurn>,
    /// Pairs of node addresses that cannot reach each other directly (as behind symmetric
    /// NATs); the servers and the relay still reach both.
    blocked: HashSet<(SocketAddr, SocketAddr)>,
    /// With `Some`, every datagram a node sends, with its bytes.
    captured: Option<Vec<(SocketAddr, SocketAddr, Vec<u8>)>>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let now = Instant::now();
        Self {
            now,
            start: now,
            nodes: Vec::new(),
            server: None,
            in_flight: Vec::new(),
            loss_percent: 0,
            dup_percent: 0,
            jitter: Duration::ZERO,
            rng: StdRng::seed_from_u64(seed),
            sent: Vec::new(),
            turn: None,
            blocked: HashSet::new(),
            captured: None,
        }
    }

    /// A rendezvous server that offers a TURN relay, and the relay.
    fn with_relay(seed: u64) -> Self {
        let mut sim = Self::new(seed);
        let relay = TurnRelay::new(addr(TURN_SERVER), TURN_SECRET.to_vec());
        let unix = u64::try_from(wall().timestamp()).unwrap();
        let server = Server::new(Addresses { primary: addr(SERVER), alt: None });
        sim.server = Some(server.with_turn(relay, sim.now, unix));
        sim.turn = Some(FakeTurn::new(addr(TURN_SERVER), TURN_SECRET));
        sim
    }

    /// From now on every hop loses `loss`% of datagrams, duplicates `dup`% and delays each by
    /// up to `jitter_ms` more.
    fn impair(&mut self, loss: u32, dup: u32, jitter_ms: u64) {
        self.loss_percent = loss;
        self.dup_percent = dup;
        self.jitter = Duration::from_millis(jitter_ms);
    }

    /// Cuts (or restores) the direct path between two nodes.
    fn block(&mut self, a: usize, b: usize, cut: bool) {
        let (x, y) = (self.nodes[a].addr, self.nodes[b].addr);
        for pair in [(x, y), (y, x)] {
            if cut {
                self.blocked.insert(pair);
            } else {
                self.blocked.remove(&pair);
            }
        }
    }

    fn with_server(seed: u64) -> Self {
        let mut sim = Self::new(seed);
        sim.server = Some(Server::new(Addresses { primary: addr(SERVER), alt: None }));
        sim
    }

    fn add(&mut self, name: &str, at: &str, mode: Mode, key: &str) -> usize {
        let stun_server = match &mode {
            Mode::Room { server, .. } => Some(*server),
            Mode::Direct { .. } => None,
        };
        let config = SessionConfig { stun_server, ..SessionConfig::new(name, mode) };
        let seed = self.rng.next_u64();
        let cipher = Cipher::from_key(key).unwrap();
        let session = Session::new(config, cipher, self.now, wall() + self.elapsed(), seed);
        let node =
            Node { addr: addr(at), session, events: Vec::new(), alive: true, confirms: true };
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn room(&mut self, name: &str, at: &str, key: &str) -> usize {
        self.add(name, at, Mode::Room { server: addr(SERVER), room: "r".into() }, key)
    }

    fn elapsed(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.now - self.start).unwrap()
    }

    fn drain(&mut self, i: usize) {
        loop {
            let node = &mut self.nodes[i];
            while let Some(t) = node.session.poll_transmit() {
                assert!(t.payload.len() <= MAX_DATAGRAM_BYTES, "oversized transmit");
                self.sent.push((self.now, node.addr, t.to));
                if let Some(captured) = &mut self.captured {
                    captured.push((node.addr, t.to, t.payload.clone()));
                }
                let copies = if self.rng.random_range(0..100) < self.dup_percent { 2 } else { 1 };
                for _ in 0..copies {
                    if self.rng.random_range(0..100) < self.loss_percent {
                        continue;
                    }
                    let jitter = self.jitter.mul_f64(self.rng.random_range(0.0..1.0));
                    self.in_flight.push(Packet {
                        at: self.now + LATENCY + jitter,
                        from: node.addr,
                        to: t.to,
                        bytes: t.payload.clone(),
                    });
                }
            }
            // The app: every message shown is logged at once, then confirmed (unless a test
            // plays an app that crashed before writing).
            let mut logged = Vec::new();
            while let Some(e) = node.session.poll_event() {
                match &e {
                    NetEvent::Message { receipt: Some(r), .. } if node.confirms => {
                        logged.push(NetCommand::Persisted(r.clone()));
                    }
                    // Our own messages leave once logged.
                    NetEvent::Sent { id, .. } | NetEvent::Queued { id, .. } => {
                        logged.push(NetCommand::Logged(id.clone()));
                    }
                    _ => {}
                }
                node.events.push(e);
            }
            if logged.is_empty() {
                return;
            }
            let now = self.now;
            for command in logged {
                self.nodes[i].session.handle_command(now, command);
            }
        }
    }

    /// Injects a datagram as if `from` had sent it to node `to`.
    fn inject(&mut self, from: SocketAddr, to: usize, bytes: &[u8]) {
        let now = self.now;
        self.nodes[to].session.handle_datagram(now, from, bytes);
        self.drain(to);
    }

    fn command(&mut self, i: usize, command: NetCommand) {
        let now = self.now;
        self.nodes[i].session.handle_command(now, command);
        self.drain(i);
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
        loop {
            let mut next = end;
            for p in &self.in_flight {
                next = next.min(p.at);
            }
            for n in self.nodes.iter().filter(|n| n.alive) {
                if let Some(t) = n.session.poll_timeout() {
                    next = next.min(t.max(self.now));
                }
            }
            if let Some(t) = self.server.as_ref().and_then(Server::poll_timeout) {
                next = next.min(t.max(self.now));
            }
            if next >= end {
                self.now = end;
                return;
            }
            self.now = next;
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.in_flight).into_iter().partition(|p| p.at <= now);
            self.in_flight = later;
            for p in due {
                if let Some(turn) = self.turn.as_mut().filter(|t| t.addr == p.to) {
                    for out in turn.handle(p.from, &p.bytes) {
                        let at = now + LATENCY;
                        self.in_flight.push(Packet {
                            at,
                            from: out.from,
                            to: out.to,
                            bytes: out.bytes,
                        });
                    }
                } else if let Some(turn) = self.turn.as_ref().filter(|t| t.is_relayed(p.to)) {
                    if let Some(out) = turn.relay_to_client(p.to, p.from, &p.bytes) {
                        let at = now + LATENCY;
                        self.in_flight.push(Packet {
                            at,
                            from: out.from,
                            to: out.to,
                            bytes: out.bytes,
                        });
                    }
                } else if self.blocked.contains(&(p.from, p.to)) {
                    continue;
                } else if p.to == addr(SERVER) {
                    if let Some(server) = self.server.as_mut() {
                        for t in server.handle(now, p.to, p.from, &p.bytes) {
                            let t = t.transmit;
                            self.in_flight.push(Packet {
                                at: now + LATENCY,
                                from: p.to,
                                to: t.to,
                                bytes: t.payload,
                            });
                        }
                    }
                } else if let Some(i) = self.nodes.iter().position(|n| n.addr == p.to && n.alive) {
                    self.nodes[i].session.handle_datagram(now, p.from, &p.bytes);
                    self.drain(i);
                }
            }
            if let Some(server) = self.server.as_mut() {
                server.handle_timeout(now);
            }
            for i in 0..self.nodes.len() {
                let due = self.nodes[i].session.poll_timeout().is_some_and(|t| t <= now);
                if self.nodes[i].alive && due {
                    self.nodes[i].session.handle_timeout(now);
                    // What a timeout ran is no longer due once the actor has stepped again at
                    // once (work a step schedules for "now"): else it would wake for it again
                    // and again (a busy loop).
                    if self.nodes[i].session.poll_timeout().is_some_and(|t| t <= now) {
                        self.nodes[i].session.handle_timeout(now);
                    }
                    let next = self.nodes[i].session.poll_timeout();
                    let due = self.nodes[i].session.due_at(now);
                    assert!(next.is_none_or(|t| t > now), "node {i}: {due:?} stay due");
                    self.drain(i);
                }
            }
        }
    }

    fn events(&self, i: usize) -> &[NetEvent] {
        &self.nodes[i].events
    }

    fn online(&self, i: usize) -> usize {
        self.events(i).iter().filter(|e| matches!(e, NetEvent::PeerOnline { .. })).count()
    }

    fn offline(&self, i: usize) -> Vec<OfflineReason> {
        self.events(i)
            .iter()
            .filter_map(|e| match e {
                NetEvent::PeerOffline { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    fn texts(&self, i: usize) -> Vec<String> {
        self.events(i)
            .iter()
            .filter_map(|e| match e {
                NetEvent::Message { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }
}

fn send(text: &str) -> NetCommand {
    NetCommand::Send { text: text.into() }
}

fn direct_pair(seed: u64) -> (Sim, usize, usize, String) {
    let key = generate_key();
    let mut sim = Sim::new(seed);
    let a = sim.add("alice", "192.0.2.1:1000", Mode::Direct { peer: addr("192.0.2.2:2000") }, &key);
    let b = sim.add("bob", "192.0.2.2:2000", Mode::Direct { peer: addr("192.0.2.1:1000") }, &key);
    (sim, a, b, key)
}

#[test]
fn direct_peers_punch_and_chat_both_ways() {
    let (mut sim, a, b, _) = direct_pair(1);
    sim.run_for(Duration::from_secs(1));
    assert_eq!((sim.online(a), sim.online(b)), (1, 1));
    assert!(sim.events(a).iter().any(|e| matches!(e,
        NetEvent::PeerOnline { name, addr: at, .. } if name == "bob" && *at == addr("192.0.2.2:2000"))));
    sim.command(a, send("hello bob"));
    sim.command(b, send("hi alice ✓"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(b), vec!["hello bob"]);
    assert_eq!(sim.texts(a), vec!["hi alice ✓"]);
    assert!(
        sim.events(a)
            .iter()
            .any(|e| matches!(e, NetEvent::Sent { text, .. } if text == "hello bob"))
    );
    assert!(
        sim.events(a).iter().any(|e| matches!(e, NetEvent::Rtt { rtt, .. } if *rtt == LATENCY * 2))
    );
}

#[test]
fn room_peers_meet_through_server_learn_public_endpoint_and_chat() {
    let key = generate_key();
    let mut sim = Sim::with_server(2);
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    sim.run_for(Duration::from_secs(3));
    let b = sim.room("bob", "198.51.100.20:5000", &key);
    sim.run_for(Duration::from_secs(2));
    for (i, me) in [(a, "198.51.100.10:4000"), (b, "198.51.100.20:5000")] {
        assert!(sim.events(i).contains(&NetEvent::PublicEndpoint { addr: addr(me) }));
        assert!(sim.events(i).contains(&NetEvent::Registered { server: addr(SERVER) }));
        assert!(sim.events(i).iter().any(|e| matches!(e, NetEvent::PeerIntroduced { .. })));
        assert_eq!(sim.online(i), 1);
    }
    sim.command(a, send("through the NAT"));
    sim.command(b, send("and back"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(b), vec!["through the NAT"]);
    assert_eq!(sim.texts(a), vec!["and back"]);
}

#[test]
fn peers_whose_packets_are_refused_are_not_said_to_lack_a_path() {
    for clock in [false, true] {
        let mut sim = Sim::with_server(21);
        let key = generate_key();
        let a = sim.room("alice", "198.51.100.10:4000", &key);
        // The same key an hour off, or another key.
        let b = sim.room("bob", "198.51.100.20:5000", &if clock { key } else { generate_key() });
        if clock {
            sim.nodes[b].session.wall_anchor += chrono::Duration::hours(1);
        }
        sim.run_for(PUNCH_WINDOW + PROBE_INTERVAL * 3);
        for i in [a, b] {
            let events = sim.events(i);
            assert!(events.iter().any(|e| matches!(e, NetEvent::Rejected { .. })), "{events:?}");
            let no_path = events.iter().any(|e| matches!(e, NetEvent::NoPathYet { .. }));
            assert!(!no_path, "clock {clock}: {events:?}");
        }
    }
}

#[test]
fn peers_meet_through_a_server_under_load_by_echoing_its_cookie() {
    let key = generate_key();
    let mut sim = Sim::with_server(12);
    // 6,000 others registered over seven seconds: the server's rooms are more than half full,
    // so every newcomer must prove its address with a cookie first.
    let server = sim.server.as_mut().unwrap();
    let mut now = sim.now;
    for i in 0..6_000u32 {
        let [_, a, b, c] = i.to_be_bytes();
        let request = |cookie| ToServer::Register {
            room: format!("other-{i}"),
            name: "x".into(),
            private: Vec::new(),
            nat: None,
            relay: None,
            cookie,
            also: Vec::new(),
        };
        let from = SocketAddr::from(([10, a, b, c], 7000));
        let out =
            server.handle(now, addr(SERVER), from, &serde_json::to_vec(&request(None)).unwrap());
        if let Some(FromServer::Cookie { cookie }) =
            out.first().and_then(|r| serde_json::from_slice(&r.transmit.payload).ok())
        {
            let again = serde_json::to_vec(&request(Some(cookie))).unwrap();
            server.handle(now, addr(SERVER), from, &again);
        }
        now += Duration::from_millis(1);
    }
    assert!(server.registrations() >= 6_000);
    let cookies_before = server.drops().cookies;
    sim.now = now;
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    let b = sim.room("bob", "198.51.100.20:5000", &key);
    sim.run_for(Duration::from_secs(3));
    let cookies = sim.server.as_ref().unwrap().drops().cookies - cookies_before;
    assert_eq!(cookies, 2, "each chat was asked once");
    for i in [a, b] {
        assert!(sim.events(i).contains(&NetEvent::Registered { server: addr(SERVER) }));
        assert_eq!(sim.online(i), 1);
    }
}

#[test]
fn on_a_path_p2pchat_peers_tag_their_tokens_and_a_token_of_another_conversation_is_not_opened() {
    let (mut sim, a, b, key) = direct_pair(40);
    sim.run_for(Duration::from_secs(1));
    // Online both ways: from now on every datagram between them is on the path.
    sim.captured = Some(Vec::new());
    sim.command(a, send("tagged"));
    sim.run_for(Duration::from_secs(6));
    assert_eq!(sim.texts(b), vec!["tagged"]);
    let tag = Cipher::from_key(&key).unwrap().send_tag();
    let (from, to) = (sim.nodes[a].addr, sim.nodes[b].addr);
    let between: Vec<&Vec<u8>> = sim
        .captured
        .as_ref()
        .unwrap()
        .iter()
        .filter(|(f, t, _)| (*f, *t) == (from, to))
        .map(|(_, _, bytes)| bytes)
        .collect();
    assert!(!between.is_empty());
    for bytes in between {
        assert!(matches!(wire::classify(bytes), Class::Tagged { tag: t, .. } if t == tag.as_str()));
    }
    // A token under another tag is refused before any key is tried on it.
    let before = sim.nodes[b].session.drops().unauthentic;
    let token =
        Cipher::from_key(&key).unwrap().seal(br#"{"type":"message","name":"x","text":"no"}"#, 0);
    sim.inject(from, b, format!("AAAAAAAA.{token}").as_bytes());
    assert_eq!(sim.nodes[b].session.drops().unauthentic, before + 1);
    assert_eq!(sim.texts(b), vec!["tagged"]);
}

#[test]
fn idle_peers_keep_alive_and_stay_online() {
    let (mut sim, a, b, _) = direct_pair(3);
    sim.run_for(Duration::from_secs(120));
    assert_eq!((sim.online(a), sim.online(b)), (1, 1));
    assert!(sim.offline(a).is_empty() && sim.offline(b).is_empty());
    // After connecting, alice never leaves bob without a packet for more than the keepalive.
    let times: Vec<Instant> = sim
        .sent
        .iter()
        .filter(|(t, from, _)| {
            *from == sim.nodes[a].addr && *t > sim.start + Duration::from_secs(1)
        })
        .map(|(t, _, _)| *t)
        .collect();
    assert!(times.len() >= 20, "only {} packets in 2 min", times.len());
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] <= KEEPALIVE_INTERVAL, "gap {:?}", pair[1] - pair[0]);
    }
}

#[test]
fn silent_peer_goes_offline_after_threshold_and_comes_back() {
    let (mut sim, a, b, _) = direct_pair(4);
    sim.run_for(Duration::from_secs(2));
    sim.nodes[b].alive = false;
    let killed = sim.now;
    while sim.offline(a).is_empty() && sim.now - killed < Duration::from_secs(60) {
        sim.run_for(Duration::from_millis(100));
    }
    assert_eq!(sim.offline(a), vec![OfflineReason::Silent]);
    // Bob's last packet left at most one keepalive before he died; offline follows it by the
    // threshold, give or take one step of this loop.
    let took = sim.now - killed;
    let earliest = OFFLINE_AFTER - KEEPALIVE_INTERVAL;
    assert!(took >= earliest && took <= OFFLINE_AFTER + Duration::from_millis(100), "{took:?}");
    sim.nodes[b].alive = true;
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.online(a), 2);
}

#[test]
fn bye_makes_peer_offline_at_once() {
    let (mut sim, a, b, _) = direct_pair(5);
    sim.run_for(Duration::from_secs(1));
    sim.command(b, NetCommand::Shutdown);
    assert!(sim.events(b).contains(&NetEvent::Closed));
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.offline(a), vec![OfflineReason::Left]);
    assert_eq!(sim.nodes[b].session.poll_timeout(), None);
    // A peer that said goodbye is not a peer without a path.
    sim.run_for(PUNCH_WINDOW + PROBE_INTERVAL * 2);
    let no_path = sim.events(a).iter().any(|e| matches!(e, NetEvent::NoPathYet { .. }));
    assert!(!no_path, "{:?}", sim.events(a));
}

#[test]
fn a_silent_address_gets_a_few_probes_with_doubling_gaps_and_no_path_is_said_once() {
    let key = generate_key();
    let mut sim = Sim::new(6);
    let a = sim.add("alice", "192.0.2.1:1000", Mode::Direct { peer: addr("192.0.2.9:9") }, &key);
    sim.run_for(Duration::from_secs(130));
    let probes: Vec<Duration> =
        sim.sent.iter().filter(|s| s.1 == sim.nodes[a].addr).map(|s| s.0 - sim.start).collect();
    // Each gap at least twice the last, from 0.2 s up to a minute: six probes in the punch
    // window (0, 0.2, 0.6, 1.4, 3.0, 6.2 s), then a few more ever further apart.
    let in_window = probes.iter().filter(|t| **t < PUNCH_WINDOW).count();
    assert_eq!(in_window, 6, "{probes:?}");
    assert!(probes.len() <= 10, "{probes:?}");
    for (k, pair) in probes.windows(2).enumerate() {
        let least = PROBE_GAP_FIRST.saturating_mul(1 << k).min(PROBE_GAP_MAX);
        assert!(pair[1] - pair[0] >= least, "gap {k} too short: {probes:?}");
    }
    let no_path = sim.events(a).iter().filter(|e| matches!(e, NetEvent::NoPathYet { .. })).count();
    assert_eq!(no_path, 1);
    // A peer that starts late finds us with probes of its own, and we answer at once.
    let b = sim.add("bob", "192.0.2.9:9", Mode::Direct { peer: addr("192.0.2.1:1000") }, &key);
    sim.run_for(Duration::from_secs(1));
    assert_eq!((sim.online(a), sim.online(b)), (1, 1));
}

#[test]
fn members_named_by_a_stranger_get_a_few_probes_and_are_forgotten_when_the_server_drops_them() {
    let key = generate_key();
    let mut sim = Sim::with_server(13);
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    sim.run_for(Duration::from_secs(1));
    // Anyone who knows the room's name registers 28 made-up members, each naming 8 "private"
    // addresses: 4 routed on the internet (someone else's), 4 on a LAN. Once, then silence.
    let mut lan = Vec::new();
    let mut internet = Vec::new();
    let mut fake_public = Vec::new();
    for i in 0..28u8 {
        let private: Vec<SocketAddr> = (0..8u8)
            .map(|j| {
                let ip = if j < 4 { [1, 2, i, j] } else { [10, 66, i, j] };
                SocketAddr::from((ip, 53))
            })
            .collect();
        internet.extend(&private[..4]);
        lan.extend(&private[4..]);
        let from = SocketAddr::from(([203, 0, 113, i], 666));
        fake_public.push(from);
        let request = ToServer::Register {
            room: "r".into(),
            name: format!("fake-{i}"),
            private,
            nat: None,
            relay: None,
            cookie: None,
            also: Vec::new(),
        };
        let server = sim.server.as_mut().unwrap();
        server.handle(sim.now, addr(SERVER), from, &serde_json::to_vec(&request).unwrap());
    }
    sim.run_for(Duration::from_secs(150));
    let me = sim.nodes[a].addr;
    let to = |set: &[SocketAddr]| -> Vec<Duration> {
        sim.sent
            .iter()
            .filter(|s| s.1 == me && set.contains(&s.2))
            .map(|s| s.0 - sim.start)
            .collect()
    };
    assert!(to(&internet).is_empty(), "an address routed on the internet is never a LAN's");
    // The room holds 16: the first 15 made-up members got in. Each of their addresses got a
    // few probes.
    for (i, target) in fake_public.iter().enumerate() {
        let addresses: Vec<SocketAddr> =
            lan[i * 4..i * 4 + 4].iter().copied().chain([*target]).collect();
        for address in addresses {
            let probes = to(&[address]).len();
            let admitted = i < MAX_ROOM_MEMBERS - 1;
            assert!(
                probes <= 10 && (probes > 0) == admitted,
                "{address}: {probes} probes: {:?}",
                to(&[address])
            );
        }
    }
    // The server forgets the made-up members after its registration lifetime; the chat stops
    // looking for them a few of its answers later.
    let last = to(&[lan.clone(), fake_public.clone()].concat()).into_iter().max().unwrap();
    assert!(last < REGISTRATION_TTL + Duration::from_secs(30), "probed until {last:?}");
    // A real friend still gets in.
    let b = sim.room("bob", "198.51.100.20:5000", &key);
    sim.run_for(Duration::from_secs(3));
    assert_eq!((sim.online(a), sim.online(b)), (1, 1));
}

#[test]
fn hostile_datagrams_are_counted_and_never_shown() {
    let (mut sim, a, b, _) = direct_pair(7);
    sim.run_for(Duration::from_secs(1));
    let before = sim.events(b).len();
    let evil = addr("203.0.113.66:666");
    let other_key = Cipher::from_key(&generate_key()).unwrap();
    let stamp = wall().timestamp() as u64 + 1;
    let forged = other_key.seal(br#"{"type":"message","name":"alice","text":"pwned"}"#, stamp);
    for _ in 0..50 {
        sim.inject(evil, b, forged.as_bytes());
    }
    let valid = sim.nodes[b].session.cipher.seal(b"{\"type\":\"message\",\"name\":\"x\"", stamp);
    sim.inject(evil, b, valid.as_bytes()); // authentic but truncated JSON
    let valid = sim.nodes[b].session.cipher.seal(br#"{"type":"launch","name":"x"}"#, stamp);
    sim.inject(evil, b, valid.as_bytes()); // unknown type
    sim.inject(evil, b, &vec![b'A'; 5000]);
    sim.inject(evil, b, b"");
    sim.inject(evil, b, b"\xff\xfe garbage");
    sim.inject(evil, b, &forged.as_bytes()[..forged.len() / 2]);
    sim.inject(
        evil,
        b,
        br#"{"op":"peer","name":"mallory","public":"203.0.113.66:1","private":[]}"#,
    );
    sim.inject(evil, b, &stun::binding_success([0; 12], evil, evil, None).unwrap());
    sim.run_for(Duration::from_secs(2));
    let new: Vec<_> = sim.events(b)[before..]
        .iter()
        .filter(|e| !matches!(e, NetEvent::Rtt { .. } | NetEvent::Drops(_)))
        .collect();
    assert_eq!(new, vec![&NetEvent::Rejected { from: evil, reason: Rejection::WrongKey }]);
    assert!(sim.texts(b).is_empty());
    let d = sim.nodes[b].session.drops();
    assert_eq!(d.unauthentic, 51);
    assert_eq!(d.malformed, 4);
    assert_eq!(d.oversized, 1);
    assert_eq!(d.unexpected_source, 2);
    assert!(sim.events(b).contains(&NetEvent::Drops(d)));
    // The forged packets moved nothing: bob still talks to alice where she is.
    sim.command(b, send("still here"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(a), vec!["still here"]);
}

#[test]
fn seed_format_message_is_shown_and_replays_of_ours_are_not() {
    let (mut sim, a, b, key) = direct_pair(8);
    sim.run_for(Duration::from_secs(1));
    // A client written from the seed notes: four fields, its own timestamp format, no id.
    let seed = fernet::Fernet::new(&key).unwrap();
    let plain = br#"{"type": "message", "name": "seedy", "timestamp": "2025-05-29 10:00:00", "text": "hello from python"}"#;
    let token = seed.encrypt(plain);
    let from = addr("192.0.2.50:5050");
    // The seed client's token carries the real clock; move our simulated clock next to it.
    let skew = Utc::now() - wall();
    sim.nodes[b].session.wall_anchor += skew;
    sim.inject(from, b, token.as_bytes());
    assert!(
        sim.events(b)
            .iter()
            .any(|e| matches!(e, NetEvent::Message { from, text, timestamp, id: None, .. }
        if from == "seedy" && text == "hello from python" && timestamp == "2025-05-29 10:00:00"))
    );
    sim.nodes[b].session.wall_anchor -= skew;
    // Capture one of alice's messages in flight and deliver it twice more.
    sim.command(a, send("once"));
    let copy = sim.in_flight.iter().find(|p| p.to == sim.nodes[b].addr).unwrap().bytes.clone();
    sim.run_for(Duration::from_secs(1));
    sim.inject(sim.nodes[a].addr, b, &copy);
    sim.inject(addr("203.0.113.1:1"), b, &copy);
    assert_eq!(sim.texts(b).iter().filter(|t| *t == "once").count(), 1);
    assert_eq!(sim.nodes[b].session.drops().duplicate, 2);
}

#[test]
fn stale_tokens_are_refused_with_the_clock_reason() {
    let (mut sim, _a, b, _) = direct_pair(9);
    sim.run_for(Duration::from_secs(1));
    let old = wall().timestamp() as u64 - 3600;
    let token = sim.nodes[b].session.cipher.seal(br#"{"type":"ping","name":"alice","seq":1}"#, old);
    let from = addr("192.0.2.77:7");
    sim.inject(from, b, token.as_bytes());
    assert!(sim.events(b).iter().any(|e| matches!(e,
        NetEvent::Rejected { from: f, reason: Rejection::Clock { skew_secs } } if *f == from && *skew_secs <= -3600)));
    assert_eq!(sim.nodes[b].session.drops().stale, 1);
}

#[test]
fn authenticated_packets_move_the_path_and_others_do_not() {
    let (mut sim, a, b, key) = direct_pair(10);
    sim.run_for(Duration::from_secs(1));
    // alice roams to a new address (say, a new NAT mapping).
    let roamed = addr("192.0.2.1:1111");
    sim.nodes[a].addr = roamed;
    sim.run_for(KEEPALIVE_INTERVAL + Duration::from_secs(1));
    assert!(
        sim.events(b)
            .iter()
            .any(|e| matches!(e, NetEvent::PathChanged { addr: at, .. } if *at == roamed))
    );
    let _ = key;
    sim.command(b, send("found you"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(a), vec!["found you"]);
}

#[test]
fn a_peer_heard_on_two_addresses_keeps_one_path() {
    let (mut sim, a, b, _) = direct_pair(17);
    sim.run_for(Duration::from_secs(1));
    // Alice's probes to another candidate of hers reach bob too (LAN and public, say).
    let alias = addr("192.0.2.101:1000");
    for _ in 0..3 {
        let instance = Some(sim.nodes[a].session.instance);
        let ping = Envelope::Ping { name: "alice".into(), seq: 99, instance, nat: None };
        let token = sim.nodes[a].session.seal(sim.now, &ping).unwrap();
        sim.inject(alias, b, &token);
        sim.run_for(Duration::from_millis(500));
    }
    assert!(!sim.events(b).iter().any(|e| matches!(e, NetEvent::PathChanged { .. })));
    sim.command(b, send("still the first path"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(a), vec!["still the first path"]);
}

#[test]
fn messages_wait_in_the_outbox_until_a_peer_is_online() {
    let key = generate_key();
    let mut sim = Sim::new(11);
    let a = sim.add("alice", "192.0.2.1:1000", Mode::Direct { peer: addr("192.0.2.2:2000") }, &key);
    sim.command(a, send("are you there?"));
    assert!(
        sim.events(a)
            .iter()
            .any(|e| matches!(e, NetEvent::Queued { text, .. } if text == "are you there?"))
    );
    sim.run_for(Duration::from_secs(30));
    let b = sim.add("bob", "192.0.2.2:2000", Mode::Direct { peer: addr("192.0.2.1:1000") }, &key);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.texts(b), vec!["are you there?"]);
    assert!(
        sim.events(a)
            .iter()
            .any(|e| matches!(e, NetEvent::Sent { text, .. } if text == "are you there?"))
    );
}

#[test]
fn shutdown_keeps_undelivered_messages_for_the_next_run() {
    let key = generate_key();
    let mut sim = Sim::new(12);
    let a = sim.add("alice", "192.0.2.1:1000", Mode::Direct { peer: addr("192.0.2.2:2000") }, &key);
    sim.command(a, send("lonely"));
    sim.command(a, NetCommand::Shutdown);
    assert!(!sim.events(a).iter().any(|e| matches!(e, NetEvent::NotSent { .. })));
    assert_eq!(sim.events(a).last(), Some(&NetEvent::Closed));
}

#[test]
fn over_64_kib_is_refused_whole_and_long_messages_arrive_whole() {
    let (mut sim, a, b, _) = direct_pair(13);
    sim.run_for(Duration::from_secs(1));
    sim.command(a, send(&"x".repeat(MAX_MESSAGE_BYTES + 1)));
    assert!(sim.events(a).iter().any(|e| matches!(e, NetEvent::NotSent { text, reason }
        if text.len() == MAX_MESSAGE_BYTES + 1 && reason.contains("64 KiB"))));
    // Exactly the limit, with escapes, multi-byte and wide characters, split across datagrams.
    let unit = "line \"quoted\" \\ tab\t 世界 👋🏽 ctl\u{1}\n";
    let long: String = unit.repeat(MAX_MESSAGE_BYTES / unit.len());
    let sent_before = sim.sent.len();
    sim.loss_percent = 20;
    sim.command(a, send(&long));
    sim.run_for(Duration::from_secs(30));
    assert_eq!(sim.texts(b), vec![long.clone()]);
    assert!(sim.sent.len() - sent_before > 90, "a 64 KiB message takes many datagrams");
    assert!(sim.events(a).iter().any(|e| matches!(e, NetEvent::Delivered { .. })));
}

#[test]
fn silent_server_is_reported_once_and_stun_gives_up_bounded() {
    let key = generate_key();
    let mut sim = Sim::new(14); // no server answers
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    sim.run_for(Duration::from_secs(60));
    let silent =
        sim.events(a).iter().filter(|e| matches!(e, NetEvent::ServerSilent { .. })).count();
    assert_eq!(silent, 1);
    assert!(sim.events(a).contains(&NetEvent::StunFailed { server: addr(SERVER) }));
    let stun_sent = sim.sent.iter().filter(|s| s.2 == addr(SERVER)).count();
    // Registrations back off (1, 2, 4, 4, 4 s…) and STUN stops after 3 transmissions.
    assert!(stun_sent <= 20, "{stun_sent} datagrams to a dead server in a minute");
}

#[test]
fn restarted_peer_is_found_again_through_the_server() {
    let key = generate_key();
    let mut sim = Sim::with_server(15);
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    let b = sim.room("bob", "198.51.100.20:5000", &key);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.online(a), 1);
    sim.nodes[b].alive = false;
    let b2 = sim.room("bob", "198.51.100.20:5001", &key);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.online(b2), 1);
    assert!(sim.events(a).iter().any(
        |e| matches!(e, NetEvent::PathChanged { addr: at, .. } if *at == addr("198.51.100.20:5001"))
    ));
    sim.command(a, send("welcome back"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(b2), vec!["welcome back"]);
}

#[test]
fn a_seed_client_gets_each_message_once() {
    let key = generate_key();
    let mut sim = Sim::new(21);
    let seedy = addr("192.0.2.50:5050");
    let b = sim.add("bob", "192.0.2.2:2000", Mode::Direct { peer: seedy }, &key);
    let seed = fernet::Fernet::new(&key).unwrap();
    let skew = Utc::now() - wall();
    sim.nodes[b].session.wall_anchor += skew;
    let token = seed.encrypt(br#"{"type":"message","name":"seedy","timestamp":"x","text":"hi"}"#);
    sim.inject(seedy, b, token.as_bytes());
    sim.command(b, send("hello seed"));
    sim.command(b, send("second"));
    sim.run_for(Duration::from_secs(10));
    let to_seed =
        sim.sent.iter().filter(|(_, from, to)| *from == sim.nodes[b].addr && *to == seedy);
    // Two messages, each once, plus the probes and keepalives a seed client ignores.
    let messages = sim.in_flight.len() + to_seed.count();
    assert!(messages < 10, "{messages} datagrams to a client that cannot acknowledge");
    assert!(
        !sim.events(b).iter().any(|e| matches!(e, NetEvent::Delivered { .. })),
        "never claimed"
    );
}

fn delivered_ids(sim: &Sim, i: usize) -> HashSet<String> {
    sim.events(i)
        .iter()
        .filter_map(|e| match e {
            NetEvent::Delivered { id } => Some(id.0.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_receiver_that_crashes_before_logging_gets_the_messages_again() {
    let (mut sim, a, b, key) = direct_pair(18);
    sim.run_for(Duration::from_secs(1));
    // Bob shows messages but "crashes" before writing them: never confirms.
    sim.nodes[b].confirms = false;
    for i in 0..5 {
        sim.command(a, send(&format!("m{i}")));
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(b).len(), 5);
    assert!(delivered_ids(&sim, a).is_empty(), "not delivered until logged");
    sim.nodes[b].alive = false;
    let b2 = sim.add("bob", "192.0.2.2:2000", Mode::Direct { peer: addr("192.0.2.1:1000") }, &key);
    sim.run_for(Duration::from_secs(KEEPALIVE_INTERVAL.as_secs() + 3));
    let expected: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    assert_eq!(sim.texts(b2), expected);
    assert_eq!(delivered_ids(&sim, a).len(), 5);
}

#[test]
fn undelivered_messages_from_the_log_are_sent_and_seen_ids_are_not_shown_again() {
    let key = generate_key();
    let mut sim = Sim::new(19);
    let a = sim.add("alice", "192.0.2.1:1000", Mode::Direct { peer: addr("192.0.2.2:2000") }, &key);
    let pending = Pending {
        id: MsgId("00000000000000aa".into()),
        text: "from yesterday".into(),
        timestamp: "t".into(),
    };
    sim.nodes[a].session = {
        let config = SessionConfig {
            pending: vec![pending.clone(), pending.clone()],
            ..SessionConfig::new("alice", Mode::Direct { peer: addr("192.0.2.2:2000") })
        };
        Session::new(config, Cipher::from_key(&key).unwrap(), sim.now, wall(), 7)
    };
    let b = sim.add("bob", "192.0.2.2:2000", Mode::Direct { peer: addr("192.0.2.1:1000") }, &key);
    sim.nodes[b].session.seen.insert(("alice".into(), "00000000000000aa".into()));
    sim.run_for(Duration::from_secs(2));
    // Bob showed it yesterday: confirmed, not shown again; alice learns it is delivered.
    assert!(sim.texts(b).is_empty());
    assert_eq!(delivered_ids(&sim, a), HashSet::from(["00000000000000aa".to_owned()]));
}

#[test]
fn a_segment_replayed_later_is_never_shown_again() {
    let (mut sim, a, b, _) = direct_pair(20);
    sim.run_for(Duration::from_secs(1));
    sim.command(a, send("once only"));
    let copy = sim.in_flight.iter().find(|p| p.to == sim.nodes[b].addr).unwrap().bytes.clone();
    sim.run_for(Duration::from_secs(1));
    for wait in [1, 30, 300] {
        sim.run_for(Duration::from_secs(wait));
        sim.inject(sim.nodes[a].addr, b, &copy);
    }
    assert_eq!(sim.texts(b), vec!["once only"]);
    let d = sim.nodes[b].session.drops();
    assert_eq!((d.duplicate, d.stale), (2, 1), "{d:?}");
}

#[test]
fn parts_fill_a_datagram_and_never_overflow_it() {
    let key = generate_key();
    let config = SessionConfig::new("al\"ice 世界", Mode::Direct { peer: addr("192.0.2.2:2000") });
    let session = Session::new(config, Cipher::from_key(&key).unwrap(), Instant::now(), wall(), 1);
    let id = MsgId("00ff00ff00ff00ff".into());
    let timestamp = "2026-05-01T12:00:00.000Z";
    let size = |part: &str| {
        let envelope = widest_segment(&session.config.name, timestamp, &id.0, part);
        serde_json::to_vec(&envelope).unwrap().len()
    };
    let unit = "line \"quoted\" \\ tab\t 世界 👋🏽 ctl\u{1}\n";
    for text in [String::new(), "short".to_owned(), unit.repeat(40), unit.repeat(400)] {
        let parts = session.split(&id, &text, timestamp);
        assert_eq!(parts.concat(), text);
        for (i, part) in parts.iter().enumerate() {
            assert!(size(part) <= MAX_PLAINTEXT_BYTES, "part {i} overflows");
            if let Some(next) = parts.get(i + 1).and_then(|p| p.chars().next()) {
                assert!(size(&format!("{part}{next}")) > MAX_PLAINTEXT_BYTES, "part {i} not full");
            }
        }
    }
}

#[test]
fn a_message_is_acknowledged_once_logged_and_a_copy_at_once() {
    let (mut sim, a, b, _) = direct_pair(21);
    sim.run_for(Duration::from_secs(1));
    sim.nodes[b].confirms = false;
    let (from_a, from_b) = (sim.nodes[a].addr, sim.nodes[b].addr);
    let acks_at = |sim: &Sim, at: Instant| {
        sim.sent.iter().filter(|(t, from, to)| *t == at && *from == from_b && *to == from_a).count()
    };
    sim.command(a, send("ack me once"));
    let copy = sim.in_flight.iter().find(|p| p.to == from_b).unwrap().bytes.clone();
    let arrival = sim.now + LATENCY;
    sim.run_for(LATENCY + Duration::from_millis(1));
    assert_eq!(sim.texts(b), vec!["ack me once"]);
    assert_eq!(acks_at(&sim, arrival), 0, "a message for the app waits for the app's log");
    let receipt = sim
        .events(b)
        .iter()
        .find_map(|e| match e {
            NetEvent::Message { receipt, .. } => receipt.clone(),
            _ => None,
        })
        .unwrap();
    sim.command(b, NetCommand::Persisted(receipt));
    assert_eq!(acks_at(&sim, sim.now), 1, "logged: one ack");
    sim.run_for(LATENCY * 2);
    assert!(sim.events(a).iter().any(|e| matches!(e, NetEvent::Delivered { .. })));
    sim.inject(from_a, b, &copy);
    assert_eq!(acks_at(&sim, sim.now), 1, "a copy is acknowledged at once");
    assert_eq!(sim.texts(b), vec!["ack me once"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_message_arrives_exactly_once_in_order(
        seed in any::<u64>(),
        loss in 0u32..=30,
        dup in 0u32..=20,
        jitter_ms in 0u64..=50,
        count in 1usize..=60,
    ) {
        let (mut sim, a, b, _) = direct_pair(seed);
        sim.run_for(Duration::from_secs(1));
        sim.impair(loss, dup, jitter_ms);
        let expected: Vec<String> = (0..count).map(|i| format!("message {i}")).collect();
        for (i, text) in expected.iter().enumerate() {
            sim.command(a, send(text));
            sim.command(b, send(&format!("reply {i}")));
            sim.run_for(Duration::from_millis(7));
        }
        sim.run_for(Duration::from_secs(60));
        prop_assert_eq!(sim.texts(b), expected);
        let replies: Vec<String> = (0..count).map(|i| format!("reply {i}")).collect();
        prop_assert_eq!(sim.texts(a), replies);
        prop_assert_eq!(delivered_ids(&sim, a).len(), count);
        prop_assert_eq!(delivered_ids(&sim, b).len(), count);
        prop_assert!(sim.nodes[a].session.sendbuf.is_empty());
    }

    #[test]
    fn peers_connect_through_loss(seed in any::<u64>(), loss in 0u32..=30) {
        let key = generate_key();
        let mut sim = Sim::with_server(seed);
        sim.loss_percent = loss;
        let a = sim.room("alice", "198.51.100.10:4000", &key);
        let b = sim.room("bob", "198.51.100.20:5000", &key);
        // A minute: at 30% loss a registration and its answer both get through with
        // probability ~0.5, and retries come every 4 s at most.
        sim.run_for(Duration::from_secs(60));
        prop_assert!(sim.online(a) >= 1 && sim.online(b) >= 1);
        // Over the lossy link nothing is ever shown that was not sent, and nothing twice.
        sim.loss_percent = 0;
        for i in 0..20 {
            sim.command(a, send(&format!("m{i}")));
        }
        sim.run_for(Duration::from_secs(2));
        let got = sim.texts(b);
        let unique: HashSet<_> = got.iter().collect();
        prop_assert_eq!(unique.len(), got.len());
        prop_assert_eq!(got.len(), 20);
    }

    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500),
                                       prefix in prop_oneof![Just(&b""[..]), Just(&b"gAAAAA"[..]), Just(&b"{"[..])]) {
        let (mut sim, _a, b, _) = direct_pair(16);
        let mut datagram = prefix.to_vec();
        datagram.extend(bytes);
        sim.inject(addr("203.0.113.5:5"), b, &datagram);
        sim.inject(addr(SERVER), b, &datagram);
        prop_assert!(sim.texts(b).is_empty());
    }
}

fn paths(sim: &Sim, i: usize) -> Vec<PathKind> {
    sim.events(i)
        .iter()
        .filter_map(|e| match e {
            NetEvent::PeerOnline { kind, .. } | NetEvent::PathChanged { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

/// Two room members that cannot reach each other directly, with a relay offered.
fn blocked_pair(seed: u64) -> (Sim, usize, usize) {
    let key = generate_key();
    let mut sim = Sim::with_relay(seed);
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    let b = sim.room("bob", "198.51.100.20:5000", &key);
    sim.block(a, b, true);
    (sim, a, b)
}

#[test]
fn peers_without_a_direct_path_meet_through_one_allocation() {
    let (mut sim, a, b) = blocked_pair(31);
    sim.run_for(Duration::from_secs(6));
    assert_eq!(paths(&sim, a), vec![PathKind::Relay], "{:?}", sim.events(a));
    assert_eq!(paths(&sim, b), vec![PathKind::Relay], "{:?}", sim.events(b));
    let turn = sim.turn.as_ref().unwrap();
    assert_eq!(turn.allocations_made, 1, "one allocation serves the pair");
    let ready: Vec<&NetEvent> =
        sim.events(a).iter().filter(|e| matches!(e, NetEvent::RelayReady { .. })).collect();
    assert_eq!(ready.len(), 1, "alice (first by name) allocated: {:?}", sim.events(a));
    assert!(!sim.events(b).iter().any(|e| matches!(e, NetEvent::RelayReady { .. })));
    sim.command(a, send("through the relay"));
    sim.command(b, send("and back"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(b), vec!["through the relay"]);
    assert_eq!(sim.texts(a), vec!["and back"]);
    // Idle and relayed for two minutes: keepalives, refreshes and direct tries, no storm.
    let before = sim.sent.len();
    sim.run_for(Duration::from_secs(120));
    let idle = sim.sent.len() - before;
    assert!(idle < 200, "{idle} datagrams in two idle minutes");
    // Nothing crossed the blocked path, and the relay saw only tokens: every datagram to the
    // TURN server from a node is TURN (STUN-framed or ChannelData), never a bare token.
    let quit_at = sim.now;
    sim.command(a, NetCommand::Shutdown);
    sim.run_for(Duration::from_secs(1));
    assert!(sim.turn.as_ref().unwrap().refreshes.contains(&0), "quit deletes the allocation");
    assert!(sim.sent.iter().all(|(at, from, to)| *at < quit_at
        || !(*from == addr("198.51.100.10:4000") && *to == addr("198.51.100.20:5000"))));
}

#[test]
fn a_relayed_pair_moves_to_the_direct_path_and_back_without_losing_a_message() {
    let (mut sim, a, b) = blocked_pair(32);
    sim.run_for(Duration::from_secs(6));
    let mut sent = 0;
    let mut talk = |sim: &mut Sim, secs: u64| {
        for _ in 0..secs * 4 {
            sim.command(a, send(&format!("a {sent}")));
            sim.command(b, send(&format!("b {sent}")));
            sent += 1;
            sim.run_for(Duration::from_millis(250));
        }
    };
    talk(&mut sim, 2);
    sim.block(a, b, false);
    talk(&mut sim, 5);
    assert_eq!(paths(&sim, a).last(), Some(&PathKind::Public), "{:?}", paths(&sim, a));
    assert_eq!(paths(&sim, b).last(), Some(&PathKind::Public), "{:?}", paths(&sim, b));
    sim.block(a, b, true);
    talk(&mut sim, 15);
    assert_eq!(paths(&sim, a).last(), Some(&PathKind::Relay), "{:?}", paths(&sim, a));
    assert_eq!(paths(&sim, b).last(), Some(&PathKind::Relay), "{:?}", paths(&sim, b));
    assert!(sim.offline(a).is_empty() && sim.offline(b).is_empty(), "never shown offline");
    sim.run_for(Duration::from_secs(5));
    let want = |who: &str| (0..sent).map(|i| format!("{who} {i}")).collect::<Vec<_>>();
    assert_eq!(sim.texts(b), want("a"));
    assert_eq!(sim.texts(a), want("b"));
}

#[test]
fn without_a_relay_the_missing_path_says_the_server_offers_none() {
    let key = generate_key();
    let mut sim = Sim::with_server(33);
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    let b = sim.room("bob", "198.51.100.20:5000", &key);
    sim.block(a, b, true);
    sim.run_for(PUNCH_WINDOW + Duration::from_secs(1));
    let no_path: Vec<bool> = sim
        .events(a)
        .iter()
        .filter_map(|e| match e {
            NetEvent::NoPathYet { relay_offered, .. } => Some(*relay_offered),
            _ => None,
        })
        .collect();
    assert_eq!(no_path, vec![false]);
    assert_eq!(sim.online(a), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Through the relay, with loss, duplication and jitter on every hop, and the direct path
    /// opening halfway: every message exactly once, in order.
    #[test]
    fn relayed_and_direct_datagrams_mixed_with_loss_deliver_exactly_once(
        seed in any::<u64>(),
        loss in 0u32..=20,
        dup in 0u32..=10,
        jitter_ms in 0u64..=40,
        count in 1usize..=40,
        open_direct in any::<bool>(),
    ) {
        let (mut sim, a, b) = blocked_pair(seed);
        sim.impair(loss, dup, jitter_ms);
        sim.run_for(Duration::from_secs(20));
        prop_assert!(sim.online(a) >= 1 && sim.online(b) >= 1, "{:?}", sim.events(a));
        for i in 0..count {
            sim.command(a, send(&format!("a {i}")));
            sim.command(b, send(&format!("b {i}")));
            sim.run_for(Duration::from_millis(30));
            if open_direct && i == count / 2 {
                sim.block(a, b, false);
            }
        }
        sim.loss_percent = 0;
        sim.run_for(Duration::from_secs(60));
        let want = |who: &str| (0..count).map(|i| format!("{who} {i}")).collect::<Vec<_>>();
        prop_assert_eq!(sim.texts(b), want("a"));
        prop_assert_eq!(sim.texts(a), want("b"));
    }
}

/// Seals `envelope` as a holder of `key` would, at the simulation's wall-clock time.
fn forge(sim: &Sim, key: &str, envelope: &serde_json::Value) -> Vec<u8> {
    let unix = u64::try_from((wall() + sim.elapsed()).timestamp()).unwrap();
    Cipher::from_key(key).unwrap().seal(envelope.to_string().as_bytes(), unix).into_bytes()
}

#[test]
fn a_flood_of_fresh_names_is_bounded_answered_once_and_never_probed() {
    let key = generate_key();
    let mut sim = Sim::with_server(41);
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    let b = sim.room("bob", "198.51.100.20:5000", &key);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.online(a), 1);
    let attacker = addr("203.0.113.66:6666");
    let before = sim.sent.len();
    for i in 0..2000u64 {
        let ping = serde_json::json!({"type": "ping", "name": format!("fake{i}"), "seq": 1,
                                      "instance": 1000 + i});
        let bytes = forge(&sim, &key, &ping);
        sim.inject(attacker, a, &bytes);
        assert!(sim.nodes[a].session.peers.len() <= MAX_PEERS, "bounded at {i}");
    }
    let to_attacker = |sim: &Sim, from: usize| {
        sim.sent[from..].iter().filter(|(_, _, to)| *to == attacker).count()
    };
    let answered = to_attacker(&sim, before);
    assert!(answered <= 2000, "at most one answer per ping: {answered}");
    // Afterwards: the fake peers are never probed (no amplification), and are forgotten.
    let after = sim.sent.len();
    sim.run_for(Duration::from_secs(60));
    assert_eq!(to_attacker(&sim, after), 0, "nothing more to the attacker");
    assert!(sim.nodes[a].session.peers.len() <= 2, "only bob is left (and alice's view of him)");
    // The real peer never noticed.
    sim.command(b, send("still here"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(a), vec!["still here"]);
}

fn path_changes(sim: &Sim, i: usize) -> Vec<SocketAddr> {
    sim.events(i)
        .iter()
        .filter_map(|e| match e {
            NetEvent::PathChanged { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect()
}

#[test]
fn replayed_pings_neither_move_the_path_nor_keep_a_dead_peer_online() {
    let (mut sim, a, b, key) = direct_pair(42);
    sim.run_for(Duration::from_secs(2));
    let alice = sim.nodes[a].session.instance;
    let attacker = addr("203.0.113.66:6666");
    // Captured pings of alice's, sent again from elsewhere: old sequence numbers.
    let replay = |sim: &mut Sim, seq: u64| {
        let ping = serde_json::json!({"type": "ping", "name": "alice", "seq": seq,
                                      "instance": alice});
        let bytes = forge(sim, &key, &ping);
        sim.inject(attacker, b, &bytes);
    };
    for seq in [0, 1] {
        replay(&mut sim, seq);
    }
    assert!(path_changes(&sim, b).is_empty(), "{:?}", sim.events(b));
    assert!(sim.nodes[b].session.drops().replayed >= 2);
    // alice dies; her old pings keep coming from the attacker every second.
    sim.nodes[a].alive = false;
    let died = sim.now;
    while sim.offline(b).is_empty() {
        assert!(sim.now < died + Duration::from_secs(30), "a dead peer kept online by replays");
        replay(&mut sim, 1);
        sim.run_for(Duration::from_secs(1));
    }
    assert!(sim.now <= died + OFFLINE_AFTER + KEEPALIVE_INTERVAL);
    // A ping numbered far beyond what alice could have counted is refused, not taken.
    let far =
        serde_json::json!({"type": "ping", "name": "alice", "seq": 1_000_000, "instance": alice});
    let invalid = sim.nodes[b].session.drops().invalid;
    let bytes = forge(&sim, &key, &far);
    sim.inject(attacker, b, &bytes);
    assert_eq!(sim.nodes[b].session.drops().invalid, invalid + 1);
}

#[test]
fn a_fresh_packet_from_a_new_address_moves_the_path_only_once_that_address_answers() {
    let (mut sim, a, b, key) = direct_pair(43);
    sim.run_for(Duration::from_secs(2));
    let alice = sim.nodes[a].session.instance;
    // Someone holding the key sends a fresh ping in alice's name from an address that never
    // answers: bob challenges it and stays where he is.
    let attacker = addr("203.0.113.66:6666");
    let next = sim.nodes[a].session.peers[0].ping_seq + 1;
    let ping = serde_json::json!({"type": "ping", "name": "alice", "seq": next, "instance": alice});
    let bytes = forge(&sim, &key, &ping);
    sim.inject(attacker, b, &bytes);
    sim.run_for(Duration::from_secs(3));
    assert!(path_changes(&sim, b).is_empty(), "{:?}", path_changes(&sim, b));
    let challenges = sim.sent.iter().filter(|(_, _, to)| *to == attacker).count();
    assert!(challenges <= 2, "a pong and one challenge at most: {challenges}");
    // alice really roams: her new address answers the challenge, and the path follows.
    let roamed = addr("192.0.2.1:1111");
    sim.nodes[a].addr = roamed;
    sim.run_for(KEEPALIVE_INTERVAL + Duration::from_secs(1));
    assert_eq!(path_changes(&sim, b), vec![roamed]);
}

#[test]
fn copies_of_a_seed_message_and_of_an_old_goodbye_change_nothing() {
    let (mut sim, a, b, key) = direct_pair(44);
    sim.run_for(Duration::from_secs(2));
    let from = sim.nodes[a].addr;
    let seed = serde_json::json!({"type": "message", "name": "alice", "timestamp": "12:00",
                                  "text": "said once"});
    let bytes = forge(&sim, &key, &seed);
    for _ in 0..100 {
        sim.inject(from, b, &bytes);
    }
    assert_eq!(sim.texts(b), vec!["said once"], "a seed message is shown once");
    // A goodbye of an earlier run, or one without a run id, does not end this one.
    let alice = sim.nodes[a].session.instance;
    for bye in [
        serde_json::json!({"type": "bye", "name": "alice", "instance": alice ^ 1}),
        serde_json::json!({"type": "bye", "name": "alice"}),
    ] {
        let bytes = forge(&sim, &key, &bye);
        sim.inject(from, b, &bytes);
    }
    assert!(sim.offline(b).is_empty(), "{:?}", sim.events(b));
    // alice's own goodbye does.
    sim.command(a, NetCommand::Shutdown);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.offline(b), vec![OfflineReason::Left]);
}

#[test]
fn a_relayed_peer_that_restarts_is_reached_at_its_new_address() {
    let key = generate_key();
    let mut sim = Sim::with_relay(45);
    let a = sim.room("alice", "198.51.100.10:4000", &key);
    let b = sim.room("bob", "198.51.100.20:5000", &key);
    sim.block(a, b, true);
    sim.run_for(Duration::from_secs(6));
    assert_eq!(paths(&sim, a), vec![PathKind::Relay]);
    // bob restarts at once on a new port (a new run): its old path is dead at once.
    sim.nodes[b].alive = false;
    let b2 = sim.room("bob", "198.51.100.20:5001", &key);
    sim.block(a, b2, true);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(path_changes(&sim, a), vec![addr("198.51.100.20:5001")]);
    sim.command(a, send("after"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(b2), vec!["after"]);
}

#[test]
fn a_message_not_logged_is_confirmed_by_nothing_else_not_even_a_restarted_senders_copy() {
    let (mut sim, a, b, key) = direct_pair(22);
    sim.run_for(Duration::from_secs(1));
    sim.nodes[b].confirms = false;
    for i in 0..3 {
        sim.command(a, send(&format!("m{i}")));
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.texts(b), vec!["m0", "m1", "m2"]);
    let receipts: Vec<Receipt> = sim
        .events(b)
        .iter()
        .filter_map(|e| match e {
            NetEvent::Message { receipt, .. } => receipt.clone(),
            _ => None,
        })
        .collect();
    // Bob logs m0 and m2; writing m1 fails (a full disk).
    sim.command(b, NetCommand::Persisted(receipts[0].clone()));
    sim.command(b, NetCommand::Persisted(receipts[2].clone()));
    sim.run_for(Duration::from_secs(2));
    let ids: Vec<String> = receipts.iter().map(|r| r.id.0.clone()).collect();
    assert_eq!(delivered_ids(&sim, a), HashSet::from([ids[0].clone()]), "m2 waits behind m1");
    // Alice restarts and sends again what her log does not show delivered.
    let pending = |i: usize| Pending {
        id: MsgId(ids[i].clone()),
        text: format!("m{i}"),
        timestamp: "t".into(),
    };
    let config = SessionConfig {
        pending: vec![pending(1), pending(2)],
        ..SessionConfig::new("alice", Mode::Direct { peer: sim.nodes[b].addr })
    };
    sim.nodes[a].session =
        Session::new(config, Cipher::from_key(&key).unwrap(), sim.now, wall(), 9);
    sim.nodes[a].events.clear();
    sim.run_for(Duration::from_secs(KEEPALIVE_INTERVAL.as_secs() + 3));
    assert_eq!(sim.texts(b), vec!["m0", "m1", "m2"], "nothing shown twice");
    assert!(delivered_ids(&sim, a).is_empty(), "m1 is still not in bob's log");
    // Bob's retry writes m1: its copy on the new stream is confirmed with it.
    sim.command(b, NetCommand::Persisted(receipts[1].clone()));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(delivered_ids(&sim, a), HashSet::from([ids[1].clone(), ids[2].clone()]));
}
