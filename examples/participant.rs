//! A W3C Trace Context participant for the specification's test harness: `POST /test` takes a
//! JSON array of `{"url": ..., "arguments": ...}` and, in order, sends `POST url` with
//! `arguments` as the JSON body, ignoring responses and failures; then answers 200.
//!
//! Inbound extraction is the server layer's, outbound injection the client middleware's: this
//! file writes no trace header itself.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use gorax_trace::{SdkTracer, Settings, TelemetryHandle};
use gorax_trace_client::ClientTraceMiddleware;
use gorax_trace_server::ServerTraceLayer;
use reqwest_middleware::ClientWithMiddleware;

/// One call the harness asks for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Call {
    /// Where to send `POST`.
    pub url: String,
    /// The JSON body to send.
    pub arguments: serde_json::Value,
}

async fn test(
    State(http): State<ClientWithMiddleware>,
    Json(calls): Json<Vec<Call>>,
) -> Json<serde_json::Value> {
    let mut sent = 0;
    for call in calls {
        match http.post(&call.url).json(&call.arguments).send().await {
            Ok(_) => sent += 1,
            // Logged (and, with OTLP logs, exported with URL secrets redacted).
            Err(error) => tracing::warn!(%error, "a call of the test harness failed"),
        }
    }
    Json(serde_json::json!({ "sent": sent }))
}

/// The participant's router, recording with `tracer` and the default (W3C) propagators.
pub fn router(tracer: SdkTracer) -> Router {
    router_with(TelemetryHandle::new(
        tracer,
        Settings::default(),
        Default::default(),
    ))
}

/// The participant's router, recording and propagating with `telemetry` (the binary passes the
/// installed handle, so `OTEL_PROPAGATORS` applies as in the demo).
pub fn router_with(telemetry: TelemetryHandle) -> Router {
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ClientTraceMiddleware::new().with_telemetry(telemetry.clone()))
        .build();
    Router::new()
        .route("/test", post(test))
        .with_state(http)
        .layer(ServerTraceLayer::new().with_telemetry(telemetry))
}
