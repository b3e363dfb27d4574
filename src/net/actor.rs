//! The network actor ("Actors with Tokio"): a task that `select!`s over the socket, the command
//! channel and the session's next deadline, feeds exactly one input, then drains the session's
//! transmits and events. A closed command channel means shut down; it never panics.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::sleep_until;

use crate::consts::{COMMAND_CHANNEL_CAPACITY, EVENT_CHANNEL_CAPACITY, RECV_BUFFER_BYTES};
use crate::proto::{NetCommand, NetEvent, Session};

/// The app's side of the actor.
pub struct NetHandle {
    /// Commands to the actor. `try_send` from UI code: the UI never waits for the network.
    pub commands: mpsc::Sender<NetCommand>,
    /// Events from the actor, in order.
    pub events: mpsc::Receiver<NetEvent>,
    /// The address the socket is bound to.
    pub local: SocketAddr,
    /// The actor task; it ends after `NetEvent::Closed` or when `commands` is dropped.
    pub task: JoinHandle<()>,
}

/// Starts the actor on `socket` with `session`.
pub fn spawn(socket: UdpSocket, session: Session) -> std::io::Result<NetHandle> {
    let local = socket.local_addr()?;
    let (command_tx, command_rx) = mpsc::channel(COMMAND_CHANNEL_CAPACITY);
    let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let task = tokio::spawn(run(socket, session, command_rx, event_tx));
    Ok(NetHandle { commands: command_tx, events: event_rx, local, task })
}

async fn run(
    socket: UdpSocket,
    mut session: Session,
    mut commands: mpsc::Receiver<NetCommand>,
    events: mpsc::Sender<NetEvent>,
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
                let command = command.unwrap_or(NetCommand::Shutdown);
                session.handle_command(Instant::now(), command);
            }
            () = &mut timer, if deadline.is_some() => {
                armed = None;
                session.handle_timeout(Instant::now());
            }
        }
    }
}

/// Sends what the session queued and forwards its events. True once the session has closed
/// (its goodbyes are then already sent) or nobody listens for events any more.
async fn drain(socket: &UdpSocket, session: &mut Session, events: &mpsc::Sender<NetEvent>) -> bool {
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
    let mut closed = false;
    while let Some(event) = session.poll_event() {
        closed |= event == NetEvent::Closed;
        if events.send(event).await.is_err() {
            return true;
        }
    }
    closed
}
