//! Exporter health counters: spans exported, dropped and failed, readable from the API and as
//! Prometheus text.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of the export pipeline. Cheap to clone (an `Arc`); every clone sees the same
/// counters. Get it from [`Telemetry::health`](crate::Telemetry::health) or
/// [`BatchProcessor::health`](crate::export::BatchProcessor::health).
///
/// ```
/// let health = gorax_trace::export::ExportHealth::default();
/// assert_eq!(health.snapshot().spans_dropped, 0);
/// assert!(health.render_prometheus().contains("otel_processor_spans_dropped_total 0"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ExportHealth {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    spans_exported: AtomicU64,
    spans_dropped: AtomicU64,
    spans_dropped_bytes: AtomicU64,
    spans_failed: AtomicU64,
    spans_timed_out: AtomicU64,
    spans_refused: AtomicU64,
    spans_throttled: AtomicU64,
    spans_rejected: AtomicU64,
    export_failures: AtomicU64,
    export_retries: AtomicU64,
    /// The message of the latest loss in export (not on the hot path: once per batch).
    last_error: std::sync::Mutex<Option<String>>,
}

/// Why spans were lost in export (the breakdown of
/// [`HealthSnapshot::spans_failed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossKind {
    /// No answer within the export timeout or the shutdown budget.
    Timeout,
    /// The collector refused the signal (HTTP 404/405/501, gRPC `UNIMPLEMENTED`): nothing is
    /// sent to it for a while ([`REPROBE_AFTER`](crate::export::REPROBE_AFTER)).
    Refused,
    /// The collector asked to wait (`Retry-After`, `RetryInfo`) longer than the export or the
    /// shutdown could.
    Throttled,
    /// Acknowledged, but rejected by the collector in the answer's `partial_success`.
    Rejected,
    /// Any other failure: unreachable collector, another status, an encoding limit.
    Failed,
}

impl LossKind {
    /// The `error.type` value of the `otel.sdk.*` metrics for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Throttled => "throttled",
            Self::Rejected => "rejected",
            Self::Failed => crate::semconv::ERROR_TYPE_EXPORT_FAILED,
        }
    }
}

/// A point-in-time copy of [`ExportHealth`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthSnapshot {
    /// Spans the exporter accepted.
    pub spans_exported: u64,
    /// Spans dropped before export because the queue was full, in spans or in bytes (or the
    /// processor shut down).
    pub spans_dropped: u64,
    /// Of [`spans_dropped`](Self::spans_dropped), those dropped because the queue's byte budget
    /// ([`BatchSettings::max_queue_bytes`](crate::export::BatchSettings::max_queue_bytes)) was
    /// reached, or because the span alone is larger than the budget.
    pub spans_dropped_bytes: u64,
    /// Spans lost in export, for any reason: the sum of [`spans_timed_out`](Self::spans_timed_out),
    /// [`spans_refused`](Self::spans_refused), [`spans_throttled`](Self::spans_throttled),
    /// [`spans_rejected`](Self::spans_rejected) and other failures (collector unreachable,
    /// another status).
    pub spans_failed: u64,
    /// Of [`spans_failed`](Self::spans_failed): no answer within the export timeout, or still
    /// queued or in flight when the shutdown budget ran out.
    pub spans_timed_out: u64,
    /// Of [`spans_failed`](Self::spans_failed): the collector refuses traces (HTTP 404, 405,
    /// 501; gRPC `UNIMPLEMENTED`), including spans not sent while it was known to.
    pub spans_refused: u64,
    /// Of [`spans_failed`](Self::spans_failed): the collector asked for more quiet
    /// (`Retry-After`, `RetryInfo`) than the export timeout or the shutdown budget had left.
    pub spans_throttled: u64,
    /// Of [`spans_failed`](Self::spans_failed): acknowledged but rejected by the collector
    /// (`partial_success.rejected_spans` of its answer).
    pub spans_rejected: u64,
    /// Export calls that lost their spans (collector down, timeout, refused, throttled).
    pub export_failures: u64,
    /// Requests the OTLP exporter repeated after a retryable answer (HTTP 429/502/503/504, gRPC
    /// `UNAVAILABLE`, ...), within the export timeout. Zero for other exporters.
    pub export_retries: u64,
}

impl ExportHealth {
    /// A copy of the counters now.
    pub fn snapshot(&self) -> HealthSnapshot {
        let c = &self.inner;
        HealthSnapshot {
            spans_exported: c.spans_exported.load(Ordering::Relaxed),
            spans_dropped: c.spans_dropped.load(Ordering::Relaxed),
            spans_dropped_bytes: c.spans_dropped_bytes.load(Ordering::Relaxed),
            spans_failed: c.spans_failed.load(Ordering::Relaxed),
            spans_timed_out: c.spans_timed_out.load(Ordering::Relaxed),
            spans_refused: c.spans_refused.load(Ordering::Relaxed),
            spans_throttled: c.spans_throttled.load(Ordering::Relaxed),
            spans_rejected: c.spans_rejected.load(Ordering::Relaxed),
            export_failures: c.export_failures.load(Ordering::Relaxed),
            export_retries: c.export_retries.load(Ordering::Relaxed),
        }
    }

    /// The counters in the Prometheus text exposition format, for a `/metrics` route.
    pub fn render_prometheus(&self) -> String {
        let s = self.snapshot();
        let rows = [
            (
                "otel_exporter_spans_exported_total",
                "Spans accepted by the exporter.",
                s.spans_exported,
            ),
            (
                "otel_processor_spans_dropped_total",
                "Spans dropped because the export queue was full.",
                s.spans_dropped,
            ),
            (
                "otel_processor_spans_dropped_bytes_total",
                "Spans dropped because the export queue's byte budget was reached.",
                s.spans_dropped_bytes,
            ),
            (
                "otel_exporter_spans_failed_total",
                "Spans lost in failed export calls.",
                s.spans_failed,
            ),
            (
                "otel_exporter_spans_timed_out_total",
                "Spans lost because no answer came within the export timeout or the shutdown budget.",
                s.spans_timed_out,
            ),
            (
                "otel_exporter_spans_refused_total",
                "Spans lost because the collector refuses traces (404, 405, 501, UNIMPLEMENTED).",
                s.spans_refused,
            ),
            (
                "otel_exporter_spans_throttled_total",
                "Spans lost because the collector asked to wait longer than the export could.",
                s.spans_throttled,
            ),
            (
                "otel_exporter_spans_rejected_total",
                "Spans the collector acknowledged but rejected (partial success).",
                s.spans_rejected,
            ),
            (
                "otel_exporter_failures_total",
                "Export calls that failed.",
                s.export_failures,
            ),
            (
                "otel_exporter_retries_total",
                "Export requests repeated after a retryable answer.",
                s.export_retries,
            ),
        ];
        let mut out = String::with_capacity(1024);
        for (name, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out
    }

    pub(crate) fn add_exported(&self, n: usize) {
        self.inner
            .spans_exported
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_dropped(&self, n: usize) {
        self.inner
            .spans_dropped
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_dropped_bytes(&self, n: usize) {
        self.add_dropped(n);
        self.inner
            .spans_dropped_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    pub(crate) fn add_retries(&self, n: u64) {
        self.inner.export_retries.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` spans lost in one export, for `kind`, with the export's error message.
    pub(crate) fn add_lost(&self, n: usize, kind: LossKind, message: &str) {
        let c = &self.inner;
        c.spans_failed.fetch_add(n as u64, Ordering::Relaxed);
        let by_kind = match kind {
            LossKind::Timeout => Some(&c.spans_timed_out),
            LossKind::Refused => Some(&c.spans_refused),
            LossKind::Throttled => Some(&c.spans_throttled),
            LossKind::Rejected => Some(&c.spans_rejected),
            LossKind::Failed => None,
        };
        if let Some(counter) = by_kind {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        if kind != LossKind::Rejected {
            c.export_failures.fetch_add(1, Ordering::Relaxed);
        }
        *c.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.to_owned());
    }

    /// The message of the latest export that lost spans, if any did.
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
