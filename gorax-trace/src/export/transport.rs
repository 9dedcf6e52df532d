//! The transports of the OTLP exporters, shared by every signal (spans here, metrics in
//! [`metrics`](crate::metrics), logs): the HTTP client (plain, or HTTPS through the export
//! runtime), the gRPC channel, headers, TLS material, what an answer means for the next request
//! (`Retry-After`, transport failures), and the count of requests an export sent. A leaf of
//! `export`: the exporters import it, it imports none of them.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
#[cfg(feature = "otlp-http")]
use std::time::Duration;

use super::{BuildError, ExportRuntime, ExporterError};
use super::{Compression, Protocol};

/// What an OTLP exporter is built from: the configuration as resolved (so that `export` does not
/// depend on `config`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OtlpSettings<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) protocol: Protocol,
    pub(crate) timeout: std::time::Duration,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) compression: Compression,
    pub(crate) tls: bool,
    #[cfg(feature = "tls")]
    pub(crate) certificate: Option<&'a std::path::Path>,
    #[cfg(feature = "tls")]
    pub(crate) client_certificate: Option<(&'a std::path::Path, &'a std::path::Path)>,
}

thread_local! {
    /// Requests sent while the current export's future is polled on this thread.
    static REQUESTS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one request for the export being polled (called by the HTTP client and the gRPC
/// interceptor).
pub(crate) fn count_request() {
    REQUESTS.with(|r| r.set(r.get() + 1));
}

/// `future`, and the requests [`count_request`] counted while it was polled.
pub(crate) fn counted<F: Future>(future: F) -> Counted<F> {
    Counted {
        inner: Box::pin(future),
        requests: 0,
    }
}

/// A future and the requests [`count_request`] counted while it was polled.
pub(crate) struct Counted<F> {
    inner: Pin<Box<F>>,
    requests: u64,
}

impl<F: Future> Future for Counted<F> {
    type Output = (F::Output, u64);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outer = REQUESTS.with(|r| r.replace(0));
        let poll = self.inner.as_mut().poll(cx);
        self.requests += REQUESTS.with(|r| r.replace(outer));
        poll.map(|output| (output, self.requests))
    }
}

/// The HTTP client of the OTLP/HTTP exporters (traces and metrics): counts requests, sends the
/// exporter's own headers plus exactly the configured ones, and compresses as configured (see
/// the module docs).
#[cfg(feature = "otlp-http")]
#[derive(Debug)]
pub(crate) struct CountingClient {
    inner: HttpTransport,
    headers: http::HeaderMap,
    compression: Compression,
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
        count_request();
        let mut headers = http::HeaderMap::new();
        for name in EXPORTER_HEADERS {
            if let Some(v) = request.headers().get(&name) {
                headers.insert(name, v.clone());
            }
        }
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
        // The exporters hand over the plain protobuf; compressing is this client's job.
        if self.compression == Compression::Gzip {
            let body = gzip(request.body())?;
            *request.body_mut() = body.into();
            headers.insert(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
        }
        *request.headers_mut() = headers;
        match &self.inner {
            HttpTransport::Plain(client) => client.send_bytes(request).await,
            #[cfg(feature = "tls")]
            HttpTransport::Tls(client) => client.send(request).await,
        }
    }
}

/// gzip at the fastest level: on OTLP protobuf bodies it keeps most of the gain of the default
/// level (measured: see the README, "Export throughput") for a third of its CPU.
#[cfg(feature = "otlp-http")]
fn gzip(body: &[u8]) -> Result<Vec<u8>, opentelemetry_http::HttpError> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    Ok(encoder.finish()?)
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
                Err(_) => Err(Box::new(NoAnswer(timeout)) as opentelemetry_http::HttpError),
            }
        });
        // A `JoinHandle` is an ordinary future: the export thread's executor can wait for it.
        task.await
            .map_err(|e| -> opentelemetry_http::HttpError { format!("export task: {e}").into() })?
    }
}

#[cfg(feature = "otlp-http")]
/// `Retry-After`: seconds or an HTTP date, at most 600 s.
pub(crate) fn retry_after(value: &str) -> Option<Duration> {
    let seconds = match value.trim().parse::<u64>() {
        Ok(seconds) => seconds,
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .as_secs(),
    };
    Some(Duration::from_secs(seconds.min(600)))
}

/// Posts one OTLP/HTTP protobuf request of `signal` and classifies the answer for the retry
/// rules: 2xx is the response (the caller reads its `partial_success`); 404/405/501 refuse the
/// signal; 429/503 with `Retry-After` wait for it; 429/502/503/504 back off; other statuses
/// fail. Shared by every signal's exporter.
#[cfg(feature = "otlp-http")]
pub(crate) async fn http_post(
    client: &CountingClient,
    endpoint: &http::Uri,
    body: &opentelemetry_http::Bytes,
    timeout: Duration,
    signal: super::gate::Signal,
) -> Result<http::Response<opentelemetry_http::Bytes>, super::retry::Failure> {
    use super::health::LossKind;
    use super::retry::{Failure, Retry};
    use opentelemetry_http::HttpClient as _;
    let mut request = http::Request::new(body.clone());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = endpoint.clone();
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    let response = client
        .send_bytes(request)
        .await
        .map_err(|e| transport_failure(&*e, timeout))?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(response);
    }
    if super::gate::http_refuses(status) {
        return Err(Failure::new(
            Retry::Refused(format!("HTTP {status}")),
            LossKind::Refused,
            format!("HTTP export failed with status code: {status} ({signal} refused)"),
        ));
    }
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let retry = match (status, retry_after) {
        (429 | 503, Some(after)) => Retry::After(after),
        (429 | 502 | 503 | 504, _) => Retry::Backoff,
        _ => Retry::Never,
    };
    Err(Failure::new(
        retry,
        LossKind::Failed,
        format!("HTTP export failed with status code: {status}"),
    ))
}

/// No answer within the export timeout (the HTTPS client's own deadline).
#[cfg(feature = "otlp-http")]
#[derive(Debug)]
pub(crate) struct NoAnswer(pub(crate) Duration);

#[cfg(feature = "otlp-http")]
impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer within {} ms", self.0.as_millis())
    }
}

#[cfg(feature = "otlp-http")]
impl std::error::Error for NoAnswer {}

/// How a request that got no HTTP answer failed, for the retry rules: a body over the limit is
/// not retried; no answer in time is a timeout; anything else (refused connection, reset, DNS)
/// backs off. The message never repeats the URL (it may carry credentials).
#[cfg(feature = "otlp-http")]
pub(crate) fn transport_failure(
    error: &(dyn std::error::Error + Send + Sync + 'static),
    timeout: Duration,
) -> super::retry::Failure {
    use super::health::LossKind;
    use super::retry::{Failure, Retry};
    if error
        .downcast_ref::<opentelemetry_http::ResponseBodyTooLarge>()
        .is_some()
    {
        return Failure::new(Retry::Never, LossKind::Failed, error.to_string());
    }
    let timed_out = error.downcast_ref::<NoAnswer>().is_some()
        || error
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout);
    if timed_out {
        return Failure::new(
            Retry::Backoff,
            LossKind::Timeout,
            format!(
                "HTTP export failed: no answer within {} ms",
                timeout.as_millis()
            ),
        );
    }
    let why = match error.downcast_ref::<reqwest::Error>() {
        Some(e) if e.is_connect() => "cannot connect",
        _ => "network error",
    };
    Failure::new(
        Retry::Backoff,
        LossKind::Failed,
        format!("HTTP export failed: {why}"),
    )
}

/// The export runtime of gRPC and HTTPS: one worker thread, owned by the `Telemetry`.
#[cfg(any(feature = "otlp-grpc", feature = "tls"))]
pub(crate) fn export_runtime(name: &str) -> Result<tokio::runtime::Runtime, BuildError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| {
            BuildError::Exporter(ExporterError::caused("cannot start the export runtime", e))
        })
}

/// The error for a TLS endpoint in a build without the `tls` feature.
#[cfg(not(feature = "tls"))]
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
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            BuildError::Exporter(ExporterError::new(format!(
                "invalid export header name {k:?}"
            )))
        })?;
        let value = http::HeaderValue::from_str(v).map_err(|_| {
            BuildError::Exporter(ExporterError::new(format!(
                "invalid value of export header {k:?}"
            )))
        })?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The TLS material of a TLS endpoint (`None` for plain text); an error in a build without the
/// `tls` feature.
#[cfg(feature = "tls")]
pub(crate) type Material = Option<super::tls::Material>;
#[cfg(not(feature = "tls"))]
pub(crate) type Material = Option<std::convert::Infallible>;

pub(crate) fn tls_material(config: &OtlpSettings<'_>) -> Result<Material, BuildError> {
    if !config.tls {
        return Ok(None);
    }
    #[cfg(feature = "tls")]
    {
        super::tls::Material::load(config.certificate, config.client_certificate).map(Some)
    }
    #[cfg(not(feature = "tls"))]
    Err(tls_missing(config.endpoint))
}

/// The HTTP client of an OTLP/HTTP exporter of any signal: plain, or over TLS with its runtime;
/// counts requests ([`Counted`]), sends the configured headers and compression.
#[cfg(feature = "otlp-http")]
pub(crate) fn http_transport(
    config: &OtlpSettings<'_>,
    material: &Material,
) -> Result<(CountingClient, Option<ExportRuntime>), BuildError> {
    let timeout = config.timeout;
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut runtime = None;
    let inner = match material {
        #[cfg(feature = "tls")]
        Some(material) => {
            let rustls = material.rustls_config()?;
            let rt = export_runtime("gorax-trace-https")?;
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(rustls)
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
        Some(never) => match *never {},
        None => {
            // Built on a thread of its own, as opentelemetry-otlp does: the blocking client
            // must not be built inside an async context.
            let client = std::thread::spawn(move || {
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .build()
            })
            .join()
            .map_err(|_| {
                BuildError::Exporter(ExporterError::new("building the HTTP client panicked"))
            })?
            .map_err(|e| {
                BuildError::Exporter(ExporterError::caused("cannot build the HTTP client", e))
            })?;
            HttpTransport::Plain(client)
        }
    };
    let client = CountingClient {
        inner,
        headers: header_map(config)?,
        compression: config.compression,
    };
    Ok((client, runtime))
}

/// The gRPC channel of an OTLP/gRPC exporter of any signal, on `runtime`, from the resolved
/// configuration (the exporters that use it are our own: see [`export`](super#why-our-own)).
#[cfg(feature = "otlp-grpc")]
pub(crate) fn grpc_channel(
    config: &OtlpSettings<'_>,
    material: &Material,
    runtime: &tokio::runtime::Runtime,
) -> Result<tonic::transport::Channel, BuildError> {
    let endpoint = config.endpoint;
    let _entered = runtime.enter();
    let ep = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| {
            BuildError::Exporter(ExporterError::caused(
                format!("invalid endpoint {endpoint:?}"),
                e,
            ))
        })?
        .timeout(config.timeout)
        .connect_timeout(config.timeout);
    let ep = match material {
        #[cfg(feature = "tls")]
        Some(m) => ep.tls_config(m.tonic_config()).map_err(|e| {
            BuildError::Exporter(ExporterError::caused(
                format!("TLS configuration of {endpoint:?}"),
                e,
            ))
        })?,
        #[cfg(not(feature = "tls"))]
        Some(never) => match *never {},
        None => ep,
    };
    Ok(ep.connect_lazy())
}

/// The interceptor of an OTLP/gRPC exporter of any signal: counts requests ([`Counted`]) and
/// sends exactly the configured metadata.
#[cfg(feature = "otlp-grpc")]
pub(crate) fn grpc_metadata(
    config: &OtlpSettings<'_>,
) -> Result<
    impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>
    + Clone
    + Send
    + Sync
    + 'static
    + use<>,
    BuildError,
> {
    let metadata = tonic::metadata::MetadataMap::from_headers(header_map(config)?);
    Ok(move |mut request: tonic::Request<()>| {
        count_request();
        *request.metadata_mut() = metadata.clone();
        Ok(request)
    })
}

/// The transport of an OTLP exporter of another signal than traces (metrics, logs): an HTTP
/// client and its endpoint, or a gRPC channel with its metadata on an export runtime of its own.
/// The exporter of each signal encodes its request and sends it over this.
pub(crate) enum SignalTransport {
    #[cfg(feature = "otlp-http")]
    Http {
        client: CountingClient,
        endpoint: http::Uri,
    },
    #[cfg(feature = "otlp-grpc")]
    Grpc {
        channel: tonic::transport::Channel,
        metadata: tonic::metadata::MetadataMap,
        runtime: tokio::runtime::Handle,
        gzip: bool,
    },
}

impl SignalTransport {
    /// The transport `config` describes; `runtime_name` names the gRPC export runtime's thread.
    pub(crate) fn build(
        config: &OtlpSettings<'_>,
        runtime_name: &str,
    ) -> Result<(Self, Option<ExportRuntime>), BuildError> {
        let material = tls_material(config)?;
        match config.protocol {
            #[cfg(feature = "otlp-http")]
            Protocol::HttpProtobuf => {
                let _ = runtime_name;
                let endpoint: http::Uri = config.endpoint.parse().map_err(|e| {
                    BuildError::Exporter(ExporterError::caused(
                        format!("invalid endpoint {:?}", config.endpoint),
                        e,
                    ))
                })?;
                let (client, runtime) = http_transport(config, &material)?;
                Ok((Self::Http { client, endpoint }, runtime))
            }
            #[cfg(feature = "otlp-grpc")]
            Protocol::Grpc => {
                let metadata = tonic::metadata::MetadataMap::from_headers(header_map(config)?);
                let runtime = export_runtime(runtime_name)?;
                let channel = grpc_channel(config, &material, &runtime)?;
                Ok((
                    Self::Grpc {
                        channel,
                        metadata,
                        runtime: runtime.handle().clone(),
                        gzip: config.compression == Compression::Gzip,
                    },
                    Some(ExportRuntime { runtime }),
                ))
            }
            #[allow(unreachable_patterns)]
            other => {
                let _ = runtime_name;
                Err(BuildError::protocol_missing(other))
            }
        }
    }
}
