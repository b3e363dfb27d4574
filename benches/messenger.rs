//! The messenger at scale, as people run it: the release binary (`p2pchat open --headless`)
//! with 200 contacts, 20 of them online (each a real `p2pchat chat` process reconnecting by
//! name), through a real server on loopback. Once all 20 are online and a settling pause has
//! passed, it measures over an idle window the messenger's CPU time (utime + stime from
//! /proc/PID/stat) and resident memory (VmRSS, VmHWM). Beside it, in the same run and window,
//! one of the friends: a single chat with one contact online, the baseline.
//!
//! `cargo bench --bench messenger`; `P2PCHAT_BENCH_IDLE_SECS` sets the idle window (default 60),
//! `P2PCHAT_BENCH_CONTACTS` and `P2PCHAT_BENCH_ONLINE` the numbers (default 200 and 20).

// A benchmark that cannot set up fails loudly: there is nothing to measure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p2pchat::identity::{self, Contact, Contacts, Identity};

const BIN: &str = env!("CARGO_BIN_EXE_p2pchat");

fn setting(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A child process whose stdout lines arrive on a channel; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(mut command: Command) -> Self {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of `pid` so far, from /proc/PID/stat, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces) start after its ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A `/proc/PID/status` figure in kB.
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Clock ticks per second (USER_HZ): 100 on Linux.
const TICKS_PER_SEC: f64 = 100.0;

fn home(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "").unwrap();
    dir
}

fn contact(
    name: &str,
    ours: &Identity,
    theirs: &[u8; 32],
    me: &str,
    server: SocketAddr,
) -> Contact {
    Contact {
        name: name.to_owned(),
        key: identity::encode_key(theirs),
        room: identity::rendezvous_room(&ours.public(), theirs),
        first_seen: "2026-11-29T00:00:00+00:00".to_owned(),
        me: Some(me.to_owned()),
        server: Some(server.to_string()),
    }
}

fn main() {
    // `cargo bench` passes "--bench"; anything else (`cargo test --benches`) only checks it runs.
    let benching = std::env::args().any(|a| a == "--bench");
    let idle =
        Duration::from_secs(if benching { setting("P2PCHAT_BENCH_IDLE_SECS", 60) } else { 3 });
    let total = setting("P2PCHAT_BENCH_CONTACTS", if benching { 200 } else { 12 }) as usize;
    let online =
        (setting("P2PCHAT_BENCH_ONLINE", if benching { 20 } else { 2 }) as usize).min(total);
    let root = std::env::temp_dir().join(format!("p2pchat-bench-messenger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    let mut server = Command::new(BIN);
    server.args(["server", "--listen", "127.0.0.1:0"]).env_remove("P2PCHAT_CONFIG");
    let server = Proc::spawn(server);
    let first = server.lines.recv_timeout(Duration::from_secs(10)).unwrap();
    let addr: SocketAddr = first
        .split_whitespace()
        .find_map(|w| w.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap();

    let alice_home = home(&root, "alice");
    let alice = Identity::load_or_create(&alice_home).unwrap();
    let mut alice_contacts = Contacts::load(&alice_home).unwrap();
    let mut friends = Vec::new();
    for i in 0..total {
        let name = format!("friend{i:03}");
        if i < online {
            let dir = home(&root, &name);
            let them = Identity::load_or_create(&dir).unwrap();
            let mut theirs = Contacts::load(&dir).unwrap();
            theirs.remember(contact("alice", &them, &alice.public(), &name, addr)).unwrap();
            alice_contacts.remember(contact(&name, &alice, &them.public(), "alice", addr)).unwrap();
            friends.push((name, dir));
        } else {
            let them = Identity::from_secret(&rand_bytes(i));
            alice_contacts.remember(contact(&name, &alice, &them.public(), "alice", addr)).unwrap();
        }
    }

    let mut messenger = Command::new(BIN);
    messenger
        .args(["open", "--headless", "--name", "alice", "--bind", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(alice_home.join("data"))
        .env("P2PCHAT_CONFIG", alice_home.join("config.toml"));
    let messenger = Proc::spawn(messenger);
    let started = Instant::now();
    let mut chats = Vec::new();
    for (name, dir) in &friends {
        let mut chat = Command::new(BIN);
        chat.args(["chat", "alice", "--headless", "--name", name, "--bind", "127.0.0.1:0"])
            .arg("--server")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("P2PCHAT_CONFIG", dir.join("config.toml"));
        chats.push(Proc::spawn(chat));
    }
    let mut seen = std::collections::HashSet::new();
    let deadline = started + Duration::from_secs(180);
    while seen.len() < online {
        let left = deadline.checked_duration_since(Instant::now()).expect("friends online in time");
        let line = messenger.lines.recv_timeout(left).expect("the messenger is running");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if value["event"] == "peer_online" {
            seen.insert(value["conversation"].as_str().unwrap_or_default().to_owned());
        }
    }
    let all_online = started.elapsed();
    let startup_ticks = cpu_ticks(messenger.pid());
    // Let the start-up work (NAT detection, first registrations, key agreements) settle.
    std::thread::sleep(Duration::from_secs(5));
    let drain = |p: &Proc| while p.lines.try_recv().is_ok() {};
    drain(&messenger);
    let baseline = chats.first().map(Proc::pid);
    let before = (cpu_ticks(messenger.pid()), baseline.map(cpu_ticks));
    std::thread::sleep(idle);
    let after = (cpu_ticks(messenger.pid()), baseline.map(cpu_ticks));
    let secs = idle.as_secs_f64();
    let share = |ticks: u64| ticks as f64 / TICKS_PER_SEC / secs * 100.0;
    let mut offline_events = 0;
    while let Ok(line) = messenger.lines.try_recv() {
        offline_events += usize::from(line.contains("\"peer_offline\""));
    }
    println!(
        "messenger/idle: {total} contacts, {online} online (all online {:.1} s after start, \
         {} ms of CPU until then)",
        all_online.as_secs_f64(),
        startup_ticks * 10,
    );
    println!(
        "  messenger  cpu {:.3} % of a core over {secs:.0} s ({} ticks), VmRSS {} kB, VmHWM {} kB, {offline_events} went offline",
        share(after.0 - before.0),
        after.0 - before.0,
        status_kb(messenger.pid(), "VmRSS"),
        status_kb(messenger.pid(), "VmHWM"),
    );
    if let (Some(pid), (_, Some(b)), (_, Some(a))) = (baseline, before, after) {
        println!(
            "  baseline   one chat, one contact online: cpu {:.3} % ({} ticks), VmRSS {} kB",
            share(a - b),
            a - b,
            status_kb(pid, "VmRSS"),
        );
    }
    drop(chats);
    drop(messenger);
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// 32 bytes that differ with `i` (stand-in identities for the contacts who never come).
fn rand_bytes(i: usize) -> [u8; 32] {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    bytes
}
