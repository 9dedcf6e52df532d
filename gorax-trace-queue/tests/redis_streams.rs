//! Against a real Redis server: `GORAX_TEST_REDIS_URL` (scripts/test.sh starts one). Without it
//! the tests say they are skipped, except under `CI=true`, where a missing server is a failure.
#![cfg(feature = "redis")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gorax_trace::semconv;
use gorax_trace::testing::TestTracing;
use gorax_trace_queue::redis::{DEAD_LETTER_REASON_FIELD, RedisConsumer, RedisProducer};
use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
use opentelemetry::trace::{TraceContextExt, Tracer};
use opentelemetry::{Context, Value};
use tower::{ServiceBuilder, service_fn};

/// The server's address, or `None` (with a visible notice) when the tests should be skipped.
fn redis_url(_test: &str) -> Option<String> {
    gorax_trace::testing::server_env("GORAX_TEST_REDIS_URL")
}

fn unique_stream(test: &str) -> String {
    gorax_trace::testing::unique_name(&format!("gorax-test-{test}"))
}

struct Setup {
    client: redis::Client,
    t: TestTracing,
    stream: String,
    producer: RedisProducer,
}

async fn setup(test: &str) -> Option<Setup> {
    let url = redis_url(test)?;
    let client = redis::Client::open(url).unwrap();
    let t = TestTracing::new();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let producer = RedisProducer::new(conn).with_tracer(t.tracer());
    Some(Setup {
        client,
        t,
        stream: unique_stream(test),
        producer,
    })
}

async fn consumer(s: &Setup, name: &str) -> RedisConsumer {
    RedisConsumer::connect(&s.client, &s.stream, "workers", name)
        .await
        .unwrap()
        .with_block(Duration::from_millis(200))
        .with_claim_min_idle(Duration::from_millis(50))
}

async fn pending(s: &Setup) -> i64 {
    let mut conn = s.client.get_multiplexed_async_connection().await.unwrap();
    let summary: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(&s.stream)
        .arg("workers")
        .query_async(&mut conn)
        .await
        .unwrap();
    summary.0
}

/// Publishes from inside a request span, as an HTTP handler would.
async fn publish_in_request(s: &Setup, payload: &str) -> String {
    let request = s.t.tracer().start("POST /api/v1/workflows/{id}/execute");
    let cx = Context::new().with_span(request);
    let id = {
        let msg = TracedMessage::new(s.stream.clone(), payload.to_owned());
        let fut = s.producer.send(msg);
        opentelemetry::trace::FutureExt::with_context(fut, cx.clone())
            .await
            .unwrap()
    };
    cx.span().end();
    id
}

#[tokio::test]
async fn publish_in_a_request_consume_in_a_worker_one_trace() {
    let Some(s) = setup("one-trace").await else {
        return;
    };
    let id = publish_in_request(&s, "exec-7").await;
    let consumer = consumer(&s, "w1").await;
    let tracer = s.t.tracer();
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(s.t.tracer()))
        .service(service_fn(move |msg: TracedMessage<String>| {
            assert_eq!(msg.payload(), "exec-7");
            drop(tracer.start("workflow.execute"));
            async { Ok::<_, Infallible>(()) }
        }));
    let report = consumer.process(&mut worker).await.unwrap();
    assert_eq!((report.acked, report.failed), (1, 0));
    assert_eq!(pending(&s).await, 0, "acknowledged");

    let spans = s.t.spans();
    let send_name = format!("send {}", s.stream);
    let process_name = format!("process {}", s.stream);
    spans.assert_child_of(&send_name, "POST /api/v1/workflows/{id}/execute");
    spans.assert_child_of(&process_name, &send_name);
    spans.assert_child_of("workflow.execute", &process_name);
    let process = spans.find(&process_name);
    assert_eq!(process.links.links.len(), 1);
    for span in [spans.find(&send_name), process] {
        spans.assert_attr(span, semconv::MESSAGING_SYSTEM, "redis");
        spans.assert_attr(span, semconv::MESSAGING_MESSAGE_ID, id.clone());
        spans.assert_attr(span, semconv::QUEUE_MESSAGE_ID, id.clone());
        spans.assert_attr(span, semconv::QUEUE_NAME, s.stream.clone());
        spans.assert_attr(span, semconv::MESSAGING_DESTINATION_NAME, s.stream.clone());
    }
    spans.assert_attr(process, semconv::RETRY_COUNT, 0_i64);
}

#[tokio::test]
async fn a_handler_that_fails_twice_then_succeeds_sees_retry_counts_0_1_2() {
    let Some(s) = setup("retries").await else {
        return;
    };
    publish_in_request(&s, "flaky").await;
    let consumer = consumer(&s, "w1").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(s.t.tracer()))
        .service(service_fn(move |msg: TracedMessage<String>| {
            let retry = msg.retry_count();
            seen2.lock().unwrap().push(retry);
            async move {
                if retry < 2 {
                    Err(format!("attempt {retry} failed"))
                } else {
                    Ok(())
                }
            }
        }));
    let mut reports = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(80)).await; // past the claim idle time
        reports.push(consumer.process(&mut worker).await.unwrap());
    }
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);
    assert_eq!(reports.iter().map(|r| r.acked).sum::<usize>(), 1);
    assert_eq!(pending(&s).await, 0);

    let spans = s.t.spans();
    let process = spans.find_all(&format!("process {}", s.stream));
    assert_eq!(process.len(), 3);
    let send = spans.find(&format!("send {}", s.stream));
    for (span, retry) in process.iter().zip(0_i64..) {
        assert_eq!(span.span_context.trace_id(), send.span_context.trace_id());
        assert_eq!(span.parent_span_id, send.span_context.span_id());
        spans.assert_attr(span, semconv::RETRY_COUNT, Value::I64(retry));
        let failed = retry < 2;
        assert_eq!(
            span.status != opentelemetry::trace::Status::Unset,
            failed,
            "{retry}"
        );
    }
}

#[tokio::test]
async fn a_consumer_killed_before_ack_loses_nothing() {
    let Some(s) = setup("crash").await else {
        return;
    };
    publish_in_request(&s, "survives").await;
    {
        let doomed = consumer(&s, "doomed").await;
        let got: Vec<TracedMessage<String>> = doomed.receive().await.unwrap();
        assert_eq!(got.len(), 1);
        // Dropped without XACK: the worker died.
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    let survivor = consumer(&s, "survivor").await;
    let got: Vec<TracedMessage<String>> = survivor.receive().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload(), "survives");
    assert_eq!(got[0].retry_count(), 1);
    survivor.ack(&got[0]).await.unwrap();
    assert_eq!(pending(&s).await, 0);
}

#[tokio::test]
async fn poison_messages_end_in_the_dead_letter_stream() {
    let Some(s) = setup("poison").await else {
        return;
    };
    publish_in_request(&s, "poison").await;
    let consumer = consumer(&s, "w1").await.with_max_deliveries(2);
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(s.t.tracer()))
        .service(service_fn(|_msg: TracedMessage<String>| async {
            Err::<(), _>("always fails")
        }));
    let mut failed = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(80)).await;
        failed += consumer.process(&mut worker).await.unwrap().failed;
    }
    assert_eq!(failed, 2, "delivered twice, then dead-lettered");
    assert_eq!(pending(&s).await, 0);

    // An undecodable payload goes straight to the dead-letter stream too.
    let mut conn = s.client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&s.stream)
        .arg("*")
        .arg("payload")
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(consumer.process(&mut worker).await.unwrap().failed, 0);

    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(consumer.dead_letter_stream())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead.ids.len(), 2);
    assert_eq!(
        dead.ids[0]
            .get::<String>(DEAD_LETTER_REASON_FIELD)
            .as_deref(),
        Some("max deliveries")
    );
    assert!(dead.ids[0].contains_key("header:traceparent"));
    assert_eq!(pending(&s).await, 0);
}

#[test]
fn send_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
    let _ = &client;
    fn check(p: &RedisProducer, c: &RedisConsumer) {
        assert_send(&p.send(TracedMessage::new("q", 1)));
        assert_send(&c.receive::<String>());
        assert_send(&c.ack_id("0-1"));
    }
    let _ = check;
}
