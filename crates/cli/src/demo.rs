//! `factum demo bank`: the article's bank, runnable, on an embedded store with no service.
//!
//! The demo itself is the `factum-example-bank` crate (its steps, its figures and where each
//! piece of the article lives); this file is its command line: the arguments, the directory
//! (a fresh temporary one, removed at the end, unless `--data-dir` names one, missing or empty,
//! which is kept with the read models beside the events) and the optional JSON report.

use std::path::Path;

use clap::{Args, Subcommand};
use factum_example_bank::{BUSY_EVENTS_DEFAULT, DemoDir};

/// The arguments of `factum demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which demo.
    #[command(subcommand)]
    pub demo: Demo,
}

/// The demos.
#[derive(Debug, Subcommand)]
pub enum Demo {
    /// The article's bank, end to end: accounts and commands through the repository (one
    /// withdrawal refused for insufficient funds), the account_summary projection in SQLite
    /// and the query "balance > $1,000", the effect of snapshots on a busy account, a fraud
    /// report added later and built by replaying history, and orders whose event schema
    /// changed over time loaded through upcasters.
    ///
    /// Needs no service: the store is a fresh temporary directory, removed at the end, unless
    /// --data-dir names one (missing or empty; it is kept).
    #[command(verbatim_doc_comment)]
    Bank(BankArgs),
}

/// The arguments of `factum demo bank`.
#[derive(Debug, Args)]
pub struct BankArgs {
    /// After the text, prints the demo's figures as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,

    /// How many events the busy account's history holds (the snapshot step).
    #[arg(long, value_name = "N", default_value_t = BUSY_EVENTS_DEFAULT)]
    pub busy_events: u64,
}

/// Runs `factum demo ...`.
pub async fn run(data_dir: Option<&Path>, args: DemoArgs) -> anyhow::Result<()> {
    match args.demo {
        Demo::Bank(args) => {
            let dir = DemoDir::new(data_dir)?;
            let mut out = std::io::stdout();
            let report =
                factum_example_bank::run_embedded(dir.path(), args.busy_events, &mut out).await;
            // The temporary directory goes whatever happened; a named one stays.
            drop(dir);
            let report = report?;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            }
            Ok(())
        }
    }
}
