//! The clap definitions of the command line: every subcommand with only the options it uses,
//! an environment variable for every flag, and the parsers of addresses (a host name resolves
//! to its first IPv4 address; a missing port is the port's default).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use crate::consts::DEFAULT_PORT;

/// The version `--version` prints: the package's, with the git commit it was built from when it
/// was built in a git checkout.
pub const VERSION: &str = env!("P2PCHAT_VERSION");

/// The port of a TURN relay when none is given (RFC 8656).
const TURN_DEFAULT_PORT: u16 = 3478;

/// Peer-to-peer chat in the terminal: one UDP socket, hole punching, Fernet encryption.
#[derive(Debug, Parser)]
#[command(
    name = "p2pchat",
    version = VERSION,
    propagate_version = true,
    disable_help_subcommand = true,
    override_usage = "p2pchat [COMMAND] [OPTIONS] (no command: the messenger, as `p2pchat open`)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the config file is (for the commands that read it).
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Config file with defaults for flags; your identity key and contacts live beside it. A
    /// file named here must exist (it may be empty) [default: config.toml in the per-user
    /// config directory]
    #[arg(long, env = "P2PCHAT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The config file and the data directory (for the commands that use the logs).
#[derive(Debug, Args)]
pub struct Files {
    /// Directory for conversation logs [default: `data-dir` from config, else the per-user
    /// data directory]
    #[arg(long, env = "P2PCHAT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the rendezvous server (it also answers STUN on the same port)
    Server {
        /// Address and UDP port to listen on (the port defaults to 7777)
        #[arg(long, env = "P2PCHAT_LISTEN", default_value = "0.0.0.0:7777", value_parser = server_addr, value_name = "ADDR")]
        listen: SocketAddr,
        /// A second address, with another IP and port, for RFC 5780 NAT-type discovery: the
        /// server then also listens there and answers CHANGE-REQUEST
        #[arg(long, env = "P2PCHAT_ALT", value_parser = exact_addr, value_name = "ADDR")]
        alt: Option<SocketAddr>,
        /// Seconds a pairing code stays usable
        #[arg(long, env = "P2PCHAT_CODE_TTL", default_value_t = 600, value_name = "SECS", value_parser = code_ttl)]
        code_ttl: u64,
        /// A TURN relay (coturn with use-auth-secret) to offer peers that cannot punch through
        /// their NATs: its UDP address as peers reach it (the port defaults to 3478). Needs the
        /// secret it shares with coturn: --turn-secret-file, or P2PCHAT_TURN_SECRET
        #[arg(long, env = "P2PCHAT_TURN", value_parser = turn_addr, value_name = "HOST:PORT")]
        turn: Option<SocketAddr>,
        /// File holding coturn's static-auth-secret (read once; never printed or logged)
        #[arg(long, env = "P2PCHAT_TURN_SECRET_FILE", value_name = "FILE", requires = "turn")]
        turn_secret_file: Option<PathBuf>,
    },
    /// The messenger (also `p2pchat` alone): every contact and saved room at once, in one
    /// window, over one UDP socket
    Open(OpenArgs),
    /// Chat: pair with a code or reach a contact through a server (--server), join a room
    /// with a shared key (--server --room --key), or go direct (--peer --key)
    Chat(ChatArgs),
    /// Print a new random key; give the same key to your peer
    Keygen,
    /// Detect your NAT's behaviour (RFC 5780): mapping, filtering, public endpoint, type
    Nat {
        /// STUN server with an alternate address (RFC 5780), e.g. `p2pchat server --alt` (the
        /// port defaults to 7777) [default: `stun`, else `server`, from config]
        #[arg(long, env = "P2PCHAT_STUN", value_parser = server_addr, value_name = "ADDR")]
        stun: Option<SocketAddr>,
        /// Local IP to test from [default: all interfaces]
        #[arg(long = "bind", env = "P2PCHAT_NAT_BIND", value_name = "IP")]
        bind: Option<IpAddr>,
        /// Print one JSON object: mapping, filtering, nat_type, public, notes
        #[arg(long, env = "P2PCHAT_JSON", value_parser = BoolishValueParser::new())]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the logged conversation of a room, a contact or a direct peer
    History {
        /// A room's name, a contact's name, or a peer's address (as given to --peer)
        conversation: String,
        /// Only messages containing this text (ignoring case)
        #[arg(long, env = "P2PCHAT_GREP", value_name = "TEXT")]
        grep: Option<String>,
        #[command(flatten)]
        files: Files,
    },
    /// Try it now: a local server, a bot peer and the chat, in one process
    Demo {
        /// Your display name [default: from config, else $USER, else "you"]
        #[arg(long, env = "P2PCHAT_NAME")]
        name: Option<String>,
        /// JSON lines on stdin/stdout instead of the full-screen interface
        #[arg(long, env = "P2PCHAT_HEADLESS", value_parser = BoolishValueParser::new())]
        headless: bool,
        /// Directory for the diagnostic log of the full-screen interface (one file a day, a
        /// week kept) [default: the per-user state directory, ~/.local/state/p2pchat]
        #[arg(long, env = "P2PCHAT_LOG_DIR", value_name = "DIR")]
        log_dir: Option<PathBuf>,
        #[command(flatten)]
        files: Files,
    },
    /// Print a shell completion script (e.g. `p2pchat completions bash >
    /// ~/.local/share/bash-completion/completions/p2pchat`)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the help of p2pchat, or of a command (`p2pchat help chat` is `p2pchat chat --help`)
    Help {
        /// The command to explain
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
    /// Print the manual page (`p2pchat man | man -l -`), or write one page per command to a
    /// directory
    Man {
        /// Write p2pchat.1, p2pchat-chat.1, … into this directory instead
        #[arg(long, env = "P2PCHAT_MAN_DIR", value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// `p2pchat chat` options. Which of them apply depends on the way of chatting; a setting
/// inherited from the environment or the config file never stands in the way of another way
/// typed on the command line (an exported P2PCHAT_KEY does not stop pairing).
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// A pairing code your friend read out (7-apple-banjo), or a contact's name. With neither
    /// (and no --room/--key), you get a code to read out
    #[arg(value_name = "CODE|CONTACT")]
    pub target: Option<String>,
    /// Type the code a friend reads out at a prompt (Tab completes the words)
    #[arg(long, conflicts_with = "target")]
    pub join: bool,
    /// Your display name [default: from config; with a contact, the name you paired with;
    /// else $USER]
    #[arg(long, env = "P2PCHAT_NAME")]
    pub name: Option<String>,
    /// Rendezvous server, HOST:PORT (the port defaults to 7777)
    #[arg(long, env = "P2PCHAT_SERVER", value_parser = server_addr, value_name = "ADDR")]
    pub server: Option<SocketAddr>,
    /// Room to join on the server (your peer uses the same room)
    #[arg(long, env = "P2PCHAT_ROOM")]
    pub room: Option<String>,
    /// Chat directly with the peer at HOST:PORT, without a server
    #[arg(long, env = "P2PCHAT_PEER", value_parser = exact_addr, value_name = "ADDR")]
    pub peer: Option<SocketAddr>,
    /// Shared Fernet key from `p2pchat keygen` (or set P2PCHAT_KEY, which `ps` cannot show)
    #[arg(long, env = "P2PCHAT_KEY", hide_env_values = true, allow_hyphen_values = true)]
    pub key: Option<String>,
    /// Local address for the chat socket (without a port: any port) [default: 0.0.0.0:0]
    #[arg(long, env = "P2PCHAT_BIND", value_parser = bind_addr, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// STUN server for learning your public endpoint (the port defaults to 7777) [default:
    /// the rendezvous server]
    #[arg(long, env = "P2PCHAT_STUN", value_parser = server_addr, value_name = "ADDR")]
    pub stun: Option<SocketAddr>,
    /// Seconds of silence before a peer is shown offline [default: 15]
    #[arg(long, env = "P2PCHAT_OFFLINE_AFTER", value_name = "SECS", value_parser = seconds)]
    pub offline_after: Option<u64>,
    /// JSON lines on stdin/stdout instead of the full-screen interface
    #[arg(long, env = "P2PCHAT_HEADLESS", value_parser = BoolishValueParser::new())]
    pub headless: bool,
    /// Directory for the diagnostic log of the full-screen interface (one file a day, a
    /// week kept) [default: the per-user state directory, ~/.local/state/p2pchat]
    #[arg(long, env = "P2PCHAT_LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    #[command(flatten)]
    pub files: Files,
}

/// `p2pchat open` options (also those of `p2pchat` alone).
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Your display name where a contact or room has none saved [default: from config, else
    /// $USER]
    #[arg(long, env = "P2PCHAT_NAME")]
    pub name: Option<String>,
    /// Rendezvous server for every conversation, over the one each contact was paired
    /// through (the port defaults to 7777) [default: each contact's; `server` from config for
    /// /pair, /join and /room]
    #[arg(long, env = "P2PCHAT_SERVER", value_parser = server_addr, value_name = "ADDR")]
    pub server: Option<SocketAddr>,
    /// Local address for the one socket (without a port: any port) [default: 0.0.0.0:0]
    #[arg(long, env = "P2PCHAT_BIND", value_parser = bind_addr, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// STUN server for learning your public endpoint and NAT type (the port defaults to
    /// 7777) [default: the first conversation's server]
    #[arg(long, env = "P2PCHAT_STUN", value_parser = server_addr, value_name = "ADDR")]
    pub stun: Option<SocketAddr>,
    /// Seconds of silence before a peer is shown offline [default: 15]
    #[arg(long, env = "P2PCHAT_OFFLINE_AFTER", value_name = "SECS", value_parser = seconds)]
    pub offline_after: Option<u64>,
    /// How a message in a conversation you are not looking at asks for attention
    /// [default: `notify` from config, else bell]
    #[arg(long, env = "P2PCHAT_NOTIFY", value_enum, value_name = "HOW")]
    pub notify: Option<NotifyHow>,
    /// JSON lines on stdin/stdout instead of the full-screen interface; each event names its
    /// conversation, and `/to NAME text` writes in any
    #[arg(long, env = "P2PCHAT_HEADLESS", value_parser = BoolishValueParser::new())]
    pub headless: bool,
    /// Directory for the diagnostic log of the full-screen interface (one file a day, a
    /// week kept) [default: the per-user state directory, ~/.local/state/p2pchat]
    #[arg(long, env = "P2PCHAT_LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    #[command(flatten)]
    pub files: Files,
}

/// How a message elsewhere asks for attention (`--notify`, `notify` in config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyHow {
    /// The terminal's bell.
    Bell,
    /// A desktop notification.
    Desktop,
    /// Both.
    Both,
    /// Neither.
    Off,
}

/// Parses HOST:PORT or IP:PORT; without a port, `default_port` when there is one. A host name
/// resolves to its first IPv4 address (else its first address).
pub fn parse_addr(s: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let with_port = |port: u16| match default_port {
        Some(_) => format!("HOST or HOST:PORT (the port defaults to {port})"),
        None => "HOST:PORT".to_owned(),
    };
    let expected = || {
        format!(
            "expected {}, like 203.0.113.5:7777 or example.org:7777, got \"{s}\"",
            with_port(default_port.unwrap_or(DEFAULT_PORT))
        )
    };
    if let (Some(port), Ok(ip)) = (default_port, s.parse::<IpAddr>()) {
        return Ok(SocketAddr::new(ip, port));
    }
    let (host, port) = match (s.rsplit_once(':'), default_port) {
        (Some((host, port)), _) => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("\"{port}\" in \"{s}\" is not a port number (0 to 65535)"))?;
            (host, port)
        }
        (None, Some(port)) => (s, port),
        (None, None) => return Err(expected()),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(expected());
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "cannot find the address of \"{host}\" ({e}): check the name, or give an IP address"
            )
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("\"{host}\" has no address: check the name, or give an IP address"))
}

/// A p2pchat server's address (rendezvous, STUN): the port defaults to 7777.
pub fn server_addr(s: &str) -> Result<SocketAddr, String> {
    parse_addr(s, Some(DEFAULT_PORT))
}

/// A TURN relay's address: the port defaults to 3478.
fn turn_addr(s: &str) -> Result<SocketAddr, String> {
    parse_addr(s, Some(TURN_DEFAULT_PORT))
}

/// A local address to bind: without a port, any port.
pub fn bind_addr(s: &str) -> Result<SocketAddr, String> {
    parse_addr(s, Some(0))
}

/// A whole number of seconds.
fn seconds(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a whole number of seconds, like 30, got \"{s}\""))
}

/// The longest a pairing code may stay usable: a day.
const MAX_CODE_TTL_SECS: u64 = 86_400;

/// How long a pairing code stays usable: 1 second to a day.
fn code_ttl(s: &str) -> Result<u64, String> {
    match seconds(s)? {
        secs @ 1..=MAX_CODE_TTL_SECS => Ok(secs),
        secs => Err(format!("expected 1 to {MAX_CODE_TTL_SECS} seconds (a day), got {secs}")),
    }
}

/// An address that needs its port (a peer's, an alternate server address).
pub fn exact_addr(s: &str) -> Result<SocketAddr, String> {
    parse_addr(s, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_an_environment_variable_named_after_it() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let mut checked = 0;
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if ["help", "version"].contains(&long) {
                    continue;
                }
                let var = arg.get_env().map(|v| v.to_string_lossy().into_owned());
                let expected = format!("P2PCHAT_{}", long.replace('-', "_").to_uppercase());
                // Flags whose name alone says too little outside their command: `nat --bind`
                // takes an IP (`chat --bind` an address), `man --out-dir` is for pages.
                let expected = match (sub.get_name(), long) {
                    ("nat", "bind") => "P2PCHAT_NAT_BIND".to_owned(),
                    ("man", "out-dir") => "P2PCHAT_MAN_DIR".to_owned(),
                    _ => expected,
                };
                // Choosing the prompt is a choice made at the terminal, not a setting.
                if long == "join" {
                    assert_eq!(var, None);
                    continue;
                }
                assert_eq!(var, Some(expected), "{} --{long}", sub.get_name());
                checked += 1;
            }
        }
        assert!(checked > 20, "{checked}");
    }

    #[test]
    fn a_number_of_seconds_that_is_not_one_says_what_the_flag_wants() {
        assert_eq!(seconds(" 30").unwrap(), 30);
        assert_eq!(
            seconds("abc").unwrap_err(),
            "expected a whole number of seconds, like 30, got \"abc\""
        );
        assert!(seconds("-1").unwrap_err().starts_with("expected a whole number of seconds"));
        assert_eq!(code_ttl("0").unwrap_err(), "expected 1 to 86400 seconds (a day), got 0");
        assert!(code_ttl("ten").unwrap_err().starts_with("expected a whole number of seconds"));
        assert_eq!(code_ttl("600").unwrap(), 600);
    }

    #[test]
    fn addresses_take_a_default_port_where_one_makes_sense() {
        assert_eq!(server_addr("127.0.0.1").unwrap(), "127.0.0.1:7777".parse().unwrap());
        assert_eq!(server_addr("localhost").unwrap(), "127.0.0.1:7777".parse().unwrap());
        assert_eq!(server_addr("localhost:9000").unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(turn_addr("127.0.0.1").unwrap(), "127.0.0.1:3478".parse().unwrap());
        assert_eq!(bind_addr("127.0.0.1").unwrap(), "127.0.0.1:0".parse().unwrap());
        assert_eq!(server_addr("[::1]:5").unwrap(), "[::1]:5".parse().unwrap());
        let peer = exact_addr("127.0.0.1").unwrap_err();
        assert!(peer.contains("expected HOST:PORT"), "{peer}");
    }

    #[test]
    fn a_name_that_does_not_resolve_or_a_bad_port_is_one_sentence() {
        let error = server_addr("no-such-host.invalid:7777").unwrap_err();
        assert!(
            error.starts_with("cannot find the address of \"no-such-host.invalid\""),
            "{error}"
        );
        assert!(error.ends_with("check the name, or give an IP address"), "{error}");
        let error = server_addr("example.org:77777").unwrap_err();
        assert!(
            error.contains("\"77777\" in \"example.org:77777\" is not a port number"),
            "{error}"
        );
        let error = server_addr("two words").unwrap_err();
        assert!(error.starts_with("expected HOST or HOST:PORT"), "{error}");
    }
}
