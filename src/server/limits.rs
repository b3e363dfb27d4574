//! The rendezvous server's defences against floods, after WireGuard's cookie replies and QUIC's
//! address validation (RFC 9000 §8.1): a token bucket per source (hashed into a fixed table
//! with a secret key, so a flood from many addresses costs no memory), a budget of code claims per
//! source, quotas of live registrations and nameplates per source with fair
//! eviction when a pool is full, and stateless cookies that a sender must echo before the
//! server keeps anything for it under load.
//!
//! It owns these counters only: rooms and their members belong to `Server`, which asks here
//! before it admits anything and reports here what it admits and forgets. Every operation is
//! O(1) or O(log n) in what the server holds; none scans a table.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::consts::{
    COOKIE_LOAD_PER_SEC, COOKIE_ROTATE, LIMIT_NOTICE_EVERY, MAX_NAMEPLATES, MAX_REGISTRATIONS,
    RATE_SLOTS, SOURCE_BURST, SOURCE_CLAIM_BURST, SOURCE_CLAIM_RATE, SOURCE_MAX_NAMEPLATES,
    SOURCE_MAX_REGISTRATIONS, SOURCE_RATE,
};

/// Who a quota belongs to: an IPv4 address, or an IPv6 /64 (one subscriber's prefix; a host
/// picks any address in it at will).
pub fn source_of(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V4(ip) => IpAddr::V4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = ip.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved. Starts full.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Tokens spent below `burst` at `at` (0 = full); a fresh bucket is full.
    spent: f64,
    at: Option<Instant>,
}

impl Bucket {
    /// Takes a token if there is one.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let refill =
            self.at.map_or(burst, |at| now.saturating_duration_since(at).as_secs_f64() * rate);
        let spent = (self.spent - refill).max(0.0);
        self.at = Some(now);
        if spent + 1.0 <= burst {
            self.spent = spent + 1.0;
            true
        } else {
            self.spent = spent;
            false
        }
    }
}

/// One slot of the rate table (several sources may share one; the secret key keeps anyone
/// from choosing whose).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    requests: Bucket,
    claims: Bucket,
    noticed: Option<Instant>,
}

/// The two pools of entries the server holds, each with its own capacity and quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Registrations in rooms.
    Rooms,
    /// Nameplates and the members in them.
    Nameplates,
}

impl Pool {
    const ALL: [Self; 2] = [Self::Rooms, Self::Nameplates];

    fn index(self) -> usize {
        match self {
            Self::Rooms => 0,
            Self::Nameplates => 1,
        }
    }

    fn capacity(self) -> usize {
        match self {
            Self::Rooms => MAX_REGISTRATIONS,
            Self::Nameplates => MAX_NAMEPLATES,
        }
    }

    fn per_source(self) -> usize {
        match self {
            Self::Rooms => SOURCE_MAX_REGISTRATIONS,
            Self::Nameplates => SOURCE_MAX_NAMEPLATES,
        }
    }
}

/// An entry as the server's expiry queue names it: (expiry, room, name).
pub type Entry = (Instant, String, String);

/// Why a new entry cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// The source holds its quota in this pool.
    SourceQuota(usize),
    /// The pool is full and nobody holds more than a fair share.
    Full,
}

/// The server's flood defences (see the module docs).
#[derive(Debug)]
pub struct Limits {
    slots: Vec<Slot>,
    hash_key: (u64, u64),
    /// What each source holding anything holds, per pool, soonest expiry first.
    holders: HashMap<IpAddr, [BTreeSet<Entry>; 2]>,
    /// (how many, who) per pool: the biggest holder is the last.
    biggest: [BTreeSet<(usize, IpAddr)>; 2],
    live: [usize; 2],
    secrets: [[u8; 64]; 2],
    /// When the secret last changed (`None` before the first tick).
    rotated: Option<Instant>,
    /// The second admissions are being counted in, its count so far, and the previous
    /// second's count.
    window: (Option<Instant>, u32, u32),
}

impl Limits {
    /// Fresh limits, with secrets drawn from `rng`.
    pub fn new(rng: &mut impl Rng) -> Self {
        let mut secrets = [[0u8; 64]; 2];
        rng.fill_bytes(&mut secrets[0]);
        rng.fill_bytes(&mut secrets[1]);
        Self {
            slots: vec![Slot::default(); RATE_SLOTS],
            hash_key: (rng.next_u64(), rng.next_u64()),
            holders: HashMap::new(),
            biggest: [BTreeSet::new(), BTreeSet::new()],
            live: [0, 0],
            secrets,
            rotated: None,
            window: (None, 0, 0),
        }
    }

    /// Advances the clocks: a new cookie secret every `COOKIE_ROTATE`, the admission counter
    /// every second.
    pub fn tick(&mut self, now: Instant, rng: &mut impl Rng) {
        let rotated = *self.rotated.get_or_insert(now);
        if now.saturating_duration_since(rotated) >= COOKIE_ROTATE {
            self.secrets[1] = self.secrets[0];
            rng.fill_bytes(&mut self.secrets[0]);
            self.rotated = Some(now);
        }
        let (start, count, _) = self.window;
        let start = start.unwrap_or(now);
        match now.saturating_duration_since(start).as_secs() {
            0 => self.window.0 = Some(start),
            1 => self.window = (Some(now), 0, count),
            _ => self.window = (Some(now), 0, 0),
        }
    }

    fn slot(&mut self, source: IpAddr) -> &mut Slot {
        let mut hasher = DefaultHasher::new();
        self.hash_key.hash(&mut hasher);
        source.hash(&mut hasher);
        // The table's length is a power of two; the low bits of a keyed hash pick the slot.
        let index = usize::try_from(hasher.finish()).unwrap_or_default() % self.slots.len();
        &mut self.slots[index]
    }

    /// Spends one request of `source`'s budget; false when it has none left.
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        self.slot(source).requests.take(now, SOURCE_RATE, SOURCE_BURST)
    }

    /// True at most once per `LIMIT_NOTICE_EVERY` for a source: tell it that it is limited.
    pub fn notice_due(&mut self, now: Instant, source: IpAddr) -> bool {
        let slot = self.slot(source);
        let due =
            slot.noticed.is_none_or(|at| now.saturating_duration_since(at) >= LIMIT_NOTICE_EVERY);
        if due {
            slot.noticed = Some(now);
        }
        due
    }

    /// Spends one claim of `source`'s budget; false when it has none left.
    pub fn claim(&mut self, now: Instant, source: IpAddr) -> bool {
        self.slot(source).claims.take(now, SOURCE_CLAIM_RATE, SOURCE_CLAIM_BURST)
    }

    /// Counts one admission (a new entry), for `under_load`.
    pub fn admitted(&mut self) {
        self.window.1 = self.window.1.saturating_add(1);
    }

    /// Under load: many admissions a second, or a pool half full. New entries then need a
    /// cookie.
    pub fn under_load(&self) -> bool {
        let (_, now, before) = self.window;
        now.max(before) > COOKIE_LOAD_PER_SEC
            || Pool::ALL.iter().any(|p| self.live[p.index()] * 2 >= p.capacity())
    }

    fn mac(secret: &[u8; 64], from: SocketAddr) -> Hmac<Sha256> {
        // A key of SHA-256's block size, used as it is.
        let mut mac = <Hmac<Sha256> as KeyInit>::new(secret.into());
        match from.ip() {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        mac.update(&from.port().to_be_bytes());
        mac
    }

    /// The cookie for `from`: 16 bytes of HMAC-SHA256 of its address and port under the
    /// current secret, base64url. Whoever sends it back received it at that address.
    pub fn cookie(&self, from: SocketAddr) -> String {
        let tag = Self::mac(&self.secrets[0], from).finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag[..16])
    }

    /// Whether `cookie` is one we gave `from` under the current or the previous secret
    /// (compared in constant time).
    pub fn cookie_ok(&self, from: SocketAddr, cookie: Option<&str>) -> bool {
        let Some(cookie) = cookie else { return false };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cookie) else {
            return false;
        };
        tag.len() == 16
            && self
                .secrets
                .iter()
                .any(|secret| Self::mac(secret, from).verify_truncated_left(&tag).is_ok())
    }

    fn held(&self, pool: Pool, source: IpAddr) -> usize {
        self.holders.get(&source).map_or(0, |sets| sets[pool.index()].len())
    }

    /// Whether `source` may have one more entry in `pool`: `Ok(None)` when there is room,
    /// `Ok(Some(entry))` when the pool is full and `entry` (the soonest to expire of the
    /// biggest holder, who holds at least two more than `source`) must go first.
    pub fn room_for(&self, pool: Pool, source: IpAddr) -> Result<Option<Entry>, NoRoom> {
        let held = self.held(pool, source);
        if held >= pool.per_source() {
            return Err(NoRoom::SourceQuota(pool.per_source()));
        }
        if self.live[pool.index()] < pool.capacity() {
            return Ok(None);
        }
        let Some(&(most, holder)) = self.biggest[pool.index()].last() else {
            return Err(NoRoom::Full);
        };
        if most < held + 2 {
            return Err(NoRoom::Full);
        }
        let victim = self.holders.get(&holder).and_then(|sets| sets[pool.index()].first());
        victim.cloned().map(Some).ok_or(NoRoom::Full)
    }

    fn set_count(&mut self, pool: Pool, source: IpAddr, before: usize, after: usize) {
        let biggest = &mut self.biggest[pool.index()];
        biggest.remove(&(before, source));
        if after > 0 {
            biggest.insert((after, source));
        }
    }

    /// `source` now holds `entry` in `pool`.
    pub fn hold(&mut self, pool: Pool, source: IpAddr, entry: Entry) {
        let sets = self.holders.entry(source).or_default();
        let before = sets[pool.index()].len();
        if sets[pool.index()].insert(entry) {
            self.live[pool.index()] += 1;
            self.set_count(pool, source, before, before + 1);
        }
    }

    /// `source` no longer holds `entry` in `pool`.
    pub fn release(&mut self, pool: Pool, source: IpAddr, entry: &Entry) {
        let Some(sets) = self.holders.get_mut(&source) else { return };
        let before = sets[pool.index()].len();
        if !sets[pool.index()].remove(entry) {
            return;
        }
        if sets.iter().all(BTreeSet::is_empty) {
            self.holders.remove(&source);
        }
        self.live[pool.index()] = self.live[pool.index()].saturating_sub(1);
        self.set_count(pool, source, before, before - 1);
    }

    /// Entries live in `pool`.
    pub fn live(&self, pool: Pool) -> usize {
        self.live[pool.index()]
    }

    /// Sources holding anything (bounded by the pools' capacities).
    pub fn holders(&self) -> usize {
        self.holders.len()
    }
}
