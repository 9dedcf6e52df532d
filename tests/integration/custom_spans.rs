//! Custom spans in async code (issue 21, item 7), through real handlers that await: a workflow
//! span made with `span::in_workflow` in an axum handler behind `ServerTraceLayer` (a real
//! server on 127.0.0.1, a real reqwest client) and in a queue consumer's handler; the
//! handler's `tracing` lines are events of the workflow span, the workflow span is a child of
//! the server / consumer span, the log lines carry its ids and no internal span name, and
//! `tracing::Span::current().set_attribute` reaches the server span.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Path;
use axum::routing::post;
use gorax_tests::{global_lock, serve};
use gorax_trace::config::LogFormat;
use gorax_trace::span;
use gorax_trace::subscriber::{BRIDGE_SPAN_NAME, Builder, OpenTelemetrySpanExt as _};
use gorax_trace::testing::TestTracing;
use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage, memory};
use gorax_trace_server::ServerTraceLayer;
use opentelemetry_sdk::trace::SpanData;
use tower::{ServiceBuilder, service_fn};

const SERVER_SPAN: &str = "POST /api/v1/workflows/{id}/execute";

/// Log lines written by the subscriber under test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The JSON lines, parsed.
    fn json(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        assert!(
            !text.contains(BRIDGE_SPAN_NAME),
            "internal span name: {text}"
        );
        assert!(
            !text.contains("gorax_trace::bridge"),
            "internal target: {text}"
        );
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The line whose message is `message`.
    fn find(&self, message: &str) -> serde_json::Value {
        let lines = self.json();
        lines
            .iter()
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no line {message:?} in {lines:#?}"))
            .clone()
    }
}

/// The production subscriber (`subscriber::Builder`, JSON lines, the `tracing` bridge recording
/// into the installed provider) writing to `Lines`.
fn subscriber(lines: &Lines) -> impl tracing::Subscriber + Send + Sync {
    let writer = lines.clone();
    Builder::new()
        .with_format(LogFormat::Json)
        .with_writer(move || writer.clone())
        .build()
}

/// The messages of the events of `span`, in order (tracing-opentelemetry names an event after
/// its message).
fn messages(span: &SpanData) -> Vec<String> {
    span.events.iter().map(|e| e.name.to_string()).collect()
}

/// Asserts that `line` carries the trace and span ids of `span`.
#[track_caller]
fn assert_line_of(line: &serde_json::Value, span: &SpanData) {
    assert_eq!(
        line["trace_id"],
        span.span_context.trace_id().to_string(),
        "{line}"
    );
    assert_eq!(
        line["span_id"],
        span.span_context.span_id().to_string(),
        "{line}"
    );
}

/// The README's handler: a workflow with one step, `tracing` lines, real suspensions.
async fn execute(Path(id): Path<String>) -> Result<String, (http::StatusCode, String)> {
    tracing::info!("request accepted");
    // `record` would need a field the bridge span declares; `set_attribute` reaches the span.
    tracing::Span::current().set_attribute("tenant_id", "tenant-1");
    span::in_workflow("tenant-1", &id, "exec-1", async {
        tracing::info!("workflow started");
        tokio::task::yield_now().await;
        span::in_step("fetch", "http", async {
            tracing::info!("fetching");
            tokio::task::yield_now().await;
            Ok::<_, std::io::Error>(())
        })
        .await?;
        tracing::info!("workflow done");
        Ok::<_, std::io::Error>(format!("executed {id}"))
    })
    .await
    .map_err(|e| (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[test]
fn an_axum_handler_awaiting_in_a_workflow_span_logs_to_it() {
    let _lock = global_lock();
    let t = TestTracing::new();
    let _installed = t.install();
    let lines = Lines::default();
    // Current-thread runtime: the subscriber set with `set_default` is this thread's, and the
    // server, the handler and the client all run on it.
    let _default = tracing::subscriber::set_default(subscriber(&lines));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = Router::new()
            .route("/api/v1/workflows/{id}/execute", post(execute))
            .layer(ServerTraceLayer::new());
        let addr = serve(app).await;
        let res = reqwest::Client::new()
            .post(format!("http://{addr}/api/v1/workflows/wf-42/execute"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "executed wf-42");
    });

    let spans = t.spans();
    spans.assert_child_of(span::WORKFLOW_EXECUTE, SERVER_SPAN);
    spans.assert_child_of(span::WORKFLOW_STEP_EXECUTE, span::WORKFLOW_EXECUTE);
    let (server, workflow, step) = (
        spans.find(SERVER_SPAN),
        spans.find(span::WORKFLOW_EXECUTE),
        spans.find(span::WORKFLOW_STEP_EXECUTE),
    );
    // The log lines are events of the span they were written in.
    assert_eq!(messages(server), ["request accepted"]);
    assert_eq!(messages(workflow), ["workflow started", "workflow done"]);
    assert_eq!(messages(step), ["fetching"]);
    spans.assert_attr(workflow, "workflow_id", "wf-42");
    spans.assert_attr(workflow, "execution_id", "exec-1");
    spans.assert_no_attr(workflow, "error.type");
    // `set_attribute` through the bridge reached the server span.
    spans.assert_attr(server, "tenant_id", "tenant-1");
    // The log lines carry those spans' ids, and no internal span name.
    assert_line_of(&lines.find("request accepted"), server);
    assert_line_of(&lines.find("workflow started"), workflow);
    assert_line_of(&lines.find("fetching"), step);
    assert_line_of(&lines.find("workflow done"), workflow);
    assert!(
        !spans.names().contains(&BRIDGE_SPAN_NAME),
        "{:?}",
        spans.names()
    );
}

/// A handler error returned from the workflow is recorded on the workflow span.
#[test]
fn a_failed_workflow_in_an_axum_handler_records_its_error() {
    let _lock = global_lock();
    let t = TestTracing::new();
    let _installed = t.install();
    let lines = Lines::default();
    let _default = tracing::subscriber::set_default(subscriber(&lines));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/api/v1/workflows/{id}/execute",
                post(|| async {
                    span::in_workflow("tenant-1", "wf-43", "exec-2", async {
                        tokio::task::yield_now().await;
                        tracing::warn!("giving up");
                        let boxed: Box<dyn std::error::Error + Send + Sync> =
                            Box::new(std::io::Error::other("upstream down"));
                        Err::<(), _>(boxed)
                    })
                    .await
                    .map_err(|e| (http::StatusCode::BAD_GATEWAY, e.to_string()))
                }),
            )
            .layer(ServerTraceLayer::new());
        let addr = serve(app).await;
        let res = reqwest::Client::new()
            .post(format!("http://{addr}/api/v1/workflows/wf-43/execute"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 502);
    });
    let spans = t.spans();
    spans.assert_child_of(span::WORKFLOW_EXECUTE, SERVER_SPAN);
    let workflow = spans.find(span::WORKFLOW_EXECUTE);
    assert_eq!(
        workflow.status,
        opentelemetry::trace::Status::error("upstream down")
    );
    // A boxed `io::Error`, downcast.
    spans.assert_attr(workflow, "error.type", "std::io::error::Error");
    assert_eq!(messages(workflow), ["giving up", "exception"]);
    assert_line_of(&lines.find("giving up"), workflow);
}

#[test]
fn a_queue_handler_awaiting_in_a_workflow_span_logs_to_it() {
    let _lock = global_lock();
    let t = TestTracing::new();
    let _installed = t.install();
    let lines = Lines::default();
    let _default = tracing::subscriber::set_default(subscriber(&lines));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (producer, mut consumer) = memory::channel::<String>("gorax-executions", 16);
        producer.send_payload("exec-7".to_owned()).await.unwrap();
        let mut worker = ServiceBuilder::new()
            .layer(ConsumerTraceLayer::new())
            .service(service_fn(|msg: TracedMessage<String>| async move {
                let execution_id = msg.into_payload();
                span::in_workflow("tenant-1", "wf-42", &execution_id, async {
                    tracing::info!("executing");
                    tokio::task::yield_now().await;
                    span::in_step("notify", "notify", async {
                        tracing::info!("notifying");
                        tokio::task::yield_now().await;
                        Ok::<_, std::io::Error>(())
                    })
                    .await?;
                    tracing::info!("executed");
                    Ok::<_, std::io::Error>(())
                })
                .await
            }));
        assert_eq!(consumer.process(&mut worker).await, Some(true));
    });

    let spans = t.spans();
    spans.assert_child_of("process gorax-executions", "send gorax-executions");
    spans.assert_child_of(span::WORKFLOW_EXECUTE, "process gorax-executions");
    spans.assert_child_of(span::WORKFLOW_STEP_EXECUTE, span::WORKFLOW_EXECUTE);
    let (workflow, step) = (
        spans.find(span::WORKFLOW_EXECUTE),
        spans.find(span::WORKFLOW_STEP_EXECUTE),
    );
    spans.assert_attr(workflow, "execution_id", "exec-7");
    assert_eq!(messages(workflow), ["executing", "executed"]);
    assert_eq!(messages(step), ["notifying"]);
    assert_line_of(&lines.find("executing"), workflow);
    assert_line_of(&lines.find("notifying"), step);
    assert_line_of(&lines.find("executed"), workflow);
}
