//! The command line: running each subcommand with its settings merged (flags and their
//! environment variables over `config.toml`, read only by the commands that use it), checks
//! that turn every mistake into one sentence naming where the value came from and how to fix
//! it, and the exit codes: 0 success, 2 usage or configuration errors, 1 runtime failures.
//! The clap definitions are in `args`.

pub mod args;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use directories::ProjectDirs;

pub use self::args::{ChatArgs, Cli, Command, ConfigArg, Files, OpenArgs, VERSION};
use crate::app::messenger::Notify;
use crate::app::model::{Entry, EntryKind};
use crate::chat::{self, ChatOptions, Keys};
use crate::config::{self, Config, Origin, Setting};
use crate::consts::NAT_TEST_TIMEOUT;
use crate::consts::{CHAT_RUNTIME_WORKERS, KEEPALIVE_INTERVAL, MAX_NAME_CHARS, OFFLINE_AFTER};
use crate::demo::{self, DemoOptions};
use crate::history::{self, Record};
use crate::identity::{Contacts, Identity};
use crate::messenger::MessengerOptions;
use crate::net;
use crate::net::keying::{Plan, Progress};
use crate::prompt::Answer;
use crate::proto::Mode;
use crate::proto::crypto::{Cipher, generate_key};
use crate::proto::keying::{Code, Peer};
use crate::proto::nat::{Behaviour, NatType, Report};
use crate::text::{name_problem, sanitize, sanitize_lines};
use crate::{headless, server, tui};

/// How a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user asked for something that cannot work; the message says how to fix it (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Something failed while running (exit 1).
    #[error("{}", causes(.0))]
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

fn runtime(error: impl std::fmt::Display) -> CliError {
    CliError::Runtime(anyhow::anyhow!("{error}"))
}

/// An error and its causes in one line, each cause only once: most of our errors already say
/// what their source said ("…: Permission denied (os error 13)"), and repeating it after them
/// helps nobody.
pub fn causes(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

/// The command line as parsed, with where each value came from.
pub struct Invocation {
    cli: Cli,
    sources: Sources,
}

/// Where the values of the chosen subcommand came from: typed, or from the environment.
struct Sources {
    matches: ArgMatches,
    command: clap::Command,
}

impl Sources {
    /// `value` with its origin: the flag, or the environment variable it came from.
    fn setting<T>(&self, id: &str, value: Option<T>) -> Option<Setting<T>> {
        let value = value?;
        let arg = self.command.get_arguments().find(|a| a.get_id() == id);
        let long = arg.and_then(|a| a.get_long()).unwrap_or(id).to_owned();
        let origin = match (self.matches.value_source(id), arg.and_then(|a| a.get_env())) {
            (Some(ValueSource::EnvVariable), Some(var)) => {
                Origin::Env(var.to_string_lossy().into_owned())
            }
            _ => Origin::Flag(long),
        };
        Some(Setting { value, origin })
    }
}

impl Invocation {
    /// Parses the process's arguments. `--help` and `--version` print and exit here, and so
    /// does a mistake clap explains itself; a value clap refuses that came from an environment
    /// variable is an error naming the variable (its flag was never typed).
    pub fn from_env() -> Result<Self, CliError> {
        let mut command = Cli::command();
        let matches = match command
            .try_get_matches_from_mut(with_default_command(std::env::args_os()))
        {
            Ok(matches) => matches,
            Err(error) => return Err(env_error(&command, &error).unwrap_or_else(|| error.exit())),
        };
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let (name, sub) = matches.subcommand().map(|(n, m)| (n, m.clone())).unwrap_or_default();
        let sources = Sources {
            matches: sub,
            command: command.find_subcommand(name).cloned().unwrap_or_default(),
        };
        Ok(Self { cli, sources })
    }
}

/// The command line with `open` put in when it names no command: `p2pchat` alone, or
/// `p2pchat --server ADDR`, starts the messenger (`--help` and `--version` stay p2pchat's own).
fn with_default_command(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let own = ["-h", "--help", "-V", "--version"];
    let names_none = match args.get(1).and_then(|a| a.to_str()) {
        None => true,
        Some(first) => first.starts_with('-') && !own.contains(&first),
    };
    if names_none {
        args.insert(1.min(args.len()), "open".into());
    }
    args
}

/// The sentence for a value clap refused when it came from an environment variable.
fn env_error(command: &clap::Command, error: &clap::Error) -> Option<CliError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(error.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        return None;
    }
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = shown.strip_prefix("--")?.split([' ', '=']).next()?;
    let typed = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
    let var = command
        .get_subcommands()
        .chain([command])
        .flat_map(|c| c.get_arguments())
        .filter(|a| a.get_long() == Some(long))
        .find_map(|a| a.get_env().filter(|v| std::env::var_os(v).is_some()))?;
    if typed {
        return None;
    }
    let why = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => std::error::Error::source(error)
            .map(|source| format!("\"{value}\" is not valid: {source}"))
            .unwrap_or_else(|| format!("\"{value}\" is not a valid value for --{long}")),
        _ => format!("not a valid value for --{long}"),
    };
    Some(usage(format!(
        "{} (an environment variable): {why}; fix or unset it",
        var.to_string_lossy()
    )))
}

/// The demo's name for a user who has no login name in the environment.
const DEMO_DEFAULT_NAME: &str = "you";

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

fn config_path(arg: &ConfigArg) -> Option<PathBuf> {
    arg.config.clone().or_else(|| Some(project_dirs()?.config_dir().join("config.toml")))
}

/// Reads the config file: the one named (which must exist), else the default one (if any).
fn load_config(arg: &ConfigArg, sources: &Sources) -> Result<Config, CliError> {
    let Some(path) = config_path(arg) else { return Ok(Config::default()) };
    config::load(&path, arg.config.is_some()).map_err(|e| match e {
        config::ConfigError::Missing(_) => {
            let named = sources.setting("config", arg.config.as_ref()).map(|s| s.origin);
            let named = named.map(|o| format!(", named by {o},")).unwrap_or_default();
            usage(format!(
                "config file {}{named} does not exist: create it (it may be empty; your \
                 identity is kept beside it), or name another",
                path.display()
            ))
        }
        _ => usage(format!("{e} (fix or remove the file)")),
    })
}

/// Where the identity key and the contacts live: beside the config file.
fn config_dir(arg: &ConfigArg) -> Result<PathBuf, CliError> {
    config_path(arg)
        .and_then(|p| p.parent().map(Path::to_owned))
        .ok_or_else(|| usage("no home directory to keep your identity in: pass --config FILE (or set P2PCHAT_CONFIG)"))
}

/// The data directory, with what named it (`None`: the per-user default).
fn data_dir(
    flag: Option<Setting<PathBuf>>,
    config: &Config,
) -> Result<(PathBuf, Option<Origin>), CliError> {
    match flag.or_else(|| config.get("data-dir", |f| &f.data_dir)) {
        Some(setting) => Ok((setting.value, Some(setting.origin))),
        None => project_dirs().map(|d| (d.data_dir().to_owned(), None)).ok_or_else(|| {
            usage("no home directory to keep logs in: pass --data-dir DIR or set P2PCHAT_DATA_DIR")
        }),
    }
}

/// A directory that cannot be used, in one sentence: which, what named it, why (a path
/// through something that is not a directory says so, rather than the OS's "File exists"),
/// and the flag that chooses another. One the user named is a usage error (exit 2); the
/// default, a failure (exit 1).
fn unusable_dir(
    role: &str,
    dir: &Path,
    named: Option<&Origin>,
    flag: &str,
    error: &dyn std::fmt::Display,
) -> CliError {
    let why = match dir.ancestors().find(|p| p.exists() && !p.is_dir()) {
        Some(file) => format!("{} is not a directory", file.display()),
        None => error.to_string(),
    };
    let by = named.map(|o| format!(", named by {o}")).unwrap_or_default();
    let sentence =
        format!("cannot use the {role} {}{by}: {why}; choose another with {flag}", dir.display());
    match named {
        Some(_) => usage(sentence),
        None => runtime(sentence),
    }
}

/// The name given by the flag (or its variable) or the config file, if any.
fn given_name(flag: Option<Setting<String>>, config: &Config) -> Option<Setting<String>> {
    flag.or_else(|| config.get("name", |f| &f.name))
}

/// The display name: the one given, the login name, then `fallback` (the demo has one, so it
/// runs anywhere with nothing to configure). Checked, naming where it came from.
fn display_name(
    given: Option<Setting<String>>,
    fallback: Option<&str>,
) -> Result<String, CliError> {
    let login = || {
        ["USER", "LOGNAME"].iter().find_map(|var| {
            let name = std::env::var(var).ok().filter(|n| !n.is_empty())?;
            Some(Setting { value: name, origin: Origin::Env((*var).to_owned()) })
        })
    };
    let fallback =
        fallback.map(|n| Setting { value: n.to_owned(), origin: Origin::Flag("name".into()) });
    let name = given
        .or_else(login)
        .or(fallback)
        .ok_or_else(|| usage("no display name: pass --name NAME (or set name in config.toml)"))?;
    let name = name.try_map(|name| {
        let name = name.trim().to_owned();
        if let Some(problem) = name_problem(&name) {
            return Err(problem);
        }
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(format!(
                "must be 1 to {MAX_NAME_CHARS} printable characters, got \"{}\"",
                sanitize(&name)
            ));
        }
        Ok(name)
    });
    name.map(|s| s.value).map_err(usage)
}

fn cipher(key: Option<Setting<String>>) -> Result<Cipher, CliError> {
    let key = key.ok_or_else(|| {
        usage("no key given: create one with `p2pchat keygen`, then pass the same key to both peers with --key KEY (or P2PCHAT_KEY)")
    })?;
    let cipher = key.try_map(|key| {
        Cipher::from_key(&key).map_err(|_| {
            "not a valid Fernet key (44 characters of URL-safe base64): create one with `p2pchat keygen`".to_owned()
        })
    });
    cipher.map(|s| s.value).map_err(usage)
}

/// An address from the config file, read as its flag reads it.
fn config_addr(
    config: &Config,
    key: &'static str,
    field: impl FnOnce(&config::FileConfig) -> &Option<toml::Spanned<String>>,
    parse: fn(&str) -> Result<SocketAddr, String>,
) -> Result<Option<SocketAddr>, CliError> {
    config
        .get(key, field)
        .map(|s| s.try_map(|text| parse(&text)).map(|s| s.value).map_err(usage))
        .transpose()
}

fn is_typed<T>(setting: &Option<Setting<T>>) -> bool {
    typed(setting).is_some()
}

/// Where a setting typed on this command line came from (`None`: not typed).
fn typed<T>(setting: &Option<Setting<T>>) -> Option<&Origin> {
    setting.as_ref().filter(|s| s.typed()).map(|s| &s.origin)
}

/// What named the settings a chat can fail to use at start (`None`: a default).
struct Named {
    data_dir: Option<Origin>,
    bind: Option<Origin>,
}

fn chat_options(args: ChatArgs, sources: &Sources) -> Result<(ChatOptions, Named), CliError> {
    let config = load_config(&args.files.config, sources)?;
    let config_dir = config_dir(&args.files.config)?;
    let headless = sources.setting("headless", args.headless.then_some(true));
    let peer = sources.setting("peer", args.peer);
    let room = sources.setting("room", args.room).or_else(|| config.get("room", |f| &f.room));
    let key = sources.setting("key", args.key);
    let server = match sources.setting("server", args.server) {
        Some(server) => Some(server),
        None => config_addr(&config, "server", |f| &f.server, args::server_addr)?
            .map(|value| Setting { value, origin: Origin::Flag("server".into()) }),
    };
    // The way of chatting is what the command line says; settings inherited from the
    // environment or the config file fill in only what that way needs.
    let pairing = args.target.is_some() || args.join;
    if pairing
        && let Some(typed) = [typed(&peer), typed(&room), typed(&key)].into_iter().flatten().next()
    {
        let what =
            args.target.as_deref().map_or("--join".to_owned(), |t| format!("\"{}\"", sanitize(t)));
        return Err(usage(format!(
            "{what} cannot be used with {typed}: give either a code or contact, or a room and key, or a peer"
        )));
    }
    if args.join
        && let Some(headless) = &headless
    {
        return Err(usage(format!(
            "--join asks for the code at the terminal, so it cannot be used with {}",
            headless.origin
        )));
    }
    if is_typed(&peer) && is_typed(&room) {
        return Err(usage("--peer cannot be used with --room: direct mode needs no room"));
    }
    if is_typed(&peer) && is_typed(&server) {
        return Err(usage("--peer cannot be used with --server: choose direct mode or a server"));
    }
    let shared = is_typed(&room) || is_typed(&key) || (room.is_some() && key.is_some());
    let direct = peer.filter(|p| !pairing && (p.typed() || !shared));
    let mut paired_as = None;
    let (mode, keys) = match direct {
        Some(peer) => (Mode::Direct { peer: peer.value }, Keys::Shared(cipher(key)?)),
        None => {
            let server = server.map(|s| s.value).ok_or_else(|| {
                usage("say how to find your peer: --server ADDR (to pair with a code or reach a contact; or with --room ROOM --key KEY), or --peer ADDR (directly)")
            })?;
            if shared {
                let room = room
                    .ok_or_else(|| {
                        usage("--key needs --room ROOM too: both peers join the same room")
                    })?
                    .try_map(|room| match name_problem(&room) {
                        _ if room.trim().is_empty() => Err("must be a non-empty name".to_owned()),
                        Some(problem) => Err(problem),
                        None => Ok(room),
                    })
                    .map_err(usage)?;
                (Mode::Room { server, room: room.value }, Keys::Shared(cipher(key)?))
            } else {
                let plan = if args.join {
                    need_terminal()?;
                    match crate::prompt::ask_code()
                        .map_err(|e| runtime(format!("cannot read the code: {e}")))?
                    {
                        Answer::Code(code) => Plan::Code(code),
                        Answer::Stopped(typed) => return Err(usage(Answer::stopped(&typed))),
                    }
                } else {
                    let (plan, me) = plan(args.target.as_deref(), &config_dir)?;
                    paired_as = me;
                    plan
                };
                let identity = Identity::load_or_create(&config_dir).map_err(runtime)?;
                let headless = headless.is_some();
                let progress = Box::new(move |p: Progress| show_progress(&p, server, headless));
                (
                    Mode::Room { server, room: String::new() },
                    Keys::Agree { plan: Box::new(plan), identity, progress },
                )
            }
        }
    };
    // Reconnecting to a contact: the name we paired with, unless another is given.
    let given = given_name(sources.setting("name", args.name), &config);
    let paired_as = paired_as.map(|me| Setting { value: me, origin: Origin::Flag("name".into()) });
    let name = display_name(given.or(paired_as), None)?;
    let offline = offline_after(sources, args.offline_after, &config)?;
    let (bind, bind_named) = bind_setting(sources, args.bind, &config)?;
    let stun = stun_setting(args.stun, &config)?;
    let (data_dir, data_dir_named) =
        data_dir(sources.setting("data_dir", args.files.data_dir), &config)?;
    let options =
        ChatOptions { name, mode, keys, bind, stun, offline_after: offline, data_dir, config_dir };
    Ok((options, Named { data_dir: data_dir_named, bind: bind_named }))
}

/// `--stun`, else the config file's `stun`.
fn stun_setting(flag: Option<SocketAddr>, config: &Config) -> Result<Option<SocketAddr>, CliError> {
    match flag {
        Some(stun) => Ok(Some(stun)),
        None => config_addr(config, "stun", |f| &f.stun, args::server_addr),
    }
}

/// `--offline-after`, else the config file's, else the default; more than the keepalive.
fn offline_after(
    sources: &Sources,
    flag: Option<u64>,
    config: &Config,
) -> Result<Duration, CliError> {
    sources
        .setting("offline_after", flag)
        .or_else(|| config.get("offline-after", |f| &f.offline_after))
        .map_or(Ok(OFFLINE_AFTER), |s| {
            s.try_map(|secs| match secs > KEEPALIVE_INTERVAL.as_secs() {
                true => Ok(Duration::from_secs(secs)),
                false => Err(format!(
                    "must be more than {} seconds (the keepalive interval), got {secs}",
                    KEEPALIVE_INTERVAL.as_secs()
                )),
            })
            .map(|s| s.value)
        })
        .map_err(usage)
}

/// `--bind`, else the config file's, else any port on every interface; with what named it.
fn bind_setting(
    sources: &Sources,
    flag: Option<SocketAddr>,
    config: &Config,
) -> Result<(SocketAddr, Option<Origin>), CliError> {
    let named = sources
        .setting("bind", flag)
        .map(|s| s.origin)
        .or_else(|| config.get("bind", |f| &f.bind).map(|s| s.origin));
    let bind = match flag {
        Some(bind) => Some(bind),
        None => config_addr(config, "bind", |f| &f.bind, args::bind_addr)?,
    };
    Ok((bind.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))), named))
}

/// `--notify`, else the config file's `notify` and `notify-content`, else the bell.
fn notify(
    sources: &Sources,
    flag: Option<args::NotifyHow>,
    config: &Config,
) -> Result<Notify, CliError> {
    use args::NotifyHow;
    let how = match sources.setting("notify", flag) {
        Some(how) => how.value,
        None => match config.get("notify", |f| &f.notify) {
            Some(setting) => {
                setting
                    .try_map(|text| {
                        <NotifyHow as clap::ValueEnum>::from_str(&text, true).map_err(|_| {
                            format!(
                                "expected \"bell\", \"desktop\", \"both\" or \"off\", got \"{}\"",
                                sanitize(&text)
                            )
                        })
                    })
                    .map_err(usage)?
                    .value
            }
            None => NotifyHow::Bell,
        },
    };
    let content = config.get("notify-content", |f| &f.notify_content).is_none_or(|s| s.value);
    Ok(Notify {
        bell: matches!(how, NotifyHow::Bell | NotifyHow::Both),
        desktop: matches!(how, NotifyHow::Desktop | NotifyHow::Both),
        content,
    })
}

/// The messenger's options from `p2pchat open` (or `p2pchat` alone), the environment and
/// the config file.
fn open_options(args: OpenArgs, sources: &Sources) -> Result<(MessengerOptions, Named), CliError> {
    let config = load_config(&args.files.config, sources)?;
    let config_dir = config_dir(&args.files.config)?;
    let server = sources.setting("server", args.server).map(|s| s.value);
    let default_server = config_addr(&config, "server", |f| &f.server, args::server_addr)?;
    let given = given_name(sources.setting("name", args.name), &config);
    let name = display_name(given, None)?;
    let offline_after = offline_after(sources, args.offline_after, &config)?;
    let (bind, bind_named) = bind_setting(sources, args.bind, &config)?;
    let stun = stun_setting(args.stun, &config)?;
    let notify = notify(sources, args.notify, &config)?;
    let (data_dir, data_dir_named) =
        data_dir(sources.setting("data_dir", args.files.data_dir), &config)?;
    let options = MessengerOptions {
        name,
        server,
        default_server,
        bind,
        stun,
        offline_after,
        data_dir,
        config_dir,
        notify,
    };
    Ok((options, Named { data_dir: data_dir_named, bind: bind_named }))
}

/// What to agree keys with: a new code, the code given, or the contact named (with the name
/// we paired with them as, if known).
fn plan(target: Option<&str>, config_dir: &Path) -> Result<(Plan, Option<String>), CliError> {
    let Some(target) = target else { return Ok((Plan::NewCode, None)) };
    if target.trim().starts_with(|c: char| c.is_ascii_digit()) {
        return Code::parse(target)
            .map(|c| (Plan::Code(c), None))
            .map_err(|e| usage(e.to_string()));
    }
    let contacts = Contacts::load(config_dir).map_err(runtime)?;
    match contacts.find(target.trim()) {
        Some(contact) => {
            let key = contact.public().ok_or_else(|| {
                usage(format!(
                    "the saved key of {} is damaged: pair again with a code",
                    contact.name
                ))
            })?;
            let peer = Peer { name: contact.name.clone(), key };
            Ok((Plan::Contact(peer, contact.room.clone()), contact.me.clone()))
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
    use crate::app::texts;
    let notice = match progress {
        Progress::Asking(server, within) => texts::asking_server(*server, *within),
        Progress::Claimed(within) => texts::code_claimed(*within),
        Progress::Code(_) | Progress::Waiting(_) => String::new(),
    };
    match (progress, headless) {
        (Progress::Code(code), true) => {
            headless::emit(&serde_json::json!({"event": "code", "code": code.to_string()}));
        }
        (Progress::Waiting(peer), true) => {
            headless::emit(&serde_json::json!({"event": "waiting", "peer": peer}));
        }
        (Progress::Asking(..) | Progress::Claimed(_), true) => {
            headless::emit(&serde_json::json!({"event": "notice", "message": notice}));
        }
        (Progress::Code(code), false) => {
            println!("Your pairing code: {code}");
            println!("Read it to your friend, who runs:  p2pchat chat {code} --server {server}");
            println!("Waiting for them… (the code works once, for 10 minutes; Ctrl-C to stop)");
        }
        (Progress::Waiting(peer), false) => {
            println!("Waiting for {} to come online… (Ctrl-C to stop)", sanitize(peer));
        }
        (Progress::Asking(..) | Progress::Claimed(_), false) => println!("{notice}"),
    }
}

/// Where diagnostics go.
enum Diagnostics {
    /// Stderr (the server, `nat`, headless mode).
    Stderr,
    /// A file a day in the log directory (the full-screen interface owns the screen).
    Files(tracing_appender::rolling::RollingFileAppender),
    /// Nowhere: the default log directory could not be used (and the user was told).
    Nowhere,
}

/// Sends diagnostics where `to` says.
fn init_tracing(to: Diagnostics, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match to {
        Diagnostics::Files(file) => builder.with_ansi(false).with_writer(file).try_init(),
        Diagnostics::Nowhere => builder.with_writer(std::io::sink).try_init(),
        // Colour only for a person watching: escape codes in a redirected log are noise.
        Diagnostics::Stderr => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

/// Where a chat's diagnostics go: stderr in headless mode; else `p2pchat.DATE.log` in the log
/// directory (the flag, else the per-user state directory, XDG_STATE_HOME, else the data
/// directory), a new file each day, the last week kept. A log directory the user named that
/// cannot be used stops the chat before it starts (exit 2); the default one is said once on
/// stderr, and the chat goes on without diagnostics.
fn chat_diagnostics(
    headless: bool,
    flag: Option<Setting<PathBuf>>,
    data_dir: &Path,
) -> Result<Diagnostics, CliError> {
    if headless {
        return Ok(Diagnostics::Stderr);
    }
    let named = flag.as_ref().map(|s| s.origin.clone());
    let dir = flag
        .map(|s| s.value)
        .or_else(|| project_dirs()?.state_dir().map(Path::to_owned))
        .unwrap_or_else(|| data_dir.to_owned());
    let opened = history::create_private_dir(&dir).map_err(|e| e.to_string()).and_then(|()| {
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("p2pchat")
            .filename_suffix("log")
            .max_log_files(DIAGNOSTIC_LOG_FILES)
            .build(&dir)
            .map_err(|e| e.to_string())
    });
    match opened {
        Ok(file) => Ok(Diagnostics::Files(file)),
        Err(error) => {
            let error = unusable_dir("log directory", &dir, named.as_ref(), "--log-dir", &error);
            if named.is_some() {
                return Err(error);
            }
            eprintln!("p2pchat: {error} (this run keeps no diagnostic log)");
            Ok(Diagnostics::Nowhere)
        }
    }
}

/// The full-screen interface needs a terminal on stdin and stdout; without one, say what to
/// use instead rather than fail inside the terminal setup.
fn need_terminal() -> Result<(), CliError> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return Ok(());
    }
    Err(usage(
        "the full-screen interface needs a terminal, and stdin or stdout is not one: run it in a \
         terminal, or pass --headless for JSON lines on stdin and stdout",
    ))
}

/// Holds the data directory for this process, or says which other process has it; a
/// directory that cannot be used is named with where it came from (`named`: the flag or
/// its variable, when one gave it).
fn lock_data_dir(dir: &Path, named: Option<&Origin>) -> Result<history::DataDirLock, CliError> {
    history::DataDirLock::acquire(dir).map_err(|e| match e {
        history::LockError::Held(_) => usage(e.to_string()),
        history::LockError::Io(_) => unusable_dir("data directory", dir, named, "--data-dir", &e),
    })
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

/// Diagnostic log files kept (one a day).
const DIAGNOSTIC_LOG_FILES: usize = 7;

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
pub fn run(invocation: Invocation) -> Result<(), CliError> {
    let Invocation { cli, sources } = invocation;
    match cli.command {
        Command::Keygen => {
            println!("{}", generate_key());
            Ok(())
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "p2pchat", &mut script);
            // A reader that went away (`| head`) ends it quietly.
            let _ = std::io::stdout().write_all(&script);
            Ok(())
        }
        Command::Man { out_dir: Some(dir) } => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
            .map_err(|e| {
                runtime(format!("cannot write the manual pages to {}: {e}", dir.display()))
            }),
        Command::Help { command } => {
            let mut cli = Cli::command();
            cli.build();
            // Printed by clap, which knows when colours are wanted; a reader that went away
            // (`| head`) ends it quietly.
            let _ = match command.as_deref() {
                None => cli.print_long_help(),
                Some(name) => {
                    let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
                    let known = names.join(", ");
                    cli.find_subcommand_mut(name)
                        .ok_or_else(|| {
                            usage(format!(
                                "there is no command \"{}\" (commands: {known})",
                                sanitize(name)
                            ))
                        })?
                        .print_long_help()
                }
            };
            Ok(())
        }
        Command::Man { out_dir: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page).map_err(runtime)?;
            let _ = std::io::stdout().write_all(&page);
            Ok(())
        }
        Command::Server { listen, alt, code_ttl, turn, turn_secret_file } => {
            if let Some(alt) = alt {
                check_alt(listen, alt)?;
            }
            init_tracing(Diagnostics::Stderr, "info");
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
        Command::Nat { stun, bind, json, config } => {
            let config = load_config(&config, &sources)?;
            let stun = match stun {
                Some(stun) => stun,
                None => config_addr(&config, "stun", |f| &f.stun, args::server_addr)?
                    .or(config_addr(&config, "server", |f| &f.server, args::server_addr)?)
                    .ok_or_else(|| {
                        usage("no STUN server: pass --stun ADDR (an RFC 5780 server such as `p2pchat server --alt`)")
                    })?,
            };
            init_tracing(Diagnostics::Stderr, "warn");
            let bind = bind.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
            let report = block_on(None, async move {
                net::nat::detect(stun, bind)
                    .await
                    .context("cannot run NAT detection")
                    .map_err(CliError::Runtime)
            })?;
            print_nat(&report, json);
            if report.nat_type == NatType::Blocked {
                return Err(runtime(format!(
                    "no answer from STUN server {stun} within {} s: it is down, unreachable, or UDP is blocked",
                    NAT_TEST_TIMEOUT.as_secs_f32()
                )));
            }
            Ok(())
        }
        Command::History { conversation, grep, files } => {
            let config = load_config(&files.config, &sources)?;
            let (data_dir, _) = data_dir(sources.setting("data_dir", files.data_dir), &config)?;
            print_history(&data_dir, &conversation, grep.as_deref())
        }
        Command::Demo { name, headless, log_dir, files } => {
            let config = load_config(&files.config, &sources)?;
            let (data_dir, named) = data_dir(sources.setting("data_dir", files.data_dir), &config)?;
            let given = given_name(sources.setting("name", name), &config);
            let options = DemoOptions {
                name: display_name(given, Some(DEMO_DEFAULT_NAME))?,
                data_dir,
                config_dir: config_dir(&files.config)?,
                headless,
            };
            if !headless {
                need_terminal()?;
            }
            let _lock = lock_data_dir(&options.data_dir, named.as_ref())?;
            let log_dir = sources.setting("log_dir", log_dir);
            init_tracing(chat_diagnostics(headless, log_dir, &options.data_dir)?, "warn");
            block_on(Some(CHAT_RUNTIME_WORKERS), async move {
                demo::run(options, std::future::pending()).await.map_err(CliError::Runtime)
            })
        }
        Command::Open(args) => {
            let headless = args.headless;
            let log_dir = sources.setting("log_dir", args.log_dir.clone());
            let (options, named) = open_options(args, &sources)?;
            let _lock = prepare_chat(headless, log_dir, &options.data_dir, &named)?;
            block_on(Some(CHAT_RUNTIME_WORKERS), async move {
                let typed = headless.then(headless::Typed::from_stdin);
                let running = crate::messenger::start(options)
                    .await
                    .map_err(|e| start_failed(e, named.bind, headless))?;
                if running.messenger.conversations.is_empty() && !running.can_pair() {
                    return Err(said(usage(crate::app::texts::NOTHING_TO_OPEN), headless));
                }
                let result = match typed {
                    Some(typed) => {
                        headless::run_messenger(running, typed, std::future::pending()).await
                    }
                    None => tui::run(running, std::future::pending()).await,
                };
                result.map_err(CliError::Runtime)
            })
        }
        Command::Chat(args) => {
            let headless = args.headless;
            let log_dir = sources.setting("log_dir", args.log_dir.clone());
            let (options, named) = chat_options(args, &sources)?;
            let _lock = prepare_chat(headless, log_dir, &options.data_dir, &named)?;
            block_on(Some(CHAT_RUNTIME_WORKERS), async move {
                // Headless input is read from the start: /quit and its end count while keys
                // are agreed too.
                let mut typed = headless.then(headless::Typed::from_stdin);
                let started = match typed.as_mut() {
                    Some(typed) => headless::start(options, typed).await,
                    None => {
                        let _echo_off = tui::EchoOff::on_stdin();
                        // An ending signal (Ctrl-C) while waiting leaves like /quit, with the
                        // echo back on.
                        tokio::select! {
                            chat = chat::start(options) => chat.map(Some),
                            () = interrupted() => Ok(None),
                        }
                    }
                };
                let chat = started.map_err(|e| start_failed(e, named.bind, headless))?;
                let Some(chat) = chat else { return Ok(()) };
                let result = match typed {
                    Some(typed) => headless::run(chat, typed, std::future::pending()).await,
                    None => tui::run(chat, std::future::pending()).await,
                };
                result.map_err(CliError::Runtime)
            })
        }
    }
}

/// What a chat or the messenger does before its runtime starts: its diagnostics, a terminal
/// unless headless, and the data directory held for this process (the lock it returns).
fn prepare_chat(
    headless: bool,
    log_dir: Option<Setting<PathBuf>>,
    data_dir: &Path,
    named: &Named,
) -> Result<history::DataDirLock, CliError> {
    let diagnostics = chat_diagnostics(headless, log_dir, data_dir)?;
    if !headless {
        need_terminal()?;
    }
    let lock = lock_data_dir(data_dir, named.data_dir.as_ref())?;
    init_tracing(diagnostics, "warn");
    Ok(lock)
}

/// A chat or the messenger that could not start, as the error to exit with (said as a JSON
/// line too in headless mode): an address the user gave that cannot be bound is a usage error,
/// like `server --listen`'s.
fn start_failed(error: chat::StartError, bind: Option<Origin>, headless: bool) -> CliError {
    let error = match (error, bind) {
        (chat::StartError::Bind { addr, source }, Some(named)) => usage(format!(
            "cannot bind the chat socket to {addr}, named by {named}: {source}; choose another \
             address"
        )),
        (e, _) => CliError::Runtime(e.into()),
    };
    said(error, headless)
}

/// `error`, said as a JSON line first in headless mode (whatever reads us learns why).
fn said(error: CliError, headless: bool) -> CliError {
    if headless {
        headless::emit(&serde_json::json!({"event": "error", "message": error.to_string()}));
    }
    error
}

/// RFC 5780 discovery asks the server to answer from its other IP, its other port, or both:
/// an alternate that shares either with --listen cannot answer one of them.
fn check_alt(listen: SocketAddr, alt: SocketAddr) -> Result<(), CliError> {
    // Port 0 is any port: two of them are never the same.
    let same_port = listen.port() == alt.port() && listen.port() != 0;
    if listen.ip() == alt.ip() || same_port {
        return Err(usage(format!(
            "--alt {alt} cannot work with --listen {listen}: the alternate needs a different IP \
             and a different port (e.g. --listen 203.0.113.5:7777 --alt 203.0.113.6:7778)"
        )));
    }
    Ok(())
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

/// The log file for what the user typed: the name as given or as listed (a file's name, which
/// escapes characters such as `:`), or as a room, a contact or a direct peer (an address as
/// given to --peer, a host name too); a name that is more than one of these must say which.
fn find_conversation(dir: &Path, name: &str) -> Result<PathBuf, CliError> {
    let exact = history::conversation_path(dir, name);
    // A name as listed is a file's: what it escaped stays escaped.
    let is_stem = name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.%".contains(c));
    let listed = is_stem.then(|| dir.join("conversations").join(format!("{name}.jsonl")));
    if let Some(path) = [Some(exact), listed].into_iter().flatten().find(|p| p.exists()) {
        return Ok(path);
    }
    let mut candidates: Vec<String> =
        ["room", "contact", "peer"].iter().map(|kind| format!("{kind}-{name}")).collect();
    // An address resolves as --peer resolves it; a name without a colon is none.
    if name.contains(':')
        && let Ok(addr) = args::exact_addr(name)
    {
        candidates.push(chat::conversation_id(&Mode::Direct { peer: addr }));
    }
    candidates.dedup();
    let found: Vec<String> =
        candidates.into_iter().filter(|c| history::conversation_path(dir, c).exists()).collect();
    match found.as_slice() {
        [one] => return Ok(history::conversation_path(dir, one)),
        [] => {}
        several => {
            return Err(usage(format!(
                "\"{}\" names more than one conversation: say which ({})",
                sanitize(name),
                several.join(" or ")
            )));
        }
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
        EntryKind::Unread => return None,
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
        let lines = crate::app::texts::unreadable_lines(skipped);
        eprintln!("p2pchat: skipped {lines} in {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alternate_needs_another_ip_and_another_port() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let listen = addr("127.0.0.1:7777");
        for alt in ["127.0.0.1:7778", "127.0.0.2:7777", "127.0.0.1:7777"] {
            let error = check_alt(listen, addr(alt)).unwrap_err();
            assert_eq!(error.exit_code(), 2);
            assert!(error.to_string().contains("needs a different IP and a different port"));
        }
        assert!(check_alt(listen, addr("127.0.0.2:7778")).is_ok());
        assert!(check_alt(addr("127.0.0.1:0"), addr("127.0.0.2:0")).is_ok());
    }

    #[test]
    fn an_error_says_each_cause_once() {
        // What a chat that cannot open its log reports: each layer already quotes the next.
        let os = std::io::Error::from_raw_os_error(13);
        let log = history::HistoryError::Io { path: "/data/conversations".into(), source: os };
        let start = chat::StartError::History(log);
        let said = CliError::Runtime(start.into()).to_string();
        assert_eq!(
            said,
            "cannot open the conversation log: /data/conversations: Permission denied (os error 13) \
             (check --data-dir)"
        );
        // A cause that adds something is kept.
        let error =
            anyhow::Error::new(std::io::Error::from_raw_os_error(2)).context("cannot read x");
        assert_eq!(causes(&error), "cannot read x: No such file or directory (os error 2)");
    }
}
