//! Starting a chat and stepping it: binds the one socket, builds the session, opens the
//! conversation log and the model, spawns the network actor; then `Chat::apply` runs one
//! message through `update` and carries out its effects. Shared by the TUI, headless mode and
//! the demo, so they cannot drift apart.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, Utc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::app::message::Load;
use crate::app::model::{Entry, Me, Public, ServerState, ServerView, Verify};
use crate::app::{Effect, Message, Model, texts, update};
use crate::consts::{
    CONFIRM_RETRY_INTERVAL, HISTORY_PAGE_RECORDS, HISTORY_PRELOAD_RECORDS, LOG_RETRY_INTERVAL,
    MAX_UNWRITTEN_RECORDS, PENDING_SCAN_RECORDS,
};
use crate::history::{self, History, HistoryError, Page, Record};
use crate::identity::{self, Contact, Contacts, Identity, IdentityError, Remembered};
use crate::net::keying::{self, KeyingError, Plan, Progress};
use crate::net::{self, NetHandle};
use crate::proto::crypto::Cipher;
use crate::proto::session::Rekey;
use crate::proto::{Mode, NetCommand, NetEvent, Pending, Session, SessionConfig};

/// Everything needed to start a chat.
pub struct ChatOptions {
    /// Our display name.
    pub name: String,
    /// Direct or through a server.
    pub mode: Mode,
    /// The keys: shared, or agreed first.
    pub keys: Keys,
    /// Local address for the socket.
    pub bind: SocketAddr,
    /// STUN server (defaults to the rendezvous server in room mode).
    pub stun: Option<SocketAddr>,
    /// Silence before a peer is offline.
    pub offline_after: Duration,
    /// Where conversation logs live.
    pub data_dir: PathBuf,
    /// Where the identity and contacts live.
    pub config_dir: PathBuf,
}

/// Where the chat's keys come from.
pub enum Keys {
    /// One key both sides were given (`--key`).
    Shared(Cipher),
    /// Agreed through the server before the chat (a pairing code or a saved contact); the
    /// mode's room is then the pair's own.
    Agree {
        /// Pairing or reconnecting.
        plan: Box<Plan>,
        /// Our identity.
        identity: Identity,
        /// Told what the user should know meanwhile (the code, who we wait for).
        progress: Box<dyn FnMut(Progress) + Send>,
    },
}

/// Why a chat could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The socket could not be bound.
    #[error("cannot bind the chat socket to {addr}: {source} (choose another --bind)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The conversation log could not be opened.
    #[error("cannot open the conversation log: {0} (check --data-dir)")]
    History(#[from] HistoryError),
    /// No keys were agreed.
    #[error(transparent)]
    Keys(#[from] KeyingError),
    /// The contacts could not be read or saved.
    #[error(transparent)]
    Contacts(#[from] IdentityError),
    /// Input ended before keys were agreed, and they were not agreed in time.
    #[error("{0}")]
    InputEnded(String),
    /// One of the messenger's conversations cannot be opened (and is left out): why.
    #[error("{0}")]
    Skipped(String),
}

/// A running chat: the model, the log and the actor's handle.
pub struct Chat {
    /// The app state.
    pub model: Model,
    /// The conversation log, and what waits to be written to it or confirmed from it.
    pub log: Logbook,
    /// The network actor.
    pub net: NetHandle,
    /// What starting found worth telling (also in the model's history), for headless mode.
    pub notices: Vec<String>,
}

/// A conversation's log as the runner keeps it: records are written in order, and what the
/// network must hear of a written record (`Persisted`, `Logged`) is told only once it is in the
/// log, never lost. Shared by the single chat and each of the messenger's conversations.
pub struct Logbook {
    log: History,
    /// Records not written yet because a write failed (a full disk, a removed data dir), oldest
    /// first, each with what to tell the network once it is written. New records queue behind
    /// them, so the log keeps its order and nothing is confirmed before what came first.
    unwritten: VecDeque<(Record, Option<NetCommand>)>,
    /// When writing `unwritten` is tried again (besides every step).
    retry_log_at: Option<tokio::time::Instant>,
    /// What is written that the network must hear (`Persisted`, `Logged`) but did not fit the
    /// command channel yet, in order; none may be lost (a peer would wait for it forever).
    unconfirmed: VecDeque<NetCommand>,
}

/// Hands a command to a network actor without waiting (`mpsc::Sender::try_send`, or the
/// messenger's, which addresses it to one conversation).
pub type SendCommand<'a> = dyn FnMut(NetCommand) -> Result<(), TrySendError<NetCommand>> + 'a;

/// The result of one step.
#[derive(Debug, Default)]
pub struct Step {
    /// The network has closed: stop.
    pub exit: bool,
    /// What went wrong, in sentences for the user (already shown in the model too).
    pub errors: Vec<String>,
    /// The user asked to suspend (Ctrl-Z): the terminal's owner stops the program.
    pub suspend: bool,
    /// Worth telling that is not an error, in sentences (already shown in the model too).
    pub notices: Vec<String>,
    /// The messenger: ring the terminal's bell.
    pub bell: bool,
    /// The messenger: desktop notifications to send (title, body).
    pub desktop: Vec<(String, Option<String>)>,
    /// The messenger: lines it showed (headless mode prints them; the screen has them).
    pub said: Vec<String>,
}

/// The conversation a mode logs to: one file per room or per direct peer address.
pub fn conversation_id(mode: &Mode) -> String {
    match mode {
        Mode::Room { room, .. } => format!("room-{room}"),
        Mode::Direct { peer } => format!("peer-{peer}"),
    }
}

/// A conversation opened from its log: what the first screen shows and what the network must
/// finish from earlier runs.
pub struct Opened {
    /// The log, appending.
    pub log: History,
    /// The model, its window holding the end of the log.
    pub model: Model,
    /// Our messages no peer confirmed, to send again.
    pub pending: Vec<Pending>,
    /// Messages already shown (sender, id), never to be shown twice.
    pub seen: Vec<(String, String)>,
}

/// Opens the log of `conversation` and builds the model from its end. Reads only the end of
/// the file, so it costs the same for ten messages as for a million.
pub fn open_conversation(
    data_dir: &Path,
    conversation: &str,
    me: Me,
    title: String,
    now: DateTime<Local>,
) -> Result<Opened, HistoryError> {
    let log = History::open(data_dir, conversation)?;
    let history::Unfinished { pending, seen } =
        history::unfinished(log.path(), PENDING_SCAN_RECORDS)?;
    let page = history::tail(log.path(), HISTORY_PRELOAD_RECORDS)?;
    let mut model = Model::new(me, title, page, now);
    model.entries.push(Entry::system(now, texts::WELCOME));
    if !pending.is_empty() {
        model.entries.push(Entry::system(now, texts::resending(pending.len())));
    }
    Ok(Opened { log, model, pending, seen })
}

/// Binds, opens the log, builds the model and spawns the actor. Needs a tokio runtime.
pub async fn start(options: ChatOptions) -> Result<Chat, StartError> {
    let ChatOptions { name, mut mode, keys, bind, stun, offline_after, data_dir, config_dir } =
        options;
    let socket =
        UdpSocket::bind(bind).await.map_err(|source| StartError::Bind { addr: bind, source })?;
    let local = socket.local_addr().map_err(|source| StartError::Bind { addr: bind, source })?;
    let stun = stun.or(match &mode {
        Mode::Room { server, .. } => Some(*server),
        Mode::Direct { .. } => None,
    });
    let mut notices = Vec::new();
    let mut contacts = Contacts::load(&config_dir)?;
    let (cipher, conversation, verify, rekey) = match keys {
        Keys::Shared(cipher) => {
            let conversation = conversation_id(&mode);
            (cipher, conversation, None, None)
        }
        Keys::Agree { plan, identity, progress } => {
            let Mode::Room { server, room } = &mut mode else {
                return Err(KeyingError::Refused("keys are agreed through a server".into()).into());
            };
            let agreement =
                keying::agree(&socket, *server, &name, identity.clone(), *plan, progress).await?;
            let peer = &agreement.agreed.peer;
            *room = agreement.room.clone();
            if agreement.paired {
                let contact = Contact {
                    name: peer.name.clone(),
                    key: identity::encode_key(&peer.key),
                    room: agreement.room.clone(),
                    first_seen: Local::now().to_rfc3339(),
                    me: Some(name.clone()),
                    server: Some(server.to_string()),
                };
                match contacts.remember(contact)? {
                    Remembered::New | Remembered::Known => {}
                    Remembered::Renamed { previous } => {
                        notices.push(texts::contact_renamed(&previous, &peer.name));
                    }
                    Remembered::KeyChanged { .. } => {
                        notices.push(texts::contact_key_replaced(&peer.name));
                    }
                }
            }
            let verify = Verify {
                peer: peer.name.clone(),
                safety_number: identity::safety_number(&identity.public(), &peer.key),
            };
            let rekey = Rekey {
                identity,
                contact: peer.clone(),
                hello: agreement.their_hello.clone(),
                initiate: false,
            };
            (agreement.agreed.cipher(), format!("contact-{}", peer.name), Some(verify), Some(rekey))
        }
    };
    let (title, server) = match &mode {
        Mode::Room { server, room } => {
            // A pair's room is an opaque hash: show whose it is instead.
            let (title, shown_room) = match &verify {
                Some(verify) => {
                    (format!("with {}", verify.peer), texts::private_room(&verify.peer))
                }
                None => (format!("room {room}"), room.clone()),
            };
            let view =
                ServerView { addr: *server, room: shown_room, state: ServerState::Registering };
            (title, Some(view))
        }
        Mode::Direct { peer } => (format!("direct to {peer}"), None),
    };
    let me = Me {
        name: name.clone(),
        local,
        public: stun.map_or(Public::NotAsked, Public::Asking),
        nat: None,
        server,
    };
    let Opened { log, mut model, pending, seen } =
        open_conversation(&data_dir, &conversation, me, title, Local::now())?;
    let now = Local::now();
    model.entries.extend(notices.iter().map(|n| Entry::system(now, n.clone())));
    if let Some(verify) = &verify {
        model.entries.push(Entry::system(now, texts::keys_agreed(verify)));
    }
    model.verify = verify;
    model.contacts = contacts.list;
    let config = SessionConfig {
        stun_server: stun,
        offline_after,
        pending,
        seen,
        rekey,
        ..SessionConfig::new(&name, mode)
    };
    let net = spawn_session(socket, config, cipher)
        .map_err(|source| StartError::Bind { addr: bind, source })?;
    Ok(Chat { model, log: Logbook::new(log), net, notices })
}

/// Classifies our NAT off the chat socket and hands the result to the session, which tells
/// the server, the peers and the app.
async fn detect_nat(stun: SocketAddr, bind_ip: IpAddr, commands: mpsc::Sender<NetCommand>) {
    match net::nat::detect(stun, bind_ip).await {
        Ok(report) => {
            let nat = report.nat_type.as_str().to_owned();
            let _ = commands.send(NetCommand::SetNat { nat }).await;
        }
        Err(error) => tracing::warn!(%error, "NAT detection could not run"),
    }
}

/// Builds a session on `socket` (announcing the socket's private endpoints) and hands both to
/// a new network actor; with a STUN server, our NAT type is detected beside it (on sockets of
/// its own, from the same local IP) and announced, for every chat alike — the demo's bot too.
pub fn spawn_session(
    socket: UdpSocket,
    mut config: SessionConfig,
    cipher: Cipher,
) -> std::io::Result<NetHandle> {
    let local = socket.local_addr()?;
    config.private_endpoints = net::private_endpoints(local);
    let stun = config.stun_server;
    let session = Session::new(config, cipher, Instant::now(), Utc::now(), rand::random());
    let net = net::spawn(socket, session)?;
    if let Some(stun) = stun {
        tokio::spawn(detect_nat(stun, local.ip(), net.commands.clone()));
    }
    Ok(net)
}

/// The signals that end a program, SIGHUP (the terminal closed, an SSH connection dropped),
/// SIGTERM, SIGINT and SIGQUIT, caught so that each is answered like /quit: goodbyes to the
/// peers, the log and the terminal left in order.
pub struct EndingSignals(Vec<tokio::signal::unix::Signal>);

impl EndingSignals {
    /// Catches them from now on (needs a tokio runtime).
    pub fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            SignalKind::hangup(),
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::quit(),
        ];
        kinds.into_iter().map(signal).collect::<Result<_, _>>().map(Self)
    }

    /// The next one to arrive. Cancel-safe (for `select!`).
    pub async fn recv(&mut self) {
        let waits = self.0.iter_mut().map(|s| Box::pin(s.recv()));
        futures::future::select_all(waits).await;
    }
}

/// Runs file work that can take a while (a page of the log, a search of all of it) where it does
/// not hold up the network actor: on a runtime worker, tokio first moves the worker's other tasks
/// to another thread; outside a multi-thread runtime it simply runs.
pub fn off_worker<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Reads the page `Effect::Load` asks for from the log at `path`, as the message answering it.
pub fn answer_load(path: &Path, load: Load) -> Message {
    Message::Loaded(load, read_page(path, load).map_err(|e| e.to_string()))
}

/// Searches the log at `path` as `Effect::Search` asks, as the message answering it.
pub fn answer_search(path: &Path, term: String) -> Message {
    let found = history::search(path, &term).map_err(|e| e.to_string());
    Message::Found(term, found)
}

/// Reads the page of the log at `path` that `load` asks for.
fn read_page(path: &Path, load: Load) -> Result<Page, HistoryError> {
    match load {
        Load::Older(end) => history::read_before(path, Some(end), HISTORY_PAGE_RECORDS),
        Load::Newer(start) => history::read_after(path, start, HISTORY_PAGE_RECORDS),
        Load::First => history::read_after(path, 0, HISTORY_PAGE_RECORDS),
        Load::Latest => history::tail(path, HISTORY_PAGE_RECORDS),
        Load::Around(at) => {
            let mut page = history::read_before(path, Some(at), HISTORY_PAGE_RECORDS / 2)?;
            let after = history::read_after(path, at, HISTORY_PAGE_RECORDS / 2)?;
            page.records.extend(after.records);
            page.unreadable.extend(after.unreadable);
            page.end = after.end;
            page.len = after.len;
            Ok(page)
        }
    }
}

/// How a network actor's task ended, once its event channel has closed: an error when it
/// failed (a panic is a bug to report, never a quiet exit 0). Call it once.
pub async fn task_outcome(task: &mut tokio::task::JoinHandle<()>) -> anyhow::Result<()> {
    match task.await {
        Ok(()) => Ok(()),
        Err(join) if join.is_panic() => {
            let panic = join.into_panic();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(anyhow::anyhow!(
                "the network task failed ({what}); this is a bug, please report it with \
                 p2pchat.log"
            ))
        }
        Err(join) => Err(anyhow::anyhow!("the network task was cancelled: {join}")),
    }
}

impl Chat {
    /// How the network actor ended, once its event channel has closed: an error when its task
    /// failed (a panic is a bug to report, never a quiet exit 0). Call it once.
    pub async fn network_outcome(&mut self) -> anyhow::Result<()> {
        task_outcome(&mut self.net.task).await
    }

    /// Runs one message through `update` and carries out the effects.
    pub fn apply(&mut self, message: Message) -> Step {
        let mut step = Step::default();
        let mut pending = vec![message];
        let commands = self.net.commands.clone();
        let send = &mut |command| commands.try_send(command);
        // Every step first tries again what a failed write left (the disk may have room again).
        self.log.write(&mut step, &mut pending);
        while let Some(message) = pending.pop() {
            for effect in update(&mut self.model, message) {
                match effect {
                    Effect::Exit => {
                        step.exit = true;
                        self.log.last_try(&mut step, &mut pending);
                    }
                    Effect::Suspend => step.suspend = true,
                    effect => self.log.carry_out(effect, send, &mut step, &mut pending),
                }
            }
        }
        self.log.confirm_logged(send);
        step
    }

    /// True while records wait for the log (a write failed and has not succeeded since).
    pub fn log_waiting(&self) -> bool {
        self.log.waiting()
    }

    /// When the chat has work waiting on time rather than on a message (see
    /// `Logbook::retry_at`).
    pub fn retry_at(&self) -> Option<tokio::time::Instant> {
        self.log.retry_at()
    }
}

impl Logbook {
    /// Keeps `log`, with nothing waiting.
    pub fn new(log: History) -> Self {
        Self { log, unwritten: VecDeque::new(), retry_log_at: None, unconfirmed: VecDeque::new() }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        self.log.path()
    }

    /// Carries out one of a conversation's effects (besides `Exit` and `Suspend`, which are
    /// its runner's): what answers it (a page, a search, a message that found the network
    /// busy) goes to `messages`.
    pub fn carry_out(
        &mut self,
        effect: Effect,
        send: &mut SendCommand<'_>,
        step: &mut Step,
        messages: &mut Vec<Message>,
    ) {
        match effect {
            Effect::Net(command) => match send(command) {
                Ok(()) => {}
                Err(TrySendError::Full(NetCommand::Send { text })) => {
                    let reason = "the network is busy; try again".to_owned();
                    let event = NetEvent::NotSent { text, reason };
                    messages.push(Message::Net(event, Local::now()));
                }
                // The actor is gone (or busy at shutdown): nothing left to wait for.
                Err(_) => step.exit = true,
            },
            Effect::Log { record, confirm } => {
                // While the log fails, what only informs (presence, a delivery) is not
                // kept without bound; what a peer waits on always is (the peers'
                // windows bound it).
                if confirm.is_some() || self.unwritten.len() < MAX_UNWRITTEN_RECORDS {
                    self.unwritten.push_back((record, confirm));
                }
                self.write(step, messages);
            }
            Effect::Load(load) => messages.push(off_worker(|| answer_load(self.log.path(), load))),
            Effect::Search(term) => {
                messages.push(off_worker(|| answer_search(self.log.path(), term)));
            }
            Effect::Exit | Effect::Suspend => {}
        }
    }

    /// The conversation ends: one last try to write what waits, whenever the previous one
    /// was; what still could not be written is said.
    pub fn last_try(&mut self, step: &mut Step, messages: &mut Vec<Message>) {
        if let Some(at) = self.retry_log_at.as_mut() {
            *at = tokio::time::Instant::now();
        }
        self.write(step, messages);
        if !self.unwritten.is_empty() {
            step.errors.push(texts::log_lost(self.unwritten.len()));
        }
    }

    /// True while records wait for the log (a write failed and has not succeeded since).
    pub fn waiting(&self) -> bool {
        !self.unwritten.is_empty()
    }

    /// When there is work waiting on time rather than on a message — records to write
    /// after a failed write, confirmations that found the command channel full — the runner
    /// steps it then (any message does, `Message::Tick` is enough).
    pub fn retry_at(&self) -> Option<tokio::time::Instant> {
        if !self.unconfirmed.is_empty() {
            return Some(tokio::time::Instant::now() + CONFIRM_RETRY_INTERVAL);
        }
        self.retry_log_at.filter(|_| !self.unwritten.is_empty())
    }

    /// Writes the waiting records, oldest first, until one fails; each written one's
    /// confirmation is queued for the network, and never one whose write failed. The user is
    /// told once when writing starts failing (and once when it works again), not per record.
    pub fn write(&mut self, step: &mut Step, messages: &mut Vec<Message>) {
        if self.retry_log_at.is_some_and(|at| tokio::time::Instant::now() < at) {
            return;
        }
        while let Some((record, _)) = self.unwritten.front() {
            match self.log.append(record) {
                Ok(()) => {
                    if let Some((_, Some(confirm))) = self.unwritten.pop_front() {
                        self.unconfirmed.push_back(confirm);
                    }
                    if self.retry_log_at.take().is_some() {
                        tracing::info!("the conversation log is written again");
                        step.notices.push(texts::LOG_RECOVERED.to_owned());
                        messages.push(Message::LogRecovered);
                    }
                }
                Err(error) => {
                    let again = tokio::time::Instant::now() + LOG_RETRY_INTERVAL;
                    if self.retry_log_at.replace(again).is_none() {
                        tracing::warn!(%error, "the conversation log cannot be written");
                        step.errors.push(texts::log_failed(&error.to_string()));
                        messages.push(Message::Failed(error.to_string()));
                    }
                    return;
                }
            }
        }
    }

    /// Tells the network what is in the log, in order. A confirmation must not be lost (the
    /// peer would wait for it forever, or our message would never leave), so those that find
    /// the channel full are kept and tried again on the next step.
    pub fn confirm_logged(&mut self, send: &mut SendCommand<'_>) {
        while let Some(command) = self.unconfirmed.pop_front() {
            match send(command) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(command)) => {
                    self.unconfirmed.push_front(command);
                    return;
                }
            }
        }
    }
}
