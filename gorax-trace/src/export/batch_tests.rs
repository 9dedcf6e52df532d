//! Tests of [`batch`](super).
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

/// An exporter whose export never completes: a future that stays pending (`park` false) or
/// one that blocks its thread inside `poll` (`park` true, like a blocking HTTP client).
#[derive(Debug)]
struct Hung {
    calls: Arc<std::sync::atomic::AtomicUsize>,
    park: bool,
    never: Mutex<mpsc::Receiver<()>>,
    _keep: Mutex<mpsc::Sender<()>>,
}
impl Hung {
    fn new(park: bool) -> (Self, Arc<std::sync::atomic::AtomicUsize>) {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let hung = Self {
            calls: calls.clone(),
            park,
            never: Mutex::new(rx),
            _keep: Mutex::new(tx),
        };
        (hung, calls)
    }
}
impl SpanExporter for Hung {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.park {
            let _ = self.never.lock().unwrap().recv();
        }
        std::future::pending().await
    }
}

fn hung_export_does_not_hold_the_thread(park: bool) {
    let (hung, calls) = Hung::new(park);
    let mut s = settings(8, 4);
    s.export_timeout = Duration::from_millis(200);
    let processor = BatchProcessor::new(hung, &s);
    let health = processor.health();
    let span = finished_span();
    // Liveness bounds, not performance: the timeout is 200 ms, a hang would be forever.
    let bound = Duration::from_secs(5);

    for _ in 0..4 {
        processor.on_end(span.clone());
    }
    let started = Instant::now();
    let _ = processor.force_flush();
    assert!(
        started.elapsed() < bound,
        "flush took {:?}",
        started.elapsed()
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let after_first = health.snapshot();
    assert_eq!(
        (after_first.spans_failed, after_first.export_failures),
        (4, 1)
    );

    // The thread is free: later batches fail at once (the hung export still holds the
    // exporter) instead of queueing behind it; nothing is lost uncounted.
    for _ in 0..20 {
        processor.on_end(span.clone());
    }
    let started = Instant::now();
    let _ = processor.force_flush();
    assert!(
        started.elapsed() < bound,
        "flush took {:?}",
        started.elapsed()
    );
    let s = health.snapshot();
    assert_eq!(s.spans_exported, 0);
    assert_eq!(s.spans_failed + s.spans_dropped, 24, "{s:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    let started = Instant::now();
    let _ = processor.shutdown_with_timeout(Duration::from_millis(300));
    assert!(
        started.elapsed() < bound,
        "shutdown took {:?}",
        started.elapsed()
    );
    processor.on_end(span);
    let s = health.snapshot();
    assert_eq!(s.spans_failed + s.spans_dropped, 25, "{s:?}");
}

#[test]
fn pending_export_is_abandoned_at_the_timeout() {
    hung_export_does_not_hold_the_thread(false);
}

#[test]
fn blocking_export_is_abandoned_at_the_timeout() {
    hung_export_does_not_hold_the_thread(true);
}

fn span_with_attribute(provider: &SdkTracerProvider, bytes: usize) {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::Span as _;
    let mut span = provider.tracer("t").start("big");
    span.set_attribute(KeyValue::new("user_agent.original", "x".repeat(bytes)));
    span.end();
}

#[test]
fn byte_budget_drops_and_counts_and_frees_after_export() {
    let exporter = InMemorySpanExporter::default();
    let mut s = settings(100, 100);
    s.max_queue_bytes = 64 * 1024;
    let processor = BatchProcessor::new(exporter.clone(), &s);
    let health = processor.health();
    let shared = processor.shared.clone();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();

    // Three 20 KB spans fit in 64 KiB, the fourth does not; a 100 KB span never fits.
    for _ in 0..4 {
        span_with_attribute(&provider, 20_000);
    }
    span_with_attribute(&provider, 100_000);
    let s = health.snapshot();
    assert_eq!((s.spans_dropped, s.spans_dropped_bytes), (2, 2), "{s:?}");
    // Small spans still fit beside them.
    provider.tracer("t").in_span("small", |_| {});
    let queued = shared.lock().bytes;
    assert!((60_000..64 * 1024).contains(&queued), "{queued}");

    provider.force_flush().unwrap();
    assert_eq!(exporter.get_finished_spans().unwrap().len(), 4);
    assert_eq!(shared.lock().bytes, 0, "exported spans no longer count");
    // The budget is free again.
    span_with_attribute(&provider, 20_000);
    provider.force_flush().unwrap();
    let s = health.snapshot();
    assert_eq!((s.spans_exported, s.spans_dropped_bytes), (5, 2), "{s:?}");
    assert!(
        health
            .render_prometheus()
            .contains("otel_processor_spans_dropped_bytes_total 2")
    );
}

#[test]
fn span_size_counts_what_grows_with_input() {
    let small = finished_span();
    let base = span_size(&small);
    assert!(base >= std::mem::size_of::<SpanData>());
    let mut big = small.clone();
    big.attributes.push(opentelemetry::KeyValue::new(
        "url.query",
        "q".repeat(10_000),
    ));
    big.events.events.push(opentelemetry::trace::Event::new(
        "exception",
        std::time::SystemTime::now(),
        vec![opentelemetry::KeyValue::new(
            "exception.message",
            "m".repeat(5_000),
        )],
        0,
    ));
    let grown = span_size(&big) - base;
    assert!((15_000..16_000).contains(&grown), "{grown}");
}

#[test]
fn default_byte_budget_is_16_mib() {
    assert_eq!(BatchSettings::default().max_queue_bytes, 16 << 20);
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

/// An exporter whose exports return only once `n` of them are in flight at the same time.
#[derive(Debug, Clone)]
struct Together(Arc<Barrier>, InMemorySpanExporter);
impl SpanExporter for Together {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.wait();
        self.1.export(batch).await
    }
}

#[test]
fn exports_run_concurrently_up_to_the_limit() {
    let together = Together(Arc::new(Barrier::new(3)), InMemorySpanExporter::default());
    let processor = BatchProcessor::with_concurrent_exports(together.clone(), &settings(64, 4), 3);
    let health = processor.health();
    for _ in 0..12 {
        processor.on_end(finished_span());
    }
    // Three batches of four: they return only if all three are in flight at once.
    processor.force_flush().unwrap();
    let s = health.snapshot();
    assert_eq!(
        (s.spans_exported, s.spans_failed, s.spans_dropped),
        (12, 0, 0)
    );
    assert_eq!(together.1.get_finished_spans().unwrap().len(), 12);
    assert_eq!(processor.shared.lock().bytes, 0);
    assert_eq!(processor.shared.lock().in_flight, 0);
}

#[test]
fn hung_exports_hold_at_most_their_slots_and_the_bounds() {
    let (hung, calls) = Hung::new(true);
    let mut s = settings(8, 4);
    s.export_timeout = Duration::from_millis(200);
    let processor = BatchProcessor::with_concurrent_exports(hung, &s, 2);
    let health = processor.health();
    let shared = processor.shared.clone();
    let bound = Duration::from_secs(5);

    // Two batches: both in flight at once, both abandoned at the timeout.
    for _ in 0..8 {
        processor.on_end(finished_span());
    }
    let started = Instant::now();
    let _ = processor.force_flush();
    assert!(
        started.elapsed() < bound,
        "flush took {:?}",
        started.elapsed()
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    let s = health.snapshot();
    // Two helpers hold two batches: 4 and 4, or, when the export thread woke in the middle
    // of the burst, 4 and what it took with them; a batch past them fails at once.
    assert_eq!(s.spans_failed, 8, "{s:?}");
    assert!((2..=3).contains(&s.export_failures), "{s:?}");
    // The hung exports still hold their spans: they count against the bounds (the queue of
    // 8 plus one batch of 4 per export in flight, 16 in all).
    assert_eq!(shared.lock().in_flight as u64, s.spans_timed_out, "{s:?}");

    // Every helper is held: later batches fail at once, nothing more reaches the exporter,
    // and what does not fit is dropped and counted.
    for _ in 0..40 {
        processor.on_end(finished_span());
    }
    let queued = shared.lock().spans.len();
    assert!(queued + shared.lock().in_flight <= 16, "{queued}");
    let started = Instant::now();
    let _ = processor.force_flush();
    assert!(
        started.elapsed() < bound,
        "flush took {:?}",
        started.elapsed()
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    let s = health.snapshot();
    assert_eq!(s.spans_exported, 0);
    assert_eq!(s.spans_failed + s.spans_dropped, 48, "{s:?}");

    let started = Instant::now();
    let _ = processor.shutdown_with_timeout(Duration::from_millis(300));
    assert!(
        started.elapsed() < bound,
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_panicking_export_is_a_counted_failure() {
    #[derive(Debug)]
    struct Panics;
    impl SpanExporter for Panics {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            panic!("exporter bug")
        }
    }
    let processor = BatchProcessor::with_concurrent_exports(Panics, &settings(16, 2), 2);
    let health = processor.health();
    for _ in 0..6 {
        processor.on_end(finished_span());
    }
    processor.force_flush().unwrap();
    let s = health.snapshot();
    // Batches of at most 2: at least 3 exports, more when the export thread takes a batch
    // before the next span arrives. Every span is counted failed once.
    assert_eq!(s.spans_failed, 6, "{s:?}");
    assert!((3..=6).contains(&s.export_failures), "{s:?}");
    assert_eq!(processor.shared.lock().in_flight, 0);
}
