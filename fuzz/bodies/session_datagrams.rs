//! A chat session in a room fed datagrams from its server, strangers and key holders: raw bytes,
//! and JSON sealed with the room's key (so the envelope parser and every state machine behind
//! authentication are reached), interleaved with time passing. It must never panic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2pchat::proto::crypto::Cipher;
use p2pchat::proto::{Mode, NetCommand, Session, SessionConfig};

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// One input.
pub fn run(data: &[u8]) {
    let server: SocketAddr = "198.51.100.1:7777".parse().expect("address");
    let sources: [SocketAddr; 3] =
        [server, "203.0.113.9:5000".parse().expect("a"), "192.0.2.7:6000".parse().expect("a")];
    let mode = Mode::Room { server, room: "fuzz".into() };
    let config = SessionConfig { stun_server: Some(server), ..SessionConfig::new("me", mode) };
    let (Ok(cipher), Ok(sealer)) = (Cipher::from_key(KEY), Cipher::from_key(KEY)) else { return };
    let wall = chrono::Utc::now();
    let start = Instant::now();
    let mut now = start;
    let mut session = Session::new(config, cipher, now, wall, 1);
    // Datagrams: a control byte (source, sealed or raw, time step), a length byte, the bytes.
    let mut rest = data;
    while let [control, len, body @ ..] = rest {
        let len = usize::from(*len).min(body.len());
        let (bytes, tail) = body.split_at(len);
        rest = tail;
        let from = sources[usize::from(control % 3)];
        if control & 0x4 != 0 {
            let unix =
                u64::try_from(wall.timestamp()).unwrap_or(0) + now.duration_since(start).as_secs();
            let token = sealer.seal(bytes, unix);
            session.handle_datagram(now, from, token.as_bytes());
        } else {
            session.handle_datagram(now, from, bytes);
        }
        if control & 0x8 != 0 {
            session.handle_command(now, NetCommand::Send { text: "hi".into() });
        }
        now += Duration::from_millis(u64::from(control >> 4) * 100);
        session.handle_timeout(now);
        while session.poll_transmit().is_some() {}
        while session.poll_event().is_some() {}
        let _ = session.poll_timeout();
    }
}
