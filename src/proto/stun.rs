//! STUN (RFC 5389) with the RFC 5780 behaviour-discovery attributes, as plain functions over
//! bytes: recognising a STUN datagram on the shared socket, building requests (optionally with
//! CHANGE-REQUEST) and responses (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, OTHER-ADDRESS,
//! RESPONSE-ORIGIN), and reading them back — including RFC 3489 servers' CHANGED-ADDRESS.
//! Built on `stun_codec`. Owns no state and no socket; retransmission lives with the callers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytecodec::{DecodeExt, EncodeExt};
use stun_codec::rfc5389::attributes::{
    ErrorCode, MappedAddress, Software, UnknownAttributes, XorMappedAddress,
};
use stun_codec::rfc5389::methods::BINDING;
use stun_codec::rfc5780::attributes::{ChangeRequest, OtherAddress, ResponseOrigin};
use stun_codec::{
    Attribute as _, AttributeType, Message, MessageClass, MessageDecoder, MessageEncoder,
    TransactionId,
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
        OtherAddress,
        UnknownAttributes
    ]
);

/// The 12-byte transaction id that pairs a response with its request.
pub type TxId = [u8; 12];

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER_BYTES: usize = 20;
/// RFC 3489's CHANGED-ADDRESS, sent by classic servers such as stund instead of OTHER-ADDRESS.
const CHANGED_ADDRESS: u16 = 0x0005;
/// MAPPED-ADDRESS (RFC 3489, RFC 5389).
const MAPPED_ADDRESS: u16 = 0x0001;
/// CHANGE-REQUEST's attribute type (RFC 5780 §7.2, RFC 3489 §11.2.4).
pub const CHANGE_REQUEST: u16 = 0x0003;
/// Error code for a request the server cannot serve (RFC 5389: unknown attribute).
const UNKNOWN_ATTRIBUTE: u16 = 420;
/// RFC 3489's SOURCE-ADDRESS: where a classic server's answer comes from.
const SOURCE_ADDRESS: u16 = 0x0004;
/// Binding Request and Success Response message types (RFC 3489 §11.1, RFC 5389 §6).
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;

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

/// The comprehension-required attributes (types below 0x8000) of a request that this server does
/// not understand: it answers 420 with them listed (RFC 8489 §6.3.1). It understands only
/// CHANGE-REQUEST.
pub fn unknown_required(bytes: &[u8]) -> Vec<u16> {
    let mut unknown = Vec::new();
    let mut rest = bytes.get(HEADER_BYTES..).unwrap_or_default();
    while let [t0, t1, l0, l1, body @ ..] = rest {
        let kind = u16::from_be_bytes([*t0, *t1]);
        if kind < 0x8000 && kind != CHANGE_REQUEST && !unknown.contains(&kind) {
            unknown.push(kind);
        }
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        rest = body.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    unknown
}

/// A classic RFC 3489 Binding Request (no magic cookie; the whole 16 bytes after the length are
/// its transaction id), as clients of that era such as pystun3 send: the id and what
/// CHANGE-REQUEST asks. `None` for anything else.
pub fn classic_binding_request(bytes: &[u8]) -> Option<([u8; 16], Change)> {
    let [t0, t1, l0, l1, rest @ ..] = bytes else { return None };
    let len = usize::from(u16::from_be_bytes([*l0, *l1]));
    let classic = u16::from_be_bytes([*t0, *t1]) == BINDING_REQUEST
        && bytes.get(4..8) != Some(&MAGIC_COOKIE[..])
        && rest.len() == 16 + len
        && len % 4 == 0;
    if !classic {
        return None;
    }
    let txid = <[u8; 16]>::try_from(&bytes[4..20]).ok()?;
    Some((txid, change_request(bytes)))
}

/// The RFC 3489 answer to a classic request (RFC 5389 §12.2: MAPPED-ADDRESS, the request's
/// transaction id copied), with SOURCE-ADDRESS and, when the server has an alternate address,
/// CHANGED-ADDRESS, which classic NAT detection needs.
pub fn classic_binding_success(
    txid: [u8; 16],
    observed: SocketAddr,
    origin: SocketAddr,
    other: Option<SocketAddr>,
) -> Vec<u8> {
    let mut body = Vec::new();
    let attributes = [(MAPPED_ADDRESS, Some(observed)), (SOURCE_ADDRESS, Some(origin))];
    for (kind, addr) in attributes.into_iter().chain([(CHANGED_ADDRESS, other)]) {
        let Some(addr) = addr else { continue };
        let (family, ip): (u8, Vec<u8>) = match addr.ip() {
            IpAddr::V4(v4) => (1, v4.octets().to_vec()),
            IpAddr::V6(v6) => (2, v6.octets().to_vec()),
        };
        body.extend_from_slice(&kind.to_be_bytes());
        body.extend_from_slice(&u16::try_from(4 + ip.len()).unwrap_or(8).to_be_bytes());
        body.extend_from_slice(&[0, family]);
        body.extend_from_slice(&addr.port().to_be_bytes());
        body.extend_from_slice(&ip);
    }
    let mut message = Vec::with_capacity(HEADER_BYTES + body.len());
    message.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    message.extend_from_slice(&u16::try_from(body.len()).unwrap_or(0).to_be_bytes());
    message.extend_from_slice(&txid);
    message.extend_from_slice(&body);
    message
}

/// The transaction ID of a STUN message (RFC 8489 §5: bytes 8 to 20 of the header), without
/// decoding the rest; `None` when it is shorter than a header.
pub fn transaction(bytes: &[u8]) -> Option<TxId> {
    bytes.get(8..20)?.try_into().ok()
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

/// A 420 (Unknown Attribute) error response listing the attributes this server cannot serve in
/// UNKNOWN-ATTRIBUTES: comprehension-required ones it does not know, or CHANGE-REQUEST when it has
/// no alternate address (RFC 5780 §7.2).
pub fn binding_error(txid: TxId, unknown: &[u16]) -> Option<Vec<u8>> {
    let mut message =
        Message::<Attribute>::new(MessageClass::ErrorResponse, BINDING, TransactionId::new(txid));
    let reason = "unknown comprehension-required attribute".to_owned();
    message.add_attribute(ErrorCode::new(UNKNOWN_ATTRIBUTE, reason).ok()?);
    let types = unknown.iter().map(|&t| AttributeType::new(t)).collect();
    message.add_attribute(UnknownAttributes::new(types));
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
        let err = binding_error(txid, &[CHANGE_REQUEST]).unwrap();
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

    #[test]
    fn classic_rfc3489_requests_are_read_and_answered_as_classic_clients_expect() {
        // pystun3's request: type, length, a 16-byte transaction id, CHANGE-REQUEST(ip+port).
        let mut req = vec![0x00, 0x01, 0x00, 0x08];
        req.extend_from_slice(&[0xab; 16]);
        req.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0x06]);
        assert!(!looks_like_stun(&req), "no magic cookie");
        let (txid, change) = classic_binding_request(&req).unwrap();
        assert_eq!(txid, [0xab; 16]);
        assert_eq!(change, Change { ip: true, port: true });
        let plain = [&[0x00, 0x01, 0x00, 0x00][..], &[7; 16]].concat();
        assert_eq!(classic_binding_request(&plain), Some(([7; 16], Change::default())));
        // Not classic: a wrong type, a length that lies, an RFC 5389 request.
        assert_eq!(classic_binding_request(&[&[0x01, 0x01, 0, 0][..], &[7; 16]].concat()), None);
        assert_eq!(classic_binding_request(&[&[0x00, 0x01, 0, 8][..], &[7; 16]].concat()), None);
        let modern = binding_request([1; 12], Change::default()).unwrap();
        assert_eq!(classic_binding_request(&modern), None);
        let observed = addr("198.51.100.7:40000");
        let origin = addr("198.51.100.1:3478");
        let other = addr("198.51.100.2:3479");
        let resp = classic_binding_success([0xab; 16], observed, origin, Some(other));
        assert_eq!(&resp[..2], &[0x01, 0x01]);
        assert_eq!(&resp[4..20], &[0xab; 16], "the transaction id copied whole");
        assert_eq!(usize::from(u16::from_be_bytes([resp[2], resp[3]])), resp.len() - 20);
        assert_eq!(&resp[20..32], &[0, 1, 0, 8, 0, 1, 0x9c, 0x40, 198, 51, 100, 7], "MAPPED");
        assert_eq!(&resp[32..36], &[0, 4, 0, 8], "SOURCE-ADDRESS");
        assert_eq!(&resp[44..56], &[0, 5, 0, 8, 0, 1, 0x0d, 0x97, 198, 51, 100, 2], "CHANGED");
    }

    #[test]
    fn unknown_comprehension_required_attributes_are_named_in_a_420() {
        let mut req = binding_request([3; 12], Change::default()).unwrap();
        assert!(unknown_required(&req).is_empty());
        // Append 0x0031 (comprehension-required, unknown here) and 0x8022 (SOFTWARE, optional).
        req.extend_from_slice(&[0x00, 0x31, 0x00, 0x04, 1, 2, 3, 4]);
        req.extend_from_slice(&[0x80, 0x22, 0x00, 0x01, b'x', 0, 0, 0]);
        let len = u16::try_from(req.len() - 20).unwrap();
        req[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(unknown_required(&req), vec![0x0031]);
        let err = binding_error([3; 12], &[0x0031]).unwrap();
        let message = MessageDecoder::<Attribute>::new().decode_from_bytes(&err).unwrap().unwrap();
        assert_eq!(message.get_attribute::<ErrorCode>().unwrap().code(), 420);
        let unknown = message.get_attribute::<UnknownAttributes>().unwrap();
        assert_eq!(unknown.unknowns(), &[AttributeType::new(0x0031)]);
    }
}
