//! The queue's RED measurements: `messaging.client.operation.duration` of each `send` (the
//! producer) and `messaging.process.duration` of each handler call (the consumer layer),
//! recorded when the handle has metrics
//! ([`TelemetryHandle::metrics`](gorax_trace::TelemetryHandle::metrics)), sampled or not.

use std::time::Instant;

use gorax_trace::metrics::{Metrics, RequestDuration};
use gorax_trace::semconv;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanContext;

/// One operation being measured.
#[derive(Debug)]
pub(crate) struct MessageMetrics {
    metrics: Metrics,
    which: RequestDuration,
    start: Instant,
    attrs: [KeyValue; 3],
}

/// `error.type` of a handler that panicked.
pub(crate) const PANIC: &str = "panic";

impl MessageMetrics {
    pub(crate) fn start(
        metrics: &Metrics,
        which: RequestDuration,
        operation: &'static str,
        system: &str,
        queue: &str,
    ) -> Self {
        Self {
            metrics: metrics.clone(),
            which,
            start: Instant::now(),
            attrs: [
                KeyValue::new(semconv::MESSAGING_SYSTEM, metrics.intern(system)),
                KeyValue::new(semconv::MESSAGING_OPERATION_NAME, operation),
                KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, metrics.intern(queue)),
            ],
        }
    }

    /// Records the operation; `error_type` when it failed.
    pub(crate) fn finish(self, error_type: Option<&'static str>, span: &SpanContext) {
        let seconds = self.start.elapsed().as_secs_f64();
        let [system, operation, queue] = self.attrs;
        self.metrics.record_present(
            self.which,
            seconds,
            [
                Some(system),
                Some(operation),
                Some(queue),
                error_type.map(|e| KeyValue::new(semconv::ERROR_TYPE, e)),
            ],
            span,
        );
    }
}
