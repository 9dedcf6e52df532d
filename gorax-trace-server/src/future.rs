use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Instant;

use gorax_trace::httpconv::ResponseHead;
use gorax_trace::propagation::{RandomTraceId, Traceparent, with_random_flag};
use http::{HeaderValue, Response};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use pin_project_lite::pin_project;

use crate::attributes;
use crate::body::BodyEnd;
use crate::config::{Config, ResponseHeader, SpanEnd};
use crate::metrics::RequestMetrics;
use crate::mode::Http;
use crate::mode::sealed::Wraps;
use gorax_trace::rpcconv::GrpcCall;

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
    /// The request is a `CONNECT` (a 2xx answer is a tunnel or an HTTP/2 extended CONNECT
    /// upgrade: its span ends at the head).
    pub(crate) connect: bool,
    /// gRPC mode: the call.
    pub(crate) rpc: Option<Box<GrpcCall>>,
}

pin_project! {
    /// The response future of [`ServerTraceService`](crate::ServerTraceService).
    ///
    /// The request's context is current while the inner future is polled. The server span ends
    /// when the inner service returns an error or a response whose span ends at its head (see
    /// [`SpanEnd`](crate::SpanEnd)); otherwise the response's body ends it.
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

/// Whether the span of `response` ends with its body: never for an upgrade (101, a 2xx answer
/// to `CONNECT`) or a body complete at the head; else the response's own [`SpanEnd`], else the
/// layer's.
#[inline]
fn ends_with_body<B: http_body::Body>(
    response: &Response<B>,
    config: &Config,
    connect: bool,
) -> bool {
    let body = response.body();
    if body.is_end_stream()
        || body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= SpanEnd::SENT_WITH_HEAD)
    {
        return false;
    }
    let status = response.status();
    if status == http::StatusCode::SWITCHING_PROTOCOLS || (connect && status.is_success()) {
        return false;
    }
    let end = match response.extensions().get::<SpanEnd>() {
        Some(end) => *end,
        None => match &config.span_end_by {
            Some(by) => by(&ResponseHead::new(status, response.headers())),
            None => config.span_end,
        },
    };
    end == SpanEnd::Body
}

impl<F, M, B, E> Future for ResponseFuture<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: std::fmt::Display,
    M: Wraps<B>,
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
            return Poll::Ready(result.map(|r| r.map(|b| M::wrap(b, None))));
        };
        let mut body_end = None;
        let span = this.cx.span();
        let recording = traced.recording;
        match &mut result {
            Ok(response) => {
                // gRPC with a body: the status comes in the trailers, and the call ends there.
                let in_trailers = M::TRAILERS
                    && traced.config.grpc
                    && response.status() == http::StatusCode::OK
                    && gorax_trace::rpcconv::grpc_status(response.headers()).is_none();
                let with_body =
                    in_trailers || ends_with_body(response, &traced.config, traced.connect);
                // Classified once, for the span and the metrics.
                let error_type = if !in_trailers && (recording || traced.metrics.is_some()) {
                    let classify = match &traced.rpc {
                        Some(rpc) => crate::rpc::classifier(rpc, &traced.config),
                        None => &*traced.config.classify,
                    };
                    classify.classify(&ResponseHead::new(response.status(), response.headers()))
                } else {
                    None
                };
                let mut size_known = false;
                if recording {
                    size_known = attributes::on_response(
                        &span,
                        response,
                        &traced.config,
                        traced.dup,
                        traced.limit,
                        error_type.clone(),
                        traced.rpc.as_deref().map(|rpc| (rpc, !in_trailers)),
                    );
                }
                if let Some(hook) = &traced.config.on_response {
                    hook.on_response(
                        &ResponseHead::new(response.status(), response.headers()),
                        &span,
                    );
                }
                let abandon_fails = with_body
                    && !in_trailers
                    && traced
                        .config
                        .body_outcome
                        .abandoned_is_failure(&ResponseHead::new(
                            response.status(),
                            response.headers(),
                        ));
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
                if with_body {
                    body_end = Some(Box::new(BodyEnd {
                        cx: this.cx.clone(),
                        bridge: this.bridge.clone(),
                        recording,
                        metrics: traced.metrics.take(),
                        config: traced.config.clone(),
                        status: response.status(),
                        in_trailers,
                        head_error: error_type,
                        abandon_fails,
                        size_known,
                        head_at: recording.then(Instant::now),
                        first_frame: None,
                        bytes: 0,
                        rpc: traced.rpc.take(),
                    }));
                } else if let Some(m) = traced.metrics.take() {
                    m.finish(
                        Some((response.status(), response.headers())),
                        error_type,
                        span.span_context(),
                        traced.rpc.as_deref(),
                    );
                }
            }
            Err(error) => {
                if recording {
                    attributes::on_error(&span, error);
                    if let Some(rpc) = &traced.rpc {
                        attributes::on_rpc_end(&span, rpc, None);
                    }
                }
                if let Some(m) = traced.metrics.take() {
                    m.finish(
                        None,
                        Some("_OTHER".into()),
                        span.span_context(),
                        traced.rpc.as_deref(),
                    );
                }
            }
        }
        // Ending a span that does not record would only read the clock.
        if recording && body_end.is_none() {
            span.end();
        }
        *this.traced = None;
        Poll::Ready(result.map(|r| r.map(|b| M::wrap(b, body_end))))
    }
}
