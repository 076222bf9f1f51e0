//! `factum migrate-stream FROM TO`: copies a stream into a new one through the upcasters of a
//! built-in schema (`factum_codec::migrate_stream`), so every copy has its type's current shape
//! and schema version. The source stream is left as it is.

use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use factum_core::{Error, EventStore, ReadStreamOptions, StreamName};
use serde_json::json;

use crate::commands;

/// The arguments of `factum migrate-stream`.
#[derive(Debug, Args)]
pub struct MigrateStreamArgs {
    /// The stream to copy.
    pub from: String,

    /// The new stream to write: it must not exist (unless --resume).
    pub to: String,

    /// The event schema whose upcasters bring old events up to date.
    #[arg(long, value_enum, default_value = "order")]
    pub schema: SchemaName,

    /// Continues an interrupted migration into an existing TO: the copies already written are
    /// recognised by their ids, and only the rest are appended.
    #[arg(long)]
    pub resume: bool,
}

/// The built-in schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaName {
    /// `factum_aggregate::examples::order`: `OrderPlaced` v1 → v2 → v3, `OrderShipped` and
    /// `OrderCancelled` v1.
    Order,
}

impl SchemaName {
    fn as_str(self) -> &'static str {
        match self {
            SchemaName::Order => "order",
        }
    }
}

/// Runs `factum migrate-stream`. Prints
/// `{"from":..,"to":..,"schema":..,"copied":N,"skipped":N,"last_revision":R}`.
pub async fn run(dir: &Path, args: MigrateStreamArgs) -> anyhow::Result<()> {
    let from = StreamName::new(&args.from)?;
    let to = StreamName::new(&args.to)?;
    if from == to {
        bail!("migrate-stream copies into a new stream: FROM and TO are both {from}");
    }
    let store = commands::open(dir, false)?;
    // Checked here rather than left to the store, for errors that say which stream is at fault.
    let first = ReadStreamOptions::forwards().limit(1);
    store
        .read_stream(&from, first)
        .await
        .with_context(|| format!("cannot read the source stream {from}"))?;
    if !args.resume {
        match store.read_stream(&to, first).await {
            Err(Error::StreamNotFound { .. }) => {}
            Ok(_) => bail!(
                "the target stream {to} already exists: migrate into a new stream (or pass \
                 --resume to continue an interrupted migration)"
            ),
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("cannot check the target stream {to}")));
            }
        }
    }
    let report = match args.schema {
        SchemaName::Order => {
            let schema = factum_aggregate::examples::order::schema();
            factum_codec::migrate_stream(&store, &from, &to, &schema).await
        }
    };
    let report = report.map_err(|error| match error {
        // Kept as a store error, so the exit code tells "not found" and conflicts apart.
        factum_codec::MigrateError::Store(error) => anyhow::Error::new(error),
        other => anyhow::Error::new(other),
    })?;
    let line = json!({
        "from": from.as_str(),
        "to": to.as_str(),
        "schema": args.schema.as_str(),
        "copied": report.copied,
        "skipped": report.skipped,
        "last_revision": report.last_revision,
    });
    commands::print_line(&line.to_string())
}
