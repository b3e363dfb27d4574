//! Agreeing on a chat's keys before it starts, through posts left at the rendezvous server
//! (which relays them and learns nothing it could use):
//!
//! - **Pairing with a code** (`Pairing`): SPAKE2 in symmetric mode with the code as password;
//!   HKDF-SHA256 over the SPAKE2 key, salted with the transcript, gives one Fernet key per
//!   direction. Each side then posts its identity (name, public key, a signature over the
//!   transcript) sealed with its sending key: opening the other's proves both hold the same
//!   key (key confirmation). A wrong code, or a server that substitutes its own SPAKE2
//!   messages, fails here on both sides: "code mismatch", and the code is spent.
//! - **Reconnecting to a contact** (`Handshake`): fresh X25519 keys each run (so fresh
//!   session keys), the shared secret run through HKDF salted with a transcript of both
//!   ephemeral and both identity keys, and each side's signature over that transcript with
//!   its identity key, sealed under the new keys. A replayed old handshake cannot be opened
//!   under the new keys; a handshake completed by the holder of a key other than the one
//!   saved for the contact is a changed identity, refused.
//!
//! Pure: mail in, posts and an outcome out. No sockets, no clock; the IO side is `net::keying`.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity as SpakeIdentity, Password, Spake2};

use super::crypto::Cipher;
use crate::identity::{self, Identity};

/// Post phases.
pub mod phase {
    /// A SPAKE2 message.
    pub const PAKE: &str = "pake";
    /// Name, identity key and signature, sealed (pairing).
    pub const IDENTITY: &str = "identity";
    /// An ephemeral X25519 key (contact handshake).
    pub const HELLO: &str = "hello";
    /// A signature over the handshake, sealed (contact handshake).
    pub const AUTH: &str = "auth";
    /// A signed refusal, sealed: the other side's identity key is not the one we saved for it
    /// (contact handshake), so it learns why nothing happens.
    pub const REFUSED: &str = "refused";
}

/// The words codes are made of: 256 of them, so each word carries 8 bits.
pub fn words() -> Vec<&'static str> {
    include_str!("../../assets/words.txt").lines().filter(|w| !w.is_empty()).collect()
}

/// A pairing code: the nameplate the server knows, and two words it never sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The server's nameplate (a number).
    pub nameplate: String,
    /// The secret words.
    pub words: [String; 2],
}

/// A code that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a pairing code: it looks like 7-apple-banjo (a number and two words from \
     the list); check the spelling with your friend"
)]
pub struct CodeError(pub String);

impl Code {
    /// A code for `nameplate` with two words picked from `random` (two bytes).
    pub fn new(nameplate: &str, random: [u8; 2]) -> Self {
        let list = words();
        let pick = |b: u8| list[usize::from(b) % list.len()].to_owned();
        Self { nameplate: nameplate.to_owned(), words: [pick(random[0]), pick(random[1])] }
    }

    /// Reads a typed code: case and surrounding space do not matter, spaces may stand for
    /// dashes, and the words must be in the list.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let normal = text.trim().to_lowercase().replace(' ', "-");
        let error = || CodeError(text.trim().to_owned());
        let mut parts = normal.split('-').filter(|p| !p.is_empty());
        let (Some(nameplate), Some(first), Some(second), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(error());
        };
        let list = words();
        if !nameplate.chars().all(|c| c.is_ascii_digit())
            || nameplate.len() > 6
            || !list.contains(&first)
            || !list.contains(&second)
        {
            return Err(error());
        }
        Ok(Self { nameplate: nameplate.to_owned(), words: [first.to_owned(), second.to_owned()] })
    }

    /// The words of the list that begin with `prefix`.
    pub fn words_starting(prefix: &str) -> Vec<&'static str> {
        words().into_iter().filter(|w| w.starts_with(prefix)).collect()
    }

    /// Tab completion of a code being typed: the word under the cursor (the last one) is
    /// completed as far as the list allows; a finished first word gets its dash.
    pub fn complete(typed: &str) -> Completion {
        let normal = typed.to_lowercase().replace(' ', "-");
        let Some((head, last)) = normal.rsplit_once('-') else { return Completion::Nothing };
        let words_before = head.split('-').filter(|p| !p.is_empty()).count();
        if words_before == 0 || words_before > 2 {
            return Completion::Nothing;
        }
        let candidates = Self::words_starting(last);
        let common = match candidates.as_slice() {
            [] => return Completion::Nothing,
            [only] => {
                let dash = if words_before == 1 { "-" } else { "" };
                return Completion::Line(format!("{head}-{only}{dash}"));
            }
            [first, rest @ ..] => rest.iter().fold(first.to_string(), |common, w| {
                common.chars().zip(w.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a).collect()
            }),
        };
        if common.len() > last.len() {
            Completion::Line(format!("{head}-{common}"))
        } else {
            Completion::Choices(candidates)
        }
    }
}

/// What Tab does to a code being typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Replace the line with this.
    Line(String),
    /// Several words fit: show them.
    Choices(Vec<&'static str>),
    /// Nothing fits.
    Nothing,
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.nameplate, self.words[0], self.words[1])
    }
}

/// Our posts on their way to the server: each is repeated until the server says it holds
/// that very body (UDP loses requests and answers alike).
#[derive(Debug, Default)]
pub struct Outbox {
    held: HashMap<&'static str, String>,
    sent: HashMap<&'static str, String>,
}

impl Outbox {
    /// Of `posts`, those the server does not hold yet (remembered as sent).
    pub fn due(&mut self, posts: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
        let due: Vec<_> = posts.into_iter().filter(|(p, b)| self.held.get(p) != Some(b)).collect();
        for (phase, body) in &due {
            self.sent.insert(phase, body.clone());
        }
        due
    }

    /// The server holds what we last sent under `phase`.
    pub fn posted(&mut self, phase: &str) {
        if let Some((phase, body)) = self.sent.remove_entry(phase) {
            self.held.insert(phase, body);
        }
    }

    /// Whether the server holds all of `posts`.
    pub fn holds(&self, posts: &[(&'static str, String)]) -> bool {
        posts.iter().all(|(phase, body)| self.held.get(phase) == Some(body))
    }
}

/// The other side, as proven by the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Their name.
    pub name: String,
    /// Their identity key.
    pub key: [u8; 32],
}

/// What a finished handshake gives the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    /// Key we seal with.
    pub send: [u8; 32],
    /// Key we open with.
    pub recv: [u8; 32],
    /// Who is on the other side.
    pub peer: Peer,
}

impl Agreed {
    /// The chat's cipher.
    pub fn cipher(&self) -> Cipher {
        Cipher::from_secrets(&self.send, &self.recv)
    }
}

/// Why no keys were agreed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The two sides did not use the same code (or someone in the middle guessed wrong).
    #[error(
        "code mismatch: your friend typed a different code, or someone tried to guess it. \
         The code is used up; ask for a new one"
    )]
    CodeMismatch,
    /// The other side's name holds an invisible or control character (the sentence says which).
    #[error("your friend's p2pchat gave a name that cannot be saved as a contact: {0}")]
    BadName(String),
    /// The contact's handshake was signed by a key other than the one saved for them.
    #[error(
        "WARNING: {name} answered with a different identity key than the one you saved, so \
         nothing was sent: either {name} reinstalled p2pchat or someone is impersonating \
         {name}; if you are sure it is {name}, pair again with a code (p2pchat chat --server \
         ADDR)"
    )]
    IdentityChanged {
        /// The contact.
        name: String,
    },
    /// The contact refused us (signed with the key we saved for them): the key they saved for
    /// us is not ours.
    #[error(
        "WARNING: {name} refused to connect because {name}'s p2pchat saved a different identity \
         key for you (did you reinstall p2pchat or lose identity.key?), so nothing was sent; \
         to go on, pair with {name} again with a code (p2pchat chat --server ADDR)"
    )]
    RefusedByContact {
        /// The contact.
        name: String,
    },
}

/// The sealed identity a pairing side posts.
#[derive(Serialize, Deserialize)]
struct IdentityPost {
    name: String,
    key: String,
    sig: String,
}

/// The sealed signature a contact handshake side posts (over the transcript, to prove itself;
/// or over the refusal label and the transcript, to refuse).
#[derive(Serialize, Deserialize)]
struct AuthPost {
    sig: String,
}

/// What a refusal signs, before the transcript.
const REFUSAL_LABEL: &[u8] = b"p2pchat refused v1";

/// Hash of a labelled sequence of parts, each length-prefixed so parts cannot run together.
fn transcript(label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(label);
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// One key per direction from a shared secret: "first" is the side whose public message sorts
/// first.
fn direction_keys(secret: &[u8], salt: &[u8; 32], we_are_first: bool) -> ([u8; 32], [u8; 32]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), secret);
    let (mut first_to_second, mut second_to_first) = ([0u8; 32], [0u8; 32]);
    // Expanding 32 bytes from SHA-256 HKDF cannot fail (the limit is 255 × 32).
    let _ = hk.expand(b"p2pchat v1 first to second", &mut first_to_second);
    let _ = hk.expand(b"p2pchat v1 second to first", &mut second_to_first);
    if we_are_first {
        (first_to_second, second_to_first)
    } else {
        (second_to_first, first_to_second)
    }
}

/// Keys agreed so far and what they were agreed over.
struct Derived {
    cipher: Cipher,
    send: [u8; 32],
    recv: [u8; 32],
    transcript: [u8; 32],
    /// Our sealed post for the second step.
    post: String,
}

/// Pairing with a code (see the module docs).
pub struct Pairing {
    identity: Identity,
    name: String,
    spake: Option<Spake2<Ed25519Group>>,
    our_message: Vec<u8>,
    derived: Option<Derived>,
    outcome: Option<Result<Agreed, Failure>>,
}

/// The SPAKE2 identity string: both sides use the same one (symmetric mode).
const PAIRING_ID: &[u8] = b"p2pchat pairing v1";

impl Pairing {
    /// Starts pairing with `code` as `name` (draws the SPAKE2 secret from the OS).
    pub fn new(code: &Code, identity: Identity, name: String) -> Self {
        let password = Password::new(code.to_string().into_bytes());
        let (spake, our_message) =
            Spake2::<Ed25519Group>::start_symmetric(&password, &SpakeIdentity::new(PAIRING_ID));
        Self { identity, name, spake: Some(spake), our_message, derived: None, outcome: None }
    }

    /// What we must have posted by now: (phase, body). `unix_secs` stamps sealed posts.
    pub fn posts(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(phase::PAKE, STANDARD.encode(&self.our_message))];
        if let Some(derived) = &self.derived {
            out.push((phase::IDENTITY, derived.post.clone()));
        }
        out
    }

    /// The phase to fetch next, until there is an outcome.
    pub fn wants(&self) -> Option<&'static str> {
        match (&self.outcome, &self.derived) {
            (Some(_), _) => None,
            (None, None) => Some(phase::PAKE),
            (None, Some(_)) => Some(phase::IDENTITY),
        }
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Result<Agreed, Failure>> {
        self.outcome.as_ref()
    }

    /// Takes in what the other side posted under `phase`. `unix_secs` stamps our sealed post.
    pub fn on_mail(&mut self, phase: &str, body: &str, unix_secs: u64) {
        if self.outcome.is_some() {
            return;
        }
        match phase {
            phase::PAKE => self.on_pake(body, unix_secs),
            phase::IDENTITY => self.on_identity(body),
            _ => {}
        }
    }

    fn on_pake(&mut self, body: &str, unix_secs: u64) {
        let Ok(theirs) = STANDARD.decode(body) else { return };
        if theirs == self.our_message {
            return; // our own message reflected back: not the other side
        }
        let Some(spake) = self.spake.take() else { return };
        let Ok(key) = spake.finish(&theirs) else {
            // Not a SPAKE2 message of this group: no key can come of it.
            self.outcome = Some(Err(Failure::CodeMismatch));
            return;
        };
        let we_are_first = self.our_message < theirs;
        let (first, second) =
            if we_are_first { (&self.our_message, &theirs) } else { (&theirs, &self.our_message) };
        let transcript = transcript(b"p2pchat pairing transcript v1", &[first, second]);
        let (send, recv) = direction_keys(&key, &transcript, we_are_first);
        let cipher = Cipher::from_secrets(&send, &recv);
        let signed = [b"p2pchat identity v1".as_slice(), &transcript].concat();
        let post = IdentityPost {
            name: self.name.clone(),
            key: identity::encode_key(&self.identity.public()),
            sig: STANDARD.encode(self.identity.sign(&signed)),
        };
        let sealed = cipher.seal(&serde_json::to_vec(&post).unwrap_or_default(), unix_secs);
        self.derived = Some(Derived { cipher, send, recv, transcript, post: sealed });
    }

    fn on_identity(&mut self, body: &str) {
        let Some(derived) = &self.derived else { return };
        // Under the agreed key or not at all: anything else means the keys differ.
        let Ok(plain) = derived.cipher.open_whenever(body) else {
            self.outcome = Some(Err(Failure::CodeMismatch));
            return;
        };
        let signed = [b"p2pchat identity v1".as_slice(), &derived.transcript].concat();
        let peer = serde_json::from_slice::<IdentityPost>(&plain).ok().and_then(|post| {
            let key: [u8; 32] = STANDARD.decode(&post.key).ok()?.try_into().ok()?;
            let sig = STANDARD.decode(&post.sig).ok()?;
            identity::verify(&key, &signed, &sig).then_some(Peer { name: post.name, key })
        });
        self.outcome = Some(match peer {
            // A name that could pass for another is not taken into our contacts.
            Some(peer) => match crate::text::name_problem(&peer.name) {
                Some(problem) => Err(Failure::BadName(problem)),
                None => Ok(Agreed { send: derived.send, recv: derived.recv, peer }),
            },
            None => Err(Failure::CodeMismatch),
        });
    }
}

/// Reconnecting to a saved contact (see the module docs).
pub struct Handshake {
    identity: Identity,
    contact: Peer,
    secret: [u8; 32],
    ours: [u8; 32],
    /// Their ephemeral key and the identity key they announced with it.
    theirs: Option<([u8; 32], [u8; 32])>,
    derived: Option<Derived>,
    /// Our post refuses them (their identity key is not the one we saved).
    refusing: bool,
    outcome: Option<Result<Agreed, Failure>>,
}

impl Handshake {
    /// Starts a handshake with `contact`; `secret` is this run's ephemeral X25519 secret
    /// (random bytes).
    pub fn new(identity: Identity, contact: Peer, secret: [u8; 32]) -> Self {
        let ours = x25519_dalek::x25519(secret, x25519_dalek::X25519_BASEPOINT_BYTES);
        Self {
            identity,
            contact,
            secret,
            ours,
            theirs: None,
            derived: None,
            refusing: false,
            outcome: None,
        }
    }

    /// What we must have posted by now: (phase, body). The hello is our ephemeral key and
    /// our identity key; then our signature, or our refusal.
    pub fn posts(&self) -> Vec<(&'static str, String)> {
        let hello = [self.ours, self.identity.public()].concat();
        let mut out = vec![(phase::HELLO, STANDARD.encode(hello))];
        if let Some(derived) = &self.derived {
            let phase = if self.refusing { phase::REFUSED } else { phase::AUTH };
            out.push((phase, derived.post.clone()));
        }
        out
    }

    /// The phases to fetch, until there is an outcome: their hello always (a restart changes
    /// it), their signature or refusal once we have keys.
    pub fn wants(&self) -> Vec<&'static str> {
        match (&self.outcome, &self.derived) {
            (Some(_), _) => Vec::new(),
            (None, None) => vec![phase::HELLO],
            (None, Some(_)) => vec![phase::HELLO, phase::AUTH, phase::REFUSED],
        }
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Result<Agreed, Failure>> {
        self.outcome.as_ref()
    }

    /// The other side's hello, as posted, once we have one.
    pub fn their_hello(&self) -> Option<String> {
        self.theirs.map(|(eph, id)| STANDARD.encode([eph, id].concat()))
    }

    /// Takes in what the other side posted under `phase`. `unix_secs` stamps our sealed post.
    pub fn on_mail(&mut self, phase: &str, body: &str, unix_secs: u64) {
        if self.outcome.is_some() {
            return;
        }
        match phase {
            phase::HELLO => self.on_hello(body, unix_secs),
            phase::AUTH => self.on_auth(body),
            phase::REFUSED => self.on_refused(body),
            _ => {}
        }
    }

    fn on_hello(&mut self, body: &str, unix_secs: u64) {
        let Some(bytes) = STANDARD.decode(body).ok().filter(|b| b.len() == 64) else { return };
        let mut eph = [0u8; 32];
        let mut id = [0u8; 32];
        eph.copy_from_slice(&bytes[..32]);
        id.copy_from_slice(&bytes[32..]);
        if self.theirs == Some((eph, id)) || eph == self.ours {
            return;
        }
        let shared = x25519_dalek::x25519(self.secret, eph);
        if shared == [0u8; 32] {
            return; // a low-order point: no secret in it
        }
        self.theirs = Some((eph, id));
        let we_are_first = self.ours < eph;
        let [e1, e2] = if we_are_first { [self.ours, eph] } else { [eph, self.ours] };
        let mine = self.identity.public();
        let [k1, k2] = if mine <= id { [mine, id] } else { [id, mine] };
        let transcript = transcript(b"p2pchat contact transcript v1", &[&e1, &e2, &k1, &k2]);
        let (send, recv) = direction_keys(&shared, &transcript, we_are_first);
        let cipher = Cipher::from_secrets(&send, &recv);
        // Not the key we saved: no signature that would let them in, but a signed refusal, so
        // that they learn why (they may be our contact after a reinstall).
        self.refusing = id != self.contact.key;
        let label = if self.refusing { REFUSAL_LABEL } else { b"p2pchat auth v1".as_slice() };
        let signed = [label, &transcript].concat();
        let post = AuthPost { sig: STANDARD.encode(self.identity.sign(&signed)) };
        let sealed = cipher.seal(&serde_json::to_vec(&post).unwrap_or_default(), unix_secs);
        self.derived = Some(Derived { cipher, send, recv, transcript, post: sealed });
        if self.refusing {
            self.outcome = Some(Err(Failure::IdentityChanged { name: self.contact.name.clone() }));
        }
    }

    /// Their refusal: they hold a different key for us. Believed only when signed by the key
    /// we saved for them, under this handshake's keys (so nobody else can end it this way).
    fn on_refused(&mut self, body: &str) {
        let Some(derived) = &self.derived else { return };
        let Ok(plain) = derived.cipher.open_whenever(body) else { return };
        let Ok(post) = serde_json::from_slice::<AuthPost>(&plain) else { return };
        let signed = [REFUSAL_LABEL, &derived.transcript].concat();
        if STANDARD
            .decode(&post.sig)
            .is_ok_and(|sig| identity::verify(&self.contact.key, &signed, &sig))
        {
            self.outcome = Some(Err(Failure::RefusedByContact { name: self.contact.name.clone() }));
        }
    }

    fn on_auth(&mut self, body: &str) {
        let (Some(derived), Some((_, announced))) = (&self.derived, self.theirs) else { return };
        // Sealed under other keys: an old run's post, or one meant for a newer hello. Wait.
        let Ok(plain) = derived.cipher.open_whenever(body) else { return };
        let Ok(post) = serde_json::from_slice::<AuthPost>(&plain) else { return };
        let signed = [b"p2pchat auth v1".as_slice(), &derived.transcript].concat();
        let proven =
            STANDARD.decode(&post.sig).is_ok_and(|sig| identity::verify(&announced, &signed, &sig));
        if !proven {
            return; // not signed by the key it announced: forged; wait for the real one
        }
        // The holder of `announced` completed the handshake: it is our contact only if that is
        // the key we saved.
        self.outcome = Some(if announced == self.contact.key {
            Ok(Agreed { send: derived.send, recv: derived.recv, peer: self.contact.clone() })
        } else {
            Err(Failure::IdentityChanged { name: self.contact.name.clone() })
        });
    }
}

#[cfg(test)]
mod tests;
