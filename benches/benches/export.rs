//! Cost per span ended on the application thread, export path only: the gorax
//! `BatchProcessor` against the SDK's `BatchSpanProcessor` (opentelemetry_sdk 0.33, same bounds:
//! queue 2048, batch 512, delay 5 s) with a small exporter decorator that counts exported and
//! failed spans (what the SDK processor would need to report health). Both export to
//! [`DiscardExporter`]. `none` is the same span with a provider that has no processor: the span's
//! own cost, to subtract.
//!
//! The span is a server span with seven attributes (method, path, status, route, host, a 100-byte
//! user agent). Single-thread (`*/1-thread`) and two producer threads ending spans at the same
//! time (`*/2-threads`, time per span on one producer thread). Before criterion's times it prints
//! allocations per span (process-wide, so the export thread's are included) and, for a burst of
//! spans on two threads, how many each processor exported and dropped, and CPU time per span
//! (Linux `schedstat`, median of interleaved rounds): on the producer thread, and process-wide
//! (producers plus the export threads) — steadier than wall-clock time on a shared machine.
//!
//! `cargo bench -p gorax-benches --bench export` (numbers: README, Performance, "Export path")
//!
//! For callgrind: `GORAX_EXPORT_BENCH_ONLY=gorax:20000` runs that single-thread variant so many
//! times and exits (instructions per span = difference of two runs / difference of counts).
//!
//! Last, the OTLP throughput against a real receiver on 127.0.0.1 (README, Performance, "Export
//! throughput"); `GORAX_EXPORT_BENCH_ONLY=otlp` runs only that (see [`otlp_throughput`]).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gorax_benches::{CountingAlloc, DiscardExporter, allocations, allocations_per_call};
use gorax_trace::export::BatchSettings;
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

fn variants(settings: &BatchSettings) -> Vec<Variant> {
    let gorax = BatchProcessor::new(DiscardExporter, settings);
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

/// One server span with seven attributes, started and ended.
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

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), if available.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Nanoseconds all threads of this process have run (alive ones; the export threads live as
/// long as their provider).
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        let s = std::fs::read_to_string(path).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// CPU nanoseconds per span: (on one producer thread, process-wide) for `n` spans on each of
/// `threads` threads. The producers are not counted process-wide after they exit, so the
/// process-wide figure adds their own time.
fn cpu_per_span(tracer: &SdkTracer, threads: usize, n: u64) -> Option<(f64, f64)> {
    let start = Barrier::new(threads);
    let before = process_cpu_ns()?;
    let producers: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let t = thread_cpu_ns().unwrap_or(0);
                    for _ in 0..n {
                        one(tracer);
                    }
                    thread_cpu_ns().unwrap_or(0) - t
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let others = process_cpu_ns()?.saturating_sub(before);
    let mine: u64 = producers.iter().sum();
    let spans = (n * threads as u64) as f64;
    Some((mine as f64 / spans, (mine + others) as f64 / spans))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Spans exported so far (0 without a processor).
fn exported(v: &Variant) -> u64 {
    match &v.health {
        Health::Gorax(h) => h.snapshot().spans_exported,
        Health::Sdk(c) => c.exported.load(Ordering::Relaxed),
        Health::None => 0,
    }
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
    if std::env::var("GORAX_EXPORT_BENCH_ONLY").as_deref() == Ok("otlp") {
        otlp_throughput();
        std::process::exit(0);
    }
    let variants = variants(&BatchSettings::default());
    if let Ok(only) = std::env::var("GORAX_EXPORT_BENCH_ONLY") {
        let (name, n) = only.rsplit_once(':').expect("variant:count");
        let v = variants.iter().find(|v| v.name == name).expect("variant");
        // Warm up (the same in both runs, so it cancels out): buffers reach their size.
        for _ in 0..2_000 {
            one(&v.tracer);
        }
        let _ = v.provider.force_flush();
        for _ in 0..n.parse::<u64>().expect("count") {
            one(&v.tracer);
        }
        let _ = v.provider.force_flush();
        // Drops make a run cheaper: say how many spans were exported.
        match &v.health {
            Health::Gorax(h) => eprintln!("{:?}", h.snapshot()),
            Health::Sdk(c) => eprintln!("exported {}", c.exported.load(Ordering::Relaxed)),
            Health::None => {}
        }
        std::process::exit(0);
    }
    for v in &variants {
        one(&v.tracer); // warm up
        let single = allocations_per_call(20_000, || one(&v.tracer));
        let before = allocations();
        on_threads(&v.tracer, 2, 10_000);
        let two = (allocations() - before) as f64 / 20_000.0;
        println!(
            "allocations per span  {:<14} 1 thread {single:>6.3}   2 threads {two:>6.3}",
            v.name
        );
        let _ = v.provider.force_flush();
    }
    // For CPU time, a queue that holds a whole round (both processors): no drops, which would
    // make a span cheaper. (The default queue, 2048, overflows in a flat-out loop on a loaded
    // machine whenever the export thread is not scheduled for a millisecond.)
    let roomy = self::variants(
        &BatchSettings::default()
            .with_max_queue_size(1 << 17)
            .with_max_queue_bytes(1 << 30),
    );
    for threads in [1, 2] {
        let n = 50_000;
        let variants = &roomy;
        let mut rounds: Vec<Vec<(f64, f64)>> = vec![Vec::new(); variants.len()];
        let mut lost = vec![0; variants.len()];
        for _ in 0..5 {
            for (i, v) in variants.iter().enumerate() {
                let before = exported(v);
                if let Some(r) = cpu_per_span(&v.tracer, threads, n) {
                    rounds[i].push(r);
                }
                let _ = v.provider.force_flush();
                lost[i] += (n * threads as u64).saturating_sub(exported(v) - before);
            }
        }
        for ((v, r), lost) in variants.iter().zip(rounds).zip(lost) {
            if r.is_empty() {
                continue;
            }
            let producer = median(r.iter().map(|r| r.0).collect());
            let process = median(r.iter().map(|r| r.1).collect());
            let lost = match v.health {
                Health::None => String::new(),
                _ => format!("   not exported {lost} of {}", 5 * n * threads as u64),
            };
            println!(
                "CPU ns per span  {:<14} {threads} thread(s): producer {producer:>6.0}   process {process:>6.0}{lost}",
                v.name
            );
        }
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
    otlp_throughput();
    for v in variants.iter().chain(&roomy) {
        let _ = v.provider.shutdown();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

// ---------------------------------------------------------------------------------------------
// Throughput against a real OTLP receiver on 127.0.0.1 (issue 14).
//
// `GORAX_EXPORT_BENCH_ONLY=otlp` runs this part alone. A sink in this process (OTLP/HTTP: axum,
// reads and discards the body; OTLP/gRPC: the generated `TraceService`, which decodes it) on a
// one-thread runtime named `otlp-sink`; spans through `gorax_trace` as configured from variables
// (`TRACING_COMPRESSION`, `TRACING_EXPORT_CONCURRENCY`, default batch settings). One producer
// thread ends spans flat out for 1 s (the ceiling) and then paced at each rate of
// `GORAX_EXPORT_BENCH_RATES` (spans/s, default 200000,300000,400000,500000) for 2 s each; after a
// flush it prints spans/s offered and exported, the drop % (produced − exported, as counted by
// `ExportHealth`), the export CPU per exported span (every thread of the process but the producer,
// the sink and the main thread: export thread, its helpers, the HTTP client's or gRPC runtime)
// and, over HTTP, the bytes per span on the wire (request bodies as received, compressed or not).
// `GORAX_EXPORT_BENCH_OTLP` picks variants (default `http,http+gzip,grpc,grpc+gzip`), each run
// at each concurrency of `GORAX_EXPORT_BENCH_CONCURRENCY` (default `1,2`).

/// Bytes of request bodies the sink received, and requests.
#[derive(Clone, Default)]
struct SinkCounts {
    bytes: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

async fn discard(
    axum::extract::State(counts): axum::extract::State<SinkCounts>,
    body: axum::body::Bytes,
) -> &'static str {
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    counts.requests.fetch_add(1, Ordering::Relaxed);
    ""
}

struct GrpcSink(SinkCounts);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for GrpcSink
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        use prost::Message as _;
        // Decoded size (uncompressed): tonic does not expose the wire size.
        let n = request.get_ref().encoded_len() as u64;
        self.0.bytes.fetch_add(n, Ordering::Relaxed);
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        Ok(tonic::Response::new(Default::default()))
    }
}

/// The sinks' runtime, and the HTTP and gRPC endpoints.
fn sinks(counts: &SinkCounts) -> (tokio::runtime::Runtime, String, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-sink")
        .enable_all()
        .build()
        .expect("sink runtime");
    let (http, grpc) = rt.block_on(async {
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(discard))
            .with_state(counts.clone());
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(http, app).await.unwrap() });
        let grpc = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        grpc.set_nonblocking(true).unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let grpc = tokio::net::TcpListener::from_std(grpc).unwrap();
        let service = opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(GrpcSink(counts.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc)),
        );
        (
            format!("http://{http_addr}/v1/traces"),
            format!("http://{grpc_addr}"),
        )
    });
    (rt, http, grpc)
}

/// CPU nanoseconds of every live thread of this process, by thread id, with its name.
fn threads_cpu() -> std::collections::HashMap<String, (String, u64)> {
    let mut out = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let cpu = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        out.insert(
            task.file_name().to_string_lossy().into_owned(),
            (name.trim().to_owned(), cpu),
        );
    }
    out
}

/// CPU of the threads that export (all but the producer, the sink and this thread) between two
/// readings.
fn export_cpu(
    before: &std::collections::HashMap<String, (String, u64)>,
    after: &std::collections::HashMap<String, (String, u64)>,
    exclude: &[String],
) -> u64 {
    after
        .iter()
        .filter(|(tid, (name, _))| !exclude.contains(tid) && !name.starts_with("otlp-sink"))
        .map(|(tid, (_, cpu))| cpu - before.get(tid).map_or(0, |b| b.1).min(*cpu))
        .sum()
}

fn this_tid() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// Ends spans for `duration`, at `rate` spans/s (flat out for `None`); returns how many.
fn produce(tracer: &SdkTracer, rate: Option<u64>, duration: Duration, tid: &mut String) -> u64 {
    *tid = this_tid();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        for _ in 0..200 {
            one(tracer);
        }
        n += 200;
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    n
}

/// The OTLP throughput measurement described above: every variant, concurrency and rate.
fn otlp_throughput() {
    let counts = SinkCounts::default();
    let (_rt, http, grpc) = sinks(&counts);
    let list = |var: &str, default: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_else(|_| default.to_owned())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let rates: Vec<u64> = list("GORAX_EXPORT_BENCH_RATES", "200000,300000,400000,500000")
        .iter()
        .map(|r| r.parse().expect("rate"))
        .collect();
    let main_tid = this_tid();
    for variant in list("GORAX_EXPORT_BENCH_OTLP", "http,http+gzip,grpc,grpc+gzip") {
        for concurrency in list("GORAX_EXPORT_BENCH_CONCURRENCY", "1,2") {
            let (endpoint, protocol) = if variant.starts_with("grpc") {
                (grpc.as_str(), "grpc")
            } else {
                (http.as_str(), "http/protobuf")
            };
            let compression = if variant.ends_with("+gzip") {
                "gzip"
            } else {
                "none"
            };
            let config = gorax_trace::config::TraceConfig::from_vars([
                ("TRACING_ENDPOINT", endpoint),
                ("TRACING_PROTOCOL", protocol),
                ("TRACING_COMPRESSION", compression),
                ("TRACING_EXPORT_CONCURRENCY", concurrency.as_str()),
            ])
            .expect("config");
            let telemetry = gorax_trace::Telemetry::new(&config).expect("telemetry");
            let tracer = telemetry.tracer().clone();
            let health = telemetry.health();
            for _ in 0..5_000 {
                one(&tracer);
            }
            let _ = telemetry.force_flush();
            let steps = std::iter::once(None).chain(rates.iter().copied().map(Some));
            for rate in steps {
                let duration = Duration::from_secs(if rate.is_none() { 1 } else { 2 });
                let (h0, b0) = (health.snapshot(), counts.bytes.load(Ordering::Relaxed));
                let cpu0 = threads_cpu();
                let mut producer = String::new();
                let started = Instant::now();
                let produced = std::thread::scope(|s| {
                    s.spawn(|| produce(&tracer, rate, duration, &mut producer))
                        .join()
                        .unwrap()
                });
                let offered = produced as f64 / started.elapsed().as_secs_f64();
                let _ = telemetry.force_flush();
                let elapsed = started.elapsed().as_secs_f64();
                let cpu1 = threads_cpu();
                let h1 = health.snapshot();
                let exported = h1.spans_exported - h0.spans_exported;
                let lost = produced.saturating_sub(exported);
                let cpu = export_cpu(&cpu0, &cpu1, &[main_tid.clone(), producer]);
                let bytes = counts.bytes.load(Ordering::Relaxed) - b0;
                println!(
                    "otlp {variant:<10} concurrency {concurrency}  {:<9} offered {:>7.0} k/s  \
                     exported {:>7.0} k/s  dropped {:>6.2} % (queue {} bytes {} failed {})  \
                     export CPU {:>5.2} µs/span  {} {:>5.0} bytes/span",
                    rate.map_or("flat out".to_owned(), |r| format!("{} k/s", r / 1000)),
                    offered / 1e3,
                    exported as f64 / elapsed / 1e3,
                    100.0 * lost as f64 / produced.max(1) as f64,
                    h1.spans_dropped - h0.spans_dropped,
                    h1.spans_dropped_bytes - h0.spans_dropped_bytes,
                    h1.spans_failed - h0.spans_failed,
                    cpu as f64 / exported.max(1) as f64 / 1e3,
                    if variant.starts_with("grpc") {
                        "decoded"
                    } else {
                        "wire"
                    },
                    bytes as f64 / exported.max(1) as f64,
                );
            }
            let _ = telemetry.shutdown();
        }
    }
}
