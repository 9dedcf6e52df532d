//! The `Telemetry` handle: adapters built before `init` record into what is installed later,
//! and two handles in one process do not see each other's spans.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use gorax_tests::{global_lock, serve};
use gorax_trace::testing::TestTracing;
use gorax_trace::{Settings, Telemetry};
use gorax_trace_client::ClientTraceMiddleware;
use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage, memory};
use gorax_trace_server::ServerTraceLayer;
use opentelemetry::trace::SpanKind;
use tower::Layer as _;

fn installable(t: &TestTracing) -> Telemetry {
    Telemetry::from_provider(
        t.provider().clone(),
        Settings::default(),
        Default::default(),
        Duration::from_secs(1),
    )
}

/// Every adapter is built with its default (no handle) *before* a handle is installed; the
/// request after `install` records the whole tree: server → client → downstream server, and
/// producer → consumer.
#[test]
fn adapters_built_before_init_record_the_whole_journey() {
    // `install` is process-wide: no other installing test may run meanwhile.
    let _lock = global_lock();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(journey_before_install());
}

async fn journey_before_install() {
    let downstream = Router::new()
        .route("/work", get(|| async { "done" }))
        .layer(ServerTraceLayer::new());
    let downstream = serve(downstream).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ClientTraceMiddleware::new())
        .build();
    let (producer, mut consumer) = memory::channel::<String>("jobs", 8);
    let mut worker = ConsumerTraceLayer::new().layer(tower::service_fn(
        |msg: TracedMessage<String>| async move { Ok::<_, std::io::Error>(msg.into_payload()) },
    ));
    let api = Router::new()
        .route(
            "/api/v1/workflows/{id}/execute",
            post(move || {
                let (client, producer) = (client.clone(), producer.clone());
                async move {
                    client
                        .get(format!("http://{downstream}/work"))
                        .send()
                        .await
                        .unwrap();
                    producer.send_payload("exec-1".to_owned()).await.unwrap();
                    "ok"
                }
            }),
        )
        .layer(ServerTraceLayer::new());
    let api = serve(api).await;

    // Nothing installed yet: requests are served, nothing is recorded anywhere.
    let t = TestTracing::new();
    let telemetry = installable(&t);
    telemetry.install();
    assert!(telemetry.is_installed());

    let res = reqwest::Client::new()
        .post(format!("http://{api}/api/v1/workflows/wf-42/execute"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(consumer.process(&mut worker).await, Some(true));

    let spans = t.spans();
    spans.assert_child_of("GET", "POST /api/v1/workflows/{id}/execute");
    spans.assert_child_of("GET /work", "GET");
    spans.assert_child_of("send jobs", "POST /api/v1/workflows/{id}/execute");
    spans.assert_child_of("process jobs", "send jobs");
    assert_eq!(spans.find("GET").span_kind, SpanKind::Client);
    assert_eq!(spans.len(), 5, "{:?}", spans.names());

    // Dropping the handle uninstalls it: later requests record nothing into it.
    drop(telemetry);
    t.reset();
    reqwest::Client::new()
        .post(format!("http://{api}/api/v1/workflows/wf-42/execute"))
        .send()
        .await
        .unwrap();
    assert!(t.spans().is_empty(), "{:?}", t.spans().names());
}

/// Two handles side by side, neither installed: each layer records only into its own.
#[tokio::test]
async fn two_handles_do_not_interfere() {
    let (a, b) = (TestTracing::new(), TestTracing::new());
    let app = |t: &TestTracing, route: &'static str| {
        Router::new()
            .route(route, get(|| async { "ok" }))
            .layer(ServerTraceLayer::new().with_telemetry(t.handle_with(Settings::default())))
    };
    let (addr_a, addr_b) = (serve(app(&a, "/a")).await, serve(app(&b, "/b")).await);
    let http = reqwest::Client::new();
    for _ in 0..3 {
        http.get(format!("http://{addr_a}/a")).send().await.unwrap();
    }
    http.get(format!("http://{addr_b}/b")).send().await.unwrap();
    assert_eq!(a.spans().names(), ["GET /a", "GET /a", "GET /a"]);
    assert_eq!(b.spans().names(), ["GET /b"]);
}
