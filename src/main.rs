//! The `p2pchat` binary: parse the command line, run it, map the outcome to an exit code.
//! Everything else lives in the library.

use std::process::ExitCode;

use p2pchat::cli::{self, Invocation};

fn main() -> ExitCode {
    match Invocation::from_env().and_then(cli::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("p2pchat: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
