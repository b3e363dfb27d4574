//! Reliable, ordered, exactly-once delivery over datagrams, as plain data structures: the
//! sender's buffer of segments and per-peer acknowledgement state with RTT-based retransmission
//! (RFC 6298 estimator, Karn's rule, exponential backoff), loss detection by packet threshold and
//! a congestion window (after RFC 9002 §6–7), and the receiver's per-sender stream
//! that reorders, drops duplicates and reassembles long messages. No IO, no clock of its own.
//!
//! Acknowledgements have two levels: `sack` says "received, stop retransmitting"; `cum` says
//! "everything up to here is in my log". The sender forgets a segment only when every known
//! peer's `cum` covers it, so a receiver that crashes before writing a message gets it again.
//! A receiver's `cum` never passes a message it handed to the app and the app has not
//! reported logged: a write that failed (a full disk) is never confirmed by a later one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::consts::{
    INITIAL_RTO, INITIAL_WINDOW_SEGMENTS, LOSS_REORDER_SEGMENTS, MAX_MESSAGE_BYTES,
    MAX_MESSAGE_PARTS, MAX_RTO, MAX_SACKS, MAX_STREAM_SEQ, MIN_RTO, MIN_WINDOW_SEGMENTS,
    RECV_WINDOW_SEGMENTS, SEND_WINDOW_SEGMENTS,
};

/// Why an authenticated peer's numbers were refused: they cannot come from a well-behaved
/// sender. The datagram is dropped and counted; nothing else changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// An acknowledgement of a segment we never sent to this peer.
    #[error("acknowledges segment {cum}, but only {sent} were sent")]
    AckBeyondSent {
        /// The acknowledged sequence number.
        cum: u64,
        /// The highest sequence number sent to the peer.
        sent: u64,
    },
    /// A segment whose part numbering is impossible (`part >= parts`, no parts, or more
    /// parts than a message of `MAX_MESSAGE_BYTES` can have).
    #[error("part {part} of {parts}")]
    BadParts {
        /// The part number.
        part: u32,
        /// The claimed number of parts.
        parts: u32,
    },
    /// A sequence number or base above `MAX_STREAM_SEQ`: no sender makes that many segments.
    #[error("sequence number {0} is beyond any real stream")]
    BeyondRange(u64),
}

/// One datagram's worth of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Position in the sender's stream (from 1).
    pub seq: u64,
    /// The message's id.
    pub id: String,
    /// Which part of the message (from 0).
    pub part: u32,
    /// How many parts the message has.
    pub parts: u32,
    /// This part's text.
    pub text: String,
    /// The message's timestamp.
    pub timestamp: String,
}

/// `newest` (highest segment, latest sending) with segment `seq`, sent as `order`, taken in.
fn latest(newest: Option<(u64, u64)>, seq: u64, order: u64) -> (u64, u64) {
    newest.map_or((seq, order), |(s, o)| (s.max(seq), o.max(order)))
}

/// Round-trip estimator (RFC 6298).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl Rtt {
    /// Adds a measurement.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The retransmission timeout before backoff.
    pub fn rto(&self) -> Duration {
        self.srtt.map_or(INITIAL_RTO, |srtt| (srtt + self.rttvar * 4).clamp(MIN_RTO, MAX_RTO))
    }
}

#[derive(Debug, Clone, Copy)]
struct Flight {
    /// When it was first sent (for RTT samples, Karn's rule).
    sent_at: Instant,
    /// The order of its last sending among all of this peer's (new or again): for loss
    /// detection, only what left before an acknowledged segment can be lost behind it.
    order: u64,
    tries: u32,
    due: Instant,
    /// The peer said it has it (`sack`), not yet that it is in its log.
    sacked: bool,
    /// Declared lost by later segments' acknowledgements: due at once, not a timeout.
    lost: bool,
}

/// What the sender knows of one peer's copy of the stream.
#[derive(Debug)]
pub struct PeerSend {
    cum: u64,
    /// The highest sequence number ever sent to this peer: nothing above can be acknowledged.
    sent: u64,
    inflight: BTreeMap<u64, Flight>,
    /// Round-trip estimate for this peer.
    pub rtt: Rtt,
    /// Congestion window (after RFC 9002 §7, NewReno): segments sent and not yet acknowledged
    /// at all that may be on the path. Grows by one a segment acknowledged in slow start, by
    /// one a window after; halves once a congestion event (a loss found by later segments'
    /// acknowledgements or by the timer), never below `MIN_WINDOW_SEGMENTS`. A burst then
    /// fills a path (or a receiver's socket buffer) no faster than it drains instead of
    /// overrunning it and waiting out a timeout for what was dropped. (A lossy radio link's
    /// random losses halve it too, as they do TCP's; a chat's messages rarely fill it.)
    cwnd: usize,
    /// Slow-start threshold.
    ssthresh: usize,
    /// Segments acknowledged toward the next step of the window in congestion avoidance.
    acked_toward_step: usize,
    /// Losses of segments sent before this order belong to the congestion event that began
    /// then: the window is cut once for them (RFC 9002 §7.3.2).
    recovery_since: Option<u64>,
    /// The order the next sending gets.
    next_order: u64,
}

impl Default for PeerSend {
    fn default() -> Self {
        Self {
            cum: 0,
            sent: 0,
            inflight: BTreeMap::new(),
            rtt: Rtt::default(),
            cwnd: INITIAL_WINDOW_SEGMENTS,
            ssthresh: SEND_WINDOW_SEGMENTS,
            acked_toward_step: 0,
            recovery_since: None,
            next_order: 0,
        }
    }
}

impl PeerSend {
    /// Everything up to here is in the peer's log.
    pub fn cum(&self) -> u64 {
        self.cum
    }

    /// Applies an acknowledgement; returns an RTT sample when one is valid (Karn's rule: only
    /// from segments sent once). A selectively acknowledged segment stays in flight with a
    /// longer timeout: the receiver has it but not yet in its log, and if the ack that says it
    /// is logged gets lost, a late duplicate makes the receiver say it again.
    ///
    /// An ack whose `cum` is above what was ever sent to the peer is refused whole (it would
    /// confirm messages the peer never received); `sack` entries outside what is in flight are
    /// ignored.
    pub fn on_ack(
        &mut self,
        now: Instant,
        cum: u64,
        sack: &[u64],
    ) -> Result<Option<Duration>, Refused> {
        if cum > self.sent {
            return Err(Refused::AckBeyondSent { cum, sent: self.sent });
        }
        let mut sample = None;
        // The highest segment this ack covers, the latest sending it covers, and the sendings
        // it covers for the first time.
        let mut newest: Option<(u64, u64)> = None;
        let mut newly = Vec::new();
        if cum > self.cum {
            self.cum = cum;
            let rest = self.inflight.split_off(&(cum + 1));
            for (seq, flight) in std::mem::replace(&mut self.inflight, rest) {
                if flight.tries == 1 {
                    sample = Some(now.saturating_duration_since(flight.sent_at));
                }
                if !flight.sacked {
                    newly.push(flight.order);
                }
                newest = Some(latest(newest, seq, flight.order));
            }
        }
        let hold = self.rtt.rto() * 4;
        for seq in sack.iter().filter(|&&s| s > self.cum) {
            if let Some(flight) = self.inflight.get_mut(seq) {
                if flight.tries == 1 {
                    sample = Some(now.saturating_duration_since(flight.sent_at));
                }
                if !flight.sacked {
                    flight.sacked = true;
                    newly.push(flight.order);
                }
                flight.tries = flight.tries.max(2);
                flight.due = flight.due.max(now + hold);
                newest = Some(latest(newest, *seq, flight.order));
            }
        }
        if let Some(rtt) = sample {
            self.rtt.sample(rtt);
        }
        for order in newly {
            self.grow(order);
        }
        if let Some((largest, acked_order)) = newest {
            self.detect_losses(now, largest, acked_order);
        }
        Ok(sample)
    }

    /// Declares lost what the peer has not acknowledged though `LOSS_REORDER_SEGMENTS` or more
    /// segments after it, sent after it, were (RFC 9002 §6.1.1's packet threshold): it goes
    /// again at once instead of after a timeout, and the window is cut.
    fn detect_losses(&mut self, now: Instant, largest: u64, acked_order: u64) {
        let below = largest.saturating_sub(LOSS_REORDER_SEGMENTS);
        let mut lost = None;
        for flight in self.inflight.range_mut(..=below).map(|(_, f)| f) {
            if !flight.sacked && !flight.lost && flight.order < acked_order {
                flight.due = now;
                flight.lost = true;
                lost = lost.max(Some(flight.order));
            }
        }
        if let Some(order) = lost {
            self.on_congestion(order);
        }
    }

    /// The sending `order` was lost: one cut of the window a congestion event.
    fn on_congestion(&mut self, order: u64) {
        if self.recovery_since.is_some_and(|since| order < since) {
            return;
        }
        self.recovery_since = Some(self.next_order);
        self.ssthresh = (self.cwnd / 2).max(MIN_WINDOW_SEGMENTS);
        self.cwnd = self.ssthresh;
        self.acked_toward_step = 0;
    }

    /// A sending (`order`) was acknowledged: the window grows, except for what was sent before
    /// the current congestion event.
    fn grow(&mut self, order: u64) {
        if self.recovery_since.is_some_and(|since| order < since) {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += 1;
        } else {
            self.acked_toward_step += 1;
            if self.acked_toward_step >= self.cwnd {
                self.acked_toward_step = 0;
                self.cwnd += 1;
            }
        }
        self.cwnd = self.cwnd.min(SEND_WINDOW_SEGMENTS);
    }

    /// Segments sent and not acknowledged at all: what the window counts.
    fn unacknowledged(&self) -> usize {
        self.inflight.values().filter(|f| !f.sacked).count()
    }

    /// The peer restarted or went away: forget what it had, keep the RTT estimate.
    pub fn reset(&mut self) {
        let rtt = self.rtt;
        *self = Self { rtt, ..Self::default() };
    }

    /// Stops timing what is in flight (the path is gone); it is sent again when one is back.
    pub fn pause(&mut self) {
        self.inflight.clear();
    }

    /// Sends each segment once and never again: for a peer that cannot acknowledge (a client
    /// written from the seed notes), which would show every retransmission as a new message.
    pub fn send_once(&mut self, buffer: &SendBuffer) -> Vec<u64> {
        let out: Vec<u64> = buffer.seqs_from(self.cum + 1).collect();
        if let Some(&last) = out.last() {
            self.cum = last;
            self.sent = self.sent.max(last);
        }
        out
    }

    /// Segments of `buffer` to (re)send now, marking them in flight.
    pub fn due(&mut self, now: Instant, buffer: &SendBuffer) -> Vec<u64> {
        let mut out = Vec::new();
        let rto = self.rtt.rto();
        let mut timed_out = None;
        for (&seq, flight) in self.inflight.iter_mut().filter(|(_, f)| f.due <= now) {
            // One whose timer ran out without a word from the peer (not one declared lost by
            // later acknowledgements, nor one the peer holds unlogged) is a timeout.
            if !flight.sacked && !flight.lost {
                timed_out = timed_out.max(Some(flight.order));
            }
            flight.lost = false;
            flight.tries += 1;
            flight.order = self.next_order;
            self.next_order += 1;
            flight.due = now + rto * 2u32.saturating_pow(flight.tries - 1).min(64);
            flight.due = flight.due.min(now + MAX_RTO);
            out.push(seq);
        }
        if let Some(order) = timed_out {
            self.on_congestion(order);
        }
        let first_new = self.inflight.keys().next_back().map_or(self.cum + 1, |&s| s + 1);
        // New segments while the window has room (each one sent takes a place in it).
        let room = self.cwnd.saturating_sub(self.unacknowledged());
        for seq in buffer.seqs_from(first_new.max(self.cum + 1)).take(room) {
            if self.inflight.len() >= SEND_WINDOW_SEGMENTS {
                break;
            }
            let flight = Flight {
                sent_at: now,
                order: self.next_order,
                tries: 1,
                due: now + rto,
                sacked: false,
                lost: false,
            };
            self.next_order += 1;
            self.inflight.insert(seq, flight);
            self.sent = self.sent.max(seq);
            out.push(seq);
        }
        out
    }

    /// When the next retransmission is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.inflight.values().map(|f| f.due).min()
    }

    /// True when segments are waiting behind a full window or unsent.
    pub fn has_unsent(&self, buffer: &SendBuffer) -> bool {
        let first_new = self.inflight.keys().next_back().map_or(self.cum + 1, |&s| s + 1);
        self.inflight.len() < SEND_WINDOW_SEGMENTS
            && self.unacknowledged() < self.cwnd
            && buffer.seqs_from(first_new.max(self.cum + 1)).next().is_some()
    }
}

/// One message in the sender's buffer.
#[derive(Debug, Clone)]
struct Held {
    first: u64,
    last: u64,
    delivered: bool,
    announced: bool,
    logged: bool,
}

/// The sender's segments not yet in every known peer's log. A message leaves only once it is
/// in our own log (`logged`), and none after it leaves before it: a sender killed mid-burst
/// has in its log everything a peer received.
#[derive(Debug, Default)]
pub struct SendBuffer {
    next_seq: u64,
    segments: BTreeMap<u64, Segment>,
    messages: BTreeMap<String, Held>,
    /// First seqs of the messages not yet in our own log: nothing from the first on is sent.
    unlogged: BTreeSet<u64>,
}

impl SendBuffer {
    /// An empty buffer; the first segment gets seq 1.
    pub fn new() -> Self {
        Self { next_seq: 1, ..Self::default() }
    }

    /// Segments held.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Adds a message split into `parts` texts. `announced`: its "sent" was already told (a
    /// message from an earlier run), so `announce` stays quiet about it. `logged`: it is in
    /// our own log already; otherwise it waits for `logged` before it may be sent.
    pub fn push(
        &mut self,
        id: &str,
        parts: Vec<String>,
        timestamp: &str,
        announced: bool,
        logged: bool,
    ) {
        let first = self.next_seq;
        let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        for (part, text) in (0u32..).zip(parts) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let segment = Segment {
                seq,
                id: id.to_owned(),
                part,
                parts: count,
                text,
                timestamp: timestamp.to_owned(),
            };
            self.segments.insert(seq, segment);
        }
        let held = Held { first, last: self.next_seq - 1, delivered: false, announced, logged };
        self.messages.insert(id.to_owned(), held);
        if !logged {
            self.unlogged.insert(first);
        }
    }

    /// The message `id` is in our own log: it may be sent. False when no such message waits.
    pub fn logged(&mut self, id: &str) -> bool {
        match self.messages.get_mut(id) {
            Some(held) if !held.logged => {
                held.logged = true;
                self.unlogged.remove(&held.first);
                true
            }
            _ => false,
        }
    }

    /// A held segment.
    pub fn get(&self, seq: u64) -> Option<&Segment> {
        self.segments.get(&seq)
    }

    /// The lowest seq still held: receivers may skip everything below it.
    pub fn base(&self) -> u64 {
        self.segments.keys().next().copied().unwrap_or(self.next_seq)
    }

    /// Held seqs from `from` that may be sent: up to the first message not in our log.
    fn seqs_from(&self, from: u64) -> impl Iterator<Item = u64> + '_ {
        let end = self.unlogged.first().copied().unwrap_or(u64::MAX);
        self.segments.range(from..end.max(from)).map(|(&s, _)| s)
    }

    /// Ids of messages whose first segment is being sent for the first time: "sent" once.
    pub fn announce(&mut self, seq: u64) -> Option<(String, String, String)> {
        let segment = self.segments.get(&seq)?;
        let held = self.messages.get_mut(&segment.id)?;
        if held.announced {
            return None;
        }
        held.announced = true;
        let text = self.text_of(&segment.id.clone());
        let segment = self.segments.get(&seq)?;
        Some((segment.id.clone(), text, segment.timestamp.clone()))
    }

    fn text_of(&self, id: &str) -> String {
        let Some(held) = self.messages.get(id) else { return String::new() };
        self.segments.range(held.first..=held.last).map(|(_, s)| s.text.as_str()).collect()
    }

    /// Messages now wholly in the log of a peer whose `cum` is given: delivered, once each.
    pub fn delivered_up_to(&mut self, cum: u64) -> Vec<String> {
        let mut out = Vec::new();
        for (id, held) in &mut self.messages {
            if !held.delivered && held.last <= cum {
                held.delivered = true;
                out.push(id.clone());
            }
        }
        out
    }

    /// Forgets segments every known peer has in its log (`min_cum`); with no peer known,
    /// nothing is forgotten.
    pub fn release(&mut self, min_cum: Option<u64>) {
        let Some(min_cum) = min_cum else { return };
        self.segments = self.segments.split_off(&(min_cum + 1));
        self.messages.retain(|_, held| held.last > min_cum);
    }
}

/// A whole message that arrived in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete {
    /// Its id.
    pub id: String,
    /// All its parts' text.
    pub text: String,
    /// Its timestamp.
    pub timestamp: String,
    /// Its last segment: acknowledged as persisted once the app has logged it.
    pub last_seq: u64,
}

/// What a segment brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Messages completed by it, in order.
    pub complete: Vec<Complete>,
    /// False for a duplicate or a segment outside the window.
    pub new: bool,
    /// A message grew past `MAX_MESSAGE_BYTES` and was dropped whole: what we refuse to send
    /// we refuse to receive.
    pub too_long: bool,
}

/// One sender's stream as a receiver sees it.
#[derive(Debug)]
pub struct RecvStream {
    next: u64,
    /// The highest segment reported logged (or skipped as below the sender's base).
    persisted: u64,
    /// Messages handed to the app and not reported logged yet: last seq -> first seq. `cum`
    /// stays below the first of them, whatever was logged after it.
    unlogged: BTreeMap<u64, u64>,
    buffer: BTreeMap<u64, Segment>,
    assembly: Vec<Segment>,
    /// Bytes of text in `assembly`.
    assembled_bytes: usize,
}

impl Default for RecvStream {
    fn default() -> Self {
        Self {
            next: 1,
            persisted: 0,
            unlogged: BTreeMap::new(),
            buffer: BTreeMap::new(),
            assembly: Vec::new(),
            assembled_bytes: 0,
        }
    }
}

impl RecvStream {
    /// Takes a segment; `base` is the sender's lowest held seq. Returns messages completed,
    /// in order, whether the segment was new, and whether a message was dropped for growing
    /// past `MAX_MESSAGE_BYTES`; or why the segment's numbers were refused (it is then dropped
    /// and nothing changes).
    pub fn on_segment(&mut self, segment: Segment, base: u64) -> Result<Received, Refused> {
        let (part, parts) = (segment.part, segment.parts);
        if parts == 0 || part >= parts || parts > MAX_MESSAGE_PARTS {
            return Err(Refused::BadParts { part, parts });
        }
        if let Some(&beyond) = [segment.seq, base].iter().find(|&&n| n > MAX_STREAM_SEQ) {
            return Err(Refused::BeyondRange(beyond));
        }
        if base > self.next {
            // Everything below base is in our log already (a previous run of ours acked it).
            self.next = base;
            self.persisted = self.persisted.max(base - 1);
            self.buffer = self.buffer.split_off(&base);
            self.assembly.clear();
            self.assembled_bytes = 0;
        }
        // The window counts from what is in the log, not from what arrived: while the app
        // cannot write (a full disk), what a sender can make us hold in memory stays bounded.
        if segment.seq < self.next
            || segment.seq - self.cum() > RECV_WINDOW_SEGMENTS
            || self.buffer.contains_key(&segment.seq)
        {
            return Ok(Received::default());
        }
        self.buffer.insert(segment.seq, segment);
        let mut done = Vec::new();
        let mut too_long = false;
        while let Some(segment) = self.buffer.remove(&self.next) {
            // At most MAX_STREAM_SEQ + 1: nothing above MAX_STREAM_SEQ is ever buffered.
            self.next += 1;
            let follows = self
                .assembly
                .last()
                .is_some_and(|last| last.id == segment.id && last.part + 1 == segment.part);
            if segment.part == 0 {
                self.assembly.clear();
                self.assembled_bytes = 0;
            } else if !follows {
                // A part without its beginning cannot be shown whole; it is acknowledged with
                // the stream, and the sender's restart logic resends whole messages.
                self.assembly.clear();
                self.assembled_bytes = 0;
                continue;
            }
            self.assembled_bytes += segment.text.len();
            if self.assembled_bytes > MAX_MESSAGE_BYTES {
                // Its remaining parts find no beginning and are dropped as they come.
                self.assembly.clear();
                self.assembled_bytes = 0;
                too_long = true;
                continue;
            }
            let last = segment.part + 1 == segment.parts;
            self.assembly.push(segment);
            if last {
                let parts = std::mem::take(&mut self.assembly);
                self.assembled_bytes = 0;
                let text: String = parts.iter().map(|s| s.text.as_str()).collect();
                let first = &parts[0];
                let last_seq = parts[parts.len() - 1].seq;
                self.unlogged.insert(last_seq, first.seq);
                done.push(Complete {
                    id: first.id.clone(),
                    text,
                    timestamp: first.timestamp.clone(),
                    last_seq,
                });
            }
        }
        Ok(Received { complete: done, new: true, too_long })
    }

    /// The app logged the message ending at `last_seq` (that one: a message before it that
    /// is not logged still holds `cum` back).
    pub fn persisted(&mut self, last_seq: u64) {
        self.unlogged.remove(&last_seq);
        self.persisted = self.persisted.max(last_seq);
    }

    /// Everything up to here is in the log: what was reported logged, up to the first
    /// message handed to the app and not logged.
    fn cum(&self) -> u64 {
        let held = self.unlogged.values().next().map_or(u64::MAX, |first| first.saturating_sub(1));
        self.persisted.min(held)
    }

    /// The acknowledgement to send now: (cum, sack). With more received above `cum` than one
    /// ack names (`MAX_SACKS`; a long message's parts wait for its last before it is logged),
    /// it names the oldest few, which the sender may still be sending again, and the newest,
    /// which tell it what arrived since the last ack (its congestion window counts what it
    /// has heard nothing of).
    pub fn ack(&self) -> (u64, Vec<u64>) {
        let cum = self.cum();
        let received = || (cum + 1..self.next).chain(self.buffer.keys().copied());
        let count = usize::try_from(self.next.saturating_sub(cum + 1))
            .unwrap_or(usize::MAX)
            .saturating_add(self.buffer.len());
        if count <= MAX_SACKS {
            return (cum, received().collect());
        }
        let oldest = MAX_SACKS / 4;
        let mut sack: Vec<u64> = received().take(oldest).collect();
        let mut newest: Vec<u64> = received().rev().take(MAX_SACKS - oldest).collect();
        newest.reverse();
        sack.extend(newest);
        (cum, sack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(buffer: &mut SendBuffer, id: &str, parts: &[&str]) {
        buffer.push(id, parts.iter().map(|s| (*s).to_owned()).collect(), "t", false, true);
    }

    #[test]
    fn reorders_reassembles_and_drops_duplicates() {
        let mut sb = SendBuffer::new();
        message(&mut sb, "a", &["hello"]);
        message(&mut sb, "b", &["long ", "message ", "here"]);
        let seg = |s: u64| sb.get(s).cloned().unwrap();
        let mut rs = RecvStream::default();
        let nothing_new = Received::default();
        let nothing_but_new = Received { new: true, ..Received::default() };
        assert_eq!(rs.on_segment(seg(3), 1), Ok(nothing_but_new));
        assert_eq!(rs.on_segment(seg(3), 1), Ok(Received::default()));
        let done = rs.on_segment(seg(1), 1).unwrap().complete;
        assert_eq!(done.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), vec!["hello"]);
        assert_eq!(rs.ack(), (0, vec![1, 3]));
        rs.persisted(1);
        assert_eq!(rs.ack(), (1, vec![3]));
        let done = rs.on_segment(seg(4), 1).unwrap().complete;
        assert!(done.is_empty());
        let done = rs.on_segment(seg(2), 1).unwrap().complete;
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].text, "long message here");
        assert_eq!(done[0].last_seq, 4);
        assert_eq!(rs.on_segment(seg(2), 1), Ok(nothing_new));
    }

    #[test]
    fn a_message_not_logged_is_never_confirmed_by_a_later_one() {
        let mut sb = SendBuffer::new();
        message(&mut sb, "a", &["one"]);
        message(&mut sb, "b", &["tw", "o"]);
        message(&mut sb, "c", &["three"]);
        let seg = |s: u64| sb.get(s).cloned().unwrap();
        let mut rs = RecvStream::default();
        let mut done = Vec::new();
        for seq in 1..=4 {
            done.extend(rs.on_segment(seg(seq), 1).unwrap().complete);
        }
        assert_eq!(done.iter().map(|c| c.last_seq).collect::<Vec<_>>(), vec![1, 3, 4]);
        // "a" is logged; writing "b" fails (a full disk); "c" is logged.
        rs.persisted(1);
        rs.persisted(4);
        assert_eq!(rs.ack(), (1, vec![2, 3, 4]), "nothing past the unlogged message is confirmed");
        // Its retransmission is a duplicate for the stream: still not confirmed.
        assert!(!rs.on_segment(seg(2), 1).unwrap().new);
        assert_eq!(rs.ack().0, 1);
        // The app wrote it after all: everything is confirmed.
        rs.persisted(3);
        assert_eq!(rs.ack(), (4, vec![]));
    }

    #[test]
    fn the_receive_window_counts_from_what_is_logged() {
        let mut rs = RecvStream::default();
        let window = RECV_WINDOW_SEGMENTS;
        for seq in 1..=window {
            let received = rs.on_segment(segment(seq, 0, 1, "x"), 1).unwrap();
            assert_eq!(received.complete.len(), 1, "seq {seq}");
        }
        // None of them could be written: nothing more is taken until some are.
        let beyond = rs.on_segment(segment(window + 1, 0, 1, "x"), 1).unwrap();
        assert!(!beyond.new && beyond.complete.is_empty());
        rs.persisted(1);
        let taken = rs.on_segment(segment(window + 1, 0, 1, "x"), 1).unwrap();
        assert_eq!(taken.complete.len(), 1);
    }

    #[test]
    fn sender_retransmits_until_acked_and_releases_when_persisted() {
        let t0 = Instant::now();
        let mut sb = SendBuffer::new();
        message(&mut sb, "a", &["x"]);
        message(&mut sb, "b", &["y"]);
        let mut ps = PeerSend::default();
        assert_eq!(ps.due(t0, &sb), vec![1, 2]);
        assert!(ps.due(t0, &sb).is_empty());
        let rto = ps.rtt.rto();
        assert_eq!(ps.next_due(), Some(t0 + rto));
        // Segment 2 was received (sack) but not yet logged; 1 was lost.
        let sample = ps.on_ack(t0 + Duration::from_millis(10), 0, &[2]);
        assert_eq!(sample, Ok(Some(Duration::from_millis(10))));
        assert_eq!(ps.due(t0 + rto, &sb), vec![1], "the lost one; the sacked one waits longer");
        // Logged both: delivered, and released when the only peer has them.
        ps.on_ack(t0 + rto, 2, &[]).unwrap();
        assert_eq!(sb.delivered_up_to(ps.cum()), vec!["a".to_owned(), "b".to_owned()]);
        assert!(sb.delivered_up_to(ps.cum()).is_empty());
        sb.release(Some(ps.cum()));
        assert!(sb.is_empty());
        assert_eq!(sb.base(), 3);
    }

    #[test]
    fn nothing_leaves_before_it_is_in_our_own_log() {
        let t0 = Instant::now();
        let mut sb = SendBuffer::new();
        let parts = |texts: &[&str]| texts.iter().map(|s| (*s).to_owned()).collect();
        sb.push("a", parts(&["x"]), "t", false, false);
        sb.push("b", parts(&["y1", "y2"]), "t", false, false);
        let mut ps = PeerSend::default();
        assert!(ps.due(t0, &sb).is_empty(), "a is not in our log yet");
        assert!(!ps.has_unsent(&sb));
        assert!(ps.send_once(&sb).is_empty(), "not to a seed client either");
        // b is logged first: it still waits behind a, which keeps its place.
        assert!(sb.logged("b"));
        assert!(ps.due(t0, &sb).is_empty());
        assert!(sb.logged("a"));
        assert!(!sb.logged("a"), "once");
        assert_eq!(ps.due(t0, &sb), vec![1, 2, 3]);
    }

    #[test]
    fn with_no_peer_known_nothing_is_released() {
        let mut sb = SendBuffer::new();
        message(&mut sb, "a", &["x"]);
        sb.release(None);
        assert_eq!(sb.len(), 1);
    }

    #[test]
    fn restarted_receiver_skips_to_base_and_gets_whole_messages() {
        let mut sb = SendBuffer::new();
        message(&mut sb, "a", &["1"]);
        message(&mut sb, "b", &["2a", "2b"]);
        sb.release(Some(1));
        assert_eq!(sb.base(), 2);
        let mut rs = RecvStream::default();
        let done = rs.on_segment(sb.get(3).cloned().unwrap(), sb.base()).unwrap().complete;
        assert!(done.is_empty());
        let done = rs.on_segment(sb.get(2).cloned().unwrap(), sb.base()).unwrap().complete;
        assert_eq!(done[0].text, "2a2b");
        assert_eq!(rs.ack().0, 1, "below base counts as persisted");
    }

    /// A buffer of `n` one-segment messages, all in our log.
    fn messages(n: usize) -> SendBuffer {
        let mut sb = SendBuffer::new();
        for i in 0..n {
            message(&mut sb, &i.to_string(), &["x"]);
        }
        sb
    }

    #[test]
    fn the_window_starts_small_grows_with_acknowledgements_and_stops_at_its_cap() {
        let t0 = Instant::now();
        let sb = messages(SEND_WINDOW_SEGMENTS * 8);
        let mut ps = PeerSend::default();
        assert_eq!(ps.due(t0, &sb).len(), INITIAL_WINDOW_SEGMENTS);
        assert!(!ps.has_unsent(&sb), "window full");
        // Slow start: each segment acknowledged lets two more go.
        ps.on_ack(t0, 5, &[]).unwrap();
        assert!(ps.has_unsent(&sb));
        assert_eq!(ps.due(t0, &sb).len(), 10);
        // Round after round acknowledged whole, the window doubles up to its cap and stays.
        let mut sent = Vec::new();
        for round in 1..=6 {
            let now = t0 + Duration::from_millis(round);
            ps.on_ack(now, ps.sent, &[]).unwrap();
            sent.push(ps.due(now, &sb).len());
        }
        let cap = SEND_WINDOW_SEGMENTS;
        assert_eq!(sent, [74, 148, cap, cap, cap, cap]);
    }

    #[test]
    fn a_segment_acknowledged_past_by_three_goes_again_at_once_and_halves_the_window() {
        let t0 = Instant::now();
        let sb = messages(200);
        let mut ps = PeerSend::default();
        assert_eq!(ps.due(t0, &sb).len(), INITIAL_WINDOW_SEGMENTS);
        // 4 was lost; 5..=32 arrived, and the peer logged 1..=3.
        let later = t0 + Duration::from_micros(300);
        let sack: Vec<u64> = (5..=32).collect();
        ps.on_ack(later, 3, &sack).unwrap();
        // It goes again now, long before its timeout; nothing else was lost.
        assert_eq!(ps.next_due(), Some(later));
        let again = ps.due(later, &sb);
        assert_eq!(again.first(), Some(&4));
        // The window grew by the 31 segments acknowledged, then was cut once, to half.
        assert_eq!(ps.cwnd, (INITIAL_WINDOW_SEGMENTS + 31) / 2);
        // Its retransmission is not declared lost again by the same acknowledgements.
        ps.on_ack(later, 3, &sack).unwrap();
        assert!(ps.next_due().is_some_and(|d| d > later));
        // Reordering by fewer than three is not loss.
        let mut ps = PeerSend::default();
        ps.due(t0, &sb);
        ps.on_ack(later, 0, &[2, 3]).unwrap();
        assert!(ps.next_due().is_some_and(|d| d > later), "1 may still come");
    }

    #[test]
    fn timeouts_halve_the_window_once_an_event_and_never_below_its_least() {
        let t0 = Instant::now();
        let sb = messages(100);
        let mut ps = PeerSend::default();
        ps.due(t0, &sb);
        let rto = ps.rtt.rto();
        let resent = ps.due(t0 + rto, &sb);
        assert_eq!(resent.len(), INITIAL_WINDOW_SEGMENTS, "every one timed out, none new");
        assert_eq!(ps.cwnd, INITIAL_WINDOW_SEGMENTS / 2, "one cut for all of them");
        let mut at = t0 + rto;
        for _ in 0..10 {
            at += MAX_RTO;
            ps.due(at, &sb);
        }
        assert_eq!(ps.cwnd, MIN_WINDOW_SEGMENTS);
        // Acknowledged, the window grows again from there.
        ps.on_ack(t0 + rto * 2, INITIAL_WINDOW_SEGMENTS as u64, &[]).unwrap();
        assert!(ps.due(t0 + rto * 2, &sb).len() >= MIN_WINDOW_SEGMENTS);
    }

    #[test]
    fn an_ack_names_the_oldest_and_the_newest_of_more_than_it_can_hold() {
        // One long message of 200 parts: none is logged before the last arrives.
        let mut sb = SendBuffer::new();
        let parts: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
        sb.push("long", parts, "t", false, true);
        let mut rs = RecvStream::default();
        for seq in (1..=150).chain(160..=170) {
            rs.on_segment(sb.get(seq).cloned().unwrap(), sb.base()).unwrap();
        }
        let (cum, sack) = rs.ack();
        assert_eq!(cum, 0);
        assert_eq!(sack.len(), MAX_SACKS);
        let oldest = MAX_SACKS / 4;
        assert_eq!(sack[..oldest], (1..=oldest as u64).collect::<Vec<_>>()[..]);
        assert_eq!(sack.last(), Some(&170), "the newest arrival is named");
        assert!(sack.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    }

    #[test]
    fn rto_follows_rtt_within_bounds() {
        let mut rtt = Rtt::default();
        assert_eq!(rtt.rto(), INITIAL_RTO);
        rtt.sample(Duration::from_micros(100));
        assert_eq!(rtt.rto(), MIN_RTO);
        for _ in 0..20 {
            rtt.sample(Duration::from_millis(100));
        }
        assert!(rtt.rto() >= Duration::from_millis(100) && rtt.rto() < Duration::from_millis(300));
        rtt.sample(Duration::from_secs(30));
        assert_eq!(rtt.rto(), MAX_RTO);
    }

    fn segment(seq: u64, part: u32, parts: u32, text: &str) -> Segment {
        let (id, timestamp) = ("m".to_owned(), "t".to_owned());
        Segment { seq, id, part, parts, text: text.to_owned(), timestamp }
    }

    #[test]
    fn acks_beyond_what_was_sent_are_refused_whole() {
        let t0 = Instant::now();
        let mut sb = SendBuffer::new();
        message(&mut sb, "a", &["x"]);
        message(&mut sb, "b", &["y"]);
        let mut ps = PeerSend::default();
        assert_eq!(ps.on_ack(t0, 1, &[]), Err(Refused::AckBeyondSent { cum: 1, sent: 0 }));
        ps.due(t0, &sb);
        for cum in [3, 2u64.pow(63), u64::MAX - 1, u64::MAX] {
            assert_eq!(ps.on_ack(t0, cum, &[]), Err(Refused::AckBeyondSent { cum, sent: 2 }));
        }
        assert_eq!(ps.cum(), 0, "a refused ack confirms nothing");
        assert!(sb.delivered_up_to(ps.cum()).is_empty());
        // Selective acks of numbers never sent are ignored; the valid part still counts.
        assert!(ps.on_ack(t0, 1, &[u64::MAX, 2u64.pow(40), 0]).is_ok());
        assert_eq!(ps.cum(), 1);
        assert_eq!(ps.next_due().map(|d| d > t0), Some(true));
    }

    #[test]
    fn hostile_sequence_numbers_never_overflow() {
        let max = u64::MAX;
        let top = MAX_STREAM_SEQ;
        let edges = [0, 1, top - 1, top, top + 1, max - 11, max - 10, max - 1, max];
        for base in edges {
            for seq in edges {
                let mut rs = RecvStream::default();
                let outcome = rs.on_segment(segment(seq, 0, 1, "x"), base);
                if seq > top || base > top {
                    let beyond = if seq > top { seq } else { base };
                    assert_eq!(outcome, Err(Refused::BeyondRange(beyond)));
                    assert_eq!(rs.ack(), (0, vec![]), "nothing was taken");
                    continue;
                }
                let received = outcome.expect("accepted or ignored");
                let (cum, sack) = rs.ack();
                assert!(sack.len() <= MAX_SACKS);
                // Whatever came, the stream keeps taking segments without a panic.
                let _ = rs.on_segment(segment(seq.saturating_add(1), 0, 1, "y"), base);
                if received.new {
                    assert_eq!(received.complete.len(), usize::from(seq == base.max(1)));
                } else {
                    assert!(cum <= max);
                }
            }
        }
    }

    #[test]
    fn impossible_part_numbers_are_refused() {
        let mut rs = RecvStream::default();
        for (part, parts) in [(0, 0), (1, 1), (5, 2), (u32::MAX, u32::MAX), (0, u32::MAX)] {
            assert_eq!(
                rs.on_segment(segment(1, part, parts, "x"), 1),
                Err(Refused::BadParts { part, parts })
            );
        }
        assert_eq!(rs.ack(), (0, vec![]), "nothing was taken");
    }

    #[test]
    fn a_message_growing_past_the_limit_is_dropped_and_the_stream_goes_on() {
        let mut rs = RecvStream::default();
        let chunk = "z".repeat(crate::consts::MAX_PLAINTEXT_BYTES);
        let parts = u32::try_from(MAX_MESSAGE_BYTES / chunk.len() + 2).unwrap();
        let mut too_long = false;
        for part in 0..parts {
            let received = rs.on_segment(segment(u64::from(part) + 1, part, parts, &chunk), 1);
            let received = received.unwrap();
            assert!(received.complete.is_empty());
            too_long |= received.too_long;
        }
        assert!(too_long, "a {}-byte message is refused", chunk.len() * parts as usize);
        assert!(rs.assembly.is_empty() && rs.assembled_bytes == 0, "its parts are not kept");
        let next = u64::from(parts) + 1;
        let done = rs.on_segment(segment(next, 0, 1, "after"), 1).unwrap().complete;
        assert_eq!(done.len(), 1, "the next message gets through");
        assert_eq!(done[0].text, "after");
    }

    #[test]
    fn a_message_of_exactly_the_limit_is_taken() {
        let mut rs = RecvStream::default();
        let chunk = "z".repeat(1024);
        let parts = u32::try_from(MAX_MESSAGE_BYTES / 1024).unwrap();
        let mut done = Vec::new();
        for part in 0..parts {
            let seq = u64::from(part) + 1;
            done.extend(rs.on_segment(segment(seq, part, parts, &chunk), 1).unwrap().complete);
        }
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].text.len(), MAX_MESSAGE_BYTES);
    }
}
