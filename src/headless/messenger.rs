//! Headless mode of the messenger (`p2pchat open --headless`): the single chat's JSON events,
//! each with a `"conversation"` field (a contact's name, or `room:NAME`); input lines are the
//! messenger's — a message goes to the conversation shown (the first, or the last `/open`ed),
//! `/to NAME text` to any, and `/pair`, `/join CODE`, `/room NAME KEY` open new ones.

use std::collections::VecDeque;
use std::future::Future;

use chrono::Local;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};

use super::input::Input;
use super::{
    Awaiting, Typed, emit, event_json, input_ended, peers_json, print_logged, print_said,
    search_json, skipped_json, verify_json,
};
use crate::app::Message;
use crate::app::commands::{self, Command};
use crate::app::messenger::{Event, Messenger};
use crate::app::texts;
use crate::chat::{EndingSignals, off_worker};
use crate::messenger::{self, Running};

/// The label of conversation `index`, or null.
fn label(messenger: &Messenger, index: usize) -> Value {
    messenger.conversations.get(index).map_or(Value::Null, |c| json!(c.with.label()))
}

/// `/who`: every conversation and its peers.
fn who(messenger: &Messenger) -> Value {
    let conversations: Vec<Value> = messenger
        .order()
        .into_iter()
        .map(|index| {
            let conversation = &messenger.conversations[index];
            let (online, known) = conversation.presence();
            json!({
                "conversation": conversation.with.label(), "online": online, "known": known,
                "unread": conversation.unread,
                "peers": peers_json(&conversation.model, chrono::Local::now()),
            })
        })
        .collect();
    json!({"event": "who", "conversations": conversations})
}

/// What a typed line is, for headless mode: answered here from the model (`None`), or the
/// messenger's event, and whether it is a message this run waits to see delivered.
fn on_line(running: &Running, line: String) -> (Option<Event>, bool) {
    let messenger = &running.messenger;
    let shown = messenger.selected;
    let conversation = label(messenger, shown);
    match commands::parse(&line) {
        Command::Who => emit(&who(messenger)),
        Command::Help => emit(&json!({"event": "help", "lines": texts::help(true)})),
        Command::Verify => match messenger.shown() {
            Some(c) => {
                let mut verify = verify_json(&c.model);
                verify["conversation"] = conversation;
                emit(&verify)
            }
            None => emit(&json!({"event": "error", "message": texts::NO_CONVERSATION_YET})),
        },
        Command::Contacts => {
            let contacts: Vec<Value> = running
                .contacts()
                .iter()
                .map(|c| json!({"name": c.name, "key": c.key, "first_seen": c.first_seen, "server": c.server}))
                .collect();
            emit(&json!({"event": "contacts", "contacts": contacts}))
        }
        Command::Search(term) => match running.logs.get(shown) {
            Some(log) => {
                let mut found = off_worker(|| search_json(log.path(), &term));
                found["conversation"] = conversation;
                emit(&found)
            }
            None => emit(&json!({"event": "error", "message": texts::NO_CONVERSATION_YET})),
        },
        Command::Unknown(word) => {
            emit(&json!({"event": "error", "message": texts::unknown_command(&word, false)}))
        }
        Command::Say(_) => {
            return (Some(Event::Ui(Message::Submit(line))), shown < messenger.conversations.len());
        }
        Command::To { name, text } => {
            let known = messenger.find(&name).is_some() && !text.trim().is_empty();
            return (Some(Event::Ui(Message::Submit(line))), known);
        }
        _ => return (Some(Event::Ui(Message::Submit(line))), false),
    };
    (None, false)
}

/// Runs until end of input (after what was typed is delivered, bounded), `/quit`, an ending
/// signal or `shutdown`, like the single chat's headless mode.
pub async fn run(
    mut running: Running,
    mut typed: Typed,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let labels: Vec<String> =
        running.messenger.conversations.iter().map(|c| c.with.label()).collect();
    emit(&json!({
        "event": "ready", "name": running.name(), "local": running.net.local,
        "conversations": labels, "conversation": label(&running.messenger, running.messenger.selected),
    }));
    for notice in &running.notices {
        emit(&json!({"event": "notice", "message": notice}));
    }
    let mut ending = EndingSignals::new()?;
    tokio::pin!(shutdown);
    let mut awaiting = Awaiting::default();
    let mut drain_until: Option<Instant> = None;
    let mut stdin_open = true;
    // Lines whose records wait for a log (it could not be written): printed, in order, once
    // they are in it.
    let mut held: VecDeque<Value> = VecDeque::new();
    loop {
        let retry_at = running.retry_at();
        let mut line: Option<Value> = None;
        let event = tokio::select! {
            input = typed.next(), if stdin_open && running.net.commands.capacity() > 8 => match input {
                Input::Line(text) => {
                    let (event, message) = on_line(&running, text);
                    awaiting.typed += usize::from(message);
                    event
                }
                Input::Skipped { line, flaw } => {
                    emit(&skipped_json(line, &flaw));
                    None
                }
                Input::End(error) => {
                    stdin_open = false;
                    drain_until = Some(input_ended(error));
                    None
                }
            },
            input = running.next_input() => match input {
                messenger::Input::Event(event) => {
                    if let Event::To(index, Message::Net(net, _)) = &event {
                        awaiting.on_event(net);
                        // Logged first, printed second: whatever a script has seen is in the log.
                        line = event_json(net).map(|mut value| {
                            value["conversation"] = label(&running.messenger, *index);
                            value
                        });
                    }
                    Some(event)
                }
                messenger::Input::Nothing => None,
                messenger::Input::NetworkEnded => {
                    let outcome = running.network_outcome().await;
                    match &outcome {
                        Err(error) => emit(&json!({"event": "error", "message": error.to_string()})),
                        Ok(()) => emit(&json!({"event": "closed", "conversation": null})),
                    };
                    return outcome;
                }
            },
            () = sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => {
                drain_until = None;
                Some(Event::Ui(Message::Quit))
            }
            () = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                Some(Event::Ui(Message::Tick(Local::now())))
            }
            () = ending.recv() => Some(Event::Ui(Message::Quit)),
            () = &mut shutdown => Some(Event::Ui(Message::Quit)),
        };
        if let Some(code) = running.take_code() {
            emit(&json!({"event": "code", "code": code}));
        }
        let Some(event) = event else { continue };
        let before = running.messenger.conversations.len();
        let step = running.apply(event);
        print_said(&step);
        for index in before..running.messenger.conversations.len() {
            let conversation = label(&running.messenger, index);
            emit(&json!({"event": "conversation_opened", "conversation": conversation}));
            // Paired just now: the keys were agreed before the conversation existed.
            if let Some(verify) = &running.messenger.conversations[index].model.verify {
                emit(&json!({
                    "event": "keys_agreed", "conversation": conversation,
                    "peer": verify.peer, "safety_number": verify.safety_number,
                }));
            }
        }
        if !print_logged(&mut held, line, running.log_waiting() && !step.exit) {
            // Nobody reads our output any more: leave as if input had ended.
            stdin_open = false;
            drain_until.get_or_insert_with(Instant::now);
        }
        if step.exit {
            break;
        }
        if !stdin_open && awaiting.done() && !running.messenger.quitting {
            running.apply(Event::Ui(Message::Quit));
        }
    }
    // Every conversation said `closed`; this one says the messenger did.
    emit(&json!({"event": "closed", "conversation": null}));
    Ok(())
}
