//! Trace context through message queues: one trace from the HTTP request that publishes a
//! message to the worker that processes it.
//!
//! - [`TracedMessage`]: the envelope (payload, queue, broker message id, retry count, string
//!   [`Headers`] carrying `traceparent`/`tracestate`/`baggage`), with a JSON form for transports
//!   that carry only a body.
//! - [`Headers`] carry context through the core's one propagation implementation
//!   ([`gorax_trace::propagation::Propagators`]); any other header type implements the core's
//!   `Carrier`/`CarrierMut` (or OpenTelemetry's `Extractor`/`Injector`).
//! - One producer contract ([`Producer`]: `send`, `try_send`, `send_timeout`) implemented by
//!   every adapter, `send` returning `Ok` only once the broker has the message.
//! - Producer: [`ProducerTracer::start_send`] starts a PRODUCER span `send {queue}` and injects
//!   its context into the headers (an existing creation context is kept, and linked).
//! - Consumer: [`ConsumerTraceLayer`], a tower layer over a handler `Service<TracedMessage<T>>`,
//!   records a CONSUMER span `process {queue}` with a link to the creation context and that
//!   context as parent by default ([`ParentMode`]), and makes it current while the handler runs.
//!   Over a handler of `Vec<TracedMessage<T>>` it is the batch form: one span for the batch, a
//!   link per message, `messaging.batch.message_count`.
//! - Adapters (features): `memory` — an in-process queue ([`memory::channel`]); `redis` — Redis Streams ([`redis::RedisProducer`],
//!   [`redis::RedisConsumer`]) with `retry_count` from the pending entry's delivery count.
//!   `nats` — NATS JetStream ([`nats::NatsProducer`], [`nats::NatsConsumer`]) with `send`
//!   returning after the PubAck, `ack_wait` as the lease and `retry_count` from the delivery
//!   count.
//!   `amqp` — RabbitMQ ([`amqp::AmqpProducer`], [`amqp::AmqpConsumer`]) with `send` returning
//!   after the publisher confirm (`mandatory`: an unroutable message is an error), the
//!   prefetch as the batch, quorum queues with `retry_count` from `x-delivery-count`, and
//!   dead letters through the broker's dead-letter exchange.
//!   `sqs` — Amazon SQS ([`sqs::SqsProducer`], [`sqs::SqsConsumer`]) with headers as message
//!   attributes and `retry_count` from `ApproximateReceiveCount`.
//! - One consumer contract ([`QueueConsumer`]) that every adapter implements with broker calls
//!   only, and one processing loop ([`process_batch`]) that drives the handler for all of them:
//!   poison deliveries and `max_deliveries` dead-lettered with a reason (span event, attribute
//!   and [`ConsumerStats`] counter), panics caught per message and retried, the leases of a batch
//!   kept from its receipt by a thread of the consumer's own ([`consumer::LeaseKeeper`]), one
//!   failed broker call never blocking the rest of a batch. Delivery
//!   is at-least-once: see [`consumer`](crate::consumer#at-least-once).
//!
//! The brokers stay features of this crate rather than crates of their own: the contract, the
//! loop and the conformance suite (`tests/conformance.rs`, run against every broker) live with
//! the adapters they test, and a feature already keeps each broker's client (the SQS SDK above
//! all) out of builds that do not use it.
//!
//! Attribute keys come from [`gorax_trace::semconv`]: `messaging.system`,
//! `messaging.destination.name`, `messaging.message.id`, `messaging.operation.type`,
//! `messaging.operation.name`, and the guide's `queue.name`, `queue.message_id`, `retry_count`.
//! With tracing disabled or the trace unsampled, spans record nothing but context still
//! propagates from producer to consumer.
//!
//! # Quick start
//!
//! ```
//! use gorax_trace_queue::{ConsumerTraceLayer, ProducerTracer, TracedMessage};
//! use opentelemetry::trace::TraceContextExt;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # futures_executor::block_on(async {
//! // Producer: a span per message, context into the headers.
//! let producer = ProducerTracer::new();
//! let mut msg = TracedMessage::new("gorax-executions", "exec-7".to_owned());
//! let send = producer.start_send(&mut msg);
//! let json = msg.to_json().unwrap(); // ... publish it ...
//! send.end();
//!
//! // Worker: the handler runs inside `process gorax-executions`, in the producer's trace.
//! let mut worker = ServiceBuilder::new()
//!     .layer(ConsumerTraceLayer::new())
//!     .service(service_fn(|msg: TracedMessage<String>| async move {
//!         let cx = opentelemetry::Context::current();
//!         assert!(cx.span().span_context().is_valid());
//!         Ok::<_, std::io::Error>(msg.into_payload())
//!     }));
//! let received = TracedMessage::from_json(&json).unwrap().with_message_id("1-0");
//! let out = worker.ready().await.unwrap().call(received).await.unwrap();
//! assert_eq!(out, "exec-7");
//! # });
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The scopes this crate's spans are recorded under.
static SCOPES: gorax_trace::AdapterScopes =
    gorax_trace::AdapterScopes::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));

/// The tracer of this crate's scope, with the schema URL of the messaging conventions it emits.
fn tracer(telemetry: &gorax_trace::TelemetryHandle) -> &gorax_trace::SdkTracer {
    telemetry.tracer_in(SCOPES.for_schema(telemetry.messaging_semconv().schema_url()))
}

mod attributes;
pub mod consumer;
mod future;
mod headers;
mod layer;
mod lease;
mod message;
mod metrics;
mod producer;
mod service;
mod stats;

#[cfg(feature = "amqp")]
#[cfg_attr(docsrs, doc(cfg(feature = "amqp")))]
pub mod amqp;
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(feature = "sqs")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqs")))]
pub mod sqs;

pub use consumer::{ProcessReport, QueueConsumer, process_batch};
pub use future::ConsumerFuture;
pub use headers::Headers;
pub use layer::{ConsumerTraceLayer, ParentMode};
pub use message::TracedMessage;
pub use producer::{DEFAULT_SYSTEM, Producer, ProducerTracer, SendSpan};
pub use service::ConsumerTraceService;
pub use stats::{ConsumerStats, StatsSnapshot};

#[cfg(test)]
mod tests;

// The README, compiled as a doctest (its example must build).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
