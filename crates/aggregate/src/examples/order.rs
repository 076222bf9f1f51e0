//! An order whose `OrderPlaced` event changed shape twice, to show upcasting in practice:
//!
//! - v1 `{"customer": "Alice", "total": 12.5}`: dollars as a float (the regret);
//! - v2 `{"customer_name": "Alice", "total_cents": 1250}`: renamed, integer cents;
//! - v3 `{"customer_name": "Alice", "total_cents": 1250, "currency": "USD"}`: a currency.
//!
//! [`schema`] registers the v1 → v3 (typed) and v2 → v3 upcasters, so events stored years ago load as
//! today's [`OrderEvent::OrderPlaced`].
//!
//! ```
//! use factum_aggregate::examples::order::{OrderEvent, schema};
//!
//! let v1 = br#"{"customer":"Alice","total":12.5}"#.to_vec();
//! let placed = schema().decode_parts("OrderPlaced", 1, v1)?;
//! assert_eq!(
//!     placed,
//!     Some(OrderEvent::OrderPlaced {
//!         customer_name: "Alice".into(),
//!         total_cents: 1250,
//!         currency: "USD".into(),
//!     })
//! );
//! # Ok::<(), factum_codec::CodecError>(())
//! ```

use factum_codec::{DomainEvent, EventSchema};
use serde::{Deserialize, Serialize};

use crate::Aggregate;

/// An order's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Who placed it, once placed.
    pub customer_name: Option<String>,
    /// Its total, in cents of `currency`.
    pub total_cents: u64,
    /// The currency of the total.
    pub currency: String,
    /// Whether it was shipped.
    pub shipped: bool,
    /// Whether it was cancelled.
    pub cancelled: bool,
}

/// What happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The order was placed (schema version 3).
    OrderPlaced {
        /// Who placed it.
        customer_name: String,
        /// Its total, in cents.
        total_cents: u64,
        /// ISO 4217 currency code.
        currency: String,
    },
    /// The order left the warehouse.
    OrderShipped {
        /// Who carries it.
        carrier: String,
    },
    /// The order was cancelled.
    OrderCancelled {
        /// Why.
        reason: String,
    },
}

impl DomainEvent for OrderEvent {
    const EVENT_TYPES: &'static [(&'static str, u32)] = &[
        ("OrderPlaced", 3),
        ("OrderShipped", 1),
        ("OrderCancelled", 1),
    ];

    fn event_type(&self) -> &'static str {
        match self {
            OrderEvent::OrderPlaced { .. } => "OrderPlaced",
            OrderEvent::OrderShipped { .. } => "OrderShipped",
            OrderEvent::OrderCancelled { .. } => "OrderCancelled",
        }
    }
}

/// `OrderPlaced` as version 1 stored it: the total in dollars, as a float.
#[derive(Debug, Clone, Deserialize)]
struct OrderPlacedV1 {
    customer: String,
    total: f64,
}

/// The order's event schema: JSON, with the `OrderPlaced` upcasters v1 → v3 (typed: v1 is
/// deserialized into its own struct and converted, which costs little more than reading a
/// current event) and v2 → v3 (on the JSON tree).
pub fn schema() -> EventSchema<OrderEvent> {
    EventSchema::json()
        .upcast_typed("OrderPlaced", 1, |old: OrderPlacedV1| {
            // Rounded to the nearest cent: v1 floats such as 0.29 are 0.28999...
            let cents = (old.total * 100.0).round();
            if !(0.0..=u64::MAX as f64).contains(&cents) {
                return Err(format!("OrderPlaced v1 total {} is out of range", old.total).into());
            }
            Ok(OrderEvent::OrderPlaced {
                customer_name: old.customer,
                total_cents: cents as u64,
                // Every order before v3 was in dollars.
                currency: "USD".into(),
            })
        })
        .upcast("OrderPlaced", 2, |mut data| {
            // Every order before v3 was in dollars.
            data.as_object_mut()
                .ok_or("OrderPlaced v2 is not an object")?
                .insert("currency".into(), "USD".into());
            Ok(data)
        })
}

/// What a caller asks of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Place the order.
    Place {
        /// Who places it.
        customer_name: String,
        /// Its total, in cents.
        total_cents: u64,
        /// ISO 4217 currency code.
        currency: String,
    },
    /// Ship it.
    Ship {
        /// Who carries it.
        carrier: String,
    },
    /// Cancel it.
    Cancel {
        /// Why.
        reason: String,
    },
}

/// Why an order refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The order was already placed.
    #[error("the order was already placed")]
    AlreadyPlaced,
    /// The order was not placed yet.
    #[error("the order was not placed")]
    NotPlaced,
    /// The order was already shipped.
    #[error("the order was already shipped")]
    AlreadyShipped,
    /// The order was cancelled.
    #[error("the order was cancelled")]
    Cancelled,
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn handle(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::Place {
                customer_name,
                total_cents,
                currency,
            } => {
                if self.customer_name.is_some() {
                    return Err(OrderError::AlreadyPlaced);
                }
                Ok(vec![OrderEvent::OrderPlaced {
                    customer_name: customer_name.clone(),
                    total_cents: *total_cents,
                    currency: currency.clone(),
                }])
            }
            OrderCommand::Ship { carrier } => {
                self.check_open()?;
                Ok(vec![OrderEvent::OrderShipped {
                    carrier: carrier.clone(),
                }])
            }
            OrderCommand::Cancel { reason } => {
                self.check_open()?;
                Ok(vec![OrderEvent::OrderCancelled {
                    reason: reason.clone(),
                }])
            }
        }
    }

    fn cached_copy(&self) -> Option<Self> {
        Some(self.clone())
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::OrderPlaced {
                customer_name,
                total_cents,
                currency,
            } => {
                self.customer_name = Some(customer_name.clone());
                self.total_cents = *total_cents;
                self.currency = currency.clone();
            }
            OrderEvent::OrderShipped { .. } => self.shipped = true,
            OrderEvent::OrderCancelled { .. } => self.cancelled = true,
        }
    }
}

impl Order {
    fn check_open(&self) -> Result<(), OrderError> {
        if self.customer_name.is_none() {
            return Err(OrderError::NotPlaced);
        }
        if self.cancelled {
            return Err(OrderError::Cancelled);
        }
        if self.shipped {
            return Err(OrderError::AlreadyShipped);
        }
        Ok(())
    }
}
