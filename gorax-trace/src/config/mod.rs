//! Tracing configuration: [`TraceConfig`] from environment variables, with `with_*` overrides.
//!
//! All environment parsing of the crate happens here. Precedence, highest first:
//! code (`with_*`) > the guide's `TRACING_*` variables > the standard `OTEL_*` variables >
//! defaults.
//!
//! | setting | code (`with_*`) | gorax var | standard var | default |
//! |---|---|---|---|---|
//! | enabled | `with_enabled` | `TRACING_ENABLED` (`true`, `false`, `1`, `0`, `yes`, `no`) | `OTEL_SDK_DISABLED` (`true`, `false`; inverted) | `true` |
//! | exporters | `with_exporter`, `with_exporters` | `TRACING_EXPORTER` (a comma-separated list of `otlp`, `console`, `viewer`; or `none`) | `OTEL_TRACES_EXPORTER` (same values) | `otlp` with an endpoint, else `console` |
//! | trace viewer address | `with_viewer` | `TRACING_VIEWER_ADDR` (`host:port`; given explicitly, a non-loopback address is a warning) | – | [`DEFAULT_VIEWER_ADDR`] (`127.0.0.1:16786`) |
//! | trace viewer bounds | `with_viewer` | `TRACING_VIEWER_MAX_TRACES` (1 to 100000), `TRACING_VIEWER_MAX_BYTES` (65536 to 1073741824) | – | 1000 traces, 33554432 bytes (32 MiB) |
//! | endpoint | `with_endpoint` | `TRACING_ENDPOINT` (`host:port` or `http(s)://host[:port][/path]`) | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (URL, verbatim), then `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL; HTTP appends `/v1/traces`) | none |
//! | protocol | `with_protocol` | `TRACING_PROTOCOL` (`grpc`, `http`, `http/protobuf`) | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, `http/protobuf`) | `http/protobuf` for an `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` (specification), port 4318 or a `/v1/traces` path; else `grpc` (`TRACING_ENDPOINT=localhost:4317`) |
//! | headers | `with_header` | `TRACING_HEADERS` (`k=v,k2=v2`) | `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, then `OTEL_EXPORTER_OTLP_HEADERS` (values percent-decoded); names and values must be valid HTTP headers, for both protocols | none |
//! | insecure (no TLS) | `with_insecure` | `TRACING_INSECURE` | `OTEL_EXPORTER_OTLP_TRACES_INSECURE`, then `OTEL_EXPORTER_OTLP_INSECURE` | `false` (`host:443` then gets `http://`; with an `https://` URL it is an error) |
//! | CA certificate (TLS) | `with_certificate` | `TRACING_CERTIFICATE` (PEM file) | `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, then `OTEL_EXPORTER_OTLP_CERTIFICATE` | the webpki roots (compiled in) |
//! | client certificate (mutual TLS) | `with_client_certificate` | `TRACING_CLIENT_CERTIFICATE` + `TRACING_CLIENT_KEY` (PEM files, both or neither) | `OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE` / `_CLIENT_KEY`, then `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` / `_CLIENT_KEY` | none |
//! | service name | `with_service_name` | `TRACING_SERVICE_NAME` | `OTEL_SERVICE_NAME`, then `service.name` in the resource attributes | `gorax` |
//! | service version | `with_service_version` | `TRACING_SERVICE_VERSION` | `service.version` in the resource attributes | none |
//! | environment | `with_environment` | `TRACING_ENVIRONMENT` | `deployment.environment.name` (or legacy `deployment.environment`) in the resource attributes | none |
//! | resource attributes | `with_resource_attribute` | `TRACING_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`) | `OTEL_RESOURCE_ATTRIBUTES` (merged per key; values percent-decoded) | none |
//! | sampler | `with_sample_rate`, `with_sampler` | `TRACING_SAMPLE_RATE` (0.0 to 1.0, parent-based ratio) | `OTEL_TRACES_SAMPLER` + `OTEL_TRACES_SAMPLER_ARG` | `parentbased_always_on` |
//! | propagators | `with_propagators` | `TRACING_PROPAGATORS` | `OTEL_PROPAGATORS` (`tracecontext`, `baggage`, `none`) | `tracecontext,baggage` |
//! | semantic conventions (see [`conventions`](crate::conventions)) | `with_http_semconv`, `with_rpc_semconv`, `with_messaging_semconv` | – | `OTEL_SEMCONV_STABILITY_OPT_IN` (`http`, `http/dup`, `rpc`, `rpc/dup`, `messaging`, `messaging/dup`; a category the list does not name keeps the code's setting) | stable HTTP, the old RPC keys, messaging of semantic-conventions `384d66161cb1` (after v1.44.0) |
//! | batch queue size | `with_batch` | `TRACING_BATCH_QUEUE_SIZE` (1 to 65536) | `OTEL_BSP_MAX_QUEUE_SIZE` | 2048 |
//! | batch byte budget | `with_batch` (`max_queue_bytes`) | `TRACING_BATCH_MAX_BYTES` (1 to 1073741824) | – | 16777216 (16 MiB) |
//! | batch delay | `with_batch` | `TRACING_BATCH_DELAY_MS` (0 to 600000) | `OTEL_BSP_SCHEDULE_DELAY` (ms) | 5000 ms |
//! | export batch size | `with_batch` | `TRACING_BATCH_SIZE` (1 to 8192, at most the queue size) | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | 512 |
//! | export timeout | `with_batch` | `TRACING_EXPORT_TIMEOUT_MS` (1 to 120000) | `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, then `OTEL_EXPORTER_OTLP_TIMEOUT`, then `OTEL_BSP_EXPORT_TIMEOUT` (ms) | 10000 ms |
//! | shutdown budget (all signals together) | `with_shutdown_timeout` | `TRACING_SHUTDOWN_TIMEOUT_MS` (1 to 120000) | – | the export timeout |
//! | exports in flight at once | `with_export_concurrency` | `TRACING_EXPORT_CONCURRENCY` (1 to 16) | – | 2 |
//! | compression | `with_compression` | `TRACING_COMPRESSION` (`gzip`, `none`) | `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, then `OTEL_EXPORTER_OTLP_COMPRESSION` (same values) | `none` |
//! | attribute value length limit (client-controlled input) | `with_attribute_value_length_limit` | `TRACING_ATTRIBUTE_VALUE_LENGTH_LIMIT` | `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, then `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` | 4096 bytes |
//!
//! Rules:
//! - An empty (or all-blank) value counts as unset, as the OpenTelemetry specification says
//!   (`TRACING_SAMPLE_RATE=` is the default sampler, not an error).
//! - What the collector receives is this configuration: the resource is built from it alone
//!   (no SDK environment detector besides `telemetry.sdk.*`), and the exporters (the crate's
//!   own; none reads an `OTEL_*` variable behind this configuration) send exactly these headers,
//!   compressed as configured here.
//! - A value that is set but does not parse is an error naming the variable and the value; every
//!   bad variable is reported in one [`ConfigError`], never just the first. Header values are
//!   never echoed (shown as `***`).
//! - When a `TRACING_*` and an `OTEL_*` variable set the same setting to different values, the
//!   `TRACING_*` one wins and one message is recorded in [`TraceConfig::warnings`].
//! - `TRACING_ENDPOINT=host:port` (the guide's `localhost:4317`) becomes `http://host:port`, or
//!   `https://host:port` on port 443 unless insecure; over HTTP `/v1/traces` is appended. A URL
//!   in `TRACING_ENDPOINT` is used as written, except that HTTP appends `/v1/traces` when it has
//!   no path.
//!
//! ```
//! use gorax_trace::config::{Protocol, TraceConfig};
//!
//! // In a service: `TraceConfig::from_env()?`.
//! let config = TraceConfig::from_vars([
//!     ("TRACING_ENDPOINT", "tempo.example.com:443"),
//!     ("TRACING_SAMPLE_RATE", "0.25"),
//! ])?
//! .with_service_name("billing");
//! assert_eq!(config.otlp_endpoint().as_deref(), Some("https://tempo.example.com:443"));
//! assert_eq!(config.protocol(), Protocol::Grpc);
//! assert!(config.uses_tls());
//! assert_eq!(config.sampler().to_string(), "parentbased_traceidratio(0.25)");
//!
//! let err = TraceConfig::from_vars([("TRACING_SAMPLE_RATE", "10%")]).unwrap_err();
//! assert_eq!(err.errors()[0].variable, "TRACING_SAMPLE_RATE");
//! # Ok::<(), gorax_trace::config::ConfigError>(())

use std::fmt;
use std::path::{Path, PathBuf};

use crate::conventions::{HttpSemconv, MessagingSemconv, RpcSemconv};
use crate::export::BatchSettings;
use crate::propagation::Propagators;
use crate::sampling::{Sampler, SamplingRule};
use crate::semconv;

mod endpoint;
mod env;
mod signals;
#[cfg(test)]
mod tests;

use endpoint::{Endpoint, Source};
pub use env::{
    MAX_BATCH_DELAY, MAX_EXPORT_BATCH_SIZE, MAX_EXPORT_CONCURRENCY, MAX_METRIC_EXPORT_INTERVAL,
    MAX_QUEUE_BYTES, MAX_QUEUE_SIZE, MAX_TIMEOUT,
};
pub use env::{MAX_LOG_ATTRIBUTE_COUNT, MAX_LOG_EXPORT_BATCH_SIZE, MAX_LOG_QUEUE_SIZE};
pub use signals::{
    DEFAULT_METRIC_EXPORT_INTERVAL, DEFAULT_METRIC_EXPORT_TIMEOUT, DEFAULT_OTLP_EXPORTER_TIMEOUT,
    ExceptionSignal, LogBatchSettings, LogsExporter,
};
use signals::{LogsConfig, MetricsConfig};

/// Exports in flight at once by default ([`TraceConfig::export_concurrency`]): two, so that
/// encoding one batch overlaps with sending another.
pub const DEFAULT_EXPORT_CONCURRENCY: usize = 2;

pub use crate::httpconv::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT;

/// Where finished spans go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExporterKind {
    /// OTLP to [`TraceConfig::otlp_endpoint`] over [`TraceConfig::protocol`].
    Otlp,
    /// An indented span tree printed to the terminal.
    Console,
    /// Nothing is exported.
    None,
    /// The embedded trace viewer: recent traces kept in memory and shown as a waterfall on a
    /// local web page (cargo feature `viewer`; see [`ViewerSettings`]).
    Viewer,
}

impl fmt::Display for ExporterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Otlp => "otlp",
            Self::Console => "console",
            Self::None => "none",
            Self::Viewer => "viewer",
        })
    }
}

/// Where the trace viewer listens by default: a loopback port no common tool takes (not
/// Jaeger's 16686, 16685 or 16687, nor OTLP's 4317/4318).
pub const DEFAULT_VIEWER_ADDR: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 16786);

/// The trace viewer's address and memory bounds ([`ExporterKind::Viewer`]; cargo feature
/// `viewer`).
///
/// ```
/// use gorax_trace::config::{ExporterKind, TraceConfig, ViewerSettings};
///
/// let config = TraceConfig::from_vars([("TRACING_EXPORTER", "console,viewer")])?
///     .with_viewer(ViewerSettings::default().with_max_traces(200));
/// assert_eq!(config.exporters(), [ExporterKind::Console, ExporterKind::Viewer]);
/// assert_eq!(config.viewer().addr, None); // the loopback default
/// # Ok::<(), gorax_trace::config::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewerSettings {
    /// The address given explicitly (`TRACING_VIEWER_ADDR`); `None` is [`DEFAULT_VIEWER_ADDR`].
    /// Port 0 takes a free port.
    pub addr: Option<std::net::SocketAddr>,
    /// Traces kept; the oldest is evicted first. Default 1000.
    pub max_traces: usize,
    /// Bytes of span data kept (the viewer's own estimate of what it holds); the oldest traces
    /// are evicted first. Default 32 MiB.
    pub max_bytes: usize,
}

impl ViewerSettings {
    /// These settings with the viewer's address (port 0 takes a free port).
    pub const fn with_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// These settings keeping at most `max_traces` traces.
    pub const fn with_max_traces(mut self, max_traces: usize) -> Self {
        self.max_traces = max_traces;
        self
    }

    /// These settings keeping at most `max_bytes` bytes of span data.
    pub const fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

impl Default for ViewerSettings {
    fn default() -> Self {
        Self {
            addr: None,
            max_traces: 1000,
            max_bytes: 32 << 20,
        }
    }
}

pub use crate::export::{Compression, Protocol};

/// The format of log lines written by [`subscriber::install`](crate::subscriber::install)
/// (`TRACING_LOG_FORMAT`: `text` or `json`; default `text`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines, prefixed with `trace_id=… span_id=…` inside a span.
    #[default]
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` fields inside a span.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// One variable (or `with_*` call) whose value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidVar {
    /// The variable name, e.g. `TRACING_SAMPLE_RATE` (or the `with_*` method).
    pub variable: String,
    /// The value as set (header values replaced by `***`).
    pub value: String,
    /// Why it was rejected and what is expected.
    pub reason: String,
}

impl fmt::Display for InvalidVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.variable, self.value, self.reason)
    }
}

/// Every invalid variable found while building a [`TraceConfig`].
///
/// Its `Debug` form is its message (as `{}` prints it), so that a `main` returning
/// `Result<_, Box<dyn Error>>` prints `Error: invalid tracing configuration: …`; `{:#?}` shows
/// the fields.
#[derive(thiserror::Error)]
#[error("invalid tracing configuration: {}", join(.errors))]
pub struct ConfigError {
    errors: Vec<InvalidVar>,
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_struct("ConfigError")
                .field("errors", &self.errors)
                .finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

fn join(errors: &[InvalidVar]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

impl ConfigError {
    /// The rejected variables, at least one.
    pub fn errors(&self) -> &[InvalidVar] {
        &self.errors
    }

    /// An error for one variable.
    #[cfg(feature = "fmt")]
    pub(crate) fn one(invalid: InvalidVar) -> Self {
        Self {
            errors: vec![invalid],
        }
    }

    /// Both errors' variables in one error.
    #[cfg(feature = "fmt")]
    pub(crate) fn merge(mut self, other: Self) -> Self {
        self.errors.extend(other.errors);
        self
    }
}

/// Tracing configuration: built by [`from_env`](Self::from_env) (or
/// [`from_vars`](Self::from_vars), [`new`](Self::new)), adjusted by the `with_*` methods, which
/// take precedence over the environment. See the [module docs](self) for every setting.
#[derive(Clone)]
pub struct TraceConfig {
    enabled: bool,
    exporter: Option<Vec<ExporterKind>>,
    endpoint: Option<Endpoint>,
    viewer: ViewerSettings,
    protocol: Option<Protocol>,
    headers: Vec<(String, String)>,
    insecure: bool,
    service_name: String,
    service_version: Option<String>,
    environment: Option<String>,
    resource_attributes: Vec<(String, String)>,
    sampler: Sampler,
    sampling_rules: Vec<SamplingRule>,
    propagators: Propagators,
    http_semconv: HttpSemconv,
    rpc_semconv: RpcSemconv,
    messaging_semconv: MessagingSemconv,
    batch: BatchSettings,
    export_concurrency: usize,
    compression: Compression,
    trusted_peers: crate::trust::TrustedPeers,
    keep: crate::export::keep::KeepSettings,
    warnings: Vec<String>,
    /// Values given in code that do not validate (reported by `validate`).
    invalid: Vec<InvalidVar>,
    certificate: Option<PathBuf>,
    client_identity: Option<(PathBuf, PathBuf)>,
    attribute_value_length_limit: Option<usize>,
    metrics: MetricsConfig,
    shutdown_timeout: Option<std::time::Duration>,
    log_format: Option<LogFormat>,
    logs: LogsConfig,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            exporter: None,
            endpoint: None,
            viewer: ViewerSettings::default(),
            protocol: None,
            headers: Vec::new(),
            insecure: false,
            service_name: env::default_service_name(),
            service_version: None,
            environment: None,
            resource_attributes: Vec::new(),
            sampler: Sampler::default(),
            sampling_rules: Vec::new(),
            propagators: Propagators::default(),
            http_semconv: HttpSemconv::default(),
            rpc_semconv: RpcSemconv::default(),
            messaging_semconv: MessagingSemconv::default(),
            batch: BatchSettings::default(),
            export_concurrency: DEFAULT_EXPORT_CONCURRENCY,
            compression: Compression::None,
            trusted_peers: crate::trust::TrustedPeers::All,
            keep: Default::default(),
            warnings: Vec::new(),
            invalid: Vec::new(),
            certificate: None,
            client_identity: None,
            attribute_value_length_limit: Some(DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT),
            metrics: MetricsConfig::default(),
            shutdown_timeout: None,
            log_format: None,
            logs: LogsConfig::default(),
        }
    }
}

impl fmt::Debug for TraceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, _)| format!("{k}=***"))
            .collect();
        f.debug_struct("TraceConfig")
            .field("enabled", &self.enabled)
            .field("exporters", &self.exporters())
            .field("viewer", &self.viewer)
            .field("otlp_endpoint", &self.otlp_endpoint())
            .field("protocol", &self.protocol())
            .field("headers", &headers)
            .field("insecure", &self.insecure)
            .field("service_name", &self.service_name)
            .field("service_version", &self.service_version)
            .field("environment", &self.environment)
            .field("resource_attributes", &self.resource_attributes)
            .field("sampler", &self.sampler)
            .field("propagators", &self.propagators)
            .field("http_semconv", &self.http_semconv)
            .field("rpc_semconv", &self.rpc_semconv)
            .field("messaging_semconv", &self.messaging_semconv)
            .field("batch", &self.batch)
            .field("export_concurrency", &self.export_concurrency)
            .field("compression", &self.compression)
            .field("certificate", &self.certificate)
            .field("client_identity", &self.client_identity)
            .field(
                "attribute_value_length_limit",
                &self.attribute_value_length_limit,
            )
            .field("keep", &self.keep)
            .field("metrics_enabled", &self.metrics_enabled())
            .field("metrics_exporters", &self.metrics_exporters())
            .field("metrics_otlp_endpoint", &self.metrics_otlp_endpoint())
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl TraceConfig {
    /// All defaults, no environment (same as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns tracing on or off (off: no spans are recorded; context still propagates).
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets the exporter (one; see [`with_exporters`](Self::with_exporters) for several).
    pub fn with_exporter(mut self, exporter: ExporterKind) -> Self {
        self.exporter = Some(vec![exporter]);
        self
    }

    /// Sets several exporters, as `TRACING_EXPORTER=otlp,viewer` does: every finished span goes
    /// to each. Duplicates count once; [`ExporterKind::None`] beside others is ignored.
    ///
    /// ```
    /// use gorax_trace::config::{ExporterKind, TraceConfig};
    ///
    /// let config = TraceConfig::new().with_exporters([ExporterKind::Console, ExporterKind::Viewer]);
    /// assert_eq!(config.exporters(), [ExporterKind::Console, ExporterKind::Viewer]);
    /// ```
    pub fn with_exporters(mut self, exporters: impl IntoIterator<Item = ExporterKind>) -> Self {
        let mut list: Vec<ExporterKind> = Vec::new();
        for e in exporters {
            if !list.contains(&e) {
                list.push(e);
            }
        }
        if list.len() > 1 {
            list.retain(|e| *e != ExporterKind::None);
        }
        if list.is_empty() {
            list.push(ExporterKind::None);
        }
        self.exporter = Some(list);
        self
    }

    /// Sets the trace viewer's address and bounds (used with [`ExporterKind::Viewer`]).
    pub fn with_viewer(mut self, viewer: ViewerSettings) -> Self {
        self.viewer = viewer;
        self
    }

    /// The trace viewer's address and bounds.
    pub fn viewer(&self) -> &ViewerSettings {
        &self.viewer
    }

    /// Sets the OTLP endpoint, written as in `TRACING_ENDPOINT` (`host:port` or
    /// `http(s)://host[:port][/path]`). It is validated the same way when the configuration is
    /// [validated](Self::validate) (by [`init`](crate::init())): a bad value is reported there,
    /// with every other bad setting.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        self.invalid.retain(|e| e.variable != "with_endpoint");
        match endpoint::parse(endpoint.trim(), Source::Tracing) {
            Ok(parsed) => self.endpoint = Some(parsed),
            Err(reason) => self.invalid.push(InvalidVar {
                variable: "with_endpoint".to_owned(),
                value: endpoint,
                reason,
            }),
        }
        self
    }

    /// Sets the OTLP protocol instead of inferring it from the endpoint.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Adds an export header (e.g. an API key), replacing one of the same name. A name or
    /// value that is not a valid HTTP header is reported by [`validate`](Self::validate).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        self.invalid
            .retain(|e| !(e.variable == "with_header" && e.value.eq_ignore_ascii_case(&name)));
        if let Some(reason) = env::header_problem(&name, &value) {
            self.invalid.push(InvalidVar {
                variable: "with_header".to_owned(),
                value: name.clone(),
                reason,
            });
        }
        self.headers.push((name, value));
        self
    }

    /// Trusts only the CA certificate(s) in this PEM file for a TLS endpoint, instead of the
    /// built-in webpki roots (like `TRACING_CERTIFICATE`). Read by [`init`](crate::init()).
    pub fn with_certificate(mut self, ca_pem: impl Into<PathBuf>) -> Self {
        self.certificate = Some(ca_pem.into());
        self
    }

    /// Presents this client certificate chain and private key (PEM files) to a TLS endpoint:
    /// mutual TLS (like `TRACING_CLIENT_CERTIFICATE` and `TRACING_CLIENT_KEY`).
    pub fn with_client_certificate(
        mut self,
        cert_pem: impl Into<PathBuf>,
        key_pem: impl Into<PathBuf>,
    ) -> Self {
        self.client_identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Sets the length limit (bytes, cut on a character boundary) that adapters apply to
    /// attribute values built from client-controlled input; `None` for no limit.
    pub fn with_attribute_value_length_limit(mut self, limit: Option<usize>) -> Self {
        self.attribute_value_length_limit = limit;
        self
    }

    /// Sets `service.name`.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// Sets `service.version`.
    pub fn with_service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// Sets `deployment.environment.name`.
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Adds a resource attribute, replacing one with the same key. `service.name`,
    /// `service.version` and `deployment.environment(.name)` set the matching setting instead.
    pub fn with_resource_attribute(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        match key.as_str() {
            semconv::SERVICE_NAME => self.with_service_name(value),
            semconv::SERVICE_VERSION => self.with_service_version(value),
            k if env::ENVIRONMENT_KEYS.contains(&k) => self.with_environment(value),
            _ => {
                let mut this = self;
                env::upsert(&mut this.resource_attributes, key, value.into());
                this
            }
        }
    }

    /// Samples this fraction (0.0 to 1.0) of root traces, following the parent otherwise
    /// ([`Sampler::ParentBasedTraceIdRatio`]), like `TRACING_SAMPLE_RATE`. A ratio outside 0.0
    /// to 1.0 is reported by [`validate`](Self::validate).
    pub fn with_sample_rate(mut self, rate: f64) -> Self {
        self.invalid.retain(|e| e.variable != "with_sample_rate");
        if !(0.0..=1.0).contains(&rate) {
            self.invalid.push(InvalidVar {
                variable: "with_sample_rate".to_owned(),
                value: rate.to_string(),
                reason: env::RATIO_EXPECTED.to_owned(),
            });
        }
        self.sampler = Sampler::ParentBasedTraceIdRatio(rate);
        self
    }

    /// Sets the sampler. A ratio outside 0.0 to 1.0 is reported by [`validate`](Self::validate).
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Adds a per-route sampling rule for server spans (code only; see
    /// [`SamplingRule`]). Rules are tried in the order added;
    /// requests no rule matches use [`sampler`](Self::sampler).
    pub fn with_sampling_rule(mut self, rule: SamplingRule) -> Self {
        self.sampling_rules.push(rule);
        self
    }

    /// Sets the propagators.
    pub fn with_propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// Which connection peers may continue their trace through the server layer
    /// (`TRACING_TRUSTED_PEERS`; default [`TrustedPeers::All`](crate::trust::TrustedPeers::All)).
    /// A public endpoint uses `TrustedPeers::None` or the networks of its proxies.
    pub fn with_trusted_peers(mut self, peers: crate::trust::TrustedPeers) -> Self {
        self.trusted_peers = peers;
        self
    }

    /// The trusted peers.
    pub fn trusted_peers(&self) -> &crate::trust::TrustedPeers {
        &self.trusted_peers
    }

    /// Sets the HTTP semantic conventions (`OTEL_SEMCONV_STABILITY_OPT_IN` `http`, `http/dup`;
    /// see [`conventions`](crate::conventions)).
    pub fn with_http_semconv(mut self, semconv: HttpSemconv) -> Self {
        self.http_semconv = semconv;
        self
    }

    /// Sets the RPC semantic conventions of the gRPC layers (`OTEL_SEMCONV_STABILITY_OPT_IN`
    /// `rpc`, `rpc/dup`; see [`RpcSemconv`]).
    ///
    /// ```
    /// use gorax_trace::config::TraceConfig;
    /// use gorax_trace::conventions::RpcSemconv;
    ///
    /// let config = TraceConfig::new().with_rpc_semconv(RpcSemconv::Stable);
    /// assert_eq!(config.rpc_semconv(), RpcSemconv::Stable);
    /// ```
    pub fn with_rpc_semconv(mut self, semconv: RpcSemconv) -> Self {
        self.rpc_semconv = semconv;
        self
    }

    /// Sets the messaging semantic conventions of the queue crate (`OTEL_SEMCONV_STABILITY_OPT_IN`
    /// `messaging`, `messaging/dup`: reserved, see [`MessagingSemconv`]).
    pub fn with_messaging_semconv(mut self, semconv: MessagingSemconv) -> Self {
        self.messaging_semconv = semconv;
        self
    }

    /// Disables TLS even for `https` / port 443 endpoints (a `host:443` endpoint then gets
    /// `http://`).
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Sets the batch processor bounds (used as given).
    pub fn with_batch(mut self, batch: BatchSettings) -> Self {
        self.batch = batch;
        self
    }

    /// Lets up to `concurrency` export requests be in flight at once (1 to
    /// [`MAX_EXPORT_CONCURRENCY`], like `TRACING_EXPORT_CONCURRENCY`; default
    /// [`DEFAULT_EXPORT_CONCURRENCY`]). Memory stays bounded by the batch settings: the queue
    /// plus one batch per request in flight, and the byte budget for all of it. Another value is
    /// reported by [`validate`](Self::validate).
    pub fn with_export_concurrency(mut self, concurrency: usize) -> Self {
        self.export_concurrency = concurrency;
        self
    }

    /// Compresses OTLP request bodies (like `TRACING_COMPRESSION`; default
    /// [`Compression::None`]).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Export requests in flight at once.
    pub fn export_concurrency(&self) -> usize {
        self.export_concurrency
    }

    /// The compression of OTLP request bodies.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Whether spans are recorded and exported.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The first of [`exporters`](Self::exporters) (the only one unless a list is set).
    pub fn exporter(&self) -> ExporterKind {
        self.exporters()[0]
    }

    /// The exporters: as set, else [`ExporterKind::Otlp`] when an endpoint is configured and
    /// [`ExporterKind::Console`] when not. Never empty; [`ExporterKind::None`] only alone.
    pub fn exporters(&self) -> Vec<ExporterKind> {
        match &self.exporter {
            Some(list) if !list.is_empty() => list.clone(),
            _ if self.endpoint.is_some() => vec![ExporterKind::Otlp],
            _ => vec![ExporterKind::Console],
        }
    }

    /// The exact URL for the OTLP exporter builder, if an endpoint is configured: `host:port`
    /// gets a scheme, HTTP gets `/v1/traces` where the table in the module docs says so.
    pub fn otlp_endpoint(&self) -> Option<String> {
        self.endpoint
            .as_ref()
            .map(|e| e.url(self.protocol(), self.insecure))
    }

    /// The OTLP protocol: as set, else [`Protocol::HttpProtobuf`] for an endpoint from
    /// `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` (the OpenTelemetry specification's default), on
    /// port 4318 or with a `/v1/traces` path, else [`Protocol::Grpc`] (`TRACING_ENDPOINT=host:4317`).
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or_else(|| match &self.endpoint {
            Some(e) if e.source != Source::Tracing => Protocol::HttpProtobuf,
            Some(e)
                if e.port == Some(4318)
                    || e.path
                        .trim_end_matches('/')
                        .ends_with(endpoint::TRACES_PATH) =>
            {
                Protocol::HttpProtobuf
            }
            _ => Protocol::Grpc,
        })
    }

    /// Headers sent with every export request (values are secrets; do not log them).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The PEM file of the CA(s) trusted for a TLS endpoint, if set (else the webpki roots).
    pub fn certificate(&self) -> Option<&Path> {
        self.certificate.as_deref()
    }

    /// The client certificate chain and key (PEM files) for mutual TLS, if set.
    pub fn client_certificate(&self) -> Option<(&Path, &Path)> {
        self.client_identity
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// The length limit of attribute values built from client-controlled input; default
    /// [`DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT`], `None` for none.
    pub fn attribute_value_length_limit(&self) -> Option<usize> {
        self.attribute_value_length_limit
    }

    /// Whether the exporter uses TLS: an `https` endpoint, or `host:443` unless insecure (an
    /// `https` endpoint with insecure set is rejected by [`validate`](Self::validate)).
    pub fn uses_tls(&self) -> bool {
        self.endpoint
            .as_ref()
            .is_some_and(|e| e.https || (!e.has_scheme && !self.insecure && e.port == Some(443)))
    }

    /// `service.name`; default `gorax`.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// `service.version`, if set.
    pub fn service_version(&self) -> Option<&str> {
        self.service_version.as_deref()
    }

    /// `deployment.environment.name`, if set.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// Further resource attributes, without the keys that have their own getter
    /// (`service.name`, `service.version`, `deployment.environment(.name)`).
    pub fn resource_attributes(&self) -> &[(String, String)] {
        &self.resource_attributes
    }

    /// The head sampler.
    pub fn sampler(&self) -> Sampler {
        self.sampler
    }

    /// The per-route sampling rules.
    pub fn sampling_rules(&self) -> &[SamplingRule] {
        &self.sampling_rules
    }

    /// The propagators.
    pub fn propagators(&self) -> Propagators {
        self.propagators
    }

    /// The HTTP semantic conventions.
    pub fn http_semconv(&self) -> HttpSemconv {
        self.http_semconv
    }

    /// The RPC semantic conventions.
    pub fn rpc_semconv(&self) -> RpcSemconv {
        self.rpc_semconv
    }

    /// The messaging semantic conventions.
    pub fn messaging_semconv(&self) -> MessagingSemconv {
        self.messaging_semconv
    }

    /// The batch processor bounds.
    pub fn batch(&self) -> &BatchSettings {
        &self.batch
    }

    /// Problems that did not stop configuration, e.g. a `TRACING_*` and an `OTEL_*` variable
    /// disagreeing (one message per setting, naming both and the winner). Log them at startup.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Checks what the `with_*` methods were given (the environment was checked when it was
    /// read): every bad value is reported together, by method and value. [`init`](crate::init())
    /// calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = self.invalid.clone();
        let ratio = match self.sampler {
            Sampler::TraceIdRatio(r) | Sampler::ParentBasedTraceIdRatio(r) => Some(r),
            _ => None,
        };
        let reported = errors.iter().any(|e| e.variable == "with_sample_rate");
        if let Some(r) = ratio.filter(|r| !reported && !(0.0..=1.0).contains(r)) {
            errors.push(InvalidVar {
                variable: "with_sampler".to_owned(),
                value: r.to_string(),
                reason: env::RATIO_EXPECTED.to_owned(),
            });
        }
        let b = &self.batch;
        let mut batch_error = |reason: String| {
            errors.push(InvalidVar {
                variable: "with_batch".to_owned(),
                value: format!("{b:?}"),
                reason,
            })
        };
        if b.max_queue_size == 0 || b.max_export_batch_size == 0 || b.max_queue_bytes == 0 {
            batch_error("queue size, export batch size and byte budget must be positive".into());
        }
        if b.max_queue_size > MAX_QUEUE_SIZE
            || b.max_export_batch_size > MAX_EXPORT_BATCH_SIZE
            || b.max_queue_bytes > MAX_QUEUE_BYTES
        {
            batch_error(format!(
                "at most {MAX_QUEUE_SIZE} queued spans, {MAX_EXPORT_BATCH_SIZE} spans per export \
                 and {MAX_QUEUE_BYTES} bytes"
            ));
        }
        if b.export_timeout.is_zero() {
            batch_error("a zero export timeout would fail every export".into());
        }
        if b.export_timeout > MAX_TIMEOUT || b.scheduled_delay > MAX_BATCH_DELAY {
            batch_error(format!(
                "the export timeout may be at most {} ms and the batch delay at most {} ms",
                MAX_TIMEOUT.as_millis(),
                MAX_BATCH_DELAY.as_millis()
            ));
        }
        let bounded = [
            ("with_shutdown_timeout", self.shutdown_timeout, MAX_TIMEOUT),
            (
                "with_metric_export_interval",
                self.metrics.interval,
                MAX_METRIC_EXPORT_INTERVAL,
            ),
        ];
        for (method, value, max) in bounded {
            if let Some(v) = value.filter(|v| v.is_zero() || *v > max) {
                errors.push(InvalidVar {
                    variable: method.to_owned(),
                    value: format!("{v:?}"),
                    reason: format!("expected a positive duration up to {} ms", max.as_millis()),
                });
            }
        }
        if !(1..=MAX_EXPORT_CONCURRENCY).contains(&self.export_concurrency) {
            errors.push(InvalidVar {
                variable: "with_export_concurrency".to_owned(),
                value: self.export_concurrency.to_string(),
                reason: format!("expected 1 to {MAX_EXPORT_CONCURRENCY} exports in flight"),
            });
        }
        if self.insecure && self.endpoint.as_ref().is_some_and(|e| e.https) {
            errors.push(InvalidVar {
                variable: "with_insecure".to_owned(),
                value: "true".to_owned(),
                reason: format!(
                    "the endpoint {:?} asks for TLS with https://; write http:// for plain text, \
                     or drop insecure",
                    self.endpoint
                        .as_ref()
                        .map(|e| e.raw.as_str())
                        .unwrap_or_default()
                ),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { errors })
        }
    }
}

// Keeping failures at low sampling rates (issue 15): the builder side of
// `TRACING_KEEP_ERRORS` / `TRACING_KEEP_SLOWER_THAN_MS`.
impl TraceConfig {
    /// Records requests the head sampler drops and exports the local tree of those whose root
    /// span ends in error (`TRACING_KEEP_ERRORS`); see [`keep`](crate::export::keep).
    pub fn with_keep_errors(mut self, on: bool) -> Self {
        self.keep.errors = on;
        self
    }

    /// Like [`with_keep_errors`](Self::with_keep_errors), for requests whose root span lasts at
    /// least `threshold` (`TRACING_KEEP_SLOWER_THAN_MS`); `None` turns it off.
    pub fn with_keep_slower_than(mut self, threshold: Option<std::time::Duration>) -> Self {
        self.keep.slower_than = threshold;
        self
    }

    /// All keep settings at once (buffer bounds included).
    pub fn with_keep(mut self, keep: crate::export::keep::KeepSettings) -> Self {
        self.keep = keep;
        self
    }

    /// When requests the head sampler dropped are kept after all.
    pub fn keep(&self) -> &crate::export::keep::KeepSettings {
        &self.keep
    }
}
