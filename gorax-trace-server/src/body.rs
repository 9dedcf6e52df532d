use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use gorax_trace::httpconv::{ResponseHead, grpc_status};
use gorax_trace::semconv;
use http::{HeaderMap, StatusCode};
use opentelemetry::trace::{SpanContext, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;

use crate::layer::Config;
use crate::metrics::RequestMetrics;

/// A gRPC call whose status comes in the trailers: what ends its span and its measurement then.
#[doc(hidden)]
pub struct Pending {
    pub(crate) cx: Context,
    pub(crate) recording: bool,
    pub(crate) metrics: Option<RequestMetrics>,
    pub(crate) config: Arc<Config>,
    pub(crate) status: StatusCode,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Pending {
    /// Ends the call: `trailers` when they arrived, `error` when the body failed (neither: the
    /// body ended or was dropped without trailers, so there is no `grpc-status` to record).
    fn finish<E: std::fmt::Display>(self, trailers: Option<&HeaderMap>, error: Option<&E>) {
        let none = HeaderMap::new();
        let headers = trailers.unwrap_or(&none);
        let error_type = match error {
            Some(_) => Some("_OTHER".into()),
            None => self
                .config
                .classify
                .classify(&ResponseHead::new(self.status, headers)),
        };
        let span = self.cx.span();
        if self.recording {
            let mut attrs = Vec::with_capacity(2);
            if let Some(code) = grpc_status(headers) {
                attrs.push(KeyValue::new(
                    semconv::RPC_GRPC_STATUS_CODE,
                    i64::from(code),
                ));
            }
            match error {
                Some(error) => crate::attributes::on_grpc_error(&span, error),
                None => {
                    if let Some(error_type) = &error_type {
                        attrs.push(KeyValue::new(semconv::ERROR_TYPE, error_type.clone()));
                        span.set_status(Status::error(""));
                    }
                }
            }
            span.set_attributes(attrs);
            span.end();
        }
        if let Some(m) = self.metrics {
            let sc: &SpanContext = span.span_context();
            m.finish(Some((self.status, headers)), error_type, sc);
        }
    }
}

pin_project! {
    /// The response body of [`ServerTraceService`](crate::ServerTraceService): the inner body,
    /// unchanged. In gRPC mode, a response that starts a body carries its `grpc-status` in the
    /// trailers: the server span (and the call's measurement) then ends when the trailers
    /// arrive, or when the body ends, fails or is dropped before them.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // Boxed: only gRPC responses with a body carry it.
        pending: Option<Box<Pending>>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.finish::<std::convert::Infallible>(None, None);
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, pending: Option<Box<Pending>>) -> Self {
        Self { inner, pending }
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
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(task));
        if this.pending.is_none() {
            return Poll::Ready(frame);
        }
        match &frame {
            Some(Ok(f)) => {
                if let Some(trailers) = f.trailers_ref()
                    && let Some(p) = this.pending.take()
                {
                    p.finish::<B::Error>(Some(trailers), None);
                }
            }
            Some(Err(error)) => {
                if let Some(p) = this.pending.take() {
                    p.finish(None, Some(error));
                }
            }
            None => {
                if let Some(p) = this.pending.take() {
                    p.finish::<B::Error>(None, None);
                }
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
