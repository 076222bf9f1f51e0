//! The head watch of a remote store: a background task holds a `$all` subscription from the
//! end and raises a [`watch`] channel to the position of every event it is sent.
//!
//! The task starts with the first [`HeadWatch::subscribe`] (a store used only to append and
//! read never opens a subscription) and stops when the store is dropped; receivers then see
//! the channel closed. A lost subscription is made again after a growing pause, and the head
//! is read once it is confirmed, so no append goes unnoticed in between.
//!
//! Why no wakeup is lost: a subscriber marks the current value seen, reads, and waits for a
//! change. An event appended after that read has a position above every value the channel
//! held then; it reaches the channel either through the subscription (made before the
//! append) or through the head read that follows the subscription's confirmation (made after
//! it), and either raises the value, which wakes the waiter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use factum_core::Position;
use factum_proto::streams::read_resp;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::calls::{Calls, event_position};
use crate::wire;

/// The first pause before a lost subscription is made again; it doubles up to
/// [`RETRY_DELAY_MAX`].
const RETRY_DELAY_MIN: Duration = Duration::from_millis(50);
/// The longest pause between two attempts to subscribe.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(5);

/// The head position, kept up to date by a background task while the store lives.
pub struct HeadWatch {
    sender: Arc<watch::Sender<Position>>,
    /// The follower task, once started; aborted on drop.
    task: Mutex<Option<AbortHandle>>,
    /// The runtime of the connection, where the follower runs.
    runtime: Handle,
}

impl HeadWatch {
    /// A watch at `Position(0)` whose follower will run on `runtime`.
    pub fn new(runtime: Handle) -> HeadWatch {
        HeadWatch {
            sender: Arc::new(watch::Sender::new(Position::START)),
            task: Mutex::new(None),
            runtime,
        }
    }

    /// A receiver of the head; starts the follower on `calls` if it is not running.
    pub fn subscribe(&self, calls: &Calls) -> watch::Receiver<Position> {
        let receiver = self.sender.subscribe();
        let mut task = self
            .task
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if task.as_ref().is_none_or(AbortHandle::is_finished) {
            let follower = follow(calls.clone(), self.sender.clone());
            *task = Some(self.runtime.spawn(follower).abort_handle());
        }
        receiver
    }

    /// Raises the head to `position` if it is higher (after an append of this store, say).
    pub fn raise(&self, position: Position) {
        raise(&self.sender, position);
    }
}

impl Drop for HeadWatch {
    fn drop(&mut self) {
        let task = self
            .task
            .get_mut()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

fn raise(sender: &watch::Sender<Position>, position: Position) {
    sender.send_if_modified(|head| {
        let higher = position > *head;
        if higher {
            *head = position;
        }
        higher
    });
}

/// Follows the head for ever: subscribe, read the head, raise on every event; start again
/// after a pause when the subscription is lost.
async fn follow(calls: Calls, sender: Arc<watch::Sender<Position>>) {
    let mut delay = RETRY_DELAY_MIN;
    loop {
        match calls.read(wire::all_subscription_from_end(), true).await {
            Ok(mut messages) => {
                let mut confirmed = false;
                loop {
                    match messages.message().await {
                        Ok(Some(message)) => {
                            if let Some(position) = event_position(&message) {
                                raise(&sender, position);
                            } else if !confirmed
                                && matches!(
                                    message.content,
                                    Some(read_resp::Content::Confirmation(_))
                                )
                            {
                                confirmed = true;
                                delay = RETRY_DELAY_MIN;
                                match calls.head().await {
                                    Ok(head) => raise(&sender, head),
                                    Err(error) => {
                                        tracing::debug!(%error, "cannot read the head");
                                        break;
                                    }
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(%status, "the head subscription ended");
                            break;
                        }
                    }
                }
            }
            Err(status) => tracing::debug!(%status, "cannot subscribe to the head"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_DELAY_MAX);
    }
}
