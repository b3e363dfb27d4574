//! A conversation log of any length for benchmarks and tests, written straight to disk in the
//! format the app writes (one JSON record per line): two people, messages of mixed length
//! (some with wide CJK characters and emoji), each of ours confirmed a few records later,
//! presence changes now and then. Deterministic: the same `messages` gives the same file.
//! Message `NEEDLE_AT` (near the start) is the only one holding `NEEDLE`.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use chrono::{Duration, Local, TimeZone};
use p2pchat::history::{Delivery, Direction, Entry, FORMAT_VERSION, Record};

/// A phrase that occurs in exactly one message.
pub const NEEDLE: &str = "zebra-striped umbrella";

/// Which message holds it (for logs of more messages than this).
pub const NEEDLE_AT: usize = 1000;

const WORDS: &[&str] = &[
    "the", "meeting", "moved", "to", "three", "ok", "sounds", "good", "did", "you", "see", "patch",
    "build", "is", "green", "again", "coffee", "later", "lunch", "deploy", "tonight", "maybe",
    "tomorrow", "works", "for", "me", "thanks", "ping", "when", "free", "世界", "你好", "👋", "🎉",
];

/// Writes a log of `messages` chat messages (plus their confirmations and some presence
/// records) to `path`, replacing it. Returns the file's size in bytes.
pub fn write_log(path: &Path, messages: usize) -> io::Result<u64> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let start = Local.with_ymd_and_hms(2020, 1, 1, 9, 0, 0).single().expect("a valid date");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |bound: usize| {
        // xorshift64*: fast, deterministic, good enough to vary lengths and words.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound.max(1)
    };
    let mut unconfirmed: Vec<(usize, String)> = Vec::new();
    for i in 0..messages {
        let at =
            (start + Duration::seconds(i64::try_from(i).unwrap_or(i64::MAX) * 37)).fixed_offset();
        let ours = next(2) == 0;
        let mut text = format!("#{i}");
        for _ in 0..1 + next(24) {
            text.push(' ');
            text.push_str(WORDS[next(WORDS.len())]);
        }
        if i == NEEDLE_AT {
            text.push_str(" — bring the ");
            text.push_str(NEEDLE);
        }
        let id = format!("{i:016x}");
        let entry = Entry::Message {
            dir: if ours { Direction::Out } else { Direction::In },
            from: if ours { "ann" } else { "bob" }.to_owned(),
            text,
            sent_at: Some(at.to_rfc3339()),
            id: Some(id.clone()),
            state: ours.then_some(Delivery::Sent),
            reason: None,
        };
        write(&mut out, &Record { v: FORMAT_VERSION, at, entry })?;
        if ours {
            unconfirmed.push((i + 1 + next(3), id));
        }
        let (due, later): (Vec<_>, Vec<_>) =
            unconfirmed.drain(..).partition(|(when, _)| *when <= i);
        unconfirmed = later;
        for (_, id) in due {
            write(&mut out, &Record { v: FORMAT_VERSION, at, entry: Entry::Delivered { id } })?;
        }
        if next(500) == 0 {
            let entry = Entry::Presence {
                peer: "bob".into(),
                online: next(2) == 0,
                addr: None,
                reason: None,
            };
            write(&mut out, &Record { v: FORMAT_VERSION, at, entry })?;
        }
    }
    out.flush()?;
    Ok(fs::metadata(path)?.len())
}

fn write(out: &mut impl Write, record: &Record) -> io::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")
}
