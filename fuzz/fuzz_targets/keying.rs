//! Fuzz target: see `bodies/keying.rs` (shared with the replay test in `cargo test`).
#![no_main]

#[path = "../bodies/keying.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
