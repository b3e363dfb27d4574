//! A relayed chat beside a direct one, in one run, through the real binary as people run it:
//! in the NAT lab (`tests/integration/natlab.rs`: network namespaces, nftables NATs, Debian's
//! coturn beside `p2pchat server --turn`), two `p2pchat chat --headless` processes behind cone
//! NATs chat directly while two behind symmetric NATs chat through coturn. A driver writes a
//! line into one process and times it out of the other (one-way latency, including both
//! processes' stdin and stdout), alternating the two pairs in runs of 50; then each side sends a
//! burst and waits for every `delivered` (acknowledged messages per second). Needs root and the
//! lab's tools; prints why and exits otherwise. Run it with `cargo bench --bench relay`.

// A benchmark that cannot set up fails loudly: there is nothing to measure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unused_imports)]
#[path = "../tests/integration/harness.rs"]
mod harness;
#[allow(dead_code, unused_imports)]
#[path = "../tests/integration/natlab.rs"]
mod natlab;
#[allow(dead_code, unused_imports)]
#[path = "../tests/integration/terminal.rs"]
mod terminal;

use std::time::{Duration, Instant};

use harness::{Proc, TempDir, keygen};
use natlab::{Kind, Lab};

const SAMPLES: usize = 500;
const RUN: usize = 50;
const BURST: usize = 2000;
const TEXT: &str = "a typical chat message, about sixty bytes of text in it";

/// One pair of chats and its figures.
struct Pair {
    label: &'static str,
    a: Proc,
    b: Proc,
    one_way: Vec<Duration>,
}

/// Waits for `p`'s peer to be online; returns the path.
fn online(p: &mut Proc) -> String {
    let v = p.expect(Duration::from_secs(20), "peer_online", |v| v["event"] == "peer_online");
    v["path"].as_str().unwrap_or_default().to_owned()
}

/// Writes a line into `from` and times it out of `to`.
fn one_way(from: &mut Proc, to: &mut Proc, text: &str) -> Duration {
    let start = Instant::now();
    from.say(text);
    to.expect(Duration::from_secs(5), "message", |v| v["event"] == "message" && v["text"] == text);
    start.elapsed()
}

/// Sends `count` messages from `from` and waits until the peer confirmed them all as logged.
fn acknowledged_per_second(from: &mut Proc, count: usize, tag: &str) -> f64 {
    // What is left of earlier phases (their deliveries too) must not count.
    while from.line(Duration::from_millis(200)).is_some() {}
    let start = Instant::now();
    for i in 0..count {
        from.say(&format!("{tag} {i} {TEXT}"));
    }
    let mut delivered = 0;
    while delivered < count {
        let line = from.line(Duration::from_secs(30)).expect("a delivery within 30 s");
        if line.contains("\"event\":\"delivered\"") {
            delivered += 1;
        }
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1e6
}

fn main() {
    let Some(mut lab) = Lab::new() else {
        println!("relay bench skipped: the NAT lab cannot run here (see above)");
        return;
    };
    let mut host = |kind| lab.router(kind, 1).remove(0);
    let hosts = [host(Kind::Cone), host(Kind::Cone), host(Kind::Symmetric), host(Kind::Symmetric)];
    let key = keygen();
    let data = TempDir::new("bench-relay");
    let mut pairs = [("direct (cone × cone)", "d", 0), ("relayed (symmetric × symmetric)", "r", 2)]
        .map(|(label, room, h)| Pair {
            label,
            a: lab.peer(&hosts[h], "a", room, &key, &data),
            b: lab.peer(&hosts[h + 1], "b", room, &key, &data),
            one_way: Vec::new(),
        });
    for pair in &mut pairs {
        let paths = (online(&mut pair.a), online(&mut pair.b));
        println!("{}: paths {paths:?}", pair.label);
    }
    // Warm up both paths, then alternate runs so both see the same machine.
    for pair in &mut pairs {
        for i in 0..20 {
            one_way(&mut pair.a, &mut pair.b, &format!("warm {i}"));
        }
    }
    for run in 0..SAMPLES / RUN {
        for pair in &mut pairs {
            for i in 0..RUN {
                let text = format!("{run}.{i} {TEXT}");
                let t = if i % 2 == 0 {
                    one_way(&mut pair.a, &mut pair.b, &text)
                } else {
                    one_way(&mut pair.b, &mut pair.a, &text)
                };
                pair.one_way.push(t);
            }
        }
    }
    println!();
    println!("| path | one-way p50 | one-way p99 | acknowledged messages/s ({BURST} in a row) |");
    println!("|---|---|---|---|");
    for pair in &mut pairs {
        let rate = acknowledged_per_second(&mut pair.a, BURST, "burst");
        println!(
            "| {} | {:.0} µs | {:.0} µs | {:.0} /s |",
            pair.label,
            percentile(&pair.one_way, 0.5),
            percentile(&pair.one_way, 0.99),
            rate
        );
    }
}
