//! [`GrpcBody`]: ends a call's span when its trailers arrive, or the body ends or fails.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use gorax_trace::rpcconv::GrpcCall;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use pin_project_lite::pin_project;

use super::outcome::{record_failure, record_status};
use crate::metrics::RpcMetrics;

pin_project! {
    /// The response body of [`GrpcClientService`]: the inner body, unchanged; ends the client
    /// span when the trailers (with `grpc-status`) arrive, the body ends or fails.
    pub struct GrpcBody<B> {
        #[pin]
        pub(crate) inner: B,
        // The call's context while its span waits for the trailers.
        pub(crate) cx: Option<Context>,
        // The call's measurement while it waits for the trailers.
        pub(crate) metrics: Option<RpcMetrics>,
        // The call, while its span or measurement waits for the trailers.
        pub(crate) call: Option<GrpcCall>,
    }
}

impl<B> std::fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBody").finish_non_exhaustive()
    }
}

impl<B> GrpcBody<B> {
    /// A body whose call is already recorded.
    pub(crate) fn done(inner: B) -> Self {
        Self {
            inner,
            cx: None,
            metrics: None,
            call: None,
        }
    }

    /// Unwraps the inner body (the span, if still open, ends without a status code).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> http_body::Body for GrpcBody<B>
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
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(task));
        let finished = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().is_some(),
            Some(Err(_)) | None => true,
        };
        if !finished {
            return Poll::Ready(frame);
        }
        let trailers = match &frame {
            Some(Ok(frame)) => frame.trailers_ref(),
            _ => None,
        };
        let cx = this.cx.take();
        let Some(call) = this.call.take() else {
            return Poll::Ready(frame);
        };
        if let Some(cx) = &cx {
            let span = cx.span();
            match &frame {
                Some(Ok(_)) => {
                    if let Some(trailers) = trailers {
                        record_status(&span, &call, http::StatusCode::OK, trailers);
                    }
                }
                Some(Err(error)) => record_failure(&span, &call, error),
                // Ended without trailers: no status (judged as an HTTP 200 below).
                None => {
                    let mut attrs = Vec::with_capacity(2);
                    let rename = call.end_attributes(None, &mut attrs);
                    span.set_attributes(attrs);
                    if let Some(name) = rename {
                        span.update_name(name);
                    }
                }
            }
            span.end();
        }
        if let Some(m) = this.metrics.take() {
            let sc = cx.as_ref().map_or_else(SpanContext::empty_context, |cx| {
                cx.span().span_context().clone()
            });
            // A body that ended without trailers has no grpc-status: judged as an HTTP 200.
            let none = http::HeaderMap::new();
            match (&frame, trailers) {
                (_, Some(t)) => m.finish(Some((http::StatusCode::OK, t)), &call, &sc),
                (None, None) => m.finish(Some((http::StatusCode::OK, &none)), &call, &sc),
                _ => m.finish_failed(gorax_trace::span::error_type::<B::Error>(), &call, &sc),
            }
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
