//! The config file with any bytes in it: read as the command line reads it. It must never
//! panic; what it refuses it refuses with a reason.

use std::path::PathBuf;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("p2pchat-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir.join("config.toml")
}

/// One input: the file's bytes.
pub fn run(data: &[u8]) {
    let path = scratch();
    std::fs::write(&path, data).expect("the scratch file is written");
    if let Err(error) = p2pchat::config::load(&path, true) {
        assert!(!error.to_string().is_empty());
    }
}
