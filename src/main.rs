//! The `p2pchat` binary: parse the command line, run it, map the outcome to an exit code.
//! Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use p2pchat::cli::{self, Cli};

fn main() -> ExitCode {
    match cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("p2pchat: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
