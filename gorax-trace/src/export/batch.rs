//! A batch span processor with a bounded queue, its own export thread and health counters.
//!
//! The SDK's `BatchSpanProcessor` counts dropped spans but does not expose the count; this one
//! does ([`ExportHealth`]), and is otherwise the same design: `on_end` never blocks (a full queue
//! drops the span and counts it), export runs on a dedicated thread, so a dead collector costs
//! the request path nothing and memory is bounded by `max_queue_size` spans plus one batch.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use super::ExportHealth;
use crate::config::BatchSettings;

enum Message {
    Span(Box<SpanData>),
    Flush(SyncSender<OTelSdkResult>),
    Shutdown(Duration, SyncSender<OTelSdkResult>),
    Resource(Resource),
}

/// Batches finished spans and exports them on a dedicated thread.
///
/// ```
/// use gorax_trace::config::BatchSettings;
/// use gorax_trace::export::BatchProcessor;
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
///
/// let exporter = InMemorySpanExporter::default();
/// let processor = BatchProcessor::new(exporter.clone(), &BatchSettings::default());
/// let health = processor.health();
/// let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
/// # use opentelemetry::trace::{Tracer, TracerProvider};
/// provider.tracer("doc").in_span("work", |_| {});
/// provider.force_flush().unwrap();
/// assert_eq!(exporter.get_finished_spans().unwrap().len(), 1);
/// assert_eq!(health.snapshot().spans_exported, 1);
/// ```
#[derive(Debug)]
pub struct BatchProcessor {
    tx: SyncSender<Message>,
    health: ExportHealth,
    worker: std::sync::Mutex<Option<JoinHandle<()>>>,
    flush_timeout: Duration,
}

impl BatchProcessor {
    /// Starts the export thread for `exporter` with the queue and batch bounds of `settings`.
    pub fn new<E: SpanExporter + 'static>(exporter: E, settings: &BatchSettings) -> Self {
        let (tx, rx) = mpsc::sync_channel(settings.max_queue_size.max(1));
        let health = ExportHealth::default();
        let worker = Worker {
            exporter,
            rx,
            health: health.clone(),
            batch: Vec::with_capacity(settings.max_export_batch_size),
            max_batch: settings.max_export_batch_size.max(1),
            delay: settings.scheduled_delay,
            failing: false,
        };
        let handle = std::thread::Builder::new()
            .name("gorax-trace-export".into())
            .spawn(move || worker.run())
            .ok();
        Self {
            tx,
            health,
            worker: std::sync::Mutex::new(handle),
            flush_timeout: settings.export_timeout + Duration::from_secs(1),
        }
    }

    /// The counters of this processor (shared handle).
    pub fn health(&self) -> ExportHealth {
        self.health.clone()
    }

    /// Sends a control message, waiting at most until `deadline` for room in the queue.
    fn control(
        &self,
        make: impl Fn(SyncSender<OTelSdkResult>) -> Message,
        deadline: Instant,
    ) -> OTelSdkResult {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let mut message = make(reply_tx);
        loop {
            match self.tx.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    message = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Full(_)) => {
                    return Err(OTelSdkError::Timeout(self.flush_timeout));
                }
                Err(TrySendError::Disconnected(_)) => return Err(OTelSdkError::AlreadyShutdown),
            }
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        reply_rx
            .recv_timeout(wait)
            .unwrap_or(Err(OTelSdkError::Timeout(wait)))
    }
}

impl SpanProcessor for BatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.tx.try_send(Message::Span(Box::new(span))).is_err() {
            self.health.add_dropped(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control(Message::Flush, Instant::now() + self.flush_timeout)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.control(
            |reply| Message::Shutdown(timeout, reply),
            Instant::now() + timeout,
        );
        if result.is_ok()
            && let Some(handle) = self.worker.lock().ok().and_then(|mut w| w.take())
        {
            let _ = handle.join();
        }
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        let _ = self.tx.try_send(Message::Resource(resource.clone()));
    }
}

struct Worker<E> {
    exporter: E,
    rx: Receiver<Message>,
    health: ExportHealth,
    batch: Vec<SpanData>,
    max_batch: usize,
    delay: Duration,
    failing: bool,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self) {
        let mut deadline = Instant::now() + self.delay;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Message::Span(span)) => {
                    self.batch.push(*span);
                    if self.batch.len() >= self.max_batch {
                        self.export();
                    }
                }
                Ok(Message::Flush(reply)) => {
                    self.drain();
                    let _ = reply.send(self.exporter.force_flush());
                }
                Ok(Message::Shutdown(timeout, reply)) => {
                    self.drain();
                    let _ = reply.send(self.exporter.shutdown_with_timeout(timeout));
                    return;
                }
                Ok(Message::Resource(resource)) => self.exporter.set_resource(&resource),
                Err(RecvTimeoutError::Timeout) => {
                    self.export();
                    deadline = Instant::now() + self.delay;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.export();
                    let _ = self.exporter.shutdown();
                    return;
                }
            }
        }
    }

    /// Exports everything queued so far.
    fn drain(&mut self) {
        while let Ok(message) = self.rx.try_recv() {
            match message {
                Message::Span(span) => {
                    self.batch.push(*span);
                    if self.batch.len() >= self.max_batch {
                        self.export();
                    }
                }
                Message::Resource(resource) => self.exporter.set_resource(&resource),
                // A concurrent flush is answered by this one.
                Message::Flush(reply) => {
                    let _ = reply.send(Ok(()));
                }
                Message::Shutdown(_, reply) => {
                    let _ = reply.send(Err(OTelSdkError::InternalFailure(
                        "shutdown raced with flush".into(),
                    )));
                }
            }
        }
        self.export();
    }

    fn export(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let n = self.batch.len();
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.max_batch));
        match futures_executor::block_on(self.exporter.export(batch)) {
            Ok(()) => {
                self.health.add_exported(n);
                if self.failing {
                    self.failing = false;
                    tracing::info!("span export recovered");
                }
            }
            Err(error) => {
                self.health.add_failed(n);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(%error, spans = n, "span export failed; spans are dropped until the exporter recovers");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use std::sync::{Arc, Barrier};

    /// An exporter that blocks until released, to fill the queue deterministically.
    #[derive(Debug, Clone)]
    struct Gate(Arc<Barrier>, InMemorySpanExporter);
    impl SpanExporter for Gate {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.wait();
            self.1.export(batch).await
        }
    }

    #[derive(Debug)]
    struct Failing;
    impl SpanExporter for Failing {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Err(OTelSdkError::InternalFailure("collector down".into()))
        }
    }

    fn finished_span() -> SpanData {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        provider.tracer("t").in_span("late", |_| {});
        exporter.get_finished_spans().unwrap().remove(0)
    }

    fn settings(queue: usize, batch: usize) -> BatchSettings {
        BatchSettings {
            max_queue_size: queue,
            max_export_batch_size: batch,
            scheduled_delay: Duration::from_secs(60),
            ..BatchSettings::default()
        }
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let gate = Gate(Arc::new(Barrier::new(2)), InMemorySpanExporter::default());
        let processor = BatchProcessor::new(gate.clone(), &settings(4, 1));
        let health = processor.health();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("t");
        // The worker takes span 1 and blocks in export; 4 more fill the queue (one slot may
        // still hold the provider's resource message); the rest drop.
        for _ in 0..20 {
            tracer.in_span("s", |_| {});
        }
        let dropped = health.snapshot().spans_dropped;
        assert!((15..=17).contains(&dropped), "dropped {dropped}");
        // Release the worker for each queued span.
        let exported_expected = 20 - dropped;
        for _ in 0..exported_expected {
            gate.0.wait();
        }
        provider.force_flush().unwrap();
        assert_eq!(health.snapshot().spans_exported, exported_expected);
        assert_eq!(
            gate.1.get_finished_spans().unwrap().len() as u64,
            exported_expected
        );
        assert!(
            health
                .render_prometheus()
                .contains(&format!("otel_processor_spans_dropped_total {dropped}"))
        );
    }

    #[test]
    fn failed_exports_are_counted() {
        let processor = BatchProcessor::new(Failing, &settings(16, 2));
        let health = processor.health();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("t");
        for _ in 0..5 {
            tracer.in_span("s", |_| {});
        }
        provider.force_flush().unwrap();
        let s = health.snapshot();
        assert_eq!(
            (s.spans_failed, s.export_failures, s.spans_exported),
            (5, 3, 0)
        );
    }

    #[test]
    fn shutdown_exports_what_is_queued_and_later_spans_drop() {
        let exporter = InMemorySpanExporter::default();
        let processor = BatchProcessor::new(exporter.clone(), &settings(16, 8));
        let health = processor.health();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("t");
        tracer.in_span("before", |_| {});
        provider.shutdown().unwrap();
        assert_eq!(health.snapshot().spans_exported, 1);
        // The processor is gone: a span ended now is counted as dropped, not queued forever.
        let processor = BatchProcessor::new(exporter, &settings(16, 8));
        let health = processor.health();
        processor.shutdown().unwrap();
        processor.on_end(finished_span());
        assert_eq!(health.snapshot().spans_dropped, 1);
    }

    #[test]
    fn scheduled_delay_exports_without_flush() {
        let exporter = InMemorySpanExporter::default();
        let mut s = settings(16, 8);
        s.scheduled_delay = Duration::from_millis(20);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchProcessor::new(exporter.clone(), &s))
            .build();
        provider.tracer("t").in_span("timed", |_| {});
        let deadline = Instant::now() + Duration::from_secs(10);
        while exporter.get_finished_spans().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 1);
    }
}
