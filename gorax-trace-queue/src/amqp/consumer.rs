//! The RabbitMQ consumer: `basic.consume` with the prefetch as the batch, acks and rejects,
//! a channel opened again after a broker restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use gorax_trace::semconv;
use gorax_trace::{Binding, SdkTracer};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, Channel, Connection};
use opentelemetry::KeyValue;
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::{
    AmqpConsumerConfig, AmqpQueueError, DELIVERY_COUNT_HEADER, QueueType, SYSTEM, broker, connect,
    consumer_destination, declare_on, peer_attributes, short,
};
use crate::consumer::{
    Batch, ConsumerSettings, ConsumerStats, Poison, ProcessReport, QueueConsumer, Received,
};
use crate::{Headers, TracedMessage};

/// One delivery of an [`AmqpConsumer`]: what settles it. Dropping it unsettled (a batch
/// abandoned) leaves the delivery to the channel: the broker delivers it again when the
/// channel closes.
///
/// Receipts come from [`QueueConsumer::receive_batch`] (the loop uses them; a test may too):
///
/// ```no_run
/// use gorax_trace_queue::QueueConsumer;
/// use gorax_trace_queue::amqp::{AmqpConsumer, AmqpConsumerConfig};
///
/// # async fn run() -> Result<(), gorax_trace_queue::amqp::AmqpQueueError> {
/// let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// let consumer = AmqpConsumer::connect(url, AmqpConsumerConfig::new("jobs")).await?;
/// let batch = QueueConsumer::<u32>::receive_batch(&consumer).await?;
/// for received in &batch.received {
///     println!("delivery tag {}", received.receipt.delivery_tag());
///     QueueConsumer::<u32>::ack(&consumer, &received.receipt).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AmqpReceipt {
    acker: Acker,
    delivery_tag: u64,
    settled: AtomicBool,
    batch: Arc<BatchLease>,
}

impl AmqpReceipt {
    /// The delivery tag (per channel).
    pub fn delivery_tag(&self) -> u64 {
        self.delivery_tag
    }

    /// No more lease needed for it (settled, or given up).
    fn finish(&self) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            self.batch.finish_one();
        }
    }

    /// Settles with `kind`, once: a second call, or a delivery of a channel that is gone, is
    /// [`AmqpQueueError::Unsettled`].
    async fn settle(
        &self,
        what: &'static str,
        requeue: Option<bool>,
    ) -> Result<(), AmqpQueueError> {
        let result = match requeue {
            None => self.acker.ack(BasicAckOptions::default()).await,
            Some(requeue) => self.acker.reject(BasicRejectOptions { requeue }).await,
        };
        self.finish();
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(AmqpQueueError::Unsettled { what }),
            Err(source) => Err(AmqpQueueError::Broker {
                what,
                source: Box::new(source),
            }),
        }
    }
}

impl Drop for AmqpReceipt {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The deliveries of one batch still unsettled, for the `max_lease` watch.
#[derive(Debug)]
struct BatchLease {
    remaining: AtomicUsize,
    done: tokio::sync::Notify,
}

impl BatchLease {
    fn finish_one(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// The live connection: its channel and the consumer on it.
struct Live {
    _connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
}

/// A RabbitMQ consumer driven by the shared loop ([`process_batch`](crate::process_batch)), as
/// the [module docs](super) describe.
///
/// ```no_run
/// use gorax_trace_queue::amqp::{AmqpConsumer, AmqpConsumerConfig};
/// use gorax_trace_queue::TracedMessage;
/// use tower::service_fn;
///
/// # async fn run() -> Result<(), gorax_trace_queue::amqp::AmqpQueueError> {
/// let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// let consumer = AmqpConsumer::connect(url, AmqpConsumerConfig::new("jobs")).await?;
/// let mut handler = service_fn(|msg: TracedMessage<u32>| async move {
///     Ok::<_, std::io::Error>(*msg.payload())
/// });
/// let report = consumer.process(&mut handler).await?;
/// println!("acked {}, dead-lettered {}", report.acked, report.dead_lettered);
/// # Ok(())
/// # }
/// ```
pub struct AmqpConsumer {
    url: String,
    peer: Vec<KeyValue>,
    config: AmqpConsumerConfig,
    settings: ConsumerSettings,
    live: tokio::sync::Mutex<Option<Live>>,
}

impl std::fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConsumer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AmqpConsumer {
    /// Connects to `url`, declares the queue and its dead-letter route as [`declare`](super::declare)
    /// does, and starts consuming (prefetch [`AmqpConsumerConfig::prefetch`]). After a lost
    /// connection, the next batch connects again.
    pub async fn connect(url: &str, config: AmqpConsumerConfig) -> Result<Self, AmqpQueueError> {
        let mut settings = ConsumerSettings::new(SYSTEM, config.queue.clone());
        settings.max_deliveries = match config.queue_type {
            QueueType::Quorum => config.max_deliveries.max(1),
            // Only the `redelivered` flag: no count to compare with a limit.
            QueueType::Classic => u32::MAX,
        };
        settings.max_lease = config.max_lease;
        let consumer = Self {
            url: url.to_owned(),
            peer: peer_attributes(url),
            config,
            settings,
            live: tokio::sync::Mutex::new(None),
        };
        *consumer.live.lock().await = Some(consumer.open().await?);
        Ok(consumer)
    }

    /// Records the dead-letter spans with this handle.
    pub fn with_telemetry(mut self, telemetry: impl Into<gorax_trace::TelemetryHandle>) -> Self {
        self.settings.telemetry = Binding::fixed(telemetry);
        self
    }

    /// Records the dead-letter spans with this tracer (e.g. from a test provider).
    pub fn with_tracer(self, tracer: SdkTracer) -> Self {
        self.with_telemetry(tracer)
    }

    /// The configuration.
    pub fn config(&self) -> &AmqpConsumerConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &ConsumerStats {
        &self.settings.stats
    }

    /// Receives one batch and runs it through `service` (see [`process_batch`](crate::process_batch)).
    pub async fn process<S, T>(&self, service: &mut S) -> Result<ProcessReport, AmqpQueueError>
    where
        S: Service<TracedMessage<T>>,
        S::Error: std::fmt::Display,
        T: DeserializeOwned,
    {
        crate::process_batch(self, service).await
    }

    /// A new connection, with the topology declared and the consumer started.
    async fn open(&self) -> Result<Live, AmqpQueueError> {
        let config = &self.config;
        let connection = connect(&self.url, config.connect_timeout, "gorax-trace consumer").await?;
        declare_on(&connection, config).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(broker("channel.open"))?;
        channel
            .basic_qos(config.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(broker("basic.qos"))?;
        let consumer = channel
            .basic_consume(
                short(&config.queue)?,
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker("basic.consume"))?;
        Ok(Live {
            _connection: connection,
            channel,
            consumer,
        })
    }

    /// Closes `channel` once `batch` has held its deliveries `max_lease` long (unless they are
    /// all settled before): the broker requeues every delivery of the channel.
    fn watch(&self, batch: &Arc<BatchLease>, channel: &Channel) {
        let (Some(max_lease), Ok(runtime)) = (
            self.settings.max_lease,
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let (batch, channel) = (batch.clone(), channel.clone());
        runtime.spawn(async move {
            if tokio::time::timeout(max_lease, batch.done.notified())
                .await
                .is_err()
            {
                let _ = channel.close(200, "gorax-trace: max lease".into()).await;
            }
        });
    }
}

/// The broker's count of earlier deliveries: `x-delivery-count` (quorum queues), else 1 for a
/// redelivered message.
fn earlier_deliveries(delivery: &Delivery) -> u64 {
    let counted = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DELIVERY_COUNT_HEADER))
        .and_then(integer)
        .unwrap_or(0);
    counted.max(u64::from(delivery.redelivered))
}

fn integer(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// The message's string headers (the trace context among them); the broker's own (`x-…`) and
/// non-string values are left out.
fn headers(delivery: &Delivery) -> Headers {
    let mut headers = Headers::new();
    if let Some(table) = delivery.properties.headers() {
        for (key, value) in table.inner() {
            let key = key.as_str();
            if key.starts_with("x-") {
                continue;
            }
            match value {
                AMQPValue::LongString(s) => {
                    if let Ok(s) = std::str::from_utf8(s.as_bytes()) {
                        headers.insert(key, s);
                    }
                }
                AMQPValue::ShortString(s) => headers.insert(key, s.as_str()),
                _ => {}
            }
        }
    }
    headers
}

/// Turns one delivery into a delivery of the loop.
fn received<T: DeserializeOwned>(
    queue: &str,
    peer: &[KeyValue],
    delivery: Delivery,
    batch: &Arc<BatchLease>,
) -> Received<T, AmqpReceipt> {
    let earlier = earlier_deliveries(&delivery);
    let id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned());
    let message = match serde_json::from_slice::<T>(&delivery.data) {
        Err(e) => Err(Poison {
            message_id: id,
            reason: format!("bad JSON payload: {e}"),
        }),
        Ok(payload) => {
            let exchange = delivery.exchange.as_str();
            let routing_key = delivery.routing_key.as_str();
            let mut msg = TracedMessage::new(queue, payload)
                .with_headers(headers(&delivery))
                .with_system(SYSTEM)
                .with_retry_count(u32::try_from(earlier).unwrap_or(u32::MAX))
                .with_attribute(KeyValue::new(
                    semconv::MESSAGING_DESTINATION_NAME,
                    consumer_destination(exchange, routing_key, queue),
                ))
                .with_attribute(KeyValue::new(
                    semconv::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
                    i64::try_from(delivery.delivery_tag).unwrap_or(i64::MAX),
                ));
            if !routing_key.is_empty() {
                msg = msg.with_attribute(KeyValue::new(
                    semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
                    routing_key.to_owned(),
                ));
            }
            for kv in peer {
                msg = msg.with_attribute(kv.clone());
            }
            if let Some(id) = id {
                msg = msg.with_message_id(id);
            }
            Ok(msg)
        }
    };
    Received {
        receipt: AmqpReceipt {
            acker: delivery.acker,
            delivery_tag: delivery.delivery_tag,
            settled: AtomicBool::new(false),
            batch: batch.clone(),
        },
        deliveries: earlier + 1,
        message,
    }
}

impl<T: DeserializeOwned> QueueConsumer<T> for AmqpConsumer {
    type Receipt = AmqpReceipt;
    type Error = AmqpQueueError;

    fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    async fn receive_batch(&self) -> Result<Batch<T, AmqpReceipt>, AmqpQueueError> {
        let mut guard = self.live.lock().await;
        if guard
            .as_ref()
            .is_none_or(|live| !live.channel.status().connected())
        {
            *guard = None;
            *guard = Some(self.open().await?);
            self.settings.stats.add_reconnect();
        }
        let live = guard.as_mut().expect("just opened");
        let mut deliveries = Vec::new();
        match tokio::time::timeout(self.config.wait, live.consumer.next()).await {
            // Nothing within the wait: an empty batch.
            Err(_) => {}
            Ok(Some(Ok(delivery))) => deliveries.push(delivery),
            Ok(Some(Err(e))) => {
                *guard = None;
                return Err(broker("basic.consume")(e));
            }
            Ok(None) => {
                // The channel closed (a lapsed max lease, a lost connection) or the broker
                // cancelled the consumer: the next batch opens a new one.
                *guard = None;
                return Err(AmqpQueueError::Cancelled(self.config.queue.clone()));
            }
        }
        // The rest of what the broker has pushed (at most the prefetch), without waiting.
        while !deliveries.is_empty() && deliveries.len() < usize::from(self.config.prefetch.max(1))
        {
            match live.consumer.next().now_or_never() {
                Some(Some(Ok(delivery))) => deliveries.push(delivery),
                _ => break,
            }
        }
        let mut batch = Batch::default();
        if deliveries.is_empty() {
            return Ok(batch);
        }
        let lease = Arc::new(BatchLease {
            remaining: AtomicUsize::new(deliveries.len()),
            done: tokio::sync::Notify::new(),
        });
        self.watch(&lease, &live.channel);
        batch.received = deliveries
            .into_iter()
            .map(|d| received(&self.config.queue, &self.peer, d, &lease))
            .collect();
        Ok(batch)
    }

    async fn ack(&self, receipt: &AmqpReceipt) -> Result<(), AmqpQueueError> {
        receipt.settle("basic.ack", None).await
    }

    /// `basic.reject` with `requeue`; RabbitMQ cannot delay a redelivery, so `delay` is not
    /// used.
    async fn release(
        &self,
        receipt: &AmqpReceipt,
        _delay: Option<Duration>,
    ) -> Result<(), AmqpQueueError> {
        receipt.settle("basic.reject (requeue)", Some(true)).await
    }

    /// `basic.reject` without requeue: the broker moves the message to the dead-letter
    /// exchange, with its reason (`rejected`) in the `x-death` header. A second call for the
    /// same delivery is an error and sends nothing.
    async fn dead_letter(
        &self,
        receipt: &AmqpReceipt,
        _reason: &str,
        _deliveries: u64,
    ) -> Result<(), AmqpQueueError> {
        receipt
            .settle("basic.reject (dead-letter)", Some(false))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::ShortString;

    fn delivery(redelivered: bool, count: Option<AMQPValue>) -> Delivery {
        let mut d = Delivery::mock(1, "".into(), "q".into(), redelivered, b"1".to_vec());
        let mut table = FieldTable::default();
        table.insert("traceparent".into(), AMQPValue::LongString("tp".into()));
        table.insert(
            "x-death".into(),
            AMQPValue::LongString("not a header".into()),
        );
        table.insert("n".into(), AMQPValue::LongInt(1));
        if let Some(count) = count {
            table.insert(ShortString::from(DELIVERY_COUNT_HEADER), count);
        }
        d.properties = d.properties.clone().with_headers(table);
        d
    }

    #[test]
    fn retry_count_is_the_delivery_count_or_the_redelivered_flag() {
        assert_eq!(earlier_deliveries(&delivery(false, None)), 0);
        assert_eq!(earlier_deliveries(&delivery(true, None)), 1);
        assert_eq!(
            earlier_deliveries(&delivery(true, Some(AMQPValue::LongLongInt(3)))),
            3
        );
        assert_eq!(
            earlier_deliveries(&delivery(true, Some(AMQPValue::LongInt(2)))),
            2
        );
        let headers = headers(&delivery(false, None));
        assert_eq!(headers.get("traceparent"), Some("tp"));
        assert_eq!(headers.len(), 1, "{headers:?}");
    }
}
