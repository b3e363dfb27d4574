//! STUN as both sides read it: RFC 5389/8489 messages and RFC 3489 requests, the
//! comprehension-required attributes we do not know, and an answer to every Binding Request
//! read back as the success it is. It must never panic.

use std::net::SocketAddr;

use p2pchat::proto::stun::{self, Stun};

/// One input.
pub fn run(data: &[u8]) {
    let _ = stun::looks_like_stun(data);
    let _ = stun::unknown_required(data);
    let from: SocketAddr = "203.0.113.9:5000".parse().expect("address");
    let via: SocketAddr = "198.51.100.1:7777".parse().expect("address");
    if let Some((txid, _)) = stun::classic_binding_request(data) {
        let _ = stun::classic_binding_success(txid, from, via, None);
    }
    if let Some(Stun::BindingRequest { txid, .. }) = stun::parse(data) {
        let answer = stun::binding_success(txid, from, via, Some(via)).expect("an answer");
        match stun::parse(&answer) {
            Some(Stun::BindingSuccess { txid: t, mapped, .. }) => {
                assert_eq!((t, mapped), (txid, from));
            }
            other => panic!("our answer reads as {other:?}"),
        }
    }
}
