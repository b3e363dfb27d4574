//! Fuzz target: see `bodies/session_datagrams.rs` (shared with the replay test in `cargo test`).
#![no_main]

#[path = "../bodies/session_datagrams.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
