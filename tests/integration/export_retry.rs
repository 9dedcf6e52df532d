//! OTLP/HTTP retries against a receiver written here (axum on 127.0.0.1) that answers from a
//! script: 429 once then 200; 503 with `Retry-After: 1` then 200; and `Retry-After: 30` with a
//! 2 s export timeout. Spans are counted by decoding the protobuf bodies the receiver accepted;
//! retries, failures and the export warning are read from `ExportHealth` and the log. Over gRPC,
//! a collector that answers `UNAVAILABLE` once (retried) or `RESOURCE_EXHAUSTED` without
//! `RetryInfo` (not retried, per the specification).
//!
//! What opentelemetry-otlp 0.33 does (retries are on by default, no feature): 429 and 503 are
//! retried after `Retry-After` when given, else with backoff (100 ms doubling to 1.6 s, 3 retries,
//! up to 100 ms jitter); 502, 504 and network errors with backoff; a wait that does not fit in
//! what is left of the export timeout gives up at once, after that one request.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gorax_tests::{global_lock, serve, unique};
use gorax_trace::config::{Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use opentelemetry::trace::Tracer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// What the receiver answers to the n-th request (then 200 for every later one, or the last
/// answer again with `repeat`).
#[derive(Clone, Copy, Debug)]
struct Answer {
    status: u16,
    retry_after: Option<&'static str>,
}

#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Vec<Answer>>,
    repeat: bool,
    requests: Arc<Mutex<Vec<Instant>>>,
    spans: Arc<Mutex<Vec<String>>>,
}

async fn traces(State(r): State<Receiver>, body: axum::body::Bytes) -> Response {
    let n = {
        let mut requests = r.requests.lock().unwrap();
        requests.push(Instant::now());
        requests.len() - 1
    };
    let answer = r
        .script
        .get(n)
        .or(r.script.last().filter(|_| r.repeat))
        .copied();
    match answer {
        Some(a) if a.status != 200 => {
            let mut response = StatusCode::from_u16(a.status).unwrap().into_response();
            if let Some(after) = a.retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", after.parse().unwrap());
            }
            response
        }
        _ => {
            let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf body");
            let mut spans = r.spans.lock().unwrap();
            for rs in request.resource_spans {
                for ss in rs.scope_spans {
                    spans.extend(ss.spans.into_iter().map(|s| s.name));
                }
            }
            StatusCode::OK.into_response()
        }
    }
}

/// A receiver on a free 127.0.0.1 port, on a runtime of its own.
fn receiver(script: Vec<Answer>, repeat: bool) -> (Receiver, String, tokio::runtime::Runtime) {
    let r = Receiver {
        script: Arc::new(script),
        repeat,
        ..Receiver::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(r.clone());
    let addr = rt.block_on(serve(app));
    (r, format!("http://{addr}/v1/traces"), rt)
}

impl Receiver {
    fn requests(&self) -> Vec<Instant> {
        self.requests.lock().unwrap().clone()
    }

    fn spans_named(&self, prefix: &str) -> usize {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.starts_with(prefix)).count()
    }
}

/// The log lines of the whole test binary (a global subscriber, installed once).
fn log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        #[derive(Clone, Copy)]
        struct Writer(&'static Mutex<Vec<u8>>);
        impl Write for Writer {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Writer(buffer))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

fn log_lines_with(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&log().lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn config(endpoint: &str, timeout: Duration, batch: usize) -> TraceConfig {
    TraceConfig::new()
        .with_endpoint(endpoint)
        .with_protocol(Protocol::HttpProtobuf)
        .with_service_name("gorax-it-retry")
        .with_batch(
            BatchSettings::default()
                .with_max_export_batch_size(batch)
                .with_scheduled_delay(Duration::from_secs(60))
                .with_export_timeout(timeout),
        )
}

/// Waits until the export thread has taken the provider's resource: that wake would otherwise
/// take whatever spans had ended by then as a batch of its own, and a case that counts requests
/// would see two batches where it sent one.
fn settled(guard: &gorax_trace::Telemetry) {
    guard.force_flush().unwrap();
}

/// Ends `n` spans named `prefix-i` through the installed tracer.
fn spans(prefix: &str, n: usize) {
    let tracer = gorax_trace::TelemetryHandle::installed().tracer().clone();
    for i in 0..n {
        tracer.in_span(format!("{prefix}-{i}"), |_| {});
    }
}

/// Liveness bound, not a performance figure: the export timeouts below are 2 and 5 s.
const NO_HANG: Duration = Duration::from_secs(15);

/// Runs one retry case: `n` spans in one batch against `script`; returns the receiver, the
/// health after the flush and the time the flush took.
fn retried(script: Vec<Answer>, timeout: Duration) -> (Receiver, usize, u64, u64, Duration) {
    let _lock = global_lock();
    log();
    let (receiver, endpoint, _rt) = self::receiver(script, false);
    let guard = gorax_trace::init(config(&endpoint, timeout, 512)).unwrap();
    settled(&guard);
    let prefix = unique("retry");
    spans(&prefix, 3);
    let started = Instant::now();
    guard.force_flush().unwrap();
    let took = started.elapsed();
    let s = guard.health().snapshot();
    guard.shutdown().unwrap();
    eprintln!(
        "retry case: {:?} took {took:?}, {s:?}",
        receiver.requests().len()
    );
    (
        receiver.clone(),
        receiver.spans_named(&prefix),
        s.spans_exported,
        s.export_retries,
        took,
    )
}

#[test]
fn too_many_requests_once_is_retried_and_counted() {
    let (receiver, received, exported, retries, took) = retried(
        vec![Answer {
            status: 429,
            retry_after: None,
        }],
        Duration::from_secs(5),
    );
    assert_eq!(receiver.requests().len(), 2, "one 429, one 200");
    assert_eq!((received, exported, retries), (3, 3, 1));
    assert!(took < NO_HANG, "{took:?}");
}

#[test]
fn unavailable_with_retry_after_waits_then_delivers() {
    let (receiver, received, exported, retries, took) = retried(
        vec![Answer {
            status: 503,
            retry_after: Some("1"),
        }],
        Duration::from_secs(5),
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "one 503, one 200");
    assert_eq!((received, exported, retries), (3, 3, 1));
    // Retry-After honoured: the second request came at least a second after the first.
    assert!(
        requests[1] - requests[0] >= Duration::from_secs(1),
        "{:?}",
        requests[1] - requests[0]
    );
    assert!(took < NO_HANG, "{took:?}");
}

#[test]
fn retry_after_past_the_timeout_gives_up_counted_and_logged_once() {
    let _lock = global_lock();
    log();
    let (receiver, endpoint, _rt) = receiver(
        vec![Answer {
            status: 429,
            retry_after: Some("30"),
        }],
        true,
    );
    // Two batches of two spans: two failed exports, one warning.
    let guard = gorax_trace::init(config(&endpoint, Duration::from_secs(2), 2)).unwrap();
    let prefix = unique("throttled");
    spans(&prefix, 4);
    let started = Instant::now();
    let _ = guard.force_flush();
    let took = started.elapsed();
    let s = guard.health().snapshot();
    eprintln!(
        "Retry-After: 30 with a 2 s timeout: flush took {took:?}, {} requests, {s:?}",
        receiver.requests().len()
    );
    assert!(took < NO_HANG, "{took:?}");
    // Batches hold at most two spans; the export thread may wake between span ends, so the
    // four spans go out in two to four batches. Each batch is sent once: no retry.
    let batches = s.export_failures;
    assert!((2..=4).contains(&batches), "{s:?}");
    assert_eq!(
        receiver.requests().len() as u64,
        batches,
        "one request per batch, no retry"
    );
    assert_eq!(
        (s.spans_exported, s.spans_failed, s.export_retries),
        (0, 4, 0)
    );
    assert_eq!(receiver.spans_named(&prefix), 0);

    let started = Instant::now();
    let _ = guard.shutdown();
    assert!(started.elapsed() < NO_HANG);

    let port = endpoint.split(':').nth(2).unwrap();
    let warnings: Vec<_> = log_lines_with(port)
        .into_iter()
        .filter(|l| l.contains("span export failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "once per outage: {warnings:#?}");
    assert!(
        warnings[0].contains(&endpoint) && warnings[0].contains("http/protobuf"),
        "{}",
        warnings[0]
    );
    let lost = log_lines_with(port)
        .into_iter()
        .filter(|l| l.contains("spans were lost"))
        .count();
    assert_eq!(lost, 1, "shutdown says once what was lost");
}

/// An OTLP/gRPC collector that answers `code` to the first `failures` calls, then OK.
#[derive(Clone)]
struct FlakyGrpc {
    code: tonic::Code,
    failures: usize,
    calls: Arc<Mutex<usize>>,
    spans: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for FlakyGrpc
{
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if call <= self.failures {
            return Err(tonic::Status::new(self.code, "busy"));
        }
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans.into_iter().map(|s| s.name));
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

/// `code` on the first call: returns (calls, spans received, health) after a flush.
fn grpc_case(code: tonic::Code) -> (usize, usize, gorax_trace::export::HealthSnapshot) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let _lock = global_lock();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let collector = FlakyGrpc {
        code,
        failures: 1,
        calls: Arc::default(),
        spans: Arc::default(),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(collector.clone());
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let config = config(&format!("http://{addr}"), Duration::from_secs(5), 512)
        .with_protocol(Protocol::Grpc);
    let guard = gorax_trace::init(config).unwrap();
    settled(&guard);
    let prefix = unique("grpc-retry");
    spans(&prefix, 3);
    let started = Instant::now();
    let _ = guard.force_flush();
    assert!(started.elapsed() < NO_HANG);
    let health = guard.health().snapshot();
    // The shutdown says what the counters say: Ok when all arrived, else the same count lost.
    let lost = guard.shutdown().err();
    assert_eq!(
        lost.as_ref()
            .and_then(|e| e.traces.as_ref())
            .map(|t| t.lost()),
        (health.spans_failed > 0).then_some(health.spans_failed),
        "{lost:?}"
    );
    let calls = *collector.calls.lock().unwrap();
    let received = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.starts_with(&prefix))
        .count();
    eprintln!("gRPC {code:?} once: {calls} calls, {received} spans received, {health:?}");
    (calls, received, health)
}

#[test]
fn grpc_unavailable_once_is_retried_and_counted() {
    let (calls, received, s) = grpc_case(tonic::Code::Unavailable);
    assert_eq!((calls, received), (2, 3));
    assert_eq!(
        (s.spans_exported, s.export_retries, s.spans_failed),
        (3, 1, 0)
    );
}

#[test]
fn grpc_resource_exhausted_without_retry_info_is_not_retried() {
    // The OTLP specification: RESOURCE_EXHAUSTED is retryable only with RetryInfo.
    let (calls, received, s) = grpc_case(tonic::Code::ResourceExhausted);
    assert_eq!((calls, received), (1, 0));
    assert_eq!(
        (s.spans_exported, s.export_retries, s.spans_failed),
        (0, 0, 3)
    );
}
