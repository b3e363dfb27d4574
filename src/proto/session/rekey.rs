//! Agreeing keys again inside a running contact chat, when the contact restarted (its new run
//! posts a new hello at the server and waits for ours). The session looks for a new hello when
//! the contact is re-introduced or is offline, answers it with a fresh `keying::Handshake`
//! through the server's posts, and switches to the new keys once the contact has proven
//! itself. The old keys stay in use until then; a contact that proves a different identity is
//! reported, never accepted. The new ephemeral secret comes from the OS's random source, not
//! the session's seeded one: key material is the one thing here that must not be replayable.

use std::time::{Duration, Instant};

use super::Session;
use crate::consts::{KEYING_RETRY, REKEY_POKE_WINDOW, REKEY_POLL, REKEY_POLL_MAX};
use crate::identity::{self, Identity};
use crate::proto::keying::{Handshake, Outbox, Peer, phase};
use crate::proto::wire::ToServer;
use crate::proto::{NetEvent, Transmit};

/// What a contact chat needs to agree keys again.
#[derive(Clone)]
pub struct Rekey {
    /// Our identity.
    pub identity: Identity,
    /// The contact, as saved.
    pub contact: Peer,
    /// The contact's hello the current keys come from (none after pairing with a code).
    pub hello: Option<String>,
    /// No keys yet: post our hello at once and agree the first keys inside the session (a
    /// messenger's contact conversation). The cipher the session starts with is a stand-in
    /// that nothing is sealed or opened with until then.
    pub initiate: bool,
}

impl std::fmt::Debug for Rekey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rekey").field("contact", &self.contact.name).finish_non_exhaustive()
    }
}

/// The running side of `Rekey`.
pub(super) struct RekeyState {
    config: Rekey,
    handshake: Option<Handshake>,
    /// The hello the handshake in progress answers.
    answering: Option<String>,
    outbox: Outbox,
    next_poll: Instant,
    /// The wait before the next look while the contact is away: from `REKEY_POLL`, doubling
    /// to `REKEY_POLL_MAX` (the server introduces a contact that comes back, which makes us
    /// look at once, so a long wait costs no time to reconnect).
    poll_gap: Duration,
    /// Look until then even though the contact seems online (it was re-introduced: its new
    /// run may post a hello any moment).
    poked_until: Option<Instant>,
}

impl RekeyState {
    /// When it next has something to do, if anything: while a handshake runs, or while the
    /// contact is away (`alone`).
    pub(super) fn due(&self, alone: bool) -> Option<Instant> {
        let poked = self.poked_until.is_some_and(|until| self.next_poll < until);
        (self.handshake.is_some() || alone || poked).then_some(self.next_poll)
    }

    pub(super) fn new(config: Rekey, now: Instant) -> Self {
        let handshake = config.initiate.then(|| {
            Handshake::new(config.identity.clone(), config.contact.clone(), rand::random())
        });
        let next_poll = if config.initiate { now } else { now + REKEY_POLL };
        Self {
            config,
            handshake,
            answering: None,
            outbox: Outbox::default(),
            next_poll,
            poll_gap: REKEY_POLL,
            poked_until: None,
        }
    }
}

impl Session {
    /// Looks for a new hello soon (the contact was re-introduced: it may have restarted).
    pub(super) fn rekey_soon(&mut self, now: Instant) {
        if let Some(rekey) = &mut self.rekey {
            rekey.next_poll = now;
            rekey.poll_gap = REKEY_POLL;
            rekey.poked_until = Some(now + REKEY_POKE_WINDOW);
        }
    }

    /// Polls the server while the contact is away or a handshake is in progress.
    pub(super) fn rekey_timers(&mut self, now: Instant) {
        let alone = !self.peers.iter().any(|p| p.online);
        // Posts and fetches need a membership first (the server refuses them before).
        let Some(rv) = self.rendezvous.as_ref().filter(|rv| rv.registered_once) else { return };
        let (server, room) = (rv.server, rv.room.clone());
        let Some(rekey) = &mut self.rekey else { return };
        if now < rekey.next_poll {
            return;
        }
        // A finished handshake is let go once the server holds our side of it.
        if let Some(handshake) = &rekey.handshake
            && handshake.outcome().is_some()
            && rekey.outbox.holds(&handshake.posts())
        {
            rekey.handshake = None;
        }
        let poked = rekey.poked_until.is_some_and(|until| now < until);
        if rekey.handshake.is_none() && !alone && !poked {
            return; // the contact is here, on the keys we have
        }
        let mut requests = vec![ToServer::Fetch { room: room.clone(), phase: phase::HELLO.into() }];
        rekey.next_poll = now + if poked { KEYING_RETRY } else { rekey.poll_gap };
        rekey.poll_gap = (rekey.poll_gap * 2).min(REKEY_POLL_MAX);
        if let Some(handshake) = &rekey.handshake {
            for (phase, body) in rekey.outbox.due(handshake.posts()) {
                requests.push(ToServer::Post { room: room.clone(), phase: phase.into(), body });
            }
            for phase in handshake.wants().into_iter().filter(|p| *p != phase::HELLO) {
                requests.push(ToServer::Fetch { room: room.clone(), phase: phase.into() });
            }
            // Quickly while the exchange runs (we have their hello) or the server does not
            // hold our posts yet; else our hello is up and theirs is not: the waiting pace.
            let under_way = handshake.their_hello().is_some();
            if under_way || !rekey.outbox.holds(&handshake.posts()) {
                rekey.next_poll = now + KEYING_RETRY;
            }
        }
        for request in requests {
            if let Ok(payload) = serde_json::to_vec(&request) {
                self.transmits.push_back(Transmit { to: server, payload, ttl: None });
            }
        }
    }

    /// The server holds our post under `phase`.
    pub(super) fn rekey_posted(&mut self, phase: &str) {
        if let Some(rekey) = &mut self.rekey {
            rekey.outbox.posted(phase);
        }
    }

    /// What the contact posted under `phase`.
    pub(super) fn rekey_mail(&mut self, now: Instant, phase: &str, body: &str) {
        let unix = self.unix_secs(now);
        let Some(rekey) = &mut self.rekey else { return };
        if phase == phase::HELLO {
            if rekey.config.hello.as_deref() == Some(body)
                || rekey.answering.as_deref() == Some(body)
            {
                return;
            }
            // Our own handshake is waiting for a hello (the first keys): it takes this one.
            if let Some(handshake) = rekey.handshake.as_mut().filter(|h| h.outcome().is_none()) {
                handshake.on_mail(phase, body, unix);
                if let Some(Err(failure)) = handshake.outcome() {
                    self.events.push_back(NetEvent::KeysRefused { reason: failure.to_string() });
                }
                rekey.answering = Some(body.to_owned());
                rekey.next_poll = now;
                return;
            }
            // A new run of the contact: answer it with fresh keys of our own.
            let secret: [u8; 32] = rand::random();
            let mut handshake =
                Handshake::new(rekey.config.identity.clone(), rekey.config.contact.clone(), secret);
            handshake.on_mail(phase, body, unix);
            // A hello under another identity key is refused at once; the handshake stays until
            // the server holds our refusal, so that the other side learns why.
            if let Some(Err(failure)) = handshake.outcome() {
                self.events.push_back(NetEvent::KeysRefused { reason: failure.to_string() });
            }
            rekey.handshake = Some(handshake);
            rekey.answering = Some(body.to_owned());
            rekey.next_poll = now;
            return;
        }
        let Some(handshake) = rekey.handshake.as_mut().filter(|h| h.outcome().is_none()) else {
            return; // none running, or it already ended (a late copy of an answer)
        };
        handshake.on_mail(phase, body, unix);
        let name = rekey.config.contact.name.clone();
        match handshake.outcome().cloned() {
            None => {}
            Some(Ok(agreed)) => {
                // Our posts stay at the server for the contact to finish with.
                rekey.config.hello = rekey.answering.clone();
                rekey.next_poll = now;
                self.cipher = agreed.cipher();
                self.keys_changed_at = Some(now);
                if self.keys_ready {
                    self.events.push_back(NetEvent::KeysRenewed { peer: name });
                } else {
                    let ours = rekey.config.identity.public();
                    let safety_number = identity::safety_number(&ours, &agreed.peer.key);
                    self.keys_ready = true;
                    self.events.push_back(NetEvent::KeysAgreed { peer: name, safety_number });
                    // Look for the contact at once, now that we can speak to it.
                    for peer in &mut self.peers {
                        peer.restart_punching(now);
                    }
                }
            }
            Some(Err(failure)) => {
                rekey.handshake = None;
                self.events.push_back(NetEvent::KeysRefused { reason: failure.to_string() });
            }
        }
    }
}
