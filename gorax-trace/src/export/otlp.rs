//! OTLP exporters built from [`TraceConfig`].
//!
//! gRPC (tonic) needs a tokio runtime when the channel is built and while it exports. Instead of
//! borrowing the application's runtime (which panics outside one, and deadlocks a flush on a
//! current-thread runtime), the gRPC exporter gets a one-thread runtime of its own, owned by the
//! [`Telemetry`](crate::Telemetry) and dropped after the provider shut down.

//!
//! Retries are opentelemetry-otlp's own (on by default since 0.31, no feature: HTTP 429, 502,
//! 503, 504 and network errors; gRPC `UNAVAILABLE`, and `RESOURCE_EXHAUSTED` with `RetryInfo`;
//! `Retry-After`/`RetryInfo` honoured; every wait bounded by the export timeout, a wait past it
//! gives up at once). They are counted here: the HTTP client (HTTP) or an interceptor (gRPC)
//! counts requests, and every request of one export after the first is a retry
//! ([`HealthSnapshot::export_retries`](super::HealthSnapshot::export_retries)).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::ExportHealth;
use super::batch::Target;
use super::{BuildError, ExportRuntime};
use crate::config::{Protocol, TraceConfig};

/// The OTLP exporter with what the batch processor reports about it: endpoint, protocol and
/// retries.
#[derive(Debug)]
pub(crate) struct OtlpExporter {
    inner: opentelemetry_otlp::SpanExporter,
    target: Target,
    requests: Arc<AtomicU64>,
    health: ExportHealth,
}

impl OtlpExporter {
    pub(crate) fn health(&self) -> ExportHealth {
        self.health.clone()
    }

    pub(crate) fn target(&self) -> Target {
        self.target.clone()
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let before = self.requests.load(Ordering::Relaxed);
        let result = self.inner.export(batch).await;
        let requests = self.requests.load(Ordering::Relaxed) - before;
        self.health.add_retries(requests.saturating_sub(1));
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The blocking reqwest client opentelemetry-otlp would build, counting requests.
#[cfg(feature = "otlp-http")]
#[derive(Debug)]
struct CountingClient {
    inner: reqwest::blocking::Client,
    requests: Arc<AtomicU64>,
}

#[cfg(feature = "otlp-http")]
#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for CountingClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.send_bytes(request).await
    }
}

/// A built OTLP exporter and, for gRPC, the runtime that drives its channel.
pub(crate) struct Otlp {
    pub(crate) exporter: OtlpExporter,
    pub(crate) runtime: Option<ExportRuntime>,
}

pub(crate) fn build(config: &TraceConfig, endpoint: &str) -> Result<Otlp, BuildError> {
    let timeout = config.batch().export_timeout;
    let requests = Arc::new(AtomicU64::new(0));
    let wrap = |inner| OtlpExporter {
        inner,
        target: Target {
            endpoint: endpoint.to_owned(),
            protocol: config.protocol().to_string(),
        },
        requests: requests.clone(),
        health: ExportHealth::default(),
    };
    match config.protocol() {
        #[cfg(feature = "otlp-http")]
        Protocol::HttpProtobuf => {
            use opentelemetry_otlp::WithHttpConfig;
            // Built on a thread of its own, as opentelemetry-otlp does: the blocking client
            // must not be built inside an async context.
            let client = std::thread::spawn(move || {
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .build()
            })
            .join()
            .map_err(|_| BuildError::Exporter("building the HTTP client panicked".into()))?
            .map_err(|e| BuildError::Exporter(format!("cannot build the HTTP client: {e}")))?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(CountingClient {
                    inner: client,
                    requests: requests.clone(),
                })
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .with_headers(config.headers().iter().cloned().collect())
                .build()
                .map_err(|e| BuildError::Exporter(e.to_string()))?;
            Ok(Otlp {
                exporter: wrap(exporter),
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
                .with_interceptor({
                    let requests = requests.clone();
                    move |request: tonic::Request<()>| {
                        requests.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, tonic::Status>(request)
                    }
                })
                .build()
                .map_err(|e| BuildError::Exporter(e.to_string()))?;
            drop(_entered);
            Ok(Otlp {
                exporter: wrap(exporter),
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
