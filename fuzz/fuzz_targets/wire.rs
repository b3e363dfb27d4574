//! Fuzz target: see `bodies/wire.rs` (shared with the replay test in `cargo test`).
#![no_main]

#[path = "../bodies/wire.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
