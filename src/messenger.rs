//! The messenger (`p2pchat`, `p2pchat open`): one process, one UDP socket, every contact and
//! every saved room live at once. Starting binds the socket, opens each conversation's log and
//! model, and hands one `Session` per conversation to an `Endpoint` driven by the network
//! actor; `Running::apply` then runs one event through the messenger's `update` and carries out
//! what it asks — each conversation's log (`Logbook`) and commands, new conversations from
//! `/pair`, `/join` and `/room`. Shared by the full screen and headless mode. What it must not
//! do: decide anything the app or the protocol decides, or block on the network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{Local, Utc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::app::messenger::{self, Conversation, Do, Event, Messenger, Notify, With};
use crate::app::model::{Entry, Me, Public, ServerState, ServerView};
use crate::app::texts;
use crate::app::{Message, Model};
use crate::chat::{self, Logbook, Opened, StartError, Step};
use crate::history::Page;
use crate::identity::{self, Contact, Contacts, Identity, Remembered, Rooms, SavedRoom};
use crate::net::keying::{self, Agreement, Plan, Progress};
use crate::net::{self, NetHandle};
use crate::proto::crypto::{Cipher, generate_key};
use crate::proto::endpoint::{ConversationId, Endpoint, EndpointCommand};
use crate::proto::keying::{Code, Peer};
use crate::proto::session::Rekey;
use crate::proto::{Mode, NetCommand, NetEvent, Session, SessionConfig};

/// Everything needed to start the messenger.
pub struct MessengerOptions {
    /// Our display name where a contact or room has none saved.
    pub name: String,
    /// The rendezvous server for every conversation (`--server`), over what each saved.
    pub server: Option<SocketAddr>,
    /// The server for conversations that saved none, and for `/pair`, `/join`, `/room`
    /// (the config file's `server`).
    pub default_server: Option<SocketAddr>,
    /// Local address for the socket.
    pub bind: SocketAddr,
    /// STUN server for our NAT type (defaults to the first conversation's server).
    pub stun: Option<SocketAddr>,
    /// Silence before a peer is offline.
    pub offline_after: Duration,
    /// Where conversation logs live.
    pub data_dir: PathBuf,
    /// Where the identity, contacts and rooms live.
    pub config_dir: PathBuf,
    /// How a message elsewhere asks for attention.
    pub notify: Notify,
}

/// What the runner needs to open a conversation later (`/pair`, `/join`, `/room`).
struct Opener {
    name: String,
    server: Option<SocketAddr>,
    default_server: Option<SocketAddr>,
    local: SocketAddr,
    offline_after: Duration,
    data_dir: PathBuf,
    config_dir: PathBuf,
    identity: Identity,
    /// Our NAT type, once detected: told to every conversation opened after.
    nat: Option<String>,
    stun: Option<SocketAddr>,
}

/// What a conversation is, to open it.
enum Opening {
    /// A saved contact: keys are agreed inside the session.
    Contact(Contact),
    /// A contact just paired with by code: the keys are those agreed.
    Paired(Contact, Box<Agreement>),
    /// A room with a shared key.
    Room(SavedRoom, Cipher),
}

/// What a conversation is made of, before its log and session are opened.
struct Parts {
    with: With,
    server: SocketAddr,
    /// Our name in it.
    me: String,
    title: String,
    /// The room as the status pane names it (a contact's is an opaque hash).
    shown_room: String,
    room: String,
    cipher: Cipher,
    rekey: Option<Rekey>,
}

/// News of work running beside the messenger: NAT detection and pairings.
enum Aside {
    /// Our NAT type was detected.
    Nat(String),
    /// A pairing's progress (the code to read out, the server asked).
    Progress(Progress),
    /// A pairing agreed keys through `server`.
    Agreed(Box<Agreement>, SocketAddr),
    /// A pairing agreed no keys: why.
    Failed(String),
}

/// The network's side of the messenger: the actor's handle and the pairings in progress.
pub type EndpointHandle = NetHandle<EndpointCommand, (ConversationId, NetEvent)>;

/// A running messenger.
pub struct Running {
    /// The app state.
    pub messenger: Messenger,
    /// Each conversation's log, by its index in `messenger.conversations` (which is also its
    /// `ConversationId`).
    pub logs: Vec<Logbook>,
    /// The network actor.
    pub net: EndpointHandle,
    opener: Opener,
    aside_tx: mpsc::UnboundedSender<Aside>,
    aside_rx: mpsc::UnboundedReceiver<Aside>,
    /// A pairing code shown and not yet taken by headless mode (`take_code`).
    code: Option<String>,
    /// What starting found worth telling, for headless mode.
    pub notices: Vec<String>,
}

/// What the input of a step can be: the messenger's events, or the end of the network.
pub enum Input {
    /// An event for the messenger's `update`.
    Event(Event),
    /// The network actor ended.
    NetworkEnded,
    /// Work beside the messenger moved on with nothing to show (our NAT type, told to the
    /// conversations).
    Nothing,
}

impl Opener {
    fn server_for(&self, saved: Option<&str>) -> Option<SocketAddr> {
        self.server
            .or_else(|| saved.and_then(|s| crate::cli::args::server_addr(s).ok()))
            .or(self.default_server)
    }

    /// Builds the session and the conversation for `opening` (its log opened, its model
    /// built from the log's end).
    fn open(&self, opening: Opening) -> Result<(Session, Conversation, Logbook), StartError> {
        let parts = match opening {
            Opening::Contact(contact) => {
                let key = contact.public().ok_or_else(|| {
                    StartError::Skipped(texts::contact_key_unreadable(&contact.name))
                })?;
                let rekey = Rekey {
                    identity: self.identity.clone(),
                    contact: Peer { name: contact.name.clone(), key },
                    hello: None,
                    initiate: true,
                };
                // A stand-in: nothing is sealed with it before the keys are agreed.
                let cipher = Cipher::from_key(&generate_key())
                    .map_err(|e| StartError::Skipped(e.to_string()))?;
                self.contact_parts(&contact, contact.room.clone(), cipher, rekey)?
            }
            Opening::Paired(contact, agreement) => {
                let rekey = Rekey {
                    identity: self.identity.clone(),
                    contact: agreement.agreed.peer.clone(),
                    hello: agreement.their_hello.clone(),
                    initiate: false,
                };
                let cipher = agreement.agreed.cipher();
                self.contact_parts(&contact, agreement.room.clone(), cipher, rekey)?
            }
            Opening::Room(saved, cipher) => Parts {
                with: With::Room(saved.name.clone()),
                server: self
                    .server_for(Some(&saved.server))
                    .ok_or_else(|| StartError::Skipped(texts::room_without_server(&saved.name)))?,
                me: saved.me.clone().unwrap_or_else(|| self.name.clone()),
                title: format!("room {}", saved.name),
                shown_room: saved.name.clone(),
                room: saved.name,
                cipher,
                rekey: None,
            },
        };
        let Parts { with, server, me: me_name, title, shown_room, room, cipher, rekey } = parts;
        let mode = Mode::Room { server, room };
        let log_name = match &with {
            With::Contact(name) => format!("contact-{name}"),
            With::Room(_) => chat::conversation_id(&mode),
        };
        let me = Me {
            name: me_name.clone(),
            local: self.local,
            public: Public::Asking(self.stun.unwrap_or(server)),
            nat: self.nat.clone(),
            server: Some(ServerView {
                addr: server,
                room: shown_room,
                state: ServerState::Registering,
            }),
        };
        let Opened { log, model, pending, seen } =
            chat::open_conversation(&self.data_dir, &log_name, me, title, Local::now())?;
        let config = SessionConfig {
            stun_server: Some(self.stun.unwrap_or(server)),
            offline_after: self.offline_after,
            pending,
            seen,
            rekey,
            shared_socket: true,
            private_endpoints: net::private_endpoints(self.local),
            ..SessionConfig::new(&me_name, mode)
        };
        let session = Session::new(config, cipher, Instant::now(), Utc::now(), rand::random());
        Ok((session, Conversation::new(with, model), Logbook::new(log)))
    }

    /// What a contact's conversation is made of: its server (saved, or the one given), our
    /// name with it, its title.
    fn contact_parts(
        &self,
        contact: &Contact,
        room: String,
        cipher: Cipher,
        rekey: Rekey,
    ) -> Result<Parts, StartError> {
        let server = self
            .server_for(contact.server.as_deref())
            .ok_or_else(|| StartError::Skipped(texts::contact_without_server(&contact.name)))?;
        Ok(Parts {
            with: With::Contact(contact.name.clone()),
            server,
            me: contact.me.clone().unwrap_or_else(|| self.name.clone()),
            title: format!("with {}", contact.name),
            shown_room: texts::private_room(&contact.name),
            room,
            cipher,
            rekey: Some(rekey),
        })
    }
}

/// Binds the socket, opens every contact's and saved room's conversation and spawns the
/// network actor. A conversation that cannot be opened (no server known for it) is said in
/// `notices` and left out. Needs a tokio runtime.
pub async fn start(options: MessengerOptions) -> Result<Running, StartError> {
    let MessengerOptions {
        name,
        server,
        default_server,
        bind,
        stun,
        offline_after,
        data_dir,
        config_dir,
        notify,
    } = options;
    let socket =
        UdpSocket::bind(bind).await.map_err(|source| StartError::Bind { addr: bind, source })?;
    let local = socket.local_addr().map_err(|source| StartError::Bind { addr: bind, source })?;
    let identity = Identity::load_or_create(&config_dir)?;
    let contacts = Contacts::load(&config_dir)?;
    let rooms = Rooms::load(&config_dir)?;
    let mut opener = Opener {
        name,
        server,
        default_server,
        local,
        offline_after,
        data_dir,
        config_dir,
        identity,
        nat: None,
        stun,
    };
    let saved_contacts = contacts.list.clone();
    let mut openings: Vec<Opening> = contacts.list.into_iter().map(Opening::Contact).collect();
    let mut notices = Vec::new();
    let mut keys_seen = std::collections::HashSet::new();
    for room in rooms.list {
        if !keys_seen.insert(room.key.clone()) {
            notices.push(texts::saved_room_key_shared(&room.name));
            continue;
        }
        match Cipher::from_key(&room.key) {
            Ok(cipher) => openings.push(Opening::Room(room, cipher)),
            Err(error) => {
                notices.push(texts::saved_room_key_unusable(&room.name, &error.to_string()))
            }
        }
    }
    let mut endpoint = Endpoint::new();
    let mut conversations = Vec::new();
    let mut logs = Vec::new();
    let now = Instant::now();
    for opening in openings {
        match opener.open(opening) {
            Ok((session, conversation, log)) => {
                let id = ConversationId(u32::try_from(conversations.len()).unwrap_or(u32::MAX));
                endpoint.insert(now, id, session);
                conversations.push(conversation);
                logs.push(log);
            }
            Err(StartError::Skipped(notice)) => notices.push(notice),
            Err(error) => return Err(error),
        }
    }
    // The STUN server NAT detection asks: the one named, else the first conversation's.
    opener.stun = opener
        .stun
        .or_else(|| conversations.first().and_then(|c| c.model.me.server.as_ref().map(|s| s.addr)))
        .or(opener.server)
        .or(opener.default_server);
    let mut messenger = Messenger::new(conversations, notify);
    messenger.contacts = saved_contacts;
    {
        let me = Me {
            name: opener.name.clone(),
            local,
            public: Public::NotAsked,
            nat: None,
            server: None,
        };
        let at = Local::now();
        let mut home = Model::new(me, "no conversation yet".to_owned(), Page::default(), at);
        home.entries.push(Entry::system(at, texts::NO_CONVERSATION_YET));
        messenger.home = Some(Box::new(home));
    }
    let at = Local::now();
    for notice in &notices {
        if let Some(shown) = messenger.conversations.get_mut(messenger.selected) {
            shown.model.entries.push(Entry::system(at, notice.clone()));
        }
    }
    let net =
        net::spawn(socket, endpoint).map_err(|source| StartError::Bind { addr: bind, source })?;
    let (aside_tx, aside_rx) = mpsc::unbounded_channel();
    if let Some(stun) = opener.stun {
        tokio::spawn(detect_nat(stun, local, aside_tx.clone()));
    }
    Ok(Running { messenger, logs, net, opener, aside_tx, aside_rx, code: None, notices })
}

/// Classifies our NAT off the socket's IP (once for every conversation) and hands the result
/// to the runner, which tells each conversation.
async fn detect_nat(stun: SocketAddr, local: SocketAddr, to: mpsc::UnboundedSender<Aside>) {
    match net::nat::detect(stun, local.ip()).await {
        Ok(report) => {
            let _ = to.send(Aside::Nat(report.nat_type.as_str().to_owned()));
        }
        Err(error) => tracing::warn!(%error, "NAT detection could not run"),
    }
}

impl Running {
    /// The next input: an event from the network or a pairing, or the network's end.
    /// Cancel-safe (for `select!`).
    pub async fn next_input(&mut self) -> Input {
        tokio::select! {
            event = self.net.events.recv() => match event {
                Some((id, event)) => {
                    let index = usize::try_from(id.0).unwrap_or(usize::MAX);
                    Input::Event(Event::To(index, Message::Net(event, Local::now())))
                }
                None => Input::NetworkEnded,
            },
            Some(aside) = self.aside_rx.recv() => match self.on_aside(aside) {
                Some(event) => Input::Event(event),
                None => Input::Nothing,
            },
        }
    }

    /// Whether `/pair`, `/join` and `/room` have a server to go to.
    pub fn can_pair(&self) -> bool {
        self.pair_server().is_some()
    }

    /// The server new conversations meet on: `--server`, the config file's, or the one of the
    /// conversation shown.
    fn pair_server(&self) -> Option<SocketAddr> {
        self.opener.server.or(self.opener.default_server).or_else(|| {
            self.messenger.shown().and_then(|c| c.model.me.server.as_ref().map(|s| s.addr))
        })
    }

    /// Our display name (where a contact or room has none of its own).
    pub fn name(&self) -> &str {
        &self.opener.name
    }

    /// The contacts as saved now (`/contacts`); none when they cannot be read.
    pub fn contacts(&self) -> Vec<Contact> {
        Contacts::load(&self.opener.config_dir).map(|c| c.list).unwrap_or_default()
    }

    /// The pairing code shown since the last call, if any (headless mode prints it as its
    /// own event).
    pub fn take_code(&mut self) -> Option<String> {
        self.code.take()
    }

    /// News from beside the messenger as its event, if it is one: a NAT type goes to every
    /// conversation (each then says it), keys agreed open the contact's conversation.
    fn on_aside(&mut self, aside: Aside) -> Option<Event> {
        Some(match aside {
            Aside::Nat(nat) => {
                for index in 0..self.logs.len() {
                    let _ = send_to(&self.net, index, NetCommand::SetNat { nat: nat.clone() });
                }
                if let Some(home) = self.messenger.home.as_mut() {
                    home.me.nat = Some(nat.clone());
                    home.dirty = true;
                }
                self.opener.nat = Some(nat);
                return None;
            }
            Aside::Progress(progress) => {
                if let Progress::Code(code) = &progress {
                    self.code = Some(code.to_string());
                }
                Event::Notice(texts::pairing_progress(&progress))
            }
            Aside::Failed(reason) => Event::Notice(texts::pairing_failed(&reason)),
            Aside::Agreed(agreement, server) => {
                self.paired(*agreement, server).unwrap_or_else(Event::Notice)
            }
        })
    }

    /// Saves the contact just paired with and opens its conversation.
    fn paired(&mut self, mut agreement: Agreement, server: SocketAddr) -> Result<Event, String> {
        let mut contacts = Contacts::load(&self.opener.config_dir).map_err(|e| e.to_string())?;
        // Someone else under the name of a contact we have (two friends called "pi"): a name
        // of their own, never the other's conversation, log and key replaced.
        let mut notice = None;
        let key = identity::encode_key(&agreement.agreed.peer.key);
        let taken = |name: &str| contacts.find(name).is_some_and(|c| c.key != key);
        let given = agreement.agreed.peer.name.clone();
        if taken(&given) {
            let unique = (2..)
                .map(|n| format!("{given}-{n}"))
                .find(|n| !taken(n) && contacts.find(n).is_none());
            if let Some(unique) = unique {
                notice = Some(texts::contact_name_taken(&given, &unique));
                agreement.agreed.peer.name = unique;
            }
        }
        let peer = &agreement.agreed.peer;
        let contact = Contact {
            name: peer.name.clone(),
            key: identity::encode_key(&peer.key),
            room: agreement.room.clone(),
            first_seen: Local::now().to_rfc3339(),
            me: Some(self.opener.name.clone()),
            server: Some(server.to_string()),
        };
        let remembered = contacts.remember(contact.clone()).map_err(|e| e.to_string())?;
        self.messenger.contacts = contacts.list;
        match remembered {
            Remembered::New | Remembered::Known => {}
            Remembered::Renamed { previous } => {
                notice = Some(texts::contact_renamed(&previous, &peer.name));
            }
            Remembered::KeyChanged { .. } => notice = Some(texts::contact_key_replaced(&peer.name)),
        }
        // Already a conversation (paired again): it agrees new keys by itself.
        if let Some(index) = self.messenger.find(&contact.name)
            && matches!(self.messenger.conversations[index].with, With::Contact(_))
        {
            return Ok(Event::Notice(notice.unwrap_or_else(|| texts::paired_again(&contact.name))));
        }
        let safety_number =
            identity::safety_number(&self.opener.identity.public(), &agreement.agreed.peer.key);
        let verify = crate::app::model::Verify { peer: peer.name.clone(), safety_number };
        let (session, mut conversation, log) = self
            .opener
            .open(Opening::Paired(contact, Box::new(agreement)))
            .map_err(|e| e.to_string())?;
        let at = Local::now();
        conversation.model.entries.extend(notice.map(|n| Entry::system(at, n)));
        conversation.model.entries.push(Entry::system(at, texts::keys_agreed(&verify)));
        conversation.model.verify = Some(verify);
        self.add(session, conversation, log)
    }

    /// Hands a new conversation to the endpoint and the messenger.
    fn add(
        &mut self,
        session: Session,
        conversation: Conversation,
        log: Logbook,
    ) -> Result<Event, String> {
        let id = ConversationId(u32::try_from(self.logs.len()).unwrap_or(u32::MAX));
        self.net
            .commands
            .try_send(EndpointCommand::Add(id, Box::new(session)))
            .map_err(|_| texts::NETWORK_BUSY.to_owned())?;
        if let Some(nat) = self.opener.nat.clone() {
            let _ = send_to(&self.net, self.logs.len(), NetCommand::SetNat { nat });
        }
        self.logs.push(log);
        Ok(Event::Added(conversation))
    }

    /// When there is work waiting on time (see `Logbook::retry_at`), the soonest.
    pub fn retry_at(&self) -> Option<tokio::time::Instant> {
        self.logs.iter().filter_map(Logbook::retry_at).min()
    }

    /// True while records of some conversation wait for its log.
    pub fn log_waiting(&self) -> bool {
        self.logs.iter().any(Logbook::waiting)
    }

    /// How the network actor ended, once its event channel has closed (see
    /// `Chat::network_outcome`).
    pub async fn network_outcome(&mut self) -> anyhow::Result<()> {
        chat::task_outcome(&mut self.net.task).await
    }

    /// Runs one event through the messenger's `update` and carries out what it asks.
    pub fn apply(&mut self, event: Event) -> Step {
        let mut out = Step::default();
        let mut pending = vec![event];
        for index in 0..self.logs.len() {
            let mut messages = Vec::new();
            self.logs[index].write(&mut out, &mut messages);
            pending.extend(messages.into_iter().map(|m| Event::To(index, m)));
        }
        while let Some(event) = pending.pop() {
            for effect in messenger::update(&mut self.messenger, event) {
                self.carry_out(effect, &mut out, &mut pending);
            }
        }
        for index in 0..self.logs.len() {
            let (logs, net) = (&mut self.logs, &self.net);
            let send = &mut |command| send_to(net, index, command);
            logs[index].confirm_logged(send);
        }
        out
    }

    fn carry_out(&mut self, effect: Do, out: &mut Step, pending: &mut Vec<Event>) {
        match effect {
            Do::In(index, effect) => {
                let Some(log) = self.logs.get_mut(index) else { return };
                let net = &self.net;
                let send = &mut |command| send_to(net, index, command);
                let mut messages = Vec::new();
                log.carry_out(effect, send, out, &mut messages);
                pending.extend(messages.into_iter().map(|m| Event::To(index, m)));
            }
            Do::Shutdown => {
                if self.net.commands.try_send(EndpointCommand::Shutdown).is_err() {
                    out.exit = true;
                }
            }
            Do::Exit => {
                out.exit = true;
                for index in 0..self.logs.len() {
                    let mut messages = Vec::new();
                    self.logs[index].last_try(out, &mut messages);
                }
            }
            Do::Leave(index) => {
                if let Err(error) = self.leave(index) {
                    pending.push(Event::Notice(error));
                }
            }
            Do::Suspend => out.suspend = true,
            Do::Bell => out.bell = true,
            Do::Desktop { title, body } => out.desktop.push((title, body)),
            Do::Said(text) => out.said.push(text),
            Do::Pair => self.pair(Plan::NewCode, pending),
            Do::Join(code) => match Code::parse(&code) {
                Ok(code) => self.pair(Plan::Code(code), pending),
                Err(error) => pending.push(Event::Notice(error.to_string())),
            },
            Do::Room { name, key } => {
                pending.push(self.join_room(name, &key).unwrap_or_else(Event::Notice));
            }
        }
    }

    /// Pairs beside the messenger (`/pair`, `/join`): the key exchange runs through the
    /// server on a socket of its own, from the same IP, while every conversation goes on;
    /// its news comes back to `next_input`.
    fn pair(&mut self, plan: Plan, pending: &mut Vec<Event>) {
        let Some(server) = self.pair_server() else {
            pending.push(Event::Notice(texts::NO_SERVER_TO_PAIR.to_owned()));
            return;
        };
        let to = self.aside_tx.clone();
        let name = self.opener.name.clone();
        let identity = self.opener.identity.clone();
        let bind = SocketAddr::new(self.opener.local.ip(), 0);
        tokio::spawn(async move {
            let socket = match UdpSocket::bind(bind).await {
                Ok(socket) => socket,
                Err(error) => {
                    let _ = to.send(Aside::Failed(error.to_string()));
                    return;
                }
            };
            let tell = to.clone();
            let progress = move |progress: Progress| {
                let _ = tell.send(Aside::Progress(progress));
            };
            let outcome = keying::agree(&socket, server, &name, identity, plan, progress).await;
            let _ = to.send(match outcome {
                Ok(agreement) => Aside::Agreed(Box::new(agreement), server),
                Err(error) => Aside::Failed(error.to_string()),
            });
        });
    }

    /// A room left: its key forgotten, its session closed (its log stays).
    fn leave(&mut self, index: usize) -> Result<(), String> {
        let Some(conversation) = self.messenger.conversations.get(index) else { return Ok(()) };
        if let (With::Room(name), Some(server)) =
            (&conversation.with, &conversation.model.me.server)
        {
            let mut rooms = Rooms::load(&self.opener.config_dir).map_err(|e| e.to_string())?;
            // Saved as typed (a host name, perhaps): the one that names this address.
            let saved = rooms.list.iter().find(|r| {
                r.name == *name && self.opener.server_for(Some(&r.server)) == Some(server.addr)
            });
            if let Some(saved) = saved.map(|r| r.server.clone()) {
                rooms.forget(name, &saved).map_err(|e| e.to_string())?;
            }
        }
        let id = ConversationId(u32::try_from(index).unwrap_or(u32::MAX));
        self.net
            .commands
            .try_send(EndpointCommand::Remove(id))
            .map_err(|_| texts::NETWORK_BUSY.to_owned())
    }

    /// `/room NAME KEY`: checks the key, saves the room and opens its conversation.
    fn join_room(&mut self, name: String, key: &str) -> Result<Event, String> {
        let cipher =
            Cipher::from_key(key).map_err(|e| texts::room_key_wrong(&name, &e.to_string()))?;
        if let Some(problem) = crate::text::name_problem(&name) {
            return Err(texts::room_name_wrong(&name, &problem));
        }
        let server = self.pair_server().ok_or_else(|| texts::room_without_server(&name))?;
        let mut rooms = Rooms::load(&self.opener.config_dir).map_err(|e| e.to_string())?;
        // Each room its own key: the key is what tells two conversations' datagrams apart.
        if let Some(other) = rooms.list.iter().find(|r| r.key == key && r.name != name) {
            return Err(texts::room_key_taken(&name, &other.name));
        }
        let mut replaced = false;
        let open = self
            .messenger
            .conversations
            .iter()
            .position(|c| !c.left && c.with == With::Room(name.clone()));
        if let Some(index) = open {
            if rooms.list.iter().any(|r| r.name == name && r.key == key) {
                return Err(texts::room_already_open(&name));
            }
            // Joined again with another key (the first was wrong): the old one goes, and the
            // new one opens in its place.
            self.messenger.conversations[index].left = true;
            self.leave(index)?;
            replaced = true;
        }
        let room = SavedRoom {
            name,
            server: server.to_string(),
            key: key.to_owned(),
            me: Some(self.opener.name.clone()),
        };
        rooms.remember(room.clone()).map_err(|e| e.to_string())?;
        let name = room.name.clone();
        let (session, mut conversation, log) =
            self.opener.open(Opening::Room(room, cipher)).map_err(|e| e.to_string())?;
        if replaced {
            let at = Local::now();
            conversation.model.entries.push(Entry::system(at, texts::room_key_replaced(&name)));
        }
        self.add(session, conversation, log)
    }
}

/// Hands `command` to conversation `index` of the endpoint behind `net`.
fn send_to(
    net: &EndpointHandle,
    index: usize,
    command: NetCommand,
) -> Result<(), TrySendError<NetCommand>> {
    let id = ConversationId(u32::try_from(index).unwrap_or(u32::MAX));
    net.commands.try_send(EndpointCommand::To(id, command)).map_err(|e| match e {
        TrySendError::Full(EndpointCommand::To(_, command)) => TrySendError::Full(command),
        TrySendError::Closed(EndpointCommand::To(_, command)) => TrySendError::Closed(command),
        _ => TrySendError::Closed(NetCommand::Shutdown),
    })
}
