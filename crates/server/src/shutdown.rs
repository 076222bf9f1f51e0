//! A shutdown signal that every long-lived call (subscriptions, BatchAppend) watches, so a
//! graceful shutdown does not wait for calls that never end by themselves.

use tokio::sync::watch;

/// Fires the [`Shutdown`] signal.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    /// Tells every holder of the signal to wind down.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// The receiving side: cheap to clone, one per call.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(false);
        (ShutdownTrigger(sender), Shutdown(receiver))
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown has begun (or the trigger is gone).
    pub async fn wait(mut self) {
        // An error means the trigger was dropped: treat it as shutdown too.
        let _ = self.0.wait_for(|triggered| *triggered).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let (trigger, shutdown) = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!clone.is_triggered());
        let waiter = tokio::spawn(clone.wait());
        trigger.trigger();
        waiter.await.unwrap();
        assert!(shutdown.is_triggered());
    }
}
