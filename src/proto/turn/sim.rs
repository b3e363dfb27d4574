//! A TURN server in memory for tests, behaving as coturn 4.6.1 was seen to (see
//! `../shared/notes/relay.md`): 401 with REALM and NONCE to a request without credentials,
//! REST credentials checked against a shared secret, MESSAGE-INTEGRITY on every answer after,
//! 438 with a new nonce, 437 for a second Allocate or a vanished allocation, 403 for denied
//! peers, permissions per IP, channels per peer address, ChannelData unpadded. One allocation
//! per client address; several clients at once.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use bytecodec::{DecodeExt, EncodeExt};
use stun_codec::rfc5389::attributes::{
    ErrorCode, MessageIntegrity, Nonce, Realm, Username, XorMappedAddress,
};
use stun_codec::rfc5766::attributes::{
    ChannelNumber, Data, Lifetime, XorPeerAddress, XorRelayAddress,
};
use stun_codec::rfc5766::methods::{
    ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, DATA, REFRESH, SEND,
};
use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, Method, TransactionId};

use super::{Attribute, channel_data, parse_channel_data};
use crate::server::turn_credentials;

/// What one client holds on the server.
#[derive(Debug, Default)]
pub struct Allocation {
    /// Its relayed transport address.
    pub relayed: Option<SocketAddr>,
    /// Peer IPs allowed to send to it.
    pub permissions: HashSet<IpAddr>,
    /// Channel numbers and their peers.
    pub channels: HashMap<u16, SocketAddr>,
}

/// A datagram the server sends: from its own address (answers, relayed data to clients) or from
/// a relayed address (data to peers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    /// Where it comes from.
    pub from: SocketAddr,
    /// Where it goes.
    pub to: SocketAddr,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// For data relayed to a peer: it came as ChannelData (not a Send indication).
    pub channel: bool,
}

/// The server.
pub struct FakeTurn {
    /// Its listening address.
    pub addr: SocketAddr,
    secret: Vec<u8>,
    /// Its realm.
    pub realm: String,
    /// The nonce it expects now.
    pub nonce: String,
    /// Lifetime it grants, in seconds.
    pub lifetime: u32,
    /// Allocations by client address.
    pub allocations: HashMap<SocketAddr, Allocation>,
    /// Peer IPs its policy refuses (403).
    pub denied: HashSet<IpAddr>,
    /// Answer the next authenticated request with 438 and a new nonce.
    pub stale_next: bool,
    /// Answer authenticated Allocates with this error.
    pub allocate_error: Option<u16>,
    /// Every request's method and whether it carried MESSAGE-INTEGRITY, in order.
    pub requests: Vec<(u16, bool)>,
    /// Refresh lifetimes asked for.
    pub refreshes: Vec<u32>,
    /// Allocations made so far.
    pub allocations_made: usize,
}

impl FakeTurn {
    /// A server at `addr` sharing `secret` with the rendezvous server.
    pub fn new(addr: SocketAddr, secret: &[u8]) -> Self {
        Self {
            addr,
            secret: secret.to_vec(),
            realm: "sim.p2pchat.test".to_owned(),
            nonce: "0123456789abcdef".to_owned(),
            lifetime: 600,
            allocations: HashMap::new(),
            denied: HashSet::new(),
            stale_next: false,
            allocate_error: None,
            requests: Vec::new(),
            refreshes: Vec::new(),
            allocations_made: 0,
        }
    }

    /// The password the shared secret gives `username` (coturn's REST check).
    pub fn password(&self, username: &str) -> String {
        let user = username.split_once(':').map_or(username, |(_, user)| user);
        let expiry = username.split(':').next().and_then(|e| e.parse().ok()).unwrap_or(0);
        turn_credentials(&self.secret, user, expiry).1
    }

    /// An answer, signed with `username`'s key when given.
    pub fn respond(
        &self,
        class: MessageClass,
        method: Method,
        txid: TransactionId,
        attributes: Vec<Attribute>,
        sign_as: Option<&str>,
    ) -> Vec<u8> {
        let mut message = Message::<Attribute>::new(class, method, txid);
        for attribute in attributes {
            message.add_attribute(attribute);
        }
        if let Some(name) = sign_as {
            let username = Username::new(name.to_owned()).unwrap();
            let realm = Realm::new(self.realm.clone()).unwrap();
            let password = self.password(name);
            let mi =
                MessageIntegrity::new_long_term_credential(&message, &username, &realm, &password)
                    .unwrap();
            message.add_attribute(mi);
        }
        MessageEncoder::new().encode_into_bytes(message).unwrap()
    }

    fn error(&self, method: Method, txid: TransactionId, code: u16, user: Option<&str>) -> Vec<u8> {
        let mut attributes = vec![Attribute::from(ErrorCode::new(code, "sim".into()).unwrap())];
        if code == 401 || code == 438 {
            attributes.push(Realm::new(self.realm.clone()).unwrap().into());
            attributes.push(Nonce::new(self.nonce.clone()).unwrap().into());
            return self.respond(MessageClass::ErrorResponse, method, txid, attributes, None);
        }
        self.respond(MessageClass::ErrorResponse, method, txid, attributes, user)
    }

    /// Handles a datagram from `client`; returns what the server sends.
    pub fn handle(&mut self, client: SocketAddr, bytes: &[u8]) -> Vec<Out> {
        let answer = |bytes: Vec<u8>, server: SocketAddr| {
            vec![Out { from: server, to: client, bytes, channel: false }]
        };
        if let Some((number, payload)) = parse_channel_data(bytes) {
            let Some(allocation) = self.allocations.get(&client) else { return Vec::new() };
            let (Some(relayed), Some(peer)) =
                (allocation.relayed, allocation.channels.get(&number))
            else {
                return Vec::new();
            };
            return vec![Out { from: relayed, to: *peer, bytes: payload.to_vec(), channel: true }];
        }
        let Ok(Ok(message)) = MessageDecoder::<Attribute>::new().decode_from_bytes(bytes) else {
            return Vec::new();
        };
        let (method, txid) = (message.method(), message.transaction_id());
        if message.class() == MessageClass::Indication {
            let Some(allocation) = self.allocations.get(&client) else { return Vec::new() };
            let peer = message.get_attribute::<XorPeerAddress>().map(XorPeerAddress::address);
            let data = message.get_attribute::<Data>().map(|d| d.data().to_vec());
            return match (method, allocation.relayed, peer, data) {
                (SEND, Some(relayed), Some(peer), Some(data))
                    if allocation.permissions.contains(&peer.ip()) =>
                {
                    vec![Out { from: relayed, to: peer, bytes: data, channel: false }]
                }
                _ => Vec::new(),
            };
        }
        let integrity = message.get_attribute::<MessageIntegrity>();
        self.requests.push((method.as_u16(), integrity.is_some()));
        let (Some(integrity), Some(username), Some(realm)) =
            (integrity, message.get_attribute::<Username>(), message.get_attribute::<Realm>())
        else {
            return answer(self.error(method, txid, 401, None), self.addr);
        };
        let user = username.name().to_owned();
        let password = self.password(&user);
        if integrity.check_long_term_credential(username, realm, &password).is_err() {
            return answer(self.error(method, txid, 401, None), self.addr);
        }
        if message.get_attribute::<Nonce>().map(Nonce::value) != Some(self.nonce.as_str()) {
            return answer(self.error(method, txid, 438, None), self.addr);
        }
        if self.stale_next {
            self.stale_next = false;
            self.nonce.push('x');
            return answer(self.error(method, txid, 438, None), self.addr);
        }
        let user = Some(user.as_str());
        let ok = |s: &Self, attributes: Vec<Attribute>| {
            let bytes = s.respond(MessageClass::SuccessResponse, method, txid, attributes, user);
            answer(bytes, s.addr)
        };
        let live = self.allocations.get(&client).is_some_and(|a| a.relayed.is_some());
        match method {
            ALLOCATE => {
                if let Some(code) = self.allocate_error {
                    return answer(self.error(method, txid, code, user), self.addr);
                }
                if live {
                    return answer(self.error(method, txid, 437, user), self.addr);
                }
                self.allocations_made += 1;
                let port = 49152 + u16::try_from(self.allocations_made).unwrap();
                let relayed = SocketAddr::new(self.addr.ip(), port);
                let allocation = Allocation { relayed: Some(relayed), ..Allocation::default() };
                self.allocations.insert(client, allocation);
                let attributes = vec![
                    XorRelayAddress::new(relayed).into(),
                    Lifetime::from_u32(self.lifetime).into(),
                    XorMappedAddress::new(client).into(),
                ];
                ok(self, attributes)
            }
            REFRESH => {
                let lifetime =
                    message.get_attribute::<Lifetime>().map_or(600, |l| l.lifetime().as_secs());
                let lifetime = u32::try_from(lifetime).unwrap();
                self.refreshes.push(lifetime);
                if !live {
                    return answer(self.error(method, txid, 437, user), self.addr);
                }
                if lifetime == 0 {
                    self.allocations.remove(&client);
                }
                ok(self, vec![Lifetime::from_u32(self.lifetime).into()])
            }
            CREATE_PERMISSION | CHANNEL_BIND => {
                if !live {
                    return answer(self.error(method, txid, 437, user), self.addr);
                }
                let Some(peer) = message.get_attribute::<XorPeerAddress>().map(|p| p.address())
                else {
                    return answer(self.error(method, txid, 400, user), self.addr);
                };
                if self.denied.contains(&peer.ip()) {
                    return answer(self.error(method, txid, 403, user), self.addr);
                }
                let allocation = self.allocations.entry(client).or_default();
                allocation.permissions.insert(peer.ip());
                if method == CHANNEL_BIND {
                    let number = message.get_attribute::<ChannelNumber>().map(|n| n.value());
                    let Some(number) = number else {
                        return answer(self.error(method, txid, 400, user), self.addr);
                    };
                    if allocation.channels.iter().any(|(n, p)| *p == peer && *n != number) {
                        return answer(self.error(method, txid, 400, user), self.addr);
                    }
                    allocation.channels.insert(number, peer);
                }
                ok(self, Vec::new())
            }
            _ => answer(self.error(method, txid, 400, user), self.addr),
        }
    }

    /// A peer at `peer` sent `payload` to `relayed`: what reaches the allocation's client.
    pub fn relay_to_client(
        &self,
        relayed: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
    ) -> Option<Out> {
        let (client, allocation) =
            self.allocations.iter().find(|(_, a)| a.relayed == Some(relayed))?;
        if !allocation.permissions.contains(&peer.ip()) {
            return None;
        }
        let bytes = match allocation.channels.iter().find(|(_, p)| **p == peer) {
            Some((number, _)) => channel_data(*number, payload),
            None => {
                let attributes = vec![
                    XorPeerAddress::new(peer).into(),
                    Attribute::from(Data::new(payload.to_vec()).ok()?),
                ];
                let txid = TransactionId::new([9; 12]);
                self.respond(MessageClass::Indication, DATA, txid, attributes, None)
            }
        };
        Some(Out { from: self.addr, to: *client, bytes, channel: false })
    }

    /// True when `addr` is one of its relayed addresses.
    pub fn is_relayed(&self, addr: SocketAddr) -> bool {
        self.allocations.values().any(|a| a.relayed == Some(addr))
    }
}
