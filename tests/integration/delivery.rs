//! Nothing lost: delivery confirmations, long messages, the offline queue across restarts, and a
//! receiver killed mid-burst keeping every message it acknowledged — real processes on loopback.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    RoomPair, TempDir, direct_peer, free_port, keygen, log_records, room_peer, server_on,
};

const WAIT: Duration = Duration::from_secs(15);

fn event_is(name: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == name
}

#[test]
fn delivery_is_confirmed_and_a_64_kib_line_arrives_whole() {
    let RoomPair { mut a, mut b, dirs: (da, _db), _server, .. } = RoomPair::connected("long");
    let unit = "p2p \"chat\" 世界 👋🏽 \\ ";
    let long = unit.repeat(60_000 / unit.len());
    a.say(&long);
    let sent = a.expect(WAIT, "sent", event_is("sent"));
    let got = b.expect(WAIT, "message", event_is("message"));
    assert_eq!(got["text"].as_str(), Some(long.as_str()));
    assert_eq!(got["id"], sent["id"]);
    let delivered = a.expect(WAIT, "delivered", event_is("delivered"));
    assert_eq!(delivered["id"], sent["id"]);
    // Over the limit: refused whole, said clearly.
    a.say(&"x".repeat(70_000));
    let refused = a.expect(WAIT, "not_sent", event_is("not_sent"));
    assert!(refused["reason"].as_str().unwrap().contains("64 KiB"), "{refused}");
    let log = log_records(da.path(), "room-long.jsonl");
    assert!(log.iter().any(|r| r["kind"] == "delivered" && r["id"] == sent["id"]));
}

#[test]
fn messages_typed_while_alone_survive_a_restart_and_arrive_in_order() {
    let key = keygen();
    let (pa, pb) = (free_port(), free_port());
    let (da, db) = (TempDir::new("queue-a"), TempDir::new("queue-b"));
    let mut a = direct_peer("ann", pa, pb, &key, da.path());
    a.expect(WAIT, "ready", event_is("ready"));
    for i in 0..5 {
        a.say(&format!("while you were away {i}"));
        a.expect(WAIT, "queued", event_is("queued"));
    }
    a.say("/quit");
    assert_eq!(a.wait(WAIT), Some(0));
    // Ann comes back later; Ben is there now. Nothing was typed again.
    let mut a = direct_peer("ann", pa, pb, &key, da.path());
    let mut b = direct_peer("ben", pb, pa, &key, db.path());
    for i in 0..5 {
        let text = format!("while you were away {i}");
        let got = b.expect(WAIT, "queued message", |v| v["event"] == "message");
        assert_eq!(got["text"].as_str(), Some(text.as_str()), "in order");
    }
    let mut delivered = 0;
    while delivered < 5 {
        a.expect(WAIT, "delivered", event_is("delivered"));
        delivered += 1;
    }
    // Restarting Ben shows nothing twice.
    b.say("/quit");
    assert_eq!(b.wait(WAIT), Some(0));
    let mut b = direct_peer("ben", pb, pa, &key, db.path());
    b.expect(WAIT, "peer_online", event_is("peer_online"));
    a.say("fresh");
    let got = b.expect(WAIT, "fresh message", event_is("message"));
    assert_eq!(got["text"], "fresh");
}

#[test]
fn a_receiver_killed_mid_burst_kept_every_message_it_acknowledged() {
    let key = keygen();
    let (pa, pb) = (free_port(), free_port());
    let (da, db) = (TempDir::new("burst-a"), TempDir::new("burst-b"));
    let mut a = direct_peer("ann", pa, pb, &key, da.path());
    let mut b = direct_peer("ben", pb, pa, &key, db.path());
    a.expect(WAIT, "online", event_is("peer_online"));
    b.expect(WAIT, "online", event_is("peer_online"));
    for i in 0..3000 {
        a.say(&format!("burst {i}"));
    }
    let mut delivered: HashSet<String> = HashSet::new();
    let mut texts_by_id = std::collections::HashMap::new();
    let deadline = Instant::now() + WAIT;
    while delivered.len() < 100 && Instant::now() < deadline {
        let Some(line) = a.line(Duration::from_millis(200)) else { continue };
        let v: Value = serde_json::from_str(&line).unwrap();
        match v["event"].as_str() {
            Some("sent") => {
                texts_by_id.insert(v["id"].as_str().unwrap().to_owned(), v["text"].clone());
            }
            Some("delivered") => {
                delivered.insert(v["id"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    b.kill();
    // Everything ann saw confirmed before the kill is in ben's log, once.
    while let Some(line) = a.line(Duration::from_millis(300)) {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "delivered" {
            delivered.insert(v["id"].as_str().unwrap().to_owned());
        }
    }
    assert!(delivered.len() >= 100, "only {} delivered", delivered.len());
    let file = format!("peer-{pa}.jsonl").replace(':', "%3A");
    let log = log_records(db.path(), &file);
    let logged: Vec<&str> =
        log.iter().filter(|r| r["kind"] == "message").filter_map(|r| r["id"].as_str()).collect();
    let unique: HashSet<&str> = logged.iter().copied().collect();
    assert_eq!(unique.len(), logged.len(), "nothing logged twice");
    for id in &delivered {
        assert!(unique.contains(id.as_str()), "acknowledged {id} ({}) missing", texts_by_id[id]);
    }
    eprintln!(
        "burst: {} acknowledged before/at the kill, {} in the log",
        delivered.len(),
        logged.len()
    );
}

#[test]
fn a_restarted_peer_is_back_within_seconds() {
    let RoomPair { mut a, mut b, addr, key, dirs: (_da, db), _server } =
        RoomPair::connected("back");
    b.kill();
    let restarted = Instant::now();
    let mut b = room_peer("bob", addr, "back", &key, db.path());
    b.expect(WAIT, "online again", event_is("peer_online"));
    // Alice follows bob to his new port without waiting for the offline timeout.
    a.expect(WAIT, "bob's new path", |v| {
        v["event"] == "path_changed" || v["event"] == "peer_online"
    });
    eprintln!("restarted peer back after {:.2} s", restarted.elapsed().as_secs_f64());
    a.say("still here?");
    b.expect(WAIT, "message", |v| v["event"] == "message" && v["text"] == "still here?");
}

#[test]
fn the_chat_goes_on_without_the_server_and_peers_register_again_when_it_returns() {
    let listen = free_port().to_string();
    let (mut first, addr) = server_on(&listen);
    let key = keygen();
    let (da, db, dc) = (TempDir::new("srv-a"), TempDir::new("srv-b"), TempDir::new("srv-c"));
    let mut a = room_peer("alice", addr, "srv", &key, da.path());
    let mut b = room_peer("bob", addr, "srv", &key, db.path());
    a.expect(WAIT, "online", event_is("peer_online"));
    b.expect(WAIT, "online", event_is("peer_online"));
    first.kill();
    a.say("no server needed");
    b.expect(WAIT, "message", |v| v["event"] == "message" && v["text"] == "no server needed");
    // A new server on the same address knows nobody; the peers' refreshes fill it again, so a
    // newcomer is introduced to both.
    let (_second, _) = server_on(&listen);
    let mut c = room_peer("carol", addr, "srv", &key, dc.path());
    let mut met = HashSet::new();
    while met.len() < 2 {
        let v = c.expect(Duration::from_secs(40), "peers", event_is("peer_online"));
        met.insert(v["peer"].as_str().unwrap().to_owned());
    }
    assert_eq!(met, HashSet::from(["alice".to_owned(), "bob".to_owned()]));
}
