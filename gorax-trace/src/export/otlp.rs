//! OTLP exporters built from [`TraceConfig`].
//!
//! gRPC (tonic) needs a tokio runtime when the channel is built and while it exports. Instead of
//! borrowing the application's runtime (which panics outside one, and deadlocks a flush on a
//! current-thread runtime), the gRPC exporter gets a one-thread runtime of its own, owned by the
//! [`Telemetry`](crate::Telemetry) and dropped after the provider shut down.

use opentelemetry_otlp::WithExportConfig;

use super::{BuildError, ExportRuntime};
use crate::config::{Protocol, TraceConfig};

/// A built OTLP exporter and, for gRPC, the runtime that drives its channel.
pub(crate) struct Otlp {
    pub(crate) exporter: opentelemetry_otlp::SpanExporter,
    pub(crate) runtime: Option<ExportRuntime>,
}

pub(crate) fn build(config: &TraceConfig, endpoint: &str) -> Result<Otlp, BuildError> {
    let timeout = config.batch().export_timeout;
    match config.protocol() {
        #[cfg(feature = "otlp-http")]
        Protocol::HttpProtobuf => {
            use opentelemetry_otlp::WithHttpConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .with_headers(config.headers().iter().cloned().collect())
                .build()
                .map_err(|e| BuildError::Exporter(e.to_string()))?;
            Ok(Otlp {
                exporter,
                runtime: None,
            })
        }
        #[cfg(feature = "otlp-grpc")]
        Protocol::Grpc => {
            use opentelemetry_otlp::WithTonicConfig;
            use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
            let mut headers = http::HeaderMap::new();
            for (k, v) in config.headers() {
                let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                    BuildError::Exporter(format!("invalid export header name {k:?}"))
                })?;
                let value = http::HeaderValue::from_str(v).map_err(|_| {
                    BuildError::Exporter(format!("invalid value of export header {k:?}"))
                })?;
                headers.insert(name, value);
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("gorax-trace-grpc")
                .enable_all()
                .build()
                .map_err(|e| {
                    BuildError::Exporter(format!("cannot start the gRPC export runtime: {e}"))
                })?;
            let _entered = runtime.enter();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .with_metadata(MetadataMap::from_headers(headers))
                .build()
                .map_err(|e| BuildError::Exporter(e.to_string()))?;
            drop(_entered);
            Ok(Otlp {
                exporter,
                runtime: Some(ExportRuntime { runtime }),
            })
        }
        #[allow(unreachable_patterns)]
        other => Err(BuildError::FeatureMissing(match other {
            Protocol::Grpc => "otlp-grpc",
            _ => "otlp-http",
        })),
    }
}
