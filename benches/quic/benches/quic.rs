//! The delivery benchmark beside a peer users would pick instead: QUIC, with quinn (the
//! transport under iroh), on loopback, in the same run and the same two runtimes as raw UDP and
//! p2pchat (the harness of `benches/delivery.rs`, `benches/support/delivery.rs`). Each sender
//! runs on the left runtime's worker, each receiver on the right one's; every receiver stamps
//! the moment its side holds the message, and one-way latency is from the send until that
//! stamp, on one clock. Each sample ends when the sender holds the answer:
//!
//! - raw UDP: a 376-byte datagram (the size of p2pchat's sealed message), an 8-byte answer;
//! - p2pchat: the chat message, delivered (confirmed as in the receiver's log);
//! - quinn stream: one connection; each message a new bidirectional stream on which the sender
//!   writes the 55-byte text and finishes, and the receiver reads it to its end, stamps, writes a
//!   3-byte acknowledgement and finishes; the sample ends when the sender has read that to its
//!   end;
//! - quinn datagram: on a connection of its own, an unreliable QUIC datagram of the text and an
//!   8-byte sequence number; the receiver stamps and answers with a datagram of the number.
//!
//! criterion measures `one_way_latency/{raw_udp,p2pchat,quinn_stream,quinn_datagram}` (the mean
//! of sequential one-way latencies) and `acked_messages/{raw_udp,p2pchat,quinn_stream}`
//! (messages a second, each answered, with a window of unanswered ones); then all four take
//! turns in 10 rounds of 500 sequential samples each, and p50 and p99 of each and their ratios
//! are printed.

// A benchmark that cannot set up fails loudly: there is nothing to measure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../support/delivery.rs"]
mod delivery;

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use delivery::{
    RAW_WINDOW, TEXT, acked_of_raw_and_chat, alternating, chat, on_worker, one_way_of_raw_and_chat,
    print_one_way, raw, runtime,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use quinn::{ClientConfig, Connection, Endpoint, ServerConfig, TransportConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// What the receiver writes back on each stream.
const STREAM_ACK: &[u8] = b"ack";

/// How long a sender waits for a stream's acknowledgement before the benchmark fails: a stream
/// is reliable, so no answer means the connection broke.
const STREAM_DEADLINE: Duration = Duration::from_secs(5);

/// How long a sender waits for a datagram's answer before it counts the datagram (or its
/// answer) as lost, skips the sample and sends the next one. A late answer is recognised by its
/// sequence number and ignored.
const DATAGRAM_DEADLINE: Duration = Duration::from_secs(1);

/// The server name in the certificate, and the name the client expects.
const SERVER_NAME: &str = "localhost";

/// quinn's defaults, but for the idle timeout, which is off (default: 30 s): the connection
/// sits unused while criterion measures the other stacks, which can take longer than that, and
/// no keep-alive traffic should run beside them. Datagrams need nothing set: quinn accepts them
/// by default (a 1.25 MB receive buffer, 1 MiB to send).
fn transport() -> Arc<TransportConfig> {
    let mut transport = TransportConfig::default();
    transport.max_idle_timeout(None);
    Arc::new(transport)
}

/// A quinn client connected to a quinn server on loopback, the client's endpoint in the left
/// runtime and the server's in the right; the server stamps each message it holds.
struct Quic {
    connection: Connection,
    /// When the receiver held each stream's message.
    stream_shown: mpsc::UnboundedReceiver<Instant>,
    /// When the receiver held each datagram, by its sequence number.
    datagram_shown: mpsc::UnboundedReceiver<(u64, Instant)>,
    /// The last datagram's sequence number.
    seq: u64,
    /// Datagrams with no answer within `DATAGRAM_DEADLINE` (their samples skipped).
    lost: u64,
    /// Kept so the client's socket and driver live as long as the connection is used.
    _client: Endpoint,
}

/// Starts the server in the right runtime and connects to it from the left one. The server's
/// certificate is self-signed, made now, and the only root the client trusts.
fn quic(left: &Runtime, right: &Runtime) -> Quic {
    let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let mut server_config =
        ServerConfig::with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key)).unwrap();
    server_config.transport_config(transport());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client_config = ClientConfig::with_root_certificates(Arc::new(roots)).unwrap();
    client_config.transport_config(transport());

    // quinn spawns an endpoint's driver, and the drivers of its connections, on the runtime
    // the endpoint is made in.
    let server = {
        let _right = right.enter();
        Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap()
    };
    let server_addr = server.local_addr().unwrap();
    let (stream_tx, stream_shown) = mpsc::unbounded_channel();
    let (datagram_tx, datagram_shown) = mpsc::unbounded_channel();
    right.spawn(async move {
        let incoming = server.accept().await.expect("a connection");
        let connection = incoming.await.expect("handshake");
        tokio::spawn(answer_datagrams(connection.clone(), datagram_tx));
        answer_streams(connection, stream_tx).await;
        drop(server);
    });
    let (client, connection) = left.block_on(async {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut client = Endpoint::client(any).unwrap();
        client.set_default_client_config(client_config);
        let connection = client.connect(server_addr, SERVER_NAME).unwrap().await.unwrap();
        (client, connection)
    });
    assert!(connection.max_datagram_size().is_some(), "the server takes no datagrams");
    Quic { connection, stream_shown, datagram_shown, seq: 0, lost: 0, _client: client }
}

/// The receiver's side of the stream path: each stream read to its end, stamped, and answered
/// with `STREAM_ACK` on the same stream, one stream after another in the order they came.
async fn answer_streams(connection: Connection, shown: mpsc::UnboundedSender<Instant>) {
    while let Ok((mut send, mut recv)) = connection.accept_bi().await {
        if recv.read_to_end(TEXT.len()).await.is_err() {
            continue;
        }
        let _ = shown.send(Instant::now());
        if send.write_all(STREAM_ACK).await.is_ok() {
            let _ = send.finish();
        }
    }
}

/// The receiver's side of the datagram path: each datagram stamped with its sequence number
/// (its last 8 bytes) and answered with a datagram of that number.
async fn answer_datagrams(connection: Connection, shown: mpsc::UnboundedSender<(u64, Instant)>) {
    while let Ok(datagram) = connection.read_datagram().await {
        let held = Instant::now();
        let Some(start) = datagram.len().checked_sub(8) else {
            continue;
        };
        let seq = datagram.slice(start..);
        let _ = shown.send((u64::from_le_bytes(seq[..].try_into().unwrap()), held));
        let _ = connection.send_datagram(seq);
    }
}

/// One message on a stream of its own, until its acknowledgement is read to its end.
async fn stream_message(connection: &Connection) {
    let exchange = async {
        let (mut send, mut recv) = connection.open_bi().await?;
        send.write_all(TEXT.as_bytes()).await?;
        send.finish()?;
        Ok::<_, Box<dyn Error + Send + Sync>>(recv.read_to_end(STREAM_ACK.len()).await?)
    };
    let answered = timeout(STREAM_DEADLINE, exchange).await;
    let ack = answered.expect("no acknowledgement on the stream in time").expect("stream");
    assert_eq!(ack, STREAM_ACK, "a different acknowledgement");
}

impl Quic {
    /// One message after another, each on a new stream once the previous one is acknowledged:
    /// the time from opening its stream until the receiver had read it to its end.
    async fn stream_one_way(mut self, n: usize) -> (Self, Vec<Duration>) {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let sent = Instant::now();
            stream_message(&self.connection).await;
            let shown = self.stream_shown.try_recv().expect("stamped before it was answered");
            samples.push(shown - sent);
        }
        (self, samples)
    }

    /// `n` messages, each on a stream of its own, `RAW_WINDOW` unacknowledged at most (below
    /// quinn's default of 100 concurrent streams), until all are acknowledged.
    async fn stream_acked_batch(mut self, n: u64) -> (Self, Duration) {
        let connection = self.connection.clone();
        let start = Instant::now();
        let mut in_flight = FuturesUnordered::new();
        let (mut sent, mut acked) = (0u64, 0u64);
        while acked < n {
            while sent < n && sent - acked < RAW_WINDOW {
                in_flight.push(stream_message(&connection));
                sent += 1;
            }
            in_flight.next().await.expect("a message in flight");
            acked += 1;
        }
        let elapsed = start.elapsed();
        drop(in_flight);
        while self.stream_shown.try_recv().is_ok() {}
        (self, elapsed)
    }

    /// One datagram after another, each once the previous one is answered: the time from the
    /// send until the receiver held it. A datagram with no answer within `DATAGRAM_DEADLINE` is
    /// counted in `lost` and its sample skipped; `n` samples are taken all the same.
    async fn datagram_one_way(mut self, n: usize) -> (Self, Vec<Duration>) {
        let mut samples = Vec::with_capacity(n);
        while samples.len() < n {
            self.seq += 1;
            let seq = self.seq;
            let mut datagram = Vec::with_capacity(TEXT.len() + 8);
            datagram.extend_from_slice(TEXT.as_bytes());
            datagram.extend_from_slice(&seq.to_le_bytes());
            let datagram = Bytes::from(datagram);
            let sent = Instant::now();
            self.connection.send_datagram(datagram).expect("datagram");
            if !self.until_answered(seq).await {
                self.lost += 1;
                continue;
            }
            loop {
                let (shown, at) = self.datagram_shown.try_recv().expect("stamped before answered");
                if shown == seq {
                    samples.push(at - sent);
                    break;
                }
            }
        }
        (self, samples)
    }

    /// Waits for the answer to datagram `seq` (ignoring late answers to earlier ones): whether
    /// it came within `DATAGRAM_DEADLINE`.
    async fn until_answered(&mut self, seq: u64) -> bool {
        loop {
            let Ok(answer) = timeout(DATAGRAM_DEADLINE, self.connection.read_datagram()).await
            else {
                return false;
            };
            let answer = answer.expect("connection");
            if answer[..] == seq.to_le_bytes() {
                return true;
            }
        }
    }
}

fn main() {
    // Two runtimes, as two `p2pchat chat` processes would have; every stack uses both.
    let (left, right) = (runtime(), runtime());
    let mut chat = Some(chat(&left, &right));
    let mut udp = Some(raw(&left, &right));
    // A connection (and endpoints) for each of quinn's paths, as each baseline has its own.
    let mut quic_stream = Some(quic(&left, &right));
    let mut quic_datagram = Some(quic(&left, &right));
    let mut c = Criterion::default().configure_from_args();

    let mut group = c.benchmark_group("one_way_latency");
    one_way_of_raw_and_chat(&mut group, &left, &mut udp, &mut chat);
    group.bench_function("quinn_stream", |b| {
        b.iter_custom(|iters| {
            on_worker(&left, &mut quic_stream, move |q| q.stream_one_way(iters as usize))
                .iter()
                .sum()
        })
    });
    group.bench_function("quinn_datagram", |b| {
        b.iter_custom(|iters| {
            on_worker(&left, &mut quic_datagram, move |q| q.datagram_one_way(iters as usize))
                .iter()
                .sum()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("acked_messages");
    group.throughput(Throughput::Elements(1));
    acked_of_raw_and_chat(&mut group, &left, &mut udp, &mut chat);
    group.bench_function("quinn_stream", |b| {
        b.iter_custom(|iters| {
            on_worker(&left, &mut quic_stream, move |q| q.stream_acked_batch(iters))
        })
    });
    group.finish();
    c.final_summary();

    // All four take turns in each round, so they meet the same neighbours on this machine.
    let (rounds, per_round) = (10, 500);
    let [mut raw_lat, mut chat_lat, mut stream_lat, mut datagram_lat] = alternating(
        rounds,
        per_round,
        [
            &mut |n| on_worker(&left, &mut udp, move |u| u.one_way(n)),
            &mut |n| on_worker(&left, &mut chat, move |c| c.one_way(n)),
            &mut |n| on_worker(&left, &mut quic_stream, move |q| q.stream_one_way(n)),
            &mut |n| on_worker(&left, &mut quic_datagram, move |q| q.datagram_one_way(n)),
        ],
    );
    let [raw_udp, p2pchat, stream, datagram] = print_one_way(
        rounds * per_round,
        [
            ("raw UDP", &mut raw_lat),
            ("p2pchat", &mut chat_lat),
            ("quinn stream", &mut stream_lat),
            ("quinn datagram", &mut datagram_lat),
        ],
    );
    let ratios = [
        ("p2pchat / quinn stream", p2pchat.p50_us / stream.p50_us, p2pchat.p99_us / stream.p99_us),
        (
            "p2pchat / quinn datagram",
            p2pchat.p50_us / datagram.p50_us,
            p2pchat.p99_us / datagram.p99_us,
        ),
        ("p2pchat / raw UDP", p2pchat.p50_us / raw_udp.p50_us, p2pchat.p99_us / raw_udp.p99_us),
        ("quinn stream / raw UDP", stream.p50_us / raw_udp.p50_us, stream.p99_us / raw_udp.p99_us),
        (
            "quinn datagram / raw UDP",
            datagram.p50_us / raw_udp.p50_us,
            datagram.p99_us / raw_udp.p99_us,
        ),
    ];
    for (name, p50, p99) in ratios {
        println!("  ratio {name:<24} p50 {p50:>5.2}   p99 {p99:>5.2}");
    }
    let lost = quic_datagram.as_ref().map_or(0, |q| q.lost);
    println!("  quinn datagrams without an answer within {DATAGRAM_DEADLINE:?} (skipped): {lost}");
}
