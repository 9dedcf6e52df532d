//! The guide's promises, each proven end to end: ratio sampling through a real server, legacy
//! HTTP names from the environment alone, the installable test kit and `init`'s log line.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use gorax_tests::{GrpcCollector, global_lock, serve, wait_until};
use gorax_trace::config::TraceConfig;
use gorax_trace::testing::TestTracing;
use gorax_trace::{Telemetry, TelemetryHandle, span};
use gorax_trace_client::ClientTraceMiddleware;
use gorax_trace_server::ServerTraceLayer;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;

/// OpenTelemetry's `TraceIdRatioBased` rule, written from the SDK source
/// (opentelemetry_sdk 0.33 `sample_based_on_probability`, the same as the Go SDK's
/// `traceIDRatioSampler`): the low 8 bytes of the trace id, big-endian, shifted right by one,
/// are compared against `ratio * 2^63`.
fn ratio_rule(trace_id: [u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    let low = u64::from_be_bytes(trace_id[8..].try_into().unwrap());
    (low >> 1) < bound
}

fn hex16(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn proto_attr(span: &ProtoSpan, key: &str) -> Option<String> {
    let kv = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// A SERVER span and its handler's INTERNAL child for each request; the response says which
/// trace the request was in and whether server span and child were sampled.
fn ratio_app(handle: TelemetryHandle) -> Router {
    let tracer = handle.tracer().clone();
    Router::new()
        .route(
            "/r",
            get(move || {
                let tracer = tracer.clone();
                async move {
                    let cx = Context::current();
                    let child =
                        span::start_in(&tracer, &cx, "handler.child", SpanKind::Internal, []);
                    let sc = cx.span().span_context().clone();
                    let child_sampled = child.span().span_context().is_sampled();
                    child.span().end();
                    format!("{} {} {}", sc.trace_id(), sc.is_sampled(), child_sampled)
                }
            }),
        )
        .layer(ServerTraceLayer::new().with_telemetry(handle))
}

/// `TRACING_SAMPLE_RATE=0.1` from the variables, a `Telemetry` built from that config exporting
/// over OTLP/gRPC to an in-process collector, 10 000 root requests through a real axum server
/// on 127.0.0.1: 10 % ± 1 % are recorded, each decision is the `TraceIdRatioBased` rule's for
/// that trace id, children follow their parent, and callers' flags win over the ratio.
#[test]
fn ratio_sampling_records_ten_percent_by_the_trace_id_rule() {
    const ROOTS: usize = 10_000;
    const FOLLOW: usize = 200;
    let collector_rt = runtime(1);
    let (collector, addr) = GrpcCollector::start(collector_rt.handle());
    let config = TraceConfig::from_vars([
        ("TRACING_SAMPLE_RATE", "0.1"),
        ("TRACING_ENDPOINT", &format!("http://{addr}")),
        ("TRACING_PROTOCOL", "grpc"),
        ("TRACING_SERVICE_NAME", "gorax-it-ratio"),
        ("TRACING_BATCH_QUEUE_SIZE", "8192"),
        ("TRACING_BATCH_DELAY_MS", "200"),
    ])
    .unwrap();
    assert_eq!(
        config.sampler().to_string(),
        "parentbased_traceidratio(0.1)"
    );
    let telemetry = Telemetry::new(&config).unwrap();
    let rt = runtime(2);
    let app = ratio_app(telemetry.handle());

    // Callers' decisions: trace ids the ratio would drop but the caller sampled, and the reverse.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next_id = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let hi = seed;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&hi.to_be_bytes());
        id[8..].copy_from_slice(&seed.to_be_bytes());
        id
    };
    let (mut forced_on, mut forced_off) = (Vec::new(), Vec::new());
    while forced_on.len() < FOLLOW || forced_off.len() < FOLLOW {
        let id = next_id();
        match ratio_rule(id, 0.1) {
            false if forced_on.len() < FOLLOW => forced_on.push(id),
            true if forced_off.len() < FOLLOW => forced_off.push(id),
            _ => {}
        }
    }

    let (on, off) = (forced_on.clone(), forced_off.clone());
    let (roots, followers) = rt.block_on(async move {
        let addr = serve(app).await;
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/r");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for _ in 0..ROOTS / 8 {
                    let body = tokio::time::timeout(Duration::from_secs(10), async {
                        client.get(&url).send().await?.text().await
                    })
                    .await
                    .expect("request within 10 s")
                    .expect("request");
                    out.push(body);
                }
                out
            }));
        }
        let mut roots = Vec::new();
        for t in tasks {
            roots.extend(t.await.unwrap());
        }
        let mut followers = Vec::new();
        for (ids, flag) in [(&on, "01"), (&off, "00")] {
            for id in ids {
                let tp = format!("00-{}-00f067aa0ba902b7-{flag}", hex(id));
                let body = client
                    .get(&url)
                    .header("traceparent", tp)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                followers.push(body);
            }
        }
        (roots, followers)
    });
    assert_eq!(roots.len(), ROOTS);

    let mut sampled_roots = HashSet::new();
    for body in &roots {
        let parts: Vec<&str> = body.split(' ').collect();
        let (trace, sampled, child) = (parts[0], parts[1] == "true", parts[2] == "true");
        assert_eq!(
            sampled,
            ratio_rule(hex16(trace), 0.1),
            "trace {trace}: the decision is the TraceIdRatioBased rule's"
        );
        assert_eq!(
            child, sampled,
            "trace {trace}: the child follows its parent"
        );
        if sampled {
            sampled_roots.insert(trace.to_owned());
        }
    }
    let ratio = sampled_roots.len() as f64 / ROOTS as f64;
    eprintln!(
        "ratio sampling at 0.1: {} of {ROOTS} roots sampled ({:.2} %)",
        sampled_roots.len(),
        ratio * 100.0
    );
    assert!(
        (0.09..=0.11).contains(&ratio),
        "{} of {ROOTS} sampled: not 10 % ± 1 %",
        sampled_roots.len()
    );
    for (i, body) in followers.iter().enumerate() {
        let parts: Vec<&str> = body.split(' ').collect();
        let want = i < FOLLOW;
        assert_eq!(parts[1] == "true", want, "caller's flag wins: {body}");
        assert_eq!(parts[2] == "true", want, "child follows: {body}");
    }

    // What the collector received is exactly the sampled requests: server span and child.
    telemetry.force_flush().unwrap();
    let expected = 2 * (sampled_roots.len() + FOLLOW);
    assert!(
        wait_until(Duration::from_secs(10), || collector.spans().len()
            >= expected),
        "collector got {} spans, want {expected}",
        collector.spans().len()
    );
    let spans = collector.spans();
    assert_eq!(spans.len(), expected);
    let received: HashSet<String> = spans.iter().map(|s| hex(&s.trace_id)).collect();
    let mut want: HashSet<String> = sampled_roots.clone();
    want.extend(forced_on.iter().map(|id| hex(id)));
    assert_eq!(received, want, "the exported traces are the sampled ones");
    let health = telemetry.health().snapshot();
    eprintln!("ratio sampling health: {health:?}");
    assert_eq!(health.spans_exported, expected as u64);
    assert_eq!(health.spans_dropped, 0);
    drop(collector_rt);
}

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `OTEL_SEMCONV_STABILITY_OPT_IN=http/dup` alone (no builder call) → `init`: the default-built
/// server layer and client middleware write the legacy names beside the stable ones, and
/// `init` logs "distributed tracing enabled" with service, endpoint, protocol and sampler.
#[test]
fn legacy_http_names_from_the_environment_through_init() {
    let _lock = global_lock();
    let collector_rt = runtime(1);
    let (collector, addr) = GrpcCollector::start(collector_rt.handle());
    let endpoint = format!("http://{addr}");
    let config = TraceConfig::from_vars([
        ("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup"),
        ("TRACING_ENDPOINT", endpoint.as_str()),
        ("TRACING_PROTOCOL", "grpc"),
        ("TRACING_SERVICE_NAME", "gorax-it-legacy"),
        ("TRACING_BATCH_DELAY_MS", "50"),
    ])
    .unwrap();
    let logs = LogBuf::default();
    let writer = logs.clone();
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone()),
    );
    let telemetry =
        tracing::subscriber::with_default(subscriber, || gorax_trace::init(config).expect("init"));
    let log = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("distributed tracing enabled"))
        .unwrap_or_else(|| panic!("no 'distributed tracing enabled' line in {log:?}"));
    for part in [
        "INFO",
        "service.name=\"gorax-it-legacy\"",
        &format!("endpoint=\"{endpoint}\""),
        "protocol=grpc",
        "sampler=parentbased_always_on",
    ] {
        assert!(line.contains(part), "{part} missing from {line:?}");
    }

    let rt = runtime(2);
    rt.block_on(async {
        let downstream = Router::new()
            .route("/down", get(|| async { "down" }))
            .layer(ServerTraceLayer::new());
        let downstream = serve(downstream).await;
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(ClientTraceMiddleware::new())
            .build();
        let api = Router::new()
            .route(
                "/api/v1/items/{id}",
                get(move || {
                    let client = client.clone();
                    async move {
                        client
                            .get(format!("http://{downstream}/down"))
                            .send()
                            .await
                            .unwrap();
                        "ok"
                    }
                }),
            )
            .layer(ServerTraceLayer::new());
        let api = serve(api).await;
        let res = reqwest::Client::new()
            .get(format!("http://{api}/api/v1/items/7?q=1"))
            .header("user-agent", "legacy-agent/1.0")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    });
    telemetry.force_flush().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || collector.spans().len() >= 3),
        "spans: {:?}",
        collector.spans().len()
    );
    let spans = collector.spans();
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name:?}"))
    };
    let server = by_name("GET /api/v1/items/{id}");
    for (legacy, stable, value) in [
        ("http.method", "http.request.method", "GET"),
        ("http.status_code", "http.response.status_code", "200"),
        ("http.user_agent", "user_agent.original", "legacy-agent/1.0"),
    ] {
        assert_eq!(
            proto_attr(server, legacy).as_deref(),
            Some(value),
            "{legacy}"
        );
        assert_eq!(
            proto_attr(server, stable).as_deref(),
            Some(value),
            "{stable}"
        );
    }
    assert_eq!(
        proto_attr(server, "http.target").as_deref(),
        Some("/api/v1/items/7?q=1")
    );
    assert_eq!(
        proto_attr(server, "url.path").as_deref(),
        Some("/api/v1/items/7")
    );
    let client = spans.iter().find(|s| s.kind == 3).expect("a CLIENT span");
    for (legacy, stable, value) in [
        ("http.method", "http.request.method", "GET"),
        ("http.status_code", "http.response.status_code", "200"),
    ] {
        assert_eq!(
            proto_attr(client, legacy).as_deref(),
            Some(value),
            "{legacy}"
        );
        assert_eq!(
            proto_attr(client, stable).as_deref(),
            Some(value),
            "{stable}"
        );
    }
    let url = proto_attr(client, "url.full").expect("url.full");
    assert_eq!(proto_attr(client, "http.url"), Some(url));
    let down = by_name("GET /down");
    assert_eq!(proto_attr(down, "http.target").as_deref(), Some("/down"));
    assert_eq!(proto_attr(down, "http.method").as_deref(), Some("GET"));
    drop(telemetry);
    drop(collector_rt);
}

/// The installed test kit sees every span of the family: the `span` helpers' current-context
/// forms, default-built server layer and client middleware, and `tracing` spans through
/// `CurrentTracer`; after the guard drops nothing records into it any more.
#[test]
fn installed_test_kit_sees_helpers_adapters_and_tracing_spans() {
    let _lock = global_lock();
    let t = TestTracing::new();
    let rt = runtime(2);
    {
        let _installed = t.install();
        // Helpers, current-context forms: start_workflow → start_step → start.
        let wf = span::start_workflow("tenant-1", "wf-42", "exec-7");
        {
            let _wf = wf.clone().attach();
            span::record_event("workflow.started", [KeyValue::new("steps", 2_i64)]);
            let step = span::start_step("fetch", "http");
            {
                let _step = step.clone().attach();
                let op = span::start("step.op", SpanKind::Producer, [KeyValue::new("a", 1_i64)]);
                op.span().end();
                // A `tracing` span through CurrentTracer, child of the current gorax span.
                use tracing_subscriber::layer::SubscriberExt;
                let subscriber = tracing_subscriber::registry().with(
                    gorax_trace::subscriber::otel_layer(gorax_trace::subscriber::CurrentTracer),
                );
                tracing::subscriber::with_default(subscriber, || {
                    tracing::info_span!("bridged").in_scope(|| {});
                });
            }
            step.span().end();
            // Given-parent forms.
            let other = span::start_step_with_parent(&wf, "notify", "notify");
            other.span().end();
            let nested = span::start_workflow_with_parent(&other, "tenant-2", "wf-9", "exec-8");
            nested.span().end();
        }
        wf.span().end();

        // Default-built adapters record into the test kit.
        rt.block_on(async {
            let downstream = Router::new()
                .route("/down", get(|| async { "down" }))
                .layer(ServerTraceLayer::new());
            let downstream = serve(downstream).await;
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(ClientTraceMiddleware::new())
                .build();
            let api = Router::new()
                .route(
                    "/api/{id}",
                    get(move || {
                        let client = client.clone();
                        async move {
                            span::set_attributes([("handler.value", Value::from(3.5))]);
                            client
                                .get(format!("http://{downstream}/down"))
                                .send()
                                .await
                                .unwrap();
                            "ok"
                        }
                    }),
                )
                .layer(ServerTraceLayer::new());
            let api = serve(api).await;
            reqwest::Client::new()
                .get(format!("http://{api}/api/1"))
                .send()
                .await
                .unwrap();
        });
    }
    // Uninstalled: the helpers record nothing here any more.
    let after = span::start("after.uninstall", SpanKind::Internal, []);
    assert!(!after.span().is_recording());
    after.span().end();

    let spans = t.spans();
    assert!(spans.find_all("after.uninstall").is_empty());
    let wf = spans
        .iter()
        .find(|s| Spans::attr(s, "workflow_id") == Some(&Value::from("wf-42")))
        .unwrap();
    spans.assert_attr(wf, "tenant_id", "tenant-1");
    spans.assert_attr(wf, "execution_id", "exec-7");
    assert_eq!(wf.events.events[0].name, "workflow.started");
    let steps = spans.find_all("workflow.step.execute");
    assert_eq!(steps.len(), 2);
    let fetch = steps
        .iter()
        .find(|s| Spans::attr(s, "node_id") == Some(&Value::from("fetch")))
        .unwrap();
    spans.assert_attr(fetch, "node_type", "http");
    assert_eq!(fetch.parent_span_id, wf.span_context.span_id());
    let op = spans.find("step.op");
    assert_eq!(op.span_kind, SpanKind::Producer);
    spans.assert_attr(op, "a", 1_i64);
    assert_eq!(op.parent_span_id, fetch.span_context.span_id());
    let bridged = spans.find("bridged");
    assert_eq!(bridged.parent_span_id, fetch.span_context.span_id());
    let nested = spans
        .iter()
        .find(|s| Spans::attr(s, "execution_id") == Some(&Value::from("exec-8")))
        .unwrap();
    let notify = steps
        .iter()
        .find(|s| Spans::attr(s, "node_id") == Some(&Value::from("notify")))
        .unwrap();
    assert_eq!(nested.parent_span_id, notify.span_context.span_id());
    assert_eq!(notify.parent_span_id, wf.span_context.span_id());

    spans.assert_child_of("GET", "GET /api/{id}");
    spans.assert_child_of("GET /down", "GET");
    spans.assert_attr(spans.find("GET /api/{id}"), "handler.value", 3.5);
    assert_eq!(spans.find("GET").span_kind, SpanKind::Client);
}

use gorax_trace::testing::Spans;

/// `TRACING_SAMPLE_RATE=0.01` with `TRACING_KEEP_ERRORS=true` and
/// `TRACING_KEEP_SLOWER_THAN_MS=40`, a `Telemetry` built from those variables exporting to an
/// in-process collector: every failed (5xx) and every slow request's local tree (server span,
/// handler span, outgoing CLIENT span) is exported, whatever the ratio said; the fine ones only
/// when the ratio sampled them.
#[test]
fn keep_mode_exports_every_failed_requests_local_tree_at_one_percent() {
    const REQUESTS: usize = 2_000;
    let collector_rt = runtime(1);
    let (collector, addr) = GrpcCollector::start(collector_rt.handle());
    let config = TraceConfig::from_vars([
        ("TRACING_SAMPLE_RATE", "0.01"),
        ("TRACING_KEEP_ERRORS", "true"),
        ("TRACING_KEEP_SLOWER_THAN_MS", "40"),
        ("TRACING_ENDPOINT", &format!("http://{addr}")),
        ("TRACING_PROTOCOL", "grpc"),
        ("TRACING_SERVICE_NAME", "gorax-it-keep"),
        ("TRACING_BATCH_QUEUE_SIZE", "8192"),
        ("TRACING_BATCH_DELAY_MS", "200"),
    ])
    .unwrap();
    let telemetry = Telemetry::new(&config).unwrap();
    let handle = telemetry.handle();
    let rt = runtime(2);
    let (outcomes, downstream_calls) = rt.block_on(async move {
        let downstream = serve(Router::new().route("/down", get(|| async { "down" }))).await;
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(ClientTraceMiddleware::new().with_telemetry(handle.clone()))
            .build();
        let tracer = handle.tracer().clone();
        let app = Router::new()
            .route(
                "/work/{n}",
                get(move |axum::extract::Path(n): axum::extract::Path<usize>| {
                    let (client, tracer) = (client.clone(), tracer.clone());
                    async move {
                        let cx = Context::current();
                        let trace = cx.span().span_context().trace_id().to_string();
                        let step = span::start_in(
                            &tracer,
                            &cx,
                            "workflow.step.execute",
                            SpanKind::Internal,
                            span::node_attributes("fetch", "http"),
                        );
                        use opentelemetry::trace::FutureExt as _;
                        client
                            .get(format!("http://{downstream}/down"))
                            .send()
                            .with_context(step.clone())
                            .await
                            .unwrap();
                        if n % 500 == 7 {
                            tokio::time::sleep(Duration::from_millis(60)).await;
                        }
                        step.span().end();
                        let status = if n % 20 == 3 { 500 } else { 200 };
                        (
                            http::StatusCode::from_u16(status).unwrap(),
                            format!("{trace} {}", cx.span().span_context().is_sampled()),
                        )
                    }
                }),
            )
            .layer(ServerTraceLayer::new().with_telemetry(handle));
        let addr = serve(app).await;
        let client = reqwest::Client::new();
        let mut outcomes = Vec::new();
        for n in 0..REQUESTS {
            let res = tokio::time::timeout(
                Duration::from_secs(10),
                client.get(format!("http://{addr}/work/{n}")).send(),
            )
            .await
            .expect("within 10 s")
            .unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            let (trace, sampled) = body.split_once(' ').unwrap();
            outcomes.push((n, status, trace.to_owned(), sampled == "true"));
        }
        (outcomes, REQUESTS)
    });
    assert_eq!(downstream_calls, REQUESTS);
    telemetry.force_flush().unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.1 == 500).collect();
    let slow: Vec<_> = outcomes
        .iter()
        .filter(|o| o.0 % 500 == 7 && o.1 == 200)
        .collect();
    let sampled: Vec<_> = outcomes.iter().filter(|o| o.3).collect();
    let expected_traces: HashSet<&str> = failed
        .iter()
        .chain(&slow)
        .chain(&sampled)
        .map(|o| o.2.as_str())
        .collect();
    let expected_spans = 3 * expected_traces.len();
    assert!(
        wait_until(Duration::from_secs(10), || collector.spans().len()
            >= expected_spans),
        "collector got {} spans, want {expected_spans}",
        collector.spans().len()
    );
    let spans = collector.spans();
    let mut per_trace: std::collections::HashMap<String, Vec<&ProtoSpan>> = Default::default();
    for s in &spans {
        per_trace.entry(hex(&s.trace_id)).or_default().push(s);
    }
    for o in failed.iter().chain(&slow) {
        let tree = per_trace
            .get(&o.2)
            .unwrap_or_else(|| panic!("request {} ({}) not exported", o.0, o.1));
        let mut names: Vec<&str> = tree.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["GET", "GET /work/{n}", "workflow.step.execute"],
            "{}",
            o.0
        );
        let server = tree.iter().find(|s| s.name == "GET /work/{n}").unwrap();
        let step = tree
            .iter()
            .find(|s| s.name == "workflow.step.execute")
            .unwrap();
        let client = tree.iter().find(|s| s.name == "GET").unwrap();
        assert_eq!(step.parent_span_id, server.span_id);
        assert_eq!(client.parent_span_id, step.span_id);
        let reason = if o.1 == 500 { "error" } else { "slow" };
        if !o.3 {
            assert_eq!(
                proto_attr(server, "gorax.keep.reason").as_deref(),
                Some(reason)
            );
        }
    }
    let received: HashSet<&str> = per_trace.keys().map(String::as_str).collect();
    assert_eq!(
        received, expected_traces,
        "nothing fine and unsampled is exported"
    );
    assert_eq!(spans.len(), expected_spans);
    eprintln!(
        "keep mode at 1 %: {REQUESTS} requests, {} failed and {} slow all exported, {} sampled by \
         ratio, {} traces / {} spans exported",
        failed.len(),
        slow.len(),
        sampled.len(),
        received.len(),
        spans.len()
    );
    drop(telemetry);
    drop(collector_rt);
}
