//! The Fernet layer: sealing an envelope into a token and opening a token back, with our own
//! clock-skew policy. Owns the keys — one shared key (manual mode), or one per direction
//! (derived when pairing); knows nothing of JSON, peers or sockets. The wall-clock time
//! is passed in, so the state machine above stays deterministic. (The IV comes from the OS RNG
//! inside the `fernet` crate; it influences no protocol decision.)

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use fernet::Fernet;

use crate::consts::TOKEN_MAX_SKEW_SECS;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not a Fernet token made with our key (wrong key, forged, corrupted or truncated).
    #[error("token does not authenticate with this key")]
    Unauthentic,
    /// Authentic, but its timestamp is outside the accepted window (a replay or a wrong clock).
    #[error("token timestamp is {skew_secs} s away from our clock")]
    Stale {
        /// Token time minus our time, in seconds (saturating).
        skew_secs: i64,
    },
}

/// A key that is not a Fernet key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Fernet key: expected 44 characters of URL-safe base64 (32 bytes)")]
pub struct KeyError;

/// Which conversation a token belongs to, sent in clear before it (`TAG.token`), so that a
/// socket carrying many conversations opens each datagram with one key, not all of them: 6
/// bytes of HMAC-SHA256 of a fixed label under the sealing key, in URL-safe base64 (8
/// characters). Everyone sealing with a key tags alike; the tag reveals nothing of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub [u8; 8]);

impl Tag {
    /// The tag of the key `key` (a Fernet key's text).
    fn of(key: &str) -> Self {
        use hmac::{Hmac, Mac};
        let bytes = URL_SAFE.decode(key.trim()).unwrap_or_default();
        // HMAC takes keys of any length.
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&bytes)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"p2pchat conversation tag v1");
        let digest = mac.finalize().into_bytes();
        let mut text = [0u8; 8];
        let written = URL_SAFE_NO_PAD.encode_slice(&digest[..6], &mut text);
        debug_assert_eq!(written, Ok(8));
        Self(text)
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Fernet keys ready to seal and open tokens: `send` seals, `recv` opens.
pub struct Cipher {
    send: Fernet,
    recv: Fernet,
    send_tag: Tag,
    recv_tag: Tag,
}

impl Cipher {
    /// Parses a URL-safe base64 Fernet key (the format `p2pchat keygen` and Python print),
    /// used both ways.
    pub fn from_key(key: &str) -> Result<Self, KeyError> {
        Self::directional(key, key)
    }

    /// One key to seal with and another to open with (each direction its own).
    pub fn directional(send: &str, recv: &str) -> Result<Self, KeyError> {
        let fernet = |key: &str| Fernet::new(key.trim()).ok_or(KeyError);
        Ok(Self {
            send: fernet(send)?,
            recv: fernet(recv)?,
            send_tag: Tag::of(send),
            recv_tag: Tag::of(recv),
        })
    }

    /// The tag our tokens carry (see `Tag`).
    pub fn send_tag(&self) -> Tag {
        self.send_tag
    }

    /// The tag of tokens we can open.
    pub fn recv_tag(&self) -> Tag {
        self.recv_tag
    }

    /// Keys from 32 raw bytes each (as a key derivation gives them).
    pub fn from_secrets(send: &[u8; 32], recv: &[u8; 32]) -> Self {
        let key = |bytes: &[u8; 32]| base64::engine::general_purpose::URL_SAFE.encode(bytes);
        // A Fernet key is any 32 bytes in URL-safe base64, so these cannot fail.
        Self::directional(&key(send), &key(recv)).unwrap_or_else(|KeyError| unreachable!())
    }

    /// Seals `plaintext` into a token stamped with `unix_secs`.
    pub fn seal(&self, plaintext: &[u8], unix_secs: u64) -> String {
        self.send.encrypt_at_time(plaintext, unix_secs)
    }

    /// Opens a token: authenticates it first, then applies our skew window in both directions.
    pub fn open(&self, token: &str, unix_secs: u64) -> Result<Vec<u8>, OpenError> {
        let plain = self.open_whenever(token)?;
        let stamped = token_timestamp(token).ok_or(OpenError::Unauthentic)?;
        let skew = i128::from(stamped) - i128::from(unix_secs);
        if skew.unsigned_abs() > u128::from(TOKEN_MAX_SKEW_SECS) {
            let skew_secs =
                i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
            return Err(OpenError::Stale { skew_secs });
        }
        Ok(plain)
    }

    /// Opens a token whatever its timestamp says: for handshake messages, whose freshness is
    /// proven by what they are bound to, not by the clock (so a wrong clock cannot stop a
    /// pairing).
    pub fn open_whenever(&self, token: &str) -> Result<Vec<u8>, OpenError> {
        let stamped = token_timestamp(token).ok_or(OpenError::Unauthentic)?;
        // The crate rejects tokens more than 60 s in the future; we authenticate "as of" the
        // token's own time and judge skew ourselves, so a peer with a fast clock gets a precise
        // reason, not "wrong key". The clamp keeps the crate's `as_of + 60` from overflowing
        // (and still satisfies its check for tokens stamped in the last minute of u64 time).
        let as_of = stamped.min(u64::MAX - 60);
        self.recv.decrypt_at_time(token, None, as_of).map_err(|_| OpenError::Unauthentic)
    }
}

/// A new random Fernet key.
pub fn generate_key() -> String {
    Fernet::generate_key()
}

/// The timestamp field of a Fernet token (version byte 0x80, then 8 bytes big-endian), read
/// from its first 12 base64 characters without decoding the rest.
fn token_timestamp(token: &str) -> Option<u64> {
    let head = URL_SAFE_NO_PAD.decode(token.get(..12)?).ok()?;
    if head.first() != Some(&0x80) {
        return None;
    }
    Some(u64::from_be_bytes(head.get(1..9)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000;

    fn cipher() -> Cipher {
        Cipher::from_key(&generate_key()).unwrap()
    }

    #[test]
    fn a_key_has_one_tag_and_each_direction_its_own() {
        let (a, b) = (generate_key(), generate_key());
        let shared = Cipher::from_key(&a).unwrap();
        assert_eq!(shared.send_tag(), shared.recv_tag());
        assert_eq!(Cipher::from_key(&a).unwrap().send_tag(), shared.send_tag());
        let (ours, theirs) =
            (Cipher::directional(&a, &b).unwrap(), Cipher::directional(&b, &a).unwrap());
        assert_eq!(ours.send_tag(), theirs.recv_tag());
        assert_eq!(ours.recv_tag(), theirs.send_tag());
        assert_ne!(ours.send_tag(), ours.recv_tag());
        assert_eq!(ours.send_tag().as_str().len(), 8);
    }

    #[test]
    fn round_trip_within_window() {
        let c = cipher();
        let token = c.seal(b"hello", NOW);
        assert!(token.starts_with("gAAAAA"));
        assert_eq!(c.open(&token, NOW + 5).unwrap(), b"hello");
        assert_eq!(c.open(&token, NOW - 5).unwrap(), b"hello");
    }

    #[test]
    fn wrong_key_and_garbage_are_unauthentic() {
        let token = cipher().seal(b"hello", NOW);
        assert_eq!(cipher().open(&token, NOW), Err(OpenError::Unauthentic));
        for junk in ["", "gAAAAA", "gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not base64 at all!!"] {
            assert_eq!(cipher().open(junk, NOW), Err(OpenError::Unauthentic), "{junk:?}");
        }
        let mut flipped = token.into_bytes();
        let mid = flipped.len() / 2;
        flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(cipher().open(&flipped, NOW), Err(OpenError::Unauthentic));
    }

    #[test]
    fn old_and_future_tokens_are_stale() {
        let c = cipher();
        let old = c.seal(b"x", NOW - 1000);
        assert_eq!(c.open(&old, NOW), Err(OpenError::Stale { skew_secs: -1000 }));
        let future = c.seal(b"x", NOW + 1000);
        assert_eq!(c.open(&future, NOW), Err(OpenError::Stale { skew_secs: 1000 }));
    }

    #[test]
    fn extreme_timestamps_never_panic() {
        let c = cipher();
        for ts in [0, 1, u64::MAX, u64::MAX - 1, u64::MAX - 60, i64::MAX as u64, u64::MAX / 2] {
            let token = c.seal(b"x", ts);
            assert!(matches!(c.open(&token, NOW), Err(OpenError::Stale { .. })), "{ts}");
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(Cipher::from_key("short").is_err());
        assert!(Cipher::from_key(&format!("{}=", "A".repeat(43))).is_ok());
        assert!(Cipher::from_key(&format!(" {} \n", generate_key())).is_ok());
    }
}
