use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use gorax_trace::httpconv::ResponseHead;
use gorax_trace::rpcconv::grpc_status;
use gorax_trace::semconv;
use http::{HeaderMap, StatusCode};
use opentelemetry::trace::{SpanContext, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use pin_project_lite::pin_project;

use crate::config::Config;
use crate::metrics::RequestMetrics;
use gorax_trace::rpcconv::GrpcCall;

/// How a response body ended (the value of
/// [`GORAX_HTTP_RESPONSE_BODY_OUTCOME`](gorax_trace::semconv::GORAX_HTTP_RESPONSE_BODY_OUTCOME)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    Failed,
    Abandoned,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }
}

/// A request whose span ends with its response body: what ends its span and its measurement
/// then, and what is current while the body is polled. One per streamed response (boxed: a
/// response complete at its head carries none).
#[doc(hidden)]
pub struct BodyEnd {
    pub(crate) cx: Context,
    /// Entered while the body is polled (`Span::none()` without an interested subscriber).
    pub(crate) bridge: tracing::Span,
    pub(crate) recording: bool,
    pub(crate) metrics: Option<RequestMetrics>,
    pub(crate) config: Arc<Config>,
    pub(crate) status: StatusCode,
    /// gRPC mode, a call whose `grpc-status` comes in the trailers.
    pub(crate) in_trailers: bool,
    /// The failure classifier's verdict on the head (HTTP; `None` for gRPC in the trailers).
    pub(crate) head_error: Option<Value>,
    /// Whether a body dropped before its end is a failure (the body-outcome classifier's
    /// verdict on the head).
    pub(crate) abandon_fails: bool,
    /// `http.response.body.size` was recorded from the head.
    pub(crate) size_known: bool,
    /// When the head was returned (recording spans only: time to the first frame).
    pub(crate) head_at: Option<Instant>,
    pub(crate) first_frame: Option<f64>,
    pub(crate) bytes: u64,
    /// gRPC mode: the call.
    pub(crate) rpc: Option<Box<GrpcCall>>,
}

impl std::fmt::Debug for BodyEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyEnd").finish_non_exhaustive()
    }
}

impl BodyEnd {
    /// Ends the request: `trailers` when they arrived, `error` when the body failed.
    fn finish<E: std::fmt::Display>(
        self,
        outcome: Outcome,
        trailers: Option<&HeaderMap>,
        error: Option<&E>,
    ) {
        let none = HeaderMap::new();
        let headers = trailers.unwrap_or(&none);
        let span = self.cx.span();
        // The `error.type` of the span and of the measurement, and whether the span is an error.
        let mut error_type = if self.in_trailers {
            match error {
                Some(_) => None,
                // Dropped before its trailers: a cancelled call, not a server error (the RPC
                // conventions do not count CANCELLED as one).
                None if outcome == Outcome::Abandoned => None,
                None => {
                    let classify = match &self.rpc {
                        Some(rpc) => crate::rpc::classifier(rpc, &self.config),
                        None => &*self.config.classify,
                    };
                    classify.classify(&ResponseHead::new(self.status, headers))
                }
            }
        } else {
            self.head_error.clone()
        };
        let abandoned_error = outcome == Outcome::Abandoned
            && self.abandon_fails
            && !self.in_trailers
            && error_type.is_none();
        if abandoned_error {
            error_type = Some(semconv::ERROR_TYPE_RESPONSE_ABANDONED.into());
        }
        if self.recording {
            let mut attrs = Vec::with_capacity(5);
            // The stable RPC conventions only: the gRPC page's keys, no HTTP or body key.
            if self.rpc.as_deref().is_none_or(GrpcCall::http_attributes) {
                attrs.push(KeyValue::new(
                    semconv::GORAX_HTTP_RESPONSE_BODY_OUTCOME,
                    outcome.as_str(),
                ));
                if !self.size_known {
                    attrs.push(KeyValue::new(
                        semconv::HTTP_RESPONSE_BODY_SIZE,
                        i64::try_from(self.bytes).unwrap_or(i64::MAX),
                    ));
                }
                if let Some(seconds) = self.first_frame {
                    attrs.push(KeyValue::new(
                        semconv::GORAX_HTTP_RESPONSE_TIME_TO_FIRST_FRAME,
                        seconds,
                    ));
                }
            }
            if let Some(rpc) = self.rpc.as_deref().filter(|_| self.in_trailers) {
                crate::attributes::on_rpc_end(&span, rpc, grpc_status(headers));
            }
            match error {
                // gRPC mode (the status comes in trailers): the RPC exception's name.
                Some(error) if self.in_trailers => crate::attributes::on_grpc_error(&span, error),
                Some(error) => crate::attributes::on_error(&span, error),
                None if abandoned_error => {
                    attrs.push(KeyValue::new(
                        semconv::ERROR_TYPE,
                        semconv::ERROR_TYPE_RESPONSE_ABANDONED,
                    ));
                    span.set_status(Status::error(
                        "response body dropped before its end (client gone?)",
                    ));
                }
                None if self.in_trailers => {
                    if let Some(error_type) = &error_type {
                        attrs.push(KeyValue::new(semconv::ERROR_TYPE, error_type.clone()));
                        span.set_status(Status::error(""));
                    }
                }
                // The head's verdict was recorded with the head.
                None => {}
            }
            span.set_attributes(attrs);
            span.end();
        }
        if let Some(m) = self.metrics {
            if error.is_some() {
                error_type = Some("_OTHER".into());
            }
            let sc: &SpanContext = span.span_context();
            let headers = if self.in_trailers { headers } else { &none };
            m.finish(
                Some((self.status, headers)),
                error_type,
                sc,
                self.rpc.as_deref(),
            );
        }
    }
}

pin_project! {
    /// The response body of [`ServerTraceService`](crate::ServerTraceService) for a response
    /// whose span ends with its body: the inner body, unchanged, that ends the server span (and
    /// the request's measurement) at its last frame (trailers included), when it fails, or when
    /// it is dropped before its end, and makes the request's context current (and the request's
    /// `tracing` span entered) while it is polled.
    ///
    /// In gRPC mode every response has this type (a response complete at its head carries no
    /// span and costs nothing more). In HTTP mode it is boxed into the inner service's body type
    /// by [`SpanBody`] for streamed responses only.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // Boxed: only responses whose span ends with the body carry it.
        end: Option<Box<BodyEnd>>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(end) = this.project().end.take() {
                let _active = end.cx.clone().attach();
                end.finish::<std::convert::Infallible>(Outcome::Abandoned, None, None);
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, end: Option<Box<BodyEnd>>) -> Self {
        Self { inner, end }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> http_body::Body for ResponseBody<B>
where
    B: http_body::Body,
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        task: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(mut end) = this.end.take() else {
            return this.inner.poll_frame(task);
        };
        let polled = {
            let _active = end.cx.clone().attach();
            let _entered = end.bridge.enter();
            this.inner.as_mut().poll_frame(task)
        };
        let Poll::Ready(frame) = polled else {
            *this.end = Some(end);
            return Poll::Pending;
        };
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    end.bytes += bytes::Buf::remaining(data) as u64;
                    if end.first_frame.is_none()
                        && let Some(at) = end.head_at
                    {
                        end.first_frame = Some(at.elapsed().as_secs_f64());
                    }
                }
                if let Some(trailers) = f.trailers_ref() {
                    end.finish::<B::Error>(Outcome::Completed, Some(trailers), None);
                } else if this.inner.is_end_stream() {
                    end.finish::<B::Error>(Outcome::Completed, None, None);
                } else {
                    *this.end = Some(end);
                }
            }
            Some(Err(error)) => end.finish(Outcome::Failed, None, Some(error)),
            None => end.finish::<B::Error>(Outcome::Completed, None, None),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body type that HTTP mode can make end the server span while keeping its type:
/// a streamed response's body is wrapped in a [`ResponseBody`] and turned back into this type
/// (boxed), so a `Router` gets back the body type it gave (and boxes nothing again), and a
/// response complete at its head is not touched at all.
///
/// Implemented for axum's `Body` (feature `axum`) and http-body-util's `BoxBody` and
/// `UnsyncBoxBody`. An inner service with another body type: box its bodies (e.g.
/// `tower_http::map_response_body` with `BodyExt::boxed_unsync`), or implement this trait for
/// a boxed body type of yours.
pub trait SpanBody: http_body::Body + Sized {
    /// `body` as this type (e.g. boxed).
    fn from_traced(body: ResponseBody<Self>) -> Self;
}

#[cfg(feature = "axum")]
impl SpanBody for axum::body::Body {
    fn from_traced(body: ResponseBody<Self>) -> Self {
        Self::new(body)
    }
}

impl<D, E> SpanBody for http_body_util::combinators::UnsyncBoxBody<D, E>
where
    D: bytes::Buf + 'static,
    E: std::fmt::Display + 'static,
{
    fn from_traced(body: ResponseBody<Self>) -> Self {
        Self::new(body)
    }
}

impl<D, E> SpanBody for http_body_util::combinators::BoxBody<D, E>
where
    D: bytes::Buf + 'static,
    E: std::fmt::Display + 'static,
{
    fn from_traced(body: ResponseBody<Self>) -> Self {
        Self::new(body)
    }
}
