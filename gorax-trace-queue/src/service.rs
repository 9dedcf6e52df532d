//! The consumer [`Service`].

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::Context;
use opentelemetry::trace::{
    Link, Span as _, SpanBuilder, SpanContext, SpanKind, TraceContextExt, Tracer,
};
use tower_service::Service;

use crate::TracedMessage;
use crate::attributes::{self, PROCESS};
use crate::future::ConsumerFuture;
use crate::layer::{Config, ParentMode};
use crate::metrics::MessageMetrics;
use crate::producer::{context_of, likely_recorded};
use gorax_trace::metrics::RequestDuration;

/// The [`Service`] made by [`ConsumerTraceLayer`](crate::ConsumerTraceLayer).
#[derive(Clone)]
pub struct ConsumerTraceService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for ConsumerTraceService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerTraceService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> ConsumerTraceService<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T> Service<TracedMessage<T>> for ConsumerTraceService<S>
where
    S: Service<TracedMessage<T>>,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ConsumerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, msg: TracedMessage<T>) -> Self::Future {
        let config = &*self.config;
        let telemetry = config.binding.get();
        // The creation context's span context and baggage apart: its `Context` is built only
        // when the SDK starts the span in it.
        let (creation_sc, creation) = telemetry
            .propagators()
            .extract_parts(&Context::new(), msg.headers());
        let creation_sc = creation_sc.unwrap_or_else(SpanContext::empty_context);
        let cx = if matches!(config.parent, ParentMode::Parent) && creation_sc.is_valid() {
            match telemetry.unsampled_child(&creation_sc) {
                // The producer did not sample and the sampler follows it: the span context the
                // SDK would make, without the SDK span it would discard.
                Some(child) => creation.with_remote_span_context(child),
                None => {
                    let parent = creation.with_remote_span_context(creation_sc.clone());
                    start(&telemetry, config, &parent, creation_sc, &msg)
                }
            }
        } else {
            let parent = Context::current();
            match telemetry.unsampled_child_in(&parent) {
                Some(child) => parent.with_remote_span_context(child),
                None => start(&telemetry, config, &parent, creation_sc, &msg),
            }
        };
        let measured = telemetry.metrics().map(|m| {
            let system = msg.system().unwrap_or(&config.system);
            MessageMetrics::start(
                m,
                RequestDuration::MessagingProcess,
                PROCESS,
                system,
                msg.queue(),
            )
        });
        let future = {
            let _active = cx.clone().attach();
            call_recording_panic(&mut self.inner, msg, &cx)
        };
        ConsumerFuture::new(future, cx, measured)
    }
}

/// The process span of `msg` started through the SDK, in `parent`, linked to the message's
/// creation context.
fn start<T>(
    telemetry: &gorax_trace::TelemetryHandle,
    config: &Config,
    parent: &Context,
    creation_sc: SpanContext,
    msg: &TracedMessage<T>,
) -> Context {
    let tracer = crate::tracer(telemetry);
    let system = msg.system_name().unwrap_or(&config.system);
    let builder = SpanBuilder {
        name: PROCESS.into(),
        span_kind: Some(SpanKind::Consumer),
        attributes: likely_recorded(parent)
            .then(|| Vec::with_capacity(attributes::PROCESS_CAPACITY)),
        links: creation_sc
            .is_valid()
            .then(|| vec![Link::with_context(creation_sc)]),
        ..SpanBuilder::default()
    };
    let mut span = tracer.build_with_context(builder, parent);
    // Name and attributes on the span itself, before it moves into the context.
    if span.is_recording() {
        span.update_name(attributes::span_name(PROCESS, msg.queue()));
        span.set_attributes(attributes::message_attributes(system.clone(), PROCESS, msg));
    }
    context_of(parent, span)
}

/// `inner.call(request)`; a panic in the call itself (a `service_fn` closure runs there) ends
/// the span as an error of type `panic` before it unwinds on.
fn call_recording_panic<S: Service<R>, R>(inner: &mut S, request: R, cx: &Context) -> S::Future {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.call(request))) {
        Ok(future) => future,
        Err(panic) => {
            let span = cx.span();
            crate::attributes::record_panic(&span);
            span.end();
            std::panic::resume_unwind(panic)
        }
    }
}

/// The batch form: one CONSUMER span `process {queue}` for the whole batch, with a link to each
/// message's creation context and `messaging.batch.message_count`. Its parent is the current
/// context (a batch has no single creation context to continue), whatever the [`ParentMode`].
impl<S, T> Service<Vec<TracedMessage<T>>> for ConsumerTraceService<S>
where
    S: Service<Vec<TracedMessage<T>>>,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ConsumerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, batch: Vec<TracedMessage<T>>) -> Self::Future {
        let config = &*self.config;
        let telemetry = config.binding.get();
        let tracer = crate::tracer(&telemetry);
        let propagators = telemetry.propagators();
        let links: Vec<Link> = batch
            .iter()
            .map(|msg| {
                propagators
                    .extract(msg.headers())
                    .span()
                    .span_context()
                    .clone()
            })
            .filter(|sc| sc.is_valid())
            .map(Link::with_context)
            .collect();
        let parent = Context::current();
        let span = tracer
            .span_builder(PROCESS)
            .with_kind(SpanKind::Consumer)
            .with_links(links)
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        let span = cx.span();
        if span.is_recording() {
            let system = batch
                .first()
                .and_then(TracedMessage::system)
                .unwrap_or(&config.system);
            span.set_attributes(attributes::batch_attributes(system, &batch));
            if let Some(first) = batch.first() {
                span.update_name(attributes::span_name(PROCESS, first.queue()));
            }
        }
        let measured = match (telemetry.metrics(), batch.first()) {
            (Some(m), Some(first)) => Some(MessageMetrics::start(
                m,
                RequestDuration::MessagingProcess,
                PROCESS,
                first.system().unwrap_or(&config.system),
                first.queue(),
            )),
            _ => None,
        };
        let future = {
            let _active = cx.clone().attach();
            call_recording_panic(&mut self.inner, batch, &cx)
        };
        ConsumerFuture::new(future, cx, measured)
    }
}
