//! What issue 14 added to the export path, through real receivers on 127.0.0.1: gzip arrives
//! compressed (`Content-Encoding: gzip` over HTTP, `grpc-encoding: gzip` over gRPC) and decodes
//! to the spans sent, and `none` arrives as plain protobuf; with several exports in flight the
//! counts add up (exported + dropped + failed = produced, exported = what the receiver got),
//! retries are counted per export, and a collector that never answers blocks nothing and holds
//! at most the queue plus one batch per export in flight.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use gorax_tests::{serve, unique};
use gorax_trace::config::{Compression, Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use opentelemetry::trace::Tracer;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// What an HTTP receiver saw: the `Content-Encoding` of each request, span names, requests.
#[derive(Clone, Default)]
struct Seen {
    encodings: Arc<Mutex<Vec<Option<String>>>>,
    spans: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicU64>,
    /// Answer 503 to the first request of each body (one retry per export).
    flaky: bool,
    bodies: Arc<Mutex<std::collections::HashSet<Vec<u8>>>>,
}

fn names(request: ExportTraceServiceRequest) -> Vec<String> {
    request
        .resource_spans
        .into_iter()
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .map(|s| s.name)
        .collect()
}

async fn traces(
    State(seen): State<Seen>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    if seen.flaky && seen.bodies.lock().unwrap().insert(body.to_vec()) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let encoding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = match encoding.as_deref() {
        Some("gzip") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .expect("a gzip body");
            plain
        }
        None => body.to_vec(),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    };
    let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
    seen.encodings.lock().unwrap().push(encoding);
    seen.spans.lock().unwrap().extend(names(request));
    StatusCode::OK
}

fn http_receiver(flaky: bool) -> (Seen, String, tokio::runtime::Runtime) {
    let seen = Seen {
        flaky,
        ..Seen::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(seen.clone());
    let addr = rt.block_on(serve(app));
    (seen, format!("http://{addr}/v1/traces"), rt)
}

fn batch(size: usize) -> BatchSettings {
    BatchSettings::default()
        .with_max_queue_size(4096)
        .with_max_export_batch_size(size)
        .with_scheduled_delay(Duration::from_millis(50))
        .with_export_timeout(Duration::from_secs(5))
}

/// Ends `n` spans named `prefix.i` through `telemetry`; returns their names.
fn spans(telemetry: &gorax_trace::Telemetry, prefix: &str, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}.{i}")).collect();
    for name in &names {
        telemetry.tracer().in_span(name.clone(), |_| {});
    }
    names
}

#[test]
fn gzip_arrives_compressed_and_decodes_to_the_same_spans_over_http() {
    for (vars, want) in [
        (vec![("TRACING_COMPRESSION", "gzip")], Some("gzip")),
        (
            vec![("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")],
            Some("gzip"),
        ),
        // The configuration's precedence, whatever opentelemetry-otlp would read.
        (
            vec![
                ("TRACING_COMPRESSION", "none"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ],
            None,
        ),
        (vec![], None),
    ] {
        let (seen, endpoint, _rt) = http_receiver(false);
        let mut all = vars.clone();
        all.push(("TRACING_ENDPOINT", endpoint.as_str()));
        all.push(("TRACING_PROTOCOL", "http/protobuf"));
        let config = TraceConfig::from_vars(all).unwrap().with_batch(batch(64));
        let telemetry = gorax_trace::Telemetry::new(&config).unwrap();
        let prefix = unique("gzip");
        let sent = spans(&telemetry, &prefix, 300);
        telemetry.force_flush().unwrap();
        let health = telemetry.health().snapshot();
        telemetry.shutdown().unwrap();

        let mut got = seen.spans.lock().unwrap().clone();
        got.sort();
        let mut sent = sent;
        sent.sort();
        assert_eq!(got, sent, "{vars:?}");
        let encodings = seen.encodings.lock().unwrap().clone();
        assert!(encodings.len() >= 5, "{encodings:?}");
        assert!(
            encodings.iter().all(|e| e.as_deref() == want),
            "{vars:?}: {encodings:?}"
        );
        assert_eq!(health.spans_exported, 300, "{health:?}");
    }
}

/// A gRPC collector that accepts gzip and records each request's `grpc-encoding`.
#[derive(Clone, Default)]
struct GzipCollector {
    encodings: Arc<Mutex<Vec<Option<String>>>>,
    spans: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for GzipCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let encoding = request
            .metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        self.encodings.lock().unwrap().push(encoding);
        self.spans
            .lock()
            .unwrap()
            .extend(names(request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[test]
fn gzip_arrives_compressed_and_decodes_to_the_same_spans_over_grpc() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for compression in [Compression::Gzip, Compression::None] {
        let collector = GzipCollector::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(collector.clone())
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        let config = TraceConfig::new()
            .with_endpoint(format!("http://{addr}"))
            .with_protocol(Protocol::Grpc)
            .with_compression(compression)
            .with_batch(batch(64));
        let telemetry = gorax_trace::Telemetry::new(&config).unwrap();
        let prefix = unique("grpc-gzip");
        let mut sent = spans(&telemetry, &prefix, 200);
        telemetry.force_flush().unwrap();
        telemetry.shutdown().unwrap();

        let mut got = collector.spans.lock().unwrap().clone();
        got.sort();
        sent.sort();
        assert_eq!(got, sent, "{compression}");
        let want = (compression == Compression::Gzip).then(|| "gzip".to_owned());
        let encodings = collector.encodings.lock().unwrap().clone();
        assert!(!encodings.is_empty());
        assert!(
            encodings.iter().all(|e| *e == want),
            "{compression}: {encodings:?}"
        );
    }
}

#[test]
fn with_exports_in_flight_at_once_every_span_is_counted_once() {
    let (seen, endpoint, _rt) = http_receiver(false);
    let config = TraceConfig::new()
        .with_endpoint(endpoint)
        .with_protocol(Protocol::HttpProtobuf)
        .with_export_concurrency(4)
        .with_batch(batch(32).with_max_queue_size(512));
    let telemetry = gorax_trace::Telemetry::new(&config).unwrap();
    let prefix = unique("concurrent");
    let threads = 4;
    let per_thread = 5_000;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (telemetry, prefix) = (&telemetry, &prefix);
            s.spawn(move || spans(telemetry, &format!("{prefix}.{t}"), per_thread));
        }
    });
    telemetry.force_flush().unwrap();
    let h = telemetry.health().snapshot();
    // Dropped spans (queue full) make the shutdown an error that counts them.
    let lost = telemetry.shutdown().err();
    assert_eq!(
        lost.as_ref()
            .and_then(|e| e.traces.as_ref())
            .map_or(0, |t| t.health.spans_dropped),
        h.spans_dropped
    );
    let produced = (threads * per_thread) as u64;
    assert_eq!(
        h.spans_exported + h.spans_dropped + h.spans_failed,
        produced,
        "{h:?}"
    );
    assert_eq!(h.spans_failed, 0, "{h:?}");
    let got = seen.spans.lock().unwrap().clone();
    assert_eq!(got.len() as u64, h.spans_exported, "{h:?}");
    let mut unique_names = got.clone();
    unique_names.sort();
    unique_names.dedup();
    assert_eq!(unique_names.len(), got.len(), "a span arrived twice");
}

#[test]
fn retries_are_counted_per_export_with_exports_in_flight_at_once() {
    // The first request of each export is answered 503: each export is sent twice.
    let (seen, endpoint, _rt) = http_receiver(true);
    let config = TraceConfig::new()
        .with_endpoint(endpoint)
        .with_protocol(Protocol::HttpProtobuf)
        .with_export_concurrency(3)
        .with_batch(batch(10));
    let telemetry = gorax_trace::Telemetry::new(&config).unwrap();
    spans(&telemetry, &unique("retried"), 120);
    telemetry.force_flush().unwrap();
    let h = telemetry.health().snapshot();
    telemetry.shutdown().unwrap();
    let requests = seen.requests.load(Ordering::SeqCst);
    let accepted = seen.encodings.lock().unwrap().len() as u64;
    assert_eq!(h.spans_exported, 120, "{h:?}");
    assert_eq!(h.export_failures, 0, "{h:?}");
    // Every request after the first of its export is a retry; none counted twice.
    assert_eq!(
        h.export_retries,
        requests - accepted,
        "{h:?} {requests} {accepted}"
    );
    assert_eq!(h.export_retries, accepted, "one retry per export: {h:?}");
}

#[test]
fn a_collector_that_never_answers_blocks_nothing_with_exports_in_flight_at_once() {
    // Accepts connections and reads nothing: every request hangs until the export timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    let (queue, size, concurrency) = (256, 64, 3);
    let config = TraceConfig::new()
        .with_endpoint(endpoint)
        .with_protocol(Protocol::HttpProtobuf)
        .with_export_concurrency(concurrency)
        .with_batch(
            BatchSettings::default()
                .with_max_queue_size(queue)
                .with_max_export_batch_size(size)
                .with_scheduled_delay(Duration::from_millis(20))
                .with_export_timeout(Duration::from_secs(8)),
        );
    let telemetry = gorax_trace::Telemetry::new(&config).unwrap();
    let produced = 20_000;
    // Liveness bound, not performance: a blocked `on_end` would never return.
    let started = Instant::now();
    spans(&telemetry, &unique("hung"), produced);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(200));
    let h = telemetry.health().snapshot();
    // Nothing came back within the 8 s timeout: everything not dropped is queued or in flight,
    // at most the queue plus one batch per export in flight.
    assert_eq!(h.spans_exported + h.spans_failed, 0, "{h:?}");
    let held = produced as u64 - h.spans_dropped;
    assert!(held <= (queue + concurrency * size) as u64, "{held} {h:?}");
    assert!(held >= (concurrency * size) as u64, "{held} {h:?}");

    let started = Instant::now();
    let _ = telemetry.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    drop(keep);
}
