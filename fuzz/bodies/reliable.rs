//! The reliable streams driven directly: a receiving stream fed segments with any numbers
//! (as a peer holding the key could send), and a sending side fed acknowledgements with any
//! numbers, between messages pushed, logged, sent, delivered and released as the session does.
//! It must never panic; the receiver's cumulative acknowledgement never goes back; nothing is
//! reported delivered that was never sent.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use p2pchat::proto::reliable::{PeerSend, RecvStream, Segment, SendBuffer};

/// One step.
#[derive(Debug, Arbitrary)]
enum Step {
    /// A segment from the peer.
    Segment {
        seq: u64,
        base: u64,
        id: u8,
        part: u32,
        parts: u32,
        text: String,
    },
    /// The app logged the next message handed to it.
    Logged,
    /// We send a message in `parts` parts; `logged`: it is in our log already.
    Push {
        id: u8,
        parts: Vec<String>,
        logged: bool,
    },
    /// Our log took a message that waited for it.
    OurLog(u8),
    /// An acknowledgement from the peer.
    Ack {
        cum: u64,
        sack: Vec<u64>,
    },
    /// Time passes; whatever is due is sent.
    Wait {
        ms: u16,
    },
    /// The path goes away, or the peer restarts.
    Pause,
    Reset,
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(steps) = u.arbitrary::<Vec<Step>>() else { return };
    let mut now = Instant::now();
    let mut recv = RecvStream::default();
    let mut to_log: Vec<u64> = Vec::new();
    let mut cum_before = 0;
    let mut buffer = SendBuffer::new();
    let mut send = PeerSend::default();
    let mut highest_sent = 0;
    for step in steps {
        match step {
            Step::Segment { seq, base, id, part, parts, text } => {
                let id = id.to_string();
                let segment = Segment { seq, id, part, parts, text, timestamp: String::new() };
                if let Ok(received) = recv.on_segment(segment, base) {
                    to_log.extend(received.complete.iter().map(|c| c.last_seq));
                }
            }
            Step::Logged => {
                if !to_log.is_empty() {
                    recv.persisted(to_log.remove(0));
                }
            }
            Step::Push { id, parts, logged } => {
                if !parts.is_empty() && buffer.len() + parts.len() <= 1024 {
                    buffer.push(&id.to_string(), parts, "t", false, logged);
                }
            }
            Step::OurLog(id) => {
                buffer.logged(&id.to_string());
            }
            Step::Ack { cum, sack } => {
                if send.on_ack(now, cum, &sack).is_ok() {
                    assert!(send.cum() <= highest_sent, "acknowledged beyond what was sent");
                    let _ = buffer.delivered_up_to(send.cum());
                    buffer.release(Some(send.cum()));
                }
            }
            Step::Wait { ms } => {
                now += Duration::from_millis(u64::from(ms));
                for seq in send.due(now, &buffer) {
                    highest_sent = highest_sent.max(seq);
                    let _ = buffer.announce(seq);
                }
                let _ = (send.next_due(), send.has_unsent(&buffer));
            }
            Step::Pause => send.pause(),
            Step::Reset => send.reset(),
        }
        let (cum, sack) = recv.ack();
        assert!(cum >= cum_before, "the acknowledgement went back");
        assert!(sack.iter().all(|s| *s > cum));
        cum_before = cum;
    }
}
