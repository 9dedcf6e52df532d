//! Backend-neutral tests: producer and consumer spans read back from an in-memory exporter.

use std::convert::Infallible;

use gorax_trace::propagation::{TRACEPARENT_KEY, parse_traceparent};
use gorax_trace::sampling::Sampler;
use gorax_trace::semconv;
use gorax_trace::testing::{Spans, TestTracing};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, Value};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use crate::{
    ConsumerFuture, ConsumerTraceLayer, ParentMode, ProducerTracer, SendSpan, TracedMessage,
};

const QUEUE: &str = "gorax-executions";
const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn producer(t: &TestTracing) -> ProducerTracer {
    ProducerTracer::new().with_tracer(t.tracer())
}

fn layer(t: &TestTracing) -> ConsumerTraceLayer {
    ConsumerTraceLayer::new().with_tracer(t.tracer())
}

/// Publishes through the producer tracer and the JSON form, as a body-only transport would.
fn publish(t: &TestTracing, payload: &str) -> TracedMessage<String> {
    let mut msg = TracedMessage::new(QUEUE, payload.to_owned());
    let span = producer(t).start_send(&mut msg);
    span.record_message_id("1700000000000-0");
    span.end();
    TracedMessage::from_json(&msg.to_json().unwrap())
        .unwrap()
        .with_message_id("1700000000000-0")
}

/// Runs `msg` through the layer over a handler that records the context it sees and starts a
/// child span, and returns that context's (trace id, span id).
fn consume(
    layer: ConsumerTraceLayer,
    t: &TestTracing,
    msg: TracedMessage<String>,
) -> (String, String) {
    let tracer = t.tracer();
    let svc = ServiceBuilder::new().layer(layer).service(service_fn(
        move |_msg: TracedMessage<String>| {
            let child = tracer.start("handler.work");
            drop(child);
            let cx = Context::current();
            let span = cx.span();
            let sc = span.span_context();
            let ids = (sc.trace_id().to_string(), sc.span_id().to_string());
            async move { Ok::<_, Infallible>(ids) }
        },
    ));
    run(svc.oneshot(msg)).unwrap()
}

#[test]
fn producer_and_consumer_share_one_trace_with_parent_and_link() {
    let t = TestTracing::new();
    let msg = publish(&t, "exec-7").with_retry_count(0);
    let (trace, span_id) = consume(layer(&t), &t, msg);

    let spans = t.spans();
    let send = spans.find("send gorax-executions");
    let process = spans.find("process gorax-executions");
    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(process.span_kind, SpanKind::Consumer);
    spans.assert_child_of("process gorax-executions", "send gorax-executions");
    assert!(process.parent_span_is_remote);
    assert_eq!(process.links.links.len(), 1);
    assert_eq!(
        process.links.links[0].span_context.span_id(),
        send.span_context.span_id()
    );
    // The handler ran inside the consumer span, and its spans are children.
    assert_eq!(trace, send.span_context.trace_id().to_string());
    assert_eq!(span_id, process.span_context.span_id().to_string());
    spans.assert_child_of("handler.work", "process gorax-executions");

    for (span, op) in [(send, "send"), (process, "process")] {
        assert_eq!(span.status, Status::Unset);
        for (key, value) in [
            (semconv::MESSAGING_SYSTEM, Value::from("gorax")),
            (semconv::MESSAGING_DESTINATION_NAME, QUEUE.into()),
            (semconv::MESSAGING_OPERATION_TYPE, op.into()),
            (semconv::MESSAGING_OPERATION_NAME, op.into()),
            (semconv::MESSAGING_MESSAGE_ID, "1700000000000-0".into()),
            (semconv::QUEUE_NAME, QUEUE.into()),
            (semconv::QUEUE_MESSAGE_ID, "1700000000000-0".into()),
        ] {
            spans.assert_attr(span, key, value);
        }
    }
    spans.assert_attr(process, semconv::RETRY_COUNT, 0_i64);
    spans.assert_no_attr(send, semconv::RETRY_COUNT);
    assert_eq!(process.attributes.len(), 8, "{:?}", process.attributes);
}

#[test]
fn retry_count_and_system_come_from_the_delivery() {
    let t = TestTracing::new();
    let msg = publish(&t, "x").with_retry_count(1).with_system("redis");
    consume(layer(&t).with_system("ignored"), &t, msg);
    let spans = t.spans();
    let process = spans.find("process gorax-executions");
    spans.assert_attr(process, semconv::RETRY_COUNT, 1_i64);
    spans.assert_attr(process, semconv::MESSAGING_SYSTEM, "redis");
}

#[test]
fn an_existing_creation_context_is_not_overwritten() {
    let t = TestTracing::new();
    let mut msg = TracedMessage::new(QUEUE, "x".to_owned()).with_header(TRACEPARENT_KEY, TP);
    producer(&t).start_send(&mut msg).end();
    assert_eq!(msg.headers().get(TRACEPARENT_KEY), Some(TP));
    let spans = t.spans();
    let send = spans.find("send gorax-executions");
    assert_eq!(send.links.links.len(), 1);
    assert_eq!(
        send.links.links[0].span_context,
        parse_traceparent(TP).unwrap()
    );
    t.reset();

    consume(layer(&t), &t, msg);
    let spans = t.spans();
    let process = spans.find("process gorax-executions");
    assert_eq!(
        process.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(process.parent_span_id.to_string(), "00f067aa0ba902b7");
}

#[test]
fn link_only_mode_starts_a_new_trace_that_links_to_the_producer() {
    let t = TestTracing::new();
    let msg = publish(&t, "x");
    consume(layer(&t).with_parent_mode(ParentMode::LinkOnly), &t, msg);
    let spans = t.spans();
    let send = spans.find("send gorax-executions");
    let process = spans.find("process gorax-executions");
    assert_ne!(
        process.span_context.trace_id(),
        send.span_context.trace_id()
    );
    assert!(spans.parent_of(process).is_none());
    assert_eq!(process.links.links.len(), 1);
    assert_eq!(
        process.links.links[0].span_context.span_id(),
        send.span_context.span_id()
    );
}

#[test]
fn link_only_mode_takes_the_current_context_as_parent() {
    let t = TestTracing::new();
    let msg = publish(&t, "x");
    let tracer = t.tracer();
    let poll = tracer.start("poll batch");
    let cx = Context::new().with_span(poll);
    {
        let _active = cx.clone().attach();
        consume(layer(&t).with_parent_mode(ParentMode::LinkOnly), &t, msg);
    }
    cx.span().end();
    t.spans()
        .assert_child_of("process gorax-executions", "poll batch");
}

#[test]
fn a_message_without_context_starts_a_root_without_links() {
    let t = TestTracing::new();
    consume(layer(&t), &t, TracedMessage::new(QUEUE, "x".to_owned()));
    let spans = t.spans();
    let process = spans.find("process gorax-executions");
    assert!(process.links.links.is_empty());
    assert!(spans.parent_of(process).is_none());
    spans.assert_no_attr(process, semconv::MESSAGING_MESSAGE_ID);
}

#[derive(Debug)]
struct HandlerError;
impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("step failed")
    }
}

#[test]
fn handler_error_sets_status_error_type_and_event() {
    let t = TestTracing::new();
    let msg = publish(&t, "x");
    let svc = layer(&t).layer_over(service_fn(|_m: TracedMessage<String>| async {
        Err::<(), _>(HandlerError)
    }));
    let result = run(svc.oneshot(msg));
    assert!(result.is_err());
    let spans = t.spans();
    let process = spans.find("process gorax-executions");
    assert_eq!(process.status, Status::error("step failed"));
    spans.assert_attr(
        process,
        semconv::ERROR_TYPE,
        "gorax_trace_queue::tests::HandlerError",
    );
    let event = &process.events.events[0];
    assert_eq!(event.name, semconv::EXCEPTION_EVENT);
}

#[test]
fn handler_panic_ends_the_span_as_an_error() {
    let t = TestTracing::new();
    let msg = publish(&t, "x");
    let svc = layer(&t).layer_over(service_fn(|_m: TracedMessage<String>| async {
        if true {
            panic!("boom");
        }
        Ok::<(), Infallible>(())
    }));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(svc.oneshot(msg))));
    assert!(caught.is_err());
    let spans = t.spans();
    let process = spans.find("process gorax-executions");
    assert_eq!(process.status, Status::error("the handler panicked"));
    spans.assert_attr(process, semconv::ERROR_TYPE, "panic");
}

#[test]
fn unsampled_and_disabled_tracing_still_propagate() {
    for sampler in [Sampler::AlwaysOff, Sampler::ParentBasedAlwaysOff] {
        let t = TestTracing::with_sampler(sampler);
        let msg = publish(&t, "x");
        let tp = msg
            .headers()
            .get(TRACEPARENT_KEY)
            .expect("injected")
            .to_owned();
        let sent = parse_traceparent(&tp).unwrap();
        assert!(!sent.is_sampled());
        let (trace, _) = consume(layer(&t), &t, msg.clone());
        assert_eq!(trace, sent.trace_id().to_string(), "{sampler:?}");
        // Through the handle that knows its sampler drops children of unsampled parents: the
        // span context is made without the SDK span, and it is the same kind of context.
        let fast = ConsumerTraceLayer::new().with_telemetry(t.handle());
        let (trace, span) = consume(fast, &t, msg);
        assert_eq!(trace, sent.trace_id().to_string(), "{sampler:?}");
        assert_ne!(
            span,
            sent.span_id().to_string(),
            "{sampler:?}: a span id of its own"
        );
        // A producer inside an unsampled request: the message continues that trace.
        let request = opentelemetry::trace::SpanContext::new(
            sent.trace_id(),
            opentelemetry::trace::SpanId::from(0x42),
            opentelemetry::trace::TraceFlags::default(),
            true,
            opentelemetry::trace::TraceState::NONE,
        );
        let parent = Context::new().with_remote_span_context(request);
        for producer in [
            producer(&t),
            ProducerTracer::new().with_telemetry(t.handle()),
        ] {
            let mut msg = TracedMessage::new(QUEUE, "y".to_owned());
            producer.start_send_with_parent(&parent, &mut msg).end();
            let tp = parse_traceparent(msg.headers().get(TRACEPARENT_KEY).unwrap()).unwrap();
            assert_eq!(tp.trace_id(), sent.trace_id(), "{sampler:?}");
            assert_ne!(tp.span_id(), opentelemetry::trace::SpanId::from(0x42));
            assert_eq!(tp.trace_flags().to_u8(), 0, "{sampler:?}");
        }
        assert!(t.spans().is_empty());
    }
}

#[test]
fn a_producer_inside_a_request_span_puts_the_chain_in_that_trace() {
    let t = TestTracing::new();
    let tracer = t.tracer();
    let request = tracer.start("POST /api/v1/workflows/{id}/execute");
    let cx = Context::new().with_span(request);
    let msg = {
        let _active = cx.clone().attach();
        publish(&t, "x")
    };
    cx.span().end();
    consume(layer(&t), &t, msg);
    let spans = t.spans();
    spans.assert_child_of(
        "send gorax-executions",
        "POST /api/v1/workflows/{id}/execute",
    );
    spans.assert_child_of("process gorax-executions", "send gorax-executions");
    spans.assert_child_of("handler.work", "process gorax-executions");
}

#[test]
fn baggage_travels_with_the_message() {
    use opentelemetry::KeyValue;
    use opentelemetry::baggage::BaggageExt;
    let t = TestTracing::new();
    let cx = Context::new().with_baggage(vec![KeyValue::new("tenant", "t1")]);
    let msg = {
        let _active = cx.attach();
        publish(&t, "x")
    };
    let svc = layer(&t).layer_over(service_fn(|_m: TracedMessage<String>| async {
        let tenant = Context::current()
            .baggage()
            .get("tenant")
            .map(|v| v.to_string());
        Ok::<_, Infallible>(tenant)
    }));
    let tenant = run(svc.oneshot(msg)).unwrap();
    assert_eq!(tenant.as_deref(), Some("t1"));
}

#[test]
fn futures_and_services_are_send() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Send + Sync>() {}
    assert_send::<ConsumerFuture<std::future::Ready<Result<(), Infallible>>>>();
    assert_send::<SendSpan>();
    assert_sync::<ConsumerTraceLayer>();
    assert_sync::<ProducerTracer>();
    let _ = Spans::len;
}

/// `layer.layer(svc)` spelled so the tests read top-down.
trait LayerOver {
    fn layer_over<S>(self, svc: S) -> crate::ConsumerTraceService<S>;
}

impl LayerOver for ConsumerTraceLayer {
    fn layer_over<S>(self, svc: S) -> crate::ConsumerTraceService<S> {
        tower_layer::Layer::layer(&self, svc)
    }
}

#[test]
fn service_accessors() {
    let mut svc = ConsumerTraceLayer::new().layer_over(service_fn(|_m: TracedMessage<()>| async {
        Ok::<_, Infallible>(())
    }));
    let _ = svc.get_ref();
    let _ = svc.get_mut();
    let inner = svc.into_inner();
    let mut inner = inner;
    let _ = run(async {
        inner
            .ready()
            .await
            .unwrap()
            .call(TracedMessage::new(QUEUE, ()))
            .await
    });
}

/// Runs a future on a fresh current-thread runtime (the in-memory exporter of the test kit runs
/// its own executor when a span ends, so the tests cannot use `futures_executor` here).
fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_batch_is_one_span_with_a_link_per_message() {
    let t = TestTracing::new();
    let batch = vec![
        publish(&t, "a"),
        publish(&t, "b"),
        TracedMessage::new(QUEUE, "no context".to_owned()),
    ];
    let tracer = t.tracer();
    let svc = ServiceBuilder::new().layer(layer(&t)).service(service_fn(
        move |batch: Vec<TracedMessage<String>>| {
            drop(tracer.start("batch.work"));
            async move { Ok::<_, Infallible>(batch.len()) }
        },
    ));
    assert_eq!(run(svc.oneshot(batch)).unwrap(), 3);

    let spans = t.spans();
    let sends = spans.find_all("send gorax-executions");
    let process = spans.find("process gorax-executions");
    assert_eq!(process.span_kind, SpanKind::Consumer);
    let linked: Vec<_> = process
        .links
        .links
        .iter()
        .map(|l| l.span_context.span_id())
        .collect();
    let sent: Vec<_> = sends.iter().map(|s| s.span_context.span_id()).collect();
    assert_eq!(
        linked, sent,
        "one link per message that carried a context, in order"
    );
    assert_eq!(
        process.parent_span_id,
        opentelemetry::trace::SpanId::INVALID,
        "a batch has no single parent"
    );
    spans.assert_attr(process, semconv::MESSAGING_BATCH_MESSAGE_COUNT, 3_i64);
    spans.assert_attr(process, semconv::MESSAGING_OPERATION_TYPE, "process");
    spans.assert_attr(process, semconv::QUEUE_NAME, QUEUE);
    spans.assert_no_attr(process, semconv::MESSAGING_MESSAGE_ID);
    spans.assert_child_of("batch.work", "process gorax-executions");
}
