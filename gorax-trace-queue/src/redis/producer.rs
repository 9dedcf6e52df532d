use gorax_trace::SdkTracer;
use redis::aio::MultiplexedConnection;
use serde::Serialize;

use super::{HEADER_FIELD_PREFIX, PAYLOAD_FIELD, RedisQueueError, SYSTEM};
use crate::{ProducerTracer, TracedMessage};

/// Publishes [`TracedMessage`]s to Redis streams (`XADD`), one PRODUCER span per message.
///
/// Defaults: the tracer of [`ProducerTracer::new`], `messaging.system` `redis`, no stream
/// trimming. Cloning is cheap (the connection is multiplexed).
#[derive(Clone)]
pub struct RedisProducer {
    conn: MultiplexedConnection,
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
    /// A producer over `conn`.
    pub fn new(conn: MultiplexedConnection) -> Self {
        Self {
            conn,
            tracer: ProducerTracer::new().with_system(SYSTEM),
            max_len: None,
        }
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
        let mut conn = self.conn.clone();
        let result: Result<String, redis::RedisError> = cmd.query_async(&mut conn).await;
        match result {
            Ok(id) => {
                span.record_message_id(&id);
                span.end();
                Ok(id)
            }
            Err(e) => {
                span.end_with_error(&e);
                Err(e.into())
            }
        }
    }
}
