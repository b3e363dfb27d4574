//! `update`: the one place where the model changes. Pure and synchronous: it reads the
//! message, mutates the model and returns effects; the runner does the IO.

use chrono::{DateTime, Local};

use super::commands::{self, Command};
use super::keymap::Action;
use super::message::{Effect, Message};
use super::model::{Entry, Model, PeerView, Public, ServerState, set_delivery};
use super::scrollback::{self, push, scroll_by};
use super::texts;
use crate::history::{Delivery, Record};
use crate::proto::{NetCommand, NetEvent};
use crate::ui;

/// Applies one message to the model.
pub fn update(model: &mut Model, message: Message) -> Vec<Effect> {
    let mut effects = Vec::new();
    match message {
        Message::Key(action) => on_action(model, action, &mut effects),
        Message::Paste(text) => {
            // Pasted text keeps its lines; terminals send CR or CRLF for them.
            model.input.insert(&text.replace("\r\n", "\n").replace('\r', "\n"));
            model.dirty = true;
        }
        Message::Scroll(rows) => scroll_by(model, rows, &mut effects),
        Message::Resize(cols, rows) => {
            model.size = (cols, rows);
            scroll_by(model, 0, &mut effects);
            model.dirty = true;
        }
        Message::Loaded(load, page) => scrollback::loaded(model, load, page, &mut effects),
        Message::Found(term, found) => scrollback::found(model, term, found, &mut effects),
        Message::Tick(now) => {
            model.now = now;
            // Only "seen Ns ago" changes with the clock.
            model.dirty |= model.peers.iter().any(|p| p.last_seen.is_some());
        }
        Message::Submit(line) => submit(model, line, &mut effects),
        Message::Net(event, at) => on_net(model, event, at, &mut effects),
        Message::Failed(error) => {
            if !model.log_failed {
                model.log_failed = true;
                push(model, Entry::system(model.now, texts::log_failed(&error)));
            }
        }
        Message::LogRecovered => {
            if model.log_failed {
                model.log_failed = false;
                push(model, Entry::system(model.now, texts::LOG_RECOVERED.to_owned()));
            }
        }
        Message::Quit => quit(model, &mut effects),
    }
    effects
}

fn on_action(model: &mut Model, action: Action, effects: &mut Vec<Effect>) {
    if model.search.is_some() && on_search_action(model, action, effects) {
        model.dirty = true;
        return;
    }
    let input = &mut model.input;
    match action {
        Action::Insert(c) => input.insert(c.encode_utf8(&mut [0; 4])),
        Action::Submit => {
            let line = model.input.text().to_owned();
            submit(model, line, effects);
        }
        Action::Backspace => input.backspace(),
        Action::Delete => input.delete(),
        Action::Left => input.left(),
        Action::Right => input.right(),
        Action::LineStart => input.home(),
        Action::LineEnd => input.end(),
        Action::DeleteWord => input.delete_word_back(),
        Action::ClearLine => {
            input.take();
        }
        Action::RecallPrevious => {
            if let Some(line) = model.recall.back(model.input.text()) {
                model.input.set(line);
            }
        }
        Action::RecallNext => {
            if let Some(line) = model.recall.forward() {
                model.input.set(line);
            }
        }
        Action::PageUp => scroll_by(model, page(model), effects),
        Action::PageDown => scroll_by(model, -page(model), effects),
        Action::Top => scrollback::to_oldest(model, effects),
        Action::Bottom => scrollback::to_newest(model, effects),
        Action::Find => {
            let typed = model.input.take();
            model.input.set(format!("/search {typed}"));
        }
        Action::Cancel => model.search = None,
        Action::Quit => quit(model, effects),
        Action::Suspend => effects.push(Effect::Suspend),
        // The messenger moves between conversations; a single chat has one.
        Action::NextConversation
        | Action::PreviousConversation
        | Action::Conversation(_)
        | Action::TogglePane => return,
    }
    model.dirty = true;
}

/// Keys that move between search matches while a search is shown; true when the key was
/// one of them. The match keys that are also typing keys (n, N, Enter) act on matches only
/// while the input line is empty.
fn on_search_action(model: &mut Model, action: Action, effects: &mut Vec<Effect>) -> bool {
    let typing = !model.input.text().is_empty();
    match action {
        Action::Submit | Action::Insert('n') if !typing => {
            scrollback::step_match(model, true, effects);
        }
        // Shift-Enter (in terminals that tell it from Enter) and Alt-Enter come as a new line.
        Action::Insert('N' | '\n') if !typing => scrollback::step_match(model, false, effects),
        Action::RecallPrevious => scrollback::step_match(model, true, effects),
        Action::RecallNext => scrollback::step_match(model, false, effects),
        _ => return false,
    }
    true
}

fn page(model: &Model) -> i32 {
    let height = ui::history_height(model);
    i32::from(height.saturating_sub(1).max(1))
}

/// Runs a submitted line. Every line, a message or a command, right or wrong, leaves the
/// input empty and goes into the recall list: a mistyped command is one Up away from being
/// corrected, and the next line never starts with the last one's mistake. (A message that
/// cannot be sent comes back into the input by its `NotSent` event.)
fn submit(model: &mut Model, line: String, effects: &mut Vec<Effect>) {
    let command = commands::parse(&line);
    if command == Command::Empty {
        return;
    }
    model.input.take();
    model.recall.push(line);
    match command {
        Command::Empty => {}
        Command::Say(text) => {
            effects.push(Effect::Net(NetCommand::Send { text }));
            // Sending jumps back to the newest messages, where the reply will appear.
            scrollback::to_newest(model, effects);
        }
        Command::Verify => {
            answer(model, texts::verify_lines(model.verify.as_ref(), model.demo), effects);
        }
        Command::Contacts => {
            answer(model, texts::contact_lines(&model.contacts, model.demo), effects);
        }
        Command::Search(term) if term.is_empty() => {
            answer(model, vec![texts::SEARCH_USAGE.to_owned()], effects);
        }
        Command::Search(term) => effects.push(Effect::Search(term)),
        Command::Help => answer(model, texts::help(false), effects),
        Command::Who => {
            let mut lines: Vec<String> =
                model.peers.iter().map(|p| texts::who_line(p, model.now)).collect();
            if lines.is_empty() {
                lines.push(texts::NO_PEERS.to_owned());
            }
            answer(model, lines, effects);
        }
        Command::Quit => quit(model, effects),
        Command::Unknown(word) => answer(model, vec![texts::unknown_command(&word, true)], effects),
        Command::To { .. }
        | Command::Open(_)
        | Command::Pair
        | Command::Join(_)
        | Command::Room { .. }
        | Command::Leave(_) => answer(model, vec![texts::MESSENGER_ONLY.to_owned()], effects),
    }
    model.dirty = true;
}

/// Shows a command's output: at the newest end of the history, where the view goes.
pub fn answer(model: &mut Model, lines: Vec<String>, effects: &mut Vec<Effect>) {
    scrollback::to_newest(model, effects);
    for line in lines {
        push(model, Entry::system(model.now, line));
    }
}

fn quit(model: &mut Model, effects: &mut Vec<Effect>) {
    if !model.quitting {
        model.quitting = true;
        effects.push(Effect::Net(NetCommand::Shutdown));
    }
}

fn log_and_show(
    model: &mut Model,
    event: &NetEvent,
    at: DateTime<Local>,
    effects: &mut Vec<Effect>,
) {
    if let Some(record) = Record::from_event(event, at, &model.me.name) {
        let entry = Entry::from_record(&record);
        // An incoming message is acknowledged, and one of ours leaves, only once it is in the log.
        let confirm = match event {
            NetEvent::Message { receipt, .. } => receipt.clone().map(NetCommand::Persisted),
            NetEvent::Sent { id, .. } | NetEvent::Queued { id, .. } => {
                Some(NetCommand::Logged(id.clone()))
            }
            _ => None,
        };
        effects.push(Effect::Log { record, confirm });
        if let Some(entry) = entry {
            push(model, entry);
        }
    }
}

/// Logs an event that changes an item shown already (no new item).
fn log_only(model: &Model, event: &NetEvent, at: DateTime<Local>, effects: &mut Vec<Effect>) {
    if let Some(record) = Record::from_event(event, at, &model.me.name) {
        effects.push(Effect::Log { record, confirm: None });
    }
}

fn peer_entry<'m>(model: &'m mut Model, id: crate::proto::PeerId, name: &str) -> &'m mut PeerView {
    if let Some(index) = model.peers.iter().position(|p| p.id == id) {
        let peer = &mut model.peers[index];
        peer.name = name.to_owned();
        return peer;
    }
    model.peers.push(PeerView {
        id,
        name: name.to_owned(),
        online: false,
        last_seen: None,
        addr: None,
        path: None,
        nat: None,
        rtt: None,
    });
    let last = model.peers.len() - 1;
    &mut model.peers[last]
}

fn on_net(model: &mut Model, event: NetEvent, at: DateTime<Local>, effects: &mut Vec<Effect>) {
    model.dirty = true;
    match &event {
        NetEvent::PublicEndpoint { addr } => model.me.public = Public::Known(*addr),
        NetEvent::StunFailed { server } => {
            model.me.public = Public::Failed(*server);
            push(model, Entry::system(at, texts::stun_failed(*server)));
        }
        NetEvent::Registered { server } => {
            if let Some(view) = model.me.server.as_mut() {
                view.state = ServerState::Registered;
                let line = texts::registered(*server, &view.room);
                push(model, Entry::system(at, line));
            }
        }
        NetEvent::ServerSilent { server } => {
            if let Some(view) = model.me.server.as_mut() {
                view.state = ServerState::Silent;
            }
            push(model, Entry::system(at, texts::server_silent(*server)));
        }
        NetEvent::ServerRefused { reason } => {
            if let Some(view) = model.me.server.as_mut() {
                view.state = ServerState::Refused(reason.clone());
            }
            push(model, Entry::system(at, texts::server_refused(reason)));
        }
        NetEvent::PeerIntroduced { peer, name, public } => {
            peer_entry(model, *peer, name).addr = Some(*public);
            push(model, Entry::system(at, texts::introduced(name, *public)));
        }
        NetEvent::PeerOnline { peer, name, addr, kind } => {
            let view = peer_entry(model, *peer, name);
            view.online = true;
            view.addr = Some(*addr);
            view.path = Some(*kind);
            view.last_seen = Some(at);
            log_and_show(model, &event, at, effects);
        }
        NetEvent::PeerOffline { peer, name, .. } => {
            peer_entry(model, *peer, name).online = false;
            log_and_show(model, &event, at, effects);
        }
        NetEvent::PathChanged { peer, name, addr, kind } => {
            let view = peer_entry(model, *peer, name);
            view.addr = Some(*addr);
            view.path = Some(*kind);
            view.last_seen = Some(at);
            push(model, Entry::system(at, texts::path_changed(name, *addr, *kind)));
        }
        NetEvent::PeerNat { peer, nat, .. } => {
            if let Some(view) = model.peer_mut(*peer) {
                view.nat = Some(nat.clone());
            }
        }
        NetEvent::OwnNat { nat } => {
            model.me.nat = Some(nat.clone());
            push(model, Entry::system(at, texts::own_nat(nat)));
        }
        NetEvent::Rtt { peer, rtt } => {
            if let Some(view) = model.peer_mut(*peer) {
                view.rtt = Some(*rtt);
                view.last_seen = Some(at);
            }
        }
        NetEvent::NoPathYet { name, ours, theirs, relay_offered, .. } => {
            let line = texts::no_path(name, ours.as_deref(), theirs.as_deref(), *relay_offered);
            push(model, Entry::system(at, line));
        }
        NetEvent::RelayReady { relayed } => {
            push(model, Entry::system(at, texts::relay_ready(*relayed)));
        }
        NetEvent::RelayFailed { reason } => {
            push(model, Entry::system(at, texts::relay_failed(reason)));
        }
        NetEvent::Message { from, .. } => {
            if let Some(view) = model.peers.iter_mut().find(|p| p.name == *from) {
                view.last_seen = Some(at);
            }
            log_and_show(model, &event, at, effects);
        }
        NetEvent::Sent { id, .. } => {
            // A queued message that went out changes in place; the log already holds it (as
            // pending, which "sent" also is), so each message stays one record.
            if !model.queued.remove(&id.0) {
                log_and_show(model, &event, at, effects);
            } else if set_delivery(&mut model.entries, &id.0, Delivery::Sent) {
                model.dirty = true;
            }
        }
        NetEvent::Delivered { id } => {
            set_delivery(&mut model.entries, &id.0, Delivery::Delivered);
            log_only(model, &event, at, effects);
        }
        NetEvent::Queued { id, .. } => {
            model.queued.insert(id.0.clone());
            log_and_show(model, &event, at, effects);
            push(model, Entry::system(at, texts::QUEUED));
        }
        NetEvent::NotSent { text, .. } => {
            // Put the text back so nothing typed is lost (unless something new is being typed).
            if model.input.text().is_empty() && !model.quitting {
                model.input.set(text.clone());
            }
            log_and_show(model, &event, at, effects);
        }
        NetEvent::Rejected { from, reason } => {
            push(model, Entry::system(at, texts::rejected(*from, *reason)))
        }
        NetEvent::KeysAgreed { peer, safety_number } => {
            let verify = crate::app::model::Verify {
                peer: peer.clone(),
                safety_number: safety_number.clone(),
            };
            push(model, Entry::system(at, texts::keys_agreed(&verify)));
            model.verify = Some(verify);
        }
        NetEvent::KeysRenewed { peer } => push(model, Entry::system(at, texts::keys_renewed(peer))),
        NetEvent::KeysRefused { reason } => push(model, Entry::system(at, reason.clone())),
        NetEvent::Drops(counts) => model.drops = *counts,
        NetEvent::Closed => effects.push(Effect::Exit),
    }
}

#[cfg(test)]
mod tests;
