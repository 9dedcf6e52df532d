//! RED metrics through real servers on 127.0.0.1: an axum service with the server layer, called
//! by a reqwest client with the client middleware, a queue producer and consumer (memory
//! adapter), exporting spans and metrics over OTLP/HTTP to a receiver written here (axum) that
//! decodes the protobuf bodies; and the Prometheus scrape route read over HTTP.
//!
//! Asserted: the counts of every histogram (one measurement per request, message and send, sampled
//! or not), their attributes and bucket boundaries, exemplars pointing at exported sampled spans,
//! `http.server.active_requests` back to 0; a collector answering 503 for the first pushes loses
//! nothing (cumulative totals arrive with the next push, failures counted); a collector that is
//! down never blocks the service nor the shutdown.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use gorax_tests::{global_lock, serve, wait_until};
use gorax_trace::config::{Protocol, TraceConfig};
use gorax_trace::metrics::{DURATION_BUCKETS, MetricsExporters};
use gorax_trace_client::ClientTraceMiddleware;
use gorax_trace_server::ServerTraceLayer;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric, metric};
use prost::Message;

/// `(trace id, span id)` of the exported spans.
type SpanIds = Arc<Mutex<HashSet<(Vec<u8>, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Collector {
    /// Answer 503 to this many metric pushes first.
    fail_metrics: Arc<Mutex<usize>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    span_ids: SpanIds,
    /// Per metric push, whether it came gzip-compressed.
    gzipped: Arc<Mutex<Vec<bool>>>,
}

async fn metrics_in(
    State(c): State<Collector>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let (body, gzipped) = decoded(&headers, body);
    c.gzipped.lock().unwrap().push(gzipped);
    {
        let mut fail = c.fail_metrics.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let request = ExportMetricsServiceRequest::decode(body).expect("protobuf metrics");
    c.metrics.lock().unwrap().push(request);
    StatusCode::OK
}

/// The body as sent, gunzipped when `Content-Encoding: gzip`; and whether it was.
fn decoded(headers: &axum::http::HeaderMap, body: axum::body::Bytes) -> (axum::body::Bytes, bool) {
    let gzipped = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    if !gzipped {
        return (body, false);
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
        .expect("a gzip body");
    (out.into(), true)
}

async fn traces_in(
    State(c): State<Collector>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let (body, _) = decoded(&headers, body);
    let request = ExportTraceServiceRequest::decode(body).expect("protobuf traces");
    let mut ids = c.span_ids.lock().unwrap();
    for rs in request.resource_spans {
        for ss in rs.scope_spans {
            for s in ss.spans {
                ids.insert((s.trace_id, s.span_id));
            }
        }
    }
    StatusCode::OK
}

impl Collector {
    /// The metric named `name` in the last push.
    fn last(&self, name: &str) -> Option<Metric> {
        let pushes = self.metrics.lock().unwrap();
        pushes.last().and_then(|p| {
            p.resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .find(|m| m.name == name)
                .cloned()
        })
    }
}

fn histogram(m: &Metric) -> Vec<HistogramDataPoint> {
    match &m.data {
        Some(metric::Data::Histogram(h)) => h.data_points.clone(),
        other => panic!("{} is not a histogram: {other:?}", m.name),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

async fn start_collector(collector: Collector) -> std::net::SocketAddr {
    serve(
        axum::Router::new()
            .route("/v1/metrics", post(metrics_in))
            .route("/v1/traces", post(traces_in))
            .with_state(collector),
    )
    .await
}

fn config(collector: std::net::SocketAddr, exporters: MetricsExporters) -> TraceConfig {
    TraceConfig::new()
        .with_service_name("metrics-test")
        .with_endpoint(format!("http://{collector}"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_sample_rate(0.5)
        .with_compression(gorax_trace::export::Compression::Gzip)
        .with_metrics(true)
        .with_metrics_exporters(exporters)
        .with_metric_export_interval(Duration::from_millis(200))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn red_metrics_with_exemplars_over_otlp_http() {
    let _lock = global_lock();
    runtime().block_on(red_metrics());
}

async fn red_metrics() {
    let collector = Collector::default();
    // The first two pushes fail: nothing may be missing from the totals.
    *collector.fail_metrics.lock().unwrap() = 2;
    let addr = start_collector(collector.clone()).await;
    let telemetry = gorax_trace::init(config(
        addr,
        MetricsExporters::NONE.with_otlp(true).with_prometheus(true),
    ))
    .unwrap();

    let app = axum::Router::new()
        .route("/api/v1/workflows/{id}/execute", post(|| async { "ok" }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(ServerTraceLayer::new())
        .merge(axum::Router::new().route(
            "/metrics",
            gorax_trace_server::prometheus_route(telemetry.prometheus().unwrap()),
        ));
    let server = serve(app).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ClientTraceMiddleware::new())
        .build();
    for i in 0..40 {
        let res = client
            .post(format!("http://{server}/api/v1/workflows/w{i}/execute"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    for _ in 0..6 {
        let res = client
            .get(format!("http://{server}/fail"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 500);
    }

    // Queue: 7 sends and 7 handler calls through the memory adapter and the consumer layer.
    {
        use gorax_trace_queue::{ConsumerTraceLayer, ProducerTracer, TracedMessage};
        use tower::{Service, ServiceExt};
        let producer = ProducerTracer::new().with_system("memory");
        let mut consumer = tower::ServiceBuilder::new()
            .layer(ConsumerTraceLayer::new())
            .service(tower::service_fn(|_m: TracedMessage<u32>| async {
                Ok::<_, std::convert::Infallible>(())
            }));
        for i in 0..7u32 {
            let mut msg = TracedMessage::new("gorax-executions", i);
            producer.start_send(&mut msg).end();
            consumer.ready().await.unwrap().call(msg).await.unwrap();
        }
    }

    // Scrape over HTTP while the pushes fail.
    let scraped = reqwest::get(format!("http://{server}/metrics"))
        .await
        .unwrap();
    assert_eq!(
        scraped.headers()["content-type"],
        gorax_trace::metrics::OPENMETRICS_CONTENT_TYPE
    );
    let text = scraped.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let count_line = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count")
                && l.contains(r#"http_route="/api/v1/workflows/{id}/execute""#)
        })
        .unwrap_or_else(|| panic!("no server count in {text}"));
    assert!(count_line.ends_with(" 40"), "{count_line}");
    assert!(
        text.contains(r#"le="0.005""#) && text.contains(r#"le="+Inf""#),
        "{text}"
    );
    assert!(
        text.contains("otel_sdk_exporter_span_exported_total"),
        "{text}"
    );

    // The pushes run every 200 ms: wait for the two refused ones and one accepted after them.
    let health = telemetry.metrics_export_health().unwrap();
    assert!(wait_until(Duration::from_secs(10), || health.exports() >= 1));
    assert!(health.failures() >= 2, "failed pushes counted");
    // Shutdown pushes the final totals.
    telemetry.shutdown().unwrap();

    // The configured compression applies to the metrics push too.
    let gzipped = collector.gzipped.lock().unwrap().clone();
    assert!(
        !gzipped.is_empty() && gzipped.iter().all(|g| *g),
        "{gzipped:?}"
    );

    // Server histogram: 40 + 6 measurements, one data point per attribute set.
    let server = histogram(
        &collector
            .last("http.server.request.duration")
            .expect("server histogram pushed"),
    );
    let ok = server
        .iter()
        .find(|p| str_attr(&p.attributes, "http.route") == Some("/api/v1/workflows/{id}/execute"))
        .unwrap();
    assert_eq!(ok.count, 40);
    assert_eq!(ok.explicit_bounds, DURATION_BUCKETS.to_vec());
    assert_eq!(
        str_attr(&ok.attributes, "http.request.method"),
        Some("POST")
    );
    assert_eq!(str_attr(&ok.attributes, "url.scheme"), Some("http"));
    assert_eq!(
        int_attr(&ok.attributes, "http.response.status_code"),
        Some(200)
    );
    assert_eq!(str_attr(&ok.attributes, "error.type"), None);
    let failed = server
        .iter()
        .find(|p| str_attr(&p.attributes, "http.route") == Some("/fail"))
        .unwrap();
    assert_eq!(failed.count, 6);
    assert_eq!(str_attr(&failed.attributes, "error.type"), Some("500"));

    // Exemplars: only of sampled requests, each naming a span that was exported.
    let exported = collector.span_ids.lock().unwrap().clone();
    let exemplars: Vec<_> = server.iter().flat_map(|p| p.exemplars.clone()).collect();
    assert!(!exemplars.is_empty(), "sampled requests leave exemplars");
    for e in &exemplars {
        assert!(
            exported.contains(&(e.trace_id.clone(), e.span_id.clone())),
            "exemplar points at an exported span"
        );
    }

    // Client histogram: the same 46 requests, to 127.0.0.1.
    let client_points = histogram(&collector.last("http.client.request.duration").unwrap());
    let total: u64 = client_points.iter().map(|p| p.count).sum();
    assert_eq!(total, 46);
    assert!(
        client_points
            .iter()
            .all(|p| str_attr(&p.attributes, "server.address") == Some("127.0.0.1"))
    );

    // Queue histograms.
    let process = histogram(&collector.last("messaging.process.duration").unwrap());
    assert_eq!(process.iter().map(|p| p.count).sum::<u64>(), 7);
    assert_eq!(
        str_attr(&process[0].attributes, "messaging.destination.name"),
        Some("gorax-executions")
    );
    let sends = histogram(
        &collector
            .last("messaging.client.operation.duration")
            .unwrap(),
    );
    assert_eq!(sends.iter().map(|p| p.count).sum::<u64>(), 7);
    assert_eq!(
        str_attr(&sends[0].attributes, "messaging.operation.name"),
        Some("send")
    );

    // Active requests back to zero.
    let active = collector.last("http.server.active_requests").unwrap();
    match active.data {
        Some(metric::Data::Sum(s)) => {
            assert!(s.data_points.iter().all(|p| matches!(
                p.value,
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(0))
            )))
        }
        other => panic!("active requests: {other:?}"),
    }
}

/// With the collector down (nothing listens), requests are served, the failed pushes are
/// counted, and shutdown returns.
#[test]
fn a_dead_collector_blocks_nothing() {
    let _lock = global_lock();
    runtime().block_on(dead_collector());
}

async fn dead_collector() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let telemetry = gorax_trace::init(
        config(dead, MetricsExporters::default()).with_batch(
            gorax_trace::export::BatchSettings::default()
                .with_export_timeout(Duration::from_millis(500)),
        ),
    )
    .unwrap();
    let app = axum::Router::new()
        .route("/a", get(|| async { "ok" }))
        .layer(ServerTraceLayer::new());
    let server = serve(app).await;
    for _ in 0..50 {
        let res = reqwest::get(format!("http://{server}/a")).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let health = telemetry.metrics_export_health().unwrap();
    assert!(wait_until(Duration::from_secs(10), || health.failures() >= 1));
    assert_eq!(health.exports(), 0);
    let _ = telemetry.shutdown();
}

/// Over OTLP/gRPC: the push reaches a tonic `MetricsService` on 127.0.0.1 with the counts and
/// the exemplars.
#[test]
fn red_metrics_over_otlp_grpc() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };

    #[derive(Clone, Default)]
    struct GrpcMetrics(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

    #[tonic::async_trait]
    impl MetricsService for GrpcMetrics {
        async fn export(
            &self,
            request: tonic::Request<ExportMetricsServiceRequest>,
        ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(request.into_inner());
            Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
        }
    }

    let _lock = global_lock();
    let rt = runtime();
    let received = GrpcMetrics::default();
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let service = MetricsServiceServer::new(received.clone());
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        addr
    };
    // Spans go nowhere (exporter none); metrics over gRPC to the collector.
    let telemetry = gorax_trace::init(
        TraceConfig::new()
            .with_endpoint(format!("http://{addr}"))
            .with_protocol(Protocol::Grpc)
            .with_exporter(gorax_trace::config::ExporterKind::None)
            .with_metrics(true)
            .with_metric_export_interval(Duration::from_secs(3600)),
    )
    .unwrap();
    rt.block_on(async {
        let app = axum::Router::new()
            .route("/a/{id}", get(|| async { "ok" }))
            .layer(ServerTraceLayer::new());
        let server = serve(app).await;
        for i in 0..9 {
            let res = reqwest::Client::new()
                .get(format!("http://{server}/a/{i}"))
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    });
    // The interval is an hour: shutdown's final push is the one that arrives.
    telemetry.shutdown().unwrap();
    let pushes = received.0.lock().unwrap();
    let point = pushes
        .iter()
        .flat_map(|p| &p.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == "http.server.request.duration")
        .flat_map(histogram)
        .last()
        .expect("server histogram over gRPC");
    assert_eq!(point.count, 9);
    assert_eq!(str_attr(&point.attributes, "http.route"), Some("/a/{id}"));
    // Every request continued the caller's sampled trace: exemplars carry its trace id.
    assert!(!point.exemplars.is_empty());
    assert!(point.exemplars.iter().all(|e| e.trace_id
        == [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36
        ]));
}

/// A collector that accepts connections and never answers: requests are served, and shutdown
/// (which pushes the metrics a last time) returns instead of waiting for the 30 s push timeout.
#[test]
fn a_silent_collector_does_not_hold_shutdown() {
    let _lock = global_lock();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        // Keep every connection open, unanswered, until the test ends.
        let mut open = Vec::new();
        silent.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            match silent.accept() {
                Ok((c, _)) => open.push(c),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    let rt = runtime();
    let telemetry = gorax_trace::init(
        config(addr, MetricsExporters::default())
            .with_compression(gorax_trace::export::Compression::None)
            .with_batch(
                gorax_trace::export::BatchSettings::default()
                    .with_export_timeout(Duration::from_millis(500)),
            )
            .with_metric_export_interval(Duration::from_secs(3600)),
    )
    .unwrap();
    rt.block_on(async {
        let app = axum::Router::new()
            .route("/a", get(|| async { "ok" }))
            .layer(ServerTraceLayer::new());
        let server = serve(app).await;
        for _ in 0..20 {
            let res = reqwest::get(format!("http://{server}/a")).await.unwrap();
            assert_eq!(res.status(), 200);
        }
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = telemetry.shutdown();
        let _ = done_tx.send(result.is_ok());
    });
    // Hang detection, not a timing assertion: the SDK's reader gives up its last push after 5 s.
    assert!(
        done_rx.recv_timeout(Duration::from_secs(25)).is_ok(),
        "shutdown hung on a silent collector"
    );
    drop(held);
}

/// Keep mode's counters are instruments too: at 0 % sampling with `TRACING_KEEP_ERRORS`, 2 failed
/// and 3 fine requests are 2 kept and 3 discarded trees, in the scrape and in `keep_stats()`.
#[test]
fn keep_mode_counters_in_the_scrape() {
    let _lock = global_lock();
    let rt = runtime();
    let collector = Collector::default();
    let addr = rt.block_on(start_collector(collector.clone()));
    let telemetry = gorax_trace::init(
        config(addr, MetricsExporters::NONE.with_prometheus(true))
            .with_sample_rate(0.0)
            .with_keep_errors(true),
    )
    .unwrap();
    let scrape = telemetry.prometheus().unwrap();
    rt.block_on(async {
        let app = axum::Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .layer(ServerTraceLayer::new());
        let server = serve(app).await;
        for path in ["ok", "fail", "ok", "fail", "ok"] {
            reqwest::get(format!("http://{server}/{path}"))
                .await
                .unwrap();
        }
    });
    let stats = telemetry.keep_stats().expect("keep mode is on");
    assert_eq!((stats.traces_kept(), stats.traces_discarded()), (2, 3));
    let text = scrape.render();
    assert!(
        text.contains(r#"gorax_keep_traces_total{gorax_keep_outcome="kept"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gorax_keep_traces_total{gorax_keep_outcome="discarded"} 3"#),
        "{text}"
    );
    // Every request is measured whatever the sampler says.
    assert!(
        text.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_count")
                && l.contains(r#"http_route="/fail""#)
                && l.ends_with(" 2")
        ),
        "{text}"
    );
    drop(telemetry);
}

/// `url.scheme` of the metrics follows the span's rule (a trusted proxy's `X-Forwarded-Proto`),
/// and a header value outside `http`/`https` cannot add a series.
#[test]
fn metric_scheme_follows_a_trusted_proxy_and_stays_bounded() {
    let _lock = global_lock();
    let rt = runtime();
    let telemetry = gorax_trace::init(
        TraceConfig::new()
            .with_exporter(gorax_trace::config::ExporterKind::None)
            .with_metrics(true)
            .with_metrics_exporters(MetricsExporters::NONE.with_prometheus(true)),
    )
    .unwrap();
    let scrape = telemetry.prometheus().unwrap();
    rt.block_on(async {
        let app = axum::Router::new()
            .route("/a", get(|| async { "ok" }))
            .layer(ServerTraceLayer::new().with_trusted_proxies(["127.0.0.1".parse().unwrap()]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap()
        });
        let client = reqwest::Client::new();
        for proto in ["https", "https", "javascript", "x".repeat(500).as_str()] {
            let res = client
                .get(format!("http://{server}/a"))
                .header("x-forwarded-proto", proto)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    });
    let text = scrape.render();
    let counts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .collect();
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(
        counts
            .iter()
            .any(|l| l.contains(r#"url_scheme="https""#) && l.ends_with(" 2")),
        "{counts:?}"
    );
    assert!(
        counts
            .iter()
            .any(|l| l.contains(r#"url_scheme="http""#) && l.ends_with(" 2")),
        "{counts:?}"
    );
    drop(telemetry);
}
