//! Tracing configuration: [`TraceConfig`] from environment variables, with `with_*` overrides.
//!
//! All environment parsing of the crate happens here. Precedence, highest first:
//! code (`with_*`) > the guide's `TRACING_*` variables > the standard `OTEL_*` variables >
//! defaults.
//!
//! | setting | code (`with_*`) | gorax var | standard var | default |
//! |---|---|---|---|---|
//! | enabled | `with_enabled` | `TRACING_ENABLED` (`true`, `false`, `1`, `0`, `yes`, `no`) | `OTEL_SDK_DISABLED` (`true`, `false`; inverted) | `true` |
//! | exporter | `with_exporter` | `TRACING_EXPORTER` (`otlp`, `console`, `none`) | `OTEL_TRACES_EXPORTER` (same values) | `otlp` with an endpoint, else `console` |
//! | endpoint | `with_endpoint` | `TRACING_ENDPOINT` (`host:port` or `http(s)://host[:port][/path]`) | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (URL, verbatim), then `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL; HTTP appends `/v1/traces`) | none |
//! | protocol | `with_protocol` | `TRACING_PROTOCOL` (`grpc`, `http`, `http/protobuf`) | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, `http/protobuf`) | `http/protobuf` for port 4318 or a `/v1/traces` path, else `grpc` |
//! | headers | `with_header` | `TRACING_HEADERS` (`k=v,k2=v2`) | `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, then `OTEL_EXPORTER_OTLP_HEADERS` (values percent-decoded) | none |
//! | insecure (no TLS) | `with_insecure` | `TRACING_INSECURE` | `OTEL_EXPORTER_OTLP_TRACES_INSECURE`, then `OTEL_EXPORTER_OTLP_INSECURE` | `false` |
//! | service name | `with_service_name` | `TRACING_SERVICE_NAME` | `OTEL_SERVICE_NAME`, then `service.name` in the resource attributes | `gorax` |
//! | service version | `with_service_version` | `TRACING_SERVICE_VERSION` | `service.version` in the resource attributes | none |
//! | environment | `with_environment` | `TRACING_ENVIRONMENT` | `deployment.environment.name` (or legacy `deployment.environment`) in the resource attributes | none |
//! | resource attributes | `with_resource_attribute` | `TRACING_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`) | `OTEL_RESOURCE_ATTRIBUTES` (merged per key; values percent-decoded) | none |
//! | sampler | `with_sample_rate`, `with_sampler` | `TRACING_SAMPLE_RATE` (0.0 to 1.0, parent-based ratio) | `OTEL_TRACES_SAMPLER` + `OTEL_TRACES_SAMPLER_ARG` | `parentbased_always_on` |
//! | propagators | `with_propagators` | `TRACING_PROPAGATORS` | `OTEL_PROPAGATORS` (`tracecontext`, `baggage`, `none`) | `tracecontext,baggage` |
//! | HTTP semantic conventions | `with_http_semconv` | – | `OTEL_SEMCONV_STABILITY_OPT_IN` (`http`, `http/dup`) | stable |
//! | batch queue size | `with_batch` | `TRACING_BATCH_QUEUE_SIZE` | `OTEL_BSP_MAX_QUEUE_SIZE` | 2048 |
//! | batch delay | `with_batch` | `TRACING_BATCH_DELAY_MS` | `OTEL_BSP_SCHEDULE_DELAY` (ms) | 5000 ms |
//! | export batch size | `with_batch` | `TRACING_BATCH_SIZE` | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | 512 |
//! | export timeout | `with_batch` | `TRACING_EXPORT_TIMEOUT_MS` | `OTEL_BSP_EXPORT_TIMEOUT` (ms) | 10000 ms |
//!
//! Rules:
//! - An empty (or all-blank) value counts as unset, as the OpenTelemetry specification says.
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
//! assert_eq!(config.otlp_endpoint(), Some("https://tempo.example.com:443"));
//! assert_eq!(config.protocol(), Protocol::Grpc);
//! assert!(config.uses_tls());
//! assert_eq!(config.sampler().to_string(), "parentbased_traceidratio(0.25)");
//!
//! let err = TraceConfig::from_vars([("TRACING_SAMPLE_RATE", "10%")]).unwrap_err();
//! assert_eq!(err.errors()[0].variable, "TRACING_SAMPLE_RATE");
//! # Ok::<(), gorax_trace::config::ConfigError>(())
//! ```

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

const TRACING_ENABLED: &str = "TRACING_ENABLED";
const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const TRACING_EXPORTER: &str = "TRACING_EXPORTER";
const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const TRACING_ENDPOINT: &str = "TRACING_ENDPOINT";
const OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACING_PROTOCOL: &str = "TRACING_PROTOCOL";
const OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACING_HEADERS: &str = "TRACING_HEADERS";
const OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
const OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const TRACING_INSECURE: &str = "TRACING_INSECURE";
const OTLP_TRACES_INSECURE: &str = "OTEL_EXPORTER_OTLP_TRACES_INSECURE";
const OTLP_INSECURE: &str = "OTEL_EXPORTER_OTLP_INSECURE";
const TRACING_SERVICE_NAME: &str = "TRACING_SERVICE_NAME";
const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const TRACING_SERVICE_VERSION: &str = "TRACING_SERVICE_VERSION";
const TRACING_ENVIRONMENT: &str = "TRACING_ENVIRONMENT";
const TRACING_RESOURCE_ATTRIBUTES: &str = "TRACING_RESOURCE_ATTRIBUTES";
const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const TRACING_SAMPLE_RATE: &str = "TRACING_SAMPLE_RATE";
const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const TRACING_PROPAGATORS: &str = "TRACING_PROPAGATORS";
const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";
const OTEL_SEMCONV_STABILITY_OPT_IN: &str = "OTEL_SEMCONV_STABILITY_OPT_IN";
const TRACING_BATCH_QUEUE_SIZE: &str = "TRACING_BATCH_QUEUE_SIZE";
const OTEL_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
const TRACING_BATCH_DELAY_MS: &str = "TRACING_BATCH_DELAY_MS";
const OTEL_BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
const TRACING_BATCH_SIZE: &str = "TRACING_BATCH_SIZE";
const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
const TRACING_EXPORT_TIMEOUT_MS: &str = "TRACING_EXPORT_TIMEOUT_MS";
const OTEL_BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";

/// Every variable read; [`TraceConfig::from_env`] reports non-UTF-8 values of these only.
const KNOWN_VARS: [&str; 36] = [
    TRACING_ENABLED,
    OTEL_SDK_DISABLED,
    TRACING_EXPORTER,
    OTEL_TRACES_EXPORTER,
    TRACING_ENDPOINT,
    OTLP_TRACES_ENDPOINT,
    OTLP_ENDPOINT,
    TRACING_PROTOCOL,
    OTLP_TRACES_PROTOCOL,
    OTLP_PROTOCOL,
    TRACING_HEADERS,
    OTLP_TRACES_HEADERS,
    OTLP_HEADERS,
    TRACING_INSECURE,
    OTLP_TRACES_INSECURE,
    OTLP_INSECURE,
    TRACING_SERVICE_NAME,
    OTEL_SERVICE_NAME,
    TRACING_SERVICE_VERSION,
    TRACING_ENVIRONMENT,
    TRACING_RESOURCE_ATTRIBUTES,
    OTEL_RESOURCE_ATTRIBUTES,
    TRACING_SAMPLE_RATE,
    OTEL_TRACES_SAMPLER,
    OTEL_TRACES_SAMPLER_ARG,
    TRACING_PROPAGATORS,
    OTEL_PROPAGATORS,
    OTEL_SEMCONV_STABILITY_OPT_IN,
    TRACING_BATCH_QUEUE_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    TRACING_BATCH_DELAY_MS,
    OTEL_BSP_SCHEDULE_DELAY,
    TRACING_BATCH_SIZE,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    TRACING_EXPORT_TIMEOUT_MS,
    OTEL_BSP_EXPORT_TIMEOUT,
];
/// Variables whose values are secrets (API keys): shown as `k=***`.
const SECRET_VARS: [&str; 3] = [TRACING_HEADERS, OTLP_TRACES_HEADERS, OTLP_HEADERS];

const DEFAULT_SERVICE_NAME: &str = "gorax";
const TRACES_PATH: &str = "/v1/traces";
const SERVICE_NAME_KEY: &str = "service.name";
const SERVICE_VERSION_KEY: &str = "service.version";
const ENVIRONMENT_KEYS: [&str; 2] = ["deployment.environment.name", "deployment.environment"];

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
}

impl fmt::Display for ExporterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Otlp => "otlp",
            Self::Console => "console",
            Self::None => "none",
        })
    }
}

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Head sampler, named as in `OTEL_TRACES_SAMPLER`. Ratios are between 0.0 and 1.0.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Sampler {
    /// Record every trace.
    AlwaysOn,
    /// Record nothing.
    AlwaysOff,
    /// Record this fraction of traces, ignoring the parent's decision.
    TraceIdRatio(f64),
    /// Follow the parent; record every root trace.
    #[default]
    ParentBasedAlwaysOn,
    /// Follow the parent; record no root trace.
    ParentBasedAlwaysOff,
    /// Follow the parent; record this fraction of root traces.
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    fn takes_ratio(self) -> bool {
        matches!(
            self,
            Self::TraceIdRatio(_) | Self::ParentBasedTraceIdRatio(_)
        )
    }

    fn with_ratio(self, ratio: f64) -> Self {
        match self {
            Self::TraceIdRatio(_) => Self::TraceIdRatio(ratio),
            Self::ParentBasedTraceIdRatio(_) => Self::ParentBasedTraceIdRatio(ratio),
            other => other,
        }
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlwaysOn => f.write_str("always_on"),
            Self::AlwaysOff => f.write_str("always_off"),
            Self::TraceIdRatio(r) => write!(f, "traceidratio({r})"),
            Self::ParentBasedAlwaysOn => f.write_str("parentbased_always_on"),
            Self::ParentBasedAlwaysOff => f.write_str("parentbased_always_off"),
            Self::ParentBasedTraceIdRatio(r) => write!(f, "parentbased_traceidratio({r})"),
        }
    }
}

/// Which W3C propagation fields are extracted and injected. Default: both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Propagators {
    /// `traceparent` / `tracestate`.
    pub trace_context: bool,
    /// `baggage`.
    pub baggage: bool,
}

impl Default for Propagators {
    fn default() -> Self {
        Self {
            trace_context: true,
            baggage: true,
        }
    }
}

/// Which HTTP semantic conventions spans carry (`OTEL_SEMCONV_STABILITY_OPT_IN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HttpSemconv {
    /// The stable HTTP conventions only.
    #[default]
    Stable,
    /// The stable conventions plus the legacy pre-1.21 keys (`http/dup`).
    Dup,
}

/// Bounds of the batch span processor.
///
/// Settings given in code ([`TraceConfig::with_batch`]) are used as given; from the
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

/// One variable (or `with_*` call) whose value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, thiserror::Error)]
#[error("invalid tracing configuration: {}", join(.errors))]
pub struct ConfigError {
    errors: Vec<InvalidVar>,
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

    fn single(variable: &str, value: String, reason: String) -> Self {
        Self {
            errors: vec![InvalidVar {
                variable: variable.to_owned(),
                value,
                reason,
            }],
        }
    }
}

/// Tracing configuration: built by [`from_env`](Self::from_env) (or
/// [`from_vars`](Self::from_vars), [`new`](Self::new)), adjusted by the `with_*` methods, which
/// take precedence over the environment. See the [module docs](self) for every setting.
#[derive(Clone)]
pub struct TraceConfig {
    enabled: bool,
    exporter: Option<ExporterKind>,
    endpoint: Option<Endpoint>,
    /// `endpoint` rendered for `protocol()` and `insecure`; kept current by `update_url`.
    url: Option<String>,
    protocol: Option<Protocol>,
    headers: Vec<(String, String)>,
    insecure: bool,
    service_name: String,
    service_version: Option<String>,
    environment: Option<String>,
    resource_attributes: Vec<(String, String)>,
    sampler: Sampler,
    sampling_rules: Vec<crate::sampling::SamplingRule>,
    propagators: Propagators,
    http_semconv: HttpSemconv,
    batch: BatchSettings,
    warnings: Vec<String>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            exporter: None,
            endpoint: None,
            url: None,
            protocol: None,
            headers: Vec::new(),
            insecure: false,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            service_version: None,
            environment: None,
            resource_attributes: Vec::new(),
            sampler: Sampler::default(),
            sampling_rules: Vec::new(),
            propagators: Propagators::default(),
            http_semconv: HttpSemconv::default(),
            batch: BatchSettings::default(),
            warnings: Vec::new(),
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
            .field("exporter", &self.exporter())
            .field("otlp_endpoint", &self.url)
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
            .field("batch", &self.batch)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl TraceConfig {
    /// All defaults, no environment (same as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the process environment. A variable this module reads whose value is not UTF-8 is
    /// an error naming it; other variables are ignored.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_os_vars(std::env::vars_os())
    }

    fn from_os_vars(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, ConfigError> {
        let mut lookup = Vars::default();
        for (name, value) in vars {
            let Some(name) = name
                .to_str()
                .and_then(|n| KNOWN_VARS.iter().find(|k| **k == n))
            else {
                continue;
            };
            match value.into_string() {
                Ok(value) => {
                    lookup.values.insert((*name).to_owned(), value);
                }
                Err(value) => lookup.errors.push(InvalidVar {
                    variable: (*name).to_owned(),
                    value: show(name, &value.to_string_lossy()),
                    reason: "the value is not valid UTF-8".to_owned(),
                }),
            }
        }
        Self::resolve(lookup)
    }

    /// Builds the configuration from `(name, value)` pairs, as if they were the environment.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut lookup = Vars::default();
        for (name, value) in vars {
            lookup
                .values
                .insert(name.as_ref().to_owned(), value.as_ref().to_owned());
        }
        Self::resolve(lookup)
    }

    fn resolve(mut v: Vars) -> Result<Self, ConfigError> {
        let sampler = v.sampler();
        let enabled = v.setting(TRACING_ENABLED, parse_bool, &[OTEL_SDK_DISABLED], |s| {
            parse_otel_bool(s).map(|disabled| !disabled)
        });
        let exporter = v.setting(
            TRACING_EXPORTER,
            parse_exporter,
            &[OTEL_TRACES_EXPORTER],
            parse_exporter,
        );
        let endpoint = {
            let tracing = v.parse(TRACING_ENDPOINT, |s| parse_endpoint(s, Source::Tracing));
            let traces = v.parse(OTLP_TRACES_ENDPOINT, |s| {
                parse_endpoint(s, Source::OtlpTraces)
            });
            let base = v.parse(OTLP_ENDPOINT, |s| parse_endpoint(s, Source::OtlpBase));
            v.pick(tracing, traces.or(base))
        };
        let protocol = v.setting(
            TRACING_PROTOCOL,
            parse_protocol,
            &[OTLP_TRACES_PROTOCOL, OTLP_PROTOCOL],
            parse_protocol,
        );
        let headers = {
            let tracing = v.parse(TRACING_HEADERS, |s| parse_kv_list(s, false));
            let traces = v.parse(OTLP_TRACES_HEADERS, |s| parse_kv_list(s, true));
            let all = v.parse(OTLP_HEADERS, |s| parse_kv_list(s, true));
            v.pick(tracing, traces.or(all))
        };
        let insecure = v.setting(
            TRACING_INSECURE,
            parse_bool,
            &[OTLP_TRACES_INSECURE, OTLP_INSECURE],
            parse_otel_bool,
        );
        let attributes = v.resource_attributes();
        let service_name = v.named_attribute(
            TRACING_SERVICE_NAME,
            Some(OTEL_SERVICE_NAME),
            &attributes,
            &[SERVICE_NAME_KEY],
        );
        let service_version = v.named_attribute(
            TRACING_SERVICE_VERSION,
            None,
            &attributes,
            &[SERVICE_VERSION_KEY],
        );
        let environment =
            v.named_attribute(TRACING_ENVIRONMENT, None, &attributes, &ENVIRONMENT_KEYS);
        let propagators = v.setting(
            TRACING_PROPAGATORS,
            parse_propagators,
            &[OTEL_PROPAGATORS],
            parse_propagators,
        );
        let http_semconv = v.parse(OTEL_SEMCONV_STABILITY_OPT_IN, |s| Ok(parse_semconv(s)));
        let batch = v.batch();
        if !v.errors.is_empty() {
            return Err(ConfigError { errors: v.errors });
        }
        let defaults = Self::default();
        let mut config = Self {
            enabled: enabled.map_or(defaults.enabled, |s| s.value),
            exporter: exporter.map(|s| s.value),
            endpoint: endpoint.map(|s| s.value),
            url: None,
            protocol: protocol.map(|s| s.value),
            headers: headers.map(|s| s.value).unwrap_or_default(),
            insecure: insecure.is_some_and(|s| s.value),
            service_name: service_name.unwrap_or(defaults.service_name),
            service_version,
            environment,
            resource_attributes: attributes
                .into_iter()
                .filter(|(k, _, _)| !is_reserved_key(k))
                .map(|(k, v, _)| (k, v))
                .collect(),
            sampler: sampler.map_or(defaults.sampler, |s| s.value),
            sampling_rules: Vec::new(),
            propagators: propagators.map_or(defaults.propagators, |s| s.value),
            http_semconv: http_semconv.map_or(defaults.http_semconv, |s| s.value),
            batch,
            warnings: v.warnings,
        };
        config.update_url();
        Ok(config)
    }

    fn update_url(&mut self) {
        self.url = self
            .endpoint
            .as_ref()
            .map(|e| e.url(self.protocol(), self.insecure));
    }

    /// Turns tracing on or off (off: no spans are recorded; context still propagates).
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets the exporter.
    pub fn with_exporter(mut self, exporter: ExporterKind) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// Sets the OTLP endpoint, written as in `TRACING_ENDPOINT` (`host:port` or
    /// `http(s)://host[:port][/path]`) and validated the same way.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Result<Self, ConfigError> {
        let endpoint = endpoint.into();
        let parsed = parse_endpoint(endpoint.trim(), Source::Tracing)
            .map_err(|reason| ConfigError::single("with_endpoint", endpoint.clone(), reason))?;
        self.endpoint = Some(parsed);
        self.update_url();
        Ok(self)
    }

    /// Sets the OTLP protocol instead of inferring it from the endpoint.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self.update_url();
        self
    }

    /// Adds an export header (e.g. an API key), replacing one of the same name.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
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
            SERVICE_NAME_KEY => self.with_service_name(value),
            SERVICE_VERSION_KEY => self.with_service_version(value),
            k if ENVIRONMENT_KEYS.contains(&k) => self.with_environment(value),
            _ => {
                let mut this = self;
                upsert(&mut this.resource_attributes, key, value.into());
                this
            }
        }
    }

    /// Samples this fraction (0.0 to 1.0) of root traces, following the parent otherwise
    /// ([`Sampler::ParentBasedTraceIdRatio`]), like `TRACING_SAMPLE_RATE`.
    pub fn with_sample_rate(mut self, rate: f64) -> Result<Self, ConfigError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ConfigError::single(
                "with_sample_rate",
                rate.to_string(),
                RATIO_EXPECTED.to_owned(),
            ));
        }
        self.sampler = Sampler::ParentBasedTraceIdRatio(rate);
        Ok(self)
    }

    /// Sets the sampler (a ratio outside 0.0 to 1.0 is the caller's mistake and is kept).
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Adds a per-route sampling rule for server spans (code only; see
    /// [`SamplingRule`](crate::sampling::SamplingRule)). Rules are tried in the order added;
    /// requests no rule matches use [`sampler`](Self::sampler).
    pub fn with_sampling_rule(mut self, rule: crate::sampling::SamplingRule) -> Self {
        self.sampling_rules.push(rule);
        self
    }

    /// Sets the propagators.
    pub fn with_propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// Sets the HTTP semantic conventions.
    pub fn with_http_semconv(mut self, semconv: HttpSemconv) -> Self {
        self.http_semconv = semconv;
        self
    }

    /// Disables TLS even for `https` / port 443 endpoints (a `host:443` endpoint then gets
    /// `http://`).
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self.update_url();
        self
    }

    /// Sets the batch processor bounds (used as given).
    pub fn with_batch(mut self, batch: BatchSettings) -> Self {
        self.batch = batch;
        self
    }

    /// Whether spans are recorded and exported.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The exporter: as set, else [`ExporterKind::Otlp`] when an endpoint is configured and
    /// [`ExporterKind::Console`] when not.
    pub fn exporter(&self) -> ExporterKind {
        self.exporter.unwrap_or(if self.endpoint.is_some() {
            ExporterKind::Otlp
        } else {
            ExporterKind::Console
        })
    }

    /// The exact URL for the OTLP exporter builder, if an endpoint is configured: `host:port`
    /// gets a scheme, HTTP gets `/v1/traces` where the table in the module docs says so.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The OTLP protocol: as set, else [`Protocol::HttpProtobuf`] for an endpoint on port 4318 or
    /// with a `/v1/traces` path, else [`Protocol::Grpc`].
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or_else(|| match &self.endpoint {
            Some(e)
                if e.port == Some(4318) || e.path.trim_end_matches('/').ends_with(TRACES_PATH) =>
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

    /// Whether the exporter should use TLS: an `https` endpoint or port 443, unless insecure.
    pub fn uses_tls(&self) -> bool {
        !self.insecure
            && self
                .endpoint
                .as_ref()
                .is_some_and(|e| e.https || e.port == Some(443))
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
    pub fn sampling_rules(&self) -> &[crate::sampling::SamplingRule] {
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

    /// The batch processor bounds.
    pub fn batch(&self) -> &BatchSettings {
        &self.batch
    }

    /// Problems that did not stop configuration, e.g. a `TRACING_*` and an `OTEL_*` variable
    /// disagreeing (one message per setting, naming both and the winner). Log them at startup.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Which variable an endpoint came from, which decides how HTTP gets its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// `TRACING_ENDPOINT` / `with_endpoint`: `host:port` or a URL; HTTP appends the path when the
    /// URL has none.
    Tracing,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL; HTTP always appends the path.
    OtlpBase,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: used verbatim.
    OtlpTraces,
}

#[derive(Clone, Debug)]
struct Endpoint {
    /// As written (trimmed).
    raw: String,
    source: Source,
    /// Written with a scheme (otherwise `host:port`).
    has_scheme: bool,
    https: bool,
    port: Option<u16>,
    /// Path (with query), `""` when none.
    path: String,
}

/// Two endpoints are the same setting when written the same way.
impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Endpoint {
    fn url(&self, protocol: Protocol, insecure: bool) -> String {
        let http = protocol == Protocol::HttpProtobuf;
        if !self.has_scheme {
            let scheme = if self.port == Some(443) && !insecure {
                "https"
            } else {
                "http"
            };
            let path = if http { TRACES_PATH } else { "" };
            return format!("{scheme}://{}{path}", self.raw);
        }
        let append = http
            && match self.source {
                Source::Tracing => self.path.trim_matches('/').is_empty(),
                Source::OtlpBase => true,
                Source::OtlpTraces => false,
            };
        if append {
            format!("{}{TRACES_PATH}", self.raw.trim_end_matches('/'))
        } else {
            self.raw.clone()
        }
    }
}

/// One parsed variable: its name, `NAME="value"` for messages, and the value.
#[derive(Debug)]
struct Setting<T> {
    var: &'static str,
    desc: String,
    value: T,
}

/// The variables being read, plus the errors and warnings found so far.
#[derive(Debug, Default)]
struct Vars {
    values: HashMap<String, String>,
    errors: Vec<InvalidVar>,
    warnings: Vec<String>,
}

impl Vars {
    /// The trimmed value; empty counts as unset.
    fn raw(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Parses `name` if set; a parse failure is recorded and gives `None`.
    fn parse<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Setting<T>> {
        let raw = self.raw(name)?.to_owned();
        let shown = show(name, &raw);
        match parse(&raw) {
            Ok(value) => Some(Setting {
                var: name,
                desc: format!("{name}={shown:?}"),
                value,
            }),
            Err(reason) => {
                self.errors.push(InvalidVar {
                    variable: name.to_owned(),
                    value: shown,
                    reason,
                });
                None
            }
        }
    }

    /// The `TRACING_*` setting if present, else the `OTEL_*` one; warns when both disagree.
    fn pick<T: PartialEq>(
        &mut self,
        tracing: Option<Setting<T>>,
        otel: Option<Setting<T>>,
    ) -> Option<Setting<T>> {
        if let (Some(t), Some(o)) = (&tracing, &otel)
            && t.value != o.value
        {
            self.warnings.push(format!(
                "{} conflicts with {}; using {} (TRACING_* takes precedence over OTEL_*)",
                t.desc, o.desc, t.var
            ));
        }
        tracing.or(otel)
    }

    /// `tracing`, else the first set of `otel`; every set variable is validated.
    fn setting<T: PartialEq>(
        &mut self,
        tracing: &'static str,
        parse_tracing: impl Fn(&str) -> Result<T, String>,
        otel: &[&'static str],
        parse_otel: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Setting<T>> {
        let tracing = self.parse(tracing, parse_tracing);
        let mut first = None;
        for name in otel {
            let found = self.parse(name, &parse_otel);
            first = first.or(found);
        }
        self.pick(tracing, first)
    }

    /// `TRACING_RESOURCE_ATTRIBUTES` merged over `OTEL_RESOURCE_ATTRIBUTES`, with the source of
    /// each attribute.
    fn resource_attributes(&mut self) -> Vec<(String, String, &'static str)> {
        let tracing = self.parse(TRACING_RESOURCE_ATTRIBUTES, |s| parse_kv_list(s, true));
        let otel = self.parse(OTEL_RESOURCE_ATTRIBUTES, |s| parse_kv_list(s, true));
        let mut merged: Vec<_> = otel
            .map(|s| s.value)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v, OTEL_RESOURCE_ATTRIBUTES))
            .collect();
        for (key, value) in tracing.map(|s| s.value).unwrap_or_default() {
            match merged.iter_mut().find(|(k, _, _)| *k == key) {
                Some(slot) => {
                    if slot.1 != value {
                        self.warnings.push(format!(
                            "{TRACING_RESOURCE_ATTRIBUTES}[{key}]={value:?} conflicts with \
                             {OTEL_RESOURCE_ATTRIBUTES}[{key}]={:?}; using {TRACING_RESOURCE_ATTRIBUTES} \
                             (TRACING_* takes precedence over OTEL_*)",
                            slot.1
                        ));
                    }
                    *slot = (key, value, TRACING_RESOURCE_ATTRIBUTES);
                }
                None => merged.push((key, value, TRACING_RESOURCE_ATTRIBUTES)),
            }
        }
        merged
    }

    /// A setting that also lives in the resource attributes (lowest precedence, first of `keys`).
    fn named_attribute(
        &mut self,
        tracing: &'static str,
        otel: Option<&'static str>,
        attributes: &[(String, String, &'static str)],
        keys: &[&str],
    ) -> Option<String> {
        let own = |s: &str| Ok(s.to_owned());
        let tracing = self.parse(tracing, own);
        let otel = otel.and_then(|name| self.parse(name, own));
        let attribute = keys.iter().find_map(|key| {
            attributes
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(k, v, source)| Setting {
                    var: source,
                    desc: format!("{source}[{k}]={v:?}"),
                    value: v.clone(),
                })
        });
        self.pick(tracing, otel.or(attribute)).map(|s| s.value)
    }

    fn sampler(&mut self) -> Option<Setting<Sampler>> {
        let rate = self.parse(TRACING_SAMPLE_RATE, |s| {
            parse_ratio(s).map(Sampler::ParentBasedTraceIdRatio)
        });
        let mut otel = self.parse(OTEL_TRACES_SAMPLER, parse_sampler);
        let arg = self.parse(OTEL_TRACES_SAMPLER_ARG, parse_ratio);
        match (&mut otel, arg) {
            (Some(sampler), Some(arg)) if sampler.value.takes_ratio() => {
                sampler.value = sampler.value.with_ratio(arg.value);
                sampler.desc = format!("{} with {}", sampler.desc, arg.desc);
            }
            (_, Some(arg)) => self.warnings.push(format!(
                "{} is ignored: {OTEL_TRACES_SAMPLER} is not traceidratio or parentbased_traceidratio",
                arg.desc
            )),
            _ => {}
        }
        self.pick(rate, otel)
    }

    fn batch(&mut self) -> BatchSettings {
        let defaults = BatchSettings::default();
        let queue = self.setting(
            TRACING_BATCH_QUEUE_SIZE,
            parse_size,
            &[OTEL_BSP_MAX_QUEUE_SIZE],
            parse_size,
        );
        let delay = self.setting(
            TRACING_BATCH_DELAY_MS,
            parse_millis,
            &[OTEL_BSP_SCHEDULE_DELAY],
            parse_millis,
        );
        let size = self.setting(
            TRACING_BATCH_SIZE,
            parse_size,
            &[OTEL_BSP_MAX_EXPORT_BATCH_SIZE],
            parse_size,
        );
        let timeout = self.setting(
            TRACING_EXPORT_TIMEOUT_MS,
            parse_millis,
            &[OTEL_BSP_EXPORT_TIMEOUT],
            parse_millis,
        );
        let batch = BatchSettings {
            max_queue_size: queue.as_ref().map_or(defaults.max_queue_size, |s| s.value),
            scheduled_delay: delay.map_or(defaults.scheduled_delay, |s| s.value),
            max_export_batch_size: size
                .as_ref()
                .map_or(defaults.max_export_batch_size, |s| s.value),
            export_timeout: timeout.map_or(defaults.export_timeout, |s| s.value),
            ..defaults
        };
        if batch.max_export_batch_size > batch.max_queue_size
            && let Some(blame) = size.as_ref().or(queue.as_ref())
        {
            let source = |s: &Option<Setting<usize>>, vars: [&str; 2]| {
                s.as_ref().map_or_else(
                    || format!("default; {} or {}", vars[0], vars[1]),
                    |s| s.var.to_owned(),
                )
            };
            self.errors.push(InvalidVar {
                variable: blame.var.to_owned(),
                value: self.raw(blame.var).unwrap_or_default().to_owned(),
                reason: format!(
                    "the export batch size {} ({}) must not exceed the queue size {} ({})",
                    batch.max_export_batch_size,
                    source(&size, [TRACING_BATCH_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE]),
                    batch.max_queue_size,
                    source(&queue, [TRACING_BATCH_QUEUE_SIZE, OTEL_BSP_MAX_QUEUE_SIZE]),
                ),
            });
        }
        batch
    }
}

/// The value as it may appear in messages: header values become `***`.
fn show(name: &str, raw: &str) -> String {
    if !SECRET_VARS.contains(&name) {
        return raw.to_owned();
    }
    let members: Vec<String> = raw
        .split(',')
        .map(|m| match m.split_once('=') {
            Some((k, _)) => format!("{}=***", k.trim()),
            None => m.trim().to_owned(),
        })
        .collect();
    members.join(",")
}

fn is_reserved_key(key: &str) -> bool {
    key == SERVICE_NAME_KEY || key == SERVICE_VERSION_KEY || ENVIRONMENT_KEYS.contains(&key)
}

fn upsert(list: &mut Vec<(String, String)>, key: String, value: String) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key, value)),
    }
}

const RATIO_EXPECTED: &str = "expected a number between 0.0 and 1.0";

/// `true`/`false`/`1`/`0`/`yes`/`no`, any case (the `TRACING_*` variables).
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// `true`/`false`, any case (the `OTEL_*` variables, as the specification defines them).
fn parse_otel_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| RATIO_EXPECTED.to_owned())
}

fn parse_size(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n > 0 && !s.starts_with('+'))
        .ok_or_else(|| "expected a positive integer".to_owned())
}

fn parse_millis(s: &str) -> Result<Duration, String> {
    match s.parse::<u64>() {
        Ok(ms) if !s.starts_with('+') => Ok(Duration::from_millis(ms)),
        _ => Err("expected a whole number of milliseconds".to_owned()),
    }
}

fn parse_exporter(s: &str) -> Result<ExporterKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "otlp" => Ok(ExporterKind::Otlp),
        "console" => Ok(ExporterKind::Console),
        "none" => Ok(ExporterKind::None),
        list if list.contains(',') => {
            Err("only one exporter is supported: otlp, console or none".to_owned())
        }
        _ => Err("unsupported exporter; expected otlp, console or none".to_owned()),
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s.to_ascii_lowercase().as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http" | "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Err("unsupported protocol; expected grpc or http/protobuf".to_owned()),
        _ => Err("unknown protocol; expected grpc or http/protobuf".to_owned()),
    }
}

/// An `OTEL_TRACES_SAMPLER` name; ratio samplers get 1.0 until `OTEL_TRACES_SAMPLER_ARG` is read.
fn parse_sampler(s: &str) -> Result<Sampler, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatio(1.0),
        "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
        "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(1.0),
        _ => {
            return Err(
                "unsupported sampler; expected always_on, always_off, traceidratio, \
                        parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                    .to_owned(),
            );
        }
    })
}

fn parse_propagators(s: &str) -> Result<Propagators, String> {
    const EXPECTED: &str = "expected a comma-separated list of tracecontext, baggage or none";
    let mut found = Propagators {
        trace_context: false,
        baggage: false,
    };
    let (mut none, mut any) = (false, false);
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        any = true;
        match name.to_ascii_lowercase().as_str() {
            "tracecontext" => found.trace_context = true,
            "baggage" => found.baggage = true,
            "none" => none = true,
            "b3" | "b3multi" | "jaeger" | "xray" | "ottrace" => {
                return Err(format!("unsupported propagator {name:?}; {EXPECTED}"));
            }
            _ => return Err(format!("unknown propagator {name:?}; {EXPECTED}")),
        }
    }
    if !any {
        return Err(EXPECTED.to_owned());
    }
    if none
        && found
            != (Propagators {
                trace_context: false,
                baggage: false,
            })
    {
        return Err("none cannot be combined with other propagators".to_owned());
    }
    Ok(found)
}

/// Categories of other signals are ignored; `http/dup` wins over `http`.
fn parse_semconv(s: &str) -> HttpSemconv {
    if s.split(',')
        .any(|c| c.trim().eq_ignore_ascii_case("http/dup"))
    {
        HttpSemconv::Dup
    } else {
        HttpSemconv::Stable
    }
}

/// `k=v,k2=v2` (W3C-baggage-like): members and both sides trimmed, empty members skipped, the
/// last of a repeated key wins. Reasons never echo a value.
fn parse_kv_list(s: &str, decode: bool) -> Result<Vec<(String, String)>, String> {
    let mut list = Vec::new();
    for member in s.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some((key, value)) = member.split_once('=') else {
            return Err(format!("member {member:?} is not key=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err("a member has an empty key".to_owned());
        }
        let value = match decode {
            true => percent_decode(value)
                .ok_or_else(|| format!("the value of {key:?} has invalid percent-encoding"))?,
            false => value.to_owned(),
        };
        upsert(&mut list, key.to_owned(), value);
    }
    Ok(list)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `host:port` (only from [`Source::Tracing`]) or `http(s)://host[:port][/path]`.
fn parse_endpoint(s: &str, source: Source) -> Result<Endpoint, String> {
    const EXPECTED: &str = "expected host:port or http(s)://host[:port][/path]";
    if s.chars().any(char::is_whitespace) {
        return Err(format!("must not contain spaces; {EXPECTED}"));
    }
    let (has_scheme, https, rest) = match s.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" => (true, false, rest),
            "https" => (true, true, rest),
            _ => {
                return Err(format!(
                    "unsupported scheme {scheme:?}; expected http or https"
                ));
            }
        },
        None if source == Source::Tracing => (false, false, s),
        None => return Err("expected a URL such as http://collector:4318".to_owned()),
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6
                .split_once(']')
                .ok_or("missing ']' after an IPv6 address")?;
            match after.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None if after.is_empty() => (addr, None),
                None => {
                    return Err(format!(
                        "unexpected {after:?} after the IPv6 address; {EXPECTED}"
                    ));
                }
            }
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("missing host; {EXPECTED}"));
    }
    if !authority.starts_with('[') && host.contains(':') {
        return Err("an IPv6 address needs brackets, e.g. [::1]:4317".to_owned());
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|n| *n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("invalid port {p:?}; expected 1 to 65535"))?,
        ),
        None if has_scheme => None,
        None => return Err("missing port; expected host:port such as localhost:4317".to_owned()),
    };
    if !has_scheme && !path.is_empty() {
        return Err("a path needs a scheme: http(s)://host:port/path".to_owned());
    }
    Ok(Endpoint {
        raw: s.to_owned(),
        source,
        has_scheme,
        https,
        port,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variables as `NAME=value` (split at the first `=`).
    type Env = &'static [&'static str];

    fn vars(env: &[&'static str]) -> Vec<(&'static str, &'static str)> {
        env.iter()
            .map(|v| v.split_once('=').expect("NAME=value"))
            .collect()
    }

    fn config(env: &[&'static str]) -> TraceConfig {
        TraceConfig::from_vars(vars(env)).unwrap_or_else(|e| panic!("{env:?}: {e}"))
    }

    fn error(env: &[&'static str]) -> ConfigError {
        match TraceConfig::from_vars(vars(env)) {
            Ok(c) => panic!("{env:?} should be rejected, got {c:?}"),
            Err(e) => e,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = TraceConfig::new();
        assert!(c.enabled());
        assert_eq!(c.exporter(), ExporterKind::Console);
        assert_eq!(c.otlp_endpoint(), None);
        assert_eq!(c.protocol(), Protocol::Grpc);
        assert!(!c.uses_tls());
        assert_eq!(c.service_name(), "gorax");
        assert_eq!(c.sampler(), Sampler::ParentBasedAlwaysOn);
        assert_eq!(
            c.propagators(),
            Propagators {
                trace_context: true,
                baggage: true
            }
        );
        assert_eq!(c.http_semconv(), HttpSemconv::Stable);
        let b = c.batch();
        assert_eq!((b.max_queue_size, b.max_export_batch_size), (2048, 512));
        assert_eq!(
            (b.scheduled_delay, b.export_timeout),
            (Duration::from_secs(5), Duration::from_secs(10))
        );
        assert!(c.warnings().is_empty());
        assert_eq!(format!("{c:?}"), format!("{:?}", config(&[])));
    }

    /// Good values: variables, getter, expected rendering (and no warning).
    #[test]
    fn good_values() {
        type Get = fn(&TraceConfig) -> String;
        let enabled: Get = |c| c.enabled().to_string();
        let exporter: Get = |c| c.exporter().to_string();
        let protocol: Get = |c| c.protocol().to_string();
        let headers: Get = |c| format!("{:?}", c.headers());
        let tls: Get = |c| c.uses_tls().to_string();
        let name: Get = |c| c.service_name().to_owned();
        let version: Get = |c| format!("{:?}", c.service_version());
        let env: Get = |c| format!("{:?}", c.environment());
        let attrs: Get = |c| format!("{:?}", c.resource_attributes());
        let sampler: Get = |c| c.sampler().to_string();
        let props: Get = |c| format!("{:?}", c.propagators());
        let semconv: Get = |c| format!("{:?}", c.http_semconv());
        let batch: Get = |c| format!("{:?}", c.batch());
        let cases: &[(Env, Get, &str)] = &[
            (&["TRACING_ENABLED=false"], enabled, "false"),
            (&["TRACING_ENABLED=No"], enabled, "false"),
            (&["TRACING_ENABLED=0"], enabled, "false"),
            (&["TRACING_ENABLED=YES"], enabled, "true"),
            (&["TRACING_ENABLED=1"], enabled, "true"),
            (&["TRACING_ENABLED= TRUE "], enabled, "true"),
            (&["OTEL_SDK_DISABLED=true"], enabled, "false"),
            (&["OTEL_SDK_DISABLED=FALSE"], enabled, "true"),
            (&["TRACING_EXPORTER=none"], exporter, "none"),
            (
                &["TRACING_EXPORTER=Console", "TRACING_ENDPOINT=c:4317"],
                exporter,
                "console",
            ),
            (&["OTEL_TRACES_EXPORTER=otlp"], exporter, "otlp"),
            (&["OTEL_TRACES_EXPORTER=console"], exporter, "console"),
            (&["TRACING_ENDPOINT=localhost:4317"], exporter, "otlp"),
            (
                &["OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317"],
                exporter,
                "otlp",
            ),
            (&["TRACING_PROTOCOL=http"], protocol, "http/protobuf"),
            (
                &["TRACING_PROTOCOL=HTTP/protobuf"],
                protocol,
                "http/protobuf",
            ),
            (
                &["TRACING_PROTOCOL=grpc", "TRACING_ENDPOINT=c:4318"],
                protocol,
                "grpc",
            ),
            (
                &["OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"],
                protocol,
                "http/protobuf",
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
                    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                ],
                protocol,
                "grpc",
            ),
            (
                &["TRACING_HEADERS=k=a%20b, x = y,"],
                headers,
                r#"[("k", "a%20b"), ("x", "y")]"#,
            ),
            (
                &["OTEL_EXPORTER_OTLP_HEADERS=k=a%20b,auth=Basic dQ=="],
                headers,
                r#"[("k", "a b"), ("auth", "Basic dQ==")]"#,
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS=a=1",
                    "OTEL_EXPORTER_OTLP_HEADERS=b=2",
                ],
                headers,
                r#"[("a", "1")]"#,
            ),
            (
                &["TRACING_INSECURE=yes", "TRACING_ENDPOINT=https://c"],
                tls,
                "false",
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_INSECURE=true",
                    "TRACING_ENDPOINT=https://c",
                ],
                tls,
                "false",
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_INSECURE=false",
                    "TRACING_ENDPOINT=https://c",
                ],
                tls,
                "true",
            ),
            (&["TRACING_SERVICE_NAME=billing"], name, "billing"),
            (&["OTEL_SERVICE_NAME=billing"], name, "billing"),
            (
                &["OTEL_RESOURCE_ATTRIBUTES=service.name=billing"],
                name,
                "billing",
            ),
            (
                &[
                    "OTEL_SERVICE_NAME=a",
                    "OTEL_RESOURCE_ATTRIBUTES=service.name=b",
                ],
                name,
                "a",
            ),
            (
                &["TRACING_SERVICE_VERSION=1.2.3"],
                version,
                r#"Some("1.2.3")"#,
            ),
            (
                &["OTEL_RESOURCE_ATTRIBUTES=service.version=1.2.3"],
                version,
                r#"Some("1.2.3")"#,
            ),
            (&["TRACING_ENVIRONMENT=prod"], env, r#"Some("prod")"#),
            (
                &["OTEL_RESOURCE_ATTRIBUTES=deployment.environment=staging"],
                env,
                r#"Some("staging")"#,
            ),
            (
                &[
                    "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=old,deployment.environment.name=new",
                ],
                env,
                r#"Some("new")"#,
            ),
            (
                &["OTEL_RESOURCE_ATTRIBUTES=h=a%2Cb,service.name=x,k=1,k=2"],
                attrs,
                r#"[("h", "a,b"), ("k", "2")]"#,
            ),
            (
                &["TRACING_RESOURCE_ATTRIBUTES=team=core"],
                attrs,
                r#"[("team", "core")]"#,
            ),
            (
                &["TRACING_SAMPLE_RATE=0.25"],
                sampler,
                "parentbased_traceidratio(0.25)",
            ),
            (
                &["TRACING_SAMPLE_RATE=0"],
                sampler,
                "parentbased_traceidratio(0)",
            ),
            (
                &["TRACING_SAMPLE_RATE=1"],
                sampler,
                "parentbased_traceidratio(1)",
            ),
            (&["OTEL_TRACES_SAMPLER=always_on"], sampler, "always_on"),
            (&["OTEL_TRACES_SAMPLER=ALWAYS_OFF"], sampler, "always_off"),
            (
                &[
                    "OTEL_TRACES_SAMPLER=traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG=0.5",
                ],
                sampler,
                "traceidratio(0.5)",
            ),
            (
                &["OTEL_TRACES_SAMPLER=traceidratio"],
                sampler,
                "traceidratio(1)",
            ),
            (
                &["OTEL_TRACES_SAMPLER=parentbased_always_on"],
                sampler,
                "parentbased_always_on",
            ),
            (
                &["OTEL_TRACES_SAMPLER=parentbased_always_off"],
                sampler,
                "parentbased_always_off",
            ),
            (
                &[
                    "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG=0.1",
                ],
                sampler,
                "parentbased_traceidratio(0.1)",
            ),
            (
                &["OTEL_PROPAGATORS=none"],
                props,
                "Propagators { trace_context: false, baggage: false }",
            ),
            (
                &["OTEL_PROPAGATORS=tracecontext"],
                props,
                "Propagators { trace_context: true, baggage: false }",
            ),
            (
                &["OTEL_PROPAGATORS=baggage, TraceContext"],
                props,
                "Propagators { trace_context: true, baggage: true }",
            ),
            (
                &["TRACING_PROPAGATORS=baggage"],
                props,
                "Propagators { trace_context: false, baggage: true }",
            ),
            (&["OTEL_SEMCONV_STABILITY_OPT_IN=http/dup"], semconv, "Dup"),
            (
                &["OTEL_SEMCONV_STABILITY_OPT_IN=database, http/dup"],
                semconv,
                "Dup",
            ),
            (&["OTEL_SEMCONV_STABILITY_OPT_IN=http"], semconv, "Stable"),
            (
                &["OTEL_SEMCONV_STABILITY_OPT_IN=database"],
                semconv,
                "Stable",
            ),
            (
                &[
                    "TRACING_BATCH_QUEUE_SIZE=100",
                    "TRACING_BATCH_DELAY_MS=0",
                    "TRACING_BATCH_SIZE=100",
                    "TRACING_EXPORT_TIMEOUT_MS=2500",
                ],
                batch,
                "BatchSettings { max_queue_size: 100, scheduled_delay: 0ns, max_export_batch_size: 100, export_timeout: 2.5s, max_queue_bytes: 16777216 }",
            ),
            (
                &[
                    "OTEL_BSP_MAX_QUEUE_SIZE=4096",
                    "OTEL_BSP_SCHEDULE_DELAY=1000",
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1024",
                    "OTEL_BSP_EXPORT_TIMEOUT=30000",
                ],
                batch,
                "BatchSettings { max_queue_size: 4096, scheduled_delay: 1s, max_export_batch_size: 1024, export_timeout: 30s, max_queue_bytes: 16777216 }",
            ),
        ];
        for (env, get, want) in cases {
            let c = config(env);
            assert_eq!(get(&c), *want, "{env:?}");
            assert!(c.warnings().is_empty(), "{env:?}: {:?}", c.warnings());
        }
    }

    /// Each rejected alone: variables, then the variable and (shown) value in the error.
    #[test]
    fn bad_values() {
        let cases: &[(Env, &str, &str)] = &[
            (&["TRACING_SAMPLE_RATE=10%"], "TRACING_SAMPLE_RATE", "10%"),
            (&["TRACING_SAMPLE_RATE=1.5"], "TRACING_SAMPLE_RATE", "1.5"),
            (&["TRACING_SAMPLE_RATE=-0.1"], "TRACING_SAMPLE_RATE", "-0.1"),
            (&["TRACING_SAMPLE_RATE=NaN"], "TRACING_SAMPLE_RATE", "NaN"),
            (&["TRACING_SAMPLE_RATE=inf"], "TRACING_SAMPLE_RATE", "inf"),
            (&["TRACING_SAMPLE_RATE=abc"], "TRACING_SAMPLE_RATE", "abc"),
            (&["TRACING_ENABLED=maybe"], "TRACING_ENABLED", "maybe"),
            (&["OTEL_SDK_DISABLED=1"], "OTEL_SDK_DISABLED", "1"),
            (&["TRACING_INSECURE=sure"], "TRACING_INSECURE", "sure"),
            (
                &["OTEL_EXPORTER_OTLP_INSECURE=yes"],
                "OTEL_EXPORTER_OTLP_INSECURE",
                "yes",
            ),
            (
                &["TRACING_ENDPOINT=localhost"],
                "TRACING_ENDPOINT",
                "localhost",
            ),
            (&["TRACING_ENDPOINT=:4317"], "TRACING_ENDPOINT", ":4317"),
            (&["TRACING_ENDPOINT=http://"], "TRACING_ENDPOINT", "http://"),
            (
                &["TRACING_ENDPOINT=http://:4317"],
                "TRACING_ENDPOINT",
                "http://:4317",
            ),
            (
                &["TRACING_ENDPOINT=ftp://x:1"],
                "TRACING_ENDPOINT",
                "ftp://x:1",
            ),
            (
                &["TRACING_ENDPOINT=host:99999"],
                "TRACING_ENDPOINT",
                "host:99999",
            ),
            (&["TRACING_ENDPOINT=host:0"], "TRACING_ENDPOINT", "host:0"),
            (
                &["TRACING_ENDPOINT=host:+80"],
                "TRACING_ENDPOINT",
                "host:+80",
            ),
            (&["TRACING_ENDPOINT=host:"], "TRACING_ENDPOINT", "host:"),
            (
                &["TRACING_ENDPOINT=host name:4317"],
                "TRACING_ENDPOINT",
                "host name:4317",
            ),
            (
                &["TRACING_ENDPOINT=c:4318/v1/traces"],
                "TRACING_ENDPOINT",
                "c:4318/v1/traces",
            ),
            (
                &["TRACING_ENDPOINT=::1:4317"],
                "TRACING_ENDPOINT",
                "::1:4317",
            ),
            (
                &["TRACING_ENDPOINT=[::1:4317"],
                "TRACING_ENDPOINT",
                "[::1:4317",
            ),
            (
                &["OTEL_EXPORTER_OTLP_ENDPOINT=c:4317"],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "c:4317",
            ),
            (
                &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=grpc://c"],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "grpc://c",
            ),
            (&["TRACING_HEADERS=a"], "TRACING_HEADERS", "a"),
            (&["TRACING_HEADERS==b"], "TRACING_HEADERS", "=***"),
            (
                &["OTEL_EXPORTER_OTLP_HEADERS=k=%zz"],
                "OTEL_EXPORTER_OTLP_HEADERS",
                "k=***",
            ),
            (
                &["OTEL_EXPORTER_OTLP_TRACES_HEADERS=k=%ff"],
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "k=***",
            ),
            (
                &["TRACING_RESOURCE_ATTRIBUTES=team"],
                "TRACING_RESOURCE_ATTRIBUTES",
                "team",
            ),
            (
                &["OTEL_RESOURCE_ATTRIBUTES==x"],
                "OTEL_RESOURCE_ATTRIBUTES",
                "=x",
            ),
            (&["TRACING_EXPORTER=jaeger"], "TRACING_EXPORTER", "jaeger"),
            (
                &["OTEL_TRACES_EXPORTER=zipkin"],
                "OTEL_TRACES_EXPORTER",
                "zipkin",
            ),
            (
                &["OTEL_TRACES_EXPORTER=otlp,console"],
                "OTEL_TRACES_EXPORTER",
                "otlp,console",
            ),
            (&["TRACING_PROTOCOL=udp"], "TRACING_PROTOCOL", "udp"),
            (
                &["OTEL_EXPORTER_OTLP_PROTOCOL=http/json"],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
            ),
            (
                &["OTEL_TRACES_SAMPLER=jaeger_remote"],
                "OTEL_TRACES_SAMPLER",
                "jaeger_remote",
            ),
            (
                &[
                    "OTEL_TRACES_SAMPLER=traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG=2",
                ],
                "OTEL_TRACES_SAMPLER_ARG",
                "2",
            ),
            (&["OTEL_PROPAGATORS=b3"], "OTEL_PROPAGATORS", "b3"),
            (
                &["OTEL_PROPAGATORS=tracecontext,xray"],
                "OTEL_PROPAGATORS",
                "tracecontext,xray",
            ),
            (&["OTEL_PROPAGATORS=foo"], "OTEL_PROPAGATORS", "foo"),
            (
                &["TRACING_PROPAGATORS=none,baggage"],
                "TRACING_PROPAGATORS",
                "none,baggage",
            ),
            (&["OTEL_PROPAGATORS=,"], "OTEL_PROPAGATORS", ","),
            (
                &["OTEL_BSP_MAX_QUEUE_SIZE=0"],
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "0",
            ),
            (&["TRACING_BATCH_SIZE=0"], "TRACING_BATCH_SIZE", "0"),
            (
                &["TRACING_BATCH_QUEUE_SIZE=-1"],
                "TRACING_BATCH_QUEUE_SIZE",
                "-1",
            ),
            (
                &["TRACING_BATCH_DELAY_MS=5s"],
                "TRACING_BATCH_DELAY_MS",
                "5s",
            ),
            (
                &["OTEL_BSP_EXPORT_TIMEOUT=-1"],
                "OTEL_BSP_EXPORT_TIMEOUT",
                "-1",
            ),
            (&["TRACING_BATCH_SIZE=4096"], "TRACING_BATCH_SIZE", "4096"),
            (
                &["OTEL_BSP_MAX_QUEUE_SIZE=100"],
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "100",
            ),
        ];
        for (env, variable, value) in cases {
            let e = error(env);
            assert_eq!(e.errors().len(), 1, "{env:?}: {e}");
            let bad = &e.errors()[0];
            assert_eq!(
                (bad.variable.as_str(), bad.value.as_str()),
                (*variable, *value),
                "{env:?}"
            );
            assert!(!bad.reason.is_empty());
            assert!(
                e.to_string().contains(&format!("{variable}={value:?}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn all_bad_variables_are_reported_together() {
        let e = error(&[
            "TRACING_ENABLED=maybe",
            "TRACING_SAMPLE_RATE=10%",
            "TRACING_ENDPOINT=localhost",
            "OTEL_PROPAGATORS=b3",
            "OTEL_EXPORTER_OTLP_ENDPOINT=ftp://x:1",
        ]);
        assert_eq!(e.errors().len(), 5, "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("invalid tracing configuration: "),
            "{text}"
        );
        for bad in e.errors() {
            assert!(
                text.contains(&format!("{}={:?}", bad.variable, bad.value)),
                "{bad} missing from {text}"
            );
        }
        let mut names: Vec<&str> = e.errors().iter().map(|b| b.variable.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_PROPAGATORS",
                "TRACING_ENABLED",
                "TRACING_ENDPOINT",
                "TRACING_SAMPLE_RATE"
            ]
        );
        let two = error(&["TRACING_ENABLED=maybe", "TRACING_SAMPLE_RATE=10%"]);
        assert_eq!(
            two.to_string(),
            "invalid tracing configuration: TRACING_SAMPLE_RATE=\"10%\": expected a number between 0.0 and 1.0; \
             TRACING_ENABLED=\"maybe\": expected true or false"
        );
    }

    #[test]
    fn shadowed_bad_values_are_still_errors() {
        let e = error(&[
            "TRACING_SAMPLE_RATE=0.5",
            "OTEL_TRACES_SAMPLER=jaeger_remote",
        ]);
        assert_eq!(e.errors()[0].variable, "OTEL_TRACES_SAMPLER");
        let e = error(&[
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
        ]);
        assert_eq!(e.errors()[0].variable, "OTEL_EXPORTER_OTLP_PROTOCOL");
    }

    #[test]
    fn header_secrets_are_not_echoed() {
        let text = error(&["OTEL_EXPORTER_OTLP_HEADERS=x-api-key=secret123,broken"]).to_string();
        assert!(!text.contains("secret123"), "{text}");
        assert!(
            text.contains("x-api-key=***") && text.contains("broken"),
            "{text}"
        );
        let c = config(&[
            "TRACING_HEADERS=x-api-key=secret1",
            "OTEL_EXPORTER_OTLP_HEADERS=x-api-key=secret2",
        ]);
        assert_eq!(c.headers(), pairs(&[("x-api-key", "secret1")]));
        assert_eq!(c.warnings().len(), 1);
        let shown = format!("{:?} {c:?}", c.warnings());
        assert!(
            !shown.contains("secret1") && !shown.contains("secret2"),
            "{shown}"
        );
    }

    #[test]
    fn batch_size_above_queue_names_both_variables() {
        let e = error(&["TRACING_BATCH_SIZE=4096", "OTEL_BSP_MAX_QUEUE_SIZE=1000"]);
        let (variable, reason) = (&e.errors()[0].variable, &e.errors()[0].reason);
        assert_eq!(variable, "TRACING_BATCH_SIZE");
        assert!(reason.contains("4096 (TRACING_BATCH_SIZE)"), "{reason}");
        assert!(
            reason.contains("1000 (OTEL_BSP_MAX_QUEUE_SIZE)"),
            "{reason}"
        );
        let e = error(&["OTEL_BSP_MAX_QUEUE_SIZE=100"]);
        let reason = &e.errors()[0].reason;
        assert!(
            reason.contains("TRACING_BATCH_SIZE")
                && reason.contains("100 (OTEL_BSP_MAX_QUEUE_SIZE)"),
            "{reason}"
        );
    }

    /// The user guide's endpoints and the OTLP URL rules: variables, URL, protocol, TLS.
    #[test]
    fn endpoints() {
        use Protocol::{Grpc, HttpProtobuf as Http};
        let cases: &[(Env, &str, Protocol, bool)] = &[
            (
                &["TRACING_ENDPOINT=localhost:4317"],
                "http://localhost:4317",
                Grpc,
                false,
            ),
            (
                &["TRACING_ENDPOINT=tempo.example.com:443"],
                "https://tempo.example.com:443",
                Grpc,
                true,
            ),
            (
                &["TRACING_ENDPOINT=api.honeycomb.io:443"],
                "https://api.honeycomb.io:443",
                Grpc,
                true,
            ),
            (
                &[
                    "TRACING_ENDPOINT=api.honeycomb.io:443",
                    "TRACING_INSECURE=true",
                ],
                "http://api.honeycomb.io:443",
                Grpc,
                false,
            ),
            (
                &["TRACING_ENDPOINT=localhost:4318"],
                "http://localhost:4318/v1/traces",
                Http,
                false,
            ),
            (
                &["TRACING_ENDPOINT=c:4317", "TRACING_PROTOCOL=http"],
                "http://c:4317/v1/traces",
                Http,
                false,
            ),
            (
                &["TRACING_ENDPOINT=[::1]:4317"],
                "http://[::1]:4317",
                Grpc,
                false,
            ),
            (
                &["TRACING_ENDPOINT=https://collector.example.com"],
                "https://collector.example.com",
                Grpc,
                true,
            ),
            (
                &["TRACING_ENDPOINT=http://c:4318"],
                "http://c:4318/v1/traces",
                Http,
                false,
            ),
            (
                &["TRACING_ENDPOINT=http://c:4318/"],
                "http://c:4318/v1/traces",
                Http,
                false,
            ),
            (
                &["TRACING_ENDPOINT=http://c:4318/v1/traces"],
                "http://c:4318/v1/traces",
                Http,
                false,
            ),
            (
                &[
                    "TRACING_ENDPOINT=https://c/otlp/traces",
                    "TRACING_PROTOCOL=http",
                ],
                "https://c/otlp/traces",
                Http,
                true,
            ),
            (
                &["TRACING_ENDPOINT=http://c:4317/prefix"],
                "http://c:4317/prefix",
                Grpc,
                false,
            ),
            (
                &["OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"],
                "http://c:4318/v1/traces",
                Http,
                false,
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318/",
                    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                ],
                "http://c:4318/v1/traces",
                Http,
                false,
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_ENDPOINT=https://c/base/",
                    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                ],
                "https://c/base/v1/traces",
                Http,
                true,
            ),
            (
                &["OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317"],
                "http://c:4317",
                Grpc,
                false,
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://c:4318/custom",
                    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                ],
                "http://c:4318/custom",
                Http,
                false,
            ),
            (
                &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://c:4318/v1/traces"],
                "http://c:4318/v1/traces",
                Http,
                false,
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://t:4317",
                    "OTEL_EXPORTER_OTLP_ENDPOINT=http://b:4317",
                ],
                "http://t:4317",
                Grpc,
                false,
            ),
            (
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://c:8443",
                    "OTEL_EXPORTER_OTLP_INSECURE=true",
                ],
                "https://c:8443",
                Grpc,
                false,
            ),
        ];
        for (env, url, protocol, tls) in cases {
            let c = config(env);
            assert_eq!(c.otlp_endpoint(), Some(*url), "{env:?}");
            assert_eq!(c.protocol(), *protocol, "{env:?}");
            assert_eq!(c.uses_tls(), *tls, "{env:?}");
            assert_eq!(c.exporter(), ExporterKind::Otlp, "{env:?}");
            assert!(c.warnings().is_empty(), "{env:?}: {:?}", c.warnings());
        }
    }

    #[test]
    fn builders_recompute_the_endpoint() {
        let c = config(&["TRACING_ENDPOINT=tempo.example.com:443"])
            .with_protocol(Protocol::HttpProtobuf);
        assert_eq!(
            c.otlp_endpoint(),
            Some("https://tempo.example.com:443/v1/traces")
        );
        let c = c.with_insecure(true);
        assert_eq!(
            c.otlp_endpoint(),
            Some("http://tempo.example.com:443/v1/traces")
        );
        assert!(!c.uses_tls());
        let c = TraceConfig::new().with_endpoint("localhost:4318").unwrap();
        assert_eq!(c.exporter(), ExporterKind::Otlp);
        assert_eq!(c.otlp_endpoint(), Some("http://localhost:4318/v1/traces"));
        assert_eq!(
            c.with_exporter(ExporterKind::None).exporter(),
            ExporterKind::None
        );
    }

    #[test]
    fn builders_validate() {
        for bad in [
            "localhost",
            ":4317",
            "http://",
            "ftp://x:1",
            "host:99999",
            "host name:4317",
            "",
        ] {
            let e = TraceConfig::new().with_endpoint(bad).unwrap_err();
            assert_eq!(
                (
                    e.errors()[0].variable.as_str(),
                    e.errors()[0].value.as_str()
                ),
                ("with_endpoint", bad)
            );
        }
        for bad in [1.5, -0.1, f64::NAN, f64::INFINITY] {
            let e = TraceConfig::new().with_sample_rate(bad).unwrap_err();
            assert_eq!(e.errors()[0].variable, "with_sample_rate");
        }
        let c = TraceConfig::new().with_sample_rate(0.0).unwrap();
        assert_eq!(c.sampler(), Sampler::ParentBasedTraceIdRatio(0.0));
    }

    /// Per family: the TRACING_ and OTEL_ variables, getter, code override, and the expected
    /// value with defaults only, OTEL only, TRACING only (and with both), and code over both.
    #[test]
    fn precedence_code_tracing_otel_default() {
        struct Family {
            tracing: &'static str,
            otel: &'static str,
            get: fn(&TraceConfig) -> String,
            code: fn(TraceConfig) -> TraceConfig,
            want: [&'static str; 4],
        }
        let families = [
            Family {
                tracing: "TRACING_ENABLED=true",
                otel: "OTEL_SDK_DISABLED=true",
                get: |c| c.enabled().to_string(),
                code: |c| c.with_enabled(false),
                want: ["true", "false", "true", "false"],
            },
            Family {
                tracing: "TRACING_EXPORTER=none",
                otel: "OTEL_TRACES_EXPORTER=otlp",
                get: |c| c.exporter().to_string(),
                code: |c| c.with_exporter(ExporterKind::Console),
                want: ["console", "otlp", "none", "console"],
            },
            Family {
                tracing: "TRACING_ENDPOINT=localhost:4317",
                otel: "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel:4317",
                get: |c| format!("{:?}", c.otlp_endpoint()),
                code: |c| c.with_endpoint("code:4317").unwrap(),
                want: [
                    "None",
                    r#"Some("http://otel:4317")"#,
                    r#"Some("http://localhost:4317")"#,
                    r#"Some("http://code:4317")"#,
                ],
            },
            Family {
                tracing: "TRACING_PROTOCOL=grpc",
                otel: "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                get: |c| c.protocol().to_string(),
                code: |c| c.with_protocol(Protocol::HttpProtobuf),
                want: ["grpc", "http/protobuf", "grpc", "http/protobuf"],
            },
            Family {
                tracing: "TRACING_HEADERS=k=tracing",
                otel: "OTEL_EXPORTER_OTLP_HEADERS=k=otel",
                get: |c| format!("{:?}", c.headers()),
                code: |c| c.with_header("K", "code"),
                want: [
                    "[]",
                    r#"[("k", "otel")]"#,
                    r#"[("k", "tracing")]"#,
                    r#"[("K", "code")]"#,
                ],
            },
            Family {
                tracing: "TRACING_INSECURE=false",
                otel: "OTEL_EXPORTER_OTLP_INSECURE=true",
                get: |c| c.uses_tls().to_string(),
                code: |c| c.with_insecure(true),
                want: ["true", "false", "true", "false"],
            },
            Family {
                tracing: "TRACING_SERVICE_NAME=tracing",
                otel: "OTEL_SERVICE_NAME=otel",
                get: |c| c.service_name().to_owned(),
                code: |c| c.with_service_name("code"),
                want: ["gorax", "otel", "tracing", "code"],
            },
            Family {
                tracing: "TRACING_SERVICE_NAME=tracing",
                otel: "OTEL_RESOURCE_ATTRIBUTES=service.name=otel",
                get: |c| c.service_name().to_owned(),
                code: |c| c.with_resource_attribute("service.name", "code"),
                want: ["gorax", "otel", "tracing", "code"],
            },
            Family {
                tracing: "TRACING_SERVICE_VERSION=2.0",
                otel: "OTEL_RESOURCE_ATTRIBUTES=service.version=1.0",
                get: |c| format!("{:?}", c.service_version()),
                code: |c| c.with_service_version("3.0"),
                want: ["None", r#"Some("1.0")"#, r#"Some("2.0")"#, r#"Some("3.0")"#],
            },
            Family {
                tracing: "TRACING_ENVIRONMENT=prod",
                otel: "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=dev",
                get: |c| format!("{:?}", c.environment()),
                code: |c| c.with_environment("test"),
                want: [
                    "None",
                    r#"Some("dev")"#,
                    r#"Some("prod")"#,
                    r#"Some("test")"#,
                ],
            },
            Family {
                tracing: "TRACING_RESOURCE_ATTRIBUTES=team=core",
                otel: "OTEL_RESOURCE_ATTRIBUTES=team=infra",
                get: |c| format!("{:?}", c.resource_attributes()),
                code: |c| c.with_resource_attribute("team", "code"),
                want: [
                    "[]",
                    r#"[("team", "infra")]"#,
                    r#"[("team", "core")]"#,
                    r#"[("team", "code")]"#,
                ],
            },
            Family {
                tracing: "TRACING_SAMPLE_RATE=0.1",
                otel: "OTEL_TRACES_SAMPLER=always_off",
                get: |c| c.sampler().to_string(),
                code: |c| c.with_sample_rate(0.5).unwrap(),
                want: [
                    "parentbased_always_on",
                    "always_off",
                    "parentbased_traceidratio(0.1)",
                    "parentbased_traceidratio(0.5)",
                ],
            },
            Family {
                tracing: "TRACING_PROPAGATORS=baggage",
                otel: "OTEL_PROPAGATORS=none",
                get: |c| format!("{:?}", c.propagators()),
                code: |c| {
                    c.with_propagators(Propagators {
                        trace_context: true,
                        baggage: false,
                    })
                },
                want: [
                    "Propagators { trace_context: true, baggage: true }",
                    "Propagators { trace_context: false, baggage: false }",
                    "Propagators { trace_context: false, baggage: true }",
                    "Propagators { trace_context: true, baggage: false }",
                ],
            },
            Family {
                tracing: "TRACING_BATCH_QUEUE_SIZE=1000",
                otel: "OTEL_BSP_MAX_QUEUE_SIZE=3000",
                get: |c| c.batch().max_queue_size.to_string(),
                code: |c| {
                    c.with_batch(BatchSettings {
                        max_queue_size: 7,
                        ..BatchSettings::default()
                    })
                },
                want: ["2048", "3000", "1000", "7"],
            },
            Family {
                tracing: "TRACING_BATCH_DELAY_MS=100",
                otel: "OTEL_BSP_SCHEDULE_DELAY=200",
                get: |c| format!("{:?}", c.batch().scheduled_delay),
                code: |c| {
                    c.with_batch(BatchSettings {
                        scheduled_delay: Duration::from_millis(300),
                        ..BatchSettings::default()
                    })
                },
                want: ["5s", "200ms", "100ms", "300ms"],
            },
            Family {
                tracing: "TRACING_BATCH_SIZE=10",
                otel: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=20",
                get: |c| c.batch().max_export_batch_size.to_string(),
                code: |c| {
                    c.with_batch(BatchSettings {
                        max_export_batch_size: 30,
                        ..BatchSettings::default()
                    })
                },
                want: ["512", "20", "10", "30"],
            },
            Family {
                tracing: "TRACING_EXPORT_TIMEOUT_MS=1000",
                otel: "OTEL_BSP_EXPORT_TIMEOUT=2000",
                get: |c| format!("{:?}", c.batch().export_timeout),
                code: |c| {
                    c.with_batch(BatchSettings {
                        export_timeout: Duration::from_secs(3),
                        ..BatchSettings::default()
                    })
                },
                want: ["10s", "2s", "1s", "3s"],
            },
        ];
        for f in families {
            let (tracing, tracing_value) = f.tracing.split_once('=').unwrap();
            let (otel, otel_value) = f.otel.split_once('=').unwrap();
            // TLS needs an endpoint on port 443 to show.
            let base = if tracing == "TRACING_INSECURE" {
                "TRACING_ENDPOINT=e:443"
            } else {
                "TRACING_UNRELATED=x"
            };
            let with = |env: &[&'static str]| config(&[&[base], env].concat());
            assert_eq!((f.get)(&with(&[])), f.want[0], "{tracing}: default");
            let only_otel = with(&[f.otel]);
            assert_eq!((f.get)(&only_otel), f.want[1], "{tracing}: OTEL only");
            assert!(
                only_otel.warnings().is_empty(),
                "{tracing}: {:?}",
                only_otel.warnings()
            );
            assert_eq!(
                (f.get)(&with(&[f.tracing])),
                f.want[2],
                "{tracing}: TRACING only"
            );
            let both = with(&[f.tracing, f.otel]);
            assert_eq!((f.get)(&both), f.want[2], "{tracing}: TRACING over OTEL");
            assert_eq!(both.warnings().len(), 1, "{tracing}: {:?}", both.warnings());
            let warning = &both.warnings()[0];
            let winner = format!("using {tracing}");
            let mut parts = vec![tracing, otel, &winner];
            if tracing != "TRACING_HEADERS" {
                let last = |v: &'static str| v.rsplit('=').next().unwrap();
                parts.extend([last(tracing_value), last(otel_value)]);
            }
            for part in parts {
                assert!(
                    warning.contains(part),
                    "{tracing}: {part} missing from {warning}"
                );
            }
            assert_eq!(
                (f.get)(&(f.code)(both)),
                f.want[3],
                "{tracing}: code over env"
            );
        }
    }

    #[test]
    fn agreeing_families_do_not_warn() {
        let c = config(&[
            "TRACING_SERVICE_NAME=svc",
            "OTEL_SERVICE_NAME=svc",
            "TRACING_SAMPLE_RATE=0.5",
            "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG=0.5",
            "TRACING_ENABLED=yes",
            "OTEL_SDK_DISABLED=false",
        ]);
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn resource_attributes_merge_per_key() {
        let c = config(&[
            "TRACING_RESOURCE_ATTRIBUTES=team=core,region=eu",
            "OTEL_RESOURCE_ATTRIBUTES=team=infra,host.name=a%20b,service.name=svc",
        ]);
        assert_eq!(
            c.resource_attributes(),
            pairs(&[("team", "core"), ("host.name", "a b"), ("region", "eu")])
        );
        assert_eq!(c.service_name(), "svc");
        assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
        assert!(
            c.warnings()[0].contains(r#"[team]="core""#),
            "{:?}",
            c.warnings()
        );
        let c = c
            .with_resource_attribute("region", "us")
            .with_resource_attribute("deployment.environment.name", "prod");
        assert_eq!(
            c.resource_attributes(),
            pairs(&[("team", "core"), ("host.name", "a b"), ("region", "us")])
        );
        assert_eq!(c.environment(), Some("prod"));
    }

    #[test]
    fn sampler_arg_without_ratio_sampler_warns() {
        let c = config(&[
            "OTEL_TRACES_SAMPLER=always_on",
            "OTEL_TRACES_SAMPLER_ARG=0.5",
        ]);
        assert_eq!(c.sampler(), Sampler::AlwaysOn);
        assert_eq!(c.warnings().len(), 1);
        assert!(
            c.warnings()[0].contains(r#"OTEL_TRACES_SAMPLER_ARG="0.5""#),
            "{:?}",
            c.warnings()
        );
    }

    #[test]
    fn empty_values_are_unset() {
        let c = config(&[
            "TRACING_ENABLED=",
            "TRACING_SAMPLE_RATE=",
            "TRACING_ENDPOINT=  ",
            "TRACING_SERVICE_NAME=",
            "OTEL_SERVICE_NAME=svc",
            "OTEL_SDK_DISABLED=",
            "OTEL_PROPAGATORS=",
            "OTEL_EXPORTER_OTLP_HEADERS=",
            "TRACING_BATCH_SIZE=",
            "OTEL_TRACES_SAMPLER= ",
        ]);
        assert!(c.enabled());
        assert_eq!(c.sampler(), Sampler::ParentBasedAlwaysOn);
        assert_eq!(
            (c.exporter(), c.otlp_endpoint()),
            (ExporterKind::Console, None)
        );
        assert_eq!(c.service_name(), "svc");
        assert_eq!(c.propagators(), Propagators::default());
        assert!(c.headers().is_empty());
        assert_eq!(c.batch(), &BatchSettings::default());
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn displays() {
        let cases = [
            (Sampler::AlwaysOn.to_string(), "always_on"),
            (Sampler::AlwaysOff.to_string(), "always_off"),
            (Sampler::TraceIdRatio(0.5).to_string(), "traceidratio(0.5)"),
            (
                Sampler::ParentBasedAlwaysOn.to_string(),
                "parentbased_always_on",
            ),
            (
                Sampler::ParentBasedAlwaysOff.to_string(),
                "parentbased_always_off",
            ),
            (
                Sampler::ParentBasedTraceIdRatio(0.25).to_string(),
                "parentbased_traceidratio(0.25)",
            ),
            (ExporterKind::Otlp.to_string(), "otlp"),
            (ExporterKind::Console.to_string(), "console"),
            (ExporterKind::None.to_string(), "none"),
            (Protocol::Grpc.to_string(), "grpc"),
            (Protocol::HttpProtobuf.to_string(), "http/protobuf"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[cfg(unix)]
    #[test]
    fn from_env_reports_non_utf8_values_of_known_variables_only() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'a', 0xff]);
        let e = TraceConfig::from_os_vars([
            (OsString::from("TRACING_ENABLED"), bad()),
            (OsString::from("UNRELATED"), bad()),
            (bad(), OsString::from("x")),
            (OsString::from("TRACING_SAMPLE_RATE"), OsString::from("2")),
        ])
        .unwrap_err();
        let names: Vec<&str> = e.errors().iter().map(|b| b.variable.as_str()).collect();
        assert_eq!(names, ["TRACING_ENABLED", "TRACING_SAMPLE_RATE"]);
        let c = TraceConfig::from_os_vars([(
            OsString::from("TRACING_SERVICE_NAME"),
            OsString::from("svc"),
        )])
        .unwrap();
        assert_eq!(c.service_name(), "svc");
    }

    #[test]
    fn debug_hides_header_values() {
        let shown = format!(
            "{:?}",
            TraceConfig::new().with_header("authorization", "Bearer hunter2")
        );
        assert!(
            shown.contains("authorization=***") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
