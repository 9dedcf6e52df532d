//! The consumer contract, proved the same way on every broker: the in-process queue, a real
//! Redis (`GORAX_TEST_REDIS_URL`; the restart case starts its own `redis-server`), the SQS
//! emulator (`GORAX_TEST_SQS_ENDPOINT`) and, with the `nats` feature, a real NATS JetStream
//! (`GORAX_TEST_NATS_URL`; the restart case starts its own `nats-server -js`) and, with the `amqp`
//! feature, a real RabbitMQ (`GORAX_TEST_AMQP_URL`; the restart case starts a node of its own). scripts/test.sh
//! starts the servers. Without them the broker cases say they are skipped, except under
//! `CI=true`, where a missing server fails.
//!
//! Each case injects one fault and asserts the counts: every produced message is acknowledged
//! or dead-lettered (`produced = acked + dead-lettered`), none is lost, and duplicates (a
//! message whose handler succeeded twice) are zero or bounded with the reason given.
//! Every loop is bounded in count and time; nothing asserts on speed.
#![cfg(all(feature = "memory", feature = "redis", feature = "sqs"))]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gorax_trace::testing::TestTracing;
use gorax_trace_queue::consumer::{
    DEAD_LETTER_REASON, QueueConsumer, REASON_MAX_DELIVERIES, process_batch,
};
use gorax_trace_queue::{ConsumerTraceLayer, Producer, TracedMessage};
use serde::{Deserialize, Serialize};
use tower::{Service, ServiceBuilder, service_fn};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u32,
}

/// What the handler does on one attempt.
#[derive(Debug, Clone, Copy)]
enum Act {
    Ok,
    Fail,
    Panic,
    Sleep(Duration),
    /// Blocks the thread it runs on (`std::thread::sleep`), as a synchronous call would.
    Block(Duration),
    Hang,
}

/// Successful handler runs and attempts, per job id.
#[derive(Debug, Default)]
struct Ledger {
    ok: Mutex<HashMap<u32, u32>>,
    attempts: Mutex<HashMap<u32, u32>>,
}

impl Ledger {
    fn attempt(&self, id: u32) -> u32 {
        let mut attempts = self.attempts.lock().unwrap();
        let n = attempts.entry(id).or_default();
        *n += 1;
        *n - 1
    }
    fn succeeded(&self, id: u32) {
        *self.ok.lock().unwrap().entry(id).or_default() += 1;
    }
    fn unique_ok(&self) -> usize {
        self.ok.lock().unwrap().len()
    }
    /// Handler successes beyond the first, summed over ids.
    fn duplicates(&self) -> u32 {
        self.ok.lock().unwrap().values().map(|n| n - 1).sum()
    }
}

type Worker = Box<
    dyn Service<
            TracedMessage<Job>,
            Response = (),
            Error = String,
            Future = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
        > + Send,
>;

fn worker(
    t: &TestTracing,
    ledger: &Arc<Ledger>,
    act: impl Fn(u32, u32) -> Act + Clone + Send + Sync + 'static,
) -> Worker {
    let ledger = ledger.clone();
    let svc = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(t.tracer()))
        .service(service_fn(move |msg: TracedMessage<Job>| {
            let (ledger, act) = (ledger.clone(), act.clone());
            async move {
                let id = msg.payload().id;
                match act(id, ledger.attempt(id)) {
                    Act::Ok => {}
                    Act::Fail => return Err(format!("job {id} failed")),
                    Act::Panic => panic!("job {id}: the handler panicked (on purpose)"),
                    Act::Sleep(d) => tokio::time::sleep(d).await,
                    Act::Block(d) => std::thread::sleep(d),
                    Act::Hang => std::future::pending::<()>().await,
                }
                ledger.succeeded(id);
                Ok(())
            }
        }));
    Box::new(tower::util::MapFuture::new(svc, |f| {
        Box::pin(f) as std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
    }))
}

/// The sums of the process reports of one consumer.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    acked: usize,
    failed: usize,
    panicked: usize,
    dead_lettered: usize,
    lost: usize,
    left: usize,
    errors: usize,
    receive_errors: usize,
}

impl std::ops::Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals {
            acked: self.acked + o.acked,
            failed: self.failed + o.failed,
            panicked: self.panicked + o.panicked,
            dead_lettered: self.dead_lettered + o.dead_lettered,
            lost: self.lost + o.lost,
            left: self.left + o.left,
            errors: self.errors + o.errors,
            receive_errors: self.receive_errors + o.receive_errors,
        }
    }
}

/// Runs `process_batch` until `done`, at most `deadline` long (a call that blocks is cut off
/// at the deadline, which fails the test).
async fn drive<C: QueueConsumer<Job>>(
    consumer: &C,
    worker: &mut Worker,
    deadline: Duration,
    done: impl Fn(&Totals) -> bool,
) -> Totals {
    let start = Instant::now();
    let mut totals = Totals::default();
    while !done(&totals) {
        let left = deadline
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("not done after {deadline:?}: {totals:?}"));
        match tokio::time::timeout(left, process_batch(consumer, worker)).await {
            Err(_) => panic!("not done after {deadline:?}: {totals:?}"),
            Ok(Err(_)) => {
                totals.receive_errors += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Ok(r)) => {
                totals.acked += r.acked;
                totals.failed += r.failed;
                totals.panicked += r.panicked;
                totals.dead_lettered += r.dead_lettered;
                totals.lost += r.lost;
                totals.left += r.left;
                totals.errors += r.errors;
            }
        }
    }
    totals
}

/// Starts `process_batch` and abandons it after `after`, as a SIGKILL would (its future is
/// dropped mid-handler; nothing after that point runs).
async fn kill_mid_batch<C: QueueConsumer<Job>>(consumer: &C, worker: &mut Worker, after: Duration) {
    let cut = tokio::time::timeout(after, process_batch(consumer, worker)).await;
    assert!(
        cut.is_err(),
        "the batch was meant to be cut off mid-handler"
    );
}

/// Runs `run` on a thread of its own, with a `current_thread` runtime of its own: a consumer
/// there keeps going whatever a handler does to the test's runtime.
fn on_own_thread<F, Fut>(run: F) -> std::thread::JoinHandle<Totals>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Totals>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run())
    })
}

/// Waits for a thread from [`on_own_thread`] without blocking the test's runtime.
async fn join(thread: std::thread::JoinHandle<Totals>) -> Totals {
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap()
}

/// The producer contract, the same on every broker: three sends, each `Ok` with an id only
/// once the broker has the message (the caller then receives exactly three).
async fn producer_contract<P: Producer<Job>>(producer: &P, queue: &str, first: u32) {
    let a = producer
        .send(TracedMessage::new(queue, Job { id: first }))
        .await
        .unwrap();
    let b = producer
        .try_send(TracedMessage::new(queue, Job { id: first + 1 }))
        .await
        .unwrap();
    let c = producer
        .send_timeout(
            TracedMessage::new(queue, Job { id: first + 2 }),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(!a.is_empty() && a != b && b != c, "{a} {b} {c}");
}

fn dead_letter_spans(t: &TestTracing) -> usize {
    t.spans()
        .iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == DEAD_LETTER_REASON)
        })
        .count()
}

fn panic_spans(t: &TestTracing) -> usize {
    t.spans()
        .iter()
        .filter(|s| {
            s.attributes.iter().any(|kv| {
                kv.key.as_str() == gorax_trace::semconv::ERROR_TYPE && kv.value.as_str() == "panic"
            })
        })
        .count()
}

/// Every adapter's processing future can be spawned (`tokio::spawn` needs `Send`).
#[test]
fn processing_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn check(
        m: &mut gorax_trace_queue::memory::MemoryConsumer<Job>,
        r: &gorax_trace_queue::redis::RedisConsumer,
        s: &gorax_trace_queue::sqs::SqsConsumer,
        w: &mut Worker,
    ) {
        assert_send(&r.process::<_, Job>(w));
        assert_send(&s.process::<_, Job>(w));
        assert_send(&process_batch(r, w));
        assert_send(&m.process(w));
    }
    let _ = check;
    #[cfg(feature = "amqp")]
    {
        fn check_amqp(
            a: &gorax_trace_queue::amqp::AmqpConsumer,
            p: &gorax_trace_queue::amqp::AmqpProducer,
            w: &mut Worker,
        ) {
            assert_send(&a.process::<_, Job>(w));
            assert_send(&process_batch(a, w));
            assert_send(&p.send(TracedMessage::new("q", Job { id: 1 })));
        }
        let _ = check_amqp;
    }
}

// ---------------------------------------------------------------------------------------------
// The in-process queue
// ---------------------------------------------------------------------------------------------

mod memory {
    use super::*;
    use gorax_trace_queue::memory;

    #[tokio::test]
    async fn a_consumer_killed_mid_batch_loses_nothing() {
        let t = TestTracing::new();
        let (producer, consumer) = memory::channel::<Job>("conf-mem-kill", 64);
        let consumer = consumer.with_batch_size(5);
        for id in 0..10 {
            producer.send_payload(Job { id }).await.unwrap();
        }
        let ledger = Arc::new(Ledger::default());
        let mut hangs = worker(
            &t,
            &ledger,
            |id, _| if id == 2 { Act::Hang } else { Act::Ok },
        );
        kill_mid_batch(&consumer, &mut hangs, Duration::from_millis(300)).await;
        drop(consumer); // what it held goes back on the queue
        let survivor = producer.subscribe();
        let mut ok = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&survivor, &mut ok, Duration::from_secs(10), |_| {
            ledger.unique_ok() == 10
        })
        .await;
        // 2 acked before the kill, 8 after (the hung one included): produced 10 = acked 10.
        assert_eq!(totals.acked, 8, "{totals:?}");
        assert_eq!(survivor.stats().snapshot().acked, 8);
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (10, 0));
        assert_eq!(producer.counts(), (0, 0, 0), "nothing left, nothing lost");
    }

    #[tokio::test]
    async fn poison_is_dead_lettered_after_max_deliveries_and_panics_are_retried() {
        let t = TestTracing::new();
        let (producer, consumer) = memory::channel::<Job>("conf-mem-poison", 64);
        let producer = producer.with_tracer(t.tracer());
        let consumer = consumer
            .with_max_deliveries(3)
            .with_batch_size(4)
            .with_tracer(t.tracer());
        for id in 0..8 {
            producer.send_payload(Job { id }).await.unwrap();
        }
        let ledger = Arc::new(Ledger::default());
        // Job 0 always fails; even jobs panic on their first attempt.
        let mut w = worker(&t, &ledger, |id, attempt| match (id, attempt) {
            (0, _) => Act::Fail,
            (id, 0) if id % 2 == 0 => Act::Panic,
            _ => Act::Ok,
        });
        let totals = drive(&consumer, &mut w, Duration::from_secs(10), |t| {
            t.acked + t.dead_lettered == 8
        })
        .await;
        // produced 8 = acked 7 + dead-lettered 1; panics 4 (jobs 2, 4, 6 and 0's first).
        assert_eq!((totals.acked, totals.dead_lettered), (7, 1), "{totals:?}");
        assert_eq!(totals.panicked, 3, "jobs 2, 4, 6 ({totals:?})");
        assert_eq!(totals.failed, 3 + 3, "job 0 three times, three panics");
        let dead = consumer.dead_letters();
        assert_eq!(
            (
                dead.len(),
                dead[0].message.payload().id,
                dead[0].reason.as_str()
            ),
            (1, 0, REASON_MAX_DELIVERIES)
        );
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (7, 0));
        assert_eq!(dead_letter_spans(&t), 1);
        assert_eq!(
            panic_spans(&t),
            3,
            "each panic is an error span of type panic"
        );
    }

    #[tokio::test]
    async fn the_producer_contract_holds() {
        let t = TestTracing::new();
        let (producer, consumer) = memory::channel::<Job>("conf-mem-contract", 8);
        producer_contract(&producer, "conf-mem-contract", 0).await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&consumer, &mut w, Duration::from_secs(10), |_| {
            ledger.unique_ok() == 3
        })
        .await;
        assert_eq!((totals.acked, producer.counts()), (3, (0, 0, 0)));
    }

    #[tokio::test]
    async fn a_handler_that_fills_its_own_queue_gets_an_error_instead_of_hanging() {
        let t = TestTracing::new();
        let (producer, consumer) = memory::channel::<Job>("conf-mem-self", 1);
        let producer = producer.with_send_timeout(Duration::from_millis(300));
        producer.send_payload(Job { id: 0 }).await.unwrap();
        // The handler of job 0 sends two follow-ups into its own capacity-1 queue: the first
        // fits, the second can only wait for room that this handler's return would make.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (inner, seen) = (producer.clone(), errors.clone());
        let svc = ServiceBuilder::new()
            .layer(ConsumerTraceLayer::new().with_tracer(t.tracer()))
            .service(service_fn(move |msg: TracedMessage<Job>| {
                let (producer, seen) = (inner.clone(), seen.clone());
                async move {
                    if msg.payload().id == 0 {
                        for id in [1, 2] {
                            let started = Instant::now();
                            if let Err(e) = producer.send_payload(Job { id }).await {
                                seen.lock()
                                    .unwrap()
                                    .push((e.to_string(), started.elapsed()));
                            }
                        }
                        let full = producer
                            .try_send(TracedMessage::new("conf-mem-self", Job { id: 3 }))
                            .await;
                        assert!(full.is_err(), "try_send into a full queue fails at once");
                    }
                    Ok::<_, String>(())
                }
            }));
        let mut svc = svc;
        let report =
            tokio::time::timeout(Duration::from_secs(5), process_batch(&consumer, &mut svc))
                .await
                .expect("the handler returned instead of hanging")
                .unwrap();
        assert_eq!(report.acked, 1);
        let errors = errors.lock().unwrap().clone();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (message, waited) = &errors[0];
        assert!(
            message.contains("is full") && message.contains("own full queue"),
            "{message}"
        );
        assert!(
            *waited >= Duration::from_millis(300),
            "waited the bound: {waited:?}"
        );
        // Job 1 got in; nothing else did.
        assert_eq!(producer.counts(), (1, 0, 0));
    }
}

// ---------------------------------------------------------------------------------------------
// Redis Streams
// ---------------------------------------------------------------------------------------------

mod redis_streams {
    use super::*;
    use gorax_trace_queue::redis::{
        DEAD_LETTER_REASON_FIELD, REASON_TRIMMED, RedisConsumer, RedisProducer, RedisQueueError,
    };

    fn url() -> Option<String> {
        gorax_trace::testing::server_env("GORAX_TEST_REDIS_URL")
    }

    fn stream(test: &str) -> String {
        gorax_trace::testing::unique_name(&format!("gorax-conf-{test}"))
    }

    async fn consumer(client: &redis::Client, stream: &str, name: &str) -> RedisConsumer {
        RedisConsumer::connect(client, stream, "workers", name)
            .await
            .unwrap()
            .with_block(Duration::from_millis(100))
            .with_claim_min_idle(Duration::from_millis(300))
    }

    async fn produce(producer: &RedisProducer, stream: &str, ids: std::ops::Range<u32>) {
        for id in ids {
            producer
                .send(TracedMessage::new(stream, Job { id }))
                .await
                .unwrap();
        }
    }

    async fn dead_reasons(client: &redis::Client, dead: &str) -> Vec<String> {
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let entries: redis::Value = redis::cmd("XRANGE")
            .arg(dead)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        // Raw: a dead-lettered entry may have a field name that is not UTF-8.
        let redis::Value::Array(entries) = entries else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|e| match e {
                redis::Value::Array(parts) => match parts.get(1) {
                    Some(redis::Value::Array(fields)) => fields
                        .chunks(2)
                        .find(|kv| {
                            matches!(&kv[0], redis::Value::BulkString(k)
                                if k == DEAD_LETTER_REASON_FIELD.as_bytes())
                        })
                        .and_then(|kv| match &kv[1] {
                            redis::Value::BulkString(v) => {
                                Some(String::from_utf8_lossy(v).into_owned())
                            }
                            _ => None,
                        }),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_consumer_killed_mid_batch_loses_nothing() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("kill");
        let producer = RedisProducer::connect(&client)
            .await
            .unwrap()
            .with_tracer(t.tracer());
        produce(&producer, &stream, 0..20).await;
        let ledger = Arc::new(Ledger::default());
        let doomed = consumer(&client, &stream, "doomed")
            .await
            .with_batch_size(5);
        let mut hangs = worker(
            &t,
            &ledger,
            |id, _| if id == 2 { Act::Hang } else { Act::Ok },
        );
        kill_mid_batch(&doomed, &mut hangs, Duration::from_millis(500)).await;
        drop(doomed);
        let survivor = consumer(&client, &stream, "survivor").await;
        let mut ok = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&survivor, &mut ok, Duration::from_secs(20), |_| {
            ledger.unique_ok() == 20
        })
        .await;
        // 2 acked by the killed consumer, 18 by the survivor (3 of them reclaimed).
        assert_eq!((totals.acked, totals.dead_lettered), (18, 0), "{totals:?}");
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (20, 0));
    }

    /// The child half of the SIGKILL case: a consumer process that acks jobs 0 and 1, says
    /// so, and hangs in job 2's handler until it is killed. Runs only when started by
    /// [`a_consumer_process_killed_with_sigkill_loses_nothing`].
    #[tokio::test]
    #[ignore = "started as a child process by the SIGKILL case"]
    async fn sigkill_child() {
        let (Ok(url), Ok(stream)) = (
            std::env::var("GORAX_TEST_REDIS_URL"),
            std::env::var("GORAX_SIGKILL_STREAM"),
        ) else {
            return;
        };
        let client = redis::Client::open(url).unwrap();
        let consumer = consumer(&client, &stream, "doomed")
            .await
            .with_batch_size(5);
        let t = TestTracing::new();
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |id, _| {
            if id == 2 {
                use std::io::Write as _;
                println!("HANDLING 2");
                let _ = std::io::stdout().flush();
                Act::Hang
            } else {
                Act::Ok
            }
        });
        for _ in 0..100 {
            let _ = process_batch(&consumer, &mut w).await;
        }
    }

    #[tokio::test]
    async fn a_consumer_process_killed_with_sigkill_loses_nothing() {
        use std::io::BufRead as _;
        let Some(url) = url() else { return };
        let client = redis::Client::open(url.clone()).unwrap();
        let t = TestTracing::new();
        let stream = stream("sigkill");
        let producer = RedisProducer::connect(&client).await.unwrap();
        produce(&producer, &stream, 0..20).await;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "redis_streams::sigkill_child",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env("GORAX_TEST_REDIS_URL", &url)
            .env("GORAX_SIGKILL_STREAM", &stream)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let handling = tokio::task::spawn_blocking(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .take(50)
                .any(|l| l.is_ok_and(|l| l.contains("HANDLING 2")))
        });
        let handling = tokio::time::timeout(Duration::from_secs(30), handling).await;
        child.kill().unwrap(); // SIGKILL, mid-batch, mid-handler
        child.wait().unwrap();
        assert!(
            matches!(handling, Ok(Ok(true))),
            "the child never reached job 2"
        );

        let survivor = consumer(&client, &stream, "survivor").await;
        let ledger = Arc::new(Ledger::default());
        let mut ok = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&survivor, &mut ok, Duration::from_secs(20), |_| {
            ledger.unique_ok() == 18
        })
        .await;
        // produced 20 = acked 2 (by the killed process) + 18 (by the survivor, 3 of them
        // reclaimed from the dead one); none lost, none twice.
        let mut ids: Vec<u32> = ledger.ok.lock().unwrap().keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, (2..20).collect::<Vec<_>>(), "{totals:?}");
        assert_eq!((totals.acked, ledger.duplicates()), (18, 0));
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let pending: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("workers")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(pending.0, 0, "nothing left pending");
    }

    #[tokio::test]
    async fn poison_entries_are_dead_lettered_and_do_not_wedge_their_batch() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("poison");
        let producer = RedisProducer::connect(&client)
            .await
            .unwrap()
            .with_tracer(t.tracer());
        produce(&producer, &stream, 0..4).await;
        // Three poison entries in the middle of the batch: a field name that is not UTF-8,
        // a payload that is not JSON, no payload field.
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        for fields in [
            vec![
                (&b"\xff\xfe"[..], &b"x"[..]),
                (b"payload", br#"{"id":100}"#),
            ],
            vec![(b"payload", b"not json")],
            vec![(b"other", b"1")],
        ] {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&stream).arg("*");
            for (k, v) in fields {
                cmd.arg(k).arg(v);
            }
            let _: String = cmd.query_async(&mut conn).await.unwrap();
        }
        produce(&producer, &stream, 4..8).await;
        let consumer = consumer(&client, &stream, "w1")
            .await
            .with_max_deliveries(2)
            .with_tracer(t.tracer());
        let ledger = Arc::new(Ledger::default());
        // Job 7 always fails: dead-lettered at its third delivery.
        let mut w = worker(
            &t,
            &ledger,
            |id, _| if id == 7 { Act::Fail } else { Act::Ok },
        );
        let totals = drive(&consumer, &mut w, Duration::from_secs(20), |t| {
            t.acked + t.dead_lettered == 11
        })
        .await;
        // produced 11 = acked 7 + dead-lettered 4 (3 poison + 1 past max deliveries).
        assert_eq!((totals.acked, totals.dead_lettered), (7, 4), "{totals:?}");
        assert_eq!(totals.failed, 2, "job 7 delivered twice");
        let stats = consumer.stats().snapshot();
        assert_eq!((stats.poison, stats.dead_lettered), (3, 4));
        let mut reasons = dead_reasons(&client, consumer.dead_letter_stream()).await;
        reasons.sort();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(
            reasons[0].starts_with("field name is not UTF-8"),
            "{reasons:?}"
        );
        assert_eq!(reasons[1], REASON_MAX_DELIVERIES);
        assert_eq!(reasons[2], "no `payload` field");
        assert!(
            reasons[3].starts_with("payload does not decode"),
            "{reasons:?}"
        );
        assert_eq!(dead_letter_spans(&t), 4);
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (7, 0));
    }

    #[tokio::test]
    async fn a_failed_entry_trimmed_by_maxlen_is_recorded_not_lost() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("trim");
        let producer = RedisProducer::connect(&client)
            .await
            .unwrap()
            .with_tracer(t.tracer());
        produce(&producer, &stream, 0..3).await;
        let consumer = consumer(&client, &stream, "w1")
            .await
            .with_tracer(t.tracer());
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(
            &t,
            &ledger,
            |id, _| if id == 1 { Act::Fail } else { Act::Ok },
        );
        let first = drive(&consumer, &mut w, Duration::from_secs(10), |t| t.acked == 2).await;
        // The failed entry is pending when the stream is trimmed past it (as MAXLEN does).
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("XTRIM")
            .arg(&stream)
            .arg("MAXLEN")
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
        let second = drive(&consumer, &mut w, Duration::from_secs(10), |t| t.lost == 1).await;
        let totals = first + second;
        // produced 3 = acked 2 + dead-lettered 1 (the trimmed one, recorded).
        assert_eq!(
            (totals.acked, totals.dead_lettered, totals.lost),
            (2, 1, 1),
            "{totals:?}"
        );
        assert_eq!(consumer.stats().snapshot().lost, 1);
        assert_eq!(
            dead_reasons(&client, consumer.dead_letter_stream()).await,
            [REASON_TRIMMED]
        );
        assert_eq!(dead_letter_spans(&t), 1);
    }

    /// A member with a 500 ms claim idle time and batches of 10 (the numbers of issue 25).
    async fn leased(client: &redis::Client, stream: &str, name: &str) -> RedisConsumer {
        RedisConsumer::connect(client, stream, "workers", name)
            .await
            .unwrap()
            .with_block(Duration::from_millis(100))
            .with_batch_size(10)
            .with_claim_min_idle(Duration::from_millis(500))
    }

    #[tokio::test]
    async fn the_producer_contract_holds() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("contract");
        let producer = RedisProducer::connect(&client).await.unwrap();
        producer_contract(&producer, &stream, 0).await;
        let consumer = consumer(&client, &stream, "w").await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&consumer, &mut w, Duration::from_secs(10), |_| {
            ledger.unique_ok() == 3
        })
        .await;
        assert_eq!(totals.acked, 3);
    }

    #[tokio::test]
    async fn short_handlers_in_a_long_batch_beside_a_healthy_consumer_are_not_duplicated() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("short");
        let producer = RedisProducer::connect(&client).await.unwrap();
        produce(&producer, &stream, 0..200).await;
        let ledger = Arc::new(Ledger::default());
        // Each batch (10 × 100 ms) outlasts the claim idle time (500 ms) twice over.
        let a = leased(&client, &stream, "a").await;
        let b = leased(&client, &stream, "b").await;
        let mut wa = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(100)));
        let mut wb = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(100)));
        let all = |_: &Totals| ledger.unique_ok() == 200;
        let (ta, tb) = tokio::join!(
            drive(&a, &mut wa, Duration::from_secs(60), all),
            drive(&b, &mut wb, Duration::from_secs(60), all),
        );
        eprintln!(
            "redis short handlers: duplicates {} of 200 (a {ta:?}, b {tb:?})",
            ledger.duplicates()
        );
        assert!(
            ta.acked >= 1 && tb.acked >= 1,
            "both took part: {ta:?} {tb:?}"
        );
        assert_eq!(ledger.duplicates(), 0, "a {ta:?} b {tb:?}");
        assert_eq!((ta + tb).acked, 200);
        assert!(a.stats().snapshot().lease_extensions >= 1);
    }

    /// A member whose handler blocks its thread for 2 s on every tenth job, on the test's
    /// runtime, beside a healthy member on a thread and runtime of its own.
    async fn a_blocking_handler_is_not_duplicated(flavour: &str) {
        const N: u32 = 100;
        let Some(url) = url() else { return };
        let client = redis::Client::open(url.clone()).unwrap();
        let t = TestTracing::new();
        let stream = stream(&format!("block-{flavour}"));
        let producer = RedisProducer::connect(&client).await.unwrap();
        produce(&producer, &stream, 0..N).await;
        let ledger = Arc::new(Ledger::default());
        let blocker = leased(&client, &stream, "blocker").await;
        let mut w = worker(&t, &ledger, |id, _| {
            if id % 10 == 0 {
                Act::Block(Duration::from_secs(2))
            } else {
                Act::Sleep(Duration::from_millis(100))
            }
        });
        let l = ledger.clone();
        let blocked = tokio::spawn(async move {
            let totals = drive(&blocker, &mut w, Duration::from_secs(60), |_| {
                l.unique_ok() == N as usize
            })
            .await;
            (totals, blocker.stats().snapshot())
        });
        let (s, l) = (stream.clone(), ledger.clone());
        let healthy = on_own_thread(move || async move {
            // Let the blocker take its batch first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let client = redis::Client::open(url).unwrap();
            let healthy = leased(&client, &s, "healthy").await;
            let t = TestTracing::new();
            let mut w = worker(&t, &l, |_, _| Act::Sleep(Duration::from_millis(100)));
            drive(&healthy, &mut w, Duration::from_secs(60), |_| {
                l.unique_ok() == N as usize
            })
            .await
        });
        let (ta, stats) = blocked.await.unwrap();
        let tb = join(healthy).await;
        eprintln!(
            "redis blocking handler ({flavour}): duplicates {} of {N} (blocker {ta:?}, healthy {tb:?})",
            ledger.duplicates()
        );
        assert!(
            ta.acked >= 1 && tb.acked >= 1,
            "both took part: {ta:?} {tb:?}"
        );
        assert_eq!(ledger.duplicates(), 0, "blocker {ta:?} healthy {tb:?}");
        assert_eq!((ta + tb).acked, N as usize);
        assert!(stats.lease_extensions >= 1, "{stats:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_blocking_its_thread_is_not_duplicated_multi_thread() {
        a_blocking_handler_is_not_duplicated("multi").await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_handler_blocking_its_thread_is_not_duplicated_current_thread() {
        a_blocking_handler_is_not_duplicated("current").await;
    }

    #[tokio::test]
    async fn a_lease_is_not_claimed_back_from_a_member_that_took_the_entry_over() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let stream = stream("taken");
        let producer = RedisProducer::connect(&client).await.unwrap();
        produce(&producer, &stream, 0..1).await;
        // Renewals every 100 ms.
        let a = consumer(&client, &stream, "a").await;
        let owners = Arc::new(Mutex::new(Vec::new()));
        let (c, seen, s) = (client.clone(), owners.clone(), stream.clone());
        let mut handler = service_fn(move |msg: TracedMessage<Job>| {
            let (client, seen, stream) = (c.clone(), seen.clone(), s.clone());
            async move {
                let id = msg.message_id().unwrap().to_owned();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                // Another member takes the entry over (as after a lapsed lease).
                let _: redis::Value = redis::cmd("XCLAIM")
                    .arg(&stream)
                    .arg("workers")
                    .arg("other")
                    .arg(0)
                    .arg(&id)
                    .arg("JUSTID")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                // Several renewals of `a` later, the entry is still the other member's.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let pending: redis::Value = redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg("workers")
                    .arg(&id)
                    .arg(&id)
                    .arg(1)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                seen.lock().unwrap().push(format!("{pending:?}"));
                Ok::<_, String>(())
            }
        });
        let report = process_batch(&a, &mut handler).await.unwrap();
        assert_eq!(report.acked, 1);
        let owners = owners.lock().unwrap().clone();
        assert_eq!(owners.len(), 1);
        assert!(
            owners[0].contains("other") && !owners[0].contains("\"a\""),
            "still the other member's: {owners:?}"
        );
        assert!(a.stats().snapshot().lease_extensions >= 1);
    }

    #[tokio::test]
    async fn an_entry_dead_lettered_twice_is_copied_once() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("dead-once");
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("payload")
            .arg("not json")
            .query_async(&mut conn)
            .await
            .unwrap();
        let first = consumer(&client, &stream, "first").await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&first, &mut w, Duration::from_secs(10), |t| {
            t.dead_lettered == 1
        })
        .await;
        assert_eq!(totals.dead_lettered, 1);
        // The group replays the stream (as after a restore, or `XGROUP SETID`): the entry is
        // pending again, and another member dead-letters it again. Its marker keeps the copy
        // single.
        let _: () = redis::cmd("XGROUP")
            .arg("SETID")
            .arg(&stream)
            .arg("workers")
            .arg("0")
            .query_async(&mut conn)
            .await
            .unwrap();
        let second = consumer(&client, &stream, "second").await;
        let again = drive(&second, &mut w, Duration::from_secs(10), |t| {
            t.dead_lettered == 1
        })
        .await;
        assert_eq!(again.dead_lettered, 1, "{again:?}");
        let reasons = dead_reasons(&client, first.dead_letter_stream()).await;
        assert_eq!(reasons.len(), 1, "one copy: {reasons:?}");
        let pending: (u64,) = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("workers")
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
            .map(|v| {
                (match v.first() {
                    Some(redis::Value::Int(n)) => *n as u64,
                    _ => 99,
                },)
            })
            .unwrap();
        assert_eq!(pending.0, 0, "acknowledged both times");
    }

    #[tokio::test]
    async fn a_slow_handler_beside_a_fast_consumer_is_not_duplicated() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("slow");
        let producer = RedisProducer::connect(&client)
            .await
            .unwrap()
            .with_tracer(t.tracer());
        produce(&producer, &stream, 0..30).await;
        let ledger = Arc::new(Ledger::default());
        // Each slow attempt takes more than twice the claim idle time (300 ms), and the slow
        // consumer holds a batch of 3: without lease renewal the fast one steals them.
        let slow = consumer(&client, &stream, "slow").await.with_batch_size(3);
        let fast = consumer(&client, &stream, "fast").await.with_batch_size(3);
        let mut slow_w = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(700)));
        let mut fast_w = worker(&t, &ledger, |_, _| Act::Ok);
        let all = |_: &Totals| ledger.unique_ok() == 30;
        let (a, b) = tokio::join!(
            drive(&slow, &mut slow_w, Duration::from_secs(30), all),
            drive(&fast, &mut fast_w, Duration::from_secs(30), all),
        );
        let totals = a + b;
        assert!(a.acked >= 1, "the slow consumer took part: {a:?}");
        assert_eq!(ledger.duplicates(), 0, "slow {a:?} fast {b:?}");
        assert_eq!((totals.acked, totals.dead_lettered), (30, 0));
        assert!(slow.stats().snapshot().lease_extensions >= 1);
    }

    #[tokio::test]
    async fn a_hung_handler_gives_its_message_up_after_max_lease() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("hung");
        let producer = RedisProducer::connect(&client).await.unwrap();
        produce(&producer, &stream, 0..5).await;
        let ledger = Arc::new(Ledger::default());
        let hung = consumer(&client, &stream, "hung")
            .await
            .with_batch_size(1)
            .with_max_lease(Some(Duration::from_millis(600)));
        let other = consumer(&client, &stream, "other").await;
        let mut hung_w = worker(&t, &ledger, |_, _| Act::Hang);
        let mut other_w = worker(&t, &ledger, |_, _| Act::Ok);
        let (cut, totals) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(5), process_batch(&hung, &mut hung_w)),
            async {
                // Let the hung consumer take its entry first.
                tokio::time::sleep(Duration::from_millis(200)).await;
                // Done well before the hung call is cut off (5 s): only a lapsed lease lets
                // the other consumer have the hung entry that early.
                drive(&other, &mut other_w, Duration::from_secs(4), |_| {
                    ledger.unique_ok() == 5
                })
                .await
            },
        );
        // produced 5 = acked 5, all by the other consumer: the hung handler renewed its lease
        // for 600 ms, then let it lapse and its entry was reclaimed.
        assert!(cut.is_err(), "the hung handler never returns");
        assert_eq!((totals.acked, ledger.duplicates()), (5, 0), "{totals:?}");
    }

    #[tokio::test]
    async fn a_panicking_handler_is_retried_and_traced() {
        let Some(url) = url() else { return };
        let client = redis::Client::open(url).unwrap();
        let t = TestTracing::new();
        let stream = stream("panic");
        let producer = RedisProducer::connect(&client)
            .await
            .unwrap()
            .with_tracer(t.tracer());
        produce(&producer, &stream, 0..10).await;
        let consumer = consumer(&client, &stream, "w1").await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |id, attempt| {
            if id % 2 == 0 && attempt == 0 {
                Act::Panic
            } else {
                Act::Ok
            }
        });
        let totals = drive(&consumer, &mut w, Duration::from_secs(20), |t| {
            t.acked == 10
        })
        .await;
        // produced 10 = acked 10; 5 panics, each retried once.
        assert_eq!(
            (totals.panicked, totals.dead_lettered),
            (5, 0),
            "{totals:?}"
        );
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (10, 0));
        assert_eq!(panic_spans(&t), 5);
    }

    /// A `redis-server` of this test's own on a fixed port, killed and started again.
    struct Server {
        dir: std::path::PathBuf,
        child: Option<std::process::Child>,
    }

    impl Server {
        fn start(port: u16, dir: &std::path::Path, persist: bool) -> Self {
            std::fs::create_dir_all(dir).unwrap();
            let mut cmd = std::process::Command::new("redis-server");
            cmd.args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null());
            if persist {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
            } else {
                cmd.args(["--appendonly", "no"]);
            }
            let child = cmd
                .spawn()
                .expect("redis-server (scripts/test.sh installs it)");
            let server = Self {
                dir: dir.to_owned(),
                child: Some(child),
            };
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("redis-server did not start on {port}");
        }

        fn signal(&self, signal: &str) {
            let pid = self.child.as_ref().expect("running").id().to_string();
            let status = std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap();
            assert!(status.success());
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill(); // SIGKILL
                let _ = child.wait();
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Sends until the producer says it was written; returns how many sends had an unknown
    /// outcome (each may have written a duplicate).
    async fn send_surely(producer: &RedisProducer, stream: &str, id: u32) -> u32 {
        let mut unknown = 0;
        for _ in 0..100 {
            match producer.send(TracedMessage::new(stream, Job { id })).await {
                Ok(_) => return unknown,
                Err(RedisQueueError::OutcomeUnknown { .. }) => unknown += 1,
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} was never sent");
    }

    #[tokio::test]
    async fn a_send_the_server_may_have_taken_is_reported_as_unknown() {
        let Some(_) = url() else { return };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(gorax_trace::testing::unique_name("gorax-stop"));
        let server = Server::start(port, &dir, false);
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let stream = stream("stop");
        let producer = RedisProducer::connect(&client).await.unwrap();
        producer
            .send(TracedMessage::new(stream.clone(), Job { id: 0 }))
            .await
            .unwrap();
        // Frozen: the XADD is written to the socket, the reply does not come within the
        // response timeout (500 ms); the server takes it once it runs again.
        server.signal("-STOP");
        let sent = producer
            .send(TracedMessage::new(stream.clone(), Job { id: 1 }))
            .await;
        server.signal("-CONT");
        assert!(
            matches!(sent, Err(RedisQueueError::OutcomeUnknown { .. })),
            "{sent:?}"
        );
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let len: i64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(len, 2, "the unknown send was in fact written");
        // And the producer goes on with a new connection.
        producer
            .send(TracedMessage::new(stream.clone(), Job { id: 2 }))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn producer_and_consumer_survive_a_broker_restart() {
        // Needs the redis-server binary, which the test script installs with the server.
        let Some(_) = url() else { return };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(gorax_trace::testing::unique_name("gorax-restart"));
        let mut server = Server::start(port, &dir, true);
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let t = TestTracing::new();
        let stream = stream("restart");
        let producer = RedisProducer::connect(&client)
            .await
            .unwrap()
            .with_tracer(t.tracer());
        let consumer = consumer(&client, &stream, "w1").await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let mut unknown = 0;
        for id in 0..10 {
            unknown += send_surely(&producer, &stream, id).await;
        }
        let mut totals = drive(&consumer, &mut w, Duration::from_secs(10), |_| {
            ledger.unique_ok() == 10
        })
        .await;

        // 1. Killed and restarted with its data (append-only file): the same connections work
        // again, nothing is lost.
        server.kill();
        server = Server::start(port, &dir, true);
        for id in 10..20 {
            unknown += send_surely(&producer, &stream, id).await;
        }
        totals = totals
            + drive(&consumer, &mut w, Duration::from_secs(20), |_| {
                ledger.unique_ok() == 20
            })
            .await;

        // 2. Restarted without its data: stream and group are gone (NOGROUP); the consumer
        // creates the group again and goes on.
        server.kill();
        let _ = std::fs::remove_dir_all(&dir);
        let _server = Server::start(port, &dir, false);
        for id in 20..30 {
            unknown += send_surely(&producer, &stream, id).await;
        }
        totals = totals
            + drive(&consumer, &mut w, Duration::from_secs(20), |_| {
                ledger.unique_ok() == 30
            })
            .await;

        // produced 30 = acked 30 (+ at most one duplicate per send of unknown outcome).
        assert_eq!(ledger.unique_ok(), 30, "{totals:?}");
        assert!(
            ledger.duplicates() <= unknown,
            "{totals:?} unknown {unknown}"
        );
        assert_eq!(
            totals.acked,
            30 + ledger.duplicates() as usize,
            "{totals:?}"
        );
        assert_eq!(totals.dead_lettered, 0);
        assert!(
            consumer.stats().snapshot().reconnects >= 2,
            "{:?}",
            consumer.stats()
        );
        eprintln!("restart: {totals:?}, sends with unknown outcome: {unknown}");
    }
}

// ---------------------------------------------------------------------------------------------
// SQS (moto)
// ---------------------------------------------------------------------------------------------

mod sqs {
    use super::*;
    use gorax_trace_queue::sqs::aws_sdk_sqs;
    use gorax_trace_queue::sqs::aws_sdk_sqs::config::interceptors::BeforeSerializationInterceptorContextRef;
    use gorax_trace_queue::sqs::aws_sdk_sqs::config::{ConfigBag, Intercept};
    use gorax_trace_queue::sqs::aws_sdk_sqs::error::BoxError;
    use gorax_trace_queue::sqs::aws_sdk_sqs::types::QueueAttributeName;
    use gorax_trace_queue::sqs::{self, SqsConsumer, SqsProducer};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn endpoint() -> Option<String> {
        gorax_trace::testing::server_env("GORAX_TEST_SQS_ENDPOINT")
    }

    fn client(endpoint: &str) -> aws_sdk_sqs::Client {
        let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        let credentials = aws_sdk_sqs::config::Credentials::new(
            env("AWS_ACCESS_KEY_ID", "test"),
            env("AWS_SECRET_ACCESS_KEY", "test"),
            None,
            None,
            "test",
        );
        sqs::client(env("AWS_REGION", "us-east-1"), credentials, Some(endpoint))
    }

    async fn queue(client: &aws_sdk_sqs::Client, test: &str, visibility: u32) -> (String, String) {
        let name = gorax_trace::testing::unique_name(&format!("gorax-conf-{test}"));
        let url = client
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility.to_string(),
            )
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned();
        (name, url)
    }

    async fn produce(
        t: &TestTracing,
        client: &aws_sdk_sqs::Client,
        queue: &str,
        ids: std::ops::Range<u32>,
    ) {
        let producer = SqsProducer::new(client.clone()).with_tracer(t.tracer());
        for id in ids {
            producer
                .send(TracedMessage::new(queue, Job { id }))
                .await
                .unwrap();
        }
    }

    async fn count(client: &aws_sdk_sqs::Client, url: &str) -> usize {
        let mut n = 0;
        for _ in 0..50 {
            let out = client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .send()
                .await
                .unwrap();
            if out.messages().is_empty() {
                return n;
            }
            n += out.messages().len();
        }
        panic!("more than 500 messages in {url}");
    }

    async fn consumer(client: &aws_sdk_sqs::Client, name: &str) -> SqsConsumer {
        SqsConsumer::connect(client.clone(), name)
            .await
            .unwrap()
            .with_wait_time(Duration::ZERO)
    }

    #[tokio::test]
    async fn a_consumer_killed_mid_batch_loses_nothing() {
        let Some(endpoint) = endpoint() else { return };
        let client = client(&endpoint);
        let t = TestTracing::new();
        let (name, url) = queue(&client, "kill", 1).await;
        produce(&t, &client, &name, 0..10).await;
        let ledger = Arc::new(Ledger::default());
        let doomed = consumer(&client, &name).await.with_batch_size(5);
        let mut hangs = worker(
            &t,
            &ledger,
            |id, _| if id == 2 { Act::Hang } else { Act::Ok },
        );
        // Hangs on job 2 if it is in the first batch; otherwise the whole batch is acked.
        let _ = tokio::time::timeout(
            Duration::from_millis(1500),
            process_batch(&doomed, &mut hangs),
        )
        .await;
        drop(doomed);
        let survivor = consumer(&client, &name).await;
        let mut ok = worker(&t, &ledger, |_, _| Act::Ok);
        drive(&survivor, &mut ok, Duration::from_secs(30), |_| {
            ledger.unique_ok() == 10
        })
        .await;
        // produced 10 = acked 10: what the killed consumer held came back after its
        // visibility timeout (1 s).
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (10, 0));
        assert_eq!(count(&client, &url).await, 0);
    }

    #[tokio::test]
    async fn poison_and_over_delivered_messages_are_dead_lettered_and_panics_retried() {
        let Some(endpoint) = endpoint() else { return };
        let client = client(&endpoint);
        let t = TestTracing::new();
        let (name, url) = queue(&client, "poison", 1).await;
        let (_, dlq) = queue(&client, "poison-dlq", 30).await;
        produce(&t, &client, &name, 0..6).await;
        client
            .send_message()
            .queue_url(&url)
            .message_body("not json")
            .send()
            .await
            .unwrap();
        let consumer = consumer(&client, &name)
            .await
            .with_retry_delay(Duration::ZERO)
            .with_dead_letter_queue(&dlq, 2)
            .with_tracer(t.tracer());
        let ledger = Arc::new(Ledger::default());
        // Job 0 always fails; job 1 panics on its first attempt.
        let mut w = worker(&t, &ledger, |id, attempt| match (id, attempt) {
            (0, _) => Act::Fail,
            (1, 0) => Act::Panic,
            _ => Act::Ok,
        });
        let totals = drive(&consumer, &mut w, Duration::from_secs(30), |t| {
            t.acked + t.dead_lettered == 7
        })
        .await;
        // produced 7 = acked 5 + dead-lettered 2 (bad JSON, job 0 past 2 deliveries).
        assert_eq!((totals.acked, totals.dead_lettered), (5, 2), "{totals:?}");
        assert_eq!(totals.panicked, 1, "{totals:?}");
        assert_eq!(count(&client, &dlq).await, 2);
        assert_eq!(consumer.stats().snapshot().poison, 1);
        assert_eq!(dead_letter_spans(&t), 2);
        assert_eq!(panic_spans(&t), 1);
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (5, 0));
    }

    #[tokio::test]
    async fn an_undecodable_body_without_a_dead_letter_queue_is_counted() {
        let Some(endpoint) = endpoint() else { return };
        let client = client(&endpoint);
        let t = TestTracing::new();
        let (name, url) = queue(&client, "left", 1).await;
        client
            .send_message()
            .queue_url(&url)
            .message_body("not json")
            .send()
            .await
            .unwrap();
        let consumer = consumer(&client, &name).await.with_tracer(t.tracer());
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&consumer, &mut w, Duration::from_secs(10), |t| t.left == 2).await;
        // Left for the redrive policy, but seen: counted and traced on every delivery.
        assert_eq!((totals.acked, totals.left), (0, 2), "{totals:?}");
        assert_eq!(consumer.stats().snapshot().poison, 2);
        assert_eq!(dead_letter_spans(&t), 2);
    }

    #[tokio::test]
    async fn a_slow_handler_beside_a_fast_consumer_is_not_duplicated() {
        let Some(endpoint) = endpoint() else { return };
        let client = client(&endpoint);
        let t = TestTracing::new();
        let (name, _) = queue(&client, "slow", 2).await;
        produce(&t, &client, &name, 0..8).await;
        let ledger = Arc::new(Ledger::default());
        // A slow attempt (2.5 s) outlasts the visibility timeout (2 s), and the slow consumer
        // holds a batch of 2: without lease renewal the fast one receives them again.
        let slow = consumer(&client, &name).await.with_batch_size(2);
        let fast = consumer(&client, &name).await.with_batch_size(1);
        let mut slow_w = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(2500)));
        let mut fast_w = worker(&t, &ledger, |_, _| Act::Ok);
        let all = |_: &Totals| ledger.unique_ok() == 8;
        let (a, b) = tokio::join!(
            drive(&slow, &mut slow_w, Duration::from_secs(40), all),
            async {
                // Let the slow one take its batch first.
                tokio::time::sleep(Duration::from_millis(300)).await;
                drive(&fast, &mut fast_w, Duration::from_secs(40), all).await
            },
        );
        assert!(a.acked >= 1, "the slow consumer took part: {a:?}");
        assert_eq!(ledger.duplicates(), 0, "slow {a:?} fast {b:?}");
        assert_eq!((a + b).acked, 8);
        assert!(slow.stats().snapshot().lease_extensions >= 1);
    }

    /// Fails the next `DeleteMessage` calls while `remaining` is above zero.
    #[derive(Debug)]
    struct FailDeletes(Arc<AtomicU32>);

    impl Intercept for FailDeletes {
        fn name(&self) -> &'static str {
            "FailDeletes"
        }
        fn read_before_execution(
            &self,
            context: &BeforeSerializationInterceptorContextRef<'_>,
            _cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let is_delete = context
                .input()
                .downcast_ref::<aws_sdk_sqs::operation::delete_message::DeleteMessageInput>()
                .is_some();
            if is_delete
                && self
                    .0
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                return Err("injected DeleteMessage failure".into());
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_dead_letter_move_whose_delete_fails_is_not_duplicated_nor_blocking() {
        let Some(endpoint) = endpoint() else { return };
        let plain = client(&endpoint);
        let t = TestTracing::new();
        let (name, url) = queue(&plain, "dlq-delete", 1).await;
        let (_, dlq) = queue(&plain, "dlq-delete-dlq", 30).await;
        // Two poison bodies first, then four good messages, in one batch.
        for _ in 0..2 {
            plain
                .send_message()
                .queue_url(&url)
                .message_body("not json")
                .send()
                .await
                .unwrap();
        }
        produce(&t, &plain, &name, 0..4).await;
        let fail = Arc::new(AtomicU32::new(0));
        let faulty = aws_sdk_sqs::Client::from_conf(
            plain
                .config()
                .to_builder()
                .interceptor(FailDeletes(fail.clone()))
                .build(),
        );
        let consumer = SqsConsumer::connect(faulty, &name)
            .await
            .unwrap()
            .with_wait_time(Duration::ZERO)
            .with_dead_letter_queue(&dlq, 3)
            .with_tracer(t.tracer());
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        fail.store(1, Ordering::SeqCst); // the first delete of the batch fails
        let totals = drive(&consumer, &mut w, Duration::from_secs(30), |t| {
            t.dead_lettered == 2 && ledger.unique_ok() == 4 && t.acked >= 4
        })
        .await;
        // produced 6 = acked 4 + dead-lettered 2; the failed delete was counted, the batch
        // went on, and the message whose delete failed came back once: if it was a poison
        // body it was only deleted (no second copy); if it was a good one it ran twice.
        assert_eq!(totals.errors, 1, "{totals:?}");
        assert_eq!(count(&plain, &dlq).await, 2, "one copy per poison message");
        assert!(ledger.duplicates() <= 1, "{totals:?}");
        assert_eq!(totals.acked, 4 + ledger.duplicates() as usize, "{totals:?}");
        assert_eq!(count(&plain, &url).await, 0);
    }

    /// A consumer of a queue with a 1 s visibility timeout (the queue's), batches of 10.
    async fn leased(client: &aws_sdk_sqs::Client, name: &str) -> SqsConsumer {
        SqsConsumer::connect(client.clone(), name)
            .await
            .unwrap()
            .with_wait_time(Duration::from_secs(1))
            .with_batch_size(10)
    }

    #[tokio::test]
    async fn the_producer_contract_holds() {
        let Some(endpoint) = endpoint() else { return };
        let client = client(&endpoint);
        let t = TestTracing::new();
        let (name, url) = queue(&client, "contract", 5).await;
        producer_contract(&SqsProducer::new(client.clone()), &name, 0).await;
        let consumer = consumer(&client, &name).await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&consumer, &mut w, Duration::from_secs(10), |_| {
            ledger.unique_ok() == 3
        })
        .await;
        assert_eq!(totals.acked, 3);
        assert_eq!(count(&client, &url).await, 0);
    }

    #[tokio::test]
    async fn short_handlers_in_a_long_batch_beside_a_healthy_consumer_are_not_duplicated() {
        let Some(endpoint) = endpoint() else { return };
        let client = client(&endpoint);
        let t = TestTracing::new();
        let (name, url) = queue(&client, "short", 1).await;
        produce(&t, &client, &name, 0..40).await;
        let ledger = Arc::new(Ledger::default());
        // Each batch (10 × 300 ms) outlasts the visibility timeout (1 s) three times over.
        let a = leased(&client, &name).await;
        let b = leased(&client, &name).await;
        let mut wa = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(300)));
        let mut wb = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(300)));
        let all = |_: &Totals| ledger.unique_ok() == 40;
        let (ta, tb) = tokio::join!(drive(&a, &mut wa, Duration::from_secs(60), all), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drive(&b, &mut wb, Duration::from_secs(60), all).await
        },);
        eprintln!(
            "sqs short handlers: duplicates {} of 40 (a {ta:?}, b {tb:?})",
            ledger.duplicates()
        );
        assert!(
            ta.acked >= 1 && tb.acked >= 1,
            "both took part: {ta:?} {tb:?}"
        );
        assert_eq!(ledger.duplicates(), 0, "a {ta:?} b {tb:?}");
        assert_eq!((ta + tb).acked, 40);
        assert!(a.stats().snapshot().lease_extensions >= 1);
        assert_eq!(count(&client, &url).await, 0);
    }

    /// A consumer whose handler blocks its thread for 2 s on every tenth job, on the test's
    /// runtime, beside a healthy one on a thread and runtime of its own.
    async fn a_blocking_handler_is_not_duplicated(flavour: &str) {
        const N: u32 = 20;
        let Some(endpoint) = endpoint() else { return };
        let client = client(&endpoint);
        let t = TestTracing::new();
        let (name, _) = queue(&client, &format!("block-{flavour}"), 1).await;
        produce(&t, &client, &name, 0..N).await;
        let ledger = Arc::new(Ledger::default());
        let blocker = leased(&client, &name).await;
        let mut w = worker(&t, &ledger, |id, _| {
            if id % 10 == 0 {
                Act::Block(Duration::from_secs(2))
            } else {
                Act::Sleep(Duration::from_millis(300))
            }
        });
        let l = ledger.clone();
        let blocked = tokio::spawn(async move {
            let totals = drive(&blocker, &mut w, Duration::from_secs(60), |_| {
                l.unique_ok() == N as usize
            })
            .await;
            (totals, blocker.stats().snapshot())
        });
        let (q, l) = (name.clone(), ledger.clone());
        let healthy = on_own_thread(move || async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let client = self::client(&endpoint);
            let healthy = leased(&client, &q).await;
            let t = TestTracing::new();
            let mut w = worker(&t, &l, |_, _| Act::Sleep(Duration::from_millis(300)));
            drive(&healthy, &mut w, Duration::from_secs(60), |_| {
                l.unique_ok() == N as usize
            })
            .await
        });
        let (ta, stats) = blocked.await.unwrap();
        let tb = join(healthy).await;
        eprintln!(
            "sqs blocking handler ({flavour}): duplicates {} of {N} (blocker {ta:?}, healthy {tb:?})",
            ledger.duplicates()
        );
        assert!(ta.acked >= 1, "the blocker took part: {ta:?} {tb:?}");
        assert_eq!(ledger.duplicates(), 0, "blocker {ta:?} healthy {tb:?}");
        assert_eq!((ta + tb).acked, N as usize);
        assert!(stats.lease_extensions >= 1, "{stats:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_blocking_its_thread_is_not_duplicated_multi_thread() {
        a_blocking_handler_is_not_duplicated("multi").await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_handler_blocking_its_thread_is_not_duplicated_current_thread() {
        a_blocking_handler_is_not_duplicated("current").await;
    }

    #[tokio::test]
    async fn dead_letters_are_copied_once_across_consumers_when_deletes_fail() {
        const POISON: usize = 3;
        let Some(endpoint) = endpoint() else { return };
        let plain = client(&endpoint);
        let t = TestTracing::new();
        let (_, dlq) = queue(&plain, "redrive-dlq", 30).await;
        let (name, url) = queue(&plain, "redrive", 1).await;
        let arn = plain
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap();
        plain
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(
                QueueAttributeName::RedrivePolicy,
                sqs::redrive_policy(&arn, 2),
            )
            .send()
            .await
            .unwrap();
        for _ in 0..POISON {
            plain
                .send_message()
                .queue_url(&url)
                .message_body("not json")
                .send()
                .await
                .unwrap();
        }
        produce(&t, &plain, &name, 0..4).await;
        // The first three deletes fail, whichever consumer makes them (a consumer that copies
        // poison messages itself would fail to delete its three copies' originals).
        let fail = Arc::new(AtomicU32::new(POISON as u32));
        let faulty = aws_sdk_sqs::Client::from_conf(
            plain
                .config()
                .to_builder()
                .interceptor(FailDeletes(fail.clone()))
                .build(),
        );
        let mut consumers = Vec::new();
        for _ in 0..2 {
            let c = SqsConsumer::connect(faulty.clone(), &name)
                .await
                .unwrap()
                .with_wait_time(Duration::ZERO)
                .with_dead_letter_queue(&dlq, 2)
                .with_tracer(t.tracer());
            assert_eq!(c.redrive_max_receive_count(), Some(2));
            consumers.push(c);
        }
        let ledger = Arc::new(Ledger::default());
        let mut w1 = worker(&t, &ledger, |_, _| Act::Ok);
        let mut w2 = worker(&t, &ledger, |_, _| Act::Ok);
        let all = |_: &Totals| ledger.unique_ok() == 4;
        let (a, b) = tokio::join!(
            drive(&consumers[0], &mut w1, Duration::from_secs(40), all),
            drive(&consumers[1], &mut w2, Duration::from_secs(40), all),
        );
        // Poison deliveries go on (left, made visible at once) until SQS moves them: both
        // consumers keep receiving until the source queue is empty (bounded).
        let mut rest = Totals::default();
        let mut in_source = usize::MAX;
        for _ in 0..150 {
            in_source = messages_in(&plain, &url).await;
            if in_source == 0 {
                break;
            }
            for (c, w) in [(&consumers[0], &mut w1), (&consumers[1], &mut w2)] {
                if let Ok(r) = process_batch(c, w).await {
                    rest.acked += r.acked;
                    rest.left += r.left;
                    rest.dead_lettered += r.dead_lettered;
                    rest.errors += r.errors;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (a, b) = (a + rest, b);
        let copies = count(&plain, &dlq).await;
        eprintln!(
            "sqs dead letters with failing deletes, 2 consumers: {copies} copies of {POISON} poison messages (a {a:?}, b {b:?})"
        );
        assert_eq!(
            copies, POISON,
            "exactly one copy per poison message: a {a:?} b {b:?}"
        );
        assert_eq!(
            (a + b).dead_lettered,
            0,
            "the consumers made no copy of their own"
        );
        assert!((a + b).errors >= 1, "deletes failed: {a:?} {b:?}");
        assert_eq!(ledger.unique_ok(), 4);
        assert_eq!(in_source, 0, "nothing left in the source queue");
        assert!(
            a.left + b.left >= POISON,
            "each poison delivery counted: {a:?} {b:?}"
        );
    }

    /// Visible and in-flight messages of a queue.
    async fn messages_in(client: &aws_sdk_sqs::Client, url: &str) -> usize {
        let attrs = client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|k| {
            attrs
                .attributes()
                .and_then(|a| a.get(k))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream (nats-server -js)
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use gorax_trace_queue::nats::{
        DEAD_LETTER_DELIVERIES_HEADER, DEAD_LETTER_REASON_HEADER, NatsConsumer, NatsConsumerConfig,
        NatsProducer, NatsQueueError, ensure_stream,
    };
    use opentelemetry::trace::SpanKind;

    fn url() -> Option<String> {
        gorax_trace::testing::server_env("GORAX_TEST_NATS_URL")
    }

    /// A stream name and its subject (the queue name): unique per test and run.
    fn stream(test: &str) -> String {
        gorax_trace::testing::unique_name(&format!("gorax-conf-{test}"))
    }

    /// A consumer of the durable `workers` with a 1 s lease, renewed every 333 ms.
    fn config(stream: &str) -> NatsConsumerConfig {
        let mut config = NatsConsumerConfig::new(stream, stream, "workers");
        config.wait = Duration::from_millis(200);
        config.ack_wait = Duration::from_secs(1);
        config
    }

    async fn consumer(url: &str, config: NatsConsumerConfig) -> NatsConsumer {
        NatsConsumer::connect(url, config).await.unwrap()
    }

    async fn producer(url: &str, stream: &str) -> NatsProducer {
        let client = async_nats::connect(url).await.unwrap();
        ensure_stream(&client, stream, stream).await.unwrap();
        NatsProducer::new(client)
    }

    async fn produce(producer: &NatsProducer, stream: &str, ids: std::ops::Range<u32>) {
        for id in ids {
            producer
                .send(TracedMessage::new(stream, Job { id }))
                .await
                .unwrap();
        }
    }

    /// The reasons and delivery counts of the copies in the dead-letter stream.
    async fn dead_letters(url: &str, config: &NatsConsumerConfig) -> Vec<(String, String)> {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(&config.dead_letter_stream).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let Ok(msg) = stream.get_raw_message(seq).await else {
                continue;
            };
            let get = |h: &str| {
                msg.headers
                    .get(h)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            out.push((
                get(DEAD_LETTER_REASON_HEADER),
                get(DEAD_LETTER_DELIVERIES_HEADER),
            ));
        }
        out
    }

    /// Messages still in the (work-queue) stream: neither acknowledged nor terminated.
    async fn left_in(url: &str, stream: &str) -> u64 {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(stream).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    #[tokio::test]
    async fn the_producer_contract_holds_and_an_unroutable_send_is_an_error() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream("contract");
        let producer = producer(&url, &stream).await.with_tracer(t.tracer());
        producer_contract(&producer, &stream, 0).await;
        // No stream takes this subject: an error, nothing stored.
        let unroutable = producer
            .send(TracedMessage::new(
                format!("{stream}-nowhere"),
                Job { id: 9 },
            ))
            .await;
        assert!(
            matches!(unroutable, Err(NatsQueueError::NoStream { .. })),
            "{unroutable:?}"
        );
        let consumer = consumer(&url, config(&stream)).await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&consumer, &mut w, Duration::from_secs(10), |_| {
            ledger.unique_ok() == 3
        })
        .await;
        assert_eq!(totals.acked, 3);
        assert_eq!(left_in(&url, &stream).await, 0, "acked messages are gone");
        // Each consumer span is a child of its producer span, and links to it.
        let spans = t.spans();
        let sends: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Producer && s.name.starts_with("send "))
            .collect();
        let processes: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Consumer)
            .collect();
        assert_eq!(processes.len(), 3);
        for p in &processes {
            let parent = sends
                .iter()
                .find(|s| s.span_context.span_id() == p.parent_span_id)
                .unwrap_or_else(|| panic!("no send span is the parent of {p:?}"));
            assert_eq!(parent.span_context.trace_id(), p.span_context.trace_id());
            assert_eq!(p.links.len(), 1);
            let attr = |k: &str| {
                p.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == k)
                    .map(|kv| kv.value.as_str().into_owned())
            };
            assert_eq!(attr("messaging.system").as_deref(), Some("nats"));
            assert_eq!(attr("queue.name").as_deref(), Some(stream.as_str()));
            assert!(attr("queue.message_id").is_some());
        }
    }

    #[tokio::test]
    async fn a_consumer_killed_mid_batch_loses_nothing() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream("kill");
        let producer = producer(&url, &stream).await.with_tracer(t.tracer());
        produce(&producer, &stream, 0..20).await;
        let ledger = Arc::new(Ledger::default());
        let mut c = config(&stream);
        c.batch_size = 5;
        let doomed = consumer(&url, c).await;
        let mut hangs = worker(
            &t,
            &ledger,
            |id, _| if id == 2 { Act::Hang } else { Act::Ok },
        );
        kill_mid_batch(&doomed, &mut hangs, Duration::from_millis(500)).await;
        drop(doomed);
        let survivor = consumer(&url, config(&stream)).await;
        let mut ok = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&survivor, &mut ok, Duration::from_secs(20), |_| {
            ledger.unique_ok() == 20
        })
        .await;
        // 2 acked by the killed consumer, 18 by the survivor (3 of them after the lapsed
        // ack_wait of the killed one).
        assert_eq!((totals.acked, totals.dead_lettered), (18, 0), "{totals:?}");
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (20, 0));
    }

    #[tokio::test]
    #[ignore = "started as a child process by the SIGKILL case"]
    async fn sigkill_child() {
        let (Ok(url), Ok(stream)) = (
            std::env::var("GORAX_TEST_NATS_URL"),
            std::env::var("GORAX_SIGKILL_STREAM"),
        ) else {
            return;
        };
        let mut c = config(&stream);
        c.batch_size = 5;
        let consumer = consumer(&url, c).await;
        let t = TestTracing::new();
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |id, _| {
            if id == 2 {
                use std::io::Write as _;
                println!("HANDLING 2");
                let _ = std::io::stdout().flush();
                Act::Hang
            } else {
                Act::Ok
            }
        });
        for _ in 0..100 {
            let _ = process_batch(&consumer, &mut w).await;
        }
    }

    #[tokio::test]
    async fn a_consumer_process_killed_with_sigkill_loses_nothing() {
        use std::io::BufRead as _;
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream("sigkill");
        let producer = producer(&url, &stream).await;
        produce(&producer, &stream, 0..20).await;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["nats::sigkill_child", "--exact", "--ignored", "--nocapture"])
            .env("GORAX_TEST_NATS_URL", &url)
            .env("GORAX_SIGKILL_STREAM", &stream)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let handling = tokio::task::spawn_blocking(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .take(50)
                .any(|l| l.is_ok_and(|l| l.contains("HANDLING 2")))
        });
        let handling = tokio::time::timeout(Duration::from_secs(30), handling).await;
        child.kill().unwrap(); // SIGKILL, mid-batch, mid-handler
        child.wait().unwrap();
        assert!(
            matches!(handling, Ok(Ok(true))),
            "the child never reached job 2"
        );

        let survivor = consumer(&url, config(&stream)).await;
        let ledger = Arc::new(Ledger::default());
        let mut ok = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&survivor, &mut ok, Duration::from_secs(20), |_| {
            ledger.unique_ok() == 18
        })
        .await;
        // produced 20 = acked 2 (by the killed process) + 18 (by the survivor, 3 of them
        // redelivered after the dead one's ack_wait); none lost, none twice.
        let mut ids: Vec<u32> = ledger.ok.lock().unwrap().keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, (2..20).collect::<Vec<_>>(), "{totals:?}");
        assert_eq!((totals.acked, ledger.duplicates()), (18, 0));
        assert_eq!(
            left_in(&url, &stream).await,
            0,
            "nothing left in the stream"
        );
    }

    #[tokio::test]
    async fn poison_and_over_delivered_messages_are_dead_lettered_and_panics_retried() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream("poison");
        let producer = producer(&url, &stream).await.with_tracer(t.tracer());
        produce(&producer, &stream, 0..10).await;
        // Not JSON: poison, dead-lettered at its first delivery.
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.publish(stream.clone(), "not json".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let mut c = config(&stream);
        c.max_deliveries = 3;
        let consumer = consumer(&url, c.clone()).await.with_tracer(t.tracer());
        let ledger = Arc::new(Ledger::default());
        // Job 7 always fails; even jobs panic on their first attempt.
        let mut w = worker(&t, &ledger, |id, attempt| match (id, attempt) {
            (7, _) => Act::Fail,
            (id, 0) if id % 2 == 0 => Act::Panic,
            _ => Act::Ok,
        });
        let totals = drive(&consumer, &mut w, Duration::from_secs(30), |t| {
            t.acked == 9 && t.dead_lettered == 2
        })
        .await;
        // produced 11 = acked 9 + dead-lettered 2 (the poison one, job 7 after 3 deliveries).
        assert_eq!((totals.panicked, totals.failed), (5, 5 + 3), "{totals:?}");
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (9, 0));
        assert_eq!(panic_spans(&t), 5);
        assert_eq!(dead_letter_spans(&t), 2);
        let mut dead = dead_letters(&url, &c).await;
        dead.sort();
        assert_eq!(dead.len(), 2, "{dead:?}");
        assert!(dead[0].0.starts_with("bad JSON payload"), "{dead:?}");
        assert_eq!(dead[0].1, "1");
        assert_eq!(dead[1], (REASON_MAX_DELIVERIES.to_owned(), "4".to_owned()));
        assert_eq!(left_in(&url, &stream).await, 0, "terminated or acked");
    }

    #[tokio::test]
    async fn a_message_dead_lettered_twice_is_copied_once() {
        let Some(url) = url() else { return };
        let stream = stream("dead-once");
        let client = async_nats::connect(url.as_str()).await.unwrap();
        ensure_stream(&client, &stream, &stream).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.publish(stream.clone(), "not json".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let c = config(&stream);
        let consumer = consumer(&url, c.clone()).await;
        let mut batch = QueueConsumer::<Job>::receive_batch(&consumer)
            .await
            .unwrap();
        let received = batch.received.pop().expect("one delivery");
        // As after a consumer that died between the copy and `+TERM`, or a `+TERM` that failed:
        // the dead-letter move runs twice for the same message.
        for _ in 0..2 {
            QueueConsumer::<Job>::dead_letter(&consumer, &received.receipt, "poison", 1)
                .await
                .unwrap();
        }
        assert_eq!(dead_letters(&url, &c).await.len(), 1, "one copy");
        assert_eq!(left_in(&url, &stream).await, 0);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_retried_and_traced() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream("panic");
        let producer = producer(&url, &stream).await.with_tracer(t.tracer());
        produce(&producer, &stream, 0..10).await;
        let consumer = consumer(&url, config(&stream)).await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |id, attempt| {
            if id % 2 == 0 && attempt == 0 {
                Act::Panic
            } else {
                Act::Ok
            }
        });
        let totals = drive(&consumer, &mut w, Duration::from_secs(20), |t| {
            t.acked == 10
        })
        .await;
        assert_eq!(
            (totals.panicked, totals.dead_lettered),
            (5, 0),
            "{totals:?}"
        );
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (10, 0));
        assert_eq!(panic_spans(&t), 5);
        // The retries saw their retry count.
        assert!(t.spans().iter().any(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "retry_count" && kv.value.as_str() == "1")
        }));
    }

    #[tokio::test]
    async fn short_handlers_in_a_long_batch_beside_a_healthy_consumer_are_not_duplicated() {
        const N: u32 = 100;
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream("short");
        let producer = producer(&url, &stream).await;
        produce(&producer, &stream, 0..N).await;
        let ledger = Arc::new(Ledger::default());
        // Each batch (10 × 150 ms) outlasts the ack_wait (1 s).
        let a = consumer(&url, config(&stream)).await;
        let b = consumer(&url, config(&stream)).await;
        let mut wa = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(150)));
        let mut wb = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(150)));
        let all = |_: &Totals| ledger.unique_ok() == N as usize;
        let (ta, tb) = tokio::join!(
            drive(&a, &mut wa, Duration::from_secs(60), all),
            drive(&b, &mut wb, Duration::from_secs(60), all),
        );
        eprintln!(
            "nats short handlers: duplicates {} of {N} (a {ta:?}, b {tb:?})",
            ledger.duplicates()
        );
        assert!(
            ta.acked >= 1 && tb.acked >= 1,
            "both took part: {ta:?} {tb:?}"
        );
        assert_eq!(ledger.duplicates(), 0, "a {ta:?} b {tb:?}");
        assert_eq!((ta + tb).acked, N as usize);
        assert!(a.stats().snapshot().lease_extensions >= 1);
    }

    /// A member whose handler blocks its thread for 2 s on every tenth job, on the test's
    /// runtime, beside a healthy member on a thread and runtime of its own.
    async fn a_blocking_handler_is_not_duplicated(flavour: &str) {
        const N: u32 = 60;
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream(&format!("block-{flavour}"));
        let producer = producer(&url, &stream).await;
        produce(&producer, &stream, 0..N).await;
        let ledger = Arc::new(Ledger::default());
        let blocker = consumer(&url, config(&stream)).await;
        let mut w = worker(&t, &ledger, |id, _| {
            if id % 10 == 0 {
                Act::Block(Duration::from_secs(2))
            } else {
                Act::Sleep(Duration::from_millis(100))
            }
        });
        let l = ledger.clone();
        let blocked = tokio::spawn(async move {
            let totals = drive(&blocker, &mut w, Duration::from_secs(60), |_| {
                l.unique_ok() == N as usize
            })
            .await;
            (totals, blocker.stats().snapshot())
        });
        let (s, l, u) = (stream.clone(), ledger.clone(), url.clone());
        let healthy = on_own_thread(move || async move {
            // Let the blocker take its batch first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let healthy = consumer(&u, config(&s)).await;
            let t = TestTracing::new();
            let mut w = worker(&t, &l, |_, _| Act::Sleep(Duration::from_millis(100)));
            drive(&healthy, &mut w, Duration::from_secs(60), |_| {
                l.unique_ok() == N as usize
            })
            .await
        });
        let (ta, stats) = blocked.await.unwrap();
        let tb = join(healthy).await;
        eprintln!(
            "nats blocking handler ({flavour}): duplicates {} of {N} (blocker {ta:?}, healthy {tb:?})",
            ledger.duplicates()
        );
        assert!(
            ta.acked >= 1 && tb.acked >= 1,
            "both took part: {ta:?} {tb:?}"
        );
        assert_eq!(ledger.duplicates(), 0, "blocker {ta:?} healthy {tb:?}");
        assert_eq!((ta + tb).acked, N as usize);
        assert!(stats.lease_extensions >= 1, "{stats:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_blocking_its_thread_is_not_duplicated_multi_thread() {
        a_blocking_handler_is_not_duplicated("multi").await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_handler_blocking_its_thread_is_not_duplicated_current_thread() {
        a_blocking_handler_is_not_duplicated("current").await;
    }

    #[tokio::test]
    async fn a_slow_handler_beside_a_fast_consumer_is_not_duplicated() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream("slow");
        let producer = producer(&url, &stream).await;
        produce(&producer, &stream, 0..30).await;
        let ledger = Arc::new(Ledger::default());
        // Each slow attempt outlasts the ack_wait (1 s): without in-progress acks the fast
        // consumer gets them again.
        let mut c = config(&stream);
        c.batch_size = 3;
        let slow = consumer(&url, c.clone()).await;
        let fast = consumer(&url, c).await;
        let mut slow_w = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(1500)));
        let mut fast_w = worker(&t, &ledger, |_, _| Act::Ok);
        let all = |_: &Totals| ledger.unique_ok() == 30;
        let (a, b) = tokio::join!(
            drive(&slow, &mut slow_w, Duration::from_secs(30), all),
            drive(&fast, &mut fast_w, Duration::from_secs(30), all),
        );
        let totals = a + b;
        assert!(a.acked >= 1, "the slow consumer took part: {a:?}");
        assert_eq!(ledger.duplicates(), 0, "slow {a:?} fast {b:?}");
        assert_eq!((totals.acked, totals.dead_lettered), (30, 0));
        assert!(slow.stats().snapshot().lease_extensions >= 1);
    }

    #[tokio::test]
    async fn a_hung_handler_gives_its_message_up_after_max_lease() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let stream = stream("hung");
        let producer = producer(&url, &stream).await;
        produce(&producer, &stream, 0..5).await;
        let ledger = Arc::new(Ledger::default());
        let mut c = config(&stream);
        c.batch_size = 1;
        c.max_lease = Some(Duration::from_millis(600));
        let hung = consumer(&url, c).await;
        let other = consumer(&url, config(&stream)).await;
        let mut hung_w = worker(&t, &ledger, |_, _| Act::Hang);
        let mut other_w = worker(&t, &ledger, |_, _| Act::Ok);
        let (cut, totals) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(8), process_batch(&hung, &mut hung_w)),
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                // Well before the hung call is cut off (8 s): only a lapsed lease (600 ms of
                // renewals, then the 1 s ack_wait) lets the other consumer have it that early.
                drive(&other, &mut other_w, Duration::from_secs(6), |_| {
                    ledger.unique_ok() == 5
                })
                .await
            },
        );
        assert!(cut.is_err(), "the hung handler never returns");
        assert_eq!((totals.acked, ledger.duplicates()), (5, 0), "{totals:?}");
    }

    /// A `nats-server -js` of this test's own on a fixed port, its streams on disk.
    struct Server {
        child: Option<std::process::Child>,
    }

    impl Server {
        fn start(port: u16, dir: &std::path::Path) -> Self {
            std::fs::create_dir_all(dir).unwrap();
            let child = std::process::Command::new("nats-server")
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("nats-server (scripts/test.sh installs it)");
            let server = Self { child: Some(child) };
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("nats-server did not start on {port}");
        }

        /// Stops it as a restart does (SIGTERM: it writes its stores out and exits), or kills
        /// it (SIGKILL, on drop).
        fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                for _ in 0..100 {
                    if child.try_wait().ok().flatten().is_some() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill(); // SIGKILL
                let _ = child.wait();
            }
        }
    }

    /// Killed when dropped; its directory stays (for the next server on it): the test removes
    /// it.
    impl Drop for Server {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// Sends until the producer says it was stored; returns how many sends had an unknown
    /// outcome (each may have stored a duplicate).
    async fn send_surely(producer: &NatsProducer, stream: &str, id: u32) -> u32 {
        let mut unknown = 0;
        let mut last = String::new();
        for _ in 0..200 {
            match producer.send(TracedMessage::new(stream, Job { id })).await {
                Ok(_) => return unknown,
                Err(NatsQueueError::OutcomeUnknown { .. }) => unknown += 1,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} was never sent: {last}");
    }

    #[tokio::test]
    async fn producer_and_consumer_survive_a_broker_restart() {
        // Needs the nats-server binary, which the test script installs with the server.
        let Some(_) = url() else { return };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("127.0.0.1:{port}");
        let dir = std::env::temp_dir().join(gorax_trace::testing::unique_name("gorax-nats"));
        let mut server = Server::start(port, &dir);
        let t = TestTracing::new();
        let stream = stream("restart");
        let producer = producer(&url, &stream)
            .await
            .with_ack_timeout(Duration::from_secs(1))
            .with_tracer(t.tracer());
        let mut c = config(&stream);
        c.batch_size = 5;
        let consumer = consumer(&url, c).await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let mut unknown = 0;
        for id in 0..10 {
            unknown += send_surely(&producer, &stream, id).await;
        }
        // Five acknowledged before the restart, five left in the stream across it.
        let mut totals = drive(&consumer, &mut w, Duration::from_secs(10), |t| t.acked >= 5).await;
        assert_eq!(totals.acked, 5, "{totals:?}");
        assert_eq!(left_in(&url, &stream).await, 5);

        // Restarted (NATS 2.9 keeps recent writes in a cache of the server's own: a SIGKILL
        // may lose messages it had acknowledged; a restart does not).
        server.stop();
        drop(server);
        // Unavailable: a send is an error within the PubAck timeout (1 s), not a hang; the
        // client may still deliver it once the server is back (an unknown outcome).
        let down = producer
            .send(TracedMessage::new(stream.clone(), Job { id: 20 }))
            .await;
        match down {
            Err(NatsQueueError::OutcomeUnknown { .. }) => unknown += 1,
            Err(_) => {}
            Ok(id) => panic!("sent to a stopped server: {id}"),
        }
        let server = Server::start(port, &dir);
        let restarted = Instant::now();
        // The consumer takes the five left across the restart.
        totals = totals + drive(&consumer, &mut w, Duration::from_secs(30), |t| t.acked >= 5).await;
        let consumer_back = restarted.elapsed();
        unknown += send_surely(&producer, &stream, 10).await;
        let producer_back = restarted.elapsed();
        for id in 11..20 {
            unknown += send_surely(&producer, &stream, id).await;
        }
        totals = totals
            + drive(&consumer, &mut w, Duration::from_secs(30), |_| {
                (0..20).all(|id| ledger.ok.lock().unwrap().contains_key(&id))
            })
            .await;
        // Job 20, sent while the server was down, may have been delivered after all.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(r) = process_batch(&consumer, &mut w).await {
            totals.acked += r.acked;
        }
        let late = ledger.ok.lock().unwrap().contains_key(&20);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);

        // produced 20 = acked 20 (+ job 20 if its unknown send did arrive; + at most one
        // duplicate per send of unknown outcome, and per acknowledgement lost with the server).
        assert_eq!(ledger.unique_ok(), 20 + usize::from(late), "{totals:?}");
        assert!(
            ledger.duplicates() <= unknown + totals.errors as u32,
            "{totals:?} unknown {unknown}"
        );
        assert_eq!(totals.dead_lettered, 0);
        eprintln!(
            "nats restart: {totals:?}, sends with unknown outcome: {unknown}, duplicates {}, \
             producer back after {producer_back:?}, consumer after {consumer_back:?}, \
             the send made while it was down arrived: {late}",
            ledger.duplicates()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "amqp")]
mod amqp {
    use super::*;
    use gorax_trace_queue::amqp::lapin;
    use gorax_trace_queue::amqp::{
        AmqpConsumer, AmqpConsumerConfig, AmqpProducer, AmqpQueueError, QueueType, declare,
    };
    use lapin::options::{BasicGetOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};
    use opentelemetry::trace::SpanKind;

    fn url() -> Option<String> {
        gorax_trace::testing::server_env("GORAX_TEST_AMQP_URL")
    }

    /// A queue name: unique per test and run.
    fn queue(test: &str) -> String {
        gorax_trace::testing::unique_name(&format!("gorax-conf-{test}"))
    }

    /// A quorum queue's consumer, batches waiting 200 ms for their first delivery.
    fn config(queue: &str) -> AmqpConsumerConfig {
        let mut config = AmqpConsumerConfig::new(queue);
        config.wait = Duration::from_millis(200);
        config
    }

    async fn consumer(url: &str, config: AmqpConsumerConfig) -> AmqpConsumer {
        AmqpConsumer::connect(url, config).await.unwrap()
    }

    /// A producer to `config`'s queue, which it declares first.
    async fn producer(url: &str, config: &AmqpConsumerConfig) -> AmqpProducer {
        declare(url, config).await.unwrap();
        AmqpProducer::new(url)
    }

    async fn produce(producer: &AmqpProducer, queue: &str, ids: std::ops::Range<u32>) {
        for id in ids {
            producer
                .send(TracedMessage::new(queue, Job { id }))
                .await
                .unwrap();
        }
    }

    async fn channel(url: &str) -> (lapin::Connection, lapin::Channel) {
        let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        (connection, channel)
    }

    /// Publishes a raw body to `queue` through the default exchange (confirmed).
    async fn publish_raw(url: &str, queue: &str, body: &[u8]) {
        let (_connection, channel) = channel(url).await;
        channel.confirm_select(Default::default()).await.unwrap();
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                Default::default(),
                body,
                Default::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(confirm, lapin::Confirmation::Ack(None));
    }

    /// The broker's reason (`x-death`) of each message in the dead-letter queue (taken out).
    async fn dead_letters(url: &str, config: &AmqpConsumerConfig) -> Vec<String> {
        let (_connection, channel) = channel(url).await;
        let mut out = Vec::new();
        for _ in 0..1000 {
            let Some(got) = channel
                .basic_get(
                    config.dead_letter_queue.as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap()
            else {
                break;
            };
            let reason = got
                .delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-death").cloned())
                .and_then(|d| match d {
                    AMQPValue::FieldArray(a) => a.as_slice().first().cloned(),
                    _ => None,
                })
                .and_then(|d| match d {
                    AMQPValue::FieldTable(t) => t.inner().get("reason").cloned(),
                    _ => None,
                })
                .map(|r| match r {
                    AMQPValue::LongString(s) => s.to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            out.push(reason);
        }
        out
    }

    /// The reasons of the `n` messages the broker moves to the dead-letter queue (it does so
    /// asynchronously: waits for them, at most 10 s), and of any more that arrive within
    /// 300 ms after them.
    async fn dead_letters_n(url: &str, config: &AmqpConsumerConfig, n: usize) -> Vec<String> {
        let mut dead = Vec::new();
        for _ in 0..100 {
            dead.extend(dead_letters(url, config).await);
            if dead.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        dead.extend(dead_letters(url, config).await);
        dead
    }

    /// Messages ready in the queue: neither acknowledged nor dead-lettered (nor held by a
    /// consumer).
    async fn left_in(url: &str, queue: &str) -> u32 {
        let (_connection, channel) = channel(url).await;
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    fn attr(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    }

    #[tokio::test]
    async fn the_producer_contract_holds_and_an_unroutable_send_is_an_error() {
        use gorax_trace::semconv;
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("contract");
        let producer = producer(&url, &config(&queue))
            .await
            .with_tracer(t.tracer());
        producer_contract(&producer, &queue, 0).await;
        // No queue is bound to this routing key: returned (`mandatory`), an error.
        let unroutable = producer
            .send(TracedMessage::new(
                format!("{queue}-nowhere"),
                Job { id: 9 },
            ))
            .await;
        assert!(
            matches!(unroutable, Err(AmqpQueueError::Unroutable { .. })),
            "{unroutable:?}"
        );
        // An exchange that does not exist: the broker refuses, nothing stored; the producer
        // goes on with a new channel.
        let nowhere = AmqpProducer::new(&url)
            .with_exchange(&format!("{queue}-no-exchange"))
            .send(TracedMessage::new(queue.clone(), Job { id: 10 }))
            .await;
        assert!(
            matches!(nowhere, Err(AmqpQueueError::Publish { .. })),
            "{nowhere:?}"
        );
        let consumer = consumer(&url, config(&queue)).await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&consumer, &mut w, Duration::from_secs(10), |_| {
            ledger.unique_ok() == 3
        })
        .await;
        assert_eq!(totals.acked, 3);
        drop(consumer);
        assert_eq!(left_in(&url, &queue).await, 0, "acked messages are gone");
        // Each consumer span is a child of its producer span, and links to it.
        let spans = t.spans();
        let sends: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Producer && s.name == format!("send {queue}"))
            .collect();
        let processes: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Consumer)
            .collect();
        assert_eq!((sends.len(), processes.len()), (3, 3));
        for s in &sends {
            assert_eq!(
                attr(s, semconv::MESSAGING_SYSTEM).as_deref(),
                Some("rabbitmq")
            );
            // The default exchange: the routing key alone.
            assert_eq!(
                attr(s, semconv::MESSAGING_DESTINATION_NAME).as_deref(),
                Some(queue.as_str())
            );
            assert_eq!(
                attr(s, semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY).as_deref(),
                Some(queue.as_str())
            );
            assert!(attr(s, semconv::MESSAGING_MESSAGE_ID).is_some());
            assert_eq!(
                attr(s, semconv::NETWORK_PEER_ADDRESS).as_deref(),
                Some("127.0.0.1")
            );
            assert!(attr(s, semconv::NETWORK_PEER_PORT).is_some());
            let names: Vec<&str> = s.attributes.iter().map(|kv| kv.key.as_str()).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "no key twice: {names:?}");
        }
        for p in &processes {
            let parent = sends
                .iter()
                .find(|s| s.span_context.span_id() == p.parent_span_id)
                .unwrap_or_else(|| panic!("no send span is the parent of {p:?}"));
            assert_eq!(parent.span_context.trace_id(), p.span_context.trace_id());
            assert_eq!(p.links.len(), 1);
            assert_eq!(
                attr(p, semconv::MESSAGING_MESSAGE_ID),
                attr(parent, semconv::MESSAGING_MESSAGE_ID)
            );
            assert_eq!(
                attr(p, semconv::MESSAGING_SYSTEM).as_deref(),
                Some("rabbitmq")
            );
            assert_eq!(attr(p, "queue.name").as_deref(), Some(queue.as_str()));
            assert_eq!(
                attr(p, semconv::MESSAGING_DESTINATION_NAME).as_deref(),
                Some(queue.as_str())
            );
            assert!(attr(p, semconv::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG).is_some());
            assert_eq!(
                attr(p, semconv::NETWORK_PEER_ADDRESS).as_deref(),
                Some("127.0.0.1")
            );
            assert_eq!(attr(p, semconv::RETRY_COUNT).as_deref(), Some("0"));
        }
    }

    #[tokio::test]
    async fn a_consumer_killed_mid_batch_loses_nothing() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("kill");
        let producer = producer(&url, &config(&queue))
            .await
            .with_tracer(t.tracer());
        produce(&producer, &queue, 0..20).await;
        let ledger = Arc::new(Ledger::default());
        let mut c = config(&queue);
        c.prefetch = 5;
        let doomed = consumer(&url, c).await;
        let mut hangs = worker(
            &t,
            &ledger,
            |id, _| if id == 2 { Act::Hang } else { Act::Ok },
        );
        // A batch is what the broker has pushed by then (maybe fewer than 5): batches until
        // one is cut off mid-handler, at job 2 (at most 20).
        let mut cut = false;
        for _ in 0..20 {
            let batch = tokio::time::timeout(
                Duration::from_millis(500),
                process_batch(&doomed, &mut hangs),
            )
            .await;
            if batch.is_err() {
                cut = true;
                break;
            }
        }
        assert!(cut, "the batch was meant to be cut off mid-handler");
        // Its connection closes: the broker delivers what it held again.
        drop(doomed);
        let survivor = consumer(&url, config(&queue)).await;
        let mut ok = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&survivor, &mut ok, Duration::from_secs(20), |_| {
            ledger.unique_ok() == 20
        })
        .await;
        // 2 acked by the killed consumer, 18 by the survivor.
        assert_eq!((totals.acked, totals.dead_lettered), (18, 0), "{totals:?}");
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (20, 0));
    }

    #[tokio::test]
    #[ignore = "started as a child process by the SIGKILL case"]
    async fn sigkill_child() {
        let (Ok(url), Ok(queue)) = (
            std::env::var("GORAX_TEST_AMQP_URL"),
            std::env::var("GORAX_SIGKILL_QUEUE"),
        ) else {
            return;
        };
        let mut c = config(&queue);
        c.prefetch = 5;
        let consumer = consumer(&url, c).await;
        let t = TestTracing::new();
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |id, _| {
            if id == 2 {
                use std::io::Write as _;
                println!("HANDLING 2");
                let _ = std::io::stdout().flush();
                Act::Hang
            } else {
                Act::Ok
            }
        });
        for _ in 0..100 {
            let _ = process_batch(&consumer, &mut w).await;
        }
    }

    #[tokio::test]
    async fn a_consumer_process_killed_with_sigkill_loses_nothing() {
        use std::io::BufRead as _;
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("sigkill");
        let producer = producer(&url, &config(&queue)).await;
        produce(&producer, &queue, 0..20).await;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["amqp::sigkill_child", "--exact", "--ignored", "--nocapture"])
            .env("GORAX_TEST_AMQP_URL", &url)
            .env("GORAX_SIGKILL_QUEUE", &queue)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let handling = tokio::task::spawn_blocking(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .take(50)
                .any(|l| l.is_ok_and(|l| l.contains("HANDLING 2")))
        });
        let handling = tokio::time::timeout(Duration::from_secs(30), handling).await;
        child.kill().unwrap(); // SIGKILL, mid-batch, mid-handler
        child.wait().unwrap();
        assert!(
            matches!(handling, Ok(Ok(true))),
            "the child never reached job 2"
        );

        let survivor = consumer(&url, config(&queue)).await;
        let ledger = Arc::new(Ledger::default());
        let mut ok = worker(&t, &ledger, |_, _| Act::Ok);
        let totals = drive(&survivor, &mut ok, Duration::from_secs(20), |_| {
            ledger.unique_ok() == 18
        })
        .await;
        // produced 20 = acked 2 (by the killed process) + 18 (by the survivor, 3 of them
        // delivered again once the dead process's connection was gone); none lost, none twice.
        let mut ids: Vec<u32> = ledger.ok.lock().unwrap().keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, (2..20).collect::<Vec<_>>(), "{totals:?}");
        assert_eq!((totals.acked, ledger.duplicates()), (18, 0));
        drop(survivor);
        assert_eq!(left_in(&url, &queue).await, 0, "nothing left in the queue");
    }

    #[tokio::test]
    async fn poison_and_over_delivered_messages_are_dead_lettered_and_panics_retried() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("poison");
        let mut c = config(&queue);
        c.max_deliveries = 3;
        let producer = producer(&url, &c).await.with_tracer(t.tracer());
        produce(&producer, &queue, 0..10).await;
        // Not JSON: poison, dead-lettered at its first delivery.
        publish_raw(&url, &queue, b"not json").await;
        let consumer = consumer(&url, c.clone()).await.with_tracer(t.tracer());
        let ledger = Arc::new(Ledger::default());
        // Job 7 always fails; even jobs panic on their first attempt.
        let mut w = worker(&t, &ledger, |id, attempt| match (id, attempt) {
            (7, _) => Act::Fail,
            (id, 0) if id % 2 == 0 => Act::Panic,
            _ => Act::Ok,
        });
        let totals = drive(&consumer, &mut w, Duration::from_secs(30), |t| {
            t.acked == 9 && t.dead_lettered == 2
        })
        .await;
        // produced 11 = acked 9 + dead-lettered 2 (the poison one, job 7 after 3 deliveries).
        assert_eq!((totals.panicked, totals.failed), (5, 5 + 3), "{totals:?}");
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (9, 0));
        assert_eq!(panic_spans(&t), 5);
        assert_eq!(dead_letter_spans(&t), 2);
        // Job 7's dead-letter span: its fourth delivery, `retry_count` 3 from the quorum
        // queue's `x-delivery-count`.
        let spans = t.spans();
        let job7 = spans
            .iter()
            .find(|s| attr(s, DEAD_LETTER_REASON).as_deref() == Some(REASON_MAX_DELIVERIES))
            .expect("job 7 dead-lettered");
        assert_eq!(attr(job7, "retry_count").as_deref(), Some("3"));
        assert_eq!(
            attr(job7, "messaging.message.delivery_count").as_deref(),
            Some("4")
        );
        let dead = dead_letters_n(&url, &c, 2).await;
        assert_eq!(
            dead,
            ["rejected", "rejected"],
            "through the dead-letter exchange"
        );
        drop(consumer);
        assert_eq!(left_in(&url, &queue).await, 0, "acked or dead-lettered");
    }

    #[tokio::test]
    async fn a_message_dead_lettered_twice_is_copied_once() {
        let Some(url) = url() else { return };
        let queue = queue("dead-once");
        let c = config(&queue);
        declare(&url, &c).await.unwrap();
        publish_raw(&url, &queue, b"not json").await;
        let consumer = consumer(&url, c.clone()).await;
        let mut batch = QueueConsumer::<Job>::receive_batch(&consumer)
            .await
            .unwrap();
        for _ in 0..50 {
            if !batch.received.is_empty() {
                break;
            }
            batch = QueueConsumer::<Job>::receive_batch(&consumer)
                .await
                .unwrap();
        }
        let received = batch.received.pop().expect("one delivery");
        QueueConsumer::<Job>::dead_letter(&consumer, &received.receipt, "poison", 1)
            .await
            .unwrap();
        // Settled: a second move sends nothing, and says so.
        let again =
            QueueConsumer::<Job>::dead_letter(&consumer, &received.receipt, "poison", 1).await;
        assert!(
            matches!(again, Err(AmqpQueueError::Unsettled { .. })),
            "{again:?}"
        );
        assert_eq!(dead_letters_n(&url, &c, 1).await, ["rejected"]);
    }

    #[tokio::test]
    async fn panics_are_retried_with_their_retry_count() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("panic");
        let producer = producer(&url, &config(&queue))
            .await
            .with_tracer(t.tracer());
        produce(&producer, &queue, 0..10).await;
        let consumer = consumer(&url, config(&queue)).await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |id, attempt| {
            if id % 2 == 0 && attempt == 0 {
                Act::Panic
            } else {
                Act::Ok
            }
        });
        let totals = drive(&consumer, &mut w, Duration::from_secs(20), |t| {
            t.acked == 10
        })
        .await;
        assert_eq!(
            (totals.panicked, totals.dead_lettered),
            (5, 0),
            "{totals:?}"
        );
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (10, 0));
        assert_eq!(panic_spans(&t), 5);
        // The five retries saw their retry count.
        let retried = t
            .spans()
            .iter()
            .filter(|s| attr(s, "retry_count").as_deref() == Some("1"))
            .count();
        assert_eq!(retried, 5);
    }

    #[tokio::test]
    async fn a_classic_queue_counts_a_redelivery_and_dead_letters_poison_only() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("classic");
        let mut c = config(&queue);
        c.queue_type = QueueType::Classic;
        c.max_deliveries = 1;
        let producer = producer(&url, &c).await.with_tracer(t.tracer());
        produce(&producer, &queue, 0..4).await;
        publish_raw(&url, &queue, b"not json").await;
        let consumer = consumer(&url, c.clone()).await.with_tracer(t.tracer());
        let ledger = Arc::new(Ledger::default());
        // Job 1 fails three times: past `max_deliveries` (1), yet not dead-lettered (a classic
        // queue has no delivery count); its retries all say `retry_count` 1.
        let mut w = worker(&t, &ledger, |id, attempt| match (id, attempt) {
            (1, 0..=2) => Act::Fail,
            _ => Act::Ok,
        });
        let totals = drive(&consumer, &mut w, Duration::from_secs(20), |t| {
            t.acked == 4 && t.dead_lettered == 1
        })
        .await;
        assert_eq!(totals.failed, 3, "{totals:?}");
        assert_eq!((ledger.unique_ok(), ledger.duplicates()), (4, 0));
        let retries: Vec<String> = t
            .spans()
            .iter()
            .filter(|s| s.span_kind == SpanKind::Consumer && attr(s, DEAD_LETTER_REASON).is_none())
            .filter_map(|s| attr(s, "retry_count"))
            .collect();
        assert_eq!(
            retries.iter().filter(|r| *r == "1").count(),
            3,
            "{retries:?}"
        );
        assert_eq!(dead_letters_n(&url, &c, 1).await, ["rejected"]);
    }

    #[tokio::test]
    async fn short_handlers_in_a_long_batch_beside_a_healthy_consumer_are_not_duplicated() {
        const N: u32 = 100;
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("short");
        let producer = producer(&url, &config(&queue)).await;
        produce(&producer, &queue, 0..N).await;
        let ledger = Arc::new(Ledger::default());
        // Each batch (10 × 150 ms) is long; RabbitMQ has no lease to lapse meanwhile.
        let a = consumer(&url, config(&queue)).await;
        let b = consumer(&url, config(&queue)).await;
        let mut wa = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(150)));
        let mut wb = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(150)));
        let all = |_: &Totals| ledger.unique_ok() == N as usize;
        let (ta, tb) = tokio::join!(
            drive(&a, &mut wa, Duration::from_secs(60), all),
            drive(&b, &mut wb, Duration::from_secs(60), all),
        );
        eprintln!(
            "amqp short handlers: duplicates {} of {N} (a {ta:?}, b {tb:?})",
            ledger.duplicates()
        );
        assert!(
            ta.acked >= 1 && tb.acked >= 1,
            "both took part: {ta:?} {tb:?}"
        );
        assert_eq!(ledger.duplicates(), 0, "a {ta:?} b {tb:?}");
        assert_eq!((ta + tb).acked, N as usize);
    }

    /// A member whose handler blocks its thread for 2 s on every tenth job, on the test's
    /// runtime, beside a healthy member on a thread and runtime of its own.
    async fn a_blocking_handler_is_not_duplicated(flavour: &str) {
        const N: u32 = 60;
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue(&format!("block-{flavour}"));
        let producer = producer(&url, &config(&queue)).await;
        produce(&producer, &queue, 0..N).await;
        let ledger = Arc::new(Ledger::default());
        let blocker = consumer(&url, config(&queue)).await;
        let mut w = worker(&t, &ledger, |id, _| {
            if id % 10 == 0 {
                Act::Block(Duration::from_secs(2))
            } else {
                Act::Sleep(Duration::from_millis(100))
            }
        });
        let l = ledger.clone();
        let blocked = tokio::spawn(async move {
            drive(&blocker, &mut w, Duration::from_secs(60), |_| {
                l.unique_ok() == N as usize
            })
            .await
        });
        let (q, l, u) = (queue.clone(), ledger.clone(), url.clone());
        let healthy = on_own_thread(move || async move {
            // Let the blocker take its batch first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let healthy = consumer(&u, config(&q)).await;
            let t = TestTracing::new();
            let mut w = worker(&t, &l, |_, _| Act::Sleep(Duration::from_millis(100)));
            drive(&healthy, &mut w, Duration::from_secs(60), |_| {
                l.unique_ok() == N as usize
            })
            .await
        });
        let ta = blocked.await.unwrap();
        let tb = join(healthy).await;
        eprintln!(
            "amqp blocking handler ({flavour}): duplicates {} of {N} (blocker {ta:?}, healthy {tb:?})",
            ledger.duplicates()
        );
        assert!(
            ta.acked >= 1 && tb.acked >= 1,
            "both took part: {ta:?} {tb:?}"
        );
        assert_eq!(ledger.duplicates(), 0, "blocker {ta:?} healthy {tb:?}");
        assert_eq!((ta + tb).acked, N as usize);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_blocking_its_thread_is_not_duplicated_multi_thread() {
        a_blocking_handler_is_not_duplicated("multi").await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_handler_blocking_its_thread_is_not_duplicated_current_thread() {
        a_blocking_handler_is_not_duplicated("current").await;
    }

    #[tokio::test]
    async fn a_slow_handler_beside_a_fast_consumer_is_not_duplicated() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("slow");
        let producer = producer(&url, &config(&queue)).await;
        produce(&producer, &queue, 0..30).await;
        let ledger = Arc::new(Ledger::default());
        let mut c = config(&queue);
        c.prefetch = 3;
        let slow = consumer(&url, c.clone()).await;
        let fast = consumer(&url, c).await;
        let mut slow_w = worker(&t, &ledger, |_, _| Act::Sleep(Duration::from_millis(1500)));
        let mut fast_w = worker(&t, &ledger, |_, _| Act::Ok);
        let all = |_: &Totals| ledger.unique_ok() == 30;
        let (a, b) = tokio::join!(
            drive(&slow, &mut slow_w, Duration::from_secs(30), all),
            drive(&fast, &mut fast_w, Duration::from_secs(30), all),
        );
        let totals = a + b;
        assert!(a.acked >= 1, "the slow consumer took part: {a:?}");
        assert_eq!(ledger.duplicates(), 0, "slow {a:?} fast {b:?}");
        assert_eq!((totals.acked, totals.dead_lettered), (30, 0));
    }

    #[tokio::test]
    async fn a_hung_handler_gives_its_message_up_after_max_lease() {
        let Some(url) = url() else { return };
        let t = TestTracing::new();
        let queue = queue("hung");
        let producer = producer(&url, &config(&queue)).await;
        produce(&producer, &queue, 0..5).await;
        let ledger = Arc::new(Ledger::default());
        let mut c = config(&queue);
        c.prefetch = 1;
        c.max_lease = Some(Duration::from_millis(600));
        let hung = consumer(&url, c).await;
        let other = consumer(&url, config(&queue)).await;
        let mut hung_w = worker(&t, &ledger, |_, _| Act::Hang);
        let mut other_w = worker(&t, &ledger, |_, _| Act::Ok);
        let (cut, totals) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(8), process_batch(&hung, &mut hung_w)),
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                // Well before the hung call is cut off (8 s): only the channel closed at the
                // max lease (600 ms) lets the other consumer have its message that early.
                drive(&other, &mut other_w, Duration::from_secs(6), |_| {
                    ledger.unique_ok() == 5
                })
                .await
            },
        );
        assert!(cut.is_err(), "the hung handler never returns");
        assert_eq!((totals.acked, ledger.duplicates()), (5, 0), "{totals:?}");
    }

    /// A RabbitMQ node of this test's own on fixed ports, its data in `dir` (kept across a
    /// restart). It finds the test script's epmd through `ERL_EPMD_PORT`.
    struct Broker {
        node: String,
        env: Vec<(&'static str, String)>,
        child: Option<std::process::Child>,
    }

    impl Broker {
        fn start(node: &str, port: u16, dist_port: u16, dir: &std::path::Path) -> Self {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("plugins"), "[].").unwrap();
            // Run as root, the server script drops to the rabbitmq user.
            let _ = std::process::Command::new("chown")
                .args(["-R", "rabbitmq:rabbitmq"])
                .arg(dir)
                .status();
            let d = |name: &str| dir.join(name).display().to_string();
            let env = vec![
                ("RABBITMQ_NODENAME", node.to_owned()),
                ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
                ("RABBITMQ_NODE_PORT", port.to_string()),
                ("RABBITMQ_DIST_PORT", dist_port.to_string()),
                ("RABBITMQ_MNESIA_BASE", dir.display().to_string()),
                ("RABBITMQ_LOG_BASE", dir.display().to_string()),
                ("RABBITMQ_FEATURE_FLAGS_FILE", d("ff")),
                ("RABBITMQ_ENABLED_PLUGINS_FILE", d("plugins")),
            ];
            let child = std::process::Command::new("rabbitmq-server")
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("rabbitmq-server (scripts/test.sh installs it)");
            let broker = Self {
                node: node.to_owned(),
                env,
                child: Some(child),
            };
            // Ready once it listens for AMQP (about 5 s; at most 2 minutes on a loaded machine).
            for _ in 0..1200 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return broker;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("rabbitmq-server did not start on {port}");
        }

        /// Stops it as a restart does (`rabbitmqctl stop`: it closes its connections and
        /// exits), then waits for its script.
        fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = std::process::Command::new("rabbitmqctl")
                    .args(["-q", "-n", &self.node, "stop"])
                    .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                for _ in 0..600 {
                    if child.try_wait().ok().flatten().is_some() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for Broker {
        fn drop(&mut self) {
            self.stop();
        }
    }

    /// Sends until the producer says it was stored; returns how many sends had an unknown
    /// outcome (each may have stored a duplicate).
    async fn send_surely(producer: &AmqpProducer, queue: &str, id: u32) -> u32 {
        let mut unknown = 0;
        let mut last = String::new();
        for _ in 0..600 {
            match producer.send(TracedMessage::new(queue, Job { id })).await {
                Ok(_) => return unknown,
                Err(AmqpQueueError::OutcomeUnknown { .. } | AmqpQueueError::TimedOut { .. }) => {
                    unknown += 1
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} was never sent: {last}");
    }

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn producer_and_consumer_survive_a_broker_restart() {
        // Needs the rabbitmq-server the test script installs with the server.
        let Some(_) = url() else { return };
        let (port, dist_port) = (free_port(), free_port());
        let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
        let node = format!(
            "{}@localhost",
            gorax_trace::testing::unique_name("gorax-restart")
        );
        let dir = std::env::temp_dir().join(gorax_trace::testing::unique_name("gorax-rmq"));
        let mut broker = Broker::start(&node, port, dist_port, &dir);
        let t = TestTracing::new();
        let queue = queue("restart");
        let mut c = config(&queue);
        c.prefetch = 5;
        c.connect_timeout = Duration::from_secs(2);
        let producer = producer(&url, &c)
            .await
            .with_confirm_timeout(Duration::from_secs(2))
            .with_connect_timeout(Duration::from_secs(2))
            .with_tracer(t.tracer());
        let consumer = consumer(&url, c).await;
        let ledger = Arc::new(Ledger::default());
        let mut w = worker(&t, &ledger, |_, _| Act::Ok);
        let mut unknown = 0;
        for id in 0..10 {
            unknown += send_surely(&producer, &queue, id).await;
        }
        // Five acknowledged before the restart, five left in the queue across it.
        let mut totals = drive(&consumer, &mut w, Duration::from_secs(10), |t| t.acked >= 5).await;
        assert_eq!(totals.acked, 5, "{totals:?}");

        broker.stop();
        // Unavailable: a send is an error (refused), not a hang.
        let down = producer
            .send(TracedMessage::new(queue.clone(), Job { id: 20 }))
            .await;
        match down {
            Err(AmqpQueueError::OutcomeUnknown { .. } | AmqpQueueError::TimedOut { .. }) => {
                unknown += 1
            }
            Err(_) => {}
            Ok(id) => panic!("sent to a stopped broker: {id}"),
        }
        // The consumer while the node is down: each batch is an error within the connect
        // timeout (2 s) or an empty batch (the close not yet seen), never a hang.
        let mut down_errors = 0;
        for _ in 0..5 {
            match tokio::time::timeout(Duration::from_secs(10), process_batch(&consumer, &mut w))
                .await
            {
                Ok(Err(_)) => down_errors += 1,
                Ok(Ok(r)) => assert_eq!(r.total(), 0, "a batch from a stopped node: {r:?}"),
                Err(_) => panic!("a batch hung while the node was down"),
            }
        }
        assert!(down_errors >= 1, "no batch saw the node down");
        let restarted_at = Instant::now();
        let broker = Broker::start(&node, port, dist_port, &dir);
        let listening = restarted_at.elapsed();
        let restarted = Instant::now();
        // The consumer takes what was left across the restart (the five, plus any the broker
        // delivered again because their acks were lost with it).
        totals = totals
            + drive(&consumer, &mut w, Duration::from_secs(60), |_| {
                (0..10).all(|id| ledger.ok.lock().unwrap().contains_key(&id))
            })
            .await;
        let consumer_back = restarted.elapsed();
        unknown += send_surely(&producer, &queue, 10).await;
        let producer_back = restarted.elapsed();
        for id in 11..20 {
            unknown += send_surely(&producer, &queue, id).await;
        }
        totals = totals
            + drive(&consumer, &mut w, Duration::from_secs(30), |_| {
                (0..20).all(|id| ledger.ok.lock().unwrap().contains_key(&id))
            })
            .await;
        let late = ledger.ok.lock().unwrap().contains_key(&20);
        let reconnects = consumer.stats().snapshot().reconnects;
        drop(consumer);
        drop(broker);
        let _ = std::fs::remove_dir_all(&dir);

        // produced 20 = acked 20 (+ at most one duplicate per send of unknown outcome, and per
        // acknowledgement lost with the broker).
        assert_eq!(ledger.unique_ok(), 20 + usize::from(late), "{totals:?}");
        assert!(
            ledger.duplicates() <= unknown + totals.errors as u32,
            "{totals:?} unknown {unknown}"
        );
        assert_eq!(totals.dead_lettered, 0);
        assert!(reconnects >= 1);
        eprintln!(
            "amqp restart: {totals:?}, sends with unknown outcome: {unknown}, duplicates {}, \
             node listening again {listening:?} after its start, then producer back after \
             {producer_back:?}, consumer after {consumer_back:?}, consumer reconnects \
             {reconnects}",
            ledger.duplicates()
        );
    }
}
