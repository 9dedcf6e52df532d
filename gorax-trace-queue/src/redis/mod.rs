//! Redis Streams adapter (feature `redis`).
//!
//! - [`RedisProducer::send`]: a PRODUCER span `send {stream}`, then `XADD` with the payload (JSON)
//!   in the [`PAYLOAD_FIELD`] field and each header in a `header:{key}` field
//!   ([`HEADER_FIELD_PREFIX`]); the entry id becomes `messaging.message.id`.
//! - [`RedisConsumer`]: a consumer group. [`receive`](RedisConsumer::receive) first reclaims
//!   entries left pending longer than the claim idle time (`XAUTOCLAIM`: a consumer that failed
//!   or crashed before `XACK`), reading their delivery count from `XPENDING`, then reads new
//!   entries (`XREADGROUP ... >`). `retry_count` is the delivery count − 1. An entry delivered
//!   more than the maximum number of times, or whose payload does not decode, is moved to the
//!   dead-letter stream. [`process`](RedisConsumer::process) runs a batch through a handler
//!   service (usually wrapped in [`ConsumerTraceLayer`](crate::ConsumerTraceLayer)) with the
//!   shared loop ([`process_batch`](crate::process_batch)) and acks only what succeeded:
//!   nothing is lost. Replies are decoded entry by entry, so one bad entry is dead-lettered
//!   without holding up its batch; pending entries trimmed away are recorded
//!   ([`REASON_TRIMMED`]); connections are replaced after a Redis restart and a lost group is
//!   created again.
//!
//! ```no_run
//! use gorax_trace_queue::redis::{RedisConsumer, RedisProducer};
//! use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
//! use tower::{ServiceBuilder, service_fn};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = redis::Client::open("redis://127.0.0.1:6379/")?;
//! let producer = RedisProducer::new(client.get_multiplexed_async_connection().await?);
//! producer.send(TracedMessage::new("gorax-executions", "exec-7".to_owned())).await?;
//!
//! let consumer = RedisConsumer::connect(&client, "gorax-executions", "workers", "worker-1").await?;
//! let mut worker = ServiceBuilder::new()
//!     .layer(ConsumerTraceLayer::new())
//!     .service(service_fn(|msg: TracedMessage<String>| async move {
//!         println!("executing {} (retry {})", msg.payload(), msg.retry_count());
//!         Ok::<_, std::io::Error>(())
//!     }));
//! loop {
//!     consumer.process(&mut worker).await?;
//! }
//! # }
//! ```

mod conn;
mod consumer;
mod producer;

pub use crate::consumer::ProcessReport;
pub use consumer::{DEAD_LETTER_MARKER_TTL, REASON_TRIMMED, RedisConsumer, RedisReceipt};
pub use producer::RedisProducer;

/// The `messaging.system` value of this adapter.
pub const SYSTEM: &str = "redis";
/// The stream field holding the JSON payload.
pub const PAYLOAD_FIELD: &str = "payload";
/// Prefix of the stream fields holding message headers: `header:traceparent`.
pub const HEADER_FIELD_PREFIX: &str = "header:";
/// Field added to a dead-lettered entry: the id of the original entry.
pub const DEAD_LETTER_SOURCE_FIELD: &str = "dead_letter:source_id";
/// Field added to a dead-lettered entry: its delivery count when it was given up.
pub const DEAD_LETTER_DELIVERIES_FIELD: &str = "dead_letter:deliveries";
/// Field added to a dead-lettered entry: why it was given up.
pub const DEAD_LETTER_REASON_FIELD: &str = "dead_letter:reason";

/// What went wrong talking to Redis or encoding a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisQueueError {
    /// A Redis command failed, or the server could not be reached (nothing was written).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The connection failed after the command may have reached the server (a timeout, a
    /// connection lost before the reply): the entry may or may not be in the stream.
    #[error("redis: the outcome of XADD to `{stream}` is unknown: {source}")]
    OutcomeUnknown {
        /// The stream written to.
        stream: String,
        /// What failed.
        #[source]
        source: redis::RedisError,
    },
    /// A [`send_timeout`](crate::Producer::send_timeout) was cut off before Redis answered:
    /// the entry may or may not be in the stream.
    #[error(
        "redis: no answer to XADD to `{stream}` within {after:?}; the entry may be in the stream"
    )]
    TimedOut {
        /// The stream written to.
        stream: String,
        /// The wait.
        after: std::time::Duration,
    },
    /// The payload could not be encoded as JSON.
    #[error("cannot encode the payload: {0}")]
    Encode(#[source] serde_json::Error),
    /// The handler service reported it cannot take messages any more.
    #[error("the handler service failed: {0}")]
    Handler(String),
}

impl From<crate::consumer::HandlerUnavailable> for RedisQueueError {
    fn from(e: crate::consumer::HandlerUnavailable) -> Self {
        Self::Handler(e.0)
    }
}
