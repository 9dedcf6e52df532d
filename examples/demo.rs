//! The gorax-trace demo: a workflow execution with steps, an event and a failing step, printed
//! as a tree by the embedded console exporter (no collector needed).
//!
//! ```text
//! cargo run -p gorax-examples --bin demo
//! TRACING_ENDPOINT=localhost:4317 cargo run -p gorax-examples --bin demo   # to a collector
//! ```

use gorax_trace::config::TraceConfig;
use gorax_trace::span;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = TraceConfig::from_env()?.with_service_name("gorax-demo");
    let guard = gorax_trace::init(config)?;
    gorax_trace::subscriber::install()?;

    let workflow = span::start_workflow("tenant-1", "wf-42", "exec-7");
    {
        let _active = workflow.clone().attach();
        tracing::info!("workflow started");
        span::record_event("workflow.started", [KeyValue::new("steps", 2_i64)]);

        let fetch = span::start_step("fetch-orders", "http");
        {
            let _step = fetch.clone().attach();
            tracing::info!("fetching orders");
        }
        fetch.span().end();

        let transform = span::start_step("transform", "transform");
        {
            let _step = transform.clone().attach();
            let err = std::io::Error::new(std::io::ErrorKind::InvalidData, "field `total` missing");
            span::record_error(&transform, &err);
            tracing::warn!(error = %err, "step failed");
        }
        transform.span().end();
        span::record_event("workflow.completed", [KeyValue::new("status", "failed")]);
    }
    workflow.span().end();

    // Dropping the guard flushes: the console exporter prints the trace tree.
    drop(guard);
    Ok(())
}
