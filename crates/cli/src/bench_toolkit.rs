//! `factum bench toolkit`: the figures of the aggregate, projection and codec toolkit (issue 4),
//! measured by `factum_bench::run_toolkit`. Its options live here so the shared `args.rs` only
//! names the subcommand.

use std::path::Path;

use clap::{Args, Subcommand};

/// What `factum bench` measures instead of the engine alone.
#[derive(Debug, Subcommand)]
pub enum BenchMode {
    /// Measures the toolkit beside the engine: commands through the repository (1 and 64
    /// writers) against plain appends, loading a 10,000-event aggregate with and without a
    /// snapshot, rebuilding the account_summary projection into SQLite, and the cost of
    /// upcasting v1 events. Prints one JSON object. A default run takes a few minutes.
    Toolkit(ToolkitArgs),
    /// Measures `factum serve`: servers in child processes on temporary stores, loaded over
    /// gRPC by concurrent client connections (Append one event at a time from 1 and 64
    /// clients, BatchAppend 100 at a time from 1 and --batch-clients clients, a read of $all
    /// over --events events), beside the engine in-process, with the server's memory. Prints
    /// one JSON object with the targets. A default run takes a little over a minute.
    Server(crate::bench_server::ServerArgs),
}

/// The arguments of `factum bench toolkit`.
#[derive(Debug, Args)]
pub struct ToolkitArgs {
    /// Prints the result as one JSON object (the only format there is).
    #[arg(long)]
    pub json: bool,

    /// The size of the rebuild, and of each of the two upcast stores.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, hide = true)]
    pub events: u64,

    /// The measured window of each append and command workload, in seconds (tests shorten it).
    #[arg(long, value_name = "S", default_value_t = 10.0, hide = true)]
    pub seconds: f64,

    /// The warm-up before each workload, in seconds.
    #[arg(long, value_name = "S", default_value_t = 1.0, hide = true)]
    pub warmup_seconds: f64,

    /// How many loads of the 10,000-event aggregate are timed each way (the median counts).
    #[arg(long, value_name = "N", default_value_t = 21, hide = true)]
    pub load_repeats: usize,

    /// Prints no progress on standard error.
    #[arg(long, hide = true)]
    pub quiet: bool,
}

/// Runs the toolkit bench in `data_dir` (a temporary directory if `None`) and prints its JSON.
pub async fn run(data_dir: Option<&Path>, args: ToolkitArgs) -> anyhow::Result<()> {
    let config = factum_bench::ToolkitConfig {
        events: args.events,
        data_dir: data_dir.map(Path::to_path_buf),
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        load_repeats: args.load_repeats,
        progress: !args.quiet,
    };
    let result = factum_bench::run_toolkit(config).await?;
    crate::commands::print_line(&result.to_string())
}
