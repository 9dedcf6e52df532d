use std::future::poll_fn;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, Value};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::{
    DEAD_LETTER_DELIVERIES_FIELD, DEAD_LETTER_REASON_FIELD, DEAD_LETTER_SOURCE_FIELD,
    HEADER_FIELD_PREFIX, PAYLOAD_FIELD, RedisQueueError, SYSTEM,
};
use crate::{Headers, TracedMessage};

/// What one [`RedisConsumer::process`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessReport {
    /// Messages whose handler succeeded (acknowledged).
    pub acked: usize,
    /// Messages whose handler failed (left pending: reclaimed after the claim idle time).
    pub failed: usize,
}

/// A member of a Redis consumer group reading one stream.
///
/// Defaults (each changed by a `with_*` method):
/// - block: 1 s (how long `XREADGROUP` waits for new entries);
/// - batch size: 10 entries per call;
/// - claim idle time: 30 s (an entry pending that long is taken over with `XAUTOCLAIM`);
/// - maximum deliveries: 5 (an entry about to be delivered a 6th time is dead-lettered);
/// - dead-letter stream: `{stream}:dead`.
///
/// It owns a dedicated connection (a blocking `XREADGROUP` would hold up other commands on a
/// shared one).
pub struct RedisConsumer {
    conn: MultiplexedConnection,
    stream: String,
    group: String,
    consumer: String,
    block: Duration,
    batch: usize,
    claim_min_idle: Duration,
    max_deliveries: u32,
    dead_letter: String,
}

impl std::fmt::Debug for RedisConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConsumer")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("block", &self.block)
            .field("batch", &self.batch)
            .field("claim_min_idle", &self.claim_min_idle)
            .field("max_deliveries", &self.max_deliveries)
            .field("dead_letter", &self.dead_letter)
            .finish_non_exhaustive()
    }
}

impl RedisConsumer {
    /// Opens a dedicated connection and joins consumer group `group` of `stream` as `consumer`,
    /// creating the stream and the group (reading from the start of the stream) if needed.
    pub async fn connect(
        client: &Client,
        stream: impl Into<String>,
        group: impl Into<String>,
        consumer: impl Into<String>,
    ) -> Result<Self, RedisQueueError> {
        // No response timeout: XREADGROUP BLOCK waits on purpose.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let stream = stream.into();
        let group = group.into();
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(&group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => return Err(e.into()),
            _ => {}
        }
        Ok(Self {
            conn,
            dead_letter: format!("{stream}:dead"),
            stream,
            group,
            consumer: consumer.into(),
            block: Duration::from_secs(1),
            batch: 10,
            claim_min_idle: Duration::from_secs(30),
            max_deliveries: 5,
        })
    }

    /// How long `XREADGROUP` waits for new entries (default 1 s; zero means do not wait).
    pub fn with_block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// Entries per call (default 10; at least 1).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How long an entry stays pending before another delivery takes it over (default 30 s).
    pub fn with_claim_min_idle(mut self, idle: Duration) -> Self {
        self.claim_min_idle = idle;
        self
    }

    /// Deliveries after which an entry is dead-lettered instead of delivered again (default 5;
    /// at least 1).
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = max.max(1);
        self
    }

    /// The dead-letter stream (default `{stream}:dead`).
    pub fn with_dead_letter_stream(mut self, stream: impl Into<String>) -> Self {
        self.dead_letter = stream.into();
        self
    }

    /// The stream read.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The dead-letter stream.
    pub fn dead_letter_stream(&self) -> &str {
        &self.dead_letter
    }

    /// The next batch: entries reclaimed from stalled deliveries first (with their retry count),
    /// else new entries (retry count 0), waiting up to the block time. Entries past the maximum
    /// deliveries or with an undecodable payload go to the dead-letter stream instead.
    ///
    /// Each message is pending until [`ack`](Self::ack)ed.
    pub async fn receive<T: DeserializeOwned>(
        &self,
    ) -> Result<Vec<TracedMessage<T>>, RedisQueueError> {
        let mut conn = self.conn.clone();
        let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(millis(self.claim_min_idle))
            .arg("0-0")
            .arg("COUNT")
            .arg(self.batch)
            .query_async(&mut conn)
            .await?;
        let mut out = Vec::with_capacity(claimed.claimed.len());
        for entry in &claimed.claimed {
            let deliveries = self.delivery_count(&mut conn, &entry.id).await?;
            if deliveries > u64::from(self.max_deliveries) {
                self.dead_letter(&mut conn, entry, deliveries, "max deliveries")
                    .await?;
                continue;
            }
            let retry = u32::try_from(deliveries.saturating_sub(1)).unwrap_or(u32::MAX);
            if let Some(msg) = self.decode(&mut conn, entry, deliveries, retry).await? {
                out.push(msg);
            }
        }
        if !out.is_empty() || !claimed.claimed.is_empty() {
            return Ok(out);
        }
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.batch);
        if !self.block.is_zero() {
            read.arg("BLOCK").arg(millis(self.block));
        }
        let reply: Option<StreamReadReply> = read
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        for key in reply.into_iter().flat_map(|r| r.keys) {
            for entry in &key.ids {
                // A new entry's delivery count is 1 by definition.
                if let Some(msg) = self.decode(&mut conn, entry, 1, 0).await? {
                    out.push(msg);
                }
            }
        }
        Ok(out)
    }

    /// Acknowledges a processed message (`XACK`): it will not be delivered again.
    pub async fn ack<T>(&self, msg: &TracedMessage<T>) -> Result<(), RedisQueueError> {
        if let Some(id) = msg.message_id() {
            self.ack_id(id).await?;
        }
        Ok(())
    }

    /// Acknowledges an entry by id.
    pub async fn ack_id(&self, id: &str) -> Result<(), RedisQueueError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Receives one batch and runs each message through `service` (wrap it in
    /// [`ConsumerTraceLayer`](crate::ConsumerTraceLayer) for the consumer spans). A message is
    /// acknowledged only when its handler returns `Ok`; a failed one stays pending and comes
    /// back, with a higher retry count, after the claim idle time.
    pub async fn process<S, T>(&self, service: &mut S) -> Result<ProcessReport, RedisQueueError>
    where
        S: Service<TracedMessage<T>>,
        S::Error: std::fmt::Display,
        T: DeserializeOwned,
    {
        let mut report = ProcessReport::default();
        for msg in self.receive::<T>().await? {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(|e| RedisQueueError::Handler(e.to_string()))?;
            let id = msg.message_id().map(str::to_owned);
            match service.call(msg).await {
                Ok(_) => {
                    if let Some(id) = id {
                        self.ack_id(&id).await?;
                    }
                    report.acked += 1;
                }
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }

    /// The delivery count of a pending entry (`XPENDING stream group id id 1`).
    async fn delivery_count(
        &self,
        conn: &mut MultiplexedConnection,
        id: &str,
    ) -> Result<u64, RedisQueueError> {
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .arg(id)
            .arg(1)
            .query_async(conn)
            .await?;
        Ok(pending
            .ids
            .first()
            .map_or(1, |p| u64::try_from(p.times_delivered).unwrap_or(u64::MAX)))
    }

    /// The entry as a message, or `None` after dead-lettering an undecodable one.
    async fn decode<T: DeserializeOwned>(
        &self,
        conn: &mut MultiplexedConnection,
        entry: &StreamId,
        deliveries: u64,
        retry_count: u32,
    ) -> Result<Option<TracedMessage<T>>, RedisQueueError> {
        let payload = entry
            .map
            .get(PAYLOAD_FIELD)
            .and_then(|v| bytes(v))
            .ok_or_else(|| format!("no `{PAYLOAD_FIELD}` field"))
            .and_then(|b| serde_json::from_slice::<T>(b).map_err(|e| e.to_string()));
        let payload = match payload {
            Ok(p) => p,
            Err(reason) => {
                self.dead_letter(conn, entry, deliveries, &reason).await?;
                return Ok(None);
            }
        };
        let headers: Headers = entry
            .map
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(HEADER_FIELD_PREFIX)?;
                let value = std::str::from_utf8(bytes(v)?).ok()?;
                Some((key, value))
            })
            .collect();
        Ok(Some(
            TracedMessage::new(self.stream.clone(), payload)
                .with_message_id(entry.id.clone())
                .with_retry_count(retry_count)
                .with_system(SYSTEM)
                .with_headers(headers),
        ))
    }

    /// Copies the entry to the dead-letter stream and acknowledges it, atomically.
    async fn dead_letter(
        &self,
        conn: &mut MultiplexedConnection,
        entry: &StreamId,
        deliveries: u64,
        reason: &str,
    ) -> Result<(), RedisQueueError> {
        let mut add = redis::cmd("XADD");
        add.arg(&self.dead_letter).arg("*");
        let mut fields: Vec<(&String, &[u8])> = entry
            .map
            .iter()
            .filter_map(|(k, v)| Some((k, bytes(v)?)))
            .collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in fields {
            add.arg(k).arg(v);
        }
        add.arg(DEAD_LETTER_SOURCE_FIELD)
            .arg(&entry.id)
            .arg(DEAD_LETTER_DELIVERIES_FIELD)
            .arg(deliveries)
            .arg(DEAD_LETTER_REASON_FIELD)
            .arg(reason);
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.stream).arg(&self.group).arg(&entry.id);
        let _: () = redis::pipe()
            .atomic()
            .add_command(add)
            .ignore()
            .add_command(ack)
            .ignore()
            .query_async(conn)
            .await?;
        Ok(())
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
