//! What can stop the demo, and how a caller handles each case.

use std::path::PathBuf;

use factum::aggregate::RepositoryError;
use factum::aggregate::examples::bank::BankError;
use factum::aggregate::examples::order::OrderError;
use factum::codec::CodecError;
use factum::projection::ProjectionError;

/// Why the demo stopped. Every step writes to the store through the toolkit, so most variants
/// wrap the toolkit's own errors unchanged: match on them as the toolkit documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExampleError {
    /// The event store failed (see [`factum::Error`]).
    #[error(transparent)]
    Store(#[from] factum::Error),
    /// A command on a bank account failed in a way the script does not expect (the refused
    /// withdrawal is expected, and reported in [`Refused`](crate::Refused)).
    #[error(transparent)]
    Account(#[from] RepositoryError<BankError>),
    /// A command on an order failed.
    #[error(transparent)]
    Order(#[from] RepositoryError<OrderError>),
    /// A projection or its SQLite read model failed.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// An event did not encode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A file-system operation or writing the demo's text failed; `context` says which.
    #[error("{context}")]
    Io {
        /// What the demo was doing.
        context: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A named data directory already holds something: the demo refuses to mix its accounts
    /// into it. Name a missing or empty directory, or none (a temporary one is used).
    #[error(
        "the demo needs a missing or empty data directory, and {} is not empty",
        .0.display()
    )]
    DirectoryNotEmpty(PathBuf),
    /// One of the concurrent commands panicked or was cancelled.
    #[error("a concurrent command did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The store answered something the script rules out (a bug in the demo or the toolkit):
    /// what was expected.
    #[error("the demo's script went wrong: {0}")]
    Script(String),
}

impl ExampleError {
    /// An [`ExampleError::Io`] saying what the demo was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> ExampleError {
        ExampleError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Writing the demo's text: the only I/O error without a context of its own.
impl From<std::io::Error> for ExampleError {
    fn from(source: std::io::Error) -> ExampleError {
        ExampleError::io("cannot write the demo's text", source)
    }
}

/// The result type of this crate.
pub type Result<T, E = ExampleError> = std::result::Result<T, E>;
