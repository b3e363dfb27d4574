//! Integration tests: the real `p2pchat` binary, real UDP sockets on 127.0.0.1, real processes.
//! One test binary with modules keeps builds fast. Every wait is bounded; every process and
//! temporary directory is cleaned up when its guard drops, also when a test fails.

// Test helpers fail loudly by design: a panic here is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod delivery;
mod durability;
mod flood;
mod fuzz_replay;
mod harness;
mod hostile;
mod messenger;
mod natlab;
mod pairing;
mod peers;
mod seed;
#[path = "../../benches/support/synthetic.rs"]
mod synthetic;
mod terminal;
