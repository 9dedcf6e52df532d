//! The trust boundary through a real axum server and the client middleware on 127.0.0.1:
//! untrusted callers cannot steer sampling, credentials never reach exported spans, caller input
//! is capped.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use gorax_trace::Settings;
use gorax_trace::propagation::BaggagePolicy;
use gorax_trace::sampling::Sampler;
use gorax_trace::testing::TestTracing;
use gorax_trace::trust::TrustedPeers;
use gorax_trace_client::ClientTraceMiddleware;
use gorax_trace_server::ServerTraceLayer;
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::SpanKind;

/// Serves `app` with the connection peer in the request extensions (`ConnectInfo`).
async fn serve_with_peer(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

fn app(layer: ServerTraceLayer) -> Router {
    Router::new()
        .route("/hook", get(|| async { "ok" }))
        .route(
            "/baggage",
            get(|| async {
                let cx = Context::current();
                let mut keys: Vec<String> =
                    cx.baggage().iter().map(|(k, _)| k.to_string()).collect();
                keys.sort();
                keys.join(",")
            }),
        )
        .layer(layer)
}

/// Sends `n` requests, each with a fresh sampled `traceparent`, 16 at a time; returns how many
/// server spans were recorded.
async fn flood(addr: SocketAddr, n: u64, t: &TestTracing) -> usize {
    let client = reqwest::Client::new();
    let mut sent = 0;
    while sent < n {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..16.min(n - sent) {
            sent += 1;
            // A distinct trace id per request (the ratio sampler decides on the id).
            let trace = format!(
                "{:016x}{:016x}",
                sent.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                sent
            );
            let tp = format!("00-{trace}-00f067aa0ba902b7-01");
            let client = client.clone();
            batch.spawn(async move {
                let res = client
                    .get(format!("http://{addr}/hook"))
                    .header("traceparent", tp)
                    .header("baggage", "isadmin=true")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            });
        }
        while let Some(r) = batch.join_next().await {
            r.unwrap();
        }
    }
    let _ = t.provider().force_flush();
    t.spans()
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_callers_cannot_steer_sampling() {
    const N: u64 = 2_000;
    // 1 % sampling, parent-based: a trusted caller's sampled=1 is followed.
    let t = TestTracing::with_sampler(Sampler::ParentBasedTraceIdRatio(0.01));

    // The switch from the handle's settings (what TRACING_TRUSTED_PEERS sets): 127.0.0.1 is
    // outside the trusted network.
    let edge = t.handle_with(
        Settings::default().with_trusted_peers(TrustedPeers::parse("10.0.0.0/8").unwrap()),
    );
    let addr = serve_with_peer(app(ServerTraceLayer::new().with_telemetry(edge))).await;
    let recorded = flood(addr, N, &t).await;
    let ratio = recorded as f64 / N as f64;
    eprintln!(
        "edge: {recorded} of {N} sampled=1 requests from an untrusted peer recorded ({:.2} %)",
        ratio * 100.0
    );
    assert!(
        ratio < 0.05,
        "untrusted callers steer sampling: {recorded}/{N}"
    );
    // New roots, linked to the caller's context.
    for s in t.spans().iter().filter(|s| s.span_kind == SpanKind::Server) {
        assert_eq!(s.parent_span_id, opentelemetry::trace::SpanId::INVALID);
        assert_eq!(s.links.len(), 1, "a link to the caller's context");
        assert_eq!(
            s.links[0].span_context.span_id().to_string(),
            "00f067aa0ba902b7"
        );
        assert_ne!(
            s.span_context.trace_id(),
            s.links[0].span_context.trace_id()
        );
    }
    t.reset();

    // The same service behind a trusted peer: every sampled=1 request is recorded.
    let trusted = t.handle_with(
        Settings::default().with_trusted_peers(TrustedPeers::parse("127.0.0.0/8").unwrap()),
    );
    let addr = serve_with_peer(app(ServerTraceLayer::new().with_telemetry(trusted))).await;
    let recorded = flood(addr, N, &t).await;
    eprintln!("edge: {recorded} of {N} sampled=1 requests from a trusted peer recorded");
    assert_eq!(recorded as u64, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_layer_drops_baggage_but_allowlisted_keys() {
    let t = TestTracing::new();
    let public = serve_with_peer(app(ServerTraceLayer::public().with_tracer(t.tracer()))).await;
    let allow = serve_with_peer(app(ServerTraceLayer::public()
        .with_tracer(t.tracer())
        .with_baggage_policy(BaggagePolicy::Allow(vec!["tenant".into()]))))
    .await;
    let trusted = serve_with_peer(app(ServerTraceLayer::new()
        .with_tracer(t.tracer())
        .with_trusted_peers(TrustedPeers::parse("127.0.0.1/32").unwrap())))
    .await;
    let get = |addr: SocketAddr| async move {
        reqwest::Client::new()
            .get(format!("http://{addr}/baggage"))
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("baggage", "tenant=t1,isadmin=true")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(get(public).await, "");
    assert_eq!(get(allow).await, "tenant");
    assert_eq!(get(trusted).await, "isadmin,tenant");
    // Without peer information (served without ConnectInfo) the switch treats the caller as
    // untrusted.
    let no_peer = gorax_tests::serve(app(ServerTraceLayer::public().with_tracer(t.tracer()))).await;
    t.reset();
    get(no_peer).await;
    let spans = t.spans();
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_ne!(
        server.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

const SECRET: &str = "S3CRETzq9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_exported_spans() {
    use http::header::{
        AUTHORIZATION, COOKIE, HeaderName, PROXY_AUTHORIZATION, SET_COOKIE, USER_AGENT,
    };
    let t = TestTracing::new();
    let captured = [
        AUTHORIZATION,
        PROXY_AUTHORIZATION,
        COOKIE,
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static("x-auth-token"),
        HeaderName::from_static("x-vendor-secret"),
        USER_AGENT,
        HeaderName::from_static("x-long"),
    ];
    let server = serve_with_peer(
        Router::new()
            .route(
                "/login",
                get(|| async { ([(SET_COOKIE, format!("session={SECRET}; HttpOnly"))], "ok") }),
            )
            .layer(
                ServerTraceLayer::new()
                    .with_tracer(t.tracer())
                    .with_request_headers(captured)
                    .with_response_headers([SET_COOKIE])
                    .with_attribute_value_length_limit(100),
            ),
    )
    .await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            ClientTraceMiddleware::new()
                .with_tracer(t.tracer())
                .with_attribute_value_length_limit(100),
        )
        .build();
    let query = format!(
        "page=2&Sig={SECRET}&TOKEN={SECRET}&access_token={SECRET}&password={SECRET}&X-Amz-Signature={SECRET}\
         &api_key={SECRET}&code={SECRET}&%74oken={SECRET}"
    );
    let res = client
        .get(format!("http://user:{SECRET}@{server}/login?{query}"))
        .header(AUTHORIZATION, format!("Bearer {SECRET}"))
        .header(PROXY_AUTHORIZATION, format!("Basic {SECRET}"))
        .header(COOKIE, format!("session={SECRET}"))
        .header("x-api-key", SECRET)
        .header("x-auth-token", SECRET)
        .header("x-vendor-secret", SECRET)
        .header(USER_AGENT, "x".repeat(10_000))
        .header("x-long", "é".repeat(5_000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let spans = t.spans();
    assert_eq!(spans.len(), 2, "{:?}", spans.names());
    for s in spans.iter() {
        // Everything exported: name, attributes, events, links, status, trace state.
        let all = format!("{s:?}");
        assert!(!all.contains(SECRET), "a credential in {}: {all}", s.name);
        for kv in &s.attributes {
            let len = match &kv.value {
                opentelemetry::Value::Array(a) => a.to_string().chars().count().saturating_sub(4),
                v => v.as_str().chars().count(),
            };
            assert!(len <= 100, "{} is {len} characters", kv.key);
        }
    }
    let server_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    let attr = |k: &str| {
        server_span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    // Two values: the header sent and the Basic credentials reqwest makes of the userinfo.
    for key in [
        "http.request.header.authorization",
        "http.request.header.cookie",
        "http.request.header.x-api-key",
        "http.response.header.set-cookie",
    ] {
        let v = attr(key).unwrap_or_default();
        assert!(
            v.starts_with('[') && v[1..v.len() - 1].split(',').all(|x| x == "\"REDACTED\""),
            "{key}: {v}"
        );
    }
    assert!(attr("url.query").unwrap().contains("page=2"));

    // Opted in by name: recorded as sent.
    t.reset();
    let opted = serve_with_peer(
        Router::new().route("/x", get(|| async { "ok" })).layer(
            ServerTraceLayer::new()
                .with_tracer(t.tracer())
                .with_sensitive_headers_recorded([COOKIE])
                .with_request_headers([COOKIE, AUTHORIZATION]),
        ),
    )
    .await;
    reqwest::Client::new()
        .get(format!("http://{opted}/x"))
        .header(COOKIE, "theme=dark")
        .header(AUTHORIZATION, format!("Bearer {SECRET}"))
        .send()
        .await
        .unwrap();
    let spans = t.spans();
    let s = spans.iter().next().unwrap();
    let all = format!("{s:?}");
    assert!(all.contains("theme=dark") && !all.contains(SECRET), "{all}");
}
