use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use gorax_trace::httpconv::ResponseHead;
use gorax_trace::propagation::{RandomTraceId, Traceparent, with_random_flag};
use http::{HeaderValue, Response};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use pin_project_lite::pin_project;

use crate::attributes;
use crate::body::Pending;
use crate::layer::{Config, Http, Mode, ResponseHeader};
use crate::metrics::RequestMetrics;

/// W3C Trace Context Level 2 response header.
const TRACERESPONSE: http::HeaderName = http::HeaderName::from_static("traceresponse");

/// What the future needs to finish a traced request.
pub(crate) struct Traced {
    pub(crate) config: Arc<Config>,
    /// Legacy attribute names too (resolved when the request started).
    pub(crate) dup: bool,
    /// Attribute value length limit (resolved when the request started).
    pub(crate) limit: usize,
    /// The request's RED measurement, when the handle has metrics.
    pub(crate) metrics: Option<RequestMetrics>,
    /// Whether the span recorded when it started (saves a lock of its mutex to ask again; a
    /// span ended early by the handler ignores what is written to it either way).
    pub(crate) recording: bool,
}

pin_project! {
    /// The response future of [`ServerTraceService`](crate::ServerTraceService).
    ///
    /// The request's context is current while the inner future is polled. The server span ends
    /// when the inner service returns the response head (or an error): it measures the handler,
    /// not the streaming of the body that follows.
    pub struct ResponseFuture<F, M = Http> {
        #[pin]
        inner: F,
        mode: PhantomData<fn() -> M>,
        cx: Context,
        // Entered while polling (after `cx` is attached): `tracing` code in the handler sees the
        // server span as `Span::current()`. `Span::none()` without an interested subscriber.
        bridge: tracing::Span,
        traced: Option<Traced>,
    }
}

impl<F, M> std::fmt::Debug for ResponseFuture<F, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, M> ResponseFuture<F, M> {
    #[inline]
    pub(crate) fn new(
        inner: F,
        cx: Context,
        bridge: tracing::Span,
        traced: Option<Traced>,
    ) -> Self {
        Self {
            inner,
            mode: PhantomData,
            cx,
            bridge,
            traced,
        }
    }
}

impl<F, M, B, E> Future for ResponseFuture<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: std::fmt::Display,
    M: Mode,
{
    type Output = Result<Response<M::Body<B>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = {
            let _active = this.cx.clone().attach();
            let _entered = this.bridge.enter();
            ready!(this.inner.poll(task))
        };
        // Read in place (not moved out) and cleared at the end.
        let Some(traced) = this.traced.as_mut() else {
            return Poll::Ready(result.map(|r| r.map(|b| M::body(b, None))));
        };
        let mut pending = None;
        let span = this.cx.span();
        let recording = traced.recording;
        match &mut result {
            Ok(response) => {
                // gRPC with a body: the status comes in the trailers, and the call ends there.
                let in_trailers = M::TRAILERS
                    && traced.config.grpc
                    && response.status() == http::StatusCode::OK
                    && gorax_trace::httpconv::grpc_status(response.headers()).is_none();
                // Classified once, for the span and the metrics.
                let error_type = if !in_trailers && (recording || traced.metrics.is_some()) {
                    traced
                        .config
                        .classify
                        .classify(&ResponseHead::new(response.status(), response.headers()))
                } else {
                    None
                };
                if recording {
                    attributes::on_response(
                        &span,
                        response,
                        &traced.config,
                        traced.dup,
                        traced.limit,
                        error_type.clone(),
                    );
                }
                if let Some(hook) = &traced.config.on_response {
                    hook.on_response(
                        &ResponseHead::new(response.status(), response.headers()),
                        &span,
                    );
                }
                let headers = response.headers_mut();
                match &traced.config.response_header {
                    ResponseHeader::None => {}
                    ResponseHeader::TraceResponse => {
                        let sc = span.span_context();
                        let random = this
                            .cx
                            .get::<RandomTraceId>()
                            .is_some_and(|r| r.0 == sc.trace_id());
                        headers.insert(
                            TRACERESPONSE,
                            Traceparent::new(&with_random_flag(sc, random)).to_header_value(),
                        );
                    }
                    ResponseHeader::TraceId(name) => {
                        let tp = Traceparent::new(span.span_context());
                        if let Ok(v) = HeaderValue::from_str(tp.trace_id_hex()) {
                            headers.insert(name.clone(), v);
                        }
                    }
                }
                if in_trailers {
                    if recording || traced.metrics.is_some() {
                        pending = Some(Box::new(Pending {
                            cx: this.cx.clone(),
                            recording,
                            metrics: traced.metrics.take(),
                            config: traced.config.clone(),
                            status: response.status(),
                        }));
                    }
                } else if let Some(m) = traced.metrics.take() {
                    m.finish(
                        Some((response.status(), response.headers())),
                        error_type,
                        span.span_context(),
                    );
                }
            }
            Err(error) => {
                if recording {
                    attributes::on_error(&span, error);
                }
                if let Some(m) = traced.metrics.take() {
                    m.finish(None, Some("_OTHER".into()), span.span_context());
                }
            }
        }
        // Ending a span that does not record would only read the clock.
        if recording && pending.is_none() {
            span.end();
        }
        *this.traced = None;
        Poll::Ready(result.map(|r| r.map(|b| M::body(b, pending))))
    }
}
