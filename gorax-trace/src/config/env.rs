//! Reading the environment: the variable table, precedence `TRACING_*` > `OTEL_*`, and the
//! parsers of each value.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use super::*;
use crate::conventions::SemconvOptIn;

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

    fn batch(&mut self, defaults: &BatchSettings) -> BatchSettings {
        let parse_queue = |s: &str| parse_bounded(s, MAX_QUEUE_SIZE);
        let parse_batch = |s: &str| parse_bounded(s, MAX_EXPORT_BATCH_SIZE);
        let queue = self.setting(
            TRACING_BATCH_QUEUE_SIZE,
            parse_queue,
            &[OTEL_BSP_MAX_QUEUE_SIZE],
            parse_queue,
        );
        let delay = self.setting(
            TRACING_BATCH_DELAY_MS,
            parse_delay,
            &[OTEL_BSP_SCHEDULE_DELAY],
            parse_delay,
        );
        let size = self.setting(
            TRACING_BATCH_SIZE,
            parse_batch,
            &[OTEL_BSP_MAX_EXPORT_BATCH_SIZE],
            parse_batch,
        );
        // The exporter's timeout (OTLP) before the processor's (BSP): one setting here.
        let timeout = self.setting(
            TRACING_EXPORT_TIMEOUT_MS,
            parse_timeout,
            &[OTLP_TRACES_TIMEOUT, OTLP_TIMEOUT, OTEL_BSP_EXPORT_TIMEOUT],
            parse_timeout,
        );
        let bytes = self.parse(TRACING_BATCH_MAX_BYTES, |s| {
            parse_bounded(s, MAX_QUEUE_BYTES)
        });
        let batch = BatchSettings {
            max_queue_size: queue.as_ref().map_or(defaults.max_queue_size, |s| s.value),
            scheduled_delay: delay.map_or(defaults.scheduled_delay, |s| s.value),
            max_export_batch_size: size
                .as_ref()
                .map_or(defaults.max_export_batch_size, |s| s.value),
            export_timeout: timeout.map_or(defaults.export_timeout, |s| s.value),
            max_queue_bytes: bytes.map_or(defaults.max_queue_bytes, |s| s.value),
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
    key == semconv::SERVICE_NAME
        || key == semconv::SERVICE_VERSION
        || ENVIRONMENT_KEYS.contains(&key)
}

pub(super) fn upsert(list: &mut Vec<(String, String)>, key: String, value: String) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key, value)),
    }
}

pub(super) const CLIENT_PAIR: &str =
    "a client certificate and its key go together: set both or neither";
/// Upper bound of the span queue (`TRACING_BATCH_QUEUE_SIZE`, `OTEL_BSP_MAX_QUEUE_SIZE`).
pub const MAX_QUEUE_SIZE: usize = 65_536;
/// Upper bound of the export batch (`TRACING_BATCH_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
pub const MAX_EXPORT_BATCH_SIZE: usize = 8_192;
/// Upper bound of the byte budget of the queue (`TRACING_BATCH_MAX_BYTES`): 1 GiB.
pub const MAX_QUEUE_BYTES: usize = 1 << 30;
/// Upper bound of the exports in flight at once (`TRACING_EXPORT_CONCURRENCY`).
pub const MAX_EXPORT_CONCURRENCY: usize = 16;
/// Upper bound of every timeout: the export timeouts of each signal and the shutdown budget
/// (`TRACING_EXPORT_TIMEOUT_MS`, `OTEL_EXPORTER_OTLP_*TIMEOUT`, `OTEL_BSP_EXPORT_TIMEOUT`,
/// `OTEL_METRIC_EXPORT_TIMEOUT`, `TRACING_SHUTDOWN_TIMEOUT_MS`): 2 minutes, longer than any
/// orchestrator's grace period (Kubernetes: 30 s by default).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// Upper bound of the batch delay (`TRACING_BATCH_DELAY_MS`, `OTEL_BSP_SCHEDULE_DELAY`): 10
/// minutes.
pub const MAX_BATCH_DELAY: Duration = Duration::from_secs(600);
/// Upper bound of the metrics push interval (`OTEL_METRIC_EXPORT_INTERVAL`): 1 hour.
pub const MAX_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(3600);

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

/// A comma-separated list (the SDK specification's `OTEL_TRACES_EXPORTER`): `otlp`, `console`,
/// `viewer`, each once; or `none` alone.
fn parse_exporter(s: &str) -> Result<Vec<ExporterKind>, String> {
    let mut list = Vec::new();
    for item in s.split(',') {
        let kind = match item.trim().to_ascii_lowercase().as_str() {
            "otlp" => ExporterKind::Otlp,
            "console" => ExporterKind::Console,
            "viewer" => ExporterKind::Viewer,
            "none" => ExporterKind::None,
            "" => return Err("empty item in the exporter list".to_owned()),
            _ => {
                return Err(
                    "unsupported exporter; expected a list of otlp, console, viewer, or none"
                        .to_owned(),
                );
            }
        };
        if !list.contains(&kind) {
            list.push(kind);
        }
    }
    if list.len() > 1 && list.contains(&ExporterKind::None) {
        return Err("none cannot be combined with other exporters".to_owned());
    }
    Ok(list)
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

/// `gzip` or `none`, any case (the values of the OpenTelemetry specification).
fn parse_compression(s: &str) -> Result<Compression, String> {
    match s.to_ascii_lowercase().as_str() {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        _ => Err("unsupported compression; expected gzip or none".to_owned()),
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
    use crate::propagation::Formats;
    const EXPECTED: &str = "expected a comma-separated list of tracecontext, baggage, b3, \
                            b3multi, jaeger, xray or none";
    let mut found = Propagators::NONE;
    let (mut none, mut any) = (false, false);
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        any = true;
        let other = match name.to_ascii_lowercase().as_str() {
            "tracecontext" => {
                found.trace_context = true;
                continue;
            }
            "baggage" => {
                found.baggage = true;
                continue;
            }
            "none" => {
                none = true;
                continue;
            }
            "b3" => Formats::B3,
            "b3multi" => Formats::B3_MULTI,
            "jaeger" => Formats::JAEGER,
            "xray" => Formats::XRAY,
            "ottrace" => return Err(format!("unsupported propagator {name:?}; {EXPECTED}")),
            _ => return Err(format!("unknown propagator {name:?}; {EXPECTED}")),
        };
        if let Some(feature) = other.missing_feature() {
            return Err(format!(
                "propagator {name:?} needs the gorax-trace cargo feature {feature:?}"
            ));
        }
        found.other = found.other | other;
    }
    if !any {
        return Err(EXPECTED.to_owned());
    }
    if none && found != Propagators::NONE {
        return Err("none cannot be combined with other propagators".to_owned());
    }
    Ok(found)
}

/// `k=v,k2=v2` (W3C-baggage-like): members and both sides trimmed, empty members skipped, the
/// last of a repeated key wins. Reasons never echo a value.
fn parse_kv_list(s: &str, decode: bool) -> Result<Vec<(String, String)>, String> {
    let (list, bad) = kv_members(s, decode);
    if bad.is_empty() {
        Ok(list)
    } else {
        Err(bad.join("; "))
    }
}

/// The members of a `k=v` list that parse, and why each other one does not.
fn kv_members(s: &str, decode: bool) -> (Vec<(String, String)>, Vec<String>) {
    let mut list = Vec::new();
    let mut bad = Vec::new();
    for member in s.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some((key, value)) = member.split_once('=') else {
            bad.push(format!("member {member:?} is not key=value"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            bad.push("a member has an empty key".to_owned());
            continue;
        }
        let value = match decode {
            true => match percent_decode(value) {
                Some(v) => v,
                None => {
                    bad.push(format!("the value of {key:?} has invalid percent-encoding"));
                    continue;
                }
            },
            false => value.to_owned(),
        };
        upsert(&mut list, key.to_owned(), value);
    }
    (list, bad)
}

/// [`parse_kv_list`] whose keys must be HTTP header names and values header values (checked
/// here for both protocols: gRPC metadata is HTTP/2 headers). Every bad member is named;
/// reasons never echo a value.
fn parse_headers(s: &str, decode: bool) -> Result<Vec<(String, String)>, String> {
    let (list, mut bad) = kv_members(s, decode);
    bad.extend(list.iter().filter_map(|(k, v)| header_problem(k, v)));
    if bad.is_empty() {
        Ok(list)
    } else {
        Err(bad.join("; "))
    }
}

/// Why `name: value` cannot be sent as an export header, if it cannot.
pub(super) fn header_problem(name: &str, value: &str) -> Option<String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        Some(format!(
            "{name:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        ))
    } else if http::HeaderValue::from_str(value).is_err() {
        Some(format!(
            "the value of {name:?} is not a valid header value (no control characters such as line breaks)"
        ))
    } else {
        None
    }
}

/// Percent-decoding of `OTEL_*` list values (W3C Baggage octets): a `%` must start a valid
/// escape and the result must be UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let escapes_ok = b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    escapes_ok
        .then(|| percent_encoding::percent_decode_str(s).decode_utf8().ok())
        .flatten()
        .map(std::borrow::Cow::into_owned)
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

// Metrics (issue 13). Self-contained: its own variable list and reader.
const TRACING_METRICS_ENABLED: &str = "TRACING_METRICS_ENABLED";
const OTEL_METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
const OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
const OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
const OTEL_METRIC_EXPORT_TIMEOUT: &str = "OTEL_METRIC_EXPORT_TIMEOUT";
const OTLP_METRICS_HEADERS: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";
const OTLP_METRICS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
const OTLP_METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
const METRICS_VARS: [&str; 9] = [
    OTLP_METRICS_TIMEOUT,
    OTLP_METRICS_HEADERS,
    OTLP_METRICS_COMPRESSION,
    TRACING_METRICS_ENABLED,
    OTEL_METRICS_EXPORTER,
    OTLP_METRICS_ENDPOINT,
    OTLP_METRICS_PROTOCOL,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_METRIC_EXPORT_TIMEOUT,
];

impl Vars {
    fn metrics(&mut self) -> super::MetricsConfig {
        let enabled = self.parse(TRACING_METRICS_ENABLED, parse_bool);
        let exporters = self.parse(OTEL_METRICS_EXPORTER, parse_metrics_exporters);
        let endpoint = self.parse(OTLP_METRICS_ENDPOINT, |s| {
            endpoint::parse(s, Source::OtlpMetrics)
        });
        // Already validated (and reported) with the traces' endpoint.
        let base = self
            .raw(OTLP_ENDPOINT)
            .and_then(|s| endpoint::parse(s, Source::OtlpBase).ok());
        let protocol = self.parse(OTLP_METRICS_PROTOCOL, parse_protocol);
        let headers = self.parse(OTLP_METRICS_HEADERS, |s| parse_headers(s, true));
        let compression = self.parse(OTLP_METRICS_COMPRESSION, parse_compression);
        let interval = self.parse(OTEL_METRIC_EXPORT_INTERVAL, |s| {
            parse_positive_millis(s, MAX_METRIC_EXPORT_INTERVAL)
        });
        let timeout = self.parse(OTEL_METRIC_EXPORT_TIMEOUT, parse_timeout);
        // The exporter's own timeout; `OTEL_EXPORTER_OTLP_TIMEOUT` was read with the traces'.
        let exporter_timeout = self
            .parse(OTLP_METRICS_TIMEOUT, parse_timeout)
            .map(|s| s.value)
            .or_else(|| self.raw(OTLP_TIMEOUT).and_then(|s| parse_timeout(s).ok()));
        super::MetricsConfig {
            enabled: enabled.map(|s| s.value),
            exporters: exporters.map(|s| s.value),
            endpoint: endpoint.map(|s| s.value),
            base,
            protocol: protocol.map(|s| s.value),
            headers: headers.map(|s| s.value),
            compression: compression.map(|s| s.value),
            interval: interval.map(|s| s.value),
            timeout: timeout.map(|s| s.value),
            exporter_timeout,
        }
    }
}

/// `OTEL_METRICS_EXPORTER`: a comma-separated list of `otlp`, `prometheus` and `none` (`none`
/// alone: no exporter).
fn parse_metrics_exporters(s: &str) -> Result<crate::metrics::MetricsExporters, String> {
    let mut exporters = crate::metrics::MetricsExporters {
        otlp: false,
        prometheus: false,
    };
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name.to_ascii_lowercase().as_str() {
            "otlp" => exporters.otlp = true,
            "prometheus" => exporters.prometheus = true,
            "none" => {}
            "console" => {
                return Err(
                    "console is not supported for metrics; expected otlp, prometheus or none"
                        .to_owned(),
                );
            }
            other => {
                return Err(format!(
                    "unknown exporter {other:?}; expected a comma-separated list of otlp, prometheus, none"
                ));
            }
        }
    }
    Ok(exporters)
}

// OTLP logs (issue 24). Self-contained: its own variable list and reader.
const TRACING_LOGS_ENABLED: &str = "TRACING_LOGS_ENABLED";
const OTEL_LOGS_EXPORTER: &str = "OTEL_LOGS_EXPORTER";
const OTLP_LOGS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT";
const OTLP_LOGS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL";
const OTLP_LOGS_HEADERS: &str = "OTEL_EXPORTER_OTLP_LOGS_HEADERS";
const OTLP_LOGS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION";
const OTLP_LOGS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT";
const OTEL_BLRP_SCHEDULE_DELAY: &str = "OTEL_BLRP_SCHEDULE_DELAY";
const OTEL_BLRP_EXPORT_TIMEOUT: &str = "OTEL_BLRP_EXPORT_TIMEOUT";
const OTEL_BLRP_MAX_QUEUE_SIZE: &str = "OTEL_BLRP_MAX_QUEUE_SIZE";
const OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE";
const OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT";
const OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str =
    "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT";
const OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN: &str = "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN";
const LOGS_VARS: [&str; 14] = [
    TRACING_LOGS_ENABLED,
    OTEL_LOGS_EXPORTER,
    OTLP_LOGS_ENDPOINT,
    OTLP_LOGS_PROTOCOL,
    OTLP_LOGS_HEADERS,
    OTLP_LOGS_COMPRESSION,
    OTLP_LOGS_TIMEOUT,
    OTEL_BLRP_SCHEDULE_DELAY,
    OTEL_BLRP_EXPORT_TIMEOUT,
    OTEL_BLRP_MAX_QUEUE_SIZE,
    OTEL_BLRP_MAX_EXPORT_BATCH_SIZE,
    OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT,
    OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN,
];

/// Upper bound of the log record queue (`OTEL_BLRP_MAX_QUEUE_SIZE`).
pub const MAX_LOG_QUEUE_SIZE: usize = 65_536;
/// Upper bound of a log export batch (`OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`).
pub const MAX_LOG_EXPORT_BATCH_SIZE: usize = 8_192;
/// Upper bound of the attributes of one log record (`OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`).
pub const MAX_LOG_ATTRIBUTE_COUNT: usize = 1_024;

impl Vars {
    fn logs(&mut self) -> super::LogsConfig {
        let enabled = self.parse(TRACING_LOGS_ENABLED, parse_bool);
        let exporter = self.parse(OTEL_LOGS_EXPORTER, |s| {
            match s.trim().to_ascii_lowercase().as_str() {
                "otlp" => Ok(super::LogsExporter::Otlp),
                "console" => Ok(super::LogsExporter::Console),
                "none" => Ok(super::LogsExporter::None),
                _ => Err("expected otlp, console or none".to_owned()),
            }
        });
        let endpoint = self.parse(OTLP_LOGS_ENDPOINT, |s| endpoint::parse(s, Source::OtlpLogs));
        let base = self
            .raw(OTLP_ENDPOINT)
            .and_then(|s| endpoint::parse(s, Source::OtlpBase).ok());
        let protocol = self.parse(OTLP_LOGS_PROTOCOL, parse_protocol);
        let headers = self.parse(OTLP_LOGS_HEADERS, |s| parse_headers(s, true));
        let compression = self.parse(OTLP_LOGS_COMPRESSION, parse_compression);
        // The exporter's timeout before the processor's; `OTEL_EXPORTER_OTLP_TIMEOUT` was read
        // (and reported) with the traces'.
        let timeout = self
            .parse(OTLP_LOGS_TIMEOUT, parse_timeout)
            .map(|s| s.value)
            .or_else(|| {
                self.parse(OTEL_BLRP_EXPORT_TIMEOUT, parse_timeout)
                    .map(|s| s.value)
            })
            .or_else(|| self.raw(OTLP_TIMEOUT).and_then(|s| parse_timeout(s).ok()));
        let delay = self.parse(OTEL_BLRP_SCHEDULE_DELAY, parse_delay);
        let queue = self.parse(OTEL_BLRP_MAX_QUEUE_SIZE, |s| {
            parse_bounded(s, MAX_LOG_QUEUE_SIZE)
        });
        let batch = self.parse(OTEL_BLRP_MAX_EXPORT_BATCH_SIZE, |s| {
            parse_bounded(s, MAX_LOG_EXPORT_BATCH_SIZE)
        });
        let count_limit = self.parse(OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT, |s| {
            parse_bounded(s, MAX_LOG_ATTRIBUTE_COUNT)
        });
        let value_limit = self.parse(OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT, parse_size);
        let exceptions = self.parse(OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN, |s| {
            let modes: Vec<String> = s
                .split(',')
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| !m.is_empty())
                .collect();
            if modes.iter().any(|m| m == "logs/dup") {
                Ok(super::ExceptionSignal::Dup)
            } else if modes.iter().any(|m| m == "logs") {
                Ok(super::ExceptionSignal::Logs)
            } else {
                Ok(super::ExceptionSignal::SpanEvents)
            }
        });
        if let (Some(q), Some(b)) = (&queue, &batch)
            && b.value > q.value
        {
            self.errors.push(InvalidVar {
                variable: OTEL_BLRP_MAX_EXPORT_BATCH_SIZE.to_owned(),
                value: b.value.to_string(),
                reason: format!(
                    "the export batch size must not exceed the queue size {} ({OTEL_BLRP_MAX_QUEUE_SIZE})",
                    q.value
                ),
            });
        }
        super::LogsConfig {
            enabled: enabled.map(|s| s.value),
            exporter: exporter.map(|s| s.value),
            endpoint: endpoint.map(|s| s.value),
            base,
            protocol: protocol.map(|s| s.value),
            headers: headers.map(|s| s.value),
            compression: compression.map(|s| s.value),
            timeout,
            delay: delay.map(|s| s.value),
            max_queue_size: queue.map(|s| s.value),
            max_export_batch_size: batch.map(|s| s.value),
            attribute_count_limit: count_limit.map(|s| s.value),
            attribute_value_length_limit: value_limit.map(|s| s.value),
            exceptions: exceptions.map(|s| s.value),
        }
    }
}
