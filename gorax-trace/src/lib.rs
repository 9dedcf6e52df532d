//! OpenTelemetry distributed tracing for the gorax workflow platform: the core of the
//! gorax-trace family.
//!
//! One trace follows a request across every boundary: the server layer
//! (`gorax-trace-server`) continues the caller's trace, handlers add spans with [`span`] or
//! `tracing`, the client middleware (`gorax-trace-client`) and the queue producer
//! (`gorax-trace-queue`) pass the context on. This crate holds what they share:
//!
//! | module | what lives there |
//! |---|---|
//! | [`config`] | [`TraceConfig::from_env`](config::TraceConfig::from_env), the variable table, `with_*` overrides |
//! | [`init()`], [`Telemetry`] | the running provider, the handle adapters record with, flush on drop |
//! | [`shutdown`] | what a shutdown reports lost, per signal ([`ShutdownError`]) |
//! | [`export`] | the bounded batch processor, health counters, console tree and OTLP exporters |
//! | [`sampling`] | the [`Sampler`](sampling::Sampler) setting, parent-based ratio sampling, route rules |
//! | [`propagation`] | W3C `traceparent`/`tracestate`/`baggage` over any carrier, baggage policy |
//! | [`conventions`] | which semantic-conventions version each category emits: `OTEL_SEMCONV_STABILITY_OPT_IN`, schema URLs |
//! | [`httpconv`] | the HTTP vocabulary of server and client: names, redaction, failure rules, hooks |
//! | [`rpcconv`] | the gRPC vocabulary of the gRPC layers: methods and their recognition, `grpc-status` names and failure rules, channel targets |
//! | [`metrics`] | RED histograms with exemplars, the OTLP push, the Prometheus scrape |
//! | `logs` | `tracing` events as OTLP log records (feature `logs`) |
//! | [`trust`] | which connection peers may continue their trace (`TRACING_TRUSTED_PEERS`) |
//! | [`semconv`] | every attribute key the family writes |
//! | [`span`] | starting spans, recording errors and events, trace ids for logs |
//! | [`subscriber`] | the `tracing` bridge and log lines with trace ids |
//! | `viewer` | the embedded trace viewer: a waterfall on a local web page (feature `viewer`) |
//! | `testing` | in-memory provider and span-tree assertions (feature `testing`) |
//!
//! # Quick start
//!
//! ```
//! use gorax_trace::config::TraceConfig;
//! use gorax_trace::span;
//! use opentelemetry::trace::TraceContextExt;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // TRACING_ENABLED, TRACING_ENDPOINT, TRACING_SAMPLE_RATE, OTEL_* ... ; no endpoint: the trace
//! // is printed as a tree on stderr.
//! let telemetry = gorax_trace::init(TraceConfig::from_env()?)?;
//! let cx = span::start_workflow("tenant-1", "wf-42", "exec-7");
//! {
//!     let _active = cx.clone().attach();
//!     let step = span::start_step("fetch", "http");
//!     step.span().end();
//! }
//! cx.span().end();
//! // Flushes (dropping does the same); losing telemetry must not fail the program: log it.
//! if let Err(lost) = telemetry.shutdown() {
//!     tracing::warn!(%lost, "telemetry lost at shutdown");
//! }
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod conventions;
pub mod export;
pub mod httpconv;
mod init;
#[cfg(feature = "logs")]
pub mod logs;
pub mod metrics;
pub mod propagation;
pub mod rpcconv;
pub mod sampling;
pub mod semconv;
pub mod shutdown;
pub mod span;
pub mod subscriber;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trust;
#[cfg(feature = "viewer")]
pub mod viewer;

pub use config::TraceConfig;
pub use init::{InitError, init};
pub use opentelemetry_sdk::trace::SdkTracer;
pub use shutdown::ShutdownError;
pub use telemetry::{
    AdapterScope, AdapterScopes, Binding, SCOPE_NAME, Settings, Telemetry, TelemetryHandle,
};

// The README, compiled as a doctest (its example must build).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
