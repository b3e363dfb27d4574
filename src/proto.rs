//! The protocol as a sans-IO state machine (in the style of quinn-proto and str0m): datagrams,
//! commands and the current time go in; datagrams to send, events for the app and the next
//! deadline come out. Nothing here reads a clock, touches a socket or spawns a task, so every
//! behaviour — punching, keepalive, liveness, rendezvous, STUN, the TURN relay, dedup, replay
//! protection — is tested with simulated peers, a simulated TURN server and simulated time.

pub mod crypto;
pub mod endpoint;
pub mod keying;
pub mod nat;
pub mod reliable;
pub mod session;
pub mod stun;
#[cfg(test)]
mod testnet;
pub mod turn;
pub mod wire;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use session::{Mode, Session, SessionConfig};

/// A peer, as numbered by this session (stable while the process runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// A chat message's id: 16 hex digits, unique per sender.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MsgId(pub String);

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A datagram the session wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes to send, at most `MAX_DATAGRAM_BYTES`.
    pub payload: Vec<u8>,
    /// An IP time-to-live for this datagram only (a hole-opening probe meant to expire before
    /// it reaches the peer's NAT); `None` for the socket's own.
    pub ttl: Option<u32>,
}

/// What the app asks of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCommand {
    /// Send a chat message to every online peer (held while none is online).
    Send {
        /// The text as typed.
        text: String,
    },
    /// The app logged an incoming message: it may now be acknowledged as kept.
    Persisted(Receipt),
    /// The app logged one of our messages (told by `Sent` or `Queued`): it may now leave.
    /// Nothing is sent before it is in our own log.
    Logged(MsgId),
    /// Our NAT type was detected: tell the server and peers.
    SetNat {
        /// The classic name ("Port-Restricted Cone", …).
        nat: String,
    },
    /// Say goodbye to peers and stop; answered with `NetEvent::Closed`.
    Shutdown,
}

/// Identifies an incoming message for `NetCommand::Persisted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The sender's name.
    pub from: String,
    /// The sender's run id.
    pub epoch: u64,
    /// The message's last segment.
    pub last_seq: u64,
    /// The message's id.
    pub id: MsgId,
}

/// A message of ours from an earlier run that no peer has confirmed yet (from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its id.
    pub id: MsgId,
    /// Its text.
    pub text: String,
    /// Its timestamp.
    pub timestamp: String,
}

/// How the path in use reaches a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathKind {
    /// Through a TURN relay (ours or the peer's): the last resort, always left for a direct
    /// path as soon as one answers.
    Relay,
    /// An address we did not know in advance: the source of an authenticated packet (a peer
    /// behind a symmetric NAT, or a NAT that changed its mapping).
    Reflexive,
    /// The peer's public endpoint, as the server saw it.
    Public,
    /// The address given with `--peer`.
    Configured,
    /// One of the peer's private (LAN) endpoints: the shortest way, preferred.
    Lan,
}

impl PathKind {
    /// Words for the status pane and headless output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::Reflexive => "peer-reflexive",
            Self::Public => "direct public",
            Self::Configured => "direct",
            Self::Lan => "direct LAN",
        }
    }
}

/// Why a peer went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineReason {
    /// Nothing heard from it for the offline threshold.
    Silent,
    /// It said goodbye.
    Left,
}

impl OfflineReason {
    /// The word for it in logs and headless output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Silent => "unreachable",
            Self::Left => "left",
        }
    }
}

/// Why datagrams from a source were refused (told to the user once per source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Fernet tokens that do not authenticate: most likely a different key.
    WrongKey,
    /// Authentic tokens whose timestamp is far from our clock: a replay or a wrong clock.
    Clock {
        /// Token time minus our time, in seconds.
        skew_secs: i64,
    },
}

/// Datagrams dropped, by reason. Never shown as messages; shown as numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Larger than `MAX_DATAGRAM_BYTES`.
    pub oversized: u64,
    /// Not STUN, control JSON or a token; or a token whose JSON we could not read.
    pub malformed: u64,
    /// Tokens that did not authenticate.
    pub unauthentic: u64,
    /// Authentic tokens outside the clock-skew window.
    pub stale: u64,
    /// Control or STUN datagrams from an address that is not our server.
    pub unexpected_source: u64,
    /// Chat messages seen before (same sender and id).
    pub duplicate: u64,
    /// Our own packets come back to us (a probe that reached our own socket).
    pub reflected: u64,
    /// Authentic datagrams whose numbers no well-behaved peer sends: acknowledgements of what
    /// was never sent, impossible part numbers, messages past `MAX_MESSAGE_BYTES`.
    pub invalid: u64,
    /// Authentic copies of envelopes already taken (a ping, pong or goodbye sent again, a
    /// packet of a peer's earlier run): they change nothing.
    pub replayed: u64,
}

impl DropCounts {
    /// The drops worth a look (the status pane's "bad packets"): what is not ours to read,
    /// fails to authenticate, comes from where it should not, or breaks the protocol's rules.
    /// Duplicates, replays, our own reflected probes and packets outside the clock window are
    /// what a lossy or slow network does by itself (and a clock too far off is said apart).
    pub fn suspicious(&self) -> u64 {
        self.oversized + self.malformed + self.unauthentic + self.unexpected_source + self.invalid
    }

    /// All drops added up.
    pub fn total(&self) -> u64 {
        self.oversized
            + self.malformed
            + self.unauthentic
            + self.stale
            + self.unexpected_source
            + self.duplicate
            + self.reflected
            + self.invalid
            + self.replayed
    }
}

/// What the network tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// STUN learnt our public endpoint.
    PublicEndpoint {
        /// Our address as the STUN server saw it.
        addr: SocketAddr,
    },
    /// The STUN server never answered.
    StunFailed {
        /// The server asked.
        server: SocketAddr,
    },
    /// The rendezvous server accepted our registration (first time, or again after silence).
    Registered {
        /// The server.
        server: SocketAddr,
    },
    /// The rendezvous server has not answered for a while.
    ServerSilent {
        /// The server.
        server: SocketAddr,
    },
    /// The rendezvous server refused us.
    ServerRefused {
        /// Its reason.
        reason: String,
    },
    /// The server introduced a peer; punching starts.
    PeerIntroduced {
        /// Session-local id.
        peer: PeerId,
        /// Display name.
        name: String,
        /// Its public endpoint.
        public: SocketAddr,
    },
    /// An authenticated packet arrived from a peer that was offline.
    PeerOnline {
        /// Session-local id.
        peer: PeerId,
        /// Display name.
        name: String,
        /// The endpoint that answered, now in use.
        addr: SocketAddr,
        /// What kind of path that is.
        kind: PathKind,
    },
    /// A peer became unreachable or left.
    PeerOffline {
        /// Session-local id.
        peer: PeerId,
        /// Display name.
        name: String,
        /// Why.
        reason: OfflineReason,
    },
    /// An online peer's packets now come from another address; we follow it.
    PathChanged {
        /// Session-local id.
        peer: PeerId,
        /// Display name.
        name: String,
        /// The new endpoint.
        addr: SocketAddr,
        /// What kind of path it is.
        kind: PathKind,
    },
    /// Our own NAT type, as detected (the echo of `NetCommand::SetNat`).
    OwnNat {
        /// The classic name.
        nat: String,
    },
    /// We learnt (or it changed) a peer's NAT type.
    PeerNat {
        /// Session-local id.
        peer: PeerId,
        /// Display name.
        name: String,
        /// Its NAT type.
        nat: String,
    },
    /// A fresh round-trip time measurement.
    Rtt {
        /// Session-local id.
        peer: PeerId,
        /// Measured round trip.
        rtt: Duration,
    },
    /// Punching found no path within the punch window; probing continues, slower.
    NoPathYet {
        /// Session-local id.
        peer: PeerId,
        /// Display name.
        name: String,
        /// Our NAT type, if detected.
        ours: Option<String>,
        /// The peer's NAT type, if it told us.
        theirs: Option<String>,
        /// The rendezvous server offers a relay (TURN) to fall back on.
        relay_offered: bool,
    },
    /// A chat message from a peer.
    Message {
        /// Sender's display name, as sent (unsanitised: the UI neutralises it).
        from: String,
        /// The text, unsanitised.
        text: String,
        /// The sender's timestamp, as sent.
        timestamp: String,
        /// Its id, when the sender is a p2pchat.
        id: Option<MsgId>,
        /// To confirm it was logged (reliable senders only); until then it is not acknowledged.
        receipt: Option<Receipt>,
    },
    /// A peer has one of our messages in its log.
    Delivered {
        /// The message's id.
        id: MsgId,
    },
    /// One of our messages is for the online peers; it goes out once the app has logged it
    /// (`NetCommand::Logged`), and delivery is confirmed by `Delivered`.
    Sent {
        /// Its id.
        id: MsgId,
        /// Its text.
        text: String,
        /// Its timestamp (RFC 3339), as sent.
        timestamp: String,
    },
    /// One of our messages is held until a peer comes online (and until the app has logged it,
    /// `NetCommand::Logged`).
    Queued {
        /// Its id.
        id: MsgId,
        /// Its text.
        text: String,
        /// Its timestamp (RFC 3339).
        timestamp: String,
    },
    /// One of our messages could not be sent at all.
    NotSent {
        /// Its text, so nothing typed is lost.
        text: String,
        /// Why, in words for the user.
        reason: String,
    },
    /// Datagrams from a source are being refused (once per source).
    Rejected {
        /// The source.
        from: SocketAddr,
        /// Why.
        reason: Rejection,
    },
    /// Drop counters changed (coalesced, at most once per keepalive interval).
    Drops(DropCounts),
    /// The first keys with a contact were agreed inside the session (a conversation that
    /// started without them, as the messenger's do): the contact can be reached now.
    KeysAgreed {
        /// The contact.
        peer: String,
        /// The safety number both screens show (`identity::safety_number`).
        safety_number: String,
    },
    /// The contact restarted and proved itself again: new keys are in use.
    KeysRenewed {
        /// The contact.
        peer: String,
    },
    /// The contact restarted but could not prove itself; the old keys stay.
    KeysRefused {
        /// Why, in words for the user.
        reason: String,
    },
    /// Our relay is ready: peers without a direct path reach us at `relayed`.
    RelayReady {
        /// Our relayed transport address on the TURN server.
        relayed: SocketAddr,
    },
    /// The relay cannot be used (or not for some peer); direct paths are unaffected.
    RelayFailed {
        /// One sentence for the user: what happened and what to do.
        reason: String,
    },
    /// Shutdown finished: goodbyes were queued for sending.
    Closed,
}
