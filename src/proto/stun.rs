//! STUN (RFC 5389) as plain functions over bytes: recognising a STUN datagram on the shared
//! socket, building and answering Binding Requests, reading XOR-MAPPED-ADDRESS. Built on
//! `stun_codec`. Owns no state and no socket; retransmission lives in the session.

use std::net::SocketAddr;

use bytecodec::{DecodeExt, EncodeExt};
use stun_codec::rfc5389::attributes::{MappedAddress, Software, XorMappedAddress};
use stun_codec::rfc5389::{Attribute, methods::BINDING};
use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};

/// The 12-byte transaction id that pairs a response with its request.
pub type TxId = [u8; 12];

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER_BYTES: usize = 20;

/// What a STUN datagram means to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stun {
    /// Someone asks for their reflexive address.
    BindingRequest {
        /// Echoed in the response.
        txid: TxId,
    },
    /// An answer to one of our requests.
    BindingSuccess {
        /// The request it answers.
        txid: TxId,
        /// Our address as the server saw it.
        mapped: SocketAddr,
    },
    /// A well-formed STUN message we have no use for (errors, indications, other methods).
    Other,
}

/// True when the first bytes say STUN: top two bits zero and the RFC 5389 magic cookie.
pub fn looks_like_stun(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_BYTES && bytes[0] & 0xc0 == 0 && bytes[4..8] == MAGIC_COOKIE
}

/// Decodes a STUN datagram; `None` when it is malformed.
pub fn parse(bytes: &[u8]) -> Option<Stun> {
    let message = MessageDecoder::<Attribute>::new()
        .decode_from_bytes(bytes)
        .ok()?
        .ok()?;
    if message.method() != BINDING {
        return Some(Stun::Other);
    }
    let txid = *message.transaction_id().as_bytes();
    Some(match message.class() {
        MessageClass::Request => Stun::BindingRequest { txid },
        MessageClass::SuccessResponse => {
            let mapped = message
                .get_attribute::<XorMappedAddress>()
                .map(XorMappedAddress::address)
                .or_else(|| {
                    message
                        .get_attribute::<MappedAddress>()
                        .map(MappedAddress::address)
                });
            match mapped {
                Some(mapped) => Stun::BindingSuccess { txid, mapped },
                None => return None,
            }
        }
        _ => Stun::Other,
    })
}

/// A Binding Request with the given transaction id.
pub fn binding_request(txid: TxId) -> Option<Vec<u8>> {
    let message =
        Message::<Attribute>::new(MessageClass::Request, BINDING, TransactionId::new(txid));
    MessageEncoder::new().encode_into_bytes(message).ok()
}

/// A Binding Success Response telling the requester its observed address. Carries both
/// XOR-MAPPED-ADDRESS (RFC 5389) and MAPPED-ADDRESS (for RFC 3489 clients).
pub fn binding_success(txid: TxId, observed: SocketAddr) -> Option<Vec<u8>> {
    let mut message = Message::<Attribute>::new(
        MessageClass::SuccessResponse,
        BINDING,
        TransactionId::new(txid),
    );
    message.add_attribute(XorMappedAddress::new(observed));
    message.add_attribute(MappedAddress::new(observed));
    message.add_attribute(Software::new(format!("p2pchat {}", env!("CARGO_PKG_VERSION"))).ok()?);
    MessageEncoder::new().encode_into_bytes(message).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_round_trip() {
        let txid = [7; 12];
        let req = binding_request(txid).unwrap();
        assert!(looks_like_stun(&req));
        assert_eq!(parse(&req), Some(Stun::BindingRequest { txid }));
        let observed: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let resp = binding_success(txid, observed).unwrap();
        assert!(looks_like_stun(&resp));
        assert_eq!(
            parse(&resp),
            Some(Stun::BindingSuccess {
                txid,
                mapped: observed
            })
        );
    }

    #[test]
    fn garbage_is_not_stun() {
        assert!(!looks_like_stun(b"gAAAAABhello"));
        assert!(!looks_like_stun(b"{\"op\":\"register\"}"));
        let mut fake = vec![0u8; 20];
        fake[4..8].copy_from_slice(&MAGIC_COOKIE);
        fake[3] = 200; // claims a body it does not have
        assert!(looks_like_stun(&fake));
        assert_eq!(parse(&fake), None);
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = parse(&bytes);
        }
    }
}
