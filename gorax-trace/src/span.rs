//! How a gorax span starts and ends: kinds, error recording, events, attributes, and the trace
//! and span ids for log correlation.
//!
//! In async code, start with `tracing`: `#[tracing::instrument(name = "workflow.execute", …)]`
//! on an `async fn` (see the [`subscriber`](crate::subscriber) module) makes a span that is
//! current on every poll, logs into it and ends with the future. The helpers here are the
//! OpenTelemetry-API path, for the guide's Go names and for spans started in one place and
//! ended in another.
//!
//! These helpers replace the Go package's `StartSpan`, `RecordError`, `RecordWorkflowEvent`,
//! `SetAttributes`, `GetTraceID` and `GetSpanID`. They work on OpenTelemetry [`Context`]s, so a
//! span started here is the parent of `tracing` spans, outgoing HTTP calls and queue messages
//! made while its context is current.
//!
//! Each helper has a form on the current context and one on a given context (the Go API's
//! `ctx` argument):
//!
//! | Go | current context | given context |
//! |---|---|---|
//! | `StartSpan(ctx, name, kind, attrs)` | [`start`], [`start_workflow`], [`start_step`] | [`start_with_parent`], [`start_workflow_with_parent`], [`start_step_with_parent`] |
//! | `ctx, span := StartSpan(…); defer span.End()` around async work | [`in_workflow`], [`in_step`] | [`in_span`], [`try_in_span`] (any started [`Context`]) |
//! | `RecordError(ctx, err)` | [`record_current_error`] | [`record_error`] |
//! | `RecordWorkflowEvent(ctx, name, attrs)` | [`record_event`] | [`record_event_in`] |
//! | `SetAttributes(ctx, attrs)` | [`set_attributes`] | [`set_attributes_in`] |
//! | `GetTraceID(ctx)`, `GetSpanID(ctx)` | [`current_trace_id`], [`current_span_id`] | [`trace_id`], [`span_id`] |
//!
//! A [`Context`] made current with `cx.attach()` stays current only until its guard drops, and
//! the guard is not `Send`: held across an `.await` it makes an axum handler's future not
//! `Send` (axum then reports an opaque `Handler<_, _>` error). In async code, run the work in
//! the span with [`in_workflow`], [`in_step`], [`in_span`] or [`try_in_span`]: the context is
//! current and its `tracing` bridge span entered on every poll, so `tracing::info!` lines are
//! events of the span, and the span ends (with an `Err` recorded) when the future completes:
//!
//! ```
//! use gorax_trace::span;
//! use opentelemetry::KeyValue;
//!
//! # futures_executor::block_on(async {
//! let result = span::in_workflow("tenant-1", "wf-42", "exec-7", async {
//!     span::record_event("workflow.started", [KeyValue::new("nodes", 3)]);
//!     tracing::info!("executing"); // an event of `workflow.execute`
//!     span::in_step("fetch", "http", async {
//!         Err::<(), _>(std::io::Error::other("step failed")) // recorded on the step
//!     })
//!     .await
//! })
//! .await;
//! assert!(result.is_err());
//! # });
//! ```
//!
//! In synchronous code `attach` is fine:
//!
//! ```
//! use gorax_trace::span;
//! use opentelemetry::trace::TraceContextExt;
//! use opentelemetry::{Context, KeyValue};
//!
//! let cx = span::start_workflow("tenant-1", "wf-42", "exec-7");
//! {
//!     let _active = cx.clone().attach();
//!     span::record_event("workflow.started", [KeyValue::new("nodes", 3)]);
//!     let err = std::io::Error::other("step failed");
//!     span::record_error(&Context::current(), &err);
//! }
//! cx.span().end();
//! ```

use std::borrow::Cow;
use std::fmt::Display;

use opentelemetry::trace::{SpanKind, SpanRef, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, Value};

use crate::SdkTracer;
use crate::semconv;

/// Span name of a workflow execution (the guide's `workflow.execute`).
pub const WORKFLOW_EXECUTE: &str = "workflow.execute";
/// Span name of one workflow step (the guide's `workflow.step.execute`).
pub const WORKFLOW_STEP_EXECUTE: &str = "workflow.step.execute";

/// Starts a span as a child of the current context and returns the context holding it.
/// End it with `cx.span().end()` (or let the last clone of the context drop).
pub fn start(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    attributes: impl IntoIterator<Item = KeyValue>,
) -> Context {
    start_with_parent(&Context::current(), name, kind, attributes)
}

/// Starts a span as a child of `parent`.
pub fn start_with_parent(
    parent: &Context,
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    attributes: impl IntoIterator<Item = KeyValue>,
) -> Context {
    start_in(
        crate::TelemetryHandle::installed().tracer(),
        parent,
        name,
        kind,
        attributes,
    )
}

/// Starts a span of `tracer` (e.g. a test provider's) as a child of `parent`.
pub fn start_in(
    tracer: &SdkTracer,
    parent: &Context,
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    attributes: impl IntoIterator<Item = KeyValue>,
) -> Context {
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

/// Starts the `workflow.execute` span with `tenant_id`, `workflow_id` and `execution_id`.
pub fn start_workflow(tenant_id: &str, workflow_id: &str, execution_id: &str) -> Context {
    start(
        WORKFLOW_EXECUTE,
        SpanKind::Internal,
        workflow_attributes(tenant_id, workflow_id, execution_id),
    )
}

/// Starts the `workflow.execute` span as a child of `parent`.
pub fn start_workflow_with_parent(
    parent: &Context,
    tenant_id: &str,
    workflow_id: &str,
    execution_id: &str,
) -> Context {
    start_with_parent(
        parent,
        WORKFLOW_EXECUTE,
        SpanKind::Internal,
        workflow_attributes(tenant_id, workflow_id, execution_id),
    )
}

/// Starts the `workflow.step.execute` span with `node_id` and `node_type`.
pub fn start_step(node_id: &str, node_type: &str) -> Context {
    start(
        WORKFLOW_STEP_EXECUTE,
        SpanKind::Internal,
        node_attributes(node_id, node_type),
    )
}

/// Starts the `workflow.step.execute` span as a child of `parent`.
pub fn start_step_with_parent(parent: &Context, node_id: &str, node_type: &str) -> Context {
    start_with_parent(
        parent,
        WORKFLOW_STEP_EXECUTE,
        SpanKind::Internal,
        node_attributes(node_id, node_type),
    )
}

/// Runs `future` inside the span of `cx`, as async code needs: on every poll `cx` is the current
/// OpenTelemetry context *and* a [`bridge_span`](crate::subscriber::bridge_span) standing for its
/// span is the current `tracing` span, so `tracing::info!` lines become events of the span,
/// `#[instrument]` spans and outgoing calls its children, and
/// `tracing::Span::current().set_attribute(..)` writes to it. When `future` completes the span
/// ends (a future dropped unfinished ends it with its last [`Context`] clone).
///
/// The returned future is `Send` when `future` is, so it can be awaited in an axum handler; no
/// guard is held across an `.await` (unlike `cx.attach()`). [`try_in_span`] also records an
/// `Err`; [`in_workflow`] and [`in_step`] start the guide's spans for you.
///
/// ```
/// use gorax_trace::span;
/// use opentelemetry::trace::SpanKind;
///
/// # futures_executor::block_on(async {
/// let cx = span::start("reindex", SpanKind::Internal, []);
/// let count = span::in_span(cx, async {
///     tracing::info!("reindexing"); // an event of `reindex`
///     42
/// })
/// .await;
/// assert_eq!(count, 42);
/// # });
/// ```
pub fn in_span<F: Future>(cx: Context, future: F) -> impl Future<Output = F::Output> {
    run_in(cx, future, |_, _| {})
}

/// [`in_span`] for a fallible `future`: an `Err` is recorded on the span with
/// [`record_error`] (`exception` event, status Error, `error.type`) before the span ends.
///
/// ```
/// use gorax_trace::span;
/// use opentelemetry::trace::SpanKind;
///
/// # futures_executor::block_on(async {
/// let cx = span::start("load", SpanKind::Internal, []);
/// let loaded = span::try_in_span(cx, async {
///     std::fs::read_to_string("/does/not/exist") // error.type std::io::error::Error
/// })
/// .await;
/// assert!(loaded.is_err());
/// # });
/// ```
pub fn try_in_span<F, T, E>(cx: Context, future: F) -> impl Future<Output = Result<T, E>>
where
    F: Future<Output = Result<T, E>>,
    E: SpanError,
{
    run_in(cx, future, |cx, output| {
        if let Err(error) = output {
            record_error(cx, error);
        }
    })
}

/// Runs `future` in a new `workflow.execute` span (a child of the context current when it is
/// called, with `tenant_id`, `workflow_id` and `execution_id`), as [`try_in_span`] does: current for
/// OpenTelemetry and `tracing` on every poll, an `Err` recorded, ended on completion.
///
/// ```
/// use gorax_trace::span;
///
/// # futures_executor::block_on(async {
/// let done = span::in_workflow("tenant-1", "wf-42", "exec-7", async {
///     tracing::info!("workflow started"); // an event of `workflow.execute`
///     span::in_step("fetch", "http", async {
///         tracing::info!("fetching"); // an event of `workflow.step.execute`
///         Ok::<_, std::io::Error>(())
///     })
///     .await?;
///     Ok::<_, std::io::Error>("done")
/// })
/// .await?;
/// assert_eq!(done, "done");
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub fn in_workflow<F, T, E>(
    tenant_id: &str,
    workflow_id: &str,
    execution_id: &str,
    future: F,
) -> impl Future<Output = Result<T, E>>
where
    F: Future<Output = Result<T, E>>,
    E: SpanError,
{
    try_in_span(start_workflow(tenant_id, workflow_id, execution_id), future)
}

/// Runs `future` in a new `workflow.step.execute` span (a child of the context current when it
/// is called, with `node_id` and `node_type`), as [`in_workflow`] does.
///
/// ```
/// use gorax_trace::span;
///
/// # futures_executor::block_on(async {
/// let fetched = span::in_step("fetch", "http", async {
///     tracing::warn!("upstream slow"); // an event of `workflow.step.execute`
///     Err::<(), _>(std::io::Error::other("upstream timed out")) // recorded: status Error
/// })
/// .await;
/// assert!(fetched.is_err());
/// # });
/// ```
pub fn in_step<F, T, E>(
    node_id: &str,
    node_type: &str,
    future: F,
) -> impl Future<Output = Result<T, E>>
where
    F: Future<Output = Result<T, E>>,
    E: SpanError,
{
    try_in_span(start_step(node_id, node_type), future)
}

/// `future` polled with `cx` attached and its bridge span entered; `done` sees the output
/// before the span ends.
fn run_in<F: Future>(
    cx: Context,
    future: F,
    done: impl FnOnce(&Context, &F::Output),
) -> impl Future<Output = F::Output> {
    // Created while `cx` is current, so that it stands for `cx`'s span.
    let bridge = {
        let _active = cx.clone().attach();
        crate::subscriber::bridge_span()
    };
    async move {
        let mut future = std::pin::pin!(future);
        let output = std::future::poll_fn(|task| {
            let _active = cx.clone().attach();
            let _entered = bridge.enter();
            future.as_mut().poll(task)
        })
        .await;
        done(&cx, &output);
        drop(bridge);
        cx.span().end();
        output
    }
}

/// The guide's workflow attributes: `tenant_id`, `workflow_id`, `execution_id`.
pub fn workflow_attributes(
    tenant_id: &str,
    workflow_id: &str,
    execution_id: &str,
) -> [KeyValue; 3] {
    [
        KeyValue::new(semconv::TENANT_ID, tenant_id.to_owned()),
        KeyValue::new(semconv::WORKFLOW_ID, workflow_id.to_owned()),
        KeyValue::new(semconv::EXECUTION_ID, execution_id.to_owned()),
    ]
}

/// The guide's step attributes: `node_id`, `node_type`.
pub fn node_attributes(node_id: &str, node_type: &str) -> [KeyValue; 2] {
    [
        KeyValue::new(semconv::NODE_ID, node_id.to_owned()),
        KeyValue::new(semconv::NODE_TYPE, node_type.to_owned()),
    ]
}

/// Records `error` on the span of `cx`: an `exception` event (`exception.type`,
/// `exception.message`), status Error with the message, and `error.type`. Every URL in the
/// message is redacted first ([`redact_text`](crate::httpconv::redact_text): credentials and
/// sensitive query values). Does nothing when the span is not recording.
///
/// `error.type` (and `exception.type`) is the error's fully qualified type path as
/// [`std::any::type_name`] spells it, generic arguments stripped ([`error_type`]):
///
/// | `error` | `error.type` |
/// |---|---|
/// | a concrete type: `std::io::Error`, `MyError<T>`, `String` | `std::io::error::Error`, `my_crate::MyError`, `alloc::string::String` |
/// | a reference, `Box`, `Arc` or `Rc` of a concrete type | the type it points to |
/// | `Box<dyn Error>` / `Arc<dyn Error>` (`+ Send`, `+ Sync`), `dyn Error` | a known type downcast: `std::io::error::Error`; `reqwest::error::Error` (feature `otlp-http`); `tonic::status::Status` (feature `otlp-grpc`) |
/// | any other `dyn Error`, any other `dyn` type | `_OTHER` ([`semconv::ERROR_TYPE_OTHER`]) |
/// | `str` (a message only) | `str` |
///
/// The path is the one of the module that defines the type (`std::io::error::Error`, not its
/// re-export `std::io::Error`): a stable, low-cardinality name per type, although Rust does not
/// promise `type_name`'s exact text across compiler versions. `reqwest::Error` and
/// `tonic::Status` are recognised only when the core links those crates (its `otlp-http` and
/// `otlp-grpc` features); without them a boxed one is `_OTHER`.
///
/// ```
/// use gorax_trace::span;
///
/// let io = std::io::Error::other("disk full");
/// assert_eq!(span::SpanError::error_type(&io), "std::io::error::Error");
/// let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(io);
/// assert_eq!(span::SpanError::error_type(&boxed), "std::io::error::Error");
/// let opaque: Box<dyn std::error::Error + Send + Sync> = "no type".into();
/// assert_eq!(span::SpanError::error_type(&opaque), "_OTHER");
///
/// let cx = span::start_workflow("tenant-1", "wf-42", "exec-7");
/// span::record_error(&cx, &boxed);
/// ```
pub fn record_error<E: SpanError + ?Sized>(cx: &Context, error: &E) {
    record_error_on(&cx.span(), error)
}

/// [`record_error`] on the current span.
pub fn record_current_error<E: SpanError + ?Sized>(error: &E) {
    Context::map_current(|cx| record_error(cx, error))
}

/// [`record_error`] on a span reference (what adapters hold while a future completes).
pub fn record_error_on<E: SpanError + ?Sized>(span: &SpanRef<'_>, error: &E) {
    record_typed(span, error, error.error_type(), Exception::GENERIC)
}

/// Which exception an instrumentation records: the semantic conventions' event name (`…exception`
/// of the operation, or `exception` when it is not specific) and the severity they advise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exception {
    /// The event name, e.g. `http.server.request.exception`.
    pub name: &'static str,
    /// `true`: ERROR (17), for server and consumer operations and unhandled errors; `false`:
    /// WARN (13), for client and producer operations.
    pub error_severity: bool,
}

impl Exception {
    /// `exception`, ERROR: an error of user code ([`record_error`]).
    pub const GENERIC: Self = Self {
        name: "exception",
        error_severity: true,
    };
    /// `http.server.request.exception`, ERROR (`docs/http/http-exceptions.md`).
    pub const HTTP_SERVER: Self = Self {
        name: "http.server.request.exception",
        error_severity: true,
    };
    /// `http.client.request.exception`, WARN.
    pub const HTTP_CLIENT: Self = Self {
        name: "http.client.request.exception",
        error_severity: false,
    };
    /// `rpc.server.call.exception`, ERROR (`docs/rpc/rpc-exceptions.md`).
    pub const RPC_SERVER: Self = Self {
        name: "rpc.server.call.exception",
        error_severity: true,
    };
    /// `rpc.client.call.exception`, WARN.
    pub const RPC_CLIENT: Self = Self {
        name: "rpc.client.call.exception",
        error_severity: false,
    };
    /// `messaging.process.exception`, ERROR (`docs/messaging/messaging-exceptions.md`).
    pub const MESSAGING_PROCESS: Self = Self {
        name: "messaging.process.exception",
        error_severity: true,
    };
    /// `messaging.send.exception`, WARN.
    pub const MESSAGING_SEND: Self = Self {
        name: "messaging.send.exception",
        error_severity: false,
    };
}

/// Records `error` on `span` as `exception` says, where the installed telemetry's exception
/// signal ([`ExceptionSignal`](crate::config::ExceptionSignal),
/// `OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`) sends it: an `exception` span event (the default), a
/// log record named `exception.name` with its severity in the span's context (`logs`; feature
/// `logs` with OTLP logs on), or both (`logs/dup`). Status Error and `error.type` are set on a
/// recording span either way; the message is redacted
/// ([`redact_text`](crate::httpconv::redact_text)).
///
/// `error.type` is [`error_type::<E>()`](error_type): the static type's path, so a boxed or
/// `dyn` error is `_OTHER` here (this form takes any `Display`, borrowed ones included; the
/// adapters record their inner services' errors with it). [`record_error`] downcasts them.
pub fn record_exception_on<E: Display + ?Sized>(
    span: &SpanRef<'_>,
    error: &E,
    exception: Exception,
) {
    record_typed(span, error, error_type::<E>(), exception)
}

/// [`record_exception_on`] with the `error.type` decided by the caller.
fn record_typed<E: Display + ?Sized>(
    span: &SpanRef<'_>,
    error: &E,
    type_name: &'static str,
    exception: Exception,
) {
    let handle = crate::TelemetryHandle::installed();
    let signal = handle.exception_signal();
    let recording = span.is_recording();
    if !recording && !signal.logs() {
        return;
    }
    // Error texts name URLs (reqwest's the request's, Redis's the connection's with its
    // password): redacted as `url.full` is.
    let message = crate::httpconv::redact_text(&error.to_string()).into_owned();
    if signal.logs() {
        exception_log(&handle, span.span_context(), type_name, &message, exception);
    }
    if !recording {
        return;
    }
    if signal.span_events() {
        span.add_event(
            semconv::EXCEPTION_EVENT,
            vec![
                KeyValue::new(semconv::EXCEPTION_TYPE, type_name),
                KeyValue::new(semconv::EXCEPTION_MESSAGE, message.clone()),
            ],
        );
    }
    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, type_name));
    span.set_status(Status::error(message));
}

/// Emits the exception log record `exception` names, with `exception.type` and
/// `exception.message` (redact the message first), in the span context `sc`, through `handle`'s
/// logs pipeline (feature `logs`, OTLP logs on); nothing otherwise. For adapters that record the
/// span side themselves; [`record_exception_on`] does both.
pub fn exception_log(
    handle: &crate::TelemetryHandle,
    sc: &opentelemetry::trace::SpanContext,
    type_name: &str,
    message: &str,
    exception: Exception,
) {
    #[cfg(feature = "logs")]
    if let Some(logger) = handle.logger() {
        use opentelemetry::logs::{LogRecord as _, Logger as _, Severity};
        let mut record = logger.create_log_record();
        record.set_event_name(exception.name);
        let (number, text) = if exception.error_severity {
            (Severity::Error, "ERROR")
        } else {
            (Severity::Warn, "WARN")
        };
        record.set_severity_number(number);
        record.set_severity_text(text);
        record.add_attribute(semconv::EXCEPTION_TYPE, type_name.to_owned());
        record.add_attribute(semconv::EXCEPTION_MESSAGE, message.to_owned());
        if sc.is_valid() {
            record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
        }
        logger.emit(record);
    }
    #[cfg(not(feature = "logs"))]
    let _ = (handle, sc, type_name, message, exception);
}

/// Adds an event with attributes to the current span (the guide's `RecordWorkflowEvent`).
pub fn record_event(
    name: impl Into<Cow<'static, str>>,
    attributes: impl IntoIterator<Item = KeyValue>,
) {
    Context::map_current(|cx| record_event_in(cx, name, attributes))
}

/// Adds an event with attributes to the span of `cx`; nothing when it is not recording.
pub fn record_event_in(
    cx: &Context,
    name: impl Into<Cow<'static, str>>,
    attributes: impl IntoIterator<Item = KeyValue>,
) {
    let span = cx.span();
    if span.is_recording() {
        span.add_event(name, attributes.into_iter().collect());
    }
}

/// Sets attributes of mixed types on the current span (the guide's `SetAttributes`):
///
/// ```
/// use opentelemetry::Value;
/// gorax_trace::span::set_attributes([
///     ("node_id", Value::from("n1")),
///     ("attempt", Value::from(2_i64)),
///     ("ratio", Value::from(0.5)),
///     ("cached", Value::from(true)),
/// ]);
/// ```
pub fn set_attributes<K, I>(attributes: I)
where
    K: Into<opentelemetry::Key>,
    I: IntoIterator<Item = (K, Value)>,
{
    Context::map_current(|cx| set_attributes_in(cx, attributes))
}

/// Sets attributes of mixed types on the span of `cx`; nothing when it is not recording.
pub fn set_attributes_in<K, I>(cx: &Context, attributes: I)
where
    K: Into<opentelemetry::Key>,
    I: IntoIterator<Item = (K, Value)>,
{
    let span = cx.span();
    if span.is_recording() {
        span.set_attributes(attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)));
    }
}

/// The current trace id as 32 lowercase hex digits, or `None` outside a valid span context
/// (the guide's `GetTraceID`, for log lines).
pub fn current_trace_id() -> Option<String> {
    Context::map_current(trace_id)
}

/// The current span id as 16 lowercase hex digits, or `None` outside a valid span context
/// (the guide's `GetSpanID`).
pub fn current_span_id() -> Option<String> {
    Context::map_current(span_id)
}

/// The trace id of `cx`'s span as 32 lowercase hex digits, or `None` when its span context is
/// not valid (the guide's `GetTraceID(ctx)`).
pub fn trace_id(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The span id of `cx`'s span as 16 lowercase hex digits, or `None` when its span context is
/// not valid (the guide's `GetSpanID(ctx)`).
pub fn span_id(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.span_id().to_string())
}

/// An error [`record_error`] can record, with the `error.type` it gets (see the table there):
/// every `Display + 'static` value (`std::io::Error`, `Box<dyn Error + Send + Sync>`,
/// `anyhow::Error`, `String`, `&'static str`), `dyn Error` (`+ Send`, `+ Sync`) and `str`.
/// A `Box` or `Arc` of `dyn Error` is downcast to the known types.
///
/// ```
/// use gorax_trace::span::SpanError;
///
/// #[derive(Debug)]
/// struct Timeout<T>(T);
/// impl<T> std::fmt::Display for Timeout<T> {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("timed out")
///     }
/// }
/// // The type's full path (here a doctest's), generic arguments stripped: one value per type.
/// assert!(Timeout(5_u8).error_type().ends_with("::Timeout"), "{}", Timeout(5_u8).error_type());
/// assert!(!Timeout(5_u8).error_type().contains('<'));
/// assert_eq!("a message".error_type(), "str");
/// ```
pub trait SpanError: Display {
    /// The `error.type` of this error.
    fn error_type(&self) -> &'static str;
}

impl<T: Display + 'static> SpanError for T {
    fn error_type(&self) -> &'static str {
        use std::error::Error;
        use std::sync::Arc;
        let any: &dyn std::any::Any = self;
        if let Some(e) = any.downcast_ref::<Box<dyn Error + Send + Sync>>() {
            dyn_error_type(&**e)
        } else if let Some(e) = any.downcast_ref::<Box<dyn Error + Send>>() {
            dyn_error_type(&**e)
        } else if let Some(e) = any.downcast_ref::<Box<dyn Error>>() {
            dyn_error_type(&**e)
        } else if let Some(e) = any.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
            dyn_error_type(&**e)
        } else if let Some(e) = any.downcast_ref::<Arc<dyn Error>>() {
            dyn_error_type(&**e)
        } else {
            error_type::<T>()
        }
    }
}

impl SpanError for dyn std::error::Error + 'static {
    fn error_type(&self) -> &'static str {
        dyn_error_type(self)
    }
}

impl SpanError for dyn std::error::Error + Send + 'static {
    fn error_type(&self) -> &'static str {
        dyn_error_type(self)
    }
}

impl SpanError for dyn std::error::Error + Send + Sync + 'static {
    fn error_type(&self) -> &'static str {
        dyn_error_type(self)
    }
}

impl SpanError for str {
    fn error_type(&self) -> &'static str {
        error_type::<str>()
    }
}

/// The `error.type` of a `dyn Error`: the known types it may be (`std::io::Error`;
/// `reqwest::Error` with feature `otlp-http`; `tonic::Status` with feature `otlp-grpc`) by their
/// [`error_type`], else `_OTHER` ([`semconv::ERROR_TYPE_OTHER`]).
///
/// ```
/// use gorax_trace::span::dyn_error_type;
///
/// assert_eq!(dyn_error_type(&std::io::Error::other("x")), "std::io::error::Error");
/// assert_eq!(dyn_error_type(&std::fmt::Error), "_OTHER");
/// ```
pub fn dyn_error_type(error: &(dyn std::error::Error + 'static)) -> &'static str {
    if error.is::<std::io::Error>() {
        return error_type::<std::io::Error>();
    }
    #[cfg(feature = "otlp-http")]
    if error.is::<reqwest::Error>() {
        return error_type::<reqwest::Error>();
    }
    #[cfg(feature = "otlp-grpc")]
    if error.is::<tonic::Status>() {
        return error_type::<tonic::Status>();
    }
    semconv::ERROR_TYPE_OTHER
}

/// The `error.type` of a static type `E`: its fully qualified path as [`std::any::type_name`]
/// gives it, generic arguments stripped (`my_crate::Wrapper<u8>` -> `my_crate::Wrapper`); for a
/// reference, `Box`, `Arc` or `Rc`, the type it points to; `_OTHER`
/// ([`semconv::ERROR_TYPE_OTHER`]) for a `dyn` type, whose concrete type is known only at run
/// time ([`SpanError::error_type`] downcasts it).
///
/// ```
/// use gorax_trace::span::error_type;
///
/// assert_eq!(error_type::<std::io::Error>(), "std::io::error::Error");
/// assert_eq!(error_type::<Result<u8, String>>(), "core::result::Result");
/// assert_eq!(error_type::<std::sync::Arc<std::fmt::Error>>(), "core::fmt::Error");
/// assert_eq!(error_type::<Box<dyn std::error::Error + Send + Sync>>(), "_OTHER");
/// ```
pub fn error_type<E: ?Sized>() -> &'static str {
    type_path(std::any::type_name::<E>())
}

/// Smart pointers whose pointee names the error (as `type_name` spells them).
const POINTERS: [&str; 3] = ["alloc::boxed::Box<", "alloc::sync::Arc<", "alloc::rc::Rc<"];

fn type_path(mut name: &'static str) -> &'static str {
    loop {
        if let Some(rest) = name.strip_prefix('&') {
            name = rest.strip_prefix("mut ").unwrap_or(rest);
        } else if let Some(inner) = POINTERS.iter().find_map(|p| name.strip_prefix(p)) {
            name = first_argument(inner);
        } else {
            break;
        }
    }
    if name.starts_with("dyn ") {
        return semconv::ERROR_TYPE_OTHER;
    }
    name.split('<').next().unwrap_or(name)
}

/// The first generic argument of `inner` (what follows a type's `<`): up to its first `,` or
/// `>` outside nested brackets.
fn first_argument(inner: &'static str) -> &'static str {
    let mut depth = 0_usize;
    for (i, c) in inner.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' if depth == 0 => return &inner[..i],
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => return &inner[..i],
            _ => {}
        }
    }
    inner
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::TestTracing;
    use opentelemetry::trace::Status;

    #[derive(Debug)]
    struct Wrapper<T>(T);
    impl<T> Display for Wrapper<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl<T: std::fmt::Debug> std::error::Error for Wrapper<T> {}

    #[test]
    fn static_types_give_their_full_path_without_generic_arguments() {
        assert_eq!(error_type::<std::io::Error>(), "std::io::error::Error");
        assert_eq!(error_type::<std::fmt::Error>(), "core::fmt::Error");
        assert_eq!(error_type::<String>(), "alloc::string::String");
        assert_eq!(error_type::<str>(), "str");
        assert_eq!(error_type::<&'static str>(), "str");
        assert_eq!(error_type::<u8>(), "u8");
        assert_eq!(
            error_type::<Wrapper<Vec<(u8, String)>>>(),
            "gorax_trace::span::tests::Wrapper"
        );
        assert_eq!(
            error_type::<Result<Wrapper<u8>, String>>(),
            "core::result::Result"
        );
        // Pointers name their pointee.
        assert_eq!(error_type::<&mut std::io::Error>(), "std::io::error::Error");
        assert_eq!(error_type::<Box<std::io::Error>>(), "std::io::error::Error");
        assert_eq!(
            error_type::<std::sync::Arc<Wrapper<u8>>>(),
            "gorax_trace::span::tests::Wrapper"
        );
        assert_eq!(
            error_type::<std::rc::Rc<Box<std::fmt::Error>>>(),
            "core::fmt::Error"
        );
        // `dyn`: unknown statically.
        type Dyn = dyn std::error::Error + Send + Sync;
        assert_eq!(error_type::<Dyn>(), "_OTHER");
        assert_eq!(error_type::<Box<Dyn>>(), "_OTHER");
        assert_eq!(error_type::<&dyn Display>(), "_OTHER");
        assert_eq!(semconv::ERROR_TYPE_OTHER, "_OTHER");
    }

    #[test]
    fn boxed_and_dyn_errors_are_downcast_to_the_known_types() {
        use std::error::Error;
        use std::sync::Arc;
        let io = || std::io::Error::other("disk full");
        let io_type = "std::io::error::Error";
        assert_eq!(io().error_type(), io_type);
        let b: Box<dyn Error + Send + Sync> = Box::new(io());
        assert_eq!(b.error_type(), io_type);
        assert_eq!((*b).error_type(), io_type, "dyn Error + Send + Sync");
        let b: Box<dyn Error + Send> = Box::new(io());
        assert_eq!(b.error_type(), io_type);
        assert_eq!((*b).error_type(), io_type, "dyn Error + Send");
        let b: Box<dyn Error> = Box::new(io());
        assert_eq!(b.error_type(), io_type);
        assert_eq!((*b).error_type(), io_type, "dyn Error");
        let a: Arc<dyn Error + Send + Sync> = Arc::new(io());
        assert_eq!(a.error_type(), io_type);
        let a: Arc<dyn Error> = Arc::new(io());
        assert_eq!(a.error_type(), io_type);
        // Unknown concrete types behind `dyn`: `_OTHER`.
        let b: Box<dyn Error + Send + Sync> = Box::new(Wrapper(1_u8));
        assert_eq!(b.error_type(), "_OTHER");
        assert_eq!((*b).error_type(), "_OTHER");
        let b: Box<dyn Error + Send + Sync> = "only a message".into();
        assert_eq!(b.error_type(), "_OTHER");
        assert_eq!(dyn_error_type(&std::fmt::Error), "_OTHER");
        // Concrete values keep their own type.
        assert_eq!(
            Wrapper(1_u8).error_type(),
            "gorax_trace::span::tests::Wrapper"
        );
        assert_eq!("text".error_type(), "str");
        assert_eq!(String::from("text").error_type(), "alloc::string::String");
    }

    #[cfg(feature = "otlp-http")]
    #[test]
    fn a_boxed_reqwest_error_is_downcast() {
        // A builder error: no network.
        let error = reqwest::blocking::Client::new()
            .get("http://[::1")
            .build()
            .unwrap_err();
        assert_eq!(error.error_type(), "reqwest::error::Error");
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(error);
        assert_eq!(boxed.error_type(), "reqwest::error::Error");
    }

    #[cfg(feature = "otlp-grpc")]
    #[test]
    fn a_boxed_tonic_status_is_downcast() {
        let status = tonic::Status::unavailable("down");
        assert_eq!(status.error_type(), "tonic::status::Status");
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(status);
        assert_eq!(boxed.error_type(), "tonic::status::Status");
    }

    /// `record_error` and `record_exception_on` write the downcast / static type.
    #[test]
    fn recorded_error_types() {
        let t = TestTracing::new();
        let tracer = t.tracer();
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(std::io::Error::other("boxed io"));
        for (name, record) in [
            (
                "concrete",
                &(|cx: &Context| record_error(cx, &Wrapper(1_u8))) as &dyn Fn(&Context),
            ),
            ("boxed", &|cx: &Context| record_error(cx, &boxed)),
            ("dyn", &|cx: &Context| record_error(cx, &*boxed)),
            ("message", &|cx: &Context| record_error(cx, "just text")),
            ("adapter", &|cx: &Context| {
                record_exception_on(&cx.span(), &boxed, Exception::GENERIC)
            }),
        ] {
            let cx = start_in(&tracer, &Context::new(), name, SpanKind::Internal, []);
            record(&cx);
            cx.span().end();
        }
        let spans = t.spans();
        for (name, expected) in [
            ("concrete", "gorax_trace::span::tests::Wrapper"),
            ("boxed", "std::io::error::Error"),
            ("dyn", "std::io::error::Error"),
            ("message", "str"),
            ("adapter", "_OTHER"),
        ] {
            let span = spans.find(name);
            spans.assert_attr(span, semconv::ERROR_TYPE, expected);
            assert!(
                span.events.events[0]
                    .attributes
                    .contains(&KeyValue::new(semconv::EXCEPTION_TYPE, expected)),
                "{name}: {:?}",
                span.events
            );
        }
    }

    /// `in_workflow` / `in_step`: each span is current for OpenTelemetry and `tracing` on every
    /// poll (across real suspensions), its log lines are its events, an `Err` is recorded, and it
    /// ends when the future completes.
    #[test]
    fn in_workflow_makes_the_span_current_on_every_poll_and_ends_it() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let t = TestTracing::new();
        let _installed = t.install();
        let subscriber =
            tracing_subscriber::registry().with(crate::subscriber::otel_layer(t.tracer()));
        let _default = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result: Result<(), std::io::Error> = runtime.block_on(async {
            let workflow = in_workflow("tenant-1", "wf-42", "exec-7", async {
                tracing::info!("started");
                tokio::task::yield_now().await;
                let wf_id = current_span_id();
                in_step("fetch", "http", async {
                    tracing::info!("fetching");
                    tokio::task::yield_now().await;
                    assert_ne!(current_span_id(), wf_id);
                    tracing::info_span!("nested").in_scope(|| {});
                    Ok::<_, std::io::Error>(())
                })
                .await?;
                assert_eq!(current_span_id(), wf_id, "the workflow is current again");
                tracing::info!("after the step");
                Err::<(), _>(std::io::Error::other("step 2 failed"))
            });
            fn assert_send<T: Send>(_: &T) {}
            assert_send(&workflow);
            workflow.await
        });
        assert!(result.is_err());
        assert_eq!(current_span_id(), None, "nothing left attached");
        let spans = t.spans();
        spans.assert_child_of(WORKFLOW_STEP_EXECUTE, WORKFLOW_EXECUTE);
        spans.assert_child_of("nested", WORKFLOW_STEP_EXECUTE);
        let wf = spans.find(WORKFLOW_EXECUTE);
        spans.assert_attr(wf, semconv::TENANT_ID, "tenant-1");
        spans.assert_attr(wf, semconv::WORKFLOW_ID, "wf-42");
        spans.assert_attr(wf, semconv::EXECUTION_ID, "exec-7");
        spans.assert_attr(wf, semconv::ERROR_TYPE, "std::io::error::Error");
        assert_eq!(wf.status, Status::error("step 2 failed"));
        // tracing-opentelemetry names an event after its message.
        let messages = |span: &opentelemetry_sdk::trace::SpanData| -> Vec<String> {
            span.events.iter().map(|e| e.name.to_string()).collect()
        };
        assert_eq!(
            messages(wf),
            ["started", "after the step", semconv::EXCEPTION_EVENT]
        );
        let step = spans.find(WORKFLOW_STEP_EXECUTE);
        spans.assert_attr(step, semconv::NODE_ID, "fetch");
        assert_eq!(messages(step), ["fetching"]);
        assert_eq!(step.status, Status::Unset);
        assert!(
            !spans.names().contains(&crate::subscriber::BRIDGE_SPAN_NAME),
            "{:?}",
            spans.names()
        );
    }

    /// Without a `tracing` subscriber the context is still current on every poll.
    #[test]
    fn in_span_without_a_subscriber_still_sets_the_context() {
        let _none = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        let t = TestTracing::new();
        let cx = start_in(&t.tracer(), &Context::new(), "op", SpanKind::Internal, []);
        let id = span_id(&cx);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let out = runtime.block_on(in_span(cx, async {
            assert!(tracing::Span::current().is_none());
            tokio::task::yield_now().await;
            current_span_id()
        }));
        assert_eq!(out, id);
        assert_eq!(t.spans().names(), ["op"], "ended");
    }

    /// Issue 20: error texts carrying URLs (a Redis connection URL with its password, a
    /// request URL with tokens) are recorded redacted, in the status and in the event.
    #[test]
    fn secrets_in_error_texts_are_redacted() {
        let t = TestTracing::new();
        let span = t.tracer().start("op");
        let cx = Context::new().with_span(span);
        let error = std::io::Error::other(
            "connect redis://:hunter2@cache:6379/0 failed; retried http://h/x?a=1;token=t0k3n",
        );
        record_error(&cx, &error);
        cx.span().end();
        let spans = t.spans();
        let op = spans.find("op");
        let everything = format!("{:?} {:?}", op.status, op.events);
        for secret in ["hunter2", "t0k3n"] {
            assert!(!everything.contains(secret), "{secret}: {everything}");
        }
        assert!(
            everything.contains("redis://REDACTED:REDACTED@cache:6379/0"),
            "{everything}"
        );
        assert!(everything.contains("token=REDACTED"), "{everything}");
    }

    #[test]
    fn error_event_status_and_type() {
        let t = TestTracing::new();
        let tracer = t.tracer();
        let span = tracer.start("op");
        let cx = Context::new().with_span(span);
        record_error(&cx, &std::io::Error::other("disk full"));
        cx.span().end();
        let spans = t.spans();
        let op = spans.find("op");
        assert_eq!(op.status, Status::error("disk full"));
        spans.assert_attr(op, semconv::ERROR_TYPE, "std::io::error::Error");
        let event = &op.events.events[0];
        assert_eq!(event.name, semconv::EXCEPTION_EVENT);
        assert!(
            event
                .attributes
                .contains(&KeyValue::new(semconv::EXCEPTION_MESSAGE, "disk full"))
        );
    }

    /// Every helper on a given context, without attaching it: the values land on that span,
    /// not on whatever is current.
    #[test]
    fn helpers_on_a_given_context_write_every_value() {
        let t = TestTracing::new();
        let tracer = t.tracer();
        let root = start_in(
            &tracer,
            &Context::new(),
            "root",
            SpanKind::Server,
            [KeyValue::new("route", "/x")],
        );
        let child = start_in(&tracer, &root, "child", SpanKind::Client, []);
        // A different span is current meanwhile: the given-context forms must ignore it.
        let other = start_in(&tracer, &Context::new(), "other", SpanKind::Internal, []);
        let _current = other.clone().attach();
        record_event_in(
            &child,
            "workflow.step.done",
            [KeyValue::new("node_id", "n1"), KeyValue::new("ok", true)],
        );
        set_attributes_in(
            &child,
            [
                ("s", Value::from("v")),
                ("i", Value::from(7_i64)),
                ("f", Value::from(0.5)),
                ("b", Value::from(false)),
            ],
        );
        record_error(&child, &std::fmt::Error);
        let (trace, span) = (trace_id(&child).unwrap(), span_id(&child).unwrap());
        assert_eq!(trace.len(), 32);
        assert_eq!(span.len(), 16);
        assert_eq!(trace_id(&root).unwrap(), trace, "one trace");
        assert_ne!(span_id(&root).unwrap(), span);
        assert_eq!(trace_id(&Context::new()), None);
        assert_eq!(span_id(&Context::new()), None);
        child.span().end();
        root.span().end();
        other.span().end();

        let spans = t.spans();
        spans.assert_child_of("child", "root");
        let (r, c, o) = (spans.find("root"), spans.find("child"), spans.find("other"));
        assert_eq!(r.span_kind, SpanKind::Server);
        spans.assert_attr(r, "route", "/x");
        assert_eq!(c.span_kind, SpanKind::Client);
        assert_eq!(c.span_context.trace_id().to_string(), trace);
        assert_eq!(c.span_context.span_id().to_string(), span);
        for (k, v) in [
            ("s", Value::from("v")),
            ("i", Value::from(7_i64)),
            ("f", Value::from(0.5)),
            ("b", Value::from(false)),
        ] {
            spans.assert_attr(c, k, v);
        }
        spans.assert_attr(c, semconv::ERROR_TYPE, "core::fmt::Error");
        assert_eq!(c.status, Status::error(std::fmt::Error.to_string()));
        let names: Vec<&str> = c.events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(names, ["workflow.step.done", semconv::EXCEPTION_EVENT]);
        let done = &c.events.events[0];
        assert_eq!(
            done.attributes,
            [KeyValue::new("node_id", "n1"), KeyValue::new("ok", true)]
        );
        let exception = &c.events.events[1];
        assert_eq!(
            exception.attributes,
            [
                KeyValue::new(semconv::EXCEPTION_TYPE, "core::fmt::Error"),
                KeyValue::new(semconv::EXCEPTION_MESSAGE, std::fmt::Error.to_string()),
            ]
        );
        // The span that was current got nothing.
        assert!(o.attributes.is_empty() && o.events.is_empty(), "{o:?}");
        assert_eq!(o.status, Status::Unset);
    }

    /// The current-context forms write on the attached span, and do nothing without one.
    #[test]
    fn helpers_on_the_current_context_write_every_value() {
        let t = TestTracing::new();
        let tracer = t.tracer();
        // Nothing current: no panic, no span, no ids.
        record_event("lost", []);
        set_attributes([("lost", Value::from(1_i64))]);
        record_current_error(&std::io::Error::other("lost"));
        assert_eq!(current_trace_id(), None);
        assert_eq!(current_span_id(), None);

        let cx = start_in(&tracer, &Context::new(), "op", SpanKind::Internal, []);
        let (trace, span) = {
            let _active = cx.clone().attach();
            record_event("workflow.started", [KeyValue::new("steps", 2_i64)]);
            set_attributes([
                ("attempt", Value::from(3_i64)),
                ("cached", Value::from(true)),
            ]);
            record_current_error(&std::io::Error::other("step failed"));
            (current_trace_id().unwrap(), current_span_id().unwrap())
        };
        assert_eq!(current_trace_id(), None, "detached again");
        cx.span().end();

        let spans = t.spans();
        assert_eq!(spans.names(), ["op"]);
        let op = spans.find("op");
        assert_eq!(op.span_context.trace_id().to_string(), trace);
        assert_eq!(op.span_context.span_id().to_string(), span);
        spans.assert_attr(op, "attempt", 3_i64);
        spans.assert_attr(op, "cached", true);
        spans.assert_attr(op, semconv::ERROR_TYPE, "std::io::error::Error");
        assert_eq!(op.status, Status::error("step failed"));
        assert_eq!(op.events.events[0].name, "workflow.started");
        assert_eq!(
            op.events.events[0].attributes,
            [KeyValue::new("steps", 2_i64)]
        );
        assert_eq!(op.events.events[1].name, semconv::EXCEPTION_EVENT);
        assert_eq!(
            op.events.events[1].attributes,
            [
                KeyValue::new(semconv::EXCEPTION_TYPE, "std::io::error::Error"),
                KeyValue::new(semconv::EXCEPTION_MESSAGE, "step failed"),
            ]
        );
    }
}
