//! Seed compatibility: a client written from the seed notes in Python (socket +
//! `cryptography.fernet` + json) chats with p2pchat in `--peer --key` mode, both ways.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Proc, TempDir, direct_peer, free_port, keygen, skip_or_fail};

/// Python with the `cryptography` package: the CI's venv first, then the system's.
fn python() -> Option<String> {
    let candidates = [std::env::var("P2PCHAT_PYTHON").unwrap_or_default(), "python3".to_owned()];
    candidates.into_iter().filter(|p| !p.is_empty()).find(|p| {
        Command::new(p)
            .args(["-c", "import cryptography.fernet"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn python_seed_client_chats_with_p2pchat() {
    let Some(python) = python() else {
        return skip_or_fail("python3 with the cryptography package is not installed");
    };
    let key = keygen();
    let (ours, theirs) = (free_port(), free_port());
    let data = TempDir::new("seed");
    let mut p2pchat = direct_peer("rusty", ours, theirs, &key, data.path());
    p2pchat.expect_event(Duration::from_secs(10), "ready");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed_client.py");
    let mut c = Command::new(python);
    c.arg(script).arg(theirs.to_string()).arg(ours.to_string()).env("SEED_KEY", &key);
    let mut seed = Proc::spawn(c);
    // The seed client's message is shown, with its own timestamp format and no id.
    let shown = p2pchat.expect(Duration::from_secs(10), "seed message", |v| {
        v["event"] == "message" && v["from"] == "seedling"
    });
    assert_eq!(shown["text"], "hello from the seed client");
    assert_eq!(shown["timestamp"], "2025-05-29 10:00:00");
    assert!(shown["id"].is_null());
    // Ours decrypts with Python's Fernet to JSON carrying the seed's four fields.
    p2pchat.say("hello from rust ✓");
    let line = seed.line(Duration::from_secs(10)).expect("the seed client prints what it got");
    let got: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["type"], "message");
    assert_eq!(got["name"], "rusty");
    assert_eq!(got["text"], "hello from rust ✓");
    let ts = got["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert_eq!(seed.wait(Duration::from_secs(10)), Some(0));
}

/// A classic RFC 3489 NAT detector, pystun3 (the Python library of the kind the seed's
/// prototype used), against `p2pchat server --alt` on loopback: it gets its answers (RFC 5389
/// §12.2) and, with no NAT in between, says so.
#[test]
fn pystun3_detects_no_nat_against_our_server() {
    let candidates = [std::env::var("P2PCHAT_PYTHON").unwrap_or_default(), "python3".to_owned()];
    let python = candidates.into_iter().filter(|p| !p.is_empty()).find(|p| {
        Command::new(p).args(["-c", "import stun"]).output().is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        return skip_or_fail("python3 with pystun3 is not installed (pip install pystun3)");
    };
    let port = free_port().port();
    let listen = format!("127.0.0.1:{port}");
    let (_server, addr) =
        crate::harness::server_with(&listen, &["--alt", &format!("127.0.0.2:{}", port + 1)]);
    let client = free_port().port();
    let script = format!(
        "import stun; print(stun.get_ip_info('127.0.0.1', {client}, '127.0.0.1', {}))",
        addr.port()
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let want = format!("('Open Internet', '127.0.0.1', {client})");
    assert_eq!(said.trim(), want, "{}", String::from_utf8_lossy(&out.stderr));
}
