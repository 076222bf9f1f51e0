//! `factum projections ...`: the built-in projections (`account_summary` and `fraud_report`, the
//! article's bank projections from `factum_projection`) over the data directory's store.
//!
//! Their read models live in one SQLite database next to the store's files,
//! `<data-dir>/projections.sqlite` (with its `-wal` and `-shm` companions), each projection's
//! tables and checkpoint side by side: the file can be queried with any SQLite client.
//!
//! The embedded store belongs to one process at a time, so every command that moves a
//! projection (`run`, `rebuild`, `reset`) or measures its lag (`status`) opens the store itself,
//! and is refused while another `factum` holds it. Holding the store also keeps two runners off
//! one read model. `query` reads only the SQLite file, so it works while `run --follow` runs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use factum_core::{EventStore, Position};
use factum_projection::{
    AccountSummary, FraudReport, Projection, ProjectionRunner, ProjectionStatus, RunState,
    SqliteReadModel,
};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::commands;

/// The read models' database, inside the data directory.
pub const READ_MODEL_FILE: &str = "projections.sqlite";

/// The fraud report flags accounts with more than this many withdrawals...
const FRAUD_MAX_WITHDRAWALS: u32 = 3;
/// ...within this window.
const FRAUD_WINDOW: Duration = Duration::from_secs(3600);

/// How often progress is written when standard error is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often the progress bar is redrawn on a terminal.
const BAR_REDRAW_EVERY: Duration = Duration::from_millis(100);
/// The progress bar's width, in characters.
const BAR_WIDTH: usize = 30;

/// The arguments of `factum projections`.
#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ProjectionsCommand,
}

/// The subcommands of `factum projections`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Lists the built-in projections, one JSON object a line.
    List,

    /// Prints each projection's status and lag: name, state (new, behind, caught_up),
    /// checkpoint position, head, events behind and seconds behind.
    Status(SelectArgs),

    /// Clears a projection's read model and checkpoint, replays all history into it with a
    /// progress bar on standard error, then prints its status.
    Rebuild(RebuildArgs),

    /// Clears a projection's read model and checkpoint (nothing is replayed), then prints its
    /// status.
    Reset(SelectArgs),

    /// Catches a projection up from its checkpoint and exits (with --follow, keeps applying new
    /// events until Ctrl-C or SIGTERM), then prints its status.
    Run(RunArgs),

    /// Prints a read model's rows as JSON lines: `account_summary` (optionally only accounts
    /// with more than --min-balance-cents) or `fraud_report` (the flagged accounts).
    Query(QueryArgs),
}

/// Which projection a command applies to.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// The projection (every one if absent).
    #[arg(value_enum)]
    pub name: Option<ProjectionName>,

    /// Prints aligned text instead of JSON lines.
    #[arg(long)]
    pub human: bool,
}

/// The arguments of `projections rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Which projections.
    #[command(flatten)]
    pub select: SelectArgs,

    /// Writes no progress on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// The arguments of `projections run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which projections.
    #[command(flatten)]
    pub select: SelectArgs,

    /// Keeps running after catching up, applying new events until Ctrl-C or SIGTERM (one
    /// projection at a time). It holds the store meanwhile, so new events come only from a
    /// process that shares it.
    #[arg(long, requires = "name")]
    pub follow: bool,

    /// Writes no progress on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// The arguments of `projections query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The read model to query.
    #[arg(value_enum)]
    pub name: ProjectionName,

    /// `account_summary` only: keeps accounts whose balance is above N cents (the article's
    /// "balance > $1000" is 100000).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub min_balance_cents: Option<i64>,
}

/// The built-in projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProjectionName {
    /// Owner and balance per account.
    #[value(name = "account_summary")]
    AccountSummary,
    /// Accounts with more than 3 withdrawals within an hour.
    #[value(name = "fraud_report")]
    FraudReport,
}

impl ProjectionName {
    const ALL: [ProjectionName; 2] = [ProjectionName::AccountSummary, ProjectionName::FraudReport];

    fn as_str(self) -> &'static str {
        match self {
            ProjectionName::AccountSummary => "account_summary",
            ProjectionName::FraudReport => "fraud_report",
        }
    }

    fn describe(self) -> Value {
        match self {
            ProjectionName::AccountSummary => json!({
                "name": self.as_str(),
                "streams": "account-*",
                "tables": ["account_summary"],
                "description": "owner and balance (cents) per account",
            }),
            ProjectionName::FraudReport => json!({
                "name": self.as_str(),
                "streams": "account-*",
                "tables": ["fraud_report", "fraud_recent_withdrawals"],
                "description": format!(
                    "accounts with more than {FRAUD_MAX_WITHDRAWALS} withdrawals within {} s",
                    FRAUD_WINDOW.as_secs()
                ),
            }),
        }
    }

    /// The chosen projection, or all of them.
    fn selected(name: Option<ProjectionName>) -> Vec<ProjectionName> {
        name.map_or_else(|| ProjectionName::ALL.to_vec(), |name| vec![name])
    }
}

/// What to do with one projection's runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Status,
    Reset,
    Rebuild { progress: bool },
    Run { progress: bool, follow: bool },
}

/// Runs `factum projections ...`.
pub async fn run(dir: &Path, args: ProjectionsArgs) -> anyhow::Result<()> {
    match args.command {
        ProjectionsCommand::List => {
            let lines: Vec<String> = ProjectionName::ALL
                .iter()
                .map(|name| name.describe().to_string())
                .collect();
            commands::print_line(&lines.join("\n"))
        }
        ProjectionsCommand::Status(select) => drive_all(dir, &select, Action::Status).await,
        ProjectionsCommand::Reset(select) => drive_all(dir, &select, Action::Reset).await,
        ProjectionsCommand::Rebuild(args) => {
            let action = Action::Rebuild {
                progress: !args.quiet,
            };
            drive_all(dir, &args.select, action).await
        }
        ProjectionsCommand::Run(args) => {
            let action = Action::Run {
                progress: !args.quiet,
                follow: args.follow,
            };
            drive_all(dir, &args.select, action).await
        }
        ProjectionsCommand::Query(args) => query(dir, &args),
    }
}

/// Opens the store once and applies `action` to each selected projection in turn.
async fn drive_all(dir: &Path, select: &SelectArgs, action: Action) -> anyhow::Result<()> {
    let store: Arc<dyn EventStore> = Arc::new(commands::open(dir, false)?);
    let path = dir.join(READ_MODEL_FILE);
    for name in ProjectionName::selected(select.name) {
        let status = match name {
            ProjectionName::AccountSummary => {
                drive(store.clone(), &path, AccountSummary, action).await?
            }
            ProjectionName::FraudReport => {
                let report = FraudReport::new(FRAUD_MAX_WITHDRAWALS, FRAUD_WINDOW);
                drive(store.clone(), &path, report, action).await?
            }
        };
        let line = if select.human {
            render_human(&status)
        } else {
            render_status(&status).to_string()
        };
        commands::print_line(&line)?;
    }
    Ok(())
}

/// Applies `action` to one projection and returns its status afterwards (head read now).
async fn drive<P: Projection<Model = Connection>>(
    store: Arc<dyn EventStore>,
    path: &Path,
    projection: P,
    action: Action,
) -> anyhow::Result<ProjectionStatus> {
    let name = projection.name().to_owned();
    let model = SqliteReadModel::open(path, projection)
        .with_context(|| format!("cannot open the read model {}", path.display()))?;
    let mut runner = ProjectionRunner::new(store.clone(), model)?;
    match action {
        Action::Status => {}
        Action::Reset => runner.reset().await?,
        Action::Rebuild { progress } => {
            runner.reset().await?;
            catch_up(&mut runner, &store, &name, progress).await?;
        }
        Action::Run { progress, follow } => {
            catch_up(&mut runner, &store, &name, progress).await?;
            if follow {
                follow_until_shutdown(&mut runner).await?;
            }
        }
    }
    Ok(runner.refresh().await?)
}

/// Runs until the checkpoint reaches the head as of the start, drawing progress, then stops.
async fn catch_up<P: Projection<Model = Connection>>(
    runner: &mut ProjectionRunner<SqliteReadModel<P>>,
    store: &Arc<dyn EventStore>,
    name: &str,
    progress: bool,
) -> anyhow::Result<()> {
    let target = store.head().await?;
    let mut watch = runner.watch_status();
    let mut meter = progress.then(|| Meter::new(name, runner.status().checkpoint.position));
    runner.start()?;
    let outcome = loop {
        let status = watch.borrow_and_update().clone();
        if let Some(meter) = meter.as_mut() {
            meter.show(status.checkpoint.position, target, false);
        }
        if status.checkpoint.position >= target {
            break Ok(());
        }
        if let RunState::Failed(reason) = &status.state {
            break Err(anyhow::anyhow!("projection {name} failed: {reason}"));
        }
        // A timer as well as the watch, so the bar's rate keeps moving and a lost runner
        // (its sender gone) is noticed rather than waited on for ever.
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    break Err(anyhow::anyhow!("projection {name} stopped unexpectedly"));
                }
            }
            () = tokio::time::sleep(BAR_REDRAW_EVERY) => {}
        }
    };
    runner.stop().await?;
    if let Some(meter) = meter.as_mut() {
        let position = runner.status().checkpoint.position;
        meter.show(position, target, true);
    }
    outcome
}

/// `run --follow`: keeps the runner going until a shutdown signal, printing a status line each
/// time it commits (at most once a second).
async fn follow_until_shutdown<P: Projection<Model = Connection>>(
    runner: &mut ProjectionRunner<SqliteReadModel<P>>,
) -> anyhow::Result<()> {
    runner.start()?;
    let mut watch = runner.watch_status();
    let shutdown = commands::shutdown_signal();
    tokio::pin!(shutdown);
    let mut printed = None;
    let outcome = loop {
        let status = watch.borrow_and_update().clone();
        if let RunState::Failed(reason) = &status.state {
            break Err(anyhow::anyhow!(
                "projection {} failed: {reason}",
                status.name
            ));
        }
        if printed != Some(status.checkpoint.position) && status.state == RunState::Live {
            printed = Some(status.checkpoint.position);
            commands::print_line(&render_status(&status).to_string())?;
        }
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            changed = watch.changed() => {
                if changed.is_err() {
                    break Err(anyhow::anyhow!("projection {} stopped unexpectedly", status.name));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    runner.stop().await?;
    outcome
}

/// The state `status` reports: the runner is always stopped by then, so what matters is
/// whether it has ever run and whether it is behind.
fn state_of(status: &ProjectionStatus) -> &'static str {
    if let RunState::Failed(_) = status.state {
        "failed"
    } else if status.checkpoint.position == Position::START && status.head != Position::START {
        "new"
    } else if status.events_behind() == 0 {
        "caught_up"
    } else {
        "behind"
    }
}

/// A status as one JSON object.
fn render_status(status: &ProjectionStatus) -> Value {
    json!({
        "name": status.name,
        "state": state_of(status),
        "checkpoint": status.checkpoint.position.0,
        "head": status.head.0,
        "events_behind": status.events_behind(),
        "seconds_behind": status.time_behind().map(|behind| behind.as_secs_f64()),
        "processed_events": status.checkpoint.processed_events,
    })
}

/// A status as one line of aligned text.
fn render_human(status: &ProjectionStatus) -> String {
    let seconds = status.time_behind().map_or_else(
        || "?".to_owned(),
        |behind| format!("{:.1}", behind.as_secs_f64()),
    );
    format!(
        "{:<16} {:<10} checkpoint {:>10}  head {:>10}  behind {:>10} events, {:>8} s",
        status.name,
        state_of(status),
        status.checkpoint.position.0,
        status.head.0,
        status.events_behind(),
        seconds,
    )
}

/// Progress on standard error: a bar redrawn in place on a terminal, a plain line a second
/// otherwise (a log file or a pipe should not fill with carriage returns).
struct Meter {
    name: String,
    terminal: bool,
    started: Instant,
    start_position: u64,
    last_shown: Option<Instant>,
}

impl Meter {
    fn new(name: &str, start: Position) -> Meter {
        let terminal = std::io::stderr().is_terminal();
        let started = Instant::now();
        Meter {
            name: name.to_owned(),
            terminal,
            started,
            start_position: start.0,
            // A bar appears at once; plain lines only after a second, so a quick run writes
            // just its final line.
            last_shown: (!terminal).then_some(started),
        }
    }

    fn show(&mut self, position: Position, target: Position, last: bool) {
        let every = if self.terminal {
            BAR_REDRAW_EVERY
        } else {
            PLAIN_PROGRESS_EVERY
        };
        let due = self.last_shown.is_none_or(|shown| shown.elapsed() >= every);
        if !last && !due {
            return;
        }
        self.last_shown = Some(Instant::now());
        let line = progress_line(
            &self.name,
            position.0,
            target.0,
            self.start_position,
            self.started.elapsed(),
        );
        let mut stderr = std::io::stderr().lock();
        // Progress is a courtesy: a closed standard error must not fail the command.
        let _ = if self.terminal {
            let end = if last { "\n" } else { "" };
            write!(stderr, "\r{line}\x1b[K{end}")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
    }
}

/// `name [#######.......]  45.0%  450/1000  1234 events/s`.
fn progress_line(name: &str, position: u64, target: u64, start: u64, elapsed: Duration) -> String {
    let fraction = if target == 0 {
        1.0
    } else {
        (position as f64 / target as f64).min(1.0)
    };
    let filled = ((fraction * BAR_WIDTH as f64).round() as usize).min(BAR_WIDTH);
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(BAR_WIDTH - filled));
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        position.saturating_sub(start) as f64 / seconds
    } else {
        0.0
    };
    format!(
        "{name} [{bar}] {:>5.1}%  {position}/{target}  {rate:.0} events/s",
        fraction * 100.0
    )
}

/// `projections query`: reads the SQLite file only, so it works beside a running `run --follow`.
fn query(dir: &Path, args: &QueryArgs) -> anyhow::Result<()> {
    let path: PathBuf = dir.join(READ_MODEL_FILE);
    if !path.is_file() {
        bail!(
            "no read models in {} yet (`factum projections run` builds them)",
            dir.display()
        );
    }
    let lines: Vec<String> = match args.name {
        ProjectionName::AccountSummary => {
            let model = SqliteReadModel::open(&path, AccountSummary)?;
            let rows = match args.min_balance_cents {
                Some(cents) => {
                    factum_projection::accounts_with_balance_above(model.connection(), cents)?
                }
                None => factum_projection::all_accounts(model.connection())?,
            };
            rows.iter()
                .map(|row| {
                    json!({
                        "account_id": row.account_id,
                        "owner": row.owner,
                        "balance_cents": row.balance_cents,
                    })
                    .to_string()
                })
                .collect()
        }
        ProjectionName::FraudReport => {
            if args.min_balance_cents.is_some() {
                bail!("--min-balance-cents applies to account_summary, not fraud_report");
            }
            let report = FraudReport::new(FRAUD_MAX_WITHDRAWALS, FRAUD_WINDOW);
            let model = SqliteReadModel::open(&path, report)?;
            factum_projection::flagged_accounts(model.connection())?
                .iter()
                .map(|row| {
                    json!({
                        "account_id": row.account_id,
                        "withdrawals_in_window": row.withdrawals_in_window,
                    })
                    .to_string()
                })
                .collect()
        }
    };
    if lines.is_empty() {
        return Ok(());
    }
    commands::print_line(&lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_fraction_and_counts() {
        let line = progress_line("p", 50, 100, 0, Duration::from_secs(1));
        assert!(line.contains(" 50.0%"), "{line}");
        assert!(line.contains("50/100"), "{line}");
        assert!(line.contains("50 events/s"), "{line}");
        let filled = line.matches('#').count();
        assert_eq!(filled, BAR_WIDTH / 2);
    }

    #[test]
    fn an_empty_log_is_complete() {
        let line = progress_line("p", 0, 0, 0, Duration::ZERO);
        assert!(line.contains("100.0%"), "{line}");
        assert_eq!(line.matches('#').count(), BAR_WIDTH);
    }
}
