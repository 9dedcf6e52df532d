use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gorax_trace::SdkTracer;
use serde::Serialize;

use super::{MAX_MESSAGE_SIZE, SYSTEM, SqsQueueError, headers_to_attributes, message_size};
use crate::{ProducerTracer, TracedMessage};

/// Publishes [`TracedMessage`]s to SQS queues (`SendMessage`), one PRODUCER span per message.
///
/// The message's queue is the SQS queue *name*; its URL is looked up once with `GetQueueUrl`
/// and cached (or given with [`with_queue_url`](Self::with_queue_url)). Headers become `String`
/// message attributes; the JSON payload is the body.
///
/// Defaults: the tracer of [`ProducerTracer::new`], `messaging.system` `aws_sqs`. Cloning is
/// cheap (the client and the URL cache are shared).
#[derive(Clone)]
pub struct SqsProducer {
    client: aws_sdk_sqs::Client,
    tracer: ProducerTracer,
    urls: Arc<Mutex<HashMap<String, String>>>,
    max_size: usize,
}

impl std::fmt::Debug for SqsProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsProducer")
            .field("tracer", &self.tracer)
            .finish_non_exhaustive()
    }
}

impl SqsProducer {
    /// A producer over `client`.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self {
            client,
            tracer: ProducerTracer::new().with_system(SYSTEM),
            urls: Arc::default(),
            max_size: MAX_MESSAGE_SIZE,
        }
    }

    /// Rejects (before sending) messages larger than `max` bytes, body and attributes (default
    /// [`MAX_MESSAGE_SIZE`], SQS's limit; set the queue's `MaximumMessageSize` when lower).
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max_size = max;
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

    /// Sends messages for queue `name` to `url` without asking SQS (`GetQueueUrl`).
    pub fn with_queue_url(self, name: impl Into<String>, url: impl Into<String>) -> Self {
        self.urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.into(), url.into());
        self
    }

    /// Sends `msg` to the queue named by its queue, under a `send {queue}` span that is a child
    /// of the current context. Returns the SQS message id.
    ///
    /// A send that timed out or got no readable answer after the request went out returns
    /// [`SqsQueueError::OutcomeUnknown`]: the message may be in the queue. Retrying is
    /// at-least-once (a possible duplicate; consumers deduplicate on the payload's own id).
    ///
    /// Fails without sending, and ends the span as an error, when the payload does not encode
    /// or the headers break SQS's attribute limits (more than
    /// [`MAX_MESSAGE_ATTRIBUTES`](super::MAX_MESSAGE_ATTRIBUTES) including `traceparent`,
    /// `tracestate` and `baggage`, or an invalid name).
    pub async fn send<T: Serialize>(
        &self,
        mut msg: TracedMessage<T>,
    ) -> Result<String, SqsQueueError> {
        let span = self.tracer.start_send(&mut msg);
        let result = self.send_traced(&msg).await;
        match &result {
            Ok(id) => {
                span.record_message_id(id);
                span.end();
            }
            Err(e) => span.end_with_error(e),
        }
        result
    }

    async fn send_traced<T: Serialize>(
        &self,
        msg: &TracedMessage<T>,
    ) -> Result<String, SqsQueueError> {
        let body = serde_json::to_string(msg.payload()).map_err(SqsQueueError::Encode)?;
        let attributes = headers_to_attributes(msg.queue(), msg.headers())?;
        let size = message_size(&body, &attributes);
        if size > self.max_size {
            return Err(SqsQueueError::MessageTooLarge {
                queue: msg.queue().to_owned(),
                size,
                max: self.max_size,
            });
        }
        let url = self.queue_url(msg.queue()).await?;
        let out = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .set_message_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_sqs::error::SdkError;
                // Sent, and then no usable answer: SQS may have stored the message.
                let unknown = matches!(e, SdkError::TimeoutError(_) | SdkError::ResponseError(_))
                    || matches!(&e, SdkError::DispatchFailure(d) if d.is_timeout());
                if unknown {
                    SqsQueueError::OutcomeUnknown {
                        queue: msg.queue().to_owned(),
                        source: Box::new(e.into()),
                    }
                } else {
                    SqsQueueError::sqs(e)
                }
            })?;
        out.message_id()
            .map(str::to_owned)
            .ok_or(SqsQueueError::MissingField("MessageId"))
    }

    /// The URL of queue `name`, from the cache or `GetQueueUrl`.
    pub async fn queue_url(&self, name: &str) -> Result<String, SqsQueueError> {
        if let Some(url) = self
            .urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(url.clone());
        }
        let url = super::consumer::get_queue_url(&self.client, name).await?;
        self.urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), url.clone());
        Ok(url)
    }
}

impl<T: Serialize + Send + Sync> crate::Producer<T> for SqsProducer {
    type Error = SqsQueueError;

    async fn send(&self, msg: TracedMessage<T>) -> Result<String, SqsQueueError> {
        SqsProducer::send(self, msg).await
    }

    /// No local room to wait for: sends as [`send`](SqsProducer::send).
    async fn try_send(&self, msg: TracedMessage<T>) -> Result<String, SqsQueueError> {
        SqsProducer::send(self, msg).await
    }

    async fn send_timeout(
        &self,
        msg: TracedMessage<T>,
        wait: std::time::Duration,
    ) -> Result<String, SqsQueueError> {
        let queue = msg.queue().to_owned();
        tokio::time::timeout(wait, SqsProducer::send(self, msg))
            .await
            .unwrap_or(Err(SqsQueueError::TimedOut { queue, after: wait }))
    }
}
