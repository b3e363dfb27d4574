//! The config file with any bytes in it: read as the command line reads it. It must never
//! panic; what it refuses it refuses with a reason.

use super::scratch::Scratch;

/// One input: the file's bytes.
pub fn run(data: &[u8]) {
    let scratch = Scratch::new("config.toml");
    std::fs::write(&scratch.file, data).expect("the scratch file is written");
    if let Err(error) = p2pchat::config::load(&scratch.file, true) {
        assert!(!error.to_string().is_empty());
    }
}
