//! `gorax_trace::init` with each exporter, against real receivers; the guard on both runtime
//! flavours; a dead collector.

use std::time::Duration;

use gorax_tests::{GrpcCollector, global_lock, received_http_spans, unique, wait_until};
use gorax_trace::config::{Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};

/// Makes a parent and a child span through the installed tracer; returns their names.
fn make_tree(prefix: &str) -> (String, String) {
    let (parent, child) = (
        unique(&format!("{prefix}.parent")),
        unique(&format!("{prefix}.child")),
    );
    let tracer = gorax_trace::TelemetryHandle::installed().tracer().clone();
    let (c, inner) = (child.clone(), tracer.clone());
    tracer.in_span(parent.clone(), move |cx| {
        let tracer = inner;
        let span = tracer
            .span_builder(c)
            .with_kind(SpanKind::Client)
            .start_with_context(&tracer, &cx);
        drop(span);
        assert!(cx.span().span_context().is_sampled());
    });
    (parent, child)
}

fn batch() -> BatchSettings {
    BatchSettings::default()
        .with_scheduled_delay(Duration::from_millis(100))
        .with_export_timeout(Duration::from_secs(5))
}

#[test]
fn otlp_http_delivers_a_tree_to_a_real_receiver() {
    let Some((endpoint, log)) = gorax_tests::http_receiver() else {
        return;
    };
    let _lock = global_lock();
    let config = TraceConfig::new()
        .with_endpoint(endpoint)
        .with_protocol(Protocol::HttpProtobuf)
        .with_service_name("gorax-it-http")
        .with_batch(batch());
    let guard = gorax_trace::init(config).unwrap();
    let (parent, child) = make_tree("http");
    guard.shutdown().unwrap();

    let find = |name: &str| {
        received_http_spans(&log)
            .into_iter()
            .find(|s| s["name"] == name)
    };
    assert!(
        wait_until(Duration::from_secs(10), || find(&child).is_some()
            && find(&parent).is_some()),
        "receiver got neither {parent} nor {child}"
    );
    let (p, c) = (find(&parent).unwrap(), find(&child).unwrap());
    assert_eq!(c["traceId"], p["traceId"], "{c} / {p}");
    assert_eq!(c["parentSpanId"], p["spanId"], "{c} / {p}");
    assert_eq!(c["kind"], 3, "CLIENT is 3 in OTLP: {c}");
}

fn grpc_round_trip(app_runtime: &tokio::runtime::Runtime) {
    let collector_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (collector, addr) = GrpcCollector::start(collector_rt.handle());
    let config = TraceConfig::new()
        .with_endpoint(format!("http://{addr}"))
        .with_protocol(Protocol::Grpc)
        .with_service_name("gorax-it-grpc")
        .with_batch(batch());
    // A `tracing` subscriber built before `init` (as `subscriber::install` allows) still
    // records into the provider `init` installs.
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(gorax_trace::subscriber::otel_layer(
        gorax_trace::subscriber::CurrentTracer,
    ));
    let bridged = unique("bridged");
    // init and the guard's drop run inside the application's runtime, as in a service's main.
    let (parent, child) = app_runtime.block_on(async {
        let guard = gorax_trace::init(config).unwrap();
        let names = make_tree("grpc");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("bridge", otel.name = bridged.as_str()).in_scope(|| {})
        });
        drop(guard);
        names
    });
    let spans = collector.spans();
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not received: {spans:?}"))
    };
    let (p, c) = (find(&parent), find(&child));
    assert_eq!(c.trace_id, p.trace_id);
    assert_eq!(c.parent_span_id, p.span_id);
    assert_eq!(c.kind, 3);
    find(&bridged);
}

#[test]
fn otlp_grpc_flushes_on_drop_in_a_current_thread_runtime() {
    let _lock = global_lock();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    grpc_round_trip(&rt);
}

#[test]
fn otlp_grpc_flushes_on_drop_in_a_multi_thread_runtime() {
    let _lock = global_lock();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    grpc_round_trip(&rt);
}

#[test]
fn dead_collector_drops_and_counts_without_failing_the_caller() {
    let _lock = global_lock();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = TraceConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_batch(
            BatchSettings::default()
                .with_max_queue_size(64)
                .with_max_export_batch_size(32)
                .with_scheduled_delay(Duration::from_millis(50))
                .with_export_timeout(Duration::from_millis(500)),
        );
    let guard = gorax_trace::init(config).unwrap();
    let tracer = gorax_trace::TelemetryHandle::installed().tracer().clone();
    for i in 0..5_000 {
        tracer.in_span(format!("load-{i}"), |_| {});
    }
    let health = guard.health();
    assert!(
        health.snapshot().spans_dropped > 0,
        "{:?}",
        health.snapshot()
    );
    drop(guard);
    let s = health.snapshot();
    assert!(s.export_failures > 0 && s.spans_exported == 0, "{s:?}");
    // Dropped or failed, except at most one queue plus one batch still in flight when the
    // shutdown timeout (the export timeout) ran out: that is the memory bound.
    let accounted = s.spans_dropped + s.spans_failed;
    assert!((5_000 - 64 - 32..=5_000).contains(&accounted), "{s:?}");
    assert!(health.render_prometheus().contains(&format!(
        "otel_processor_spans_dropped_total {}",
        s.spans_dropped
    )));
}
