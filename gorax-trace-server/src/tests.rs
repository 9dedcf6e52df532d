use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use gorax_trace::httpconv::HttpSemconv;
use gorax_trace::sampling::Sampler;
use gorax_trace::sampling::{RouteSampler, SamplingRule};
use gorax_trace::semconv::{self, legacy};
use gorax_trace::testing::{Spans, TestTracing};
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::BodyExt;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, Value};
use tower::ServiceExt;

use crate::{BaggagePolicy, RequestHead, ResponseHeader, ServerTraceLayer};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn layer(t: &TestTracing) -> ServerTraceLayer {
    ServerTraceLayer::new().with_tracer(t.tracer())
}

fn app() -> Router {
    Router::new()
        .route("/api/v1/workflows/{id}/execute", post(|| async { "ok" }))
        .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/baggage",
            get(|| async {
                let cx = Context::current();
                let mut pairs: Vec<String> = cx
                    .baggage()
                    .iter()
                    .map(|(k, (v, _))| format!("{k}={v}"))
                    .collect();
                pairs.sort();
                pairs.join(",")
            }),
        )
        .route(
            "/context",
            get(|| async {
                let cx = Context::current();
                let span = cx.span();
                let sc = span.span_context();
                format!("{}-{}", sc.trace_id(), sc.span_id())
            }),
        )
}

async fn send(router: Router, req: Request<Body>) -> (Response<Body>, String) {
    let res = router.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn continues_the_callers_trace_with_stable_attributes() {
    let t = TestTracing::new();
    let req = request(
        "POST",
        "/api/v1/workflows/wf-1/execute?tenant=t1&sig=secret",
        &[
            ("traceparent", TP),
            ("user-agent", "gorax-test/1"),
            ("host", "api.example.com:8080"),
            ("content-length", "0"),
        ],
    );
    let (res, _) = send(app().layer(layer(&t)), req).await;
    assert_eq!(res.status(), StatusCode::OK);

    let spans = t.spans();
    let span = spans.find("POST /api/v1/workflows/{id}/execute");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.span_context.trace_id().to_string(), CALLER_TRACE);
    assert_eq!(span.parent_span_id.to_string(), CALLER_SPAN);
    assert!(span.parent_span_is_remote);
    assert_eq!(span.status, Status::Unset);
    for (key, value) in [
        (semconv::HTTP_REQUEST_METHOD, Value::from("POST")),
        (semconv::URL_PATH, "/api/v1/workflows/wf-1/execute".into()),
        (semconv::URL_QUERY, "tenant=t1&sig=REDACTED".into()),
        (semconv::URL_SCHEME, "http".into()),
        (semconv::HTTP_ROUTE, "/api/v1/workflows/{id}/execute".into()),
        (semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64.into()),
        (semconv::USER_AGENT_ORIGINAL, "gorax-test/1".into()),
        (semconv::SERVER_ADDRESS, "api.example.com".into()),
        (semconv::SERVER_PORT, 8080_i64.into()),
        (semconv::NETWORK_PROTOCOL_VERSION, "1.1".into()),
        (semconv::HTTP_REQUEST_BODY_SIZE, 0_i64.into()),
        (semconv::HTTP_RESPONSE_BODY_SIZE, 2_i64.into()),
    ] {
        spans.assert_attr(span, key, value);
    }
    spans.assert_no_attr(span, legacy::HTTP_METHOD);
}

#[tokio::test]
async fn w3c_traceparent_and_tracestate_table() {
    // (headers, continues the caller's trace, expected tracestate)
    let long_state: Vec<String> = (0..32).map(|i| format!("k{i}=v{i}")).collect();
    let too_long: Vec<String> = (0..33).map(|i| format!("k{i}=v{i}")).collect();
    let (long_state, too_long) = (long_state.join(","), too_long.join(","));
    type Case<'a> = (Vec<(&'a str, &'a str)>, bool, String);
    let cases: Vec<Case<'_>> = vec![
        (vec![("traceparent", TP)], true, String::new()),
        (
            vec![
                ("traceparent", TP),
                ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            ],
            true,
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into(),
        ),
        (
            vec![
                ("traceparent", TP),
                ("tracestate", "rojo=1"),
                ("tracestate", "congo=2"),
            ],
            true,
            "rojo=1,congo=2".into(),
        ),
        (
            vec![("traceparent", TP), ("tracestate", &long_state)],
            true,
            long_state.clone(),
        ),
        // W3C: more than 32 members do not parse: the whole tracestate is discarded (the
        // official test suite, Level 2 strict); of a duplicated key the later entries are
        // discarded (the list is kept).
        (
            vec![("traceparent", TP), ("tracestate", &too_long)],
            true,
            String::new(),
        ),
        (
            vec![("traceparent", TP), ("tracestate", "a=1,a=2")],
            true,
            "a=1".to_owned(),
        ),
        (
            vec![(
                "traceparent",
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            )],
            true,
            String::new(),
        ),
        (
            vec![(
                "traceparent",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            )],
            true,
            String::new(),
        ),
        (
            vec![("traceparent", TP), ("traceparent", TP)],
            false,
            String::new(),
        ),
        (
            vec![
                (
                    "traceparent",
                    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                ),
                ("tracestate", "rojo=1"),
            ],
            false,
            String::new(),
        ),
        (
            vec![(
                "traceparent",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
            false,
            String::new(),
        ),
        (
            vec![(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
            false,
            String::new(),
        ),
        (
            vec![(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            )],
            false,
            String::new(),
        ),
        (
            vec![(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            )],
            false,
            String::new(),
        ),
        (
            vec![(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            )],
            false,
            String::new(),
        ),
        (vec![("traceparent", "garbage")], false, String::new()),
        (vec![], false, String::new()),
    ];
    for (headers, continues, state) in cases {
        let t = TestTracing::new();
        send(app().layer(layer(&t)), request("GET", "/health", &headers)).await;
        let spans = t.spans();
        let span = spans.find("GET /health");
        let same_trace = span.span_context.trace_id().to_string() == CALLER_TRACE;
        assert_eq!(same_trace, continues, "{headers:?}");
        assert_eq!(
            span.parent_span_id.to_string() == CALLER_SPAN,
            continues,
            "{headers:?}"
        );
        if !continues {
            assert_eq!(
                span.parent_span_id,
                opentelemetry::trace::SpanId::INVALID,
                "{headers:?} must start a new root"
            );
        }
        assert_eq!(
            span.span_context.trace_state().header(),
            state,
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn nested_routes_fallback_and_unknown_methods() {
    let t = TestTracing::new();
    let api = Router::new().route("/items/{id}", get(|| async { "item" }));
    let router = Router::new()
        .nest("/api", api)
        .fallback(|| async { (StatusCode::NOT_FOUND, "nope") })
        .layer(layer(&t));
    send(router.clone(), request("GET", "/api/items/7", &[])).await;
    send(router.clone(), request("GET", "/unknown/path", &[])).await;
    send(router, request("PURGE", "/api/items/7", &[])).await;
    let spans = t.spans();
    // Semantic conventions: an unknown method is `HTTP` in `{method} {target}`.
    assert_eq!(
        spans.names(),
        ["GET /api/items/{id}", "GET", "HTTP /api/items/{id}"]
    );
    let fallback = spans.find("GET");
    spans.assert_no_attr(fallback, semconv::HTTP_ROUTE);
    spans.assert_attr(fallback, semconv::HTTP_RESPONSE_STATUS_CODE, 404_i64);
    let other = spans.find("HTTP /api/items/{id}");
    spans.assert_attr(other, semconv::HTTP_REQUEST_METHOD, "_OTHER");
    spans.assert_attr(other, semconv::HTTP_REQUEST_METHOD_ORIGINAL, "PURGE");
}

#[tokio::test]
async fn statuses_5xx_is_error_4xx_is_not() {
    let t = TestTracing::new();
    let router = app().layer(layer(&t));
    send(router.clone(), request("GET", "/boom", &[])).await;
    send(router, request("GET", "/missing", &[])).await;
    let spans = t.spans();
    let boom = spans.find("GET /boom");
    assert!(matches!(boom.status, Status::Error { .. }));
    spans.assert_attr(boom, semconv::ERROR_TYPE, "500");
    spans.assert_attr(boom, semconv::HTTP_RESPONSE_STATUS_CODE, 500_i64);
    let missing = spans.find("GET /missing");
    assert_eq!(missing.status, Status::Unset);
    spans.assert_no_attr(missing, semconv::ERROR_TYPE);
}

#[derive(Debug)]
struct UpstreamTimeout;
impl std::fmt::Display for UpstreamTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream timed out")
    }
}

#[tokio::test]
async fn inner_service_error_is_recorded() {
    let t = TestTracing::new();
    let svc = tower::ServiceBuilder::new()
        .layer(layer(&t))
        .service_fn(|_req: Request<Body>| async { Err::<Response<Body>, _>(UpstreamTimeout) });
    let err = svc.oneshot(request("GET", "/x", &[])).await.unwrap_err();
    assert_eq!(err.to_string(), "upstream timed out");
    let spans = t.spans();
    let span = spans.find("GET");
    assert_eq!(span.status, Status::error("upstream timed out"));
    spans.assert_attr(
        span,
        semconv::ERROR_TYPE,
        "gorax_trace_server::tests::UpstreamTimeout",
    );
    assert_eq!(span.events.events[0].name, semconv::EXCEPTION_EVENT);
}

#[tokio::test]
async fn tracing_spans_in_handlers_are_children() {
    use tracing_subscriber::layer::SubscriberExt;
    let t = TestTracing::new();
    let subscriber =
        tracing_subscriber::registry().with(gorax_trace::subscriber::otel_layer(t.tracer()));
    let _default = tracing::subscriber::set_default(subscriber);

    #[tracing::instrument]
    async fn load_workflow(id: &str) -> String {
        tokio::task::yield_now().await;
        format!("loaded {id}")
    }
    let router = Router::new()
        .route(
            "/api/v1/workflows/{id}/execute",
            post(|| async { load_workflow("wf-1").await }),
        )
        .layer(layer(&t));
    let (_, body) = send(
        router,
        request(
            "POST",
            "/api/v1/workflows/wf-1/execute",
            &[("traceparent", TP)],
        ),
    )
    .await;
    assert_eq!(body, "loaded wf-1");
    let spans = t.spans();
    spans.assert_child_of("load_workflow", "POST /api/v1/workflows/{id}/execute");
    assert_eq!(
        spans
            .find("load_workflow")
            .span_context
            .trace_id()
            .to_string(),
        CALLER_TRACE
    );
}

#[tokio::test]
async fn handler_sees_the_server_span_as_current() {
    let t = TestTracing::new();
    let (_, body) = send(
        app().layer(layer(&t)),
        request("GET", "/context", &[("traceparent", TP)]),
    )
    .await;
    let spans = t.spans();
    let span = spans.find("GET /context");
    assert_eq!(
        body,
        format!(
            "{}-{}",
            span.span_context.trace_id(),
            span.span_context.span_id()
        )
    );
}

#[tokio::test]
async fn untrusted_callers_start_a_new_root_with_a_link() {
    let t = TestTracing::with_sampler(Sampler::ParentBasedAlwaysOn);
    let router =
        app().layer(layer(&t).with_untrusted(|req| !req.headers.contains_key("x-internal")));
    // Unsampled caller flag is ignored: this service's own sampler (always on) decides.
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let (_, body) = send(
        router.clone(),
        request(
            "GET",
            "/baggage",
            &[("traceparent", unsampled), ("baggage", "token=secret")],
        ),
    )
    .await;
    assert_eq!(body, "", "untrusted baggage is dropped");
    let spans = t.spans();
    let span = spans.find("GET /baggage");
    assert_ne!(span.span_context.trace_id().to_string(), CALLER_TRACE);
    assert_eq!(span.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert!(span.span_context.is_sampled());
    let link = &span.links.links[0];
    assert_eq!(link.span_context.trace_id().to_string(), CALLER_TRACE);
    assert_eq!(link.span_context.span_id().to_string(), CALLER_SPAN);

    t.reset();
    let (_, body) = send(
        router,
        request(
            "GET",
            "/baggage",
            &[
                ("traceparent", TP),
                ("baggage", "token=secret"),
                ("x-internal", "1"),
            ],
        ),
    )
    .await;
    assert_eq!(body, "token=secret");
    assert_eq!(
        t.spans()
            .find("GET /baggage")
            .span_context
            .trace_id()
            .to_string(),
        CALLER_TRACE
    );
}

#[tokio::test]
async fn baggage_policies() {
    let headers = [
        ("traceparent", TP),
        ("baggage", "user=alice,token=secret,tenant=t1"),
    ];
    let cases = [
        (BaggagePolicy::Keep, "tenant=t1,token=secret,user=alice"),
        (BaggagePolicy::Drop, ""),
        (
            BaggagePolicy::Allow(vec!["tenant".into(), "user".into()]),
            "tenant=t1,user=alice",
        ),
    ];
    for (policy, expected) in cases {
        let t = TestTracing::new();
        let router = app().layer(layer(&t).with_baggage_policy(policy.clone()));
        let (_, body) = send(router, request("GET", "/baggage", &headers)).await;
        assert_eq!(body, expected, "{policy:?}");
    }
}

#[tokio::test]
async fn dup_mode_adds_legacy_names() {
    let t = TestTracing::new();
    let router = app().layer(layer(&t).with_http_semconv(HttpSemconv::Dup));
    send(
        router,
        request(
            "POST",
            "/api/v1/workflows/wf-1/execute?Signature=abc&x=1",
            &[("user-agent", "ua")],
        ),
    )
    .await;
    let spans = t.spans();
    let span = spans.find("POST /api/v1/workflows/{id}/execute");
    spans.assert_attr(span, legacy::HTTP_METHOD, "POST");
    spans.assert_attr(
        span,
        legacy::HTTP_TARGET,
        "/api/v1/workflows/wf-1/execute?Signature=REDACTED&x=1",
    );
    spans.assert_attr(span, legacy::HTTP_STATUS_CODE, 200_i64);
    spans.assert_attr(span, legacy::HTTP_USER_AGENT, "ua");
    spans.assert_attr(span, legacy::HTTP_SCHEME, "http");
    spans.assert_attr(span, semconv::HTTP_REQUEST_METHOD, "POST");
}

#[tokio::test]
async fn filtered_requests_record_nothing_but_propagate() {
    let t = TestTracing::new();
    let router = app().layer(layer(&t).with_filter(|req| req.route != Some("/context")));
    let (_, body) = send(router, request("GET", "/context", &[("traceparent", TP)])).await;
    assert!(t.spans().is_empty());
    // The handler runs in the caller's context.
    assert_eq!(body, format!("{CALLER_TRACE}-{CALLER_SPAN}"));
}

#[tokio::test]
async fn per_route_sampling_rules() {
    let sampler = RouteSampler::new(
        [
            SamplingRule::new("/health", Sampler::AlwaysOff),
            SamplingRule::new("/api/v1/workflows/{id}/execute", Sampler::AlwaysOn)
                .with_method("POST"),
        ],
        Sampler::ParentBasedAlwaysOff,
    );
    let t = TestTracing::with_sdk_sampler(sampler);
    // The handle tells the layer that its sampler reads routes (as `init` does for rules).
    let handle = t.handle_with(gorax_trace::Settings::default().with_route_attributes(true));
    let router = app().layer(ServerTraceLayer::new().with_telemetry(handle));
    let sampled = TP;
    send(
        router.clone(),
        request("GET", "/health", &[("traceparent", sampled)]),
    )
    .await;
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    send(
        router.clone(),
        request(
            "POST",
            "/api/v1/workflows/w/execute",
            &[("traceparent", unsampled)],
        ),
    )
    .await;
    send(router, request("GET", "/missing", &[])).await;
    assert_eq!(t.spans().names(), ["POST /api/v1/workflows/{id}/execute"]);
}

/// tower-http's request-id layers, inside the trace layer, with the trace id as the id
/// (without the `request-id` feature: the router as it is).
fn with_request_id(router: Router) -> Router {
    #[cfg(feature = "request-id")]
    let router = {
        use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
        router
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(crate::TraceIdRequestId))
    };
    router
}

#[tokio::test]
async fn response_headers_carry_the_trace_context() {
    let t = TestTracing::new();
    let router =
        with_request_id(app()).layer(layer(&t).with_response_header(ResponseHeader::TraceResponse));
    let (res, _) = send(router, request("GET", "/health", &[("traceparent", TP)])).await;
    let spans = t.spans();
    let span = spans.find("GET /health");
    let expected = format!("00-{CALLER_TRACE}-{}-01", span.span_context.span_id());
    assert_eq!(res.headers()["traceresponse"], expected.as_str());
    #[cfg(feature = "request-id")]
    assert_eq!(res.headers()["x-request-id"], CALLER_TRACE);

    let t = TestTracing::new();
    let name = HeaderName::from_static("x-trace-id");
    let router =
        with_request_id(app()).layer(layer(&t).with_response_header(ResponseHeader::TraceId(name)));
    let (res, _) = send(
        router,
        request(
            "GET",
            "/health",
            &[("traceparent", TP), ("x-request-id", "mine")],
        ),
    )
    .await;
    assert_eq!(res.headers()["x-trace-id"], CALLER_TRACE);
    #[cfg(feature = "request-id")]
    assert_eq!(
        res.headers()["x-request-id"],
        "mine",
        "an existing request id is kept (and echoed by tower-http's propagate layer)"
    );
}

#[tokio::test]
async fn captures_only_listed_headers() {
    let t = TestTracing::new();
    let router = app().layer(
        layer(&t)
            .with_request_headers([HeaderName::from_static("x-tenant")])
            .with_response_headers([http::header::CONTENT_TYPE]),
    );
    send(
        router,
        request(
            "GET",
            "/health",
            &[("x-tenant", "t1"), ("authorization", "Bearer x")],
        ),
    )
    .await;
    let spans = t.spans();
    let span = spans.find("GET /health");
    let tenant = Spans::attr(
        span,
        &format!("{}x-tenant", semconv::HTTP_REQUEST_HEADER_PREFIX),
    )
    .unwrap();
    assert_eq!(
        tenant,
        &Value::Array(vec![opentelemetry::StringValue::from("t1")].into())
    );
    assert!(
        Spans::attr(
            span,
            &format!("{}content-type", semconv::HTTP_RESPONSE_HEADER_PREFIX)
        )
        .is_some()
    );
    assert!(
        span.attributes
            .iter()
            .all(|kv| !kv.key.as_str().contains("authorization"))
    );
}

#[tokio::test]
async fn span_ends_with_the_body() {
    let t = TestTracing::new();
    let (tx, rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(1);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let router = Router::new()
        .route(
            "/stream",
            get(move || {
                let rx = rx.lock().unwrap().take().expect("one request");
                async move { Body::new(ChannelBody(rx)) }
            }),
        )
        .layer(layer(&t));
    let res = router
        .oneshot(request("GET", "/stream", &[]))
        .await
        .unwrap();
    // The head is out and the body not yet written: the span is still open.
    assert!(t.spans().is_empty());
    tx.send("chunk".into()).await.unwrap();
    drop(tx);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"chunk");
    let spans = t.spans();
    assert_eq!(spans.names(), ["GET /stream"]);
    let span = spans.find("GET /stream");
    spans.assert_attr(span, semconv::HTTP_RESPONSE_BODY_SIZE, 5_i64);
    spans.assert_attr(span, semconv::GORAX_HTTP_RESPONSE_BODY_OUTCOME, "completed");
}

/// A body that yields what the test sends, when it sends it.
struct ChannelBody(tokio::sync::mpsc::Receiver<axum::body::Bytes>);

impl http_body::Body for ChannelBody {
    type Data = axum::body::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_server_records_peer_and_host() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestTracing::new();
    let router = app().layer(layer(&t).with_trusted_proxies(["127.0.0.1".parse().unwrap()]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\ntraceparent: {TP}\r\nx-forwarded-for: 203.0.113.9, 10.0.0.1\r\nx-forwarded-proto: https\r\nconnection: close\r\n\r\n",
        addr.port()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    server.abort();
    let spans = t.spans();
    let span = spans.find("GET /health");
    spans.assert_attr(span, semconv::SERVER_ADDRESS, "127.0.0.1");
    spans.assert_attr(span, semconv::SERVER_PORT, i64::from(addr.port()));
    spans.assert_attr(span, semconv::CLIENT_ADDRESS, "203.0.113.9");
    spans.assert_attr(span, semconv::NETWORK_PEER_ADDRESS, "127.0.0.1");
    spans.assert_attr(span, semconv::URL_SCHEME, "https");
    assert_eq!(span.parent_span_id.to_string(), CALLER_SPAN);
}

#[test]
fn futures_and_services_are_send() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    assert_send::<crate::ResponseFuture<std::future::Ready<Result<Response<Body>, Infallible>>>>();
    assert_send::<crate::ServerTraceService<Router>>();
    assert_sync::<crate::ServerTraceLayer>();
}

#[tokio::test]
async fn hooks_add_attributes_and_rename_and_grpc_status_classifies() {
    use gorax_trace::httpconv::ResponseHead;
    use gorax_trace::rpcconv::GrpcErrors;
    use opentelemetry::trace::SpanRef;
    let t = TestTracing::new();
    let grpc = Router::new()
        .route(
            "/pkg.Svc/Get",
            post(|| async { ([("grpc-status", "14")], "") }),
        )
        .route(
            "/pkg.Svc/Find",
            post(|| async { ([("grpc-status", "5")], "") }),
        );
    let layer = layer(&t)
        .with_failure_classifier(GrpcErrors::server())
        .on_request(|req: &RequestHead<'_>, span: &SpanRef<'_>| {
            span.update_name(format!("rpc {}", req.uri.path()));
            span.set_attribute(opentelemetry::KeyValue::new("hooked", true));
        })
        .on_response(|res: &ResponseHead<'_>, span: &SpanRef<'_>| {
            span.set_attribute(opentelemetry::KeyValue::new(
                "seen.status",
                i64::from(res.status.as_u16()),
            ));
        });
    let router = grpc.layer(layer);
    send(router.clone(), request("POST", "/pkg.Svc/Get", &[])).await;
    send(router, request("POST", "/pkg.Svc/Find", &[])).await;
    let spans = t.spans();
    let get = spans.find("rpc /pkg.Svc/Get");
    spans.assert_attr(get, "hooked", true);
    spans.assert_attr(get, "seen.status", 200_i64);
    assert!(
        matches!(get.status, Status::Error { .. }),
        "UNAVAILABLE is a server error"
    );
    spans.assert_attr(get, semconv::ERROR_TYPE, 14_i64);
    let find = spans.find("rpc /pkg.Svc/Find");
    assert_eq!(find.status, Status::Unset, "NOT_FOUND is the caller's");
    spans.assert_no_attr(find, semconv::ERROR_TYPE);
}

mod grpc {
    use super::*;

    /// A body that yields one message, then fails.
    struct Broken(bool);

    impl http_body::Body for Broken {
        type Data = axum::body::Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            let sent = std::mem::replace(&mut self.0, true);
            std::task::Poll::Ready(Some(if sent {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "stream reset",
                ))
            } else {
                Ok(http_body::Frame::data(axum::body::Bytes::from_static(b"x")))
            }))
        }
    }

    /// A body of these frames, the last one first.
    struct Frames(Vec<http_body::Frame<axum::body::Bytes>>);

    impl http_body::Body for Frames {
        type Data = axum::body::Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Infallible>>> {
            std::task::Poll::Ready(self.0.pop().map(Ok))
        }
    }

    /// A gRPC-shaped service: a trailers-only UNIMPLEMENTED for `/pkg.Echo/Nope`, an HTTP 503
    /// without `grpc-status` for `/pkg.Echo/Down`, 200 otherwise.
    fn grpc_service(
        t: &TestTracing,
    ) -> impl tower::Service<
        Request<Body>,
        Response = Response<crate::ResponseBody<Body>>,
        Error = Infallible,
        Future: Send,
    > + Clone {
        let inner = tower::service_fn(|req: Request<Body>| async move {
            let mut res = Response::new(Body::empty());
            match req.uri().path() {
                // A message, then the status in the trailers (as tonic answers every call that
                // gets as far as a message).
                // The connection breaks after the first message: the body fails.
                "/pkg.Echo/Broken" => *res.body_mut() = Body::new(Broken(false)),
                "/pkg.Echo/Say" | "/pkg.Echo/Fail" => {
                    let code = if req.uri().path() == "/pkg.Echo/Say" {
                        "0"
                    } else {
                        "13"
                    };
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static(code));
                    *res.body_mut() = Body::new(Frames(vec![
                        http_body::Frame::trailers(trailers),
                        http_body::Frame::data(axum::body::Bytes::from_static(b"\0\0\0\0\x01x")),
                    ]));
                }
                "/pkg.Echo/Nope" => {
                    res.headers_mut()
                        .insert("grpc-status", http::HeaderValue::from_static("12"));
                }
                "/pkg.Echo/Down" => *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE,
                _ => {}
            }
            Ok::<_, Infallible>(res)
        });
        tower::Layer::layer(&ServerTraceLayer::grpc().with_tracer(t.tracer()), inner)
    }

    /// Calls `path` and reads the whole response body (its trailers included).
    async fn call<RB: http_body::Body<Error: std::fmt::Debug>>(
        svc: impl tower::Service<Request<Body>, Response = Response<RB>, Error = Infallible>,
        method: http::Method,
        path: &str,
    ) {
        let res = respond(svc, method, path).await;
        res.into_body().collect().await.unwrap();
    }

    async fn respond<RB>(
        svc: impl tower::Service<Request<Body>, Response = Response<RB>, Error = Infallible>,
        method: http::Method,
        path: &str,
    ) -> Response<RB> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("traceparent", TP)
            .body(Body::empty())
            .unwrap();
        svc.oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn a_status_in_the_trailers_is_recorded_when_the_body_ends() {
        let t = TestTracing::new();
        let svc = grpc_service(&t);
        // The span waits for the trailers: nothing is exported at the response head.
        let res = respond(svc.clone(), http::Method::POST, "/pkg.Echo/Say").await;
        assert!(t.spans().is_empty(), "ended before the trailers");
        let body = res.into_body().collect().await.unwrap();
        assert_eq!(
            body.trailers().and_then(|t| t.get("grpc-status")).unwrap(),
            "0",
            "the trailers pass through"
        );
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Say");
        spans.assert_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE, 0_i64);
        spans.assert_no_attr(span, semconv::ERROR_TYPE);
        assert_eq!(span.status, Status::Unset);

        call(svc.clone(), http::Method::POST, "/pkg.Echo/Fail").await;
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Fail");
        spans.assert_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE, 13_i64);
        spans.assert_attr(span, semconv::ERROR_TYPE, 13_i64);
        assert!(matches!(span.status, Status::Error { .. }), "{span:?}");

        // A body that fails mid-stream ends the span as an error, without a status code.
        let res = respond(svc.clone(), http::Method::POST, "/pkg.Echo/Broken").await;
        assert!(res.into_body().collect().await.is_err());
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Broken");
        spans.assert_no_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE);
        assert!(matches!(span.status, Status::Error { .. }), "{span:?}");

        // A body dropped before its trailers (the client went away) still ends the span, with
        // no status code to record.
        t.reset();
        drop(respond(svc, http::Method::POST, "/pkg.Echo/Say").await);
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Say");
        spans.assert_no_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE);
        assert_eq!(span.status, Status::Unset);
    }

    #[tokio::test]
    async fn unimplemented_is_a_server_error_with_its_code() {
        let t = TestTracing::new();
        call(grpc_service(&t), http::Method::POST, "/pkg.Echo/Nope").await;
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Nope");
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(span.parent_span_id.to_string(), CALLER_SPAN);
        spans.assert_attr(span, semconv::rpc_legacy::RPC_SYSTEM, "grpc");
        spans.assert_attr(span, semconv::rpc_legacy::RPC_SERVICE, "pkg.Echo");
        spans.assert_attr(span, semconv::RPC_METHOD, "Nope");
        spans.assert_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE, 12_i64);
        spans.assert_attr(span, semconv::ERROR_TYPE, 12_i64);
        assert!(matches!(span.status, Status::Error { .. }), "{span:?}");
    }

    #[tokio::test]
    async fn without_grpc_status_the_http_status_decides() {
        let t = TestTracing::new();
        call(grpc_service(&t), http::Method::POST, "/pkg.Echo/Down").await;
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Down");
        spans.assert_no_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE);
        spans.assert_attr(span, semconv::ERROR_TYPE, "503");
    }

    #[tokio::test]
    async fn other_paths_keep_their_http_name_and_no_rpc_attributes() {
        let t = TestTracing::new();
        call(grpc_service(&t), http::Method::GET, "/health").await;
        let spans = t.spans();
        let span = spans.find("GET");
        spans.assert_no_attr(span, semconv::rpc_legacy::RPC_SYSTEM);
        spans.assert_no_attr(span, semconv::RPC_METHOD);
        assert_eq!(span.status, Status::Unset);
    }

    #[test]
    fn http_mode_records_no_rpc_attributes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = TestTracing::new();
        let inner = tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let svc = tower::Layer::layer(&layer(&t), inner);
        rt.block_on(call(svc, http::Method::POST, "/pkg.Echo/Say"));
        let spans = t.spans();
        let span = spans.find("POST");
        spans.assert_no_attr(span, semconv::rpc_legacy::RPC_SYSTEM);
    }
}

/// What the handler's context would send on: `traceparent` (span id masked), `tracestate`,
/// `baggage`, and whether the span context is remote.
fn outgoing() -> String {
    let cx = Context::current();
    let mut headers = http::HeaderMap::new();
    gorax_trace::propagation::Propagators::W3C.inject(&cx, &mut headers);
    let get = |k: &str| {
        headers
            .get(k)
            .map_or("-", |v| v.to_str().unwrap())
            .to_owned()
    };
    let tp = get("traceparent");
    let masked = format!("{}-{}", &tp[..36], &tp[52..]);
    let span = cx.span();
    format!(
        "{masked} {} {} remote={} span={}",
        get("tracestate"),
        get("baggage"),
        span.span_context().is_remote(),
        span.span_context().span_id()
    )
}

#[tokio::test]
async fn unsampled_callers_get_the_sdks_span_context_without_the_sdk_span() {
    // The handle that knows its sampler follows the caller makes the unsampled span's context
    // itself; the one that does not asks the SDK. Both must send on the same thing.
    let t = TestTracing::new();
    let fast = t.handle_with(gorax_trace::Settings::default().with_drops_unsampled_children(true));
    let sdk = t.handle_with(gorax_trace::Settings::default());
    let route = || Router::new().route("/out", get(|| async { outgoing() }));
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
    for (flags, state, baggage) in [
        ("00", None, None),
        ("02", Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"), None),
        ("03", None, Some("k=v;p=1,other=%20x")),
        ("02", Some("a=1"), Some("k=v")),
    ] {
        let tp = format!("{caller}-{flags}");
        let mut headers = vec![("traceparent", tp.as_str())];
        headers.extend(state.map(|s| ("tracestate", s)));
        headers.extend(baggage.map(|b| ("baggage", b)));
        let mut sent = Vec::new();
        for handle in [&fast, &sdk] {
            let router = route().layer(ServerTraceLayer::new().with_telemetry(handle));
            let (_, body) = send(router, request("GET", "/out", &headers)).await;
            sent.push(body);
        }
        let strip = |s: &str| s.rsplit_once(" span=").unwrap().0.to_owned();
        assert_eq!(
            strip(&sent[0]),
            strip(&sent[1]),
            "{tp} {state:?} {baggage:?}"
        );
        // A new span id of our own, never the caller's.
        for s in &sent {
            assert!(!s.ends_with("span=00f067aa0ba902b7"), "{s}");
            assert!(s.contains("remote=false"), "{s}");
        }
        if flags == "03" {
            // Sampled: both went through the SDK and recorded.
            assert_eq!(t.spans().len(), 2);
            t.reset();
        } else {
            assert!(t.spans().is_empty(), "{tp}: nothing recorded");
            // The random flag is passed on; sampled stays off.
            let expected = if flags == "02" { "-02 " } else { "-00 " };
            assert!(sent[0].contains(expected), "{}", sent[0]);
        }
    }
}
