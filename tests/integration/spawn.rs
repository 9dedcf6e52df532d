//! Spawned tasks stay in the request's trace: under the server layer, with the `tracing` bridge
//! installed, `tracing::Span::current()` is the server span (`.in_current_span()`), and the
//! OpenTelemetry API carries it with `FutureExt::with_current_context`.

use axum::Router;
use axum::routing::get;
use gorax_tests::serve;
use gorax_trace::testing::TestTracing;
use gorax_trace_server::ServerTraceLayer;
use opentelemetry::trace::{FutureExt, TraceContextExt, Tracer};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

// Current-thread runtime: the subscriber set with `set_default` is this thread's, and the
// server's tasks run on it.
#[tokio::test]
async fn spawned_tasks_and_tracing_spans_join_the_server_span() {
    let t = TestTracing::new();
    let subscriber =
        tracing_subscriber::registry().with(gorax_trace::subscriber::otel_layer(t.tracer()));
    let _default = tracing::subscriber::set_default(subscriber);

    let tracer = t.tracer();
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let tracer = tracer.clone();
                async move {
                    // `tracing`: the current span is the bridge, so the task joins the trace.
                    tokio::spawn(
                        async {
                            tracing::info_span!("spawned.tracing").in_scope(|| {});
                        }
                        .in_current_span(),
                    )
                    .await
                    .unwrap();
                    // The OpenTelemetry API: carry the current context into the task.
                    tokio::spawn(
                        async move {
                            let span = tracer.start("spawned.otel");
                            drop(span);
                        }
                        .with_current_context(),
                    )
                    .await
                    .unwrap();
                    // Attributes set through `tracing` land on the server span itself.
                    opentelemetry::Context::current()
                        .span()
                        .set_attribute(opentelemetry::KeyValue::new("from.handler", true));
                    "ok"
                }
            }),
        )
        .layer(ServerTraceLayer::new().with_tracer(t.tracer()));
    let addr = serve(app).await;
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/work"))
        .header("traceparent", format!("00-{TRACE}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let spans = t.spans();
    assert!(
        !spans
            .names()
            .contains(&gorax_trace::subscriber::BRIDGE_SPAN_NAME),
        "the bridge records no span: {:?}",
        spans.names()
    );
    assert_eq!(spans.len(), 3, "{:?}", spans.names());
    spans.assert_child_of("spawned.tracing", "GET /work");
    spans.assert_child_of("spawned.otel", "GET /work");
    let server = spans.find("GET /work");
    assert_eq!(server.span_context.trace_id().to_string(), TRACE);
    spans.assert_attr(server, "from.handler", true);
}

#[tokio::test]
async fn without_a_subscriber_the_server_span_is_still_current_for_the_otel_api() {
    // "No subscriber" for this thread (the runtime is current-thread, so the server runs here):
    // another test of this binary installs a global fmt subscriber, which would otherwise be
    // seen here depending on test order.
    let _none = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
    let t = TestTracing::new();
    let tracer = t.tracer();
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let tracer = tracer.clone();
                async move {
                    // Another test of this binary may install a global subscriber (e.g. to read
                    // `init`'s log line); only then can a `tracing` span be current here.
                    if !tracing::dispatcher::has_been_set() {
                        assert!(tracing::Span::current().is_none());
                    }
                    tokio::spawn(
                        async move { drop(tracer.start("spawned.otel")) }.with_current_context(),
                    )
                    .await
                    .unwrap();
                    "ok"
                }
            }),
        )
        .layer(ServerTraceLayer::new().with_tracer(t.tracer()));
    let addr = serve(app).await;
    let res = reqwest::get(format!("http://{addr}/work")).await.unwrap();
    assert_eq!(res.status(), 200);
    t.spans().assert_child_of("spawned.otel", "GET /work");
}
