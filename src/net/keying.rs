//! Runs a key handshake (`proto::keying`) on the chat's own socket before the chat starts:
//! asks the server for a nameplate, claims a friend's, or joins a contact's room; then posts
//! and fetches through the server until keys are agreed. Requests are repeated until
//! answered (UDP loses datagrams); every wait is bounded except waiting for a contact to come
//! online, which the user ends with Ctrl-C.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::time::{Instant, interval};

use crate::consts::{
    CLAIM_ANSWER_WAIT, CLAIM_EXCHANGE_WAIT, KEYING_LINGER, KEYING_RETRY, NAMEPLATE_PREFIX,
    RECV_BUFFER_BYTES, REGISTER_REFRESH, SERVER_SILENT_NOTICE_AFTER,
};
use crate::identity::{Identity, rendezvous_room};
use crate::proto::keying::{Agreed, Code, Failure, Handshake, Outbox, Pairing, Peer};
use crate::proto::wire::{FromServer, ToServer};

/// How long the server has to answer our first request before we give up.
const SERVER_ANSWER_WAIT: Duration = SERVER_SILENT_NOTICE_AFTER.saturating_mul(2);

/// What to agree keys with.
pub enum Plan {
    /// Ask the server for a new code and wait for a friend to use it.
    NewCode,
    /// Use the code a friend read out.
    Code(Code),
    /// Reconnect to a saved contact, in the room saved with it.
    Contact(Peer, String),
}

/// What the user should know while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Our code, to read out to the friend.
    Code(Code),
    /// Waiting for this contact to come online.
    Waiting(String),
    /// Asking the server (before anything else): it has this long to answer.
    Asking(SocketAddr, Duration),
    /// The friend's code is good: their side has this long to answer.
    Claimed(Duration),
}

/// Keys agreed, and where the chat goes on.
#[derive(Debug, Clone)]
pub struct Agreement {
    /// The keys and the proven peer.
    pub agreed: Agreed,
    /// The room the two meet in from now on.
    pub room: String,
    /// Paired now with a code (a new or renewed contact), rather than reconnected.
    pub paired: bool,
    /// The contact's hello these keys answer (reconnecting only).
    pub their_hello: Option<String>,
}

/// Why no keys were agreed.
#[derive(Debug, thiserror::Error)]
pub enum KeyingError {
    /// The server said no (an unknown, used or expired code, a full server).
    #[error("{0}")]
    Refused(String),
    /// The handshake itself failed.
    #[error(transparent)]
    Failed(#[from] Failure),
    /// The server never answered.
    #[error(
        "the server at {0} does not answer: is `p2pchat server` running there, and is UDP open?"
    )]
    ServerSilent(SocketAddr),
    /// Nobody used our code in time.
    #[error("nobody used the code within {}; run the command again for a new one", crate::text::duration_words(*.0))]
    CodeExpired(u64),
    /// The friend's side went quiet after we claimed their code.
    #[error("your friend's side stopped answering: is their p2pchat still showing the code?")]
    FriendGone,
    /// Someone claimed our code and then did not go through with the exchange.
    #[error(
        "someone used your code, calling themselves \"{0}\", but did not finish the exchange (a mistyped or guessed code, or their connection broke): run the command again for a new code"
    )]
    ClaimAbandoned(String),
    /// The socket failed.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}

enum Machine {
    Pair(Pairing),
    Contact(Handshake),
}

impl Machine {
    fn posts(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Pair(p) => p.posts(),
            Self::Contact(h) => h.posts(),
        }
    }

    fn wants(&self) -> Vec<&'static str> {
        match self {
            Self::Pair(p) => p.wants().into_iter().collect(),
            Self::Contact(h) => h.wants(),
        }
    }

    fn on_mail(&mut self, phase: &str, body: &str) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match self {
            Self::Pair(p) => p.on_mail(phase, body, now),
            Self::Contact(h) => h.on_mail(phase, body, now),
        }
    }

    fn outcome(&self) -> Option<&Result<Agreed, Failure>> {
        match self {
            Self::Pair(p) => p.outcome(),
            Self::Contact(h) => h.outcome(),
        }
    }

    /// Where it stands: what it posts and fetches, and whether it ended.
    fn step(&self) -> (Vec<(&'static str, String)>, Vec<&'static str>, bool) {
        (self.posts(), self.wants(), self.outcome().is_some())
    }

    fn their_hello(&self) -> Option<String> {
        match self {
            Self::Pair(_) => None,
            Self::Contact(h) => h.their_hello(),
        }
    }
}

/// Agrees keys for `name` with `identity` through the server at `server`, on `socket`.
pub async fn agree(
    socket: &UdpSocket,
    server: SocketAddr,
    name: &str,
    identity: Identity,
    plan: Plan,
    mut progress: impl FnMut(Progress),
) -> Result<Agreement, KeyingError> {
    let started = Instant::now();
    let our_key = identity.public();
    let paired = !matches!(plan, Plan::Contact(..));
    let mut heard_server = false;
    let mut machine: Option<Machine> = None;
    let mut room = match &plan {
        Plan::NewCode => String::new(),
        Plan::Code(code) => format!("{NAMEPLATE_PREFIX}{}", code.nameplate),
        Plan::Contact(_, room) => room.clone(),
    };
    let mut deadline: Option<Instant> = None;
    let mut code_secs = 0;
    let mut next_refresh = Instant::now();
    let mut outbox = Outbox::default();
    let mut tick = interval(KEYING_RETRY);
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    let send = |request: ToServer| async move {
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        socket.send_to(&bytes, server).await.map(|_| ())
    };
    let mut ended_at: Option<Instant> = None;
    // The server's cookie, once it asked for one (always for a claim, under load for others).
    let mut cookie: Option<String> = None;
    // Who claimed our code, once the server said so.
    let mut claimed_by: Option<String> = None;
    progress(Progress::Asking(server, SERVER_ANSWER_WAIT));
    loop {
        if let Some(m) = &machine
            && let Some(outcome) = m.outcome()
        {
            let ended_at = *ended_at.get_or_insert_with(Instant::now);
            let all_held = outbox.holds(&m.posts());
            // Our last post must be at the server for the other side to finish too, or to learn
            // why we refused (bounded).
            if all_held || ended_at.elapsed() > KEYING_LINGER {
                let agreed = outcome.clone()?;
                if paired {
                    room = rendezvous_room(&our_key, &agreed.peer.key);
                }
                let their_hello = m.their_hello();
                return Ok(Agreement { agreed, room, paired, their_hello });
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(match plan {
                Plan::NewCode if claimed_by.is_some() => {
                    KeyingError::ClaimAbandoned(claimed_by.unwrap_or_default())
                }
                Plan::NewCode => KeyingError::CodeExpired(code_secs),
                Plan::Code(_) | Plan::Contact(..) => KeyingError::FriendGone,
            });
        }
        if !heard_server && started.elapsed() > SERVER_ANSWER_WAIT {
            return Err(KeyingError::ServerSilent(server));
        }
        tokio::select! {
            _ = tick.tick() => {
                match &machine {
                    None => send(first_request(&plan, name, &room, cookie.clone())).await?,
                    Some(m) => {
                        if matches!(plan, Plan::Contact(..)) && Instant::now() >= next_refresh {
                            send(first_request(&plan, name, &room, cookie.clone())).await?;
                            next_refresh = Instant::now() + REGISTER_REFRESH;
                        }
                        for (phase, body) in outbox.due(m.posts()) {
                            send(ToServer::Post { room: room.clone(), phase: phase.into(), body }).await?;
                        }
                        for phase in m.wants() {
                            send(ToServer::Fetch { room: room.clone(), phase: phase.into() }).await?;
                        }
                    }
                }
            }
            received = socket.recv_from(&mut buf) => {
                let (len, from) = received?;
                if from != server {
                    continue; // a peer's early probe, or noise: not part of the handshake
                }
                let Ok(answer) = serde_json::from_slice::<FromServer>(&buf[..len]) else { continue };
                heard_server = true;
                let before = machine.as_ref().map(Machine::step);
                match answer {
                    // Our code's nameplate is gone from the server: it expired unused.
                    FromServer::Refused { .. } if matches!(plan, Plan::NewCode) && machine.is_some() => {
                        return Err(KeyingError::CodeExpired(code_secs));
                    }
                    FromServer::Refused { reason, .. } => return Err(KeyingError::Refused(reason)),
                    FromServer::Nameplate { nameplate, ttl_secs } if machine.is_none() => {
                        let code = Code::new(&nameplate, rand::random());
                        room = format!("{NAMEPLATE_PREFIX}{nameplate}");
                        machine = Some(Machine::Pair(Pairing::new(&code, identity.clone(), name.to_owned())));
                        deadline = Some(Instant::now() + Duration::from_secs(ttl_secs));
                        code_secs = ttl_secs;
                        progress(Progress::Code(code));
                    }
                    FromServer::Claimed { .. } if machine.is_none() => {
                        if let Plan::Code(code) = &plan {
                            machine = Some(Machine::Pair(Pairing::new(code, identity.clone(), name.to_owned())));
                            deadline = Some(Instant::now() + CLAIM_ANSWER_WAIT);
                            progress(Progress::Claimed(CLAIM_ANSWER_WAIT));
                        }
                    }
                    FromServer::Registered { .. } if machine.is_none() => {
                        if let Plan::Contact(peer, _) = &plan {
                            machine = Some(Machine::Contact(Handshake::new(identity.clone(), peer.clone(), rand::random())));
                            next_refresh = Instant::now() + REGISTER_REFRESH;
                            progress(Progress::Waiting(peer.name.clone()));
                        }
                    }
                    // Asked to prove we receive here: ask again with the cookie, at once (once
                    // per new cookie, so a server repeating itself cannot spin us).
                    FromServer::Cookie { cookie: c } if cookie.as_ref() != Some(&c) => {
                        cookie = Some(c);
                        tick.reset_immediately();
                    }
                    // Someone claimed our code: their first step should follow at once.
                    FromServer::Joined { name: who, .. } if matches!(plan, Plan::NewCode) && machine.is_some() => {
                        claimed_by = Some(crate::text::sanitize(&who));
                        deadline = Some(Instant::now() + CLAIM_EXCHANGE_WAIT);
                    }
                    FromServer::Posted { room: r, phase } if r == room => outbox.posted(&phase),
                    FromServer::Mail { room: r, phase, body, .. } if r == room => {
                        if let Some(m) = machine.as_mut() {
                            m.on_mail(&phase, &body);
                        }
                    }
                    _ => {}
                }
                // An answer that moved the handshake on is followed up now, not at the next
                // tick; one that changed nothing waits (so a repeated answer cannot spin).
                if machine.as_ref().map(Machine::step) != before {
                    tick.reset_immediately();
                    // A claimer still moving the exchange on gets the full wait again.
                    if claimed_by.is_some() {
                        deadline = Some(Instant::now() + CLAIM_EXCHANGE_WAIT);
                    }
                }
            }
        }
    }
}

/// The request that gets us into the right room.
fn first_request(plan: &Plan, name: &str, room: &str, cookie: Option<String>) -> ToServer {
    match plan {
        Plan::NewCode => ToServer::Allocate { name: name.to_owned(), cookie },
        Plan::Code(code) => {
            ToServer::Claim { nameplate: code.nameplate.clone(), name: name.to_owned(), cookie }
        }
        Plan::Contact(..) => ToServer::Register {
            room: room.to_owned(),
            name: name.to_owned(),
            private: Vec::new(),
            nat: None,
            relay: None,
            cookie,
            also: Vec::new(),
        },
    }
}
