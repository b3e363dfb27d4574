//! Delivery benchmarks on loopback, each beside a raw-UDP baseline measured in the same run:
//! one-way latency of a chat message (sent by one network actor, shown by the other) against a
//! raw datagram, and acknowledged messages per second (each confirmed as logged by the
//! receiving app) against raw datagrams each answered by a raw ack. After criterion's figures, p50 and
//! p99 of the one-way latencies are printed from 5000 sequential samples of each, and the same
//! figures are measured for the seed prototype's stack in Python (`seed_stack.py`) when a
//! Python with `cryptography` is at hand (`scripts/bench-seed` sets one up).

// A benchmark that cannot set up fails loudly: there is nothing to measure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use p2pchat::chat::spawn_session;
use p2pchat::consts::OFFLINE_AFTER;
use p2pchat::net::NetHandle;
use p2pchat::proto::crypto::{Cipher, generate_key};
use p2pchat::proto::{Mode, NetCommand, NetEvent, SessionConfig};
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The raw baseline's window: it has no retransmission, so it must not overrun the receiver's
/// default socket buffer (p2pchat's window is `SEND_WINDOW_SEGMENTS`, and it retransmits).
const RAW_WINDOW: u64 = 64;

const TEXT: &str = "a typical chat message, about sixty bytes of text in it";

/// Two network actors chatting directly: `sent` receives the sender's Delivered events, `shown`
/// the instants at which the receiver got each message (it confirms at once, as a logging app
/// would after its write).
struct Pair {
    commands: mpsc::Sender<NetCommand>,
    delivered: mpsc::Receiver<()>,
    shown: mpsc::Receiver<Instant>,
}

async fn actor(name: &str, bind: SocketAddr, peer: SocketAddr, key: &str) -> NetHandle {
    let socket = UdpSocket::bind(bind).await.expect("bind");
    let config = SessionConfig {
        name: name.into(),
        mode: Mode::Direct { peer },
        stun_server: None,
        private_endpoints: Vec::new(),
        offline_after: OFFLINE_AFTER,
        pending: Vec::new(),
        seen: Vec::new(),
        rekey: None,
    };
    spawn_session(socket, config, Cipher::from_key(key).expect("key")).expect("actor")
}

async fn pair() -> Pair {
    let key = generate_key();
    let free = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (pa, pb) = (free(), free());
    let mut a = actor("a", pa, pb, &key).await;
    let mut b = actor("b", pb, pa, &key).await;
    let (online_tx, mut online_rx) = mpsc::channel(2);
    let (shown_tx, shown) = mpsc::channel(1 << 16);
    let b_commands = b.commands.clone();
    let b_online = online_tx.clone();
    tokio::spawn(async move {
        while let Some(event) = b.events.recv().await {
            match event {
                NetEvent::PeerOnline { .. } => {
                    let _ = b_online.send(()).await;
                }
                NetEvent::Message { receipt, .. } => {
                    let _ = shown_tx.send(Instant::now()).await;
                    if let Some(receipt) = receipt {
                        let _ = b_commands.send(NetCommand::Persisted(receipt)).await;
                    }
                }
                _ => {}
            }
        }
    });
    let (delivered_tx, delivered) = mpsc::channel(1 << 16);
    let commands = a.commands.clone();
    tokio::spawn(async move {
        while let Some(event) = a.events.recv().await {
            match event {
                NetEvent::PeerOnline { .. } => {
                    let _ = online_tx.send(()).await;
                }
                NetEvent::Delivered { .. } => {
                    let _ = delivered_tx.send(()).await;
                }
                _ => {}
            }
        }
    });
    online_rx.recv().await;
    online_rx.recv().await;
    Pair { commands, delivered, shown }
}

impl Pair {
    async fn one_way(&mut self) -> Duration {
        let sent = Instant::now();
        self.commands.send(NetCommand::Send { text: TEXT.into() }).await.expect("send");
        let shown = self.shown.recv().await.expect("shown");
        self.delivered.recv().await.expect("delivered");
        shown - sent
    }

    async fn acked_batch(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            self.commands.send(NetCommand::Send { text: TEXT.into() }).await.expect("send");
        }
        for _ in 0..n {
            self.delivered.recv().await.expect("delivered");
            self.shown.recv().await.expect("shown");
        }
        start.elapsed()
    }
}

/// Raw UDP: `a` sends datagrams of the same size; `b` stamps their arrival and answers each
/// with an 8-byte ack.
struct Raw {
    a: UdpSocket,
    shown: mpsc::Receiver<Instant>,
    payload: Vec<u8>,
}

async fn raw() -> Raw {
    let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    a.connect(b.local_addr().expect("addr")).await.expect("connect");
    let (tx, shown) = mpsc::channel(1 << 16);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((_, from)) = b.recv_from(&mut buf).await {
            let _ = tx.send(Instant::now()).await;
            let _ = b.send_to(&buf[..8], from).await;
        }
    });
    // The size our message's datagram has: a sealed JSON envelope is about this long.
    Raw { a, shown, payload: vec![b'x'; 300] }
}

impl Raw {
    async fn one_way(&mut self) -> Duration {
        let mut ack = [0u8; 64];
        let sent = Instant::now();
        self.a.send(&self.payload).await.expect("send");
        let shown = self.shown.recv().await.expect("shown");
        self.a.recv(&mut ack).await.expect("ack");
        shown - sent
    }

    async fn acked_batch(&mut self, n: u64) -> Duration {
        let mut ack = [0u8; 64];
        let start = Instant::now();
        let (mut sent, mut acked) = (0u64, 0u64);
        while acked < n {
            while sent < n && sent - acked < RAW_WINDOW {
                self.a.send(&self.payload).await.expect("send");
                sent += 1;
            }
            let got = tokio::time::timeout(Duration::from_secs(5), self.a.recv(&mut ack)).await;
            got.expect("raw UDP has no retransmission: a datagram was lost").expect("ack");
            self.shown.recv().await.expect("shown");
            acked += 1;
        }
        start.elapsed()
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn main() {
    let rt = Runtime::new().expect("runtime");
    let mut chat = rt.block_on(pair());
    let mut udp = rt.block_on(raw());
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

    let mut group = c.benchmark_group("one_way_latency");
    group.bench_function("raw_udp", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    t += udp.one_way().await;
                }
                t
            })
        })
    });
    group.bench_function("p2pchat", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    t += chat.one_way().await;
                }
                t
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("acked_messages");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_udp", |b| b.iter_custom(|iters| rt.block_on(udp.acked_batch(iters))));
    group
        .bench_function("p2pchat", |b| b.iter_custom(|iters| rt.block_on(chat.acked_batch(iters))));
    group.finish();
    c.final_summary();

    let samples = 5000;
    let (mut raw_lat, mut chat_lat) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..samples {
            raw_lat.push(udp.one_way().await);
            chat_lat.push(chat.one_way().await);
        }
    });
    println!("one-way latency over {samples} sequential samples each (loopback):");
    for (name, lat) in [("raw UDP", &mut raw_lat), ("p2pchat", &mut chat_lat)] {
        let (p50, p99) = (percentile(lat, 0.5), percentile(lat, 0.99));
        println!(
            "  {name:<8} p50 {:>7.1} µs   p99 {:>7.1} µs",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    let chat_p50 = percentile(&mut chat_lat, 0.5).as_secs_f64() * 1e6;
    let chat_p99 = percentile(&mut chat_lat, 0.99).as_secs_f64() * 1e6;
    let ratio = chat_p50 / (percentile(&mut raw_lat, 0.5).as_secs_f64() * 1e6);
    println!("  p50 ratio p2pchat / raw UDP: {ratio:.2}");

    let batch = 20_000;
    let rate = batch as f64 / rt.block_on(chat.acked_batch(batch)).as_secs_f64();
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
