//! A request rate per client: one token bucket per IP address, holding up to a second's worth
//! of requests and refilled continuously at the configured rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

/// Buckets kept before the full ones (clients quiet for a second or more, which would be
/// admitted anyway) are dropped, so a scan of many addresses cannot grow the map for ever.
const BUCKETS_BEFORE_PRUNING: usize = 4096;

/// Token buckets by client address.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// At most `per_second` requests a second per address (at least one).
    pub(crate) fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second: per_second.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The configured rate.
    pub(crate) fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes a token for a request from `client`; `false` when its bucket is empty.
    pub(crate) fn try_acquire(&self, client: IpAddr) -> bool {
        self.try_acquire_at(client, Instant::now())
    }

    fn try_acquire_at(&self, client: IpAddr, now: Instant) -> bool {
        let capacity = f64::from(self.per_second);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= BUCKETS_BEFORE_PRUNING && !buckets.contains_key(&client) {
            buckets.retain(|_, bucket| refilled(*bucket, capacity, now) < capacity);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            refilled_at: now,
        });
        bucket.tokens = refilled(*bucket, capacity, now);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The bucket's tokens at `now`: a second refills `capacity` tokens, up to `capacity`.
fn refilled(bucket: Bucket, capacity: f64, now: Instant) -> f64 {
    let elapsed = now
        .saturating_duration_since(bucket.refilled_at)
        .as_secs_f64();
    (bucket.tokens + elapsed * capacity).min(capacity)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_client_gets_a_second_s_worth_at_once_then_the_rate() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        let admitted = (0..25)
            .filter(|_| limiter.try_acquire_at(ip(1), start))
            .count();
        assert_eq!(admitted, 10);
        // A tenth of a second later: one more.
        let later = start + Duration::from_millis(100);
        assert!(limiter.try_acquire_at(ip(1), later));
        assert!(!limiter.try_acquire_at(ip(1), later));
        // Other clients have their own buckets.
        assert!(limiter.try_acquire_at(ip(2), start));
    }

    #[test]
    fn a_quiet_client_never_accumulates_more_than_a_second_s_worth() {
        let limiter = RateLimiter::new(5);
        let start = Instant::now();
        assert!(limiter.try_acquire_at(ip(1), start));
        let much_later = start + Duration::from_secs(3600);
        let admitted = (0..20)
            .filter(|_| limiter.try_acquire_at(ip(1), much_later))
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn full_buckets_are_pruned_when_the_map_grows() {
        let limiter = RateLimiter::new(1);
        let start = Instant::now();
        for n in 0..BUCKETS_BEFORE_PRUNING {
            let address = IpAddr::from(std::net::Ipv4Addr::from(n as u32 + 1));
            assert!(limiter.try_acquire_at(address, start));
        }
        // A second later every bucket is full again: the next new client prunes them all.
        assert!(limiter.try_acquire_at(ip(1), start + Duration::from_secs(2)));
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
