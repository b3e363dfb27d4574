//! What the simulated networks of the protocol tests share: where the rendezvous server and
//! the TURN relay stand, the secret they share, and one hop's latency.

use std::net::SocketAddr;
use std::time::Duration;

/// The rendezvous server's address.
pub const SERVER: &str = "198.51.100.1:7777";

/// The TURN relay's address.
pub const TURN_SERVER: &str = "198.51.100.3:3478";

/// The secret the rendezvous server shares with the relay.
pub const TURN_SECRET: &[u8] = b"shared by the rendezvous server and the relay";

/// One hop's delay.
pub const LATENCY: Duration = Duration::from_millis(20);

/// An address from its text.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|_| panic!("not an address: {s}"))
}
