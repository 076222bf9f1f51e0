//! The command line: every command, option and help text of `factum`, parsed by clap.
//!
//! Values clap can check on its own (numbers, expected revisions, starts) are checked here, so a
//! malformed one is a usage error (exit code 2). Values only the store can judge (stream names,
//! event JSON) are checked by the commands, before anything is written.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use factum_core::ExpectedRevision;

/// What `factum --help` says after the list of commands.
const AFTER_HELP: &str = "\
Output is JSON, one object a line. Errors go to standard error as one line, `factum: <message>`.

Exit codes:
  0  success
  1  any other error (invalid input, I/O, the data directory is in use...)
  2  usage error (unknown option, malformed value)
  3  wrong expected revision (nothing was written)
  4  stream not found, or deleted

The data directory belongs to one process at a time: while one `factum` (a running `tail`, say)
holds it, another is refused with an error naming the holder's process id.

With --server URL (or FACTUM_SERVER=URL), append, read, read-all, tail, metadata, delete and user
work on a running `factum serve` (or another KurrentDB-compatible server) instead of a data
directory, with the same output, and `status` reads the server's metrics; bench, projections,
migrate-stream, demo and serve need a data directory and refuse it. URL is one of:

  http://HOST:PORT                              plain text
  kurrentdb://HOST:PORT?tls=false               plain text, as the KurrentDB clients write it
  kurrentdb://HOST:PORT?tlsCaFile=ca.pem        TLS (the default of kurrentdb:// URLs)
  https://HOST:PORT?tlsCaFile=ca.pem            TLS

TLS trusts the certificate authority in tlsCaFile (ca.pem of `factum dev-cert`);
tlsVerifyCert=false accepts any certificate instead, for development only. A secure server
wants a user: set FACTUM_USERNAME and FACTUM_PASSWORD (preferred: the password stays off the
command line), or write kurrentdb://USER:PASSWORD@HOST:PORT?... (percent-encoded; the URL's
user wins over the environment's). There is no password option.";

/// Factum's command-line tool: append events to and read them from an embedded event store, or
/// from a server.
#[derive(Debug, Parser)]
#[command(name = "factum", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The store's data directory. Commands that write (and `tail`) create it; commands that
    /// only read refuse a missing one.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "./factum-data"
    )]
    pub data_dir: PathBuf,

    /// Whether `--data-dir` was on the command line (set by `main`, not parsed): `bench` uses a
    /// temporary directory unless one was named, never the default store.
    #[arg(skip)]
    pub data_dir_given: bool,

    /// A server to work on instead of the data directory: http://HOST:PORT,
    /// kurrentdb://HOST:PORT?tls=false, or over TLS kurrentdb://HOST:PORT?tlsCaFile=ca.pem (or
    /// https://HOST:PORT?tlsCaFile=ca.pem). For append, read, read-all, tail, metadata, delete
    /// and user, and the server `status` summarises. Credentials: FACTUM_USERNAME and
    /// FACTUM_PASSWORD (see the end of --help).
    #[arg(long, global = true, value_name = "URL", env = "FACTUM_SERVER")]
    pub server: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Appends one event (--type and --data), or many from JSON lines (--jsonl), atomically.
    ///
    /// Prints `{"position":P,"revision":R}`: the position and revision of the last event.
    ///
    /// With --jsonl, each non-empty line is one event, a JSON object:
    /// `{"type": "T", "data": <any JSON>, "metadata": <any JSON>, "id": "<uuid>",
    /// "schema_version": N, "tags": ["..."]}`; only "type" and the data are required. For binary
    /// data write `"data_base64": "<base64>"` instead of "data" (the content type becomes
    /// application/octet-stream unless "content_type" says another; "metadata_base64"
    /// likewise). It is the HTTP API's event form. All lines are checked before the
    /// store is touched, and they are appended as ONE append: all of them or none.
    ///
    /// Examples:
    ///   factum append account-1 --type Opened --data '{"owner":"alice"}'
    ///   factum append account-1 --expected-revision 0 --jsonl - < events.jsonl
    #[command(verbatim_doc_comment)]
    Append(AppendArgs),

    /// Reads one stream, oldest first, as JSON lines.
    ///
    /// Each line holds every field of the recorded event: id, stream, revision, position, type,
    /// schema_version, content_type, data (inline JSON for application/json data that parses,
    /// otherwise data_base64), metadata (inline JSON if it parses, otherwise metadata_base64;
    /// left out when empty), tags, recorded_at (RFC 3339, UTC).
    Read(ReadArgs),

    /// Reads the global log ($all), oldest first, as JSON lines (fields as for `read`).
    ReadAll(ReadAllArgs),

    /// Follows a stream (or, with --all, the global log): a catch-up subscription that prints
    /// the past events as JSON lines, then waits for new ones, until Ctrl-C, SIGTERM, or
    /// standard output closing.
    ///
    /// The embedded store belongs to one process: while `tail` runs it holds the data
    /// directory, and every other `factum` on it (an `append`, say) is refused.
    Tail(TailArgs),

    /// Prints a stream's metadata as `{"metadata":{...},"revision":R}` (R is the metadata
    /// stream's revision, null if none was ever set), or with --set replaces it.
    ///
    /// The store honours "$maxCount", "$maxAge" (seconds) and "$tb" (truncate before); other
    /// keys are yours. --set replaces the whole object and prints `{"position":P,"revision":R}`.
    Metadata(MetadataArgs),

    /// Soft-deletes a stream (a later append brings it back, revisions continued), or with
    /// --tombstone deletes it for ever. Prints `{"position":P}`.
    Delete(DeleteArgs),

    /// Measures the store: fsync rate, append throughput and latency (1, 8 and 64 writers, and
    /// 100-event batches), reading the whole log and one stream, and reopening after a crash.
    /// Prints one JSON object.
    ///
    /// The store is a fresh temporary directory, removed at the end, unless --data-dir names
    /// one (missing or empty; it is kept). With --postgres, the append workloads also run
    /// against a plain PostgreSQL events table in a schema of their own, dropped at the end
    /// (fields prefixed `pg_`). A default run takes about two minutes.
    #[command(verbatim_doc_comment)]
    Bench(BenchArgs),

    /// The bench's child processes (bulk load, reopen after a crash); not for people.
    #[command(name = "__bench-child", hide = true)]
    BenchChild(BenchChildArgs),

    /// Shows and drives the built-in projections (account_summary, fraud_report), whose
    /// read models live in DATA-DIR/projections.sqlite: list, status (with lag), run
    /// (--follow), rebuild (with a progress bar), reset, query.
    #[command(verbatim_doc_comment)]
    Projections(crate::projections::ProjectionsArgs),

    /// Copies stream FROM into the new stream TO through a built-in schema's upcasters, so
    /// every copy has its current shape and schema version. Prints a JSON report.
    MigrateStream(crate::migrate::MigrateStreamArgs),

    /// Runs a demo end to end and prints it step by step: `factum demo bank` is the article's
    /// bank (aggregates, projections, snapshots, a fraud report replayed from history, and
    /// upcasting), on an embedded store in a temporary directory unless --data-dir names one.
    Demo(crate::demo::DemoArgs),

    /// Runs the server: the official KurrentDB clients (Python, Node, .NET, Java, Go, Rust)
    /// connect to it unchanged, e.g. `kurrentdb://localhost:2113?tls=false`.
    ///
    /// By default: the store in ./factum-data, listening on localhost:2113 (IPv4 and IPv6
    /// loopback), plain-text HTTP/2 with anonymous access. Prints `listening on ADDRESS` for
    /// each listener once ready; SIGINT/SIGTERM shut it down gracefully. --tls-cert and
    /// --tls-key serve TLS (SIGHUP reloads them); plain text beyond loopback needs --insecure.
    Serve(crate::serve::ServeArgs),

    /// Writes a development certificate authority (ca.pem) and a server certificate signed by
    /// it (server.pem, server.key; for localhost, 127.0.0.1 and ::1) into --out, for
    /// `factum serve --tls-cert server.pem --tls-key server.key`; clients trust ca.pem.
    DevCert(crate::dev_cert::DevCertArgs),

    /// Summarises a running server's metrics for a person: events stored and written, append
    /// rate, fsync latency (p50, p99) and group commits, active subscriptions and their worst
    /// lag, errors by kind. Needs --server URL (HTTP or, with the URL's TLS settings, HTTPS;
    /// credentials as for the other commands); --json prints one JSON object.
    ///
    /// The figures come from the server's Prometheus endpoint, GET /metrics.
    Status(crate::status::StatusArgs),

    /// Manages the users of a store (kept in the store itself, passwords hashed with Argon2id):
    /// add, passwd, disable, enable, list. Passwords are read from standard input, a file or an
    /// environment variable, never from the command line. Works on the data directory (with the
    /// server stopped) or on a server with --server.
    User(crate::user::UserArgs),
}

/// The arguments of `factum bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Prints the result as one JSON object (the only format there is).
    #[arg(long)]
    pub json: bool,

    /// The store's size for the read and reopen figures: a bulk load tops it up to N events.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub events: u64,

    /// Also runs the append workloads against PostgreSQL at URL
    /// (e.g. postgresql://postgres@127.0.0.1:5432/test).
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,

    /// The measured window of each append workload, in seconds (tests shorten it).
    #[arg(long, value_name = "S", default_value_t = 10.0, hide = true)]
    pub seconds: f64,

    /// The warm-up before each append workload, in seconds.
    #[arg(long, value_name = "S", default_value_t = 1.0, hide = true)]
    pub warmup_seconds: f64,

    /// The length of each fsync probe, in seconds.
    #[arg(long, value_name = "S", default_value_t = 3.0, hide = true)]
    pub fsync_probe_seconds: f64,

    /// Prints no progress on standard error.
    #[arg(long, hide = true)]
    pub quiet: bool,

    /// `factum bench toolkit`: the toolkit's figures instead (see its --help).
    #[command(subcommand)]
    pub mode: Option<crate::bench_toolkit::BenchMode>,
}

/// The arguments of the bench's child processes, passed through as they are.
#[derive(Debug, Args)]
pub struct BenchChildArgs {
    /// The role and its options.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The arguments of `factum append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The stream to append to.
    pub stream: String,

    /// The event's type (what happened, past tense).
    #[arg(long = "type", value_name = "TYPE", required_unless_present = "jsonl")]
    pub event_type: Option<String>,

    /// The event's data: valid JSON (content type application/json).
    #[arg(
        long,
        value_name = "JSON",
        required_unless_present_any = ["jsonl", "data_base64"],
        conflicts_with = "data_base64"
    )]
    pub data: Option<String>,

    /// The event's data as base64, for binary data (content type application/octet-stream).
    #[arg(long, value_name = "BASE64")]
    pub data_base64: Option<String>,

    /// The event's metadata: valid JSON.
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,

    /// The event's id, a UUID (generated if absent). Re-appending the same id is a no-op that
    /// returns the original result: the way to retry safely.
    #[arg(long, value_name = "UUID")]
    pub id: Option<String>,

    /// The version of the event type's data shape.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub schema_version: u32,

    /// A tag of the event (repeat for several).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Reads the events from FILE as JSON lines instead (`-` for standard input).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["event_type", "data", "data_base64", "metadata", "id", "tags"]
    )]
    pub jsonl: Option<PathBuf>,

    /// The stream's state the append requires: any, no-stream, exists, or the revision of the
    /// stream's last event.
    #[arg(long, value_name = "EXPECTED", default_value = "any", value_parser = parse_expected_revision)]
    pub expected_revision: ExpectedRevision,
}

/// The arguments of `factum read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The stream to read.
    pub stream: String,

    /// The revision to start at (inclusive, in either direction).
    #[arg(long, value_name = "REVISION")]
    pub from: Option<u64>,

    /// Reads newest first (from the last revision unless --from).
    #[arg(long)]
    pub backwards: bool,

    /// The most events to print.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

/// The arguments of `factum read-all`.
#[derive(Debug, Args)]
pub struct ReadAllArgs {
    /// The position to start at: forwards inclusive, backwards exclusive (events before it).
    #[arg(long, value_name = "POSITION")]
    pub from: Option<u64>,

    /// Reads newest first (from the end unless --from).
    #[arg(long)]
    pub backwards: bool,

    /// The most events to print (counted after filtering).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// Which events to keep.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Also prints system events: those of `$` streams (stream metadata) and of `$` types
    /// (tombstones).
    #[arg(long)]
    pub include_system: bool,
}

/// The filter options of `read-all` and `tail --all`: at most one kind at a time.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct FilterArgs {
    /// Keeps events of streams whose name starts with PREFIX (repeat for several).
    #[arg(long, value_name = "PREFIX")]
    pub stream_prefix: Vec<String>,

    /// Keeps events whose type starts with PREFIX (repeat for several).
    #[arg(long, value_name = "PREFIX")]
    pub type_prefix: Vec<String>,

    /// Keeps events of streams whose name matches REGEX (anywhere; anchor with ^...$).
    #[arg(long, value_name = "REGEX")]
    pub stream_regex: Option<String>,

    /// Keeps events whose type matches REGEX (anywhere; anchor with ^...$).
    #[arg(long, value_name = "REGEX")]
    pub type_regex: Option<String>,
}

/// The arguments of `factum tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The stream to follow.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub stream: Option<String>,

    /// Follows the global log instead of one stream.
    #[arg(long)]
    pub all: bool,

    /// Where to start: `start`, `end` (only new events), or a revision (a position with --all),
    /// inclusive.
    #[arg(long, value_name = "START", default_value = "start", value_parser = parse_tail_start)]
    pub from: TailStart,

    /// Which events to keep (with --all only).
    #[command(flatten)]
    pub filter: TailFilterArgs,
}

/// The filter options of `tail`, which make sense with --all only.
#[derive(Debug, Args)]
pub struct TailFilterArgs {
    /// Keeps events of streams whose name starts with PREFIX (repeat for several).
    #[arg(
        long,
        value_name = "PREFIX",
        requires = "all",
        conflicts_with_all = ["type_prefix", "stream"]
    )]
    pub stream_prefix: Vec<String>,

    /// Keeps events whose type starts with PREFIX (repeat for several).
    #[arg(
        long,
        value_name = "PREFIX",
        requires = "all",
        conflicts_with = "stream"
    )]
    pub type_prefix: Vec<String>,

    /// Also prints system events.
    #[arg(long, requires = "all", conflicts_with = "stream")]
    pub include_system: bool,
}

/// Where `tail` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailStart {
    /// From the first event.
    Start,
    /// After the last event: only new ones.
    End,
    /// From this revision (or position), inclusive.
    At(u64),
}

/// The arguments of `factum metadata`.
#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// The stream whose metadata to print or set.
    pub stream: String,

    /// Replaces the metadata with this JSON object.
    #[arg(long, value_name = "JSON")]
    pub set: Option<String>,

    /// With --set: the metadata stream's state the change requires (any, no-stream, exists,
    /// or the revision `metadata` printed).
    #[arg(
        long,
        value_name = "EXPECTED",
        default_value = "any",
        value_parser = parse_expected_revision,
        requires = "set"
    )]
    pub expected_revision: ExpectedRevision,
}

/// The arguments of `factum delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The stream to delete.
    pub stream: String,

    /// Deletes the stream for ever: every later read, append or delete of it fails.
    #[arg(long)]
    pub tombstone: bool,

    /// The stream's state the delete requires: any, no-stream, exists, or the revision of the
    /// stream's last event.
    #[arg(long, value_name = "EXPECTED", default_value = "any", value_parser = parse_expected_revision)]
    pub expected_revision: ExpectedRevision,
}

/// Parses `any`, `no-stream`, `exists` (or `stream-exists`) or a revision number.
pub fn parse_expected_revision(text: &str) -> Result<ExpectedRevision, String> {
    match text {
        "any" => Ok(ExpectedRevision::Any),
        "no-stream" => Ok(ExpectedRevision::NoStream),
        "exists" | "stream-exists" => Ok(ExpectedRevision::StreamExists),
        number => number.parse().map(ExpectedRevision::Exact).map_err(|_| {
            format!("expected `any`, `no-stream`, `exists` or a revision number, not {number:?}")
        }),
    }
}

/// Parses `start`, `end` or a revision (position) number.
pub fn parse_tail_start(text: &str) -> Result<TailStart, String> {
    match text {
        "start" => Ok(TailStart::Start),
        "end" => Ok(TailStart::End),
        number => number
            .parse()
            .map(TailStart::At)
            .map_err(|_| format!("expected `start`, `end` or a number, not {number:?}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("factum").chain(line.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_expected_revisions() {
        assert_eq!(parse_expected_revision("any"), Ok(ExpectedRevision::Any));
        assert_eq!(
            parse_expected_revision("no-stream"),
            Ok(ExpectedRevision::NoStream)
        );
        assert_eq!(
            parse_expected_revision("exists"),
            Ok(ExpectedRevision::StreamExists)
        );
        assert_eq!(parse_expected_revision("7"), Ok(ExpectedRevision::Exact(7)));
        assert!(parse_expected_revision("-1").is_err());
        assert!(parse_expected_revision("maybe").is_err());
    }

    #[test]
    fn parses_tail_starts() {
        assert_eq!(parse_tail_start("start"), Ok(TailStart::Start));
        assert_eq!(parse_tail_start("end"), Ok(TailStart::End));
        assert_eq!(parse_tail_start("12"), Ok(TailStart::At(12)));
        assert!(parse_tail_start("later").is_err());
    }

    #[test]
    fn append_needs_a_type_and_data_or_jsonl() {
        assert!(parse(&["append", "s", "--type", "T", "--data", "{}"]).is_ok());
        assert!(parse(&["append", "s", "--type", "T", "--data-base64", "AA=="]).is_ok());
        assert!(parse(&["append", "s", "--jsonl", "-"]).is_ok());
        assert!(parse(&["append", "s", "--type", "T"]).is_err());
        assert!(parse(&["append", "s", "--data", "{}"]).is_err());
        assert!(parse(&["append", "s", "--jsonl", "-", "--type", "T"]).is_err());
        let both = [
            "append",
            "s",
            "--type",
            "T",
            "--data",
            "1",
            "--data-base64",
            "AA==",
        ];
        assert!(parse(&both).is_err());
    }

    #[test]
    fn filters_of_read_all_exclude_each_other() {
        assert!(parse(&["read-all", "--stream-prefix", "a", "--stream-prefix", "b"]).is_ok());
        assert!(parse(&["read-all", "--stream-prefix", "a", "--include-system"]).is_ok());
        assert!(parse(&["read-all", "--stream-prefix", "a", "--type-prefix", "b"]).is_err());
    }

    #[test]
    fn tail_takes_a_stream_or_all() {
        assert!(parse(&["tail", "s"]).is_ok());
        assert!(parse(&["tail", "--all", "--type-prefix", "T"]).is_ok());
        assert!(parse(&["tail"]).is_err());
        assert!(parse(&["tail", "s", "--all"]).is_err());
        assert!(parse(&["tail", "s", "--stream-prefix", "a"]).is_err());
    }

    #[test]
    fn bench_defaults_to_the_method_of_issue_3() {
        let Command::Bench(args) = parse(&["bench", "--json"]).unwrap().command else {
            panic!("not the bench command");
        };
        assert_eq!(args.events, 1_000_000);
        assert_eq!(args.seconds, 10.0);
        assert_eq!(args.warmup_seconds, 1.0);
        assert_eq!(args.fsync_probe_seconds, 3.0);
        assert_eq!(args.postgres, None);
    }

    #[test]
    fn the_bench_child_takes_its_options_verbatim() {
        let line = ["__bench-child", "load", "--dir", "/tmp/x", "--events", "5"];
        let Command::BenchChild(args) = parse(&line).unwrap().command else {
            panic!("not the bench child command");
        };
        assert_eq!(args.args, ["load", "--dir", "/tmp/x", "--events", "5"]);
    }

    #[test]
    fn the_server_is_a_global_option() {
        assert_eq!(parse(&["read", "s"]).unwrap().server, None);
        let url = "http://127.0.0.1:2113";
        assert_eq!(
            parse(&["--server", url, "read", "s"])
                .unwrap()
                .server
                .as_deref(),
            Some(url)
        );
        assert_eq!(
            parse(&["read", "s", "--server", url])
                .unwrap()
                .server
                .as_deref(),
            Some(url)
        );
    }

    #[test]
    fn the_data_dir_is_global_with_a_default() {
        let cli = parse(&["read", "s"]).unwrap();
        assert_eq!(cli.data_dir, PathBuf::from("./factum-data"));
        let cli = parse(&["read", "s", "--data-dir", "/tmp/x"]).unwrap();
        assert_eq!(cli.data_dir, PathBuf::from("/tmp/x"));
    }
}
