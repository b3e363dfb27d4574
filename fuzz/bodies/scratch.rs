//! A scratch file for one fuzz input, in a directory of this process's own (libFuzzer runs
//! inputs one at a time), removed again when the input is done, so neither the fuzzer nor the
//! replay test leaves directories behind. Declared beside the bodies that use it (they name it
//! `super::scratch`).

use std::path::PathBuf;

pub struct Scratch {
    dir: PathBuf,
    /// The file to write the input to.
    pub file: PathBuf,
}

impl Scratch {
    /// A fresh directory for `name`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("p2pchat-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Self { file: dir.join(name), dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
