//! Pairing with a short code and reconnecting as contacts, through the real server and
//! headless peers on loopback: both ways, a wrong, used and expired code, a relay that swaps
//! the SPAKE2 messages for its own, and a contact whose identity key changed.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::harness::{Proc, TempDir, bin, home_config, log_records, server, server_with};

const WITHIN: Duration = Duration::from_secs(20);

/// A headless chat for `name` whose identity and contacts live in `home`; `target` is a code,
/// a contact's name, or nothing (ask for a code).
pub fn person(name: &str, server: SocketAddr, target: Option<&str>, home: &Path) -> Proc {
    let mut command = bin();
    command
        .args(["chat", "--headless", "--name", name, "--bind", "127.0.0.1:0"])
        .arg("--server")
        .arg(server.to_string())
        .arg("--data-dir")
        .arg(home.join("data"))
        .env("P2PCHAT_CONFIG", home_config(home));
    command.args(target);
    Proc::spawn(command)
}

pub fn code_of(proc: &mut Proc) -> String {
    let event = proc.expect(WITHIN, "a code", |v| v["event"] == "code");
    event["code"].as_str().unwrap().to_owned()
}

pub fn agreed(proc: &mut Proc, peer: &str) -> String {
    let event = proc.expect(WITHIN, "keys agreed", |v| v["event"] == "keys_agreed");
    assert_eq!(event["peer"], peer, "{event}");
    event["safety_number"].as_str().unwrap().to_owned()
}

fn online(a: &mut Proc, b: &mut Proc) {
    a.expect(WITHIN, "peer online", |v| v["event"] == "peer_online");
    b.expect(WITHIN, "peer online", |v| v["event"] == "peer_online");
}

fn chat_one_line(from: &mut Proc, to: &mut Proc, text: &str) {
    from.say(text);
    to.expect(WITHIN, "the message", |v| v["event"] == "message" && v["text"] == text);
    from.expect(WITHIN, "delivered", |v| v["event"] == "delivered");
}

fn failed(proc: &mut Proc, says: &str) {
    let event = proc.expect(WITHIN, "an error", |v| v["event"] == "error");
    let message = event["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
    let code = proc.wait(WITHIN);
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
}

#[test]
fn pair_with_a_code_then_reconnect_as_contacts_both_ways() {
    let (_server, addr) = server();
    let (ann_home, bob_home) = (TempDir::new("ann"), TempDir::new("bob"));
    let mut ann = person("ann", addr, None, ann_home.path());
    let code = code_of(&mut ann);
    let mut bob = person("bob", addr, Some(&code), bob_home.path());
    let number = agreed(&mut ann, "bob");
    assert_eq!(agreed(&mut bob, "ann"), number, "both screens show the same safety number");
    online(&mut ann, &mut bob);
    chat_one_line(&mut ann, &mut bob, "hello bob, paired by code");
    chat_one_line(&mut bob, &mut ann, "hi ann");
    bob.say("/contacts");
    let contacts = bob.expect(WITHIN, "contacts", |v| v["event"] == "contacts");
    assert_eq!(contacts["contacts"][0]["name"], "ann", "{contacts}");
    for (proc, home) in [(&mut ann, &ann_home), (&mut bob, &bob_home)] {
        proc.say("/quit");
        assert_eq!(proc.wait(WITHIN), Some(0));
        for file in ["identity.key", "contacts.json"] {
            let mode = std::fs::metadata(home.path().join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    // Next day: by name, no code; the other way round this time.
    let mut bob = person("bob", addr, Some("ann"), bob_home.path());
    bob.expect(WITHIN, "waiting", |v| v["event"] == "waiting" && v["peer"] == "ann");
    let mut ann = person("ann", addr, Some("bob"), ann_home.path());
    assert_eq!(agreed(&mut bob, "ann"), number);
    assert_eq!(agreed(&mut ann, "bob"), number);
    online(&mut ann, &mut bob);
    chat_one_line(&mut bob, &mut ann, "hello again, no code needed");
    // One conversation per contact: yesterday's lines are in the same log.
    let records = log_records(&ann_home.path().join("data"), "contact-bob.jsonl");
    let texts: Vec<&str> = records.iter().filter_map(|r| r["text"].as_str()).collect();
    assert!(texts.contains(&"hello bob, paired by code"), "{texts:?}");
    assert!(texts.contains(&"hello again, no code needed"), "{texts:?}");
}

#[test]
fn wrong_used_and_expired_codes_fail_clearly() {
    let (_server, addr) = server_with("127.0.0.1:0", &["--code-ttl", "3"]);
    let homes = [TempDir::new("w1"), TempDir::new("w2"), TempDir::new("w3")];
    let mut ann = person("ann", addr, None, homes[0].path());
    let code = code_of(&mut ann);
    // One word wrong: both sides learn it, nothing is shown, and the code is spent.
    let words: Vec<&str> = code.split('-').collect();
    let other = if words[2] == "apple" { "banjo" } else { "apple" };
    let wrong = format!("{}-{}-{other}", words[0], words[1]);
    let mut bob = person("bob", addr, Some(&wrong), homes[1].path());
    failed(&mut bob, "code mismatch");
    failed(&mut ann, "code mismatch");
    let mut eve = person("eve", addr, Some(&code), homes[2].path());
    failed(&mut eve, "already used");
    for home in &homes {
        assert!(!home.path().join("contacts.json").exists(), "no contact was saved");
    }
    // A code nobody uses expires; then it is unknown.
    let mut ann = person("ann", addr, None, homes[0].path());
    let code = code_of(&mut ann);
    failed(&mut ann, "nobody used the code");
    let mut bob = person("bob", addr, Some(&code), homes[1].path());
    failed(&mut bob, "expired");
    // A typo in the words is caught before anything is sent.
    let out = bin()
        .args(["chat", "7-apple-notaword", "--name", "bob", "--server", &addr.to_string()])
        .env("P2PCHAT_CONFIG", home_config(homes[1].path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a pairing code"));
}

#[test]
fn a_code_claimed_by_someone_who_never_answers_is_told_to_its_owner() {
    let (_server, addr) = server();
    let home = TempDir::new("squatted");
    let mut ann = person("ann", addr, None, home.path());
    let code = code_of(&mut ann);
    let nameplate = code.split('-').next().unwrap().to_owned();
    // Someone takes the nameplate (as a guesser or a typo would), proves its address with the
    // cookie like any client, then never sends the exchange's first step.
    let squatter = UdpSocket::bind("127.0.0.1:0").unwrap();
    squatter.set_read_timeout(Some(WITHIN)).unwrap();
    let claim = |cookie: Option<String>| {
        let request = serde_json::json!({"op": "claim", "nameplate": nameplate, "name": "mallory", "cookie": cookie});
        squatter.send_to(&serde_json::to_vec(&request).unwrap(), addr).unwrap();
        let mut buf = [0u8; 2048];
        let len = squatter.recv(&mut buf).unwrap();
        serde_json::from_slice::<Value>(&buf[..len]).unwrap()
    };
    let answer = claim(None);
    assert_eq!(answer["op"], "cookie", "{answer}");
    let answer = claim(answer["cookie"].as_str().map(str::to_owned));
    assert_eq!(answer["op"], "claimed", "{answer}");
    failed(&mut ann, "someone used your code, calling themselves \"mallory\"");
}

/// A relay in front of the server that swaps every SPAKE2 message for one of its own made
/// with a guessed code: an active attacker with one guess.
fn tampering_relay(server: SocketAddr, stop: Arc<AtomicBool>) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    front.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let addr = front.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut upstream: HashMap<SocketAddr, UdpSocket> = HashMap::new();
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((len, client)) = front.recv_from(&mut buf) {
                let mut bytes = buf[..len].to_vec();
                if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes)
                    && v["op"] == "post"
                    && v["phase"] == "pake"
                {
                    let guess = spake2::Password::new(b"1-apple-apple");
                    let id = spake2::Identity::new(b"p2pchat pairing v1");
                    let (_, ours) =
                        spake2::Spake2::<spake2::Ed25519Group>::start_symmetric(&guess, &id);
                    v["body"] = base64::engine::general_purpose::STANDARD.encode(ours).into();
                    bytes = serde_json::to_vec(&v).unwrap();
                }
                let up = upstream.entry(client).or_insert_with(|| {
                    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.set_nonblocking(true).unwrap();
                    s
                });
                let _ = up.send_to(&bytes, server);
            }
            for (client, up) in &upstream {
                while let Ok(len) = up.recv(&mut buf) {
                    let _ = front.send_to(&buf[..len], client);
                }
            }
        }
    });
    addr
}

#[test]
fn a_server_in_the_middle_swapping_spake2_messages_gets_nothing() {
    let (_server, addr) = server();
    let stop = Arc::new(AtomicBool::new(false));
    let relay = tampering_relay(addr, stop.clone());
    let (ann_home, bob_home) = (TempDir::new("m1"), TempDir::new("m2"));
    let mut ann = person("ann", relay, None, ann_home.path());
    let code = code_of(&mut ann);
    let mut bob = person("bob", relay, Some(&code), bob_home.path());
    failed(&mut ann, "code mismatch");
    failed(&mut bob, "code mismatch");
    for proc in [&ann, &bob] {
        assert!(
            !proc
                .seen
                .iter()
                .any(|l| l.contains("keys_agreed") || l.contains("\"event\":\"message\""))
        );
    }
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn a_contact_whose_identity_key_changed_is_refused() {
    let (_server, addr) = server();
    let (ann_home, bob_home) = (TempDir::new("c1"), TempDir::new("c2"));
    let mut ann = person("ann", addr, None, ann_home.path());
    let code = code_of(&mut ann);
    let mut bob = person("bob", addr, Some(&code), bob_home.path());
    agreed(&mut ann, "bob");
    agreed(&mut bob, "ann");
    for proc in [&mut ann, &mut bob] {
        proc.say("/quit");
        assert_eq!(proc.wait(WITHIN), Some(0));
    }
    // Bob's identity is lost and made anew; his contacts still hold ann.
    std::fs::remove_file(bob_home.path().join("identity.key")).unwrap();
    let mut bob = person("bob", addr, Some("ann"), bob_home.path());
    let mut ann = person("ann", addr, Some("bob"), ann_home.path());
    failed(&mut ann, "different identity key");
    assert!(!ann.seen.iter().any(|l| l.contains("keys_agreed")));
    // Bob is told too, in one sentence, instead of waiting forever.
    failed(&mut bob, "refused to connect");
    assert!(!bob.seen.iter().any(|l| l.contains("keys_agreed")));
}

#[test]
fn a_running_chat_refuses_a_contact_back_with_another_key_and_both_learn_it() {
    let (_server, addr) = server();
    let (ann_home, bob_home) = (TempDir::new("k1"), TempDir::new("k2"));
    let mut ann = person("ann", addr, None, ann_home.path());
    let code = code_of(&mut ann);
    let mut bob = person("bob", addr, Some(&code), bob_home.path());
    agreed(&mut ann, "bob");
    agreed(&mut bob, "ann");
    online(&mut ann, &mut bob);
    bob.kill();
    // Bob comes back by name with a new identity; ann's running chat refuses it, says so,
    // and bob learns why.
    std::fs::remove_file(bob_home.path().join("identity.key")).unwrap();
    let mut bob = person("bob", addr, Some("ann"), bob_home.path());
    failed(&mut bob, "refused to connect");
    let event = ann.expect(WITHIN, "the refusal", |v| v["event"] == "error");
    assert!(event["message"].as_str().unwrap().contains("different identity key"), "{event}");
}

#[test]
fn a_contact_that_restarts_mid_chat_gets_fresh_keys_and_the_chat_goes_on() {
    let (_server, addr) = server();
    let (ann_home, bob_home) = (TempDir::new("r1"), TempDir::new("r2"));
    let mut ann = person("ann", addr, None, ann_home.path());
    let code = code_of(&mut ann);
    let mut bob = person("bob", addr, Some(&code), bob_home.path());
    let number = agreed(&mut ann, "bob");
    agreed(&mut bob, "ann");
    online(&mut ann, &mut bob);
    chat_one_line(&mut ann, &mut bob, "before the crash");
    bob.kill();
    // Bob comes back by name; ann's running chat answers his new handshake.
    let mut bob = person("bob", addr, Some("ann"), bob_home.path());
    assert_eq!(agreed(&mut bob, "ann"), number, "same identities, same safety number");
    ann.expect(WITHIN, "keys renewed", |v| v["event"] == "keys_renewed" && v["peer"] == "bob");
    bob.expect(WITHIN, "ann online", |v| v["event"] == "peer_online");
    chat_one_line(&mut ann, &mut bob, "after the restart");
    chat_one_line(&mut bob, &mut ann, "and back");
}

/// Pairs `ann` and `bob` (homes given) with a fresh code; returns the two headless chats with
/// their `ready` … `keys_agreed` lines seen.
fn pair(addr: SocketAddr, ann_home: &Path, bob_home: &Path) -> (Proc, Proc) {
    let mut ann = person("ann", addr, None, ann_home);
    let code = code_of(&mut ann);
    let mut bob = person("bob", addr, Some(&code), bob_home);
    agreed(&mut ann, "bob");
    agreed(&mut bob, "ann");
    (ann, bob)
}

fn first_seen(proc: &mut Proc) -> String {
    proc.say("/contacts");
    let contacts = proc.expect(WITHIN, "contacts", |v| v["event"] == "contacts");
    assert_eq!(contacts["contacts"].as_array().unwrap().len(), 1, "{contacts}");
    contacts["contacts"][0]["first_seen"].as_str().unwrap().to_owned()
}

fn quit(proc: &mut Proc) {
    proc.say("/quit");
    assert_eq!(proc.wait(WITHIN), Some(0));
}

#[test]
fn pairing_again_with_the_same_identities_warns_nobody_and_keeps_first_seen() {
    let (_server, addr) = server();
    let (ann_home, bob_home) = (TempDir::new("p1"), TempDir::new("p2"));
    let (mut ann, mut bob) = pair(addr, ann_home.path(), bob_home.path());
    let (ann_since, bob_since) = (first_seen(&mut ann), first_seen(&mut bob));
    quit(&mut ann);
    quit(&mut bob);
    // First seen is to the second; the second pairing must come later than it for a reset to
    // show.
    std::thread::sleep(Duration::from_millis(1100));
    let (mut ann, mut bob) = pair(addr, ann_home.path(), bob_home.path());
    assert_eq!(first_seen(&mut ann), ann_since);
    assert_eq!(first_seen(&mut bob), bob_since);
    for proc in [&ann, &bob] {
        let warned = proc.seen.iter().any(|l| l.contains("identity key changed"));
        assert!(!warned, "{:#?}", proc.seen);
    }
    quit(&mut ann);
    quit(&mut bob);

    // A really different key (bob's identity made anew), accepted by pairing with a code: that
    // is news, on the side that saved the old key, and bob is a contact met anew.
    std::fs::remove_file(bob_home.path().join("identity.key")).unwrap();
    let (mut ann, bob) = pair(addr, ann_home.path(), bob_home.path());
    let noticed =
        ann.seen.iter().any(|l| l.contains("\"notice\"") && l.contains("identity key changed"));
    assert!(noticed, "{:#?}", ann.seen);
    assert_ne!(first_seen(&mut ann), ann_since);
    assert!(!bob.seen.iter().any(|l| l.contains("identity key changed")), "{:#?}", bob.seen);
}

#[test]
fn reconnecting_by_a_contacts_name_keeps_the_name_you_paired_with() {
    let (_server, addr) = server();
    let (ann_home, bob_home) = (TempDir::new("n1"), TempDir::new("n2"));
    let (mut ann, mut bob) = pair(addr, ann_home.path(), bob_home.path());
    quit(&mut ann);
    quit(&mut bob);
    // No --name, and a login name that is neither: each is who the other paired with.
    let again = |home: &Path, contact: &str| {
        let mut command = bin();
        command
            .args(["chat", contact, "--headless", "--bind", "127.0.0.1:0", "--server"])
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(home.join("data"))
            .env("P2PCHAT_CONFIG", home_config(home))
            .env("USER", "somebody-else")
            .env("LOGNAME", "somebody-else");
        Proc::spawn(command)
    };
    let (mut ann, mut bob) = (again(ann_home.path(), "bob"), again(bob_home.path(), "ann"));
    let ready = ann.expect_event(WITHIN, "ready");
    assert_eq!(ready["name"], "ann", "{ready}");
    online(&mut ann, &mut bob);
    chat_one_line(&mut ann, &mut bob, "still ann");
    let message = bob.seen.iter().find(|l| l.contains("still ann")).unwrap();
    assert!(message.contains("\"from\":\"ann\""), "{message}");
    // Nobody else is in the pair's room: no earlier registration of ours shows as a peer.
    ann.say("/who");
    let who = ann.expect_event(WITHIN, "who");
    let peers: Vec<&str> =
        who["peers"].as_array().unwrap().iter().map(|p| p["peer"].as_str().unwrap()).collect();
    assert_eq!(peers, ["bob"], "{who}");
}

#[test]
fn long_waits_say_at_once_what_they_wait_for_and_how_long_at_most() {
    // A server that does not answer: said before the first request goes out.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let home = TempDir::new("w-silent");
    let mut ann = person("ann", silent.local_addr().unwrap(), None, home.path());
    let notice = ann.expect_event(Duration::from_secs(5), "notice");
    let said = notice["message"].as_str().unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    assert!(said.contains(&silent_addr) && said.contains("at most 10 seconds"), "{said}");
    failed(&mut ann, "does not answer");
    // A code whose owner left: once the code is known good, how long the friend's side has.
    let (_server, addr) = server();
    let homes = [TempDir::new("w-owner"), TempDir::new("w-joiner")];
    let mut ann = person("ann", addr, None, homes[0].path());
    let code = code_of(&mut ann);
    ann.kill();
    let mut bob = person("bob", addr, Some(&code), homes[1].path());
    let notice = bob.expect(WITHIN, "the claim notice", |v| {
        v["event"] == "notice" && v["message"].as_str().unwrap().contains("friend's side")
    });
    assert!(notice["message"].as_str().unwrap().contains("at most 1 minute"), "{notice}");
}

#[test]
fn quit_or_the_end_of_input_ends_a_wait_for_a_friend_or_a_contact() {
    let (_server, addr) = server();
    let (ann_home, bob_home) = (TempDir::new("qa"), TempDir::new("qb"));
    // Waiting with a new code: /quit ends it at once, a line typed before it is said unsent.
    let mut ann = person("ann", addr, None, ann_home.path());
    code_of(&mut ann);
    ann.say("never sent");
    ann.say("/QUIT");
    let unsent = ann.expect(WITHIN, "not sent", |v| v["event"] == "not_sent");
    assert_eq!(unsent["text"], "never sent");
    ann.expect_event(WITHIN, "closed");
    assert_eq!(ann.wait(Duration::from_secs(5)), Some(0));
    // The end of input with nothing typed ends it too: nothing could be typed any more.
    let mut ann = person("ann", addr, None, ann_home.path());
    code_of(&mut ann);
    ann.close_stdin();
    ann.expect_event(WITHIN, "closed");
    assert_eq!(ann.wait(Duration::from_secs(5)), Some(0));

    // Waiting for a contact who is away: the same.
    drop(pair(addr, ann_home.path(), bob_home.path()));
    for end in ["quit", "eof"] {
        let mut bob = person("bob", addr, Some("ann"), bob_home.path());
        bob.expect(WITHIN, "waiting", |v| v["event"] == "waiting" && v["peer"] == "ann");
        match end {
            "quit" => bob.say("/quit"),
            _ => bob.close_stdin(),
        }
        bob.expect_event(WITHIN, "closed");
        assert_eq!(bob.wait(Duration::from_secs(5)), Some(0), "{end}");
    }
}

#[test]
fn lines_typed_while_waiting_go_out_once_the_contact_comes_even_after_the_end_of_input() {
    let (_server, addr) = server();
    let (ann_home, bob_home) = (TempDir::new("wa"), TempDir::new("wb"));
    drop(pair(addr, ann_home.path(), bob_home.path()));
    let mut bob = person("bob", addr, Some("ann"), bob_home.path());
    bob.expect(WITHIN, "waiting", |v| v["event"] == "waiting" && v["peer"] == "ann");
    bob.say("typed while waiting");
    bob.close_stdin();
    // The end of input waits for the keys (bounded) since a message waits to be sent.
    std::thread::sleep(Duration::from_secs(1));
    let mut ann = person("ann", addr, Some("bob"), ann_home.path());
    ann.expect(WITHIN, "the message", |v| {
        v["event"] == "message" && v["text"] == "typed while waiting"
    });
    bob.expect_event(WITHIN, "delivered");
    assert_eq!(bob.wait(WITHIN), Some(0));
}
