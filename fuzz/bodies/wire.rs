//! Everything a datagram is read as: its class, the server's and the peers' JSON (rendezvous
//! requests and answers, the sealed envelope), each read back after writing what was read. It
//! must never panic, and what was read must read back the same.

use p2pchat::proto::wire::{self, Envelope, FromServer, ToServer};

/// One input.
pub fn run(data: &[u8]) {
    let _ = wire::classify(data);
    if let Ok(request) = serde_json::from_slice::<ToServer>(data) {
        let bytes = serde_json::to_vec(&request).expect("a request writes");
        let again: ToServer = serde_json::from_slice(&bytes).expect("what was written reads");
        assert_eq!(again, request);
    }
    if let Ok(answer) = serde_json::from_slice::<FromServer>(data) {
        let bytes = serde_json::to_vec(&answer).expect("an answer writes");
        let again: FromServer = serde_json::from_slice(&bytes).expect("what was written reads");
        assert_eq!(again, answer);
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(data) {
        let _ = (envelope.name(), envelope.instance(), envelope.nat());
        let bytes = serde_json::to_vec(&envelope).expect("an envelope writes");
        let again: Envelope = serde_json::from_slice(&bytes).expect("what was written reads");
        assert_eq!(again.name(), envelope.name());
        assert_eq!(again.instance(), envelope.instance());
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = wire::timestamp_text(&value);
    }
}
