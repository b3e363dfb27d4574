//! Replays what the fuzz targets (`fuzz/`) were fed: the committed seed corpus
//! (`fuzz/seeds/TARGET/`), inputs that once failed (`fuzz/regressions/TARGET/`) and, where a
//! local `cargo fuzz` run left any, its crash files (`fuzz/artifacts/TARGET/`). Each target's
//! body is the same file the fuzzer runs; every input must run without a panic.

use std::path::Path;

#[path = "../../fuzz/bodies/config.rs"]
mod config;
#[path = "../../fuzz/bodies/history.rs"]
mod history;
#[path = "../../fuzz/bodies/keying.rs"]
mod keying;
#[path = "../../fuzz/bodies/reliable.rs"]
mod reliable;
#[path = "../../fuzz/bodies/server_requests.rs"]
mod server_requests;
#[path = "../../fuzz/bodies/session_datagrams.rs"]
mod session_datagrams;
#[path = "../../fuzz/bodies/stun.rs"]
mod stun;
#[path = "../../fuzz/bodies/turn_client.rs"]
mod turn_client;
#[path = "../../fuzz/bodies/update_render.rs"]
mod update_render;
#[path = "../../fuzz/bodies/wire.rs"]
mod wire;

/// Runs every input of `target`; the seed corpus must not be empty.
fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seeds = 0;
    for kind in ["seeds", "regressions", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
            seeds += usize::from(kind == "seeds");
        }
    }
    assert!(seeds > 0, "no seed corpus in fuzz/seeds/{target}");
}

#[test]
fn config_inputs() {
    replay("config", config::run);
}

#[test]
fn history_inputs() {
    replay("history", history::run);
}

#[test]
fn keying_inputs() {
    replay("keying", keying::run);
}

#[test]
fn reliable_inputs() {
    replay("reliable", reliable::run);
}

#[test]
fn server_requests_inputs() {
    replay("server_requests", server_requests::run);
}

#[test]
fn session_datagrams_inputs() {
    replay("session_datagrams", session_datagrams::run);
}

#[test]
fn stun_inputs() {
    replay("stun", stun::run);
}

#[test]
fn turn_client_inputs() {
    replay("turn_client", turn_client::run);
}

#[test]
fn update_render_inputs() {
    replay("update_render", update_render::run);
}

#[test]
fn wire_inputs() {
    replay("wire", wire::run);
}
