//! The screen under hostile peers: a chat session in a room fed envelopes sealed with the
//! room's key (messages, pings and goodbyes with any names and texts: escapes, invisible and
//! wide characters, huge lines) and raw datagrams; every event it raises goes through `update`
//! with keys, pastes and resizes in between, and every step is drawn on a terminal of any size
//! from 1×1. It must never panic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use chrono::Local;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use p2pchat::app::keymap::map_key;
use p2pchat::app::model::{Me, Public};
use p2pchat::app::{Message, Model, update};
use p2pchat::proto::crypto::Cipher;
use p2pchat::proto::{Mode, NetCommand, Session, SessionConfig};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// One step.
#[derive(Debug, Arbitrary)]
enum Step {
    /// A peer's envelope, sealed with the room's key.
    Envelope {
        kind: u8,
        name: String,
        text: String,
        seq: u64,
    },
    /// Bytes from somewhere, sealed or not.
    Datagram {
        sealed: bool,
        bytes: Vec<u8>,
    },
    /// A key, by code (a character or one of the named keys) and modifier bits.
    Key {
        code: Result<char, u8>,
        modifiers: u8,
    },
    Paste(String),
    Resize(u8, u8),
    Scroll(i8),
    Wait(u8),
}

fn key(code: Result<char, u8>, modifiers: u8) -> KeyEvent {
    let named = [
        KeyCode::Enter,
        KeyCode::Backspace,
        KeyCode::Delete,
        KeyCode::Left,
        KeyCode::Right,
        KeyCode::Up,
        KeyCode::Down,
        KeyCode::Home,
        KeyCode::End,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::Tab,
        KeyCode::Esc,
    ];
    let code = match code {
        Ok(c) => KeyCode::Char(c),
        Err(i) => named[usize::from(i) % named.len()],
    };
    KeyEvent::new(code, KeyModifiers::from_bits_truncate(modifiers))
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(steps) = u.arbitrary::<Vec<Step>>() else { return };
    let server: SocketAddr = "198.51.100.1:7777".parse().expect("address");
    let peer: SocketAddr = "203.0.113.9:5000".parse().expect("address");
    let mode = Mode::Room { server, room: "fuzz".into() };
    let (Ok(cipher), Ok(sealer)) = (Cipher::from_key(KEY), Cipher::from_key(KEY)) else { return };
    let wall = chrono::Utc::now();
    let start = Instant::now();
    let mut now = start;
    let mut session = Session::new(SessionConfig::new("me", mode), cipher, now, wall, 1);
    let me = Me {
        name: "me".into(),
        local: "0.0.0.0:40000".parse().expect("address"),
        public: Public::NotAsked,
        nat: None,
        server: None,
    };
    let mut model = Model::new(me, "room fuzz".into(), Default::default(), Local::now());
    model.size = (80, 24);
    let mut terminal =
        Terminal::new(TestBackend::new(80, 24)).unwrap_or_else(|never| match never {});
    for step in steps {
        let unix = u64::try_from(wall.timestamp()).unwrap_or(0) + (now - start).as_secs();
        match step {
            Step::Envelope { kind, name, text, seq } => {
                let envelope = match kind % 4 {
                    0 => serde_json::json!({"type": "message", "name": name, "text": text,
                        "timestamp": "2026-01-01 00:00:00"}),
                    1 => serde_json::json!({"type": "ping", "name": name, "seq": seq, "nat": text}),
                    2 => serde_json::json!({"type": "bye", "name": name}),
                    _ => serde_json::json!({"type": "message", "name": name, "text": text,
                        "id": seq.to_string(), "timestamp": text,
                        "stream": {"seq": seq % 64 + 1, "base": 1, "part": 0, "parts": 1}}),
                };
                let token = sealer.seal(envelope.to_string().as_bytes(), unix);
                session.handle_datagram(now, peer, token.as_bytes());
            }
            Step::Datagram { sealed: true, bytes } => {
                let token = sealer.seal(&bytes, unix);
                session.handle_datagram(now, peer, token.as_bytes());
            }
            Step::Datagram { sealed: false, bytes } => session.handle_datagram(now, peer, &bytes),
            Step::Key { code, modifiers } => {
                if let Some(action) = map_key(key(code, modifiers)) {
                    for effect in update(&mut model, Message::Key(action)) {
                        if let p2pchat::app::Effect::Net(NetCommand::Send { text }) = effect {
                            session.handle_command(now, NetCommand::Send { text });
                        }
                    }
                }
            }
            Step::Paste(text) => {
                update(&mut model, Message::Paste(text));
            }
            Step::Resize(w, h) => {
                let (w, h) = (u16::from(w).max(1), u16::from(h % 80).max(1));
                terminal.backend_mut().resize(w, h);
                update(&mut model, Message::Resize(w, h));
            }
            Step::Scroll(rows) => {
                update(&mut model, Message::Scroll(i32::from(rows)));
            }
            Step::Wait(ticks) => {
                now += Duration::from_millis(u64::from(ticks) * 100);
                session.handle_timeout(now);
                update(&mut model, Message::Tick(Local::now()));
            }
        }
        while session.poll_transmit().is_some() {}
        while let Some(event) = session.poll_event() {
            update(&mut model, Message::Net(event, Local::now()));
        }
        terminal.draw(|frame| p2pchat::ui::render(&model, frame)).expect("a test backend draws");
    }
}
