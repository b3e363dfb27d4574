//! Headless mode, for scripts, bots and tests: stdin lines are messages or commands; stdout is
//! one JSON object per line. Event names and fields are a public interface (see the README):
//! add new ones freely, never rename.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::io::Write;
use std::path::Path;

use chrono::Local;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};

use crate::app::Message;
use crate::app::commands::{self, Command};
use crate::app::texts;
use crate::chat::{Chat, ChatOptions, EndingSignals, StartError, off_worker};
use crate::consts::DRAIN_ON_EOF;
use crate::history;
use crate::proto::{NetEvent, Rejection};

mod input;
mod messenger;

pub use messenger::run as run_messenger;

use input::{Flaw, Input, Lines};

/// The event for an input line that was skipped: `not_sent` for a message too long to send
/// (as before, with its start instead of all of it), `error` for input that is not text.
fn skipped_json(line: u64, flaw: &Flaw) -> Value {
    let message = match flaw {
        Flaw::NotUtf8 { byte, column } => texts::input_not_utf8(line, *byte, *column),
        Flaw::Nul { column } => texts::input_nul(line, *column),
        Flaw::TooLong { start } => {
            let reason = texts::input_too_long(line);
            return json!({"event": "not_sent", "text": start, "reason": reason, "line": line});
        }
    };
    json!({"event": "error", "message": message, "line": line})
}

/// The JSON line for a network event, if it has one.
pub fn event_json(event: &NetEvent) -> Option<Value> {
    Some(match event {
        NetEvent::PublicEndpoint { addr } => json!({"event": "public_endpoint", "addr": addr}),
        NetEvent::KeysAgreed { peer, safety_number } => {
            json!({"event": "keys_agreed", "peer": peer, "safety_number": safety_number})
        }
        NetEvent::KeysRenewed { peer } => json!({"event": "keys_renewed", "peer": peer}),
        NetEvent::KeysRefused { reason } => json!({"event": "error", "message": reason}),
        NetEvent::StunFailed { server } => {
            json!({"event": "notice", "message": texts::stun_failed(*server)})
        }
        NetEvent::Registered { server } => json!({"event": "registered", "server": server}),
        NetEvent::ServerSilent { server } => {
            json!({"event": "notice", "message": texts::server_silent(*server)})
        }
        NetEvent::ServerRefused { reason } => {
            json!({"event": "error", "message": texts::server_refused(reason)})
        }
        NetEvent::PeerIntroduced { name, public, .. } => {
            json!({"event": "peer_introduced", "peer": name, "public": public})
        }
        NetEvent::PeerOnline { name, addr, kind, .. } => {
            json!({"event": "peer_online", "peer": name, "addr": addr, "path": kind.as_str()})
        }
        NetEvent::PeerOffline { name, reason, .. } => {
            json!({"event": "peer_offline", "peer": name, "reason": reason.as_str()})
        }
        NetEvent::PathChanged { name, addr, kind, .. } => {
            json!({"event": "path_changed", "peer": name, "addr": addr, "path": kind.as_str()})
        }
        NetEvent::NoPathYet { name, ours, theirs, relay_offered, .. } => json!({
            "event": "no_path", "peer": name, "ours": ours, "theirs": theirs,
            "relay_needed": texts::relay_needed(ours.as_deref(), theirs.as_deref()),
            "relay_offered": relay_offered,
            "message": texts::no_path(name, ours.as_deref(), theirs.as_deref(), *relay_offered),
        }),
        NetEvent::RelayReady { relayed } => json!({
            "event": "relay", "status": "ready", "relayed": relayed,
            "message": texts::relay_ready(*relayed),
        }),
        NetEvent::RelayFailed { reason } => json!({
            "event": "relay", "status": "failed", "message": texts::relay_failed(reason),
        }),
        NetEvent::PeerNat { name, nat, .. } => {
            json!({"event": "peer_nat", "peer": name, "nat": nat})
        }
        NetEvent::OwnNat { nat } => json!({"event": "nat", "nat_type": nat}),
        NetEvent::Delivered { id } => json!({"event": "delivered", "id": id.0}),
        NetEvent::Message { from, text, timestamp, id, .. } => json!({
            "event": "message", "from": from, "text": text, "timestamp": timestamp,
            "id": id.as_ref().map(|id| id.0.clone()),
        }),
        NetEvent::Sent { id, text, timestamp } => {
            json!({"event": "sent", "id": id.0, "text": text, "timestamp": timestamp})
        }
        NetEvent::Queued { id, text, timestamp } => {
            json!({"event": "queued", "id": id.0, "text": text, "timestamp": timestamp})
        }
        NetEvent::NotSent { text, reason } => {
            json!({"event": "not_sent", "text": text, "reason": reason})
        }
        NetEvent::Rejected { from, reason } => {
            let kind = match reason {
                Rejection::WrongKey => "wrong_key",
                Rejection::Clock { .. } => "clock",
            };
            json!({"event": "rejected", "from": from, "reason": kind,
                   "message": texts::rejected(*from, *reason)})
        }
        NetEvent::Drops(d) => json!({
            "event": "drops", "total": d.total(), "oversized": d.oversized,
            "malformed": d.malformed, "unauthentic": d.unauthentic, "stale": d.stale,
            "unexpected_source": d.unexpected_source, "duplicate": d.duplicate,
            "invalid": d.invalid, "replayed": d.replayed,
        }),
        NetEvent::Closed => json!({"event": "closed"}),
        NetEvent::Rtt { .. } => return None,
    })
}

/// Prints one JSON line, in one write; false when stdout is gone (the reader quit).
pub fn emit(value: &Value) -> bool {
    // (A `Value` always serializes: its keys are strings and a `Vec` takes every byte.)
    let Ok(mut line) = serde_json::to_vec(value) else { return true };
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line).and_then(|()| out.flush()).is_ok()
}

fn who(chat: &Chat) -> Value {
    json!({"event": "who", "peers": peers_json(&chat.model, Local::now())})
}

/// The peers of a conversation, as `/who` lists them at `now` (the wall clock when it is
/// asked: headless mode has no ticking clock in its model, whose `now` only a screen moves).
fn peers_json(model: &crate::app::Model, now: chrono::DateTime<Local>) -> Vec<Value> {
    model
        .peers
        .iter()
        .map(|p| {
            json!({
                "peer": p.name, "online": p.online, "addr": p.addr,
                "path": p.path.filter(|_| p.online).map(|k| k.as_str()), "nat": p.nat,
                "last_seen": p.last_seen.map(|t| t.to_rfc3339()),
                "last_seen_secs": p.last_seen.map(|t| (now - t).num_seconds().max(0)),
                "rtt_ms": p.rtt.map(|r| (r.as_secs_f64() * 1e6).round() / 1000.0),
            })
        })
        .collect()
}

/// `/verify`: the peer and the safety number (null for a chat with a shared key).
fn verify_json(model: &crate::app::Model) -> Value {
    let verify = model.verify.as_ref();
    json!({
        "event": "verify",
        "peer": verify.map(|v| &v.peer),
        "safety_number": verify.map(|v| &v.safety_number),
    })
}

/// Matches shown per `/search` in headless mode (the newest).
const SEARCH_MATCHES_SHOWN: usize = 20;

/// `/search TEXT`: how many messages in the log contain it and the newest of them.
fn search_json(log: &Path, term: &str) -> Value {
    if term.is_empty() {
        return json!({"event": "error", "message": texts::SEARCH_USAGE});
    }
    let found = match history::search(log, term) {
        Ok(found) => found,
        Err(e) => {
            return json!({"event": "error", "message": texts::log_unreadable(&e.to_string())});
        }
    };
    let newest = found.offsets.iter().rev().take(SEARCH_MATCHES_SHOWN).rev();
    let matches: Vec<Value> = newest
        .filter_map(|&offset| history::read_after(log, offset, 1).ok()?.records.pop())
        .filter_map(|(_, record)| match record.entry {
            history::Entry::Message { from, text, id, .. } => {
                Some(json!({"at": record.at.to_rfc3339(), "from": from, "text": text, "id": id}))
            }
            _ => None,
        })
        .collect();
    json!({
        "event": "found", "term": term, "count": found.offsets.len(),
        "truncated": found.truncated, "matches": matches,
    })
}

/// Stdin, read from the start: lines read while keys were being agreed wait here, in order,
/// for the chat.
pub struct Typed {
    lines: Lines<Box<dyn tokio::io::AsyncBufRead + Unpin + Send>>,
    kept: VecDeque<Input>,
}

impl Typed {
    /// Reads stdin from now on (needs a tokio runtime).
    pub fn from_stdin() -> Self {
        Self { lines: Lines::new(input::stdin()), kept: VecDeque::new() }
    }

    /// The next input: a kept one first. Cancel-safe (for `select!`).
    async fn next(&mut self) -> Input {
        match self.kept.pop_front() {
            Some(input) => input,
            None => self.lines.next().await,
        }
    }

    /// Messages kept for the chat.
    fn messages(&self) -> impl Iterator<Item = &str> {
        self.kept.iter().filter_map(|input| match input {
            Input::Line(line) if matches!(commands::parse(line), Command::Say(_)) => {
                Some(line.as_str())
            }
            _ => None,
        })
    }
}

/// Starts the chat (agreeing keys first, when pairing or reaching a contact) while reading
/// stdin: `/quit` ends it at once, and so does the end of input when nothing typed waits to
/// be sent (nothing could be typed any more, and a code or a wait is of no use without the
/// program); with messages typed, the end of input waits for the keys as long as it waits for
/// a delivery (`DRAIN_ON_EOF`), then gives up on them. Other lines wait for the chat. `None`:
/// it ended before the chat started (a `closed` event says so).
pub async fn start(options: ChatOptions, typed: &mut Typed) -> Result<Option<Chat>, StartError> {
    let start = crate::chat::start(options);
    tokio::pin!(start);
    let mut give_up_at: Option<Instant> = None;
    loop {
        tokio::select! {
            chat = &mut start => return chat.map(Some),
            input = typed.lines.next(), if give_up_at.is_none() => match input {
                Input::Line(line) if commands::parse(&line) == Command::Quit => {
                    for text in typed.messages() {
                        emit(&json!({"event": "not_sent", "text": text, "reason": texts::QUIT_BEFORE_KEYS}));
                    }
                    break;
                }
                Input::End(error) => {
                    typed.kept.push_back(Input::End(error));
                    if typed.messages().next().is_none() {
                        break;
                    }
                    give_up_at = Some(Instant::now() + DRAIN_ON_EOF);
                }
                input => typed.kept.push_back(input),
            },
            () = sleep_until(give_up_at.unwrap_or_else(Instant::now)), if give_up_at.is_some() => {
                let reason = texts::input_ended_before_keys(DRAIN_ON_EOF);
                for text in typed.messages() {
                    emit(&json!({"event": "not_sent", "text": text, "reason": reason}));
                }
                return Err(StartError::InputEnded(reason));
            }
        }
    }
    // Said at the end of a chat too: whatever reads us knows it is over.
    if let Some(Input::End(Some(error))) = typed.kept.back() {
        emit(&json!({"event": "error", "message": texts::input_failed(&error.to_string())}));
    }
    emit(&json!({"event": "closed"}));
    Ok(None)
}

/// Prints what a step said: its errors, then its notices and the lines the messenger showed.
fn print_said(step: &crate::chat::Step) {
    for error in &step.errors {
        emit(&json!({"event": "error", "message": error}));
    }
    for notice in step.notices.iter().chain(&step.said) {
        emit(&json!({"event": "notice", "message": notice}));
    }
}

/// Holds `line` behind the lines waiting for the log and prints them all, in order, unless
/// the log still cannot be written (`waiting`; at the end what never reached it is printed
/// too, after the error saying so). False when stdout is gone.
fn print_logged(held: &mut VecDeque<Value>, line: Option<Value>, waiting: bool) -> bool {
    held.extend(line);
    waiting || held.drain(..).all(|line| emit(&line))
}

/// The end of input (with why, when reading failed rather than ended): said, and the time
/// until which what was typed may still go out.
fn input_ended(error: Option<std::io::Error>) -> Instant {
    if let Some(error) = error {
        emit(&json!({"event": "error", "message": texts::input_failed(&error.to_string())}));
    }
    Instant::now() + DRAIN_ON_EOF
}

/// What this run typed and no peer has confirmed yet: end of input waits for it (bounded).
#[derive(Default)]
struct Awaiting {
    typed: usize,
    resolved: usize,
    undelivered: HashSet<String>,
}

impl Awaiting {
    fn on_event(&mut self, event: &NetEvent) {
        match event {
            NetEvent::Queued { id, .. } | NetEvent::Sent { id, .. }
                if self.undelivered.insert(id.0.clone()) =>
            {
                self.resolved += 1;
            }
            NetEvent::NotSent { .. } => self.resolved += 1,
            NetEvent::Delivered { id } => {
                self.undelivered.remove(&id.0);
            }
            _ => {}
        }
    }

    fn done(&self) -> bool {
        self.resolved >= self.typed && self.undelivered.is_empty()
    }
}

/// Runs until end of input (after queued messages went out, bounded), `/quit`, an ending
/// signal (SIGHUP, SIGTERM, SIGINT, SIGQUIT: each says goodbye like `/quit`) or `shutdown`.
pub async fn run(
    mut chat: Chat,
    mut typed: Typed,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    emit(&json!({
        "event": "ready", "name": chat.model.me.name, "local": chat.model.me.local,
        "conversation": chat.model.conversation, "log": chat.log.path(),
    }));
    for notice in &chat.notices {
        emit(&json!({"event": "notice", "message": notice}));
    }
    if chat.model.verify.is_some() {
        let mut agreed = verify_json(&chat.model);
        agreed["event"] = json!("keys_agreed");
        emit(&agreed);
    }
    let mut ending = EndingSignals::new()?;
    tokio::pin!(shutdown);
    // Messages handed to the network that are not yet sent (or refused).
    let mut awaiting = Awaiting::default();
    let mut drain_until: Option<Instant> = None;
    let mut stdin_open = true;
    let mut pending_line: Option<Value> = None;
    // Lines whose records wait for the log (it could not be written): printed, in order, once
    // they are in it.
    let mut held: VecDeque<Value> = VecDeque::new();
    loop {
        let retry_at = chat.retry_at();
        let message = tokio::select! {
            // Input waits while the network is busy, so a fast script never overruns it.
            input = typed.next(), if stdin_open && chat.net.commands.capacity() > 8 => match input {
                Input::Line(line) => match commands::parse(&line) {
                    Command::Who => {
                        emit(&who(&chat));
                        None
                    }
                    Command::Help => {
                        emit(&json!({"event": "help", "lines": texts::help(false)}));
                        None
                    }
                    Command::Verify => {
                        emit(&verify_json(&chat.model));
                        None
                    }
                    Command::Contacts => {
                        let contacts: Vec<Value> = chat.model.contacts.iter().map(|c| {
                            json!({"name": c.name, "key": c.key, "first_seen": c.first_seen})
                        }).collect();
                        emit(&json!({"event": "contacts", "contacts": contacts}));
                        None
                    }
                    Command::Search(term) => {
                        emit(&off_worker(|| search_json(chat.log.path(), &term)));
                        None
                    }
                    Command::Unknown(word) => {
                        emit(&json!({"event": "error", "message": texts::unknown_command(&word, false)}));
                        None
                    }
                    Command::To { .. } | Command::Open(_) | Command::Pair | Command::Join(_) | Command::Room { .. } | Command::Leave(_) => {
                        emit(&json!({"event": "error", "message": texts::MESSENGER_ONLY}));
                        None
                    }
                    Command::Say(_) => {
                        awaiting.typed += 1;
                        Some(Message::Submit(line))
                    }
                    Command::Empty | Command::Quit => Some(Message::Submit(line)),
                },
                Input::Skipped { line, flaw } => {
                    emit(&skipped_json(line, &flaw));
                    None
                }
                // End of input: leave once what is queued went out, or the wait ran out.
                Input::End(error) => {
                    stdin_open = false;
                    drain_until = Some(input_ended(error));
                    None
                }
            },
            event = chat.net.events.recv() => match event {
                Some(event) => {
                    awaiting.on_event(&event);
                    // Logged first, printed second: whatever a script has seen is in the log.
                    pending_line = event_json(&event);
                    Some(Message::Net(event, Local::now()))
                }
                None => {
                    let outcome = chat.network_outcome().await;
                    if let Err(error) = &outcome {
                        emit(&json!({"event": "error", "message": error.to_string()}));
                    }
                    return outcome;
                }
            },
            () = sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => {
                drain_until = None;
                Some(Message::Quit)
            }
            // Work that waits on time (log records after a failed write): a step does it.
            () = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                Some(Message::Tick(Local::now()))
            }
            () = ending.recv() => Some(Message::Quit),
            () = &mut shutdown => Some(Message::Quit),
        };
        if let Some(message) = message {
            let step = chat.apply(message);
            print_said(&step);
            if !print_logged(&mut held, pending_line.take(), chat.log_waiting() && !step.exit) {
                // Nobody reads our output any more: leave as if input had ended.
                stdin_open = false;
                drain_until.get_or_insert_with(Instant::now);
            }
            if step.exit {
                break;
            }
        }
        if !stdin_open && awaiting.done() && !chat.model.quitting {
            chat.apply(Message::Quit);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PeerId;

    #[test]
    fn who_counts_the_seconds_since_a_peer_was_seen_up_to_when_it_is_asked() {
        use crate::app::model::{Me, Public};
        let seen = Local::now();
        let me = Me {
            name: "ann".into(),
            local: "127.0.0.1:8".parse().unwrap(),
            public: Public::NotAsked,
            nat: None,
            server: None,
        };
        let page = crate::history::Page::default();
        let mut model = crate::app::Model::new(me, "peer bob".into(), page, seen);
        let event = NetEvent::PeerOnline {
            peer: PeerId(1),
            name: "bob".into(),
            addr: "127.0.0.1:9".parse().unwrap(),
            kind: crate::proto::PathKind::Public,
        };
        crate::app::update(&mut model, crate::app::Message::Net(event, seen));
        let peers = peers_json(&model, seen + chrono::Duration::seconds(7));
        assert_eq!(peers[0]["last_seen_secs"], 7, "{peers:?}");
        assert_eq!(peers[0]["online"], true);
    }

    #[test]
    fn a_peers_nat_type_says_whose_it_is() {
        let event =
            NetEvent::PeerNat { peer: PeerId(3), name: "bob".into(), nat: "Symmetric".into() };
        let json = event_json(&event).expect("a line");
        assert_eq!(json, json!({"event": "peer_nat", "peer": "bob", "nat": "Symmetric"}));
    }
}
