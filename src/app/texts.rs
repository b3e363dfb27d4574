//! Every sentence the app shows the user, in one place.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Local};

use super::commands::{COMMANDS, MESSENGER_COMMANDS};
use super::keymap;
use super::model::Verify;
use super::model::{PeerView, Public};
use crate::identity::Contact;
use crate::proto::nat::NatType;
use crate::proto::{PathKind, Rejection};
use crate::text::count;

/// Instead of the panes, in a terminal smaller than they need.
pub fn too_small(size: (u16, u16), needed: (u16, u16)) -> String {
    format!(
        "Terminal too small ({}×{}): p2pchat needs at least {}×{}. Enlarge the window.",
        size.0, size.1, needed.0, needed.1
    )
}

/// The input box's title.
pub const INPUT_TITLE: &str = " message (Enter sends · Alt-Enter new line · /help) ";

/// Shown when a conversation opens.
pub const WELCOME: &str = "Type a message and press Enter. /help lists commands and keys.";

/// A peer came online or went offline.
pub fn presence(peer: &str, online: bool, addr: Option<&str>, reason: Option<&str>) -> String {
    match (online, addr, reason) {
        (true, Some(addr), _) => format!("{peer} is online (via {addr})"),
        (true, None, _) => format!("{peer} is online"),
        (false, _, Some("left")) => format!("{peer} left"),
        (false, _, _) => format!("{peer} is offline: nothing heard for a while"),
    }
}

/// Unreadable lines met in the log (skipped), for the status pane.
pub fn skipped_lines(n: usize) -> String {
    format!(" log: skipped {}", unreadable_lines(n))
}

/// "1 unreadable line", "3 unreadable lines".
pub fn unreadable_lines(n: usize) -> String {
    count(n as u64, "unreadable line", "unreadable lines")
}

/// Datagrams dropped (garbage, forged, replayed…), for the status pane.
pub fn dropped(n: u64) -> String {
    format!(" dropped {}", count(n, "bad packet", "bad packets"))
}

/// A re-pairing replaced a contact's saved key.
pub fn contact_key_replaced(name: &str) -> String {
    format!(
        "{name}'s identity key changed since you last paired; the new one is saved (you paired with a code)"
    )
}

/// A re-pairing found a contact we knew by their key under a new name.
pub fn contact_renamed(previous: &str, name: &str) -> String {
    format!("{name} is the contact you knew as {previous} (same identity key); renamed to {name}")
}

/// Keys were agreed with a proven peer.
pub fn keys_agreed(verify: &Verify) -> String {
    format!(
        "end-to-end keys agreed with {}; /verify shows the safety number to compare",
        verify.peer
    )
}

/// How a pair's own room is shown (its name at the server is an opaque hash).
pub fn private_room(peer: &str) -> String {
    format!("private, with {peer}")
}

/// The contact restarted and the keys were agreed again.
pub fn keys_renewed(peer: &str) -> String {
    format!("{peer} restarted; new end-to-end keys agreed (same identity, same safety number)")
}

/// Before the first answer from the server, when keys are agreed through it.
pub fn asking_server(server: SocketAddr, within: Duration) -> String {
    format!(
        "Asking the server at {server}… (waiting at most {} for an answer)",
        crate::text::duration_words(within.as_secs())
    )
}

/// The friend's code was good; their side now answers, or the wait ends.
pub fn code_claimed(within: Duration) -> String {
    format!(
        "The code is good; waiting for your friend's side to answer… (at most {}; if they \
         closed it, ask them for a new code)",
        crate::text::duration_words(within.as_secs())
    )
}

/// How to pair, for texts that point to it.
const HOW_TO_PAIR: &str = "pair with a friend by code (p2pchat chat --server ADDR)";

/// `/verify`: the safety number and what it means (`demo`: the peer is the demo's bot).
pub fn verify_lines(verify: Option<&Verify>, demo: bool) -> Vec<String> {
    match verify {
        Some(v) => vec![
            format!("safety number with {}: {}", v.peer, v.safety_number),
            format!(
                "{} sees the same number if nobody is in the middle: compare it in person or on a call",
                v.peer
            ),
        ],
        None if demo => vec![format!(
            "nothing to verify in the demo: you and the bot share a key made for this run, inside this process; {HOW_TO_PAIR} for identities you can verify"
        )],
        None => vec![format!(
            "nothing to verify: this chat uses a shared key (--key); {HOW_TO_PAIR} for identities you can verify"
        )],
    }
}

/// `/contacts` (`demo`: the peer is the demo's bot, which is nobody's contact).
pub fn contact_lines(contacts: &[Contact], demo: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if demo {
        lines.push("the demo's bot is not a contact (it is made anew each run); the people you paired with:".to_owned());
    }
    if contacts.is_empty() {
        lines.push(format!("no contacts yet: {HOW_TO_PAIR}"));
        return lines;
    }
    lines.extend(contacts.iter().map(|c| {
        let since = c.first_seen.get(..10).unwrap_or(&c.first_seen);
        format!(
            "{} — paired {since}; reconnect with: p2pchat chat {} --server ADDR",
            c.name, c.name
        )
    }));
    lines
}

/// `/search` without a text.
pub const SEARCH_USAGE: &str =
    "usage: /search TEXT (finds TEXT in the whole history, ignoring case)";

/// A search that found nothing.
pub fn no_match(term: &str) -> String {
    format!("no message contains \"{term}\"")
}

/// Where the search stands, for the input box's title.
pub fn search_status(term: &str, current: usize, total: usize, truncated: bool) -> String {
    let more = if truncated { "+" } else { "" };
    let nth = total - current;
    format!(
        " \"{term}\": match {nth} of {total}{more} (newest first) · n/Enter older · N newer · Esc ends "
    )
}

/// The log could not be read back for scrolling or search.
pub fn log_unreadable(error: &str) -> String {
    format!("cannot read the conversation log: {error}")
}

/// Marks where the log's history ends and this session begins.
pub const HISTORY_ABOVE: &str = "── earlier messages from the log above: PgUp scrolls, Home goes to the first, Ctrl-F searches ──";

/// A message that was not sent, named by its start (the text is back in the input box).
pub fn not_sent(text: &str, reason: &str) -> String {
    format!("not sent: \"{}\" — {reason}", crate::text::start_of(text, NOT_SENT_QUOTED_CHARS))
}

/// Characters of an unsent text quoted in its notice (the text itself stays in the input).
const NOT_SENT_QUOTED_CHARS: usize = 80;

/// Messages from an earlier run go out again.
pub fn resending(n: usize) -> String {
    match n {
        1 => "1 of your messages was not confirmed by a peer yet; it will be sent again".to_owned(),
        _ => format!(
            "{n} of your messages were not confirmed by a peer yet; they will be sent again"
        ),
    }
}

/// Our message is waiting for a peer.
pub const QUEUED: &str = "no peer online: your message will be sent when one comes online";

/// Datagrams from a source are refused.
pub fn rejected(from: SocketAddr, reason: Rejection) -> String {
    match reason {
        Rejection::WrongKey => {
            format!("undecryptable packets from {from} — wrong key? (they are dropped and counted)")
        }
        Rejection::Clock { skew_secs } => format!(
            "packets from {from} carry a clock {skew_secs:+} s from ours — check both clocks \
             (they are dropped as possible replays)"
        ),
    }
}

/// The STUN server did not answer.
pub fn stun_failed(server: SocketAddr) -> String {
    format!("STUN server {server} did not answer: our public endpoint is unknown")
}

/// Registered with the server.
pub fn registered(server: SocketAddr, room: &str) -> String {
    format!("registered with {server} in room \"{room}\"; waiting for peers")
}

/// The server is silent.
pub fn server_silent(server: SocketAddr) -> String {
    format!("rendezvous server {server} is not answering; still trying")
}

/// The server refused us.
pub fn server_refused(reason: &str) -> String {
    format!("the rendezvous server refused us: {reason}")
}

/// The server introduced a peer.
pub fn introduced(name: &str, public: SocketAddr) -> String {
    format!("server introduced {name} ({public}); punching a hole…")
}

/// No path found within the punch window, with what the NAT types say about it.
pub fn no_path(
    name: &str,
    ours: Option<&str>,
    theirs: Option<&str>,
    relay_offered: bool,
) -> String {
    let (ours_text, theirs_text) = (ours.unwrap_or("unknown"), theirs.unwrap_or("unknown"));
    let why = match (ours, theirs) {
        (Some(a), Some(b)) if NatType::can_punch(a, b) == Some(false) => {
            let symmetric = NatType::Symmetric.as_str();
            if a == symmetric && b == symmetric {
                "both behind symmetric NATs: a relay is needed".to_owned()
            } else {
                format!("you are behind {a}, {name} behind {b}: a relay is needed")
            }
        }
        _ => format!("NAT types: you {ours_text}, {name} {theirs_text}"),
    };
    let relay = if relay_offered {
        "the relay is being tried"
    } else {
        "the server offers no relay (its operator can add one: p2pchat server --turn)"
    };
    format!(
        "no direct path to {name} after 10 s of punching — {why}; {relay}; still trying every \
         few seconds"
    )
}

/// Our relay is ready.
pub fn relay_ready(relayed: SocketAddr) -> String {
    format!("relay ready at {relayed}: peers without a direct path reach you through it")
}

/// The relay cannot be used.
pub fn relay_failed(reason: &str) -> String {
    format!("relay: {reason}; direct paths still work")
}

/// True when the NAT types say punching cannot work.
pub fn relay_needed(ours: Option<&str>, theirs: Option<&str>) -> Option<bool> {
    NatType::can_punch(ours?, theirs?).map(|ok| !ok)
}

/// Our NAT type was detected.
pub fn own_nat(nat: &str) -> String {
    format!("your NAT type: {nat}")
}

/// A peer's packets come from a new address.
pub fn path_changed(name: &str, addr: SocketAddr, kind: PathKind) -> String {
    format!("{name} is now reachable via {addr} ({})", kind.as_str())
}

/// An unknown slash command (`recall`: Up brings the line back, as in the full screen).
pub fn unknown_command(word: &str, recall: bool) -> String {
    let up = if recall { "; Up brings the line back" } else { "" };
    format!("unknown command /{word} — /help lists commands{up} (start with // to send a slash)")
}

/// The line above what came while the user was in another conversation.
pub const UNREAD_SINCE: &str = "──── unread since you left ────";

/// `/to` without a message.
pub const TO_USAGE: &str =
    "/to NAME TEXT sends TEXT in the conversation NAME (a contact, or room:NAME)";

/// `/join` without a code.
pub const JOIN_USAGE: &str = "/join CODE pairs with the code a friend read out (like 7-apple-banjo); /pair makes one for them";

/// `/room` without a name.
pub const ROOM_USAGE: &str = "/room NAME KEY joins the room NAME with its shared key (from `p2pchat keygen`); without KEY it is asked for";

/// A line typed in the messenger before it has any conversation.
pub const NO_CONVERSATION_YET: &str = "no conversation yet: /pair gives a code for a friend, /join CODE uses theirs, /room NAME KEY joins a room";

/// `/room NAME` without a key: the next line is the key.
pub fn room_key_prompt(room: &str) -> String {
    format!(
        "the key of room {room}, please: type or paste it and press Enter (an empty line cancels)"
    )
}

/// `/open` or `/to` with a name no conversation has.
pub fn no_conversation(name: &str, known: &str) -> String {
    format!(
        "no conversation \"{name}\" (conversations: {known}); /pair or /join CODE adds a contact, /room NAME KEY a room"
    )
}

/// The history's border while the conversations pane is hidden: unread messages elsewhere.
pub fn unread_elsewhere(unread: usize) -> String {
    format!(" {unread} unread elsewhere · Ctrl-N ")
}

/// Paired in the messenger with someone new under a contact's name.
pub fn contact_name_taken(name: &str, saved_as: &str) -> String {
    format!(
        "you already have a contact named {name} with another identity key: this one is saved \
         as {saved_as} (if it is the same person on a new device, remove the old {name} from \
         contacts.json beside your config file)"
    )
}

/// `/leave` for a contact.
pub const LEAVE_ROOMS_ONLY: &str = "/leave is for rooms; a contact stays in the pane (remove it \
    from contacts.json beside your config file to forget it)";

/// The messenger left a conversation.
pub fn conversation_left(label: &str) -> String {
    format!("left {label}; its key is forgotten, its log stays (p2pchat history shows it)")
}

/// The messenger opened a new conversation.
pub fn conversation_opened(label: &str) -> String {
    format!("conversation {label} opened")
}

/// A desktop notification's title: who wrote, and in which room.
pub fn notification_title(from: &str, with: &crate::app::messenger::With) -> String {
    match with {
        crate::app::messenger::With::Contact(_) => format!("p2pchat: {from}"),
        crate::app::messenger::With::Room(room) => {
            format!("p2pchat: {from} in room {room}")
        }
    }
}

/// A contact the messenger cannot look for: no server saved with it and none given.
pub fn contact_without_server(name: &str) -> String {
    format!(
        "{name} is left out: no server is saved with this contact (paired before servers were \
         saved); run with --server ADDR, or set `server` in the config file"
    )
}

/// A saved contact whose key cannot be read.
pub fn contact_key_unreadable(name: &str) -> String {
    format!(
        "{name} is left out: the key saved with this contact cannot be read; pair again (/pair)"
    )
}

/// A room with no server to meet on.
pub fn room_without_server(room: &str) -> String {
    format!(
        "room {room} needs a server: run with --server ADDR, or set `server` in the config file"
    )
}

/// A saved room whose key is not a key.
pub fn saved_room_key_unusable(room: &str, why: &str) -> String {
    format!(
        "room {room} is left out: its saved key is unusable ({why}); join it again with /room {room} KEY"
    )
}

/// `/room NAME KEY` with a key that is not one.
pub fn room_key_wrong(room: &str, why: &str) -> String {
    format!("not joining room {room}: {why}; the key is what `p2pchat keygen` printed for the room")
}

/// `/room NAME` with a name the server would refuse.
pub fn room_name_wrong(room: &str, problem: &str) -> String {
    format!("not joining room \"{room}\": its name {problem}")
}

/// `/room NAME KEY` with the key of another saved room.
pub fn room_key_taken(room: &str, other: &str) -> String {
    format!(
        "not joining room {room}: room {other} has that key; each room needs its own (p2pchat \
         keygen makes one)"
    )
}

/// A saved room whose key another saved room has.
pub fn saved_room_key_shared(room: &str) -> String {
    format!(
        "room {room} is left out: another saved room has its key; join it again with its own (/room {room} KEY)"
    )
}

/// `/room NAME KEY` for a room open with another key.
pub fn room_key_replaced(room: &str) -> String {
    format!("room {room} is joined again with the new key (the old one is forgotten)")
}

/// `/room NAME` for a room already open.
pub fn room_already_open(room: &str) -> String {
    format!("room {room} is open already with that key: /open room:{room} shows it")
}

/// The messenger has no server to pair through.
pub const NO_SERVER_TO_PAIR: &str =
    "pairing needs a server: run with --server ADDR, or set `server` in the config file";

/// A new conversation found the network too busy to take it.
pub const NETWORK_BUSY: &str = "the network is busy; try again";

/// A pairing's progress, for the messenger's screen.
pub fn pairing_progress(progress: &crate::net::keying::Progress) -> String {
    use crate::net::keying::Progress;
    match progress {
        Progress::Code(code) => format!(
            "your pairing code: {code} — read it to your friend, who types /join {code} (or runs \
             p2pchat chat {code}); it works once, for 10 minutes"
        ),
        Progress::Waiting(peer) => format!("waiting for {peer} to come online"),
        Progress::Asking(server, within) => asking_server(*server, *within),
        Progress::Claimed(within) => code_claimed(*within),
    }
}

/// A pairing that agreed no keys.
pub fn pairing_failed(reason: &str) -> String {
    format!("pairing did not work: {reason}")
}

/// Paired again with a contact whose conversation is open.
pub fn paired_again(name: &str) -> String {
    format!("paired with {name} again; their conversation agrees new keys by itself")
}

/// The messenger started with no contact and no saved room.
pub const NOTHING_TO_OPEN: &str = "no contacts or rooms yet, and no server to meet them on: \
    run `p2pchat --server ADDR` (or set `server` in the config file), then /pair gives a code \
    to read out to a friend";

/// A messenger command given in a single chat.
pub const MESSENGER_ONLY: &str = "that command is the messenger's: run `p2pchat` (or `p2pchat \
    open`) to hold all your contacts and rooms in one window";

/// Headless input line `line` is not UTF-8 (skipped).
pub fn input_not_utf8(line: u64, byte: u8, column: usize) -> String {
    format!(
        "input line {line} is not valid UTF-8 (byte 0x{byte:02X} at column {column}); skipped, \
         the lines after it are read as usual"
    )
}

/// Headless input line `line` holds a NUL byte (skipped).
pub fn input_nul(line: u64, column: usize) -> String {
    format!(
        "input line {line} holds a NUL byte (column {column}), which is not text; skipped, the \
         lines after it are read as usual"
    )
}

/// Headless input line `line` is longer than a message may be (skipped, not quoted).
pub fn input_too_long(line: u64) -> String {
    format!(
        "input line {line} is longer than {} KiB, the most one message holds; skipped, the lines \
         after it are read as usual",
        crate::consts::MAX_MESSAGE_BYTES / 1024
    )
}

/// `/quit` while keys were agreed, after messages were typed.
pub const QUIT_BEFORE_KEYS: &str = "you quit before keys were agreed: nothing was sent";

/// Headless input ended while keys were agreed, with messages typed, and no keys came in time.
pub fn input_ended_before_keys(waited: Duration) -> String {
    format!(
        "input ended before keys were agreed, and they were not agreed within {} more: the \
         messages typed were not sent",
        crate::text::duration_words(waited.as_secs())
    )
}

/// Headless input could not be read any more.
pub fn input_failed(error: &str) -> String {
    format!("cannot read input any more: {error}; leaving as at the end of input")
}

/// The log could not be written.
pub fn log_failed(error: &str) -> String {
    format!(
        "cannot write the conversation log ({error}) — is the disk full? Until it can be \
         (tried every second), messages stay on screen only: no peer is told we have theirs, \
         and yours wait before they are sent"
    )
}

/// The conversation log could be written again after failing.
pub const LOG_RECOVERED: &str =
    "the conversation log is written again; what waited is in it and goes on as usual";

/// At exit, records that never reached the log.
pub fn log_lost(records: usize) -> String {
    format!(
        "{} could not be written to the conversation log before leaving; \
         messages among them were never confirmed to their senders or sent (peers send theirs \
         again next time)",
        count(records as u64, "record", "records")
    )
}

/// `/help` output, from the command and key tables.
pub fn help(messenger: bool) -> Vec<String> {
    let own: &[(&str, &str)] = if messenger { MESSENGER_COMMANDS } else { &[] };
    let commands = || COMMANDS.iter().chain(own).copied();
    // One column for every name, two spaces after the longest: wrapped rows go on under the
    // explanations.
    let width = commands().chain(keymap::help_rows(messenger)).map(|(k, _)| k.chars().count());
    let width = width.max().unwrap_or(0);
    let row = |(name, what): (&str, &str)| format!("  {name:<width$}  {what}");
    let mut lines = vec!["Commands:".to_owned()];
    lines.extend(commands().map(row));
    lines.push("Keys:".to_owned());
    lines.extend(keymap::help_rows(messenger).map(row));
    lines
}

/// "3s ago", "4m ago", "2h ago", "5d ago".
pub fn ago(now: DateTime<Local>, then: DateTime<Local>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// A round-trip time for display.
pub fn rtt(rtt: Duration) -> String {
    let micros = rtt.as_micros();
    if micros < 1000 { format!("{micros} µs") } else { format!("{} ms", micros / 1000) }
}

/// One `/who` line.
pub fn who_line(peer: &PeerView, now: DateTime<Local>) -> String {
    let mut line = format!(
        "{} {} {}",
        if peer.online { "●" } else { "○" },
        peer.name,
        if peer.online { "online" } else { "offline" }
    );
    if let Some(addr) = peer.addr {
        line.push_str(&format!(" · via {addr}"));
    }
    if let Some(path) = peer.path.filter(|_| peer.online) {
        line.push_str(&format!(" ({})", path.as_str()));
    }
    if let Some(nat) = &peer.nat {
        line.push_str(&format!(" · NAT {nat}"));
    }
    if let Some(rtt) = peer.rtt.filter(|_| peer.online) {
        line.push_str(&format!(" · rtt {}", self::rtt(rtt)));
    }
    match peer.last_seen {
        Some(seen) => line.push_str(&format!(" · seen {}", ago(now, seen))),
        None => line.push_str(" · never seen"),
    }
    line
}

/// `/who` with nobody known.
pub const NO_PEERS: &str = "no peers yet";

/// Our public endpoint, for the status pane.
pub fn public(public: &Public) -> String {
    match public {
        Public::NotAsked => "unknown (no STUN server; see --stun)".to_owned(),
        Public::Asking(server) => format!("asking {server}…"),
        Public::Known(addr) => addr.to_string(),
        Public::Failed(_) => "unknown (STUN server silent)".to_owned(),
    }
}

/// Our NAT type for the status pane.
pub fn nat(nat: Option<&str>, public: &Public) -> String {
    match (nat, public) {
        (Some(nat), _) => nat.to_owned(),
        (None, Public::NotAsked | Public::Failed(_)) => "unknown".to_owned(),
        (None, _) => "detecting…".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// String literals in `source` (escapes left as written) with the line each starts on;
    /// comments, char literals and lifetimes are stepped over.
    fn string_literals(source: &str) -> Vec<(usize, String)> {
        let chars: Vec<char> = source.chars().collect();
        let mut found = Vec::new();
        let (mut i, mut line) = (0, 1);
        let at = |k: usize| chars.get(k).copied();
        while i < chars.len() {
            match chars[i] {
                '\n' => line += 1,
                '/' if at(i + 1) == Some('/') => {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                    continue;
                }
                '/' if at(i + 1) == Some('*') => {
                    while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                        line += usize::from(chars[i] == '\n');
                        i += 1;
                    }
                    i += 2;
                    continue;
                }
                // A char literal ('x', '\n', '"'); a lifetime has no closing quote.
                '\'' if at(i + 1) == Some('\\') => {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                }
                '\'' if at(i + 2) == Some('\'') => i += 2,
                'r' if (at(i + 1) == Some('"') || at(i + 1) == Some('#'))
                    && (i == 0 || !chars[i - 1].is_alphanumeric() && chars[i - 1] != '_') =>
                {
                    let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                    if chars.get(i + 1 + hashes) != Some(&'"') {
                        i += 1;
                        continue;
                    }
                    let (start, close) = (line, format!("\"{}", "#".repeat(hashes)));
                    let mut text = String::new();
                    i += 2 + hashes;
                    while i < chars.len()
                        && !chars[i..].starts_with(&close.chars().collect::<Vec<_>>())
                    {
                        line += usize::from(chars[i] == '\n');
                        text.push(chars[i]);
                        i += 1;
                    }
                    found.push((start, text));
                    i += close.len();
                    continue;
                }
                '"' => {
                    let start = line;
                    let mut text = String::new();
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        // A `\` continuation drops the line break and the indentation after it,
                        // as Rust does.
                        if chars[i] == '\\' && at(i + 1) == Some('\n') {
                            i += 1;
                            while i < chars.len() && chars[i].is_whitespace() {
                                line += usize::from(chars[i] == '\n');
                                i += 1;
                            }
                            continue;
                        }
                        if chars[i] == '\\' {
                            text.push(chars[i]);
                            i += 1;
                        }
                        line += usize::from(chars[i] == '\n');
                        text.push(chars[i]);
                        i += 1;
                    }
                    found.push((start, text));
                }
                _ => {}
            }
            i += 1;
        }
        found
    }

    /// What a reflowed string literal can hide: a line break kept in the text (a continuation
    /// without its `\`), or the indentation of the next source line pulled into it (a `\`
    /// continuation joined back into one line), which the user then sees as a run of spaces.
    fn reflow_mistake(text: &str) -> Option<&'static str> {
        if text.contains("\n ") {
            return Some("a line break and indentation");
        }
        let spaces = " ".repeat(REFLOW_SPACES);
        let run = text.trim_start().find(&spaces)?;
        // A short label aligned into a column ("note:       {note}") is on purpose.
        let label = &text.trim_start()[..run];
        (label.len() > MAX_LABEL_CHARS || !label.ends_with(':')).then_some("a run of spaces")
    }

    /// Spaces in a row, after the start of a string, that only a reflow (or a column) leaves.
    const REFLOW_SPACES: usize = 6;

    /// The longest label aligned into a column in our texts ("NAT type:").
    const MAX_LABEL_CHARS: usize = 12;

    fn rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn no_string_literal_hides_a_reflowed_line_break() {
        let mut files = Vec::new();
        rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let mut mistakes = Vec::new();
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            // Test code draws screens with padding on purpose; what users see is above it.
            let shipped = source.split("#[cfg(test)]").next().unwrap_or_default();
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            for (line, text) in string_literals(shipped) {
                if let Some(what) = reflow_mistake(&text) {
                    mistakes.push(format!("{}:{line}: {what}: {text:?}", file.display()));
                }
            }
        }
        assert!(
            mistakes.is_empty(),
            "string literals with a reflow mistake:\n{}",
            mistakes.join("\n")
        );
    }

    #[test]
    fn counts_of_one_are_singular() {
        assert_eq!(super::skipped_lines(1), " log: skipped 1 unreadable line");
        assert_eq!(super::skipped_lines(2), " log: skipped 2 unreadable lines");
        assert!(super::log_lost(1).starts_with("1 record could not"));
        assert!(super::log_lost(3).starts_with("3 records could not"));
        let drops = crate::server::ServerDrops { evicted: 1, malformed: 2, ..Default::default() };
        assert_eq!(drops.since(&Default::default()), "2 malformed, 1 entry evicted for fairness");
        assert!(crate::demo::reply("ann", "x").contains("(1 character)"));
    }

    #[test]
    fn the_scanner_finds_literals_and_both_mistakes() {
        let source = "let c = '\"'; let a: &'a str = \"one \\\n    two\"; // \"not this\"\n\
                      let r = r#\"raw \"x\" \"#; let bad = \"x          y\";";
        let texts: Vec<String> = string_literals(source).into_iter().map(|(_, t)| t).collect();
        assert_eq!(texts, ["one two", "raw \"x\" ", "x          y"]);
        assert_eq!(reflow_mistake("one two"), None);
        assert_eq!(reflow_mistake("x          y"), Some("a run of spaces"));
        assert_eq!(reflow_mistake("one\n    two"), Some("a line break and indentation"));
    }
}
