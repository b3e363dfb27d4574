//! The formats on the one UDP socket: how a datagram is classified by its first bytes, the
//! plaintext JSON spoken with the rendezvous server, and the JSON envelope sealed inside a
//! Fernet token between peers. Pure data and parsing; no state, no crypto, no IO.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::stun;

/// What the first bytes of a datagram say it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Class<'a> {
    /// RFC 5389 STUN.
    Stun,
    /// Rendezvous control (a JSON object), between a peer and the server.
    Control,
    /// A Fernet token from a peer (ASCII, starts with the version byte 0x80 in base64).
    Token(&'a str),
    /// None of the above.
    Unknown,
}

/// Classifies a datagram without parsing it fully.
pub fn classify(bytes: &[u8]) -> Class<'_> {
    if stun::looks_like_stun(bytes) {
        Class::Stun
    } else if bytes.first() == Some(&b'{') {
        Class::Control
    } else if bytes.starts_with(b"gAAAAA") {
        match std::str::from_utf8(bytes) {
            Ok(token) => Class::Token(token.trim_end()),
            Err(_) => Class::Unknown,
        }
    } else {
        Class::Unknown
    }
}

/// A peer's request to the rendezvous server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToServer {
    /// Join (or refresh membership of) a room.
    Register {
        /// Room name; everyone in a room is introduced to everyone else.
        room: String,
        /// Display name, unique within the room.
        name: String,
        /// Our addresses on local interfaces, for peers on the same LAN.
        #[serde(default)]
        private: Vec<SocketAddr>,
        /// Our NAT type, once detected (told to peers, to explain a failed punch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nat: Option<String>,
    },
    /// Asks for a fresh nameplate (the number in a pairing code) and joins it.
    Allocate {
        /// Display name.
        name: String,
    },
    /// Joins the nameplate a friend allocated (once: a claimed nameplate takes nobody else).
    Claim {
        /// The nameplate, e.g. "7".
        nameplate: String,
        /// Display name.
        name: String,
    },
    /// Leaves a message for the other members of a room (or nameplate) under `phase`,
    /// replacing an earlier one under the same phase.
    Post {
        /// The room, or "np-" and the nameplate.
        room: String,
        /// Which step of a handshake it is.
        phase: String,
        /// The message (opaque to the server).
        body: String,
    },
    /// Asks for what another member left under `phase`.
    Fetch {
        /// The room, or "np-" and the nameplate.
        room: String,
        /// Which step.
        phase: String,
    },
}

/// The rendezvous server's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FromServer {
    /// Registration accepted.
    Registered {
        /// Our address as the server saw it.
        public: SocketAddr,
        /// Seconds until the registration expires without a refresh.
        ttl_secs: u64,
    },
    /// Another member of the room.
    Peer {
        /// Its display name.
        name: String,
        /// Its address as the server saw it.
        public: SocketAddr,
        /// Its announced local addresses.
        private: Vec<SocketAddr>,
        /// Its NAT type, when it told us.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nat: Option<String>,
    },
    /// The registration was refused.
    Refused {
        /// Why, in words for the user.
        reason: String,
    },
    /// A nameplate allocated to us.
    Nameplate {
        /// The number to put in the code.
        nameplate: String,
        /// Seconds until it expires.
        ttl_secs: u64,
    },
    /// We joined a friend's nameplate.
    Claimed {
        /// The nameplate.
        nameplate: String,
    },
    /// A `post` was stored.
    Posted {
        /// Its room.
        room: String,
        /// Its phase.
        phase: String,
    },
    /// What another member left under a phase (absent until it posts).
    Mail {
        /// The room.
        room: String,
        /// The phase.
        phase: String,
        /// Who left it.
        from: String,
        /// The message.
        body: String,
    },
}

/// What a peer says inside a Fernet token. `message` carries the seed's four fields; a client
/// written from the seed notes ignores our additions, and a seed message without them is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Envelope {
    /// A chat message.
    Message {
        /// Sender's display name.
        name: String,
        /// When it was written: RFC 3339 from us, any string (or number) from a seed client.
        #[serde(default)]
        timestamp: serde_json::Value,
        /// The text.
        text: String,
        /// Our message id (absent in seed messages).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Reliable delivery (absent in seed messages): where this segment sits.
        #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
        stream: Option<StreamFields>,
    },
    /// Acknowledges a sender's segments.
    Ack {
        /// Sender's display name (of the ack).
        name: String,
        /// The acknowledged stream's epoch (the message sender's run id).
        epoch: u64,
        /// Every segment up to this one is in the acknowledger's log.
        cum: u64,
        /// Segments above `cum` received (not yet logged, or waiting for a gap).
        #[serde(default)]
        sack: Vec<u64>,
    },
    /// A punch probe or keepalive; answered with `pong`.
    Ping {
        /// Sender's display name.
        name: String,
        /// Echoed in the pong, to measure round-trip time.
        seq: u64,
        /// Random per run of the sender: a new value means the peer restarted.
        #[serde(default)]
        instance: Option<u64>,
        /// The sender's NAT type, once detected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nat: Option<String>,
    },
    /// Answer to a ping.
    Pong {
        /// Sender's display name.
        name: String,
        /// The ping's `seq`.
        seq: u64,
        /// As in `Ping`.
        #[serde(default)]
        instance: Option<u64>,
        /// As in `Ping`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nat: Option<String>,
    },
    /// The sender is leaving; it is offline now, not after a timeout.
    Bye {
        /// Sender's display name.
        name: String,
    },
}

/// The reliable-delivery fields of a message segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFields {
    /// The sender's run id: sequence numbers count within it.
    pub epoch: u64,
    /// This segment's sequence number (from 1).
    pub seq: u64,
    /// The lowest sequence number the sender still holds.
    pub base: u64,
    /// Which part of the message this is (from 0).
    pub part: u32,
    /// How many parts the message has.
    pub parts: u32,
}

impl Envelope {
    /// The sender's run id, when the envelope carries one.
    pub fn instance(&self) -> Option<u64> {
        match self {
            Self::Ping { instance, .. } | Self::Pong { instance, .. } => *instance,
            Self::Message { stream, .. } => stream.map(|s| s.epoch),
            Self::Bye { .. } | Self::Ack { .. } => None,
        }
    }

    /// The sender's NAT type, when the envelope carries one.
    pub fn nat(&self) -> Option<&str> {
        match self {
            Self::Ping { nat, .. } | Self::Pong { nat, .. } => nat.as_deref(),
            Self::Message { .. } | Self::Bye { .. } | Self::Ack { .. } => None,
        }
    }

    /// The sender's display name.
    pub fn name(&self) -> &str {
        match self {
            Self::Message { name, .. }
            | Self::Ping { name, .. }
            | Self::Pong { name, .. }
            | Self::Ack { name, .. }
            | Self::Bye { name } => name,
        }
    }
}

/// A seed timestamp as display text: strings as they are, anything else as its JSON.
pub fn timestamp_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_by_first_bytes() {
        assert_eq!(classify(b"{\"op\":\"x\"}"), Class::Control);
        assert_eq!(classify(b"gAAAAAtoken"), Class::Token("gAAAAAtoken"));
        assert_eq!(classify(b"gAAAAA\xff"), Class::Unknown);
        assert_eq!(classify(b""), Class::Unknown);
        assert_eq!(classify(b"hello"), Class::Unknown);
        let req = stun::binding_request([1; 12], stun::Change::default()).unwrap();
        assert_eq!(classify(&req), Class::Stun);
    }

    #[test]
    fn seed_message_parses_and_ours_carries_seed_fields() {
        let seed =
            r#"{"type":"message","name":"bob","timestamp":"2025-05-29 12:00:00","text":"hi"}"#;
        let env: Envelope = serde_json::from_str(seed).unwrap();
        assert_eq!(
            env,
            Envelope::Message {
                name: "bob".into(),
                timestamp: "2025-05-29 12:00:00".into(),
                text: "hi".into(),
                id: None,
                stream: None,
            }
        );
        let ours = Envelope::Message {
            name: "al".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            text: "yo".into(),
            id: Some("ab".into()),
            stream: None,
        };
        let json: serde_json::Value = serde_json::to_value(&ours).unwrap();
        for field in ["type", "name", "timestamp", "text"] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["type"], "message");
    }

    #[test]
    fn numeric_seed_timestamp_is_shown_as_text() {
        let env: Envelope = serde_json::from_str(
            r#"{"type":"message","name":"b","timestamp":1716900000.5,"text":"x"}"#,
        )
        .unwrap();
        let Envelope::Message { timestamp, .. } = env else { panic!("not a message") };
        assert_eq!(timestamp_text(&timestamp), "1716900000.5");
    }
}
