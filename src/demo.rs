//! `p2pchat demo`: everything in one process so a newcomer sees the real thing at once — a
//! rendezvous server on loopback, a bot peer that answers, and the user's chat, all speaking
//! real UDP with Fernet through the same code paths as a two-machine chat.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use unicode_segmentation::UnicodeSegmentation;

use crate::chat::{self, ChatOptions, Keys};
use crate::consts::{CODE_TTL, OFFLINE_AFTER};
use crate::net::NetHandle;
use crate::proto::crypto::{Cipher, generate_key};
use crate::proto::{Mode, NetCommand, NetEvent, SessionConfig};
use crate::{headless, server, tui};

/// The bot's display name.
pub const BOT_NAME: &str = "bot";

/// The demo's room.
const ROOM: &str = "demo";

/// What the demo needs from the command line.
pub struct DemoOptions {
    /// The user's display name.
    pub name: String,
    /// Where the demo conversation is logged.
    pub data_dir: PathBuf,
    /// Where the user's contacts are (for /contacts).
    pub config_dir: PathBuf,
    /// JSON lines instead of the TUI.
    pub headless: bool,
}

/// The bot's answer to a message.
pub fn reply(from: &str, text: &str) -> String {
    let lower = text.to_lowercase();
    if ["hello", "hi", "hey"].iter().any(|w| {
        lower.split_whitespace().any(|t| t.trim_matches(|c: char| !c.is_alphanumeric()) == *w)
    }) {
        return format!("Hi {from}! Try /who to see my endpoint and round-trip time.");
    }
    let reversed: String = text.graphemes(true).rev().collect();
    format!(
        "You said \"{text}\" ({}). Backwards, that is \"{reversed}\".",
        crate::text::count(text.chars().count() as u64, "character", "characters")
    )
}

fn greeting(name: &str) -> String {
    format!(
        "Hello {name}! I'm a bot in this process. You reached me over real UDP, encrypted with \
         Fernet, after a rendezvous through a local server. Say something and I'll answer; \
         /help lists commands, PgUp scrolls back."
    )
}

async fn bot(mut net: NetHandle) {
    while let Some(event) = net.events.recv().await {
        let text = match event {
            NetEvent::PeerOnline { name, .. } => greeting(&name),
            NetEvent::Message { from, text, receipt, .. } => {
                // The bot keeps no log: answering is all it does with a message, so it
                // confirms receipt at once.
                if let Some(receipt) = receipt
                    && net.commands.send(NetCommand::Persisted(receipt)).await.is_err()
                {
                    return;
                }
                reply(&from, &text)
            }
            // Nor a log of its own messages: each may leave at once.
            NetEvent::Sent { id, .. } | NetEvent::Queued { id, .. } => {
                if net.commands.send(NetCommand::Logged(id)).await.is_err() {
                    return;
                }
                continue;
            }
            NetEvent::Closed => return,
            _ => continue,
        };
        if net.commands.send(NetCommand::Send { text }).await.is_err() {
            return;
        }
    }
}

/// Runs the demo until the user quits.
pub async fn run(options: DemoOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    // A second loopback address lets the demo server answer NAT discovery (RFC 5780) too.
    let alt = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0));
    let server_sockets = match server::Sockets::bind(loopback, Some(alt)).await {
        Ok(sockets) => sockets,
        Err(_) => server::Sockets::bind(loopback, None).await?,
    };
    let server_addr = server_sockets.primary();
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(server::run(server_sockets, CODE_TTL, None, async {
        let _ = server_stopped.await;
    }));
    let key = generate_key();
    let mode = Mode::Room { server: server_addr, room: ROOM.to_owned() };
    let bot_config = SessionConfig {
        stun_server: Some(server_addr),
        ..SessionConfig::new(BOT_NAME, mode.clone())
    };
    let bot_net =
        chat::spawn_session(UdpSocket::bind(loopback).await?, bot_config, Cipher::from_key(&key)?)?;
    let bot_commands = bot_net.commands.clone();
    let bot_task = tokio::spawn(bot(bot_net));
    let mut chat = chat::start(ChatOptions {
        name: options.name,
        mode,
        keys: Keys::Shared(Cipher::from_key(&key)?),
        bind: loopback,
        stun: None,
        offline_after: OFFLINE_AFTER,
        data_dir: options.data_dir,
        config_dir: options.config_dir,
    })
    .await?;
    chat.model.demo = true;
    let result = if options.headless {
        headless::run(chat, headless::Typed::from_stdin(), shutdown).await
    } else {
        tui::run(chat, shutdown).await
    };
    let _ = bot_commands.send(NetCommand::Shutdown).await;
    let _ = bot_task.await;
    let _ = stop_server.send(());
    let _ = server.await;
    result
}

#[cfg(test)]
mod tests {
    use super::reply;

    #[test]
    fn bot_answers_greetings_and_echoes_the_rest() {
        assert!(reply("ann", "Hello there!").starts_with("Hi ann!"));
        assert!(reply("ann", "hi").starts_with("Hi ann!"));
        assert_eq!(
            reply("ann", "this is p2p"),
            "You said \"this is p2p\" (11 characters). Backwards, that is \"p2p si siht\"."
        );
        assert!(reply("ann", "chips").starts_with("You said"));
        assert!(reply("ann", "a👋🏽b").ends_with("\"b👋🏽a\"."));
    }
}
