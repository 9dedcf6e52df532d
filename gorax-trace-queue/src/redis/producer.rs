use std::sync::Arc;
use std::time::Duration;

use gorax_trace::SdkTracer;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use serde::Serialize;

use super::conn::{Reconnecting, is_connection_error};
use super::{HEADER_FIELD_PREFIX, PAYLOAD_FIELD, RedisQueueError, SYSTEM};
use crate::{ProducerTracer, TracedMessage};

/// Publishes [`TracedMessage`]s to Redis streams (`XADD`), one PRODUCER span per message.
///
/// Defaults: the tracer of [`ProducerTracer::new`], `messaging.system` `redis`, no stream
/// trimming. Cloning is cheap (the connection is multiplexed and shared).
///
/// A producer made with [`connect`](Self::connect) replaces a broken connection (a Redis
/// restart) with bounded backoff; one made with [`new`](Self::new) over a given connection
/// cannot. A send that fails before anything was written returns [`RedisQueueError::Redis`];
/// one that fails after the command may have reached the server (a timeout, a connection lost
/// while waiting for the reply) returns [`RedisQueueError::OutcomeUnknown`]: the entry may be in
/// the stream. Retrying it is at-least-once (a possible duplicate), not retrying is at-most-once.
#[derive(Clone)]
pub struct RedisProducer {
    conn: Arc<Reconnecting>,
    tracer: ProducerTracer,
    max_len: Option<usize>,
}

impl std::fmt::Debug for RedisProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProducer")
            .field("tracer", &self.tracer)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl RedisProducer {
    /// A producer over `conn` (not replaced when it breaks: use [`connect`](Self::connect)).
    pub fn new(conn: MultiplexedConnection) -> Self {
        Self::over(Reconnecting::fixed(conn))
    }

    /// A producer with its own connection from `client`, replaced when it breaks. Each send
    /// waits up to the reconnect timeout (default 10 s) for the server.
    pub async fn connect(client: &Client) -> Result<Self, RedisQueueError> {
        let config = AsyncConnectionConfig::new();
        Ok(Self::over(Reconnecting::connect(client, config).await?))
    }

    fn over(conn: Reconnecting) -> Self {
        Self {
            conn: Arc::new(conn),
            tracer: ProducerTracer::new().with_system(SYSTEM),
            max_len: None,
        }
    }

    /// How long a send waits for a lost server to come back (default 10 s; set before cloning).
    pub fn with_reconnect_timeout(mut self, timeout: Duration) -> Self {
        if let Some(conn) = Arc::get_mut(&mut self.conn) {
            conn.timeout = timeout;
        }
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

    /// Trims each stream to about `max_len` entries on every `XADD` (`MAXLEN ~`).
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = Some(max_len);
        self
    }

    /// Sends `msg` to the stream named by its queue, under a `send {stream}` span that is a child
    /// of the current context. Returns the entry id the server assigned.
    pub async fn send<T: Serialize>(
        &self,
        mut msg: TracedMessage<T>,
    ) -> Result<String, RedisQueueError> {
        let span = self.tracer.start_send(&mut msg);
        let payload = match serde_json::to_string(msg.payload()) {
            Ok(p) => p,
            Err(e) => {
                span.end_with_error(&e);
                return Err(RedisQueueError::Encode(e));
            }
        };
        let mut cmd = redis::cmd("XADD");
        cmd.arg(msg.queue());
        if let Some(max_len) = self.max_len {
            cmd.arg("MAXLEN").arg("~").arg(max_len);
        }
        cmd.arg("*").arg(PAYLOAD_FIELD).arg(payload);
        for (key, value) in msg.headers().iter() {
            cmd.arg(format!("{HEADER_FIELD_PREFIX}{key}")).arg(value);
        }
        let result = match self.conn.get().await {
            // Not connected: nothing was written.
            Err(e) => Err(RedisQueueError::Redis(e)),
            Ok(mut conn) => match cmd.query_async::<String>(&mut conn).await {
                Ok(id) => Ok(id),
                Err(e) if is_connection_error(&e) => {
                    self.conn.invalidate();
                    Err(RedisQueueError::OutcomeUnknown {
                        stream: msg.queue().to_owned(),
                        source: e,
                    })
                }
                Err(e) => Err(RedisQueueError::Redis(e)),
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

impl<T: Serialize + Send + Sync> crate::Producer<T> for RedisProducer {
    type Error = RedisQueueError;

    async fn send(&self, msg: TracedMessage<T>) -> Result<String, RedisQueueError> {
        RedisProducer::send(self, msg).await
    }

    /// No local room to wait for: sends as [`send`](RedisProducer::send).
    async fn try_send(&self, msg: TracedMessage<T>) -> Result<String, RedisQueueError> {
        RedisProducer::send(self, msg).await
    }

    async fn send_timeout(
        &self,
        msg: TracedMessage<T>,
        wait: std::time::Duration,
    ) -> Result<String, RedisQueueError> {
        let stream = msg.queue().to_owned();
        tokio::time::timeout(wait, RedisProducer::send(self, msg))
            .await
            .unwrap_or(Err(RedisQueueError::TimedOut {
                stream,
                after: wait,
            }))
    }
}
