//! The PostgreSQL twin: the same append workloads against the plain events table of the article
//! the issue cites, `events(id, aggregate_id, event_type, payload, created_at)`, plus a `version`
//! column whose `UNIQUE (aggregate_id, version)` is the expected-version check.
//!
//! Each writer has its own connection and prepared statements; a batch is one multi-row INSERT.
//! Every statement commits on its own (autocommit), so each append waits for its WAL flush, as
//! the embedded engine's wait for their fdatasync. The bench makes its own schema,
//! `factum_bench_<pid>`, and drops it at the end, whatever happened in between.

use anyhow::Context;
use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use crate::drive::{Measured, Timing, Writer, drive, payload};
use crate::embedded::EVENT_TYPE;

/// What the PostgreSQL side measured.
#[derive(Debug)]
pub struct PgResults {
    /// The schema the table lived in (dropped by now).
    pub schema: String,
    /// The server's `fsync` setting.
    pub fsync: String,
    /// The server's `synchronous_commit` setting.
    pub synchronous_commit: String,
    /// One writer, one event per append.
    pub one_writer: Measured,
    /// Eight writers.
    pub eight_writers: Measured,
    /// Sixty-four writers.
    pub sixty_four_writers: Measured,
    /// One writer, 100 events per append.
    pub batch100: Measured,
}

/// Connects to `url`, driving the connection on a task of its own.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
    tokio::spawn(async move {
        // The connection ends when its client is dropped; an error then has no one to go to.
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs the four workloads against a fresh table, then drops its schema.
pub async fn run(url: &str, timing: Timing, progress: &dyn Fn(&str)) -> anyhow::Result<PgResults> {
    let admin = connect(url).await?;
    let fsync: String = admin.query_one("SHOW fsync", &[]).await?.get(0);
    let synchronous_commit: String = admin
        .query_one("SHOW synchronous_commit", &[])
        .await?
        .get(0);
    let schema = format!("factum_bench_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE;
             CREATE SCHEMA {schema};
             CREATE TABLE {schema}.events (
                 id BIGSERIAL PRIMARY KEY,
                 aggregate_id TEXT NOT NULL,
                 version BIGINT NOT NULL,
                 event_type TEXT NOT NULL,
                 payload JSONB NOT NULL,
                 created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                 UNIQUE (aggregate_id, version)
             );"
        ))
        .await
        .context("cannot create the bench's PostgreSQL table")?;
    let outcome = workloads(url, &schema, timing, progress).await;
    let dropped = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .with_context(|| format!("cannot drop the bench's PostgreSQL schema {schema}"));
    let (one_writer, eight_writers, sixty_four_writers, batch100) = outcome?;
    dropped?;
    Ok(PgResults {
        schema,
        fsync,
        synchronous_commit,
        one_writer,
        eight_writers,
        sixty_four_writers,
        batch100,
    })
}

async fn workloads(
    url: &str,
    schema: &str,
    timing: Timing,
    progress: &dyn Fn(&str),
) -> anyhow::Result<(Measured, Measured, Measured, Measured)> {
    progress("PostgreSQL, 1 writer");
    let one_writer = workload(url, schema, 1, 1, timing).await?;
    progress("PostgreSQL, 8 writers");
    let eight_writers = workload(url, schema, 8, 1, timing).await?;
    progress("PostgreSQL, 64 writers");
    let sixty_four_writers = workload(url, schema, 64, 1, timing).await?;
    progress("PostgreSQL, 1 writer, 100 events per append");
    let batch100 = workload(url, schema, 1, 100, timing).await?;
    Ok((one_writer, eight_writers, sixty_four_writers, batch100))
}

async fn workload(
    url: &str,
    schema: &str,
    writers: usize,
    batch: usize,
    timing: Timing,
) -> anyhow::Result<Measured> {
    let mut connected = Vec::with_capacity(writers);
    for writer in 0..writers {
        connected.push(PgWriter::new(url, schema, writers, writer, batch).await?);
    }
    drive(connected, batch, timing, || 0).await
}

/// One writer: its own connection, appending to aggregate `bench-{w}-{i}`.
struct PgWriter {
    client: Client,
    insert: Statement,
    rows: usize,
    aggregate: String,
    next_version: i64,
    writer: usize,
    sequence: u64,
}

impl PgWriter {
    async fn new(
        url: &str,
        schema: &str,
        writers: usize,
        writer: usize,
        rows: usize,
    ) -> anyhow::Result<PgWriter> {
        let client = connect(url).await?;
        let aggregate = format!("bench-{writers}-{writer}");
        let next_version: i64 = client
            .query_one(
                &format!(
                    "SELECT COALESCE(MAX(version) + 1, 0) FROM {schema}.events WHERE aggregate_id = $1"
                ),
                &[&aggregate],
            )
            .await?
            .get(0);
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let first = row * 4;
                format!(
                    "(${}, ${}, ${}, ${}::text::jsonb)",
                    first + 1,
                    first + 2,
                    first + 3,
                    first + 4
                )
            })
            .collect();
        let insert = client
            .prepare(&format!(
                "INSERT INTO {schema}.events (aggregate_id, version, event_type, payload) VALUES {}",
                values.join(", ")
            ))
            .await?;
        Ok(PgWriter {
            client,
            insert,
            rows,
            aggregate,
            next_version,
            writer,
            sequence: 0,
        })
    }
}

#[async_trait]
impl Writer for PgWriter {
    async fn append(&mut self, count: usize) -> anyhow::Result<u128> {
        anyhow::ensure!(
            count == self.rows,
            "this writer's statement inserts {} rows",
            self.rows
        );
        let versions: Vec<i64> = (0..count as i64)
            .map(|offset| self.next_version + offset)
            .collect();
        let payloads = (0..count as u64)
            .map(|offset| String::from_utf8(payload(self.writer, self.sequence + offset).to_vec()))
            .collect::<Result<Vec<String>, _>>()?;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(count * 4);
        for (version, data) in versions.iter().zip(&payloads) {
            params.push(&self.aggregate);
            params.push(version);
            params.push(&EVENT_TYPE);
            params.push(data);
        }
        // A duplicate (aggregate_id, version) fails the whole statement: the expected-version
        // check. Each writer owns its aggregate, so it never fires here.
        self.client.execute(&self.insert, &params).await?;
        self.next_version += count as i64;
        self.sequence += count as u64;
        Ok(0)
    }
}
