//! The logger behind the `tracing` bridge: opentelemetry-appender-tracing takes its logger from
//! a provider once, when the subscriber is built (before `init`); this provider's logger finds the
//! installed [`Telemetry`](crate::Telemetry)'s logger at each event instead, so events are
//! exported by whatever `init` installed, and cost one check when logs are off.

use std::sync::LazyLock;

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::{Logger, LoggerProvider, Severity};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger, SdkLoggerProvider};

use crate::TelemetryHandle;

/// A provider with no processor: where records are made before any logger is installed.
static UNINSTALLED: LazyLock<SdkLogger> = LazyLock::new(|| {
    SdkLoggerProvider::builder()
        .build()
        .logger(crate::SCOPE_NAME)
});

/// The [`LoggerProvider`] of [`subscriber::install`](crate::subscriber::install)'s bridge layer:
/// its loggers write to the installed telemetry's logs pipeline, when logs are on.
#[derive(Clone, Copy, Debug, Default)]
pub struct InstalledLoggerProvider;

/// A logger that writes to the installed telemetry's logs pipeline (see
/// [`InstalledLoggerProvider`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct InstalledLogger;

impl LoggerProvider for InstalledLoggerProvider {
    type Logger = InstalledLogger;

    fn logger_with_scope(&self, _scope: InstrumentationScope) -> Self::Logger {
        InstalledLogger
    }
}

impl Logger for InstalledLogger {
    type LogRecord = SdkLogRecord;

    fn create_log_record(&self) -> Self::LogRecord {
        UNINSTALLED.create_log_record()
    }

    fn emit(&self, record: Self::LogRecord) {
        if let Some(logger) = TelemetryHandle::installed().logger() {
            logger.emit(record);
        }
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        TelemetryHandle::installed()
            .logger()
            .is_some_and(|logger| logger.event_enabled(level, target, name))
    }
}
