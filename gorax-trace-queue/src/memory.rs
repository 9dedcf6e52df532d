//! An in-process queue: the demo's default broker, and a stand-in for a real broker in tests.
//! Redelivery works as with a broker: a message whose handler fails (or panics) goes back on
//! the queue with `retry_count` one higher, until `max_deliveries`; then it is dead-lettered
//! (kept, with its reason, in [`MemoryConsumer::dead_letters`]), never dropped.
//!
//! Messages belong to the queue, not to a consumer: a message a consumer received but did not
//! finish goes back on the queue when that consumer is dropped (or its `process` call was
//! cancelled), and a new consumer ([`MemoryProducer::subscribe`]) takes over what is left.
//! A send fails ([`MemoryQueueError::Closed`]) while the queue has no consumer at all, and
//! ([`MemoryQueueError::Full`]) when the queue stays full longer than the send may wait: a
//! handler that sends into its own full queue gets that error instead of waiting forever for
//! room only its own return could make.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gorax_trace::SdkTracer;
use tokio::sync::Notify;
use tower_service::Service;

use crate::consumer::{
    Batch, ConsumerSettings, ConsumerStats, HandlerUnavailable, ProcessReport, QueueConsumer,
    Received, process_batch,
};
use crate::{Producer, ProducerTracer, TracedMessage};

/// How long [`MemoryProducer::send`] waits for room by default.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// `messaging.system` of this adapter.
pub const SYSTEM: &str = "gorax_memory";

/// Why a send or a processing call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryQueueError {
    /// Every consumer is gone.
    #[error("the queue {0:?} has no consumer")]
    Closed(String),
    /// The queue stayed full for as long as the send could wait (no wait for `try_send`).
    #[error(
        "the queue {queue:?} is full ({capacity} messages waiting) and no consumer took one within {waited:?}; a handler sending into its own full queue cannot make room"
    )]
    Full {
        /// The queue.
        queue: String,
        /// Its capacity.
        capacity: usize,
        /// How long the send waited for room.
        waited: Duration,
    },
    /// The handler service reported it cannot take messages any more.
    #[error(transparent)]
    Handler(#[from] HandlerUnavailable),
}

/// A message the queue gave up on, and why.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter<T> {
    /// The message as last delivered.
    pub message: TracedMessage<T>,
    /// Why (e.g. [`REASON_MAX_DELIVERIES`](crate::consumer::REASON_MAX_DELIVERIES)).
    pub reason: String,
    /// Its deliveries when it was given up.
    pub deliveries: u64,
}

struct Entry<T> {
    msg: TracedMessage<T>,
    deliveries: u64,
}

struct State<T> {
    ready: VecDeque<Entry<T>>,
    // Received and not yet acknowledged, by message id: (owning consumer, entry).
    inflight: BTreeMap<String, (u64, Entry<T>)>,
    dead: Vec<DeadLetter<T>>,
    consumers: usize,
    producers: usize,
    next_consumer: u64,
}

struct Shared<T> {
    queue: String,
    capacity: usize,
    state: Mutex<State<T>>,
    changed: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_consumer(self: &Arc<Self>, tracer: Option<SdkTracer>) -> MemoryConsumer<T> {
        let id = {
            let mut state = self.lock();
            state.consumers += 1;
            state.next_consumer += 1;
            state.next_consumer
        };
        let mut settings = ConsumerSettings::new(SYSTEM, self.queue.clone());
        if let Some(tracer) = tracer {
            settings.telemetry = gorax_trace::Binding::fixed(tracer);
        }
        MemoryConsumer {
            shared: self.clone(),
            id,
            batch: 1,
            settings,
        }
    }

    /// Puts every message `consumer` holds back at the front of the queue.
    fn requeue_inflight(&self, consumer: u64) {
        let mut state = self.lock();
        let mine: Vec<String> = state
            .inflight
            .iter()
            .filter(|(_, (owner, _))| *owner == consumer)
            .map(|(id, _)| id.clone())
            .collect();
        if mine.is_empty() {
            // Nothing put back: no one to wake (the usual case, once per `process` call).
            return;
        }
        for id in mine.into_iter().rev() {
            if let Some((_, entry)) = state.inflight.remove(&id) {
                state.ready.push_front(entry);
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

/// Creates a queue named `queue` holding at most `capacity` messages waiting for a consumer
/// (redeliveries do not count against it: a retry never waits for room).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (producer, mut consumer) = gorax_trace_queue::memory::channel::<String>("jobs", 16);
/// producer.send_payload("hello".to_owned()).await.unwrap();
/// let msg = consumer.receive().await.unwrap();
/// assert_eq!((msg.payload().as_str(), msg.message_id(), msg.retry_count()), ("hello", Some("1"), 0));
/// # });
/// ```
pub fn channel<T>(
    queue: impl Into<String>,
    capacity: usize,
) -> (MemoryProducer<T>, MemoryConsumer<T>) {
    let queue = queue.into();
    let shared = Arc::new(Shared {
        queue: queue.clone(),
        capacity: capacity.max(1),
        state: Mutex::new(State {
            ready: VecDeque::new(),
            inflight: BTreeMap::new(),
            dead: Vec::new(),
            consumers: 0,
            producers: 1,
            next_consumer: 0,
        }),
        changed: Notify::new(),
    });
    let consumer = shared.new_consumer(None);
    let producer = MemoryProducer {
        shared,
        tracer: ProducerTracer::new().with_system(SYSTEM),
        queue,
        next_id: Arc::new(AtomicU64::new(1)),
        send_timeout: DEFAULT_SEND_TIMEOUT,
    };
    (producer, consumer)
}

/// Sends messages into an in-memory queue under PRODUCER spans. Cheap to clone.
///
/// It implements [`Producer`]: [`send`](Self::send) waits for room at most the send timeout
/// (default [`DEFAULT_SEND_TIMEOUT`]), [`try_send`](Self::try_send) not at all, and both end in
/// [`MemoryQueueError::Full`] rather than hang.
pub struct MemoryProducer<T> {
    shared: Arc<Shared<T>>,
    tracer: ProducerTracer,
    queue: String,
    next_id: Arc<AtomicU64>,
    send_timeout: Duration,
}

impl<T> std::fmt::Debug for MemoryProducer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryProducer")
            .field("queue", &self.queue)
            .field("tracer", &self.tracer)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for MemoryProducer<T> {
    fn clone(&self) -> Self {
        self.shared.lock().producers += 1;
        Self {
            shared: self.shared.clone(),
            tracer: self.tracer.clone(),
            queue: self.queue.clone(),
            next_id: self.next_id.clone(),
            send_timeout: self.send_timeout,
        }
    }
}

impl<T> Drop for MemoryProducer<T> {
    fn drop(&mut self) {
        self.shared.lock().producers -= 1;
        self.shared.changed.notify_waiters();
    }
}

impl<T> MemoryProducer<T> {
    /// Records with this handle (its tracer, propagators and metrics).
    pub fn with_telemetry(mut self, telemetry: impl Into<gorax_trace::TelemetryHandle>) -> Self {
        self.tracer = self.tracer.clone().with_telemetry(telemetry);
        self
    }

    /// Records spans with this tracer (e.g. from a test provider).
    pub fn with_tracer(mut self, tracer: SdkTracer) -> Self {
        self.tracer = self.tracer.clone().with_tracer(tracer);
        self
    }

    /// A new consumer of this queue (e.g. to take over after a consumer was dropped).
    pub fn subscribe(&self) -> MemoryConsumer<T> {
        self.shared.new_consumer(None)
    }

    /// Messages waiting for a consumer, received and unfinished, and dead-lettered.
    pub fn counts(&self) -> (usize, usize, usize) {
        let state = self.shared.lock();
        (state.ready.len(), state.inflight.len(), state.dead.len())
    }

    /// How long [`send`](Self::send) waits for room in a full queue (default
    /// [`DEFAULT_SEND_TIMEOUT`]).
    pub fn with_send_timeout(mut self, wait: Duration) -> Self {
        self.send_timeout = wait;
        self
    }

    /// Sends `msg` under a `send {queue}` span, child of the current context; returns the
    /// message id (a counter, as a broker would assign one, replacing any id `msg` had). The
    /// message goes to this queue whatever its queue name says. Waits for room at most the
    /// send timeout, then fails with [`MemoryQueueError::Full`].
    pub async fn send(&self, msg: TracedMessage<T>) -> Result<String, MemoryQueueError> {
        self.send_within(msg, Some(self.send_timeout)).await
    }

    /// [`send`](Self::send) of a new message with `payload`.
    pub async fn send_payload(&self, payload: T) -> Result<String, MemoryQueueError> {
        self.send(TracedMessage::new(self.queue.clone(), payload))
            .await
    }

    /// Sends `msg` only if the queue has room now; [`MemoryQueueError::Full`] otherwise.
    pub async fn try_send(&self, msg: TracedMessage<T>) -> Result<String, MemoryQueueError> {
        self.send_within(msg, None).await
    }

    /// Sends `msg`, waiting for room at most `wait`.
    pub async fn send_timeout(
        &self,
        msg: TracedMessage<T>,
        wait: Duration,
    ) -> Result<String, MemoryQueueError> {
        self.send_within(msg, Some(wait)).await
    }

    async fn send_within(
        &self,
        msg: TracedMessage<T>,
        wait: Option<Duration>,
    ) -> Result<String, MemoryQueueError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let mut msg = msg.with_message_id(id.clone()).with_system(SYSTEM);
        // The id is known before sending, so the span gets it as a start attribute.
        let span = self.tracer.start_send(&mut msg);
        let result = self.push(msg, wait).await.map(|()| id);
        span.finish(&result);
        result
    }

    async fn push(
        &self,
        msg: TracedMessage<T>,
        wait: Option<Duration>,
    ) -> Result<(), MemoryQueueError> {
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let full = || MemoryQueueError::Full {
            queue: self.queue.clone(),
            capacity: self.shared.capacity,
            waited: wait.unwrap_or_default(),
        };
        let mut msg = Some(msg);
        loop {
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if state.consumers == 0 {
                    return Err(MemoryQueueError::Closed(self.queue.clone()));
                }
                if state.ready.len() < self.shared.capacity {
                    let msg = msg.take().expect("pushed once");
                    state.ready.push_back(Entry { msg, deliveries: 0 });
                    drop(state);
                    self.shared.changed.notify_waiters();
                    return Ok(());
                }
            }
            let Some(deadline) = deadline else {
                return Err(full());
            };
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(full());
            }
        }
    }
}

impl<T: Send> Producer<T> for MemoryProducer<T> {
    type Error = MemoryQueueError;

    async fn send(&self, msg: TracedMessage<T>) -> Result<String, MemoryQueueError> {
        MemoryProducer::send(self, msg).await
    }

    async fn try_send(&self, msg: TracedMessage<T>) -> Result<String, MemoryQueueError> {
        MemoryProducer::try_send(self, msg).await
    }

    async fn send_timeout(
        &self,
        msg: TracedMessage<T>,
        wait: Duration,
    ) -> Result<String, MemoryQueueError> {
        MemoryProducer::send_timeout(self, msg, wait).await
    }
}

/// Receives messages from an in-memory queue.
///
/// Defaults: one message per [`process`](Self::process) call, 5 deliveries before a message
/// is dead-lettered. A released (failed) message is delivered again at once: this queue has
/// no retry delay and no lease (nothing takes a message from a live consumer).
pub struct MemoryConsumer<T> {
    shared: Arc<Shared<T>>,
    id: u64,
    batch: usize,
    settings: ConsumerSettings,
}

impl<T> std::fmt::Debug for MemoryConsumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryConsumer")
            .field("queue", &self.shared.queue)
            .field("id", &self.id)
            .field("batch", &self.batch)
            .field("max_deliveries", &self.settings.max_deliveries)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for MemoryConsumer<T> {
    fn drop(&mut self) {
        // What this consumer received and did not finish goes back on the queue.
        self.shared.requeue_inflight(self.id);
        self.shared.lock().consumers -= 1;
        self.shared.changed.notify_waiters();
    }
}

impl<T> MemoryConsumer<T> {
    /// How many times a message is delivered before it is dead-lettered (default 5; at least 1).
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.settings.max_deliveries = max.max(1);
        self
    }

    /// Messages per [`process`](Self::process) call (default 1; at least 1).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Records the dead-letter spans with this handle.
    pub fn with_telemetry(mut self, telemetry: impl Into<gorax_trace::TelemetryHandle>) -> Self {
        self.settings.telemetry = gorax_trace::Binding::fixed(telemetry);
        self
    }

    /// Records the dead-letter spans with this tracer (e.g. from a test provider).
    pub fn with_tracer(mut self, tracer: SdkTracer) -> Self {
        self.settings.telemetry = gorax_trace::Binding::fixed(tracer);
        self
    }

    /// The counters of this consumer.
    pub fn stats(&self) -> &ConsumerStats {
        &self.settings.stats
    }

    /// The next message (a redelivery first), taken off the queue: nothing acknowledges it,
    /// and it is not redelivered. `None` when every producer is gone and nothing is left to
    /// deliver. [`process`](Self::process) is the at-least-once way.
    pub async fn receive(&mut self) -> Option<TracedMessage<T>> {
        loop {
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if let Some(entry) = state.ready.pop_front() {
                    drop(state);
                    self.shared.changed.notify_waiters();
                    let retry = u32::try_from(entry.deliveries).unwrap_or(u32::MAX);
                    return Some(entry.msg.with_retry_count(retry));
                }
                if state.producers == 0 {
                    return None;
                }
            }
            changed.await;
        }
    }
}

impl<T: Clone> MemoryConsumer<T> {
    /// The messages given up on (past the maximum deliveries), with their reasons.
    pub fn dead_letters(&self) -> Vec<DeadLetter<T>> {
        self.shared.lock().dead.clone()
    }

    /// Receives one message and runs it through `service` (wrap it in
    /// [`ConsumerTraceLayer`](crate::ConsumerTraceLayer) for the consumer span), with the
    /// shared loop ([`process_batch`]): acknowledged on `Ok`; on `Err` or a panic delivered
    /// again with `retry_count + 1`; dead-lettered once past `max_deliveries`. Returns `None`
    /// when the queue is closed and empty, otherwise whether a handler succeeded
    /// ([`process_report`](Self::process_report) says more).
    pub async fn process<S>(&mut self, service: &mut S) -> Option<bool>
    where
        S: Service<TracedMessage<T>>,
        S::Error: std::fmt::Display,
    {
        match self.process_report(service).await {
            Ok(report) if report.closed => None,
            Ok(report) => Some(report.acked > 0),
            Err(_) => Some(false),
        }
    }

    /// [`process`](Self::process) with the full report.
    pub async fn process_report<S>(
        &mut self,
        service: &mut S,
    ) -> Result<ProcessReport, MemoryQueueError>
    where
        S: Service<TracedMessage<T>>,
        S::Error: std::fmt::Display,
    {
        // Left over from a cancelled call: back on the queue before receiving more.
        self.shared.requeue_inflight(self.id);
        process_batch(&*self, service).await
    }
}

impl<T: Clone> QueueConsumer<T> for MemoryConsumer<T> {
    type Receipt = String;
    type Error = MemoryQueueError;

    fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    async fn receive_batch(&self) -> Result<Batch<T, String>, MemoryQueueError> {
        loop {
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if !state.ready.is_empty() {
                    let mut batch = Batch::default();
                    while batch.received.len() < self.batch {
                        let Some(mut entry) = state.ready.pop_front() else {
                            break;
                        };
                        entry.deliveries += 1;
                        let retry = u32::try_from(entry.deliveries - 1).unwrap_or(u32::MAX);
                        let msg = entry.msg.clone().with_retry_count(retry);
                        let id = msg.message_id().unwrap_or_default().to_owned();
                        batch.received.push(Received {
                            receipt: id.clone(),
                            deliveries: entry.deliveries,
                            message: Ok(msg),
                        });
                        state.inflight.insert(id, (self.id, entry));
                    }
                    drop(state);
                    self.shared.changed.notify_waiters();
                    return Ok(batch);
                }
                if state.producers == 0 && !state.inflight.values().any(|(o, _)| *o != self.id) {
                    return Ok(Batch {
                        closed: true,
                        ..Batch::default()
                    });
                }
            }
            changed.await;
        }
    }

    async fn ack(&self, receipt: &String) -> Result<(), MemoryQueueError> {
        self.shared.lock().inflight.remove(receipt);
        Ok(())
    }

    async fn release(&self, receipt: &String, _delay: Option<Duration>) -> Result<(), Self::Error> {
        let mut state = self.shared.lock();
        if let Some((_, entry)) = state.inflight.remove(receipt) {
            // Redeliveries first, as a broker's pending entries are reclaimed first.
            state.ready.push_front(entry);
        }
        drop(state);
        self.shared.changed.notify_waiters();
        Ok(())
    }

    async fn dead_letter(
        &self,
        receipt: &String,
        reason: &str,
        deliveries: u64,
    ) -> Result<(), MemoryQueueError> {
        let mut state = self.shared.lock();
        if let Some((_, entry)) = state.inflight.remove(receipt) {
            state.dead.push(DeadLetter {
                message: entry.msg,
                reason: reason.to_owned(),
                deliveries,
            });
        }
        Ok(())
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
            producer.send_payload(7).await.unwrap();
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
        producer.send_payload(1).await.unwrap();
        // The handler fills the channel, then fails: the retry must not need channel room.
        let refill = producer.clone();
        let mut fill_then_fail = tower::service_fn(move |_m: TracedMessage<u32>| {
            let refill = refill.clone();
            async move {
                refill.send_payload(2).await.unwrap();
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
        producer.send_payload(1).await.unwrap();
        let mut failing = tower::service_fn(|_m: TracedMessage<u32>| async { Err::<(), _>("no") });
        assert_eq!(consumer.process(&mut failing).await, Some(false));
        assert_eq!(consumer.process(&mut failing).await, Some(false));
        drop(producer);
        // Given up after two deliveries: dead-lettered (kept, with the reason), not dropped.
        let report = consumer.process_report(&mut failing).await.unwrap();
        assert_eq!(
            (report.dead_lettered, report.acked, report.failed),
            (1, 0, 0)
        );
        let dead = consumer.dead_letters();
        assert_eq!((dead.len(), dead[0].reason.as_str()), (1, "max deliveries"));
        assert_eq!(consumer.stats().snapshot().dead_lettered, 1);
        // And the queue closed with its last producer.
        assert_eq!(consumer.process(&mut failing).await, None);
        let (producer, consumer) = channel::<u32>("gone", 1);
        drop(consumer);
        assert!(
            matches!(producer.send_payload(1).await, Err(MemoryQueueError::Closed(q)) if q == "gone")
        );
    }
}
