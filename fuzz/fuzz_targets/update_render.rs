//! Fuzz target: see `bodies/update_render.rs` (shared with the replay test in `cargo test`).
#![no_main]

#[path = "../bodies/update_render.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
