//! Delivery benchmarks on loopback, each beside a raw-UDP baseline measured in the same run:
//! one-way latency of a chat message (sent by one network actor, shown by the other) against a
//! raw datagram, and acknowledged messages per second (each confirmed as logged by the
//! receiving app) against raw datagrams each answered by a raw ack. The sending app, too,
//! confirms each of its messages as logged before the network may send it, as `p2pchat chat`
//! does (the write itself, one `write` to the OS page cache, is not part of the figure). Each side runs as `p2pchat
//! chat` runs: a runtime of its own (as two processes would have, with the chat's worker count),
//! with the app's loop as a task beside the network actor; the raw baseline runs in the same two runtimes. After criterion's
//! figures, p50 and p99 of the one-way latencies are printed from 5000 sequential samples of
//! each, and the same figures are measured for the seed prototype's stack in Python
//! (`seed_stack.py`) when a Python with `cryptography` is at hand (`scripts/bench-seed` sets one
//! up).

// A benchmark that cannot set up fails loudly: there is nothing to measure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/delivery.rs"]
mod delivery;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use chrono::Utc;
use criterion::{Criterion, Throughput};
use delivery::{
    TEXT, acked_of_raw_and_chat, alternating, chat, config, on_worker, one_way_of_raw_and_chat,
    print_one_way, raw, runtime,
};
use p2pchat::proto::crypto::{Cipher, generate_key};
use p2pchat::proto::{NetCommand, NetEvent, Session};

/// Two sessions handing a message and its acknowledgement to each other in memory: the CPU one
/// message costs both ends, without sockets or tasks.
struct SansIo {
    a: Session,
    b: Session,
    pa: SocketAddr,
    pb: SocketAddr,
}

impl SansIo {
    fn new() -> Self {
        let key = generate_key();
        let (pa, pb) = ("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:2000".parse().unwrap());
        let session = |name, peer, seed| {
            let cipher = Cipher::from_key(&key).unwrap();
            Session::new(config(name, peer), cipher, Instant::now(), Utc::now(), seed)
        };
        let mut pair = Self { a: session("a", pb, 1), b: session("b", pa, 2), pa, pb };
        let now = Instant::now();
        pair.a.handle_timeout(now);
        pair.b.handle_timeout(now);
        for _ in 0..4 {
            pair.exchange(now);
        }
        while pair.a.poll_event().is_some() || pair.b.poll_event().is_some() {}
        pair
    }

    /// Carries what each side queued to the other; returns the receipts `b` was handed.
    fn exchange(&mut self, now: Instant) -> Vec<NetEvent> {
        while let Some(t) = self.a.poll_transmit() {
            self.b.handle_datagram(now, self.pa, &t.payload);
        }
        while let Some(t) = self.b.poll_transmit() {
            self.a.handle_datagram(now, self.pb, &t.payload);
        }
        std::iter::from_fn(|| self.b.poll_event()).collect()
    }

    fn message(&mut self) {
        let now = Instant::now();
        self.a.handle_command(now, NetCommand::Send { text: TEXT.into() });
        while let Some(event) = self.a.poll_event() {
            if let NetEvent::Sent { id, .. } = event {
                self.a.handle_command(now, NetCommand::Logged(id));
            }
        }
        for event in self.exchange(now) {
            if let NetEvent::Message { receipt: Some(receipt), .. } = event {
                self.b.handle_command(now, NetCommand::Persisted(receipt));
            }
        }
        self.exchange(now);
        let delivered = std::iter::from_fn(|| self.a.poll_event())
            .filter(|e| matches!(e, NetEvent::Delivered { .. }))
            .count();
        assert_eq!(delivered, 1, "the message was not delivered");
    }
}

fn main() {
    // Two runtimes, as two `p2pchat chat` processes would have; both baselines use both.
    let (left, right) = (runtime(), runtime());
    let mut chat = Some(chat(&left, &right));
    let mut udp = Some(raw(&left, &right));
    let mut c = Criterion::default().configure_from_args();

    // The cryptographic and JSON work on one message, both ends: a share of the latency gap.
    let cipher = Cipher::from_key(&generate_key()).expect("key");
    let envelope = serde_json::json!({
        "type": "message", "name": "alice", "timestamp": "2026-11-25T12:00:00.000Z",
        "text": TEXT, "id": "00112233aabbccdd", "epoch": 1u64, "seq": 1u64, "base": 1u64,
        "part": 0, "parts": 1,
    });
    c.bench_function("seal_and_open_one_message", |b| {
        b.iter(|| {
            let sealed = cipher.seal(&serde_json::to_vec(&envelope).expect("json"), 1_780_000_000);
            let opened = cipher.open(&sealed, 1_780_000_000).expect("open");
            serde_json::from_slice::<serde_json::Value>(&opened).expect("json")
        })
    });
    // Everything both sessions do for one message and its acknowledgement, without IO.
    let mut sans_io = SansIo::new();
    c.bench_function("message_and_ack_sans_io", |b| b.iter(|| sans_io.message()));

    let mut group = c.benchmark_group("one_way_latency");
    one_way_of_raw_and_chat(&mut group, &left, &mut udp, &mut chat);
    group.finish();

    let mut group = c.benchmark_group("acked_messages");
    group.throughput(Throughput::Elements(1));
    acked_of_raw_and_chat(&mut group, &left, &mut udp, &mut chat);
    group.finish();
    c.final_summary();

    // Alternating runs of each, so both meet the same neighbours on this machine.
    let (rounds, per_round) = (10, 500);
    let samples = rounds * per_round;
    let [mut raw_lat, mut chat_lat] = alternating(
        rounds,
        per_round,
        [&mut |n| on_worker(&left, &mut udp, move |u| u.one_way(n)), &mut |n| {
            on_worker(&left, &mut chat, move |c| c.one_way(n))
        }],
    );
    let [raw_udp, p2pchat] =
        print_one_way(samples, [("raw UDP", &mut raw_lat), ("p2pchat", &mut chat_lat)]);
    let (chat_p50, chat_p99) = (p2pchat.p50_us, p2pchat.p99_us);
    let ratio = chat_p50 / raw_udp.p50_us;
    println!("  p50 ratio p2pchat / raw UDP: {ratio:.2}");

    let batch = 20_000;
    let elapsed = on_worker(&left, &mut chat, move |c| c.acked_batch(batch));
    let rate = batch as f64 / elapsed.as_secs_f64();
    println!("acknowledged messages/s, {batch} in a row: {rate:.0}");
    match seed_stack(samples, batch) {
        Ok(seed) => {
            println!("against the seed's stack in Python ({}), same measurement:", seed.python);
            let rows = [
                ("one-way p50 µs", chat_p50, seed.p50_us),
                ("one-way p99 µs", chat_p99, seed.p99_us),
                ("acked msgs/s", rate, seed.acked_per_s),
            ];
            for (name, ours, theirs) in rows {
                println!(
                    "  {name:<15} p2pchat {ours:>9.1}   seed stack {theirs:>9.1}   ratio {:.2}",
                    ours / theirs
                );
            }
        }
        Err(why) => println!("seed-stack baseline not run: {why}"),
    }
}

/// The seed stack's figures (`benches/seed_stack.py`).
struct Seed {
    python: String,
    p50_us: f64,
    p99_us: f64,
    acked_per_s: f64,
}

/// Runs `benches/seed_stack.py` with `$P2PCHAT_PYTHON` (as `scripts/bench-seed` sets it up),
/// else with a `python3` that has `cryptography`.
fn seed_stack(samples: usize, batch: u64) -> Result<Seed, String> {
    let python = std::env::var("P2PCHAT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let has_fernet = Command::new(&python).args(["-c", "import cryptography.fernet"]).output();
    if !has_fernet.is_ok_and(|o| o.status.success()) {
        return Err(format!(
            "{python} with the cryptography package not found (run scripts/bench-seed)"
        ));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/seed_stack.py");
    let out = Command::new(&python)
        .arg(script)
        .args(["--samples", &samples.to_string(), "--batch", &batch.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let figures: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
    let figure = |name: &str| figures[name].as_f64().ok_or(format!("no {name} in the output"));
    Ok(Seed {
        python,
        p50_us: figure("p50_us")?,
        p99_us: figure("p99_us")?,
        acked_per_s: figure("acked_per_s")?,
    })
}
