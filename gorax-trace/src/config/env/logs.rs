//! OTLP logs: `TRACING_LOGS_ENABLED`, `OTEL_LOGS_EXPORTER`, `OTEL_EXPORTER_OTLP_LOGS_*`,
//! `OTEL_BLRP_*`, `OTEL_LOGRECORD_*`.

use super::*;

// OTLP logs (issue 24). Self-contained: its own variable list and reader.
pub(super) const TRACING_LOGS_ENABLED: &str = "TRACING_LOGS_ENABLED";
pub(super) const OTEL_LOGS_EXPORTER: &str = "OTEL_LOGS_EXPORTER";
pub(super) const OTLP_LOGS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT";
pub(super) const OTLP_LOGS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL";
pub(super) const OTLP_LOGS_HEADERS: &str = "OTEL_EXPORTER_OTLP_LOGS_HEADERS";
pub(super) const OTLP_LOGS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION";
pub(super) const OTLP_LOGS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT";
pub(super) const OTEL_BLRP_SCHEDULE_DELAY: &str = "OTEL_BLRP_SCHEDULE_DELAY";
pub(super) const OTEL_BLRP_EXPORT_TIMEOUT: &str = "OTEL_BLRP_EXPORT_TIMEOUT";
pub(super) const OTEL_BLRP_MAX_QUEUE_SIZE: &str = "OTEL_BLRP_MAX_QUEUE_SIZE";
pub(super) const OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE";
pub(super) const OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT: &str =
    "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT";
pub(super) const OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str =
    "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT";
pub(super) const OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN: &str =
    "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN";
pub(super) const LOGS_VARS: [&str; 14] = [
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
    pub(super) fn logs(&mut self) -> super::LogsConfig {
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
