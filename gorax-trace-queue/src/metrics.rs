//! The queue's RED measurements: `messaging.client.operation.duration` of each `send` (the
//! producer, with `messaging.operation.type`, conditionally required there) and
//! `messaging.process.duration` of each handler call (the consumer layer),
//! recorded when the handle has metrics
//! ([`TelemetryHandle::metrics`](gorax_trace::TelemetryHandle::metrics)), sampled or not.

use std::time::Instant;

use gorax_trace::metrics::{Metrics, RequestDuration};
use gorax_trace::semconv;
use gorax_trace::semconv::messaging::EMITTED as M;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanContext;

/// One operation being measured.
#[derive(Debug)]
pub(crate) struct MessageMetrics {
    metrics: Metrics,
    which: RequestDuration,
    start: Instant,
    attrs: [KeyValue; 3],
    /// `messaging.operation.type` (the operation histogram only: the process histogram has no
    /// such attribute).
    operation_type: Option<KeyValue>,
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
                KeyValue::new(M.system, metrics.intern(system)),
                KeyValue::new(M.operation_name, operation),
                KeyValue::new(M.destination_name, metrics.intern(queue)),
            ],
            operation_type: (which == RequestDuration::MessagingOperation)
                .then(|| KeyValue::new(M.operation_type, operation)),
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
                self.operation_type,
                Some(operation),
                Some(queue),
                error_type.map(|e| KeyValue::new(semconv::ERROR_TYPE, e)),
            ],
            span,
        );
    }
}
