//! The network actor ("Actors with Tokio"): a task that `select!`s over the socket, the command
//! channel and the machine's next deadline, feeds exactly one input, then drains the machine's
//! transmits and events. The machine is any sans-IO state machine (`Machine`): one chat's
//! `Session`, or the messenger's `Endpoint` with a session per conversation. A closed command
//! channel means shut down; it never panics.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::sleep_until;

use crate::consts::{COMMAND_CHANNEL_CAPACITY, EVENT_CHANNEL_CAPACITY, RECV_BUFFER_BYTES};
use crate::proto::endpoint::{ConversationId, Endpoint, EndpointCommand};
use crate::proto::{NetCommand, NetEvent, Session, Transmit};

/// A sans-IO state machine the actor drives: time, datagrams and commands in; datagrams,
/// events and the next deadline out.
pub trait Machine: Send + 'static {
    /// What the app asks of it.
    type Command: Send + 'static;
    /// What it tells the app.
    type Event: Send + 'static;
    /// The command a closed command channel stands for (the app is gone: say goodbye).
    fn shutdown_command() -> Self::Command;
    /// Feeds one datagram.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    /// Feeds one command.
    fn handle_command(&mut self, now: Instant, command: Self::Command);
    /// Runs what is due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// When `handle_timeout` is next due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next event for the app.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// Whether `event` is the last (the machine has closed; its goodbyes are sent before).
    fn is_last(event: &Self::Event) -> bool;
    /// Whether the machine has closed without a last event of its own.
    fn finished(&self) -> bool;
}

impl Machine for Session {
    type Command = NetCommand;
    type Event = NetEvent;
    fn shutdown_command() -> NetCommand {
        NetCommand::Shutdown
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Session::handle_datagram(self, now, from, bytes);
    }
    fn handle_command(&mut self, now: Instant, command: NetCommand) {
        Session::handle_command(self, now, command);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Session::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Session::poll_timeout(self)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Session::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<NetEvent> {
        Session::poll_event(self)
    }
    fn is_last(event: &NetEvent) -> bool {
        *event == NetEvent::Closed
    }
    fn finished(&self) -> bool {
        false
    }
}

impl Machine for Endpoint {
    type Command = EndpointCommand;
    type Event = (ConversationId, NetEvent);
    fn shutdown_command() -> EndpointCommand {
        EndpointCommand::Shutdown
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Endpoint::handle_datagram(self, now, from, bytes);
    }
    fn handle_command(&mut self, now: Instant, command: EndpointCommand) {
        Endpoint::handle(self, now, command);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Endpoint::handle_timeout(self, now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Endpoint::poll_timeout(self)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Endpoint::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<(ConversationId, NetEvent)> {
        Endpoint::poll_event(self)
    }
    fn is_last(_: &(ConversationId, NetEvent)) -> bool {
        false
    }
    fn finished(&self) -> bool {
        self.is_shut_down()
    }
}

/// The app's side of the actor.
pub struct NetHandle<C = NetCommand, E = NetEvent> {
    /// Commands to the actor. `try_send` from UI code: the UI never waits for the network.
    pub commands: mpsc::Sender<C>,
    /// Events from the actor, in order.
    pub events: mpsc::Receiver<E>,
    /// The address the socket is bound to.
    pub local: SocketAddr,
    /// The actor task; it ends after the machine's last event (`NetEvent::Closed`) or when
    /// `commands` is dropped.
    pub task: JoinHandle<()>,
}

/// Starts the actor on `socket` with `machine`.
pub fn spawn<M: Machine>(
    socket: UdpSocket,
    machine: M,
) -> std::io::Result<NetHandle<M::Command, M::Event>> {
    let local = socket.local_addr()?;
    let (command_tx, command_rx) = mpsc::channel(COMMAND_CHANNEL_CAPACITY);
    let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let task = tokio::spawn(run(socket, machine, command_rx, event_tx));
    Ok(NetHandle { commands: command_tx, events: event_rx, local, task })
}

async fn run<M: Machine>(
    socket: UdpSocket,
    mut session: M,
    mut commands: mpsc::Receiver<M::Command>,
    events: mpsc::Sender<M::Event>,
) {
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    session.handle_timeout(Instant::now());
    // One timer for the life of the actor, moved only when the session's deadline moves (most
    // datagrams and commands leave it where it was).
    let timer = sleep_until(Instant::now().into());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        if drain(&socket, &mut session, &events).await {
            return;
        }
        let deadline = session.poll_timeout();
        if let Some(at) = deadline.filter(|at| armed != Some(*at)) {
            timer.as_mut().reset(at.into());
        }
        armed = deadline;
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => session.handle_datagram(Instant::now(), from, &buf[..len]),
                Err(error) => tracing::debug!(%error, "recv_from failed"),
            },
            command = commands.recv() => {
                let command = command.unwrap_or_else(M::shutdown_command);
                session.handle_command(Instant::now(), command);
            }
            () = &mut timer, if deadline.is_some() => {
                armed = None;
                session.handle_timeout(Instant::now());
            }
        }
    }
}

/// Sends what the machine queued and forwards its events. True once it has closed (its
/// goodbyes are then already sent) or nobody listens for events any more.
async fn drain<M: Machine>(
    socket: &UdpSocket,
    session: &mut M,
    events: &mpsc::Sender<M::Event>,
) -> bool {
    while let Some(transmit) = session.poll_transmit() {
        // A hole-opening probe leaves with its own TTL; the socket's is restored after it.
        let restore = match transmit.ttl {
            Some(ttl) => socket.ttl().ok().filter(|old| socket.set_ttl(ttl).is_ok() && *old != ttl),
            None => None,
        };
        // A candidate on an unreachable network fails here; that is an expected outcome.
        if let Err(error) = socket.send_to(&transmit.payload, transmit.to).await {
            tracing::debug!(%error, to = %transmit.to, "send_to failed");
        }
        if let Some(old) = restore
            && let Err(error) = socket.set_ttl(old)
        {
            tracing::warn!(%error, "could not restore the socket's TTL");
        }
    }
    let mut closed = session.finished();
    while let Some(event) = session.poll_event() {
        closed |= M::is_last(&event);
        if events.send(event).await.is_err() {
            return true;
        }
    }
    closed
}
