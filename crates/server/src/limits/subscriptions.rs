//! How many subscriptions may run: per connection and in total. A subscription takes a
//! [`SubscriptionPermit`] before it starts and gives it back when its reply stream is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ConnectionInfo;

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TooManySubscriptions {
    /// The connection holds the most it may.
    OnConnection(usize),
    /// The server holds the most it may.
    OnServer(usize),
}

impl TooManySubscriptions {
    /// The words of the refusal.
    pub(crate) fn message(self) -> String {
        match self {
            TooManySubscriptions::OnConnection(limit) => {
                format!("Too many subscriptions: at most {limit} on one connection")
            }
            TooManySubscriptions::OnServer(limit) => {
                format!("Too many subscriptions: the server serves at most {limit}")
            }
        }
    }
}

/// The server's count of subscriptions and its limits.
#[derive(Debug)]
pub(crate) struct SubscriptionSlots {
    active: Arc<AtomicUsize>,
    max_total: usize,
    max_per_connection: usize,
}

impl SubscriptionSlots {
    /// Slots for at most `max_total` subscriptions, `max_per_connection` on each connection.
    pub(crate) fn new(max_total: usize, max_per_connection: usize) -> SubscriptionSlots {
        SubscriptionSlots {
            active: Arc::new(AtomicUsize::new(0)),
            max_total,
            max_per_connection,
        }
    }

    /// Takes a slot for a subscription on `connection` (`None` when the request came through
    /// no connection the server accepted, e.g. a service called in-process: only the total
    /// applies).
    pub(crate) fn try_acquire(
        &self,
        connection: Option<&ConnectionInfo>,
    ) -> Result<SubscriptionPermit, TooManySubscriptions> {
        if !increment_below(&self.active, self.max_total) {
            return Err(TooManySubscriptions::OnServer(self.max_total));
        }
        let total = SlotCount(self.active.clone());
        let on_connection = match connection {
            Some(info) => {
                if !increment_below(info.subscriptions(), self.max_per_connection) {
                    return Err(TooManySubscriptions::OnConnection(self.max_per_connection));
                }
                Some(info.clone())
            }
            None => None,
        };
        Ok(SubscriptionPermit {
            _total: total,
            on_connection,
        })
    }
}

/// Adds one to `count` unless it has reached `limit`.
fn increment_below(count: &AtomicUsize, limit: usize) -> bool {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

/// One slot of the server's total, given back when dropped.
#[derive(Debug)]
struct SlotCount(Arc<AtomicUsize>);

impl Drop for SlotCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running subscription's place, given back when dropped.
#[derive(Debug)]
pub(crate) struct SubscriptionPermit {
    _total: SlotCount,
    on_connection: Option<ConnectionInfo>,
}

impl Drop for SubscriptionPermit {
    fn drop(&mut self) {
        if let Some(info) = &self.on_connection {
            info.subscriptions().fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{LimitedConnection, Limits};
    use tonic::transport::server::Connected;

    fn connection() -> ConnectionInfo {
        let (io, _) = tokio::io::duplex(1);
        LimitedConnection::new(io, None, &Limits::default()).connect_info()
    }

    #[tokio::test]
    async fn each_connection_and_the_server_have_their_own_limit() {
        let slots = SubscriptionSlots::new(3, 2);
        let (first, second) = (connection(), connection());
        let a = slots.try_acquire(Some(&first)).unwrap();
        let _b = slots.try_acquire(Some(&first)).unwrap();
        assert_eq!(
            slots.try_acquire(Some(&first)).unwrap_err(),
            TooManySubscriptions::OnConnection(2)
        );
        // The refusal gave its server slot back: another connection still gets one.
        let _c = slots.try_acquire(Some(&second)).unwrap();
        assert_eq!(
            slots.try_acquire(Some(&second)).unwrap_err(),
            TooManySubscriptions::OnServer(3)
        );
        drop(a);
        let _d = slots.try_acquire(Some(&first)).unwrap();
        assert_eq!(first.subscriptions().load(Ordering::Relaxed), 2);
    }
}
