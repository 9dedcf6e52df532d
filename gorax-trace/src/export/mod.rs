//! Where finished spans go: the bounded [`BatchProcessor`] with its [`ExportHealth`] counters,
//! the [`ConsoleExporter`] (the embedded default that prints each trace as a tree), and the
//! OTLP exporters (features `otlp-http`, `otlp-grpc`).
//!
//! # Why our own
//!
//! The export path is our own code (about 2.3 k lines of code without the tests, the batch
//! processor included) where the OpenTelemetry crates would do; this table is the one place that
//! says why. Upstream versions are the ones checked: opentelemetry_sdk 0.33.1 (in `Cargo.lock`) and opentelemetry-otlp
//! 0.33.1 (the release of the same line, no longer in our tree). Gains are measured, with
//! where the number comes from.
//!
//! | part | what upstream lacks | what ours does | measured gain | delete when |
//! |---|---|---|---|---|
//! | batch processor (`batch`) | opentelemetry_sdk 0.33.1's thread `BatchSpanProcessor` bounds its queue by span count only and exports serially (`max_concurrent_exports` is honoured only by the experimental async-runtime processor); its drops are reported as `otel.sdk.processor.span.processed` with `error.type=queue_full` on the global meter (with `experimental_metrics_bound_instruments`, which this crate enables), but there is no per-reason ledger of exported and lost spans and no byte bound | a byte budget beside the span bound, up to `TRACING_EXPORT_CONCURRENCY` exports in flight on helper threads, no export holding the thread past its timeout, the collector's throttle honoured across exports, an exact ledger sealed at shutdown ([`ExportHealth`]) | OTLP/HTTP at 400 k spans/s: < 0.01 % dropped instead of 0–19 % (README, "Performance", export bench; CHANGELOG, issue 14); 2 048 spans with 120 KB attributes held 240 MiB with the span bound alone, the byte budget keeps the growth at 22 MiB (this module's `batch` docs, `tests/integration`) | the SDK's processor has a byte bound and concurrent exports and its counts can be read per processor |
//! | encoder (`encode`) | opentelemetry-otlp 0.33.1 converts every span into owned opentelemetry-proto structs (a `String` per key and string value, ~20 allocations for a server span) before prost encodes them | protobuf written straight from the `SpanData`: one pass for the lengths, one copy, one allocation per batch, the same bytes (checked against the SDK's path in its tests) | 0.31–0.34 µs instead of 1.8–2.6 µs per nine-attribute server span (README, "Performance", the `gzip_levels` test) | upstream encodes without owned intermediates at a similar cost |
//! | OTLP/HTTP exporter (`otlp_http`) and retries (`retry`) | opentelemetry-otlp 0.33.1 has the same retry rules (`retry_classification.rs`, `with_retry_policy`), but its exporter encodes as above and reads `OTEL_EXPORTER_OTLP_*` itself | its retry rules mirrored; the body encoded once and shared by the attempts; retries counted per export; a refusal or throttle held for later exports (`gate`); only the resolved configuration is sent | export CPU 0.46–0.84 µs instead of 1.5–2.5 µs per span (README, "Performance") | with the encoder |
//! | OTLP/gRPC exporter (`otlp_grpc`) | opentelemetry-otlp 0.33.1's tonic exporter clones the whole `Vec<SpanData>` and converts it again for every attempt (`exporter/tonic/trace.rs`) | the same encoding, once per export, through a codec that writes the bytes as they are | export CPU 0.8–1.2 µs instead of 3.5–3.8 µs per span (README, "Performance") | upstream encodes once per export |
//! | transports (`otlp`, `tls`) | nothing essential: opentelemetry-otlp 0.33.1 has webpki trust roots for gRPC (`tls-webpki-roots`), rewrites only a schemeless gRPC endpoint (`apply_insecure_scheme`) and accepts a ready channel (`with_channel`) or HTTP client (`with_http_client`); its HTTPS goes through reqwest's TLS features, which change every `reqwest::Client` of the binary | one HTTP client (hyper-rustls with ring and the webpki roots, reqwest's features left alone) and one gRPC channel per signal, built from the resolved configuration (private CA, client certificates), shared by traces, metrics and logs; requests counted; gzip at the fastest level | gzip at the fastest level: 447 → 53 bytes per server span for 0.75–1.1 µs, the default level 3.8–5.0 µs (README, "Performance"); the rest is not a gain but what our own exporters need | with the exporters above (the channel and client could then be handed to upstream's builders) |

mod batch;
mod console;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
mod encode;
pub(crate) mod gate;
mod health;
#[doc(hidden)]
pub mod keep;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod otlp;
#[cfg(feature = "otlp-grpc")]
pub(crate) mod otlp_grpc;
#[cfg(feature = "otlp-http")]
mod otlp_http;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod retry;
mod span_data;
#[cfg(all(feature = "tls", any(feature = "otlp-http", feature = "otlp-grpc")))]
mod tls;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod transport;

pub use batch::BatchProcessor;
pub use console::ConsoleExporter;
pub use gate::{MAX_THROTTLE, REPROBE_AFTER, Signal};
pub use health::{ExportHealth, HealthSnapshot, LossKind};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::time::Duration;

/// Bounds of the batch span processor.
///
/// Settings given in code ([`TraceConfig::with_batch`](crate::TraceConfig::with_batch)) are used as given; from the
/// environment, zero sizes and an export batch larger than the queue are errors.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchSettings {
    /// Spans buffered before new ones are dropped. Default 2048.
    pub max_queue_size: usize,
    /// Time between two exports. Default 5 s.
    pub scheduled_delay: Duration,
    /// Spans per export request. Default 512.
    pub max_export_batch_size: usize,
    /// Time one export may take. Default 10 s.
    pub export_timeout: Duration,
    /// Bytes of span data (estimated) buffered before new spans are dropped. Default 16 MiB.
    pub max_queue_bytes: usize,
}

impl BatchSettings {
    /// These settings buffering at most `spans` spans.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gorax_trace::export::BatchSettings;
    ///
    /// let batch = BatchSettings::default()
    ///     .with_scheduled_delay(Duration::from_millis(200))
    ///     .with_export_timeout(Duration::from_secs(2));
    /// assert_eq!(batch.max_queue_size, 2048);
    /// assert_eq!(batch.export_timeout, Duration::from_secs(2));
    /// ```
    pub const fn with_max_queue_size(mut self, spans: usize) -> Self {
        self.max_queue_size = spans;
        self
    }

    /// These settings exporting every `delay`.
    pub const fn with_scheduled_delay(mut self, delay: Duration) -> Self {
        self.scheduled_delay = delay;
        self
    }

    /// These settings sending at most `spans` spans per export request.
    pub const fn with_max_export_batch_size(mut self, spans: usize) -> Self {
        self.max_export_batch_size = spans;
        self
    }

    /// These settings giving one export at most `timeout`.
    pub const fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self
    }

    /// These settings buffering at most `bytes` bytes of span data (estimated).
    pub const fn with_max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = bytes;
        self
    }
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_queue_size: 2048,
            scheduled_delay: Duration::from_secs(5),
            max_export_batch_size: 512,
            export_timeout: Duration::from_secs(10),
            max_queue_bytes: 16 << 20,
        }
    }
}

/// OTLP transport (`TRACING_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Compression of OTLP request bodies (`TRACING_COMPRESSION`, `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`,
/// `OTEL_EXPORTER_OTLP_COMPRESSION`: `gzip` or `none`, the values every OTLP receiver supports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Bodies as encoded (the specification's default).
    #[default]
    None,
    /// gzip: `Content-Encoding: gzip` over HTTP, `grpc-encoding: gzip` over gRPC.
    Gzip,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        })
    }
}

/// An exporter that could not be built (bad endpoint, TLS material, headers, runtime): what
/// failed, as a sentence, and the underlying error when there is one
/// ([`source`](std::error::Error::source)).
///
/// ```
/// use gorax_trace::config::{Protocol, TraceConfig};
///
/// let config = TraceConfig::new()
///     .with_endpoint("http://127.0.0.1:4318/v1/traces")
///     .with_header("x-api-key", "ok")
///     .with_protocol(Protocol::HttpProtobuf);
/// assert!(gorax_trace::init(config).is_ok());
/// ```
#[derive(Debug)]
pub struct ExporterError {
    what: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ExporterError {
    /// An error without an underlying one.
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            source: None,
        }
    }

    /// `what` failed because of `source` (its text is appended to `what`, and it stays
    /// available as the source).
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    pub(crate) fn caused(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        let source = source.into();
        Self {
            what: format!("{}: {source}", what.into()),
            source: Some(source),
        }
    }
}

impl std::fmt::Display for ExporterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for ExporterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why an exporter could not be built (turned into [`InitError`](crate::InitError)).
#[derive(Debug)]
pub(crate) enum BuildError {
    /// Bad endpoint, TLS or headers.
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    Exporter(ExporterError),
    /// The cargo feature for the configured protocol is off.
    FeatureMissing {
        /// What needs it, e.g. `OTLP/gRPC`.
        what: &'static str,
        /// The feature.
        feature: &'static str,
    },
}

impl BuildError {
    /// The error for `protocol` in a build without its cargo feature.
    pub(crate) fn protocol_missing(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Grpc => Self::FeatureMissing {
                what: "OTLP/gRPC",
                feature: "otlp-grpc",
            },
            _ => Self::FeatureMissing {
                what: "OTLP/HTTP",
                feature: "otlp-http",
            },
        }
    }
}

/// The gRPC (and HTTPS) exporter's own runtime (see [`otlp`]); stopped without blocking, so
/// that dropping a [`Telemetry`](crate::Telemetry) inside async code never panics.
#[derive(Debug)]
pub(crate) struct ExportRuntime {
    #[cfg(any(feature = "otlp-grpc", feature = "tls"))]
    pub(crate) runtime: tokio::runtime::Runtime,
}

impl ExportRuntime {
    pub(crate) fn stop(self) {
        #[cfg(any(feature = "otlp-grpc", feature = "tls"))]
        self.runtime.shutdown_background();
    }
}

/// The exporter chosen by configuration (static dispatch: the SDK's exporter trait is not
/// object safe).
#[derive(Debug)]
pub(crate) enum AnyExporter {
    Console(ConsoleExporter),
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    Otlp(Box<otlp::OtlpExporter>),
    /// `TRACING_EXPORTER=console,otlp`: the tree printed, then the batch sent.
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    ConsoleAndOtlp(ConsoleExporter, Box<otlp::OtlpExporter>),
}

impl AnyExporter {
    /// The counters this exporter feeds itself (OTLP: retries), for the processor to share.
    pub(crate) fn health(&self) -> Option<ExportHealth> {
        match self {
            AnyExporter::Console(_) => None,
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => Some(e.health()),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::ConsoleAndOtlp(_, e) => Some(e.health()),
        }
    }

    /// Until when the collector asked for quiet, if it still does (the processor keeps spans
    /// queued meanwhile).
    pub(crate) fn throttled_until(&self) -> Option<std::time::Instant> {
        match self {
            AnyExporter::Console(_) => None,
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.throttled_until(),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::ConsoleAndOtlp(_, e) => e.throttled_until(),
        }
    }

    /// Endpoint and protocol, for the processor's log lines.
    pub(crate) fn target(&self) -> Option<batch::Target> {
        match self {
            AnyExporter::Console(_) => Some(batch::Target {
                endpoint: "stdout".to_owned(),
                protocol: "console".to_owned(),
            }),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => Some(e.target()),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::ConsoleAndOtlp(_, e) => Some(e.target()),
        }
    }
}

impl SpanExporter for AnyExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            AnyExporter::Console(e) => e.export(batch).await,
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.export(batch).await,
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::ConsoleAndOtlp(c, e) => {
                let _ = c.export(batch.clone()).await;
                e.export(batch).await
            }
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            AnyExporter::Console(e) => e.shutdown_with_timeout(timeout),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.shutdown_with_timeout(timeout),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::ConsoleAndOtlp(c, e) => {
                let _ = c.shutdown_with_timeout(timeout);
                e.shutdown_with_timeout(timeout)
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self {
            AnyExporter::Console(e) => e.force_flush(),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.force_flush(),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::ConsoleAndOtlp(c, e) => {
                let _ = c.force_flush();
                e.force_flush()
            }
        }
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        match self {
            AnyExporter::Console(e) => e.set_resource(resource),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.set_resource(resource),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::ConsoleAndOtlp(c, e) => {
                c.set_resource(resource);
                e.set_resource(resource)
            }
        }
    }
}
