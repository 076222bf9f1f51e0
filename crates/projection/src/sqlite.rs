//! A durable read model in SQLite: each batch of the projection's changes and its checkpoint
//! commit in one transaction, so after any crash the tables and the checkpoint agree and no
//! event's effect is lost or doubled.

use std::path::Path;

use factum_core::{EventFilter, Position, RecordedEvent, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::memory::fresh_events;
use crate::projection::{Checkpoint, Projection, ReadModel};

/// The table of checkpoints, one row per projection, in the read model's own database.
pub const CHECKPOINT_TABLE: &str = "factum_projection_checkpoints";

/// A projection's read model in a SQLite database, with its checkpoint in the table
/// [`CHECKPOINT_TABLE`] of the same database.
///
/// Several projections may share one database file (each opens its own `SqliteReadModel`):
/// their checkpoints are keyed by name. Readers query the file with plain SQL through their own
/// [`rusqlite::Connection`]; the database is in WAL mode, so they never block the projection.
///
/// Durability: `synchronous = NORMAL`. A power loss may take back the last batches, but always
/// together with their checkpoint, so the projection simply processes those events again: the
/// event store, not the read model, is the source of truth.
///
/// ```
/// # use factum_core::RecordedEvent;
/// # use factum_projection::{Projection, ProjectionError};
/// # struct Count;
/// # impl Projection for Count {
/// #     type Model = rusqlite::Connection;
/// #     fn name(&self) -> &str { "count" }
/// #     fn init(&mut self, db: &mut rusqlite::Connection) -> Result<(), ProjectionError> {
/// #         db.execute_batch("CREATE TABLE IF NOT EXISTS n (k INTEGER PRIMARY KEY, v INTEGER)")?;
/// #         Ok(())
/// #     }
/// #     fn clear(&mut self, db: &mut rusqlite::Connection) -> Result<(), ProjectionError> {
/// #         db.execute_batch("DELETE FROM n")?;
/// #         Ok(())
/// #     }
/// #     fn apply(&mut self, db: &mut rusqlite::Connection, _: &RecordedEvent) -> Result<(), ProjectionError> {
/// #         db.execute("INSERT INTO n VALUES (0, 1) ON CONFLICT(k) DO UPDATE SET v = v + 1", [])?;
/// #         Ok(())
/// #     }
/// # }
/// use factum_projection::{ReadModel, SqliteReadModel};
///
/// let mut model = SqliteReadModel::open_in_memory(Count).unwrap();
/// assert_eq!(model.checkpoint().unwrap().position.0, 0);
/// ```
pub struct SqliteReadModel<P: Projection<Model = Connection>> {
    projection: P,
    connection: Connection,
}

impl<P: Projection<Model = Connection>> SqliteReadModel<P> {
    /// Opens (or creates) the database at `path` for `projection`, creating its tables and the
    /// checkpoint table if they are missing.
    pub fn open(path: impl AsRef<Path>, projection: P) -> Result<SqliteReadModel<P>> {
        let connection = Connection::open(path)?;
        SqliteReadModel::with_connection(connection, projection)
    }

    /// A private in-memory database, gone when the read model is dropped (for tests and
    /// examples; its tables are readable only through [`SqliteReadModel::connection`]).
    pub fn open_in_memory(projection: P) -> Result<SqliteReadModel<P>> {
        SqliteReadModel::with_connection(Connection::open_in_memory()?, projection)
    }

    /// Uses an open connection.
    pub fn with_connection(
        mut connection: Connection,
        mut projection: P,
    ) -> Result<SqliteReadModel<P>> {
        // WAL lets readers query while batches commit; `journal_mode` answers with a row.
        let _mode: String =
            connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        connection.execute_batch(
            "PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;",
        )?;
        in_transaction(&mut connection, |connection| {
            connection.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (
                     projection TEXT PRIMARY KEY,
                     position INTEGER NOT NULL,
                     last_recorded_at_micros INTEGER,
                     processed_events INTEGER NOT NULL
                 )"
            ))?;
            projection.init(connection)
        })?;
        Ok(SqliteReadModel {
            projection,
            connection,
        })
    }

    /// The connection, for queries. Writing through it outside the projection breaks the
    /// link between the tables and the checkpoint.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }
}

/// Runs `body` in an immediate transaction on `connection`, committing if it succeeds and
/// rolling back if it fails. (A manual `BEGIN` rather than [`rusqlite::Transaction`], because
/// projections write through `&mut Connection`.)
fn in_transaction<T>(
    connection: &mut Connection,
    body: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    match body(connection) {
        Ok(value) => {
            connection.execute_batch("COMMIT")?;
            Ok(value)
        }
        Err(error) => {
            // The connection may already have rolled back (some errors do that); a failed
            // rollback then says nothing new.
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Reads `name`'s checkpoint row (the default checkpoint if it has none), through any
/// connection to the read model's database: a reader process can tell how fresh the tables it
/// queries are.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use factum_core::{EventStore, ExpectedRevision, ProposedEvent, StreamName};
/// use factum_projection::{AccountSummary, ProjectionRunner, SqliteReadModel, read_checkpoint};
///
/// let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
/// let opened = ProposedEvent::json("AccountOpened", &serde_json::json!({
///     "owner": "Alice", "initial_balance_cents": 0,
/// }))?;
/// let written = store
///     .append(&StreamName::new("account-1")?, ExpectedRevision::NoStream, vec![opened])
///     .await?;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("read.db");
/// let mut runner = ProjectionRunner::new(store, SqliteReadModel::open(&path, AccountSummary)?)?;
/// runner.run_until_caught_up(Duration::from_secs(5)).await?;
///
/// let reader = rusqlite::Connection::open(&path)?;
/// let checkpoint = read_checkpoint(&reader, "account_summary")?;
/// assert_eq!(checkpoint.position, written.position);
/// assert_eq!(checkpoint.processed_events, 1);
/// assert_eq!(read_checkpoint(&reader, "no_such_projection")?.processed_events, 0);
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub fn read_checkpoint(connection: &Connection, name: &str) -> Result<Checkpoint> {
    let row = connection
        .query_row(
            &format!(
                "SELECT position, last_recorded_at_micros, processed_events
                 FROM {CHECKPOINT_TABLE} WHERE projection = ?1"
            ),
            params![name],
            |row| {
                Ok(Checkpoint {
                    position: Position(row.get::<_, i64>(0)? as u64),
                    last_recorded_at: row
                        .get::<_, Option<i64>>(1)?
                        .map(|micros| Timestamp::from_unix_micros(micros as u64)),
                    processed_events: row.get::<_, i64>(2)? as u64,
                })
            },
        )
        .optional()?;
    Ok(row.unwrap_or_default())
}

fn write_checkpoint(connection: &Connection, name: &str, checkpoint: &Checkpoint) -> Result<()> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO {CHECKPOINT_TABLE}
                 (projection, position, last_recorded_at_micros, processed_events)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(projection) DO UPDATE SET position = ?2,
                 last_recorded_at_micros = ?3, processed_events = ?4"
        ))?
        .execute(params![
            name,
            checkpoint.position.0 as i64,
            checkpoint
                .last_recorded_at
                .map(|time| time.unix_micros() as i64),
            checkpoint.processed_events as i64
        ])?;
    Ok(())
}

impl<P: Projection<Model = Connection>> ReadModel for SqliteReadModel<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn filter(&self) -> Option<EventFilter> {
        self.projection.filter()
    }

    fn checkpoint(&mut self) -> Result<Checkpoint> {
        read_checkpoint(&self.connection, self.projection.name())
    }

    fn commit(&mut self, events: &[RecordedEvent], position: Position) -> Result<Checkpoint> {
        let projection = &mut self.projection;
        in_transaction(&mut self.connection, |connection| {
            // Read inside the transaction: the checkpoint that decides what is fresh is the one
            // this commit replaces.
            let checkpoint = read_checkpoint(connection, projection.name())?;
            let fresh = fresh_events(events, checkpoint.position);
            for event in fresh {
                projection.apply(connection, event)?;
            }
            let checkpoint = checkpoint.advanced(fresh, position);
            write_checkpoint(connection, projection.name(), &checkpoint)?;
            Ok(checkpoint)
        })
    }

    fn reset(&mut self) -> Result<()> {
        let projection = &mut self.projection;
        in_transaction(&mut self.connection, |connection| {
            projection.clear(connection)?;
            projection.init(connection)?;
            connection.execute(
                &format!("DELETE FROM {CHECKPOINT_TABLE} WHERE projection = ?1"),
                params![projection.name()],
            )?;
            Ok(())
        })
    }
}
