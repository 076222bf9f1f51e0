//! The article's bank account: `AccountOpened`, `MoneyDeposited`, `MoneyWithdrawn`, money in
//! integer cents, and "Insufficient funds" checked in the command handler (the article checks
//! it inside `apply`; here `apply` never fails, because a recorded event is a fact).
//!
//! ```
//! use factum_aggregate::Aggregate;
//! use factum_aggregate::examples::bank::{AccountCommand, AccountEvent, BankAccount};
//!
//! // Replaying the article's three events gives 500 - 200 = 300.
//! let mut account = BankAccount::default();
//! for event in [
//!     AccountEvent::AccountOpened { owner: "Alice".into(), initial_balance_cents: 0 },
//!     AccountEvent::MoneyDeposited { amount_cents: 500 },
//!     AccountEvent::MoneyWithdrawn { amount_cents: 200 },
//! ] {
//!     account.apply(&event);
//! }
//! assert_eq!(account.balance_cents, 300);
//! assert!(account.handle(&AccountCommand::Withdraw { amount_cents: 301 }).is_err());
//! ```

use factum_codec::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::Aggregate;

/// A bank account's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccount {
    /// The owner, once the account is opened.
    pub owner: Option<String>,
    /// The balance, in cents.
    pub balance_cents: u64,
    /// How many withdrawals were made (for the fraud report).
    pub withdrawal_count: u64,
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// The account was opened.
    AccountOpened {
        /// Its owner.
        owner: String,
        /// The opening balance, in cents.
        initial_balance_cents: u64,
    },
    /// Money was paid in.
    MoneyDeposited {
        /// How much, in cents.
        amount_cents: u64,
    },
    /// Money was taken out.
    MoneyWithdrawn {
        /// How much, in cents.
        amount_cents: u64,
    },
}

impl DomainEvent for AccountEvent {
    const EVENT_TYPES: &'static [(&'static str, u32)] = &[
        ("AccountOpened", 1),
        ("MoneyDeposited", 1),
        ("MoneyWithdrawn", 1),
    ];

    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::AccountOpened { .. } => "AccountOpened",
            AccountEvent::MoneyDeposited { .. } => "MoneyDeposited",
            AccountEvent::MoneyWithdrawn { .. } => "MoneyWithdrawn",
        }
    }
}

/// What a caller asks of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Open the account.
    Open {
        /// Its owner.
        owner: String,
        /// The opening balance, in cents.
        initial_balance_cents: u64,
    },
    /// Pay money in.
    Deposit {
        /// How much, in cents (more than 0).
        amount_cents: u64,
    },
    /// Take money out.
    Withdraw {
        /// How much, in cents (more than 0, at most the balance).
        amount_cents: u64,
    },
}

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The account is already open.
    #[error("the account is already open")]
    AlreadyOpen,
    /// The account is not open yet.
    #[error("the account is not open")]
    NotOpen,
    /// An amount of zero.
    #[error("the amount must be more than zero")]
    ZeroAmount,
    /// The article's check, where it belongs: in the command handler.
    #[error(
        "Insufficient funds: the balance is {balance_cents} cents, {requested_cents} requested"
    )]
    InsufficientFunds {
        /// The balance.
        balance_cents: u64,
        /// The amount asked for.
        requested_cents: u64,
    },
}

impl Aggregate for BankAccount {
    const CATEGORY: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = BankError;

    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, BankError> {
        match command {
            AccountCommand::Open {
                owner,
                initial_balance_cents,
            } => {
                if self.owner.is_some() {
                    return Err(BankError::AlreadyOpen);
                }
                Ok(vec![AccountEvent::AccountOpened {
                    owner: owner.clone(),
                    initial_balance_cents: *initial_balance_cents,
                }])
            }
            AccountCommand::Deposit { amount_cents } => {
                self.check_amount(*amount_cents)?;
                Ok(vec![AccountEvent::MoneyDeposited {
                    amount_cents: *amount_cents,
                }])
            }
            AccountCommand::Withdraw { amount_cents } => {
                self.check_amount(*amount_cents)?;
                if *amount_cents > self.balance_cents {
                    return Err(BankError::InsufficientFunds {
                        balance_cents: self.balance_cents,
                        requested_cents: *amount_cents,
                    });
                }
                Ok(vec![AccountEvent::MoneyWithdrawn {
                    amount_cents: *amount_cents,
                }])
            }
        }
    }

    fn cached_copy(&self) -> Option<Self> {
        Some(self.clone())
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountOpened {
                owner,
                initial_balance_cents,
            } => {
                self.owner = Some(owner.clone());
                self.balance_cents = *initial_balance_cents;
            }
            AccountEvent::MoneyDeposited { amount_cents } => {
                self.balance_cents = self.balance_cents.saturating_add(*amount_cents);
            }
            AccountEvent::MoneyWithdrawn { amount_cents } => {
                // The handler checked the funds; a recorded withdrawal is applied as it is.
                self.balance_cents = self.balance_cents.saturating_sub(*amount_cents);
                self.withdrawal_count += 1;
            }
        }
    }
}

impl BankAccount {
    fn check_amount(&self, amount_cents: u64) -> Result<(), BankError> {
        if self.owner.is_none() {
            return Err(BankError::NotOpen);
        }
        if amount_cents == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(())
    }
}
