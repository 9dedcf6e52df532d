//! The gorax-trace demo: one process runs an API service, a downstream service and a worker,
//! executes a workflow the way the guide's tree shows, and prints the single trace as a tree
//! through the console exporter (no collector needed).
//!
//! ```text
//! cargo run -p gorax-examples --bin demo
//! TRACING_ENDPOINT=http://localhost:4318/v1/traces cargo run -p gorax-examples --bin demo   # + /v1/metrics
//! cargo run -p gorax-examples --bin demo -- --redis redis://127.0.0.1:6379/   # Redis Streams
//! ```

use std::time::Duration;

use gorax_examples::journey;
use gorax_trace::config::{ExporterKind, TraceConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    gorax_trace::subscriber::install()?;
    let config = TraceConfig::from_env()?.with_service_name("gorax-demo");
    let exporting = config.exporter() == ExporterKind::Otlp;
    // With a collector, the demo also pushes metrics to it (`/v1/metrics` for OTLP/HTTP) unless
    // TRACING_METRICS_ENABLED or OTEL_METRICS_EXPORTER say otherwise.
    let config = if exporting
        && std::env::var_os("TRACING_METRICS_ENABLED").is_none()
        && std::env::var_os("OTEL_METRICS_EXPORTER").is_none()
    {
        config.with_metrics(true)
    } else {
        config
    };
    let telemetry = gorax_trace::init(config)?;

    let args: Vec<String> = std::env::args().skip(1).collect();
    let broker = match args.as_slice() {
        [] => journey::Broker::Memory,
        [flag, url] if flag == "--redis" => journey::Broker::Redis(url.clone()),
        _ => return Err(format!("usage: demo [--redis URL] (got {args:?})").into()),
    };
    let mut services = journey::start_with(&telemetry, &broker).await?;
    let body = journey::execute_workflow(services.api, "wf-42").await?;
    tracing::info!(%body, "API answered");
    let processed = tokio::time::timeout(Duration::from_secs(10), services.processed.recv())
        .await?
        .ok_or("the worker stopped")?;
    tracing::info!(execution = %processed.execution_id, "worker processed the execution");
    drop(services);

    // Shutting down flushes: the console exporter prints the trace tree (or the OTLP exporter
    // sends it to the collector). Inside async main, as users write it.
    telemetry.shutdown()?;
    if exporting {
        eprintln!("trace exported over OTLP; open your collector's UI (e.g. Jaeger on :16686)");
    }
    Ok(())
}
