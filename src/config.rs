//! The optional `config.toml`: defaults for flags (name, server, room, bind, data dir,
//! offline-after, STUN server). Flags override it. A malformed file is an error that names the
//! file and line; a missing one is no error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Defaults read from the config file; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// Display name.
    pub name: Option<String>,
    /// Rendezvous server address.
    pub server: Option<SocketAddr>,
    /// Room to join on the server.
    pub room: Option<String>,
    /// Local address to bind the chat socket to.
    pub bind: Option<SocketAddr>,
    /// Where conversation logs live.
    pub data_dir: Option<PathBuf>,
    /// Seconds of silence before a peer is shown offline.
    pub offline_after: Option<u64>,
    /// STUN server for learning our public endpoint.
    pub stun: Option<SocketAddr>,
}

/// The config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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

/// Loads the config file at `path`; a missing file gives the defaults.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(source) => {
            return Err(ConfigError::Read { path: path.to_owned(), source });
        }
    };
    parse(&text).map_err(|(line, message)| ConfigError::Parse {
        path: path.to_owned(),
        line,
        message,
    })
}

/// Parses config text; on error, the 1-based line and a one-line message.
fn parse(text: &str) -> Result<FileConfig, (usize, String)> {
    toml::from_str(text).map_err(|e| {
        let line =
            e.span().map_or(1, |span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        (line, e.message().trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_fields() {
        let c = parse(
            "name = \"alice\"\nserver = \"127.0.0.1:7777\"\nroom = \"r\"\nbind = \"0.0.0.0:5000\"\n\
             data-dir = \"/tmp/x\"\noffline-after = 30\nstun = \"127.0.0.1:3478\"\n",
        )
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("alice"));
        assert_eq!(c.offline_after, Some(30));
        assert_eq!(c.data_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn errors_name_the_line() {
        let (line, message) = parse("name = \"a\"\n\nserver = \"not an address\"\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(message.contains("address"), "{message}");
        let (line, _) = parse("name = \"a\"\ncolour = \"blue\"\n").unwrap_err();
        assert_eq!(line, 2);
        let (line, _) = parse("name = \n").unwrap_err();
        assert_eq!(line, 1);
    }

    #[test]
    fn missing_file_is_defaults_and_bad_file_names_itself() {
        assert_eq!(load(Path::new("/nonexistent/p2pchat.toml")).unwrap(), FileConfig::default());
        let path = std::env::temp_dir().join(format!("p2pchat-config-{}.toml", std::process::id()));
        std::fs::write(&path, "offline-after = \"soon\"\n").unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("line 1"),
            "{message}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
