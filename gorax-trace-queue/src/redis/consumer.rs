use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gorax_trace::SdkTracer;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::conn::Reconnecting;
use super::{
    DEAD_LETTER_DELIVERIES_FIELD, DEAD_LETTER_REASON_FIELD, DEAD_LETTER_SOURCE_FIELD,
    HEADER_FIELD_PREFIX, PAYLOAD_FIELD, RedisQueueError, SYSTEM,
};
use crate::consumer::{
    Batch, ConsumerSettings, ConsumerStats, LeaseKeeper, LeaseRenewer, Poison, ProcessReport,
    QueueConsumer, Received, process_batch, record_dead_letter_outside,
};
use crate::{Headers, TracedMessage};

/// The dead-letter reason of an entry the stream lost (trimmed by `MAXLEN`) while it was
/// pending.
pub const REASON_TRIMMED: &str = "trimmed from the stream before it was processed";
/// How long the marker of a dead-lettered entry is kept: a second dead-letter move of the same
/// entry within that time (another member, a retried call, the group created again after a
/// restart that kept the stream) writes no second copy.
pub const DEAD_LETTER_MARKER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Fields of one stream entry, as bytes (a field name need not be UTF-8).
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One delivery of a stream entry: what acknowledges it, and its raw fields (copied to the
/// dead-letter stream if it is given up).
#[derive(Debug, Clone)]
pub struct RedisReceipt {
    id: String,
    fields: Arc<Fields>,
}

impl RedisReceipt {
    /// The entry id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A member of a Redis consumer group reading one stream.
///
/// Defaults (each changed by a `with_*` method):
/// - block: 1 s (how long `XREADGROUP` waits for new entries);
/// - batch size: 10 entries per call;
/// - claim idle time: 30 s (an entry pending that long is taken over with `XAUTOCLAIM`). From
///   the moment a batch is received until each entry is finished (or `max_lease`), the entries
///   not yet acknowledged have their idle time reset every third of it (`XCLAIM … JUSTID`) by
///   the consumer's lease thread, over a connection of its own: a handler that blocks its
///   thread (even the only thread of a `current_thread` runtime) cannot stop it, so only the
///   entries of a dead or stuck consumer are taken over;
/// - maximum deliveries: 5 (an entry about to be delivered a 6th time is dead-lettered);
/// - dead-letter stream: `{stream}:dead`; one copy per entry, whichever member dead-letters
///   it: the move is one script that acknowledges the entry and writes the copy only if it was
///   still pending *and* its marker `{dead-letter stream}:marker:{group}:{id}` did not exist
///   (`SET NX`, kept [`DEAD_LETTER_MARKER_TTL`]);
/// - reconnect timeout: 10 s (how long a call waits for a lost server; the connection is
///   replaced with backoff, and the group is created again if the restarted server lost it).
///
/// Replies are read as raw values, entry by entry: one entry that cannot be decoded (a field
/// name that is not UTF-8, no payload, a payload that is not the expected JSON) is
/// dead-lettered with the reason, and the rest of its batch is processed. Pending entries the
/// stream lost (trimmed by `MAXLEN` before they were acknowledged) are reported by `XAUTOCLAIM`:
/// each gets a dead-letter record ([`REASON_TRIMMED`], no payload), a span and a count.
///
/// It owns a dedicated connection (a blocking `XREADGROUP` would hold up other commands on a
/// shared one). It speaks to one Redis server, not a cluster (the dead-letter move is one
/// script over the stream and the dead-letter stream).
pub struct RedisConsumer {
    conn: Arc<Reconnecting>,
    // For the lease thread's own connection (boxed: the consumer stays small).
    client: Box<Client>,
    lease: OnceLock<Option<LeaseKeeper<RedisReceipt>>>,
    stream: String,
    group: String,
    consumer: String,
    block: Duration,
    batch: usize,
    claim_min_idle: Duration,
    dead_letter: String,
    // Where the next XAUTOCLAIM scan of the pending list starts: a scan covers a bounded
    // stretch, so idle entries behind many live ones are reached on later calls.
    claim_cursor: std::sync::Mutex<String>,
    settings: ConsumerSettings,
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
            .field("max_deliveries", &self.settings.max_deliveries)
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
        let mut conn = Reconnecting::connect(client, config).await?;
        let stream = stream.into();
        let mut settings = ConsumerSettings::new(SYSTEM, stream.clone());
        settings.lease_interval = lease_interval(Duration::from_secs(30));
        conn.stats = Some(settings.stats.clone());
        let consumer = Self {
            conn: Arc::new(conn),
            client: Box::new(client.clone()),
            lease: OnceLock::new(),
            dead_letter: format!("{stream}:dead"),
            stream,
            group: group.into(),
            consumer: consumer.into(),
            block: Duration::from_secs(1),
            batch: 10,
            claim_min_idle: Duration::from_secs(30),
            claim_cursor: std::sync::Mutex::new("0-0".to_owned()),
            settings,
        };
        consumer.create_group().await?;
        Ok(consumer)
    }

    async fn create_group(&self) -> Result<(), RedisQueueError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM");
        match self.conn.query::<()>(&cmd, true).await {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
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
    /// The leases of a batch being handled are renewed every third of it.
    pub fn with_claim_min_idle(mut self, idle: Duration) -> Self {
        self.claim_min_idle = idle;
        self.settings.lease_interval = lease_interval(idle);
        self
    }

    /// How long one handler call may keep renewing the leases of its batch (default 15
    /// minutes; `None`: no limit): a handler that hangs gives its messages up after that.
    pub fn with_max_lease(mut self, max: Option<Duration>) -> Self {
        self.settings.max_lease = max;
        self
    }

    /// Deliveries after which an entry is dead-lettered instead of delivered again (default 5;
    /// at least 1).
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.settings.max_deliveries = max.max(1);
        self
    }

    /// The dead-letter stream (default `{stream}:dead`).
    pub fn with_dead_letter_stream(mut self, stream: impl Into<String>) -> Self {
        self.dead_letter = stream.into();
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

    /// How long a call waits for a lost server to come back before it fails (default 10 s).
    pub fn with_reconnect_timeout(mut self, timeout: Duration) -> Self {
        if let Some(conn) = Arc::get_mut(&mut self.conn) {
            conn.timeout = timeout;
        }
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

    /// The counters of this consumer (acks, failures, panics, dead letters, reconnects…).
    pub fn stats(&self) -> &ConsumerStats {
        &self.settings.stats
    }

    /// The next batch: entries reclaimed from stalled deliveries first (with their retry count),
    /// else new entries (retry count 0), waiting up to the block time. Entries past the maximum
    /// deliveries or that do not decode go to the dead-letter stream instead.
    ///
    /// Each message is pending until [`ack`](Self::ack)ed. [`process`](Self::process) is the
    /// loop that also catches panics and renews leases.
    pub async fn receive<T: DeserializeOwned>(
        &self,
    ) -> Result<Vec<TracedMessage<T>>, RedisQueueError> {
        let batch: Batch<T, RedisReceipt> = self.receive_batch().await?;
        let mut out = Vec::with_capacity(batch.received.len());
        for received in batch.received {
            match received.message {
                Ok(msg) if received.deliveries <= u64::from(self.settings.max_deliveries) => {
                    out.push(msg);
                }
                Ok(_) => {
                    self.dead_letter_entry(
                        &received.receipt,
                        crate::consumer::REASON_MAX_DELIVERIES,
                        received.deliveries,
                    )
                    .await?;
                }
                Err(poison) => {
                    self.settings.stats.add_poison();
                    self.dead_letter_entry(&received.receipt, &poison.reason, received.deliveries)
                        .await?;
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
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.stream).arg(&self.group).arg(id);
        let _: i64 = self.conn.query(&cmd, true).await?;
        Ok(())
    }

    /// Receives one batch and runs each message through `service` (wrap it in
    /// [`ConsumerTraceLayer`](crate::ConsumerTraceLayer) for the consumer spans) with the shared
    /// loop ([`process_batch`]): acknowledged when its handler returns `Ok`; a failed or
    /// panicking one stays pending and comes back, with a higher retry count, after the claim
    /// idle time; poison and over-delivered entries are dead-lettered. A broker error on one
    /// entry does not stop the batch; only a failed receive (the server gone longer than the
    /// reconnect timeout) returns an error.
    pub async fn process<S, T>(&self, service: &mut S) -> Result<ProcessReport, RedisQueueError>
    where
        S: Service<TracedMessage<T>>,
        S::Error: std::fmt::Display,
        T: DeserializeOwned,
    {
        process_batch(self, service).await
    }

    /// Runs `cmd` (safe to repeat); a group lost with a restarted server is created again.
    async fn query_group(&self, cmd: &redis::Cmd) -> Result<Value, RedisQueueError> {
        match self.conn.query::<Value>(cmd, true).await {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.create_group().await?;
                Ok(self.conn.query::<Value>(cmd, true).await?)
            }
            other => Ok(other?),
        }
    }

    /// Delivery counts of pending entries (one pipelined `XPENDING` per entry).
    async fn delivery_counts(&self, ids: &[&str]) -> Result<Vec<u64>, RedisQueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(*id)
                .arg(*id)
                .arg(1);
        }
        let mut conn = self.conn.get().await?;
        let replies: Vec<Value> = pipe.query_async(&mut conn).await.inspect_err(|e| {
            if super::conn::is_connection_error(e) {
                self.conn.invalidate();
            }
        })?;
        Ok(replies
            .iter()
            .map(|reply| {
                // [[id, consumer, idle, count]]
                array(reply)
                    .and_then(|rows| rows.first())
                    .and_then(array)
                    .and_then(|row| row.get(3))
                    .and_then(int)
                    .unwrap_or(1)
            })
            .collect())
    }

    fn received<T: DeserializeOwned>(
        &self,
        id: String,
        fields: Fields,
        deliveries: u64,
    ) -> Received<T, RedisReceipt> {
        let message = decode::<T>(&self.stream, &id, &fields, deliveries);
        Received {
            receipt: RedisReceipt {
                id,
                fields: Arc::new(fields),
            },
            deliveries,
            message,
        }
    }

    /// Copies the entry to the dead-letter stream and acknowledges it, in one script: the copy
    /// is written only if the entry was still pending and no member dead-lettered it before
    /// (its marker, set with `SET NX`), so neither a retried call nor another member can
    /// duplicate it.
    async fn dead_letter_entry(
        &self,
        receipt: &RedisReceipt,
        reason: &str,
        deliveries: u64,
    ) -> Result<(), RedisQueueError> {
        const SCRIPT: &str = "if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 \
             and redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then \
             redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4)) end return 0";
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT)
            .arg(3)
            .arg(&self.stream)
            .arg(&self.dead_letter)
            .arg(self.dead_letter_marker(&receipt.id))
            .arg(&self.group)
            .arg(&receipt.id)
            .arg(millis(DEAD_LETTER_MARKER_TTL));
        let mut fields: Vec<&(Vec<u8>, Vec<u8>)> = receipt.fields.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in fields {
            cmd.arg(k.as_slice()).arg(v.as_slice());
        }
        cmd.arg(DEAD_LETTER_SOURCE_FIELD)
            .arg(&receipt.id)
            .arg(DEAD_LETTER_DELIVERIES_FIELD)
            .arg(deliveries)
            .arg(DEAD_LETTER_REASON_FIELD)
            .arg(reason);
        let _: Value = self.conn.query(&cmd, true).await?;
        Ok(())
    }

    /// The key marking entry `id` as dead-lettered by this group.
    pub fn dead_letter_marker(&self, id: &str) -> String {
        format!("{}:marker:{}:{id}", self.dead_letter, self.group)
    }

    /// Records an entry the stream lost. The server already forgot it: a failed record is
    /// counted, never retried into a failed receive.
    async fn trimmed(&self, id: &str) {
        if self.record_trimmed(id).await.is_err() {
            self.settings.stats.add_broker_error();
        }
        record_dead_letter_outside(&self.settings, id, REASON_TRIMMED);
    }

    /// A dead-letter record for an entry the stream lost while it was pending.
    async fn record_trimmed(&self, id: &str) -> Result<(), RedisQueueError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.dead_letter)
            .arg("*")
            .arg(DEAD_LETTER_SOURCE_FIELD)
            .arg(id)
            .arg(DEAD_LETTER_REASON_FIELD)
            .arg(REASON_TRIMMED);
        let _: Value = self.conn.query(&cmd, false).await?;
        Ok(())
    }
}

impl<T: DeserializeOwned> QueueConsumer<T> for RedisConsumer {
    type Receipt = RedisReceipt;
    type Error = RedisQueueError;

    fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    async fn receive_batch(&self) -> Result<Batch<T, RedisReceipt>, RedisQueueError> {
        let mut batch = Batch::default();
        let cursor = self
            .claim_cursor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut claim = redis::cmd("XAUTOCLAIM");
        claim
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(millis(self.claim_min_idle))
            .arg(&cursor)
            .arg("COUNT")
            .arg(self.batch);
        // [next cursor, [entries], [ids of pending entries no longer in the stream]]
        let reply = self.query_group(&claim).await?;
        let parts = array(&reply).map(Vec::as_slice).unwrap_or_default();
        if let Some(next) = parts.first().and_then(text) {
            *self.claim_cursor.lock().unwrap_or_else(|e| e.into_inner()) = next;
        }
        let claimed = parts.get(1).map(entries).unwrap_or_default();
        for id in parts.get(2).and_then(array).into_iter().flatten() {
            if let Some(id) = text(id) {
                self.trimmed(&id).await;
                batch.lost.push(id);
            }
        }
        if !claimed.is_empty() {
            let mut live = Vec::with_capacity(claimed.len());
            for (id, fields) in claimed {
                match fields {
                    Some(fields) => live.push((id, fields)),
                    // Redis 6: a claimed id whose entry is gone.
                    None => {
                        self.trimmed(&id).await;
                        batch.lost.push(id);
                    }
                }
            }
            let ids: Vec<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
            let counts = self.delivery_counts(&ids).await?;
            for ((id, fields), deliveries) in live.into_iter().zip(counts) {
                batch.received.push(self.received(id, fields, deliveries));
            }
        }
        if !batch.received.is_empty() || !batch.lost.is_empty() {
            return Ok(batch);
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
        read.arg("STREAMS").arg(&self.stream).arg(">");
        let reply = self.query_group(&read).await?;
        for (_stream, value) in streams(&reply) {
            for (id, fields) in entries(value) {
                // A new entry's delivery count is 1 by definition.
                let fields = fields.unwrap_or_default();
                batch.received.push(self.received(id, fields, 1));
            }
        }
        Ok(batch)
    }

    async fn ack(&self, receipt: &RedisReceipt) -> Result<(), RedisQueueError> {
        self.ack_id(&receipt.id).await
    }

    async fn release(
        &self,
        _receipt: &RedisReceipt,
        _delay: Option<Duration>,
    ) -> Result<(), RedisQueueError> {
        // Left pending: reclaimed (by any member) once idle for the claim idle time.
        Ok(())
    }

    async fn dead_letter(
        &self,
        receipt: &RedisReceipt,
        reason: &str,
        deliveries: u64,
    ) -> Result<(), RedisQueueError> {
        self.dead_letter_entry(receipt, reason, deliveries).await
    }

    fn lease_keeper(&self) -> Option<&LeaseKeeper<RedisReceipt>> {
        self.lease
            .get_or_init(|| {
                let every = self.settings.lease_interval?;
                let renewer = RedisRenewer {
                    client: (*self.client).clone(),
                    stream: self.stream.clone(),
                    group: self.group.clone(),
                    consumer: self.consumer.clone(),
                    timeout: every,
                    runtime: None,
                    conn: None,
                };
                LeaseKeeper::start(&self.consumer, every, self.settings.stats.clone(), renewer).ok()
            })
            .as_ref()
    }
}

/// Resets the idle time of the pending entries this consumer owns (`XCLAIM … JUSTID`, in a
/// script that skips entries another member took over) from the lease thread, over a
/// connection of its own driven by a runtime of its own.
struct RedisRenewer {
    client: Client,
    stream: String,
    group: String,
    consumer: String,
    timeout: Duration,
    runtime: Option<tokio::runtime::Runtime>,
    conn: Option<MultiplexedConnection>,
}

impl LeaseRenewer<RedisReceipt> for RedisRenewer {
    fn renew(&mut self, receipts: &[&RedisReceipt]) -> Result<(), String> {
        let Self {
            client,
            stream,
            group,
            consumer,
            timeout,
            runtime,
            conn,
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
        // Resets the idle time without counting a delivery, of the entries this consumer still
        // owns: one acknowledged is gone from the pending list, and one another member took
        // over (after a lapse) is left to it rather than claimed back.
        const SCRIPT: &str = "for i = 3, #ARGV do \
             local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) \
             if p[1] then redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID') end \
             end return 0";
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT)
            .arg(1)
            .arg(&*stream)
            .arg(&*group)
            .arg(&*consumer);
        for receipt in receipts {
            cmd.arg(&receipt.id);
        }
        let timeout = *timeout;
        let result = runtime.block_on(async {
            tokio::time::timeout(timeout, async {
                if conn.is_none() {
                    let config = AsyncConnectionConfig::new().set_response_timeout(Some(timeout));
                    *conn = Some(
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    );
                }
                let c = conn.as_mut().expect("just connected");
                cmd.query_async::<Value>(c).await
            })
            .await
        });
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                *conn = None;
                Err(e.to_string())
            }
            Err(_) => {
                *conn = None;
                Err(format!("XCLAIM timed out after {timeout:?}"))
            }
        }
    }
}

/// A third of the claim idle time: renewed that often, a lease never lapses while its consumer
/// is alive.
fn lease_interval(claim_min_idle: Duration) -> Option<Duration> {
    (!claim_min_idle.is_zero()).then(|| claim_min_idle / 3)
}

/// The message in an entry's fields, or why there is none.
fn decode<T: DeserializeOwned>(
    stream: &str,
    id: &str,
    fields: &Fields,
    deliveries: u64,
) -> Result<TracedMessage<T>, Poison> {
    let poison = |reason: String| Poison {
        message_id: Some(id.to_owned()),
        reason,
    };
    let mut payload = None;
    let mut headers = Headers::new();
    for (key, value) in fields {
        let key = std::str::from_utf8(key).map_err(|_| {
            poison(format!(
                "field name is not UTF-8: {:?}",
                String::from_utf8_lossy(key)
            ))
        })?;
        if key == PAYLOAD_FIELD {
            payload = Some(value);
        } else if let Some(header) = key.strip_prefix(HEADER_FIELD_PREFIX)
            && let Ok(value) = std::str::from_utf8(value)
        {
            headers.insert(header, value);
        }
    }
    let payload = payload.ok_or_else(|| poison(format!("no `{PAYLOAD_FIELD}` field")))?;
    let payload = serde_json::from_slice::<T>(payload)
        .map_err(|e| poison(format!("payload does not decode: {e}")))?;
    let retry = u32::try_from(deliveries.saturating_sub(1)).unwrap_or(u32::MAX);
    Ok(TracedMessage::new(stream.to_owned(), payload)
        .with_message_id(id.to_owned())
        .with_retry_count(retry)
        .with_system(SYSTEM)
        .with_headers(headers))
}

fn array(value: &Value) -> Option<&Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    bytes(value).map(|b| String::from_utf8_lossy(b).into_owned())
}

fn int(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => bytes(other).and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()),
    }
}

/// `[[stream, entries], …]` (RESP2) or `{stream: entries}` (RESP3) of `XREADGROUP`.
fn streams(reply: &Value) -> Vec<(String, &Value)> {
    match reply {
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        other => array(other)
            .into_iter()
            .flatten()
            .filter_map(|pair| {
                let pair = array(pair)?;
                Some((text(pair.first()?)?, pair.get(1)?))
            })
            .collect(),
    }
}

/// `[[id, [field, value, …] | nil], …]`: each entry on its own, fields as bytes. An entry
/// whose fields are nil (deleted) has `None`.
fn entries(value: &Value) -> Vec<(String, Option<Fields>)> {
    array(value)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = array(entry)?;
            let id = text(entry.first()?)?;
            let fields = match entry.get(1) {
                None | Some(Value::Nil) => None,
                Some(Value::Map(pairs)) => Some(
                    pairs
                        .iter()
                        .map(|(k, v)| {
                            let k = bytes(k).unwrap_or_default().to_vec();
                            let v = bytes(v).unwrap_or_default().to_vec();
                            (k, v)
                        })
                        .collect(),
                ),
                Some(list) => Some(
                    array(list)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .chunks(2)
                        .map(|kv| {
                            let k = kv.first().and_then(bytes).unwrap_or_default().to_vec();
                            let v = kv.get(1).and_then(bytes).unwrap_or_default().to_vec();
                            (k, v)
                        })
                        .collect(),
                ),
            };
            Some((id, fields))
        })
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_one_by_one() {
        let entry = |id: &str, fields: Vec<&[u8]>| {
            Value::Array(vec![
                Value::BulkString(id.into()),
                Value::Array(
                    fields
                        .into_iter()
                        .map(|f| Value::BulkString(f.to_vec()))
                        .collect(),
                ),
            ])
        };
        let reply = Value::Array(vec![
            entry("1-0", vec![b"payload", b"1", b"header:k", b"v"]),
            entry("2-0", vec![b"\xff\xfe", b"x", b"payload", b"2"]),
            entry("3-0", vec![b"payload", b"not json"]),
            entry("4-0", vec![b"other", b"3"]),
            Value::Array(vec![Value::BulkString(b"5-0".to_vec()), Value::Nil]),
        ]);
        let parsed = entries(&reply);
        assert_eq!(parsed.len(), 5);
        assert!(parsed[4].1.is_none());
        let decoded: Vec<Result<TracedMessage<u32>, Poison>> = parsed
            .iter()
            .take(4)
            .map(|(id, f)| decode("s", id, f.as_ref().unwrap(), 1))
            .collect();
        let ok = decoded[0].as_ref().unwrap();
        assert_eq!((*ok.payload(), ok.headers().get("k")), (1, Some("v")));
        let reasons: Vec<&str> = decoded[1..]
            .iter()
            .map(|d| d.as_ref().unwrap_err().reason.as_str())
            .collect();
        assert!(
            reasons[0].starts_with("field name is not UTF-8"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].starts_with("payload does not decode"),
            "{reasons:?}"
        );
        assert_eq!(reasons[2], "no `payload` field");
    }
}
