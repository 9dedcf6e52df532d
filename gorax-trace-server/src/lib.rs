//! Inbound HTTP tracing for tower and axum services: a [`ServerTraceLayer`] that continues the
//! caller's W3C trace and records one OpenTelemetry SERVER span per request.
//!
//! - **Context**: `traceparent`, `tracestate` and `baggage` are extracted through
//!   [`gorax_trace::propagation`] (an invalid `traceparent` starts a new trace). The server
//!   span's context is current while the inner service is called and while its future is
//!   polled, so `#[instrument]` spans (through tracing-opentelemetry), [`gorax_trace::span`]
//!   helpers and outgoing calls made by the handler become its children.
//! - **Name and attributes**: `{method} {route}` with axum's `MatchedPath` (feature `axum`), the
//!   method alone without a route, never the raw path. Stable HTTP attributes; the legacy names
//!   too in `http/dup` mode. Nothing is formatted when the span is not recording.
//! - **Status**: 5xx is an error, 4xx is not; an `Err` from the inner service is an error with
//!   `error.type` set to the error's type name.
//! - **Span end**: when the response body ends (its last frame, trailers included, an error, or
//!   dropped before its end), with `gorax.http.response.body.outcome`, the bytes sent and the
//!   time to the first frame; the request's context is current while the body is polled. Plain
//!   responses (complete at the head) and upgrades (`101`, `CONNECT` 2xx) end at the head; see
//!   [`SpanEnd`] to keep the head for every response, and [`ClassifyBodyOutcome`] for which
//!   abandoned bodies are errors (not a `text/event-stream` by default).
//! - **gRPC** (tonic): [`ServerTraceLayer::grpc`] names spans `{package.Service}/{Method}`,
//!   records `rpc.*` attributes and judges the outcome by `grpc-status`.
//! - **Edge policy, noise control, response header, header capture**: see the `with_*` methods of
//!   [`ServerTraceLayer`].
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use gorax_trace_server::{ResponseHeader, ServerTraceLayer};
//!
//! let layer = ServerTraceLayer::new()
//!     .with_filter(|req| req.uri.path() != "/health")
//!     .with_response_header(ResponseHeader::TraceResponse);
//! let app: Router = Router::new()
//!     .route("/api/v1/workflows/{id}/execute", post(|| async { "ok" }))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(layer);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The scopes this crate's spans are recorded under.
static SCOPES: gorax_trace::AdapterScopes =
    gorax_trace::AdapterScopes::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));

mod attributes;
mod body;
mod config;
mod future;
mod layer;
mod metrics;
mod mode;
mod request;
#[cfg(feature = "request-id")]
mod request_id;
mod rpc;
mod service;

pub use body::{ResponseBody, SpanBody};
pub use config::{ClassifyBodyOutcome, DefaultBodyOutcome, RequestHead, ResponseHeader, SpanEnd};
pub use future::ResponseFuture;
pub use gorax_trace::propagation::BaggagePolicy;
pub use layer::ServerTraceLayer;
#[cfg(feature = "prometheus")]
pub use metrics::prometheus_route;
pub use mode::{Grpc, Http, Mode};
#[cfg(feature = "request-id")]
pub use request_id::TraceIdRequestId;
pub use service::ServerTraceService;

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

// The README, compiled as a doctest (its example must build).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
