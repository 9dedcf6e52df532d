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
    export_failures: AtomicU64,
    export_retries: AtomicU64,
}

/// A point-in-time copy of [`ExportHealth`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// Spans lost in failed export calls.
    pub spans_failed: u64,
    /// Export calls that returned an error (collector down, timeout, rejected).
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

    #[cfg_attr(
        not(any(feature = "otlp-http", feature = "otlp-grpc")),
        allow(dead_code)
    )]
    pub(crate) fn add_retries(&self, n: u64) {
        self.inner.export_retries.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_failed(&self, n: usize) {
        self.inner
            .spans_failed
            .fetch_add(n as u64, Ordering::Relaxed);
        self.inner.export_failures.fetch_add(1, Ordering::Relaxed);
    }
}
