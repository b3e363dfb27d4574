//! Peers over real UDP on loopback: through the rendezvous server, direct, the demo, and a
//! barrage of hostile datagrams.

use std::fs::File;
use std::io::Write;
use std::net::UdpSocket;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    Proc, TempDir, bin, direct_peer, free_port, keygen, log_records, room_peer, server,
};

const CONNECT: Duration = Duration::from_secs(10);

fn message_from(from: &'static str, text: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "message" && v["from"] == from && v["text"] == text
}

#[test]
fn room_peers_chat_both_ways_log_it_and_notice_a_dead_peer() {
    let (_server, addr) = server();
    let key = keygen();
    let (da, db) = (TempDir::new("alice"), TempDir::new("bob"));
    let mut alice = room_peer("alice", addr, "lobby", &key, da.path());
    let mut bob = room_peer("bob", addr, "lobby", &key, db.path());
    for p in [&mut alice, &mut bob] {
        p.expect_event(CONNECT, "ready");
        p.expect_event(CONNECT, "registered");
        p.expect_event(CONNECT, "peer_online");
    }
    alice.say("hello bob");
    alice.expect(CONNECT, "sent", |v| v["event"] == "sent" && v["text"] == "hello bob");
    bob.expect(CONNECT, "alice's message", message_from("alice", "hello bob"));
    bob.say("hi alice 世界 👋");
    alice.expect(CONNECT, "bob's message", message_from("bob", "hi alice 世界 👋"));

    let log = log_records(da.path(), "room-lobby.jsonl");
    let has = |dir: &str, text: &str| {
        log.iter()
            .any(|r| r["kind"] == "message" && r["dir"] == dir && r["text"] == text && r["v"] == 1)
    };
    assert!(has("out", "hello bob"), "{log:?}");
    assert!(has("in", "hi alice 世界 👋"), "{log:?}");
    assert!(
        log.iter().any(|r| r["kind"] == "presence" && r["peer"] == "bob" && r["online"] == true)
    );

    // SIGKILL: no goodbye, so alice notices by silence (threshold 15 s, bounded wait here).
    bob.kill();
    let offline =
        alice.expect(Duration::from_secs(25), "peer_offline", |v| v["event"] == "peer_offline");
    assert_eq!(offline["peer"], "bob");
    assert_eq!(offline["reason"], "unreachable");

    // Bob comes back on a new port; both find each other again through the server.
    let mut bob = room_peer("bob", addr, "lobby", &key, db.path());
    bob.expect_event(CONNECT, "peer_online");
    alice.expect(CONNECT, "bob back online", |v| v["event"] == "peer_online" && v["peer"] == "bob");
    alice.say("welcome back");
    bob.expect(CONNECT, "message after restart", message_from("alice", "welcome back"));

    // A goodbye is immediate.
    bob.say("/quit");
    assert_eq!(bob.wait(CONNECT), Some(0));
    let left = alice.expect(CONNECT, "peer_offline", |v| v["event"] == "peer_offline");
    assert_eq!(left["reason"], "left");
    let log = log_records(da.path(), "room-lobby.jsonl");
    assert!(
        log.iter()
            .any(|r| r["kind"] == "presence" && r["online"] == false && r["reason"] == "left")
    );
}

#[test]
fn direct_peers_chat_without_a_server() {
    let key = keygen();
    let (pa, pb) = (free_port(), free_port());
    let (da, db) = (TempDir::new("da"), TempDir::new("db"));
    let mut a = direct_peer("ann", pa, pb, &key, da.path());
    let mut b = direct_peer("ben", pb, pa, &key, db.path());
    a.expect(CONNECT, "ben online", |v| v["event"] == "peer_online" && v["peer"] == "ben");
    b.expect(CONNECT, "ann online", |v| v["event"] == "peer_online" && v["peer"] == "ann");
    b.say("direct hello");
    a.expect(CONNECT, "message", message_from("ben", "direct hello"));
    // End of input: what was typed goes out first, then the process leaves cleanly.
    a.say("bye now");
    a.close_stdin();
    b.expect(CONNECT, "last message", message_from("ann", "bye now"));
    assert_eq!(a.wait(CONNECT), Some(0));
    let file = format!("peer-{pb}.jsonl").replace(':', "%3A");
    let log = log_records(da.path(), &file);
    assert!(log.iter().any(|r| r["text"] == "bye now" && r["state"] == "sent"), "{log:?}");
}

/// Stdin as scripts give it (a pipe: read on the runtime's poller, non-blocking meanwhile) and
/// as a file gives it (read by a thread): each is read to its end and what it held is sent;
/// and a pipe that others share (here: the test keeps its read end, as a shell would) is given
/// back blocking, as it was.
#[test]
fn headless_reads_a_pipe_or_a_file_to_the_end_and_gives_a_shared_pipe_back_as_it_was() {
    use rustix::fs::{OFlags, fcntl_getfl};
    let key = keygen();
    let dir = TempDir::new("stdin-kinds");
    let file = dir.path().join("input.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    let (pipe, mut writer) = std::io::pipe().unwrap();
    let shared = pipe.try_clone().unwrap();
    writer.write_all(b"from a pipe\n").unwrap();
    let inputs =
        [("from a file", Stdio::from(File::open(&file).unwrap())), ("from a pipe", pipe.into())];
    for (n, (text, stdin)) in inputs.into_iter().enumerate() {
        let (pa, pb) = (free_port(), free_port());
        let (da, db) = (dir.path().join(format!("a{n}")), dir.path().join(format!("b{n}")));
        let mut b = direct_peer("ben", pb, pa, &key, &db);
        let mut a = bin();
        a.args(["chat", "--headless", "--name", "ann", "--bind", &pa.to_string()])
            .args(["--peer", &pb.to_string()])
            .arg("--data-dir")
            .arg(&da)
            .env("P2PCHAT_KEY", &key);
        let mut a = Proc::spawn_with(a, stdin, Stdio::inherit());
        if text == "from a pipe" {
            a.expect_event(CONNECT, "ready");
            let flags = fcntl_getfl(&shared).unwrap();
            assert!(flags.contains(OFlags::NONBLOCK), "the pipe is read on the poller");
            drop(std::mem::replace(&mut writer, std::io::pipe().unwrap().1));
        }
        b.expect(CONNECT, text, message_from("ann", text));
        assert_eq!(a.wait(CONNECT), Some(0), "the end of input ends it once sent");
    }
    let flags = fcntl_getfl(&shared).unwrap();
    assert!(!flags.contains(OFlags::NONBLOCK), "the shared pipe is blocking again: {flags:?}");
}

#[test]
fn headless_input_that_is_not_clean_text_is_reported_and_reading_goes_on() {
    let key = keygen();
    let (pa, pb) = (free_port(), free_port());
    let (da, db) = (TempDir::new("ua"), TempDir::new("ub"));
    let mut a = direct_peer("ann", pa, pb, &key, da.path());
    let mut b = direct_peer("ben", pb, pa, &key, db.path());
    a.expect(CONNECT, "ben online", |v| v["event"] == "peer_online" && v["peer"] == "ben");
    b.expect(CONNECT, "ann online", |v| v["event"] == "peer_online" && v["peer"] == "ann");
    // The issue's example, then its family: a NUL byte, a CRLF ending, a line longer than a
    // message may be, and a last line without a newline.
    a.write_raw(b"one\ncaf\xe9\nthree\nnul\0here\ncrlf\r\n");
    a.write_raw(&vec![b'x'; 70 * 1024]);
    a.write_raw(b"\nlast");
    a.close_stdin();
    for text in ["one", "three", "crlf", "last"] {
        b.expect(CONNECT, text, |v| {
            v["event"] == "message" && v["from"] == "ann" && v["text"] == text
        });
    }
    a.expect_event(CONNECT, "closed");
    assert_eq!(a.wait(CONNECT), Some(0));
    let errors: Vec<Value> = a
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "error")
        .collect();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 4], "{errors:?}");
    let says = |i: usize, what: &str| errors[i]["message"].as_str().unwrap().contains(what);
    assert!(says(0, "not valid UTF-8") && says(1, "NUL"));
    // A message too long to send is `not_sent`, as it always was, and not quoted back whole.
    let refused = a.seen.iter().find(|l| l.contains("\"not_sent\"")).expect("not_sent");
    let refused: Value = serde_json::from_str(refused).unwrap();
    assert_eq!(refused["line"], 6);
    assert!(refused["reason"].as_str().unwrap().contains("64 KiB"), "{refused}");
    assert!(refused.to_string().len() < 400, "an over-long line is not quoted back: {refused}");
    let texts: Vec<Value> =
        b.seen.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
    let received: Vec<&str> = texts
        .iter()
        .filter(|v| v["event"] == "message")
        .filter_map(|v| v["text"].as_str())
        .collect();
    assert_eq!(received, ["one", "three", "crlf", "last"]);
}

#[test]
fn headless_answers_every_ending_signal_with_a_goodbye() {
    let key = keygen();
    let (pa, pb) = (free_port(), free_port());
    let (da, db) = (TempDir::new("ha"), TempDir::new("hb"));
    let mut b = direct_peer("ben", pb, pa, &key, db.path());
    for signal in ["HUP", "TERM", "INT", "QUIT"] {
        let mut a = direct_peer("ann", pa, pb, &key, da.path());
        a.expect(CONNECT, "ben online", |v| v["event"] == "peer_online");
        b.expect(CONNECT, "ann online", |v| v["event"] == "peer_online" && v["peer"] == "ann");
        let pid = a.child.id().to_string();
        let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status();
        assert!(sent.unwrap().success());
        b.expect(CONNECT, "ann's goodbye", |v| {
            v["event"] == "peer_offline" && v["peer"] == "ann" && v["reason"] == "left"
        });
        assert_eq!(a.wait(CONNECT), Some(0), "SIG{signal}");
    }
}

#[test]
fn demo_runs_with_nothing_configured_not_even_a_login_name() {
    let data = TempDir::new("demo-bare");
    let mut c = bin();
    c.args(["demo", "--headless"]).arg("--data-dir").arg(data.path());
    c.env_remove("USER").env_remove("LOGNAME");
    let mut demo = Proc::spawn(c);
    let ready = demo.expect(CONNECT, "ready", |v| v["event"] == "ready");
    assert_eq!(ready["name"], "you");
    demo.expect(CONNECT, "bot greeting", |v| v["event"] == "message" && v["from"] == "bot");
}

#[test]
fn demo_bot_answers_in_headless_mode() {
    let data = TempDir::new("demo");
    let mut c = bin();
    c.args(["demo", "--headless", "--name", "newcomer"]).arg("--data-dir").arg(data.path());
    let mut demo = Proc::spawn(c);
    demo.expect(CONNECT, "bot online", |v| v["event"] == "peer_online" && v["peer"] == "bot");
    demo.expect(CONNECT, "greeting", |v| v["event"] == "message" && v["from"] == "bot");
    demo.say("ping pong");
    let reply = demo.expect(CONNECT, "reply", |v| {
        v["event"] == "message" && v["text"].as_str().is_some_and(|t| t.contains("\"gnop gnip\""))
    });
    assert_eq!(reply["from"], "bot");
    // Search answers from the log: our line and the bot's reply, not the greeting.
    demo.say("/search PONG");
    let found = demo.expect(CONNECT, "found", |v| v["event"] == "found");
    assert_eq!(found["count"], 2, "{found}");
    assert_eq!(found["matches"][0]["text"], "ping pong");
    assert_eq!(found["matches"][1]["from"], "bot");
    demo.say("/search");
    let error = demo.expect(CONNECT, "usage", |v| v["event"] == "error");
    assert!(error["message"].as_str().unwrap().starts_with("usage: /search TEXT"));
    // Headless input has no line to bring back with Up.
    demo.say("/nope");
    let error = demo.expect(CONNECT, "unknown command", |v| v["event"] == "error");
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("unknown command /nope") && !message.contains("Up"), "{message}");
    // The bot detects its NAT type as every chat does, and /who shows it.
    let is_nat = |v: &Value| v["event"] == "peer_nat" && v["peer"] == "bot";
    let seen = demo.seen.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok());
    let nat = match seen.into_iter().find(is_nat) {
        Some(nat) => nat,
        None => demo.expect(CONNECT, "the bot's NAT", is_nat),
    };
    demo.say("/who");
    let who = demo.expect(CONNECT, "who", |v| v["event"] == "who");
    assert_eq!(who["peers"][0]["nat"], nat["nat"], "{who}");
    demo.say("/quit");
    assert_eq!(demo.wait(CONNECT), Some(0));
}

#[test]
fn hostile_datagrams_are_dropped_counted_and_never_shown() {
    let key = keygen();
    let port = free_port();
    let data = TempDir::new("hostile");
    let mut target = direct_peer("target", port, free_port(), &key, data.path());
    target.expect_event(CONNECT, "ready");
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A well-formed token under another key, carrying a chat message.
    let forged = seal(&keygen());
    let mut oversized = b"gAAAAA".to_vec();
    oversized.resize(4000, b'A');
    let datagrams: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        Vec::new(),
        oversized,
        b"{\"op\":\"peer\",\"name\":\"mallory\",\"public\":\"127.0.0.1:1\",\"private\":[]}"
            .to_vec(),
        b"gAAAAA not really a token".to_vec(),
        vec![0xff; 100],
    ];
    for d in &datagrams {
        attacker.send_to(d, port).unwrap();
    }
    for _ in 0..20 {
        attacker.send_to(forged.as_bytes(), port).unwrap();
    }
    let rejected = target.expect(CONNECT, "rejected", |v| v["event"] == "rejected");
    assert_eq!(rejected["reason"], "wrong_key");
    assert!(rejected["message"].as_str().unwrap().contains("wrong key?"));
    let drops = target.expect(CONNECT, "all drops counted", |v| {
        v["event"] == "drops" && v["total"].as_u64() == Some(26)
    });
    assert_eq!(drops["unauthentic"], 21);
    assert_eq!(drops["oversized"], 1);
    assert_eq!(drops["unexpected_source"], 1);
    assert_eq!(drops["malformed"], 3);
    target.say("/quit");
    assert_eq!(target.wait(CONNECT), Some(0));
    while target.line(Duration::from_millis(200)).is_some() {}
    let notices = target.seen.iter().filter(|l| l.contains("\"rejected\"")).count();
    assert_eq!(notices, 1, "one notice per source, not a flood");
    assert!(!target.seen.iter().any(|l| l.contains("\"event\":\"message\"")));
}

/// A Fernet token under `key`, as any Fernet client would make it.
fn seal(key: &str) -> String {
    let f = fernet::Fernet::new(key).unwrap();
    f.encrypt(br#"{"type":"message","name":"mallory","timestamp":"now","text":"pwned"}"#)
}
