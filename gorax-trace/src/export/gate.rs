//! What a collector answered about one signal, kept across export requests: the one place
//! where every signal (traces, metrics, and later logs) learns that its endpoint refuses it or
//! asked for quiet, and where its exporter leaves the reason of a loss for the processor.
//!
//! - **Refused**: HTTP 404, 405 or 501, or gRPC `UNIMPLEMENTED`, is how a collector says it does
//!   not take a signal (Jaeger takes traces but answers 404 on `/v1/metrics` and
//!   `UNIMPLEMENTED` to the metrics service; Arize Phoenix answers 405). One warning names the
//!   signal, the endpoint and the answer; the signal then sends nothing to that endpoint for
//!   [`REPROBE_AFTER`] (5 minutes), after which one request probes again. Skipped requests are
//!   counted. Other signals are not affected: each signal's exporter has a gate of its own.
//! - **Throttled**: an HTTP 429/503 with `Retry-After`, or a gRPC status with `RetryInfo`, closes
//!   the gate of that signal's endpoint (per signal URL, not per origin: the answer is about the
//!   request that got it, and a collector may throttle one pipeline and not another) until the
//!   delay has passed, capped at [`MAX_THROTTLE`] (60 s) so that a wrong or hostile header cannot
//!   stop export for hours. The OTLP specification says the client SHOULD wait the delay before
//!   retrying; meanwhile spans wait in the bounded queue (what overflows is counted as dropped)
//!   and metric pushes are skipped (the next one carries the cumulative totals).

use std::cell::Cell;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
use std::time::Instant;

use super::health::LossKind;

/// How long a signal refused by its endpoint stays off before one request probes again.
pub const REPROBE_AFTER: Duration = Duration::from_secs(300);

/// The longest quiet a collector's `Retry-After` or `RetryInfo` can impose on a signal.
pub const MAX_THROTTLE: Duration = Duration::from_secs(60);

/// A telemetry signal, for messages and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric pushes.
    Metrics,
    /// Log records.
    Logs,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
            Self::Logs => "logs",
        })
    }
}

/// Whether an HTTP status says the endpoint does not take the signal.
#[cfg(feature = "otlp-http")]
pub(crate) fn http_refuses(status: u16) -> bool {
    matches!(status, 404 | 405 | 501)
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
/// Why the gate is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The endpoint refused the signal with this answer.
    Refused(String),
    /// The endpoint asked for quiet until then.
    Throttled(Instant),
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
#[derive(Debug, Default)]
struct State {
    refused: Option<(Instant, String)>,
    throttled_until: Option<Instant>,
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
/// The state of one signal's endpoint (see the module docs).
#[derive(Debug)]
pub(crate) struct Gate {
    signal: Signal,
    endpoint: String,
    state: Mutex<State>,
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
impl Gate {
    pub(crate) fn new(signal: Signal, endpoint: &str) -> Self {
        Self {
            signal,
            endpoint: endpoint.to_owned(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a request may go out now.
    pub(crate) fn check(&self) -> Result<(), Closed> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some((until, answer)) = &state.refused {
            if now < *until {
                return Err(Closed::Refused(answer.clone()));
            }
            // Time to probe again: this request goes out; the answer decides.
            state.refused = None;
        }
        match state.throttled_until {
            Some(until) if now < until => Err(Closed::Throttled(until)),
            _ => Ok(()),
        }
    }

    /// Until when the endpoint asked for quiet, if it still does.
    pub(crate) fn throttled_until(&self) -> Option<Instant> {
        self.lock()
            .throttled_until
            .filter(|until| *until > Instant::now())
    }

    /// The endpoint refused the signal with `answer` (e.g. `HTTP 404`): one warning, then
    /// nothing is sent for [`REPROBE_AFTER`].
    pub(crate) fn refuse(&self, answer: &str) {
        let first = {
            let mut state = self.lock();
            let first = state.refused.is_none();
            state.refused = Some((Instant::now() + REPROBE_AFTER, answer.to_owned()));
            first
        };
        if first {
            tracing::warn!(
                signal = %self.signal,
                endpoint = %self.endpoint,
                answer,
                "the collector does not accept {}: {} answered {answer}; {} are not sent to it \
                 for the next {} s (skipped exports are counted), other signals are unaffected",
                self.signal,
                self.endpoint,
                self.signal,
                REPROBE_AFTER.as_secs(),
            );
        }
    }

    /// The endpoint asked for `delay` of quiet (capped at [`MAX_THROTTLE`]).
    pub(crate) fn throttle(&self, delay: Duration) {
        let until = Instant::now() + delay.min(MAX_THROTTLE);
        let mut state = self.lock();
        state.throttled_until = Some(state.throttled_until.map_or(until, |u| u.max(until)));
    }
}

thread_local! {
    /// Why the export being polled on this thread lost its spans, and how many of those it
    /// delivered the collector rejected (`partial_success`), with its message.
    static REPORT: Cell<Option<(LossKind, u64)>> = const { Cell::new(None) };
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
/// Records, for the processor polling this export on this thread, why it fails.
pub(crate) fn report_loss(kind: LossKind) {
    REPORT.with(|r| r.set(Some((kind, 0))));
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
/// Records, for the processor polling this export on this thread, that the collector rejected
/// `rejected` of its spans in an acknowledged answer.
pub(crate) fn report_rejected(rejected: u64) {
    REPORT.with(|r| r.set(Some((LossKind::Rejected, rejected))));
}

/// What the export just polled on this thread reported (and clears it).
pub(crate) fn take_report() -> Option<(LossKind, u64)> {
    REPORT.with(Cell::take)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    fn refusal_closes_then_reprobes_and_throttle_is_capped() {
        let gate = Gate::new(Signal::Metrics, "http://127.0.0.1:1/v1/metrics");
        assert_eq!(gate.check(), Ok(()));
        gate.refuse("HTTP 404");
        assert_eq!(gate.check(), Err(Closed::Refused("HTTP 404".into())));
        // Past the re-probe time, one request goes out again.
        gate.lock().refused = Some((Instant::now(), "HTTP 404".into()));
        assert_eq!(gate.check(), Ok(()));

        gate.throttle(Duration::from_secs(3600));
        let until = gate.throttled_until().unwrap();
        assert!(until <= Instant::now() + MAX_THROTTLE);
        assert!(matches!(gate.check(), Err(Closed::Throttled(_))));
        // A shorter delay never shortens a longer quiet.
        gate.throttle(Duration::from_secs(1));
        assert_eq!(gate.throttled_until(), Some(until));
    }

    #[test]
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    fn reports_are_per_thread_and_taken_once() {
        report_rejected(3);
        std::thread::spawn(|| assert_eq!(take_report(), None))
            .join()
            .unwrap();
        assert_eq!(take_report(), Some((LossKind::Rejected, 3)));
        assert_eq!(take_report(), None);
    }
}
