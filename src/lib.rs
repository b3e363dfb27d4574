//! p2pchat: peer-to-peer terminal chat over one UDP socket — rendezvous, hole punching,
//! Fernet-encrypted JSON messages, a split-pane TUI and an append-only conversation log.
//!
//! Crate map (data flows top to bottom and back up as events):
//! - `cli` — command line (clap definitions in `cli::args`), settings merged from flags,
//!   environment and config file, exit codes; `config` — `config.toml` and where each setting
//!   came from.
//! - `prompt` — the pairing-code prompt before the chat (Tab completion).
//! - `tui` — the terminal (owner, events in) · `headless` — JSON lines on stdin/stdout.
//! - `chat` — starting a chat (agreeing keys first when pairing or reconnecting to a contact)
//!   and stepping it (shared by TUI, headless and `demo`).
//! - `app` — the Elm loop: `Model`, `Message`, pure `update`, keymap, commands, texts.
//! - `ui` — `render` of the model: history, status and input panes, theme.
//! - `net` — the network actor that owns the socket and the session; the key handshake's IO.
//! - `proto` — the protocol as a sans-IO state machine (wire, crypto, keying, STUN, the TURN
//!   client for the relay, session).
//! - `server` — the rendezvous + STUN server; `demo` — server, bot and chat in one process.
//! - `history` — the conversation log; `identity` — our identity key, contacts, safety numbers.
//! - `text` — neutralising untrusted text, matching; `consts` — tuning.

pub mod app;
pub mod chat;
pub mod cli;
pub mod config;
pub mod consts;
pub mod demo;
pub mod headless;
pub mod history;
pub mod identity;
pub mod messenger;
pub mod net;
pub mod notify;
pub mod prompt;
pub mod proto;
pub mod server;
pub mod text;
pub mod tui;
pub mod ui;
