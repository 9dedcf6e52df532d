//! OTLP logs (feature `logs`): `tracing` events as OpenTelemetry log records, correlated with
//! the traces, sent by the same transports as the spans, bounded and counted like them.
//!
//! - **From events to records**: [`subscriber::install`](crate::subscriber::install) adds
//!   opentelemetry-appender-tracing 0.33's bridge layer; its logger resolves the installed
//!   [`Telemetry`](crate::Telemetry) at each event (the subscriber is installed before `init`),
//!   and does nothing when logs are off. The SDK's logger (opentelemetry_sdk 0.33) stamps each
//!   record with the current OpenTelemetry context's `trace_id`, `span_id` and flags: the server
//!   span, a span of the OTel API or a bridged `tracing` span, in an unsampled request too (flags
//!   `00`). `RUST_LOG` decides what is exported too: the bridge sits behind the same filter as
//!   the stderr lines (one place to say what is logged).
//! - **Export**: an own processor ([`LogsHealth`]; the SDK's `BatchLogProcessor` keeps its drop
//!   counts private and its shutdown is not bounded by the caller's budget) with a queue bounded
//!   in records and estimated bytes (`OTEL_BLRP_*`), one export thread, and an own OTLP exporter
//!   on the span exporter's transports (the same HTTP client construction, TLS, headers,
//!   compression, retry rules and the per-signal [`Gate`](crate::export::Signal): a collector
//!   that refuses `/v1/logs` gets one warning and no request for 5 minutes, and never fails the
//!   traces or the program). Records are encoded with opentelemetry-proto's transform, then the
//!   `OTEL_LOGRECORD_ATTRIBUTE_*` limits and the URL redaction of
//!   [`redact_text`](crate::httpconv::redact_text) apply to bodies and string attributes.
//! - **Lifecycle**: the last export runs inside the one shutdown budget, beside the spans' and
//!   the metrics'; the counters are sealed before [`Telemetry::shutdown`](crate::Telemetry::shutdown)
//!   returns, and `created = exported + dropped + failed` exactly. The export threads run with
//!   telemetry suppressed, so the exporter's own log lines are never exported again.

mod bridge;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod otlp;
pub(crate) mod processor;

pub use bridge::{InstalledLogger, InstalledLoggerProvider};
pub use processor::{LogCounts, LogsHealth};

/// The logs pipeline's counters as the SDK self-observability metrics:
/// `otel.sdk.exporter.log.exported` (with `error.type` for the lost ones) and
/// `otel.sdk.processor.log.processed` (with `error.type=queue_full` for the dropped ones).
pub(crate) fn health_counters(
    meter: &opentelemetry::metrics::Meter,
    health: &LogsHealth,
) -> Vec<opentelemetry::metrics::ObservableCounter<u64>> {
    use crate::export::LossKind;
    use crate::semconv;
    use opentelemetry::KeyValue;
    use opentelemetry_semantic_conventions::metric::{
        OTEL_SDK_EXPORTER_LOG_EXPORTED, OTEL_SDK_PROCESSOR_LOG_PROCESSED,
    };
    let exported = {
        let health = health.clone();
        meter
            .u64_observable_counter(OTEL_SDK_EXPORTER_LOG_EXPORTED)
            .with_unit("{log_record}")
            .with_description(
                "Log records the collector acknowledged, and (error.type) those lost in export.",
            )
            .with_callback(move |observer| {
                let c = health.snapshot();
                observer.observe(c.exported, &[]);
                let by_kind = c.timed_out + c.refused + c.throttled + c.rejected;
                for (n, kind) in [
                    (c.failed - by_kind, LossKind::Failed),
                    (c.timed_out, LossKind::Timeout),
                    (c.refused, LossKind::Refused),
                    (c.throttled, LossKind::Throttled),
                    (c.rejected, LossKind::Rejected),
                ] {
                    observer.observe(n, &[KeyValue::new(semconv::ERROR_TYPE, kind.as_str())]);
                }
            })
            .build()
    };
    let processed = {
        let health = health.clone();
        meter
            .u64_observable_counter(OTEL_SDK_PROCESSOR_LOG_PROCESSED)
            .with_unit("{log_record}")
            .with_description(
                "Log records the processor handed to the exporter, and (error.type) those it dropped.",
            )
            .with_callback(move |observer| {
                let c = health.snapshot();
                observer.observe(c.exported + c.failed, &[]);
                observer.observe(
                    c.dropped - c.dropped_bytes,
                    &[KeyValue::new(semconv::ERROR_TYPE, semconv::ERROR_TYPE_QUEUE_FULL)],
                );
                observer.observe(
                    c.dropped_bytes,
                    &[KeyValue::new(
                        semconv::ERROR_TYPE,
                        semconv::ERROR_TYPE_QUEUE_BYTES_FULL,
                    )],
                );
            })
            .build()
    };
    vec![exported, processed]
}
