//! `tracing` integration: one call bridges `tracing` spans to OpenTelemetry and makes every log
//! line carry `trace_id` and `span_id`.
//!
//! Spans created with `#[instrument]` or `tracing::info_span!` become OpenTelemetry spans
//! (through tracing-opentelemetry, with its costly extras — code location, thread ids,
//! busy/idle timing — switched off), children of the current gorax span, and parents of
//! outgoing calls made inside them.
//!
//! [`install`] reads two variables:
//! - `RUST_LOG`: an [`EnvFilter`] (`warn`, `info,my_crate=debug`, …); unset or empty: `INFO`;
//! - `TRACING_LOG_FORMAT`: `text` (default) prefixes lines inside a span with
//!   `trace_id=… span_id=…`; `json` writes one JSON object per line with `trace_id` and `span_id`
//!   fields beside tracing-subscriber's own (`timestamp`, `level`, `fields`, `target`, `span`,
//!   `spans`).
//!
//! Lines go to stderr, coloured only when stderr is a terminal. They name the `tracing` spans
//! they were written in (an `#[instrument]` one), never the internal [`bridge_span`] that stands
//! for an adapter's or a helper's OpenTelemetry span (the server span, a
//! [`span::in_workflow`](crate::span::in_workflow) span): its ids are on the line.
//!
//! In a span of your own, write attributes with [`OpenTelemetrySpanExt::set_attribute`]
//! (`tracing::Span::current().set_attribute(k, v)`); `Span::record` works only for fields the
//! span declared, and `tracing` drops the others without a word.
//!
//! ```no_run
//! gorax_trace::subscriber::install()?;
//! let _guard = gorax_trace::init(gorax_trace::config::TraceConfig::from_env()?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Builder`] sets the same things in code (and another writer, for tests).

#[cfg(feature = "fmt")]
use std::fmt;
#[cfg(feature = "fmt")]
use std::io::IsTerminal;

use opentelemetry::trace::TraceContextExt;
#[cfg(feature = "fmt")]
use tracing::Event;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
#[cfg(feature = "fmt")]
pub use tracing_subscriber::EnvFilter;
#[cfg(feature = "fmt")]
use tracing_subscriber::Layer as _;
#[cfg(feature = "fmt")]
pub use tracing_subscriber::filter::LevelFilter;
#[cfg(feature = "fmt")]
use tracing_subscriber::filter::filter_fn;
#[cfg(feature = "fmt")]
use tracing_subscriber::fmt::MakeWriter;
#[cfg(feature = "fmt")]
use tracing_subscriber::fmt::format::{Format, Full, Json, JsonFields, Writer};
#[cfg(feature = "fmt")]
use tracing_subscriber::fmt::writer::BoxMakeWriter;
#[cfg(feature = "fmt")]
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
#[cfg(feature = "fmt")]
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
#[cfg(feature = "fmt")]
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};

#[cfg(feature = "fmt")]
use crate::config::{ConfigError, InvalidVar, LogFormat};

/// The tracing-opentelemetry layer with cheap settings, recording into `tracer` (an
/// [`SdkTracer`](crate::SdkTracer), or [`CurrentTracer`]) through [`Bridging`], so the
/// adapters' [`bridge_span`]s stand for their own OpenTelemetry spans.
pub fn otel_layer<S, T>(tracer: T) -> OpenTelemetryLayer<S, Bridging<T>>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(Bridging(tracer))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_level(false)
        .with_target(false)
}

/// The name of the [`bridge_span`].
pub const BRIDGE_SPAN_NAME: &str = "gorax.bridge";

/// The target of the [`bridge_span`]: the log layers of this module ([`fmt_layer`],
/// [`json_layer`], [`Builder`]) leave spans of this target out of their lines ([`not_bridge`]).
pub const BRIDGE_TARGET: &str = "gorax_trace::bridge";

/// A `tracing` span that stands for the OpenTelemetry span current when it is created (the
/// server layer creates one around each request, [`span::in_span`](crate::span::in_span) and
/// the workflow helpers one around their future): inside it, `tracing::Span::current()`,
/// `.in_current_span()`, `tracing::info!` and `#[instrument]` spans continue that span's trace,
/// and `tracing::info!` lines become events of that span.
/// Under [`otel_layer`] it records no span of its own; its attributes, events and status go to
/// the span it stands for. Disabled (and nearly free: a callsite check) when no subscriber
/// wants `INFO` spans of target [`BRIDGE_TARGET`].
///
/// It declares no fields: the span it stands for is anybody's (a server span, a workflow), so
/// no field list would fit, and `tracing` silently drops `record` of an undeclared field.
/// Write attributes with [`OpenTelemetrySpanExt::set_attribute`] instead, which reaches the
/// span it stands for:
///
/// ```
/// use gorax_trace::subscriber::OpenTelemetrySpanExt as _;
///
/// // In a handler under the server layer: an attribute of the server span.
/// tracing::Span::current().set_attribute("tenant_id", "tenant-1");
/// ```
///
/// The log layers of this module do not print it: a line inside it shows the `tracing` spans
/// around it (an `#[instrument]` one) and the ids of the OpenTelemetry span, not an internal name.
pub fn bridge_span() -> tracing::Span {
    tracing::info_span!(target: "gorax_trace::bridge", "gorax.bridge")
}

/// Whether `metadata` is not a [`bridge_span`]'s: the per-layer filter of this module's log
/// layers, to put on a `fmt` layer of your own (`.with_filter(filter_fn(not_bridge))`) so that
/// its lines do not show the internal span name. Events are always kept.
///
/// ```
/// use gorax_trace::subscriber::not_bridge;
/// use tracing_subscriber::filter::filter_fn;
/// use tracing_subscriber::{Layer as _, layer::SubscriberExt as _};
///
/// let subscriber = tracing_subscriber::registry()
///     .with(gorax_trace::subscriber::otel_layer(gorax_trace::subscriber::CurrentTracer))
///     .with(tracing_subscriber::fmt::layer().with_filter(filter_fn(not_bridge)));
/// # drop(subscriber);
/// ```
pub fn not_bridge(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target() != BRIDGE_TARGET
}

/// tracing-opentelemetry's extension of `tracing::Span`, re-exported:
/// `tracing::Span::current().set_attribute(key, value)` writes an attribute to the
/// OpenTelemetry span behind the current `tracing` span (through a [`bridge_span`], the server
/// span or a workflow span), `.context()` gives its [`Context`](opentelemetry::Context).
pub use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A tracer that turns a [`bridge_span`] into a view of its parent span instead of a new span,
/// and builds every other span with `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bridging<T>(pub T);

impl<T: opentelemetry::trace::Tracer> opentelemetry::trace::Tracer for Bridging<T> {
    type Span = BridgeOr<T::Span>;

    fn build_with_context(
        &self,
        builder: opentelemetry::trace::SpanBuilder,
        parent_cx: &opentelemetry::Context,
    ) -> Self::Span {
        if builder.name == BRIDGE_SPAN_NAME && parent_cx.has_active_span() {
            let span_context = parent_cx.span().span_context().clone();
            return BridgeOr::Bridge {
                parent: parent_cx.clone(),
                span_context,
            };
        }
        BridgeOr::Span(self.0.build_with_context(builder, parent_cx))
    }
}

/// A span of [`Bridging`]: a new span, or a view of an existing one (whose owner ends it).
#[derive(Debug)]
pub enum BridgeOr<S> {
    /// A span of its own.
    Span(S),
    /// The span current in `parent`, seen through a [`bridge_span`].
    Bridge {
        /// The context holding the span.
        parent: opentelemetry::Context,
        /// That span's context.
        span_context: opentelemetry::trace::SpanContext,
    },
}

impl<S: opentelemetry::trace::Span> opentelemetry::trace::Span for BridgeOr<S> {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: std::time::SystemTime,
        attributes: Vec<opentelemetry::KeyValue>,
    ) where
        T: Into<std::borrow::Cow<'static, str>>,
    {
        match self {
            Self::Span(s) => s.add_event_with_timestamp(name, timestamp, attributes),
            Self::Bridge { parent, .. } => parent
                .span()
                .add_event_with_timestamp(name, timestamp, attributes),
        }
    }

    fn span_context(&self) -> &opentelemetry::trace::SpanContext {
        match self {
            Self::Span(s) => s.span_context(),
            Self::Bridge { span_context, .. } => span_context,
        }
    }

    fn is_recording(&self) -> bool {
        match self {
            Self::Span(s) => s.is_recording(),
            Self::Bridge { parent, .. } => parent.span().is_recording(),
        }
    }

    fn set_attribute(&mut self, attribute: opentelemetry::KeyValue) {
        match self {
            Self::Span(s) => s.set_attribute(attribute),
            Self::Bridge { parent, .. } => parent.span().set_attribute(attribute),
        }
    }

    fn set_status(&mut self, status: opentelemetry::trace::Status) {
        match self {
            Self::Span(s) => s.set_status(status),
            Self::Bridge { parent, .. } => parent.span().set_status(status),
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<std::borrow::Cow<'static, str>>,
    {
        match self {
            Self::Span(s) => s.update_name(new_name),
            // The owner names its span (the server layer: `{method} {route}`).
            Self::Bridge { .. } => {}
        }
    }

    fn add_link(
        &mut self,
        span_context: opentelemetry::trace::SpanContext,
        attributes: Vec<opentelemetry::KeyValue>,
    ) {
        match self {
            Self::Span(s) => s.add_link(span_context, attributes),
            Self::Bridge { parent, .. } => parent.span().add_link(span_context, attributes),
        }
    }

    fn end_with_timestamp(&mut self, timestamp: std::time::SystemTime) {
        match self {
            Self::Span(s) => s.end_with_timestamp(timestamp),
            // The owner ends it.
            Self::Bridge { .. } => {}
        }
    }
}

/// A text `fmt` layer on stderr whose lines start with `trace_id=… span_id=…` when a span
/// context is current; coloured only when stderr is a terminal; [`bridge_span`]s left out.
#[cfg(feature = "fmt")]
pub fn fmt_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(WithTraceIds(Format::default()))
        .with_filter(filter_fn(not_bridge))
}

/// A JSON `fmt` layer on stderr: one object per line, with `trace_id` and `span_id` fields
/// when a span context is current; [`bridge_span`]s left out (of `span` and `spans`).
#[cfg(feature = "fmt")]
pub fn json_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .fmt_fields(JsonFields::new())
        .event_format(JsonWithTraceIds::default())
        .with_filter(filter_fn(not_bridge))
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

#[cfg(feature = "fmt")]
/// Why [`install`] failed. Its `Debug` form is its message, as for [`ConfigError`] (a `main`
/// returning `Result` prints it).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// `TRACING_LOG_FORMAT` or `RUST_LOG` is invalid (the error names the variable and value).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A global subscriber was already installed.
    #[error(transparent)]
    Init(#[from] TryInitError),
}

#[cfg(feature = "fmt")]
impl fmt::Debug for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Installs a global `tracing` subscriber: the registry, an [`EnvFilter`] from `RUST_LOG`
/// (default `INFO`: libraries' `DEBUG`/`TRACE` spans would otherwise become OpenTelemetry spans
/// too), [`otel_layer`] with [`CurrentTracer`], and the log layer `TRACING_LOG_FORMAT` chooses
/// ([`fmt_layer`] or [`json_layer`]). Call it before [`init`](crate::init()) to see `init`'s
/// own log line; spans record into whatever `init` installed either way.
#[cfg(feature = "fmt")]
pub fn install() -> Result<(), InstallError> {
    Builder::from_env()?.init()
}

/// [`install`] with another maximum level instead of `RUST_LOG` (the format still from
/// `TRACING_LOG_FORMAT`).
#[cfg(feature = "fmt")]
pub fn install_with_level(level: LevelFilter) -> Result<(), InstallError> {
    Builder::from_env()?
        .with_filter(EnvFilter::default().add_directive(level.into()))
        .init()
}

/// The [`EnvFilter`] for a `RUST_LOG` value: `None` or empty gives `INFO`, with the
/// OpenTelemetry SDK's own chatter (`Global tracer provider is set…` at every start) at `WARN`
/// ([`DEFAULT_FILTER`]); an invalid directive is an error naming `RUST_LOG` and the value. A
/// `RUST_LOG` that is set is used as written (`RUST_LOG=info` shows the SDK's lines again).
#[cfg(feature = "fmt")]
pub fn env_filter(rust_log: Option<&str>) -> Result<EnvFilter, ConfigError> {
    let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(builder.parse_lossy(DEFAULT_FILTER)),
        Some(value) => builder.parse(value).map_err(|e| {
            ConfigError::one(InvalidVar {
                variable: RUST_LOG.to_owned(),
                value: value.to_owned(),
                reason: e.to_string(),
            })
        }),
    }
}

#[cfg(feature = "fmt")]
const RUST_LOG: &str = "RUST_LOG";

/// The filter without `RUST_LOG`: `INFO`, and `WARN` for the OpenTelemetry crates' own log lines
/// and for `lapin` (the RabbitMQ client of `gorax-trace-queue`'s `amqp` feature), whose `INFO`
/// span `io_loop` lasting as long as each connection would otherwise become a trace of its own.
#[cfg(feature = "fmt")]
pub const DEFAULT_FILTER: &str = "info,opentelemetry=warn,opentelemetry_sdk=warn,lapin=warn";

#[cfg(feature = "fmt")]
/// The subscriber [`install`] sets up, with each part settable in code.
///
/// ```
/// use gorax_trace::config::LogFormat;
/// use gorax_trace::subscriber::{Builder, env_filter};
///
/// let subscriber = Builder::new()
///     .with_format(LogFormat::Json)
///     .with_filter(env_filter(Some("warn"))?)
///     .build();
/// tracing::subscriber::with_default(subscriber, || tracing::warn!("one JSON line on stderr"));
/// # Ok::<(), gorax_trace::config::ConfigError>(())
/// ```
pub struct Builder {
    format: LogFormat,
    filter: EnvFilter,
    writer: BoxMakeWriter,
    ansi: bool,
}

#[cfg(feature = "fmt")]
impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("format", &self.format)
            .field("filter", &self.filter)
            .field("ansi", &self.ansi)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "fmt")]
impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "fmt")]
impl Builder {
    /// Text lines, `INFO` and above, on stderr (coloured when it is a terminal); the
    /// environment is not read.
    pub fn new() -> Self {
        Self {
            format: LogFormat::Text,
            filter: EnvFilter::builder()
                .with_default_directive(LevelFilter::INFO.into())
                .parse_lossy(DEFAULT_FILTER),
            writer: BoxMakeWriter::new(std::io::stderr),
            ansi: std::io::stderr().is_terminal(),
        }
    }

    /// [`new`](Self::new) with the format from `TRACING_LOG_FORMAT` and the filter from
    /// `RUST_LOG`; every invalid variable is reported.
    pub fn from_env() -> Result<Self, ConfigError> {
        let format = LogFormat::from_env();
        let rust_log = std::env::var(RUST_LOG).ok();
        let filter = env_filter(rust_log.as_deref());
        match (format, filter) {
            (Ok(format), Ok(filter)) => Ok(Self::new().with_format(format).with_filter(filter)),
            (Err(a), Err(b)) => Err(a.merge(b)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }

    /// Text or JSON lines.
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }

    /// Which spans and events are recorded (and become OpenTelemetry spans) and logged.
    pub fn with_filter(mut self, filter: EnvFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Writes lines to `writer` instead of stderr, without colour.
    pub fn with_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        self.writer = BoxMakeWriter::new(writer);
        self.ansi = false;
        self
    }

    /// Colour codes in text lines on or off (default: on only when stderr is a terminal).
    pub fn with_ansi(mut self, ansi: bool) -> Self {
        self.ansi = ansi;
        self
    }

    /// The subscriber, to install or to use with `tracing::subscriber::with_default`.
    pub fn build(self) -> impl Subscriber + Send + Sync + for<'span> LookupSpan<'span> {
        let (text, json) = match self.format {
            LogFormat::Json => (
                None,
                Some(
                    tracing_subscriber::fmt::layer()
                        .with_writer(self.writer)
                        .with_ansi(false)
                        .fmt_fields(JsonFields::new())
                        .event_format(JsonWithTraceIds::default())
                        .with_filter(filter_fn(not_bridge)),
                ),
            ),
            _ => (
                Some(
                    tracing_subscriber::fmt::layer()
                        .with_writer(self.writer)
                        .with_ansi(self.ansi)
                        .event_format(WithTraceIds(Format::default()))
                        .with_filter(filter_fn(not_bridge)),
                ),
                None,
            ),
        };
        tracing_subscriber::registry()
            .with(self.filter)
            .with(otel_layer(CurrentTracer))
            .with(text)
            .with(json)
            .with(logs_layer())
    }

    /// Installs [`build`](Self::build) as the global subscriber.
    pub fn init(self) -> Result<(), InstallError> {
        Ok(self.build().try_init()?)
    }
}

/// The bridge of `tracing` events to OTLP log records (feature `logs`; see
/// [`logs`](crate::logs)): exports through the installed telemetry's logs pipeline, does nothing
/// while OTLP logs are off.
#[cfg(all(feature = "fmt", feature = "logs"))]
fn logs_layer() -> Option<
    opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge<
        crate::logs::InstalledLoggerProvider,
        crate::logs::InstalledLogger,
    >,
> {
    Some(
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
            &crate::logs::InstalledLoggerProvider,
        ),
    )
}

/// Without the `logs` feature, no bridge.
#[cfg(all(feature = "fmt", not(feature = "logs")))]
fn logs_layer() -> Option<tracing_subscriber::layer::Identity> {
    None
}

/// The current span context's ids, when it has a valid one.
#[cfg(feature = "fmt")]
fn current_ids() -> Option<(opentelemetry::TraceId, opentelemetry::SpanId)> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| (sc.trace_id(), sc.span_id()))
    })
}

#[cfg(feature = "fmt")]
/// A `fmt` event format that prefixes each line with the current trace and span ids.
#[derive(Debug, Default)]
pub struct WithTraceIds<F = Format<Full>>(pub F);

#[cfg(feature = "fmt")]
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
        if let Some((trace_id, span_id)) = current_ids() {
            write!(writer, "trace_id={trace_id} span_id={span_id} ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(feature = "fmt")]
/// A JSON event format (tracing-subscriber's, by default) with `"trace_id"` and `"span_id"` as
/// the first fields of each object when a span context is current; every line stays one JSON
/// object. Use it with [`JsonFields`] as the field formatter, as [`json_layer`] does.
#[derive(Debug)]
pub struct JsonWithTraceIds<F = Format<Json>>(pub F);

#[cfg(feature = "fmt")]
impl Default for JsonWithTraceIds {
    fn default() -> Self {
        Self(Format::default().json())
    }
}

#[cfg(feature = "fmt")]
impl<S, N, F> FormatEvent<S, N> for JsonWithTraceIds<F>
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
        let Some((trace_id, span_id)) = current_ids() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The inner format writes one object: `{` then its fields. Insert ours after `{`.
        match line.strip_prefix('{') {
            Some(rest) => {
                let sep = if rest.trim_start().starts_with('}') {
                    ""
                } else {
                    ","
                };
                write!(
                    writer,
                    "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"{sep}{rest}"
                )
            }
            None => writer.write_str(&line),
        }
    }
}

#[cfg(all(test, feature = "testing", feature = "fmt"))]
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

    fn json_lines(filter: &str, f: impl FnOnce()) -> (Vec<serde_json::Value>, TestTracing) {
        let t = TestTracing::new();
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(env_filter(Some(filter)).unwrap())
            .with(otel_layer(t.tracer()))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || writer.clone())
                    .with_ansi(false)
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonWithTraceIds::default()),
            );
        tracing::subscriber::with_default(subscriber, f);
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (lines, t)
    }

    #[test]
    fn every_json_line_parses_and_in_span_lines_carry_the_span_ids() {
        let (lines, t) = json_lines("info", || {
            tracing::info!(answer = 42, "outside");
            tracing::info_span!("outer", tenant = "t\"1").in_scope(|| {
                tracing::info!(quote = "a \"quoted\" {brace}", "inside");
            });
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let outside = &lines[0];
        assert_eq!(outside["fields"]["message"], "outside");
        assert_eq!(outside["fields"]["answer"], 42);
        assert!(outside.get("trace_id").is_none(), "{outside}");
        let inside = &lines[1];
        let outer = t.spans().find("outer").span_context.clone();
        assert_eq!(inside["trace_id"], outer.trace_id().to_string());
        assert_eq!(inside["span_id"], outer.span_id().to_string());
        assert_eq!(inside["fields"]["quote"], "a \"quoted\" {brace}");
        assert_eq!(inside["span"]["name"], "outer");
        assert_eq!(inside["level"], "INFO");
    }

    /// Lines inside a bridge span show no internal span name (text and JSON, through the
    /// `Builder`), carry the ids of the span it stands for, and become that span's events.
    #[test]
    fn log_lines_inside_a_bridge_name_no_internal_span() {
        use crate::config::LogFormat;
        use opentelemetry::trace::SpanKind;
        for format in [LogFormat::Text, LogFormat::Json] {
            let t = TestTracing::new();
            let buf = Buf::default();
            let writer = buf.clone();
            let subscriber = Builder::new()
                .with_format(format)
                .with_writer(move || writer.clone())
                .build();
            let cx = crate::span::start_in(
                &t.tracer(),
                &opentelemetry::Context::new(),
                "GET /orders",
                SpanKind::Server,
                [],
            );
            tracing::subscriber::with_default(subscriber, || {
                let bridge = {
                    let _active = cx.clone().attach();
                    bridge_span()
                };
                let _active = cx.clone().attach();
                let _entered = bridge.enter();
                tracing::info!(order = 7, "in the bridge");
            });
            cx.span().end();
            let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            for internal in [BRIDGE_SPAN_NAME, BRIDGE_TARGET] {
                assert!(!out.contains(internal), "{format:?}: {out}");
            }
            let spans = t.spans();
            let server = spans.find("GET /orders");
            let ids = (
                server.span_context.trace_id().to_string(),
                server.span_context.span_id().to_string(),
            );
            match format {
                LogFormat::Json => {
                    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
                    assert_eq!(line["trace_id"], ids.0);
                    assert_eq!(line["span_id"], ids.1);
                    assert!(
                        line.get("span").is_none() && line.get("spans").is_none(),
                        "{line}"
                    );
                }
                _ => assert!(
                    out.starts_with(&format!("trace_id={} span_id={} ", ids.0, ids.1)),
                    "{out}"
                ),
            }
            // tracing-opentelemetry names an event after its message.
            let names: Vec<&str> = server.events.iter().map(|e| e.name.as_ref()).collect();
            assert_eq!(names, ["in the bridge"], "{format:?}");
        }
    }

    /// The filter leaves the `tracing` spans around a bridge in the line: an `#[instrument]`
    /// span outside it, and one inside it (a child of the span it stands for).
    #[test]
    fn log_lines_keep_the_user_spans_around_a_bridge() {
        use opentelemetry::trace::SpanKind;
        let t = TestTracing::new();
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(otel_layer(t.tracer()))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone())
                    .event_format(WithTraceIds(Format::default()))
                    .with_filter(filter_fn(not_bridge)),
            );
        tracing::subscriber::with_default(subscriber, || {
            let cx = crate::span::start_in(
                &t.tracer(),
                &opentelemetry::Context::new(),
                "workflow.execute",
                SpanKind::Internal,
                [],
            );
            tracing::info_span!("outer").in_scope(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(crate::span::in_span(cx, async {
                    tracing::info!("in the workflow");
                    tokio::task::yield_now().await;
                    tracing::info_span!("inner").in_scope(|| tracing::info!("in inner"));
                }));
            });
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains(BRIDGE_SPAN_NAME), "{out}");
        let workflow_line = out.lines().find(|l| l.contains("in the workflow")).unwrap();
        assert!(workflow_line.contains(" outer: "), "{workflow_line}");
        let inner_line = out.lines().find(|l| l.contains("in inner")).unwrap();
        assert!(inner_line.contains(" outer:inner: "), "{inner_line}");
        let spans = t.spans();
        spans.assert_child_of("inner", "workflow.execute");
        let workflow = spans.find("workflow.execute");
        assert_eq!(workflow.events.events[0].name, "in the workflow");
        assert_eq!(workflow.events.len(), 1, "{:?}", workflow.events);
        let inner = spans.find("inner");
        assert_eq!(inner.events.events[0].name, "in inner");
    }

    #[test]
    fn rust_log_warn_silences_info() {
        let (lines, t) = json_lines("warn", || {
            tracing::info!("quiet");
            tracing::info_span!("not recorded").in_scope(|| tracing::warn!("loud"));
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["fields"]["message"], "loud");
        assert!(t.spans().is_empty());
        assert_eq!(
            env_filter(Some("warn")).unwrap().max_level_hint(),
            Some(LevelFilter::WARN)
        );
    }

    #[test]
    fn rust_log_defaults_to_info_and_rejects_nonsense() {
        for unset in [None, Some(""), Some("  ")] {
            assert_eq!(
                env_filter(unset).unwrap().max_level_hint(),
                Some(LevelFilter::INFO)
            );
        }
        assert_eq!(
            env_filter(Some("info,my_crate=debug"))
                .unwrap()
                .max_level_hint(),
            Some(LevelFilter::DEBUG)
        );
        let err = env_filter(Some("my_crate=loud")).unwrap_err();
        assert_eq!(err.errors()[0].variable, "RUST_LOG");
        assert_eq!(err.errors()[0].value, "my_crate=loud");
    }

    #[test]
    fn log_format_parses_text_and_json_and_names_a_bad_value() {
        assert_eq!(LogFormat::from_value(None).unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::from_value(Some("")).unwrap(), LogFormat::Text);
        assert_eq!(
            LogFormat::from_value(Some("JSON")).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            LogFormat::from_value(Some(" text ")).unwrap(),
            LogFormat::Text
        );
        let err = LogFormat::from_value(Some("yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid tracing configuration: TRACING_LOG_FORMAT=\"yaml\": expected text or json"
        );
    }

    #[test]
    fn the_builder_writes_json_without_colour_to_its_writer() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = Builder::new()
            .with_format(LogFormat::Json)
            .with_ansi(true)
            .with_writer(move || writer.clone())
            .build();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("filtered");
            tracing::info!("kept");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
    }

    #[test]
    fn text_lines_written_to_a_file_have_no_colour_codes() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = Builder::new().with_writer(move || writer.clone()).build();
        tracing::subscriber::with_default(subscriber, || tracing::warn!(k = 1, "plain"));
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("WARN") && out.contains("plain"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
    }
}
