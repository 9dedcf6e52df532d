//! Against a real SQS emulator (moto in server mode): `GORAX_TEST_SQS_ENDPOINT` (scripts/test.sh
//! starts one), with `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (test defaults
//! when unset). Without the endpoint the tests say they are skipped, except under `CI=true`,
//! where a missing emulator is a failure.
#![cfg(feature = "sqs")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gorax_trace::propagation::{TRACEPARENT_KEY, TRACESTATE_KEY};
use gorax_trace::semconv;
use gorax_trace::testing::TestTracing;
use gorax_trace_queue::sqs::aws_sdk_sqs;
use gorax_trace_queue::sqs::aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use gorax_trace_queue::sqs::{
    self, DEAD_LETTER_REASON_ATTRIBUTE, MAX_MESSAGE_ATTRIBUTES, SqsConsumer, SqsProducer,
    SqsQueueError,
};
use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
use opentelemetry::trace::{Status, TraceContextExt, Tracer};
use opentelemetry::{Context, Value};
use tower::{ServiceBuilder, service_fn};

const REQUEST: &str = "POST /api/v1/workflows/{id}/execute";

/// The server's address, or `None` (with a visible notice) when the tests should be skipped.
fn sqs_endpoint(_test: &str) -> Option<String> {
    gorax_trace::testing::server_env("GORAX_TEST_SQS_ENDPOINT")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn unique_queue(test: &str) -> String {
    gorax_trace::testing::unique_name(&format!("gorax-test-{test}"))
}

struct Setup {
    client: aws_sdk_sqs::Client,
    t: TestTracing,
    queue: String,
    url: String,
    producer: SqsProducer,
}

/// A client for the emulator and a fresh queue with the given visibility timeout.
async fn setup(test: &str, visibility_secs: u32) -> Option<Setup> {
    let endpoint = sqs_endpoint(test)?;
    let credentials = aws_sdk_sqs::config::Credentials::new(
        env_or("AWS_ACCESS_KEY_ID", "test"),
        env_or("AWS_SECRET_ACCESS_KEY", "test"),
        None,
        None,
        "test",
    );
    let client = sqs::client(
        env_or("AWS_REGION", "us-east-1"),
        credentials,
        Some(&endpoint),
    );
    let queue = unique_queue(test);
    let url = create_queue(&client, &queue, visibility_secs, None).await;
    let t = TestTracing::new();
    let producer = SqsProducer::new(client.clone()).with_tracer(t.tracer());
    Some(Setup {
        client,
        t,
        queue,
        url,
        producer,
    })
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_secs: u32,
    redrive_policy: Option<String>,
) -> String {
    let mut attrs = std::collections::HashMap::new();
    attrs.insert(
        QueueAttributeName::VisibilityTimeout,
        visibility_secs.to_string(),
    );
    if let Some(policy) = redrive_policy {
        attrs.insert(QueueAttributeName::RedrivePolicy, policy);
    }
    client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attrs))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned()
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap()
}

/// Every message in the queue at `url`, read raw (not deleted; hidden for 30 s).
async fn drain(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return all;
        }
        all.extend(out.messages().iter().cloned());
    }
}

async fn consumer(s: &Setup) -> SqsConsumer {
    SqsConsumer::connect(s.client.clone(), &s.queue)
        .await
        .unwrap()
        .with_wait_time(Duration::ZERO)
}

/// Publishes from inside a request span, as an HTTP handler would.
async fn publish_in_request(
    s: &Setup,
    msg: TracedMessage<String>,
) -> Result<String, SqsQueueError> {
    let request = s.t.tracer().start(REQUEST);
    let cx = Context::new().with_span(request);
    let result = {
        let fut = s.producer.send(msg);
        opentelemetry::trace::FutureExt::with_context(fut, cx.clone()).await
    };
    cx.span().end();
    result
}

/// Runs `consumer.process` until `done` says so, at most `deadline` long.
async fn process_until<S>(
    consumer: &SqsConsumer,
    worker: &mut S,
    deadline: Duration,
    mut done: impl FnMut(&sqs::ProcessReport) -> bool,
) -> Vec<sqs::ProcessReport>
where
    S: tower::Service<TracedMessage<String>>,
    S::Error: std::fmt::Display,
{
    let start = Instant::now();
    let mut reports = Vec::new();
    loop {
        let report = consumer.process(worker).await.unwrap();
        let finished = done(&report);
        if report != sqs::ProcessReport::default() {
            reports.push(report);
        }
        if finished {
            return reports;
        }
        assert!(start.elapsed() < deadline, "gave up after {reports:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn publish_in_a_request_consume_in_a_worker_one_trace() {
    let Some(s) = setup("one-trace", 30).await else {
        return;
    };
    let id = publish_in_request(&s, TracedMessage::new(s.queue.clone(), "exec-7".to_owned()))
        .await
        .unwrap();
    let consumer = consumer(&s).await;
    let tracer = s.t.tracer();
    let headers = Arc::new(Mutex::new(None));
    let headers2 = headers.clone();
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(s.t.tracer()))
        .service(service_fn(move |msg: TracedMessage<String>| {
            assert_eq!(msg.payload(), "exec-7");
            *headers2.lock().unwrap() = Some(msg.headers().clone());
            drop(tracer.start("workflow.execute"));
            async { Ok::<_, Infallible>(()) }
        }));
    let reports = process_until(&consumer, &mut worker, Duration::from_secs(10), |r| {
        r.acked > 0
    })
    .await;
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].acked, reports[0].failed), (1, 0));
    assert!(drain(&s.client, &s.url).await.is_empty(), "deleted");

    let spans = s.t.spans();
    let send_name = format!("send {}", s.queue);
    let process_name = format!("process {}", s.queue);
    spans.assert_child_of(&send_name, REQUEST);
    spans.assert_child_of(&process_name, &send_name);
    spans.assert_child_of("workflow.execute", &process_name);
    let send = spans.find(&send_name);
    let process = spans.find(&process_name);
    assert_eq!(
        process.span_context.trace_id(),
        spans.find(REQUEST).span_context.trace_id()
    );
    assert_eq!(process.parent_span_id, send.span_context.span_id());
    assert_eq!(process.links.links.len(), 1);
    let link = &process.links.links[0].span_context;
    assert_eq!(
        (link.trace_id(), link.span_id()),
        (send.span_context.trace_id(), send.span_context.span_id())
    );
    for span in [send, process] {
        spans.assert_attr(span, semconv::MESSAGING_SYSTEM, "aws_sqs");
        spans.assert_attr(span, semconv::MESSAGING_MESSAGE_ID, id.clone());
        spans.assert_attr(span, semconv::QUEUE_MESSAGE_ID, id.clone());
        spans.assert_attr(span, semconv::QUEUE_NAME, s.queue.clone());
        spans.assert_attr(span, semconv::MESSAGING_DESTINATION_NAME, s.queue.clone());
        assert_eq!(span.status, Status::Unset);
    }
    spans.assert_attr(send, semconv::MESSAGING_OPERATION_TYPE, "send");
    spans.assert_attr(process, semconv::MESSAGING_OPERATION_TYPE, "process");
    spans.assert_attr(process, semconv::RETRY_COUNT, 0_i64);
    spans.assert_no_attr(send, semconv::RETRY_COUNT);

    // The trace context crossed SQS as message attributes; the empty tracestate was not sent.
    let headers = headers.lock().unwrap().clone().unwrap();
    let expected = format!(
        "00-{}-{}-01",
        send.span_context.trace_id(),
        send.span_context.span_id()
    );
    assert_eq!(headers.get(TRACEPARENT_KEY), Some(expected.as_str()));
    assert_eq!(headers.get(TRACESTATE_KEY), None);
    assert_eq!(headers.len(), 1);
}

#[tokio::test]
async fn redelivery_after_the_visibility_timeout_has_retry_count_1_in_the_same_trace() {
    let Some(s) = setup("redelivery", 1).await else {
        return;
    };
    publish_in_request(&s, TracedMessage::new(s.queue.clone(), "flaky".to_owned()))
        .await
        .unwrap();
    let consumer = consumer(&s).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(s.t.tracer()))
        .service(service_fn(move |msg: TracedMessage<String>| {
            let retry = msg.retry_count();
            seen2.lock().unwrap().push(retry);
            async move {
                if retry == 0 {
                    Err(format!("attempt {retry} failed"))
                } else {
                    Ok(())
                }
            }
        }));
    let started = Instant::now();
    let reports = process_until(&consumer, &mut worker, Duration::from_secs(15), |r| {
        r.acked > 0
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 1]);
    assert_eq!(
        reports
            .iter()
            .map(|r| (r.acked, r.failed))
            .collect::<Vec<_>>(),
        [(0, 1), (1, 0)]
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "came back only after the 1 s visibility timeout"
    );
    assert!(drain(&s.client, &s.url).await.is_empty());

    let spans = s.t.spans();
    let send = spans.find(&format!("send {}", s.queue));
    let process = spans.find_all(&format!("process {}", s.queue));
    assert_eq!(process.len(), 2);
    for (span, retry) in process.iter().zip(0_i64..) {
        assert_eq!(span.span_context.trace_id(), send.span_context.trace_id());
        assert_eq!(span.parent_span_id, send.span_context.span_id());
        spans.assert_attr(span, semconv::RETRY_COUNT, Value::I64(retry));
        assert_eq!(span.status != Status::Unset, retry == 0, "{retry}");
    }
    spans.assert_attr(process[0], semconv::ERROR_TYPE, "alloc::string::String");
    assert_eq!(
        spans.find_all(&format!("process {}", s.queue))[0]
            .events
            .events
            .iter()
            .filter(|e| e.name == semconv::EXCEPTION_EVENT)
            .count(),
        1
    );
}

#[tokio::test]
async fn a_handler_that_fails_twice_then_succeeds_sees_retry_counts_0_1_2() {
    // A 30 s visibility timeout: only ChangeMessageVisibility (retry delay 0) brings it back fast.
    let Some(s) = setup("retries", 30).await else {
        return;
    };
    publish_in_request(&s, TracedMessage::new(s.queue.clone(), "flaky".to_owned()))
        .await
        .unwrap();
    let consumer = consumer(&s).await.with_retry_delay(Duration::ZERO);
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
    process_until(&consumer, &mut worker, Duration::from_secs(10), |r| {
        r.acked > 0
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);
    let spans = s.t.spans();
    let send = spans.find(&format!("send {}", s.queue));
    let process = spans.find_all(&format!("process {}", s.queue));
    assert_eq!(process.len(), 3);
    for (span, retry) in process.iter().zip(0_i64..) {
        assert_eq!(span.parent_span_id, send.span_context.span_id());
        spans.assert_attr(span, semconv::RETRY_COUNT, Value::I64(retry));
    }
}

#[tokio::test]
async fn a_consumer_killed_before_ack_loses_nothing() {
    let Some(s) = setup("crash", 1).await else {
        return;
    };
    publish_in_request(
        &s,
        TracedMessage::new(s.queue.clone(), "survives".to_owned()),
    )
    .await
    .unwrap();
    {
        let doomed = consumer(&s).await;
        let got = doomed.receive::<String>().await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count(), 1);
        // Dropped without DeleteMessage: the worker died.
    }
    let survivor = consumer(&s).await.with_wait_time(Duration::from_secs(3));
    let got = survivor.receive::<String>().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message().payload(), "survives");
    assert_eq!(got[0].message().retry_count(), 1);
    assert!(got[0].message().headers().get(TRACEPARENT_KEY).is_some());
    survivor.ack(&got[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(drain(&s.client, &s.url).await.is_empty(), "deleted");
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_by_the_consumer() {
    let Some(s) = setup("poison", 30).await else {
        return;
    };
    let dlq = create_queue(&s.client, &format!("{}-dead", s.queue), 30, None).await;
    publish_in_request(&s, TracedMessage::new(s.queue.clone(), "poison".to_owned()))
        .await
        .unwrap();
    let consumer = consumer(&s)
        .await
        .with_retry_delay(Duration::ZERO)
        .with_dead_letter_queue(&dlq, 2);
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(s.t.tracer()))
        .service(service_fn(|_msg: TracedMessage<String>| async {
            Err::<(), _>("always fails")
        }));
    let reports = process_until(&consumer, &mut worker, Duration::from_secs(10), |r| {
        r.dead_lettered > 0
    })
    .await;
    assert_eq!(reports.iter().map(|r| r.failed).sum::<usize>(), 2);
    assert_eq!(reports.iter().map(|r| r.dead_lettered).sum::<usize>(), 1);

    // An undecodable body goes straight to the dead-letter queue too.
    s.client
        .send_message()
        .queue_url(&s.url)
        .message_body("not json")
        .send()
        .await
        .unwrap();
    let reports = process_until(&consumer, &mut worker, Duration::from_secs(10), |r| {
        r.dead_lettered > 0
    })
    .await;
    assert_eq!(reports.iter().map(|r| r.failed).sum::<usize>(), 0);
    assert!(drain(&s.client, &s.url).await.is_empty());

    let mut dead = drain(&s.client, &dlq).await;
    dead.sort_by_key(|m| m.body().unwrap_or_default() != "\"poison\"");
    assert_eq!(dead.len(), 2);
    let attrs = dead[0].message_attributes().unwrap();
    assert_eq!(
        attrs[DEAD_LETTER_REASON_ATTRIBUTE].string_value(),
        Some("max deliveries")
    );
    let send = s.t.spans();
    let send = send.find(&format!("send {}", s.queue));
    let expected = format!(
        "00-{}-{}-01",
        send.span_context.trace_id(),
        send.span_context.span_id()
    );
    assert_eq!(
        attrs[TRACEPARENT_KEY].string_value(),
        Some(expected.as_str())
    );
    assert_eq!(dead[1].body(), Some("not json"));
    assert!(
        dead[1].message_attributes().unwrap()[DEAD_LETTER_REASON_ATTRIBUTE]
            .string_value()
            .is_some_and(|r| r.contains("expected"))
    );
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_by_a_redrive_policy() {
    let Some(s) = setup("redrive", 30).await else {
        return;
    };
    let dlq = create_queue(&s.client, &format!("{}-dlq", s.queue), 30, None).await;
    let arn = queue_arn(&s.client, &dlq).await;
    let name = format!("{}-redriven", s.queue);
    create_queue(&s.client, &name, 30, Some(sqs::redrive_policy(&arn, 2))).await;
    publish_in_request(&s, TracedMessage::new(name.clone(), "poison".to_owned()))
        .await
        .unwrap();
    let consumer = SqsConsumer::connect(s.client.clone(), &name)
        .await
        .unwrap()
        .with_wait_time(Duration::ZERO)
        .with_retry_delay(Duration::ZERO);
    let mut worker = ServiceBuilder::new()
        .layer(ConsumerTraceLayer::new().with_tracer(s.t.tracer()))
        .service(service_fn(|_msg: TracedMessage<String>| async {
            Err::<(), _>("always fails")
        }));
    let mut failed = 0;
    for _ in 0..4 {
        failed += consumer.process(&mut worker).await.unwrap().failed;
    }
    assert_eq!(failed, 2, "received twice, then moved by SQS");
    let dead = drain(&s.client, &dlq).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("\"poison\""));
    assert!(
        dead[0]
            .message_attributes()
            .unwrap()
            .contains_key(TRACEPARENT_KEY)
    );
}

#[tokio::test]
async fn attribute_limits_are_checked_before_sending() {
    let Some(s) = setup("limits", 30).await else {
        return;
    };
    // traceparent + 9 application headers: exactly SQS's 10.
    let mut msg = TracedMessage::new(s.queue.clone(), "fits".to_owned());
    for i in 1..MAX_MESSAGE_ATTRIBUTES {
        msg = msg.with_header(format!("h{i}"), format!("v{i}"));
    }
    let fits = msg.clone().with_header(TRACESTATE_KEY, "");
    publish_in_request(&s, fits).await.unwrap();

    // One more is one too many: a clear error, an error span, nothing sent.
    let too_many = msg.with_header("h10", "v10");
    let err = publish_in_request(&s, too_many).await.unwrap_err();
    assert!(
        matches!(
            err,
            SqsQueueError::TooManyAttributes {
                count: 11,
                max: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("at most 10"), "{err}");
    let bad_name = TracedMessage::new(s.queue.clone(), "x".to_owned()).with_header("a b", "v");
    let err = publish_in_request(&s, bad_name).await.unwrap_err();
    assert!(
        matches!(err, SqsQueueError::InvalidAttributeName(..)),
        "{err}"
    );

    let spans = s.t.spans();
    let sends = spans.find_all(&format!("send {}", s.queue));
    assert_eq!(sends.len(), 3);
    assert_eq!(sends[0].status, Status::Unset);
    for failed in &sends[1..] {
        assert!(matches!(failed.status, Status::Error { .. }));
        assert!(
            gorax_trace::testing::Spans::attr(failed, semconv::ERROR_TYPE).is_some(),
            "error.type"
        );
        spans.assert_no_attr(failed, semconv::MESSAGING_MESSAGE_ID);
    }

    let got = drain(&s.client, &s.url).await;
    assert_eq!(got.len(), 1, "only the message that fits was sent");
    let attrs = got[0].message_attributes().unwrap();
    assert_eq!(attrs.len(), MAX_MESSAGE_ATTRIBUTES);
    assert_eq!(attrs["h9"].string_value(), Some("v9"));
    assert!(
        !attrs.contains_key(TRACESTATE_KEY),
        "empty values are skipped"
    );
    assert_eq!(got[0].body(), Some("\"fits\""));
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn check(p: &SqsProducer, c: &SqsConsumer) {
        assert_send(&p.send(TracedMessage::new("q", 1)));
        assert_send(&c.receive::<String>());
        assert_send(&c.ack_handle("h"));
    }
    let _ = check;
}
