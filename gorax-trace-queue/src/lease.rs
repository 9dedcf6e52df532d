//! Leases per batch, renewed by a thread of the consumer's own.
//!
//! From the moment a batch is received, every delivery of it that is not yet acknowledged,
//! released or dead-lettered has its lease renewed every [`ConsumerSettings::lease_interval`]
//! until [`ConsumerSettings::max_lease`] after the receipt. The renewals run on a dedicated
//! `std` thread ([`LeaseKeeper`]) through a [`LeaseRenewer`] that owns its own connection (and
//! its own single-thread runtime): a handler that blocks its thread, every worker of a
//! `multi_thread` runtime, or the only thread of a `current_thread` runtime cannot stop them.
//!
//! [`ConsumerSettings::lease_interval`]: crate::consumer::ConsumerSettings::lease_interval
//! [`ConsumerSettings::max_lease`]: crate::consumer::ConsumerSettings::max_lease

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::stats::ConsumerStats;

/// Renews the leases of deliveries, from the lease thread. It owns what it needs (a connection
/// of its own, made on that thread), so nothing on the consumer's runtime has to run for a
/// renewal to happen. Blocking is expected: it is the only work of its thread.
pub trait LeaseRenewer<R>: Send + 'static {
    /// Extends the leases of `receipts` (deliveries still being worked on). An error is
    /// counted ([`StatsSnapshot::broker_errors`](crate::consumer::StatsSnapshot::broker_errors))
    /// and the next tick tries again.
    fn renew(&mut self, receipts: &[&R]) -> Result<(), String>;
}

/// The deliveries of one batch and which of them are finished.
pub(crate) struct Held<R> {
    pub(crate) receipts: Vec<R>,
    done: Vec<AtomicBool>,
    all_done: AtomicBool,
    until: Option<Instant>,
}

impl<R> Held<R> {
    pub(crate) fn new(receipts: Vec<R>, max_lease: Option<Duration>) -> Self {
        let until = max_lease.and_then(|max| Instant::now().checked_add(max));
        Self {
            done: receipts.iter().map(|_| AtomicBool::new(false)).collect(),
            receipts,
            all_done: AtomicBool::new(false),
            until,
        }
    }

    /// Delivery `i` no longer needs its lease (acked, released, dead-lettered).
    pub(crate) fn finish(&self, i: usize) {
        if let Some(done) = self.done.get(i) {
            done.store(true, Ordering::Release);
        }
    }

    /// The whole batch is over (or its processing was cancelled).
    pub(crate) fn finish_all(&self) {
        self.all_done.store(true, Ordering::Release);
    }

    fn over(&self, now: Instant) -> bool {
        self.all_done.load(Ordering::Acquire) || self.until.is_some_and(|until| now >= until)
    }
}

/// Marks its batch over when dropped: the end of `process_batch`, or its cancellation.
pub(crate) struct HoldGuard<R>(pub(crate) Arc<Held<R>>);

impl<R> Drop for HoldGuard<R> {
    fn drop(&mut self) {
        self.0.finish_all();
    }
}

struct Shared<R> {
    state: Mutex<State<R>>,
    wake: Condvar,
}

struct State<R> {
    held: Vec<Arc<Held<R>>>,
    stop: bool,
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The lease thread of one consumer (shared by its clones): every
/// [`lease_interval`](crate::consumer::ConsumerSettings::lease_interval) it renews the leases
/// of every delivery held by a batch in progress. Dropping it ends the thread.
pub struct LeaseKeeper<R> {
    shared: Arc<Shared<R>>,
}

impl<R> std::fmt::Debug for LeaseKeeper<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper").finish_non_exhaustive()
    }
}

impl<R: Send + Sync + 'static> LeaseKeeper<R> {
    /// Starts the lease thread: `renewer` renews every `every`; successes and failures are
    /// counted in `stats`. Fails only when the thread cannot be spawned.
    pub fn start(
        name: &str,
        every: Duration,
        stats: Arc<ConsumerStats>,
        mut renewer: impl LeaseRenewer<R>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                held: Vec::new(),
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let thread = shared.clone();
        let every = every.max(Duration::from_millis(1));
        std::thread::Builder::new()
            .name(format!("gorax-lease-{name}"))
            .spawn(move || {
                let mut next = Instant::now() + every;
                loop {
                    let mut state = thread.lock();
                    loop {
                        if state.stop {
                            return;
                        }
                        let now = Instant::now();
                        if now >= next {
                            break;
                        }
                        state = thread
                            .wake
                            .wait_timeout(state, next - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    let now = Instant::now();
                    next = now + every;
                    state.held.retain(|h| !h.over(now));
                    let held = state.held.clone();
                    drop(state);
                    let receipts: Vec<&R> = held
                        .iter()
                        .flat_map(|h| {
                            h.receipts
                                .iter()
                                .zip(&h.done)
                                .filter(|(_, done)| !done.load(Ordering::Acquire))
                                .map(|(r, _)| r)
                        })
                        .collect();
                    if receipts.is_empty() {
                        continue;
                    }
                    match renewer.renew(&receipts) {
                        Ok(()) => stats.add_lease_extension(),
                        Err(_) => stats.add_broker_error(),
                    }
                }
            })?;
        Ok(Self { shared })
    }

    /// Keeps the leases of `held` until it is over.
    pub(crate) fn hold(&self, held: Arc<Held<R>>) {
        self.shared.lock().held.push(held);
    }
}

impl<R> Drop for LeaseKeeper<R> {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Sends what it was asked to renew.
    struct Record(mpsc::Sender<Vec<u32>>);

    impl LeaseRenewer<u32> for Record {
        fn renew(&mut self, receipts: &[&u32]) -> Result<(), String> {
            let _ = self.0.send(receipts.iter().map(|r| **r).collect());
            Ok(())
        }
    }

    #[test]
    fn renews_what_is_unfinished_until_the_batch_is_over_or_its_max_lease() {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(ConsumerStats::default());
        let keeper =
            LeaseKeeper::start("t", Duration::from_millis(20), stats.clone(), Record(tx)).unwrap();
        let held = Arc::new(Held::new(vec![1, 2, 3], None));
        keeper.hold(held.clone());
        let next = || rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // Renewals collected before a change may still arrive: then 300 ms without any (at a
        // 20 ms interval, about 15 ticks), at most 10 tries.
        let quiet = || {
            for _ in 0..10 {
                if rx.recv_timeout(Duration::from_millis(300)).is_err() {
                    return true;
                }
            }
            false
        };
        assert_eq!(next(), [1, 2, 3]);
        held.finish(1);
        // A renewal may already have collected the three: the next one has two.
        let mut renewed = next();
        if renewed.len() == 3 {
            renewed = next();
        }
        assert_eq!(renewed, [1, 3]);
        drop(HoldGuard(held));
        // Over: nothing more to renew.
        assert!(quiet(), "renewals go on after the batch is over");
        // A batch past its max lease is no longer renewed, though unfinished.
        let short = Arc::new(Held::new(vec![7], Some(Duration::from_millis(100))));
        keeper.hold(short.clone());
        assert_eq!(next(), [7]);
        std::thread::sleep(Duration::from_millis(150));
        assert!(quiet(), "renewals go on past the max lease");
        assert!(stats.snapshot().lease_extensions >= 3);
        // Dropping the keeper ends its thread (the renewer, and its sender, go with it).
        drop(keeper);
        let end = (0..10)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)))
            .find(Result::is_err);
        assert_eq!(end, Some(Err(mpsc::RecvTimeoutError::Disconnected)));
    }
}
