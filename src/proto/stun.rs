//! STUN (RFC 5389) with the RFC 5780 behaviour-discovery attributes, as plain functions over
//! bytes: recognising a STUN datagram on the shared socket, building requests (optionally with
//! CHANGE-REQUEST) and responses (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, OTHER-ADDRESS,
//! RESPONSE-ORIGIN), and reading them back — including RFC 3489 servers' CHANGED-ADDRESS.
//! Built on `stun_codec`. Owns no state and no socket; retransmission lives with the callers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytecodec::{DecodeExt, EncodeExt};
use stun_codec::rfc5389::attributes::{ErrorCode, MappedAddress, Software, XorMappedAddress};
use stun_codec::rfc5389::methods::BINDING;
use stun_codec::rfc5780::attributes::{ChangeRequest, OtherAddress, ResponseOrigin};
use stun_codec::{
    Attribute as _, Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId,
};

stun_codec::define_attribute_enums!(
    Attribute,
    AttributeDecoder,
    AttributeEncoder,
    [
        MappedAddress,
        XorMappedAddress,
        ErrorCode,
        Software,
        ChangeRequest,
        ResponseOrigin,
        OtherAddress
    ]
);

/// The 12-byte transaction id that pairs a response with its request.
pub type TxId = [u8; 12];

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER_BYTES: usize = 20;
/// RFC 3489's CHANGED-ADDRESS, sent by classic servers such as stund instead of OTHER-ADDRESS.
const CHANGED_ADDRESS: u16 = 0x0005;
/// CHANGE-REQUEST's attribute type (RFC 5780 §7.2, RFC 3489 §11.2.4).
const CHANGE_REQUEST: u16 = 0x0003;
/// Error code for a request the server cannot serve (RFC 5389: unknown attribute).
const UNKNOWN_ATTRIBUTE: u16 = 420;

/// What a CHANGE-REQUEST asks the server to change when it answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    /// Answer from the other IP address.
    pub ip: bool,
    /// Answer from the other port.
    pub port: bool,
}

/// What a STUN datagram means to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stun {
    /// Someone asks for their reflexive address.
    BindingRequest {
        /// Echoed in the response.
        txid: TxId,
        /// What the requester wants changed in the answer's source.
        change: Change,
    },
    /// An answer to one of our requests.
    BindingSuccess {
        /// The request it answers.
        txid: TxId,
        /// Our address as the server saw it.
        mapped: SocketAddr,
        /// The server's alternate address (OTHER-ADDRESS or RFC 3489 CHANGED-ADDRESS).
        other: Option<SocketAddr>,
    },
    /// The server refused one of our requests.
    BindingError {
        /// The request it answers.
        txid: TxId,
    },
    /// A well-formed STUN message we have no use for (indications, other methods).
    Other,
}

/// True when the first bytes say STUN: top two bits zero and the RFC 5389 magic cookie.
pub fn looks_like_stun(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_BYTES && bytes[0] & 0xc0 == 0 && bytes[4..8] == MAGIC_COOKIE
}

/// An IPv4 address attribute in the RFC 3489 layout: 0, family 1, port, address.
fn raw_ipv4_address(value: &[u8]) -> Option<SocketAddr> {
    match value {
        [_, 1, p0, p1, a, b, c, d] => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
            u16::from_be_bytes([*p0, *p1]),
        )),
        _ => None,
    }
}

/// CHANGE-REQUEST's flags, read from the raw attributes: `stun_codec` 0.4 encodes them at the
/// RFC's bit positions (0x4 change IP, 0x2 change port) but decodes them one bit off.
fn change_request(bytes: &[u8]) -> Change {
    let mut rest = bytes.get(HEADER_BYTES..).unwrap_or_default();
    while let [t0, t1, l0, l1, body @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some(value) = body.get(..len) else { break };
        if u16::from_be_bytes([*t0, *t1]) == CHANGE_REQUEST
            && let [.., flags] = value
        {
            return Change { ip: flags & 0x4 != 0, port: flags & 0x2 != 0 };
        }
        rest = body.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Change::default()
}

/// Decodes a STUN datagram; `None` when it is malformed.
pub fn parse(bytes: &[u8]) -> Option<Stun> {
    let message = MessageDecoder::<Attribute>::new().decode_from_bytes(bytes).ok()?.ok()?;
    if message.method() != BINDING {
        return Some(Stun::Other);
    }
    let txid = *message.transaction_id().as_bytes();
    Some(match message.class() {
        MessageClass::Request => Stun::BindingRequest { txid, change: change_request(bytes) },
        MessageClass::SuccessResponse => {
            let mapped = message
                .get_attribute::<XorMappedAddress>()
                .map(XorMappedAddress::address)
                .or_else(|| message.get_attribute::<MappedAddress>().map(MappedAddress::address))?;
            let other =
                message.get_attribute::<OtherAddress>().map(OtherAddress::address).or_else(|| {
                    message
                        .unknown_attributes()
                        .find(|a| a.get_type().as_u16() == CHANGED_ADDRESS)
                        .and_then(|a| raw_ipv4_address(a.value()))
                });
            Stun::BindingSuccess { txid, mapped, other }
        }
        MessageClass::ErrorResponse => Stun::BindingError { txid },
        MessageClass::Indication => Stun::Other,
    })
}

/// A Binding Request; with a CHANGE-REQUEST attribute when `change` asks for anything.
pub fn binding_request(txid: TxId, change: Change) -> Option<Vec<u8>> {
    let mut message =
        Message::<Attribute>::new(MessageClass::Request, BINDING, TransactionId::new(txid));
    if change != Change::default() {
        message.add_attribute(ChangeRequest::new(change.ip, change.port));
    }
    MessageEncoder::new().encode_into_bytes(message).ok()
}

/// A Binding Success Response telling the requester its observed address, sent from `origin`.
/// Carries XOR-MAPPED-ADDRESS (RFC 5389), MAPPED-ADDRESS (for RFC 3489 clients) and, when the
/// server has an alternate address, OTHER-ADDRESS (RFC 5780).
pub fn binding_success(
    txid: TxId,
    observed: SocketAddr,
    origin: SocketAddr,
    other: Option<SocketAddr>,
) -> Option<Vec<u8>> {
    let mut message =
        Message::<Attribute>::new(MessageClass::SuccessResponse, BINDING, TransactionId::new(txid));
    message.add_attribute(XorMappedAddress::new(observed));
    message.add_attribute(MappedAddress::new(observed));
    message.add_attribute(ResponseOrigin::new(origin));
    if let Some(other) = other {
        message.add_attribute(OtherAddress::new(other));
    }
    message.add_attribute(Software::new(format!("p2pchat {}", env!("CARGO_PKG_VERSION"))).ok()?);
    MessageEncoder::new().encode_into_bytes(message).ok()
}

/// An error response: this server cannot answer as asked (a CHANGE-REQUEST without an
/// alternate address).
pub fn binding_error(txid: TxId) -> Option<Vec<u8>> {
    let mut message =
        Message::<Attribute>::new(MessageClass::ErrorResponse, BINDING, TransactionId::new(txid));
    let reason = "no alternate address for CHANGE-REQUEST".to_owned();
    message.add_attribute(ErrorCode::new(UNKNOWN_ATTRIBUTE, reason).ok()?);
    MessageEncoder::new().encode_into_bytes(message).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn request_and_response_round_trip() {
        let txid = [7; 12];
        let req = binding_request(txid, Change::default()).unwrap();
        assert!(looks_like_stun(&req));
        assert_eq!(parse(&req), Some(Stun::BindingRequest { txid, change: Change::default() }));
        for (ip, port) in [(true, false), (false, true), (true, true)] {
            let change = Change { ip, port };
            let req = binding_request(txid, change).unwrap();
            assert_eq!(parse(&req), Some(Stun::BindingRequest { txid, change }));
        }
        // The flags on the wire are RFC 5780's: 0x4 change IP, 0x2 change port.
        let req = binding_request(txid, Change { ip: true, port: false }).unwrap();
        assert_eq!(&req[20..28], &[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0x04]);
        let observed = addr("198.51.100.7:40000");
        let origin = addr("198.51.100.1:7777");
        let resp = binding_success(txid, observed, origin, None).unwrap();
        assert!(looks_like_stun(&resp));
        assert_eq!(
            parse(&resp),
            Some(Stun::BindingSuccess { txid, mapped: observed, other: None })
        );
        let other = Some(addr("198.51.100.2:7778"));
        let resp = binding_success(txid, observed, origin, other).unwrap();
        assert_eq!(parse(&resp), Some(Stun::BindingSuccess { txid, mapped: observed, other }));
        let err = binding_error(txid).unwrap();
        assert_eq!(parse(&err), Some(Stun::BindingError { txid }));
    }

    #[test]
    fn reads_rfc3489_changed_address() {
        // A classic (stund-style) response: MAPPED-ADDRESS and CHANGED-ADDRESS, no XOR.
        let mut bytes = vec![0x01, 0x01, 0x00, 24];
        bytes.extend_from_slice(&MAGIC_COOKIE);
        bytes.extend_from_slice(&[5; 12]);
        bytes.extend_from_slice(&[0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x9c, 0x40, 198, 51, 100, 9]);
        bytes.extend_from_slice(&[0x00, 0x05, 0x00, 0x08, 0x00, 0x01, 0x0d, 0x97, 198, 51, 100, 2]);
        assert_eq!(
            parse(&bytes),
            Some(Stun::BindingSuccess {
                txid: [5; 12],
                mapped: addr("198.51.100.9:40000"),
                other: Some(addr("198.51.100.2:3479")),
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
