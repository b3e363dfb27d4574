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
    /// A Fernet token after its conversation's tag and a dot (`crypto::Tag`): what a peer
    /// that knows we read tags sends.
    Tagged {
        /// The 8 characters before the dot.
        tag: &'a str,
        /// The token.
        token: &'a str,
    },
    /// None of the above.
    Unknown,
}

/// Characters of a conversation tag (`crypto::Tag`).
pub const TAG_CHARS: usize = 8;

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
    } else if bytes.get(TAG_CHARS) == Some(&b'.')
        && bytes[..TAG_CHARS].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        && bytes[TAG_CHARS + 1..].starts_with(b"gAAAAA")
    {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                Class::Tagged { tag: &text[..TAG_CHARS], token: text[TAG_CHARS + 1..].trim_end() }
            }
            Err(_) => Class::Unknown,
        }
    } else {
        Class::Unknown
    }
}

/// A peer's request to the rendezvous server. Read through `RequestFields` (one flat pass over
/// the object, as `Envelope` is read through `Fields`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", try_from = "RequestFields")]
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
        /// Our relayed transport address on the TURN server, once allocated: peers send there
        /// when no direct path forms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relay: Option<SocketAddr>,
        /// The server's last `cookie` answer, echoed (see `FromServer::Cookie`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cookie: Option<String>,
        /// More rooms to join (or stay in) with the same endpoints, each under its own name:
        /// one socket's conversations in one request (at most `MAX_ROOMS_PER_REGISTER` in
        /// all). Every room is answered on its own, its answers naming it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        also: Vec<Membership>,
    },
    /// Asks for a fresh nameplate (the number in a pairing code) and joins it.
    Allocate {
        /// Display name.
        name: String,
        /// See `Register::cookie`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cookie: Option<String>,
    },
    /// Joins the nameplate a friend allocated (once: a claimed nameplate takes nobody else).
    /// Always needs a cookie, so that nobody can claim, or spend another's guesses, from an
    /// address it does not receive at.
    Claim {
        /// The nameplate, e.g. "7".
        nameplate: String,
        /// Display name.
        name: String,
        /// See `Register::cookie`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cookie: Option<String>,
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
    /// Tells member `to` that our NAT now holds a mapping toward it (opening probes went
    /// out): its full probes can no longer reach our router before our own probes leave.
    Opened {
        /// The room we share.
        room: String,
        /// The member's name.
        to: String,
    },
}

/// The `op` of a request to the server.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Register,
    Allocate,
    Claim,
    Post,
    Fetch,
    Opened,
}

/// Every field any request has, each optional: what a request's JSON is read into before it
/// becomes a `ToServer`. The derived reader for the tagged enum buffers the whole object
/// first; the server reads a request for every refresh of every online peer.
#[derive(Deserialize)]
struct RequestFields {
    op: Op,
    room: Option<String>,
    name: Option<String>,
    private: Option<Vec<SocketAddr>>,
    nat: Option<String>,
    relay: Option<SocketAddr>,
    cookie: Option<String>,
    also: Option<Vec<Membership>>,
    nameplate: Option<String>,
    phase: Option<String>,
    body: Option<String>,
    to: Option<String>,
}

impl TryFrom<RequestFields> for ToServer {
    type Error = MissingField;

    fn try_from(f: RequestFields) -> Result<Self, MissingField> {
        let need = |field: Option<String>, name| field.ok_or(MissingField(name));
        Ok(match f.op {
            Op::Register => Self::Register {
                room: need(f.room, "room")?,
                name: need(f.name, "name")?,
                private: f.private.unwrap_or_default(),
                nat: f.nat,
                relay: f.relay,
                cookie: f.cookie,
                also: f.also.unwrap_or_default(),
            },
            Op::Allocate => Self::Allocate { name: need(f.name, "name")?, cookie: f.cookie },
            Op::Claim => Self::Claim {
                nameplate: need(f.nameplate, "nameplate")?,
                name: need(f.name, "name")?,
                cookie: f.cookie,
            },
            Op::Post => Self::Post {
                room: need(f.room, "room")?,
                phase: need(f.phase, "phase")?,
                body: need(f.body, "body")?,
            },
            Op::Fetch => {
                Self::Fetch { room: need(f.room, "room")?, phase: need(f.phase, "phase")? }
            }
            Op::Opened => Self::Opened { room: need(f.room, "room")?, to: need(f.to, "to")? },
        })
    }
}

/// A room and our name in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The room.
    pub room: String,
    /// Our display name there.
    pub name: String,
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
        /// TURN credentials, when the server has a relay to offer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<TurnOffer>,
        /// The room this answers (absent from servers that predate several rooms per socket).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
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
        /// Its relayed transport address on the TURN server, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relay: Option<SocketAddr>,
        /// The room it is a member of (see `Registered::room`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// The registration was refused.
    Refused {
        /// Why, in words for the user.
        reason: String,
        /// The room the refusal is about, when it is about one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
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
    /// Someone claimed our nameplate (to the one who allocated it): their first step should
    /// follow at once, and a code used by someone who never sends it is worth telling.
    Joined {
        /// The nameplate.
        nameplate: String,
        /// The name they gave.
        name: String,
    },
    /// Send the request again with this cookie: proof that we receive at the address we send
    /// from, asked for before the server keeps anything for a sender (under load, or for a
    /// claim). Like WireGuard's cookie reply and QUIC's Retry; no larger than the request.
    Cookie {
        /// Opaque; good for a few minutes, from this address only.
        cookie: String,
    },
    /// A `post` was stored.
    Posted {
        /// Its room.
        room: String,
        /// Its phase.
        phase: String,
    },
    /// A member's NAT now holds a mapping toward us (see `ToServer::Opened`).
    Opened {
        /// The member's name.
        from: String,
        /// The room we share (see `Registered::room`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
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

impl FromServer {
    /// The room an answer is about, when it names one: a socket in several rooms hands each
    /// answer to the conversation of that room.
    pub fn room(&self) -> Option<&str> {
        match self {
            Self::Registered { room, .. }
            | Self::Peer { room, .. }
            | Self::Refused { room, .. }
            | Self::Opened { room, .. } => room.as_deref(),
            Self::Posted { room, .. } | Self::Mail { room, .. } => Some(room),
            Self::Nameplate { .. }
            | Self::Claimed { .. }
            | Self::Joined { .. }
            | Self::Cookie { .. } => None,
        }
    }
}

/// Short-lived TURN credentials in coturn's REST form (`use-auth-secret`, after
/// draft-uberti-behave-turn-rest): good for starting an allocation until the expiry in the
/// username. Handed only to registered peers.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnOffer {
    /// The TURN server's UDP address.
    pub server: SocketAddr,
    /// `EXPIRY:USER`: Unix seconds after which coturn refuses a new allocation, and who.
    pub username: String,
    /// Base64 of HMAC-SHA1(username) under the secret the server shares with coturn.
    pub credential: String,
    /// Seconds the credentials stay good from now.
    pub ttl_secs: u64,
}

impl std::fmt::Debug for TurnOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnOffer")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("credential", &"(hidden)")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

/// What a peer says inside a Fernet token. `message` carries the seed's four fields; a client
/// written from the seed notes ignores our additions, and a seed message without them is valid.
/// Read through `Fields` (one flat pass over the object, no buffering of the whole document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "Fields")]
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
        /// The sender's run id: only the run a peer knows may say goodbye (a captured goodbye
        /// cannot end a later run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<u64>,
    },
}

/// The reliable-delivery fields of a message segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// The `type` of an envelope.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Message,
    Ack,
    Ping,
    Pong,
    Bye,
}

/// Every field any envelope has, each optional: what a datagram's JSON is read into before it
/// becomes an `Envelope`. A derived reader for the tagged enum (with its flattened stream
/// fields) buffers the whole object first and takes twice as long per datagram.
#[derive(Deserialize)]
struct Fields {
    #[serde(rename = "type")]
    kind: Kind,
    name: Option<String>,
    #[serde(default)]
    timestamp: serde_json::Value,
    text: Option<String>,
    id: Option<String>,
    epoch: Option<u64>,
    seq: Option<u64>,
    base: Option<u64>,
    part: Option<u32>,
    parts: Option<u32>,
    cum: Option<u64>,
    sack: Option<Vec<u64>>,
    instance: Option<u64>,
    nat: Option<String>,
}

/// An envelope or request without a field its type requires.
#[derive(Debug, thiserror::Error)]
#[error("without its `{0}` field")]
pub struct MissingField(&'static str);

impl TryFrom<Fields> for Envelope {
    type Error = MissingField;

    fn try_from(f: Fields) -> Result<Self, MissingField> {
        let name = f.name.ok_or(MissingField("name"))?;
        Ok(match f.kind {
            Kind::Message => {
                let stream = match (f.epoch, f.seq, f.base, f.part, f.parts) {
                    (Some(epoch), Some(seq), Some(base), Some(part), Some(parts)) => {
                        Some(StreamFields { epoch, seq, base, part, parts })
                    }
                    _ => None,
                };
                let text = f.text.ok_or(MissingField("text"))?;
                Self::Message { name, timestamp: f.timestamp, text, id: f.id, stream }
            }
            Kind::Ack => Self::Ack {
                name,
                epoch: f.epoch.ok_or(MissingField("epoch"))?,
                cum: f.cum.ok_or(MissingField("cum"))?,
                sack: f.sack.unwrap_or_default(),
            },
            Kind::Ping => Self::Ping {
                name,
                seq: f.seq.ok_or(MissingField("seq"))?,
                instance: f.instance,
                nat: f.nat,
            },
            Kind::Pong => Self::Pong {
                name,
                seq: f.seq.ok_or(MissingField("seq"))?,
                instance: f.instance,
                nat: f.nat,
            },
            Kind::Bye => Self::Bye { name, instance: f.instance },
        })
    }
}

impl Envelope {
    /// The sender's run id, when the envelope carries one.
    pub fn instance(&self) -> Option<u64> {
        match self {
            Self::Ping { instance, .. }
            | Self::Pong { instance, .. }
            | Self::Bye { instance, .. } => *instance,
            Self::Message { stream, .. } => stream.map(|s| s.epoch),
            Self::Ack { .. } => None,
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
            | Self::Bye { name, .. } => name,
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
        // A tag: eight URL-safe base64 characters and a dot before the token.
        assert_eq!(
            classify(b"Ab3_-xYz.gAAAAAtoken\n"),
            Class::Tagged { tag: "Ab3_-xYz", token: "gAAAAAtoken" }
        );
        for not_a_tag in [&b"Ab3_-xY.gAAAAAtoken"[..], b"Ab3_+xYz.gAAAAAtoken", b"Ab3_-xYz.hello"] {
            assert_eq!(
                classify(not_a_tag),
                Class::Unknown,
                "{:?}",
                String::from_utf8_lossy(not_a_tag)
            );
        }
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
    fn every_envelope_reads_back_as_written() {
        let stream = StreamFields { epoch: u64::MAX, seq: 7, base: 3, part: 1, parts: 2 };
        let envelopes = [
            Envelope::Message {
                name: "al".into(),
                timestamp: "2026-01-01T00:00:00.000Z".into(),
                text: "two\nlines \"quoted\" ✓".into(),
                id: Some("00ff".into()),
                stream: Some(stream),
            },
            Envelope::Message {
                name: "al".into(),
                timestamp: serde_json::Value::Null,
                text: String::new(),
                id: None,
                stream: None,
            },
            Envelope::Ack { name: "bo".into(), epoch: 9, cum: 4, sack: vec![6, 8] },
            Envelope::Ping {
                name: "bo".into(),
                seq: 1,
                instance: Some(5),
                nat: Some("cone".into()),
            },
            Envelope::Pong { name: "bo".into(), seq: 2, instance: None, nat: None },
            Envelope::Bye { name: "bo".into(), instance: Some(3) },
            Envelope::Bye { name: "bo".into(), instance: None },
        ];
        for envelope in envelopes {
            let json = serde_json::to_vec(&envelope).unwrap();
            assert_eq!(serde_json::from_slice::<Envelope>(&json).unwrap(), envelope);
        }
    }

    #[test]
    fn every_request_reads_back_as_written_and_one_missing_a_field_is_refused() {
        let requests = [
            ToServer::Register {
                room: "r".into(),
                name: "ann".into(),
                private: vec!["192.0.2.1:4000".parse().unwrap()],
                nat: Some("Full Cone".into()),
                relay: Some("203.0.113.9:49152".parse().unwrap()),
                cookie: Some("c00k1e".into()),
                also: vec![Membership { room: "s".into(), name: "annie".into() }],
            },
            ToServer::Register {
                room: "r".into(),
                name: "ann".into(),
                private: Vec::new(),
                nat: None,
                relay: None,
                cookie: None,
                also: Vec::new(),
            },
            ToServer::Allocate { name: "ann".into(), cookie: None },
            ToServer::Claim { nameplate: "7".into(), name: "bob".into(), cookie: Some("c".into()) },
            ToServer::Post { room: "np-7".into(), phase: "pake".into(), body: "b0dy".into() },
            ToServer::Fetch { room: "np-7".into(), phase: "pake".into() },
            ToServer::Opened { room: "r".into(), to: "bob".into() },
        ];
        for request in requests {
            let json = serde_json::to_vec(&request).unwrap();
            assert_eq!(serde_json::from_slice::<ToServer>(&json).unwrap(), request);
        }
        // The op anywhere in the object; what another op carries is ignored.
        let late = r#"{"name":"ann","nameplate":"ignored","room":"r","op":"register"}"#;
        assert!(matches!(serde_json::from_str(late), Ok(ToServer::Register { .. })));
        for json in [
            r#"{"op":"register","room":"r"}"#,
            r#"{"op":"claim","name":"bob"}"#,
            r#"{"op":"post","room":"r","phase":"p"}"#,
            r#"{"op":"fetch","phase":"p"}"#,
            r#"{"op":"opened","room":"r"}"#,
            r#"{"op":"wave","name":"b"}"#,
            r#"{"room":"r","name":"no op"}"#,
            r#"{"op":"allocate","name":"b","name":"twice"}"#,
            r#"{"op":"register","room":"r","name":"n","private":["not an address"]}"#,
            r#"["op","allocate"]"#,
        ] {
            assert!(serde_json::from_str::<ToServer>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn envelopes_missing_what_their_type_needs_are_refused() {
        for json in [
            r#"{"type":"message","text":"no name"}"#,
            r#"{"type":"message","name":"no text"}"#,
            r#"{"type":"ack","name":"b","cum":1}"#,
            r#"{"type":"ping","name":"b"}"#,
            r#"{"type":"wave","name":"b"}"#,
            r#"{"name":"b","text":"no type"}"#,
            r#"{"type":"bye","name":"b","name":"twice"}"#,
            r#"{"type":"ack","name":"b","epoch":1,"cum":-1}"#,
            r#"["type","bye"]"#,
        ] {
            assert!(serde_json::from_str::<Envelope>(json).is_err(), "{json}");
        }
        // Stream fields count only when all of them are there; unknown fields are ignored.
        let partial = r#"{"type":"message","name":"b","text":"x","seq":3,"epoch":1,"extra":[1]}"#;
        let Envelope::Message { stream, .. } = serde_json::from_str(partial).unwrap() else {
            panic!("not a message")
        };
        assert_eq!(stream, None);
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
