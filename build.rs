//! Puts the git commit into `--version` ("0.1.0 (1a2b3c4)"); outside a git checkout, or
//! without git, the version is the package's alone.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let version = match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=P2PCHAT_VERSION={version}");
    // A new commit or another branch changes the version: watch HEAD and what it points to.
    // Only files that exist: Cargo reruns a build script that names a missing file every time
    // (and rebuilds the crate after it).
    let mut watched = Vec::new();
    for path in ["HEAD", "packed-refs"] {
        watched.extend(git(&["rev-parse", "--git-path", path]));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    for file in watched.iter().filter(|file| std::path::Path::new(file).exists()) {
        println!("cargo:rerun-if-changed={file}");
    }
}
