//! NATS JetStream adapter (feature `nats`, [`async-nats`](async_nats)).
//!
//! - [`NatsProducer::send`]: a PRODUCER span `send {subject}`, then a JetStream publish with the
//!   payload as JSON and the trace headers (`traceparent`, `tracestate`, `baggage`) as NATS
//!   headers; `Ok` only once the stream's PubAck came back (its stream sequence becomes
//!   `messaging.message.id`). A subject no stream takes is an error ([`NatsQueueError::NoStream`],
//!   nothing stored); a PubAck that did not come ([`NatsQueueError::OutcomeUnknown`]) means the
//!   message may be stored: retrying is at-least-once (a possible duplicate).
//! - [`NatsConsumer`]: a durable pull consumer (explicit acks) on a stream. A batch is one pull
//!   of up to [`NatsConsumerConfig::batch_size`] messages, waiting up to
//!   [`NatsConsumerConfig::wait`]. The consumer's `ack_wait` is the lease: while handlers run,
//!   the lease thread of issue 25 ([`LeaseKeeper`]) sends in-progress acks (`+WPI`) every third
//!   of it, over a connection of its own, for every message of the batch not yet finished.
//!   `retry_count` is the message's delivery count − 1. Success is `+ACK` (confirmed by the
//!   server), failure `-NAK` (with [`NatsConsumerConfig::retry_delay`] when set).
//! - Dead letters: JetStream has none of its own. The delivery after
//!   [`NatsConsumerConfig::max_deliveries`] (and an undecodable message at once) is published to
//!   the dead-letter subject ([`NatsConsumerConfig::dead_letter_subject`], in a stream the
//!   consumer creates) and waits for its PubAck, then the original is terminated (`+TERM`). The
//!   copy carries `Nats-Msg-Id: gorax-dead-letter:{stream}:{sequence}`, so if the consumer dies
//!   (or the `+TERM` fails) between the two, the message is delivered again, dead-lettered
//!   again, and JetStream drops the second copy as a duplicate within the dead-letter stream's
//!   duplicate window (2 minutes by default; after it, a second copy is possible). The server's
//!   own `max_deliver` is left unlimited on purpose: a server that stops delivering at the limit
//!   would strand a message whose dead-letter publish failed; with the limit in the loop, that
//!   message comes back and its dead-letter publish is tried again.
//! - Reconnects: the `async-nats` client reconnects by itself after a server restart; a pull or
//!   an acknowledgement made while it is away fails (counted), and the loop goes on. The
//!   durable consumer and the streams survive a restart when the server stores them on disk
//!   (`nats-server -js -sd DIR`, file storage: what [`ensure_stream`] creates). NATS 2.9 keeps
//!   recent file-store writes in a cache of its own: a server killed with SIGKILL (or a power
//!   loss) can lose messages it had already PubAcked; a restart (SIGTERM) loses none.
//!
//! `messaging.system` is `nats`: not a value of the OpenTelemetry registry (the README's
//! `messaging.system` table lists it).
//!
//! ```no_run
//! use gorax_trace_queue::nats::{NatsConsumer, NatsConsumerConfig, NatsProducer, ensure_stream};
//! use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
//! use tower::{ServiceBuilder, service_fn};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = gorax_trace_queue::nats::async_nats::connect("127.0.0.1:4222").await?;
//! ensure_stream(&client, "EXECUTIONS", "gorax-executions").await?;
//! let producer = NatsProducer::new(client);
//! producer.send(TracedMessage::new("gorax-executions", "exec-7".to_owned())).await?;
//!
//! let config = NatsConsumerConfig::new("EXECUTIONS", "gorax-executions", "workers");
//! let consumer = NatsConsumer::connect("127.0.0.1:4222", config).await?;
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

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::stream::StorageType;
use async_nats::{Client, HeaderMap, Subject};
use futures_util::StreamExt;
use gorax_trace::{Binding, SdkTracer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::consumer::{
    Batch, ConsumerSettings, ConsumerStats, LeaseKeeper, LeaseRenewer, Poison, ProcessReport,
    QueueConsumer, Received,
};
use crate::{Headers, ProducerTracer, TracedMessage};

/// The NATS client crate this adapter is built on (connect with it, manage streams).
pub use async_nats;

/// The `messaging.system` value of this adapter (not a registry value).
pub const SYSTEM: &str = "nats";
/// Header added to a dead-lettered copy: why it was given up.
pub const DEAD_LETTER_REASON_HEADER: &str = "Gorax-Dead-Letter-Reason";
/// Header added to a dead-lettered copy: its delivery count when it was given up.
pub const DEAD_LETTER_DELIVERIES_HEADER: &str = "Gorax-Dead-Letter-Deliveries";
/// Header added to a dead-lettered copy: `{stream}:{sequence}` of the original.
pub const DEAD_LETTER_SOURCE_HEADER: &str = "Gorax-Dead-Letter-Source";
/// The default [`NatsConsumerConfig::ack_wait`].
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// What went wrong talking to NATS or encoding a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsQueueError {
    /// The server could not be reached.
    #[error("nats: cannot connect: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// No stream takes the subject (`no responders`): nothing was stored.
    #[error("nats: no JetStream stream takes subject `{subject}`; nothing was stored")]
    NoStream {
        /// The subject published to.
        subject: String,
    },
    /// The publish failed before reaching the server, or the server refused it: nothing was
    /// stored.
    #[error("nats: publish to `{subject}` failed: {source}")]
    Publish {
        /// The subject published to.
        subject: String,
        /// What failed.
        #[source]
        source: PublishError,
    },
    /// The publish left, but no PubAck came back (a timeout, the connection lost): the message
    /// may or may not be in the stream.
    #[error("nats: the outcome of the publish to `{subject}` is unknown: {source}")]
    OutcomeUnknown {
        /// The subject published to.
        subject: String,
        /// What failed.
        #[source]
        source: PublishError,
    },
    /// A [`send_timeout`](crate::Producer::send_timeout) was cut off before the PubAck: the
    /// message may or may not be in the stream.
    #[error("nats: no PubAck for `{subject}` within {after:?}; the message may be stored")]
    TimedOut {
        /// The subject published to.
        subject: String,
        /// The wait.
        after: Duration,
    },
    /// A JetStream call (stream or consumer management, a pull, an acknowledgement) failed.
    #[error("nats: {what} failed: {source}")]
    JetStream {
        /// Which call.
        what: &'static str,
        /// What failed.
        #[source]
        source: async_nats::Error,
    },
    /// The payload could not be encoded as JSON.
    #[error("cannot encode the payload: {0}")]
    Encode(#[source] serde_json::Error),
    /// The handler service reported it cannot take messages any more.
    #[error("the handler service failed: {0}")]
    Handler(String),
}

impl From<crate::consumer::HandlerUnavailable> for NatsQueueError {
    fn from(e: crate::consumer::HandlerUnavailable) -> Self {
        Self::Handler(e.0)
    }
}

fn js_error(what: &'static str) -> impl FnOnce(async_nats::Error) -> NatsQueueError {
    move |source| NatsQueueError::JetStream { what, source }
}

/// Creates (or finds) the stream `stream` taking `subject`, stored on disk (file storage,
/// work-queue retention: a message is removed once acknowledged or terminated).
pub async fn ensure_stream(
    client: &Client,
    stream: &str,
    subject: &str,
) -> Result<(), NatsQueueError> {
    let js = async_nats::jetstream::new(client.clone());
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: stream.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: StorageType::File,
        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await
    .map_err(|e| js_error("creating the stream")(e.into()))?;
    Ok(())
}

/// Publishes [`TracedMessage`]s to JetStream subjects, one PRODUCER span per message; `send`
/// returns after the PubAck. Cloning is cheap (the client is shared).
#[derive(Clone)]
pub struct NatsProducer {
    js: async_nats::jetstream::Context,
    tracer: ProducerTracer,
}

impl std::fmt::Debug for NatsProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsProducer")
            .field("tracer", &self.tracer)
            .finish_non_exhaustive()
    }
}

impl NatsProducer {
    /// A producer over `client` (which reconnects by itself); a PubAck is awaited up to the
    /// JetStream default of 5 s.
    pub fn new(client: Client) -> Self {
        Self {
            js: async_nats::jetstream::new(client),
            tracer: ProducerTracer::new().with_system(SYSTEM),
        }
    }

    /// How long a send waits for its PubAck (default 5 s).
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.js.set_timeout(timeout);
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

    /// Publishes `msg` to the subject named by its queue, under a `send {subject}` span that is
    /// a child of the current context, and waits for the PubAck. Returns the stream sequence.
    pub async fn send<T: Serialize>(
        &self,
        mut msg: TracedMessage<T>,
    ) -> Result<String, NatsQueueError> {
        let span = self.tracer.start_send(&mut msg);
        let payload = match serde_json::to_string(msg.payload()) {
            Ok(p) => p,
            Err(e) => {
                span.end_with_error(&e);
                return Err(NatsQueueError::Encode(e));
            }
        };
        let mut headers = HeaderMap::new();
        for (key, value) in msg.headers().iter() {
            if !value.is_empty() {
                headers.insert(key, value);
            }
        }
        let subject = msg.queue().to_owned();
        let result = match self
            .js
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
        {
            Err(source) => Err(publish_error(subject, source, false)),
            Ok(ack) => match ack.await {
                Ok(ack) => Ok(ack.sequence.to_string()),
                Err(source) => Err(publish_error(subject, source, true)),
            },
        };
        match &result {
            Ok(id) => {
                span.record_message_id(id);
                span.end();
            }
            Err(e) => span.end_with_error(e),
        }
        result
    }
}

/// Sorts a publish error: `sent` is whether the message left the client.
fn publish_error(subject: String, source: PublishError, sent: bool) -> NatsQueueError {
    match source.kind() {
        PublishErrorKind::StreamNotFound => NatsQueueError::NoStream { subject },
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe if sent => {
            NatsQueueError::OutcomeUnknown { subject, source }
        }
        _ => NatsQueueError::Publish { subject, source },
    }
}

impl<T: Serialize + Send + Sync> crate::Producer<T> for NatsProducer {
    type Error = NatsQueueError;

    async fn send(&self, msg: TracedMessage<T>) -> Result<String, NatsQueueError> {
        NatsProducer::send(self, msg).await
    }

    /// No local room to wait for: sends as [`send`](NatsProducer::send).
    async fn try_send(&self, msg: TracedMessage<T>) -> Result<String, NatsQueueError> {
        NatsProducer::send(self, msg).await
    }

    async fn send_timeout(
        &self,
        msg: TracedMessage<T>,
        wait: Duration,
    ) -> Result<String, NatsQueueError> {
        let subject = msg.queue().to_owned();
        tokio::time::timeout(wait, NatsProducer::send(self, msg))
            .await
            .unwrap_or(Err(NatsQueueError::TimedOut {
                subject,
                after: wait,
            }))
    }
}

/// How a [`NatsConsumer`] is set up: start from [`NatsConsumerConfig::new`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NatsConsumerConfig {
    /// The stream (created by [`NatsConsumer::connect`] if missing, as [`ensure_stream`] does).
    pub stream: String,
    /// The subject the stream takes, and the consumer's filter (the queue name of the spans).
    pub subject: String,
    /// The durable consumer's name (every member of one worker pool uses the same).
    pub durable: String,
    /// Messages per pull (default 10).
    pub batch_size: usize,
    /// How long one pull waits for messages (default 1 s).
    pub wait: Duration,
    /// The lease: how long a delivery is the consumer's before the server delivers it again
    /// (default [`DEFAULT_ACK_WAIT`]); renewed every third of it while its handler runs.
    pub ack_wait: Duration,
    /// Deliveries after which a message is dead-lettered (default 5).
    pub max_deliveries: u32,
    /// How long a batch may keep its leases (see
    /// [`ConsumerSettings::max_lease`]; default 15 minutes).
    pub max_lease: Option<Duration>,
    /// The delay of a `-NAK` after a failure (default none: at once).
    pub retry_delay: Option<Duration>,
    /// Where dead letters go (default `{subject}.dead-letter`).
    pub dead_letter_subject: String,
    /// The stream that stores them (default `{stream}_DEAD_LETTER`; created if missing).
    pub dead_letter_stream: String,
}

impl NatsConsumerConfig {
    /// The defaults listed on the fields, for `durable` on `stream`/`subject`.
    pub fn new(stream: &str, subject: &str, durable: &str) -> Self {
        Self {
            stream: stream.to_owned(),
            subject: subject.to_owned(),
            durable: durable.to_owned(),
            batch_size: 10,
            wait: Duration::from_secs(1),
            ack_wait: DEFAULT_ACK_WAIT,
            max_deliveries: 5,
            max_lease: Some(crate::consumer::DEFAULT_MAX_LEASE),
            retry_delay: None,
            dead_letter_subject: format!("{subject}.dead-letter"),
            dead_letter_stream: format!("{stream}_DEAD_LETTER"),
        }
    }
}

/// One delivery of a [`NatsConsumer`]: what acknowledges it, and what its dead-letter copy is
/// made of.
#[derive(Debug, Clone)]
pub struct NatsReceipt {
    reply: Subject,
    stream_sequence: u64,
    message: async_nats::Message,
}

impl NatsReceipt {
    /// The stream sequence of the message (its `messaging.message.id`).
    pub fn stream_sequence(&self) -> u64 {
        self.stream_sequence
    }
}

/// A JetStream pull consumer driven by the shared loop ([`process_batch`](crate::process_batch)),
/// as the [module docs](self) describe.
pub struct NatsConsumer {
    client: Client,
    js: async_nats::jetstream::Context,
    consumer: PullConsumer,
    config: NatsConsumerConfig,
    settings: ConsumerSettings,
    keeper: LeaseKeeper<NatsReceipt>,
}

impl std::fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConsumer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NatsConsumer {
    /// Connects to `url` (a client of its own, and another on the lease thread), creates the
    /// stream, the dead-letter stream and the durable consumer if missing, and starts the lease
    /// thread. An existing durable consumer of that name is reused: the same configuration is
    /// a no-op; whether a different one (another `ack_wait`) is accepted is the server's call,
    /// and a refusal is an error here.
    pub async fn connect(url: &str, config: NatsConsumerConfig) -> Result<Self, NatsQueueError> {
        let client = async_nats::connect(url).await?;
        ensure_stream(&client, &config.stream, &config.subject).await?;
        ensure_stream(
            &client,
            &config.dead_letter_stream,
            &config.dead_letter_subject,
        )
        .await?;
        let js = async_nats::jetstream::new(client.clone());
        let stream = js
            .get_stream(&config.stream)
            .await
            .map_err(|e| js_error("finding the stream")(e.into()))?;
        let pull_config = pull::Config {
            durable_name: Some(config.durable.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            // Unlimited on the server: the loop dead-letters past `max_deliveries` (see the
            // module docs).
            max_deliver: -1,
            filter_subject: config.subject.clone(),
            ..Default::default()
        };
        let consumer: PullConsumer = stream
            .create_consumer(pull_config)
            .await
            .map_err(|e| js_error("creating the consumer")(e.into()))?;
        let mut settings = ConsumerSettings::new(SYSTEM, config.subject.clone());
        settings.max_deliveries = config.max_deliveries.max(1);
        settings.lease_interval = Some(config.ack_wait / 3);
        settings.max_lease = config.max_lease;
        settings.retry_delay = config.retry_delay;
        let keeper = LeaseKeeper::start(
            &config.durable,
            config.ack_wait / 3,
            settings.stats.clone(),
            NatsRenewer {
                url: url.to_owned(),
                timeout: (config.ack_wait / 3).max(Duration::from_millis(100)),
                runtime: None,
                client: None,
            },
        )
        .map_err(|e| js_error("starting the lease thread")(e.into()))?;
        Ok(Self {
            client,
            js,
            consumer,
            config,
            settings,
            keeper,
        })
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
    pub fn config(&self) -> &NatsConsumerConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &ConsumerStats {
        &self.settings.stats
    }

    /// Receives one batch and runs it through `service` (see [`process_batch`](crate::process_batch)).
    pub async fn process<S, T>(&self, service: &mut S) -> Result<ProcessReport, NatsQueueError>
    where
        S: Service<TracedMessage<T>>,
        S::Error: std::fmt::Display,
        T: DeserializeOwned,
    {
        crate::process_batch(self, service).await
    }

    /// Sends `kind` on the delivery's reply subject and waits for the server to confirm it.
    async fn reply(&self, receipt: &NatsReceipt, kind: &'static str) -> Result<(), NatsQueueError> {
        self.client
            .request(receipt.reply.clone(), kind.into())
            .await
            .map(|_| ())
            .map_err(|e| js_error(kind)(e.into()))
    }
}

/// Turns one pulled message into a delivery of the loop.
fn received<T: DeserializeOwned>(
    subject: &str,
    message: async_nats::jetstream::Message,
) -> Option<Received<T, NatsReceipt>> {
    let (sequence, delivered) = match message.info() {
        Ok(info) => (
            info.stream_sequence,
            u64::try_from(info.delivered).unwrap_or(1),
        ),
        Err(_) => return None,
    };
    let message = message.message;
    let reply = message.reply.clone()?;
    let id = sequence.to_string();
    let decoded = match serde_json::from_slice::<T>(&message.payload) {
        Err(e) => Err(Poison {
            message_id: Some(id),
            reason: format!("bad JSON payload: {e}"),
        }),
        Ok(payload) => {
            let mut headers = Headers::new();
            if let Some(map) = &message.headers {
                for (name, values) in map.iter() {
                    let name: &str = name.as_ref();
                    if name.starts_with("Nats-") {
                        continue;
                    }
                    if let Some(value) = values.first().filter(|v| !v.as_str().is_empty()) {
                        headers.insert(name, value.as_str());
                    }
                }
            }
            Ok(TracedMessage::new(subject, payload)
                .with_headers(headers)
                .with_message_id(id)
                .with_system(SYSTEM)
                .with_retry_count(u32::try_from(delivered.saturating_sub(1)).unwrap_or(u32::MAX)))
        }
    };
    Some(Received {
        receipt: NatsReceipt {
            reply,
            stream_sequence: sequence,
            message,
        },
        deliveries: delivered,
        message: decoded,
    })
}

impl<T: DeserializeOwned> QueueConsumer<T> for NatsConsumer {
    type Receipt = NatsReceipt;
    type Error = NatsQueueError;

    fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    async fn receive_batch(&self) -> Result<Batch<T, NatsReceipt>, NatsQueueError> {
        let mut messages = self
            .consumer
            .batch()
            .max_messages(self.config.batch_size.max(1))
            .expires(self.config.wait)
            .messages()
            .await
            .map_err(|e| js_error("pull")(e.into()))?;
        let mut batch = Batch::default();
        // A pull sent while the client was away (a server restart) is never answered: the
        // batch ends a second after the pull would have expired, and the next pull goes out.
        let deadline = tokio::time::Instant::now() + self.config.wait + Duration::from_secs(1);
        loop {
            let next = tokio::time::timeout_at(deadline, messages.next()).await;
            match next {
                Ok(Some(Ok(message))) => {
                    if let Some(r) = received(&self.config.subject, message) {
                        batch.received.push(r);
                    }
                }
                // An error after some messages ends the pull with what arrived.
                Ok(Some(Err(e))) if batch.received.is_empty() => {
                    return Err(js_error("pull")(e));
                }
                Ok(Some(Err(_)) | None) | Err(_) => break,
            }
        }
        Ok(batch)
    }

    async fn ack(&self, receipt: &NatsReceipt) -> Result<(), NatsQueueError> {
        self.reply(receipt, "+ACK").await
    }

    async fn release(
        &self,
        receipt: &NatsReceipt,
        delay: Option<Duration>,
    ) -> Result<(), NatsQueueError> {
        let body: async_nats::jetstream::AckKind = async_nats::jetstream::AckKind::Nak(delay);
        self.client
            .request(receipt.reply.clone(), body.into())
            .await
            .map(|_| ())
            .map_err(|e| js_error("-NAK")(e.into()))
    }

    async fn dead_letter(
        &self,
        receipt: &NatsReceipt,
        reason: &str,
        deliveries: u64,
    ) -> Result<(), NatsQueueError> {
        let mut headers = receipt.message.headers.clone().unwrap_or_default();
        let source = format!("{}:{}", self.config.stream, receipt.stream_sequence);
        // One copy per message, however often this runs (within the duplicate window).
        headers.insert("Nats-Msg-Id", format!("gorax-dead-letter:{source}"));
        // Header values are one line.
        headers.insert(DEAD_LETTER_REASON_HEADER, reason.replace(['\r', '\n'], " "));
        headers.insert(DEAD_LETTER_DELIVERIES_HEADER, deliveries.to_string());
        headers.insert(DEAD_LETTER_SOURCE_HEADER, source);
        let subject = self.config.dead_letter_subject.clone();
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, receipt.message.payload.clone())
            .await
            .map_err(|source| publish_error(subject.clone(), source, false))?;
        ack.await
            .map_err(|source| publish_error(subject, source, true))?;
        self.reply(receipt, "+TERM").await
    }

    fn lease_keeper(&self) -> Option<&LeaseKeeper<NatsReceipt>> {
        Some(&self.keeper)
    }
}

/// Sends in-progress acks (`+WPI`) from the lease thread, over a client of its own driven by a
/// runtime of its own.
struct NatsRenewer {
    url: String,
    timeout: Duration,
    runtime: Option<tokio::runtime::Runtime>,
    client: Option<Client>,
}

impl LeaseRenewer<NatsReceipt> for NatsRenewer {
    fn renew(&mut self, receipts: &[&NatsReceipt]) -> Result<(), String> {
        let Self {
            url,
            timeout,
            runtime,
            client,
        } = self;
        if runtime.is_none() {
            *runtime = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let runtime = runtime.as_ref().expect("just built");
        let timeout = *timeout;
        let result = runtime.block_on(async {
            tokio::time::timeout(timeout, async {
                if client.is_none() {
                    *client = Some(
                        async_nats::connect(url.as_str())
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                let c = client.as_ref().expect("just connected");
                for receipt in receipts {
                    c.publish(receipt.reply.clone(), "+WPI".into())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                c.flush().await.map_err(|e| e.to_string())
            })
            .await
        });
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("in-progress acks timed out after {timeout:?}")),
        }
    }
}
