//! Fuzz target: see `bodies/turn_client.rs` (shared with the replay test in `cargo test`).
#![no_main]

#[path = "../bodies/turn_client.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
