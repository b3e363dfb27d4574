//! The delivery benchmarks' harness, shared by `benches/delivery.rs` and the QUIC baseline
//! (`benches/quic/`): two tokio runtimes as two `p2pchat chat` processes would have (the chat's
//! worker count each), a chat between two real network actors across them (`Chat`), raw UDP
//! between the same two runtimes (`Raw`), and one-way latencies taken in alternating runs and
//! printed as p50 and p99 in µs.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2pchat::chat::spawn_session;
use p2pchat::consts::{CHAT_RUNTIME_WORKERS, SEND_WINDOW_SEGMENTS};
use p2pchat::net::NetHandle;
use p2pchat::proto::crypto::{Cipher, generate_key};
use p2pchat::proto::{Mode, NetCommand, NetEvent, SessionConfig};
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The raw baseline's window: it has no retransmission, so it must not overrun the receiver's
/// default socket buffer (p2pchat's window is `SEND_WINDOW_SEGMENTS`, and it retransmits).
pub const RAW_WINDOW: u64 = 64;

/// The chat message every sender sends (55 bytes).
pub const TEXT: &str = "a typical chat message, about sixty bytes of text in it";

pub fn config(name: &str, peer: SocketAddr) -> SessionConfig {
    SessionConfig::new(name, Mode::Direct { peer })
}

/// A runtime as `p2pchat chat` has: multi-threaded, with the chat's worker count.
pub fn runtime() -> Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(CHAT_RUNTIME_WORKERS).enable_all().build().expect("runtime")
}

/// Runs `f` on `state` as a task on one of `rt`'s workers (where `p2pchat chat` runs its loop),
/// and puts the state back.
pub fn on_worker<S, T, F>(rt: &Runtime, state: &mut Option<S>, f: impl FnOnce(S) -> F) -> T
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
pub struct Chat {
    net: NetHandle,
    shown: mpsc::UnboundedReceiver<Instant>,
}

/// A loopback socket ready for tokio.
pub fn bind() -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
}

pub fn chat(left: &Runtime, right: &Runtime) -> Chat {
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
    pub async fn one_way(mut self, n: usize) -> (Self, Vec<Duration>) {
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
    pub async fn acked_batch(mut self, n: u64) -> (Self, Duration) {
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
pub struct Raw {
    socket: UdpSocket,
    shown: mpsc::UnboundedReceiver<Instant>,
}

pub fn raw(left: &Runtime, right: &Runtime) -> Raw {
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
pub const RAW_PAYLOAD: [u8; 376] = [b'x'; 376];

impl Raw {
    /// One datagram after another, each once the previous one is answered: the time from the
    /// send until the other side read it.
    pub async fn one_way(mut self, n: usize) -> (Self, Vec<Duration>) {
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

    /// `n` datagrams, `RAW_WINDOW` unanswered at most, until all are answered.
    pub async fn acked_batch(mut self, n: u64) -> (Self, Duration) {
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

pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

/// One sender's one-way latencies: `n` sequential samples a call.
pub type OneWay<'a> = &'a mut dyn FnMut(usize) -> Vec<Duration>;

/// `rounds` runs of `per_round` sequential samples of each sender, the senders taking turns
/// within each round, so all meet the same neighbours on this machine. Each sender's samples,
/// in the order given.
pub fn alternating<const N: usize>(
    rounds: usize,
    per_round: usize,
    mut senders: [OneWay<'_>; N],
) -> [Vec<Duration>; N] {
    let mut latencies = std::array::from_fn(|_| Vec::new());
    for _ in 0..rounds {
        for (one_way, latency) in senders.iter_mut().zip(&mut latencies) {
            latency.extend(one_way(per_round));
        }
    }
    latencies
}

/// The median and the 99th percentile of one sender's one-way latencies, in µs.
pub struct Percentiles {
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Prints p50 and p99 of each sender's one-way latencies in µs (`samples` each), one line a
/// sender, and returns them.
pub fn print_one_way<const N: usize>(
    samples: usize,
    senders: [(&str, &mut [Duration]); N],
) -> [Percentiles; N] {
    println!("one-way latency over {samples} sequential samples each (loopback):");
    let width = senders.iter().map(|(name, _)| name.chars().count()).fold(8, usize::max);
    senders.map(|(name, latency)| {
        let p50_us = percentile(latency, 0.5).as_secs_f64() * 1e6;
        let p99_us = percentile(latency, 0.99).as_secs_f64() * 1e6;
        println!("  {name:<width$} p50 {p50_us:>7.1} µs   p99 {p99_us:>7.1} µs");
        Percentiles { p50_us, p99_us }
    })
}

/// The criterion group the delivery benchmarks fill.
pub type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Raw UDP's and p2pchat's one-way latency as functions of `group`: each iteration one
/// message, sequential, from its send until the receiving side held it.
pub fn one_way_of_raw_and_chat(
    group: &mut Group<'_>,
    left: &Runtime,
    udp: &mut Option<Raw>,
    chat: &mut Option<Chat>,
) {
    group.bench_function("raw_udp", |b| {
        b.iter_custom(|iters| on_worker(left, udp, move |u| u.one_way(iters as usize)).iter().sum())
    });
    group.bench_function("p2pchat", |b| {
        b.iter_custom(|iters| {
            on_worker(left, chat, move |c| c.one_way(iters as usize)).iter().sum()
        })
    });
}

/// Raw UDP's and p2pchat's acknowledged messages as functions of `group`: each iteration one
/// message, as many in flight as each one's window takes.
pub fn acked_of_raw_and_chat(
    group: &mut Group<'_>,
    left: &Runtime,
    udp: &mut Option<Raw>,
    chat: &mut Option<Chat>,
) {
    group.bench_function("raw_udp", |b| {
        b.iter_custom(|iters| on_worker(left, udp, move |u| u.acked_batch(iters)))
    });
    group.bench_function("p2pchat", |b| {
        b.iter_custom(|iters| on_worker(left, chat, move |c| c.acked_batch(iters)))
    });
}
