//! A TURN client (RFC 8656, UDP to the server, UDP relaying) as a sans-IO state machine that
//! shares the chat's one socket. One allocation serves every peer the socket talks to: TURN
//! permissions are per peer IP (RFC 8656 §9), channels per peer address (§12).
//!
//! What it owns: the allocation's life (Allocate with the 401 → REALM/NONCE → authenticated
//! retry dance, 438 stale nonce, Refresh at half the lifetime, Refresh LIFETIME=0 on close),
//! permissions and channel bindings kept alive while the allocation lives, request
//! retransmission (same bytes and transaction id, RFC 8489 §6.2.1), and the data framing: Send
//! indications until a peer's channel is bound, ChannelData after. Inbound Data indications and
//! ChannelData come out as `(peer address, payload)`, to be fed to the session exactly as if the
//! payload had come from that address.
//!
//! What it must not do: decide when to relay (the session does), read a clock, touch a socket,
//! or retry after a refusal on its own — every failure ends in one `TurnEvent::Failed` with a
//! sentence for the user, and nothing is sent until `allocate` is called again.
//!
//! Credentials are coturn's REST form (`use-auth-secret`): a username `EXPIRY:USER` and a
//! password the rendezvous server derives from a secret it shares with coturn. Responses are
//! accepted only with a valid MESSAGE-INTEGRITY under them, except the 401 and 438 answers that
//! come before (or instead of) authentication.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytecodec::{DecodeExt, EncodeExt};
use stun_codec::rfc5389::attributes::{
    ErrorCode, Fingerprint, MessageIntegrity, Nonce, Realm, Software, Username, XorMappedAddress,
};
use stun_codec::rfc5766::attributes::{
    ChannelNumber, Data, Lifetime, RequestedTransport, XorPeerAddress, XorRelayAddress,
};
use stun_codec::rfc5766::methods::{
    ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, DATA, REFRESH, SEND,
};
use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};

use super::Transmit;
use super::stun::TxId;
use crate::consts::{
    MAX_RELAYED_PEERS, TURN_CHANNEL_REFRESH, TURN_LIFETIME, TURN_MAX_TRANSMITS,
    TURN_PERMISSION_REFRESH, TURN_RTO,
};

stun_codec::define_attribute_enums!(
    Attribute,
    AttributeDecoder,
    AttributeEncoder,
    [
        RequestedTransport,
        ErrorCode,
        Nonce,
        Realm,
        Username,
        MessageIntegrity,
        XorMappedAddress,
        XorRelayAddress,
        XorPeerAddress,
        ChannelNumber,
        Lifetime,
        Data,
        Software,
        Fingerprint
    ]
);

/// UDP's protocol number in REQUESTED-TRANSPORT (RFC 8656 §18.7).
const UDP: u8 = 17;
/// Bytes of a ChannelData header: channel number and length (RFC 8656 §12.4).
const CHANNEL_HEADER_BYTES: usize = 4;
/// Channel numbers a client may bind (RFC 8656 §12).
const CHANNELS: std::ops::RangeInclusive<u16> = ChannelNumber::MIN..=ChannelNumber::MAX;
/// Nonce renewals (438) in a row before the server counts as broken.
const MAX_STALE_NONCES: u32 = 3;

/// Where and as whom to allocate: coturn REST credentials handed out by the rendezvous server.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The TURN server's UDP address.
    pub server: SocketAddr,
    /// `EXPIRY:USER`.
    pub username: String,
    /// Base64 HMAC-SHA1 of the username under the shared secret.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"(hidden)")
            .finish()
    }
}

/// What the client tells the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// The allocation exists: peers reach us at `relayed`.
    Allocated {
        /// The relayed transport address (XOR-RELAYED-ADDRESS).
        relayed: SocketAddr,
    },
    /// No allocation, and none is attempted until `allocate` is called again.
    Failed {
        /// One sentence for the user: what happened and what to do.
        reason: String,
    },
    /// The allocation is gone (the server restarted, or stopped answering refreshes): a new
    /// one may be asked for at once.
    Lost,
    /// The server refused a permission for this peer (403: its policy denies the address).
    PeerRefused {
        /// The peer's IP.
        peer: IpAddr,
    },
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Allocate,
    Refresh { lifetime: u32 },
    Permission(SocketAddr),
    ChannelBind { peer: SocketAddr, number: u16 },
}

/// A request in flight: retransmitted with the same bytes until answered or given up.
#[derive(Debug)]
struct Request {
    kind: Kind,
    /// It carried MESSAGE-INTEGRITY: a 401 to it refuses the credentials themselves.
    authenticated: bool,
    bytes: Vec<u8>,
    transmits: u32,
    next: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing allocated, nothing asked.
    Idle,
    /// An Allocate is in flight.
    Allocating,
    /// Allocated until `expires`; refreshed at `refresh_at`.
    Allocated { relayed: SocketAddr, refresh_at: Instant },
    /// Gave up (see the `Failed` event); waits for `allocate`.
    Failed,
    /// Closed by `close`: nothing more is sent.
    Closed,
}

#[derive(Debug)]
struct Permission {
    /// The address it was asked for (only its IP counts to the server).
    peer: SocketAddr,
    /// When to send CreatePermission again (`None` while one is in flight).
    refresh_at: Option<Instant>,
    refused: bool,
}

#[derive(Debug)]
struct Channel {
    number: u16,
    bound: bool,
    /// When to send ChannelBind again (`None` while one is in flight).
    refresh_at: Option<Instant>,
}

/// The long-term credential's pieces learnt from the server's 401.
#[derive(Debug, Clone)]
struct Auth {
    realm: Realm,
    nonce: Nonce,
}

/// The TURN client of one socket.
#[derive(Debug)]
pub struct TurnClient {
    credentials: Credentials,
    phase: Phase,
    auth: Option<Auth>,
    stale_nonces: u32,
    /// An Allocate met an allocation left on this 5-tuple (437): deleted it once already.
    cleared_mismatch: bool,
    requests: HashMap<TxId, Request>,
    permissions: HashMap<IpAddr, Permission>,
    channels: HashMap<SocketAddr, Channel>,
    by_number: HashMap<u16, SocketAddr>,
    next_channel: u16,
    txid_counter: u64,
    txid_salt: [u8; 4],
    transmits: VecDeque<Transmit>,
    events: VecDeque<TurnEvent>,
}

impl TurnClient {
    /// A client for `credentials`; `salt` makes its transaction ids unpredictable.
    pub fn new(credentials: Credentials, salt: u64) -> Self {
        let salt_bytes = salt.to_be_bytes();
        Self {
            credentials,
            phase: Phase::Idle,
            auth: None,
            stale_nonces: 0,
            cleared_mismatch: false,
            requests: HashMap::new(),
            permissions: HashMap::new(),
            channels: HashMap::new(),
            by_number: HashMap::new(),
            next_channel: ChannelNumber::MIN,
            txid_counter: salt.rotate_left(17),
            txid_salt: [salt_bytes[0], salt_bytes[3], salt_bytes[5], salt_bytes[7]],
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The credentials in use (or for the next allocation).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The TURN server's address: datagrams from it are fed to `handle_datagram`.
    pub fn server(&self) -> SocketAddr {
        self.credentials.server
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        match self.phase {
            Phase::Allocated { relayed, .. } => Some(relayed),
            _ => None,
        }
    }

    /// True while an allocation exists or is being made.
    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Allocating | Phase::Allocated { .. })
    }

    /// Takes new credentials (the server handed out fresh ones). They are used for the next
    /// allocation; a live allocation keeps its username (coturn answers 441 to a change).
    pub fn update_credentials(&mut self, credentials: Credentials) {
        if !self.is_active() {
            if credentials.server != self.credentials.server {
                self.auth = None;
            }
            self.credentials = credentials;
        }
    }

    /// Starts an allocation unless one exists or is in flight (also after a failure).
    pub fn allocate(&mut self, now: Instant) {
        if self.is_active() || self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Allocating;
        self.stale_nonces = 0;
        self.start(now, Kind::Allocate);
    }

    /// Lets `peer`'s IP send to us through the allocation (and keeps it so). At most
    /// `MAX_RELAYED_PEERS` peers; false when refused or beyond that.
    pub fn permit(&mut self, now: Instant, peer: SocketAddr) -> bool {
        if let Some(permission) = self.permissions.get(&peer.ip()) {
            return !permission.refused;
        }
        if self.permissions.len() >= MAX_RELAYED_PEERS {
            return false;
        }
        let permission = Permission { peer, refresh_at: Some(now), refused: false };
        self.permissions.insert(peer.ip(), permission);
        self.send_due(now);
        true
    }

    /// Wraps `payload` for `peer` and queues it to the server: ChannelData once the peer's
    /// channel is bound, a Send indication until then (and asks for the channel). Nothing is
    /// sent without an allocation or for a peer whose permission was refused.
    pub fn send(&mut self, now: Instant, peer: SocketAddr, payload: &[u8]) {
        if self.relayed().is_none() || !self.permit(now, peer) {
            return;
        }
        if let Some(channel) = self.channels.get(&peer).filter(|c| c.bound) {
            let frame = channel_data(channel.number, payload);
            self.queue(frame);
            return;
        }
        if !self.channels.contains_key(&peer) && self.channels.len() < MAX_RELAYED_PEERS {
            let number = self.free_channel();
            if let Some(number) = number {
                let channel = Channel { number, bound: false, refresh_at: Some(now) };
                self.channels.insert(peer, channel);
                self.by_number.insert(number, peer);
                self.send_due(now);
            }
        }
        let mut message = Message::<Attribute>::new(
            MessageClass::Indication,
            SEND,
            TransactionId::new(self.txid()),
        );
        message.add_attribute(XorPeerAddress::new(peer));
        if let Ok(data) = Data::new(payload.to_vec()) {
            message.add_attribute(data);
            if let Ok(bytes) = MessageEncoder::new().encode_into_bytes(message) {
                self.queue(bytes);
            }
        }
    }

    /// Deletes the allocation (Refresh with LIFETIME 0, sent once) and stops.
    pub fn close(&mut self) {
        if matches!(self.phase, Phase::Allocated { .. }) {
            self.refresh_zero();
        }
        self.phase = Phase::Closed;
        self.requests.clear();
    }

    /// Asks the server at once whether the allocation still lives (a Refresh), e.g. when a
    /// relayed peer fell silent: a restarted server answers 437 and the allocation is made
    /// again by the session.
    pub fn check(&mut self, now: Instant) {
        if let Phase::Allocated { relayed, .. } = self.phase
            && !self.requests.values().any(|r| matches!(r.kind, Kind::Refresh { .. }))
        {
            self.phase = Phase::Allocated { relayed, refresh_at: now };
            self.send_due(now);
        }
    }

    /// Feeds a datagram that came from the TURN server. Returns relayed data: the peer's
    /// address and its payload.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
        if let Some((number, payload)) = parse_channel_data(bytes) {
            let peer = self.by_number.get(&number)?;
            return Some((*peer, payload.to_vec()));
        }
        let message = MessageDecoder::<Attribute>::new().decode_from_bytes(bytes).ok()?.ok()?;
        if message.class() == MessageClass::Indication {
            if message.method() != DATA {
                return None;
            }
            let peer = message.get_attribute::<XorPeerAddress>()?.address();
            let data = message.get_attribute::<Data>()?.data().to_vec();
            return Some((peer, data));
        }
        let txid = *message.transaction_id().as_bytes();
        let request = self.requests.remove(&txid)?;
        match message.class() {
            MessageClass::SuccessResponse => {
                if self.authentic(&message) {
                    self.stale_nonces = 0;
                    self.on_success(now, request.kind, &message);
                } else {
                    // A forged or broken answer: keep waiting for the real one.
                    self.requests.insert(txid, request);
                }
            }
            MessageClass::ErrorResponse => self.on_error(now, request, txid, &message),
            MessageClass::Request | MessageClass::Indication => {
                self.requests.insert(txid, request);
            }
        }
        None
    }

    /// Runs what is due: retransmissions, refreshes of the allocation, permissions and channels.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut given_up = Vec::new();
        let mut resend = Vec::new();
        for (txid, request) in &mut self.requests {
            if now < request.next {
                continue;
            }
            if request.transmits >= TURN_MAX_TRANSMITS {
                given_up.push(*txid);
                continue;
            }
            request.transmits += 1;
            request.next = now + TURN_RTO * 2u32.saturating_pow(request.transmits - 1);
            resend.push(request.bytes.clone());
        }
        for bytes in resend {
            self.queue(bytes);
        }
        for txid in given_up {
            if let Some(request) = self.requests.remove(&txid) {
                self.on_silence(now, request.kind);
            }
        }
        self.send_due(now);
    }

    /// When `handle_timeout` must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.requests.values().map(|r| r.next).min();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Phase::Allocated { refresh_at, .. } = self.phase {
            consider(refresh_at);
            for at in self.permissions.values().filter_map(|p| p.refresh_at) {
                consider(at);
            }
            for at in self.channels.values().filter_map(|c| c.refresh_at) {
                consider(at);
            }
        }
        next
    }

    /// The next datagram for the TURN server.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the session.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    fn queue(&mut self, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { to: self.credentials.server, payload, ttl: None });
    }

    fn txid(&mut self) -> TxId {
        self.txid_counter = self.txid_counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut txid = [0; 12];
        txid[..8].copy_from_slice(&self.txid_counter.to_be_bytes());
        txid[8..].copy_from_slice(&self.txid_salt);
        txid
    }

    fn free_channel(&mut self) -> Option<u16> {
        for _ in CHANNELS {
            let number = self.next_channel;
            self.next_channel =
                if number == ChannelNumber::MAX { ChannelNumber::MIN } else { number + 1 };
            if !self.by_number.contains_key(&number) {
                return Some(number);
            }
        }
        None
    }

    /// Sends the refreshes that are due (allocation, permissions, channels).
    fn send_due(&mut self, now: Instant) {
        let Phase::Allocated { relayed, refresh_at } = self.phase else { return };
        if now >= refresh_at
            && !self.requests.values().any(|r| matches!(r.kind, Kind::Refresh { .. }))
        {
            self.phase = Phase::Allocated { relayed, refresh_at: now + TURN_LIFETIME };
            let lifetime = u32::try_from(TURN_LIFETIME.as_secs()).unwrap_or(u32::MAX);
            self.start(now, Kind::Refresh { lifetime });
        }
        let mut due = Vec::new();
        for (peer, channel) in &mut self.channels {
            if channel.refresh_at.is_some_and(|at| now >= at) {
                channel.refresh_at = None;
                due.push(Kind::ChannelBind { peer: *peer, number: channel.number });
            }
        }
        for (ip, permission) in &mut self.permissions {
            if permission.refused || permission.refresh_at.is_none_or(|at| now < at) {
                continue;
            }
            let covered =
                due.iter().any(|k| matches!(k, Kind::ChannelBind { peer, .. } if peer.ip() == *ip));
            if covered {
                // The ChannelBind refreshes the permission too.
                permission.refresh_at = Some(now + TURN_PERMISSION_REFRESH);
            } else {
                permission.refresh_at = None;
                due.push(Kind::Permission(permission.peer));
            }
        }
        for kind in due {
            self.start(now, kind);
        }
    }

    /// Builds and sends a new request of `kind`.
    fn start(&mut self, now: Instant, kind: Kind) {
        let Some(bytes) = self.build(kind) else { return };
        let Some(txid) = bytes.get(8..20).and_then(|t| TxId::try_from(t).ok()) else { return };
        self.queue(bytes.clone());
        let authenticated = self.auth.is_some();
        let request = Request { kind, authenticated, bytes, transmits: 1, next: now + TURN_RTO };
        self.requests.insert(txid, request);
    }

    fn build(&mut self, kind: Kind) -> Option<Vec<u8>> {
        let method = match kind {
            Kind::Allocate => ALLOCATE,
            Kind::Refresh { .. } => REFRESH,
            Kind::Permission(_) => CREATE_PERMISSION,
            Kind::ChannelBind { .. } => CHANNEL_BIND,
        };
        let mut message = Message::<Attribute>::new(
            MessageClass::Request,
            method,
            TransactionId::new(self.txid()),
        );
        match kind {
            Kind::Allocate => {
                message.add_attribute(RequestedTransport::new(UDP));
                let lifetime = u32::try_from(TURN_LIFETIME.as_secs()).unwrap_or(u32::MAX);
                message.add_attribute(Lifetime::from_u32(lifetime));
            }
            Kind::Refresh { lifetime } => message.add_attribute(Lifetime::from_u32(lifetime)),
            Kind::Permission(peer) => message.add_attribute(XorPeerAddress::new(peer)),
            Kind::ChannelBind { peer, number } => {
                message.add_attribute(ChannelNumber::new(number).ok()?);
                message.add_attribute(XorPeerAddress::new(peer));
            }
        }
        if let Some(auth) = self.auth.clone() {
            let username = Username::new(self.credentials.username.clone()).ok()?;
            message.add_attribute(username.clone());
            message.add_attribute(auth.realm.clone());
            message.add_attribute(auth.nonce.clone());
            let integrity = MessageIntegrity::new_long_term_credential(
                &message,
                &username,
                &auth.realm,
                &self.credentials.password,
            )
            .ok()?;
            message.add_attribute(integrity);
        }
        MessageEncoder::new().encode_into_bytes(message).ok()
    }

    /// True when the response carries a MESSAGE-INTEGRITY valid under our credentials.
    fn authentic(&self, message: &Message<Attribute>) -> bool {
        let (Some(auth), Some(integrity)) =
            (self.auth.as_ref(), message.get_attribute::<MessageIntegrity>())
        else {
            return false;
        };
        let Ok(username) = Username::new(self.credentials.username.clone()) else { return false };
        integrity
            .check_long_term_credential(&username, &auth.realm, &self.credentials.password)
            .is_ok()
    }

    fn on_success(&mut self, now: Instant, kind: Kind, message: &Message<Attribute>) {
        match kind {
            Kind::Allocate => {
                let Some(relayed) = message.get_attribute::<XorRelayAddress>() else {
                    return self.fail("the relay answered without a relayed address");
                };
                let relayed = relayed.address();
                let lifetime = message
                    .get_attribute::<Lifetime>()
                    .map_or(TURN_LIFETIME, Lifetime::lifetime)
                    .max(Duration::from_secs(60));
                self.phase = Phase::Allocated { relayed, refresh_at: now + lifetime / 2 };
                // Permissions and channels asked for before (or of an earlier allocation) are
                // made again on this one.
                for permission in self.permissions.values_mut() {
                    permission.refresh_at = Some(now);
                }
                for channel in self.channels.values_mut() {
                    channel.bound = false;
                    channel.refresh_at = Some(now);
                }
                self.events.push_back(TurnEvent::Allocated { relayed });
                self.send_due(now);
            }
            Kind::Refresh { lifetime: 0 } => {}
            Kind::Refresh { .. } => {
                if let Phase::Allocated { relayed, .. } = self.phase {
                    let lifetime = message
                        .get_attribute::<Lifetime>()
                        .map_or(TURN_LIFETIME, Lifetime::lifetime)
                        .max(Duration::from_secs(60));
                    self.phase = Phase::Allocated { relayed, refresh_at: now + lifetime / 2 };
                }
            }
            Kind::Permission(peer) => {
                if let Some(permission) = self.permissions.get_mut(&peer.ip()) {
                    permission.refresh_at = Some(now + TURN_PERMISSION_REFRESH);
                }
            }
            Kind::ChannelBind { peer, number } => {
                if let Some(channel) = self.channels.get_mut(&peer).filter(|c| c.number == number) {
                    channel.bound = true;
                    channel.refresh_at = Some(now + TURN_CHANNEL_REFRESH);
                }
                if let Some(permission) = self.permissions.get_mut(&peer.ip()) {
                    permission.refresh_at = Some(now + TURN_PERMISSION_REFRESH);
                }
            }
        }
    }

    fn on_error(
        &mut self,
        now: Instant,
        request: Request,
        txid: TxId,
        message: &Message<Attribute>,
    ) {
        let Some(error) = message.get_attribute::<ErrorCode>() else { return };
        let code = error.code();
        // Before authentication (and when the nonce went stale) the server's answer cannot be
        // authenticated; any other error must be, or it is ignored as forged.
        if code != 401 && code != 438 && !self.authentic(message) {
            self.requests.insert(txid, request);
            return;
        }
        match code {
            401 | 438 => {
                let realm = message
                    .get_attribute::<Realm>()
                    .cloned()
                    .or_else(|| self.auth.as_ref().map(|a| a.realm.clone()));
                let nonce = message.get_attribute::<Nonce>().cloned();
                let refused = code == 401 && request.authenticated;
                if code == 438 {
                    self.stale_nonces += 1;
                }
                match (realm, nonce) {
                    _ if refused => self.fail(
                        "the relay refused our credentials: they expired, or the rendezvous \
                         server's --turn-secret-file does not match coturn's static-auth-secret",
                    ),
                    _ if self.stale_nonces > MAX_STALE_NONCES => {
                        self.fail("the relay keeps saying our nonce is stale; giving up on it");
                    }
                    (Some(realm), Some(nonce)) => {
                        self.auth = Some(Auth { realm, nonce });
                        self.start(now, request.kind);
                    }
                    _ => self.fail("the relay asks for credentials without a realm and nonce"),
                }
            }
            403 => match request.kind {
                Kind::Permission(peer) | Kind::ChannelBind { peer, .. } => {
                    let mut newly = false;
                    if let Some(permission) = self.permissions.get_mut(&peer.ip()) {
                        newly = !permission.refused;
                        permission.refused = true;
                        permission.refresh_at = None;
                    }
                    if let Some(channel) = self.channels.remove(&peer) {
                        self.by_number.remove(&channel.number);
                    }
                    if newly {
                        self.events.push_back(TurnEvent::PeerRefused { peer: peer.ip() });
                    }
                }
                _ => self.fail("the relay refuses us (403 Forbidden)"),
            },
            437 => match request.kind {
                Kind::Allocate if !self.cleared_mismatch => {
                    // An allocation of an earlier run on this address: delete it, then ask again.
                    self.cleared_mismatch = true;
                    self.refresh_zero();
                    self.start(now, Kind::Allocate);
                }
                Kind::Allocate => self.fail("the relay keeps an old allocation of ours"),
                _ => self.lost(),
            },
            441 => self.fail("the relay says our credentials changed mid-allocation (441)"),
            486 => self.fail(
                "the relay's quota for you is used up (486): another p2pchat of yours holds it",
            ),
            508 => self.fail("the relay is full (508); trying again in a minute"),
            _ => {
                let reason = error.reason_phrase().to_owned();
                match request.kind {
                    Kind::ChannelBind { peer, .. } => {
                        // Without a channel, Send indications still carry the data.
                        tracing::debug!(%peer, code, %reason, "channel bind refused");
                    }
                    _ => self.fail(&format!("the relay answered {code} {reason}")),
                }
            }
        }
    }

    /// Sends a Refresh with LIFETIME 0 (not retransmitted): deletes what the server holds.
    fn refresh_zero(&mut self) {
        if let Some(bytes) = self.build(Kind::Refresh { lifetime: 0 }) {
            self.queue(bytes);
        }
    }

    /// A request got no answer at all.
    fn on_silence(&mut self, now: Instant, kind: Kind) {
        match kind {
            Kind::Allocate => {
                let server = self.credentials.server;
                self.fail(&format!("the relay at {server} does not answer"));
            }
            Kind::Refresh { .. } => self.lost(),
            Kind::Permission(peer) => {
                if let Some(permission) = self.permissions.get_mut(&peer.ip()) {
                    permission.refresh_at = Some(now);
                }
            }
            Kind::ChannelBind { peer, .. } => {
                if let Some(channel) = self.channels.get_mut(&peer) {
                    channel.refresh_at = Some(now + TURN_CHANNEL_REFRESH);
                }
            }
        }
    }

    /// The allocation is gone (the server restarted or forgot it): say so; the session
    /// allocates again when it still needs the relay.
    fn lost(&mut self) {
        self.requests.clear();
        for channel in self.channels.values_mut() {
            channel.bound = false;
        }
        self.auth = None;
        self.cleared_mismatch = false;
        self.phase = Phase::Failed;
        self.events.push_back(TurnEvent::Lost);
    }

    fn fail(&mut self, reason: &str) {
        self.requests.clear();
        if self.phase != Phase::Closed {
            self.phase = Phase::Failed;
        }
        self.events.push_back(TurnEvent::Failed { reason: reason.to_owned() });
    }
}

/// A ChannelData frame (RFC 8656 §12.4): channel number, length, payload; unpadded (padding is
/// optional over UDP).
pub fn channel_data(number: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut frame = Vec::with_capacity(CHANNEL_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&number.to_be_bytes());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&payload[..usize::from(len)]);
    frame
}

/// Reads a ChannelData frame: its channel number and payload. The length may be shorter than
/// what follows (a padded frame), never longer; the number must be in the client range.
pub fn parse_channel_data(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let [n0, n1, l0, l1, rest @ ..] = bytes else { return None };
    let number = u16::from_be_bytes([*n0, *n1]);
    if !CHANNELS.contains(&number) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*l0, *l1]));
    rest.get(..len).map(|payload| (number, payload))
}

#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;
