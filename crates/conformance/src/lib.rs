//! The conformance suite: the executable form of the contract in `factum-core`.
//!
//! Every backend runs the same cases, unchanged, from one line in its tests:
//!
//! ```
//! use std::sync::Arc;
//! use factum_memory::MemoryStore;
//!
//! async fn new_store() -> Arc<MemoryStore> {
//!     Arc::new(MemoryStore::new())
//! }
//!
//! factum_conformance::conformance_tests!(new_store);
//! # fn main() {}
//! ```
//!
//! The macro makes one `#[tokio::test]` per area (append, reads, deletion, subscriptions...);
//! each runs all cases of its area concurrently, each case on a fresh store from the factory,
//! and fails naming every case that failed. Cases assert behaviour only through the
//! [`EventStore`] trait, and assume nothing a backend may legitimately differ in (positions may
//! have gaps; only their order and uniqueness are checked).
//!
//! [`run_cases`] runs cases without panicking, for tests that prove the suite catches a broken
//! backend.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use factum_core::EventStore;

pub mod append;
pub mod concurrency;
pub mod delete;
pub mod limits;
pub mod metadata;
pub mod model;
pub mod read_all;
pub mod read_stream;
pub mod subscriptions;
pub mod support;

/// A boxed case future.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One named conformance case: given a fresh store, it panics if the store breaks the
/// contract.
pub struct Case<S> {
    /// `area::case`, for reports.
    pub name: &'static str,
    /// Runs the case on a fresh store.
    pub run: fn(Arc<S>) -> CaseFuture,
}

/// Makes a [`Case`] from an `async fn(Arc<S>)` in the calling module; the name is
/// `module::function`.
#[macro_export]
macro_rules! case {
    ($function:ident) => {
        $crate::Case {
            name: concat!(module_path!(), "::", stringify!($function)),
            run: |store| Box::pin($function(store)),
        }
    };
}

/// A case that failed, and the panic message it failed with.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The case's name.
    pub name: &'static str,
    /// What it said.
    pub message: String,
}

/// Runs `cases` concurrently, each on a fresh store from `new_store`, and returns the
/// failures (empty when the backend passes).
pub async fn run_cases<S, F, Fut>(cases: Vec<Case<S>>, new_store: F) -> Vec<Failure>
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let mut running = Vec::with_capacity(cases.len());
    for case in cases {
        let store = new_store().await;
        running.push((case.name, tokio::spawn((case.run)(store))));
    }
    let mut failures = Vec::new();
    for (name, task) in running {
        if let Err(error) = task.await {
            let message = match error.try_into_panic() {
                Ok(panic) => panic_message(panic.as_ref()),
                Err(error) => error.to_string(),
            };
            failures.push(Failure { name, message });
        }
    }
    failures
}

/// Runs `cases` and panics listing every failure: what the generated tests call.
pub async fn assert_cases_pass<S, F, Fut>(cases: Vec<Case<S>>, new_store: F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let total = cases.len();
    let failures = run_cases(cases, new_store).await;
    if !failures.is_empty() {
        let report: Vec<String> = failures
            .iter()
            .map(|failure| format!("- {}: {}", failure.name, failure.message))
            .collect();
        panic!(
            "{} of {total} conformance cases failed:\n{}",
            failures.len(),
            report.join("\n")
        );
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        return (*message).to_owned();
    }
    if let Some(message) = panic.downcast_ref::<String>() {
        return message.clone();
    }
    "a panic without a message".to_owned()
}

/// Every case of every area, for [`run_cases`].
pub fn all_cases<S: EventStore>() -> Vec<Case<S>> {
    let mut cases = Vec::new();
    cases.extend(append::cases());
    cases.extend(read_stream::cases());
    cases.extend(read_all::cases());
    cases.extend(limits::cases());
    cases.extend(delete::cases());
    cases.extend(metadata::cases());
    cases.extend(subscriptions::cases());
    cases.extend(concurrency::cases());
    cases
}

/// Generates the suite's tests for a backend: one `#[tokio::test]` per area, plus the
/// model-based property test. `$new_store` is an `async fn() -> Arc<S>` (or a closure
/// returning such a future) that makes a fresh, empty store.
#[macro_export]
macro_rules! conformance_tests {
    ($new_store:expr) => {
        mod conformance {
            #[allow(unused_imports, reason = "the factory may be a path from the parent module")]
            use super::*;

            $crate::conformance_tests!(@areas $new_store;
                append, read_stream, read_all, limits, delete, metadata, subscriptions, concurrency);

            #[test]
            fn model() {
                $crate::model::check_against_model($new_store);
            }
        }
    };
    (@areas $new_store:expr; $($area:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $area() {
                $crate::assert_cases_pass($crate::$area::cases(), $new_store).await;
            }
        )*
    };
}
