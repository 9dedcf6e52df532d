//! A multiplexed connection that is replaced when it breaks (a Redis restart), with bounded
//! backoff.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, RedisError};

use crate::stats::ConsumerStats;

/// The first wait between reconnect attempts; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a call waits for the server to come back before it fails (default).
pub(crate) const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `e` means the connection is unusable (rather than a reply from the server).
pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

pub(crate) struct Reconnecting {
    client: Option<Client>,
    config: AsyncConnectionConfig,
    current: Mutex<Option<MultiplexedConnection>>,
    pub(crate) timeout: Duration,
    pub(crate) stats: Option<Arc<ConsumerStats>>,
}

impl Reconnecting {
    /// A connection made from `client` now (and again whenever it breaks).
    pub(crate) async fn connect(
        client: &Client,
        config: AsyncConnectionConfig,
    ) -> Result<Self, RedisError> {
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Self {
            client: Some(client.clone()),
            config,
            current: Mutex::new(Some(conn)),
            timeout: DEFAULT_RECONNECT_TIMEOUT,
            stats: None,
        })
    }

    /// A connection that cannot be replaced (no client to make another).
    pub(crate) fn fixed(conn: MultiplexedConnection) -> Self {
        Self {
            client: None,
            config: AsyncConnectionConfig::new(),
            current: Mutex::new(Some(conn)),
            timeout: DEFAULT_RECONNECT_TIMEOUT,
            stats: None,
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current connection, or a new one (retrying with backoff up to the timeout).
    pub(crate) async fn get(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(conn) = self.slot().clone() {
            return Ok(conn);
        }
        let client = self
            .client
            .as_ref()
            .expect("only a reconnecting connection is emptied");
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
            {
                Ok(conn) => {
                    if let Some(stats) = &self.stats {
                        stats.add_reconnect();
                    }
                    *self.slot() = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) if Instant::now() + backoff >= deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Forgets a broken connection so the next call makes a new one.
    pub(crate) fn invalidate(&self) {
        if self.client.is_some() {
            *self.slot() = None;
        }
    }

    /// Runs `cmd`; on a connection error, reconnects and (when `retry`) runs it once more.
    /// Only commands that are safe to repeat may retry.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        retry: bool,
    ) -> Result<T, RedisError> {
        let mut conn = self.get().await?;
        match cmd.query_async(&mut conn).await {
            Err(e) if is_connection_error(&e) => {
                self.invalidate();
                if !retry || self.client.is_none() {
                    return Err(e);
                }
                let mut conn = self.get().await?;
                cmd.query_async(&mut conn).await.inspect_err(|e| {
                    if is_connection_error(e) {
                        self.invalidate();
                    }
                })
            }
            other => other,
        }
    }
}
