//! The demo's journey end to end: the exact tree, a caller's trace continuing through it, a
//! service with tracing disabled in the middle, and the same tree over OTLP gRPC and HTTP.

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use gorax_examples::journey::{self, Journey};
use gorax_examples::notifier;
use gorax_tests::{GrpcCollector, global_lock, received_http_spans, serve, wait_until};
use gorax_trace::config::{Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use gorax_trace::semconv;
use gorax_trace::testing::{Spans, TestTracing};
use gorax_trace_client::ClientTraceMiddleware;
use gorax_trace_server::ServerTraceLayer;
use opentelemetry::trace::{SpanId, SpanKind, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData};

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// Runs one workflow execution and waits until the worker's span has ended.
async fn run(journey: &mut Journey, traceparent: Option<&str>) {
    let mut req = reqwest::Client::new().post(format!(
        "http://{}/api/v1/workflows/wf-42/execute",
        journey.api
    ));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let done = tokio::time::timeout(Duration::from_secs(10), journey.processed.recv()).await;
    assert_eq!(done.unwrap().unwrap().workflow_id, "wf-42");
}

fn by_kind<'a>(spans: &'a Spans, name: &str, kind: SpanKind) -> &'a SpanData {
    let all = spans.find_all(name);
    let found: Vec<_> = all.into_iter().filter(|s| s.span_kind == kind).collect();
    assert_eq!(found.len(), 1, "{name} {kind:?}: {:?}", spans.names());
    found[0]
}

fn step<'a>(spans: &'a Spans, node: &str) -> &'a SpanData {
    spans
        .find_all(gorax_trace::span::WORKFLOW_STEP_EXECUTE)
        .into_iter()
        .find(|s| {
            Spans::attr(s, semconv::NODE_ID)
                .map(|v| v.as_str())
                .as_deref()
                == Some(node)
        })
        .unwrap_or_else(|| panic!("no step {node}: {:?}", spans.names()))
}

/// Asserts the guide's tree, every parent link, kinds and key attributes. Returns the trace id.
fn assert_journey_tree(spans: &Spans) -> TraceId {
    let server = by_kind(
        spans,
        "POST /api/v1/workflows/{id}/execute",
        SpanKind::Server,
    );
    let workflow = spans.find(gorax_trace::span::WORKFLOW_EXECUTE);
    let fetch = step(spans, "fetch");
    let client = by_kind(spans, "POST", SpanKind::Client);
    let downstream = by_kind(spans, "POST /api/v1/steps/{node}", SpanKind::Server);
    let send = by_kind(spans, "send gorax-executions", SpanKind::Producer);
    let process = by_kind(spans, "process gorax-executions", SpanKind::Consumer);
    let notify = step(spans, "notify");
    let notify_client = by_kind(spans, NOTIFY, SpanKind::Client);
    let notifier = by_kind(spans, NOTIFY, SpanKind::Server);
    assert_eq!(spans.len(), 10, "{:?}", spans.names());

    let trace = server.span_context.trace_id();
    let edges = [
        (workflow, server),
        (fetch, workflow),
        (client, fetch),
        (downstream, client),
        (send, workflow),
        (process, send),
        (notify, process),
        (notify_client, notify),
        (notifier, notify_client),
    ];
    for (child, parent) in edges {
        assert_eq!(
            child.span_context.trace_id(),
            trace,
            "{} in another trace",
            child.name
        );
        assert_eq!(
            child.parent_span_id,
            parent.span_context.span_id(),
            "{} must be a child of {}",
            child.name,
            parent.name
        );
    }
    assert!(downstream.parent_span_is_remote, "HTTP crossing is remote");
    assert!(
        process
            .links
            .links
            .iter()
            .any(|l| l.span_context.span_id() == send.span_context.span_id())
    );

    spans.assert_attr(server, semconv::HTTP_ROUTE, journey::EXECUTE_ROUTE);
    spans.assert_attr(server, semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64);
    spans.assert_attr(workflow, semconv::WORKFLOW_ID, "wf-42");
    spans.assert_attr(workflow, semconv::TENANT_ID, "tenant-1");
    spans.assert_attr(fetch, semconv::NODE_TYPE, "http");
    spans.assert_attr(client, semconv::HTTP_REQUEST_METHOD, "POST");
    spans.assert_attr(client, semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64);
    spans.assert_attr(downstream, semconv::HTTP_ROUTE, journey::STEP_ROUTE);
    spans.assert_attr(send, semconv::MESSAGING_DESTINATION_NAME, journey::QUEUE);
    spans.assert_attr(send, semconv::QUEUE_NAME, journey::QUEUE);
    let id = Spans::attr(send, semconv::MESSAGING_MESSAGE_ID).expect("the broker's message id");
    spans.assert_attr(process, semconv::QUEUE_MESSAGE_ID, id.clone());
    spans.assert_attr(process, semconv::MESSAGING_MESSAGE_ID, id.clone());
    spans.assert_attr(process, semconv::RETRY_COUNT, 0_i64);
    spans.assert_attr(notify, semconv::NODE_TYPE, "notify");
    // The gRPC hop: both sides named after the RPC, with the rpc.* attributes.
    assert!(notifier.parent_span_is_remote, "gRPC crossing is remote");
    for span in [notify_client, notifier] {
        spans.assert_attr(span, semconv::rpc_legacy::RPC_SYSTEM, "grpc");
        spans.assert_attr(span, semconv::rpc_legacy::RPC_SERVICE, notifier::SERVICE);
        spans.assert_attr(span, semconv::RPC_METHOD, "Notify");
    }
    spans.assert_attr(
        notify_client,
        semconv::rpc_legacy::RPC_GRPC_STATUS_CODE,
        0_i64,
    );
    spans.assert_attr(notify_client, semconv::SERVER_ADDRESS, "127.0.0.1");
    trace
}

const NOTIFY: &str = "gorax.notify.v1.Notifier/Notify";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_journey_is_one_tree() {
    let t = TestTracing::new();
    let mut journey = journey::start(t.tracer()).await.unwrap();
    run(&mut journey, None).await;
    let spans = t.spans();
    assert_journey_tree(&spans);
    let server = by_kind(
        &spans,
        "POST /api/v1/workflows/{id}/execute",
        SpanKind::Server,
    );
    assert_eq!(
        server.parent_span_id,
        SpanId::INVALID,
        "no caller: the API span is the root"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_journey_over_redis_streams_is_one_tree() {
    let Some(url) = gorax_tests::server_env("GORAX_TEST_REDIS_URL") else {
        return;
    };
    let t = TestTracing::new();
    let mut journey = journey::start_with(t.tracer(), &journey::Broker::Redis(url))
        .await
        .unwrap();
    run(&mut journey, None).await;
    let spans = t.spans();
    assert_journey_tree(&spans);
    let send = by_kind(&spans, "send gorax-executions", SpanKind::Producer);
    spans.assert_attr(send, semconv::MESSAGING_SYSTEM, "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_continues_through_every_service() {
    let t = TestTracing::new();
    let mut journey = journey::start(t.tracer()).await.unwrap();
    let tp = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    run(&mut journey, Some(&tp)).await;
    let spans = t.spans();
    let trace = assert_journey_tree(&spans);
    assert_eq!(trace.to_string(), CALLER_TRACE);
    let server = by_kind(
        &spans,
        "POST /api/v1/workflows/{id}/execute",
        SpanKind::Server,
    );
    assert_eq!(server.parent_span_id.to_string(), CALLER_SPAN);
}

fn relay(tracer: gorax_trace::SdkTracer, to: String) -> Router {
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ClientTraceMiddleware::new().with_tracer(tracer.clone()))
        .build();
    Router::new()
        .route(
            "/relay",
            post(move || {
                let (http, to) = (http.clone(), to.clone());
                async move {
                    http.post(to)
                        .send()
                        .await
                        .map(|_| "relayed")
                        .map_err(|e| e.to_string())
                }
            }),
        )
        .layer(ServerTraceLayer::new().with_tracer(tracer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_with_tracing_disabled_still_joins_the_two_ends() {
    let t = TestTracing::new();
    let back = serve(
        Router::new()
            .route("/end", post(|| async { "end" }))
            .layer(ServerTraceLayer::new().with_tracer(t.tracer())),
    )
    .await;
    // What `TRACING_ENABLED=false` installs: no processor, parent-based always-off.
    let disabled = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
        .build();
    let middle = serve(relay(
        disabled.tracer("middle"),
        format!("http://{back}/end"),
    ))
    .await;
    let front = serve(relay(t.tracer(), format!("http://{middle}/relay"))).await;

    let res = reqwest::Client::new()
        .post(format!("http://{front}/relay"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "relayed");
    let spans = t.spans();
    let front_client = by_kind(&spans, "POST", SpanKind::Client);
    let end = spans.find("POST /end");
    assert_eq!(
        end.span_context.trace_id(),
        front_client.span_context.trace_id(),
        "one trace across the disabled service"
    );
    assert!(
        end.span_context.is_sampled(),
        "the caller's sampled flag went through"
    );
    assert_ne!(
        end.parent_span_id,
        front_client.span_context.span_id(),
        "the middle service made its own span id"
    );
    assert_ne!(end.parent_span_id, SpanId::INVALID);
    assert_eq!(
        spans.len(),
        3,
        "front server+client, back server; nothing from the middle: {:?}",
        spans.names()
    );
}

fn export_config(protocol: Protocol, endpoint: String) -> TraceConfig {
    TraceConfig::new()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_service_name("gorax-journey")
        .with_batch(BatchSettings::default().with_scheduled_delay(Duration::from_millis(100)))
}

/// A caller trace id unique to this run, so that a receiver shared by several runs keeps them
/// apart.
fn unique_trace_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:016x}{:016x}", std::process::id(), nanos as u64 | 1)
}

/// Runs the journey with the global tracer after `init(config)` under a caller's context;
/// returns the trace id (hex).
fn journey_through_init(config: TraceConfig) -> String {
    let trace = unique_trace_id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let guard = gorax_trace::init(config).unwrap();
    rt.block_on(async {
        let mut journey =
            journey::start(gorax_trace::TelemetryHandle::installed().tracer().clone())
                .await
                .unwrap();
        let res = reqwest::Client::new()
            .post(format!(
                "http://{}/api/v1/workflows/wf-42/execute",
                journey.api
            ))
            .header("traceparent", format!("00-{trace}-{CALLER_SPAN}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        journey.processed.recv().await.unwrap();
    });
    guard.shutdown().unwrap();
    trace
}

/// name, kind, span id, parent span id
type Row = (String, i64, String, String);

fn assert_same_tree(rows: &[Row]) {
    let find = |name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .unwrap_or_else(|| panic!("{name} missing: {rows:?}"))
    };
    let server = find("POST /api/v1/workflows/{id}/execute");
    let workflow = find("workflow.execute");
    let send = find("send gorax-executions");
    let process = find("process gorax-executions");
    let downstream = find("POST /api/v1/steps/{node}");
    let client = rows
        .iter()
        .find(|r| r.0 == "POST" && r.1 == 3)
        .expect("client span");
    assert_eq!(server.3, CALLER_SPAN);
    assert_eq!(
        (server.1, client.1, send.1, process.1),
        (2, 3, 4, 5),
        "OTLP kinds"
    );
    assert_eq!(workflow.3, server.2);
    assert_eq!(send.3, workflow.2);
    assert_eq!(process.3, send.2);
    assert_eq!(downstream.3, client.2);
    let notify_client = rows
        .iter()
        .find(|r| r.0 == NOTIFY && r.1 == 3)
        .expect("gRPC client span");
    let notifier = rows
        .iter()
        .find(|r| r.0 == NOTIFY && r.1 == 2)
        .expect("gRPC server span");
    assert_eq!(notifier.3, notify_client.2);
    assert_eq!(rows.len(), 10, "{rows:?}");
}

#[test]
fn the_same_tree_arrives_over_otlp_grpc() {
    let _lock = global_lock();
    let collector_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (collector, addr) = GrpcCollector::start(collector_rt.handle());
    let trace = journey_through_init(export_config(Protocol::Grpc, format!("http://{addr}")));
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let rows: Vec<Row> = collector
        .spans()
        .into_iter()
        .filter(|s| hex(&s.trace_id) == trace)
        .map(|s| {
            (
                s.name,
                i64::from(s.kind),
                hex(&s.span_id),
                hex(&s.parent_span_id),
            )
        })
        .collect();
    assert_same_tree(&rows);
}

#[test]
fn the_same_tree_arrives_over_otlp_http_at_a_real_receiver() {
    let Some((endpoint, log)) = gorax_tests::http_receiver() else {
        return;
    };
    let _lock = global_lock();
    let trace = journey_through_init(export_config(Protocol::HttpProtobuf, endpoint));
    let rows = || -> Vec<Row> {
        received_http_spans(&log)
            .into_iter()
            .filter(|s| s["traceId"] == trace.as_str())
            .map(|s| {
                let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                (
                    text("name"),
                    s["kind"].as_i64().unwrap_or_default(),
                    text("spanId"),
                    text("parentSpanId"),
                )
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(10), || rows().len() >= 8),
        "{:?}",
        rows()
    );
    assert_same_tree(&rows());
}
