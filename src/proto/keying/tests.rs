//! Handshakes run against each other through a list of posts, as the server would relay them,
//! with a code or an identity wrong, an attacker in the middle and a replay.

use super::*;

const NOW: u64 = 1_780_000_000;

fn identity(seed: u8) -> Identity {
    Identity::from_secret(&[seed; 32])
}

fn code(words: [&str; 2]) -> Code {
    Code { nameplate: "7".into(), words: [words[0].into(), words[1].into()] }
}

/// Either kind of handshake, as the relay below sees it.
trait Side {
    fn posts(&self) -> Vec<(&'static str, String)>;
    fn on_mail(&mut self, phase: &str, body: &str, unix_secs: u64);
}

impl Side for Pairing {
    fn posts(&self) -> Vec<(&'static str, String)> {
        Pairing::posts(self)
    }
    fn on_mail(&mut self, phase: &str, body: &str, unix_secs: u64) {
        Pairing::on_mail(self, phase, body, unix_secs);
    }
}

impl Side for Handshake {
    fn posts(&self) -> Vec<(&'static str, String)> {
        Handshake::posts(self)
    }
    fn on_mail(&mut self, phase: &str, body: &str, unix_secs: u64) {
        Handshake::on_mail(self, phase, body, unix_secs);
    }
}

/// Relays each side's posts to the other, as the server would, a few rounds.
fn relay(a: &mut impl Side, b: &mut impl Side) {
    for _ in 0..4 {
        for (phase, body) in a.posts() {
            b.on_mail(phase, &body, NOW);
        }
        for (phase, body) in b.posts() {
            a.on_mail(phase, &body, NOW);
        }
    }
}

#[test]
fn codes_parse_print_and_complete() {
    let list = words();
    assert_eq!(list.len(), 256);
    let c = Code::new("7", [0, 255]);
    assert_eq!(c.to_string(), format!("7-{}-{}", list[0], list[255]));
    assert_eq!(Code::parse(&c.to_string()), Ok(c.clone()));
    assert_eq!(Code::parse(&format!("  7 {} {} ", list[0].to_uppercase(), list[255])), Ok(c));
    for bad in ["", "7", "7-apple", "x-apple-banjo", "7-apple-notaword", "7-apple-banjo-cello"] {
        assert!(Code::parse(bad).is_err(), "{bad}");
    }
    assert!(Code::words_starting("ban").contains(&"banjo"));
    assert!(Code::words_starting("zzz").is_empty());
    assert_eq!(Code::complete("7-banj"), Completion::Line("7-banjo-".into()));
    assert_eq!(Code::complete("7 Banj"), Completion::Line("7-banjo-".into()));
    assert_eq!(Code::complete("7-banjo-zeb"), Completion::Line("7-banjo-zebra".into()));
    // "ca" starts cabin, cactus, camel, …: the common part is already typed, so choices.
    assert!(matches!(Code::complete("7-ca"), Completion::Choices(c) if c.contains(&"camel")));
    assert_eq!(Code::complete("7-gu"), Completion::Line("7-guitar-".into()));
    assert_eq!(Code::complete("7-xq"), Completion::Nothing);
    assert_eq!(Code::complete("7"), Completion::Nothing);
    assert_eq!(Code::complete("7-banjo-zebra-x"), Completion::Nothing);
}

#[test]
fn same_code_gives_each_side_the_others_keys_and_identity() {
    let c = code(["apple", "banjo"]);
    let mut a = Pairing::new(&c, identity(1), "ann".into());
    let mut b = Pairing::new(&c, identity(2), "bob".into());
    relay(&mut a, &mut b);
    let (Some(Ok(at_a)), Some(Ok(at_b))) = (a.outcome(), b.outcome()) else {
        panic!("not agreed: {:?} {:?}", a.outcome(), b.outcome());
    };
    assert_eq!(at_a.peer, Peer { name: "bob".into(), key: identity(2).public() });
    assert_eq!(at_b.peer, Peer { name: "ann".into(), key: identity(1).public() });
    assert_eq!((at_a.send, at_a.recv), (at_b.recv, at_b.send));
    assert_ne!(at_a.send, at_a.recv, "one key per direction");
    let token = at_a.cipher().seal(b"hi", NOW);
    assert_eq!(at_b.cipher().open(&token, NOW).unwrap(), b"hi");
    assert!(at_a.cipher().open(&token, NOW).is_err(), "our sending key does not open ours");
}

#[test]
fn a_wrong_code_fails_on_both_sides() {
    let mut a = Pairing::new(&code(["apple", "banjo"]), identity(1), "ann".into());
    let mut b = Pairing::new(&code(["apple", "bagel"]), identity(2), "bob".into());
    relay(&mut a, &mut b);
    assert_eq!(a.outcome(), Some(&Err(Failure::CodeMismatch)));
    assert_eq!(b.outcome(), Some(&Err(Failure::CodeMismatch)));
}

#[test]
fn a_server_substituting_its_own_spake2_messages_gets_no_key() {
    // The server relays, but swaps each side's SPAKE2 message for its own, made with a guess.
    let real = code(["apple", "banjo"]);
    let mut a = Pairing::new(&real, identity(1), "ann".into());
    let mut b = Pairing::new(&real, identity(2), "bob".into());
    let mut to_a = Pairing::new(&code(["apple", "cabin"]), identity(9), "bob".into());
    let mut to_b = Pairing::new(&code(["apple", "cabin"]), identity(9), "ann".into());
    relay(&mut a, &mut to_a);
    relay(&mut b, &mut to_b);
    assert_eq!(a.outcome(), Some(&Err(Failure::CodeMismatch)));
    assert_eq!(b.outcome(), Some(&Err(Failure::CodeMismatch)));
    assert!(!matches!(to_a.outcome(), Some(Ok(_))));
    // Tampered bytes in a relayed post fail the same way.
    let mut a = Pairing::new(&real, identity(1), "ann".into());
    let mut b = Pairing::new(&real, identity(2), "bob".into());
    for (phase, body) in b.posts() {
        a.on_mail(phase, &body, NOW);
    }
    let (_, identity_post) = a.posts().pop().unwrap();
    let mut flipped = identity_post.into_bytes();
    flipped[40] = if flipped[40] == b'A' { b'B' } else { b'A' };
    let (phase, pake) = a.posts().remove(0);
    b.on_mail(phase, &pake, NOW);
    b.on_mail(phase::IDENTITY, std::str::from_utf8(&flipped).unwrap(), NOW);
    assert_eq!(b.outcome(), Some(&Err(Failure::CodeMismatch)));
}

#[test]
fn a_name_with_invisible_characters_is_not_taken_as_a_contact() {
    // A client that lets a name like "b\u{200b}ob" through would pass for "bob".
    for name in ["b\u{200b}ob", "bob\u{202e}", "\u{feff}bob", "b\u{1b}ob"] {
        let c = code(["apple", "banjo"]);
        let mut a = Pairing::new(&c, identity(1), "ann".into());
        let mut b = Pairing::new(&c, identity(2), name.into());
        relay(&mut a, &mut b);
        let Some(Err(Failure::BadName(problem))) = a.outcome() else {
            panic!("{name:?} accepted: {:?}", a.outcome());
        };
        assert!(problem.contains("choose a name without it"), "{problem}");
        assert!(matches!(b.outcome(), Some(Ok(_))), "ann's own name is fine");
    }
}

fn contact(name: &str, seed: u8) -> Peer {
    Peer { name: name.into(), key: identity(seed).public() }
}

#[test]
fn contacts_agree_fresh_keys_each_time() {
    let mut a = Handshake::new(identity(1), contact("bob", 2), [11; 32]);
    let mut b = Handshake::new(identity(2), contact("ann", 1), [12; 32]);
    relay(&mut a, &mut b);
    let (Some(Ok(at_a)), Some(Ok(at_b))) = (a.outcome(), b.outcome()) else {
        panic!("not agreed: {:?} {:?}", a.outcome(), b.outcome());
    };
    assert_eq!((at_a.send, at_a.recv), (at_b.recv, at_b.send));
    assert_eq!(at_a.peer.name, "bob");
    let mut a2 = Handshake::new(identity(1), contact("bob", 2), [21; 32]);
    let mut b2 = Handshake::new(identity(2), contact("ann", 1), [22; 32]);
    relay(&mut a2, &mut b2);
    let Some(Ok(again)) = a2.outcome() else { panic!("second run failed") };
    assert_ne!(again.send, at_a.send, "each run has keys of its own");
}

#[test]
fn a_changed_identity_key_is_refused() {
    // Bob reinstalled: a new identity key, while Ann saved the old one.
    let mut a = Handshake::new(identity(1), contact("bob", 2), [11; 32]);
    let mut b = Handshake::new(identity(3), contact("ann", 1), [12; 32]);
    relay(&mut a, &mut b);
    assert_eq!(a.outcome(), Some(&Err(Failure::IdentityChanged { name: "bob".into() })));
    // Bob learns it too, from Ann's signed refusal, instead of waiting for her forever.
    assert_eq!(b.outcome(), Some(&Err(Failure::RefusedByContact { name: "ann".into() })));
    assert!(!a.posts().iter().any(|(phase, _)| *phase == phase::AUTH), "no signature for bob");
    for failure in [a.outcome(), b.outcome()].into_iter().flatten() {
        let said = failure.clone().err().unwrap().to_string();
        assert!(said.contains("pair") && said.contains("again with a code"), "{said}");
        assert_eq!(said.matches(". ").count(), 0, "one sentence: {said}");
    }
}

#[test]
fn a_refusal_counts_only_in_its_own_handshake() {
    // Ann saved another key for bob (3) and refuses his run; a replay of that refusal to a
    // later run of bob, made under other keys, proves nothing: that run waits on.
    let mut ann = Handshake::new(identity(1), contact("bob", 3), [11; 32]);
    let mut bob = Handshake::new(identity(2), contact("ann", 1), [12; 32]);
    relay(&mut ann, &mut bob);
    let refusal = ann.posts().into_iter().find(|(phase, _)| *phase == phase::REFUSED).unwrap();
    let mut later = Handshake::new(identity(2), contact("ann", 1), [13; 32]);
    let hello = ann.posts().into_iter().find(|(phase, _)| *phase == phase::HELLO).unwrap();
    later.on_mail(hello.0, &hello.1, NOW);
    later.on_mail(refusal.0, &refusal.1, NOW);
    assert_eq!(later.outcome(), None);
    // Both sides with a changed key: each refuses the other, neither hangs.
    let mut a = Handshake::new(identity(5), contact("bob", 2), [14; 32]);
    let mut b = Handshake::new(identity(6), contact("ann", 1), [15; 32]);
    relay(&mut a, &mut b);
    assert_eq!(a.outcome(), Some(&Err(Failure::IdentityChanged { name: "bob".into() })));
    assert_eq!(b.outcome(), Some(&Err(Failure::IdentityChanged { name: "ann".into() })));
}

#[test]
fn a_replayed_handshake_does_nothing() {
    // An attacker captured Bob's posts from yesterday and plays them to today's Ann.
    let mut a_old = Handshake::new(identity(1), contact("bob", 2), [11; 32]);
    let mut b_old = Handshake::new(identity(2), contact("ann", 1), [12; 32]);
    relay(&mut a_old, &mut b_old);
    let captured = b_old.posts();
    let mut a = Handshake::new(identity(1), contact("bob", 2), [31; 32]);
    for _ in 0..3 {
        for (phase, body) in &captured {
            a.on_mail(phase, body, NOW);
        }
    }
    assert_eq!(a.outcome(), None, "no keys from a replay");
    // A hello claiming Bob's key with a signature nobody can make also gets nowhere.
    let mut forged = Handshake::new(identity(5), contact("ann", 1), [41; 32]);
    let mut hello = STANDARD.decode(&forged.posts()[0].1).unwrap();
    hello[32..].copy_from_slice(&identity(2).public());
    a.on_mail(phase::HELLO, &STANDARD.encode(&hello), NOW);
    forged.on_mail(phase::HELLO, &a.posts()[0].1, NOW);
    if let Some((phase, body)) = forged.posts().get(1) {
        a.on_mail(phase, body, NOW);
    }
    assert_eq!(a.outcome(), None);
}

#[test]
fn garbage_posts_never_panic_and_never_agree() {
    let c = code(["apple", "banjo"]);
    for junk in ["", "!!!", "AAAA", &STANDARD.encode([0u8; 31]), &STANDARD.encode([7u8; 200])] {
        let mut a = Pairing::new(&c, identity(1), "ann".into());
        a.on_mail(phase::PAKE, junk, NOW);
        a.on_mail(phase::IDENTITY, junk, NOW);
        a.on_mail("nonsense", junk, NOW);
        assert!(!matches!(a.outcome(), Some(Ok(_))), "{junk:?}");
        let mut h = Handshake::new(identity(1), contact("bob", 2), [11; 32]);
        h.on_mail(phase::HELLO, junk, NOW);
        h.on_mail(phase::AUTH, junk, NOW);
        assert_eq!(h.outcome(), None, "{junk:?}");
    }
    // A hello whose key is a low-order point carries no secret: ignored.
    let mut h = Handshake::new(identity(1), contact("bob", 2), [11; 32]);
    let low_order = [[0u8; 32], identity(2).public()].concat();
    h.on_mail(phase::HELLO, &STANDARD.encode(low_order), NOW);
    assert_eq!(h.posts().len(), 1, "no keys, so nothing sealed to post");
    // Our own SPAKE2 message reflected back is not the other side.
    let mut a = Pairing::new(&c, identity(1), "ann".into());
    let (phase, ours) = a.posts().remove(0);
    a.on_mail(phase, &ours, NOW);
    assert_eq!(a.wants(), Some(phase::PAKE));
}

#[test]
fn the_outbox_repeats_posts_until_held() {
    let mut outbox = Outbox::default();
    let posts = vec![(phase::HELLO, "h1".to_owned()), (phase::AUTH, "a1".to_owned())];
    assert_eq!(outbox.due(posts.clone()).len(), 2);
    outbox.posted(phase::HELLO);
    assert_eq!(outbox.due(posts.clone()), vec![(phase::AUTH, "a1".to_owned())]);
    outbox.posted(phase::AUTH);
    assert!(outbox.holds(&posts));
    // A changed body is due again.
    let changed = vec![(phase::HELLO, "h2".to_owned())];
    assert!(!outbox.holds(&changed));
    assert_eq!(outbox.due(changed).len(), 1);
}
