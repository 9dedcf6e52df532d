//! The periodic OTLP push of metrics: a `ManualReader` collected every export interval by a
//! thread of our own, which hands the result to the [`OtlpMetricExporter`].
//!
//! Why not the SDK's `PeriodicReader`: the table in [`metrics`](super#why-our-own). The final
//! push at shutdown runs beside the spans' final export under the one shutdown budget, and the caller stops waiting at its deadline
//! (the push is then counted as lost to the timeout, and nothing after is counted).

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader as _;
use opentelemetry_sdk::metrics::{ManualReader, Temporality};

use super::MetricsExportHealth;
use super::otlp::{OtlpMetricExporter, PushLoss};
use super::reader::SharedReader;
use crate::export::LossKind;

/// What the push thread is asked to do.
enum Command {
    /// Push now; answer with the outcome.
    Flush(SyncSender<Result<(), PushLoss>>),
    /// Push a last time, then stop.
    Shutdown(SyncSender<Result<(), PushLoss>>),
}

/// The push thread of the metrics pipeline, and its counters.
#[derive(Debug)]
pub(crate) struct MetricsPush {
    commands: SyncSender<Command>,
    health: MetricsExportHealth,
    timeout: Duration,
}

/// A shutdown in progress: the final push's answer, awaited until the budget's deadline.
pub(crate) struct FinalPush {
    answer: Option<Receiver<Result<(), PushLoss>>>,
    health: MetricsExportHealth,
}

impl MetricsPush {
    /// Starts the push thread for `exporter` every `interval`, and returns the reader to
    /// register with the meter provider.
    pub(crate) fn start(
        exporter: OtlpMetricExporter,
        interval: Duration,
        timeout: Duration,
    ) -> (Self, SharedReader) {
        let reader = Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        );
        let health = MetricsExportHealth::default();
        let (commands, inbox) = mpsc::sync_channel(4);
        let thread = PushThread {
            reader: reader.clone(),
            exporter,
            health: health.clone(),
            interval: interval.max(Duration::from_millis(1)),
        };
        // Without the thread, pushes are simply not made (and a flush or shutdown says so).
        let _ = std::thread::Builder::new()
            .name("gorax-trace-metrics".into())
            .spawn(move || thread.run(inbox));
        (
            Self {
                commands,
                health,
                timeout,
            },
            SharedReader(reader),
        )
    }

    /// The counters of the push.
    pub(crate) fn health(&self) -> MetricsExportHealth {
        self.health.clone()
    }

    /// Pushes now, waiting at most the export timeout.
    pub(crate) fn flush(&self) -> Result<(), PushLoss> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.commands.try_send(Command::Flush(reply)).map_err(|_| {
            (
                LossKind::Failed,
                "the metrics push thread is busy or gone".into(),
            )
        })?;
        answer
            .recv_timeout(self.timeout)
            .unwrap_or_else(|_| Err((LossKind::Timeout, no_answer(self.timeout))))
    }

    /// Starts the final push; [`FinalPush::wait`] awaits it.
    pub(crate) fn begin_shutdown(&self) -> FinalPush {
        let (reply, answer) = mpsc::sync_channel(1);
        let answer = self
            .commands
            .try_send(Command::Shutdown(reply))
            .ok()
            .map(|()| answer);
        FinalPush {
            answer,
            health: self.health.clone(),
        }
    }
}

impl FinalPush {
    /// Waits for the final push until `by`, seals the counters and returns the final push's
    /// outcome (a push still running at `by` is lost to the timeout).
    pub(crate) fn wait(self, by: Instant) -> (Result<(), PushLoss>, super::PushCounts) {
        let outcome = match self.answer {
            None => Err((
                LossKind::Failed,
                "the metrics push thread is busy or gone".to_owned(),
            )),
            Some(answer) => {
                let wait = by.saturating_duration_since(Instant::now());
                match answer.recv_timeout(wait) {
                    Ok(outcome) => outcome,
                    Err(_) => Err((
                        LossKind::Timeout,
                        format!(
                            "the final push had no answer when the shutdown budget ran out \
                             ({} ms left)",
                            wait.as_millis()
                        ),
                    )),
                }
            }
        };
        // The push thread counted an answer it got; one it did not get is counted here.
        let outstanding = match &outcome {
            Err((LossKind::Timeout, _)) => Some(LossKind::Timeout),
            _ => None,
        };
        let counts = self.health.seal(outstanding);
        // An answer counted by the thread just as the wait ran out: the counts decide.
        let outcome = match outcome {
            Err((LossKind::Timeout, _)) if counts.final_counted && counts.last_delivered => Ok(()),
            other => other,
        };
        (outcome, counts)
    }
}

fn no_answer(timeout: Duration) -> String {
    format!("no answer within {} ms", timeout.as_millis())
}

struct PushThread {
    reader: Arc<ManualReader>,
    exporter: OtlpMetricExporter,
    health: MetricsExportHealth,
    interval: Duration,
}

impl PushThread {
    fn run(self, inbox: Receiver<Command>) {
        // What exporting does must not itself be measured or traced.
        let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
        let mut next = Instant::now() + self.interval;
        loop {
            match inbox.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {
                    next = Instant::now() + self.interval;
                    let _ = self.push(false);
                }
                Ok(Command::Flush(reply)) => {
                    let _ = reply.send(self.push(false));
                }
                Ok(Command::Shutdown(reply)) => {
                    let _ = reply.send(self.push(true));
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Collects and pushes once, counting the outcome.
    fn push(&self, final_push: bool) -> Result<(), PushLoss> {
        // A closed gate skips the collection too.
        let outcome = self.exporter.check().and_then(|()| {
            let mut rm = ResourceMetrics::default();
            self.reader
                .collect(&mut rm)
                .map_err(|e| (LossKind::Failed, format!("collecting the metrics: {e}")))?;
            self.exporter.export(&rm)
        });
        self.health.add(
            &outcome.as_ref().map(|r| *r).map_err(|(k, _)| *k),
            final_push,
        );
        outcome.map(drop)
    }
}
