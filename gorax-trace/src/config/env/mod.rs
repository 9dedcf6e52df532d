//! Reading the environment: the variable table, precedence `TRACING_*` > `OTEL_*`, and the
//! parsers of each value.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use super::*;
use crate::conventions::SemconvOptIn;

mod batch;
mod export;
mod logs;
mod metrics;
mod resource;
mod sampling;

use export::*;
use logs::*;
use metrics::*;
use resource::*;
use sampling::*;

pub use batch::MAX_BATCH_DELAY;
pub use batch::{MAX_EXPORT_BATCH_SIZE, MAX_EXPORT_CONCURRENCY, MAX_QUEUE_BYTES, MAX_QUEUE_SIZE};
pub(super) use export::{CLIENT_PAIR, header_problem};
pub use logs::{MAX_LOG_ATTRIBUTE_COUNT, MAX_LOG_EXPORT_BATCH_SIZE, MAX_LOG_QUEUE_SIZE};
pub use metrics::MAX_METRIC_EXPORT_INTERVAL;

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
const TRACING_SHUTDOWN_TIMEOUT_MS: &str = "TRACING_SHUTDOWN_TIMEOUT_MS";
const OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
const OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const TRACING_BATCH_MAX_BYTES: &str = "TRACING_BATCH_MAX_BYTES";
const TRACING_EXPORT_CONCURRENCY: &str = "TRACING_EXPORT_CONCURRENCY";
const TRACING_COMPRESSION: &str = "TRACING_COMPRESSION";
const OTLP_TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
const OTLP_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const TRACING_CERTIFICATE: &str = "TRACING_CERTIFICATE";
const OTLP_TRACES_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE";
const OTLP_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
const TRACING_CLIENT_CERTIFICATE: &str = "TRACING_CLIENT_CERTIFICATE";
const OTLP_TRACES_CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE";
const OTLP_CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
const TRACING_CLIENT_KEY: &str = "TRACING_CLIENT_KEY";
const OTLP_TRACES_CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY";
const OTLP_CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
const TRACING_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "TRACING_ATTRIBUTE_VALUE_LENGTH_LIMIT";
const OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT";
const OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT";

// The trust boundary (issue 11): `all`, `none` or a comma list of networks.
const TRACING_TRUSTED_PEERS: &str = "TRACING_TRUSTED_PEERS";

// The trace viewer (issue 27).
const TRACING_VIEWER_ADDR: &str = "TRACING_VIEWER_ADDR";
const TRACING_VIEWER_MAX_TRACES: &str = "TRACING_VIEWER_MAX_TRACES";
const TRACING_VIEWER_MAX_BYTES: &str = "TRACING_VIEWER_MAX_BYTES";

/// Every variable read; [`TraceConfig::from_env`] reports non-UTF-8 values of these only.
const KNOWN_VARS: &[&str] = &[
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
    TRACING_SHUTDOWN_TIMEOUT_MS,
    OTLP_TRACES_TIMEOUT,
    OTLP_TIMEOUT,
    TRACING_BATCH_MAX_BYTES,
    TRACING_EXPORT_CONCURRENCY,
    TRACING_COMPRESSION,
    OTLP_TRACES_COMPRESSION,
    OTLP_COMPRESSION,
    TRACING_CERTIFICATE,
    OTLP_TRACES_CERTIFICATE,
    OTLP_CERTIFICATE,
    TRACING_CLIENT_CERTIFICATE,
    OTLP_TRACES_CLIENT_CERTIFICATE,
    OTLP_CLIENT_CERTIFICATE,
    TRACING_CLIENT_KEY,
    OTLP_TRACES_CLIENT_KEY,
    OTLP_CLIENT_KEY,
    TRACING_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    TRACING_TRUSTED_PEERS,
    TRACING_VIEWER_ADDR,
    TRACING_VIEWER_MAX_TRACES,
    TRACING_VIEWER_MAX_BYTES,
];
/// Variables whose values are secrets (API keys): shown as `k=***`.
const SECRET_VARS: [&str; 5] = [
    TRACING_HEADERS,
    OTLP_TRACES_HEADERS,
    OTLP_HEADERS,
    OTLP_METRICS_HEADERS,
    OTLP_LOGS_HEADERS,
];

/// `service.name` when none is configured: `unknown_service:` and the executable's name, as the
/// resource semantic conventions require (`unknown_service` when the name is not available).
pub(super) fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned));
    match exe {
        Some(name) => format!("unknown_service:{name}"),
        None => "unknown_service".to_owned(),
    }
}
pub(super) const ENVIRONMENT_KEYS: [&str; 2] = [
    semconv::DEPLOYMENT_ENVIRONMENT_NAME,
    semconv::legacy::DEPLOYMENT_ENVIRONMENT,
];

impl TraceConfig {
    /// Reads the process environment. A variable this module reads whose value is not UTF-8 is
    /// an error naming it; other variables are ignored.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_os_vars(std::env::vars_os(), Self::default())
    }

    /// Reads the process environment over `defaults`: every setting that no `TRACING_*` or
    /// `OTEL_*` variable sets keeps the value `defaults` gives it in code. The precedence is then
    /// environment > code defaults > built-in defaults, so a deployment can change what the code
    /// chose (the demo's service name, its metrics); `with_*` calls made on the result still win
    /// over everything.
    ///
    /// ```
    /// use gorax_trace::config::TraceConfig;
    ///
    /// let defaults = TraceConfig::new().with_service_name("billing").with_metrics(true);
    /// let config = TraceConfig::from_vars_with_defaults([("TRACING_SERVICE_NAME", "billing-eu")], defaults.clone())?;
    /// assert_eq!(config.service_name(), "billing-eu"); // the environment wins
    /// assert!(config.metrics_enabled()); // the code default stays
    /// let config = TraceConfig::from_vars_with_defaults([("OTEL_SERVICE_NAME", "x")], defaults)?;
    /// assert_eq!(config.service_name(), "x");
    /// # Ok::<(), gorax_trace::config::ConfigError>(())
    /// ```
    pub fn from_env_with_defaults(defaults: TraceConfig) -> Result<Self, ConfigError> {
        Self::from_os_vars(std::env::vars_os(), defaults)
    }

    pub(super) fn from_os_vars(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
        defaults: TraceConfig,
    ) -> Result<Self, ConfigError> {
        let mut lookup = Vars::default();
        for (name, value) in vars {
            let Some(name) = name.to_str().and_then(|n| {
                KNOWN_VARS
                    .iter()
                    .chain(&KEEP_VARS)
                    .chain(&METRICS_VARS)
                    .chain(&LOGS_VARS)
                    .chain(&[TRACING_LOG_FORMAT])
                    .find(|k| **k == n)
            }) else {
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
        Self::resolve(lookup, defaults)
    }

    /// Builds the configuration from `(name, value)` pairs, as if they were the environment.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::from_vars_with_defaults(vars, Self::default())
    }

    /// [`from_vars`](Self::from_vars) over `defaults`, as
    /// [`from_env_with_defaults`](Self::from_env_with_defaults) reads the environment.
    pub fn from_vars_with_defaults<I, K, V>(
        vars: I,
        defaults: TraceConfig,
    ) -> Result<Self, ConfigError>
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
        Self::resolve(lookup, defaults)
    }

    /// Every setting from `v` where a variable sets it, else from `defaults`.
    fn resolve(mut v: Vars, defaults: TraceConfig) -> Result<Self, ConfigError> {
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
            let tracing = v.parse(TRACING_ENDPOINT, |s| endpoint::parse(s, Source::Tracing));
            let traces = v.parse(OTLP_TRACES_ENDPOINT, |s| {
                endpoint::parse(s, Source::OtlpTraces)
            });
            let base = v.parse(OTLP_ENDPOINT, |s| endpoint::parse(s, Source::OtlpBase));
            v.pick(tracing, traces.or(base))
        };
        let protocol = v.setting(
            TRACING_PROTOCOL,
            parse_protocol,
            &[OTLP_TRACES_PROTOCOL, OTLP_PROTOCOL],
            parse_protocol,
        );
        let headers = {
            let tracing = v.parse(TRACING_HEADERS, |s| parse_headers(s, false));
            let traces = v.parse(OTLP_TRACES_HEADERS, |s| parse_headers(s, true));
            let all = v.parse(OTLP_HEADERS, |s| parse_headers(s, true));
            v.pick(tracing, traces.or(all))
        };
        let insecure = v.setting(
            TRACING_INSECURE,
            parse_bool,
            &[OTLP_TRACES_INSECURE, OTLP_INSECURE],
            parse_otel_bool,
        );
        let path = |s: &str| Ok(std::path::PathBuf::from(s));
        let certificate = v.setting(
            TRACING_CERTIFICATE,
            path,
            &[OTLP_TRACES_CERTIFICATE, OTLP_CERTIFICATE],
            path,
        );
        let client_certificate = v.setting(
            TRACING_CLIENT_CERTIFICATE,
            path,
            &[OTLP_TRACES_CLIENT_CERTIFICATE, OTLP_CLIENT_CERTIFICATE],
            path,
        );
        let client_key = v.setting(
            TRACING_CLIENT_KEY,
            path,
            &[OTLP_TRACES_CLIENT_KEY, OTLP_CLIENT_KEY],
            path,
        );
        let value_limit = v.setting(
            TRACING_ATTRIBUTE_VALUE_LENGTH_LIMIT,
            parse_size,
            &[
                OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT,
                OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT,
            ],
            parse_size,
        );
        let attributes = v.resource_attributes();
        let service_name = v.named_attribute(
            TRACING_SERVICE_NAME,
            Some(OTEL_SERVICE_NAME),
            &attributes,
            &[semconv::SERVICE_NAME],
        );
        let service_version = v.named_attribute(
            TRACING_SERVICE_VERSION,
            None,
            &attributes,
            &[semconv::SERVICE_VERSION],
        );
        let environment =
            v.named_attribute(TRACING_ENVIRONMENT, None, &attributes, &ENVIRONMENT_KEYS);
        let propagators = v.setting(
            TRACING_PROPAGATORS,
            parse_propagators,
            &[OTEL_PROPAGATORS],
            parse_propagators,
        );
        let opt_in = v
            .parse(OTEL_SEMCONV_STABILITY_OPT_IN, |s| {
                Ok(SemconvOptIn::parse(s))
            })
            .map(|s| s.value)
            .unwrap_or_default();
        let batch = v.batch(&defaults.batch);
        let export_concurrency = v.parse(TRACING_EXPORT_CONCURRENCY, |s| {
            parse_bounded(s, MAX_EXPORT_CONCURRENCY)
        });
        let compression = v.setting(
            TRACING_COMPRESSION,
            parse_compression,
            &[OTLP_TRACES_COMPRESSION, OTLP_COMPRESSION],
            parse_compression,
        );
        let client_certificate = client_certificate.map(|s| s.value);
        let client_key = client_key.map(|s| s.value);
        if client_certificate.is_some() != client_key.is_some() {
            v.errors.push(InvalidVar {
                variable: if client_key.is_some() {
                    TRACING_CLIENT_CERTIFICATE
                } else {
                    TRACING_CLIENT_KEY
                }
                .to_owned(),
                value: String::new(),
                reason: CLIENT_PAIR.to_owned(),
            });
        }
        if let (Some(e), Some(i)) = (&endpoint, &insecure)
            && e.value.https
            && i.value
        {
            v.errors.push(InvalidVar {
                variable: i.var.to_owned(),
                value: "true".to_owned(),
                reason: format!(
                    "{} asks for TLS with https://; write http:// for plain text, or drop the insecure setting",
                    e.desc
                ),
            });
        }
        let trusted_peers = v.parse(TRACING_TRUSTED_PEERS, crate::trust::TrustedPeers::parse);
        let shutdown_timeout = v.parse(TRACING_SHUTDOWN_TIMEOUT_MS, parse_timeout);
        let viewer_addr = v.parse(TRACING_VIEWER_ADDR, |s| {
            s.parse::<std::net::SocketAddr>().map_err(|_| {
                "expected host:port with an IP address, e.g. 127.0.0.1:16786".to_owned()
            })
        });
        let viewer_traces = v.parse(TRACING_VIEWER_MAX_TRACES, |s| {
            parse_in_range(s, 1, 100_000, "traces")
        });
        let viewer_bytes = v.parse(TRACING_VIEWER_MAX_BYTES, |s| {
            parse_in_range(s, 1 << 16, 1 << 30, "bytes")
        });
        let log_format = v.parse(TRACING_LOG_FORMAT, parse_log_format);
        let keep = v.keep(&defaults.keep);
        let metrics = v.metrics().or(&defaults.metrics);
        let logs = v.logs().or(&defaults.logs);
        if !v.errors.is_empty() {
            return Err(ConfigError { errors: v.errors });
        }
        let mut resource_attributes = defaults.resource_attributes;
        for (k, value, _) in attributes
            .into_iter()
            .filter(|(k, _, _)| !is_reserved_key(k))
        {
            upsert(&mut resource_attributes, k, value);
        }
        let mut warnings = defaults.warnings;
        warnings.extend(v.warnings);
        let config = Self {
            enabled: enabled.map_or(defaults.enabled, |s| s.value),
            exporter: exporter.map(|s| s.value).or(defaults.exporter),
            endpoint: endpoint.map(|s| s.value).or(defaults.endpoint),
            protocol: protocol.map(|s| s.value).or(defaults.protocol),
            headers: headers.map_or(defaults.headers, |s| s.value),
            insecure: insecure.map_or(defaults.insecure, |s| s.value),
            service_name: service_name.unwrap_or(defaults.service_name),
            service_version: service_version.or(defaults.service_version),
            environment: environment.or(defaults.environment),
            resource_attributes,
            sampler: sampler.map_or(defaults.sampler, |s| s.value),
            sampling_rules: defaults.sampling_rules,
            propagators: propagators.map_or(defaults.propagators, |s| s.value),
            http_semconv: opt_in.http.unwrap_or(defaults.http_semconv),
            rpc_semconv: opt_in.rpc.unwrap_or(defaults.rpc_semconv),
            messaging_semconv: opt_in.messaging.unwrap_or(defaults.messaging_semconv),
            batch,
            export_concurrency: export_concurrency.map_or(defaults.export_concurrency, |s| s.value),
            compression: compression.map_or(defaults.compression, |s| s.value),
            trusted_peers: trusted_peers.map_or(defaults.trusted_peers, |s| s.value),
            keep,
            warnings,
            invalid: defaults.invalid,
            certificate: certificate.map(|s| s.value).or(defaults.certificate),
            client_identity: client_certificate
                .zip(client_key)
                .or(defaults.client_identity),
            attribute_value_length_limit: value_limit
                .map_or(defaults.attribute_value_length_limit, |s| Some(s.value)),
            metrics,
            shutdown_timeout: shutdown_timeout
                .map(|s| s.value)
                .or(defaults.shutdown_timeout),
            log_format: log_format.map(|s| s.value).or(defaults.log_format),
            logs,
            viewer: {
                let d = &defaults.viewer;
                super::ViewerSettings {
                    addr: viewer_addr.map(|s| s.value).or(d.addr),
                    max_traces: viewer_traces.map_or(d.max_traces, |s| s.value),
                    max_bytes: viewer_bytes.map_or(d.max_bytes, |s| s.value),
                }
            },
        };
        Ok(config)
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

pub(super) fn upsert(list: &mut Vec<(String, String)>, key: String, value: String) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key, value)),
    }
}

/// Upper bound of every timeout: the export timeouts of each signal and the shutdown budget
/// (`TRACING_EXPORT_TIMEOUT_MS`, `OTEL_EXPORTER_OTLP_*TIMEOUT`, `OTEL_BSP_EXPORT_TIMEOUT`,
/// `OTEL_METRIC_EXPORT_TIMEOUT`, `TRACING_SHUTDOWN_TIMEOUT_MS`): 2 minutes, longer than any
/// orchestrator's grace period (Kubernetes: 30 s by default).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);
pub(super) const RATIO_EXPECTED: &str = "expected a number between 0.0 and 1.0";

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

fn parse_size(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n > 0 && !s.starts_with('+'))
        .ok_or_else(|| "expected a positive integer".to_owned())
}

/// A positive integer up to `max` (the documented upper bound of a size).
fn parse_bounded(s: &str, max: usize) -> Result<usize, String> {
    let n = parse_size(s)?;
    if n > max {
        return Err(format!("expected a positive integer up to {max}"));
    }
    Ok(n)
}

/// Milliseconds, 1 to [`MAX_TIMEOUT`]: a zero timeout would fail every export.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_positive_millis(s, MAX_TIMEOUT)
}

/// Milliseconds, 1 to `max`.
fn parse_positive_millis(s: &str, max: Duration) -> Result<Duration, String> {
    match parse_millis(s)? {
        d if d.is_zero() || d > max => Err(format!(
            "expected a positive number of milliseconds up to {}",
            max.as_millis()
        )),
        d => Ok(d),
    }
}

/// Milliseconds, 0 to [`MAX_BATCH_DELAY`].
fn parse_delay(s: &str) -> Result<Duration, String> {
    match parse_millis(s)? {
        d if d > MAX_BATCH_DELAY => Err(format!(
            "expected a whole number of milliseconds up to {}",
            MAX_BATCH_DELAY.as_millis()
        )),
        d => Ok(d),
    }
}

fn parse_millis(s: &str) -> Result<Duration, String> {
    match s.parse::<u64>() {
        Ok(ms) if !s.starts_with('+') => Ok(Duration::from_millis(ms)),
        _ => Err("expected a whole number of milliseconds".to_owned()),
    }
}

/// A whole number in `min..=max`.
fn parse_in_range(s: &str, min: usize, max: usize, unit: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) && !s.starts_with('+') => Ok(n),
        _ => Err(format!(
            "expected a whole number of {unit} from {min} to {max}"
        )),
    }
}

// Keeping failures at low sampling rates (issue 15): `TRACING_KEEP_ERRORS`,
// `TRACING_KEEP_SLOWER_THAN_MS`. Self-contained: its own variable list and reader.
const TRACING_KEEP_ERRORS: &str = "TRACING_KEEP_ERRORS";
const TRACING_KEEP_SLOWER_THAN_MS: &str = "TRACING_KEEP_SLOWER_THAN_MS";
const KEEP_VARS: [&str; 2] = [TRACING_KEEP_ERRORS, TRACING_KEEP_SLOWER_THAN_MS];

impl Vars {
    fn keep(
        &mut self,
        defaults: &crate::export::keep::KeepSettings,
    ) -> crate::export::keep::KeepSettings {
        let errors = self.parse(TRACING_KEEP_ERRORS, parse_bool);
        let slower = self.parse(TRACING_KEEP_SLOWER_THAN_MS, parse_millis);
        defaults
            .clone()
            .with_errors(errors.map_or(defaults.errors, |s| s.value))
            .with_slower_than(slower.map(|s| s.value).or(defaults.slower_than))
    }
}

/// The log format variable, read by [`LogFormat::from_env`] (the subscriber is installed before
/// the configuration is read, to log what `init` says) and by [`TraceConfig`] (where the
/// console exporter writes: stdout when logs are JSON).
pub(crate) const TRACING_LOG_FORMAT: &str = "TRACING_LOG_FORMAT";

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".to_owned()),
    }
}

impl LogFormat {
    /// `TRACING_LOG_FORMAT` from the process environment: `text` (default when unset or empty)
    /// or `json`, any case. Another value, or one that is not UTF-8, is an error naming the
    /// variable and the value.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var_os(TRACING_LOG_FORMAT) {
            None => Ok(Self::default()),
            Some(value) => match value.into_string() {
                Ok(value) => Self::from_value(Some(&value)),
                Err(value) => Err(ConfigError {
                    errors: vec![InvalidVar {
                        variable: TRACING_LOG_FORMAT.to_owned(),
                        value: value.to_string_lossy().into_owned(),
                        reason: "the value is not valid UTF-8".to_owned(),
                    }],
                }),
            },
        }
    }

    /// Parses a `TRACING_LOG_FORMAT` value as [`from_env`](Self::from_env) does (`None`: unset).
    pub fn from_value(value: Option<&str>) -> Result<Self, ConfigError> {
        let mut vars = Vars::default();
        if let Some(value) = value {
            vars.values
                .insert(TRACING_LOG_FORMAT.to_owned(), value.to_owned());
        }
        let format = vars.parse(TRACING_LOG_FORMAT, parse_log_format);
        if !vars.errors.is_empty() {
            return Err(ConfigError {
                errors: vars.errors,
            });
        }
        Ok(format.map_or(LogFormat::default(), |s| s.value))
    }
}
