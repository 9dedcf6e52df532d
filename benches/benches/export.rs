//! Cost per span ended on the application thread, export path only: the gorax
//! `BatchProcessor` against the SDK's `BatchSpanProcessor` (opentelemetry_sdk 0.33, same bounds:
//! queue 2048, batch 512, delay 5 s) with a small exporter decorator that counts exported and
//! failed spans (what the SDK processor would need to report health). Both export to
//! [`DiscardExporter`]. `none` is the same span with a provider that has no processor: the span's
//! own cost, to subtract.
//!
//! The span is a server span with six attributes (method, path, status, route, host, a 100-byte
//! user agent). Single-thread (`*/1-thread`) and two producer threads ending spans at the same
//! time (`*/2-threads`, time per span on one producer thread). Before criterion's times it prints
//! allocations per span (process-wide, so the export thread's are included) and, for a burst of
//! spans on two threads, how many each processor exported and dropped.
//!
//! `cargo bench -p gorax-benches --bench export`
//!
//! For callgrind: `GORAX_EXPORT_BENCH_ONLY=gorax:20000` runs that single-thread variant so many
//! times and exits (instructions per span = difference of two runs / difference of counts).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gorax_benches::{CountingAlloc, DiscardExporter, allocations, allocations_per_call};
use gorax_trace::config::BatchSettings;
use gorax_trace::export::{BatchProcessor, ExportHealth};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Exported and failed spans, as counted by [`Counting`].
#[derive(Debug, Clone, Default)]
struct Counts {
    exported: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

/// The decorator the SDK processor would need: counts what the exporter accepted or refused.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    counts: Counts,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = match result {
            Ok(()) => &self.counts.exported,
            Err(_) => &self.counts.failed,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

enum Health {
    Gorax(ExportHealth),
    Sdk(Counts),
    None,
}

struct Variant {
    name: &'static str,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    health: Health,
}

fn variants() -> Vec<Variant> {
    let settings = BatchSettings::default();
    let gorax = BatchProcessor::new(DiscardExporter, &settings);
    let gorax_health = gorax.health();
    let counts = Counts::default();
    let sdk = BatchSpanProcessor::builder(Counting {
        inner: DiscardExporter,
        counts: counts.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(settings.max_queue_size)
            .with_max_export_batch_size(settings.max_export_batch_size)
            .with_scheduled_delay(settings.scheduled_delay)
            .build(),
    )
    .build();
    let make = |name, provider: SdkTracerProvider, health| Variant {
        name,
        tracer: provider.tracer("bench"),
        provider,
        health,
    };
    vec![
        make("none", SdkTracerProvider::builder().build(), Health::None),
        make(
            "gorax",
            SdkTracerProvider::builder()
                .with_span_processor(gorax)
                .build(),
            Health::Gorax(gorax_health),
        ),
        make(
            "sdk+counting",
            SdkTracerProvider::builder()
                .with_span_processor(sdk)
                .build(),
            Health::Sdk(counts),
        ),
    ]
}

/// One server span with six attributes, started and ended.
fn one(tracer: &SdkTracer) {
    let mut span = tracer
        .span_builder("GET /users/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.path", "/users/42"),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("http.route", "/users/{id}"),
            KeyValue::new("server.address", "api.example.com"),
            KeyValue::new(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0 Safari/537.36",
            ),
        ])
        .start(tracer);
    span.set_attribute(KeyValue::new("bench", true));
    span.end();
    black_box(&span);
}

/// Time per span on each of `threads` producer threads ending `iters` spans at once.
fn on_threads(tracer: &SdkTracer, threads: usize, iters: u64) -> Duration {
    let start = Barrier::new(threads);
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let t = Instant::now();
                    for _ in 0..iters {
                        one(tracer);
                    }
                    t.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total / threads as u32
}

/// Exported and dropped spans after a burst of `n` spans on two threads and a flush.
fn burst(v: &Variant, n: u64) -> String {
    let before = match &v.health {
        Health::Gorax(h) => h.snapshot().spans_exported,
        Health::Sdk(c) => c.exported.load(Ordering::Relaxed),
        Health::None => 0,
    };
    let dropped_before = match &v.health {
        Health::Gorax(h) => h.snapshot().spans_dropped,
        _ => 0,
    };
    on_threads(&v.tracer, 2, n / 2);
    let _ = v.provider.force_flush();
    match &v.health {
        Health::Gorax(h) => {
            let s = h.snapshot();
            format!(
                "exported {:>6}, dropped {:>6} (counted by the processor)",
                s.spans_exported - before,
                s.spans_dropped - dropped_before
            )
        }
        Health::Sdk(c) => {
            let exported = c.exported.load(Ordering::Relaxed) - before;
            format!(
                "exported {exported:>6}, dropped {:>6} (inferred: sent - exported; the processor keeps its count private)",
                n - exported
            )
        }
        Health::None => "no processor".to_owned(),
    }
}

fn bench(c: &mut Criterion) {
    let variants = variants();
    if let Ok(only) = std::env::var("GORAX_EXPORT_BENCH_ONLY") {
        let (name, n) = only.rsplit_once(':').expect("variant:count");
        let v = variants.iter().find(|v| v.name == name).expect("variant");
        for _ in 0..n.parse::<u64>().expect("count") {
            one(&v.tracer);
        }
        let _ = v.provider.force_flush();
        std::process::exit(0);
    }
    for v in &variants {
        one(&v.tracer); // warm up
        let single = allocations_per_call(20_000, || one(&v.tracer));
        let before = allocations();
        on_threads(&v.tracer, 2, 10_000);
        let two = (allocations() - before) as f64 / 20_000.0;
        println!(
            "allocations per span  {:<14} 1 thread {single:>5.2}   2 threads {two:>5.2}",
            v.name
        );
        let _ = v.provider.force_flush();
    }
    for v in &variants {
        println!(
            "burst of 200000 spans  {:<14} {}",
            v.name,
            burst(v, 200_000)
        );
    }

    let mut g = c.benchmark_group("export");
    for v in &variants {
        g.bench_function(format!("{}/1-thread", v.name), |b| {
            b.iter(|| one(&v.tracer))
        });
        g.bench_function(format!("{}/2-threads", v.name), |b| {
            b.iter_custom(|iters| on_threads(&v.tracer, 2, iters))
        });
    }
    g.finish();
    for v in &variants {
        let _ = v.provider.shutdown();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
