//! Request ids from the trace (feature `request-id`): tower-http's
//! [`SetRequestIdLayer`](tower_http::request_id::SetRequestIdLayer) with [`TraceIdRequestId`]
//! sets `x-request-id` to the request's trace id, so logs, responses and traces share one id.
//!
//! Put it *inside* the [`ServerTraceLayer`](crate::ServerTraceLayer) (added before it with
//! axum's `.layer`, which wraps outward), so the server span's context is current when the id is
//! made; tower-http's `PropagateRequestIdLayer` copies it to the response. A request that
//! already has an id keeps it (tower-http's rule).
//!
//! ```
//! use axum::{Router, routing::get};
//! use gorax_trace_server::{ServerTraceLayer, TraceIdRequestId};
//! use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
//!
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(PropagateRequestIdLayer::x_request_id())
//!     .layer(SetRequestIdLayer::x_request_id(TraceIdRequestId))
//!     .layer(ServerTraceLayer::new());
//! ```

use gorax_trace::propagation::Traceparent;
use http::{HeaderValue, Request};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use tower_http::request_id::{MakeRequestId, RequestId};

/// A [`MakeRequestId`] giving the trace id of the current context (32 lowercase hex digits), or
/// no id when there is no valid span (tower-http then sets none).
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceIdRequestId;

impl MakeRequestId for TraceIdRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        Context::map_current(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            if !sc.is_valid() {
                return None;
            }
            let tp = Traceparent::new(sc);
            HeaderValue::from_str(tp.trace_id_hex())
                .ok()
                .map(RequestId::new)
        })
    }
}
