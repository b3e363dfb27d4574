//! The command line as a user meets it: help, keygen, and one clear sentence plus exit code 2
//! for every mistake; `history` printing a log.

use std::process::Output;

use crate::harness::{TempDir, bin, keygen};

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_everywhere() {
    for sub in [&[][..], &["server"], &["chat"], &["keygen"], &["history"], &["demo"]] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: p2pchat"), "{args:?}");
    }
}

#[test]
fn keygen_prints_a_usable_key() {
    let out = run(&["keygen"]);
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(key.trim().len(), 44);
    assert!(fernet::Fernet::new(key.trim()).is_some());
    assert_ne!(key, String::from_utf8(run(&["keygen"]).stdout).unwrap());
}

#[test]
fn missing_or_invalid_key_names_keygen_and_exits_2() {
    let data = TempDir::new("cli");
    let d = data.path().to_str().unwrap();
    let out = run(&["chat", "--name", "a", "--peer", "127.0.0.1:9", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("p2pchat keygen") && err.lines().count() == 1, "{err}");
    let out =
        run(&["chat", "--name", "a", "--peer", "127.0.0.1:9", "--key", "nope", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("not a valid Fernet key") && err.contains("p2pchat keygen"), "{err}");
}

#[test]
fn usage_mistakes_exit_2_with_a_fix() {
    let data = TempDir::new("cli2");
    let d = data.path().to_str().unwrap();
    let key = String::from_utf8(run(&["keygen"]).stdout).unwrap();
    let key = key.trim();
    let cases: &[(&[&str], &str)] = &[
        (&["chat", "--name", "a", "--key", key, "--data-dir", d], "--server ADDR"),
        (
            &["chat", "--name", "a", "--key", key, "--server", "127.0.0.1:7777", "--data-dir", d],
            "--room",
        ),
        (&["chat", "--name", "a", "--peer", "nonsense", "--key", key], "HOST:PORT"),
        (
            &["chat", "--name", "a", "--peer", "127.0.0.1:9", "--server", "127.0.0.1:1"],
            "cannot be used with",
        ),
        (
            &[
                "chat",
                "--name",
                "a",
                "--peer",
                "127.0.0.1:9",
                "--key",
                key,
                "--offline-after",
                "2",
                "--data-dir",
                d,
            ],
            "more than 5 seconds",
        ),
        (
            &["chat", "--name", "", "--peer", "127.0.0.1:9", "--key", key, "--data-dir", d],
            "--name must be",
        ),
        (&["chat", "--bogus-flag"], "unexpected argument"),
        (&["history", "nowhere", "--data-dir", d], "no conversation \"nowhere\""),
    ];
    for (args, needle) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn malformed_config_names_file_and_line() {
    let data = TempDir::new("cfg");
    let path = data.path().join("config.toml");
    std::fs::write(&path, "name = \"ann\"\nserver = \"not an address\"\n").unwrap();
    let out = bin().arg("keygen").env("P2PCHAT_CONFIG", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&path.display().to_string()) && err.contains("line 2"), "{err}");
}

#[test]
fn config_supplies_defaults_that_flags_override() {
    let data = TempDir::new("cfg2");
    let path = data.path().join("config.toml");
    std::fs::write(&path, "offline-after = 3\n").unwrap();
    let out = bin()
        .args([
            "chat",
            "--name",
            "a",
            "--peer",
            "127.0.0.1:9",
            "--key",
            &"A".repeat(43),
            "--data-dir",
        ])
        .arg(data.path())
        .env("P2PCHAT_CONFIG", &path)
        .output()
        .unwrap();
    // The config's value reached validation (a flag would have overridden it).
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("got 3"), "{}", stderr(&out));
}

#[test]
fn history_prints_the_log_and_skips_torn_lines() {
    let data = TempDir::new("hist");
    let dir = data.path().join("conversations");
    std::fs::create_dir_all(&dir).unwrap();
    let lines = [
        r#"{"v":1,"at":"2026-05-01T12:00:00+00:00","kind":"presence","peer":"bob","online":true,"addr":"127.0.0.1:5"}"#,
        r#"{"v":1,"at":"2026-05-01T12:00:01+00:00","kind":"message","dir":"in","from":"bob","text":"hi \u001b[2J there"}"#,
        r#"{"v":1,"at":"2026-05-01T12:00:02+00:00","kind":"message","dir":"out","from":"ann","text":"yo","state":"sent"}"#,
        r#"{"v":1,"at":"2026-05-01T12:00"#,
    ];
    std::fs::write(dir.join("room-team.jsonl"), lines.join("\n")).unwrap();
    let out = bin().args(["history", "team", "--data-dir"]).arg(data.path()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let printed: Vec<&str> = text.lines().collect();
    assert_eq!(printed.len(), 3, "{text}");
    assert!(printed[0].ends_with("— bob is online (via 127.0.0.1:5)"), "{}", printed[0]);
    assert!(printed[1].ends_with("bob: hi ␛[2J there"), "{}", printed[1]);
    assert!(printed[2].ends_with("ann: yo"), "{}", printed[2]);
    assert!(stderr(&out).contains("skipped 1 unreadable lines"));

    // --grep prints only the messages whose text holds the words, whatever their case.
    let grep = |text: &str| {
        let mut cmd = bin();
        cmd.args(["history", "team", "--grep", text, "--data-dir"]).arg(data.path());
        cmd.output().unwrap()
    };
    let out = grep("HI");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.trim_end().ends_with("bob: hi ␛[2J there"), "{text}");
    // Words that occur only in field names or other records are not found.
    assert!(grep("bob").stdout.is_empty());
    let out = grep("");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--grep needs some text"), "{}", stderr(&out));
}

#[test]
fn a_relay_without_its_secret_is_one_sentence_and_exit_2() {
    let dir = TempDir::new("cli-turn");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n  \n").unwrap();
    let missing = dir.path().join("missing");
    let (empty, missing) = (empty.to_str().unwrap(), missing.to_str().unwrap());
    let listen = ["server", "--listen", "127.0.0.1:0"];
    // (arguments, what the sentence says, whether it is ours rather than clap's usage block)
    let cases: &[(&[&str], &str, bool)] = &[
        (&["--turn", "127.0.0.1:3478"], "P2PCHAT_TURN_SECRET", true),
        (&["--turn", "127.0.0.1:3478", "--turn-secret-file", empty], "is empty", true),
        (&["--turn", "127.0.0.1:3478", "--turn-secret-file", missing], "cannot read the", true),
        (&["--turn", "nowhere", "--turn-secret-file", empty], "HOST:PORT", false),
        (&["--turn-secret-file", empty], "--turn", false),
    ];
    for (args, needle, ours) in cases {
        let out =
            bin().args(listen).args(*args).env_remove("P2PCHAT_TURN_SECRET").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        if *ours {
            assert_eq!(stderr(&out).trim().lines().count(), 1, "{args:?}: one sentence");
        }
    }
}

#[test]
fn the_relay_secret_is_never_printed() {
    use std::io::{BufRead, BufReader};
    let secret = "do-not-print-this-3d1f";
    let mut child = bin()
        .args(["server", "--listen", "127.0.0.1:0", "--turn", "127.0.0.1:3478"])
        .env("P2PCHAT_TURN_SECRET", secret)
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("relay offered: TURN at 127.0.0.1:3478"), "{line}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!line.contains(secret) && !stderr(&out).contains(secret));
}

#[test]
fn names_and_rooms_with_invisible_characters_are_refused_in_one_sentence() {
    let key = keygen();
    let dir = TempDir::new("invisible");
    let d = dir.path().to_str().unwrap();
    for name in ["b\u{200b}ob", "bob\u{200f}", "\u{2066}bob", "bo\u{ad}b", "b\u{2028}ob"] {
        let out =
            run(&["chat", "--name", name, "--peer", "127.0.0.1:9", "--key", &key, "--data-dir", d]);
        assert_eq!(out.status.code(), Some(2), "{name:?}");
        let said = stderr(&out);
        assert!(said.contains("invisible") && said.contains("U+"), "{name:?}: {said}");
        assert_eq!(said.trim().lines().count(), 1, "one sentence: {said}");
    }
    let out = run(&[
        "chat",
        "--name",
        "ann",
        "--room",
        "friends\u{200b}",
        "--key",
        &key,
        "--server",
        "127.0.0.1:9",
        "--data-dir",
        d,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("U+200B"), "{}", stderr(&out));
    // The config file's name is held to the same rule.
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "name = \"b\\u200bob\"\n").unwrap(); // TOML's escape
    let out = bin()
        .args(["chat", "--peer", "127.0.0.1:9", "--key", &key, "--data-dir", d])
        .env("P2PCHAT_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("U+200B"), "{}", stderr(&out));
}

#[test]
fn a_key_that_starts_with_a_dash_is_a_key_not_a_flag() {
    use base64::Engine as _;
    // About one key in 64 from `keygen` starts with '-' (URL-safe base64).
    let key = base64::engine::general_purpose::URL_SAFE.encode([0xF8u8; 32]);
    assert!(key.starts_with('-'), "{key}");
    let dir = TempDir::new("dash-key");
    let out = bin()
        .args(["chat", "--headless", "--name", "a", "--peer", "127.0.0.1:9", "--key", &key])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"event\":\"ready\""));
}
