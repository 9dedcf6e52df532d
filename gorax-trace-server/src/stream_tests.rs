//! Spans that last as long as the response (issue 23), through a real axum server on 127.0.0.1
//! and a raw HTTP/1.1 client (so that the test decides when the connection closes).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use gorax_trace::semconv;
use gorax_trace::testing::{Spans, TestTracing};
use http::{Request, Response, StatusCode};
use opentelemetry::trace::{Span as _, Status, Tracer as _};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SpanData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{ServerTraceLayer, SpanEnd};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Test tracing with RED metrics read back from an in-memory exporter.
struct Harness {
    t: TestTracing,
    meters: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
    handle: gorax_trace::TelemetryHandle,
}

impl Harness {
    fn new() -> Self {
        use opentelemetry::metrics::MeterProvider as _;
        let t = TestTracing::new();
        let exporter = InMemoryMetricExporter::default();
        let meters = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(exporter.clone())
                    .with_interval(Duration::from_secs(3600))
                    .build(),
            )
            .build();
        let health = gorax_trace::export::ExportHealth::default();
        let metrics = gorax_trace::metrics::Metrics::new(&meters.meter("test"), &health);
        let handle = t.handle_with(gorax_trace::Settings::default().with_metrics(Some(metrics)));
        Self {
            t,
            meters,
            exporter,
            handle,
        }
    }

    fn layer(&self) -> ServerTraceLayer {
        ServerTraceLayer::new().with_telemetry(&self.handle)
    }

    /// `(count, sum)` of `http.server.request.duration` for `route`, and the sum of every
    /// `http.server.active_requests` point.
    fn metrics(&self, route: &str) -> ((u64, f64), i64) {
        self.exporter.reset();
        self.meters.force_flush().unwrap();
        let mut duration = (0, 0.0);
        let mut active = 0;
        for rm in self.exporter.get_finished_metrics().unwrap() {
            for m in rm.scope_metrics().flat_map(|sm| sm.metrics()) {
                match (m.name(), m.data()) {
                    (name, AggregatedMetrics::F64(MetricData::Histogram(h)))
                        if name == semconv::metric::HTTP_SERVER_REQUEST_DURATION =>
                    {
                        for p in h.data_points() {
                            if p.attributes().any(|kv| {
                                kv.key.as_str() == semconv::HTTP_ROUTE && kv.value.as_str() == route
                            }) {
                                duration.0 += p.count();
                                duration.1 += p.sum();
                            }
                        }
                    }
                    (name, AggregatedMetrics::I64(MetricData::Sum(s)))
                        if name == semconv::metric::HTTP_SERVER_ACTIVE_REQUESTS =>
                    {
                        active += s.data_points().map(|p| p.value()).sum::<i64>();
                    }
                    _ => {}
                }
            }
        }
        (duration, active)
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Sends `GET path` with the caller's `traceparent`.
async fn open(addr: SocketAddr, path: &str, close: bool) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let connection = if close { "connection: close\r\n" } else { "" };
    let req =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\ntraceparent: {TP}\r\n{connection}\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream
}

/// Reads until `needle` has arrived (liveness bound: 10 s).
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before {needle:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("liveness");
    String::from_utf8_lossy(&seen).into_owned()
}

/// Waits until `n` spans named `name` have ended (liveness bound: 10 s).
async fn spans_named(t: &TestTracing, name: &str, n: usize) -> Spans {
    let start = Instant::now();
    loop {
        let spans = t.spans();
        if spans.find_all(name).len() >= n {
            return spans;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{n} spans {name} (have {:?})",
            spans.names()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn duration(span: &SpanData) -> Duration {
    span.end_time.duration_since(span.start_time).unwrap()
}

fn outcome(span: &SpanData) -> String {
    Spans::attr(span, semconv::GORAX_HTTP_RESPONSE_BODY_OUTCOME)
        .map(|v| v.as_str().into_owned())
        .unwrap_or_default()
}

/// `count` events, the first after `every`, then every `every`; each event makes a span.
fn sse(
    count: usize,
    every: Duration,
    tracer: opentelemetry_sdk::trace::SdkTracer,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(0, move |i| {
        let tracer = tracer.clone();
        async move {
            if i == count {
                return None;
            }
            tokio::time::sleep(every).await;
            // Made while the body is polled: a child of the request's span.
            tracer.start("sse.event").end();
            Some((Ok(Event::default().data(format!("event {i}"))), i + 1))
        }
    });
    Sse::new(stream)
}

/// A chunked download: `count` chunks of 1 KiB, one per `every`, the first at once.
fn download(count: usize, every: Duration) -> Response<Body> {
    let stream = futures_util::stream::unfold(0, move |i| async move {
        if i == count {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(every).await;
        }
        Some((Ok::<_, Infallible>(Bytes::from(vec![b'x'; 1024])), i + 1))
    });
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_span_lasts_as_long_as_the_stream_and_the_histogram_agrees() {
    let h = Harness::new();
    let tracer = h.t.tracer();
    let router = Router::new()
        .route(
            "/events",
            get(move || {
                let tracer = tracer.clone();
                async move { sse(5, Duration::from_millis(400), tracer) }
            }),
        )
        .layer(h.layer());
    let addr = serve(router).await;
    let mut stream = open(addr, "/events", true).await;
    let mut all = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut all))
        .await
        .expect("liveness")
        .unwrap();
    assert!(all.contains("event 4"), "{all}");
    let spans = spans_named(&h.t, "GET /events", 1).await;
    let server = spans.find("GET /events");
    let took = duration(server);
    println!("SSE server span: {took:?}");
    assert!(
        took >= Duration::from_millis(2000) && took <= Duration::from_millis(2300),
        "{took:?}"
    );
    assert_eq!(server.status, Status::Unset);
    assert_eq!(outcome(server), "completed");
    let ttff = Spans::attr(server, semconv::GORAX_HTTP_RESPONSE_TIME_TO_FIRST_FRAME)
        .expect("time to first frame");
    let opentelemetry::Value::F64(ttff) = ttff else {
        panic!("{ttff:?}")
    };
    assert!((0.35..1.0).contains(ttff), "{ttff}");
    assert!(Spans::attr(server, semconv::HTTP_RESPONSE_BODY_SIZE).is_some());
    // Each event's span is a child of the server span.
    let events = spans.find_all("sse.event");
    assert_eq!(events.len(), 5);
    for e in events {
        assert_eq!(e.parent_span_id, server.span_context.span_id());
        assert_eq!(e.span_context.trace_id(), server.span_context.trace_id());
    }
    let ((count, sum), active) = h.metrics("/events");
    assert_eq!(count, 1);
    let diff = (sum - took.as_secs_f64()).abs();
    println!("histogram sum {sum:.6} s, span {:.6} s", took.as_secs_f64());
    assert!(diff <= 0.001, "histogram {sum} s vs span {took:?}");
    assert_eq!(active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_an_sse_stream_abandons_it_without_error() {
    let h = Harness::new();
    let tracer = h.t.tracer();
    let router = Router::new()
        .route(
            "/events",
            get(move || {
                let tracer = tracer.clone();
                async move { sse(50, Duration::from_millis(200), tracer) }
            }),
        )
        .layer(h.layer());
    let addr = serve(router).await;
    let mut stream = open(addr, "/events", false).await;
    read_until(&mut stream, "event 0").await;
    let left = Instant::now();
    drop(stream);
    let spans = spans_named(&h.t, "GET /events", 1).await;
    let server = spans.find("GET /events");
    // The server learns it at a write: the next event or the one after.
    println!(
        "SSE abandoned span ended {:?} after the client left",
        left.elapsed()
    );
    assert!(duration(server) < Duration::from_secs(3));
    assert_eq!(outcome(server), "abandoned");
    assert_eq!(server.status, Status::Unset, "a client closing ends SSE");
    spans.assert_no_attr(server, semconv::ERROR_TYPE);
    let ((count, _), active) = h.metrics("/events");
    assert_eq!((count, active), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_download_and_a_failing_body_are_errors() {
    let h = Harness::new();
    let router = Router::new()
        .route(
            "/download",
            get(|| async { download(50, Duration::from_millis(200)) }),
        )
        .route(
            "/broken",
            get(|| async {
                let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::from_static(b"first")),
                    Err(std::io::Error::other("disk gone")),
                ];
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .layer(h.layer());
    let addr = serve(router).await;
    let mut stream = open(addr, "/download", false).await;
    read_until(&mut stream, "xxxx").await;
    drop(stream);
    let mut broken = open(addr, "/broken", false).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), broken.read_to_end(&mut rest)).await;
    let spans = spans_named(&h.t, "GET /download", 1).await;
    let spans = {
        drop(spans);
        spans_named(&h.t, "GET /broken", 1).await
    };
    let download = spans.find("GET /download");
    assert_eq!(outcome(download), "abandoned");
    assert!(matches!(download.status, Status::Error { .. }));
    spans.assert_attr(
        download,
        semconv::ERROR_TYPE,
        semconv::ERROR_TYPE_RESPONSE_ABANDONED,
    );
    spans.assert_attr(download, semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64);
    let broken = spans.find("GET /broken");
    assert_eq!(outcome(broken), "failed");
    assert!(matches!(broken.status, Status::Error { .. }));
    assert!(Spans::attr(broken, semconv::ERROR_TYPE).is_some());
    spans.assert_attr(broken, semconv::HTTP_RESPONSE_BODY_SIZE, 5_i64);
    let ((count, _), active) = h.metrics("/download");
    assert_eq!((count, active), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_abandoned_streams_end_a_thousand_spans() {
    const N: usize = 1000;
    let h = Harness::new();
    let tracer = h.t.tracer();
    let router = Router::new()
        .route(
            "/events",
            get(move || {
                let tracer = tracer.clone();
                // Bounded: 100 events at most.
                async move { sse(100, Duration::from_millis(100), tracer) }
            }),
        )
        .layer(h.layer());
    let addr = serve(router).await;
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(tokio::spawn(async move {
            let mut stream = open(addr, "/events", false).await;
            read_until(&mut stream, "event 0").await;
            stream
        }));
    }
    let mut open_streams = Vec::with_capacity(N);
    for c in clients {
        open_streams.push(c.await.unwrap());
    }
    assert!(h.t.spans().find_all("GET /events").is_empty(), "all open");
    drop(open_streams);
    let spans = spans_named(&h.t, "GET /events", N).await;
    let servers = spans.find_all("GET /events");
    assert_eq!(servers.len(), N);
    assert!(servers.iter().all(|s| outcome(s) == "abandoned"));
    let ((count, _), active) = h.metrics("/events");
    assert_eq!((count, active), (N as u64, 0));
    // The connections' tasks end too (liveness bound).
    let start = Instant::now();
    while tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
        > baseline + 1
    {
        assert!(start.elapsed() < Duration::from_secs(10), "tasks left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_ends_the_span_at_the_handshake() {
    let h = Harness::new();
    let router = Router::new()
        .route(
            "/ws",
            get(|mut req: Request<Body>| async move {
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let upgraded = on_upgrade.await.expect("upgraded");
                    let mut io = hyper_util_io(upgraded);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    io.write_all(b"message").await.unwrap();
                    io.shutdown().await.unwrap();
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .body(Body::empty())
                    .unwrap()
            }),
        )
        .layer(h.layer());
    let addr = serve(router).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nhost: {addr}\r\nconnection: upgrade\r\nupgrade: websocket\r\ntraceparent: {TP}\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    read_until(&mut stream, "\r\n\r\n").await;
    // The handshake is done, the connection open: the span has ended.
    let spans = spans_named(&h.t, "GET /ws", 1).await;
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.contains("message"));
    assert_eq!(spans.find_all("GET /ws").len(), 1);
    let ws = spans.find("GET /ws");
    spans.assert_attr(ws, semconv::HTTP_RESPONSE_STATUS_CODE, 101_i64);
    assert!(duration(ws) < Duration::from_millis(300));
    assert_eq!(h.t.spans().find_all("GET /ws").len(), 1);
}

/// The upgraded connection as a tokio stream.
fn hyper_util_io(upgraded: hyper::upgrade::Upgraded) -> impl tokio::io::AsyncWrite + Unpin + Send {
    TokioIo(upgraded)
}

/// hyper's IO traits over tokio's (the part of hyper-util's `TokioIo` the test needs).
struct TokioIo(hyper::upgrade::Upgraded);

impl tokio::io::AsyncWrite for TokioIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        hyper::rt::Write::poll_write(std::pin::Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        hyper::rt::Write::poll_flush(std::pin::Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        hyper::rt::Write::poll_shutdown(std::pin::Pin::new(&mut self.0), cx)
    }
}

#[tokio::test]
async fn span_end_head_per_layer_and_per_response() {
    use tower::ServiceExt as _;
    let t = TestTracing::new();
    let slow = || async { download(3, Duration::from_millis(100)) };
    let app = Router::new()
        .route("/layer", get(slow))
        .route(
            "/response",
            get(|| async {
                let mut res = download(3, Duration::from_millis(100));
                res.extensions_mut().insert(SpanEnd::Head);
                res
            }),
        )
        .route("/body", get(slow));
    let head = app.clone().layer(
        ServerTraceLayer::new()
            .with_tracer(t.tracer())
            .with_span_end(SpanEnd::Head),
    );
    let body = app.layer(ServerTraceLayer::new().with_tracer(t.tracer()));
    let req = |p: &str| Request::get(p).body(Body::empty()).unwrap();
    // Layer choice: ended at the head, before the body is read.
    let res = head.oneshot(req("/layer")).await.unwrap();
    assert_eq!(t.spans().names(), ["GET /layer"]);
    http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    // Response choice.
    let res = body.clone().oneshot(req("/response")).await.unwrap();
    assert_eq!(t.spans().find_all("GET /response").len(), 1);
    drop(res);
    // Default: the span ends with the body.
    let res = body.oneshot(req("/body")).await.unwrap();
    assert!(t.spans().find_all("GET /body").is_empty());
    http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    let spans = t.spans();
    let span = spans.find("GET /body");
    assert!(duration(span) >= Duration::from_millis(200));
    assert_eq!(outcome(span), "completed");
    spans.assert_attr(span, semconv::HTTP_RESPONSE_BODY_SIZE, 3072_i64);
    // A response complete at the head ends there, with nothing more recorded.
    assert_eq!(outcome(spans.find("GET /layer")), "");
}

#[tokio::test]
async fn a_101_with_a_body_still_ends_at_the_head() {
    use tower::ServiceExt as _;
    let t = TestTracing::new();
    let app = Router::new()
        .route(
            "/up",
            get(|| async {
                let mut res = download(3, Duration::from_millis(50));
                *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                res
            }),
        )
        .layer(ServerTraceLayer::new().with_tracer(t.tracer()));
    let res = app
        .oneshot(Request::get("/up").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(t.spans().names(), ["GET /up"]);
    drop(res);
}

#[test]
fn memory_per_open_stream() {
    // What a streamed response holds beyond its body: the boxed end state, and axum's box of
    // the wrapper (the request's `Context` is shared with the span, not copied).
    let end = std::mem::size_of::<crate::body::BodyEnd>();
    let wrapper = std::mem::size_of::<crate::ResponseBody<Body>>();
    println!("BodyEnd {end} bytes, ResponseBody<Body> {wrapper} bytes");
    assert!(end + wrapper <= 512, "{end} + {wrapper}");
}

#[test]
fn is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<crate::ResponseBody<http_body_util::Full<Bytes>>>();
    let _ = Arc::new(());
}

#[tokio::test]
async fn tracing_spans_and_context_inside_the_stream_belong_to_the_request() {
    use tower::ServiceExt as _;
    use tracing_subscriber::layer::SubscriberExt;
    let t = TestTracing::new();
    let subscriber =
        tracing_subscriber::registry().with(gorax_trace::subscriber::otel_layer(t.tracer()));
    let _default = tracing::subscriber::set_default(subscriber);
    let app = Router::new()
        .route(
            "/tokens",
            get(|| async {
                let stream = futures_util::stream::unfold(0, |i| async move {
                    if i == 3 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    // A `tracing` span and the OpenTelemetry context, while the body is polled.
                    let cx = opentelemetry::Context::current();
                    let token = tracing::info_span!("llm.token").in_scope(|| {
                        use opentelemetry::trace::TraceContextExt as _;
                        format!("{} ", cx.span().span_context().span_id())
                    });
                    Some((Ok::<_, Infallible>(Bytes::from(token)), i + 1))
                });
                Body::from_stream(stream)
            }),
        )
        .layer(ServerTraceLayer::new().with_tracer(t.tracer()));
    let res = app
        .oneshot(
            Request::get("/tokens")
                .header("traceparent", TP)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let spans = t.spans();
    let server = spans.find("GET /tokens");
    let id = server.span_context.span_id().to_string();
    assert_eq!(String::from_utf8_lossy(&body), format!("{id} {id} {id} "));
    let tokens = spans.find_all("llm.token");
    assert_eq!(tokens.len(), 3);
    assert!(
        tokens
            .iter()
            .all(|s| s.parent_span_id == server.span_context.span_id())
    );
}

/// gRPC mode: a server-streaming call's messages are produced while the body is polled, in
/// the call's context; the span ends at the trailers.
#[tokio::test]
async fn grpc_server_streaming_work_is_a_child_of_the_call() {
    use tower::ServiceExt as _;
    let t = TestTracing::new();
    let tracer = t.tracer();
    let inner = tower::service_fn(move |_req: Request<Body>| {
        let tracer = tracer.clone();
        async move {
            let stream = futures_util::stream::unfold(0, move |i| {
                let tracer = tracer.clone();
                async move {
                    match i {
                        0..3 => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            tracer.start("produce.message").end();
                            Some((
                                http_body::Frame::data(Bytes::from_static(b"\0\0\0\0\x01x")),
                                i + 1,
                            ))
                        }
                        3 => {
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            Some((http_body::Frame::trailers(trailers), i + 1))
                        }
                        _ => None,
                    }
                }
            });
            let body = http_body_util::StreamBody::new(futures_util::StreamExt::map(
                stream,
                Ok::<_, Infallible>,
            ));
            let res = Response::builder()
                .header("content-type", "application/grpc")
                .body(Body::new(body))
                .unwrap();
            Ok::<_, Infallible>(res)
        }
    });
    let svc = tower::Layer::layer(&ServerTraceLayer::grpc().with_tracer(t.tracer()), inner);
    let req = Request::post("/pkg.Feed/Watch")
        .header("traceparent", TP)
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert!(t.spans().is_empty(), "open until the trailers");
    http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap();
    let spans = t.spans();
    let call = spans.find("pkg.Feed/Watch");
    spans.assert_attr(call, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE, 0_i64);
    assert_eq!(outcome(call), "completed");
    let produced = spans.find_all("produce.message");
    assert_eq!(produced.len(), 3);
    assert!(
        produced
            .iter()
            .all(|s| s.parent_span_id == call.span_context.span_id())
    );
}

/// HTTP/2 extended CONNECT (WebSockets over HTTP/2) answers `CONNECT` with a 2xx: the span ends
/// at that head, whatever the body does (the rule in-process; a real HTTP/2 handshake is
/// `websockets_over_http2_end_the_span_at_the_handshake`).
#[tokio::test]
async fn a_2xx_answer_to_connect_ends_at_the_head() {
    use tower::ServiceExt as _;
    let t = TestTracing::new();
    let app = Router::new()
        .route(
            "/chat",
            axum::routing::on(axum::routing::MethodFilter::CONNECT, || async {
                download(3, Duration::from_millis(50))
            }),
        )
        .layer(ServerTraceLayer::new().with_tracer(t.tracer()));
    let req = Request::builder()
        .method(http::Method::CONNECT)
        .uri("/chat")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(t.spans().names(), ["CONNECT /chat"]);
    drop(res);
}

/// WebSockets over HTTP/2 (RFC 8441 extended CONNECT, which axum 0.8's `serve` enables): a real
/// HTTP/2 connection to a real axum server on 127.0.0.1 opens a `CONNECT` with `:protocol
/// websocket`; the span ends at the 2xx handshake while the stream stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_over_http2_end_the_span_at_the_handshake() {
    let t = TestTracing::new();
    let app = Router::new()
        .route(
            "/chat",
            axum::routing::any(|| async { download(3, Duration::from_millis(200)) }),
        )
        .layer(ServerTraceLayer::new().with_tracer(t.tracer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut req = Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}/chat"))
        .header("sec-websocket-version", "13")
        .header("traceparent", TP)
        .body(http_body_util::Empty::<axum::body::Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), http::Version::HTTP_2);
    // The stream is open (its first frame comes 200 ms later), and the span already ended.
    let spans = t.spans();
    assert_eq!(spans.names(), ["CONNECT /chat"]);
    let span = spans.find("CONNECT /chat");
    spans.assert_attr(span, semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64);
    spans.assert_attr(span, semconv::NETWORK_PROTOCOL_VERSION, "2");
    // The tunnel's traffic is the connection's (hyper hands it over as an upgrade), not the
    // span's: while it goes on, the span stays the one that ended at the handshake.
    let upgraded = hyper::upgrade::on(res);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(t.spans().names(), ["CONNECT /chat"], "one span");
    drop(upgraded);
}
