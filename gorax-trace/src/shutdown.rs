//! What [`Telemetry::shutdown`](crate::Telemetry::shutdown) reports: per signal, what was lost
//! and why. Losing telemetry must not fail a service: log the error, do not `?` it.
//!
//! ```
//! use gorax_trace::config::{ExporterKind, TraceConfig};
//!
//! let telemetry = gorax_trace::init(TraceConfig::new().with_exporter(ExporterKind::None)).unwrap();
//! if let Err(lost) = telemetry.shutdown() {
//!     tracing::warn!(%lost, "telemetry was lost");
//! }
//! ```

use crate::export::HealthSnapshot;
use crate::metrics::PushCounts;

/// Telemetry that a [`Telemetry`](crate::Telemetry) did not deliver over its lifetime, per
/// signal (`None`: that signal delivered everything, or is off). Its counts equal those of
/// [`Telemetry::health`](crate::Telemetry::health) and
/// [`Telemetry::metrics_export_health`](crate::Telemetry::metrics_export_health) read after the
/// shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownError {
    /// Spans lost (dropped before export, or lost in it).
    pub traces: Option<Box<TracesLost>>,
    /// Metrics not delivered by the final push.
    pub metrics: Option<Box<MetricsLost>>,
    /// Log records lost (feature `logs`).
    #[cfg(feature = "logs")]
    pub logs: Option<Box<LogsLost>>,
}

/// The log records a shutdown reports as lost (feature `logs`).
#[cfg(feature = "logs")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogsLost {
    /// The counters at the end (`created - exported` were lost), by reason.
    pub counts: crate::logs::LogCounts,
    /// The message of the latest failed export.
    pub last_error: Option<String>,
}

/// The spans a shutdown reports as lost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TracesLost {
    /// Spans given to the exporter's processor over the lifetime (accepted or dropped).
    pub spans: u64,
    /// Spans the collector acknowledged (minus those it rejected).
    pub delivered: u64,
    /// The counters at the end, with the loss by reason.
    pub health: HealthSnapshot,
    /// The message of the latest failed export, or the SDK's shutdown error.
    pub last_error: Option<String>,
}

impl TracesLost {
    /// Spans lost: `spans - delivered`.
    pub fn lost(&self) -> u64 {
        self.spans.saturating_sub(self.delivered)
    }
}

/// The metrics a shutdown reports as not delivered: the final push failed (metrics are
/// cumulative, so whatever an earlier failed push carried was also in the final one).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsLost {
    /// Why the final push was lost (`timeout`, `refused`, `throttled`, `export_failed`).
    pub reason: &'static str,
    /// The final push's error.
    pub error: String,
    /// The push counters at the end.
    pub pushes: PushCounts,
}

impl std::fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sep = "";
        if let Some(t) = &self.traces {
            let h = &t.health;
            let other = h.spans_failed
                - h.spans_timed_out
                - h.spans_refused
                - h.spans_throttled
                - h.spans_rejected;
            write!(f, "traces: {} of {} spans lost (", t.lost(), t.spans)?;
            let mut parts = Vec::new();
            for (n, what) in [
                (h.spans_timed_out, "timed out"),
                (h.spans_refused, "refused by the collector"),
                (h.spans_throttled, "throttled by the collector"),
                (h.spans_rejected, "rejected by the collector"),
                (other, "export failed"),
                (h.spans_dropped - h.spans_dropped_bytes, "queue full"),
                (h.spans_dropped_bytes, "byte budget"),
            ] {
                if n > 0 {
                    parts.push(format!("{n} {what}"));
                }
            }
            f.write_str(&parts.join(", "))?;
            f.write_str(")")?;
            if let Some(e) = &t.last_error {
                write!(f, "; last error: {e}")?;
            }
            sep = "; ";
        }
        #[cfg(feature = "logs")]
        if let Some(l) = &self.logs {
            let c = &l.counts;
            write!(
                f,
                "{sep}logs: {} of {} records lost ({} timed out, {} refused, {} throttled, {} \
                 rejected, {} dropped)",
                c.created - c.exported,
                c.created,
                c.timed_out,
                c.refused,
                c.throttled,
                c.rejected,
                c.dropped
            )?;
            if let Some(e) = &l.last_error {
                write!(f, "; last error: {e}")?;
            }
            sep = "; ";
        }
        if let Some(m) = &self.metrics {
            write!(
                f,
                "{sep}metrics: the final push was not delivered ({}: {}); {} of {} pushes delivered",
                m.reason,
                m.error,
                m.pushes.delivered,
                m.pushes.delivered + m.pushes.failed
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ShutdownError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_per_signal_how_many_and_why() {
        let health = HealthSnapshot {
            spans_exported: 10,
            spans_failed: 5,
            spans_timed_out: 4,
            spans_dropped: 2,
            ..HealthSnapshot::default()
        };
        let e = ShutdownError {
            traces: Some(Box::new(TracesLost {
                spans: 17,
                delivered: 10,
                health,
                last_error: Some("no answer within 1000 ms".into()),
            })),
            metrics: Some(Box::new(MetricsLost {
                reason: "refused",
                error: "the collector answered HTTP 404".into(),
                pushes: PushCounts::default(),
            })),
            #[cfg(feature = "logs")]
            logs: None,
        };
        assert_eq!(
            e.to_string(),
            "traces: 7 of 17 spans lost (4 timed out, 1 export failed, 2 queue full); last error: \
             no answer within 1000 ms; metrics: the final push was not delivered (refused: the \
             collector answered HTTP 404); 0 of 0 pushes delivered"
        );
    }
}
