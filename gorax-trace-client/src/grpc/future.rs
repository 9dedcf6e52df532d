//! [`GrpcResponseFuture`]: ends a call's span at a trailers-only answer or a transport error,
//! else hands it to the response body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use gorax_trace::rpcconv::{GrpcCall, grpc_status};
use http::Response;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use pin_project_lite::pin_project;

use super::body::GrpcBody;
use super::outcome::{record_failure, record_status};
use crate::metrics::RpcMetrics;

pin_project! {
    /// The response future of [`GrpcClientService`].
    pub struct GrpcResponseFuture<F> {
        #[pin]
        pub(crate) inner: F,
        pub(crate) cx: Option<Context>,
        pub(crate) metrics: Option<RpcMetrics>,
        pub(crate) call: Option<GrpcCall>,
    }
}

impl<F> std::fmt::Debug for GrpcResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GrpcResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<GrpcBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.cx {
            Some(cx) => {
                let _active = cx.clone().attach();
                ready!(this.inner.poll(task))
            }
            None => ready!(this.inner.poll(task)),
        };
        let cx = this.cx.take();
        let metrics = this.metrics.take();
        let cx = cx.filter(|cx| cx.span().is_recording());
        let call = this.call.take();
        let (Some(call), true) = (call, cx.is_some() || metrics.is_some()) else {
            return Poll::Ready(result.map(|r| r.map(GrpcBody::done)));
        };
        let span_context = |cx: &Option<Context>| {
            cx.as_ref().map_or_else(SpanContext::empty_context, |cx| {
                cx.span().span_context().clone()
            })
        };
        match result {
            Ok(response) => {
                let status = response.status();
                // Trailers-only (status in the headers) or not gRPC at all: the call is over.
                let over =
                    status != http::StatusCode::OK || grpc_status(response.headers()).is_some();
                if over {
                    if let Some(cx) = &cx {
                        let span = cx.span();
                        record_status(&span, &call, status, response.headers());
                        span.end();
                    }
                    if let Some(m) = metrics {
                        m.finish(
                            Some((status, response.headers())),
                            &call,
                            &span_context(&cx),
                        );
                    }
                    Poll::Ready(Ok(response.map(GrpcBody::done)))
                } else {
                    Poll::Ready(Ok(response.map(|inner| GrpcBody {
                        inner,
                        cx,
                        metrics,
                        call: Some(call),
                    })))
                }
            }
            Err(error) => {
                if let Some(cx) = &cx {
                    let span = cx.span();
                    record_failure(&span, &call, &error);
                    span.end();
                }
                if let Some(m) = metrics {
                    m.finish_failed(
                        gorax_trace::span::error_type::<E>(),
                        &call,
                        &span_context(&cx),
                    );
                }
                Poll::Ready(Err(error))
            }
        }
    }
}
