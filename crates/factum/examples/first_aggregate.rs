//! Your first aggregate: the README's walk-through, as a program that compiles and is tested.
//!
//! A shopping cart: its events (`ItemAdded`, `CartCheckedOut`), an aggregate that decides with
//! `handle` and changes state with `apply`, a repository over the durable embedded store, a few
//! commands (one refused), and a projection counting the items sold, read after catching up.
//!
//! Run it with `cargo run --example first_aggregate`; `cargo test` runs its test too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use factum::aggregate::{Aggregate, DomainEvent, EventSchema, Repository, RepositoryError};
use factum::embedded::EmbeddedStore;
use factum::projection::{MemoryReadModel, Projection, ProjectionError, ProjectionRunner};
use factum::{EventFilter, RecordedEvent};
use serde::{Deserialize, Serialize};

// 1. Events: facts, named in the past tense. Each variant's name is its event type, and each
//    type has a schema version (raise it, with an upcaster, when its shape changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CartEvent {
    ItemAdded { sku: String, quantity: u32 },
    CartCheckedOut,
}

impl DomainEvent for CartEvent {
    const EVENT_TYPES: &'static [(&'static str, u32)] = &[("ItemAdded", 1), ("CartCheckedOut", 1)];

    fn event_type(&self) -> &'static str {
        match self {
            CartEvent::ItemAdded { .. } => "ItemAdded",
            CartEvent::CartCheckedOut => "CartCheckedOut",
        }
    }
}

// 2. Commands (what callers ask for) and why one may be refused.
enum CartCommand {
    AddItem { sku: String, quantity: u32 },
    CheckOut,
}

#[derive(Debug, PartialEq, thiserror::Error)]
enum CartError {
    #[error("the cart is already checked out")]
    CheckedOut,
    #[error("an empty cart cannot be checked out")]
    Empty,
}

// 3. The aggregate: its state, rebuilt from its events. `handle` decides (and may refuse,
//    writing nothing); `apply` folds a recorded event in and never fails.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cart {
    items: BTreeMap<String, u32>,
    checked_out: bool,
}

impl Aggregate for Cart {
    // Cart "42" lives in the stream "cart-42".
    const CATEGORY: &'static str = "cart";
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;

    fn handle(&self, command: &CartCommand) -> Result<Vec<CartEvent>, CartError> {
        if self.checked_out {
            return Err(CartError::CheckedOut);
        }
        match command {
            CartCommand::AddItem { sku, quantity } => Ok(vec![CartEvent::ItemAdded {
                sku: sku.clone(),
                quantity: *quantity,
            }]),
            CartCommand::CheckOut if self.items.is_empty() => Err(CartError::Empty),
            CartCommand::CheckOut => Ok(vec![CartEvent::CartCheckedOut]),
        }
    }

    fn apply(&mut self, event: &CartEvent) {
        match event {
            CartEvent::ItemAdded { sku, quantity } => {
                *self.items.entry(sku.clone()).or_default() += quantity;
            }
            CartEvent::CartCheckedOut => self.checked_out = true,
        }
    }
}

// 4. A projection: a read model fed by every cart's events, here the items sold per SKU, kept
//    in memory (`SqliteReadModel` keeps one in SQLite, with its checkpoint, across restarts).
struct ItemsSold {
    schema: EventSchema<CartEvent>,
}

impl Projection for ItemsSold {
    type Model = BTreeMap<String, u32>;

    fn name(&self) -> &str {
        "items_sold"
    }

    fn filter(&self) -> Option<EventFilter> {
        Some(EventFilter::stream_prefix("cart-"))
    }

    fn init(&mut self, _model: &mut Self::Model) -> Result<(), ProjectionError> {
        Ok(())
    }

    fn clear(&mut self, model: &mut Self::Model) -> Result<(), ProjectionError> {
        model.clear();
        Ok(())
    }

    fn apply(
        &mut self,
        model: &mut Self::Model,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        // The same schema that wrote the event decodes it (through any upcasters).
        let decoded = self
            .schema
            .decode(event)
            .map_err(|error| ProjectionError::apply("items_sold", event, error))?;
        if let Some(CartEvent::ItemAdded { sku, quantity }) = decoded {
            *model.entry(sku).or_default() += quantity;
        }
        Ok(())
    }
}

async fn first_aggregate() -> Result<BTreeMap<String, u32>, Box<dyn std::error::Error>> {
    // 5. A repository over the durable embedded store (one data directory, one process).
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(dir.path())?);
    let carts = Repository::<Cart>::new(store.clone(), EventSchema::json());

    // 6. Commands: each loads the cart, decides, and appends with the revision it decided on
    //    (a concurrent change makes it reload and decide again).
    let add = |sku: &str, quantity| CartCommand::AddItem {
        sku: sku.into(),
        quantity,
    };
    carts.execute("42", &add("tea", 2)).await?;
    carts.execute("42", &add("mug", 1)).await?;
    let done = carts.execute("42", &CartCommand::CheckOut).await?;
    assert_eq!(done.revision, Some(2));

    // A refused command writes nothing.
    let refused = carts.execute("42", &add("cake", 1)).await;
    assert!(matches!(
        refused,
        Err(RepositoryError::Rejected(CartError::CheckedOut))
    ));
    assert_eq!(carts.load("42").await?.revision, Some(2));
    carts.execute("43", &add("tea", 3)).await?;

    // 7. Read a projection: run it until it has caught up with the store, then query it.
    let model = MemoryReadModel::new(ItemsSold {
        schema: EventSchema::json(),
    })?;
    let sold = model.handle();
    let mut runner = ProjectionRunner::new(store, model)?;
    runner.run_until_caught_up(Duration::from_secs(10)).await?;
    let items_sold = sold.state(); // {"mug": 1, "tea": 5}
    Ok(items_sold)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sold = first_aggregate().await?;
    for (sku, quantity) in &sold {
        println!("{sku}: {quantity}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The walk-through runs end to end and its projection counts every item added.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_walk_through_runs() {
        let sold = super::first_aggregate().await.unwrap();
        assert_eq!(sold.get("tea"), Some(&5));
        assert_eq!(sold.get("mug"), Some(&1));
        assert_eq!(sold.get("cake"), None);
    }

    /// The README's "Your first aggregate" shows this file's code and nothing else: every line
    /// of its Rust blocks is a line here, so the README cannot drift from code that compiles.
    #[test]
    fn the_readme_shows_this_code() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("## Your first aggregate")
            .expect("the README has the section");
        let section = &readme[start..];
        let section = &section[..section[3..]
            .find("\n## ")
            .map_or(section.len(), |end| end + 3)];
        let source: std::collections::HashSet<&str> = include_str!("first_aggregate.rs")
            .lines()
            .map(str::trim)
            .collect();
        let mut in_code = false;
        let mut checked = 0;
        for line in section.lines() {
            if line.starts_with("```") {
                in_code = line == "```rust";
                continue;
            }
            if in_code && !line.trim().is_empty() {
                assert!(
                    source.contains(line.trim()),
                    "README line not in the example: {line}"
                );
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} README lines checked");
    }
}
