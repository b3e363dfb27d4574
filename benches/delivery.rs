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

use std::future::Future;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput};
use p2pchat::chat::spawn_session;
use p2pchat::consts::{CHAT_RUNTIME_WORKERS, SEND_WINDOW_SEGMENTS};
use p2pchat::net::NetHandle;
use p2pchat::proto::crypto::{Cipher, generate_key};
use p2pchat::proto::{Mode, NetCommand, NetEvent, Session, SessionConfig};
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The raw baseline's window: it has no retransmission, so it must not overrun the receiver's
/// default socket buffer (p2pchat's window is `SEND_WINDOW_SEGMENTS`, and it retransmits).
const RAW_WINDOW: u64 = 64;

const TEXT: &str = "a typical chat message, about sixty bytes of text in it";

fn config(name: &str, peer: SocketAddr) -> SessionConfig {
    SessionConfig::new(name, Mode::Direct { peer })
}

/// Runs `f` on `state` as a task on one of `rt`'s workers (where `p2pchat chat` runs its loop),
/// and puts the state back.
fn on_worker<S, T, F>(rt: &Runtime, state: &mut Option<S>, f: impl FnOnce(S) -> F) -> T
where
    S: Send + 'static,
    T: Send + 'static,
    F: Future<Output = (S, T)> + Send + 'static,
{
    let (back, result) = rt.block_on(rt.spawn(f(state.take().expect("state")))).expect("task");
    *state = Some(back);
    result
}

/// The sending app: its network actor chats directly with a receiving app in the other runtime,
/// which confirms each message as logged the moment it sees it (as the app does after its
/// write) and stamps when it saw it.
struct Chat {
    net: NetHandle,
    shown: mpsc::UnboundedReceiver<Instant>,
}

/// A loopback socket ready for tokio.
fn bind() -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
}

fn chat(left: &Runtime, right: &Runtime) -> Chat {
    let key = generate_key();
    let (a, b) = (bind(), bind());
    let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let (shown_tx, shown) = mpsc::unbounded_channel();
    let (online_tx, mut online_rx) = mpsc::channel(1);
    let cipher = Cipher::from_key(&key).unwrap();
    right.spawn(async move {
        let socket = UdpSocket::from_std(b).unwrap();
        let mut net = spawn_session(socket, config("b", pa), cipher).expect("actor");
        while let Some(event) = net.events.recv().await {
            match event {
                NetEvent::PeerOnline { .. } => {
                    let _ = online_tx.send(()).await;
                }
                NetEvent::Message { receipt, .. } => {
                    let _ = shown_tx.send(Instant::now());
                    if let Some(receipt) = receipt {
                        let _ = net.commands.send(NetCommand::Persisted(receipt)).await;
                    }
                }
                _ => {}
            }
        }
    });
    let cipher = Cipher::from_key(&key).unwrap();
    let net = left
        .block_on(left.spawn(async move {
            let socket = UdpSocket::from_std(a).unwrap();
            let mut net = spawn_session(socket, config("a", pb), cipher).expect("actor");
            while !matches!(net.events.recv().await, Some(NetEvent::PeerOnline { .. })) {}
            net
        }))
        .expect("task");
    left.block_on(online_rx.recv());
    Chat { net, shown }
}

impl Chat {
    /// Waits for the next delivery; meanwhile our messages, which leave only once in our own
    /// log, are confirmed logged the moment they are told (as the app does after its write).
    async fn until_delivered(&mut self) {
        loop {
            match self.net.events.recv().await.expect("event") {
                NetEvent::Delivered { .. } => return,
                NetEvent::Sent { id, .. } | NetEvent::Queued { id, .. } => {
                    self.net.commands.send(NetCommand::Logged(id)).await.expect("logged");
                }
                _ => {}
            }
        }
    }

    /// One message after another, each once the previous one is delivered: the time from
    /// handing each to the actor until the other app held it.
    async fn one_way(mut self, n: usize) -> (Self, Vec<Duration>) {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let sent = Instant::now();
            self.net.commands.send(NetCommand::Send { text: TEXT.into() }).await.expect("send");
            self.until_delivered().await;
            let shown = self.shown.try_recv().expect("stamped before it was confirmed");
            samples.push(shown - sent);
        }
        (self, samples)
    }

    /// `n` messages as fast as the send window takes them, until all are delivered.
    async fn acked_batch(mut self, n: u64) -> (Self, Duration) {
        let start = Instant::now();
        let (mut sent, mut delivered) = (0, 0);
        while delivered < n {
            while sent < n && sent - delivered < SEND_WINDOW_SEGMENTS as u64 {
                let text = TEXT.into();
                self.net.commands.send(NetCommand::Send { text }).await.expect("send");
                sent += 1;
            }
            self.until_delivered().await;
            delivered += 1;
        }
        let elapsed = start.elapsed();
        while self.shown.try_recv().is_ok() {}
        (self, elapsed)
    }
}

/// Raw UDP between the same two runtimes: the left side sends datagrams of the size of our
/// sealed message; the right side stamps their arrival and answers each with an 8-byte ack.
struct Raw {
    socket: UdpSocket,
    shown: mpsc::UnboundedReceiver<Instant>,
}

fn raw(left: &Runtime, right: &Runtime) -> Raw {
    let (a, b) = (bind(), bind());
    a.connect(b.local_addr().unwrap()).unwrap();
    let (tx, shown) = mpsc::unbounded_channel();
    right.spawn(async move {
        let b = UdpSocket::from_std(b).unwrap();
        let mut buf = vec![0u8; 2048];
        while let Ok((_, from)) = b.recv_from(&mut buf).await {
            let _ = tx.send(Instant::now());
            let _ = b.send_to(&buf[..8], from).await;
        }
    });
    let socket = left.block_on(async { UdpSocket::from_std(a).unwrap() });
    Raw { socket, shown }
}

/// The size our message's datagram has: a sealed JSON envelope is about this long.
const RAW_PAYLOAD: [u8; 376] = [b'x'; 376];

impl Raw {
    async fn one_way(mut self, n: usize) -> (Self, Vec<Duration>) {
        let mut ack = [0u8; 64];
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let sent = Instant::now();
            self.socket.send(&RAW_PAYLOAD).await.expect("send");
            self.socket.recv(&mut ack).await.expect("ack");
            samples.push(self.shown.try_recv().expect("stamped before it was answered") - sent);
        }
        (self, samples)
    }

    async fn acked_batch(mut self, n: u64) -> (Self, Duration) {
        let mut ack = [0u8; 64];
        let start = Instant::now();
        let (mut sent, mut acked) = (0u64, 0u64);
        while acked < n {
            while sent < n && sent - acked < RAW_WINDOW {
                self.socket.send(&RAW_PAYLOAD).await.expect("send");
                sent += 1;
            }
            let got =
                tokio::time::timeout(Duration::from_secs(5), self.socket.recv(&mut ack)).await;
            got.expect("raw UDP has no retransmission: a datagram was lost").expect("ack");
            acked += 1;
        }
        let elapsed = start.elapsed();
        while self.shown.try_recv().is_ok() {}
        (self, elapsed)
    }
}

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

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn main() {
    // Two runtimes, as two `p2pchat chat` processes would have; both baselines use both.
    let runtime = || {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(CHAT_RUNTIME_WORKERS).enable_all().build().expect("runtime")
    };
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
    group.bench_function("raw_udp", |b| {
        b.iter_custom(|iters| {
            on_worker(&left, &mut udp, move |u| u.one_way(iters as usize)).iter().sum()
        })
    });
    group.bench_function("p2pchat", |b| {
        b.iter_custom(|iters| {
            on_worker(&left, &mut chat, move |c| c.one_way(iters as usize)).iter().sum()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("acked_messages");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_udp", |b| {
        b.iter_custom(|iters| on_worker(&left, &mut udp, move |u| u.acked_batch(iters)))
    });
    group.bench_function("p2pchat", |b| {
        b.iter_custom(|iters| on_worker(&left, &mut chat, move |c| c.acked_batch(iters)))
    });
    group.finish();
    c.final_summary();

    // Alternating runs of each, so both meet the same neighbours on this machine.
    let (rounds, per_round) = (10, 500);
    let samples = rounds * per_round;
    let (mut raw_lat, mut chat_lat) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        raw_lat.extend(on_worker(&left, &mut udp, move |u| u.one_way(per_round)));
        chat_lat.extend(on_worker(&left, &mut chat, move |c| c.one_way(per_round)));
    }
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
