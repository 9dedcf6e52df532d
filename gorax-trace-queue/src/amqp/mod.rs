//! RabbitMQ adapter (feature `amqp`, [`lapin`]).
//!
//! - [`AmqpProducer::send`]: a PRODUCER span `send {routing key}`, then a `basic.publish` on a
//!   channel in confirm mode with the payload as JSON, the trace headers (`traceparent`,
//!   `tracestate`, `baggage`) in the message's AMQP header table, a `message_id` of the
//!   producer's own (AMQP brokers assign none) and persistent delivery. `Ok` only once the
//!   broker confirmed it (`basic.ack`). The publish is `mandatory`: a message that reaches no
//!   queue comes back (`basic.return`) and is an error ([`AmqpQueueError::Unroutable`], nothing
//!   stored). A confirm that did not come ([`AmqpQueueError::OutcomeUnknown`],
//!   [`AmqpQueueError::TimedOut`]) means the message may be stored: retrying is at-least-once
//!   (a possible duplicate).
//! - [`AmqpConsumer`]: a `basic.consume` with manual acks on the queue, the channel's prefetch
//!   (`basic.qos`) being the batch: a batch is what the broker has pushed, up to
//!   [`AmqpConsumerConfig::prefetch`], waiting up to [`AmqpConsumerConfig::wait`] for the
//!   first. Success is `basic.ack`, failure `basic.reject` with `requeue`. RabbitMQ has no
//!   lease: a delivery is the consumer's until it settles it or its channel closes (then the
//!   broker delivers it again at once). [`AmqpConsumerConfig::max_lease`] bounds a hung
//!   handler: past it the consumer closes the channel of that batch, the broker requeues
//!   what the channel held, and the next batch opens a new one.
//! - `retry_count`: the adapter declares a **quorum queue** ([`QueueType::Quorum`], the
//!   default) with `x-delivery-limit`, and the broker counts deliveries: `retry_count` is the
//!   message's `x-delivery-count` header (absent on the first delivery: 0). On a **classic
//!   queue** ([`QueueType::Classic`]) the broker keeps no count, only the `redelivered` flag:
//!   `retry_count` is then 1 for a message delivered before (however often) and 0 otherwise,
//!   and dead-lettering after N deliveries is not offered (a message that always fails comes
//!   back for ever; poison messages are still dead-lettered).
//! - Dead letters go through the broker's dead-letter exchange: the queue is declared with
//!   `x-dead-letter-exchange` ([`AmqpConsumerConfig::dead_letter_exchange`], a direct exchange)
//!   and `x-dead-letter-routing-key` ([`AmqpConsumerConfig::dead_letter_queue`], a queue bound
//!   to it). The loop dead-letters (the delivery after `max_deliveries`, an undecodable one at
//!   once) with `basic.reject` without requeue: one broker operation, so no window in which a
//!   consumer that dies leaves two copies or none. The broker records why in the copy's
//!   `x-death` header (`rejected`); the loop's reason (`max deliveries`, `bad JSON payload:
//!   …`) is on the dead-letter span, not in the message (AMQP cannot change a message it
//!   dead-letters). The queue's `x-delivery-limit` is `max_deliveries + 1`: the broker
//!   dead-letters by itself (`delivery_limit`) only a message the loop could not (its
//!   `basic.reject` lost every time). Quorum queues dead-letter `at-least-once`
//!   (`x-dead-letter-strategy`, with `x-overflow: reject-publish`, which it requires).
//! - Reconnects: a connection or channel lost (a broker restart) fails the calls made on it
//!   (counted); the producer opens a new connection at its next send, the consumer at its next
//!   batch. Deliveries of the lost channel cannot be acknowledged any more (an error, counted):
//!   the broker delivers them again. Quorum queues and persistent messages survive a restart.
//! - Not offered: a delayed retry (RabbitMQ cannot delay a requeue without a plugin:
//!   [`ConsumerSettings::retry_delay`](crate::consumer::ConsumerSettings::retry_delay) is not
//!   used, a released message comes back at once); TLS (`lapin` is built without it: `amqp://`
//!   URLs only).
//!
//! `lapin` writes a `tracing` span `io_loop` (level `INFO`, target `lapin::io_loop`) that lasts
//! as long as each connection: under a subscriber that bridges `tracing` spans to OpenTelemetry
//! it would be a trace of its own. The core's default filter
//! ([`gorax_trace::subscriber::DEFAULT_FILTER`]) has `lapin=warn`; a `RUST_LOG` of your own
//! wants it too.
//!
//! Attributes follow the RabbitMQ messaging conventions: `messaging.system` is `rabbitmq`;
//! `messaging.destination.name` is `{exchange}:{routing key}` on producer spans (the routing
//! key alone on the default exchange `""`, `amq.default` when both are empty) and
//! `{exchange}:{routing key}:{queue}` on consumer spans (empty parts left out, a routing key
//! equal to the queue once: the queue name for a message published to the default exchange);
//! `messaging.rabbitmq.destination.routing_key` (when not empty) on both,
//! `messaging.rabbitmq.message.delivery_tag` on consumer spans, and `network.peer.address` and
//! `network.peer.port` on both when the URL's host is an IP address.
//!
//! ```no_run
//! use gorax_trace_queue::amqp::{AmqpConsumer, AmqpConsumerConfig, AmqpProducer, declare};
//! use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
//! use tower::{ServiceBuilder, service_fn};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
//! let config = AmqpConsumerConfig::new("gorax-executions");
//! // The queue, its dead-letter exchange and queue (the consumer declares them too).
//! declare(url, &config).await?;
//! let producer = AmqpProducer::new(url);
//! producer.send(TracedMessage::new("gorax-executions", "exec-7".to_owned())).await?;
//!
//! let consumer = AmqpConsumer::connect(url, config).await?;
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

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

mod consumer;
mod producer;

pub use consumer::{AmqpConsumer, AmqpReceipt};
pub use producer::AmqpProducer;

/// The AMQP client crate this adapter is built on (connect with it, manage the topology).
pub use lapin;

/// The `messaging.system` value of this adapter (a registry value).
pub const SYSTEM: &str = "rabbitmq";
/// The header in which a quorum queue counts earlier deliveries of a message.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// The default [`AmqpConsumerConfig::connect_timeout`] and [`AmqpProducer`] confirm timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to RabbitMQ or encoding a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AmqpQueueError {
    /// The broker could not be reached, or refused the connection: nothing was sent.
    #[error("amqp: cannot connect: {0}")]
    Connect(#[source] Box<lapin::Error>),
    /// No connection within the timeout: nothing was sent.
    #[error("amqp: no connection within {0:?}")]
    ConnectTimedOut(Duration),
    /// The message reached no queue (`mandatory`, `basic.return`): nothing was stored.
    #[error(
        "amqp: no queue takes routing key `{routing_key}` on exchange `{exchange}` ({reply}); nothing was stored"
    )]
    Unroutable {
        /// The exchange published to (`""`: the default exchange).
        exchange: String,
        /// The routing key.
        routing_key: String,
        /// The broker's reply (`312 NO_ROUTE`).
        reply: String,
    },
    /// The broker refused to take the message (`basic.nack`): it is not stored.
    #[error("amqp: the broker refused the message to `{exchange}` / `{routing_key}` (basic.nack)")]
    Nacked {
        /// The exchange published to.
        exchange: String,
        /// The routing key.
        routing_key: String,
    },
    /// The publish failed before the message left (the channel was already closed, the
    /// exchange does not exist): nothing was stored.
    #[error("amqp: publish to `{exchange}` / `{routing_key}` failed: {source}; nothing was stored")]
    Publish {
        /// The exchange published to.
        exchange: String,
        /// The routing key.
        routing_key: String,
        /// What failed.
        #[source]
        source: Box<lapin::Error>,
    },
    /// The publish left, but no confirm came back (the connection lost): the message may or
    /// may not be stored.
    #[error(
        "amqp: the outcome of the publish to `{exchange}` / `{routing_key}` is unknown: {source}"
    )]
    OutcomeUnknown {
        /// The exchange published to.
        exchange: String,
        /// The routing key.
        routing_key: String,
        /// What failed.
        #[source]
        source: Box<lapin::Error>,
    },
    /// No confirm within the producer's confirm timeout or a
    /// [`send_timeout`](crate::Producer::send_timeout)'s wait: the message may be stored.
    #[error(
        "amqp: no confirm for `{exchange}` / `{routing_key}` within {after:?}; the message may be stored"
    )]
    TimedOut {
        /// The exchange published to.
        exchange: String,
        /// The routing key.
        routing_key: String,
        /// The wait.
        after: Duration,
    },
    /// A broker call (a declaration, `basic.consume`, an acknowledgement) failed.
    #[error("amqp: {what} failed: {source}")]
    Broker {
        /// Which call.
        what: &'static str,
        /// What failed.
        #[source]
        source: Box<lapin::Error>,
    },
    /// The delivery can no longer be settled: the channel that delivered it closed (the broker
    /// delivers it again), or it was settled already.
    #[error("amqp: {what}: the delivery's channel is closed or it was settled already")]
    Unsettled {
        /// Which call (`basic.ack`, `basic.reject`).
        what: &'static str,
    },
    /// The consumer of this queue ended: its channel closed (a lapsed `max_lease`) or the
    /// broker cancelled it (its queue deleted). The next batch opens a new channel.
    #[error("amqp: the consumer of `{0}` ended (channel closed or consumer cancelled)")]
    Cancelled(String),
    /// A name longer than an AMQP short string (255 bytes).
    #[error("amqp: `{0}` is longer than 255 bytes")]
    NameTooLong(String),
    /// The payload could not be encoded as JSON.
    #[error("cannot encode the payload: {0}")]
    Encode(#[source] serde_json::Error),
    /// The handler service reported it cannot take messages any more.
    #[error("the handler service failed: {0}")]
    Handler(String),
}

impl From<crate::consumer::HandlerUnavailable> for AmqpQueueError {
    fn from(e: crate::consumer::HandlerUnavailable) -> Self {
        Self::Handler(e.0)
    }
}

fn broker(what: &'static str) -> impl FnOnce(lapin::Error) -> AmqpQueueError {
    move |source| AmqpQueueError::Broker {
        what,
        source: Box::new(source),
    }
}

/// A name as an AMQP short string (at most 255 bytes).
fn short(name: &str) -> Result<ShortString, AmqpQueueError> {
    ShortString::try_new(name).map_err(|_| AmqpQueueError::NameTooLong(name.to_owned()))
}

/// The kind of queue the adapter declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueType {
    /// A quorum queue (replicated, durable): the broker counts deliveries (`x-delivery-count`,
    /// `x-delivery-limit`), so `retry_count` is exact and `max_deliveries` is enforced.
    #[default]
    Quorum,
    /// A classic queue: only the `redelivered` flag (see the [module docs](self)).
    Classic,
}

/// How an [`AmqpConsumer`] (and [`declare`]) sets up its queue: start from
/// [`AmqpConsumerConfig::new`] and set fields.
///
/// ```
/// use gorax_trace_queue::amqp::{AmqpConsumerConfig, QueueType};
///
/// let mut config = AmqpConsumerConfig::new("gorax-executions");
/// config.prefetch = 20;
/// config.max_deliveries = 3;
/// assert_eq!(config.queue_type, QueueType::Quorum);
/// assert_eq!(config.dead_letter_queue, "gorax-executions.dead-letter");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AmqpConsumerConfig {
    /// The queue (declared durable if missing; the queue name of the spans).
    pub queue: String,
    /// Quorum (default) or classic.
    pub queue_type: QueueType,
    /// The channel's prefetch: the most deliveries the broker pushes before acknowledgements,
    /// and so the largest batch (default 10).
    pub prefetch: u16,
    /// How long a batch waits for its first delivery (default 1 s).
    pub wait: Duration,
    /// Deliveries after which a message is dead-lettered (default 5; quorum queues only).
    pub max_deliveries: u32,
    /// How long a batch may hold its deliveries (default 15 minutes; see
    /// [`ConsumerSettings::max_lease`](crate::consumer::ConsumerSettings::max_lease)): past it
    /// the consumer closes the batch's channel and the broker requeues them. `None`: no limit
    /// (RabbitMQ's own `consumer_timeout`, 30 minutes by default, closes the channel then).
    pub max_lease: Option<Duration>,
    /// The dead-letter exchange (default `{queue}.dead-letter`; a direct exchange, declared).
    pub dead_letter_exchange: String,
    /// The queue bound to it, and the dead-letter routing key (default `{queue}.dead-letter`;
    /// declared).
    pub dead_letter_queue: String,
    /// How long a connection attempt may take (default [`DEFAULT_TIMEOUT`]).
    pub connect_timeout: Duration,
}

impl AmqpConsumerConfig {
    /// The defaults listed on the fields, for `queue`.
    pub fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            queue_type: QueueType::Quorum,
            prefetch: 10,
            wait: Duration::from_secs(1),
            max_deliveries: 5,
            max_lease: Some(crate::consumer::DEFAULT_MAX_LEASE),
            dead_letter_exchange: format!("{queue}.dead-letter"),
            dead_letter_queue: format!("{queue}.dead-letter"),
            connect_timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Opens a connection to `url` within `timeout`, named `name` (shown by the broker).
async fn connect(url: &str, timeout: Duration, name: &str) -> Result<Connection, AmqpQueueError> {
    let properties =
        ConnectionProperties::default().with_connection_name(LongString::from(name.to_owned()));
    match tokio::time::timeout(timeout, Connection::connect(url, properties)).await {
        Ok(connection) => connection.map_err(|e| AmqpQueueError::Connect(Box::new(e))),
        Err(_) => Err(AmqpQueueError::ConnectTimedOut(timeout)),
    }
}

/// Declares what `config` describes on a connection of its own to `url` (and closes it):
/// the dead-letter exchange and queue, and the queue. Declaring again with the same
/// configuration is a no-op; a queue that exists with other arguments is an error
/// (`PRECONDITION_FAILED`).
///
/// ```no_run
/// use gorax_trace_queue::amqp::{AmqpConsumerConfig, declare};
///
/// # async fn run() -> Result<(), gorax_trace_queue::amqp::AmqpQueueError> {
/// // Before the first send: a mandatory publish to a queue not yet declared is unroutable.
/// declare("amqp://guest:guest@127.0.0.1:5672/%2f", &AmqpConsumerConfig::new("jobs")).await?;
/// # Ok(())
/// # }
/// ```
pub async fn declare(url: &str, config: &AmqpConsumerConfig) -> Result<(), AmqpQueueError> {
    let connection = connect(url, config.connect_timeout, "gorax-trace declare").await?;
    let result = declare_on(&connection, config).await;
    let _ = connection.close(200, "declared".into()).await;
    result
}

/// [`declare`] over an open connection (a channel of its own, closed after).
///
/// ```no_run
/// use gorax_trace_queue::amqp::{AmqpConsumerConfig, declare_on, lapin};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// let connection = lapin::Connection::connect(url, Default::default()).await?;
/// declare_on(&connection, &AmqpConsumerConfig::new("jobs")).await?;
/// # Ok(())
/// # }
/// ```
pub async fn declare_on(
    connection: &Connection,
    config: &AmqpConsumerConfig,
) -> Result<(), AmqpQueueError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(broker("channel.open"))?;
    let queue_type = |args: &mut FieldTable| {
        let kind = match config.queue_type {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        };
        args.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
    };
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let dlx = short(&config.dead_letter_exchange)?;
    let dlq = short(&config.dead_letter_queue)?;
    channel
        .exchange_declare(
            dlx.clone(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(broker("exchange.declare (dead letters)"))?;
    let mut args = FieldTable::default();
    queue_type(&mut args);
    channel
        .queue_declare(dlq.clone(), durable, args)
        .await
        .map_err(broker("queue.declare (dead letters)"))?;
    channel
        .queue_bind(
            dlq.clone(),
            dlx.clone(),
            dlq.clone(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker("queue.bind (dead letters)"))?;
    channel
        .queue_declare(short(&config.queue)?, durable, queue_arguments(config))
        .await
        .map_err(broker("queue.declare"))?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// The arguments of the queue (its type, dead-letter route, delivery limit).
fn queue_arguments(config: &AmqpConsumerConfig) -> FieldTable {
    let mut args = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(s.into());
    args.insert(
        "x-dead-letter-exchange".into(),
        text(&config.dead_letter_exchange),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        text(&config.dead_letter_queue),
    );
    match config.queue_type {
        QueueType::Quorum => {
            args.insert("x-queue-type".into(), text("quorum"));
            // One more than the loop allows: the loop dead-letters first (see the module docs).
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(config.max_deliveries.max(1)) + 1),
            );
            args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
            args.insert("x-overflow".into(), text("reject-publish"));
        }
        QueueType::Classic => {
            args.insert("x-queue-type".into(), text("classic"));
        }
    }
    args
}

/// `network.peer.address` and `network.peer.port` of the broker at `url`, when its host is an
/// IP address (a host name is not a peer address); nothing for a URL that does not parse.
fn peer_attributes(url: &str) -> Vec<opentelemetry::KeyValue> {
    use gorax_trace::semconv::{NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT};
    use opentelemetry::KeyValue;
    let Ok(uri) = url.parse::<lapin::uri::AMQPUri>() else {
        return Vec::new();
    };
    let host = uri
        .authority
        .host
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![
            KeyValue::new(NETWORK_PEER_ADDRESS, ip.to_string()),
            KeyValue::new(NETWORK_PEER_PORT, i64::from(uri.authority.port)),
        ],
        Err(_) => Vec::new(),
    }
}

/// `messaging.destination.name` of a producer span: `{exchange}:{routing key}`, one of them
/// when the other is empty, `amq.default` when both are.
fn producer_destination(exchange: &str, routing_key: &str) -> String {
    match (exchange.is_empty(), routing_key.is_empty()) {
        (false, false) => format!("{exchange}:{routing_key}"),
        (false, true) => exchange.to_owned(),
        (true, false) => routing_key.to_owned(),
        (true, true) => "amq.default".to_owned(),
    }
}

/// `messaging.destination.name` of a consumer span: `{exchange}:{routing key}:{queue}` with
/// empty parts left out and a routing key equal to the queue written once.
fn consumer_destination(exchange: &str, routing_key: &str, queue: &str) -> String {
    let routing_key = if routing_key == queue {
        ""
    } else {
        routing_key
    };
    [exchange, routing_key, queue]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_names_follow_the_rabbitmq_conventions() {
        for (exchange, key, want) in [
            ("direct_logs", "warning", "direct_logs:warning"),
            ("logs", "", "logs"),
            ("", "gorax-executions", "gorax-executions"),
            ("", "", "amq.default"),
        ] {
            assert_eq!(producer_destination(exchange, key,), want);
        }
        for (exchange, key, queue, want) in [
            (
                "direct_logs",
                "warning",
                "my_queue",
                "direct_logs:warning:my_queue",
            ),
            ("direct_logs", "warning", "warning", "direct_logs:warning"),
            (
                "",
                "gorax-executions",
                "gorax-executions",
                "gorax-executions",
            ),
            ("logs", "", "q", "logs:q"),
        ] {
            assert_eq!(consumer_destination(exchange, key, queue), want);
        }
    }

    #[test]
    fn quorum_queues_get_a_delivery_limit_and_classic_ones_none() {
        let mut config = AmqpConsumerConfig::new("q");
        config.max_deliveries = 3;
        let args = queue_arguments(&config);
        assert_eq!(
            args.inner().get("x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(4))
        );
        assert_eq!(
            args.inner().get("x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString("q.dead-letter".into()))
        );
        config.queue_type = QueueType::Classic;
        assert!(!queue_arguments(&config).contains_key("x-delivery-limit"));
    }

    #[test]
    fn the_peer_is_the_url_s_ip_address_and_port() {
        let peer = peer_attributes("amqp://guest:secret@127.0.0.1:5673/%2f");
        let values: Vec<String> = peer
            .iter()
            .map(|kv| kv.value.as_str().into_owned())
            .collect();
        assert_eq!(values, ["127.0.0.1", "5673"]);
        assert!(peer_attributes("amqp://rabbit.internal:5672/%2f").is_empty());
        assert!(peer_attributes("not a url").is_empty());
    }

    #[test]
    fn names_longer_than_a_short_string_are_an_error() {
        assert!(matches!(
            short(&"q".repeat(256)),
            Err(AmqpQueueError::NameTooLong(_))
        ));
        assert!(short(&"q".repeat(255)).is_ok());
    }
}
