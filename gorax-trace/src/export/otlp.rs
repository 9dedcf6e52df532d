//! OTLP exporters built from the resolved configuration ([`OtlpSettings`], filled by `init` from
//! the [`TraceConfig`](crate::TraceConfig)).
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
use super::Protocol;
use super::batch::Target;
use super::{BuildError, ExportRuntime};

/// What an OTLP exporter is built from: the configuration as resolved (so that `export` does not
/// depend on `config`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OtlpSettings<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) protocol: Protocol,
    pub(crate) timeout: std::time::Duration,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) tls: bool,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) certificate: Option<&'a std::path::Path>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) client_certificate: Option<(&'a std::path::Path, &'a std::path::Path)>,
}

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

/// The HTTP client of the OTLP/HTTP exporter: counts requests, and sends exactly the configured
/// headers (opentelemetry-otlp adds `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS` from the environment
/// after ours, and percent-decodes ours a second time; both are undone here).
#[cfg(feature = "otlp-http")]
#[derive(Debug)]
pub(crate) struct CountingClient {
    inner: HttpTransport,
    headers: http::HeaderMap,
    requests: Arc<AtomicU64>,
}

/// Plain HTTP: a blocking reqwest client. HTTPS (feature `tls`): a hyper client with rustls and
/// ring of its own, driven by the exporter's runtime, so reqwest's TLS features (and every other
/// reqwest client of the application) are left alone.
#[cfg(feature = "otlp-http")]
#[derive(Debug)]
enum HttpTransport {
    Plain(reqwest::blocking::Client),
    #[cfg(feature = "tls")]
    Tls(Box<HttpsClient>),
}

/// Headers the exporter itself sets on each request; everything else is replaced.
#[cfg(feature = "otlp-http")]
const EXPORTER_HEADERS: [http::HeaderName; 3] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_ENCODING,
    http::header::USER_AGENT,
];

#[cfg(feature = "otlp-http")]
#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for CountingClient {
    async fn send_bytes(
        &self,
        mut request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut headers = http::HeaderMap::new();
        for name in EXPORTER_HEADERS {
            if let Some(v) = request.headers().get(&name) {
                headers.insert(name, v.clone());
            }
        }
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
        *request.headers_mut() = headers;
        match &self.inner {
            HttpTransport::Plain(client) => client.send_bytes(request).await,
            #[cfg(feature = "tls")]
            HttpTransport::Tls(client) => client.send(request).await,
        }
    }
}

#[cfg(all(feature = "otlp-http", feature = "tls"))]
type HyperClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<opentelemetry_http::Bytes>,
>;

/// OTLP/HTTP over TLS: each request runs on the exporter's runtime, bounded by the export timeout.
#[cfg(all(feature = "otlp-http", feature = "tls"))]
#[derive(Debug)]
struct HttpsClient {
    client: HyperClient,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

#[cfg(all(feature = "otlp-http", feature = "tls"))]
impl HttpsClient {
    async fn send(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        use http_body_util::BodyExt;
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, http_body_util::Full::new(body));
        let client = self.client.clone();
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            let exchange = async {
                let response = client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(format!("no response within {timeout:?}").into()),
            }
        });
        // A `JoinHandle` is an ordinary future: the export thread's executor can wait for it.
        task.await
            .map_err(|e| -> opentelemetry_http::HttpError { format!("export task: {e}").into() })?
    }
}

/// A built OTLP exporter and, for gRPC and HTTPS, the runtime that drives its connections.
pub(crate) struct Otlp {
    pub(crate) exporter: OtlpExporter,
    pub(crate) runtime: Option<ExportRuntime>,
}

/// The export runtime of gRPC and HTTPS: one worker thread, owned by the `Telemetry`.
#[cfg(any(feature = "otlp-grpc", feature = "tls"))]
fn export_runtime(name: &str) -> Result<tokio::runtime::Runtime, BuildError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| BuildError::Exporter(format!("cannot start the export runtime: {e}")))
}

/// The error for a TLS endpoint in a build without the `tls` feature.
#[cfg_attr(feature = "tls", allow(dead_code))]
fn tls_missing(endpoint: &str) -> BuildError {
    BuildError::FeatureMissing {
        what: if endpoint.starts_with("https") {
            "an https:// endpoint (OTLP over TLS)"
        } else {
            "OTLP over TLS"
        },
        feature: "tls",
    }
}

/// The configured headers as a header map (names and values were validated with the config).
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) fn header_map(config: &OtlpSettings<'_>) -> Result<http::HeaderMap, BuildError> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in config.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| BuildError::Exporter(format!("invalid export header name {k:?}")))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| BuildError::Exporter(format!("invalid value of export header {k:?}")))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The TLS material of `config`, or the error for TLS in a build without the `tls` feature.
#[cfg(feature = "tls")]
fn tls_material(config: &OtlpSettings<'_>) -> Result<Option<super::tls::Material>, BuildError> {
    config
        .tls
        .then(|| super::tls::Material::load(config.certificate, config.client_certificate))
        .transpose()
}

#[cfg(not(feature = "tls"))]
fn tls_material(config: &OtlpSettings<'_>) -> Result<Option<std::convert::Infallible>, BuildError> {
    if config.tls {
        return Err(tls_missing(config.endpoint));
    }
    Ok(None)
}

/// The OTLP/HTTP client of `config`: plain (blocking reqwest) or TLS (hyper-rustls on a runtime
/// of its own, returned with it), sending exactly the configured headers and counting requests
/// in `requests`. Shared by the span and the metric exporter.
#[cfg(feature = "otlp-http")]
pub(crate) fn http_client(
    config: &OtlpSettings<'_>,
    requests: Arc<AtomicU64>,
) -> Result<(CountingClient, Option<ExportRuntime>), BuildError> {
    let timeout = config.timeout;
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    let material = tls_material(config)?;
    let headers = header_map(config)?;
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut runtime = None;
    let inner = if config.tls {
        #[cfg(feature = "tls")]
        {
            let rustls = material.as_ref().map(|m| m.rustls_config()).transpose()?;
            let rt = export_runtime("gorax-trace-https")?;
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(rustls.unwrap_or_else(|| unreachable!()))
                .https_only()
                .enable_http1()
                .build();
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(connector);
            let inner = HttpTransport::Tls(Box::new(HttpsClient {
                client,
                runtime: rt.handle().clone(),
                timeout,
            }));
            runtime = Some(ExportRuntime { runtime: rt });
            inner
        }
        #[cfg(not(feature = "tls"))]
        unreachable!("checked by tls_material")
    } else {
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
        HttpTransport::Plain(client)
    };
    Ok((
        CountingClient {
            inner,
            headers,
            requests,
        },
        runtime,
    ))
}

/// The gRPC channel of `config` (TLS from its material) on a one-thread runtime of its own,
/// returned with it. Shared by the span and the metric exporter.
#[cfg(feature = "otlp-grpc")]
pub(crate) fn grpc_channel(
    config: &OtlpSettings<'_>,
) -> Result<(tonic::transport::Channel, tokio::runtime::Runtime), BuildError> {
    let endpoint = config.endpoint;
    let timeout = config.timeout;
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    let material = tls_material(config)?;
    let runtime = export_runtime("gorax-trace-grpc")?;
    // The channel is built here, not by opentelemetry-otlp: its builder would rewrite
    // the scheme from `OTEL_EXPORTER_OTLP_INSECURE` and has no trust roots.
    let channel = {
        let _entered = runtime.enter();
        let ep = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| BuildError::Exporter(format!("invalid endpoint {endpoint:?}: {e}")))?
            .timeout(timeout)
            .connect_timeout(timeout);
        #[cfg(feature = "tls")]
        let ep = match &material {
            Some(m) => ep.tls_config(m.tonic_config()).map_err(|e| {
                BuildError::Exporter(format!("TLS configuration of {endpoint:?}: {e}"))
            })?,
            None => ep,
        };
        ep.connect_lazy()
    };
    Ok((channel, runtime))
}

pub(crate) fn build(config: &OtlpSettings<'_>) -> Result<Otlp, BuildError> {
    let endpoint = config.endpoint;
    let timeout = config.timeout;
    let requests = Arc::new(AtomicU64::new(0));
    let wrap = |inner| OtlpExporter {
        inner,
        target: Target {
            endpoint: endpoint.to_owned(),
            protocol: config.protocol.to_string(),
        },
        requests: requests.clone(),
        health: ExportHealth::default(),
    };
    match config.protocol {
        #[cfg(feature = "otlp-http")]
        Protocol::HttpProtobuf => {
            use opentelemetry_otlp::WithHttpConfig;
            let (client, runtime) = http_client(config, requests.clone())?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .build()
                .map_err(|e| BuildError::Exporter(e.to_string()))?;
            Ok(Otlp {
                exporter: wrap(exporter),
                runtime,
            })
        }
        #[cfg(feature = "otlp-grpc")]
        Protocol::Grpc => {
            use opentelemetry_otlp::WithTonicConfig;
            use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
            let metadata = MetadataMap::from_headers(header_map(config)?);
            let (channel, runtime) = grpc_channel(config)?;
            let _entered = runtime.enter();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_channel(channel)
                .with_timeout(timeout)
                .with_interceptor({
                    let requests = requests.clone();
                    // Exactly our metadata: opentelemetry-otlp appends
                    // `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS` before this interceptor runs.
                    move |mut request: tonic::Request<()>| {
                        requests.fetch_add(1, Ordering::Relaxed);
                        *request.metadata_mut() = metadata.clone();
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
        other => Err(BuildError::FeatureMissing {
            what: match other {
                Protocol::Grpc => "OTLP/gRPC",
                _ => "OTLP/HTTP",
            },
            feature: match other {
                Protocol::Grpc => "otlp-grpc",
                _ => "otlp-http",
            },
        }),
    }
}
