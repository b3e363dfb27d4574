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
#[path = "../../fuzz/bodies/scratch.rs"]
mod scratch;
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
fn replay(target: &str, run: Body) {
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

/// A target's body: one input.
type Body = fn(&[u8]);

/// Every target, by the name its directories use.
const TARGETS: [(&str, Body); 10] = [
    ("config", config::run),
    ("history", history::run),
    ("keying", keying::run),
    ("reliable", reliable::run),
    ("server_requests", server_requests::run),
    ("session_datagrams", session_datagrams::run),
    ("stun", stun::run),
    ("turn_client", turn_client::run),
    ("update_render", update_render::run),
    ("wire", wire::run),
];

#[test]
fn every_fuzz_target_runs_its_seeds_and_past_failures_without_a_panic() {
    let listed = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets"))
        .unwrap()
        .count();
    assert_eq!(listed, TARGETS.len(), "a fuzz target is missing from the replay");
    for (target, run) in TARGETS {
        replay(target, run);
    }
}
