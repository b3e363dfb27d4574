//! The optional `config.toml`: defaults for the flags of the commands that read it (name,
//! server, room, bind, data dir, offline-after, STUN server), and where every setting came
//! from, so that an error names what to fix: the flag, the environment variable, or the file
//! and line. Values are given as on the command line (a host name, an address without the
//! port) and checked by the same code; flags and environment variables override the file.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Defaults read from the config file; every field is optional, each with where it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// Display name.
    pub name: Option<Spanned<String>>,
    /// Rendezvous server address, as `--server` takes it.
    pub server: Option<Spanned<String>>,
    /// Room to join on the server.
    pub room: Option<Spanned<String>>,
    /// Local address to bind the chat socket to, as `--bind` takes it.
    pub bind: Option<Spanned<String>>,
    /// Where conversation logs live.
    pub data_dir: Option<Spanned<PathBuf>>,
    /// Seconds of silence before a peer is shown offline.
    pub offline_after: Option<Spanned<u64>>,
    /// STUN server for learning our public endpoint, as `--stun` takes it.
    pub stun: Option<Spanned<String>>,
    /// The messenger: how a message elsewhere asks for attention ("bell", "desktop", "both",
    /// "off"), as `--notify` takes it.
    pub notify: Option<Spanned<String>>,
    /// The messenger: show a message's text in desktop notifications (false: only who wrote).
    pub notify_content: Option<Spanned<bool>>,
}

/// The config file as read: its settings and where it is, to name it in errors.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file (`None`: there is no per-user config directory).
    pub path: Option<PathBuf>,
    /// Its settings (all absent when the file is).
    pub file: FileConfig,
    text: String,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (its long name, without dashes).
    Flag(String),
    /// An environment variable.
    Env(String),
    /// The config file: its path, the 1-based line and the key.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// The key.
        key: &'static str,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(long) => write!(f, "--{long}"),
            Self::Env(var) => write!(f, "{var} (an environment variable)"),
            Self::File { path, line, key } => {
                write!(f, "{key} in config file {}, line {line}", path.display())
            }
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Its origin, for errors.
    pub origin: Origin,
}

impl<T> Setting<T> {
    /// The same origin with another value (a parsed or checked one).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Setting<U> {
        Setting { value: f(self.value), origin: self.origin }
    }

    /// The same origin with the result of a check that may fail with a sentence, which then
    /// names the origin: "--server: …", "P2PCHAT_SERVER (an environment variable): …",
    /// "server in config file F, line N: …".
    pub fn try_map<U>(self, f: impl FnOnce(T) -> Result<U, String>) -> Result<Setting<U>, String> {
        match f(self.value) {
            Ok(value) => Ok(Setting { value, origin: self.origin }),
            Err(problem) => Err(format!("{}: {problem}", self.origin)),
        }
    }

    /// True when the user typed it on this command line (not inherited from the environment
    /// or the config file).
    pub fn typed(&self) -> bool {
        matches!(self.origin, Origin::Flag(_))
    }
}

impl Config {
    /// The setting `key` of the file, with its line.
    pub fn get<T: Clone>(
        &self,
        key: &'static str,
        field: impl FnOnce(&FileConfig) -> &Option<Spanned<T>>,
    ) -> Option<Setting<T>> {
        let spanned = field(&self.file).as_ref()?;
        let path = self.path.clone().unwrap_or_default();
        let line = line_of(&self.text, spanned.span());
        Some(Setting { value: spanned.get_ref().clone(), origin: Origin::File { path, line, key } })
    }
}

fn line_of(text: &str, span: Range<usize>) -> usize {
    text.get(..span.start).unwrap_or(text).matches('\n').count() + 1
}

/// The config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named with --config or P2PCHAT_CONFIG is not there.
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    /// It exists but could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// It is not valid TOML for p2pchat.
    #[error("config file {path}, line {line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Loads the config file at `path`. A missing file gives the defaults when it is the default
/// place (`required` false) and an error when the user named it.
pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Config { path: Some(path.to_owned()), ..Config::default() });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::Missing(path.to_owned()));
        }
        Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
    };
    let file = parse(&text).map_err(|(line, message)| ConfigError::Parse {
        path: path.to_owned(),
        line,
        message,
    })?;
    Ok(Config { path: Some(path.to_owned()), file, text })
}

/// Parses config text; on error, the 1-based line and a one-line message.
fn parse(text: &str) -> Result<FileConfig, (usize, String)> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_of(text, span));
        (line, e.message().trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let file = parse(text).unwrap();
        Config { path: Some(PathBuf::from("/etc/c.toml")), file, text: text.to_owned() }
    }

    #[test]
    fn reads_all_fields_as_the_command_line_gives_them() {
        let c = parse(
            "name = \"alice\"\nserver = \"chat.example.org\"\nroom = \"r\"\nbind = \"0.0.0.0:5000\"\n\
             data-dir = \"/tmp/x\"\noffline-after = 30\nstun = \"127.0.0.1:3478\"\n",
        )
        .unwrap();
        assert_eq!(c.name.unwrap().into_inner(), "alice");
        assert_eq!(c.server.unwrap().into_inner(), "chat.example.org");
        assert_eq!(c.offline_after.unwrap().into_inner(), 30);
        assert_eq!(c.data_dir.unwrap().into_inner(), PathBuf::from("/tmp/x"));
    }

    #[test]
    fn every_setting_knows_its_line_and_a_failed_check_names_it() {
        let c = config("name = \"a\"\n\n  server = \"nowhere\"\noffline-after = 3\n");
        let server = c.get("server", |f| &f.server).unwrap();
        assert_eq!(
            server.origin,
            Origin::File { path: PathBuf::from("/etc/c.toml"), line: 3, key: "server" }
        );
        let offline = c.get("offline-after", |f| &f.offline_after).unwrap();
        let error = offline.try_map(|s| if s > 5 { Ok(s) } else { Err("too short".into()) });
        assert_eq!(
            error.unwrap_err(),
            "offline-after in config file /etc/c.toml, line 4: too short"
        );
        assert!(c.get("room", |f| &f.room).is_none());
        let flag = Setting { value: 1, origin: Origin::Flag("offline-after".into()) };
        assert!(flag.typed());
        let env = Setting { value: 1, origin: Origin::Env("P2PCHAT_OFFLINE_AFTER".into()) };
        assert!(!env.typed());
        assert_eq!(
            env.try_map(|_| Err::<u8, _>("no".into())).unwrap_err(),
            "P2PCHAT_OFFLINE_AFTER (an environment variable): no"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let (line, message) = parse("name = \"a\"\n\nserver = 7777\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(message.contains("string"), "{message}");
        let (line, _) = parse("name = \"a\"\ncolour = \"blue\"\n").unwrap_err();
        assert_eq!(line, 2);
        let (line, _) = parse("name = \n").unwrap_err();
        assert_eq!(line, 1);
    }

    #[test]
    fn a_missing_file_is_defaults_unless_named_and_a_bad_file_names_itself() {
        let nowhere = Path::new("/nonexistent/p2pchat.toml");
        assert_eq!(load(nowhere, false).unwrap().file, FileConfig::default());
        let message = load(nowhere, true).unwrap_err().to_string();
        assert!(message.contains("/nonexistent/p2pchat.toml does not exist"), "{message}");
        let path = std::env::temp_dir().join(format!("p2pchat-config-{}.toml", std::process::id()));
        std::fs::write(&path, "offline-after = \"soon\"\n").unwrap();
        let message = load(&path, true).unwrap_err().to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("line 1"),
            "{message}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
