//! Retries of one OTLP export, as opentelemetry-otlp 0.33 does them (`retry.rs`; its function is
//! private): up to 3 retries; a retryable failure backs off 100 ms doubling to 1.6 s, plus up to
//! 100 ms of jitter; a throttled one (HTTP `Retry-After`, gRPC `RetryInfo`) waits at least the
//! server's delay (at most 30 s, which then also lifts the 1.6 s cap); a wait that does not fit
//! in what is left of the export timeout, or a failure after it, gives up at once. Waits sleep
//! the thread: exports run on the batch processor's helper threads, outside any async runtime.
//!
//! Across exports, the signal's [`Gate`] holds what the collector said: a refusal (HTTP
//! 404/405/501, gRPC `UNIMPLEMENTED`) stops requests for a while, and a throttle delay
//! (`Retry-After`, `RetryInfo`) is honoured by every later export too, not only by the retries of
//! the one that got it.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use super::gate::{Closed, Gate};
use super::health::LossKind;

/// Shutdown of an own exporter (HTTP or gRPC): drops its client; a second call is
/// `AlreadyShutdown`, as the SDK's exporters answer.
pub(crate) fn shut_down<T>(
    client: &std::sync::Mutex<Option<T>>,
) -> opentelemetry_sdk::error::OTelSdkResult {
    match client
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        Some(_) => Ok(()),
        None => Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown),
    }
}

const MAX_RETRIES: u32 = 3;
const INITIAL_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(1600);
const MAX_JITTER_MS: u64 = 100;
/// The longest wait a server's delay can ask for.
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// How a failed attempt may be retried.
pub(crate) enum Retry {
    Never,
    Backoff,
    /// After the server's delay.
    After(Duration),
    /// Never: the endpoint does not take this signal (the answer, e.g. `HTTP 404`).
    Refused(String),
}

/// A failed attempt and the message the export fails with if it is the last.
pub(crate) struct Failure {
    pub(crate) retry: Retry,
    pub(crate) message: String,
    /// What the loss is if this attempt is the last ([`LossKind::Timeout`] for no answer in time,
    /// else [`LossKind::Failed`]; refusals and throttles are classified from `retry`).
    pub(crate) kind: LossKind,
}

impl Failure {
    /// A failure of `kind` retried as `retry`.
    pub(crate) fn new(retry: Retry, kind: LossKind, message: impl Into<String>) -> Self {
        Self {
            retry,
            message: message.into(),
            kind,
        }
    }
}

/// An export that lost its data: why, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost {
    pub(crate) kind: LossKind,
    pub(crate) message: String,
}

impl Lost {
    fn new(kind: LossKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Up to 100 ms, from the clock's nanoseconds (as opentelemetry-otlp does: no RNG needed).
fn jitter() -> Duration {
    use std::hash::{DefaultHasher, Hasher};
    let mut hasher = DefaultHasher::default();
    hasher.write_u32(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    Duration::from_millis(hasher.finish() % (MAX_JITTER_MS + 1))
}

/// Runs `attempt` until it succeeds or may not be retried within `timeout`, first waiting for
/// `gate` (a throttle that ends within the timeout is waited for; a refusal, or a throttle that
/// does not, fails at once without a request). The error says why the last attempt failed.
pub(crate) async fn with_retries<F, Fut>(
    timeout: Duration,
    gate: &Gate,
    mut attempt: F,
) -> Result<(), Lost>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let start = Instant::now();
    let (mut retries, mut delay, mut cap) = (0, INITIAL_DELAY, MAX_DELAY);
    loop {
        match gate.check() {
            Ok(()) => {}
            Err(Closed::Refused(answer)) => {
                return Err(Lost::new(
                    LossKind::Refused,
                    format!("not sent: the collector refuses this signal (it answered {answer})"),
                ));
            }
            Err(Closed::Throttled(until)) => {
                let wait = until.saturating_duration_since(Instant::now());
                if wait >= timeout.saturating_sub(start.elapsed()) {
                    return Err(Lost::new(
                        LossKind::Throttled,
                        format!(
                            "not sent: the collector asked for quiet for another {} ms, past the \
                             export timeout",
                            wait.as_millis()
                        ),
                    ));
                }
                std::thread::sleep(wait);
                continue;
            }
        }
        let failure = match attempt().await {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        let kind = match &failure.retry {
            Retry::Refused(answer) => {
                gate.refuse(answer);
                return Err(Lost::new(LossKind::Refused, failure.message));
            }
            Retry::After(server) => {
                gate.throttle(*server);
                LossKind::Throttled
            }
            Retry::Never | Retry::Backoff => failure.kind,
        };
        let lost = |message| Err(Lost::new(kind, message));
        if start.elapsed() >= timeout || retries >= MAX_RETRIES {
            return lost(failure.message);
        }
        match failure.retry {
            Retry::Never | Retry::Refused(_) => return lost(failure.message),
            Retry::Backoff => {}
            Retry::After(server) => {
                let server = server.min(MAX_THROTTLE);
                if server > cap {
                    cap = MAX_THROTTLE;
                }
                delay = delay.max(server);
            }
        }
        retries += 1;
        let wait = delay.saturating_add(jitter()).min(cap);
        if wait >= timeout.saturating_sub(start.elapsed()) {
            return lost(failure.message);
        }
        std::thread::sleep(wait);
        delay = delay.saturating_mul(2).min(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_bounded() {
        for _ in 0..100 {
            assert!(jitter() <= Duration::from_millis(MAX_JITTER_MS));
        }
    }

    #[test]
    fn retries_three_times_then_gives_up_and_never_past_the_timeout() {
        let gate = Gate::new(super::super::gate::Signal::Traces, "test");
        let run = |timeout, retry: fn() -> Retry, gate: &Gate| {
            let mut calls = 0;
            let result = futures_executor::block_on(with_retries(timeout, gate, || {
                calls += 1;
                async move { Err(Failure::new(retry(), LossKind::Failed, "down")) }
            }));
            (result.map_err(|l| l.kind), calls)
        };
        let secs = Duration::from_secs;
        assert_eq!(
            run(secs(10), || Retry::Backoff, &gate),
            (Err(LossKind::Failed), 4)
        );
        assert_eq!(
            run(secs(2), || Retry::Never, &gate),
            (Err(LossKind::Failed), 1)
        );
        // A throttle longer than the timeout: one request, then the gate stays closed and the
        // next export sends nothing.
        assert_eq!(
            run(secs(2), || Retry::After(Duration::from_secs(30)), &gate),
            (Err(LossKind::Throttled), 1)
        );
        assert_eq!(
            run(secs(2), || Retry::Backoff, &gate),
            (Err(LossKind::Throttled), 0)
        );
        // A refusal: one request, then none until the re-probe.
        let gate = Gate::new(super::super::gate::Signal::Metrics, "test");
        assert_eq!(
            run(secs(2), || Retry::Refused("HTTP 404".into()), &gate),
            (Err(LossKind::Refused), 1)
        );
        assert_eq!(
            run(secs(2), || Retry::Backoff, &gate),
            (Err(LossKind::Refused), 0)
        );
    }
}
