//! The commands: each checks its input, opens the store, does one thing and prints JSON lines.
//!
//! The store is chosen once, from the command line: the embedded store in the data directory,
//! or a server (`--server URL`, or `FACTUM_SERVER`, with the credentials of `FACTUM_USERNAME`
//! and `FACTUM_PASSWORD`) through [`RemoteStore`]. The commands that read and write events
//! (append, read, read-all, tail, metadata, delete) work on either, as an `Arc<dyn
//! EventStore>`; the others need the data directory itself and refuse a server.
//!
//! Input is checked before the store is opened, so a command with bad input neither creates a
//! data directory nor writes anything. Every write is one store call, atomic by the store's
//! contract, so a failed command changes nothing.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use factum_client::{ConnectionSettings, Credentials, RemoteStore};
use factum_core::{
    AllStart, CONTENT_TYPE_BYTES, CONTENT_TYPE_JSON, Direction, Error, EventFilter, EventStore,
    Position, ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamMetadata,
    StreamName, StreamStart, SubscribeToAllOptions, SubscribeToStreamOptions, Subscription,
    SubscriptionMessage, SubscriptionStart,
};
use factum_log::EmbeddedStore;
use tokio::io::AsyncWriteExt;

use crate::args::{
    AppendArgs, BenchArgs, Cli, Command, DeleteArgs, FilterArgs, MetadataArgs, ReadAllArgs,
    ReadArgs, TailArgs, TailStart,
};
use crate::json;

/// The exit code of any error without a code of its own.
const EXIT_FAILURE: u8 = 1;
/// The exit code of a wrong expected revision.
const EXIT_WRONG_EXPECTED_REVISION: u8 = 3;
/// The exit code of a stream that is not found or deleted.
const EXIT_NOT_FOUND: u8 = 4;

/// The environment variable that names a server when `--server` does not.
const SERVER_ENV: &str = "FACTUM_SERVER";

/// The environment variable of the user name sent to a server (with [`PASSWORD_ENV`]).
const USERNAME_ENV: &str = "FACTUM_USERNAME";

/// The environment variable of the password sent to a server (with [`USERNAME_ENV`]).
const PASSWORD_ENV: &str = "FACTUM_PASSWORD";

/// Runs the command the command line asks for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let target = StoreTarget::choose(&cli)?;
    let anonymous = target.is_anonymous_server();
    let outcome = run_on(&target, cli).await;
    match outcome {
        Err(error) if anonymous && is_unauthenticated(&error) => Err(error.context(format!(
            "the server wants a user: set {USERNAME_ENV} and {PASSWORD_ENV}"
        ))),
        outcome => outcome,
    }
}

/// Whether the server refused the credentials (or their absence), directly or through the
/// users' store.
fn is_unauthenticated(error: &anyhow::Error) -> bool {
    let unauthenticated = |error: &Error| matches!(error, Error::Unauthenticated { .. });
    error.downcast_ref::<Error>().is_some_and(unauthenticated)
        || matches!(
            error.downcast_ref::<factum_server::auth::users::UserError>(),
            Some(factum_server::auth::users::UserError::Store(error)) if unauthenticated(error)
        )
}

async fn run_on(target: &StoreTarget, cli: Cli) -> anyhow::Result<()> {
    let dir = cli.data_dir.as_path();
    match cli.command {
        Command::Append(args) => append(target, args).await,
        Command::Read(args) => read(target, args).await,
        Command::ReadAll(args) => read_all(target, args).await,
        Command::Tail(args) => tail(target, args).await,
        Command::Metadata(args) => metadata(target, args).await,
        Command::Delete(args) => delete(target, args).await,
        Command::Bench(args) => bench(cli.data_dir_given.then_some(dir), args).await,
        Command::BenchChild(args) => factum_bench::run_child(&args.args).await,
        Command::Projections(args) => crate::projections::run(dir, args).await,
        Command::MigrateStream(args) => crate::migrate::run(dir, args).await,
        Command::Demo(args) => crate::demo::run(cli.data_dir_given.then_some(dir), args).await,
        Command::Serve(args) => crate::serve::run(dir, cli.data_dir_given, args).await,
        Command::DevCert(args) => crate::dev_cert::run(args),
        Command::Status(args) => crate::status::run(cli.server.as_deref(), args).await,
        Command::User(args) => crate::user::run(target.open(true).await?, args).await,
    }
}

/// Runs the bench; its children are this executable, run as `factum __bench-child ...`.
async fn bench(data_dir: Option<&Path>, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(crate::bench_toolkit::BenchMode::Toolkit(toolkit)) = args.mode {
        return crate::bench_toolkit::run(data_dir, toolkit).await;
    }
    if let Some(crate::bench_toolkit::BenchMode::Server(server)) = args.mode {
        return crate::bench_server::run(data_dir, server).await;
    }
    let exe = std::env::current_exe().context("cannot find the factum executable")?;
    let mut config = factum_bench::BenchConfig::new(exe);
    config.events = args.events;
    config.data_dir = data_dir.map(Path::to_path_buf);
    config.postgres = args.postgres;
    config.seconds = args.seconds;
    config.warmup_seconds = args.warmup_seconds;
    config.fsync_probe_seconds = args.fsync_probe_seconds;
    config.progress = !args.quiet;
    let result = factum_bench::run(config).await?;
    print_line(&result.to_string())
}

/// The exit code for an error: distinct codes for the outcomes scripts branch on.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<Error>() {
        Some(Error::WrongExpectedRevision { .. }) => EXIT_WRONG_EXPECTED_REVISION,
        Some(Error::StreamNotFound { .. } | Error::StreamDeleted { .. }) => EXIT_NOT_FOUND,
        _ => EXIT_FAILURE,
    }
}

/// The error as one line of text: its causes joined, line breaks flattened.
pub fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The store the commands work on, chosen once from the command line.
enum StoreTarget {
    /// The embedded store in this data directory.
    Local(PathBuf),
    /// The server at this URL.
    Remote(String),
}

impl StoreTarget {
    /// The data directory, or the server `--server` (or `FACTUM_SERVER`) names. A server is
    /// refused with `--data-dir`, and by the commands that need a data directory.
    fn choose(cli: &Cli) -> anyhow::Result<StoreTarget> {
        let Some(url) = &cli.server else {
            return Ok(StoreTarget::Local(cli.data_dir.clone()));
        };
        let from_env = std::env::var(SERVER_ENV).ok().as_ref() == Some(url);
        // Messages quote the URL without its password.
        let shown = factum_client::redact_password(url);
        let named = if from_env {
            format!("{SERVER_ENV}={shown}")
        } else {
            format!("--server {shown}")
        };
        let local_only = match &cli.command {
            Command::Append(_)
            | Command::Read(_)
            | Command::ReadAll(_)
            | Command::Tail(_)
            | Command::Metadata(_)
            | Command::Delete(_)
            | Command::DevCert(_)
            | Command::Status(_)
            | Command::User(_) => None,
            Command::Bench(_) | Command::BenchChild(_) => Some("bench"),
            Command::Projections(_) => Some("projections"),
            Command::MigrateStream(_) => Some("migrate-stream"),
            Command::Demo(_) => Some("demo"),
            Command::Serve(_) => Some("serve"),
        };
        if let Some(command) = local_only {
            bail!("`factum {command}` works on a data directory, not on a server: remove {named}");
        }
        if cli.data_dir_given {
            bail!("--data-dir and {named} name two stores: give one of them");
        }
        Ok(StoreTarget::Remote(url.clone()))
    }

    /// Whether this is a server that gets no credentials (neither in its URL nor from the
    /// environment).
    fn is_anonymous_server(&self) -> bool {
        match self {
            StoreTarget::Local(_) => false,
            StoreTarget::Remote(url) => server_settings(url, |name| std::env::var(name).ok())
                .is_ok_and(|settings| settings.credentials.is_none()),
        }
    }

    /// Opens the store. A command that only reads (`create` false) refuses a missing data
    /// directory, as [`open`] does.
    async fn open(&self, create: bool) -> anyhow::Result<Arc<dyn EventStore>> {
        match self {
            StoreTarget::Local(dir) => Ok(Arc::new(open(dir, create)?)),
            StoreTarget::Remote(url) => {
                let settings = server_settings(url, |name| std::env::var(name).ok())?;
                Ok(Arc::new(RemoteStore::connect_with(settings).await?))
            }
        }
    }
}

/// The connection settings of a server URL, with the credentials of `FACTUM_USERNAME` and
/// `FACTUM_PASSWORD` (read through `env`) when the URL has none: a password in the URL is
/// accepted, as the KurrentDB clients accept it, but the environment keeps it out of the
/// command line (and so out of `ps` and shell histories).
pub(crate) fn server_settings(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<ConnectionSettings> {
    let mut settings = ConnectionSettings::parse(url)?;
    if settings.credentials.is_some() {
        return Ok(settings);
    }
    settings.credentials = match (env(USERNAME_ENV), env(PASSWORD_ENV)) {
        (None, None) => None,
        (Some(username), Some(password)) => Some(
            Credentials::new(username, password)
                .map_err(|error| anyhow!("{USERNAME_ENV}: {error}"))?,
        ),
        (Some(_), None) => bail!("{USERNAME_ENV} is set but {PASSWORD_ENV} is not: set both"),
        (None, Some(_)) => bail!("{PASSWORD_ENV} is set but {USERNAME_ENV} is not: set both"),
    };
    Ok(settings)
}

/// Opens the store. Commands that only read refuse a missing directory rather than create an
/// empty one: a mistyped `--data-dir` should say so, not answer "not found".
pub(crate) fn open(dir: &Path, create: bool) -> anyhow::Result<EmbeddedStore> {
    if !create && !dir.is_dir() {
        bail!(
            "the data directory {} does not exist (`factum append` creates it)",
            dir.display()
        );
    }
    EmbeddedStore::open(dir).map_err(|error| match error {
        Error::Io(_) => anyhow::Error::new(error)
            .context(format!("cannot open the data directory {}", dir.display())),
        other => other.into(),
    })
}

fn stream_name(name: &str) -> anyhow::Result<StreamName> {
    Ok(StreamName::new(name)?)
}

async fn append(target: &StoreTarget, args: AppendArgs) -> anyhow::Result<()> {
    let stream = stream_name(&args.stream)?;
    let events = match &args.jsonl {
        Some(path) => read_jsonl(path)?,
        None => vec![single_event(&args).map_err(|error| anyhow!(error))?],
    };
    let store = target.open(true).await?;
    let result = store
        .append(&stream, args.expected_revision, events)
        .await?;
    print_line(&json::render_append(&result))
}

/// Reads and parses every event of `--jsonl` before anything is written.
fn read_jsonl(path: &Path) -> anyhow::Result<Vec<ProposedEvent>> {
    let (text, source) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        (text, "standard input".to_owned())
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        (text, path.display().to_string())
    };
    json::parse_event_lines(&text).map_err(|error| anyhow!("{source}, {error}"))
}

/// The one event of `append --type ... --data ...`.
fn single_event(args: &AppendArgs) -> Result<ProposedEvent, String> {
    let event_type = args.event_type.clone().unwrap_or_default();
    let mut event = match (&args.data, &args.data_base64) {
        (Some(data), _) => ProposedEvent::new(
            event_type,
            CONTENT_TYPE_JSON,
            json::json_bytes(data, "--data")?,
        ),
        (None, Some(data)) => ProposedEvent::new(
            event_type,
            CONTENT_TYPE_BYTES,
            factum_core::event_json::base64_bytes(data, "--data-base64")?,
        ),
        (None, None) => return Err("--data or --data-base64 is required".into()),
    };
    if let Some(metadata) = &args.metadata {
        event = event.with_metadata(json::json_bytes(metadata, "--metadata")?);
    }
    if let Some(id) = &args.id {
        event = event.with_id(
            factum_core::event_json::parse_event_id(id).map_err(|error| format!("--{error}"))?,
        );
    }
    Ok(event
        .with_schema_version(args.schema_version)
        .with_tags(args.tags.iter().cloned()))
}

async fn read(target: &StoreTarget, args: ReadArgs) -> anyhow::Result<()> {
    let stream = stream_name(&args.stream)?;
    let mut options = if args.backwards {
        ReadStreamOptions::backwards()
    } else {
        ReadStreamOptions::forwards()
    };
    if let Some(revision) = args.from {
        options.from = StreamStart::Revision(revision);
    }
    if let Some(limit) = args.limit {
        options.limit = limit;
    }
    let store = target.open(false).await?;
    let events = store.read_stream(&stream, options).await?;
    print_events(&events)
}

async fn read_all(target: &StoreTarget, args: ReadAllArgs) -> anyhow::Result<()> {
    let mut options = ReadAllOptions {
        direction: if args.backwards {
            Direction::Backwards
        } else {
            Direction::Forwards
        },
        from: match (args.from, args.backwards) {
            (Some(position), _) => AllStart::Position(Position(position)),
            (None, false) => AllStart::Start,
            (None, true) => AllStart::End,
        },
        filter: filter(&args.filter)?,
        include_system: args.include_system,
        ..ReadAllOptions::forwards()
    };
    if let Some(limit) = args.limit {
        options.limit = limit;
    }
    let store = target.open(false).await?;
    let slice = store.read_all(options).await?;
    print_events(&slice.events)
}

/// The filter of `read-all`: at most one kind, as the arguments enforce.
fn filter(args: &FilterArgs) -> anyhow::Result<Option<EventFilter>> {
    let filter = if !args.stream_prefix.is_empty() {
        Some(EventFilter::StreamPrefix(args.stream_prefix.clone()))
    } else if !args.type_prefix.is_empty() {
        Some(EventFilter::EventTypePrefix(args.type_prefix.clone()))
    } else if let Some(pattern) = &args.stream_regex {
        Some(EventFilter::stream_regex(pattern)?)
    } else if let Some(pattern) = &args.type_regex {
        Some(EventFilter::event_type_regex(pattern)?)
    } else {
        None
    };
    Ok(filter)
}

async fn tail(target: &StoreTarget, args: TailArgs) -> anyhow::Result<()> {
    let stream = args.stream.as_deref().map(stream_name).transpose()?;
    let store = target.open(true).await?;
    let mut subscription = match stream {
        Some(stream) => {
            let from = match args.from {
                TailStart::Start | TailStart::At(0) => SubscriptionStart::Start,
                TailStart::End => SubscriptionStart::End,
                TailStart::At(revision) => SubscriptionStart::After(revision - 1),
            };
            let options = SubscribeToStreamOptions { from };
            Subscription::to_stream(store.clone(), stream, options).await?
        }
        None => {
            let from = match args.from {
                TailStart::Start | TailStart::At(0) => SubscriptionStart::Start,
                TailStart::End => SubscriptionStart::End,
                TailStart::At(position) => SubscriptionStart::After(Position(position - 1)),
            };
            let filter = if !args.filter.stream_prefix.is_empty() {
                Some(EventFilter::StreamPrefix(args.filter.stream_prefix))
            } else if !args.filter.type_prefix.is_empty() {
                Some(EventFilter::EventTypePrefix(args.filter.type_prefix))
            } else {
                None
            };
            let options = SubscribeToAllOptions {
                from,
                filter,
                include_system: args.filter.include_system,
                ..SubscribeToAllOptions::default()
            };
            Subscription::to_all(store.clone(), options).await?
        }
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut stdout = tokio::io::stdout();
    loop {
        let message = tokio::select! {
            () = &mut shutdown => return Ok(()),
            message = subscription.next() => message,
        };
        let event = match message {
            None => return Ok(()),
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(SubscriptionMessage::Event(event))) => event,
            Some(Ok(_)) => continue,
        };
        let mut line = json::render_event(&event);
        line.push('\n');
        let written = async {
            stdout.write_all(line.as_bytes()).await?;
            stdout.flush().await
        };
        let written = tokio::select! {
            () = &mut shutdown => return Ok(()),
            written = written => written,
        };
        match written {
            Ok(()) => {}
            // Whoever read our output (`| head`, say) has had enough: a clean stop.
            Err(error) if error.kind() == ErrorKind::BrokenPipe => return Ok(()),
            Err(error) => return Err(anyhow::Error::new(error).context("cannot write output")),
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        // If the handler cannot be installed the default action (exit) still applies.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

async fn metadata(target: &StoreTarget, args: MetadataArgs) -> anyhow::Result<()> {
    let stream = stream_name(&args.stream)?;
    match &args.set {
        None => {
            let store = target.open(false).await?;
            let result = store.stream_metadata(&stream).await?;
            print_line(&json::render_metadata(&result))
        }
        Some(text) => {
            let bytes = json::json_bytes(text, "--set").map_err(|error| anyhow!(error))?;
            let metadata = StreamMetadata::from_json(&bytes)?;
            let store = target.open(true).await?;
            let result = store
                .set_stream_metadata(&stream, args.expected_revision, &metadata)
                .await?;
            print_line(&json::render_append(&result))
        }
    }
}

async fn delete(target: &StoreTarget, args: DeleteArgs) -> anyhow::Result<()> {
    let stream = stream_name(&args.stream)?;
    let store = target.open(true).await?;
    let result = if args.tombstone {
        store
            .tombstone_stream(&stream, args.expected_revision)
            .await?
    } else {
        store.delete_stream(&stream, args.expected_revision).await?
    };
    print_line(&json::render_delete(&result))
}

pub(crate) fn print_line(line: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    finish_output(writeln!(stdout, "{line}").and_then(|()| stdout.flush()))
}

fn print_events(events: &[RecordedEvent]) -> anyhow::Result<()> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let written = events
        .iter()
        .try_for_each(|event| writeln!(stdout, "{}", json::render_event(event)))
        .and_then(|()| stdout.flush());
    finish_output(written)
}

/// A closed standard output (`| head`) is a clean stop, not an error.
fn finish_output(written: std::io::Result<()>) -> anyhow::Result<()> {
    match written {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("cannot write output"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use factum_core::{CurrentRevision, ExpectedRevision};

    use super::*;

    #[test]
    fn exit_codes_tell_outcomes_apart() {
        let stream = StreamName::new("s").unwrap();
        let wrong = anyhow::Error::new(Error::WrongExpectedRevision {
            stream: stream.clone(),
            expected: ExpectedRevision::NoStream,
            actual: CurrentRevision::Current(0),
        });
        assert_eq!(exit_code(&wrong), 3);
        let missing = anyhow::Error::new(Error::StreamNotFound {
            stream: stream.clone(),
        });
        assert_eq!(exit_code(&missing), 4);
        let deleted = anyhow::Error::new(Error::StreamDeleted { stream });
        assert_eq!(exit_code(&deleted), 4);
        assert_eq!(exit_code(&anyhow!("anything else")), 1);
    }

    #[test]
    fn server_credentials_come_from_the_url_or_else_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        let user = |settings: ConnectionSettings| {
            settings
                .credentials
                .map(|credentials| credentials.username().to_owned())
        };
        let both = &[(USERNAME_ENV, "alice"), (PASSWORD_ENV, "pw")];
        let url = "kurrentdb://localhost:1?tls=false";
        assert_eq!(user(server_settings(url, env(&[])).unwrap()), None);
        assert_eq!(
            user(server_settings(url, env(both)).unwrap()).as_deref(),
            Some("alice")
        );
        // The URL's user wins over the environment's.
        let in_url = "kurrentdb://bob:x@localhost:1?tls=false";
        assert_eq!(
            user(server_settings(in_url, env(both)).unwrap()).as_deref(),
            Some("bob")
        );
        let half = server_settings(url, env(&[(USERNAME_ENV, "alice")])).unwrap_err();
        assert!(half.to_string().contains(PASSWORD_ENV), "{half}");
        let half = server_settings(url, env(&[(PASSWORD_ENV, "pw")])).unwrap_err();
        assert!(half.to_string().contains(USERNAME_ENV), "{half}");
        let empty = server_settings(url, env(&[(USERNAME_ENV, ""), (PASSWORD_ENV, "pw")]));
        assert!(empty.is_err());
    }

    #[test]
    fn errors_fit_on_one_line() {
        let error = anyhow!("first\nsecond\r\n").context("outer");
        assert_eq!(one_line(&error), "outer: first second");
    }
}
