//! Process and file helpers: a child process killed on drop, a JSON-lines reader with bounded
//! waits, temporary data directories, and the switch that turns skips into failures in CI.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test, with none of the developer's settings: every flag has a P2PCHAT_
/// variable, and the config file is an empty one.
pub fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_p2pchat"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("P2PCHAT_") {
            command.env_remove(var);
        }
    }
    command.env("P2PCHAT_CONFIG", NO_CONFIG);
    command
}

/// An empty config file (a file named with --config must exist).
pub const NO_CONFIG: &str = "/dev/null";

/// An empty config file in `home`, where the identity and contacts then live.
pub fn home_config(home: &Path) -> PathBuf {
    let path = home.join("config.toml");
    if !path.exists() {
        std::fs::create_dir_all(home).unwrap();
        std::fs::write(&path, "").unwrap();
    }
    path
}

/// A test's own directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("p2pchat-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// When set (CI sets it), a test that lacks a tool fails instead of skipping.
pub fn require_all() -> bool {
    std::env::var_os("P2PCHAT_REQUIRE_ALL").is_some_and(|v| v == "1")
}

/// Skips (with a visible reason) or, under `P2PCHAT_REQUIRE_ALL=1`, fails. The reason is
/// written to the process's stderr itself, not through `eprintln!`, which the test harness
/// captures and shows only for a failing test.
pub fn skip_or_fail(reason: &str) {
    assert!(!require_all(), "P2PCHAT_REQUIRE_ALL=1 but {reason}");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {reason}");
}

/// A free loopback port below Linux's ephemeral range (32768–60999): a port handed out by the
/// OS to some other socket in the meantime cannot collide with it, and a counter keeps this
/// process's own tests apart.
pub fn free_port() -> SocketAddr {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + u16::try_from(std::process::id() % 500).unwrap() * 20;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(n < 10_000, "no free port");
        let port = base + n % 10_000;
        if let Ok(socket) = UdpSocket::bind(("127.0.0.1", port)) {
            return socket.local_addr().unwrap();
        }
    }
}

/// A child process with its stdout read line by line on a thread; killed on drop.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(command: Command) -> Self {
        Self::spawn_with_stderr(command, Stdio::inherit())
    }

    /// As `spawn`, with standard error going to `stderr`.
    pub fn spawn_with_stderr(command: Command, stderr: Stdio) -> Self {
        Self::spawn_with(command, Stdio::piped(), stderr)
    }

    /// As `spawn`, reading `stdin` (not a pipe of ours: `say` is then of no use) and with
    /// standard error going to `stderr`.
    pub fn spawn_with(mut command: Command, stdin: Stdio, stderr: Stdio) -> Self {
        let mut child = command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn p2pchat");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self { child, stdin, lines: rx, seen: Vec::new() }
    }

    /// Writes one line to stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Writes raw bytes to stdin (input that need not be text).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line, within `within`.
    pub fn line(&mut self, within: Duration) -> Option<String> {
        match self.lines.recv_timeout(within) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for a JSON event matching `pred`; panics with everything seen after `within`.
    pub fn expect(&mut self, within: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(line) = self.line(left) else { break };
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && pred(&value)
            {
                return value;
            }
        }
        panic!("no {what} within {within:?}; saw:\n{}", self.seen.join("\n"));
    }

    /// Waits for an event by name.
    pub fn expect_event(&mut self, within: Duration, event: &str) -> Value {
        self.expect(within, event, |v| v["event"] == event)
    }

    /// Waits for the process to exit; returns its code.
    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A rendezvous server on a free loopback port.
pub fn server() -> (Proc, SocketAddr) {
    server_on("127.0.0.1:0")
}

/// A rendezvous server listening on `listen`.
pub fn server_on(listen: &str) -> (Proc, SocketAddr) {
    server_with(listen, &[])
}

/// A rendezvous server listening on `listen`, with more flags.
pub fn server_with(listen: &str, flags: &[&str]) -> (Proc, SocketAddr) {
    server_logging(listen, flags, Stdio::inherit())
}

/// A rendezvous server listening on `listen`, with more flags, its log going to `stderr`.
pub fn server_logging(listen: &str, flags: &[&str], stderr: Stdio) -> (Proc, SocketAddr) {
    let mut command = bin();
    command.args(["server", "--listen", listen]).args(flags);
    let mut proc = Proc::spawn_with_stderr(command, stderr);
    let line = proc.line(Duration::from_secs(10)).expect("server prints its address");
    let addr = line
        .strip_prefix("p2pchat server listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected server line: {line}"));
    (proc, addr)
}

/// A headless peer in a room.
pub fn room_peer(name: &str, server: SocketAddr, room: &str, key: &str, data: &Path) -> Proc {
    let mut command = bin();
    command
        .args(["chat", "--headless", "--name", name, "--room", room, "--bind", "127.0.0.1:0"])
        .arg("--server")
        .arg(server.to_string())
        .arg("--data-dir")
        .arg(data)
        .env("P2PCHAT_KEY", key);
    Proc::spawn(command)
}

/// A server and two headless peers, "alice" and "bob", in `room`, both online.
pub struct RoomPair {
    pub _server: Proc,
    pub addr: SocketAddr,
    pub key: String,
    pub dirs: (TempDir, TempDir),
    pub a: Proc,
    pub b: Proc,
}

impl RoomPair {
    pub fn connected(room: &str) -> Self {
        let (server, addr) = server();
        let key = keygen();
        let dirs = (TempDir::new(&format!("{room}-a")), TempDir::new(&format!("{room}-b")));
        let mut a = room_peer("alice", addr, room, &key, dirs.0.path());
        let mut b = room_peer("bob", addr, room, &key, dirs.1.path());
        for p in [&mut a, &mut b] {
            p.expect_event(Duration::from_secs(15), "peer_online");
        }
        Self { _server: server, addr, key, dirs, a, b }
    }
}

/// A headless peer in direct mode: bound to `bind`, talking to `peer`.
pub fn direct_peer(name: &str, bind: SocketAddr, peer: SocketAddr, key: &str, data: &Path) -> Proc {
    let mut command = bin();
    command
        .args(["chat", "--headless", "--name", name])
        .arg("--bind")
        .arg(bind.to_string())
        .arg("--peer")
        .arg(peer.to_string())
        .arg("--data-dir")
        .arg(data)
        .env("P2PCHAT_KEY", key);
    Proc::spawn(command)
}

/// A fresh key from `p2pchat keygen`.
pub fn keygen() -> String {
    let out = bin().arg("keygen").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// All records of a conversation log.
pub fn log_records(data: &Path, file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(data.join("conversations").join(file)).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}
