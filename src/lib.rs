//! p2pchat: peer-to-peer terminal chat over one UDP socket.
//!
//! Crate map:
//! - `proto` — the protocol as a sans-IO state machine (wire formats, Fernet, STUN, session).
//! - `server` — the rendezvous + STUN server (sans-IO core, thin tokio loop).
//! - `text` — neutralising untrusted text for the terminal.
//! - `consts` — every tuning constant, with its reason.

pub mod consts;
pub mod proto;
pub mod server;
pub mod text;
