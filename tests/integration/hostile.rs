//! A peer that holds the key and lies: numbers at the edges of their range, acknowledgements of
//! what was never sent, impossible part numbers, messages past the size limit. The real binary
//! must drop and count each, keep chatting, and never confirm what the peer does not have.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use p2pchat::proto::crypto::Cipher;
use p2pchat::proto::wire::{self, Class};
use serde_json::{Value, json};

use crate::harness::{TempDir, direct_peer, free_port, keygen};

/// The lying peer: a plain UDP socket that seals what it is told to.
struct Mallory {
    socket: UdpSocket,
    cipher: Cipher,
    victim: SocketAddr,
}

impl Mallory {
    fn send(&self, envelope: &Value) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let token = self.cipher.seal(envelope.to_string().as_bytes(), now.as_secs());
        self.socket.send_to(token.as_bytes(), self.victim).unwrap();
    }

    /// The next envelope from the victim of type `kind`, within 5 s.
    fn recv(&self, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok((len, _)) = self.socket.recv_from(&mut buf) else { continue };
            // A p2pchat peer puts the conversation's tag before its token on a path.
            let token = match wire::classify(&buf[..len]) {
                Class::Token(token) | Class::Tagged { token, .. } => token,
                _ => continue,
            };
            let plain = self.cipher.open_whenever(token).unwrap();
            let envelope: Value = serde_json::from_slice(&plain).unwrap();
            if envelope["type"] == kind {
                return envelope;
            }
        }
        panic!("no {kind} from the victim within 5 s");
    }

    fn segment(&self, seq: u64, base: u64, part: u64, parts: u64, text: &str) -> Value {
        json!({"type": "message", "name": "mallory", "timestamp": "2026-11-29T12:00:00Z",
               "text": text, "id": format!("m{}", seq.wrapping_sub(part)), "epoch": 7,
               "seq": seq, "base": base, "part": part, "parts": parts})
    }
}

#[test]
fn a_key_holder_with_hostile_numbers_is_dropped_and_counted_and_the_chat_goes_on() {
    let key = keygen();
    let data = TempDir::new("hostile-numbers");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let victim = free_port();
    let mut alice = direct_peer("alice", victim, socket.local_addr().unwrap(), &key, data.path());
    alice.expect_event(Duration::from_secs(10), "ready");
    let mallory = Mallory { socket, cipher: Cipher::from_key(&key).unwrap(), victim };
    // Online: answer alice's probe.
    let ping = mallory.recv("ping");
    mallory.send(&json!({"type": "pong", "name": "mallory", "seq": ping["seq"], "instance": 7}));
    alice.expect(Duration::from_secs(5), "online", |v| v["event"] == "peer_online");
    alice.say("only for mallory");
    let segment = mallory.recv("message");
    let epoch = segment["epoch"].as_u64().unwrap();
    // Acknowledgements of what was never sent: at and near the top of the range (4 invalid).
    for cum in [u64::MAX, u64::MAX - 1, 1 << 63, 2] {
        mallory.send(&json!({"type": "ack", "name": "mallory", "epoch": epoch, "cum": cum,
                             "sack": [u64::MAX, 0, 5]}));
    }
    // Segments at the end of the number space (2), impossible parts (3), and a message past
    // 64 KiB (1).
    let top = u64::MAX - 10; // 2^64 - 11, as in the report
    mallory.send(&mallory.segment(top, top, 0, 1, "edge"));
    mallory.send(&mallory.segment(u64::MAX, u64::MAX, 0, 1, "past the edge"));
    for (part, parts) in [(0, 0), (3, 2), (0, u64::from(u32::MAX))] {
        mallory.send(&mallory.segment(1, 1, part, parts, "bad parts"));
    }
    let mallory2 = Mallory { cipher: Cipher::from_key(&key).unwrap(), ..mallory };
    let chunk = "x".repeat(600);
    let parts = (64 * 1024 / 600) + 3;
    let restart = 1_000;
    for part in 0..parts {
        let seq = restart + part;
        let mut env = mallory2.segment(seq, restart, part, parts, &chunk);
        env["epoch"] = json!(8);
        mallory2.send(&env);
    }
    // A message that follows all of that arrives as usual.
    let mut after = mallory2.segment(restart + parts, restart, 0, 1, "still talking");
    after["epoch"] = json!(8);
    mallory2.send(&after);
    alice.expect(Duration::from_secs(5), "the next message", |v| {
        v["event"] == "message" && v["text"] == "still talking"
    });
    let drops = alice.expect(Duration::from_secs(5), "drops", |v| {
        v["event"] == "drops" && v["invalid"].as_u64().is_some_and(|n| n >= 10)
    });
    eprintln!("drops after the hostile datagrams: {drops}");
    for line in &alice.seen {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_ne!(v["event"], "delivered", "nothing was acknowledged truthfully: {line}");
        assert_ne!(v["text"], "edge", "a segment at the edge of the range is never shown");
        assert!(v["text"].as_str().is_none_or(|t| t.len() <= 64 * 1024), "no oversized message");
    }
    alice.say("/quit");
    assert_eq!(alice.wait(Duration::from_secs(10)), Some(0), "a clean exit after all that");
}
