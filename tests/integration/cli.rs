//! The command line as a user meets it: help, keygen, and one clear sentence plus exit code 2
//! for every mistake, naming where the value came from (flag, environment variable, config
//! file and line); `history` printing a log; completions, the manual page, the version; the
//! data directory held by one process and private.

use std::process::Output;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::{Proc, TempDir, bin, home_config, keygen, server};

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_everywhere() {
    let subcommands: [&[&str]; 11] = [
        &[],
        &["help"],
        &["help", "chat"],
        &["server"],
        &["chat"],
        &["keygen"],
        &["history"],
        &["demo"],
        &["nat"],
        &["completions"],
        &["man"],
    ];
    for sub in subcommands {
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
            "--name: must be",
        ),
        (&["chat", "--bogus-flag"], "unexpected argument"),
        (&["chat", "--offline-after", "abc"], "expected a whole number of seconds"),
        (&["server", "--code-ttl", "a day"], "expected a whole number of seconds"),
        (&["help", "nope"], "there is no command \"nope\""),
        (
            &["server", "--listen", "127.0.0.1:0", "--alt", "127.0.0.1:0"],
            "the alternate needs a different IP and a different port",
        ),
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
    std::fs::write(&path, "name = \"ann\"\nserver = [7777]\n").unwrap();
    let out = bin().args(["history", "x"]).env("P2PCHAT_CONFIG", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&path.display().to_string()) && err.contains("line 2"), "{err}");
    // Commands that do not use the config do not read it.
    for args in [&["keygen"][..], &["completions", "bash"], &["man"]] {
        let out = bin().args(args).env("P2PCHAT_CONFIG", &path).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let out = bin()
        .args(["server", "--listen", "127.0.0.1:0", "--alt", "nonsense"])
        .env("P2PCHAT_CONFIG", &path)
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("config file"), "{}", stderr(&out));
}

#[test]
fn the_config_file_takes_what_the_command_line_takes_and_names_file_and_line() {
    let data = TempDir::new("cfg3");
    let d = data.path().to_str().unwrap();
    let path = data.path().join("config.toml");
    let key = keygen();
    let direct: &[&str] = &["--peer", "127.0.0.1:9"];
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("name = \"ann\"\nserver = \"no-such-host.invalid\"\n", "server", "line 2", direct),
        ("\n\noffline-after = 3\n", "offline-after", "line 3", direct),
        ("bind = \"127.0.0.1:x\"\n", "bind", "line 1", direct),
        ("stun = \"x y\"\n", "stun", "line 1", direct),
        ("name = \"\"\n", "name", "line 1", direct),
        ("room = \" \"\nserver = \"127.0.0.1\"\n", "room", "line 1", &[]),
    ];
    for (text, key_name, line, args) in cases {
        std::fs::write(&path, text).unwrap();
        let out = bin()
            .args(["chat", "--key", &key, "--data-dir", d])
            .args(*args)
            .env("P2PCHAT_CONFIG", &path)
            .env("USER", "ann")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text:?}: {}", stderr(&out));
        let err = stderr(&out);
        let place = format!("{key_name} in config file {}, {line}", path.display());
        assert!(err.contains(&place), "{text:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    }
    // What the command line accepts, the file does: a host name, an address without a port.
    std::fs::write(&path, "server = \"localhost\"\nbind = \"127.0.0.1\"\n").unwrap();
    let out = bin()
        .args(["chat", "--name", "ann", "--room", "r", "--key", &key, "--headless"])
        .args(["--data-dir", d])
        .env("P2PCHAT_CONFIG", &path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("\"local\":\"127.0.0.1:"), "{said}{}", stderr(&out));
}

#[test]
fn a_named_config_file_that_does_not_exist_is_reported() {
    let data = TempDir::new("cfg4");
    let missing = data.path().join("typo.toml");
    for how in ["flag", "env"] {
        let mut command = bin();
        command.args(["history", "x"]);
        match how {
            "flag" => command.arg("--config").arg(&missing),
            _ => command.env("P2PCHAT_CONFIG", &missing),
        };
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{how}");
        let err = stderr(&out);
        let named = match how {
            "flag" => "named by --config,",
            _ => "named by P2PCHAT_CONFIG (an environment variable),",
        };
        let said = format!("config file {}, {named} does not exist", missing.display());
        assert!(err.contains(&said), "{how}: {err}");
    }
}

#[test]
fn an_exported_key_or_room_does_not_stop_pairing_and_errors_name_the_variable() {
    let (_server, addr) = server();
    let home = TempDir::new("envkey");
    let config = home_config(home.path());
    let mut ann = bin();
    ann.args(["chat", "--headless", "--name", "ann", "--bind", "127.0.0.1:0"])
        .args(["--server", &addr.to_string()])
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .env("P2PCHAT_CONFIG", &config)
        .env("P2PCHAT_KEY", keygen());
    let mut ann = Proc::spawn(ann);
    ann.expect(Duration::from_secs(20), "a pairing code", |v| v["event"] == "code");
    ann.kill();
    // A contact's name with a key in the environment: looked up, not refused as a conflict.
    let out = bin()
        .args(["chat", "bob", "--server", "127.0.0.1:9"])
        .env("P2PCHAT_CONFIG", &config)
        .env("P2PCHAT_KEY", keygen())
        .output()
        .unwrap();
    assert!(stderr(&out).contains("no contact named \"bob\""), "{}", stderr(&out));
    // When the variable is what is wrong, the sentence names it.
    let cases: &[(&str, &str, &[&str])] = &[
        ("P2PCHAT_KEY", "nope", &["--room", "r", "--server", "127.0.0.1:9"]),
        ("P2PCHAT_SERVER", "no-such-host.invalid", &["--room", "r", "--key", "k"]),
        ("P2PCHAT_OFFLINE_AFTER", "2", &["--peer", "127.0.0.1:9"]),
        ("P2PCHAT_OFFLINE_AFTER", "soon", &["--peer", "127.0.0.1:9"]),
        ("P2PCHAT_NAME", "b\u{200b}ob", &["--peer", "127.0.0.1:9"]),
        ("P2PCHAT_HEADLESS", "maybe", &["--peer", "127.0.0.1:9"]),
        ("P2PCHAT_BIND", "127.0.0.1:x", &["--peer", "127.0.0.1:9"]),
    ];
    for (var, value, args) in cases {
        let out = bin()
            .arg("chat")
            .args(*args)
            .arg("--data-dir")
            .arg(home.path())
            .env("P2PCHAT_KEY", keygen())
            .env("USER", "ann")
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("{var} (an environment variable)")), "{var}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    }
}

#[test]
fn a_server_name_that_does_not_resolve_says_so_and_a_missing_port_is_7777() {
    let out = run(&["chat", "--name", "a", "--server", "no-such-host.invalid"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cannot find the address of \"no-such-host.invalid\""), "{err}");
    let out = run(&["nat", "--stun", "no-such-host.invalid:7777"]);
    assert!(stderr(&out).contains("cannot find the address of"), "{}", stderr(&out));
    // Without a port, our server's 7777: the server listens there, and chat looks there.
    let data = TempDir::new("port");
    let mut ann = bin();
    ann.args(["chat", "--headless", "--name", "ann", "--server", "127.0.0.1", "--data-dir"])
        .arg(data.path());
    let mut ann = Proc::spawn(ann);
    let notice = ann.expect_event(Duration::from_secs(10), "notice");
    let said = notice["message"].as_str().unwrap();
    assert!(said.contains("the server at 127.0.0.1:7777"), "{said}");
}

#[test]
fn without_a_terminal_the_full_screen_interface_suggests_headless() {
    let data = TempDir::new("noterm");
    let d = data.path().to_str().unwrap();
    let key = keygen();
    for args in [&["chat", "--name", "a", "--peer", "127.0.0.1:9", "--key", &key][..], &["demo"]] {
        let out = bin()
            .args(args)
            .args(["--data-dir", d])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("needs a terminal") && err.contains("--headless"), "{err}");
    }
}

#[test]
fn a_second_p2pchat_on_the_same_data_dir_is_refused_and_the_dir_is_private() {
    let data = TempDir::new("lock");
    let dir = data.path().join("data");
    let key = keygen();
    let headless = |extra: &[&str]| {
        let mut c = bin();
        c.args(["chat", "--headless", "--name", "a", "--bind", "127.0.0.1:0"])
            .args(["--peer", "127.0.0.1:9", "--key", &key])
            .args(extra)
            .arg("--data-dir")
            .arg(&dir);
        c
    };
    let mut first = Proc::spawn(headless(&[]));
    first.expect(Duration::from_secs(20), "ready", |v| v["event"] == "ready");
    for second in [headless(&[]), {
        let mut demo = bin();
        demo.args(["demo", "--headless", "--data-dir"]).arg(&dir);
        demo
    }] {
        let out = { second }.stdin(std::process::Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("another p2pchat is running with the data directory"), "{err}");
    }
    first.say("hello");
    first.expect(Duration::from_secs(20), "queued", |v| v["event"] == "queued");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("conversations")), 0o700);
    let log = dir.join("conversations/peer-127.0.0.1%3A9.jsonl");
    assert_eq!(mode(&log), 0o600, "{}", log.display());
    first.kill();
    // Once the first has gone (however it ended), the directory is free.
    let out = headless(&[]).stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_directory_or_address_that_cannot_be_used_is_one_sentence_and_exit_2() {
    let tmp = TempDir::new("unusable");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let below = file.join("p2pchat");
    let key = keygen();
    let chat = |headless: bool| {
        let mut c = bin();
        c.args(["chat", "--name", "a", "--peer", "127.0.0.1:9", "--key", &key]);
        if headless {
            c.arg("--headless");
        }
        c.stdin(std::process::Stdio::null());
        c
    };
    let good_data = tmp.path().join("data");
    let cases: Vec<(std::process::Command, String)> = vec![
        // A file where a directory should be, or below one: said so, not "File exists".
        (
            {
                let mut c = chat(true);
                c.arg("--data-dir").arg(&file);
                c
            },
            format!(
                "the data directory {}, named by --data-dir: {} is not a directory",
                file.display(),
                file.display()
            ),
        ),
        (
            {
                let mut c = chat(true);
                c.env("P2PCHAT_DATA_DIR", &below);
                c
            },
            format!(
                "named by P2PCHAT_DATA_DIR (an environment variable): {} is not a directory; choose another with --data-dir",
                file.display()
            ),
        ),
        // The full-screen interface's diagnostic log, by flag or variable.
        (
            {
                let mut c = chat(false);
                c.arg("--data-dir").arg(&good_data).arg("--log-dir").arg(&below);
                c
            },
            format!(
                "cannot use the log directory {}, named by --log-dir: {} is not a directory",
                below.display(),
                file.display()
            ),
        ),
        (
            {
                let mut c = chat(false);
                c.arg("--data-dir").arg(&good_data).env("P2PCHAT_LOG_DIR", &file);
                c
            },
            "named by P2PCHAT_LOG_DIR (an environment variable)".to_owned(),
        ),
    ];
    for (mut command, needle) in cases {
        let out = command.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {err}");
        assert!(err.contains(&needle) && err.lines().count() == 1, "{command:?}: {err}");
        assert!(!err.contains("File exists") && !err.contains("(named by"), "{err}");
    }
    // A --bind address in use is the user's to change, as `server --listen`'s is.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out =
        { chat(true) }.args(["--bind", &addr]).arg("--data-dir").arg(&good_data).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot bind the chat socket to {addr}, named by --bind")),
        "{err}"
    );
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

#[test]
fn version_completions_and_manual_pages() {
    let out = run(&["--version"]);
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(version.starts_with(&format!("p2pchat {}", env!("CARGO_PKG_VERSION"))), "{version}");
    // Built in a git checkout (as here): the commit too.
    if std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".git").exists() {
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        // The binary is as new as the last build: its commit is an ancestor of HEAD or HEAD.
        assert!(!commit.is_empty() && version.contains(" ("), "{version}");
    }
    for (shell, needle) in
        [("bash", "_p2pchat()"), ("zsh", "#compdef p2pchat"), ("fish", "complete -c p2pchat")]
    {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(needle), "{shell}");
    }
    let out = run(&["man"]);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH p2pchat 1") && page.contains("chat"), "{page}");
    let dir = TempDir::new("man");
    let out = run(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in ["p2pchat.1", "p2pchat-chat.1", "p2pchat-history.1", "p2pchat-server.1"] {
        assert!(dir.path().join(page).exists(), "{page}");
    }
}

#[test]
fn each_subcommand_offers_only_its_own_options() {
    let help = |sub: &str| String::from_utf8_lossy(&run(&[sub, "--help"]).stdout).into_owned();
    for sub in ["keygen", "server", "completions", "man"] {
        let text = help(sub);
        assert!(!text.contains("--config") && !text.contains("--data-dir"), "{sub}: {text}");
    }
    let nat = help("nat");
    assert!(nat.contains("--config") && !nat.contains("--data-dir"), "{nat}");
    let history = help("history");
    assert!(!history.contains("--name") && !history.contains("--headless"), "{history}");
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
fn history_takes_every_name_its_error_lists_and_an_address_as_given_to_peer() {
    let data = TempDir::new("hist-names");
    let dir = data.path().join("conversations");
    std::fs::create_dir_all(&dir).unwrap();
    let line = r#"{"v":1,"at":"2026-05-01T12:00:01+00:00","kind":"message","dir":"in","from":"bob","text":"hi"}"#;
    for file in ["peer-127.0.0.1%3A5001.jsonl", "contact-alice.jsonl", "room-a%20b.jsonl"] {
        std::fs::write(dir.join(file), line).unwrap();
    }
    let history = |name: &str| {
        let out = bin().args(["history", name, "--data-dir"]).arg(data.path()).output().unwrap();
        (out.status.code(), stderr(&out), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, err, _) = history("nowhere");
    assert_eq!(code, Some(2));
    let known = err.split("(known: ").nth(1).unwrap().trim_end().trim_end_matches(')');
    let listed: Vec<&str> = known.split(", ").collect();
    assert_eq!(listed.len(), 3, "{err}");
    let addresses = ["127.0.0.1:5001", "localhost:5001", "peer-127.0.0.1:5001", "a b", "alice"];
    for name in listed.into_iter().chain(addresses) {
        let (code, err, out) = history(name);
        assert_eq!(code, Some(0), "{name}: {err}");
        assert!(out.contains("bob: hi"), "{name}: {out}");
    }
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
    // A contact's conversation by the contact's name; a name that is two conversations asks.
    std::fs::write(dir.join("contact-bob.jsonl"), lines[1]).unwrap();
    let out = bin().args(["history", "bob", "--data-dir"]).arg(data.path()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bob: hi"));
    std::fs::write(dir.join("room-bob.jsonl"), lines[2]).unwrap();
    let out = bin().args(["history", "bob", "--data-dir"]).arg(data.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("say which (room-bob or contact-bob)"), "{}", stderr(&out));
    let out = bin().args(["history", "team", "--data-dir"]).arg(data.path()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let printed: Vec<&str> = text.lines().collect();
    assert_eq!(printed.len(), 3, "{text}");
    assert!(printed[0].ends_with("— bob is online (via 127.0.0.1:5)"), "{}", printed[0]);
    assert!(printed[1].ends_with("bob: hi ␛[2J there"), "{}", printed[1]);
    assert!(printed[2].ends_with("ann: yo"), "{}", printed[2]);
    assert!(stderr(&out).contains("skipped 1 unreadable line in"), "{}", stderr(&out));

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
