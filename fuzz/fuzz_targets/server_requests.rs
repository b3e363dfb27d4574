//! Fuzz target: see `bodies/server_requests.rs` (shared with the replay test in `cargo test`).
#![no_main]

#[path = "../bodies/server_requests.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
