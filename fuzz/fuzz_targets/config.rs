//! Fuzz target: see `bodies/config.rs` (shared with the replay test in `cargo test`).
#![no_main]

#[path = "../bodies/config.rs"]
mod body;
#[path = "../bodies/scratch.rs"]
mod scratch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
