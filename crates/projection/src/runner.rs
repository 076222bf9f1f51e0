//! The runner: drives a read model from its stored checkpoint through a catch-up subscription to
//! `$all`, in batches, and reports its status and lag while it runs.

use std::sync::Arc;
use std::time::Duration;

use factum_core::{
    EventStore, Position, ReadAllOptions, RecordedEvent, SubscribeToAllOptions, Subscription,
    SubscriptionMessage, SubscriptionStart, Timestamp,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{ProjectionError, Result};
use crate::projection::{Checkpoint, ReadModel};

/// How a runner reads and commits.
///
/// ```
/// # async fn demo() -> Result<(), factum_projection::ProjectionError> {
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use factum_core::{EventStore, ExpectedRevision, ProposedEvent, StreamName};
/// use factum_projection::{AccountSummary, ProjectionRunner, RunnerOptions, SqliteReadModel};
///
/// let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
/// let opened = ProposedEvent::json("AccountOpened", &serde_json::json!({
///     "owner": "Alice", "initial_balance_cents": 0,
/// }))?;
/// let deposit = ProposedEvent::json("MoneyDeposited", &serde_json::json!({"amount_cents": 5}))?;
/// let account = StreamName::new("account-1")?;
/// store.append(&account, ExpectedRevision::NoStream, vec![opened, deposit]).await?;
///
/// // One event per transaction: slower, but progress shows after every event.
/// let options = RunnerOptions { batch_size: 1, ..RunnerOptions::default() };
/// let model = SqliteReadModel::open_in_memory(AccountSummary)?;
/// let mut runner = ProjectionRunner::with_options(store, model, options)?;
/// let status = runner.run_until_caught_up(Duration::from_secs(5)).await?;
/// assert_eq!(status.checkpoint.processed_events, 2);
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerOptions {
    /// The most events committed in one batch (one transaction). Larger batches rebuild faster;
    /// smaller ones show changes sooner while catching up. Live, a batch holds whatever arrived
    /// since the last one. At least 1.
    pub batch_size: usize,
    /// Passed to the subscription: with a sparse filter, the checkpoint moves at least every
    /// this many examined events (see [`SubscribeToAllOptions::checkpoint_interval`]).
    pub checkpoint_interval: u64,
}

impl Default for RunnerOptions {
    fn default() -> RunnerOptions {
        RunnerOptions {
            batch_size: 512,
            checkpoint_interval: 1024,
        }
    }
}

/// What a runner is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Not running: never started, stopped, or being reset.
    Stopped,
    /// Running, with history still to process.
    CatchingUp,
    /// Running, and it has processed everything that existed when it last looked: new events
    /// are applied as they are appended.
    Live,
    /// Stopped by an error (its message; the error itself is
    /// [`ProjectionStatus::error`]). The read model holds every batch before the one that
    /// failed; start again to retry from the checkpoint.
    Failed(String),
}

/// A runner's progress and lag, as last reported (after every batch).
///
/// Two statuses are equal when every field is, their errors compared by message.
///
/// ```
/// use std::time::Duration;
///
/// use factum_core::{Position, Timestamp};
/// use factum_projection::{Checkpoint, ProjectionStatus, RunState};
///
/// let status = ProjectionStatus {
///     name: "account_summary".into(),
///     state: RunState::CatchingUp,
///     checkpoint: Checkpoint {
///         position: Position(750),
///         last_recorded_at: Some(Timestamp::from_unix_micros(1_000_000)),
///         processed_events: 700,
///     },
///     head: Position(1_000),
///     head_recorded_at: Some(Timestamp::from_unix_micros(3_500_000)),
///     error: None,
/// };
/// // The lag: 250 events, two and a half seconds behind the head, three quarters done.
/// assert_eq!(status.events_behind(), 250);
/// assert_eq!(status.time_behind(), Some(Duration::from_millis(2_500)));
/// assert_eq!(status.progress(), 0.75);
/// ```
#[derive(Debug, Clone)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// What the runner is doing.
    pub state: RunState,
    /// The stored checkpoint.
    pub checkpoint: Checkpoint,
    /// The store's head when the runner last looked.
    pub head: Position,
    /// The recorded time of the event at `head`, if any.
    pub head_recorded_at: Option<Timestamp>,
    /// The error that stopped the runner while `state` is [`RunState::Failed`], `None`
    /// otherwise: match on it, e.g. [`ProjectionError::Decode`] for an event the projection's
    /// schema cannot decode, [`ProjectionError::Apply`] for one the projection refused. Cleared
    /// when the runner starts again.
    pub error: Option<Arc<ProjectionError>>,
}

impl PartialEq for ProjectionStatus {
    fn eq(&self, other: &ProjectionStatus) -> bool {
        let same_error = match (&self.error, &other.error) {
            (None, None) => true,
            (Some(mine), Some(theirs)) => mine.to_string() == theirs.to_string(),
            _ => false,
        };
        self.name == other.name
            && self.state == other.state
            && self.checkpoint == other.checkpoint
            && self.head == other.head
            && self.head_recorded_at == other.head_recorded_at
            && same_error
    }
}

impl Eq for ProjectionStatus {}

impl ProjectionStatus {
    /// Events behind the head: `head − checkpoint`, counting every event of `$all` in between
    /// (those the filter skips and system events included). Exact for the dense positions of
    /// the in-memory and embedded stores; an upper bound where positions have gaps.
    pub fn events_behind(&self) -> u64 {
        self.head.0.saturating_sub(self.checkpoint.position.0)
    }

    /// How much older the projection's view is than the store's: the head event's recorded time
    /// minus the recorded time of the last event the projection processed. Zero when caught up;
    /// `None` when behind and nothing was processed yet (no reference time).
    pub fn time_behind(&self) -> Option<Duration> {
        if self.events_behind() == 0 {
            return Some(Duration::ZERO);
        }
        let head = self.head_recorded_at?;
        let last = self.checkpoint.last_recorded_at?;
        Some(Duration::from_micros(
            head.unix_micros().saturating_sub(last.unix_micros()),
        ))
    }

    /// Progress through the log, from 0 to 1: `checkpoint / head` (1 for an empty store). What a
    /// rebuild's progress bar shows; like [`ProjectionStatus::events_behind`], it assumes
    /// dense positions.
    pub fn progress(&self) -> f64 {
        if self.head.0 == 0 {
            return 1.0;
        }
        (self.checkpoint.position.0 as f64 / self.head.0 as f64).min(1.0)
    }
}

/// A cloneable view of a runner's status, for code that does not own the runner (a request
/// handler that wants read-your-writes, a status page).
#[derive(Clone)]
pub struct ProjectionWatcher {
    status: watch::Receiver<ProjectionStatus>,
}

impl ProjectionWatcher {
    /// The status as last reported.
    pub fn status(&self) -> ProjectionStatus {
        self.status.borrow().clone()
    }

    /// Read-your-writes: waits until the projection has processed `position` (the position an
    /// append returned), so a query of its read model sees that append.
    ///
    /// Errors: [`ProjectionError::Timeout`] after `timeout`. If the runner is (or becomes)
    /// stopped or failed before reaching `position`: the error it failed on when that is a
    /// [`ProjectionError::Decode`] (an event its schema cannot decode) or
    /// [`ProjectionError::Apply`] (an event the projection refused), else
    /// [`ProjectionError::NotRunning`].
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<Checkpoint> {
        let mut status = self.status.clone();
        let reached = |status: &ProjectionStatus| {
            status.checkpoint.position >= position
                || matches!(status.state, RunState::Stopped | RunState::Failed(_))
        };
        let waited = tokio::time::timeout(timeout, status.wait_for(reached)).await;
        let status = match waited {
            Ok(Ok(status)) => status.clone(),
            Ok(Err(_)) => {
                return Err(ProjectionError::NotRunning("the runner is gone".into()));
            }
            Err(_) => {
                return Err(ProjectionError::Timeout {
                    position,
                    checkpoint: self.status.borrow().checkpoint.position,
                });
            }
        };
        if status.checkpoint.position >= position {
            return Ok(status.checkpoint);
        }
        Err(match (status.state, status.error) {
            (RunState::Failed(_), Some(error)) => error.reissue(),
            (RunState::Failed(reason), None) => ProjectionError::NotRunning(reason),
            _ => ProjectionError::NotRunning("stopped".into()),
        })
    }
}

/// The running task: how to stop it, and what it hands back.
struct Running<R> {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Option<R>>,
}

/// Drives one read model: start, stop, reset, rebuild, status, and read-your-writes.
///
/// While running, a task owns the read model; [`ProjectionRunner::stop`] hands it back. Batches
/// commit with their checkpoint, so stopping (or crashing) at any moment and starting again
/// resumes exactly after the last committed batch.
///
/// ```
/// # async fn demo(store: std::sync::Arc<dyn factum_core::EventStore>) -> Result<(), factum_projection::ProjectionError> {
/// use std::time::Duration;
///
/// use factum_core::{ExpectedRevision, ProposedEvent, StreamName};
/// use factum_projection::{AccountSummary, ProjectionRunner, SqliteReadModel};
///
/// let model = SqliteReadModel::open_in_memory(AccountSummary)?;
/// let mut runner = ProjectionRunner::new(store.clone(), model)?;
/// runner.start()?;
///
/// let opened = ProposedEvent::json("AccountOpened", &serde_json::json!({
///     "owner": "Alice", "initial_balance_cents": 250_000,
/// }))?;
/// let written = store
///     .append(&StreamName::new("account-1")?, ExpectedRevision::NoStream, vec![opened])
///     .await?;
/// // Read-your-writes: the summary now shows the account.
/// runner.wait_for(written.position, Duration::from_secs(5)).await?;
///
/// let model = runner.stop().await?;
/// let rich = factum_projection::accounts_with_balance_above(model.connection(), 100_000)?;
/// assert_eq!(rich[0].owner, "Alice");
/// # Ok(())
/// # }
/// # let store = std::sync::Arc::new(factum_memory::MemoryStore::new());
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(demo(store)).unwrap();
/// ```
pub struct ProjectionRunner<R: ReadModel> {
    store: Arc<dyn EventStore>,
    options: RunnerOptions,
    /// The read model while stopped; `None` while a task owns it (or after a panic lost it).
    model: Option<R>,
    running: Option<Running<R>>,
    status: watch::Sender<ProjectionStatus>,
}

impl<R: ReadModel> ProjectionRunner<R> {
    /// A stopped runner for `model`, with default options. Reads the stored checkpoint.
    pub fn new(store: Arc<dyn EventStore>, model: R) -> Result<ProjectionRunner<R>> {
        ProjectionRunner::with_options(store, model, RunnerOptions::default())
    }

    /// A stopped runner for `model`.
    pub fn with_options(
        store: Arc<dyn EventStore>,
        mut model: R,
        options: RunnerOptions,
    ) -> Result<ProjectionRunner<R>> {
        assert!(options.batch_size >= 1, "the batch size must be at least 1");
        let checkpoint = model.checkpoint()?;
        let (status, _) = watch::channel(ProjectionStatus {
            name: model.name().to_owned(),
            state: RunState::Stopped,
            checkpoint,
            head: Position::START,
            head_recorded_at: None,
            error: None,
        });
        Ok(ProjectionRunner {
            store,
            options,
            model: Some(model),
            running: None,
            status,
        })
    }

    /// Starts processing from the stored checkpoint, in a spawned task (call it inside a tokio
    /// runtime). Starting a running runner does nothing.
    pub fn start(&mut self) -> Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let mut model = self.take_model()?;
        let checkpoint = match model.checkpoint() {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                self.model = Some(model);
                return Err(error);
            }
        };
        self.status.send_modify(|status| {
            status.state = RunState::CatchingUp;
            status.checkpoint = checkpoint;
            status.error = None;
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(
            self.store.clone(),
            model,
            checkpoint,
            self.options,
            self.status.clone(),
            stopped,
        ));
        self.running = Some(Running { stop, task });
        Ok(())
    }

    /// Stops after the batch in progress (which commits) and hands back the read model, for
    /// queries or to start again later. Stopping a stopped runner just returns the model.
    ///
    /// Errors: [`ProjectionError::NotRunning`] if a panic in the projection lost the model.
    pub async fn stop(&mut self) -> Result<&mut R> {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let model = running.task.await.ok().flatten();
            self.model = model;
            self.status.send_modify(|status| {
                if !matches!(status.state, RunState::Failed(_)) {
                    status.state = RunState::Stopped;
                }
            });
        }
        self.model
            .as_mut()
            .ok_or_else(|| ProjectionError::NotRunning("a panic lost the read model".into()))
    }

    /// Stops, then clears the read model and its checkpoint. The runner stays stopped; start it
    /// (or call [`ProjectionRunner::rebuild`]) to replay all history.
    pub async fn reset(&mut self) -> Result<()> {
        self.stop().await?;
        let mut model = self.take_model()?;
        let (model, reset) = tokio::task::spawn_blocking(move || {
            let reset = model.reset();
            (model, reset)
        })
        .await
        .map_err(|_| ProjectionError::NotRunning("the reset panicked".into()))?;
        self.model = Some(model);
        reset?;
        self.status.send_modify(|status| {
            status.state = RunState::Stopped;
            status.checkpoint = Checkpoint::default();
            status.error = None;
        });
        Ok(())
    }

    /// Resets, then starts: replays all history into an empty read model. Follow its progress
    /// with [`ProjectionRunner::status`] ([`ProjectionStatus::progress`]).
    ///
    /// ```
    /// # async fn demo() -> Result<(), factum_projection::ProjectionError> {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// use factum_core::{EventStore, ExpectedRevision, ProposedEvent, StreamName};
    /// use factum_projection::{AccountSummary, ProjectionRunner, SqliteReadModel, all_accounts};
    ///
    /// let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
    /// let opened = ProposedEvent::json("AccountOpened", &serde_json::json!({
    ///     "owner": "Alice", "initial_balance_cents": 700,
    /// }))?;
    /// let written = store
    ///     .append(&StreamName::new("account-1")?, ExpectedRevision::NoStream, vec![opened])
    ///     .await?;
    ///
    /// let model = SqliteReadModel::open_in_memory(AccountSummary)?;
    /// let mut runner = ProjectionRunner::new(store, model)?;
    /// runner.run_until_caught_up(Duration::from_secs(5)).await?;
    ///
    /// // Say the table was damaged by hand: rebuild it from the events.
    /// let db = runner.model().expect("stopped").connection();
    /// db.execute("UPDATE account_summary SET balance_cents = 0", [])?;
    /// runner.rebuild().await?;
    /// // Another task can wait through a watcher while the runner replays.
    /// let watcher = runner.watcher();
    /// watcher.wait_for(written.position, Duration::from_secs(5)).await?;
    /// let model = runner.stop().await?;
    /// assert_eq!(all_accounts(model.connection())?[0].balance_cents, 700);
    /// # Ok(())
    /// # }
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn rebuild(&mut self) -> Result<()> {
        self.reset().await?;
        self.start()
    }

    /// Runs until the projection has processed everything up to the store's head as of this
    /// call, then stops: a one-shot catch-up (or, after [`ProjectionRunner::reset`], a one-shot
    /// rebuild). Errors as [`ProjectionRunner::wait_for`].
    pub async fn run_until_caught_up(&mut self, timeout: Duration) -> Result<ProjectionStatus> {
        let head = self.store.head().await?;
        self.start()?;
        let waited = self.wait_for(head, timeout).await;
        self.stop().await?;
        waited?;
        Ok(self.status())
    }

    /// The status as last reported: state, checkpoint, head, and from them the lag.
    pub fn status(&self) -> ProjectionStatus {
        self.status.borrow().clone()
    }

    /// Reads the store's head now and returns the status with it: the lag of a stopped runner,
    /// or a fresher one than the last batch's.
    pub async fn refresh(&self) -> Result<ProjectionStatus> {
        refresh_head(self.store.as_ref(), &self.status).await?;
        Ok(self.status())
    }

    /// A receiver of every status update (after each batch and each state change).
    pub fn watch_status(&self) -> watch::Receiver<ProjectionStatus> {
        self.status.subscribe()
    }

    /// A cloneable view of the status with [`ProjectionWatcher::wait_for`].
    pub fn watcher(&self) -> ProjectionWatcher {
        ProjectionWatcher {
            status: self.status.subscribe(),
        }
    }

    /// Read-your-writes: see [`ProjectionWatcher::wait_for`].
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<Checkpoint> {
        self.watcher().wait_for(position, timeout).await
    }

    /// The read model while stopped (`None` while running).
    pub fn model(&self) -> Option<&R> {
        self.model.as_ref()
    }

    /// Stops and returns the read model.
    pub async fn into_model(mut self) -> Result<R> {
        self.stop().await?;
        self.take_model()
    }

    fn take_model(&mut self) -> Result<R> {
        self.model
            .take()
            .ok_or_else(|| ProjectionError::NotRunning("a panic lost the read model".into()))
    }
}

/// Aborts the subscription reader when the runner task ends, however it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The runner task: commits batches until stopped or failed, then hands back the model.
async fn run<R: ReadModel>(
    store: Arc<dyn EventStore>,
    model: R,
    checkpoint: Checkpoint,
    options: RunnerOptions,
    status: watch::Sender<ProjectionStatus>,
    mut stop: oneshot::Receiver<()>,
) -> Option<R> {
    let fail = |model: R, error: ProjectionError| {
        failed(&status, error);
        Some(model)
    };
    if let Err(error) = refresh_head(store.as_ref(), &status).await {
        return fail(model, error);
    }
    let from = match checkpoint.position {
        Position::START => SubscriptionStart::Start,
        position => SubscriptionStart::After(position),
    };
    let subscription = Subscription::to_all(
        store.clone(),
        SubscribeToAllOptions {
            from,
            filter: model.filter(),
            include_system: false,
            checkpoint_interval: options.checkpoint_interval,
        },
    )
    .await;
    let mut subscription = match subscription {
        Ok(subscription) => subscription,
        Err(error) => return fail(model, error.into()),
    };
    // The subscription reads in its own task, so a page read is never cancelled half-way and
    // the runner sees at once what is ready: it commits what it has when the channel is empty.
    let (sender, mut messages) = mpsc::channel(options.batch_size);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            if sender.send(message).await.is_err() {
                return;
            }
        }
    }));
    let mut model = Some(model);
    let mut live = false;
    loop {
        let first = tokio::select! {
            biased;
            _ = &mut stop => return model,
            message = messages.recv() => message,
        };
        let mut batch: Vec<RecordedEvent> = Vec::new();
        let mut position = None;
        let mut next = first;
        // Bounded by the batch size: each round adds at most one event.
        loop {
            match next {
                None => {
                    let error = ProjectionError::NotRunning("the subscription ended".into());
                    return fail(model?, error);
                }
                Some(Err(error)) => return fail(model?, error.into()),
                Some(Ok(SubscriptionMessage::Event(event))) => {
                    position = Some(event.position);
                    batch.push(event);
                }
                Some(Ok(SubscriptionMessage::Checkpoint(checkpoint))) => {
                    position = Some(checkpoint);
                }
                Some(Ok(SubscriptionMessage::CaughtUp)) => live = true,
                Some(Ok(SubscriptionMessage::FellBehind)) => live = false,
            }
            if batch.len() >= options.batch_size {
                break;
            }
            match messages.try_recv() {
                Ok(message) => next = Some(message),
                Err(_) => break,
            }
        }
        if let Some(position) = position {
            let mut owned = model.take()?;
            let committed = tokio::task::spawn_blocking(move || {
                let committed = owned.commit(&batch, position);
                (owned, committed)
            })
            .await;
            let (owned, committed) = match committed {
                Ok(done) => done,
                Err(_) => {
                    let reason = "the projection panicked";
                    status.send_modify(|status| {
                        status.state = RunState::Failed(reason.into());
                        status.error = Some(Arc::new(ProjectionError::NotRunning(reason.into())));
                    });
                    return None;
                }
            };
            match committed {
                Ok(checkpoint) => {
                    status.send_modify(|status| status.checkpoint = checkpoint);
                    model = Some(owned);
                }
                Err(error) => return fail(owned, error),
            }
            if let Err(error) = refresh_head(store.as_ref(), &status).await {
                return fail(model?, error);
            }
        }
        let state = if live {
            RunState::Live
        } else {
            RunState::CatchingUp
        };
        status.send_if_modified(|status| {
            let changed = status.state != state;
            status.state = state;
            changed
        });
    }
}

/// Reports the runner stopped by `error`: its message in the state, the error beside it.
fn failed(status: &watch::Sender<ProjectionStatus>, error: ProjectionError) {
    status.send_modify(|status| {
        status.state = RunState::Failed(error.to_string());
        status.error = Some(Arc::new(error));
    });
}

/// Reads the store's head and its recorded time into the status.
async fn refresh_head(
    store: &dyn EventStore,
    status: &watch::Sender<ProjectionStatus>,
) -> Result<()> {
    let newest = store
        .read_all(ReadAllOptions::backwards().include_system().limit(1))
        .await?;
    let (head, recorded_at) = match newest.events.first() {
        Some(event) => (event.position, Some(event.recorded_at)),
        None => (Position::START, None),
    };
    status.send_modify(|status| {
        status.head = status.head.max(head);
        if status.head == head {
            status.head_recorded_at = recorded_at;
        }
    });
    Ok(())
}
