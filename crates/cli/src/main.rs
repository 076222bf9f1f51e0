//! `factum`: the command-line tool of the Factum event store, on its embedded engine.
//!
//! `args` says what the command line accepts, `commands` does it, and `json` renders events.
//! This file only wires them: parse, run, and turn an error into one line and an exit code.

mod args;
mod commands;
mod json;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A usage error exits here, with clap's message and code 2.
    let cli = args::Cli::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(commands::run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("factum: {}", commands::one_line(&error));
            ExitCode::from(commands::exit_code(&error))
        }
    }
}
