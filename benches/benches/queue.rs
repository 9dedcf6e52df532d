//! Produce + consume overhead per message: the in-memory adapter with the gorax producer span and
//! consumer layer (sampled, unsampled) against the same tokio channel carrying the same envelope
//! (message id, redelivery copy) without tracing. Prints allocations per message next to criterion's times.
//!
//! `cargo bench -p gorax-benches --bench queue`
//!
//! For callgrind: `GORAX_QUEUE_BENCH_ONLY=gorax/sampled:3000` (or `bare channel`,
//! `gorax/unsampled`) runs that variant so many times and exits; instructions per message are
//! the difference of two runs divided by the difference of their counts.

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gorax_benches::{CountingAlloc, allocations_per_call};
use gorax_trace_queue::memory::{self, MemoryConsumer, MemoryProducer};
use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::Sampler;
use tokio::sync::mpsc;
use tower::{Service, ServiceBuilder, ServiceExt};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const QUEUE: &str = "gorax-executions";

async fn handle(msg: TracedMessage<u64>) -> Result<u64, Infallible> {
    Ok(black_box(*msg.payload()))
}

type Worker = gorax_trace_queue::ConsumerTraceService<
    tower::util::ServiceFn<
        fn(
            TracedMessage<u64>,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<u64, Infallible>> + Send>>,
    >,
>;

fn boxed(
    msg: TracedMessage<u64>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<u64, Infallible>> + Send>> {
    Box::pin(handle(msg))
}

struct Traced {
    producer: MemoryProducer<u64>,
    consumer: MemoryConsumer<u64>,
    worker: Worker,
}

fn traced(sampler: Sampler) -> (Traced, opentelemetry_sdk::trace::SdkTracerProvider) {
    // As `init` says of the sampler: always-off drops the children of unsampled parents.
    let drops = matches!(sampler, Sampler::AlwaysOff);
    let provider = gorax_benches::provider(sampler);
    let handle = gorax_trace::TelemetryHandle::new(
        provider.tracer("bench"),
        gorax_trace::Settings::default().with_drops_unsampled_children(drops),
        gorax_trace::export::ExportHealth::default(),
    );
    let (producer, consumer) = memory::channel::<u64>(QUEUE, 1024);
    let handler: fn(TracedMessage<u64>) -> _ = boxed;
    let worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_telemetry(&handle))
        .service(tower::service_fn(handler));
    (
        Traced {
            producer: producer.with_telemetry(&handle),
            consumer,
            worker,
        },
        provider,
    )
}

fn round_trip(rt: &tokio::runtime::Runtime, t: &mut Traced) {
    rt.block_on(async {
        t.producer.send_payload(7).await.unwrap();
        assert_eq!(t.consumer.process(&mut t.worker).await, Some(true));
    });
}

fn bare(
    rt: &tokio::runtime::Runtime,
    tx: &mpsc::Sender<TracedMessage<u64>>,
    rx: &mut mpsc::Receiver<TracedMessage<u64>>,
) {
    rt.block_on(async {
        let msg = TracedMessage::new(QUEUE, 7_u64).with_message_id("1");
        tx.send(msg).await.unwrap();
        let msg = rx.recv().await.unwrap();
        // What the memory adapter does besides tracing: keep a copy for redelivery.
        black_box(msg.clone());
        let mut svc = tower::service_fn(boxed);
        let ready = ServiceExt::<TracedMessage<u64>>::ready(&mut svc)
            .await
            .unwrap();
        black_box(ready.call(msg).await.unwrap());
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::channel(1024);
    let (mut sampled, p1) = traced(Sampler::AlwaysOn);
    let (mut unsampled, p2) = traced(Sampler::AlwaysOff);

    if let Ok(only) = std::env::var("GORAX_QUEUE_BENCH_ONLY") {
        let (only, n) = only.rsplit_once(':').expect("variant:count");
        let n = n.parse::<u64>().expect("count");
        let allocations = allocations_per_call(n, || match only {
            "bare channel" => bare(&rt, &tx, &mut rx),
            "gorax/sampled" => round_trip(&rt, &mut sampled),
            "gorax/unsampled" => round_trip(&rt, &mut unsampled),
            other => panic!("unknown variant {other}"),
        });
        eprintln!("allocations per call: {allocations:.2}");
        let _ = (p1.shutdown(), p2.shutdown());
        std::process::exit(0);
    }

    let n = 10_000;
    println!(
        "allocations per message  bare channel      {:.1}",
        allocations_per_call(n, || bare(&rt, &tx, &mut rx))
    );
    println!(
        "allocations per message  gorax/sampled     {:.1}",
        allocations_per_call(n, || round_trip(&rt, &mut sampled))
    );
    println!(
        "allocations per message  gorax/unsampled   {:.1}",
        allocations_per_call(n, || round_trip(&rt, &mut unsampled))
    );

    let mut g = c.benchmark_group("queue");
    g.bench_function("bare channel", |b| b.iter(|| bare(&rt, &tx, &mut rx)));
    g.bench_function("gorax/sampled", |b| {
        b.iter(|| round_trip(&rt, &mut sampled))
    });
    g.bench_function("gorax/unsampled", |b| {
        b.iter(|| round_trip(&rt, &mut unsampled))
    });
    g.finish();
    let _ = (p1.shutdown(), p2.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
