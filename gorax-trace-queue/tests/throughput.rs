//! Messages per second through a real Redis (`GORAX_TEST_REDIS_URL`): the plain redis crate
//! (`XADD`, `XREADGROUP`, `XACK`) against the gorax producer and consumer loop, unsampled and
//! sampled, in one run on one machine. It prints numbers and asserts only that every message
//! arrived (no timed assertion). Run it on purpose, in release:
//!
//! ```text
//! cargo test --release -p gorax-trace-queue --features redis --test throughput -- --ignored --nocapture
//! ```
#![cfg(feature = "redis")]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use gorax_trace::sampling::Sampler;
use gorax_trace::testing::TestTracing;
use gorax_trace_queue::redis::{RedisConsumer, RedisProducer};
use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
use tower::{ServiceBuilder, service_fn};

const MESSAGES: usize = 5_000;
const BATCH: usize = 100;
const ROUNDS: usize = 9;

fn stream(label: &str) -> String {
    gorax_trace::testing::unique_name(&format!("gorax-throughput-{label}"))
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// The plain redis crate: one `XADD` per message, then `XREADGROUP COUNT 100` and one `XACK`
/// per message, as the gorax consumer does.
async fn untraced(client: &redis::Client) -> (f64, f64) {
    let stream = stream("plain");
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let start = Instant::now();
    for i in 0..MESSAGES {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("payload")
            .arg(serde_json::to_string(&i).unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let produce = start.elapsed();
    let start = Instant::now();
    let mut seen = 0;
    for _ in 0..MESSAGES {
        if seen == MESSAGES {
            break;
        }
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(BATCH)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in reply.keys {
            for entry in key.ids {
                let payload: String = entry.get("payload").unwrap();
                let _: usize = serde_json::from_str(&payload).unwrap();
                let _: i64 = redis::cmd("XACK")
                    .arg(&stream)
                    .arg("g")
                    .arg(&entry.id)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                seen += 1;
            }
        }
    }
    assert_eq!(seen, MESSAGES);
    (rate(MESSAGES, produce), rate(MESSAGES, start.elapsed()))
}

/// The gorax producer and the shared consumer loop under `ConsumerTraceLayer`.
async fn gorax(client: &redis::Client, t: &TestTracing, label: &str) -> (f64, f64) {
    let stream = stream(label);
    let producer = RedisProducer::connect(client)
        .await
        .unwrap()
        .with_tracer(t.tracer());
    let consumer = RedisConsumer::connect(client, &stream, "g", "c")
        .await
        .unwrap()
        .with_batch_size(BATCH)
        .with_block(Duration::ZERO)
        .with_tracer(t.tracer());
    let start = Instant::now();
    for i in 0..MESSAGES {
        producer
            .send(TracedMessage::new(stream.clone(), i))
            .await
            .unwrap();
    }
    let produce = start.elapsed();
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(t.tracer()))
        .service(service_fn(|msg: TracedMessage<usize>| async move {
            std::hint::black_box(msg.payload());
            Ok::<_, Infallible>(())
        }));
    let start = Instant::now();
    let mut seen = 0;
    for _ in 0..MESSAGES {
        if seen == MESSAGES {
            break;
        }
        seen += consumer.process(&mut worker).await.unwrap().acked;
    }
    assert_eq!(seen, MESSAGES);
    (rate(MESSAGES, produce), rate(MESSAGES, start.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture, in release"]
async fn messages_per_second_through_redis() {
    let Some(url) = gorax_trace::testing::server_env("GORAX_TEST_REDIS_URL") else {
        return;
    };
    let client = redis::Client::open(url).unwrap();
    let unsampled = TestTracing::with_sampler(Sampler::AlwaysOff);
    let sampled = TestTracing::with_sampler(Sampler::AlwaysOn);
    // Warm-up, then each mode ROUNDS times, interleaved in a rotating order (a shared machine's
    // load drifts); the median is printed.
    let _ = untraced(&client).await;
    let _ = gorax(&client, &unsampled, "warm").await;
    let mut runs: [Vec<(f64, f64)>; 3] = Default::default();
    for round in 0..ROUNDS {
        for mode in (0..3).map(|m| (m + round) % 3) {
            let r = match mode {
                0 => untraced(&client).await,
                1 => gorax(&client, &unsampled, "unsampled").await,
                _ => gorax(&client, &sampled, "sampled").await,
            };
            if std::env::var_os("GORAX_THROUGHPUT_VERBOSE").is_some() {
                eprintln!("round {round} mode {mode}: {r:?}");
            }
            runs[mode].push(r);
            sampled.reset();
        }
    }
    println!(
        "{MESSAGES} messages, consumer batch {BATCH}, one connection each, {ROUNDS} rounds: \
         median and best (the least disturbed run on a shared machine)"
    );
    println!(
        "{:<24} {:>14} {:>10} {:>14} {:>10}",
        "", "produce/s med", "best", "consume/s med", "best"
    );
    for (label, mut r) in [
        "redis crate, untraced",
        "gorax, unsampled",
        "gorax, sampled",
    ]
    .into_iter()
    .zip(runs)
    {
        r.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (produce, produce_best) = (r[ROUNDS / 2].0, r[ROUNDS - 1].0);
        r.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (consume, consume_best) = (r[ROUNDS / 2].1, r[ROUNDS - 1].1);
        println!(
            "{label:<24} {produce:>14.0} {produce_best:>10.0} {consume:>14.0} {consume_best:>10.0}"
        );
    }
}
