//! [`ClientTraceMiddleware::with_response_body_in_span`](crate::ClientTraceMiddleware::with_response_body_in_span):
//! the client span (and `http.client.request.duration`) covers the response body.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Instant, SystemTime};

use gorax_trace::semconv;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use reqwest::{Response, ResponseBuilderExt as _};

use crate::metrics::RequestMetrics;

/// What ends the span and the measurement when the body ends.
struct End {
    cx: Context,
    recording: bool,
    /// The measurement, with the status, protocol version and `error.type` of the head.
    metrics: Option<(RequestMetrics, i64, &'static str, Option<Value>)>,
    /// When the last frame was read (the end of a body dropped unread).
    last: Option<(SystemTime, Instant)>,
    bytes: u64,
}

impl End {
    fn finish(
        self,
        outcome: &'static str,
        error: Option<&reqwest::Error>,
        at: Option<(SystemTime, Instant)>,
    ) {
        let span = self.cx.span();
        let mut error_type = None;
        if self.recording {
            let mut attrs = vec![
                KeyValue::new(semconv::GORAX_HTTP_RESPONSE_BODY_OUTCOME, outcome),
                KeyValue::new(
                    semconv::HTTP_RESPONSE_BODY_SIZE,
                    i64::try_from(self.bytes).unwrap_or(i64::MAX),
                ),
            ];
            if let Some(error) = error {
                error_type = Some(Value::from("body"));
                attrs.push(KeyValue::new(semconv::ERROR_TYPE, "body"));
                span.set_status(Status::error(
                    gorax_trace::httpconv::redact_text(&error.to_string()).into_owned(),
                ));
            }
            span.set_attributes(attrs);
            match at {
                Some((time, _)) => span.end_with_timestamp(time),
                None => span.end(),
            }
        } else if error.is_some() {
            error_type = Some(Value::from("body"));
        }
        if let Some((m, status, version, head_error)) = self.metrics {
            let end = at.map_or_else(Instant::now, |(_, i)| i);
            m.finish_at(
                end,
                status,
                version,
                error_type.or(head_error),
                span.span_context(),
            );
        }
    }
}

/// The response body, ending the client span at its end.
struct Traced {
    inner: reqwest::Body,
    end: Option<End>,
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            // Dropped unread: the span ends at the last frame read (at the head if none was).
            let at = end.last;
            end.finish("abandoned", None, at);
        }
    }
}

impl http_body::Body for Traced {
    type Data = bytes::Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        task: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(task));
        let Some(end) = this.end.as_mut() else {
            return Poll::Ready(frame);
        };
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    end.bytes += data.len() as u64;
                }
                end.last = Some((SystemTime::now(), Instant::now()));
                if (f.is_trailers() || http_body::Body::is_end_stream(&this.inner))
                    && let Some(end) = this.end.take()
                {
                    end.finish("completed", None, None);
                }
            }
            Some(Err(error)) => {
                if let Some(end) = this.end.take() {
                    end.finish("failed", Some(error), None);
                }
            }
            None => {
                if let Some(end) = this.end.take() {
                    end.finish("completed", None, None);
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

/// `res` with a body that ends the span in `cx` (and the measurement) when it ends.
pub(crate) fn in_span(
    res: Response,
    cx: Context,
    metrics: Option<RequestMetrics>,
    head_error: Option<Value>,
) -> Response {
    let recording = cx.span().is_recording();
    let status = i64::from(res.status().as_u16());
    let version = gorax_trace::httpconv::protocol_version(res.version());
    let url = res.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(res).into_parts();
    // The conversion back takes the URL from the extensions.
    if let Ok(with_url) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(with_url.into_parts().0.extensions);
    }
    let body = Traced {
        inner: body,
        end: Some(End {
            cx,
            recording,
            metrics: metrics.map(|m| (m, status, version, head_error)),
            last: None,
            bytes: 0,
        }),
    };
    Response::from(http::Response::from_parts(parts, reqwest::Body::wrap(body)))
}
