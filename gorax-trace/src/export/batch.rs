//! A batch span processor with a bounded queue, its own export thread and health counters.
//!
//! The SDK's `BatchSpanProcessor` counts dropped spans but does not expose the count; this one
//! does ([`ExportHealth`]). `on_end` never blocks on export: it pushes the span into a bounded
//! buffer under a mutex held for a push (a full buffer drops the span and counts it), and wakes
//! the export thread only when a whole batch is ready, not per span (a channel send per span woke
//! the thread every time: +1.9 µs per sampled request, measured by the client benchmark). The
//! thread otherwise wakes every `scheduled_delay`. A dead collector therefore costs the request
//! path nothing, and memory is bounded by `max_queue_size` spans plus the batch being exported.

use std::collections::VecDeque;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use super::ExportHealth;
use crate::export::BatchSettings;

enum Control {
    Flush(SyncSender<OTelSdkResult>),
    Shutdown(Duration, SyncSender<OTelSdkResult>),
    Resource(Resource),
}

#[derive(Default)]
struct Queue {
    spans: VecDeque<SpanData>,
    control: VecDeque<Control>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    max_queue: usize,
    max_batch: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Batches finished spans and exports them on a dedicated thread.
///
/// ```
/// use gorax_trace::export::BatchSettings;
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
pub struct BatchProcessor {
    shared: Arc<Shared>,
    health: ExportHealth,
    worker: Mutex<Option<JoinHandle<()>>>,
    flush_timeout: Duration,
}

impl std::fmt::Debug for BatchProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("max_queue_size", &self.shared.max_queue)
            .field("max_export_batch_size", &self.shared.max_batch)
            .field("health", &self.health.snapshot())
            .finish_non_exhaustive()
    }
}

impl BatchProcessor {
    /// Starts the export thread for `exporter` with the queue and batch bounds of `settings`.
    pub fn new<E: SpanExporter + 'static>(exporter: E, settings: &BatchSettings) -> Self {
        let max_batch = settings.max_export_batch_size.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                spans: VecDeque::with_capacity(max_batch),
                ..Queue::default()
            }),
            wake: Condvar::new(),
            max_queue: settings.max_queue_size.max(1),
            max_batch,
        });
        let health = ExportHealth::default();
        let worker = Worker {
            exporter,
            shared: shared.clone(),
            health: health.clone(),
            // A zero delay would make the thread spin: one millisecond at least.
            delay: settings.scheduled_delay.max(Duration::from_millis(1)),
            failing: false,
        };
        let handle = std::thread::Builder::new()
            .name("gorax-trace-export".into())
            .spawn(move || worker.run())
            .ok();
        Self {
            shared,
            health,
            worker: Mutex::new(handle),
            flush_timeout: settings.export_timeout + Duration::from_secs(1),
        }
    }

    /// The counters of this processor (shared handle).
    pub fn health(&self) -> ExportHealth {
        self.health.clone()
    }

    /// Queues a control message and waits for its answer until `deadline`.
    fn control(
        &self,
        make: impl FnOnce(SyncSender<OTelSdkResult>) -> Control,
        deadline: Instant,
    ) -> OTelSdkResult {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        {
            let mut queue = self.shared.lock();
            if queue.closed {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            queue.control.push_back(make(reply_tx));
        }
        self.shared.wake.notify_one();
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
        let batch_ready = {
            let mut queue = self.shared.lock();
            if queue.closed || queue.spans.len() >= self.shared.max_queue {
                drop(queue);
                self.health.add_dropped(1);
                return;
            }
            queue.spans.push_back(span);
            queue.spans.len() == self.shared.max_batch
        };
        if batch_ready {
            self.shared.wake.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control(Control::Flush, Instant::now() + self.flush_timeout)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.control(
            |reply| Control::Shutdown(timeout, reply),
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
        self.shared
            .lock()
            .control
            .push_back(Control::Resource(resource.clone()));
        self.shared.wake.notify_one();
    }
}

impl Drop for BatchProcessor {
    fn drop(&mut self) {
        // A processor dropped without shutdown: let the thread export what is left and stop.
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

struct Worker<E> {
    exporter: E,
    shared: Arc<Shared>,
    health: ExportHealth,
    delay: Duration,
    failing: bool,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self) {
        // Whatever exporting does (HTTP client, gRPC) must not itself be traced into this queue.
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        let mut deadline = Instant::now() + self.delay;
        loop {
            let (spans, controls, closed) = {
                let mut queue = self.shared.lock();
                while queue.spans.len() < self.shared.max_batch
                    && queue.control.is_empty()
                    && !queue.closed
                {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    queue = self
                        .shared
                        .wake
                        .wait_timeout(queue, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                // One batch at a time (memory: the queue plus one batch), everything before a
                // flush or shutdown.
                let drain_all = queue.closed
                    || queue
                        .control
                        .iter()
                        .any(|c| !matches!(c, Control::Resource(_)));
                let n = if drain_all {
                    queue.spans.len()
                } else {
                    queue.spans.len().min(self.shared.max_batch)
                };
                let spans: Vec<SpanData> = queue.spans.drain(..n).collect();
                let controls = std::mem::take(&mut queue.control);
                (spans, controls, queue.closed)
            };
            let now = Instant::now();
            if now >= deadline {
                deadline = now + self.delay;
            }
            self.export(spans);
            for control in controls {
                match control {
                    Control::Resource(resource) => self.exporter.set_resource(&resource),
                    // Everything queued before the flush was taken above and is exported.
                    Control::Flush(reply) => {
                        let _ = reply.send(self.exporter.force_flush());
                    }
                    Control::Shutdown(timeout, reply) => {
                        self.close();
                        let _ = reply.send(self.exporter.shutdown_with_timeout(timeout));
                        return;
                    }
                }
            }
            if closed {
                self.close();
                let _ = self.exporter.shutdown();
                return;
            }
        }
    }

    /// Refuses new spans and exports the ones that arrived meanwhile; a flush or shutdown that
    /// raced in is answered now instead of waiting for its timeout.
    fn close(&mut self) {
        let (rest, late) = {
            let mut queue = self.shared.lock();
            queue.closed = true;
            let rest: Vec<SpanData> = queue.spans.drain(..).collect();
            (rest, std::mem::take(&mut queue.control))
        };
        self.export(rest);
        for control in late {
            match control {
                Control::Flush(reply) | Control::Shutdown(_, reply) => {
                    let _ = reply.send(Err(OTelSdkError::AlreadyShutdown));
                }
                Control::Resource(_) => {}
            }
        }
    }

    fn export(&mut self, mut spans: Vec<SpanData>) {
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(self.shared.max_batch));
            let n = spans.len();
            match futures_executor::block_on(self.exporter.export(spans)) {
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
            spans = rest;
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
        // The worker takes span 1 and blocks in export; 4 more fill the queue; the rest drop.
        for _ in 0..20 {
            tracer.in_span("s", |_| {});
        }
        let dropped = health.snapshot().spans_dropped;
        assert!((15..=16).contains(&dropped), "dropped {dropped}");
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
    fn zero_delay_does_not_spin() {
        let exporter = InMemorySpanExporter::default();
        let mut s = settings(16, 8);
        s.scheduled_delay = Duration::ZERO;
        let processor = BatchProcessor::new(exporter.clone(), &s);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        provider.tracer("t").in_span("soon", |_| {});
        let deadline = Instant::now() + Duration::from_secs(10);
        while exporter.get_finished_spans().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 1);
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
