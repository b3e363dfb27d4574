//! Endpoints carrying several conversations over a simulated lossy network, with the real
//! rendezvous server core: exactly-once delivery per conversation, no cross-talk, and tags on
//! every datagram between p2pchat peers in the steady state.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::identity::{Identity, rendezvous_room};
use crate::proto::crypto::{Cipher, generate_key};
use crate::proto::keying::Peer;
use crate::proto::session::Rekey;
use crate::proto::turn::sim::FakeTurn;
use crate::proto::{Mode, PathKind, SessionConfig};
use crate::server::{Addresses, Server, TurnRelay};

use crate::proto::testnet::{LATENCY, SERVER, TURN_SECRET, TURN_SERVER, addr};

struct Node {
    addr: SocketAddr,
    endpoint: Endpoint,
    events: Vec<(ConversationId, NetEvent)>,
}

struct Packet {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

struct Net {
    now: Instant,
    nodes: Vec<Node>,
    server: Server,
    in_flight: Vec<Packet>,
    rng: StdRng,
    loss_percent: u32,
    /// Every datagram a node sent: (from, to, bytes).
    sent: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// The relay, when the server offers one.
    turn: Option<FakeTurn>,
    /// Direct paths cut (both ways).
    blocked: HashSet<(SocketAddr, SocketAddr)>,
}

impl Net {
    fn new(seed: u64, loss_percent: u32) -> Self {
        Self {
            now: Instant::now(),
            nodes: Vec::new(),
            server: Server::new(Addresses { primary: addr(SERVER), alt: None }),
            in_flight: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            loss_percent,
            sent: Vec::new(),
            turn: None,
            blocked: HashSet::new(),
        }
    }

    /// The same, with a TURN relay the server hands credentials for.
    fn with_relay(seed: u64, loss_percent: u32) -> Self {
        let mut net = Self::new(seed, loss_percent);
        let relay = TurnRelay::new(addr(TURN_SERVER), TURN_SECRET.to_vec());
        let unix = u64::try_from(Utc::now().timestamp()).unwrap();
        let server = Server::new(Addresses { primary: addr(SERVER), alt: None });
        net.server = server.with_turn(relay, net.now, unix);
        net.turn = Some(FakeTurn::new(addr(TURN_SERVER), TURN_SECRET));
        net
    }

    fn block(&mut self, a: usize, b: usize) {
        let (x, y) = (self.nodes[a].addr, self.nodes[b].addr);
        self.blocked.insert((x, y));
        self.blocked.insert((y, x));
    }

    fn node(&mut self, at: &str) -> usize {
        let endpoint = Endpoint::new();
        self.nodes.push(Node { addr: addr(at), endpoint, events: Vec::new() });
        self.nodes.len() - 1
    }

    /// Adds to node `i` a conversation in `room` under `key`, as `name`.
    fn join(&mut self, i: usize, name: &str, room: &str, key: &str) -> ConversationId {
        let mode = Mode::Room { server: addr(SERVER), room: room.into() };
        let config = SessionConfig { shared_socket: true, ..SessionConfig::new(name, mode) };
        self.add(i, config, Cipher::from_key(key).unwrap())
    }

    /// Adds to node `i`, as `name` with identity `us`, a conversation with the contact `them`
    /// that agrees its keys inside the session.
    fn contact(&mut self, i: usize, name: &str, us: &Identity, them: &Peer) -> ConversationId {
        let room = rendezvous_room(&us.public(), &them.key);
        let mode = Mode::Room { server: addr(SERVER), room };
        let rekey =
            Rekey { identity: us.clone(), contact: them.clone(), hello: None, initiate: true };
        let config = SessionConfig {
            shared_socket: true,
            rekey: Some(rekey),
            ..SessionConfig::new(name, mode)
        };
        self.add(i, config, Cipher::from_key(&generate_key()).unwrap())
    }

    fn add(&mut self, i: usize, config: SessionConfig, cipher: Cipher) -> ConversationId {
        let seed = self.rng.random_range(0..u64::MAX);
        let session = Session::new(config, cipher, self.now, Utc::now(), seed);
        let id = self.nodes[i].endpoint.add(self.now, session);
        self.drain(i);
        id
    }

    fn command(&mut self, i: usize, id: ConversationId, command: NetCommand) {
        let now = self.now;
        self.nodes[i].endpoint.handle_command(now, id, command);
        self.drain(i);
    }

    /// Sends what node `i` queued, and plays its app: what is shown is logged at once.
    fn drain(&mut self, i: usize) {
        loop {
            let node = &mut self.nodes[i];
            while let Some(t) = node.endpoint.poll_transmit() {
                assert!(t.payload.len() <= MAX_DATAGRAM_BYTES, "oversized transmit");
                self.sent.push((node.addr, t.to, t.payload.clone()));
                if self.rng.random_range(0..100) >= self.loss_percent {
                    let at = self.now + LATENCY;
                    let packet = Packet { at, from: node.addr, to: t.to, bytes: t.payload };
                    self.in_flight.push(packet);
                }
            }
            let mut answers = Vec::new();
            while let Some((id, event)) = node.endpoint.poll_event() {
                match &event {
                    NetEvent::Message { receipt: Some(r), .. } => {
                        answers.push((id, NetCommand::Persisted(r.clone())));
                    }
                    NetEvent::Sent { id: m, .. } | NetEvent::Queued { id: m, .. } => {
                        answers.push((id, NetCommand::Logged(m.clone())));
                    }
                    _ => {}
                }
                node.events.push((id, event));
            }
            if answers.is_empty() {
                return;
            }
            let now = self.now;
            for (id, command) in answers {
                self.nodes[i].endpoint.handle_command(now, id, command);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let now = self.now;
            let (due, later): (Vec<Packet>, Vec<Packet>) =
                std::mem::take(&mut self.in_flight).into_iter().partition(|p| p.at <= now);
            self.in_flight = later;
            for p in due {
                let later = now + LATENCY;
                if let Some(turn) = self.turn.as_mut().filter(|t| t.addr == p.to) {
                    for out in turn.handle(p.from, &p.bytes) {
                        let packet =
                            Packet { at: later, from: out.from, to: out.to, bytes: out.bytes };
                        self.in_flight.push(packet);
                    }
                } else if let Some(turn) = self.turn.as_ref().filter(|t| t.is_relayed(p.to)) {
                    if let Some(out) = turn.relay_to_client(p.to, p.from, &p.bytes) {
                        let packet =
                            Packet { at: later, from: out.from, to: out.to, bytes: out.bytes };
                        self.in_flight.push(packet);
                    }
                } else if self.blocked.contains(&(p.from, p.to)) {
                    continue;
                } else if p.to == addr(SERVER) {
                    for reply in self.server.handle(now, p.to, p.from, &p.bytes) {
                        let t = reply.transmit;
                        let packet =
                            Packet { at: now + LATENCY, from: p.to, to: t.to, bytes: t.payload };
                        self.in_flight.push(packet);
                    }
                } else if let Some(i) = self.nodes.iter().position(|n| n.addr == p.to) {
                    self.nodes[i].endpoint.handle_datagram(now, p.from, &p.bytes);
                    self.drain(i);
                }
            }
            self.server.handle_timeout(now);
            for i in 0..self.nodes.len() {
                if self.nodes[i].endpoint.poll_timeout().is_some_and(|t| t <= now) {
                    self.nodes[i].endpoint.handle_timeout(now);
                    // What a timeout ran is no longer due once the actor has stepped again at
                    // once (work a step schedules for "now"): else it would wake for it again
                    // and again (a busy loop).
                    if self.nodes[i].endpoint.poll_timeout().is_some_and(|t| t <= now) {
                        self.nodes[i].endpoint.handle_timeout(now);
                    }
                    let next = self.nodes[i].endpoint.poll_timeout();
                    let due = self.nodes[i].endpoint.due_at(now);
                    assert!(next.is_none_or(|t| t > now), "node {i}: {due:?} stay due");
                    self.drain(i);
                }
            }
        }
    }

    /// The texts conversation `id` of node `i` showed, in order.
    fn texts(&self, i: usize, id: ConversationId) -> Vec<String> {
        self.nodes[i]
            .events
            .iter()
            .filter(|(c, _)| *c == id)
            .filter_map(|(_, e)| match e {
                NetEvent::Message { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn one_socket_carries_several_conversations_exactly_once_without_cross_talk() {
    let (friends, work) = (generate_key(), generate_key());
    let mut net = Net::new(7, 10);
    let alice = net.node("198.51.100.10:4000");
    let bob = net.node("198.51.100.20:5000");
    let carol = net.node("198.51.100.30:6000");
    // Alice and bob share two rooms, each on one socket; carol is only in "friends".
    let a_friends = net.join(alice, "alice", "friends", &friends);
    let a_work = net.join(alice, "alice", "work", &work);
    let b_friends = net.join(bob, "bob", "friends", &friends);
    let b_work = net.join(bob, "bob", "work", &work);
    let c_friends = net.join(carol, "carol", "friends", &friends);
    net.run_for(Duration::from_secs(5));
    let mut want = (Vec::new(), Vec::new());
    for n in 0..40 {
        let (f, w) = (format!("friends {n}"), format!("work {n}"));
        net.command(alice, a_friends, NetCommand::Send { text: f.clone() });
        net.command(alice, a_work, NetCommand::Send { text: w.clone() });
        want.0.push(f);
        want.1.push(w);
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(20));
    // Each conversation got its own messages, each once and in order, and nothing else.
    assert_eq!(net.texts(bob, b_friends), want.0);
    assert_eq!(net.texts(carol, c_friends), want.0);
    assert_eq!(net.texts(bob, b_work), want.1);
    // Bob's socket is known to alice in both rooms: in the steady state every token between
    // them carries its conversation's tag, so each is opened with one key.
    let (a, b) = (net.nodes[alice].addr, net.nodes[bob].addr);
    let late: Vec<&Vec<u8>> = net
        .sent
        .iter()
        .rev()
        .take(200)
        .filter(|(f, t, _)| (*f, *t) == (a, b))
        .map(|(_, _, x)| x)
        .collect();
    assert!(!late.is_empty());
    let tags = [
        Cipher::from_key(&friends).unwrap().send_tag(),
        Cipher::from_key(&work).unwrap().send_tag(),
    ];
    for bytes in late {
        assert!(
            matches!(wire::classify(bytes), Class::Tagged { tag, .. } if tags.iter().any(|t| t.as_str() == tag)),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    // Carol holds the "friends" key only: a token she seals, under "work"'s tag, reaches no
    // conversation of bob's.
    let token = Cipher::from_key(&friends)
        .unwrap()
        .seal(br#"{"type":"message","name":"carol","text":"sneaky"}"#, 0);
    let forged = format!("{}.{token}", tags[1].as_str());
    let before = net.nodes[bob].endpoint.conversation(b_work).unwrap().drops().unauthentic;
    let (now, from) = (net.now, net.nodes[carol].addr);
    net.nodes[bob].endpoint.handle_datagram(now, from, forged.as_bytes());
    net.drain(bob);
    assert_eq!(
        net.nodes[bob].endpoint.conversation(b_work).unwrap().drops().unauthentic,
        before + 1
    );
    assert!(!net.texts(bob, b_work).iter().any(|t| t == "sneaky"));
    assert!(!net.texts(bob, b_friends).iter().any(|t| t == "sneaky"));
}

/// The paths conversation `id` of node `i` went online on or moved to.
fn paths(net: &Net, i: usize, id: ConversationId) -> Vec<PathKind> {
    net.nodes[i]
        .events
        .iter()
        .filter(|(c, _)| *c == id)
        .filter_map(|(_, e)| match e {
            NetEvent::PeerOnline { kind, .. } | NetEvent::PathChanged { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

#[test]
fn one_allocation_relays_every_conversation_of_a_socket() {
    let (friends, work) = (generate_key(), generate_key());
    let mut net = Net::with_relay(11, 0);
    let alice = net.node("198.51.100.10:4000");
    let bob = net.node("198.51.100.20:5000");
    net.block(alice, bob);
    let a_friends = net.join(alice, "alice", "friends", &friends);
    let a_work = net.join(alice, "alice", "work", &work);
    let b_friends = net.join(bob, "bob", "friends", &friends);
    let b_work = net.join(bob, "bob", "work", &work);
    net.run_for(Duration::from_secs(8));
    for (i, id) in [(alice, a_friends), (alice, a_work), (bob, b_friends), (bob, b_work)] {
        assert_eq!(paths(&net, i, id), vec![PathKind::Relay], "{:?}", net.nodes[i].events);
    }
    assert_eq!(net.turn.as_ref().unwrap().allocations_made, 1, "one allocation serves the socket");
    net.command(alice, a_friends, NetCommand::Send { text: "friends, relayed".into() });
    net.command(bob, b_work, NetCommand::Send { text: "work, relayed".into() });
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.texts(bob, b_friends), vec!["friends, relayed"]);
    assert_eq!(net.texts(alice, a_work), vec!["work, relayed"]);
    assert!(net.texts(bob, b_work).is_empty() && net.texts(alice, a_friends).is_empty());
    // Quitting says goodbye in both rooms, through the relay, then deletes the allocation once.
    let now = net.now;
    net.nodes[alice].endpoint.shutdown(now);
    net.drain(alice);
    net.run_for(Duration::from_secs(1));
    for id in [b_friends, b_work] {
        let left = net.nodes[bob].events.iter().any(|(c, e)| {
            *c == id
                && matches!(
                    e,
                    NetEvent::PeerOffline { reason: crate::proto::OfflineReason::Left, .. }
                )
        });
        assert!(left, "bob heard alice leave in {id:?}");
    }
    assert!(net.turn.as_ref().unwrap().refreshes.contains(&0), "the allocation was deleted");
}

#[test]
fn contacts_agree_their_first_keys_inside_the_endpoint_whoever_comes_first() {
    let ids: Vec<Identity> = (1..=3u8).map(|n| Identity::from_secret(&[n; 32])).collect();
    let peer = |name: &str, i: usize| Peer { name: name.into(), key: ids[i].public() };
    let mut net = Net::new(21, 5);
    let alice = net.node("198.51.100.10:4000");
    let bob = net.node("198.51.100.20:5000");
    let carol = net.node("198.51.100.30:6000");
    // Alice opens her messenger with both contacts; bob comes 10 s later, carol a minute later.
    let a_bob = net.contact(alice, "alice", &ids[0], &peer("bob", 1));
    let a_carol = net.contact(alice, "alice", &ids[0], &peer("carol", 2));
    net.run_for(Duration::from_secs(10));
    let b_alice = net.contact(bob, "bob", &ids[1], &peer("alice", 0));
    net.run_for(Duration::from_secs(50));
    let c_alice = net.contact(carol, "carol", &ids[2], &peer("alice", 0));
    net.run_for(Duration::from_secs(10));
    let agreed = |net: &Net, i: usize, id: ConversationId| -> Vec<String> {
        net.nodes[i]
            .events
            .iter()
            .filter(|(c, _)| *c == id)
            .filter_map(|(_, e)| match e {
                NetEvent::KeysAgreed { safety_number, .. } => Some(safety_number.clone()),
                _ => None,
            })
            .collect()
    };
    for (i, id, j, jd) in [(alice, a_bob, bob, b_alice), (alice, a_carol, carol, c_alice)] {
        let (ours, theirs) = (agreed(&net, i, id), agreed(&net, j, jd));
        assert_eq!(ours.len(), 1, "{:?}", net.nodes[i].events);
        assert_eq!(ours, theirs, "both screens show one safety number");
        assert_eq!(paths(&net, i, id), vec![PathKind::Public], "{:?}", net.nodes[i].events);
    }
    net.command(alice, a_bob, NetCommand::Send { text: "hi bob".into() });
    net.command(alice, a_carol, NetCommand::Send { text: "hi carol".into() });
    net.command(bob, b_alice, NetCommand::Send { text: "hi alice, bob here".into() });
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.texts(bob, b_alice), vec!["hi bob"]);
    assert_eq!(net.texts(carol, c_alice), vec!["hi carol"]);
    assert_eq!(net.texts(alice, a_bob), vec!["hi alice, bob here"]);
    assert!(net.texts(alice, a_carol).is_empty());
    // Nobody was probed before there were keys: no "wrong key?" anywhere.
    for node in &net.nodes {
        let rejected = node.events.iter().any(|(_, e)| matches!(e, NetEvent::Rejected { .. }));
        assert!(!rejected, "{}: {:?}", node.addr, node.events);
    }
}

#[test]
fn thirty_offline_contacts_cost_a_few_datagrams_a_minute_and_no_probe() {
    let me = Identity::from_secret(&[1; 32]);
    let mut net = Net::new(31, 0);
    let alice = net.node("198.51.100.10:4000");
    for n in 0..30u8 {
        let them =
            Peer { name: format!("friend{n}"), key: Identity::from_secret(&[n + 2; 32]).public() };
        net.contact(alice, "alice", &me, &them);
    }
    net.run_for(Duration::from_secs(240));
    let from_alice = net.sent.len();
    net.run_for(Duration::from_secs(60));
    let minute: Vec<&(SocketAddr, SocketAddr, Vec<u8>)> = net.sent[from_alice..].iter().collect();
    assert!(minute.iter().all(|(_, to, _)| *to == addr(SERVER)), "nothing but the server");
    let registers: Vec<ToServer> = minute
        .iter()
        .filter_map(|(_, _, bytes)| serde_json::from_slice::<ToServer>(bytes).ok())
        .filter(|r| matches!(r, ToServer::Register { .. }))
        .collect();
    // Three requests carry the thirty rooms (twelve a datagram), refreshed every 20 s.
    assert!((3..=9).contains(&registers.len()), "{} registrations in a minute", registers.len());
    for request in &registers {
        let ToServer::Register { also, .. } = request else { unreachable!() };
        assert!(also.len() < MAX_ROOMS_PER_REGISTER);
    }
    // Each contact's hello is looked for once a minute at most.
    assert!(minute.len() <= 9 + 30, "{} datagrams in an idle minute", minute.len());
    eprintln!(
        "an idle minute with 30 offline contacts: {} datagrams, {} of them registrations",
        minute.len(),
        registers.len()
    );
}
