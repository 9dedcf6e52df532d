//! The RabbitMQ producer: publisher confirms, `mandatory` publishes, a connection opened again
//! after a broker restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gorax_trace::SdkTracer;
use gorax_trace::semconv;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ErrorKind};
use opentelemetry::KeyValue;
use serde::Serialize;

use super::{
    AmqpQueueError, DEFAULT_TIMEOUT, SYSTEM, connect, peer_attributes, producer_destination, short,
};
use crate::{ProducerTracer, TracedMessage};

/// Publishes [`TracedMessage`]s to an exchange (the default one, `""`, unless
/// [`with_exchange`](Self::with_exchange)) with the message's queue as the routing key, one
/// PRODUCER span per message; `send` returns after the broker's confirm. Cloning is cheap
/// (clones share the connection).
///
/// ```no_run
/// use gorax_trace_queue::amqp::AmqpProducer;
/// use gorax_trace_queue::TracedMessage;
///
/// # async fn run() -> Result<(), gorax_trace_queue::amqp::AmqpQueueError> {
/// let producer = AmqpProducer::new("amqp://guest:guest@127.0.0.1:5672/%2f");
/// let id = producer.send(TracedMessage::new("gorax-executions", 7_u32)).await?;
/// println!("confirmed, message id {id}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AmqpProducer {
    url: Arc<str>,
    exchange: Arc<str>,
    confirm_timeout: Duration,
    connect_timeout: Duration,
    tracer: ProducerTracer,
    peer: Arc<[KeyValue]>,
    live: Arc<tokio::sync::Mutex<Option<Live>>>,
    generation: Arc<AtomicU64>,
    ids: MessageIds,
}

/// The message ids of one producer and its clones: a prefix unique to the producer (the process
/// id and a random number) and a counter, so ids never repeat across producers or processes.
#[derive(Clone)]
struct MessageIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl MessageIds {
    fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        // `RandomState` is seeded from the OS once per thread and advanced per instance.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let random = RandomState::new().hash_one(nanos);
        Self {
            prefix: format!("{:x}-{random:x}", std::process::id()).into(),
            next: Arc::default(),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
    }
}

/// The connection and its confirm-mode channel.
struct Live {
    generation: u64,
    _connection: Connection,
    channel: Channel,
}

impl std::fmt::Debug for AmqpProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpProducer")
            .field("exchange", &self.exchange)
            .field("tracer", &self.tracer)
            .finish_non_exhaustive()
    }
}

impl AmqpProducer {
    /// A producer to the broker at `url` (`amqp://user:password@host:port/vhost`; the
    /// connection is opened at the first send, and again after it is lost), on the default
    /// exchange, waiting up to [`DEFAULT_TIMEOUT`] for a confirm.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.into(),
            exchange: "".into(),
            confirm_timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_TIMEOUT,
            tracer: ProducerTracer::new().with_system(SYSTEM),
            peer: peer_attributes(url).into(),
            live: Arc::default(),
            generation: Arc::default(),
            ids: MessageIds::new(),
        }
    }

    /// Publishes to `exchange` (with the message's queue as the routing key) instead of the
    /// default exchange.
    pub fn with_exchange(mut self, exchange: &str) -> Self {
        self.exchange = exchange.into();
        self
    }

    /// How long a send waits for the broker's confirm (default [`DEFAULT_TIMEOUT`]); past it
    /// the send is [`AmqpQueueError::TimedOut`] and the connection is opened again.
    pub fn with_confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// How long opening a connection may take (default [`DEFAULT_TIMEOUT`]).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Records with this handle (its tracer, propagators and metrics).
    pub fn with_telemetry(mut self, telemetry: impl Into<gorax_trace::TelemetryHandle>) -> Self {
        self.tracer = self.tracer.with_telemetry(telemetry);
        self
    }

    /// Records spans with this tracer (e.g. from a test provider).
    pub fn with_tracer(mut self, tracer: SdkTracer) -> Self {
        self.tracer = self.tracer.with_tracer(tracer);
        self
    }

    /// The channel of the live connection, opened (with a new connection) if there is none or
    /// it was lost.
    async fn channel(&self) -> Result<(u64, Channel), AmqpQueueError> {
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref().filter(|l| l.channel.status().connected()) {
            return Ok((l.generation, l.channel.clone()));
        }
        *live = None;
        let connection = connect(&self.url, self.connect_timeout, "gorax-trace producer").await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| AmqpQueueError::Connect(Box::new(e)))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| AmqpQueueError::Connect(Box::new(e)))?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *live = Some(Live {
            generation,
            _connection: connection,
            channel: channel.clone(),
        });
        Ok((generation, channel))
    }

    /// Drops the connection of `generation` (a confirm that never came: it may be stuck).
    async fn reset(&self, generation: u64) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| l.generation == generation) {
            *live = None;
        }
    }

    /// Publishes `msg` with its queue as the routing key, under a `send {queue}` span that is
    /// a child of the current context, and waits for the broker's confirm. Returns the
    /// message id the producer gave it (the `message_id` property).
    pub async fn send<T: Serialize>(
        &self,
        msg: TracedMessage<T>,
    ) -> Result<String, AmqpQueueError> {
        let routing_key = msg.queue().to_owned();
        let mut msg = msg.with_attribute(KeyValue::new(
            semconv::MESSAGING_DESTINATION_NAME,
            producer_destination(&self.exchange, &routing_key),
        ));
        if !routing_key.is_empty() {
            msg = msg.with_attribute(KeyValue::new(
                semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
                routing_key.clone(),
            ));
        }
        for kv in self.peer.iter() {
            msg = msg.with_attribute(kv.clone());
        }
        let span = self.tracer.start_send(&mut msg);
        let id = self.ids.next();
        let result = self.publish(&msg, &id).await;
        match &result {
            Ok(()) => {
                span.record_message_id(&id);
                span.end();
            }
            Err(e) => span.end_with_error(e),
        }
        result.map(|()| id)
    }

    async fn publish<T: Serialize>(
        &self,
        msg: &TracedMessage<T>,
        id: &str,
    ) -> Result<(), AmqpQueueError> {
        let payload = serde_json::to_vec(msg.payload()).map_err(AmqpQueueError::Encode)?;
        let exchange = short(&self.exchange)?;
        let routing_key = short(msg.queue())?;
        let mut headers = FieldTable::default();
        for (key, value) in msg.headers().iter() {
            if !value.is_empty() {
                headers.insert(short(key)?, AMQPValue::LongString(value.into()));
            }
        }
        let properties = BasicProperties::default()
            .with_headers(headers)
            .with_message_id(short(id)?)
            .with_content_type("application/json".into())
            // Persistent: kept across a broker restart.
            .with_delivery_mode(2);
        let (generation, channel) = self.channel().await?;
        let names = || (self.exchange.to_string(), msg.queue().to_owned());
        let publish = async {
            let confirm = channel
                .basic_publish(
                    exchange,
                    routing_key,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &payload,
                    properties,
                )
                .await
                .map_err(|source| {
                    let (exchange, routing_key) = names();
                    // Refused before sending (the channel was closed already): not stored.
                    if matches!(
                        source.kind(),
                        ErrorKind::InvalidChannelState(..) | ErrorKind::InvalidConnectionState(_)
                    ) {
                        AmqpQueueError::Publish {
                            exchange,
                            routing_key,
                            source: Box::new(source),
                        }
                    } else {
                        AmqpQueueError::OutcomeUnknown {
                            exchange,
                            routing_key,
                            source: Box::new(source),
                        }
                    }
                })?;
            confirm.await.map_err(|source| {
                let (exchange, routing_key) = names();
                if not_found(&source) {
                    // The exchange does not exist: the broker closed the channel, nothing
                    // was stored.
                    AmqpQueueError::Publish {
                        exchange,
                        routing_key,
                        source: Box::new(source),
                    }
                } else {
                    AmqpQueueError::OutcomeUnknown {
                        exchange,
                        routing_key,
                        source: Box::new(source),
                    }
                }
            })
        };
        let confirmation = match tokio::time::timeout(self.confirm_timeout, publish).await {
            Ok(confirmation) => confirmation?,
            Err(_) => {
                self.reset(generation).await;
                let (exchange, routing_key) = names();
                return Err(AmqpQueueError::TimedOut {
                    exchange,
                    routing_key,
                    after: self.confirm_timeout,
                });
            }
        };
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(returned)) => {
                let (exchange, routing_key) = names();
                Err(AmqpQueueError::Unroutable {
                    exchange,
                    routing_key,
                    reply: format!("{} {}", returned.reply_code, returned.reply_text),
                })
            }
            Confirmation::Nack(_) => {
                let (exchange, routing_key) = names();
                Err(AmqpQueueError::Nacked {
                    exchange,
                    routing_key,
                })
            }
        }
    }
}

/// Whether the broker answered `404 NOT_FOUND` (an exchange that does not exist).
fn not_found(error: &lapin::Error) -> bool {
    match error.kind() {
        ErrorKind::ProtocolError(e) => e.get_id() == 404,
        _ => false,
    }
}

impl<T: Serialize + Send + Sync> crate::Producer<T> for AmqpProducer {
    type Error = AmqpQueueError;

    async fn send(&self, msg: TracedMessage<T>) -> Result<String, AmqpQueueError> {
        AmqpProducer::send(self, msg).await
    }

    /// No local room to wait for: sends as [`send`](AmqpProducer::send).
    async fn try_send(&self, msg: TracedMessage<T>) -> Result<String, AmqpQueueError> {
        AmqpProducer::send(self, msg).await
    }

    async fn send_timeout(
        &self,
        msg: TracedMessage<T>,
        wait: Duration,
    ) -> Result<String, AmqpQueueError> {
        let routing_key = msg.queue().to_owned();
        tokio::time::timeout(wait, AmqpProducer::send(self, msg))
            .await
            .unwrap_or(Err(AmqpQueueError::TimedOut {
                exchange: self.exchange.to_string(),
                routing_key,
                after: wait,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_differ() {
        let (one, other) = (MessageIds::new(), MessageIds::new());
        let (a, b) = (one.next(), one.next());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{:x}-", std::process::id())));
        assert_ne!(one.next(), other.next(), "two producers never share an id");
        let clone = one.clone();
        assert_ne!(clone.next(), one.next(), "clones share the counter");
    }
}
