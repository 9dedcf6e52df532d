//! Metrics: `TRACING_METRICS_ENABLED`, `OTEL_METRICS_EXPORTER` and the OTLP metrics push.

use super::*;

// Metrics (issue 13). Self-contained: its own variable list and reader.
pub(super) const TRACING_METRICS_ENABLED: &str = "TRACING_METRICS_ENABLED";
pub(super) const OTEL_METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
pub(super) const OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
pub(super) const OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
pub(super) const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
pub(super) const OTEL_METRIC_EXPORT_TIMEOUT: &str = "OTEL_METRIC_EXPORT_TIMEOUT";
pub(super) const OTLP_METRICS_HEADERS: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";
pub(super) const OTLP_METRICS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
pub(super) const OTLP_METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
pub(super) const METRICS_VARS: [&str; 9] = [
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
    pub(super) fn metrics(&mut self) -> super::MetricsConfig {
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
pub(super) fn parse_metrics_exporters(s: &str) -> Result<crate::metrics::MetricsExporters, String> {
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

/// Upper bound of the metrics push interval (`OTEL_METRIC_EXPORT_INTERVAL`): 1 hour.
pub const MAX_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(3600);
