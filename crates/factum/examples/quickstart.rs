//! Quickstart: the article's bank account, on the in-memory store.
//!
//! Appends `AccountOpened`, `MoneyDeposited` and `MoneyWithdrawn` events (amounts in integer
//! cents), reads them back and folds them into a balance. A withdrawal is decided by a command
//! handler that checks the funds against the current state *before* any event exists, and is
//! saved with the revision the decision was based on, so a concurrent change cannot slip in.
//!
//! Run it with `cargo run --example quickstart`.

use std::sync::Arc;

use factum::memory::MemoryStore;
use factum::{
    Error, EventStore, ExpectedRevision, ProposedEvent, ReadAllOptions, ReadStreamOptions,
    RecordedEvent, StreamName,
};
use serde::{Deserialize, Serialize};

/// What can happen to an account. Amounts are integer cents: money is never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum AccountEvent {
    Opened {
        owner: String,
        initial_balance_cents: i64,
    },
    Deposited {
        amount_cents: i64,
    },
    Withdrawn {
        amount_cents: i64,
    },
}

impl AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Opened { .. } => "AccountOpened",
            AccountEvent::Deposited { .. } => "MoneyDeposited",
            AccountEvent::Withdrawn { .. } => "MoneyWithdrawn",
        }
    }

    fn to_proposed(&self) -> Result<ProposedEvent, Error> {
        ProposedEvent::json(self.event_type(), self)
    }

    fn from_recorded(event: &RecordedEvent) -> Result<AccountEvent, String> {
        let data: serde_json::Value = event
            .data_json()
            .map_err(|error| format!("event {}: {error}", event.id))?;
        let amount = || data["amount_cents"].as_i64().ok_or("missing amount_cents");
        Ok(match event.event_type.as_str() {
            "AccountOpened" => AccountEvent::Opened {
                owner: data["owner"].as_str().ok_or("missing owner")?.to_owned(),
                initial_balance_cents: data["initial_balance_cents"]
                    .as_i64()
                    .ok_or("missing initial_balance_cents")?,
            },
            "MoneyDeposited" => AccountEvent::Deposited {
                amount_cents: amount()?,
            },
            "MoneyWithdrawn" => AccountEvent::Withdrawn {
                amount_cents: amount()?,
            },
            other => return Err(format!("unknown event type {other}")),
        })
    }
}

/// Whole dollars in cents.
const fn dollars(dollars: i64) -> i64 {
    dollars * 100
}

/// The account's state, folded from its events. `apply` never fails: events are facts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct BankAccount {
    owner: String,
    balance_cents: i64,
}

impl BankAccount {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened {
                owner,
                initial_balance_cents,
            } => {
                self.owner = owner.clone();
                self.balance_cents = *initial_balance_cents;
            }
            AccountEvent::Deposited { amount_cents } => self.balance_cents += amount_cents,
            AccountEvent::Withdrawn { amount_cents } => self.balance_cents -= amount_cents,
        }
    }

    /// The command handler: checks the funds, then says what happened.
    fn withdraw(&self, amount_cents: i64) -> Result<AccountEvent, String> {
        if amount_cents > self.balance_cents {
            return Err("Insufficient funds".into());
        }
        Ok(AccountEvent::Withdrawn { amount_cents })
    }
}

/// Replays a stream into an account, returning it with the revision it reflects.
async fn load(store: &dyn EventStore, stream: &StreamName) -> Result<(BankAccount, u64), Error> {
    let mut account = BankAccount::default();
    let mut revision = 0;
    for recorded in store
        .read_stream(stream, ReadStreamOptions::forwards())
        .await?
    {
        let event = AccountEvent::from_recorded(&recorded)
            .map_err(|reason| Error::Corrupt { detail: reason })?;
        account.apply(&event);
        revision = recorded.revision;
    }
    Ok((account, revision))
}

/// Opens an account, deposits, withdraws, tries to overdraw; returns the final state and the
/// refusal.
async fn run(store: Arc<MemoryStore>) -> Result<(BankAccount, String), Error> {
    let stream = StreamName::new("account-acc_123")?;
    let history = [
        AccountEvent::Opened {
            owner: "Alice".into(),
            initial_balance_cents: 0,
        },
        AccountEvent::Deposited {
            amount_cents: dollars(500),
        },
    ];
    let proposed = history
        .iter()
        .map(AccountEvent::to_proposed)
        .collect::<Result<_, _>>()?;
    let written = store
        .append(&stream, ExpectedRevision::NoStream, proposed)
        .await?;
    println!(
        "opened and funded: revision {}, position {}",
        written.revision, written.position
    );

    // Withdraw $200.00: decide against the loaded state, save at the revision we decided on.
    let (account, revision) = load(store.as_ref(), &stream).await?;
    let withdrawal = account
        .withdraw(dollars(200))
        .expect("$500.00 covers $200.00");
    store
        .append(
            &stream,
            ExpectedRevision::Exact(revision),
            vec![withdrawal.to_proposed()?],
        )
        .await?;

    // Withdraw $1,000.00: the handler refuses, and nothing is written.
    let (account, _) = load(store.as_ref(), &stream).await?;
    let refusal = account
        .withdraw(dollars(1_000))
        .expect_err("$300.00 does not cover $1,000.00");
    println!("withdrawing $1,000.00: {refusal}");

    for event in store.read_all(ReadAllOptions::forwards()).await?.events {
        println!(
            "{:>3} {} r{} {} {}",
            event.position,
            event.stream,
            event.revision,
            event.event_type,
            String::from_utf8_lossy(&event.data)
        );
    }
    let (account, _) = load(store.as_ref(), &stream).await?;
    println!(
        "{}'s balance: ${}.{:02}",
        account.owner,
        account.balance_cents / 100,
        account.balance_cents % 100
    );
    Ok((account, refusal))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Arc::new(MemoryStore::new())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_article_balance_is_three_hundred_dollars() {
        let store = Arc::new(MemoryStore::new());
        let (account, refusal) = run(store.clone()).await.unwrap();
        assert_eq!(
            account,
            BankAccount {
                owner: "Alice".into(),
                balance_cents: dollars(300)
            }
        );
        assert_eq!(refusal, "Insufficient funds");
        // Three events: the refused withdrawal wrote nothing.
        assert_eq!(store.head().await.unwrap().value(), 3);
    }
}
