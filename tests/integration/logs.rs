//! OTLP logs through a real receiver on 127.0.0.1 (issue 24): exceptions as log records with the
//! conventions' names and severities under `OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN` (`logs`: no
//! span events; `logs/dup`: both), for a failed server request and a failed client call, in
//! their spans' contexts; and the URL secrets of a logged error never exported.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use gorax_tests::global_lock;
use gorax_trace::config::{ExceptionSignal, TraceConfig};
use gorax_trace::export::BatchSettings;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tower::ServiceExt as _;

#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    records: Arc<Mutex<Vec<LogRecord>>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

async fn traces(State(r): State<Received>, body: axum::body::Bytes) -> &'static str {
    r.raw.lock().unwrap().extend_from_slice(&body);
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    let mut spans = r.spans.lock().unwrap();
    for rs in request.resource_spans {
        for ss in rs.scope_spans {
            spans.extend(ss.spans);
        }
    }
    ""
}

async fn logs(State(r): State<Received>, body: axum::body::Bytes) -> &'static str {
    r.raw.lock().unwrap().extend_from_slice(&body);
    let request = ExportLogsServiceRequest::decode(body).unwrap();
    let mut records = r.records.lock().unwrap();
    for rl in request.resource_logs {
        for sl in rl.scope_logs {
            records.extend(sl.log_records);
        }
    }
    ""
}

fn receiver(rt: &tokio::runtime::Runtime) -> (Received, String) {
    let r = Received::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .route("/v1/logs", axum::routing::post(logs))
        .with_state(r.clone());
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    (r, format!("http://{addr}/v1/traces"))
}

#[derive(Debug)]
struct HandlerFailed;
impl std::fmt::Display for HandlerFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("handler failed talking to redis://:hunter2@cache:6379/0")
    }
}
impl std::error::Error for HandlerFailed {}

/// A failed server request and a failed client call under `signal`; what arrived.
fn run(signal: ExceptionSignal) -> (Vec<Span>, Vec<LogRecord>, Vec<u8>) {
    let _lock = global_lock();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (received, endpoint) = receiver(&rt);
    let telemetry = gorax_trace::init(
        TraceConfig::new()
            .with_endpoint(endpoint)
            .with_batch(BatchSettings::default().with_scheduled_delay(Duration::from_millis(50)))
            .with_logs(true)
            .with_exception_signal(signal),
    )
    .unwrap();
    rt.block_on(async {
        // The server: the inner service fails (a 5xx handler error).
        let service = tower::ServiceBuilder::new()
            .layer(gorax_trace_server::ServerTraceLayer::new())
            .service_fn(|_req: http::Request<axum::body::Body>| async {
                Err::<http::Response<axum::body::Body>, _>(HandlerFailed)
            });
        let request = http::Request::post("/api/v1/workflows/wf-1/execute")
            .body(axum::body::Body::empty())
            .unwrap();
        assert!(service.oneshot(request).await.is_err());
        // The client: a call to a closed port.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(gorax_trace_client::ClientTraceMiddleware::new())
            .build();
        assert!(
            client
                .get(format!("http://{closed}/x?token=t0k3n"))
                .send()
                .await
                .is_err()
        );
    });
    telemetry.shutdown().expect("everything delivered");
    let spans = received.spans.lock().unwrap().clone();
    let records = received.records.lock().unwrap().clone();
    let raw = received.raw.lock().unwrap().clone();
    (spans, records, raw)
}

fn exception_events(span: &Span) -> usize {
    span.events.iter().filter(|e| e.name == "exception").count()
}

fn assert_records(spans: &[Span], records: &[LogRecord]) {
    for (span_name, event, severity) in [
        ("POST", "http.server.request.exception", 17),
        ("GET", "http.client.request.exception", 13),
    ] {
        let span = spans
            .iter()
            .find(|s| s.name == span_name)
            .unwrap_or_else(|| panic!("{span_name} span: {spans:#?}"));
        let record = records
            .iter()
            .find(|r| r.event_name == event)
            .unwrap_or_else(|| panic!("{event}: {records:#?}"));
        assert_eq!(record.severity_number, severity, "{event}");
        assert_eq!(
            record.trace_id, span.trace_id,
            "{event} in its span's trace"
        );
        assert_eq!(record.span_id, span.span_id, "{event} in its span");
        let keys: Vec<&str> = record.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert!(
            keys.contains(&"exception.type") && keys.contains(&"exception.message"),
            "{keys:?}"
        );
    }
}

#[test]
fn exceptions_as_logs_only() {
    let (spans, records, raw) = run(ExceptionSignal::Logs);
    assert_records(&spans, &records);
    for span in &spans {
        assert_eq!(exception_events(span), 0, "no span events: {span:?}");
    }
    // The Redis password and the query token of the errors were never exported.
    for secret in ["hunter2", "t0k3n"] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} exported"
        );
    }
}

#[test]
fn exceptions_as_logs_and_span_events() {
    let (spans, records, _) = run(ExceptionSignal::Dup);
    assert_records(&spans, &records);
    for name in ["POST", "GET"] {
        let span = spans.iter().find(|s| s.name == name).unwrap();
        assert_eq!(exception_events(span), 1, "{name}: {span:?}");
    }
}

#[test]
fn exceptions_as_span_events_by_default() {
    let (spans, records, _) = run(ExceptionSignal::SpanEvents);
    assert!(
        !records.iter().any(|r| r.event_name.ends_with("exception")),
        "{records:#?}"
    );
    for name in ["POST", "GET"] {
        let span = spans.iter().find(|s| s.name == name).unwrap();
        assert_eq!(exception_events(span), 1, "{name}: {span:?}");
    }
}

/// The logs pipeline's counters as the SDK self-observability metrics, by reason: with the
/// collector's port closed every record is lost, and the Prometheus scrape says so.
#[test]
fn lost_records_are_counted_as_otel_sdk_metrics() {
    let _lock = global_lock();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let telemetry = gorax_trace::init(
        TraceConfig::new()
            .with_endpoint(format!("http://{closed}/v1/traces"))
            .with_logs(true)
            .with_metrics(true)
            .with_metrics_exporters(
                gorax_trace::metrics::MetricsExporters::NONE.with_prometheus(true),
            ),
    )
    .unwrap();
    let subscriber = gorax_trace::subscriber::Builder::new()
        .with_writer(std::io::sink)
        .build();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..10 {
            tracing::info!(i, "an event");
        }
    });
    let health = telemetry.logs_health().unwrap();
    let _ = telemetry.force_flush();
    let text = telemetry.prometheus().unwrap().render();
    let lost = text
        .lines()
        .find(|l| l.starts_with("otel_sdk_exporter_log_exported") && l.contains("export_failed"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(lost.ends_with(" 10") || lost.ends_with(" 10.0"), "{lost}");
    assert!(text.contains("otel_sdk_processor_log_processed"), "{text}");
    let error = telemetry.shutdown().expect_err("the records were lost");
    let c = health.snapshot();
    assert_eq!(c.created, 10, "{c:?}");
    assert_eq!(c.exported, 0);
    assert_eq!(c.failed + c.dropped, 10, "{c:?}");
    let logs = error.logs.as_ref().expect("logs lost");
    assert_eq!(logs.counts, c, "{error}");
}
