//! One consumer contract for every broker ([`QueueConsumer`]) and one processing loop
//! ([`process_batch`]) that drives the handler, so adapters contain only broker calls.
//!
//! The loop, for each delivery of a batch:
//! - a delivery the adapter could not decode (a poison entry: bad field name, bad JSON, missing
//!   payload) is dead-lettered with the reason;
//! - a delivery past [`ConsumerSettings::max_deliveries`] is dead-lettered (`max deliveries`),
//!   whatever the adapter;
//! - otherwise the handler runs, with the panic caught ([`FutureExt::catch_unwind`]);
//! - from the moment the batch is received, every delivery of it not yet acknowledged, released
//!   or dead-lettered keeps its lease: the adapter's [`LeaseKeeper`] (a dedicated thread with a
//!   connection of its own) renews them every [`ConsumerSettings::lease_interval`] (Redis
//!   `XCLAIM … JUSTID`, SQS `ChangeMessageVisibilityBatch`) until
//!   [`ConsumerSettings::max_lease`], so neither a long batch of short handlers nor a handler
//!   that blocks its thread lets a healthy consumer take the batch's work over;
//! - `Ok` acknowledges; `Err` or a panic releases the delivery for a retry (after
//!   [`ConsumerSettings::retry_delay`] where the broker can delay).
//!
//! A broker error on one delivery (an ack, a retry, a dead-letter move) is counted in
//! [`ProcessReport::errors`] and in [`ConsumerStats`], and the batch goes on: no head-of-line
//! blocking. Only a failed receive (after the adapter's own reconnect attempts) or a handler
//! service that is no longer ready returns an error.
//!
//! Every dead-lettered delivery gets a CONSUMER span `process {queue}` of its own (the attempt
//! that dead-letters it, in the message's trace when its context is readable), with status
//! Error, the [`DEAD_LETTER_EVENT`] event and the [`DEAD_LETTER_REASON`] attribute, and is counted
//! in [`StatsSnapshot::dead_lettered`].
//!
//! # At-least-once
//!
//! Every adapter delivers each message at least once: a message is removed from the broker only
//! after its handler returned `Ok` (or it was dead-lettered). A consumer that dies, or loses its
//! connection, between the handler's `Ok` and the acknowledgement makes the message come back:
//! handlers must be idempotent (or deduplicate on [`TracedMessage::message_id`]).

use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use gorax_trace::Binding;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use tower_service::Service;

use crate::TracedMessage;
use crate::attributes::{self, PROCESS};
use crate::lease::{Held, HoldGuard};
pub use crate::lease::{LeaseKeeper, LeaseRenewer};
pub use crate::stats::{ConsumerStats, StatsSnapshot};

pub use gorax_trace::semconv::{DEAD_LETTER_EVENT, DEAD_LETTER_REASON, DELIVERY_COUNT};
/// The default [`ConsumerSettings::max_lease`].
pub const DEFAULT_MAX_LEASE: Duration = Duration::from_secs(15 * 60);
/// The dead-letter reason of a message delivered more than the maximum number of times.
pub const REASON_MAX_DELIVERIES: &str = "max deliveries";

/// Why a delivery could not be turned into a [`TracedMessage`]: it is dead-lettered with
/// [`reason`](Self::reason).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Poison {
    /// The broker's id of the entry, when known.
    pub message_id: Option<String>,
    /// What is wrong with it (e.g. `field name is not UTF-8`, `bad JSON payload: …`).
    pub reason: String,
}

impl Poison {
    /// A delivery that cannot be decoded, and why.
    pub fn new(message_id: Option<String>, reason: impl Into<String>) -> Self {
        Self {
            message_id,
            reason: reason.into(),
        }
    }
}

/// One delivery of a batch: the broker's receipt (what acknowledges it), its delivery count and
/// the decoded message (or why it could not be decoded).
#[derive(Debug)]
#[non_exhaustive]
pub struct Received<T, R> {
    /// What [`QueueConsumer::ack`] and the other calls take (an entry id, a receipt handle).
    pub receipt: R,
    /// How many times the broker delivered it, this delivery included (1 on the first).
    pub deliveries: u64,
    /// The message, or the reason it is poison.
    pub message: Result<TracedMessage<T>, Poison>,
}

impl<T, R> Received<T, R> {
    /// One delivery, for an adapter's [`QueueConsumer::receive_batch`].
    pub fn new(receipt: R, deliveries: u64, message: Result<TracedMessage<T>, Poison>) -> Self {
        Self {
            receipt,
            deliveries,
            message,
        }
    }
}

/// What one [`QueueConsumer::receive_batch`] returned (start from [`Batch::default`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Batch<T, R> {
    /// The deliveries, in broker order.
    pub received: Vec<Received<T, R>>,
    /// Ids of messages the broker reported gone before they were processed (a Redis stream
    /// trimmed by `MAXLEN` while entries were pending). The adapter has already written a
    /// dead-letter record for each; the loop counts them.
    pub lost: Vec<String>,
    /// Poison deliveries the adapter left in the queue for the broker's own dead-lettering
    /// (an SQS redrive policy), each counted and traced.
    pub left: usize,
    /// No message will ever come (every producer of an in-process queue is gone).
    pub closed: bool,
}

impl<T, R> Default for Batch<T, R> {
    fn default() -> Self {
        Self {
            received: Vec::new(),
            lost: Vec::new(),
            left: 0,
            closed: false,
        }
    }
}

/// The error of a handler service that is no longer ready ([`Service::poll_ready`] failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the handler service failed: {0}")]
pub struct HandlerUnavailable(pub String);

/// The settings the processing loop reads from a consumer: the same meaning for every broker.
/// Start from [`ConsumerSettings::new`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerSettings {
    /// Deliveries after which a message is dead-lettered instead of handled again (at least 1).
    pub max_deliveries: u32,
    /// How often the leases of the deliveries of a batch are renewed, from its receipt until
    /// each is finished (`None`: never; the broker has no lease or the adapter cannot extend
    /// it).
    pub lease_interval: Option<Duration>,
    /// How long a batch may keep its leases from its receipt (default 15 minutes): after
    /// that they are no longer renewed, so a handler that hangs cannot hold its messages
    /// forever; another consumer takes them over once they lapse (a possible duplicate if the
    /// handler does finish). `None`: no limit.
    pub max_lease: Option<Duration>,
    /// The delay before a failed (or panicked) delivery is delivered again, where the broker can
    /// delay one (`None`: the broker's own timing).
    pub retry_delay: Option<Duration>,
    /// Which telemetry records the dead-letter spans (default: the installed handle, resolved
    /// when a span starts).
    pub telemetry: Binding,
    /// `messaging.system` of the dead-letter spans.
    pub system: &'static str,
    /// The queue (stream) name, for the spans of deliveries that cannot be decoded.
    pub queue: String,
    /// The counters (shared by clones of the consumer).
    pub stats: Arc<ConsumerStats>,
}

impl ConsumerSettings {
    /// Settings for `system` and `queue` with 5 deliveries, no lease extension and no retry
    /// delay; spans go to the installed [`Telemetry`](gorax_trace::Telemetry).
    pub fn new(system: &'static str, queue: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            max_deliveries: 5,
            lease_interval: None,
            max_lease: Some(DEFAULT_MAX_LEASE),
            retry_delay: None,
            telemetry: Binding::installed(),
            system,
            stats: Arc::default(),
        }
    }
}

/// What one [`process_batch`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessReport {
    /// Messages whose handler succeeded (acknowledged).
    pub acked: usize,
    /// Messages whose handler failed or panicked (released: delivered again later).
    pub failed: usize,
    /// Of `failed`, the handler panics (caught; the attempt's span is an error of type `panic`).
    pub panicked: usize,
    /// Messages moved to the dead-letter destination instead of being handled (poison, past
    /// the maximum deliveries), plus records written for `lost` ones.
    pub dead_lettered: usize,
    /// Messages the broker reported gone before processing (recorded as dead letters).
    pub lost: usize,
    /// Poison deliveries left in the queue for the broker's own dead-lettering (an SQS redrive
    /// policy, when the consumer has no dead-letter queue).
    pub left: usize,
    /// Broker calls on single deliveries that failed (the batch went on; the delivery comes
    /// back when its lease ends).
    pub errors: usize,
    /// No message will ever come again (in-process queue closed and empty).
    pub closed: bool,
}

impl ProcessReport {
    /// Deliveries handled or dead-lettered by this call.
    pub fn total(&self) -> usize {
        self.acked + self.failed + self.dead_lettered
    }
}

/// The contract every broker adapter implements: receive a batch, acknowledge, release for a
/// retry, dead-letter with a reason, extend leases. [`process_batch`] drives it.
///
/// Methods take `&self`: one consumer may process several batches at once.
pub trait QueueConsumer<T> {
    /// What acknowledges one delivery (an entry id, a receipt handle).
    type Receipt: Send + Sync + 'static;
    /// The adapter's error.
    type Error: std::error::Error + From<HandlerUnavailable> + Send + Sync + 'static;

    /// The loop's settings.
    fn settings(&self) -> &ConsumerSettings;

    /// The next batch (may be empty after waiting the adapter's block or wait time).
    fn receive_batch(&self) -> impl Future<Output = Result<Batch<T, Self::Receipt>, Self::Error>>;

    /// The handler succeeded: the delivery will not come back.
    fn ack(&self, receipt: &Self::Receipt) -> impl Future<Output = Result<(), Self::Error>>;

    /// The handler failed or panicked: the delivery comes back, after `delay` where the broker
    /// can delay it.
    fn release(
        &self,
        receipt: &Self::Receipt,
        delay: Option<Duration>,
    ) -> impl Future<Output = Result<(), Self::Error>>;

    /// Moves the delivery to the dead-letter destination with `reason` and its delivery count,
    /// and removes it from the queue. Must not duplicate the dead letter when called again for
    /// the same delivery after a partial failure, where the broker allows.
    fn dead_letter(
        &self,
        receipt: &Self::Receipt,
        reason: &str,
        deliveries: u64,
    ) -> impl Future<Output = Result<(), Self::Error>>;

    /// The lease thread that keeps the leases of a batch from its receipt until each
    /// delivery is finished (default: none, for a broker without leases).
    fn lease_keeper(&self) -> Option<&LeaseKeeper<Self::Receipt>> {
        None
    }
}

/// Receives one batch from `consumer` and runs each message through `service` (usually wrapped
/// in [`ConsumerTraceLayer`](crate::ConsumerTraceLayer)), as the [module docs](self) describe.
pub async fn process_batch<C, T, S>(
    consumer: &C,
    service: &mut S,
) -> Result<ProcessReport, C::Error>
where
    C: QueueConsumer<T>,
    S: Service<TracedMessage<T>>,
    S::Error: std::fmt::Display,
{
    // Ready before receiving: a service that cannot take work must not cost a delivery.
    ready(service).await?;
    let batch = consumer.receive_batch().await.inspect_err(|_| {
        consumer.settings().stats.add_broker_error();
    })?;
    let settings = consumer.settings();
    let stats = &settings.stats;
    let mut report = ProcessReport {
        lost: batch.lost.len(),
        dead_lettered: batch.lost.len(),
        left: batch.left,
        closed: batch.closed && batch.received.is_empty(),
        ..ProcessReport::default()
    };
    stats
        .lost
        .fetch_add(batch.lost.len() as u64, Ordering::Relaxed);
    stats
        .dead_lettered
        .fetch_add(batch.lost.len() as u64, Ordering::Relaxed);
    // Sized once (`unzip` grows both lists push by push); the receipts reuse the batch's list.
    let mut items = Vec::with_capacity(batch.received.len());
    let receipts: Vec<_> = batch
        .received
        .into_iter()
        .map(|r| {
            items.push((r.deliveries, r.message));
            r.receipt
        })
        .collect();
    // Leased from now on, every delivery, until it is finished or the batch is over (no lease
    // bookkeeping, and no allocation for it, for a broker without leases).
    let held = match consumer.lease_keeper() {
        Some(keeper) if !receipts.is_empty() => {
            let held = Arc::new(Held::new(receipts, settings.max_lease));
            keeper.hold(held.clone());
            BatchLease::Held(HoldGuard(held))
        }
        _ => BatchLease::None(receipts),
    };
    let receipts = held.receipts();
    for (i, (deliveries, message)) in items.into_iter().enumerate() {
        let receipt = &receipts[i];
        let (msg, id, reason) = match message {
            Err(poison) => {
                stats.poison.fetch_add(1, Ordering::Relaxed);
                (None, poison.message_id, poison.reason)
            }
            Ok(msg) if deliveries > u64::from(settings.max_deliveries) => {
                (Some(msg), None, REASON_MAX_DELIVERIES.to_owned())
            }
            Ok(msg) => {
                if let Err(e) = ready(service).await {
                    // Give the rest of the batch back at once rather than after its lease.
                    held.finish_all();
                    for receipt in &receipts[i..] {
                        let _ = consumer.release(receipt, None).await;
                    }
                    return Err(e);
                }
                let outcome = handle(service, msg).await;
                // Finished either way: no renewal may race the ack or the release.
                held.finish(i);
                match outcome {
                    Outcome::Ok => match consumer.ack(receipt).await {
                        Ok(()) => {
                            report.acked += 1;
                            stats.acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            report.errors += 1;
                            stats.add_broker_error();
                        }
                    },
                    Outcome::Failed | Outcome::Panicked => {
                        report.failed += 1;
                        if outcome == Outcome::Panicked {
                            report.panicked += 1;
                            stats.panicked.fetch_add(1, Ordering::Relaxed);
                        } else {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        if consumer
                            .release(receipt, settings.retry_delay)
                            .await
                            .is_err()
                        {
                            report.errors += 1;
                            stats.add_broker_error();
                        }
                    }
                }
                continue;
            }
        };
        let span = dead_letter_span(settings, msg.as_ref(), id.as_deref(), deliveries, &reason);
        held.finish(i);
        match consumer.dead_letter(receipt, &reason, deliveries).await {
            Ok(()) => {
                report.dead_lettered += 1;
                stats.add_dead_lettered();
            }
            Err(e) => {
                report.errors += 1;
                stats.add_broker_error();
                attributes::record_error(&span.span(), &e);
            }
        }
        span.span().end();
    }
    Ok(report)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    Panicked,
}

async fn ready<S, T, E>(service: &mut S) -> Result<(), E>
where
    S: Service<TracedMessage<T>>,
    S::Error: std::fmt::Display,
    E: From<HandlerUnavailable>,
{
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .map_err(|e| HandlerUnavailable(e.to_string()).into())
}

/// The receipts of a batch, held by the lease thread or not.
enum BatchLease<R> {
    None(Vec<R>),
    Held(HoldGuard<R>),
}

impl<R> BatchLease<R> {
    fn receipts(&self) -> &[R] {
        match self {
            Self::None(receipts) => receipts,
            Self::Held(guard) => &guard.0.receipts,
        }
    }

    fn finish(&self, i: usize) {
        if let Self::Held(guard) = self {
            guard.0.finish(i);
        }
    }

    fn finish_all(&self) {
        if let Self::Held(guard) = self {
            guard.0.finish_all();
        }
    }
}

/// Runs the handler with its panic caught.
async fn handle<T, S>(service: &mut S, msg: TracedMessage<T>) -> Outcome
where
    S: Service<TracedMessage<T>>,
{
    // The call itself may panic (a `service_fn` closure runs in it), and so may the future.
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| service.call(msg))) {
        Ok(future) => future,
        Err(_) => return Outcome::Panicked,
    };
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(_)) => Outcome::Ok,
        Ok(Err(_)) => Outcome::Failed,
        Err(_) => Outcome::Panicked,
    }
}

/// The CONSUMER span of the attempt that dead-letters a delivery: in the message's trace when
/// its creation context is readable, a root otherwise.
fn dead_letter_span<T>(
    settings: &ConsumerSettings,
    msg: Option<&TracedMessage<T>>,
    id: Option<&str>,
    deliveries: u64,
    reason: &str,
) -> Context {
    let telemetry = settings.telemetry.get();
    let tracer = crate::tracer(&telemetry);
    let parent = msg
        .map(|m| telemetry.extract(m.headers()))
        .filter(|cx| cx.span().span_context().is_valid())
        .unwrap_or_else(Context::current);
    let span = tracer
        .span_builder(PROCESS)
        .with_kind(SpanKind::Consumer)
        .start_with_context(tracer, &parent);
    let cx = parent.with_span(span);
    let span = cx.span();
    if span.is_recording() {
        if let Some(msg) = msg {
            span.update_name(attributes::span_name(PROCESS, msg.queue()));
            span.set_attributes(attributes::message_attributes(
                msg.system_name()
                    .cloned()
                    .unwrap_or(Cow::Borrowed(settings.system)),
                PROCESS,
                msg,
            ));
        } else {
            span.update_name(attributes::span_name(PROCESS, &settings.queue));
            span.set_attributes(attributes::queue_attributes(
                settings.system,
                &settings.queue,
            ));
            if let Some(id) = id {
                span.set_attributes(attributes::message_id_attributes(id));
            }
        }
        span.set_attribute(KeyValue::new(DEAD_LETTER_REASON, reason.to_owned()));
        span.set_attribute(KeyValue::new(
            DELIVERY_COUNT,
            i64::try_from(deliveries).unwrap_or(i64::MAX),
        ));
        span.add_event(
            DEAD_LETTER_EVENT,
            vec![KeyValue::new(DEAD_LETTER_REASON, reason.to_owned())],
        );
        span.set_status(Status::error(format!("dead-lettered: {reason}")));
    }
    cx
}

/// Records a dead-letter span for a message an adapter dead-letters outside the loop (e.g. an
/// entry reported gone). Returns nothing; the span is ended.
#[cfg(any(feature = "redis", feature = "sqs"))]
pub(crate) fn record_dead_letter_outside(settings: &ConsumerSettings, id: &str, reason: &str) {
    dead_letter_span::<()>(settings, None, Some(id), 0, reason)
        .span()
        .end();
}
