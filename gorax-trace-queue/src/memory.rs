//! An in-process queue on a bounded tokio channel: the demo's default broker, and a stand-in for
//! a real broker in tests. Redelivery works as with a broker: a message whose handler fails goes
//! back on the queue with `retry_count` one higher, until `max_deliveries`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gorax_trace::SdkTracer;
use tokio::sync::mpsc;
use tower_service::Service;

use crate::{ProducerTracer, TracedMessage};

/// `messaging.system` of this adapter.
pub const SYSTEM: &str = "gorax_memory";

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryQueueError {
    /// Every consumer is gone.
    #[error("the queue {0:?} has no consumer")]
    Closed(String),
}

/// Creates a queue named `queue` holding at most `capacity` messages.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (producer, mut consumer) = gorax_trace_queue::memory::channel::<String>("jobs", 16);
/// producer.send("hello".to_owned()).await.unwrap();
/// let msg = consumer.receive().await.unwrap();
/// assert_eq!((msg.payload().as_str(), msg.message_id(), msg.retry_count()), ("hello", Some("1"), 0));
/// # });
/// ```
pub fn channel<T>(
    queue: impl Into<String>,
    capacity: usize,
) -> (MemoryProducer<T>, MemoryConsumer<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let queue = queue.into();
    let producer = MemoryProducer {
        tx,
        tracer: ProducerTracer::new().with_system(SYSTEM),
        queue: queue.clone(),
        next_id: Arc::new(AtomicU64::new(1)),
    };
    let consumer = MemoryConsumer {
        rx,
        redeliver: VecDeque::new(),
        max_deliveries: 5,
    };
    (producer, consumer)
}

/// Sends messages into an in-memory queue under PRODUCER spans. Cheap to clone.
#[derive(Debug)]
pub struct MemoryProducer<T> {
    tx: mpsc::Sender<TracedMessage<T>>,
    tracer: ProducerTracer,
    queue: String,
    next_id: Arc<AtomicU64>,
}

impl<T> Clone for MemoryProducer<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            tracer: self.tracer.clone(),
            queue: self.queue.clone(),
            next_id: self.next_id.clone(),
        }
    }
}

impl<T> MemoryProducer<T> {
    /// Records spans with this tracer (e.g. from a test provider).
    pub fn with_tracer(mut self, tracer: SdkTracer) -> Self {
        self.tracer = self.tracer.with_tracer(tracer);
        self
    }

    /// Sends `payload` under a `send {queue}` span, child of the current context; returns the
    /// message id (a counter, as a broker would assign one).
    pub async fn send(&self, payload: T) -> Result<String, MemoryQueueError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let mut msg = TracedMessage::new(self.queue.clone(), payload)
            .with_message_id(id.clone())
            .with_system(SYSTEM);
        // The id is known before sending, so the span gets it as a start attribute.
        let span = self.tracer.start_send(&mut msg);
        let result = self
            .tx
            .send(msg)
            .await
            .map(|()| id)
            .map_err(|_| MemoryQueueError::Closed(self.queue.clone()));
        span.finish(&result);
        result
    }
}

/// Receives messages from an in-memory queue.
#[derive(Debug)]
pub struct MemoryConsumer<T> {
    rx: mpsc::Receiver<TracedMessage<T>>,
    // Failed messages waiting for their next delivery: kept here, not sent back into the
    // channel, so that a full channel or dropped producers cannot lose them.
    redeliver: VecDeque<TracedMessage<T>>,
    max_deliveries: u32,
}

impl<T> MemoryConsumer<T> {
    /// How many times a message is delivered before it is dropped (default 5).
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = max.max(1);
        self
    }

    /// The next message (a redelivery first); `None` when every producer is gone and nothing is
    /// left to deliver.
    pub async fn receive(&mut self) -> Option<TracedMessage<T>> {
        match self.redeliver.pop_front() {
            Some(msg) => Some(msg),
            None => self.rx.recv().await,
        }
    }
}

impl<T: Clone> MemoryConsumer<T> {
    /// Receives one message and runs it through `service` (wrap it in
    /// [`ConsumerTraceLayer`](crate::ConsumerTraceLayer) for the consumer span). When the
    /// handler fails, the message goes back on the queue with `retry_count + 1` unless it has had
    /// `max_deliveries`. Returns `None` when the queue is closed and empty, otherwise whether the
    /// handler succeeded.
    pub async fn process<S>(&mut self, service: &mut S) -> Option<bool>
    where
        S: Service<TracedMessage<T>>,
    {
        // Ready before receiving: a service that cannot take work must not cost a message.
        if std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .is_err()
        {
            return Some(false);
        }
        let msg = self.receive().await?;
        let retry = msg.clone();
        match service.call(msg).await {
            Ok(_) => Some(true),
            Err(_) => {
                let next = retry.retry_count() + 1;
                if next < self.max_deliveries {
                    self.redeliver.push_back(retry.with_retry_count(next));
                }
                Some(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConsumerTraceLayer;
    use gorax_trace::semconv;
    use gorax_trace::testing::TestTracing;
    use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
    use tower::ServiceBuilder;

    #[tokio::test]
    async fn one_trace_from_producer_to_consumer_with_redelivery() {
        let t = TestTracing::new();
        let (producer, mut consumer) = channel::<u32>("jobs", 8);
        let producer = producer.with_tracer(t.tracer());
        let tracer = t.tracer();
        {
            let span = tracer.start("request");
            let _active = opentelemetry::Context::current_with_span(span).attach();
            producer.send(7).await.unwrap();
        }
        let attempts = Arc::new(AtomicU64::new(0));
        let seen = attempts.clone();
        let mut worker = ServiceBuilder::new()
            .layer(ConsumerTraceLayer::new().with_tracer(t.tracer()))
            .service(tower::service_fn(move |msg: TracedMessage<u32>| {
                let n = seen.fetch_add(1, Ordering::Relaxed);
                async move {
                    assert_eq!(msg.retry_count() as u64, n);
                    if n == 0 {
                        Err("first delivery fails")
                    } else {
                        Ok(())
                    }
                }
            }));
        assert_eq!(consumer.process(&mut worker).await, Some(false));
        assert_eq!(consumer.process(&mut worker).await, Some(true));

        let spans = t.spans();
        spans.assert_child_of("send jobs", "request");
        let processes = spans.find_all("process jobs");
        assert_eq!(processes.len(), 2);
        let send = spans.find("send jobs");
        assert_eq!(send.span_kind, SpanKind::Producer);
        spans.assert_attr(send, semconv::MESSAGING_SYSTEM, SYSTEM);
        spans.assert_attr(send, semconv::MESSAGING_MESSAGE_ID, "1");
        for (retry, process) in processes.iter().enumerate() {
            assert_eq!(process.parent_span_id, send.span_context.span_id());
            assert_eq!(process.span_kind, SpanKind::Consumer);
            spans.assert_attr(process, semconv::RETRY_COUNT, retry as i64);
            spans.assert_attr(process, semconv::QUEUE_MESSAGE_ID, "1");
        }
    }

    #[tokio::test]
    async fn a_failed_message_survives_dropped_producers_and_a_full_channel() {
        let (producer, mut consumer) = channel::<u32>("jobs", 1);
        producer.send(1).await.unwrap();
        // The handler fills the channel, then fails: the retry must not need channel room.
        let refill = producer.clone();
        let mut fill_then_fail = tower::service_fn(move |_m: TracedMessage<u32>| {
            let refill = refill.clone();
            async move {
                refill.send(2).await.unwrap();
                Err::<(), _>("no")
            }
        });
        assert_eq!(consumer.process(&mut fill_then_fail).await, Some(false));
        drop(fill_then_fail);
        drop(producer);
        let first = consumer.receive().await.unwrap();
        assert_eq!(
            (*first.payload(), first.retry_count()),
            (1, 1),
            "redelivered first"
        );
        let second = consumer.receive().await.unwrap();
        assert_eq!((*second.payload(), second.retry_count()), (2, 0));
        assert!(consumer.receive().await.is_none());
    }

    #[tokio::test]
    async fn gives_up_after_max_deliveries_and_reports_closed_queues() {
        let (producer, consumer) = channel::<u32>("jobs", 8);
        let mut consumer = consumer.with_max_deliveries(2);
        producer.send(1).await.unwrap();
        let mut failing = tower::service_fn(|_m: TracedMessage<u32>| async { Err::<(), _>("no") });
        assert_eq!(consumer.process(&mut failing).await, Some(false));
        assert_eq!(consumer.process(&mut failing).await, Some(false));
        drop(producer);
        // Given up after two deliveries, and the queue closed with its last producer.
        assert_eq!(consumer.process(&mut failing).await, None);
        let (producer, consumer) = channel::<u32>("gone", 1);
        drop(consumer);
        assert!(matches!(producer.send(1).await, Err(MemoryQueueError::Closed(q)) if q == "gone"));
    }
}
