//! The batch span processor: `TRACING_BATCH_*` over `OTEL_BSP_*`, the byte budget and the
//! export concurrency, with their upper bounds.

use super::*;

impl Vars {
    pub(super) fn batch(&mut self, defaults: &BatchSettings) -> BatchSettings {
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

/// Upper bound of the span queue (`TRACING_BATCH_QUEUE_SIZE`, `OTEL_BSP_MAX_QUEUE_SIZE`).
pub const MAX_QUEUE_SIZE: usize = 65_536;
/// Upper bound of the export batch (`TRACING_BATCH_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
pub const MAX_EXPORT_BATCH_SIZE: usize = 8_192;
/// Upper bound of the byte budget of the queue (`TRACING_BATCH_MAX_BYTES`): 1 GiB.
pub const MAX_QUEUE_BYTES: usize = 1 << 30;
/// Upper bound of the exports in flight at once (`TRACING_EXPORT_CONCURRENCY`).
pub const MAX_EXPORT_CONCURRENCY: usize = 16;
/// Upper bound of the batch delay (`TRACING_BATCH_DELAY_MS`, `OTEL_BSP_SCHEDULE_DELAY`): 10
/// minutes.
pub const MAX_BATCH_DELAY: Duration = Duration::from_secs(600);
