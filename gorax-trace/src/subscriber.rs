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
#[path = "subscriber_tests.rs"]
mod tests;
