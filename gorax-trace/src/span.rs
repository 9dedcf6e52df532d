//! How a gorax span starts and ends: kinds, error recording, events, attributes, and the trace
//! and span ids for log correlation.
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
//! | `RecordError(ctx, err)` | [`record_current_error`] | [`record_error`] |
//! | `RecordWorkflowEvent(ctx, name, attrs)` | [`record_event`] | [`record_event_in`] |
//! | `SetAttributes(ctx, attrs)` | [`set_attributes`] | [`set_attributes_in`] |
//! | `GetTraceID(ctx)`, `GetSpanID(ctx)` | [`current_trace_id`], [`current_span_id`] | [`trace_id`], [`span_id`] |
//!
//! ```
//! use gorax_trace::span;
//! use opentelemetry::trace::{FutureExt, SpanKind, TraceContextExt};
//! use opentelemetry::{Context, KeyValue};
//!
//! let cx = span::start_workflow("tenant-1", "wf-42", "exec-7");
//! let _active = cx.clone().attach();
//! span::record_event("workflow.started", [KeyValue::new("nodes", 3)]);
//! let err = std::io::Error::other("step failed");
//! span::record_error(&Context::current(), &err);
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
/// `exception.message`), status Error with the message, and `error.type` set to the error's type
/// name (low cardinality). Every URL in the message is redacted first
/// ([`redact_text`](crate::httpconv::redact_text): credentials and sensitive query values).
/// Does nothing when the span is not recording.
pub fn record_error<E: Display + ?Sized>(cx: &Context, error: &E) {
    record_error_on(&cx.span(), error)
}

/// [`record_error`] on the current span.
pub fn record_current_error<E: Display + ?Sized>(error: &E) {
    Context::map_current(|cx| record_error(cx, error))
}

/// [`record_error`] on a span reference (what adapters hold while a future completes).
pub fn record_error_on<E: Display + ?Sized>(span: &SpanRef<'_>, error: &E) {
    record_exception_on(span, error, Exception::GENERIC)
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
pub fn record_exception_on<E: Display + ?Sized>(
    span: &SpanRef<'_>,
    error: &E,
    exception: Exception,
) {
    let handle = crate::TelemetryHandle::installed();
    let signal = handle.exception_signal();
    let recording = span.is_recording();
    if !recording && !signal.logs() {
        return;
    }
    let type_name = short_type_name::<E>();
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

/// The last two path segments of a type's name (`std::io::error::Error` -> `error::Error`): a
/// low-cardinality `error.type`.
pub fn short_type_name<E: ?Sized>() -> &'static str {
    let full = std::any::type_name::<E>();
    let path = full.split('<').next().unwrap_or(full);
    // The last two path segments: `std::io::error::Error` -> `error::Error`.
    match path.rmatch_indices("::").nth(1) {
        Some((i, _)) => &path[i + 2..],
        None => path,
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::TestTracing;
    use opentelemetry::trace::Status;

    #[test]
    fn type_names_are_short() {
        assert_eq!(short_type_name::<std::io::Error>(), "error::Error");
        assert_eq!(short_type_name::<std::fmt::Error>(), "fmt::Error");
        assert_eq!(short_type_name::<u8>(), "u8");
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
        spans.assert_attr(op, semconv::ERROR_TYPE, "error::Error");
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
        spans.assert_attr(c, semconv::ERROR_TYPE, "fmt::Error");
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
                KeyValue::new(semconv::EXCEPTION_TYPE, "fmt::Error"),
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
        spans.assert_attr(op, semconv::ERROR_TYPE, "error::Error");
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
                KeyValue::new(semconv::EXCEPTION_TYPE, "error::Error"),
                KeyValue::new(semconv::EXCEPTION_MESSAGE, "step failed"),
            ]
        );
    }
}
