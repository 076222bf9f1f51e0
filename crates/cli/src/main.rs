//! `factum`: the command-line tool of the Factum event store, on its embedded engine.
//!
//! `args` says what the command line accepts, `commands` does it, and `json` renders events.
//! This file only wires them: parse, run, and turn an error into one line and an exit code.

mod args;
mod bench_server;
mod bench_toolkit;
mod commands;
mod demo;
mod dev_cert;
mod json;
mod migrate;
mod projections;
mod serve;
mod status;
mod user;

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // A usage error exits here, with clap's message and code 2.
    let matches = args::Cli::command().get_matches();
    let mut cli = args::Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    // `--data-dir` is global: given after the command, clap may record it on either level.
    let given = |matches: &clap::ArgMatches| {
        matches.value_source("data_dir") == Some(ValueSource::CommandLine)
    };
    cli.data_dir_given = given(&matches) || matches.subcommand().is_some_and(|(_, sub)| given(sub));
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
