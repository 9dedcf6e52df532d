//! [`ConsumerStats`]: the counters of a consumer, read by the processing loop, the leases and
//! the adapters (a leaf module).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one consumer (shared by its clones), for metrics and tests. Every path that
/// does not end in an acknowledgement is counted here.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) poison: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) lease_extensions: AtomicU64,
    pub(crate) broker_errors: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// A copy of the [`ConsumerStats`] counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Deliveries whose handler returned `Ok` and that were acknowledged.
    pub acked: u64,
    /// Handler failures (`Err`), released for a retry.
    pub failed: u64,
    /// Handler panics (caught), released for a retry.
    pub panicked: u64,
    /// Deliveries moved to the dead-letter destination, plus records written for lost ones.
    pub dead_lettered: u64,
    /// Deliveries that could not be decoded (a subset of `dead_lettered` when the adapter has a
    /// dead-letter destination).
    pub poison: u64,
    /// Messages the broker reported gone before processing (a subset of `dead_lettered`).
    pub lost: u64,
    /// Successful lease extensions.
    pub lease_extensions: u64,
    /// Broker calls that failed (acks, retries, dead-letter moves, lease extensions, receives).
    pub broker_errors: u64,
    /// Connections re-established after a broker failure.
    pub reconnects: u64,
}

impl ConsumerStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            acked: get(&self.acked),
            failed: get(&self.failed),
            panicked: get(&self.panicked),
            dead_lettered: get(&self.dead_lettered),
            poison: get(&self.poison),
            lost: get(&self.lost),
            lease_extensions: get(&self.lease_extensions),
            broker_errors: get(&self.broker_errors),
            reconnects: get(&self.reconnects),
        }
    }

    pub(crate) fn add_broker_error(&self) {
        self.broker_errors.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(any(feature = "redis", feature = "amqp"))]
    pub(crate) fn add_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(any(feature = "redis", feature = "sqs"))]
    pub(crate) fn add_poison(&self) {
        self.poison.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_lease_extension(&self) {
        self.lease_extensions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
}
