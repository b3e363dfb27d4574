//! Rendezvous server throughput: registrations handled per second by the sans-IO core
//! (`Server::handle`: parse, room bookkeeping, the answer and introductions encoded), and end
//! to end through the real server loop on loopback (clients send, the server answers each with
//! `registered`). Raw UDP request/answer on the same sockets is the baseline for the latter.
//! Then the same while one address floods the server as fast as a socket sends (what users see
//! during an attack), and what a datagram over its sender's rate costs the core.

// A benchmark that cannot set up fails loudly: there is nothing to measure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use p2pchat::consts::{MAX_REGISTRATIONS, REGISTER_REFRESH, REGISTER_REFRESH_ALONE};
use p2pchat::proto::wire::{FromServer, ToServer};
use p2pchat::server::{self, Addresses, Server, Sockets};
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;

/// Requests in flight at once in the end-to-end runs.
const IN_FLIGHT: usize = 32;

/// Client sockets in the end-to-end runs, each on its own loopback address (127.1.x.y): the
/// server limits each address to `SOURCE_RATE` requests a second, as it would many users. At
/// the server's pace each sends about 130 a second, under the limit even for the few whose
/// addresses share a slot of the server's rate table.
const CLIENTS: usize = 1024;

fn register(room: String, name: &str) -> Vec<u8> {
    let message = ToServer::Register {
        room,
        name: name.into(),
        private: Vec::new(),
        nat: None,
        relay: None,
        cookie: None,
        also: Vec::new(),
    };
    serde_json::to_vec(&message).unwrap()
}

/// `IN_FLIGHT` clients at a time, taken in turn, each asking `to` something and waiting for
/// the answer (asking again after 200 ms without one), in rounds.
async fn rounds(clients: &[(UdpSocket, Vec<u8>)], to: SocketAddr, n: u64) -> Duration {
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let mut done = 0;
    let mut next = 0;
    while done < n {
        let batch = IN_FLIGHT.min(usize::try_from(n - done).unwrap());
        let group: Vec<&(UdpSocket, Vec<u8>)> =
            (0..batch).map(|k| &clients[(next + k) % clients.len()]).collect();
        next += batch;
        for (socket, request) in &group {
            socket.send_to(request, to).await.unwrap();
        }
        // As a client does: a request unanswered for 200 ms is sent again (a flood fills the
        // server's socket buffer, and the kernel drops what does not fit, ours too).
        for (socket, request) in &group {
            let mut tries = 0;
            loop {
                let wait = tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf));
                if wait.await.is_ok() {
                    break;
                }
                tries += 1;
                assert!(tries < 25, "no answer within 5 s");
                socket.send_to(request, to).await.unwrap();
            }
        }
        done += batch as u64;
    }
    start.elapsed()
}

/// The loopback address of client `i`: 127.1.x.y.
fn client_ip(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

async fn clients(requests: impl Fn(usize) -> Vec<u8>) -> Vec<(UdpSocket, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..CLIENTS {
        out.push((UdpSocket::bind((client_ip(i), 0)).await.unwrap(), requests(i)));
    }
    out
}

/// Sends new registrations to `to` from 127.0.0.2 as fast as the socket takes them until
/// `stop`; counts them in `sent`.
fn flood(to: SocketAddr, stop: &AtomicBool, sent: &AtomicU64) {
    let socket = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let requests: Vec<Vec<u8>> = (0..30_000).map(|i| register(format!("flood-{i}"), "x")).collect();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let _ = socket.send_to(&requests[(n % 30_000) as usize], to);
        n += 1;
    }
    sent.store(n, Ordering::Relaxed);
}

/// The names of the threads the server and the echo run on, to read the CPU time they spend.
const SERVER_THREAD: &str = "bench-server";
const ECHO_THREAD: &str = "bench-echo";

/// Requests each side serves in one capacity round, and the rounds (the two take turns).
const CAPACITY_REQUESTS: u64 = 30_000;
const CAPACITY_ROUNDS: u32 = 10;

/// A runtime with one worker, its threads named `name`.
fn one_worker(name: &str) -> Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).thread_name(name).enable_all().build().unwrap()
}

/// CPU time spent so far by this process's threads named `name` (the first field of Linux's
/// `/proc/<pid>/task/<tid>/schedstat`: nanoseconds on a CPU).
fn thread_cpu(name: &str) -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        if std::fs::read_to_string(dir.join("comm")).is_ok_and(|comm| comm.trim_end() == name) {
            let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap();
            ns += stat.split_whitespace().next().unwrap().parse::<u64>().unwrap();
        }
    }
    Duration::from_nanos(ns)
}

/// The resident set of this process (`VmRSS` in `/proc/self/status`), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Memory per registered peer: a fresh core takes `MAX_REGISTRATIONS` peers in rooms of two,
/// each from an address of its own, at 500 new registrations a (simulated) second and echoing
/// the cookie when asked for one, as clients do. The growth of the resident set over the second
/// half of the peers, per peer, in bytes (the first half also touches the fixed-size tables,
/// such as the rate table, which cost the same however many peers are held).
fn memory_per_peer() -> (usize, f64) {
    let primary: SocketAddr = "127.0.0.1:7777".parse().unwrap();
    let mut core = Server::new(Addresses { primary, alt: None });
    let start = Instant::now();
    core.handle_timeout(start);
    let mut half = 0;
    let mut held = 0;
    for i in 0..MAX_REGISTRATIONS {
        if i == MAX_REGISTRATIONS / 2 {
            half = rss_bytes();
        }
        let [_, b, c, d] = u32::try_from(i).unwrap().to_be_bytes();
        let from = SocketAddr::from(([10, b, c, d], 40_000));
        let now = start + Duration::from_millis(2 * u64::try_from(i).unwrap());
        let room = format!("room-{}", i / 2);
        let name = if i % 2 == 0 { "a" } else { "b" };
        let mut cookie = None;
        for _ in 0..2 {
            let request = ToServer::Register {
                room: room.clone(),
                name: name.into(),
                private: Vec::new(),
                nat: None,
                relay: None,
                cookie: cookie.take(),
                also: Vec::new(),
            };
            let answers = core.handle(now, primary, from, &serde_json::to_vec(&request).unwrap());
            for answer in answers {
                match serde_json::from_slice(&answer.transmit.payload).unwrap() {
                    FromServer::Cookie { cookie: c } => cookie = Some(c),
                    FromServer::Registered { .. } => held += 1,
                    _ => {}
                }
            }
            if cookie.is_none() {
                break;
            }
        }
    }
    assert_eq!(held, MAX_REGISTRATIONS, "every peer was registered");
    let grown = rss_bytes().saturating_sub(half);
    (held, grown as f64 / (held - MAX_REGISTRATIONS / 2) as f64)
}

fn main() {
    // First, while the process is small: what a registered peer costs in memory.
    let (peers, per_peer) = memory_per_peer();
    eprintln!("memory per registered peer: {per_peer:.0} bytes ({peers} peers in rooms of two)");
    let mut c = Criterion::default().configure_from_args();

    // 2000 clients in rooms of two: the first pass registers and introduces, later passes
    // refresh, as live clients do.
    let primary: SocketAddr = "127.0.0.1:7777".parse().unwrap();
    let mut core = Server::new(Addresses { primary, alt: None });
    let peers: Vec<(SocketAddr, Vec<u8>)> = (0..2000u16)
        .map(|i| {
            let from = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 40000 + i));
            (from, register(format!("room-{}", i / 2), if i % 2 == 0 { "a" } else { "b" }))
        })
        .collect();
    let mut next = 0;
    let mut group = c.benchmark_group("server_registrations");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sans_io_core", |b| {
        b.iter(|| {
            let (from, bytes) = &peers[next % peers.len()];
            next += 1;
            core.handle(Instant::now(), primary, *from, bytes).len()
        })
    });
    // What the capacity runs below send: 512 peers, each alone in its room, refreshing.
    let mut solo = Server::new(Addresses { primary, alt: None });
    let refreshes: Vec<(SocketAddr, Vec<u8>)> = (0..CLIENTS)
        .map(|i| {
            let from = SocketAddr::from((client_ip(i), 40000));
            (from, register(format!("solo-{i}"), "a"))
        })
        .collect();
    // A clock of its own, 20 µs a request, keeps each peer at 100 requests a second however
    // fast the loop runs: under its rate even when its address shares a slot of the server's
    // rate table with another's (a few of 512 do).
    let mut clock = Instant::now();
    let mut tick = || {
        clock += Duration::from_micros(20);
        clock
    };
    for (from, bytes) in &refreshes {
        solo.handle(tick(), primary, *from, bytes);
    }
    group.bench_function("sans_io_core_refresh_alone", |b| {
        b.iter(|| {
            let (from, bytes) = &refreshes[next % refreshes.len()];
            next += 1;
            let answers = solo.handle(tick(), primary, *from, bytes);
            assert_eq!(answers.len(), 1, "answered, not limited: {:?}", solo.drops());
            answers.len()
        })
    });

    // The server and the echo each run alone on a runtime with one worker (one core), as
    // `p2pchat server` runs its one loop; the clients run on a runtime of their own.
    let server_rt = one_worker(SERVER_THREAD);
    let echo_rt = one_worker(ECHO_THREAD);
    let rt = Runtime::new().unwrap();
    let server_addr = server_rt.block_on(async {
        let sockets = Sockets::bind("127.0.0.1:0".parse().unwrap(), None).await.unwrap();
        let server_addr = sockets.primary();
        tokio::spawn(server::run(sockets, p2pchat::consts::CODE_TTL, None, std::future::pending()));
        server_addr
    });
    // The baseline: a bare echo of an 8-byte answer per datagram.
    let raw_addr = echo_rt.block_on(async {
        let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let raw_addr = raw.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((_, from)) = raw.recv_from(&mut buf).await {
                let _ = raw.send_to(&buf[..8], from).await;
            }
        });
        raw_addr
    });
    let (clients_p2p, clients_raw) = rt.block_on(async {
        let p2p = clients(|i| register(format!("solo-{i}"), "a")).await;
        let raw_clients = clients(|i| register(format!("solo-{i}"), "a")).await;
        (p2p, raw_clients)
    });
    group.bench_function("loopback_server", |b| {
        b.iter_custom(|n| rt.block_on(rounds(&clients_p2p, server_addr, n)))
    });
    group.bench_function("loopback_raw_udp_echo", |b| {
        b.iter_custom(|n| rt.block_on(rounds(&clients_raw, raw_addr, n)))
    });
    // Capacity on one core: the CPU time the server's thread spends per request, beside the
    // echo's, taking turns so both meet the same neighbours on this machine.
    let sides = [
        ("server", &clients_p2p, server_addr, SERVER_THREAD),
        ("raw UDP echo", &clients_raw, raw_addr, ECHO_THREAD),
    ];
    let mut spent = [(Duration::ZERO, Duration::ZERO); 2];
    for _ in 0..CAPACITY_ROUNDS {
        for ((_, clients, to, thread), (wall, cpu)) in sides.iter().zip(&mut spent) {
            let before = thread_cpu(thread);
            *wall += rt.block_on(rounds(clients, *to, CAPACITY_REQUESTS));
            *cpu += thread_cpu(thread) - before;
        }
    }
    let requests = f64::from(CAPACITY_ROUNDS) * CAPACITY_REQUESTS as f64;
    let per_core: Vec<f64> = spent.iter().map(|(_, cpu)| requests / cpu.as_secs_f64()).collect();
    eprintln!("capacity on one core, {requests} requests each in {CAPACITY_ROUNDS} turns:");
    for ((name, ..), ((wall, cpu), core)) in sides.iter().zip(spent.iter().zip(&per_core)) {
        eprintln!(
            "  {name:<13} {:>8.0} requests/s   CPU per request {:>5.2} µs   {core:>8.0} per core-second",
            requests / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / requests,
        );
    }
    eprintln!("  ratio server / echo per core-second: {:.2}", per_core[0] / per_core[1]);
    let refresh = |gap: Duration| per_core[0] * gap.as_secs_f64();
    eprintln!(
        "  online peers one core refreshes: {:.0} alone in their rooms (a request every {} s), \
         {:.0} with a contact online (every {} s); their memory: {:.0} MB and {:.0} MB",
        refresh(REGISTER_REFRESH_ALONE),
        REGISTER_REFRESH_ALONE.as_secs(),
        refresh(REGISTER_REFRESH),
        REGISTER_REFRESH.as_secs(),
        refresh(REGISTER_REFRESH_ALONE) * per_peer / 1e6,
        refresh(REGISTER_REFRESH) * per_peer / 1e6,
    );
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let flooder = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || flood(server_addr, &stop, &sent))
    };
    let flood_start = Instant::now();
    group.bench_function("loopback_server_while_one_address_floods_it", |b| {
        b.iter_custom(|n| rt.block_on(rounds(&clients_p2p, server_addr, n)))
    });
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let rate = sent.load(Ordering::Relaxed) as f64 / flood_start.elapsed().as_secs_f64();
    if rate > 0.0 {
        // (Nothing is sent when a filter leaves the flooded run out.)
        eprintln!("the flood sent {rate:.0} datagrams/s from 127.0.0.2");
    }
    // A datagram from a sender over its rate: dropped after one keyed hash.
    let flooder_addr: SocketAddr = "203.0.113.66:4000".parse().unwrap();
    let over = register("flood".into(), "x");
    let now = Instant::now();
    for _ in 0..2_000 {
        core.handle(now, primary, flooder_addr, &over);
    }
    group.bench_function("sans_io_core_over_the_senders_rate", |b| {
        b.iter(|| core.handle(now, primary, flooder_addr, &over).len())
    });
    group.finish();
    c.final_summary();
}
