//! The thin IO shell around `proto::Session`: one tokio task owns the one UDP socket and the
//! session (and so the key); the app talks to it only through channels. It makes no protocol
//! decisions. Also finds our private endpoints for the rendezvous server, runs NAT discovery
//! on sockets of its own (`nat`), and the key handshake that may precede a chat (`keying`).

pub mod actor;
pub mod keying;
pub mod nat;

use std::net::{IpAddr, SocketAddr};

pub use actor::{NetHandle, spawn};

/// Our addresses on local interfaces with the bound port: what a peer on the same LAN can reach.
/// A socket bound to one address announces only that one; loopback is left out (a peer on this
/// machine reaches us through the public endpoint the server sees).
pub fn private_endpoints(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut endpoints: Vec<SocketAddr> = interfaces
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && matches!(ip, IpAddr::V4(_)))
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints.truncate(crate::consts::MAX_PRIVATE_ENDPOINTS);
    endpoints
}
