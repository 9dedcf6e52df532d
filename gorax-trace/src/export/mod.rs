//! Where finished spans go: the bounded [`BatchProcessor`] with its [`ExportHealth`] counters,
//! the [`ConsoleExporter`] (the embedded default that prints each trace as a tree), and the
//! OTLP exporters (features `otlp-http`, `otlp-grpc`).

mod batch;
mod console;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
mod encode;
pub(crate) mod gate;
mod health;
pub mod keep;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod otlp;
#[cfg(feature = "otlp-grpc")]
pub(crate) mod otlp_grpc;
#[cfg(feature = "otlp-http")]
mod otlp_http;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod retry;
#[cfg(all(feature = "tls", any(feature = "otlp-http", feature = "otlp-grpc")))]
mod tls;

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

/// Why an exporter could not be built (turned into [`InitError`](crate::InitError)).
#[derive(Debug)]
pub(crate) enum BuildError {
    /// Bad endpoint, TLS or headers.
    #[cfg_attr(
        not(any(feature = "otlp-http", feature = "otlp-grpc")),
        allow(dead_code)
    )]
    Exporter(String),
    /// The cargo feature for the configured protocol is off.
    #[cfg_attr(
        not(any(feature = "otlp-http", feature = "otlp-grpc")),
        allow(dead_code)
    )]
    FeatureMissing {
        /// What needs it, e.g. `OTLP/gRPC`.
        what: &'static str,
        /// The feature.
        feature: &'static str,
    },
}

impl BuildError {
    /// The error for `protocol` in a build without its cargo feature.
    #[cfg_attr(
        not(any(feature = "otlp-http", feature = "otlp-grpc")),
        allow(dead_code)
    )]
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
