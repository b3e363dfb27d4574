//! The messenger (`p2pchat open`) as a user runs it, headless: alice, paired with bob and with
//! carol, holds both conversations in one process on one UDP socket while they reconnect by
//! name; messages go to and come from each conversation and never cross; a room joined inside
//! it is kept, with its key readable by the owner only, and rejoined the next time.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Proc, TempDir, bin, home_config, keygen, log_records, room_peer, server};
use crate::pairing::{agreed, code_of, person};

const WITHIN: Duration = Duration::from_secs(20);

/// What alice's messenger says when bob and carol come back: new keys, and both online.
const BOTH_BACK: &[(&str, &str)] = &[
    ("bob", "keys_agreed"),
    ("carol", "keys_agreed"),
    ("bob", "peer_online"),
    ("carol", "peer_online"),
];

/// The messenger, headless, for the identity and contacts in `home` (no `--server`: each
/// contact's own is used).
fn messenger(home: &Path, extra: &[&str]) -> Proc {
    let mut command = bin();
    command
        .args(["open", "--headless", "--bind", "127.0.0.1:0", "--name", "alice"])
        .arg("--data-dir")
        .arg(home.join("data"))
        .args(extra)
        .env("P2PCHAT_CONFIG", home_config(home));
    Proc::spawn(command)
}

/// Pairs `alice` (home `a`) with `friend` (home `f`) by code, then both leave.
fn pair(addr: std::net::SocketAddr, a: &Path, friend: &str, f: &Path) {
    let mut alice = person("alice", addr, None, a);
    let code = code_of(&mut alice);
    let mut other = person(friend, addr, Some(&code), f);
    agreed(&mut alice, friend);
    agreed(&mut other, "alice");
    for proc in [&mut alice, &mut other] {
        proc.say("/quit");
        assert_eq!(proc.wait(WITHIN), Some(0));
    }
}

/// Waits until each of `wanted` (conversation, event) has been seen, in any order: the
/// conversations of one messenger run side by side.
fn expect_each(proc: &mut Proc, wanted: &[(&str, &str)]) -> Vec<Value> {
    let mut found: Vec<Option<Value>> = vec![None; wanted.len()];
    while found.iter().any(Option::is_none) {
        let value = proc.expect(WITHIN, &format!("all of {wanted:?}"), |v| {
            wanted
                .iter()
                .zip(&found)
                .any(|((c, e), f)| f.is_none() && v["conversation"] == *c && v["event"] == *e)
        });
        for (slot, (c, e)) in found.iter_mut().zip(wanted) {
            if slot.is_none() && value["conversation"] == *c && value["event"] == *e {
                *slot = Some(value.clone());
            }
        }
    }
    found.into_iter().flatten().collect()
}

/// Waits for `event` in `conversation`.
fn expect_in(
    proc: &mut Proc,
    conversation: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    proc.expect(WITHIN, what, |v| v["conversation"] == conversation && pred(v))
}

#[test]
fn alice_holds_bob_and_carol_on_one_socket_and_each_conversation_stays_its_own() {
    let (_server, addr) = server();
    let homes = [TempDir::new("m-alice"), TempDir::new("m-bob"), TempDir::new("m-carol")];
    pair(addr, homes[0].path(), "bob", homes[1].path());
    pair(addr, homes[0].path(), "carol", homes[2].path());

    let mut alice = messenger(homes[0].path(), &[]);
    let ready = alice.expect_event(WITHIN, "ready");
    let local = ready["local"].as_str().unwrap().to_owned();
    let port = local.rsplit(':').next().unwrap().to_owned();
    assert_eq!(ready["conversations"], serde_json::json!(["bob", "carol"]), "{ready}");
    // Bob and carol reconnect by name, each from a single chat.
    let mut bob = person("bob", addr, Some("alice"), homes[1].path());
    let mut carol = person("carol", addr, Some("alice"), homes[2].path());
    expect_each(&mut alice, BOTH_BACK);
    for (friend, proc) in [("bob", &mut bob), ("carol", &mut carol)] {
        // Both reach alice at the one address her messenger bound.
        let online = proc.expect(WITHIN, "alice online", |v| v["event"] == "peer_online");
        let at = online["addr"].as_str().unwrap();
        assert!(at.ends_with(&format!(":{port}")), "{friend} reaches alice at {at}, not :{port}");
    }

    alice.say("/to bob only for bob");
    alice.say("/to carol only for carol");
    bob.expect(WITHIN, "alice's line", |v| v["event"] == "message" && v["text"] == "only for bob");
    carol.expect(WITHIN, "alice's line", |v| {
        v["event"] == "message" && v["text"] == "only for carol"
    });
    expect_each(&mut alice, &[("bob", "delivered"), ("carol", "delivered")]);
    bob.say("from bob");
    expect_in(&mut alice, "bob", "bob's line", |v| {
        v["event"] == "message" && v["text"] == "from bob"
    });
    // Carol writes while bob's conversation is shown: it counts as unread there.
    alice.say("/open bob");
    carol.say("from carol");
    expect_in(&mut alice, "carol", "carol's line", |v| {
        v["event"] == "message" && v["text"] == "from carol"
    });
    alice.say("/who");
    let who = alice.expect_event(WITHIN, "who");
    let carol_row =
        who["conversations"].as_array().unwrap().iter().find(|c| c["conversation"] == "carol");
    assert_eq!(carol_row.unwrap()["unread"], 1, "{who}");
    assert_eq!(carol_row.unwrap()["online"], 1, "{who}");
    // A plain line goes to the conversation shown.
    alice.say("plain line to bob");
    bob.expect(WITHIN, "the plain line", |v| {
        v["event"] == "message" && v["text"] == "plain line to bob"
    });

    // Alice restarts her messenger while bob and carol stay: both agree new keys with it and
    // come back, with no false "wrong key?" for the packets still under the old keys.
    alice.say("/quit");
    assert_eq!(alice.wait(WITHIN), Some(0));
    let mut alice = messenger(homes[0].path(), &[]);
    expect_each(&mut alice, BOTH_BACK);
    alice.say("/to carol back again");
    carol.expect(WITHIN, "after the restart", |v| {
        v["event"] == "message" && v["text"] == "back again"
    });
    std::thread::sleep(Duration::from_secs(2));
    alice.say("/who");
    alice.expect_event(WITHIN, "who");
    let rejected: Vec<&String> = alice.seen.iter().filter(|l| l.contains("\"rejected\"")).collect();
    assert!(rejected.is_empty(), "{rejected:?}");

    for proc in [&mut alice, &mut bob, &mut carol] {
        proc.say("/quit");
        assert_eq!(proc.wait(WITHIN), Some(0));
    }
    // Each conversation's log holds its own lines only.
    let data = homes[0].path().join("data");
    let texts = |file: &str| -> Vec<String> {
        log_records(&data, file)
            .iter()
            .filter_map(|r| r["text"].as_str().map(str::to_owned))
            .collect()
    };
    let with_bob = texts("contact-bob.jsonl");
    let with_carol = texts("contact-carol.jsonl");
    for line in ["only for bob", "from bob", "plain line to bob"] {
        assert!(with_bob.contains(&line.to_owned()), "{with_bob:?}");
        assert!(!with_carol.contains(&line.to_owned()), "{with_carol:?}");
    }
    for line in ["only for carol", "from carol"] {
        assert!(with_carol.contains(&line.to_owned()), "{with_carol:?}");
        assert!(!with_bob.contains(&line.to_owned()), "{with_bob:?}");
    }
}

#[test]
fn a_room_joined_in_the_messenger_is_kept_private_and_rejoined_next_time() {
    let (_server, addr) = server();
    let (home, dave_dir) = (TempDir::new("r-alice"), TempDir::new("r-dave"));
    let key = keygen();
    let server_flag = addr.to_string();
    // Nothing to open and no server to meet anyone on: one sentence, exit 2.
    let mut lost = messenger(home.path(), &[]);
    let error = lost.expect_event(WITHIN, "error");
    assert!(error["message"].as_str().unwrap().contains("no server to meet them on"), "{error}");
    assert_eq!(lost.wait(WITHIN), Some(2));

    // With a server, it starts empty, and /room adds a room from inside.
    let mut alice = messenger(home.path(), &["--server", &server_flag]);
    let ready = alice.expect_event(WITHIN, "ready");
    assert_eq!(ready["conversations"], serde_json::json!([]), "{ready}");
    alice.say("a line with nowhere to go");
    alice.expect(WITHIN, "how to start", |v| {
        v["event"] == "notice" && v["message"].as_str().unwrap().contains("no conversation yet")
    });
    let second = keygen();
    // First with a wrong key (a valid one, not the room's), then the right one replaces it.
    let wrong = keygen();
    alice.say(&format!("/room garden {wrong}"));
    alice.expect(WITHIN, "the room opened", |v| {
        v["event"] == "conversation_opened" && v["conversation"] == "room:garden"
    });
    alice.say("/room garden");
    alice.expect(WITHIN, "the key asked", |v| {
        v["event"] == "notice" && v["message"].as_str().unwrap().contains("the key of room garden")
    });
    alice.say(&second);
    alice.expect(WITHIN, "the room opened again", |v| {
        v["event"] == "conversation_opened" && v["conversation"] == "room:garden"
    });
    // Another room may not take a key a room has: its datagrams could not be told apart.
    alice.say(&format!("/room shed {second}"));
    alice.expect(WITHIN, "the key refused", |v| {
        v["event"] == "notice"
            && v["message"].as_str().unwrap().contains("room garden has that key")
    });
    let mut dave = room_peer("dave", addr, "garden", &second, dave_dir.path());
    expect_in(&mut alice, "room:garden", "dave online", |v| v["event"] == "peer_online");
    dave.expect_event(WITHIN, "peer_online");
    alice.say("/to room:garden hello garden");
    dave.expect(WITHIN, "alice's line", |v| v["event"] == "message" && v["text"] == "hello garden");
    alice.say("/quit");
    // Each conversation says it closed, then the messenger itself.
    alice.expect(WITHIN, "garden closed", |v| {
        v["event"] == "closed" && v["conversation"] == "room:garden"
    });
    alice.expect(WITHIN, "the messenger closed", |v| {
        v["event"] == "closed" && v["conversation"].is_null()
    });
    assert_eq!(alice.wait(WITHIN), Some(0));
    // The key never went out as a message, and the rooms file is the owner's alone; it holds
    // garden once, with its right key.
    let saved = std::fs::read_to_string(home.path().join("rooms.json")).unwrap();
    assert!(saved.contains("garden") && saved.contains(&second), "{saved}");
    assert!(!saved.contains(&wrong) && !saved.contains("shed"), "{saved}");
    let mode = std::fs::metadata(home.path().join("rooms.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let logged = log_records(&home.path().join("data"), "room-garden.jsonl");
    assert!(logged.iter().all(|r| r["text"] != second.as_str()), "{logged:?}");

    // Next time, the room is rejoined by itself (its server saved with it), beside one
    // saved by hand.
    let rooms: Vec<Value> = serde_json::from_str(&saved).unwrap();
    let lobby = serde_json::json!({"name": "lobby", "server": addr.to_string(), "key": key});
    let both = serde_json::to_string(&[lobby, rooms[0].clone()]).unwrap();
    std::fs::write(home.path().join("rooms.json"), both).unwrap();
    let mut alice = messenger(home.path(), &[]);
    let ready = alice.expect_event(WITHIN, "ready");
    assert_eq!(ready["conversations"], serde_json::json!(["room:lobby", "room:garden"]), "{ready}");
    expect_in(&mut alice, "room:garden", "dave online again", |v| v["event"] == "peer_online");
    // (Past the news of alice's quitting before, for dave.)
    dave.expect(WITHIN, "alice back", |v| v["event"] == "peer_online");
    dave.say("welcome back");
    expect_in(&mut alice, "room:garden", "dave's line", |v| {
        v["event"] == "message" && v["text"] == "welcome back"
    });
    // Leaving a room says goodbye there and forgets its key; its log stays.
    alice.say("/leave room:garden");
    dave.expect(WITHIN, "alice left", |v| v["event"] == "peer_offline" && v["reason"] == "left");
    let saved = std::fs::read_to_string(home.path().join("rooms.json")).unwrap();
    assert!(!saved.contains("garden") && saved.contains("lobby"), "{saved}");
    assert!(!log_records(&home.path().join("data"), "room-garden.jsonl").is_empty());
    for proc in [&mut alice, &mut dave] {
        proc.say("/quit");
        assert_eq!(proc.wait(WITHIN), Some(0));
    }
}

#[test]
fn pair_and_join_from_inside_the_messenger_open_the_new_contacts_conversation() {
    let (_server, addr) = server();
    let homes = [TempDir::new("p-alice"), TempDir::new("p-bob"), TempDir::new("p-carol")];
    let server_flag = addr.to_string();
    let mut alice = messenger(homes[0].path(), &["--server", &server_flag]);
    alice.expect_event(WITHIN, "ready");

    // /pair in the messenger, the code used by a single chat.
    alice.say("/pair");
    let code = code_of(&mut alice);
    let mut bob = person("bob", addr, Some(&code), homes[1].path());
    let number = agreed(&mut bob, "alice");
    alice.expect(WITHIN, "bob's conversation", |v| {
        v["event"] == "conversation_opened" && v["conversation"] == "bob"
    });
    let keys = expect_in(&mut alice, "bob", "keys agreed", |v| v["event"] == "keys_agreed");
    assert_eq!(keys["safety_number"], number.as_str(), "{keys}");
    expect_in(&mut alice, "bob", "bob online", |v| v["event"] == "peer_online");
    bob.say("paired with your messenger");
    expect_in(&mut alice, "bob", "bob's line", |v| {
        v["event"] == "message" && v["text"] == "paired with your messenger"
    });

    // Someone else who calls themselves bob: a contact of their own, bob-2, and bob's
    // conversation, key and log stay his.
    let other_home = TempDir::new("p-bob2");
    alice.say("/pair");
    let code = code_of(&mut alice);
    let mut bob2 = person("bob", addr, Some(&code), other_home.path());
    agreed(&mut bob2, "alice");
    alice.expect(WITHIN, "bob-2's conversation", |v| {
        v["event"] == "conversation_opened" && v["conversation"] == "bob-2"
    });
    expect_in(&mut alice, "bob-2", "bob-2 online", |v| v["event"] == "peer_online");
    bob2.say("I am another bob");
    expect_in(&mut alice, "bob-2", "the other bob's line", |v| {
        v["event"] == "message" && v["text"] == "I am another bob"
    });
    bob.say("still the first bob");
    expect_in(&mut alice, "bob", "bob's line", |v| {
        v["event"] == "message" && v["text"] == "still the first bob"
    });
    bob2.say("/quit");
    assert_eq!(bob2.wait(WITHIN), Some(0));

    // /pair again, and carol's messenger uses the code with /join.
    alice.say("/pair");
    let code = code_of(&mut alice);
    let mut carol = Proc::spawn({
        let mut command = bin();
        command
            .args(["open", "--headless", "--bind", "127.0.0.1:0", "--name", "carol"])
            .arg("--server")
            .arg(&server_flag)
            .arg("--data-dir")
            .arg(homes[2].path().join("data"))
            .env("P2PCHAT_CONFIG", home_config(homes[2].path()));
        command
    });
    carol.expect_event(WITHIN, "ready");
    carol.say(&format!("/join {code}"));
    for (proc, other) in [(&mut alice, "carol"), (&mut carol, "alice")] {
        proc.expect(WITHIN, "the new conversation", |v| {
            v["event"] == "conversation_opened" && v["conversation"] == other
        });
        expect_in(proc, other, "online", |v| v["event"] == "peer_online");
    }
    carol.say("/to alice hello from carol's messenger");
    expect_in(&mut alice, "carol", "carol's line", |v| {
        v["event"] == "message" && v["text"] == "hello from carol's messenger"
    });
    // Both are contacts now, each with the server they were paired through.
    alice.say("/contacts");
    let contacts = alice.expect_event(WITHIN, "contacts");
    let names: Vec<&str> = contacts["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["bob", "bob-2", "carol"], "{contacts}");
    assert!(contacts["contacts"].as_array().unwrap().iter().all(|c| c["server"] == server_flag));
    for proc in [&mut alice, &mut bob, &mut carol] {
        proc.say("/quit");
        assert_eq!(proc.wait(WITHIN), Some(0));
    }
}
