//! A W3C Trace Context participant for the specification's test harness: `POST /test` takes a
//! JSON array of `{"url": ..., "arguments": ...}` and, in order, sends `POST url` with
//! `arguments` as the JSON body, ignoring responses and failures; then answers 200.
//!
//! Inbound extraction is the server layer's, outbound injection the client middleware's: this
//! file writes no trace header itself.
//!
//! ```text
//! cargo run -p gorax-examples --bin tracecontext -- --port 7777
//! ```

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use gorax_trace::config::TraceConfig;
use gorax_trace_client::ClientTraceMiddleware;
use gorax_trace_server::ServerTraceLayer;
use reqwest_middleware::ClientWithMiddleware;

/// One call the harness asks for.
#[derive(Debug, serde::Deserialize)]
struct Call {
    url: String,
    arguments: serde_json::Value,
}

async fn test(
    State(http): State<ClientWithMiddleware>,
    Json(calls): Json<Vec<Call>>,
) -> Json<serde_json::Value> {
    let mut sent = 0;
    for call in calls {
        if http
            .post(&call.url)
            .json(&call.arguments)
            .send()
            .await
            .is_ok()
        {
            sent += 1;
        }
    }
    Json(serde_json::json!({ "sent": sent }))
}

fn port() -> Result<u16, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let raw = match args.as_slice() {
        [flag, port] if flag == "--port" => port.clone(),
        [] => std::env::var("PORT").map_err(|_| "give --port PORT or PORT")?,
        _ => return Err(format!("usage: tracecontext --port PORT (got {args:?})")),
    };
    raw.parse().map_err(|_| format!("invalid port {raw:?}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = port()?;
    let _guard =
        gorax_trace::init(TraceConfig::from_env()?.with_service_name("gorax-tracecontext"))?;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ClientTraceMiddleware::new())
        .build();
    let app = Router::new()
        .route("/test", post(test))
        .with_state(http)
        .layer(ServerTraceLayer::new());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    eprintln!(
        "trace-context participant listening on {}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
