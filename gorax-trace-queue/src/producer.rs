//! The producer side: a PRODUCER span per message and the context injected into its headers.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use gorax_trace::{Binding, SdkTracer, TelemetryHandle};
use opentelemetry::trace::{
    Link, Span as _, SpanBuilder, SpanContext, SpanKind, TraceContextExt, Tracer,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::Span as SdkSpan;

use crate::TracedMessage;
use crate::attributes::{self, SEND};
use crate::metrics::MessageMetrics;
use gorax_trace::metrics::RequestDuration;

/// The `messaging.system` written when no adapter or builder sets one.
pub const DEFAULT_SYSTEM: &str = "gorax";

/// Starts the PRODUCER span of each message sent and injects its context into the message
/// headers. Broker adapters use it; use it directly for a broker without an adapter.
///
/// Defaults (each changed by a `with_*` method):
/// - telemetry: the [installed](gorax_trace::Telemetry::install) handle, resolved per message
///   (records nothing before [`gorax_trace::init`], and still gives each message a span id so
///   context propagates); [`with_telemetry`](Self::with_telemetry) fixes one;
/// - `messaging.system`: [`DEFAULT_SYSTEM`] (adapters set their broker's name).
///
/// ```
/// use gorax_trace_queue::{ProducerTracer, TracedMessage};
///
/// let producer = ProducerTracer::new().with_system("rabbitmq");
/// let mut msg = TracedMessage::new("gorax-executions", "payload");
/// let span = producer.start_send(&mut msg);
/// // ... publish `msg` with its headers ...
/// span.record_message_id("broker-id-1");
/// span.end();
/// ```
#[derive(Debug, Clone)]
pub struct ProducerTracer {
    binding: Binding,
    system: Cow<'static, str>,
}

impl Default for ProducerTracer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProducerTracer {
    /// A producer tracer with the defaults listed above.
    pub fn new() -> Self {
        Self {
            binding: Binding::installed(),
            system: Cow::Borrowed(DEFAULT_SYSTEM),
        }
    }

    /// Records with this handle (a [`Telemetry`](gorax_trace::Telemetry) or a
    /// [`TelemetryHandle`]) instead of the installed one.
    pub fn with_telemetry(mut self, telemetry: impl Into<TelemetryHandle>) -> Self {
        self.binding = Binding::fixed(telemetry);
        self
    }

    /// Records with this tracer (e.g. of a test provider) and default settings: a shortcut for
    /// [`with_telemetry`](Self::with_telemetry).
    pub fn with_tracer(self, tracer: SdkTracer) -> Self {
        self.with_telemetry(tracer)
    }

    /// Sets `messaging.system` (e.g. `redis`, `aws_sqs`, `rabbitmq`).
    pub fn with_system(mut self, system: impl Into<Cow<'static, str>>) -> Self {
        self.system = system.into();
        self
    }

    /// The `messaging.system` value.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// Starts the PRODUCER span `send {queue}` as a child of the current context and injects
    /// its context (and the current baggage) into the message headers.
    ///
    /// A message that already carries a valid creation context (a `traceparent` written
    /// earlier, e.g. by the code that built it or before a re-publish) keeps it: the headers are
    /// not overwritten, and the send span links to that context instead.
    pub fn start_send<T>(&self, msg: &mut TracedMessage<T>) -> SendSpan {
        self.start_send_with_parent(&Context::current(), msg)
    }

    /// Like [`start_send`](Self::start_send), with an explicit parent context.
    pub fn start_send_with_parent<T>(
        &self,
        parent: &Context,
        msg: &mut TracedMessage<T>,
    ) -> SendSpan {
        let telemetry = self.binding.get();
        let propagators = telemetry.propagators();
        // Headerless (a new message): no creation context to find, and no `Context` to build.
        let existing = if msg.headers().is_empty() {
            SpanContext::empty_context()
        } else {
            propagators
                .extract(msg.headers())
                .span()
                .span_context()
                .clone()
        };
        let cx = match telemetry.unsampled_child_in(parent) {
            // The parent did not sample and the sampler follows it: the span context the SDK
            // would make, without the SDK span it would discard.
            Some(sc) => parent.with_remote_span_context(sc),
            None => self.start(&telemetry, parent, &existing, msg),
        };
        if !existing.is_valid() {
            propagators.inject(&cx, msg.headers_mut());
        }
        let metrics = telemetry.metrics().map(|m| {
            MessageMetrics::start(
                m,
                RequestDuration::MessagingOperation,
                SEND,
                &self.system,
                msg.queue(),
            )
        });
        SendSpan { cx, metrics }
    }

    /// The send span started through the SDK, in `parent`.
    fn start<T>(
        &self,
        telemetry: &gorax_trace::TelemetryHandle,
        parent: &Context,
        existing: &SpanContext,
        msg: &TracedMessage<T>,
    ) -> Context {
        let tracer = crate::tracer(telemetry);
        // One builder, moved once; the attribute list is sized so that it never grows when the
        // span will likely record (the sampler still sees no attributes, as before).
        let builder = SpanBuilder {
            name: SEND.into(),
            span_kind: Some(SpanKind::Producer),
            attributes: likely_recorded(parent)
                .then(|| Vec::with_capacity(attributes::SEND_CAPACITY)),
            links: existing
                .is_valid()
                .then(|| vec![Link::with_context(existing.clone())]),
            ..SpanBuilder::default()
        };
        let mut span = tracer.build_with_context(builder, parent);
        let recording = span.is_recording();
        // Name and attributes go on the span itself, before it moves into the context (where
        // every call would lock its mutex and go through a boxed trait object).
        if recording {
            span.update_name(attributes::span_name(SEND, msg.queue()));
            span.set_attributes(attributes::message_attributes(
                self.system.clone(),
                SEND,
                msg,
            ));
        }
        context_of(parent, span)
    }
}

/// Whether a span started under `parent` will likely record: a new trace, or a sampled parent.
pub(crate) fn likely_recorded(parent: &Context) -> bool {
    let span = parent.span();
    let sc = span.span_context();
    !sc.is_valid() || sc.is_sampled()
}

/// `parent` with `span`. A span that does not record holds nothing but its context (every
/// write to it is a no-op, ending it does nothing): the context then carries just that, with no
/// boxed span and no mutex.
pub(crate) fn context_of(parent: &Context, span: SdkSpan) -> Context {
    if span.is_recording() {
        parent.with_span(span)
    } else {
        parent.with_remote_span_context(span.span_context().clone())
    }
}

/// A PRODUCER span in progress, from [`ProducerTracer::start_send`]. End it with
/// [`end`](Self::end), [`end_with_error`](Self::end_with_error) or [`finish`](Self::finish);
/// dropping it ends it too.
#[derive(Debug)]
#[must_use = "the span measures the send: end it when the broker has answered"]
pub struct SendSpan {
    cx: Context,
    metrics: Option<MessageMetrics>,
}

impl SendSpan {
    /// The context holding the span (make it current around the publish call if the broker
    /// client itself makes spans).
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Records the id the broker assigned (`messaging.message.id`, `queue.message_id`).
    pub fn record_message_id(&self, id: &str) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attributes(attributes::message_id_attributes(id));
        }
    }

    /// Adds attributes to the span (e.g. `messaging.message.body.size`).
    pub fn set_attributes(&self, attrs: impl IntoIterator<Item = KeyValue>) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attributes(attrs);
        }
    }

    /// Ends the span: the send succeeded.
    pub fn end(mut self) {
        self.measure(None);
        self.cx.span().end();
    }

    /// Ends the span with status Error, `error.type` and an `exception` event.
    pub fn end_with_error<E: std::fmt::Display + ?Sized>(mut self, error: &E) {
        self.measure(Some("_OTHER"));
        let span = self.cx.span();
        attributes::record_send_error(&span, error);
        span.end();
    }

    fn measure(&mut self, error_type: Option<&'static str>) {
        if let Some(m) = self.metrics.take() {
            m.finish(error_type, self.cx.span().span_context());
        }
    }

    /// Ends the span as `result` says.
    pub fn finish<R, E: std::fmt::Display>(self, result: &Result<R, E>) {
        match result {
            Ok(_) => self.end(),
            Err(e) => self.end_with_error(e),
        }
    }
}

impl Drop for SendSpan {
    fn drop(&mut self) {
        self.measure(None);
        self.cx.span().end();
    }
}

/// One producer contract for every broker (the in-process queue, Redis Streams, SQS): each send
/// starts a PRODUCER span and injects its context into the message headers, and returns the
/// broker's message id.
///
/// - [`send`](Self::send) returns `Ok` only once the broker has the message. It never waits
///   without bound: a broker that cannot take the message within the producer's own bound (the
///   in-process queue's send timeout, Redis's reconnect timeout, the SQS client's timeouts)
///   gives an error that names the cause.
/// - [`try_send`](Self::try_send) does not wait for room: the in-process queue's full queue is
///   an error at once. A network broker has no local room to wait for: it sends as `send`.
/// - [`send_timeout`](Self::send_timeout) waits at most `wait` (for room, or for the broker's
///   answer; a network send cut off by it may or may not have reached the broker, and says so).
pub trait Producer<T> {
    /// The broker's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends `msg`, waiting within the producer's bound; `Ok(id)` once the broker has it.
    fn send(
        &self,
        msg: crate::TracedMessage<T>,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// Sends `msg` without waiting for room.
    fn try_send(
        &self,
        msg: crate::TracedMessage<T>,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// Sends `msg`, waiting at most `wait`.
    fn send_timeout(
        &self,
        msg: crate::TracedMessage<T>,
        wait: Duration,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;
}
