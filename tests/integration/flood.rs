//! The rendezvous server under a flood from one address at full loopback speed — new
//! registrations, code allocations and claims in turn — while two friends on another address
//! meet in a room and then pair with a code. Prints how long each took and how many datagrams
//! the flood sent; checks that the server's memory and its log stay bounded.

use std::net::{SocketAddr, UdpSocket};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use p2pchat::proto::wire::{FromServer, ToServer};

use crate::harness::{TempDir, keygen, room_peer, server_logging};
use crate::pairing::{agreed, code_of, person};

const WITHIN: Duration = Duration::from_secs(30);

/// The server's resident memory, in KiB (`VmRSS` in /proc).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends requests to `server` from 127.0.0.2 as fast as the socket takes them until `stop`;
/// counts them in `sent`. Claims carry the cookie the server gave this socket.
fn flood(server: SocketAddr, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.2:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ask = ToServer::Claim { nameplate: "1".into(), name: "x".into(), cookie: None };
    socket.send_to(&serde_json::to_vec(&ask).unwrap(), server).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = socket.recv_from(&mut buf).unwrap();
    let Ok(FromServer::Cookie { cookie }) = serde_json::from_slice(&buf[..len]) else {
        panic!("no cookie: {}", String::from_utf8_lossy(&buf[..len]));
    };
    // Made beforehand, so that sending is all the loop does.
    let requests: Vec<Vec<u8>> = (0..30_000u32)
        .map(|i| {
            let request = match i % 3 {
                0 => ToServer::Register {
                    room: format!("flood-{i}"),
                    name: "x".into(),
                    private: Vec::new(),
                    nat: None,
                    relay: None,
                    cookie: Some(cookie.clone()),
                    also: Vec::new(),
                },
                1 => ToServer::Allocate { name: "x".into(), cookie: Some(cookie.clone()) },
                _ => ToServer::Claim {
                    nameplate: (i % 999 + 1).to_string(),
                    name: "x".into(),
                    cookie: Some(cookie.clone()),
                },
            };
            serde_json::to_vec(&request).unwrap()
        })
        .collect();
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let request = &requests[usize::try_from(i).unwrap() % requests.len()];
        // A full socket buffer is the flood going as fast as it can; go on.
        let _ = socket.send_to(request, server);
        i += 1;
        if i.is_multiple_of(1024) {
            sent.store(i, Ordering::Relaxed);
        }
    }
    sent.store(i, Ordering::Relaxed);
}

#[test]
fn a_flood_from_one_address_keeps_no_friends_apart() {
    let dir = TempDir::new("flood");
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let (server, addr) = server_logging("127.0.0.1:0", &[], Stdio::from(log));
    let rss_before = rss_kib(server.child.id());
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let flooder = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || flood(addr, stop, sent))
    };
    let flood_start = Instant::now();
    // The flood has a second's start, and lasts three at least.
    std::thread::sleep(Duration::from_secs(1));

    // Two friends meet in a room.
    let key = keygen();
    let (a_dir, b_dir) = (TempDir::new("flood-a"), TempDir::new("flood-b"));
    let started = Instant::now();
    let mut a = room_peer("alice", addr, "friends", &key, a_dir.path());
    let mut b = room_peer("bob", addr, "friends", &key, b_dir.path());
    for p in [&mut a, &mut b] {
        p.expect_event(WITHIN, "peer_online");
    }
    let room_took = started.elapsed();
    drop((a, b));

    // Two others pair with a code.
    let (ann_home, bob_home) = (TempDir::new("flood-ann"), TempDir::new("flood-bob"));
    let started = Instant::now();
    let mut ann = person("ann", addr, None, ann_home.path());
    let code = code_of(&mut ann);
    let mut bob = person("bob", addr, Some(&code), bob_home.path());
    assert_eq!(agreed(&mut ann, "bob"), agreed(&mut bob, "ann"));
    let pairing_took = started.elapsed();
    let rss_during = rss_kib(server.child.id());

    if let Some(left) = Duration::from_secs(3).checked_sub(flood_start.elapsed()) {
        std::thread::sleep(left);
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let flood_secs = flood_start.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {sent} datagrams in {flood_secs:.1} s ({:.0}/s) from one address; the room met in {:.2} s, the code paired in {:.2} s; server RSS {rss_before} KiB before, {rss_during} KiB during",
        sent as f64 / flood_secs,
        room_took.as_secs_f64(),
        pairing_took.as_secs_f64(),
    );
    assert!(sent > 100_000, "the flood ran at speed: {sent} datagrams");
    assert!(rss_during < rss_before + 64 * 1024, "{rss_before} KiB → {rss_during} KiB");
    // One line a second at most about what was dropped, however many datagrams.
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let summaries = log.lines().filter(|l| l.contains("in the last second")).count();
    assert!(summaries >= 2, "the drops were reported:\n{log}");
    assert!(summaries as f64 <= flood_secs + 2.0, "{summaries} lines in {flood_secs:.1} s");
    assert!(!log.contains('\u{1b}'), "no terminal colours in a log file");
}
