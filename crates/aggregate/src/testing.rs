//! Pure aggregate tests in the "given events, when command, then events (or error)" form. No
//! store, no async: the aggregate is built by applying the given events, then handles the
//! command.
//!
//! ```
//! use factum_aggregate::examples::bank::{AccountCommand, AccountEvent, BankAccount, BankError};
//! use factum_aggregate::testing::given;
//!
//! let opened = AccountEvent::AccountOpened { owner: "Alice".into(), initial_balance_cents: 0 };
//!
//! given::<BankAccount>([opened.clone()])
//!     .when(AccountCommand::Deposit { amount_cents: 500 })
//!     .then([AccountEvent::MoneyDeposited { amount_cents: 500 }]);
//!
//! given::<BankAccount>([opened, AccountEvent::MoneyDeposited { amount_cents: 500 }])
//!     .when(AccountCommand::Withdraw { amount_cents: 800 })
//!     .then_error(BankError::InsufficientFunds { balance_cents: 500, requested_cents: 800 });
//! ```

use std::fmt::Debug;

use crate::Aggregate;

/// Starts a test with the aggregate built from `events` (none for a new aggregate).
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut state = A::default();
    for event in events {
        state.apply(&event);
    }
    Given { state }
}

/// An aggregate built from the given events, waiting for a command.
#[derive(Debug)]
pub struct Given<A> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    /// The state the given events built.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Lets the aggregate handle `command`.
    pub fn when(self, command: A::Command) -> When<A> {
        let result = self.state.handle(&command);
        When {
            state: self.state,
            result,
        }
    }
}

/// The outcome of a command, to check.
#[derive(Debug)]
pub struct When<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> When<A> {
    /// Asserts the command produced exactly `expected`, in order; returns the state after
    /// applying them, for further checks.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A
    where
        A::Event: PartialEq + Debug,
        A::Error: Debug,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "the command produced other events");
                let mut state = self.state;
                for event in &events {
                    state.apply(event);
                }
                state
            }
            Err(error) => panic!("expected events {expected:?}, but the command failed: {error:?}"),
        }
    }

    /// Asserts the command was refused with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: A::Error)
    where
        A::Event: Debug,
        A::Error: PartialEq + Debug,
    {
        match self.result {
            Ok(events) => {
                panic!("expected error {expected:?}, but the command produced {events:?}")
            }
            Err(error) => assert_eq!(error, expected, "the command failed otherwise"),
        }
    }

    /// Asserts the command was refused with an error whose message contains `text`.
    #[track_caller]
    pub fn then_error_message(self, text: &str)
    where
        A::Event: Debug,
    {
        match self.result {
            Ok(events) => {
                panic!("expected an error with {text:?}, but the command produced {events:?}")
            }
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.contains(text),
                    "error {message:?} does not contain {text:?}"
                );
            }
        }
    }

    /// The raw outcome, for checks the other methods do not cover.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
