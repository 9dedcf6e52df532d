//! The log record processor: a queue bounded in records and estimated bytes, one export thread,
//! and counters kept under the queue's lock, so that they are exact (`created = exported +
//! dropped + failed` once sealed) and cost the emitting thread no atomic operation beyond the
//! lock it takes to queue the record.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
// The processor proper (the queue, its export thread) exists only with an OTLP transport: without
// one nothing can export log records, and `init` refuses logs, naming the features.
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
use {
    crate::config::LogBatchSettings,
    crate::export::LossKind,
    opentelemetry::InstrumentationScope,
    opentelemetry::logs::AnyValue,
    opentelemetry_sdk::Resource,
    opentelemetry_sdk::error::OTelSdkResult,
    opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord},
    std::collections::VecDeque,
    std::sync::mpsc::SyncSender,
    std::time::Duration,
};

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
/// Where the processor's batches go (the OTLP exporter; a test sink).
pub(crate) trait LogSink: Send + 'static {
    /// Exports one batch; `Ok` with the records the collector rejected.
    fn export(
        &self,
        batch: &[(&SdkLogRecord, &InstrumentationScope)],
        resource: &Resource,
    ) -> Result<u64, (LossKind, String)>;
}

/// The counters of the logs pipeline, a point-in-time copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogCounts {
    /// Records emitted to the processor (`tracing` events that passed the filter).
    pub created: u64,
    /// Records the collector acknowledged (minus those it rejected).
    pub exported: u64,
    /// Records dropped before export because the queue was full (in records or in bytes), or
    /// after the shutdown.
    pub dropped: u64,
    /// Of [`dropped`](Self::dropped): over the byte budget.
    pub dropped_bytes: u64,
    /// Records lost in export, for any reason (the sum of the four below and other failures).
    pub failed: u64,
    /// Of [`failed`](Self::failed): no answer within the export timeout or the shutdown budget.
    pub timed_out: u64,
    /// Of [`failed`](Self::failed): the collector refuses logs (404/405/501, `UNIMPLEMENTED`).
    pub refused: u64,
    /// Of [`failed`](Self::failed): the collector asked for more quiet than there was time.
    pub throttled: u64,
    /// Of [`failed`](Self::failed): acknowledged but rejected (`partial_success`).
    pub rejected: u64,
    /// Export calls that lost their records.
    pub export_failures: u64,
}

/// Live counters of the logs pipeline ([`Telemetry::logs_health`](crate::Telemetry::logs_health)).
/// Cheap to clone; final once the telemetry is shut down.
#[derive(Clone)]
pub struct LogsHealth {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogsHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LogsHealth").field(&self.snapshot()).finish()
    }
}

impl LogsHealth {
    /// A copy of the counters now.
    pub fn snapshot(&self) -> LogCounts {
        self.shared.lock().counts
    }

    /// The message of the latest export that lost records, if any did.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
enum Control {
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

struct State {
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    queue: VecDeque<(SdkLogRecord, InstrumentationScope, usize)>,
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    bytes: usize,
    counts: LogCounts,
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    control: Option<Control>,
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    resource: Resource,
    closed: bool,
    sealed: bool,
    last_error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    settings: LogBatchSettings,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    /// Counts the outcome of a batch of `n` records (nothing once sealed).
    fn record(&self, n: usize, outcome: Result<u64, (LossKind, String)>) {
        let mut s = self.lock();
        if s.sealed {
            return;
        }
        let n = n as u64;
        match outcome {
            Ok(rejected) => {
                let rejected = rejected.min(n);
                s.counts.exported += n - rejected;
                if rejected > 0 {
                    s.counts.failed += rejected;
                    s.counts.rejected += rejected;
                    s.last_error = Some(format!(
                        "the collector rejected {rejected} of {n} log records (partial_success)"
                    ));
                }
            }
            Err((kind, message)) => {
                s.counts.failed += n;
                s.counts.export_failures += 1;
                match kind {
                    LossKind::Timeout => s.counts.timed_out += n,
                    LossKind::Refused => s.counts.refused += n,
                    LossKind::Throttled => s.counts.throttled += n,
                    LossKind::Rejected => s.counts.rejected += n,
                    _ => {}
                }
                s.last_error = Some(message);
            }
        }
    }
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
/// The estimated memory a queued record holds (its struct, body and attributes).
fn record_size(record: &SdkLogRecord) -> usize {
    fn value(v: &AnyValue) -> usize {
        match v {
            AnyValue::String(s) => s.as_str().len(),
            AnyValue::Bytes(b) => b.len(),
            AnyValue::ListAny(l) => l.iter().map(|v| 16 + value(v)).sum(),
            AnyValue::Map(m) => m
                .iter()
                .map(|(k, v)| 16 + k.as_str().len() + value(v))
                .sum(),
            _ => 8,
        }
    }
    std::mem::size_of::<SdkLogRecord>()
        + record.body().map_or(0, value)
        + record
            .attributes_iter()
            .map(|(k, v)| 48 + k.as_str().len() + value(v))
            .sum::<usize>()
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
/// The bounded log record processor and its export thread.
pub(crate) struct LogQueueProcessor {
    shared: Arc<Shared>,
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
impl std::fmt::Debug for LogQueueProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogQueueProcessor")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
impl LogQueueProcessor {
    /// Starts the export thread for `sink` with `settings`.
    pub(crate) fn new(sink: impl LogSink, settings: LogBatchSettings) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                counts: LogCounts::default(),
                control: None,
                resource: Resource::builder_empty().build(),
                closed: false,
                sealed: false,
                last_error: None,
            }),
            wake: Condvar::new(),
            settings,
        });
        let worker = shared.clone();
        let _ = std::thread::Builder::new()
            .name("gorax-trace-logs".into())
            .spawn(move || run(&worker, &sink));
        Self { shared }
    }

    /// The counters.
    pub(crate) fn health(&self) -> LogsHealth {
        LogsHealth {
            shared: self.shared.clone(),
        }
    }

    /// A handle that shuts the processor down (the [`Telemetry`](crate::Telemetry) keeps it
    /// to run the last export beside the other signals').
    pub(crate) fn closer(&self) -> LogsCloser {
        LogsCloser {
            shared: self.shared.clone(),
        }
    }
}

/// Shuts a [`LogQueueProcessor`] down within a deadline.
#[derive(Clone)]
pub(crate) struct LogsCloser {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogsCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogsCloser")
    }
}

/// A shutdown in progress.
pub(crate) struct Closing {
    shared: Arc<Shared>,
    done: Option<mpsc::Receiver<()>>,
}

impl LogsCloser {
    /// Asks the export thread to export what is queued and stop.
    pub(crate) fn begin(&self) -> Closing {
        let done = {
            let mut s = self.shared.lock();
            if s.closed {
                None
            } else {
                s.closed = true;
                #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
                {
                    let (tx, rx) = mpsc::sync_channel(1);
                    s.control = Some(Control::Shutdown(tx));
                    Some(rx)
                }
                #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
                None
            }
        };
        self.shared.wake.notify_all();
        Closing {
            shared: self.shared.clone(),
            done,
        }
    }
}

impl Closing {
    /// Waits for the last export until `by`, then seals the counters: what is still queued or
    /// in flight is counted as lost to the timeout. Returns the final counts.
    pub(crate) fn wait(self, by: Instant) -> LogCounts {
        if let Some(done) = self.done {
            let _ = done.recv_timeout(by.saturating_duration_since(Instant::now()));
        }
        let mut s = self.shared.lock();
        if !s.sealed {
            s.sealed = true;
            let accepted = s.counts.created - s.counts.dropped;
            let settled = s.counts.exported + s.counts.failed;
            let outstanding = accepted.saturating_sub(settled);
            if outstanding > 0 {
                s.counts.failed += outstanding;
                s.counts.timed_out += outstanding;
                s.last_error =
                    Some("still queued or in flight when the shutdown budget ran out".to_owned());
            }
        }
        s.counts
    }
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
impl LogProcessor for LogQueueProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let size = record_size(record);
        let full = {
            let mut s = self.shared.lock();
            s.counts.created += 1;
            let settings = &self.shared.settings;
            if s.closed || s.queue.len() >= settings.max_queue_size {
                s.counts.dropped += 1;
                return;
            }
            if s.bytes + size > settings.max_queue_bytes {
                s.counts.dropped += 1;
                s.counts.dropped_bytes += 1;
                return;
            }
            s.bytes += size;
            s.queue.push_back((record.clone(), scope.clone(), size));
            s.queue.len() == settings.max_export_batch_size
        };
        if full {
            self.shared.wake.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut s = self.shared.lock();
            if s.closed {
                return Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown);
            }
            s.control = Some(Control::Flush(tx));
        }
        self.shared.wake.notify_all();
        let wait = self.shared.settings.export_timeout + Duration::from_secs(1);
        rx.recv_timeout(wait)
            .map_err(|_| opentelemetry_sdk::error::OTelSdkError::Timeout(wait))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.closer().begin().wait(Instant::now() + timeout);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.shared.lock().resource = resource.clone();
    }
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
/// The export thread: every `scheduled_delay`, when a batch is full, or on a flush or shutdown,
/// exports everything queued, batch by batch.
fn run(shared: &Shared, sink: &impl LogSink) {
    // Exporting (HTTP client, gRPC) must not log into this queue.
    let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
    let settings = &shared.settings;
    let mut next = Instant::now() + settings.scheduled_delay;
    loop {
        let (batch, control, resource) = {
            let mut s = shared.lock();
            while s.queue.len() < settings.max_export_batch_size && s.control.is_none() && !s.closed
            {
                let now = Instant::now();
                if now >= next {
                    break;
                }
                s = shared
                    .wake
                    .wait_timeout(s, next - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let take = s.queue.len().min(settings.max_export_batch_size);
            let batch: Vec<_> = s.queue.drain(..take).collect();
            s.bytes -= batch.iter().map(|(_, _, size)| size).sum::<usize>();
            // A flush or shutdown waits until the queue is empty.
            let control = if s.queue.is_empty() {
                s.control.take()
            } else {
                None
            };
            (batch, control, s.resource.clone())
        };
        if Instant::now() >= next {
            next = Instant::now() + settings.scheduled_delay;
        }
        if !batch.is_empty() {
            let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                batch.iter().map(|(r, s, _)| (r, s)).collect();
            let outcome = sink.export(&refs, &resource);
            shared.record(batch.len(), outcome);
        }
        match control {
            Some(Control::Flush(reply)) => {
                let _ = reply.send(());
            }
            Some(Control::Shutdown(reply)) => {
                let _ = reply.send(());
                return;
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
    use opentelemetry_sdk::logs::SdkLoggerProvider;

    /// A sink that fails every export after waiting `wait`.
    struct Down(Duration);
    impl LogSink for Down {
        fn export(
            &self,
            _batch: &[(&SdkLogRecord, &InstrumentationScope)],
            _resource: &Resource,
        ) -> Result<u64, (LossKind, String)> {
            std::thread::sleep(self.0);
            Err((LossKind::Failed, "collector down".into()))
        }
    }

    /// With the collector down, 100 000 records keep the queue within its bounds and every one is
    /// counted once: created = exported + dropped + failed, exactly.
    #[test]
    fn a_dead_collector_keeps_the_queue_bounded_and_every_record_counted() {
        let settings = LogBatchSettings {
            max_queue_size: 512,
            max_export_batch_size: 128,
            scheduled_delay: Duration::from_millis(5),
            ..LogBatchSettings::default()
        };
        let processor = LogQueueProcessor::new(Down(Duration::from_millis(2)), settings);
        let health = processor.health();
        let closer = processor.closer();
        let provider = SdkLoggerProvider::builder()
            .with_log_processor(processor)
            .build();
        let logger = provider.logger("test");
        for i in 0..100_000 {
            let mut record = logger.create_log_record();
            record.set_body(format!("event {i}").into());
            logger.emit(record);
            if i % 10_000 == 0 {
                let s = health.shared.lock();
                assert!(s.queue.len() <= 512 && s.bytes <= s.queue.len() * 4096);
            }
        }
        let c = closer.begin().wait(Instant::now() + Duration::from_secs(2));
        assert_eq!(c.created, 100_000);
        assert_eq!(c.exported, 0);
        assert_eq!(c.created, c.exported + c.dropped + c.failed, "{c:?}");
        assert!(c.dropped > 0 && c.failed > 0, "{c:?}");
        // Sealed: nothing changes afterwards.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(health.snapshot(), c);
    }
}
