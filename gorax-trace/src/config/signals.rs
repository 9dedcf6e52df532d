//! The settings of the other signals: metrics and OTLP logs (and the shutdown budget all
//! signals share), as given in code or read by [`env`](super::env), resolved by the getters.

use super::*;

// Metrics (issue 13): `TRACING_METRICS_ENABLED`, `OTEL_METRICS_EXPORTER`,
// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` / `_PROTOCOL` / `_HEADERS` / `_COMPRESSION`,
// `OTEL_METRIC_EXPORT_INTERVAL` / `_TIMEOUT`.

/// The metrics settings as given (resolved by the getters).
#[derive(Clone, Debug, Default)]
pub(super) struct MetricsConfig {
    pub(super) enabled: Option<bool>,
    pub(super) exporters: Option<crate::metrics::MetricsExporters>,
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, used as written.
    pub(super) endpoint: Option<Endpoint>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, for when the traces endpoint is a signal-specific one.
    pub(super) base: Option<Endpoint>,
    pub(super) protocol: Option<Protocol>,
    /// `OTEL_EXPORTER_OTLP_METRICS_HEADERS` (values are secrets).
    pub(super) headers: Option<Vec<(String, String)>>,
    /// `OTEL_EXPORTER_OTLP_METRICS_COMPRESSION`.
    pub(super) compression: Option<Compression>,
    pub(super) interval: Option<std::time::Duration>,
    /// `OTEL_METRIC_EXPORT_TIMEOUT` (the reader's bound of one push).
    pub(super) timeout: Option<std::time::Duration>,
    /// `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`, then `OTEL_EXPORTER_OTLP_TIMEOUT` (the exporter's).
    pub(super) exporter_timeout: Option<std::time::Duration>,
}

impl MetricsConfig {
    /// Each setting of `self`, else of `defaults`.
    pub(super) fn or(self, defaults: &MetricsConfig) -> MetricsConfig {
        let d = defaults.clone();
        MetricsConfig {
            enabled: self.enabled.or(d.enabled),
            exporters: self.exporters.or(d.exporters),
            endpoint: self.endpoint.or(d.endpoint),
            base: self.base.or(d.base),
            protocol: self.protocol.or(d.protocol),
            headers: self.headers.or(d.headers),
            compression: self.compression.or(d.compression),
            interval: self.interval.or(d.interval),
            timeout: self.timeout.or(d.timeout),
            exporter_timeout: self.exporter_timeout.or(d.exporter_timeout),
        }
    }
}

/// Where `tracing` events go besides stderr (`OTEL_LOGS_EXPORTER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogsExporter {
    /// OTLP log records to the collector (`/v1/logs` beside `/v1/traces`).
    Otlp,
    /// Only the stderr lines the subscriber already prints (no second copy).
    Console,
    /// No OTLP logs; stderr unchanged.
    None,
}

/// Where exceptions go (`OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`): the semantic conventions now
/// define exceptions as log records as well as span events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExceptionSignal {
    /// `exception` span events, as before (the default).
    #[default]
    SpanEvents,
    /// `logs`: exception log records instead of span events.
    Logs,
    /// `logs/dup`: both.
    Dup,
}

impl ExceptionSignal {
    /// Whether exceptions are recorded as span events.
    pub fn span_events(self) -> bool {
        matches!(self, Self::SpanEvents | Self::Dup)
    }

    /// Whether exceptions are emitted as log records.
    pub fn logs(self) -> bool {
        matches!(self, Self::Logs | Self::Dup)
    }
}

/// The logs settings as given (resolved by the getters).
#[derive(Clone, Debug, Default)]
pub(super) struct LogsConfig {
    pub(super) enabled: Option<bool>,
    pub(super) exporter: Option<LogsExporter>,
    pub(super) endpoint: Option<Endpoint>,
    pub(super) base: Option<Endpoint>,
    pub(super) protocol: Option<Protocol>,
    pub(super) headers: Option<Vec<(String, String)>>,
    pub(super) compression: Option<Compression>,
    pub(super) timeout: Option<std::time::Duration>,
    pub(super) delay: Option<std::time::Duration>,
    pub(super) max_queue_size: Option<usize>,
    pub(super) max_export_batch_size: Option<usize>,
    pub(super) attribute_count_limit: Option<usize>,
    pub(super) attribute_value_length_limit: Option<usize>,
    pub(super) exceptions: Option<ExceptionSignal>,
}

impl LogsConfig {
    /// Each setting of `self`, else of `defaults`.
    pub(super) fn or(self, defaults: &LogsConfig) -> LogsConfig {
        let d = defaults.clone();
        LogsConfig {
            enabled: self.enabled.or(d.enabled),
            exporter: self.exporter.or(d.exporter),
            endpoint: self.endpoint.or(d.endpoint),
            base: self.base.or(d.base),
            protocol: self.protocol.or(d.protocol),
            headers: self.headers.or(d.headers),
            compression: self.compression.or(d.compression),
            timeout: self.timeout.or(d.timeout),
            delay: self.delay.or(d.delay),
            max_queue_size: self.max_queue_size.or(d.max_queue_size),
            max_export_batch_size: self.max_export_batch_size.or(d.max_export_batch_size),
            attribute_count_limit: self.attribute_count_limit.or(d.attribute_count_limit),
            attribute_value_length_limit: self
                .attribute_value_length_limit
                .or(d.attribute_value_length_limit),
            exceptions: self.exceptions.or(d.exceptions),
        }
    }
}

/// The bounds of the log record processor (`OTEL_BLRP_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogBatchSettings {
    /// Records buffered before new ones are dropped (`OTEL_BLRP_MAX_QUEUE_SIZE`). Default 2048.
    pub max_queue_size: usize,
    /// Records per export request (`OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`). Default 512.
    pub max_export_batch_size: usize,
    /// Time between two exports (`OTEL_BLRP_SCHEDULE_DELAY`). Default 1 s.
    pub scheduled_delay: std::time::Duration,
    /// Time one export may take (`OTEL_EXPORTER_OTLP_LOGS_TIMEOUT`, `OTEL_BLRP_EXPORT_TIMEOUT`,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`). Default 10 s.
    pub export_timeout: std::time::Duration,
    /// Estimated bytes of queued records before new ones are dropped. Default 8 MiB.
    pub max_queue_bytes: usize,
    /// Attributes kept per record (`OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`). Default 128.
    pub attribute_count_limit: usize,
    /// Characters kept per attribute value and body (`OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT`).
    /// Default 4096 (the crates' limit for client-controlled values).
    pub attribute_value_length_limit: usize,
}

impl Default for LogBatchSettings {
    fn default() -> Self {
        Self {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: std::time::Duration::from_secs(1),
            export_timeout: DEFAULT_OTLP_EXPORTER_TIMEOUT,
            max_queue_bytes: 8 << 20,
            attribute_count_limit: 128,
            attribute_value_length_limit: DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT,
        }
    }
}

/// The specification's default of `OTEL_EXPORTER_OTLP_TIMEOUT`.
pub const DEFAULT_OTLP_EXPORTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The specification's default of `OTEL_METRIC_EXPORT_INTERVAL`.
pub const DEFAULT_METRIC_EXPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// The specification's default of `OTEL_METRIC_EXPORT_TIMEOUT`.
pub const DEFAULT_METRIC_EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl TraceConfig {
    /// Turns the RED metrics on or off (`TRACING_METRICS_ENABLED`; see
    /// [`metrics`](crate::metrics)).
    pub fn with_metrics(mut self, on: bool) -> Self {
        self.metrics.enabled = Some(on);
        self
    }

    /// Where metrics go (`OTEL_METRICS_EXPORTER`).
    pub fn with_metrics_exporters(mut self, exporters: crate::metrics::MetricsExporters) -> Self {
        self.metrics.exporters = Some(exporters);
        self
    }

    /// How often metrics are pushed over OTLP (`OTEL_METRIC_EXPORT_INTERVAL`; a zero interval
    /// keeps the default).
    pub fn with_metric_export_interval(mut self, interval: std::time::Duration) -> Self {
        self.metrics.interval = (!interval.is_zero()).then_some(interval);
        self
    }

    /// Whether metrics are recorded: as set (`TRACING_METRICS_ENABLED`, [`with_metrics`](Self::with_metrics)),
    /// else when `OTEL_METRICS_EXPORTER` names an exporter. Off by default.
    pub fn metrics_enabled(&self) -> bool {
        self.metrics.enabled.unwrap_or_else(|| {
            self.metrics
                .exporters
                .is_some_and(|e| e.otlp || e.prometheus)
        })
    }

    /// Where metrics go: as set, else OTLP only.
    pub fn metrics_exporters(&self) -> crate::metrics::MetricsExporters {
        self.metrics.exporters.unwrap_or_default()
    }

    /// The OTLP protocol of metrics: `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, else the traces'.
    pub fn metrics_protocol(&self) -> Protocol {
        self.metrics.protocol.unwrap_or_else(|| self.protocol())
    }

    /// The URL metrics are pushed to: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as written, else the
    /// traces' collector with `/v1/metrics` for HTTP (in place of a `/v1/traces` path), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/metrics` when the traces have a signal-specific
    /// endpoint; `None` when there is no collector. TLS, headers and certificates are the traces'.
    pub fn metrics_otlp_endpoint(&self) -> Option<String> {
        let protocol = self.metrics_protocol();
        if let Some(e) = &self.metrics.endpoint {
            return Some(e.raw.clone());
        }
        let e = match &self.endpoint {
            Some(e) if e.source == Source::OtlpTraces => self.metrics.base.as_ref()?,
            Some(e) => e,
            None => return None,
        };
        Some(e.metrics_url(protocol, self.insecure))
    }

    /// Headers sent with every metrics push: `OTEL_EXPORTER_OTLP_METRICS_HEADERS`, else the
    /// traces' ([`headers`](Self::headers)). Values are secrets.
    pub fn metrics_headers(&self) -> &[(String, String)] {
        self.metrics.headers.as_deref().unwrap_or(&self.headers)
    }

    /// The compression of OTLP metrics requests: `OTEL_EXPORTER_OTLP_METRICS_COMPRESSION`, else
    /// the traces' ([`compression`](Self::compression)).
    pub fn metrics_compression(&self) -> Compression {
        self.metrics.compression.unwrap_or(self.compression)
    }

    /// How often metrics are pushed; default 60 s.
    pub fn metric_export_interval(&self) -> std::time::Duration {
        self.metrics
            .interval
            .unwrap_or(DEFAULT_METRIC_EXPORT_INTERVAL)
    }

    /// How long one metrics push may take: the shorter of the reader's bound
    /// (`OTEL_METRIC_EXPORT_TIMEOUT`, default 30 s) and the OTLP exporter's
    /// (`OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`, then `OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s), as
    /// both apply to one push. At shutdown it is also capped by what is left of the budget.
    pub fn metric_export_timeout(&self) -> std::time::Duration {
        self.metrics
            .timeout
            .unwrap_or(DEFAULT_METRIC_EXPORT_TIMEOUT)
            .min(
                self.metrics
                    .exporter_timeout
                    .unwrap_or(DEFAULT_OTLP_EXPORTER_TIMEOUT),
            )
    }

    /// Bounds [`shutdown`](crate::Telemetry::shutdown) (and drop) of every signal together: the
    /// spans' last export and the metrics' last push run side by side within it, and the call
    /// returns by then (plus a few milliseconds). `TRACING_SHUTDOWN_TIMEOUT_MS`; default the
    /// span export timeout. At most [`MAX_TIMEOUT`]; another value is reported by
    /// [`validate`](Self::validate).
    pub fn with_shutdown_timeout(mut self, budget: std::time::Duration) -> Self {
        self.shutdown_timeout = Some(budget);
        self
    }

    /// The log format (`TRACING_LOG_FORMAT`): with [`LogFormat::Json`] the console exporter
    /// writes its trace trees to stdout, so that every line on stderr is one JSON object (a log
    /// shipper reads stderr; the tree is for the person at the terminal, and OTLP is the
    /// machine-readable form of a trace). The subscriber reads the same variable
    /// ([`subscriber::install`](crate::subscriber::install)).
    pub fn with_log_format(mut self, format: LogFormat) -> Self {
        self.log_format = Some(format);
        self
    }

    /// The log format ([`with_log_format`](Self::with_log_format)); default text.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_default()
    }

    /// Turns OTLP logs on or off (`TRACING_LOGS_ENABLED`; off by default, like metrics: a
    /// backend that takes only traces refuses `/v1/logs`, a documented deviation from the SDK
    /// specification's default `otlp`).
    pub fn with_logs(mut self, on: bool) -> Self {
        self.logs.enabled = Some(on);
        self
    }

    /// Where exceptions go (`OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`).
    pub fn with_exception_signal(mut self, signal: ExceptionSignal) -> Self {
        self.logs.exceptions = Some(signal);
        self
    }

    /// Where exceptions go ([`with_exception_signal`](Self::with_exception_signal)); default
    /// span events.
    pub fn exception_signal(&self) -> ExceptionSignal {
        self.logs.exceptions.unwrap_or_default()
    }

    /// Where log records go: `OTEL_LOGS_EXPORTER`, else `otlp` when logs are on.
    pub fn logs_exporter(&self) -> LogsExporter {
        self.logs.exporter.unwrap_or(LogsExporter::Otlp)
    }

    /// Whether `tracing` events are exported as OTLP log records: as set
    /// (`TRACING_LOGS_ENABLED`, [`with_logs`](Self::with_logs)), else when `OTEL_LOGS_EXPORTER`
    /// is `otlp`; and only with the `otlp` exporter. Off by default.
    pub fn logs_enabled(&self) -> bool {
        self.enabled
            && self
                .logs
                .enabled
                .unwrap_or(self.logs.exporter == Some(LogsExporter::Otlp))
            && self.logs_exporter() == LogsExporter::Otlp
    }

    /// The OTLP protocol of logs: `OTEL_EXPORTER_OTLP_LOGS_PROTOCOL`, else the traces'.
    pub fn logs_protocol(&self) -> Protocol {
        self.logs.protocol.unwrap_or_else(|| self.protocol())
    }

    /// The URL log records go to: `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` as written, else the traces'
    /// collector with `/v1/logs` for HTTP, else `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/logs`;
    /// `None` without a collector. TLS and certificates are the traces'.
    pub fn logs_otlp_endpoint(&self) -> Option<String> {
        let protocol = self.logs_protocol();
        if let Some(e) = &self.logs.endpoint {
            return Some(e.raw.clone());
        }
        let e = match &self.endpoint {
            Some(e) if e.source == Source::OtlpTraces => self.logs.base.as_ref()?,
            Some(e) => e,
            None => return None,
        };
        Some(e.signal_url(protocol, self.insecure, endpoint::LOGS_PATH))
    }

    /// Headers of log exports: `OTEL_EXPORTER_OTLP_LOGS_HEADERS`, else the traces'.
    pub fn logs_headers(&self) -> &[(String, String)] {
        self.logs.headers.as_deref().unwrap_or(&self.headers)
    }

    /// The compression of log exports: `OTEL_EXPORTER_OTLP_LOGS_COMPRESSION`, else the traces'.
    pub fn logs_compression(&self) -> Compression {
        self.logs.compression.unwrap_or(self.compression)
    }

    /// The log record processor's bounds and the record limits (`OTEL_BLRP_*`,
    /// `OTEL_LOGRECORD_ATTRIBUTE_*`).
    pub fn log_batch(&self) -> LogBatchSettings {
        let d = LogBatchSettings::default();
        let l = &self.logs;
        LogBatchSettings {
            max_queue_size: l.max_queue_size.unwrap_or(d.max_queue_size),
            max_export_batch_size: l
                .max_export_batch_size
                .unwrap_or(d.max_export_batch_size)
                .min(l.max_queue_size.unwrap_or(d.max_queue_size)),
            scheduled_delay: l.delay.unwrap_or(d.scheduled_delay),
            export_timeout: l.timeout.unwrap_or(d.export_timeout),
            max_queue_bytes: d.max_queue_bytes,
            attribute_count_limit: l.attribute_count_limit.unwrap_or(d.attribute_count_limit),
            attribute_value_length_limit: l
                .attribute_value_length_limit
                .unwrap_or(d.attribute_value_length_limit),
        }
    }

    /// The shutdown budget ([`with_shutdown_timeout`](Self::with_shutdown_timeout)).
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        self.shutdown_timeout
            .unwrap_or(self.batch.export_timeout)
            .min(MAX_TIMEOUT)
    }
}
