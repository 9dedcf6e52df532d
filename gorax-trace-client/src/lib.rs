//! Outbound HTTP tracing for reqwest: a [reqwest-middleware](reqwest_middleware) middleware,
//! [`ClientTraceMiddleware`], that records one OpenTelemetry CLIENT span per request and passes
//! the W3C trace context on to the server it calls.
//!
//! - **Parent**: the current context when the request is sent (a gorax server span, a
//!   `tracing` span bridged by tracing-opentelemetry, or any OpenTelemetry context).
//! - **Propagation never stops**: every request carries its client span's own new span id in
//!   `traceparent`, also when the span is not sampled or tracing is disabled, through
//!   [`gorax_trace::propagation`]; the caller's `tracestate` and baggage follow.
//! - **Where context may go**: per host with [`PropagationPolicy`] (trace context and, separately,
//!   baggage), per request with the [`NoPropagation`] marker.
//! - **Name and attributes**: `{method}` or `{method} {template}` with a [`UrlTemplate`] in the
//!   request's extensions; stable HTTP client attributes (legacy names too in `http/dup` mode);
//!   nothing formatted when the span is not recording. 4xx, 5xx and transport errors are errors
//!   with a low-cardinality `error.type`.
//! - **Retries**: with reqwest-retry's middleware placed *before* this one, each attempt is its own
//!   span and the second and later carry `http.request.resend_count`.
//! - **Other clients**: [`gorax_trace::TelemetryHandle::inject`] (or `Propagators::inject`) writes a context into any
//!   `HeaderMap` (`request.headers_mut()` of an `http::Request` or a `reqwest::Request`).
//! - **gRPC** (feature `grpc`): [`grpc::GrpcClientLayer`], a tower layer for tonic channels.
//!
//! ```no_run
//! use gorax_trace_client::{ClientTraceMiddleware, NoPropagation, PropagationPolicy, UrlTemplate};
//! use reqwest_middleware::ClientBuilder;
//! use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     // Retries first, so that every attempt passes through the tracing middleware.
//!     .with(RetryTransientMiddleware::new_with_policy(
//!         ExponentialBackoff::builder().build_with_max_retries(2),
//!     ))
//!     .with(
//!         ClientTraceMiddleware::new()
//!             // Baggage (tenant ids, tokens) only to our own services.
//!             .with_baggage_hosts(PropagationPolicy::hosts(["*.gorax.internal"])),
//!     )
//!     .build();
//!
//! // Span "GET /users/{id}", child of the current span; traceparent carries its span id.
//! let user = client
//!     .get("http://users.gorax.internal/users/42")
//!     .with_extension(UrlTemplate::new("/users/{id}"))
//!     .send()
//!     .await?;
//!
//! // A third-party API: the span is recorded, but no trace header is sent.
//! let quote = client
//!     .get("https://api.example.com/v1/quote")
//!     .with_extension(NoPropagation)
//!     .send()
//!     .await?;
//! # drop((user, quote));
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The scopes this crate's spans are recorded under.
static SCOPES: gorax_trace::AdapterScopes =
    gorax_trace::AdapterScopes::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));

mod attributes;
mod body;
mod config;
#[cfg(feature = "grpc")]
pub mod grpc;
mod metrics;
mod middleware;

pub use config::{NoPropagation, PropagationPolicy, UrlTemplate};
pub use gorax_trace::propagation::BaggagePolicy;
pub use middleware::ClientTraceMiddleware;

// The middleware and its policy are shared across tasks: checked at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<ClientTraceMiddleware>();
    send_sync::<PropagationPolicy>();
};

#[cfg(test)]
mod tests;

// The README, compiled as a doctest (its example must build).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
