//! The full-screen interface in a real terminal (tmux): the demo shows three panes and the
//! bot's answer, /quit restores the terminal, reopening shows the earlier history, and a long
//! conversation opens at its end, searches back to an old message and scrolls to the first.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Proc, TempDir, direct_peer, free_port, keygen, skip_or_fail};

/// A tmux server of the test's own, with one session "t" running `command`; killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` (a shell line) in a 100×30 terminal.
    pub fn start(tag: &str, command: &str) -> Self {
        let tmux = Self { socket: format!("p2pchat-test-{}-{tag}", std::process::id()) };
        tmux.run(&["new-session", "-d", "-s", "t", "-x", "100", "-y", "30", command]);
        tmux
    }

    /// Whether tmux is installed.
    pub fn available() -> bool {
        Command::new("tmux").arg("-V").output().is_ok()
    }

    /// Presses keys by tmux name (e.g. "Home", "C-f").
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        self.run(&args);
    }

    /// Types literal text, then Enter.
    pub fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
        self.run(&["send-keys", "-t", "t", "Enter"]);
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Waits until the screen contains `needle`; panics with the screen after `within`.
    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        self.wait_until(&format!("{needle:?}"), within, |screen| screen.contains(needle))
    }

    /// Waits until `ready` holds for the screen; panics with `what` and the screen after
    /// `within`.
    pub fn wait_until(&self, what: &str, within: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Terminal state the program left behind: alternate screen, any mouse reporting, cursor
    /// shown (tmux's own flags for the pane).
    fn modes(&self) -> String {
        let format = "alternate=#{alternate_on} mouse=#{mouse_any_flag} cursor=#{cursor_flag}";
        self.run(&["display-message", "-p", "-t", "t", format]).trim().to_owned()
    }

    /// The pid of the pane's shell.
    fn shell_pid(&self) -> String {
        self.run(&["display-message", "-p", "-t", "t", "#{pane_pid}"]).trim().to_owned()
    }

    fn alive(&self) -> bool {
        self.run(&["list-panes", "-t", "t", "-F", "#{pane_dead}"]).trim() == "0"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn start_demo(data: &TempDir, tag: &str) -> Tmux {
    let command = format!(
        "{} demo --name tester --data-dir {}; echo EXITED $?; sleep 30",
        env!("CARGO_BIN_EXE_p2pchat"),
        data.path().display()
    );
    Tmux::start(tag, &command)
}

#[test]
fn demo_in_a_real_terminal() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let data = TempDir::new("tui");
    let tmux = start_demo(&data, "a");
    let screen = tmux.wait_for("bot: Hello tester!", Duration::from_secs(10));
    assert!(screen.contains("p2pchat · room demo"), "{screen}");
    assert!(screen.contains("status"), "{screen}");
    assert!(screen.contains("● bot online"), "{screen}");
    assert!(screen.contains("message (Enter sends"), "{screen}");
    tmux.type_line("are you real?");
    tmux.wait_for("tester: are you real? ✓", Duration::from_secs(10));
    tmux.wait_for("Backwards, that is \"?laer uoy era\"", Duration::from_secs(10));
    tmux.type_line("/quit");
    // The terminal is back to normal: the shell's echo is visible, the panes are gone.
    let screen = tmux.wait_for("EXITED 0", Duration::from_secs(10));
    assert!(!screen.contains("┌ status"), "{screen}");
    assert!(tmux.alive());
    drop(tmux);

    // Reopening the conversation shows what was said before.
    let tmux = start_demo(&data, "b");
    let screen = tmux.wait_for("earlier messages from the log", Duration::from_secs(10));
    assert!(screen.contains("tester: are you real?"), "{screen}");
}

#[test]
fn sigterm_restores_the_terminal() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let data = TempDir::new("tui-term");
    let tmux = start_demo(&data, "term");
    tmux.wait_for("● bot online", Duration::from_secs(10));
    let shell = tmux.run(&["display-message", "-p", "-t", "t", "#{pane_pid}"]);
    let out =
        Command::new("pkill").args(["-TERM", "-P", shell.trim(), "p2pchat"]).output().unwrap();
    assert!(out.status.success(), "pkill found no p2pchat under pid {shell}");
    let screen = tmux.wait_for("EXITED 0", Duration::from_secs(10));
    assert!(!screen.contains("┌ status"), "{screen}");
    // The goodbye reached the log as well as the screen: the bot's presence was recorded.
    let log = std::fs::read_to_string(data.path().join("conversations/room-demo.jsonl")).unwrap();
    assert!(log.contains("\"kind\":\"presence\""), "{log}");
}

#[test]
fn a_long_conversation_opens_at_its_end_and_search_finds_an_old_message() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let data = TempDir::new("long");
    let messages = 200_000;
    let log = data.path().join("conversations").join("room-demo.jsonl");
    crate::synthetic::write_log(&log, messages).unwrap();
    let tmux = start_demo(&data, "long");
    // The newest message is on the first screen.
    tmux.wait_for(&format!("#{} ", messages - 1), Duration::from_secs(10));
    // Search reaches back 199,000 messages; the match is shown and counted.
    tmux.keys(&["C-f"]);
    tmux.type_line(crate::synthetic::NEEDLE);
    let screen = tmux.wait_for("match 1 of 1", Duration::from_secs(10));
    let needle_line = format!("#{} ", crate::synthetic::NEEDLE_AT);
    assert!(screen.contains(&needle_line), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("message (Enter sends", Duration::from_secs(10));
    tmux.keys(&["Home"]);
    tmux.wait_for("#0 ", Duration::from_secs(10));
    tmux.keys(&["End"]);
    tmux.wait_for(&format!("#{} ", messages - 1), Duration::from_secs(10));
    tmux.type_line("/quit");
    tmux.wait_for("EXITED 0", Duration::from_secs(10));
    // Nothing was lost or rewritten: the log still starts with the first message.
    let first = std::fs::read_to_string(&log).unwrap().lines().next().unwrap().to_owned();
    assert!(first.contains("\"text\":\"#0 "), "{first}");
}

/// The shortest start of `word` that only it has in the code word list.
fn unique_prefix(word: &str) -> String {
    (1..=word.len())
        .map(|n| &word[..n])
        .find(|p| p2pchat::proto::keying::Code::words_starting(p).len() == 1)
        .unwrap_or(word)
        .to_owned()
}

#[test]
fn a_code_typed_at_the_prompt_with_tab_completion_pairs() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let (_server, addr) = crate::harness::server();
    let (ann_home, bob_home) = (TempDir::new("pa"), TempDir::new("pb"));
    let mut ann = crate::harness::bin();
    ann.args(["chat", "--headless", "--name", "ann", "--bind", "127.0.0.1:0", "--server"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(ann_home.path())
        .env("P2PCHAT_CONFIG", crate::harness::home_config(ann_home.path()));
    let mut ann = crate::harness::Proc::spawn(ann);
    let code = ann.expect(Duration::from_secs(10), "code", |v| v["event"] == "code");
    let code = code["code"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = code.split('-').collect();
    let command = format!(
        "P2PCHAT_CONFIG={} {} chat --join --name bob --bind 127.0.0.1:0 --server {addr} --data-dir {}; echo EXITED $?; sleep 30",
        crate::harness::home_config(bob_home.path()).display(),
        env!("CARGO_BIN_EXE_p2pchat"),
        bob_home.path().display()
    );
    let tmux = Tmux::start("join", &command);
    tmux.wait_for("Code from your friend", Duration::from_secs(10));
    // The number, the start of each word and Tab: the prompt spells out the rest.
    tmux.keys(&["-l", &format!("{}-{}", parts[0], unique_prefix(parts[1]))]);
    tmux.keys(&["Tab"]);
    tmux.wait_for(&format!("{}-{}-", parts[0], parts[1]), Duration::from_secs(5));
    tmux.keys(&["-l", &unique_prefix(parts[2])]);
    tmux.keys(&["Tab"]);
    tmux.wait_for(&code, Duration::from_secs(5));
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("keys agreed with ann", Duration::from_secs(15));
    assert!(screen.contains("p2pchat · with ann"), "{screen}");
    let agreed = ann.expect(Duration::from_secs(10), "agreed", |v| v["event"] == "keys_agreed");
    let number = agreed["safety_number"].as_str().unwrap();
    tmux.type_line("/verify");
    tmux.wait_for(number, Duration::from_secs(5));
    tmux.type_line("/quit");
    tmux.wait_for("EXITED 0", Duration::from_secs(10));
}

/// A headless "ann" on one port and the full-screen chat line for "bob" on another, direct.
struct DirectPair {
    ann: Proc,
    bob_line: String,
    _dirs: (TempDir, TempDir),
}

impl DirectPair {
    fn new() -> Self {
        let key = keygen();
        let (pa, pb) = (free_port(), free_port());
        let dirs = (TempDir::new("sig-a"), TempDir::new("sig-b"));
        let ann = direct_peer("ann", pa, pb, &key, dirs.0.path());
        let bob_line = format!(
            "P2PCHAT_KEY={key} P2PCHAT_CONFIG=/dev/null {} chat --name bob --bind {pb} --peer {pa} --data-dir {}",
            env!("CARGO_BIN_EXE_p2pchat"),
            dirs.1.path().display()
        );
        Self { ann, bob_line, _dirs: dirs }
    }

    /// Ann sees bob come online (again).
    fn bob_online(&mut self) {
        self.ann.expect(Duration::from_secs(15), "bob online", |v| {
            v["event"] == "peer_online" && v["peer"] == "bob"
        });
    }

    /// Ann sees bob say goodbye (not just fall silent).
    fn bob_left(&mut self, why: &str) {
        self.ann.expect(Duration::from_secs(10), why, |v| {
            v["event"] == "peer_offline" && v["peer"] == "bob" && v["reason"] == "left"
        });
    }
}

#[test]
fn every_ending_signal_restores_the_terminal_and_says_goodbye() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let mut pair = DirectPair::new();
    for signal in ["HUP", "TERM", "INT", "QUIT"] {
        let tmux = Tmux::start(
            &format!("sig-{signal}"),
            &format!("{}; echo EXITED $?; sleep 30", pair.bob_line),
        );
        tmux.wait_for("● ann online", Duration::from_secs(15));
        pair.bob_online();
        assert!(tmux.modes().starts_with("alternate=1 mouse=1"), "SIG{signal}: the chat is up");
        let out = Command::new("pkill")
            .args([&format!("-{signal}"), "-P", &tmux.shell_pid(), "p2pchat"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pkill found no p2pchat");
        let screen = tmux.wait_for("EXITED 0", Duration::from_secs(10));
        assert!(!screen.contains("┌ status"), "SIG{signal}: {screen}");
        assert_eq!(tmux.modes(), "alternate=0 mouse=0 cursor=1", "SIG{signal}: restored");
        pair.bob_left(&format!("bob's goodbye on SIG{signal}"));
    }
}

#[test]
fn ctrl_z_and_sigtstp_suspend_cleanly_and_fg_resumes() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let mut pair = DirectPair::new();
    // An interactive shell with job control, as a user has.
    let tmux = Tmux::start("suspend", "env PS1='PROMPT> ' bash --norc --noprofile -i");
    tmux.wait_for("PROMPT>", Duration::from_secs(10));
    tmux.type_line(&pair.bob_line);
    tmux.wait_for("● ann online", Duration::from_secs(15));
    pair.bob_online();
    for (how, stop) in [("Ctrl-Z", None), ("SIGTSTP", Some("-TSTP"))] {
        match stop {
            None => tmux.keys(&["C-z"]),
            Some(signal) => {
                let out = Command::new("pkill")
                    .args([signal, "-P", &tmux.shell_pid(), "p2pchat"])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "pkill found no p2pchat");
            }
        }
        let screen = tmux.wait_for("Stopped", Duration::from_secs(10));
        assert!(!screen.contains("┌ status"), "{how}: {screen}");
        assert_eq!(tmux.modes(), "alternate=0 mouse=0 cursor=1", "{how}: the shell's terminal");
        tmux.type_line("fg");
        // Resumed: the whole screen is drawn again and keys work.
        tmux.wait_for("┌ status", Duration::from_secs(10));
        assert!(tmux.modes().starts_with("alternate=1 mouse=1"), "{how}: the chat's again");
        tmux.type_line(&format!("back after {how}"));
        pair.ann.expect(Duration::from_secs(15), "the message", |v| {
            v["event"] == "message" && v["text"] == format!("back after {how}")
        });
    }
    tmux.type_line("/quit");
    pair.bob_left("bob's goodbye");
    tmux.wait_for("PROMPT>", Duration::from_secs(10));
    assert_eq!(tmux.modes(), "alternate=0 mouse=0 cursor=1");
}

#[test]
fn emoji_the_terminal_measures_differently_leave_nothing_behind() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let data = TempDir::new("emoji");
    let tmux = start_demo(&data, "emoji");
    tmux.wait_for("● bot online", Duration::from_secs(10));
    // A skin-tone modifier, a ZWJ sequence, a flag, a keycap: one grapheme each for us; tmux
    // may draw some as two.
    for emoji in ["👍🏽", "👩‍💻", "🇳🇱", "1️⃣"] {
        tmux.keys(&["-l", &format!("x{emoji}{emoji}y")]);
        tmux.wait_for("y", Duration::from_secs(5));
        tmux.keys(&["C-u"]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let screen = tmux.screen();
            let input = screen.lines().find(|l| l.contains("message (Enter sends")).map(|_| ());
            let typed_row =
                screen.lines().skip_while(|l| !l.contains("message (Enter sends")).nth(1);
            let clean =
                typed_row.is_some_and(|row| row.trim_matches(|c| c == '│' || c == ' ').is_empty());
            if input.is_some() && clean {
                break;
            }
            assert!(Instant::now() < deadline, "{emoji}: left behind after Ctrl-U:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    tmux.type_line("/quit");
    tmux.wait_for("EXITED 0", Duration::from_secs(10));
}

#[test]
fn keys_typed_while_waiting_for_a_friend_are_not_echoed_and_ctrl_c_leaves_echo_on() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let (_server, addr) = crate::harness::server();
    let home = TempDir::new("echo");
    let command = format!(
        "P2PCHAT_CONFIG={} {} chat --name ann --bind 127.0.0.1:0 --server {addr} --data-dir {}; echo EXITED $?; stty -a | grep -ow -- '-\\?echo' | head -1; sleep 30",
        crate::harness::home_config(home.path()).display(),
        env!("CARGO_BIN_EXE_p2pchat"),
        home.path().join("data").display()
    );
    let tmux = Tmux::start("echo", &command);
    tmux.wait_for("Your pairing code", Duration::from_secs(10));
    tmux.keys(&["-l", "typed early"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("EXITED 0", Duration::from_secs(10));
    assert!(!screen.contains("typed early"), "{screen}");
    // The terminal echoes again, as it did before.
    let screen = tmux.wait_for("echo\n", Duration::from_secs(5));
    assert!(!screen.contains("-echo"), "{screen}");
}

/// tmux's flag for a bell in the session's window (set while no client is attached).
fn bell_flag(tmux: &Tmux) -> String {
    tmux.run(&["display-message", "-p", "-t", "t", "#{window_bell_flag}"]).trim().to_owned()
}

#[test]
fn the_messenger_in_a_real_terminal_switches_conversations_and_rings_for_the_others() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let (_server, addr) = crate::harness::server();
    let (home, bob_dir, carol_dir) =
        (TempDir::new("tm-alice"), TempDir::new("tm-bob"), TempDir::new("tm-carol"));
    let (lobby, garden) = (keygen(), keygen());
    let rooms = format!(
        r#"[{{"name": "lobby", "server": "{addr}", "key": "{lobby}"}},
            {{"name": "garden", "server": "{addr}", "key": "{garden}"}}]"#
    );
    std::fs::write(home.path().join("rooms.json"), rooms).unwrap();
    let config = crate::harness::home_config(home.path());
    let command = format!(
        "P2PCHAT_CONFIG={} {} --name alice --bind 127.0.0.1:0 --data-dir {}; echo EXITED $?; sleep 30",
        config.display(),
        env!("CARGO_BIN_EXE_p2pchat"),
        home.path().join("data").display()
    );
    let tmux = Tmux::start("messenger", &command);
    let mut bob = crate::harness::room_peer("bob", addr, "lobby", &lobby, bob_dir.path());
    let mut carol = crate::harness::room_peer("carol", addr, "garden", &garden, carol_dir.path());
    let within = Duration::from_secs(15);
    for peer in [&mut bob, &mut carol] {
        peer.expect_event(within, "peer_online");
    }
    // Both rooms in the pane, each with its one member online; garden (first by name) shown.
    let screen = tmux.wait_for("conversations", within);
    assert!(screen.contains("room:garden") && screen.contains("room:lobby"), "{screen}");
    tmux.wait_until("both rooms with their member online", within, |screen| {
        screen.matches("1/1 online").count() == 2
    });
    tmux.wait_for("p2pchat · room garden", within);

    // A message in the conversation on screen: shown, no bell.
    carol.say("carol here");
    tmux.wait_for("carol: carol here", within);
    assert_eq!(bell_flag(&tmux), "0");
    // One in the other: counted unread beside it, and the bell rings.
    bob.say("hello from bob");
    tmux.wait_for("● room:lobby 1", within);
    tmux.wait_until("bell", within, |_| bell_flag(&tmux) == "1");
    let screen = tmux.screen();
    assert!(!screen.contains("hello from bob"), "{screen}");

    // Switching shows it, with the line above what was unread; the count is gone.
    tmux.keys(&["M-Up"]);
    let screen = tmux.wait_for("bob: hello from bob", within);
    assert!(screen.contains("p2pchat · room lobby"), "{screen}");
    assert!(screen.contains("unread since you left"), "{screen}");
    assert!(!screen.contains("room:lobby 1"), "{screen}");
    tmux.type_line("hi bob, from the messenger");
    bob.expect(within, "alice's line", |v| {
        v["event"] == "message" && v["text"] == "hi bob, from the messenger"
    });
    // Ctrl-B hides the pane and shows it again.
    tmux.keys(&["C-b"]);
    std::thread::sleep(Duration::from_millis(300));
    let screen = tmux.screen();
    assert!(!screen.contains("conversations"), "{screen}");
    tmux.keys(&["C-b"]);
    tmux.wait_for("conversations", within);
    tmux.type_line("/quit");
    tmux.wait_for("EXITED 0", within);
}
