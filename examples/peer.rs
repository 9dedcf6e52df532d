//! Another local service for the trace viewer: continues a trace given as a W3C `traceparent`,
//! records two spans (one with an error when asked) and exports them wherever the environment
//! says, e.g. to the demo's viewer over OTLP/HTTP.
//!
//! ```text
//! cargo run -p gorax-examples --bin demo -- --viewer      # prints the viewer's URL
//! TRACING_SERVICE_NAME=billing TRACING_ENDPOINT=http://127.0.0.1:16786 \
//!   cargo run -p gorax-examples --bin peer -- --traceparent 00-<trace id>-<span id>-01 [--error]
//! ```

use gorax_trace::config::TraceConfig;
use gorax_trace::span;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};

/// The parent of `00-<trace id>-<span id>-<flags>`.
fn parent(traceparent: &str) -> Result<Context, String> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let [_, trace, span, _] = parts.as_slice() else {
        return Err(format!("not a traceparent: {traceparent:?}"));
    };
    let trace = TraceId::from_hex(trace).map_err(|e| e.to_string())?;
    let span = SpanId::from_hex(span).map_err(|e| e.to_string())?;
    let remote = SpanContext::new(
        trace,
        span,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    Ok(Context::new().with_remote_span_context(remote))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut traceparent, mut fail) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--traceparent" => traceparent = args.next(),
            "--error" => fail = true,
            _ => {
                return Err(format!("usage: peer --traceparent TP [--error] (got {arg:?})").into());
            }
        }
    }
    let parent = parent(&traceparent.ok_or("--traceparent is required")?)?;
    let telemetry = gorax_trace::init(TraceConfig::from_env()?)?;
    let tracer = telemetry.tracer().clone();
    let handle = span::start_in(
        &tracer,
        &parent,
        "peer.handle",
        SpanKind::Server,
        [KeyValue::new("peer.process", i64::from(std::process::id()))],
    );
    let work = span::start_in(
        &tracer,
        &handle,
        "peer.work",
        SpanKind::Internal,
        [KeyValue::new("tenant_id", "tenant-123")],
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    if fail {
        span::record_error(&work, "the peer's work failed (asked for with --error)");
    }
    work.span().end();
    handle.span().end();
    // Flushes to the viewer (or collector) within the shutdown budget.
    if let Err(lost) = telemetry.shutdown() {
        eprintln!("telemetry was not fully delivered: {lost}");
        std::process::exit(1);
    }
    Ok(())
}
