//! `factum bench server`: `factum serve` over gRPC beside the engine in-process (issue 5),
//! measured by `factum_bench::run_server`. Its options live here so the shared `args.rs` only
//! names the subcommand.

use std::path::Path;

use anyhow::Context;
use clap::Args;

/// The arguments of `factum bench server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Prints the result as one JSON object (the only format there is).
    #[arg(long)]
    pub json: bool,

    /// The server's store size for the read and memory figures: a bulk load over gRPC tops it
    /// up to N events.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub events: u64,

    /// The measured window of each append workload, in seconds.
    #[arg(long, value_name = "S", default_value_t = 8.0)]
    pub seconds: f64,

    /// The warm-up before each append workload, in seconds.
    #[arg(long, value_name = "S", default_value_t = 1.0, hide = true)]
    pub warmup_seconds: f64,

    /// The length of the fsync probe, in seconds.
    #[arg(long, value_name = "S", default_value_t = 3.0, hide = true)]
    pub fsync_probe_seconds: f64,

    /// Clients (connections) of the gRPC batch-100 workload.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub batch_clients: usize,

    /// Prints no progress on standard error.
    #[arg(long, hide = true)]
    pub quiet: bool,
}

/// Runs the server bench in `data_dir` (a temporary directory if `None`) and prints its JSON.
/// The server is this executable, run as `factum serve`.
pub async fn run(data_dir: Option<&Path>, args: ServerArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the factum executable")?;
    let mut config = factum_bench::ServerBenchConfig::new(exe);
    config.events = args.events;
    config.data_dir = data_dir.map(Path::to_path_buf);
    config.seconds = args.seconds;
    config.warmup_seconds = args.warmup_seconds;
    config.fsync_probe_seconds = args.fsync_probe_seconds;
    config.batch_clients = args.batch_clients;
    config.progress = !args.quiet;
    let result = factum_bench::run_server(config).await?;
    crate::commands::print_line(&result.to_string())
}
