//! One lifecycle for every signal (issue 19), through real sockets on 127.0.0.1: shutdown ends
//! within one budget for traces and metrics together on every runtime; its result and
//! `health()` count exactly what was lost, every run; an answer's `partial_success` counts as
//! rejected; a `Retry-After` is honoured across batches for traces and for metrics; a shutdown
//! inside the quiet reports the waiting spans as throttled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gorax_trace::config::{Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use gorax_trace::{ShutdownError, Telemetry};
use opentelemetry::trace::Tracer;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// How the receiver answers each signal.
#[derive(Clone, Copy)]
enum Answer {
    /// 200; of every traces request, this many spans rejected (`partial_success`).
    Accept { reject: i64 },
    /// The first request of each signal: 429 with `Retry-After`; then 200.
    ThrottleFirst(u64),
    /// Every traces request: 429 with `Retry-After` (metrics: 200).
    ThrottleAlways(u64),
    /// Traces: 404 (a metrics-only backend); metrics: 200.
    RefuseTraces,
}

#[derive(Clone)]
struct Receiver {
    answer: Answer,
    /// (path, arrival, status)
    requests: Arc<Mutex<Vec<(String, Instant, u16)>>>,
    spans: Arc<Mutex<usize>>,
    /// Spans per accepted traces request.
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Receiver {
    fn requests(&self, path: &str) -> Vec<(Instant, u16)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, t, s)| (*t, *s))
            .collect()
    }
}

async fn receive(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let first = !r
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|(p, _, _)| *p == path);
    let traces = path == "/v1/traces";
    let (status, retry_after, reject) = match r.answer {
        Answer::ThrottleFirst(after) if first => (429, Some(after), 0),
        Answer::ThrottleAlways(after) if traces => (429, Some(after), 0),
        Answer::RefuseTraces if traces => (404, None, 0),
        Answer::Accept { reject } => (200, None, reject),
        _ => (200, None, 0),
    };
    r.requests
        .lock()
        .unwrap()
        .push((path, Instant::now(), status));
    if status != 200 {
        let mut response = StatusCode::from_u16(status).unwrap().into_response();
        if let Some(after) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", after.to_string().parse().unwrap());
        }
        return response;
    }
    if !traces {
        return StatusCode::OK.into_response();
    }
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP traces");
    let n: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    *r.spans.lock().unwrap() += n;
    r.batches.lock().unwrap().push(n);
    let answer = ExportTraceServiceResponse {
        partial_success: (reject > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: reject,
            error_message: "quota".into(),
        }),
    };
    (
        [("content-type", "application/x-protobuf")],
        answer.encode_to_vec(),
    )
        .into_response()
}

/// Starts the receiver on `rt`; its `/v1/traces` URL.
fn receiver(rt: &tokio::runtime::Runtime, answer: Answer) -> (Receiver, String) {
    let r = Receiver {
        answer,
        requests: Arc::default(),
        spans: Arc::default(),
        batches: Arc::default(),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(receive).with_state(r.clone());
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    (r, format!("http://{addr}/v1/traces"))
}

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A listener that accepts and never answers (held for the process).
fn silent() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{addr}/v1/traces")
}

/// A port that refuses connections.
fn closed() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{addr}/v1/traces")
}

fn config(endpoint: &str, timeout: Duration) -> TraceConfig {
    TraceConfig::new()
        .with_endpoint(endpoint)
        .with_protocol(Protocol::HttpProtobuf)
        .with_batch(
            BatchSettings::default()
                .with_scheduled_delay(Duration::from_millis(100))
                .with_export_timeout(timeout),
        )
}

fn spans(telemetry: &Telemetry, n: usize) {
    for _ in 0..n {
        telemetry.tracer().in_span("work", |_| {});
    }
}

/// The error's counts and `health()` agree, and equal what was created minus what arrived.
fn assert_exact(
    telemetry_health: gorax_trace::export::HealthSnapshot,
    error: &ShutdownError,
    created: u64,
    arrived: u64,
) {
    let traces = error.traces.as_ref().expect("traces lost");
    assert_eq!(traces.spans, created, "{error}");
    assert_eq!(traces.delivered, arrived, "{error}");
    assert_eq!(traces.lost(), created - arrived, "{error}");
    assert_eq!(traces.health, telemetry_health, "{error}");
    assert_eq!(
        telemetry_health.spans_exported
            + telemetry_health.spans_failed
            + telemetry_health.spans_dropped,
        created
    );
}

#[derive(Clone, Copy, Debug)]
enum Place {
    NoRuntime,
    CurrentThread,
    MultiThread,
}

fn on(place: Place, f: impl FnOnce() + Send + 'static) {
    match place {
        Place::NoRuntime => f(),
        Place::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { f() }),
        Place::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { f() }),
    }
}

#[test]
fn a_silent_collector_costs_one_budget_for_all_signals_on_every_runtime() {
    let endpoint = silent();
    for place in [Place::NoRuntime, Place::CurrentThread, Place::MultiThread] {
        let endpoint = endpoint.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            on(place, move || {
                let telemetry =
                    Telemetry::new(&config(&endpoint, Duration::from_secs(1)).with_metrics(true))
                        .unwrap();
                spans(&telemetry, 100);
                let started = Instant::now();
                let result = telemetry.shutdown();
                let _ = tx.send((started.elapsed(), result));
            })
        });
        // A hang fails here, not the whole suite.
        let (elapsed, result) = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{place:?}: shutdown hung"));
        assert!(
            elapsed < Duration::from_millis(1500),
            "{place:?}: {elapsed:?}"
        );
        let error = result.expect_err("nothing was delivered");
        let traces = error.traces.as_ref().unwrap();
        assert_eq!(
            (traces.spans, traces.delivered),
            (100, 0),
            "{place:?}: {error}"
        );
        assert_eq!(traces.health.spans_timed_out, 100, "{place:?}: {error}");
        let metrics = error.metrics.as_ref().expect("the final push was lost");
        assert_eq!(metrics.reason, "timeout", "{error}");
    }
}

#[test]
fn twenty_runs_each_count_exactly_what_a_silent_collector_and_a_closed_port_lost() {
    for (name, endpoint) in [("silent", silent()), ("closed", closed())] {
        for run in 0..20 {
            let telemetry = Telemetry::new(&config(&endpoint, Duration::from_millis(300))).unwrap();
            let health = telemetry.health();
            spans(&telemetry, 1000);
            let error = telemetry
                .shutdown()
                .expect_err("a shutdown that lost spans is an error");
            // Read right after the shutdown: final, and equal to the error.
            assert_exact(health.snapshot(), &error, 1000, 0);
            assert_eq!(
                health.snapshot(),
                error.traces.as_ref().unwrap().health,
                "{name} run {run}"
            );
        }
    }
}

#[test]
fn partial_success_counts_the_rejected_spans_as_lost() {
    let rt = server_runtime();
    let (receiver, endpoint) = receiver(&rt, Answer::Accept { reject: 3 });
    let telemetry = Telemetry::new(&config(&endpoint, Duration::from_secs(5))).unwrap();
    let health = telemetry.health();
    spans(&telemetry, 10);
    let error = telemetry.shutdown().expect_err("3 spans were rejected");
    assert_eq!(*receiver.spans.lock().unwrap(), 10);
    // The collector rejects 3 of each request (all of a smaller one): the spans may come in
    // more than one batch (the provider's resource wakes the export thread once after init).
    let rejected: u64 = receiver
        .batches
        .lock()
        .unwrap()
        .iter()
        .map(|n| (*n as u64).min(3))
        .sum();
    let h = health.snapshot();
    assert_eq!(h.spans_rejected, rejected, "{error}");
    assert_exact(h, &error, 10, 10 - rejected);
    assert!(
        error.to_string().contains("rejected by the collector"),
        "{error}"
    );
}

#[test]
fn retry_after_is_honoured_across_batches_for_traces_and_metrics() {
    let rt = server_runtime();
    let (receiver, endpoint) = receiver(&rt, Answer::ThrottleFirst(5));
    let telemetry = Telemetry::new(
        &config(&endpoint, Duration::from_secs(2))
            .with_metrics(true)
            .with_metric_export_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let metrics = telemetry.handle().metrics().cloned().unwrap();
    // A producer ending a span (and recording a measurement) every 10 ms, for at most 6.5 s.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(6500) {
        telemetry.tracer().in_span("tick", |_| {});
        metrics.record(
            gorax_trace::metrics::RequestDuration::HttpServer,
            0.01,
            &[],
            &opentelemetry::trace::SpanContext::empty_context(),
        );
        std::thread::sleep(Duration::from_millis(10));
        let done = ["/v1/traces", "/v1/metrics"]
            .iter()
            .all(|p| receiver.requests(p).len() >= 2);
        if done {
            break;
        }
    }
    for path in ["/v1/traces", "/v1/metrics"] {
        let requests = receiver.requests(path);
        assert!(requests.len() >= 2, "{path}: {requests:?}");
        assert_eq!(requests[0].1, 429, "{path}");
        let gap = requests[1].0 - requests[0].0;
        assert!(
            (Duration::from_secs(5)..Duration::from_millis(5500)).contains(&gap),
            "{path}: next request {gap:?} after the 429"
        );
    }
    // The spans of the 429'd batch (the export timeout is shorter than the quiet) are lost as
    // throttled; the ones that waited in the queue were delivered.
    let h = telemetry.health().snapshot();
    assert!(h.spans_throttled > 0, "{h:?}");
    assert!(h.spans_exported > 0, "{h:?}");
    let pushes = telemetry.metrics_export_health().unwrap().snapshot();
    assert_eq!(
        pushes.delivered + pushes.failed,
        pushes.delivered + pushes.throttled,
        "{pushes:?}"
    );
    assert!(pushes.throttled >= 1, "{pushes:?}");
    let _ = telemetry.shutdown();
}

#[test]
fn a_shutdown_inside_the_quiet_returns_within_the_budget_and_reports_throttled_spans() {
    let rt = server_runtime();
    let (receiver, endpoint) = receiver(&rt, Answer::ThrottleAlways(30));
    let telemetry = Telemetry::new(&config(&endpoint, Duration::from_secs(1))).unwrap();
    let health = telemetry.health();
    spans(&telemetry, 10);
    assert!(
        gorax_tests::wait_until(Duration::from_secs(10), || !receiver
            .requests("/v1/traces")
            .is_empty()),
        "the first export reached the receiver"
    );
    // Now the collector asked for 30 s of quiet: these wait in the queue.
    spans(&telemetry, 50);
    let started = Instant::now();
    let error = telemetry.shutdown().expect_err("throttled spans are lost");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let h = health.snapshot();
    assert!(h.spans_throttled >= 50, "{error}");
    assert_exact(h, &error, 60, 0);
    // No request went out during the quiet.
    assert_eq!(receiver.requests("/v1/traces").len(), 1);
}

#[test]
fn a_collector_that_refuses_traces_is_asked_once_and_metrics_still_arrive() {
    let rt = server_runtime();
    let (receiver, endpoint) = receiver(&rt, Answer::RefuseTraces);
    let telemetry = Telemetry::new(
        &config(&endpoint, Duration::from_secs(2))
            .with_metrics(true)
            .with_metric_export_interval(Duration::from_millis(50)),
    )
    .unwrap();
    let health = telemetry.health();
    spans(&telemetry, 5);
    let _ = telemetry.force_flush();
    spans(&telemetry, 7);
    let _ = telemetry.force_flush();
    assert!(gorax_tests::wait_until(Duration::from_secs(10), || {
        receiver.requests("/v1/metrics").len() >= 2
    }));
    // One request found out; the second batch was not sent, and both are counted as refused.
    assert_eq!(receiver.requests("/v1/traces").len(), 1);
    let h = health.snapshot();
    assert_eq!((h.spans_refused, h.spans_failed), (12, 12), "{h:?}");
    let error = telemetry.shutdown().expect_err("the spans were refused");
    assert!(error.metrics.is_none(), "metrics were delivered: {error}");
    assert_exact(health.snapshot(), &error, 12, 0);
    assert!(
        error.to_string().contains("12 refused by the collector"),
        "{error}"
    );
}
