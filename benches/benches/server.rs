//! Per-request overhead of the server layer over a bare axum router, against the common
//! alternative (tower-http `TraceLayer` + tracing-opentelemetry), sampled and unsampled, in one
//! binary. Requests go through `Router::call` in-process with a valid `traceparent`; the body is
//! collected. Spans go to the gorax batch processor with an exporter that discards them, as in
//! production minus the network. Prints allocations per request next to criterion's times.
//!
//! `cargo bench -p gorax-benches --bench server`

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use gorax_benches::{CountingAlloc, allocations_per_call};
use gorax_trace_server::ServerTraceLayer;
use http::Request;
use http_body_util::BodyExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tower::{Service, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

fn provider() -> SdkTracerProvider {
    gorax_benches::provider(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
}

/// Keep mode (`TRACING_KEEP_ERRORS=true`): what the head sampler drops is recorded, buffered
/// until the local root ends, and discarded when it did not fail.
fn keep_provider() -> SdkTracerProvider {
    use gorax_trace::export::keep::{KeepProcessor, KeepSampler, KeepSettings};
    SdkTracerProvider::builder()
        .with_sampler(KeepSampler::new(Sampler::ParentBased(Box::new(
            Sampler::AlwaysOn,
        ))))
        .with_span_processor(KeepProcessor::new(
            gorax_trace::export::BatchProcessor::new(
                gorax_benches::DiscardExporter,
                &gorax_trace::export::BatchSettings::default(),
            ),
            KeepSettings::off().with_errors(true),
        ))
        .build()
}

/// Metrics on: the RED instruments on a meter provider whose reader pushes to a discarding
/// exporter once an hour (recording cost only, as between two pushes in production).
fn metrics_handle(tracer: opentelemetry_sdk::trace::SdkTracer) -> gorax_trace::TelemetryHandle {
    use opentelemetry::metrics::MeterProvider as _;
    #[derive(Debug)]
    struct Discard;
    impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for Discard {
        async fn export(
            &self,
            m: &opentelemetry_sdk::metrics::data::ResourceMetrics,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            black_box(m);
            Ok(())
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(
            &self,
            _: std::time::Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
            opentelemetry_sdk::metrics::Temporality::Cumulative
        }
    }
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(
            opentelemetry_sdk::metrics::PeriodicReader::builder(Discard)
                .with_interval(std::time::Duration::from_secs(3600))
                .build(),
        )
        .build();
    let health = gorax_trace::export::ExportHealth::default();
    let metrics = gorax_trace::metrics::Metrics::new(&meters.meter("bench"), &health);
    // The provider lives as long as the bench process.
    std::mem::forget(meters);
    gorax_trace::TelemetryHandle::new(
        tracer,
        gorax_trace::Settings::default()
            .with_metrics(Some(metrics))
            .with_drops_unsampled_children(true),
        health,
    )
}

fn routes() -> Router {
    Router::new().route("/api/v1/workflows/{id}/execute", post(|| async { "ok" }))
}

/// The route with one INFO event in the handler (the `+event` variants: logs' cost).
fn routes_with_event() -> Router {
    Router::new().route(
        "/api/v1/workflows/{id}/execute",
        post(|| async {
            tracing::info!(step = "fetch", "step done");
            "ok"
        }),
    )
}

/// What `axum::serve` does once: turn handlers into services (otherwise a `Router<()>` called
/// directly re-applies its layers on every request).
fn ready(router: Router) -> Router {
    router.with_state(())
}

fn request(traceparent: &str) -> Request<Body> {
    Request::post("/api/v1/workflows/wf-1/execute")
        .header("traceparent", traceparent)
        .header("user-agent", "bench/1")
        .body(Body::empty())
        .unwrap()
}

fn call(rt: &tokio::runtime::Runtime, router: &mut Router, traceparent: &str) {
    rt.block_on(async {
        let svc = ServiceExt::<Request<Body>>::ready(router).await.unwrap();
        let res = svc.call(request(traceparent)).await.unwrap();
        black_box(res.into_body().collect().await.unwrap());
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let provider = provider();
    let tracer = provider.tracer("bench");

    let mut bare = ready(routes());
    let handle = gorax_benches::handle(tracer.clone());
    let mut gorax = ready(routes().layer(ServerTraceLayer::new().with_telemetry(&handle)));
    let gorax_metrics = ready(
        routes().layer(ServerTraceLayer::new().with_telemetry(metrics_handle(tracer.clone()))),
    );
    let gorax_traceresponse = ready(
        routes().layer(
            ServerTraceLayer::new()
                .with_telemetry(&handle)
                .with_response_header(gorax_trace_server::ResponseHeader::TraceResponse),
        ),
    );
    let keep_provider = keep_provider();
    let mut gorax_keep =
        ready(routes().layer(ServerTraceLayer::new().with_tracer(keep_provider.tracer("bench"))));
    let mut tower_http = ready(routes().layer(tower_http::trace::TraceLayer::new_for_http()));
    // tower-http's layer makes `tracing` spans; tracing-opentelemetry turns them into OTel spans.
    // Installed only while the tower-http variants run.
    let subscriber =
        || tracing_subscriber::registry().with(gorax_trace::subscriber::otel_layer(tracer.clone()));

    // An INFO event inside the request, under the gorax subscriber (lines to a sink), with OTLP
    // logs off and on (`+otlp-logs`: a telemetry with logs on installed; its records go to a
    // closed port from the export thread, so the request thread pays what a real collector
    // would cost it).
    let gorax_event =
        ready(routes_with_event().layer(ServerTraceLayer::new().with_telemetry(&handle)));
    let noop = ready(routes().layer(tower::layer::layer_fn(|s| {
        tower::util::MapRequest::new(s, |r: Request<Body>| r)
    })));
    let variants = [
        ("bare", bare.clone(), SAMPLED),
        ("any-layer (map_request identity)", noop.clone(), SAMPLED),
        ("gorax/sampled", gorax.clone(), SAMPLED),
        ("gorax/unsampled", gorax.clone(), UNSAMPLED),
        // `traceresponse` written to every response.
        (
            "gorax+traceresponse/sampled",
            gorax_traceresponse.clone(),
            SAMPLED,
        ),
        ("gorax/unsampled+keep-errors", gorax_keep.clone(), UNSAMPLED),
        // With a `tracing` subscriber (the bridge span is created and entered per request).
        ("gorax+subscriber/sampled", gorax.clone(), SAMPLED),
        ("gorax+subscriber/unsampled", gorax.clone(), UNSAMPLED),
        (
            "tower-http+tracing-otel/sampled",
            tower_http.clone(),
            SAMPLED,
        ),
        (
            "tower-http+tracing-otel/unsampled",
            tower_http.clone(),
            UNSAMPLED,
        ),
        // Metrics on (RED histograms, active requests, exemplars of sampled requests).
        ("gorax+metrics/sampled", gorax_metrics.clone(), SAMPLED),
        ("gorax+metrics/unsampled", gorax_metrics.clone(), UNSAMPLED),
        ("gorax+event/sampled", gorax_event.clone(), SAMPLED),
        (
            "gorax+event+otlp-logs/sampled",
            gorax_event.clone(),
            SAMPLED,
        ),
    ];
    let logs_subscriber = || {
        gorax_trace::subscriber::Builder::new()
            .with_writer(std::io::sink)
            .build()
    };
    let logs_on = || {
        gorax_trace::init(
            gorax_trace::TraceConfig::new()
                .with_endpoint("http://127.0.0.1:9/v1/traces")
                .with_logs(true),
        )
        .expect("a telemetry with OTLP logs")
    };
    // For callgrind: `GORAX_SERVER_BENCH_ONLY=gorax/sampled:3000` runs that variant so many
    // times and exits (instructions per request = difference of two runs / difference of counts).
    if let Ok(only) = std::env::var("GORAX_SERVER_BENCH_ONLY") {
        let (only, n) = only.rsplit_once(':').expect("variant:count");
        let (_, mut router, tp) = variants.into_iter().find(|v| v.0 == only).expect("variant");
        let _default = (only.starts_with("tower-http") || only.contains("+subscriber"))
            .then(|| tracing::subscriber::set_default(subscriber()));
        let _logs_default = only
            .contains("+event")
            .then(|| tracing::subscriber::set_default(logs_subscriber()));
        let _telemetry = only.contains("+otlp-logs").then(logs_on);
        let n = n.parse::<u64>().expect("count");
        let allocations = allocations_per_call(n, || call(&rt, &mut router, tp));
        eprintln!("allocations per call: {allocations:.2}");
        let _ = provider.shutdown();
        let _ = keep_provider.shutdown();
        std::process::exit(0);
    }
    for (name, mut router, tp) in variants {
        let _default = (name.starts_with("tower-http") || name.contains("+subscriber"))
            .then(|| tracing::subscriber::set_default(subscriber()));
        let _logs_default = name
            .contains("+event")
            .then(|| tracing::subscriber::set_default(logs_subscriber()));
        let _telemetry = name.contains("+otlp-logs").then(logs_on);
        call(&rt, &mut router, tp); // warm up
        let allocs = allocations_per_call(2_000, || call(&rt, &mut router, tp));
        println!("allocations per request  {name:<36} {allocs:.1}");
    }

    let mut g = c.benchmark_group("server");
    g.bench_function("bare", |b| b.iter(|| call(&rt, &mut bare, SAMPLED)));
    g.bench_function("gorax/sampled", |b| {
        b.iter(|| call(&rt, &mut gorax, SAMPLED))
    });
    g.bench_function("gorax/unsampled", |b| {
        b.iter(|| call(&rt, &mut gorax, UNSAMPLED))
    });
    g.bench_function("gorax/unsampled+keep-errors", |b| {
        b.iter(|| call(&rt, &mut gorax_keep, UNSAMPLED))
    });
    let default = tracing::subscriber::set_default(subscriber());
    g.bench_function("tower-http+tracing-otel/sampled", |b| {
        b.iter(|| call(&rt, &mut tower_http, SAMPLED))
    });
    g.bench_function("tower-http+tracing-otel/unsampled", |b| {
        b.iter(|| call(&rt, &mut tower_http, UNSAMPLED))
    });
    drop(default);
    g.finish();
    let _ = provider.shutdown();
    let _ = keep_provider.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
