//! `tracing` integration: one call bridges `tracing` spans to OpenTelemetry and makes every log
//! line carry `trace_id` and `span_id`.
//!
//! Spans created with `#[instrument]` or `tracing::info_span!` become OpenTelemetry spans
//! (through tracing-opentelemetry, with its costly extras — code location, thread ids,
//! busy/idle timing — switched off), children of the current gorax span, and parents of
//! outgoing calls made inside them.
//!
//! ```no_run
//! gorax_trace::subscriber::install()?;
//! let _guard = gorax_trace::init(gorax_trace::config::TraceConfig::from_env()?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetryLayer;
pub use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};

/// The tracing-opentelemetry layer with cheap settings, recording into `tracer` (an
/// [`SdkTracer`](crate::SdkTracer), or [`CurrentTracer`]).
pub fn otel_layer<S, T>(tracer: T) -> OpenTelemetryLayer<S, T>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_level(false)
        .with_target(false)
}

/// A `fmt` layer whose lines start with `trace_id=… span_id=…` when a span context is current.
pub fn fmt_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(WithTraceIds(Format::default()))
}

/// A tracer that starts each span with the tracer of the [installed](crate::Telemetry::install)
/// handle at that moment (the same rule as default-built adapters), so a subscriber built
/// before `init` still records into the provider `init` sets up. Costs a lock-free load and a
/// reference count per span.
#[derive(Debug, Clone, Copy, Default)]
pub struct CurrentTracer;

impl opentelemetry::trace::Tracer for CurrentTracer {
    type Span = opentelemetry_sdk::trace::Span;

    fn build_with_context(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent_cx: &opentelemetry::Context,
    ) -> Self::Span {
        crate::TelemetryHandle::installed()
            .tracer()
            .build_with_context(builder, parent_cx)
    }
}

/// Installs a global `tracing` subscriber: the registry, [`otel_layer`] with [`CurrentTracer`],
/// and [`fmt_layer`], for spans and events at `INFO` and above (libraries' `DEBUG`/`TRACE`
/// spans would otherwise become OpenTelemetry spans too). Call it before
/// [`init`](crate::init()) to see `init`'s own log line; spans record into whatever `init`
/// installed either way.
pub fn install() -> Result<(), TryInitError> {
    install_with_level(LevelFilter::INFO)
}

/// [`install`] with another maximum level.
pub fn install_with_level(level: LevelFilter) -> Result<(), TryInitError> {
    tracing_subscriber::registry()
        .with(level)
        .with(otel_layer(CurrentTracer))
        .with(fmt_layer())
        .try_init()
}

/// A `fmt` event format that prefixes each line with the current trace and span ids.
#[derive(Debug, Default)]
pub struct WithTraceIds<F = Format<Full>>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            sc.is_valid().then(|| (sc.trace_id(), sc.span_id()))
        });
        if let Some((trace_id, span_id)) = ids {
            write!(writer, "trace_id={trace_id} span_id={span_id} ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::TestTracing;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_carry_ids_and_tracing_spans_become_otel_spans() {
        let t = TestTracing::new();
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(otel_layer(t.tracer()))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone())
                    .event_format(WithTraceIds(Format::default())),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside");
            tracing::info_span!("outer").in_scope(|| {
                tracing::info_span!("inner").in_scope(|| tracing::info!("inside"));
            });
        });
        let spans = t.spans();
        spans.assert_child_of("inner", "outer");
        let inner = spans.find("inner");
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let inside = out.lines().find(|l| l.contains("inside")).unwrap();
        assert!(
            inside.starts_with(&format!(
                "trace_id={} span_id={} ",
                inner.span_context.trace_id(),
                inner.span_context.span_id()
            )),
            "{inside}"
        );
        let outside = out.lines().find(|l| l.contains("outside")).unwrap();
        assert!(!outside.contains("trace_id="), "{outside}");
    }
}
