//! History and screen benchmarks over generated logs of 10k, 100k and 1M messages: opening a
//! conversation to its first screen (time, and peak RSS in a fresh process beside a process
//! that opens an empty log), searching 1M messages, drawing a frame at 80×24 and 200×50, and
//! one held-down PgUp step (with the page loads it triggers) deep in a 1M-message log.
//! The logs are generated under cargo's target tmp dir on first use (see `support/synthetic`).

// A benchmark that cannot set up fails loudly: there is nothing to measure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/synthetic.rs"]
mod synthetic;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Local;
use criterion::{BenchmarkId, Criterion};
use p2pchat::app::keymap::Action;
use p2pchat::app::model::{Me, Public};
use p2pchat::app::{Effect, Message, Model, update};
use p2pchat::chat::{answer_load, open_conversation};
use p2pchat::history::{self, conversation_path};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const CONVERSATION: &str = "room-bench";
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const CHILD_ENV: &str = "P2PCHAT_BENCH_OPEN";

fn data_dir(messages: usize) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("history-{messages}"))
}

/// The data dir of a log of `messages` messages, generated if it is not there yet.
fn prepared(messages: usize) -> PathBuf {
    let dir = data_dir(messages);
    let path = conversation_path(&dir, CONVERSATION);
    if !path.exists() {
        let started = Instant::now();
        let bytes = synthetic::write_log(&path, messages).expect("write the log");
        println!(
            "generated {messages} messages: {:.1} MB in {:.1} s",
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }
    dir
}

fn me() -> Me {
    let local = "127.0.0.1:4000".parse().unwrap();
    Me { name: "ann".into(), local, public: Public::NotAsked, nat: None, server: None }
}

/// What the app does when a conversation opens, up to its first frame.
fn open_and_draw(dir: &Path, size: (u16, u16)) -> Model {
    let opened = open_conversation(dir, CONVERSATION, me(), "room bench".into(), Local::now())
        .expect("open");
    let mut model = opened.model;
    update(&mut model, Message::Resize(size.0, size.1));
    draw(&model);
    model
}

fn draw(model: &Model) {
    let mut terminal = Terminal::new(TestBackend::new(model.size.0, model.size.1)).unwrap();
    terminal.draw(|f| p2pchat::ui::render(model, f)).unwrap();
}

/// One message through `update`, with page loads done as the chat does them.
fn apply(model: &mut Model, path: &Path, message: Message) {
    let mut pending = vec![message];
    while let Some(message) = pending.pop() {
        for effect in update(model, message) {
            if let Effect::Load(load) = effect {
                pending.push(answer_load(path, load));
            }
        }
    }
}

/// In a fresh process: open the log in `dir`, draw the first frame, print the time it took
/// and the process's peak RSS.
fn child(dir: &str) {
    let started = Instant::now();
    let model = open_and_draw(Path::new(dir), (80, 24));
    let elapsed = started.elapsed();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    let kib: u64 = peak.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    println!("{} {} {}", elapsed.as_micros(), kib, model.entries.len());
}

/// Time to first screen and peak RSS of a fresh process opening the log in `dir`.
fn measure_in_child(dir: &Path) -> (Duration, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, dir)
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<u64> =
        text.split_whitespace().take(2).map(|f| f.parse().expect("child output")).collect();
    (Duration::from_micros(fields[0]), fields[1])
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return child(&dir);
    }
    let dirs: Vec<(usize, PathBuf)> = SIZES.iter().map(|&n| (n, prepared(n))).collect();
    let mut c = Criterion::default().configure_from_args();

    let mut group = c.benchmark_group("open_to_first_screen");
    for (n, dir) in &dirs {
        group.bench_with_input(BenchmarkId::from_parameter(n), dir, |b, dir| {
            b.iter(|| open_and_draw(dir, (80, 24)))
        });
    }
    group.finish();

    let (largest, big) = dirs.last().unwrap();
    let path = conversation_path(big, CONVERSATION);
    let mut group = c.benchmark_group("search");
    group.sample_size(10);
    group.bench_function(format!("{largest}_messages"), |b| {
        b.iter(|| {
            let found = history::search(&path, synthetic::NEEDLE).unwrap();
            assert_eq!(found.offsets.len(), 1);
        })
    });
    // A needle outside ASCII: the prefilter may skip only lines that cannot match.
    group.bench_function(format!("{largest}_messages_non_ascii"), |b| {
        b.iter(|| {
            let found = history::search(&path, "ZEBRA-STRİPED").unwrap();
            assert_eq!(found.offsets.len(), 0);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("frame");
    for size in [(80u16, 24u16), (200, 50)] {
        let model = open_and_draw(big, size);
        let name = format!("{}x{}_{largest}_messages", size.0, size.1);
        let mut terminal = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| terminal.draw(|f| p2pchat::ui::render(&model, f)).unwrap().area)
        });
    }
    group.finish();

    // A keystroke with 64 KiB in the input box (typing must stay instant, ≤ 16 ms a key): one
    // character typed and deleted again, and the frame drawn after each.
    let mut group = c.benchmark_group("keystroke");
    let mut model = open_and_draw(big, (80, 24));
    let unit = "p2p 世界 👋🏽 text ";
    let text = unit.repeat(64 * 1024 / unit.len());
    for c in text.chars() {
        update(&mut model, Message::Key(Action::Insert(c)));
    }
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    group.bench_function("64KiB_input_80x24", |b| {
        b.iter(|| {
            update(&mut model, Message::Key(Action::Insert('x')));
            terminal.draw(|f| p2pchat::ui::render(&model, f)).unwrap();
            update(&mut model, Message::Key(Action::Backspace));
            terminal.draw(|f| p2pchat::ui::render(&model, f)).unwrap().area
        })
    });
    group.finish();

    let mut group = c.benchmark_group("page_up");
    let mut model = open_and_draw(big, (200, 50));
    group.bench_function(format!("200x50_{largest}_messages"), |b| {
        b.iter(|| {
            apply(&mut model, &path, Message::Key(Action::PageUp));
            if model.paging.older.is_none()
                && model.scroll == p2pchat::ui::history::max_scroll(&model)
            {
                apply(&mut model, &path, Message::Key(Action::Bottom));
            }
            draw(&model);
        })
    });
    group.finish();
    c.final_summary();

    println!("time to first screen and peak RSS, each in a fresh process (80×24):");
    let empty = std::env::temp_dir().join(format!("p2pchat-bench-empty-{}", std::process::id()));
    let (time, rss) = measure_in_child(&empty);
    println!(
        "  {:>9} messages: {:>7.2} ms  {:>6.1} MB",
        0,
        time.as_secs_f64() * 1e3,
        rss as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&empty);
    for (n, dir) in &dirs {
        let (time, rss) = measure_in_child(dir);
        println!(
            "  {n:>9} messages: {:>7.2} ms  {:>6.1} MB",
            time.as_secs_f64() * 1e3,
            rss as f64 / 1024.0
        );
    }
    search_beside_ripgrep(big, *largest);
}

/// Runs of each whole process in `search_beside_ripgrep`; the median is reported.
const SEARCH_RUNS: usize = 11;

/// Wall time of `command`, run to its end, `SEARCH_RUNS` times: the median.
fn median_run(mut command: Command) -> Duration {
    let mut times: Vec<Duration> = (0..SEARCH_RUNS)
        .map(|_| {
            let started = Instant::now();
            let out = command.output().expect("run the search");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            started.elapsed()
        })
        .collect();
    times.sort();
    times[SEARCH_RUNS / 2]
}

/// The search as people run it — `p2pchat history --grep` in a fresh process, the release
/// binary — beside ripgrep counting the same needle, ignoring case, in the same file (skipped
/// where `rg` is not installed; `.ci/run` installs it).
fn search_beside_ripgrep(dir: &Path, messages: usize) {
    let path = conversation_path(dir, CONVERSATION);
    if Command::new("rg").arg("--version").output().is_err() {
        println!("search beside ripgrep: skipped, rg is not installed (apt-get install ripgrep)");
        return;
    }
    let mut ours = Command::new(env!("CARGO_BIN_EXE_p2pchat"));
    ours.args(["history", "bench", "--grep", synthetic::NEEDLE, "--data-dir"])
        .arg(dir)
        .env("P2PCHAT_CONFIG", "/dev/null");
    let mut rg = Command::new("rg");
    rg.args(["-i", "-c", synthetic::NEEDLE]).arg(&path);
    let mut rg_no_mmap = Command::new("rg");
    rg_no_mmap.args(["--no-mmap", "-i", "-c", synthetic::NEEDLE]).arg(&path);
    let (ours, rg, rg_no_mmap) = (median_run(ours), median_run(rg), median_run(rg_no_mmap));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("search of {messages} messages, whole processes, median of {SEARCH_RUNS}:");
    println!("  p2pchat history --grep: {:>7.1} ms", ms(ours));
    println!("  rg -i -c:               {:>7.1} ms  (ratio {:.2})", ms(rg), ms(ours) / ms(rg));
    println!(
        "  rg --no-mmap -i -c:     {:>7.1} ms  (ratio {:.2})",
        ms(rg_no_mmap),
        ms(ours) / ms(rg_no_mmap)
    );
}
