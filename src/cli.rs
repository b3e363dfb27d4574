//! The command line: clap definitions, merging flags over `config.toml`, validation that turns
//! every mistake into one sentence saying how to fix it, and dispatch to the subcommands.
//! Exit codes: 0 success, 2 usage or configuration errors, 1 runtime failures.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use directories::ProjectDirs;

use crate::app::model::{Entry, EntryKind};
use crate::chat::{self, ChatOptions, Keys};
use crate::config::{self, FileConfig};
use crate::consts::NAT_TEST_TIMEOUT;
use crate::consts::{CHAT_RUNTIME_WORKERS, KEEPALIVE_INTERVAL, MAX_NAME_CHARS, OFFLINE_AFTER};
use crate::demo::{self, DemoOptions};
use crate::history::{self, Record};
use crate::identity::{Contacts, Identity};
use crate::net;
use crate::net::keying::{Plan, Progress};
use crate::proto::Mode;
use crate::proto::crypto::{Cipher, generate_key};
use crate::proto::keying::{Code, Peer};
use crate::proto::nat::{Behaviour, NatType, Report};
use crate::text::{name_problem, sanitize, sanitize_lines};
use crate::{headless, server, tui};

/// Peer-to-peer chat in the terminal: one UDP socket, hole punching, Fernet encryption.
#[derive(Debug, Parser)]
#[command(name = "p2pchat", version, propagate_version = true)]
pub struct Cli {
    /// Directory for conversation logs [default: the per-user data directory]
    #[arg(long, global = true, env = "P2PCHAT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file with defaults for flags; your identity key and contacts live beside it
    /// [default: config.toml in the per-user config directory]
    #[arg(long, global = true, env = "P2PCHAT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the rendezvous server (it also answers STUN on the same port)
    Server {
        /// Address and UDP port to listen on
        #[arg(long, default_value = "0.0.0.0:7777", value_parser = parse_addr, value_name = "ADDR")]
        listen: SocketAddr,
        /// A second address, with another IP and port, for RFC 5780 NAT-type discovery: the
        /// server then also listens there and answers CHANGE-REQUEST
        #[arg(long, value_parser = parse_addr, value_name = "ADDR")]
        alt: Option<SocketAddr>,
        /// Seconds a pairing code stays usable
        #[arg(long, default_value_t = 600, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
        code_ttl: u64,
        /// A TURN relay (coturn with use-auth-secret) to offer peers that cannot punch through
        /// their NATs: its UDP address as peers reach it. Needs the secret it shares with
        /// coturn: --turn-secret-file, or the P2PCHAT_TURN_SECRET environment variable
        #[arg(long, value_parser = parse_addr, value_name = "HOST:PORT")]
        turn: Option<SocketAddr>,
        /// File holding coturn's static-auth-secret (read once; never printed or logged)
        #[arg(long, value_name = "FILE", requires = "turn")]
        turn_secret_file: Option<PathBuf>,
    },
    /// Chat: pair with a code or reach a contact through a server (--server), join a room
    /// with a shared key (--server --room --key), or go direct (--peer --key)
    Chat(ChatArgs),
    /// Print a new random key; give the same key to your peer
    Keygen,
    /// Detect your NAT's behaviour (RFC 5780): mapping, filtering, public endpoint, type
    Nat {
        /// STUN server with an alternate address (RFC 5780), e.g. `p2pchat server --alt`
        /// [default: `stun`, else `server`, from config]
        #[arg(long, value_parser = parse_addr, value_name = "ADDR")]
        stun: Option<SocketAddr>,
        /// Local IP to test from [default: all interfaces]
        #[arg(long, value_name = "IP")]
        bind: Option<std::net::IpAddr>,
        /// Print one JSON object: mapping, filtering, nat_type, public, notes
        #[arg(long)]
        json: bool,
    },
    /// Print the logged conversation of a room or a direct peer
    History {
        /// Room name, or peer address (as given to --peer)
        conversation: String,
        /// Only messages containing this text (ignoring case)
        #[arg(long, value_name = "TEXT")]
        grep: Option<String>,
    },
    /// Try it now: a local server, a bot peer and the chat, in one process
    Demo {
        /// Your display name [default: from config, else $USER]
        #[arg(long)]
        name: Option<String>,
        /// JSON lines on stdin/stdout instead of the full-screen interface
        #[arg(long)]
        headless: bool,
    },
}

/// `p2pchat chat` options.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// A pairing code your friend read out (7-apple-banjo), or a contact's name. With neither
    /// (and no --room/--key), you get a code to read out
    #[arg(value_name = "CODE|CONTACT")]
    pub target: Option<String>,
    /// Type the code a friend reads out at a prompt (Tab completes the words)
    #[arg(long, conflicts_with_all = ["target", "headless", "room", "key", "peer"])]
    pub join: bool,
    /// Your display name [default: from config, else $USER]
    #[arg(long)]
    pub name: Option<String>,
    /// Rendezvous server, HOST:PORT
    #[arg(long, value_parser = parse_addr, value_name = "ADDR", conflicts_with = "peer")]
    pub server: Option<SocketAddr>,
    /// Room to join on the server (your peer uses the same room)
    #[arg(long, conflicts_with = "peer")]
    pub room: Option<String>,
    /// Chat directly with the peer at HOST:PORT, without a server
    #[arg(long, value_parser = parse_addr, value_name = "ADDR")]
    pub peer: Option<SocketAddr>,
    /// Shared Fernet key from `p2pchat keygen` (or set P2PCHAT_KEY, which `ps` cannot show)
    #[arg(long, env = "P2PCHAT_KEY", hide_env_values = true, allow_hyphen_values = true)]
    pub key: Option<String>,
    /// Local address for the chat socket [default: 0.0.0.0:0]
    #[arg(long, value_parser = parse_addr, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// STUN server for learning your public endpoint [default: the rendezvous server]
    #[arg(long, value_parser = parse_addr, value_name = "ADDR")]
    pub stun: Option<SocketAddr>,
    /// Seconds of silence before a peer is shown offline [default: 15]
    #[arg(long, value_name = "SECS")]
    pub offline_after: Option<u64>,
    /// JSON lines on stdin/stdout instead of the full-screen interface
    #[arg(long)]
    pub headless: bool,
}

/// How a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user asked for something that cannot work; the message says how to fix it (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Something failed while running (exit 1).
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Runtime(_) => 1,
        }
    }
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// The demo's name for a user who has no login name in the environment.
const DEMO_DEFAULT_NAME: &str = "you";

/// Parses HOST:PORT, resolving a host name to its first IPv4 address.
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let bad =
        || format!("expected HOST:PORT, like 203.0.113.5:7777 or example.org:7777, got \"{s}\"");
    let addrs: Vec<SocketAddr> = s.to_socket_addrs().map_err(|_| bad())?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(bad)
}

/// The secret shared with coturn: the contents of `file` (without surrounding whitespace),
/// else `P2PCHAT_TURN_SECRET`.
fn turn_secret(file: Option<PathBuf>) -> Result<Vec<u8>, CliError> {
    let (text, source) = match file {
        Some(file) => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                usage(format!(
                    "cannot read the TURN secret from {}: {e} (give the file holding coturn's \
                     static-auth-secret)",
                    file.display()
                ))
            })?;
            (text, file.display().to_string())
        }
        None => match std::env::var("P2PCHAT_TURN_SECRET") {
            Ok(text) => (text, "P2PCHAT_TURN_SECRET".to_owned()),
            Err(_) => {
                return Err(usage(
                    "--turn needs the secret shared with coturn (its static-auth-secret): \
                     --turn-secret-file FILE, or P2PCHAT_TURN_SECRET",
                ));
            }
        },
    };
    let secret = text.trim();
    if secret.is_empty() {
        return Err(usage(format!("{source} is empty: put coturn's static-auth-secret in it")));
    }
    Ok(secret.as_bytes().to_vec())
}

fn project_dirs() -> Option<ProjectDirs> {
    ProjectDirs::from("", "", "p2pchat")
}

fn config_path(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_owned).or_else(|| Some(project_dirs()?.config_dir().join("config.toml")))
}

fn load_config(flag: Option<&Path>) -> Result<FileConfig, CliError> {
    let Some(path) = config_path(flag) else { return Ok(FileConfig::default()) };
    config::load(&path).map_err(|e| usage(format!("{e} (fix or remove the file)")))
}

/// Where the identity key and the contacts live: beside the config file.
fn config_dir(flag: Option<&Path>) -> Result<PathBuf, CliError> {
    config_path(flag)
        .and_then(|p| p.parent().map(Path::to_owned))
        .ok_or_else(|| usage("no home directory to keep your identity in: pass --config FILE (or set P2PCHAT_CONFIG)"))
}

fn data_dir(flag: Option<PathBuf>, config: &FileConfig) -> Result<PathBuf, CliError> {
    flag.or_else(|| config.data_dir.clone())
        .or_else(|| project_dirs().map(|d| d.data_dir().to_owned()))
        .ok_or_else(|| {
            usage("no home directory to keep logs in: pass --data-dir DIR or set P2PCHAT_DATA_DIR")
        })
}

/// The display name: the flag, the config, the login name, then `fallback` (the demo has one,
/// so it runs anywhere with nothing to configure).
fn display_name(
    flag: Option<String>,
    config: &FileConfig,
    fallback: Option<&str>,
) -> Result<String, CliError> {
    let login =
        || ["USER", "LOGNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()));
    let name = flag
        .or_else(|| config.name.clone())
        .or_else(login)
        .or_else(|| fallback.map(str::to_owned))
        .ok_or_else(|| usage("no display name: pass --name NAME (or set name in config.toml)"))?;
    let name = name.trim().to_owned();
    if let Some(problem) = name_problem(&name) {
        return Err(usage(format!("--name: {problem}")));
    }
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(usage(format!(
            "--name must be 1 to {MAX_NAME_CHARS} printable characters, got \"{}\"",
            sanitize(&name)
        )));
    }
    Ok(name)
}

fn cipher(key: Option<&str>) -> Result<Cipher, CliError> {
    let key = key.ok_or_else(|| {
        usage("no key given: create one with `p2pchat keygen`, then pass the same key to both peers with --key KEY (or P2PCHAT_KEY)")
    })?;
    Cipher::from_key(key).map_err(|_| {
        usage("that key is not a valid Fernet key (44 characters of URL-safe base64): create one with `p2pchat keygen`")
    })
}

fn chat_options(
    data_dir_flag: Option<PathBuf>,
    config_flag: Option<&Path>,
    args: ChatArgs,
    config: &FileConfig,
) -> Result<ChatOptions, CliError> {
    let config_dir = config_dir(config_flag)?;
    let name = display_name(args.name, config, None)?;
    let headless = args.headless;
    let (mode, keys) = match args.peer {
        Some(peer) => (Mode::Direct { peer }, Keys::Shared(cipher(args.key.as_deref())?)),
        None => {
            let server = args.server.or(config.server).ok_or_else(|| {
                usage("say how to find your peer: --server ADDR (to pair with a code or reach a contact; or with --room ROOM --key KEY), or --peer ADDR (directly)")
            })?;
            let shared = args.key.is_some() || args.room.is_some();
            if shared && let Some(target) = &args.target {
                return Err(usage(format!(
                    "\"{}\" replaces --room and --key: give either a code or contact, or a room and key",
                    sanitize(target)
                )));
            }
            let room = args.room.or_else(|| config.room.clone());
            if shared {
                let room = room.ok_or_else(|| {
                    usage("--key needs --room ROOM too: both peers join the same room")
                })?;
                if room.trim().is_empty() {
                    return Err(usage("--room must be a non-empty name"));
                }
                if let Some(problem) = name_problem(&room) {
                    return Err(usage(format!("--room: {problem}")));
                }
                (Mode::Room { server, room }, Keys::Shared(cipher(args.key.as_deref())?))
            } else {
                let plan = if args.join {
                    let code = crate::prompt::ask_code()
                        .map_err(|e| {
                            CliError::Runtime(anyhow::anyhow!("cannot read the code: {e}"))
                        })?
                        .ok_or_else(|| usage("no code typed; nothing was sent"))?;
                    Plan::Code(code)
                } else {
                    plan(args.target.as_deref(), &config_dir)?
                };
                let identity = Identity::load_or_create(&config_dir)
                    .map_err(|e| CliError::Runtime(anyhow::anyhow!("{e}")))?;
                let progress = Box::new(move |p: Progress| show_progress(&p, server, headless));
                (
                    Mode::Room { server, room: String::new() },
                    Keys::Agree { plan: Box::new(plan), identity, progress },
                )
            }
        }
    };
    let offline_secs =
        args.offline_after.or(config.offline_after).unwrap_or(OFFLINE_AFTER.as_secs());
    if offline_secs <= KEEPALIVE_INTERVAL.as_secs() {
        return Err(usage(format!(
            "--offline-after must be more than {} seconds (the keepalive interval), got {offline_secs}",
            KEEPALIVE_INTERVAL.as_secs()
        )));
    }
    Ok(ChatOptions {
        name,
        mode,
        keys,
        bind: args.bind.or(config.bind).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        stun: args.stun.or(config.stun),
        offline_after: Duration::from_secs(offline_secs),
        data_dir: data_dir(data_dir_flag, config)?,
        config_dir,
    })
}

/// What to agree keys with: a new code, the code given, or the contact named.
fn plan(target: Option<&str>, config_dir: &Path) -> Result<Plan, CliError> {
    let Some(target) = target else { return Ok(Plan::NewCode) };
    if target.trim().starts_with(|c: char| c.is_ascii_digit()) {
        return Code::parse(target).map(Plan::Code).map_err(|e| usage(e.to_string()));
    }
    let contacts =
        Contacts::load(config_dir).map_err(|e| CliError::Runtime(anyhow::anyhow!("{e}")))?;
    match contacts.find(target.trim()) {
        Some(contact) => {
            let key = contact.public().ok_or_else(|| {
                usage(format!(
                    "the saved key of {} is damaged: pair again with a code",
                    contact.name
                ))
            })?;
            Ok(Plan::Contact(Peer { name: contact.name.clone(), key }, contact.room.clone()))
        }
        None => {
            let known: Vec<&str> = contacts.list.iter().map(|c| c.name.as_str()).collect();
            let known = if known.is_empty() { "none yet".to_owned() } else { known.join(", ") };
            Err(usage(format!(
                "no contact named \"{}\" (contacts: {known}); to pair with someone new, run `p2pchat chat --server ADDR` and read them the code",
                sanitize(target)
            )))
        }
    }
}

/// Tells the user what the key handshake needs them to know: JSON lines in headless mode,
/// plain lines before the full screen otherwise.
fn show_progress(progress: &Progress, server: SocketAddr, headless: bool) {
    match (progress, headless) {
        (Progress::Code(code), true) => {
            headless::emit(&serde_json::json!({"event": "code", "code": code.to_string()}));
        }
        (Progress::Waiting(peer), true) => {
            headless::emit(&serde_json::json!({"event": "waiting", "peer": peer}));
        }
        (Progress::Code(code), false) => {
            println!("Your pairing code: {code}");
            println!("Read it to your friend, who runs:  p2pchat chat {code} --server {server}");
            println!("Waiting for them… (the code works once, for 10 minutes; Ctrl-C to stop)");
        }
        (Progress::Waiting(peer), false) => {
            println!("Waiting for {} to come online… (Ctrl-C to stop)", sanitize(peer));
        }
    }
}

fn init_tracing(to_file: Option<&Path>, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let file = to_file.and_then(|dir| {
        std::fs::create_dir_all(dir).ok()?;
        File::options().create(true).append(true).open(dir.join("p2pchat.log")).ok()
    });
    let _ = match file {
        Some(file) => builder.with_ansi(false).with_writer(std::sync::Mutex::new(file)).try_init(),
        None if to_file.is_some() => builder.with_writer(std::io::sink).try_init(),
        // Colour only for a person watching: escape codes in a redirected log are noise.
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

/// Runs `future` on a new runtime (with `workers` worker threads, or one per core), as a task on
/// a worker rather than on this thread: the chat loop and the network actor then hand each other
/// commands and events on the worker they share (tokio runs a task woken by the current one next,
/// on the same thread) instead of waking another thread for every message. The runtime is then
/// dropped without waiting for blocking tasks: tokio reads stdin on a blocking thread that would
/// otherwise keep the process alive until the next line of input.
fn block_on<T: Send + 'static>(
    workers: Option<usize>,
    future: impl Future<Output = Result<T, CliError>> + Send + 'static,
) -> Result<T, CliError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    let runtime = builder.enable_all().build().context("cannot start the async runtime")?;
    let result = runtime.block_on(runtime.spawn(future));
    runtime.shutdown_background();
    match result {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(CliError::Runtime(anyhow::anyhow!("the main task was cancelled: {join}"))),
    }
}

/// Waits for Ctrl-C or another signal that ends a program (for the modes that do not read the
/// keyboard themselves).
async fn interrupted() {
    match crate::chat::EndingSignals::new() {
        Ok(mut ending) => ending.recv().await,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let Cli { data_dir: data_dir_flag, config: config_flag, command } = cli;
    let config = load_config(config_flag.as_deref())?;
    match command {
        Command::Keygen => {
            println!("{}", generate_key());
            Ok(())
        }
        Command::Server { listen, alt, code_ttl, turn, turn_secret_file } => {
            init_tracing(None, "info");
            let turn = match turn {
                Some(relay) => Some(server::TurnRelay::new(relay, turn_secret(turn_secret_file)?)),
                None => None,
            };
            block_on(None, async move {
                let sockets = server::Sockets::bind(listen, alt).await.map_err(|e| {
                    usage(format!(
                        "cannot listen on {listen}{}: {e} (choose other addresses)",
                        alt.map(|a| format!(" and {a}")).unwrap_or_default()
                    ))
                })?;
                let local = sockets.primary();
                let relay = turn
                    .as_ref()
                    .map(|t| format!("; relay offered: TURN at {}", t.server))
                    .unwrap_or_default();
                match alt {
                    Some(alt) => println!(
                        "p2pchat server listening on {local} (rendezvous and STUN; \
                         RFC 5780 alternate {alt}{relay})"
                    ),
                    None => {
                        println!("p2pchat server listening on {local} (rendezvous and STUN{relay})")
                    }
                }
                let code_ttl = Duration::from_secs(code_ttl);
                server::run(sockets, code_ttl, turn, interrupted())
                    .await
                    .context("server failed")?;
                Ok(())
            })
        }
        Command::Nat { stun, bind, json } => {
            let stun = stun.or(config.stun).or(config.server).ok_or_else(|| {
                usage("no STUN server: pass --stun ADDR (an RFC 5780 server such as `p2pchat server --alt`)")
            })?;
            init_tracing(None, "warn");
            let bind = bind.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
            let report = block_on(None, async move {
                net::nat::detect(stun, bind)
                    .await
                    .context("cannot run NAT detection")
                    .map_err(CliError::Runtime)
            })?;
            print_nat(&report, json);
            if report.nat_type == NatType::Blocked {
                return Err(CliError::Runtime(anyhow::anyhow!(
                    "no answer from STUN server {stun} within {} s: it is down, unreachable, or UDP is blocked",
                    NAT_TEST_TIMEOUT.as_secs_f32()
                )));
            }
            Ok(())
        }
        Command::History { conversation, grep } => {
            print_history(&data_dir(data_dir_flag, &config)?, &conversation, grep.as_deref())
        }
        Command::Demo { name, headless } => {
            let options = DemoOptions {
                name: display_name(name, &config, Some(DEMO_DEFAULT_NAME))?,
                data_dir: data_dir(data_dir_flag, &config)?,
                config_dir: config_dir(config_flag.as_deref())?,
                headless,
            };
            init_tracing((!headless).then_some(options.data_dir.as_path()), "warn");
            block_on(Some(CHAT_RUNTIME_WORKERS), async move {
                demo::run(options, std::future::pending()).await.map_err(CliError::Runtime)
            })
        }
        Command::Chat(args) => {
            let headless = args.headless;
            let options = chat_options(data_dir_flag, config_flag.as_deref(), args, &config)?;
            init_tracing((!headless).then_some(options.data_dir.as_path()), "warn");
            block_on(Some(CHAT_RUNTIME_WORKERS), async move {
                let chat = chat::start(options).await.map_err(|e| {
                    if headless {
                        headless::emit(
                            &serde_json::json!({"event": "error", "message": e.to_string()}),
                        );
                    }
                    CliError::Runtime(e.into())
                })?;
                let result = if headless {
                    headless::run(chat, std::future::pending()).await
                } else {
                    tui::run(chat, std::future::pending()).await
                };
                result.map_err(CliError::Runtime)
            })
        }
    }
}

fn print_nat(report: &Report, json: bool) {
    if json {
        let value = serde_json::json!({
            "mapping": report.mapping.map(Behaviour::as_str),
            "filtering": report.filtering.map(Behaviour::as_str),
            "nat_type": report.nat_type.as_str(),
            "public": report.public,
            "notes": report.notes,
        });
        println!("{value}");
        return;
    }
    let or_unknown = |b: Option<Behaviour>| b.map_or("not determined", Behaviour::as_str);
    println!("NAT type:   {}", report.nat_type.as_str());
    println!("mapping:    {}", or_unknown(report.mapping));
    println!("filtering:  {}", or_unknown(report.filtering));
    match report.public {
        Some(public) => println!("public:     {public}"),
        None => println!("public:     unknown"),
    }
    for note in &report.notes {
        println!("note:       {note}");
    }
}

/// The log file for what the user typed: the name as given, or as a room, or as a peer.
fn find_conversation(dir: &Path, name: &str) -> Result<PathBuf, CliError> {
    let candidates = [name.to_owned(), format!("room-{name}"), format!("peer-{name}")];
    if let Some(path) =
        candidates.iter().map(|c| history::conversation_path(dir, c)).find(|p| p.exists())
    {
        return Ok(path);
    }
    let mut known: Vec<String> = std::fs::read_dir(dir.join("conversations"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".jsonl").map(str::to_owned))
        .collect();
    known.sort();
    let known = if known.is_empty() { "none yet".to_owned() } else { known.join(", ") };
    Err(usage(format!(
        "no conversation \"{}\" in {} (known: {known})",
        sanitize(name),
        dir.display()
    )))
}

/// One record as a plain line for the terminal; `None` for records that only update another
/// (delivery confirmations).
fn plain_line(record: &Record) -> Option<String> {
    let entry = Entry::from_record(record)?;
    let when = entry.at.format("%Y-%m-%d %H:%M:%S");
    Some(match entry.kind {
        EntryKind::Chat { from, text, .. } => {
            format!("[{when}] {}: {}", sanitize(&from), sanitize_lines(&text))
        }
        EntryKind::System(text) => format!("[{when}] — {}", sanitize(&text)),
    })
}

fn print_history(dir: &Path, name: &str, grep: Option<&str>) -> Result<(), CliError> {
    let path = find_conversation(dir, name)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // Lines go out as they are read; a reader that went away (e.g. `| head`) ends it quietly.
    let mut closed = false;
    let mut print = |record: Record| {
        if let Some(line) = plain_line(&record)
            && !closed
        {
            closed = writeln!(out, "{line}").is_err();
        }
    };
    let skipped = match grep {
        Some("") => return Err(usage("--grep needs some text to look for".to_owned())),
        Some(text) => history::search_each(&path, text, |_, record| print(record)).map(|()| 0),
        None => history::read_each(&path, print),
    }
    .context("cannot read the conversation log")?;
    if skipped > 0 {
        eprintln!("p2pchat: skipped {skipped} unreadable lines in {}", path.display());
    }
    Ok(())
}
