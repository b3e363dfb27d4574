//! Every tuning constant of p2pchat, with the reason for its value. Protocol and UI code import
//! from here instead of scattering numbers; nothing here does any work.

use std::time::Duration;

/// Largest datagram we send or accept: stays under the 1280-byte IPv6 minimum MTU with headers,
/// so no path has to fragment it (NATs often drop fragments).
pub const MAX_DATAGRAM_BYTES: usize = 1200;

/// Largest plaintext whose Fernet token fits `MAX_DATAGRAM_BYTES`: a token is base64 of
/// 57 bytes of framing plus the plaintext padded to the next multiple of 16.
pub const MAX_PLAINTEXT_BYTES: usize = 831;

/// Receive buffer size: the largest UDP payload, so an oversized datagram is seen whole and
/// counted as oversized instead of being silently truncated into something that might parse.
pub const RECV_BUFFER_BYTES: usize = 65_536;

/// Gap between punch probes while a hole is being punched (the seed sends "repeatedly").
pub const PUNCH_INTERVAL: Duration = Duration::from_millis(200);

/// How long fast punching lasts before we say there is no direct path yet and slow down.
pub const PUNCH_WINDOW: Duration = Duration::from_secs(10);

/// Gap between probes after the punch window: keeps trying, cheaply, so a peer that starts
/// later (or whose NAT recovers) still connects.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Consent freshness (after RFC 7675): an address that has not answered a ping of ours gets
/// probes at most at 0, 0.2, 0.6, 1.4, 3 … s, each gap twice the last (six in a punch window),
/// up to `PROBE_GAP_MAX`; one that answered is probed as the schedule asks. So an address
/// someone named for us to probe gets a few probes, not a stream.
pub const PROBE_GAP_FIRST: Duration = PUNCH_INTERVAL;

/// See `PROBE_GAP_FIRST`: a silent address gets one probe a minute at most.
pub const PROBE_GAP_MAX: Duration = Duration::from_secs(60);

/// Routes per peer whose probe schedule is remembered (its candidates, path and relays fit).
pub const CONSENT_ROUTES: usize = 16;

/// A listed peer that the server left out of this many of its answers to our registration in
/// a row is no longer listed: not probed, and forgotten once offline.
pub const LISTING_MISSES: u32 = 3;

/// Keepalive gap on an idle path: Linux conntrack drops an idle UDP mapping after 30 s, and the
/// peer needs to hear from us well within its offline threshold.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// A peer's path moves to a new source address only after the current one has been silent
/// this long: during punching the same peer is heard on several candidates at once, and the
/// path must not flap between them. Shorter than the keepalive, so a roaming peer is followed
/// by its next keepalive.
pub const PATH_STALE_AFTER: Duration = Duration::from_secs(2);

/// Default silence after which a peer is shown offline (three missed keepalives).
pub const OFFLINE_AFTER: Duration = Duration::from_secs(15);

/// How long the server keeps a registration that is not refreshed.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(60);

/// Refresh gap for our registration: three refreshes per TTL survive two lost datagrams.
pub const REGISTER_REFRESH: Duration = Duration::from_secs(20);

/// Refresh gap while no peer is online: every refresh brings the room's members again, so a
/// lost introduction delays the meeting by at most this.
pub const REGISTER_REFRESH_ALONE: Duration = Duration::from_secs(2);

/// First retry gap for an unanswered registration; doubles up to `REGISTER_RETRY_MAX`.
pub const REGISTER_RETRY: Duration = Duration::from_secs(1);

/// Longest gap between retries of an unanswered registration: on a lossy path a lost one
/// costs at most this, and a dead server gets one small datagram per this.
pub const REGISTER_RETRY_MAX: Duration = Duration::from_secs(4);

/// After this long without an answer from the server we tell the user once.
pub const SERVER_SILENT_NOTICE_AFTER: Duration = Duration::from_secs(5);

/// STUN retransmission timeout (RFC 5389 §7.2.1 recommends 500 ms, doubling).
pub const STUN_RTO: Duration = Duration::from_millis(500);

/// STUN transmissions before giving up: 0.5 + 1 + 2 s of waiting keeps the answer, or the clear
/// failure, within about 3.5 s.
pub const STUN_MAX_TRANSMITS: u32 = 3;

/// Fernet tokens older or newer than this (by their own timestamp) are refused: a live peer's
/// packets are seconds old, so anything outside is a replay or a badly wrong clock.
pub const TOKEN_MAX_SKEW_SECS: u64 = 120;

/// Message ids remembered to drop duplicates; bounded so a flood cannot grow memory.
pub const DEDUP_CAPACITY: usize = 4096;

/// Addresses remembered for the "undecryptable packets" notice, so it is shown once per source.
pub const NOTICE_SOURCES_CAPACITY: usize = 256;

/// Records loaded from the end of the log when a conversation opens: screens of scrollback
/// without reading a large file whole.
pub const HISTORY_PRELOAD_RECORDS: usize = 2000;

/// Records read per page when the view scrolls past the loaded window of history.
pub const HISTORY_PAGE_RECORDS: usize = 500;

/// Most history items held at once: scrolling further loads pages and lets the far end of the
/// window go, so memory stays flat however long the log is.
pub const HISTORY_WINDOW_ENTRIES: usize = 3000;

/// Screens of history kept ready beyond the view in the direction of scrolling, so holding
/// PgUp never waits at the window's edge.
pub const HISTORY_PREFETCH_SCREENS: usize = 3;

/// Deliveries remembered from newer pages while their messages are not loaded yet.
pub const HISTORY_LATE_DELIVERIES: usize = 10_000;

/// Unreadable log lines remembered by offset, to count each once.
pub const HISTORY_UNREADABLE_REMEMBERED: usize = 100_000;

/// Runtime worker threads for a chat (and the demo): the chat loop and the network actor share
/// one, so a message passes between them without waking another thread. On the 2-vCPU machine in
/// BENCHMARKS.md one worker gave nearly twice the acknowledged throughput of two, at the same
/// one-way latency. While the log is read, the worker's other tasks move to another thread.
pub const CHAT_RUNTIME_WORKERS: usize = 1;

/// Capacity of the actor's event channel towards the UI.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// Capacity of the UI's command channel towards the actor.
pub const COMMAND_CHANNEL_CAPACITY: usize = 256;

/// How often the UI clock advances, so "last seen 3s ago" stays true without a busy loop.
pub const UI_TICK: Duration = Duration::from_secs(1);

/// Room and name length limits at the server, so one registration stays a small datagram.
pub const MAX_ROOM_CHARS: usize = 64;

/// See `MAX_ROOM_CHARS`.
pub const MAX_NAME_CHARS: usize = 32;

/// Private endpoints a peer may announce (one per interface is plenty).
pub const MAX_PRIVATE_ENDPOINTS: usize = 8;

/// The rendezvous server's UDP port when an address gives none (its default `--listen`): one
/// number for users to remember, for rendezvous and STUN alike.
pub const DEFAULT_PORT: u16 = 7777;

/// How long a pairing code's nameplate lives at the server: long enough to read a code aloud
/// and type it, short enough that a code lying around is soon worth nothing.
pub const CODE_TTL: Duration = Duration::from_secs(600);

/// How often the key handshake repeats its unanswered requests to the server.
pub const KEYING_RETRY: Duration = Duration::from_millis(200);

/// How soon a contact chat first looks for the contact's new hello while the contact is away;
/// the wait doubles up to `REKEY_POLL_MAX`.
pub const REKEY_POLL: Duration = Duration::from_secs(2);

/// See `REKEY_POLL`: a contact that comes back is introduced by the server, and then looked
/// for at once.
pub const REKEY_POLL_MAX: Duration = Duration::from_secs(60);

/// After the contact is re-introduced (a restart?), how long to look for its new hello.
pub const REKEY_POKE_WINDOW: Duration = Duration::from_secs(10);

/// After a contact's keys change, tokens under its old keys still arrive for a while (its chat
/// renews once it has fetched our side): for this long they are counted as stale, not said as
/// a wrong key.
pub const KEY_CHANGE_GRACE: Duration = Duration::from_secs(15);

/// After the keys are agreed, how long to keep posting our last step until the server holds it
/// (the other side needs it to finish).
pub const KEYING_LINGER: Duration = Duration::from_secs(5);

/// How long a claimed code waits for the friend's side to answer.
pub const CLAIM_ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Room names for nameplates begin with this; `register` cannot use them.
pub const NAMEPLATE_PREFIX: &str = "np-";

/// A handshake post's largest body: a SPAKE2 message or a sealed identity fits many times,
/// and the answer carrying it stays one datagram.
pub const MAX_MAIL_BODY_BYTES: usize = 800;

/// A post's phase name, at most.
pub const MAX_PHASE_CHARS: usize = 16;

/// Posts one member may keep in a room (a handshake has two steps).
pub const MAX_POSTS_PER_MEMBER: usize = 4;

/// Members per room at the server.
pub const MAX_ROOM_MEMBERS: usize = 16;

/// Rooms one `register` may name (its own and `also`): a datagram's worth.
pub const MAX_ROOMS_PER_REGISTER: usize = 12;

/// Registrations in rooms the server holds in all, bounding its memory against a flood.
pub const MAX_REGISTRATIONS: usize = 10_000;

/// Nameplates (pairing codes waiting or being used) the server holds in all: a pool of their
/// own, so a flood of codes cannot lock rooms out, nor rooms codes.
pub const MAX_NAMEPLATES: usize = 10_000;

/// Live registrations in rooms one source (an IPv4 address or an IPv6 /64) may hold: room
/// for a household or an office behind one NAT, a small share of `MAX_REGISTRATIONS`.
pub const SOURCE_MAX_REGISTRATIONS: usize = 256;

/// Live nameplates one source may hold (codes asked for and not yet used or expired).
pub const SOURCE_MAX_NAMEPLATES: usize = 16;

/// Requests (control and STUN) a source may send a second, sustained; `SOURCE_BURST` at once.
/// A live chat sends one every 2–20 s, a key handshake about ten a second.
pub const SOURCE_RATE: f64 = 500.0;

/// See `SOURCE_RATE`.
pub const SOURCE_BURST: f64 = 1_000.0;

/// Code claims a source may make at once (a friend's code takes one); they come back at
/// `SOURCE_CLAIM_RATE` a second. With nameplates drawn at random from a range at least 100
/// times the number live, a claim on a guessed number hits a live code with at most 1 %.
pub const SOURCE_CLAIM_BURST: f64 = 6.0;

/// See `SOURCE_CLAIM_BURST`: one every 10 s.
pub const SOURCE_CLAIM_RATE: f64 = 0.1;

/// A source over its rate is told so at most this often; other excess datagrams get no answer.
pub const LIMIT_NOTICE_EVERY: Duration = Duration::from_secs(10);

/// Above this many admissions a second (new registrations, nameplates, claims), or with a
/// pool half full, the server is under load: a new entry needs a cookie that proves its
/// sender receives at its address.
pub const COOKIE_LOAD_PER_SEC: u32 = 1_000;

/// How often the secret behind cookies changes; a cookie is good for one to two periods.
pub const COOKIE_ROTATE: Duration = Duration::from_secs(120);

/// Slots in the server's table of per-source rate buckets: a fixed table, hashed with a secret
/// key, so a flood from many addresses costs no memory.
pub const RATE_SLOTS: usize = 1 << 16;

/// After someone claims our code, how long their side has to send its first step before we
/// tell the user that the code was used by someone who did not finish the exchange.
pub const CLAIM_EXCHANGE_WAIT: Duration = Duration::from_secs(10);

/// Datagrams the server takes in a row while more are waiting, before it looks at its timers
/// and at shutdown again.
pub const SERVER_BATCH: usize = 64;

/// The server reports what it dropped at most this often, in one line of words.
pub const SERVER_DROPS_REPORT_EVERY: Duration = Duration::from_secs(1);

/// How long headless mode waits, at end of input, for queued messages to reach a peer.
pub const DRAIN_ON_EOF: Duration = Duration::from_secs(15);

/// Drop counters are reported to the UI at most this often, so a flood of garbage costs the UI
/// one event per second, not one per datagram.
pub const DROPS_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// First retransmission gap of a NAT-discovery test; doubles (RFC 5389 §7.2.1, shortened:
/// these tests run before the chat and some are expected to get no answer).
pub const NAT_TEST_RTO: Duration = Duration::from_millis(250);

/// A NAT-discovery test with no answer by then has failed (transmissions at 0, 0.25, 0.75 s).
/// An unreachable server is therefore reported within 1.5 s, a whole detection within ~4 s.
pub const NAT_TEST_TIMEOUT: Duration = Duration::from_millis(1500);

/// Largest message a user can send (pasted text included); longer is refused whole.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Highest sequence number (and base) a received stream may use: a sender numbers its segments
/// from 1, one per segment, and never gets near 2^53 (JSON's exact integers); above it, adding
/// the receive window could not overflow, and such numbers are refused.
pub const MAX_STREAM_SEQ: u64 = 1 << 53;

/// Parts a received message may claim, at most: every part carries at least one byte of a
/// message of at most `MAX_MESSAGE_BYTES`.
pub const MAX_MESSAGE_PARTS: u32 = MAX_MESSAGE_BYTES as u32;

/// Segments sent to a peer and not yet acknowledged, at most: a window, so a burst or a long
/// paste does not flood a slow or lossy path. The congestion window moves below it.
pub const SEND_WINDOW_SEGMENTS: usize = 256;

/// The congestion window a peer starts with (RFC 9002 §7.2 starts with 10 packets; a chat's
/// segments are small, and a pasted page of lines leaves at once).
pub const INITIAL_WINDOW_SEGMENTS: usize = 32;

/// The smallest congestion window (RFC 9002 §7.2's minimum, two packets).
pub const MIN_WINDOW_SEGMENTS: usize = 2;

/// A segment not acknowledged though this many sent after it were is lost (RFC 9002
/// §6.1.1's packet threshold: reordering up to this is tolerated).
pub const LOSS_REORDER_SEGMENTS: u64 = 3;

/// Segments kept for peers that have not acknowledged them (the in-memory offline queue; the
/// log keeps them across restarts). Past this, new messages are refused with a notice.
pub const SEND_BUFFER_SEGMENTS: usize = 16_384;

/// After a failed write to the conversation log (a full disk), how long before it is tried
/// again: soon enough that a freed disk is used at once, rare enough to cost nothing.
pub const LOG_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// How soon a confirmation that found the command channel full is offered again when nothing
/// else steps the chat: the network drains the channel in microseconds.
pub const CONFIRM_RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// Records that only inform (presence, deliveries) kept in memory while the log cannot be
/// written; past this they are let go. Records a peer waits on are always kept: the peers'
/// send windows bound them.
pub const MAX_UNWRITTEN_RECORDS: usize = 10_000;

/// How far ahead of the next expected segment a receiver buffers out-of-order segments: the
/// send window, since no well-behaved sender has more in flight (what we refuse to send we
/// refuse to receive); about 210 KB of text per sender at most.
pub const RECV_WINDOW_SEGMENTS: u64 = SEND_WINDOW_SEGMENTS as u64;

/// Pings a session remembers per peer (sequence number and route): a pong counts only as the
/// answer to one of these.
pub const PINGS_REMEMBERED: usize = 32;

/// How far a peer's ping sequence number may run ahead of what it could have counted since its
/// last ping (one per punch interval): probes to several addresses, rounding.
pub const PING_JUMP_SLACK: u64 = 16;

/// Earlier run ids remembered per peer: packets of those runs are replays.
pub const PAST_INSTANCES_REMEMBERED: usize = 8;

/// Peers a session keeps, at most. The server lists at most `MAX_ROOM_MEMBERS` per room; the
/// rest is room for key holders it does not list, who are answered but never probed, and make
/// room for a newcomer once silent.
pub const MAX_PEERS: usize = 4 * MAX_ROOM_MEMBERS;

/// Retransmission timeout before any RTT sample (RFC 9002's initial RTT is 333 ms; a chat peer
/// that just answered a punch is nearer).
pub const INITIAL_RTO: Duration = Duration::from_millis(200);

/// Smallest retransmission timeout: on loopback the RTT is microseconds, and retransmitting
/// faster than a scheduler tick only duplicates.
pub const MIN_RTO: Duration = Duration::from_millis(20);

/// Largest retransmission timeout after backoff: a recovered path is used within this.
pub const MAX_RTO: Duration = Duration::from_secs(2);

/// Selective acknowledgements carried in one ack, at most (keeps an ack one small datagram).
pub const MAX_SACKS: usize = 64;

/// Records scanned at start for undelivered messages and for ids already shown.
pub const PENDING_SCAN_RECORDS: usize = 20_000;

/// TURN request retransmission timeout before backoff (RFC 8489 §6.2.1's RTO).
pub const TURN_RTO: Duration = Duration::from_millis(500);

/// Transmissions of one TURN request before it counts as unanswered (0, 0.5, 1.5, 3.5, 7.5 s:
/// a silent relay is reported within 15.5 s).
pub const TURN_MAX_TRANSMITS: u32 = 5;

/// Allocation lifetime asked for; refreshed at half of what the server grants (RFC 8656 §7).
pub const TURN_LIFETIME: Duration = Duration::from_secs(600);

/// Permissions live 300 s on the server (RFC 8656 §9); renewed well before.
pub const TURN_PERMISSION_REFRESH: Duration = Duration::from_secs(240);

/// Channel bindings live 600 s (RFC 8656 §12); renewed (with their permission) at this age.
pub const TURN_CHANNEL_REFRESH: Duration = Duration::from_secs(240);

/// Peers one allocation relays for, at most (permissions and channels each).
pub const MAX_RELAYED_PEERS: usize = 256;

/// How long TURN credentials handed out by the rendezvous server are good for starting an
/// allocation (coturn checks the expiry only then: a live allocation outlasts it).
pub const TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(1800);

/// IP time-to-live of a hole-opening probe: it crosses our own NAT (which makes the mapping
/// toward the peer) and expires at the router after it, before it can reach the peer's NAT. A
/// peer's router that answers unexpected probes itself (no WAN firewall) would otherwise keep
/// conntrack state that makes it give the peer's own probe to us a new port.
pub const OPENER_TTL: u32 = 2;

/// Full probes to a peer's public endpoint wait for the peer's word (through the server) that
/// its opening probes are out — ours are sent every punch round meanwhile — or this long from
/// the start of punching, for a peer that does not send it.
pub const OPENER_WAIT: Duration = Duration::from_secs(2);

/// Punching this long without a direct path starts the relay (at once when the NAT types say
/// punching cannot work).
pub const RELAY_AFTER: Duration = Duration::from_secs(3);

/// An online peer silent this long (a keepalive or two unanswered) counts as without a path
/// from then on for `RELAY_AFTER`: its direct path may have died, and the relay is readied before
/// it would be shown offline.
pub const RELAY_SILENCE: Duration = Duration::from_secs(7);

/// The peer that does not allocate (see `Session`) allocates too when, this long after it
/// wanted the relay, it still has no path and the peer announced no relayed address.
pub const RELAY_FALLBACK_AFTER: Duration = Duration::from_secs(6);

/// After a relay failure, the next allocation attempt waits this long (never a retry storm).
pub const RELAY_RETRY: Duration = Duration::from_secs(60);

/// While relayed, a direct path is tried again after this, doubling up to `DIRECT_RETRY_MAX`.
pub const DIRECT_RETRY_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between tries of a direct path while relayed.
pub const DIRECT_RETRY_MAX: Duration = Duration::from_secs(60);
