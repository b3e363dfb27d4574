//! The server core's tests: sans-IO, simulated time.
use super::*;
use crate::consts::{
    COOKIE_LOAD_PER_SEC, LIMIT_NOTICE_EVERY, MAX_NAMEPLATES, MAX_REGISTRATIONS,
    MAX_ROOMS_PER_REGISTER, SOURCE_MAX_NAMEPLATES, SOURCE_MAX_REGISTRATIONS,
};
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
        cookie: None,
        also: Vec::new(),
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
        [FromServer::Refused { reason, .. }] => reason.clone(),
        other => panic!("not refused: {other:?}"),
    }
}

/// Asks as a client does: without a cookie first and, when the server answers with one, again
/// with it.
fn ask_validated(
    s: &mut Server,
    now: Instant,
    from: SocketAddr,
    request: impl Fn(Option<String>) -> ToServer,
) -> Vec<FromServer> {
    let answer = ask(s, now, from, request(None));
    match &answer[..] {
        [FromServer::Cookie { cookie }] => ask(s, now, from, request(Some(cookie.clone()))),
        _ => answer,
    }
}

fn allocate(s: &mut Server, now: Instant, from: SocketAddr, name: &str) -> String {
    let answer =
        ask_validated(s, now, from, |cookie| ToServer::Allocate { name: name.into(), cookie });
    match &answer[..] {
        [FromServer::Nameplate { nameplate, .. }] => nameplate.clone(),
        other => panic!("no nameplate: {other:?}"),
    }
}

fn claim(
    s: &mut Server,
    now: Instant,
    from: SocketAddr,
    nameplate: &str,
    name: &str,
) -> Vec<FromServer> {
    ask_validated(s, now, from, |cookie| ToServer::Claim {
        nameplate: nameplate.into(),
        name: name.into(),
        cookie,
    })
}

#[test]
fn nameplates_are_claimed_once_carry_posts_and_expire() {
    let mut s = server();
    let now = Instant::now();
    let (a, b, c) = (addr("198.51.100.11:1"), addr("198.51.100.12:2"), addr("198.51.100.13:3"));
    let first = allocate(&mut s, now, a, "ann");
    let second = allocate(&mut s, now, c, "cat");
    assert_ne!(first, second);
    // A claim without a cookie is answered with one and changes nothing.
    let bare = ToServer::Claim { nameplate: first.clone(), name: "bob".into(), cookie: None };
    assert!(matches!(&ask(&mut s, now, b, bare)[..], [FromServer::Cookie { .. }]));
    // The claimant is let in, and the code's owner told who it was.
    let cookie = Some(s.limits.cookie(b));
    let request = ToServer::Claim { nameplate: first.clone(), name: "bob".into(), cookie };
    let out = handle(&mut s, now, b, &serde_json::to_vec(&request).unwrap());
    let out: Vec<(SocketAddr, FromServer)> = out.iter().map(|t| (t.to, decode(t))).collect();
    assert_eq!(
        out,
        vec![
            (b, FromServer::Claimed { nameplate: first.clone() }),
            (a, FromServer::Joined { nameplate: first.clone(), name: "bob".into() }),
        ]
    );
    // A lost answer is asked for again: the same claimant is let in again (the owner not
    // told twice).
    assert_eq!(
        claim(&mut s, now, b, &first, "bob"),
        vec![FromServer::Claimed { nameplate: first.clone() }]
    );
    assert!(refused(&claim(&mut s, now, c, &first, "eve")).contains("already used"));
    // Posts reach the other member only; outsiders can neither post nor read.
    let room = format!("np-{first}");
    let post =
        |body: &str| ToServer::Post { room: room.clone(), phase: "pake".into(), body: body.into() };
    let fetch = ToServer::Fetch { room: room.clone(), phase: "pake".into() };
    assert_eq!(ask(&mut s, now, b, fetch.clone()), vec![]);
    assert_eq!(
        ask(&mut s, now, a, post("from ann")),
        vec![FromServer::Posted { room: room.clone(), phase: "pake".into() }]
    );
    ask(&mut s, now, a, post("from ann, again"));
    assert_eq!(ask(&mut s, now, a, fetch.clone()), vec![]);
    let mail = FromServer::Mail {
        room: room.clone(),
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
    let answer = handle(&mut s, now, c, &register(&room, "eve"));
    assert!(refused(&answer.iter().map(decode).collect::<Vec<_>>()).contains("pairing codes"));
    // After the code's lifetime the nameplate is gone, with its posts.
    let later = now + CODE_TTL;
    assert!(refused(&claim(&mut s, later, b, &first, "bob")).contains("expired"));
    allocate(&mut s, later, c, "cat");
    assert_eq!(s.registrations(), 1);
}

#[test]
fn posts_outlive_refreshes_but_not_a_restart() {
    let mut s = server();
    let now = Instant::now();
    let (a, b, a2) = (addr("198.51.100.11:1"), addr("198.51.100.12:2"), addr("198.51.100.11:9"));
    let reg = |private: Vec<SocketAddr>| ToServer::Register {
        room: "rv-x".into(),
        name: "ann".into(),
        private,
        nat: None,
        relay: None,
        cookie: None,
        also: Vec::new(),
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
    assert_eq!(
        decode(&out[0]),
        FromServer::Registered { public: a, ttl_secs: 60, turn: None, room: Some("r".into()) }
    );
    let out = handle(&mut s, now, b, &register("r", "bob"));
    let to_b: Vec<_> = out.iter().filter(|t| t.to == b).map(decode).collect();
    let to_a: Vec<_> = out.iter().filter(|t| t.to == a).map(decode).collect();
    assert_eq!(to_b.len(), 2);
    assert!(
        matches!(&to_b[1], FromServer::Peer { name, public, .. } if name == "alice" && *public == a)
    );
    assert_eq!(to_a.len(), 1);
    assert!(matches!(&to_a[0], FromServer::Peer { name, public, private, nat, relay: None, .. }
        if name == "bob" && *public == b && private == &vec![addr("192.0.2.10:5000")]
           && nat.as_deref() == Some("Full Cone")));
    // A refresh from the same endpoint tells the others nothing new.
    let out = handle(&mut s, now, b, &register("r", "bob"));
    assert!(out.iter().all(|t| t.to == b));
    // A restart (new port) re-introduces bob to alice.
    let b2 = addr("198.51.100.12:2001");
    let out = handle(&mut s, now, b2, &register("r", "bob"));
    assert!(
        out.iter()
            .any(|t| t.to == a
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
    assert_eq!(
        s.drops(),
        ServerDrops { oversized: 1, malformed: 4, refused: 2, ..ServerDrops::default() }
    );
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
        cookie: None,
        also: Vec::new(),
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
            cookie: None,
            also: Vec::new(),
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
        ToServer::Allocate { name: "carol".into(), cookie: None },
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
            cookie: None,
            also: Vec::new(),
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
    assert_eq!(decode(&out[0]), FromServer::Opened { from: "ann".into(), room: Some("r".into()) });
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

/// A request from `from` as bytes.
fn bytes(request: &ToServer) -> Vec<u8> {
    serde_json::to_vec(request).unwrap()
}

/// Whether `from` got `Registered` among `out`.
fn registered(out: &[Transmit], from: SocketAddr) -> bool {
    out.iter().any(|t| t.to == from && matches!(decode(t), FromServer::Registered { .. }))
}

/// Registers as a client does: again with the cookie when the server asks for one.
fn join(s: &mut Server, now: Instant, from: SocketAddr, room: &str, name: &str) -> Vec<Transmit> {
    let request = |cookie| ToServer::Register {
        room: room.into(),
        name: name.into(),
        private: Vec::new(),
        nat: None,
        relay: None,
        cookie,
        also: Vec::new(),
    };
    let out = handle(s, now, from, &bytes(&request(None)));
    match out.iter().map(decode).next() {
        Some(FromServer::Cookie { cookie }) => handle(s, now, from, &bytes(&request(Some(cookie)))),
        _ => out,
    }
}

#[test]
fn a_flood_from_one_address_locks_nobody_out_of_rooms_or_codes() {
    let mut s = server();
    let start = Instant::now();
    let attacker_ip = "203.0.113.66";
    let attacker = addr(&format!("{attacker_ip}:4000"));
    let cookie = Some(s.limits.cookie(attacker));
    let (ann, bob) = (addr("198.51.100.11:1000"), addr("198.51.100.12:2000"));
    // 300,000 requests, one a microsecond (0.3 s at loopback speed): registrations of new
    // names, allocations and claims on every three-digit number, in turn.
    let flood = |i: u32| -> Vec<u8> {
        match i % 3 {
            0 => bytes(&ToServer::Register {
                room: format!("flood-{i}"),
                name: "x".into(),
                private: Vec::new(),
                nat: None,
                relay: None,
                cookie: cookie.clone(),
                also: Vec::new(),
            }),
            1 => bytes(&ToServer::Allocate { name: "x".into(), cookie: cookie.clone() }),
            _ => bytes(&ToServer::Claim {
                nameplate: (i % 999 + 1).to_string(),
                name: "x".into(),
                cookie: cookie.clone(),
            }),
        }
    };
    let mut noticed = 0;
    let mut now = start;
    let mut code = String::new();
    for i in 0..300_000u32 {
        now = start + Duration::from_micros(u64::from(i));
        let out = handle(&mut s, now, attacker, &flood(i));
        noticed += out
            .iter()
            .filter(|t| matches!(decode(t), FromServer::Refused { reason, .. } if reason.contains("too many requests")))
            .count();
        // In the middle of it, two friends meet in a room, and pair with a code.
        if i == 100_000 {
            assert!(registered(&join(&mut s, now, ann, "friends", "ann"), ann));
            let out = join(&mut s, now, bob, "friends", "bob");
            assert!(registered(&out, bob));
            assert!(out.iter().any(|t| t.to == bob
                && matches!(decode(t), FromServer::Peer { name, .. } if name == "ann")));
            code = allocate(&mut s, now, ann, "ann");
        }
        if i == 200_000 {
            let answer = claim(&mut s, now, bob, &code, "bob");
            let joined = FromServer::Joined { nameplate: code.clone(), name: "bob".into() };
            assert_eq!(answer, vec![FromServer::Claimed { nameplate: code.clone() }, joined]);
        }
    }
    let drops = s.drops();
    assert!(drops.limited > 298_000, "{drops:?}");
    assert_eq!(noticed, 1, "a limited source is told once per {LIMIT_NOTICE_EVERY:?}");
    // What the attacker holds is its quota at most: 256 registrations, 16 codes.
    let legit = 2 + 2;
    assert!(
        s.registrations() <= SOURCE_MAX_REGISTRATIONS + SOURCE_MAX_NAMEPLATES + legit,
        "{}",
        s.registrations()
    );
    // Once the flood stops and what it held expires, its address is served like any other.
    let later = now + CODE_TTL.max(REGISTRATION_TTL) + Duration::from_secs(1);
    assert!(registered(&join(&mut s, later, attacker, "after", "x"), attacker));
    assert!(!allocate(&mut s, later, attacker, "x").is_empty());
}

#[test]
fn claims_are_budgeted_per_source_and_codes_are_hard_to_guess() {
    let mut s = server();
    let start = Instant::now();
    let (ann, bob, guesser) =
        (addr("198.51.100.11:1000"), addr("198.51.100.12:2000"), addr("203.0.113.66:4000"));
    let code = allocate(&mut s, start, ann, "ann");
    let number: u32 = code.parse().unwrap();
    assert!((1..=999).contains(&number), "{code}");
    // A claim every 10 ms on every number: the budget allows six at once, then one every ten
    // seconds; the rest are refused before looking.
    let mut looked = 0;
    let mut hit = false;
    for n in 1..=999u32 {
        let now = start + Duration::from_millis(10 * u64::from(n));
        let answer = claim(&mut s, now, guesser, &n.to_string(), "eve");
        match &answer[..] {
            [FromServer::Claimed { .. }, FromServer::Joined { .. }] => hit = true,
            answer if refused(answer).contains("too many codes") => {}
            _ => looked += 1,
        }
    }
    assert!(looked + usize::from(hit) <= 7, "{looked} numbers looked at");
    // The friend's claim still works (unless the guesser hit it, which the owner then hears).
    if !hit {
        let answer = claim(&mut s, start + Duration::from_secs(11), bob, &code, "bob");
        assert_eq!(answer[0], FromServer::Claimed { nameplate: code });
    }
    // The range grows with the codes live: at most 1 % of it is ever taken.
    assert_eq!(nameplate_range(0), 999);
    assert_eq!(nameplate_range(9), 999);
    assert_eq!(nameplate_range(10), 9_999);
    assert_eq!(nameplate_range(999), 99_999);
    assert_eq!(nameplate_range(MAX_NAMEPLATES - 1), 999_999);
    assert_eq!(nameplate_range(usize::MAX), 999_999);
}

#[test]
fn spoofed_sources_get_cookies_not_state_and_a_full_pool_evicts_the_biggest_holder() {
    let mut s = server();
    let start = Instant::now();
    // 50,000 registrations from as many addresses that never answer (spoofed), at 1 µs each:
    // past 1,000 admissions a second the server asks for cookies and keeps nothing.
    for i in 0..50_000u32 {
        let [_, a, b, c] = i.to_be_bytes();
        let from = SocketAddr::from(([10, a, b, c], 5000));
        let now = start + Duration::from_micros(u64::from(i));
        handle(&mut s, now, from, &register(&format!("spoof-{i}"), "x"));
    }
    let held = s.registrations();
    assert!(held <= COOKIE_LOAD_PER_SEC as usize + 1, "{held}");
    assert!(s.drops().cookies >= 48_000, "{:?}", s.drops());
    // A real client gets in with one more round trip.
    let now = start + Duration::from_millis(100);
    let ann = addr("198.51.100.11:1000");
    let first = handle(&mut s, now, ann, &register("friends", "ann"));
    assert!(matches!(decode(&first[0]), FromServer::Cookie { .. }));
    assert!(registered(&join(&mut s, now, ann, "friends", "ann"), ann));

    // Now sources that do answer fill the rooms' pool: each is held to its quota, and once
    // the pool is full a newcomer takes the place of the biggest holder's oldest entry.
    let mut t = now;
    for source in 0..45u8 {
        let from = SocketAddr::from(([203, 0, 113, source], 6000));
        for n in 0..SOURCE_MAX_REGISTRATIONS + 10 {
            t += Duration::from_millis(2);
            join(&mut s, t, from, &format!("fill-{source}-{n}"), "x");
        }
    }
    assert_eq!(s.limits.live(Pool::Rooms), MAX_REGISTRATIONS);
    assert!(s.drops().refused >= 45 * 10, "every source was held to its quota");
    let evicted = s.drops().evicted;
    assert!(evicted > 0, "the last sources took the places of the first ones' oldest entries");
    let bob = addr("198.51.100.12:2000");
    let out = join(&mut s, t, bob, "friends", "bob");
    assert!(registered(&out, bob));
    assert!(out.iter().any(
        |t| t.to == ann && matches!(decode(t), FromServer::Peer { name, .. } if name == "bob")
    ));
    assert_eq!(s.drops().evicted, evicted + 1);
    assert_eq!(s.limits.live(Pool::Rooms), MAX_REGISTRATIONS);
    // Memory is what the pools hold: one holder per source at most.
    assert!(s.holders() <= MAX_REGISTRATIONS + MAX_NAMEPLATES);
}

/// A refresh leaves a registration filed under its old expiry (see `Member::filed`); a full
/// pool still evicts the biggest holder's registration that truly expires first, not one it
/// refreshed since.
#[test]
fn a_full_pool_evicts_the_entry_that_expires_first_even_one_filed_before_a_refresh() {
    let mut s = server();
    let mut t = Instant::now();
    let step = Duration::from_millis(2);
    // The biggest holder (ties go to the highest address): its quota, oldest first.
    let big = addr("203.0.113.250:6000");
    for n in 0..SOURCE_MAX_REGISTRATIONS {
        t += step;
        join(&mut s, t, big, &format!("big-{n}"), "x");
    }
    let mut source = 0u8;
    while s.limits.live(Pool::Rooms) < MAX_REGISTRATIONS {
        let from = SocketAddr::from(([203, 0, 113, source], 6000));
        for n in 0..SOURCE_MAX_REGISTRATIONS.min(MAX_REGISTRATIONS - s.limits.live(Pool::Rooms)) {
            t += step;
            join(&mut s, t, from, &format!("fill-{source}-{n}"), "x");
        }
        source += 1;
    }
    // Its oldest registration is refreshed: filed first still, but it now expires last.
    t += step;
    join(&mut s, t, big, "big-0", "x");
    let newcomer = addr("198.51.100.12:2000");
    assert!(registered(&join(&mut s, t, newcomer, "friends", "bob"), newcomer));
    assert_eq!(s.drops().evicted, 1);
    assert!(s.rooms.contains_key("big-0"), "the refreshed registration stays");
    assert!(!s.rooms.contains_key("big-1"), "the one that expired first went");
    // And it lives on past the expiry it was filed under, while the others end on time.
    let first_expiry = t - step * 2 + REGISTRATION_TTL;
    s.handle_timeout(first_expiry);
    assert!(s.rooms.contains_key("big-0"));
    assert!(!s.rooms.contains_key("big-2"));
    s.handle_timeout(t + REGISTRATION_TTL);
    assert!(!s.rooms.contains_key("big-0"));
}

#[test]
fn one_registration_joins_several_rooms_and_every_answer_names_its_room() {
    let mut s = server();
    let now = Instant::now();
    let (ann, bob, cat) =
        (addr("198.51.100.11:1000"), addr("198.51.100.12:2000"), addr("198.51.100.13:3000"));
    handle(&mut s, now, bob, &register("rv-bob", "bob"));
    handle(&mut s, now, cat, &register("friends", "cat"));
    let membership = |room: &str, name: &str| Membership { room: room.into(), name: name.into() };
    let request = ToServer::Register {
        room: "rv-bob".into(),
        name: "ann".into(),
        private: Vec::new(),
        nat: None,
        relay: None,
        cookie: None,
        also: vec![membership("friends", "annie"), membership("np-1", "ann")],
    };
    let out = handle(&mut s, now, ann, &bytes(&request));
    let to_ann: Vec<FromServer> = out.iter().filter(|t| t.to == ann).map(decode).collect();
    let rooms: Vec<(Option<&str>, &str)> = to_ann
        .iter()
        .map(|a| {
            let kind = match a {
                FromServer::Registered { .. } => "registered",
                FromServer::Peer { .. } => "peer",
                FromServer::Refused { .. } => "refused",
                _ => "other",
            };
            (a.room(), kind)
        })
        .collect();
    assert_eq!(
        rooms,
        vec![
            (Some("rv-bob"), "registered"),
            (Some("rv-bob"), "peer"),
            (Some("friends"), "registered"),
            (Some("friends"), "peer"),
            (Some("np-1"), "refused"),
        ]
    );
    // The others meet us under the name we chose for their room.
    let to_cat: Vec<FromServer> = out.iter().filter(|t| t.to == cat).map(decode).collect();
    assert!(
        matches!(&to_cat[..], [FromServer::Peer { name, room: Some(room), .. }] if name == "annie" && room == "friends")
    );
    assert_eq!(s.registrations(), 4);
    // Past a datagram's worth of rooms the whole request is refused.
    let many = (0..MAX_ROOMS_PER_REGISTER).map(|i| membership(&format!("r{i}"), "ann")).collect();
    let request = ToServer::Register {
        room: "rv-bob".into(),
        name: "ann".into(),
        private: Vec::new(),
        nat: None,
        relay: None,
        cookie: None,
        also: many,
    };
    assert!(refused(&ask(&mut s, now, ann, request)).contains("at most"));
}
