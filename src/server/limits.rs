//! The rendezvous server's defences against floods, after WireGuard's cookie replies and QUIC's
//! address validation (RFC 9000 §8.1): a token bucket per source (hashed into a fixed table
//! with a secret key, so a flood from many addresses costs no memory), a budget of code claims per
//! source, quotas of live registrations and nameplates per source with fair
//! eviction when a pool is full, and stateless cookies that a sender must echo before the
//! server keeps anything for it under load.
//!
//! It owns these counters only: rooms and their members belong to `Server`, which asks here
//! before it admits anything and reports here what it admits and forgets. Every operation is
//! O(1) or O(log n) in what the server holds (a source's own entries, at most its quota, may
//! be moved); none scans a table.

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

/// A token bucket in two words of a slot: tokens spent below the burst (an `f64`'s bits; 0 is
/// full) and when (nanoseconds since the limits' epoch, plus one; 0 is never). `rate` tokens
/// come back a second, at most `burst` are saved.
fn take(spent: &mut u64, at: &mut u64, now: u64, rate: f64, burst: f64) -> bool {
    let refill = if *at == 0 { burst } else { now.saturating_sub(*at) as f64 / 1e9 * rate };
    let left = (f64::from_bits(*spent) - refill).max(0.0);
    *at = now;
    let allowed = left + 1.0 <= burst;
    *spent = if allowed { left + 1.0 } else { left }.to_bits();
    allowed
}

/// Words per slot of the rate table: requests spent and when, claims spent and when, and
/// when the source was last told it is limited.
const SLOT_WORDS: usize = 5;

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

/// An entry as the server's expiry queue names it: (expiry, room, name). The expiry is the one
/// it was filed under; a refresh since may have moved the registration's own later (the
/// server files it again when this one comes due).
pub type Entry = (Instant, String, String);

/// Why a new entry cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// The source holds its quota in this pool.
    SourceQuota(usize),
    /// The pool is full and nobody holds more than a fair share.
    Full,
}

/// The entries one source holds in one pool, in order (soonest expiry first). A sorted `Vec`
/// rather than a `BTreeSet`: most sources hold one or two entries, where a B-tree's first node
/// alone takes about 700 bytes; inserting and removing move at most a source's quota of
/// entries (`SOURCE_MAX_REGISTRATIONS`), a bound that does not grow with the server.
#[derive(Debug, Default)]
struct Held(Vec<Entry>);

impl Held {
    /// Adds `entry`; false when it was already held.
    fn insert(&mut self, entry: Entry) -> bool {
        match self.0.binary_search(&entry) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, entry);
                true
            }
        }
    }

    /// Removes `entry`; false when it was not held.
    fn remove(&mut self, entry: &Entry) -> bool {
        match self.0.binary_search(entry) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }
}

/// The server's flood defences (see the module docs).
#[derive(Debug)]
pub struct Limits {
    /// `RATE_SLOTS` slots of `SLOT_WORDS` words, zeroed by the allocator (so a slot nobody
    /// used costs no memory) — several sources may share a slot; the secret key keeps anyone
    /// from choosing whose.
    slots: Vec<u64>,
    /// What slot times count from (the first tick).
    epoch: Option<Instant>,
    hash_key: (u64, u64),
    /// What each source holding anything holds, per pool, soonest expiry first.
    holders: HashMap<IpAddr, [Held; 2]>,
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
            slots: vec![0; RATE_SLOTS * SLOT_WORDS],
            epoch: None,
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
        self.epoch.get_or_insert(now);
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

    /// `now` as slot words count it: nanoseconds since the epoch, plus one.
    fn stamp(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch.unwrap_or(now)).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX - 1) + 1
    }

    /// The words of `source`'s slot.
    fn slot(&mut self, source: IpAddr) -> &mut [u64] {
        let mut hasher = DefaultHasher::new();
        self.hash_key.hash(&mut hasher);
        source.hash(&mut hasher);
        let index = usize::try_from(hasher.finish()).unwrap_or_default() % RATE_SLOTS;
        &mut self.slots[index * SLOT_WORDS..(index + 1) * SLOT_WORDS]
    }

    /// Spends one request of `source`'s budget; false when it has none left.
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        let now = self.stamp(now);
        let [spent, at, ..] = self.slot(source) else { return false };
        take(spent, at, now, SOURCE_RATE, SOURCE_BURST)
    }

    /// True at most once per `LIMIT_NOTICE_EVERY` for a source: tell it that it is limited.
    pub fn notice_due(&mut self, now: Instant, source: IpAddr) -> bool {
        let now = self.stamp(now);
        let [.., noticed] = self.slot(source) else { return false };
        let every = u64::try_from(LIMIT_NOTICE_EVERY.as_nanos()).unwrap_or(u64::MAX);
        let due = *noticed == 0 || now.saturating_sub(*noticed) >= every;
        if due {
            *noticed = now;
        }
        due
    }

    /// Spends one claim of `source`'s budget; false when it has none left.
    pub fn claim(&mut self, now: Instant, source: IpAddr) -> bool {
        let now = self.stamp(now);
        let [_, _, spent, at, _] = self.slot(source) else { return false };
        take(spent, at, now, SOURCE_CLAIM_RATE, SOURCE_CLAIM_BURST)
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
        self.holders.get(&source).map_or(0, |sets| sets[pool.index()].0.len())
    }

    /// Whether `source` may have one more entry in `pool`: `Ok(None)` when there is room,
    /// `Ok(Some(entry))` when the pool is full and `entry` (the first filed to expire of the
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
        let victim = self.holders.get(&holder).and_then(|sets| sets[pool.index()].0.first());
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
        let before = sets[pool.index()].0.len();
        if sets[pool.index()].insert(entry) {
            self.live[pool.index()] += 1;
            self.set_count(pool, source, before, before + 1);
        }
    }

    /// `source` no longer holds `entry` in `pool`.
    pub fn release(&mut self, pool: Pool, source: IpAddr, entry: &Entry) {
        let Some(sets) = self.holders.get_mut(&source) else { return };
        let before = sets[pool.index()].0.len();
        if !sets[pool.index()].remove(entry) {
            return;
        }
        if sets.iter().all(|held| held.0.is_empty()) {
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
