//! Retries of one OTLP export, as opentelemetry-otlp 0.33 does them (`retry.rs`; its function is
//! private): up to 3 retries; a retryable failure backs off 100 ms doubling to 1.6 s, plus up to
//! 100 ms of jitter; a throttled one (HTTP `Retry-After`, gRPC `RetryInfo`) waits at least the
//! server's delay (at most 30 s, which then also lifts the 1.6 s cap); a wait that does not fit
//! in what is left of the export timeout, or a failure after it, gives up at once. Waits sleep
//! the thread: exports run on the batch processor's helper threads, outside any async runtime.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

/// Shutdown of an own exporter (HTTP or gRPC): drops its client; a second call is
/// `AlreadyShutdown`, as the SDK's exporters answer.
pub(crate) fn shut_down<T>(
    client: &std::sync::Mutex<Option<T>>,
) -> opentelemetry_sdk::error::OTelSdkResult {
    match client
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        Some(_) => Ok(()),
        None => Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown),
    }
}

const MAX_RETRIES: u32 = 3;
const INITIAL_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(1600);
const MAX_JITTER_MS: u64 = 100;
/// The longest wait a server's delay can ask for.
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// How a failed attempt may be retried.
pub(crate) enum Retry {
    Never,
    Backoff,
    /// After the server's delay.
    After(Duration),
}

/// A failed attempt and the message the export fails with if it is the last.
pub(crate) struct Failure {
    pub(crate) retry: Retry,
    pub(crate) message: String,
}

/// Up to 100 ms, from the clock's nanoseconds (as opentelemetry-otlp does: no RNG needed).
fn jitter() -> Duration {
    use std::hash::{DefaultHasher, Hasher};
    let mut hasher = DefaultHasher::default();
    hasher.write_u32(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    Duration::from_millis(hasher.finish() % (MAX_JITTER_MS + 1))
}

/// Runs `attempt` until it succeeds or may not be retried within `timeout`; the error is the
/// last failure's message.
pub(crate) async fn with_retries<F, Fut>(timeout: Duration, mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let start = Instant::now();
    let (mut retries, mut delay, mut cap) = (0, INITIAL_DELAY, MAX_DELAY);
    loop {
        let failure = match attempt().await {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        if start.elapsed() >= timeout || retries >= MAX_RETRIES {
            return Err(failure.message);
        }
        match failure.retry {
            Retry::Never => return Err(failure.message),
            Retry::Backoff => {}
            Retry::After(server) => {
                let server = server.min(MAX_THROTTLE);
                if server > cap {
                    cap = MAX_THROTTLE;
                }
                delay = delay.max(server);
            }
        }
        retries += 1;
        let wait = delay.saturating_add(jitter()).min(cap);
        if wait >= timeout.saturating_sub(start.elapsed()) {
            return Err(failure.message);
        }
        std::thread::sleep(wait);
        delay = delay.saturating_mul(2).min(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_bounded() {
        for _ in 0..100 {
            assert!(jitter() <= Duration::from_millis(MAX_JITTER_MS));
        }
    }

    #[test]
    fn retries_three_times_then_gives_up_and_never_past_the_timeout() {
        let mut calls = 0;
        let result = futures_executor::block_on(with_retries(Duration::from_secs(10), || {
            calls += 1;
            async {
                Err(Failure {
                    retry: Retry::Backoff,
                    message: "down".into(),
                })
            }
        }));
        assert_eq!((result, calls), (Err("down".to_owned()), 4));
        let mut calls = 0;
        let result = futures_executor::block_on(with_retries(Duration::from_secs(2), || {
            calls += 1;
            async {
                Err(Failure {
                    retry: Retry::After(Duration::from_secs(30)),
                    message: "later".into(),
                })
            }
        }));
        assert_eq!((result, calls), (Err("later".to_owned()), 1));
        let mut calls = 0;
        let result = futures_executor::block_on(with_retries(Duration::from_secs(2), || {
            calls += 1;
            async {
                Err(Failure {
                    retry: Retry::Never,
                    message: "no".into(),
                })
            }
        }));
        assert_eq!((result, calls), (Err("no".to_owned()), 1));
    }
}
