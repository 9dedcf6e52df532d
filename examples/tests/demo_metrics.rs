//! The demo run with an OTLP/HTTP endpoint pushes `/v1/metrics` beside `/v1/traces`, with the
//! server, client, gRPC and messaging histograms of its one journey. The receiver is written here
//! (axum on 127.0.0.1) and decodes the protobuf bodies.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;

type Counts = Arc<Mutex<HashMap<String, u64>>>;

/// Keeps, per histogram name, the total count of the latest push (the totals are cumulative).
async fn metrics(State(counts): State<Counts>, body: axum::body::Bytes) -> &'static str {
    let request = ExportMetricsServiceRequest::decode(body).expect("protobuf metrics");
    let mut counts = counts.lock().unwrap();
    for m in request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
    {
        if let Some(metric::Data::Histogram(h)) = &m.data {
            counts.insert(m.name.clone(), h.data_points.iter().map(|p| p.count).sum());
        }
    }
    "ok"
}

#[test]
fn the_demo_pushes_red_metrics_beside_its_trace() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let counts = Counts::default();
    let addr = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/v1/metrics", post(metrics))
            .route("/v1/traces", post(|| async { "ok" }))
            .with_state(counts.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env_remove("TRACING_METRICS_ENABLED")
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("TRACING_EXPORTER")
        .env("TRACING_ENDPOINT", format!("http://{addr}/v1/traces"))
        .output()
        .expect("the demo runs");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = counts.lock().unwrap().clone();
    // Two HTTP servers (API, downstream) and the gRPC one; one client request; one message.
    for (name, at_least) in [
        ("http.server.request.duration", 2),
        ("http.client.request.duration", 1),
        ("rpc.server.call.duration", 1),
        ("rpc.client.call.duration", 1),
        ("messaging.client.operation.duration", 1),
        ("messaging.process.duration", 1),
    ] {
        let got = counts.get(name).copied().unwrap_or(0);
        assert!(got >= at_least, "{name}: {got} in {counts:?}");
    }
}
