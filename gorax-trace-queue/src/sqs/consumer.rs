use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName,
};
use gorax_trace::SdkTracer;
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::{
    DEAD_LETTER_ATTRIBUTE, DEAD_LETTER_DELIVERIES_ATTRIBUTE, DEAD_LETTER_REASON_ATTRIBUTE,
    DEAD_LETTER_SOURCE_ATTRIBUTE, MAX_MESSAGE_ATTRIBUTES, SYSTEM, SqsQueueError,
    attributes_to_headers, pack_trace_context, string_attribute,
};
use crate::TracedMessage;
use crate::consumer::{
    Batch, ConsumerSettings, ConsumerStats, LeaseKeeper, LeaseRenewer, Poison, ProcessReport,
    QueueConsumer, REASON_MAX_DELIVERIES, Received, process_batch, record_dead_letter_outside,
};

/// The longest long poll SQS allows.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// The most messages one `ReceiveMessage` returns.
const MAX_BATCH: usize = 10;
/// Ids remembered as already copied to the dead-letter queue (their delete failed).
const MOVED_MEMORY: usize = 10_000;

/// One received message and the receipt handle that acknowledges it.
#[derive(Debug, Clone)]
pub struct Delivery<T> {
    message: TracedMessage<T>,
    receipt_handle: String,
    receive_count: u64,
}

impl<T> Delivery<T> {
    /// The message (queue name, SQS message id, `retry_count`, headers, payload).
    pub fn message(&self) -> &TracedMessage<T> {
        &self.message
    }

    /// The message, mutably.
    pub fn message_mut(&mut self) -> &mut TracedMessage<T> {
        &mut self.message
    }

    /// The receipt handle of this delivery (for `DeleteMessage`, `ChangeMessageVisibility`).
    pub fn receipt_handle(&self) -> &str {
        &self.receipt_handle
    }

    /// `ApproximateReceiveCount`: this delivery included (1 on the first).
    pub fn receive_count(&self) -> u64 {
        self.receive_count
    }

    /// Unwraps the message.
    pub fn into_message(self) -> TracedMessage<T> {
        self.message
    }

    /// The message and the receipt handle.
    pub fn into_parts(self) -> (TracedMessage<T>, String) {
        (self.message, self.receipt_handle)
    }
}

/// What acknowledges one SQS delivery, with what a dead-letter copy needs.
#[derive(Debug, Clone)]
pub struct SqsReceipt {
    handle: String,
    message: Arc<Message>,
}

impl SqsReceipt {
    /// The receipt handle.
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// The SQS message id.
    pub fn message_id(&self) -> &str {
        self.message.message_id().unwrap_or_default()
    }
}

/// Receives from one SQS queue.
///
/// Defaults (each changed by a `with_*` method):
/// - wait time: 1 s (`WaitTimeSeconds`, long polling; whole seconds, at most 20);
/// - batch size: 10 messages per call (SQS's maximum);
/// - visibility timeout: the queue's own (read at [`connect`](Self::connect)). From the moment
///   a batch is received, every message of it not yet deleted is kept invisible
///   (`ChangeMessageVisibilityBatch` every third of the timeout, until `max_lease`) by the
///   consumer's lease thread, with an HTTP client and a runtime of its own, so neither a long
///   batch nor a handler that blocks its thread lets another consumer receive them. (A client
///   whose queue URL is `https://` keeps its own HTTP client for renewals unless the
///   `sqs-rustls` feature gives the thread one: then a handler blocking the only thread of a
///   `current_thread` runtime can stall renewals.) A consumer made with
///   [`with_queue_url`](Self::with_queue_url) extends leases only once given a timeout with
///   [`with_visibility_timeout`](Self::with_visibility_timeout);
/// - retry delay: none (a failed message comes back when its visibility timeout ends); with
///   one, a failed message is made visible again after that delay (`ChangeMessageVisibility`);
/// - dead-lettering: the queue's redrive policy when it has one (read at
///   [`connect`](Self::connect)): SQS moves a message after `maxReceiveCount` receives, one
///   copy whatever the number of consumers. The consumer then never copies: a body that does
///   not decode is made visible again at once (so the policy moves it sooner), and is counted
///   ([`ConsumerStats`]'s `poison`, [`ProcessReport::left`]) and traced on every delivery,
///   never skipped silently. Without a redrive policy,
///   [`with_dead_letter_queue`](Self::with_dead_letter_queue) makes the consumer move messages
///   itself (see there for its duplicate window); without either, undecodable bodies are left,
///   counted and traced as above.
#[derive(Clone)]
pub struct SqsConsumer {
    client: aws_sdk_sqs::Client,
    queue: String,
    url: String,
    wait: Duration,
    batch: usize,
    visibility_timeout: Option<Duration>,
    // The visibility timeout leases are renewed to (this consumer's, or the queue's).
    visibility: Option<Duration>,
    dead_letter: Option<String>,
    // The source queue's redrive policy `maxReceiveCount`, when it has one.
    redrive: Option<u32>,
    lease: Arc<OnceLock<Option<LeaseKeeper<SqsReceipt>>>>,
    // Messages already copied to the dead-letter queue whose delete failed: the next attempt
    // only deletes, so one failed delete cannot make a second copy.
    moved: Arc<Mutex<HashSet<String>>>,
    settings: ConsumerSettings,
}

impl std::fmt::Debug for SqsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsConsumer")
            .field("queue", &self.queue)
            .field("url", &self.url)
            .field("wait", &self.wait)
            .field("batch", &self.batch)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("retry_delay", &self.settings.retry_delay)
            .field("dead_letter", &self.dead_letter)
            .field("max_deliveries", &self.settings.max_deliveries)
            .finish_non_exhaustive()
    }
}

impl SqsConsumer {
    /// A consumer of the queue named `queue`, whose URL is looked up (`GetQueueUrl`) and whose
    /// visibility timeout is read (`GetQueueAttributes`) for lease extension.
    pub async fn connect(
        client: aws_sdk_sqs::Client,
        queue: impl Into<String>,
    ) -> Result<Self, SqsQueueError> {
        let queue = queue.into();
        let url = get_queue_url(&client, &queue).await?;
        let out = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(SqsQueueError::sqs)?;
        let attrs = out.attributes();
        let visibility = attrs
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let redrive = attrs
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
            .and_then(|v| max_receive_count(v));
        let mut consumer = Self::with_queue_url(client, queue, url);
        consumer.settings.lease_interval = visibility.and_then(lease_interval);
        consumer.visibility = visibility;
        consumer.redrive = redrive;
        Ok(consumer)
    }

    /// A consumer of the queue named `queue` at `url` (no request made).
    pub fn with_queue_url(
        client: aws_sdk_sqs::Client,
        queue: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        let queue = queue.into();
        let mut settings = ConsumerSettings::new(SYSTEM, queue.clone());
        // Without a dead-letter queue of its own, the queue's redrive policy decides.
        settings.max_deliveries = u32::MAX;
        Self {
            client,
            queue,
            url: url.into(),
            wait: Duration::from_secs(1),
            batch: MAX_BATCH,
            visibility_timeout: None,
            visibility: None,
            dead_letter: None,
            redrive: None,
            lease: Arc::default(),
            moved: Arc::default(),
            settings,
        }
    }

    /// How long `ReceiveMessage` waits for messages (default 1 s; rounded up to whole seconds,
    /// at most 20; zero means do not wait).
    pub fn with_wait_time(mut self, wait: Duration) -> Self {
        self.wait = wait.min(MAX_WAIT);
        self
    }

    /// Messages per call (default 10; between 1 and 10).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.clamp(1, MAX_BATCH);
        self
    }

    /// The visibility timeout of the messages this consumer receives (rounded up to whole
    /// seconds), instead of the queue's; leases are extended every third of it.
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = Some(timeout);
        self.visibility = Some(timeout);
        self.settings.lease_interval = lease_interval(timeout);
        self
    }

    /// How long one handler call may keep renewing the leases of its batch (default 15
    /// minutes; `None`: no limit): a handler that hangs gives its messages up after that.
    pub fn with_max_lease(mut self, max: Option<Duration>) -> Self {
        self.settings.max_lease = max;
        self
    }

    /// After a handler failure, make the message visible again after `delay` (rounded up to
    /// whole seconds; zero: at once) with `ChangeMessageVisibility`.
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.settings.retry_delay = Some(delay);
        self
    }

    /// Moves a message received more than `max_deliveries` times (at least 1), or whose body
    /// does not decode, to the queue at `url` instead of handing it out. Its body and message
    /// attributes are copied, the dead-letter reason added (as
    /// [`DEAD_LETTER_REASON_ATTRIBUTE`](super::DEAD_LETTER_REASON_ATTRIBUTE) and the others, or
    /// packed into [`DEAD_LETTER_ATTRIBUTE`](super::DEAD_LETTER_ATTRIBUTE) when the original
    /// has no room: it is never dropped), and the original is deleted. A copy whose delete
    /// failed is not sent again by this consumer: the next delivery is only deleted. Another
    /// consumer does not know of that copy: if the delete failed and the message is next
    /// received by another consumer, that one makes a second copy (SQS cannot look a message
    /// up by id, and standard queues do not deduplicate). For exactly one copy across
    /// consumers, give the queue a redrive policy instead.
    ///
    /// When the source queue has a redrive policy (read by [`connect`](Self::connect)), this
    /// setting is recorded but the policy decides: the consumer makes no copy of its own (see
    /// the type's docs).
    pub fn with_dead_letter_queue(mut self, url: impl Into<String>, max_deliveries: u32) -> Self {
        self.dead_letter = Some(url.into());
        if self.redrive.is_none() {
            self.settings.max_deliveries = max_deliveries.max(1);
        }
        self
    }

    /// The source queue's redrive policy `maxReceiveCount`, when [`connect`](Self::connect)
    /// found one: SQS dead-letters, the consumer never copies.
    pub fn redrive_max_receive_count(&self) -> Option<u32> {
        self.redrive
    }

    /// Whether this consumer copies messages to a dead-letter queue itself (one is set and the
    /// queue has no redrive policy).
    fn moves_itself(&self) -> bool {
        self.dead_letter.is_some() && self.redrive.is_none()
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

    /// The queue name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.url
    }

    /// The dead-letter queue URL, when the consumer dead-letters itself.
    pub fn dead_letter_queue_url(&self) -> Option<&str> {
        self.dead_letter.as_deref()
    }

    /// The counters of this consumer (shared by its clones).
    pub fn stats(&self) -> &ConsumerStats {
        &self.settings.stats
    }

    /// The next batch, waiting up to the wait time. Each message carries its SQS message id,
    /// `retry_count` = `ApproximateReceiveCount` − 1, its string message attributes as headers
    /// and the decoded JSON body as payload. Messages past the maximum deliveries, or whose
    /// body does not decode, are dead-lettered (with a dead-letter queue) instead.
    ///
    /// Each message stays in the queue (invisible for the visibility timeout) until
    /// [`ack`](Self::ack)ed.
    pub async fn receive<T: DeserializeOwned>(&self) -> Result<Vec<Delivery<T>>, SqsQueueError> {
        let batch: Batch<T, SqsReceipt> = self.receive_batch().await?;
        let mut out = Vec::with_capacity(batch.received.len());
        for received in batch.received {
            match received.message {
                Ok(message) if received.deliveries <= u64::from(self.settings.max_deliveries) => {
                    out.push(Delivery {
                        message,
                        receipt_handle: received.receipt.handle,
                        receive_count: received.deliveries,
                    });
                }
                Ok(_) => {
                    self.move_to_dead_letter(
                        &received.receipt,
                        REASON_MAX_DELIVERIES,
                        received.deliveries,
                    )
                    .await?;
                }
                Err(poison) => {
                    self.settings.stats.add_poison();
                    self.move_to_dead_letter(
                        &received.receipt,
                        &poison.reason,
                        received.deliveries,
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }

    /// Acknowledges a processed message (`DeleteMessage`): it will not be delivered again.
    pub async fn ack<T>(&self, delivery: &Delivery<T>) -> Result<(), SqsQueueError> {
        self.ack_handle(&delivery.receipt_handle).await
    }

    /// Acknowledges a message by receipt handle.
    pub async fn ack_handle(&self, receipt_handle: &str) -> Result<(), SqsQueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(SqsQueueError::sqs)?;
        Ok(())
    }

    /// Makes a message visible again after `delay` (`ChangeMessageVisibility`; rounded up to
    /// whole seconds): a delayed retry.
    pub async fn retry_after<T>(
        &self,
        delivery: &Delivery<T>,
        delay: Duration,
    ) -> Result<(), SqsQueueError> {
        self.change_visibility(&delivery.receipt_handle, delay)
            .await
    }

    async fn change_visibility(&self, handle: &str, delay: Duration) -> Result<(), SqsQueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(handle)
            .visibility_timeout(seconds(delay))
            .send()
            .await
            .map_err(SqsQueueError::sqs)?;
        Ok(())
    }

    /// Receives one batch and runs each message through `service` (wrap it in
    /// [`ConsumerTraceLayer`](crate::ConsumerTraceLayer) for the consumer spans) with the shared
    /// loop ([`process_batch`]): deleted only when its handler returns `Ok`; a failed or
    /// panicking one stays in the queue and comes back, with a higher retry count, after its
    /// visibility timeout (or the retry delay). A failed call on one message (a delete, a
    /// dead-letter move) is counted and the batch goes on.
    pub async fn process<S, T>(&self, service: &mut S) -> Result<ProcessReport, SqsQueueError>
    where
        S: Service<TracedMessage<T>>,
        S::Error: std::fmt::Display,
        T: DeserializeOwned,
    {
        process_batch(self, service).await
    }

    /// Sends a copy of the message to the dead-letter queue (unless this consumer already did),
    /// then deletes it here.
    async fn move_to_dead_letter(
        &self,
        receipt: &SqsReceipt,
        reason: &str,
        receive_count: u64,
    ) -> Result<(), SqsQueueError> {
        let Some(url) = self.dead_letter.as_ref().filter(|_| self.redrive.is_none()) else {
            return Ok(());
        };
        let message = &*receipt.message;
        let id = receipt.message_id().to_owned();
        let already = self.moved_lock().contains(&id);
        if !already {
            let attrs = dead_letter_attributes(message, reason, receive_count);
            self.client
                .send_message()
                .queue_url(url)
                .message_body(message.body().unwrap_or_default())
                .set_message_attributes((!attrs.is_empty()).then_some(attrs))
                .send()
                .await
                .map_err(SqsQueueError::sqs)?;
            let mut moved = self.moved_lock();
            if moved.len() >= MOVED_MEMORY {
                moved.clear();
            }
            moved.insert(id.clone());
        }
        self.ack_handle(&receipt.handle).await?;
        self.moved_lock().remove(&id);
        Ok(())
    }

    fn moved_lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.moved.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: DeserializeOwned> QueueConsumer<T> for SqsConsumer {
    type Receipt = SqsReceipt;
    type Error = SqsQueueError;

    fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    async fn receive_batch(&self) -> Result<Batch<T, SqsReceipt>, SqsQueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(self.batch).unwrap_or(10))
            .wait_time_seconds(seconds(self.wait))
            .set_visibility_timeout(self.visibility_timeout.map(seconds))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(SqsQueueError::sqs)?;
        let mut batch = Batch::default();
        for message in out.messages.unwrap_or_default() {
            let (Some(id), Some(handle)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            let (id, handle) = (id.to_owned(), handle.to_owned());
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(1);
            let decoded = serde_json::from_str::<T>(message.body().unwrap_or_default())
                .map_err(|e| Poison {
                    message_id: Some(id.clone()),
                    reason: format!("payload does not decode: {e}"),
                })
                .map(|payload| {
                    let retry = u32::try_from(receive_count.saturating_sub(1)).unwrap_or(u32::MAX);
                    TracedMessage::new(self.queue.clone(), payload)
                        .with_message_id(id.clone())
                        .with_retry_count(retry)
                        .with_system(SYSTEM)
                        .with_headers(attributes_to_headers(message.message_attributes()))
                });
            if let Err(poison) = &decoded
                && !self.moves_itself()
            {
                // Left for the queue's redrive policy, counted and traced; with a policy, made
                // visible again at once so that SQS moves it sooner.
                if self.redrive.is_some()
                    && self
                        .change_visibility(&handle, Duration::ZERO)
                        .await
                        .is_err()
                {
                    self.settings.stats.add_broker_error();
                }
                self.settings.stats.add_poison();
                record_dead_letter_outside(
                    &self.settings,
                    &id,
                    &format!("{} (left for the redrive policy)", poison.reason),
                );
                batch.left += 1;
                continue;
            }
            batch.received.push(Received {
                receipt: SqsReceipt {
                    handle,
                    message: Arc::new(message),
                },
                deliveries: receive_count,
                message: decoded,
            });
        }
        Ok(batch)
    }

    async fn ack(&self, receipt: &SqsReceipt) -> Result<(), SqsQueueError> {
        self.ack_handle(&receipt.handle).await
    }

    async fn release(
        &self,
        receipt: &SqsReceipt,
        delay: Option<Duration>,
    ) -> Result<(), SqsQueueError> {
        match delay {
            Some(delay) => self.change_visibility(&receipt.handle, delay).await,
            None => Ok(()),
        }
    }

    async fn dead_letter(
        &self,
        receipt: &SqsReceipt,
        reason: &str,
        deliveries: u64,
    ) -> Result<(), SqsQueueError> {
        self.move_to_dead_letter(receipt, reason, deliveries).await
    }

    fn lease_keeper(&self) -> Option<&LeaseKeeper<SqsReceipt>> {
        self.lease
            .get_or_init(|| {
                let every = self.settings.lease_interval?;
                let visibility = self.visibility.unwrap_or(every * 3);
                // Connections of its own, driven by the lease thread's runtime: a pooled
                // connection of the consumer's runtime would wait for that runtime to run.
                let own_http = cfg!(feature = "sqs-rustls") || self.url.starts_with("http://");
                let client = if own_http {
                    aws_sdk_sqs::Client::from_conf(
                        self.client
                            .config()
                            .to_builder()
                            .http_client(super::http_client())
                            .build(),
                    )
                } else {
                    self.client.clone()
                };
                let renewer = SqsRenewer {
                    client,
                    url: self.url.clone(),
                    visibility: seconds(visibility),
                    timeout: every,
                    runtime: None,
                };
                LeaseKeeper::start(&self.queue, every, self.settings.stats.clone(), renewer).ok()
            })
            .as_ref()
    }
}

/// Keeps messages invisible (`ChangeMessageVisibilityBatch`) from the lease thread.
struct SqsRenewer {
    client: aws_sdk_sqs::Client,
    url: String,
    visibility: i32,
    timeout: Duration,
    runtime: Option<tokio::runtime::Runtime>,
}

impl LeaseRenewer<SqsReceipt> for SqsRenewer {
    fn renew(&mut self, receipts: &[&SqsReceipt]) -> Result<(), String> {
        if self.runtime.is_none() {
            self.runtime = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let runtime = self.runtime.as_ref().expect("just built");
        let mut failed = None;
        for chunk in receipts.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.handle)
                        .visibility_timeout(self.visibility)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            let request = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send();
            // Entries already deleted fail one by one in the reply; only the call's own
            // failure counts.
            match runtime.block_on(async { tokio::time::timeout(self.timeout, request).await }) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failed = Some(SqsQueueError::sqs(e).to_string()),
                Err(_) => {
                    failed = Some(format!(
                        "ChangeMessageVisibilityBatch timed out after {:?}",
                        self.timeout
                    ));
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// `maxReceiveCount` of a `RedrivePolicy` attribute (a JSON object; the count may be a number
/// or a string).
fn max_receive_count(policy: &str) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(policy).ok()?;
    match value.get("maxReceiveCount")? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A third of the visibility timeout (at least one second of timeout).
fn lease_interval(visibility: Duration) -> Option<Duration> {
    (visibility >= Duration::from_secs(1)).then(|| visibility / 3)
}

/// The attributes of a dead-letter copy: the original ones and the dead-letter reason, source
/// and receive count, within SQS's 10-attribute limit. When there is no room for three more,
/// the trace context is packed into one attribute; then the three go into one
/// [`DEAD_LETTER_ATTRIBUTE`]; with no room at all, the original string attributes are folded
/// into that one too. The reason is never dropped.
pub(super) fn dead_letter_attributes(
    message: &Message,
    reason: &str,
    receive_count: u64,
) -> HashMap<String, MessageAttributeValue> {
    let mut attrs: HashMap<String, MessageAttributeValue> =
        message.message_attributes().cloned().unwrap_or_default();
    let source = message.message_id().unwrap_or_default().to_owned();
    if attrs.len() + 3 > MAX_MESSAGE_ATTRIBUTES {
        pack_trace_context(&mut attrs);
    }
    if attrs.len() + 3 <= MAX_MESSAGE_ATTRIBUTES {
        attrs.insert(
            DEAD_LETTER_REASON_ATTRIBUTE.into(),
            string_attribute(reason),
        );
        if !source.is_empty() {
            attrs.insert(
                DEAD_LETTER_SOURCE_ATTRIBUTE.into(),
                string_attribute(&source),
            );
        }
        attrs.insert(
            DEAD_LETTER_DELIVERIES_ATTRIBUTE.into(),
            string_attribute(&receive_count.to_string()),
        );
        return attrs;
    }
    let mut record = serde_json::json!({
        "reason": reason,
        "source_id": source,
        "deliveries": receive_count,
    });
    if attrs.len() >= MAX_MESSAGE_ATTRIBUTES {
        let folded: serde_json::Map<String, serde_json::Value> = attrs
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.into())))
            .collect();
        record["attributes"] = folded.into();
        attrs.retain(|_, v| v.string_value().is_none());
        while attrs.len() >= MAX_MESSAGE_ATTRIBUTES {
            let Some(key) = attrs.keys().next().cloned() else {
                break;
            };
            attrs.remove(&key);
        }
    }
    attrs.insert(
        DEAD_LETTER_ATTRIBUTE.into(),
        string_attribute(&record.to_string()),
    );
    attrs
}

/// `GetQueueUrl` for `name`.
pub(crate) async fn get_queue_url(
    client: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<String, SqsQueueError> {
    let out = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(SqsQueueError::sqs)?;
    out.queue_url()
        .map(str::to_owned)
        .ok_or(SqsQueueError::MissingField("QueueUrl"))
}

/// Whole seconds, rounded up, as SQS's integer fields want them.
fn seconds(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redrive_policy_max_receive_count_is_read() {
        assert_eq!(
            max_receive_count(r#"{"deadLetterTargetArn":"a","maxReceiveCount":"3"}"#),
            Some(3)
        );
        assert_eq!(
            max_receive_count(r#"{"deadLetterTargetArn":"a","maxReceiveCount":4}"#),
            Some(4)
        );
        assert_eq!(max_receive_count("not json"), None);
    }

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_secs(2)), 2);
        assert_eq!(seconds(Duration::from_millis(2001)), 3);
    }
}
