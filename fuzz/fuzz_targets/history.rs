//! Fuzz target: see `bodies/history.rs` (shared with the replay test in `cargo test`).
#![no_main]

#[path = "../bodies/history.rs"]
mod body;
#[path = "../bodies/scratch.rs"]
mod scratch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
