//! Reliable, ordered, exactly-once delivery over datagrams, as plain data structures: the
//! sender's buffer of segments and per-peer acknowledgement state with RTT-based retransmission
//! (RFC 6298 estimator, Karn's rule, exponential backoff), and the receiver's per-sender stream
//! that reorders, drops duplicates and reassembles long messages. No IO, no clock of its own.
//!
//! Acknowledgements have two levels: `sack` says "received, stop retransmitting"; `cum` says
//! "everything up to here is in my log". The sender forgets a segment only when every known
//! peer's `cum` covers it, so a receiver that crashes before writing a message gets it again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::consts::{
    INITIAL_RTO, MAX_RTO, MAX_SACKS, MIN_RTO, RECV_WINDOW_SEGMENTS, SEND_WINDOW_SEGMENTS,
};

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
    sent_at: Instant,
    tries: u32,
    due: Instant,
}

/// What the sender knows of one peer's copy of the stream.
#[derive(Debug, Default)]
pub struct PeerSend {
    cum: u64,
    inflight: BTreeMap<u64, Flight>,
    /// Round-trip estimate for this peer.
    pub rtt: Rtt,
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
    pub fn on_ack(&mut self, now: Instant, cum: u64, sack: &[u64]) -> Option<Duration> {
        let mut sample = None;
        if cum > self.cum {
            self.cum = cum;
            let rest = self.inflight.split_off(&(cum + 1));
            for (_, flight) in std::mem::replace(&mut self.inflight, rest) {
                if flight.tries == 1 {
                    sample = Some(now.saturating_duration_since(flight.sent_at));
                }
            }
        }
        let hold = self.rtt.rto() * 4;
        for seq in sack.iter().filter(|&&s| s > self.cum) {
            if let Some(flight) = self.inflight.get_mut(seq) {
                if flight.tries == 1 {
                    sample = Some(now.saturating_duration_since(flight.sent_at));
                }
                flight.tries = flight.tries.max(2);
                flight.due = flight.due.max(now + hold);
            }
        }
        if let Some(rtt) = sample {
            self.rtt.sample(rtt);
        }
        sample
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
        }
        out
    }

    /// Segments of `buffer` to (re)send now, marking them in flight.
    pub fn due(&mut self, now: Instant, buffer: &SendBuffer) -> Vec<u64> {
        let mut out = Vec::new();
        let rto = self.rtt.rto();
        for (&seq, flight) in self.inflight.iter_mut().filter(|(_, f)| f.due <= now) {
            flight.tries += 1;
            flight.due = now + rto * 2u32.saturating_pow(flight.tries - 1).min(64);
            flight.due = flight.due.min(now + MAX_RTO);
            out.push(seq);
        }
        let first_new = self.inflight.keys().next_back().map_or(self.cum + 1, |&s| s + 1);
        for seq in buffer.seqs_from(first_new.max(self.cum + 1)) {
            if self.inflight.len() >= SEND_WINDOW_SEGMENTS {
                break;
            }
            self.inflight.insert(seq, Flight { sent_at: now, tries: 1, due: now + rto });
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
}

/// The sender's segments not yet in every known peer's log.
#[derive(Debug, Default)]
pub struct SendBuffer {
    next_seq: u64,
    segments: BTreeMap<u64, Segment>,
    messages: BTreeMap<String, Held>,
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
    /// message from an earlier run), so `announce` stays quiet about it.
    pub fn push(&mut self, id: &str, parts: Vec<String>, timestamp: &str, announced: bool) {
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
        let held = Held { first, last: self.next_seq - 1, delivered: false, announced };
        self.messages.insert(id.to_owned(), held);
    }

    /// A held segment.
    pub fn get(&self, seq: u64) -> Option<&Segment> {
        self.segments.get(&seq)
    }

    /// The lowest seq still held: receivers may skip everything below it.
    pub fn base(&self) -> u64 {
        self.segments.keys().next().copied().unwrap_or(self.next_seq)
    }

    fn seqs_from(&self, from: u64) -> impl Iterator<Item = u64> + '_ {
        self.segments.range(from..).map(|(&s, _)| s)
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

/// One sender's stream as a receiver sees it.
#[derive(Debug)]
pub struct RecvStream {
    next: u64,
    persisted: u64,
    buffer: BTreeMap<u64, Segment>,
    assembly: Vec<Segment>,
}

impl Default for RecvStream {
    fn default() -> Self {
        Self { next: 1, persisted: 0, buffer: BTreeMap::new(), assembly: Vec::new() }
    }
}

impl RecvStream {
    /// Takes a segment; `base` is the sender's lowest held seq. Returns messages completed,
    /// in order, and whether the segment was new.
    pub fn on_segment(&mut self, segment: Segment, base: u64) -> (Vec<Complete>, bool) {
        if base > self.next {
            // Everything below base is in our log already (a previous run of ours acked it).
            self.next = base;
            self.persisted = self.persisted.max(base - 1);
            self.buffer = self.buffer.split_off(&base);
            self.assembly.clear();
        }
        if segment.seq < self.next
            || segment.seq >= self.next + RECV_WINDOW_SEGMENTS
            || self.buffer.contains_key(&segment.seq)
        {
            return (Vec::new(), false);
        }
        self.buffer.insert(segment.seq, segment);
        let mut done = Vec::new();
        while let Some(segment) = self.buffer.remove(&self.next) {
            self.next += 1;
            let follows = self
                .assembly
                .last()
                .is_some_and(|last| last.id == segment.id && last.part + 1 == segment.part);
            if segment.part == 0 {
                self.assembly.clear();
            } else if !follows {
                // A part without its beginning cannot be shown whole; it is acknowledged with
                // the stream, and the sender's restart logic resends whole messages.
                self.assembly.clear();
                continue;
            }
            let last = segment.part + 1 >= segment.parts;
            self.assembly.push(segment);
            if last {
                let parts = std::mem::take(&mut self.assembly);
                let text: String = parts.iter().map(|s| s.text.as_str()).collect();
                let first = &parts[0];
                let last_seq = parts[parts.len() - 1].seq;
                done.push(Complete {
                    id: first.id.clone(),
                    text,
                    timestamp: first.timestamp.clone(),
                    last_seq,
                });
            }
        }
        (done, true)
    }

    /// The app logged the message ending at `last_seq`.
    pub fn persisted(&mut self, last_seq: u64) {
        self.persisted = self.persisted.max(last_seq);
    }

    /// The acknowledgement to send now: (cum, sack).
    pub fn ack(&self) -> (u64, Vec<u64>) {
        let received = (self.persisted + 1..self.next).chain(self.buffer.keys().copied());
        (self.persisted, received.take(MAX_SACKS).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(buffer: &mut SendBuffer, id: &str, parts: &[&str]) {
        buffer.push(id, parts.iter().map(|s| (*s).to_owned()).collect(), "t", false);
    }

    #[test]
    fn reorders_reassembles_and_drops_duplicates() {
        let mut sb = SendBuffer::new();
        message(&mut sb, "a", &["hello"]);
        message(&mut sb, "b", &["long ", "message ", "here"]);
        let seg = |s: u64| sb.get(s).cloned().unwrap();
        let mut rs = RecvStream::default();
        assert_eq!(rs.on_segment(seg(3), 1), (vec![], true));
        assert_eq!(rs.on_segment(seg(3), 1), (vec![], false));
        let (done, _) = rs.on_segment(seg(1), 1);
        assert_eq!(done.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), vec!["hello"]);
        assert_eq!(rs.ack(), (0, vec![1, 3]));
        rs.persisted(1);
        assert_eq!(rs.ack(), (1, vec![3]));
        let (done, _) = rs.on_segment(seg(4), 1);
        assert!(done.is_empty());
        let (done, _) = rs.on_segment(seg(2), 1);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].text, "long message here");
        assert_eq!(done[0].last_seq, 4);
        assert_eq!(rs.on_segment(seg(2), 1), (vec![], false));
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
        assert_eq!(sample, Some(Duration::from_millis(10)));
        assert_eq!(ps.due(t0 + rto, &sb), vec![1], "the lost one; the sacked one waits longer");
        // Logged both: delivered, and released when the only peer has them.
        ps.on_ack(t0 + rto, 2, &[]);
        assert_eq!(sb.delivered_up_to(ps.cum()), vec!["a".to_owned(), "b".to_owned()]);
        assert!(sb.delivered_up_to(ps.cum()).is_empty());
        sb.release(Some(ps.cum()));
        assert!(sb.is_empty());
        assert_eq!(sb.base(), 3);
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
        let (done, _) = rs.on_segment(sb.get(3).cloned().unwrap(), sb.base());
        assert!(done.is_empty());
        let (done, _) = rs.on_segment(sb.get(2).cloned().unwrap(), sb.base());
        assert_eq!(done[0].text, "2a2b");
        assert_eq!(rs.ack().0, 1, "below base counts as persisted");
    }

    #[test]
    fn window_limits_what_is_in_flight() {
        let t0 = Instant::now();
        let mut sb = SendBuffer::new();
        for i in 0..(SEND_WINDOW_SEGMENTS + 10) {
            message(&mut sb, &i.to_string(), &["x"]);
        }
        let mut ps = PeerSend::default();
        assert_eq!(ps.due(t0, &sb).len(), SEND_WINDOW_SEGMENTS);
        assert!(!ps.has_unsent(&sb), "window full");
        ps.on_ack(t0, 5, &[]);
        assert!(ps.has_unsent(&sb));
        assert_eq!(ps.due(t0, &sb).len(), 5);
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
}
