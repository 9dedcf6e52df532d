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
// Without an OTLP transport nothing can export log records (`init` refuses logs then, naming the
// features), so the processor is built only with one.
#[cfg_attr(
    not(any(feature = "otlp-http", feature = "otlp-grpc")),
    allow(dead_code)
)]
pub(crate) mod processor;

pub use bridge::{InstalledLogger, InstalledLoggerProvider};
pub use processor::{LogCounts, LogsHealth};
