//! Pure domain tests of the example aggregates through the given/when/then helper: no store.

use factum_aggregate::examples::bank::{AccountCommand, AccountEvent, BankAccount, BankError};
use factum_aggregate::examples::order::{Order, OrderCommand, OrderError, OrderEvent};
use factum_aggregate::testing::given;

fn opened(initial_balance_cents: u64) -> AccountEvent {
    AccountEvent::AccountOpened {
        owner: "Alice".into(),
        initial_balance_cents,
    }
}

#[test]
fn opening_an_account_records_it_once() {
    let state = given::<BankAccount>([])
        .when(AccountCommand::Open {
            owner: "Alice".into(),
            initial_balance_cents: 0,
        })
        .then([opened(0)]);
    assert_eq!(state.owner.as_deref(), Some("Alice"));
    given::<BankAccount>([opened(0)])
        .when(AccountCommand::Open {
            owner: "Bob".into(),
            initial_balance_cents: 0,
        })
        .then_error(BankError::AlreadyOpen);
}

#[test]
fn withdrawing_more_than_the_balance_is_insufficient_funds() {
    let history = [
        opened(0),
        AccountEvent::MoneyDeposited { amount_cents: 500 },
    ];
    given::<BankAccount>(history.clone())
        .when(AccountCommand::Withdraw { amount_cents: 501 })
        .then_error_message("Insufficient funds");
    let state = given::<BankAccount>(history)
        .when(AccountCommand::Withdraw { amount_cents: 500 })
        .then([AccountEvent::MoneyWithdrawn { amount_cents: 500 }]);
    assert_eq!((state.balance_cents, state.withdrawal_count), (0, 1));
}

#[test]
fn amounts_must_be_positive_and_the_account_open() {
    given::<BankAccount>([opened(10)])
        .when(AccountCommand::Deposit { amount_cents: 0 })
        .then_error(BankError::ZeroAmount);
    given::<BankAccount>([])
        .when(AccountCommand::Withdraw { amount_cents: 1 })
        .then_error(BankError::NotOpen);
}

#[test]
fn a_shipped_or_cancelled_order_cannot_change_again() {
    let placed = OrderEvent::OrderPlaced {
        customer_name: "Alice".into(),
        total_cents: 100,
        currency: "EUR".into(),
    };
    given::<Order>([placed.clone()])
        .when(OrderCommand::Ship {
            carrier: "UPS".into(),
        })
        .then([OrderEvent::OrderShipped {
            carrier: "UPS".into(),
        }]);
    given::<Order>([
        placed.clone(),
        OrderEvent::OrderShipped {
            carrier: "UPS".into(),
        },
    ])
    .when(OrderCommand::Cancel {
        reason: "late".into(),
    })
    .then_error(OrderError::AlreadyShipped);
    given::<Order>([
        placed,
        OrderEvent::OrderCancelled {
            reason: "late".into(),
        },
    ])
    .when(OrderCommand::Ship {
        carrier: "UPS".into(),
    })
    .then_error(OrderError::Cancelled);
}

#[test]
#[should_panic(expected = "the command produced other events")]
fn the_helper_reports_unexpected_events() {
    given::<BankAccount>([opened(0)])
        .when(AccountCommand::Deposit { amount_cents: 5 })
        .then([AccountEvent::MoneyDeposited { amount_cents: 6 }]);
}
