//! The key handshakes fed hostile mail: a pairing (SPAKE2, then identities sealed with the
//! agreed key) and a contact's reconnection (signed X25519), each given a sequence of posts
//! under known and unknown phases with any bodies, at any times; and pairing codes as typed,
//! parsed and completed. It must never panic.

use arbitrary::{Arbitrary, Unstructured};
use p2pchat::identity::Identity;
use p2pchat::proto::keying::{Code, Handshake, Pairing, Peer};

/// One piece of mail.
#[derive(Debug, Arbitrary)]
struct Mail {
    /// Which phase: a known one (by index) or any text.
    phase: Result<u8, String>,
    body: String,
    unix_secs: u64,
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let typed: String = u.arbitrary().unwrap_or_default();
    let _ = Code::parse(&typed);
    let _ = Code::complete(&typed);
    let _ = Code::words_starting(&typed);
    let Ok(mails) = u.arbitrary::<Vec<Mail>>() else { return };
    let us = Identity::from_secret(&[1; 32]);
    let them = Identity::from_secret(&[2; 32]);
    let code = Code::new("7", [3, 4]);
    let mut pairing = Pairing::new(&code, us.clone(), "ann".into());
    let contact = Peer { name: "bob".into(), key: them.public() };
    let mut handshake = Handshake::new(us, contact, [5; 32]);
    for mail in mails {
        let known: Vec<&str> =
            pairing.posts().into_iter().chain(handshake.posts()).map(|(p, _)| p).collect();
        let phase = match &mail.phase {
            Ok(i) if !known.is_empty() => known[usize::from(*i) % known.len()].to_owned(),
            Ok(_) => String::new(),
            Err(text) => text.clone(),
        };
        pairing.on_mail(&phase, &mail.body, mail.unix_secs);
        handshake.on_mail(&phase, &mail.body, mail.unix_secs);
        let _ = (pairing.wants(), pairing.outcome(), handshake.wants(), handshake.outcome());
        let _ = handshake.their_hello();
    }
}
