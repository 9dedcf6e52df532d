//! Where finished spans go: the bounded [`BatchProcessor`] with its [`ExportHealth`] counters,
//! the [`ConsoleExporter`] (the embedded default that prints each trace as a tree), and the
//! OTLP exporters (features `otlp-http`, `otlp-grpc`).

mod batch;
mod console;
mod health;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod otlp;

pub use batch::BatchProcessor;
pub use console::ConsoleExporter;
pub use health::{ExportHealth, HealthSnapshot};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::time::Duration;

/// The exporter chosen by configuration (static dispatch: the SDK's exporter trait is not
/// object safe).
#[derive(Debug)]
pub(crate) enum AnyExporter {
    Console(ConsoleExporter),
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    Otlp(Box<otlp::OtlpExporter>),
}

impl AnyExporter {
    /// The counters this exporter feeds itself (OTLP: retries), for the processor to share.
    pub(crate) fn health(&self) -> Option<ExportHealth> {
        match self {
            AnyExporter::Console(_) => None,
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => Some(e.health()),
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
        }
    }
}

impl SpanExporter for AnyExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            AnyExporter::Console(e) => e.export(batch).await,
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            AnyExporter::Console(e) => e.shutdown_with_timeout(timeout),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self {
            AnyExporter::Console(e) => e.force_flush(),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.force_flush(),
        }
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        match self {
            AnyExporter::Console(e) => e.set_resource(resource),
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            AnyExporter::Otlp(e) => e.set_resource(resource),
        }
    }
}
