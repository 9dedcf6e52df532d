use std::collections::HashMap;
use std::future::poll_fn;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::{
    DEAD_LETTER_DELIVERIES_ATTRIBUTE, DEAD_LETTER_REASON_ATTRIBUTE, DEAD_LETTER_SOURCE_ATTRIBUTE,
    MAX_MESSAGE_ATTRIBUTES, SYSTEM, SqsQueueError, attributes_to_headers, string_attribute,
};
use crate::TracedMessage;

/// The longest long poll SQS allows.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// The most messages one `ReceiveMessage` returns.
const MAX_BATCH: usize = 10;

/// What one [`SqsConsumer::process`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessReport {
    /// Messages whose handler succeeded (deleted from the queue).
    pub acked: usize,
    /// Messages whose handler failed (left in the queue: delivered again after the visibility
    /// timeout or the retry delay).
    pub failed: usize,
    /// Messages moved to the consumer's dead-letter queue instead of being handled.
    pub dead_lettered: usize,
}

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

/// Receives from one SQS queue.
///
/// Defaults (each changed by a `with_*` method):
/// - wait time: 1 s (`WaitTimeSeconds`, long polling; whole seconds, at most 20);
/// - batch size: 10 messages per call (SQS's maximum);
/// - visibility timeout: the queue's own (a received message is hidden that long, then
///   delivered again unless deleted);
/// - retry delay: none (a failed message comes back when its visibility timeout ends); with
///   one, [`process`](Self::process) calls `ChangeMessageVisibility` on a failed message so it
///   comes back after that delay;
/// - dead-lettering: left to the queue's redrive policy; with
///   [`with_dead_letter_queue`](Self::with_dead_letter_queue) the consumer moves messages
///   itself.
#[derive(Clone)]
pub struct SqsConsumer {
    client: aws_sdk_sqs::Client,
    queue: String,
    url: String,
    wait: Duration,
    batch: usize,
    visibility_timeout: Option<Duration>,
    retry_delay: Option<Duration>,
    dead_letter: Option<(String, u32)>,
}

impl std::fmt::Debug for SqsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsConsumer")
            .field("queue", &self.queue)
            .field("url", &self.url)
            .field("wait", &self.wait)
            .field("batch", &self.batch)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("retry_delay", &self.retry_delay)
            .field("dead_letter", &self.dead_letter)
            .finish_non_exhaustive()
    }
}

impl SqsConsumer {
    /// A consumer of the queue named `queue`, whose URL is looked up (`GetQueueUrl`).
    pub async fn connect(
        client: aws_sdk_sqs::Client,
        queue: impl Into<String>,
    ) -> Result<Self, SqsQueueError> {
        let queue = queue.into();
        let url = get_queue_url(&client, &queue).await?;
        Ok(Self::with_queue_url(client, queue, url))
    }

    /// A consumer of the queue named `queue` at `url` (no request made).
    pub fn with_queue_url(
        client: aws_sdk_sqs::Client,
        queue: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue: queue.into(),
            url: url.into(),
            wait: Duration::from_secs(1),
            batch: MAX_BATCH,
            visibility_timeout: None,
            retry_delay: None,
            dead_letter: None,
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
    /// seconds), instead of the queue's.
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = Some(timeout);
        self
    }

    /// After a handler failure, make the message visible again after `delay` (rounded up to
    /// whole seconds; zero: at once) with `ChangeMessageVisibility`.
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = Some(delay);
        self
    }

    /// Moves a message received more than `max_deliveries` times (at least 1), or whose body
    /// does not decode, to the queue at `url` instead of handing it out. Its body and message
    /// attributes are copied, the dead-letter attributes
    /// ([`DEAD_LETTER_REASON_ATTRIBUTE`](super::DEAD_LETTER_REASON_ATTRIBUTE) and the others)
    /// added when they fit in SQS's attribute limit, and the original is deleted.
    ///
    /// Without it, use a redrive policy on the queue
    /// ([`redrive_policy`](super::redrive_policy)): SQS then dead-letters by itself, and
    /// an undecodable body is left in the queue for that policy.
    pub fn with_dead_letter_queue(mut self, url: impl Into<String>, max_deliveries: u32) -> Self {
        self.dead_letter = Some((url.into(), max_deliveries.max(1)));
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
        self.dead_letter.as_ref().map(|(url, _)| url.as_str())
    }

    /// The next batch, waiting up to the wait time. Each message carries its SQS message id,
    /// `retry_count` = `ApproximateReceiveCount` − 1, its string message attributes as headers
    /// and the decoded JSON body as payload.
    ///
    /// Each message stays in the queue (invisible for the visibility timeout) until
    /// [`ack`](Self::ack)ed.
    pub async fn receive<T: DeserializeOwned>(&self) -> Result<Vec<Delivery<T>>, SqsQueueError> {
        Ok(self.receive_counted().await?.0)
    }

    async fn receive_counted<T: DeserializeOwned>(
        &self,
    ) -> Result<(Vec<Delivery<T>>, usize), SqsQueueError> {
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
        let mut deliveries = Vec::new();
        let mut dead_lettered = 0;
        for message in out.messages() {
            let (Some(id), Some(handle)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(1);
            if let Some((_, max)) = &self.dead_letter
                && receive_count > u64::from(*max)
            {
                self.dead_letter(message, receive_count, "max deliveries")
                    .await?;
                dead_lettered += 1;
                continue;
            }
            let payload = match serde_json::from_str::<T>(message.body().unwrap_or_default()) {
                Ok(p) => p,
                Err(e) => {
                    if self.dead_letter.is_some() {
                        self.dead_letter(message, receive_count, &e.to_string())
                            .await?;
                        dead_lettered += 1;
                    }
                    continue;
                }
            };
            let retry = u32::try_from(receive_count.saturating_sub(1)).unwrap_or(u32::MAX);
            deliveries.push(Delivery {
                message: TracedMessage::new(self.queue.clone(), payload)
                    .with_message_id(id)
                    .with_retry_count(retry)
                    .with_system(SYSTEM)
                    .with_headers(attributes_to_headers(message.message_attributes())),
                receipt_handle: handle.to_owned(),
                receive_count,
            });
        }
        Ok((deliveries, dead_lettered))
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
    /// [`ConsumerTraceLayer`](crate::ConsumerTraceLayer) for the consumer spans). A message is
    /// deleted only when its handler returns `Ok`; a failed one stays in the queue and comes
    /// back, with a higher retry count, after its visibility timeout (or the retry delay).
    pub async fn process<S, T>(&self, service: &mut S) -> Result<ProcessReport, SqsQueueError>
    where
        S: Service<TracedMessage<T>>,
        S::Error: std::fmt::Display,
        T: DeserializeOwned,
    {
        let (deliveries, dead_lettered) = self.receive_counted::<T>().await?;
        let mut report = ProcessReport {
            dead_lettered,
            ..ProcessReport::default()
        };
        for delivery in deliveries {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(|e| SqsQueueError::Handler(e.to_string()))?;
            let (msg, handle) = delivery.into_parts();
            match service.call(msg).await {
                Ok(_) => {
                    self.ack_handle(&handle).await?;
                    report.acked += 1;
                }
                Err(_) => {
                    report.failed += 1;
                    if let Some(delay) = self.retry_delay {
                        self.change_visibility(&handle, delay).await?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Sends a copy of `message` to the dead-letter queue, then deletes it here.
    async fn dead_letter(
        &self,
        message: &Message,
        receive_count: u64,
        reason: &str,
    ) -> Result<(), SqsQueueError> {
        let Some((url, _)) = &self.dead_letter else {
            return Ok(());
        };
        let mut attrs: HashMap<String, MessageAttributeValue> =
            message.message_attributes().cloned().unwrap_or_default();
        let extra = [
            (DEAD_LETTER_REASON_ATTRIBUTE, reason.to_owned()),
            (
                DEAD_LETTER_SOURCE_ATTRIBUTE,
                message.message_id().unwrap_or_default().to_owned(),
            ),
            (DEAD_LETTER_DELIVERIES_ATTRIBUTE, receive_count.to_string()),
        ];
        for (key, value) in extra {
            if attrs.len() < MAX_MESSAGE_ATTRIBUTES && !value.is_empty() {
                attrs.insert(key.to_owned(), string_attribute(&value));
            }
        }
        self.client
            .send_message()
            .queue_url(url)
            .message_body(message.body().unwrap_or_default())
            .set_message_attributes((!attrs.is_empty()).then_some(attrs))
            .send()
            .await
            .map_err(SqsQueueError::sqs)?;
        if let Some(handle) = message.receipt_handle() {
            self.ack_handle(handle).await?;
        }
        Ok(())
    }
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
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_secs(2)), 2);
        assert_eq!(seconds(Duration::from_millis(2001)), 3);
    }
}
