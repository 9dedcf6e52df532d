//! Tests of [`console`](super).
use super::*;
use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{
    Event, Link, SpanContext, TraceFlags, TraceState, Tracer, TracerProvider,
};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanEvents, SpanLinks};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

/// A cloneable in-memory writer.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct FailingWriter;

impl Write for FailingWriter {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const HOUR: Duration = Duration::from_secs(3600);

fn buffered(linger: Duration) -> (ConsoleExporter, SharedBuf) {
    let buf = SharedBuf::default();
    let exporter = ConsoleExporter::new()
        .with_writer(buf.clone())
        .with_linger(linger);
    (exporter, buf)
}

fn export(exporter: &ConsoleExporter, batch: Vec<SpanData>) -> OTelSdkResult {
    let mut future = pin!(exporter.export(batch));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("export future is not ready"),
    }
}

fn trace_id(n: u128) -> TraceId {
    TraceId::from_bytes(n.to_be_bytes())
}

fn context(trace: u128, id: u64) -> SpanContext {
    SpanContext::new(
        trace_id(trace),
        SpanId::from_bytes(id.to_be_bytes()),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

/// A span of `trace` starting `start_us` after the epoch and lasting `dur_us`.
fn span(
    trace: u128,
    id: u64,
    parent: u64,
    name: &'static str,
    kind: SpanKind,
    start_us: u64,
    dur_us: u64,
) -> SpanData {
    let start_time = SystemTime::UNIX_EPOCH + Duration::from_micros(start_us);
    SpanData {
        span_context: context(trace, id),
        parent_span_id: SpanId::from_bytes(parent.to_be_bytes()),
        parent_span_is_remote: false,
        span_kind: kind,
        name: name.into(),
        start_time,
        end_time: start_time + Duration::from_micros(dur_us),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::default(),
    }
}

fn with_attrs(mut span: SpanData, attrs: Vec<KeyValue>) -> SpanData {
    span.attributes = attrs;
    span
}

/// The workflow trace of the module docs, children listed before parents
/// and siblings out of start order.
fn workflow_trace(trace: u128) -> Vec<SpanData> {
    use SpanKind::*;
    vec![
        span(
            trace,
            6,
            5,
            "process gorax-executions",
            Consumer,
            9_000,
            1_500,
        ),
        span(trace, 5, 2, "send gorax-executions", Producer, 8_000, 200),
        span(trace, 4, 3, "POST", Client, 2_000, 2_400),
        span(trace, 3, 2, "workflow.step.execute", Internal, 1_500, 3_100),
        with_attrs(
            span(trace, 2, 1, "workflow.execute", Internal, 1_000, 10_020),
            vec![KeyValue::new("workflow_id", "wf-1")],
        ),
        with_attrs(
            span(trace, 1, 0, "HTTP POST /execute", Server, 0, 12_310),
            vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.response.status_code", 200),
            ],
        ),
    ]
}

const WORKFLOW_TREE: &str = "\
HTTP POST /execute  SERVER  12.31ms  http.request.method=POST http.response.status_code=200
└─ workflow.execute  INTERNAL  10.02ms  workflow_id=wf-1
   ├─ workflow.step.execute  INTERNAL  3.10ms
   │  └─ POST  CLIENT  2.40ms
   └─ send gorax-executions  PRODUCER  200µs
      └─ process gorax-executions  CONSUMER  1.50ms
";

#[test]
fn prints_three_level_tree_sorted_by_start_time() {
    let (exporter, buf) = buffered(Duration::ZERO);
    export(&exporter, workflow_trace(1)).unwrap();
    assert_eq!(
        buf.take(),
        format!("trace 00000000000000000000000000000001\n{WORKFLOW_TREE}")
    );
}

#[test]
fn siblings_are_ordered_by_start_time() {
    use SpanKind::Internal;
    let (exporter, buf) = buffered(Duration::ZERO);
    let batch = vec![
        span(7, 4, 1, "third", Internal, 30, 1),
        span(7, 2, 1, "first", Internal, 10, 1),
        span(7, 3, 1, "second", Internal, 20, 1),
        span(7, 5, 3, "nested", Internal, 21, 1),
        span(7, 1, 0, "root", Internal, 0, 100),
    ];
    export(&exporter, batch).unwrap();
    assert_eq!(
        buf.take(),
        "trace 00000000000000000000000000000007\n\
             root  INTERNAL  100µs\n\
             ├─ first  INTERNAL  1µs\n\
             ├─ second  INTERNAL  1µs\n\
             │  └─ nested  INTERNAL  1µs\n\
             └─ third  INTERNAL  1µs\n"
    );
}

#[test]
fn trace_split_over_exports_prints_once_on_force_flush() {
    let (exporter, buf) = buffered(HOUR);
    let mut spans = workflow_trace(1);
    let root = spans.pop().unwrap();
    export(&exporter, spans).unwrap();
    export(&exporter, vec![root]).unwrap();
    assert_eq!(buf.take(), "", "trace must linger");
    exporter.force_flush().unwrap();
    assert_eq!(
        buf.take(),
        format!("trace 00000000000000000000000000000001\n{WORKFLOW_TREE}")
    );
    exporter.force_flush().unwrap();
    assert_eq!(buf.take(), "");
}

#[test]
fn ticker_prints_trace_after_linger() {
    let (exporter, buf) = buffered(Duration::from_millis(40));
    let mut spans = workflow_trace(1);
    let root = spans.pop().unwrap();
    export(&exporter, spans).unwrap();
    export(&exporter, vec![root]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = String::new();
    while out.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        out = buf.take();
    }
    assert_eq!(
        out,
        format!("trace 00000000000000000000000000000001\n{WORKFLOW_TREE}")
    );
    exporter.shutdown().unwrap();
    assert!(lock(&exporter.ticker).is_none());
    assert_eq!(buf.take(), "");
}

#[test]
fn interleaved_traces_print_as_separate_trees() {
    use SpanKind::*;
    let (exporter, buf) = buffered(HOUR);
    export(
        &exporter,
        vec![
            span(0xa, 2, 1, "a.child", Internal, 5, 10),
            span(0xb, 2, 1, "b.child", Client, 5, 20),
        ],
    )
    .unwrap();
    export(
        &exporter,
        vec![
            span(0xb, 1, 0, "b.root", Server, 0, 30),
            span(0xa, 1, 0, "a.root", Server, 0, 40),
        ],
    )
    .unwrap();
    exporter.force_flush().unwrap();
    assert_eq!(
        buf.take(),
        "trace 0000000000000000000000000000000a\n\
             a.root  SERVER  40µs\n\
             └─ a.child  INTERNAL  10µs\n\
             trace 0000000000000000000000000000000b\n\
             b.root  SERVER  30µs\n\
             └─ b.child  CLIENT  20µs\n"
    );
}

#[test]
fn renders_status_events_links_and_truncated_attributes() {
    let (exporter, buf) = buffered(Duration::ZERO);
    let exporter = exporter.with_max_attributes(2);
    let mut root = span(3, 1, 0, "root", SpanKind::Server, 0, 1_500_000);
    root.status = Status::Ok;
    root.links
        .links
        .push(Link::new(context(9, 0x42), vec![], 0));
    let mut client = span(3, 2, 1, "POST", SpanKind::Client, 10, 2_400);
    client.status = Status::error("connection refused");
    client.attributes = vec![
        KeyValue::new("error.type", "connect"),
        KeyValue::new("url.full", "x".repeat(100)),
        KeyValue::new("server.port", 443),
    ];
    client.dropped_attributes_count = 1;
    client.events.events.push(Event::new(
        "exception",
        SystemTime::UNIX_EPOCH,
        vec![KeyValue::new("exception.message", "refused")],
        0,
    ));
    let mut failed = span(3, 3, 1, "cache", SpanKind::Internal, 20, 2_000_000);
    failed.status = Status::error("");
    export(&exporter, vec![client, failed, root]).unwrap();
    assert_eq!(
        buf.take(),
        format!(
            "trace 00000000000000000000000000000003\n\
                 root  SERVER  1.50s  OK\n\
                 │  ↪ link trace=00000000000000000000000000000009 span=0000000000000042\n\
                 ├─ POST  CLIENT  2.40ms  ERROR: connection refused  error.type=connect url.full={}… …+2\n\
                 │  • exception  exception.message=refused\n\
                 └─ cache  INTERNAL  2.00s  ERROR\n",
            "x".repeat(80)
        )
    );
}

#[test]
fn full_buffer_prints_oldest_trace_incomplete() {
    use SpanKind::Internal;
    let (exporter, buf) = buffered(HOUR);
    let exporter = exporter.with_max_buffered_spans(3);
    export(
        &exporter,
        vec![
            span(1, 2, 1, "one.child", Internal, 5, 1),
            span(1, 3, 1, "one.other", Internal, 6, 1),
        ],
    )
    .unwrap();
    assert_eq!(buf.take(), "");
    export(
        &exporter,
        vec![
            span(2, 2, 1, "two.child", Internal, 5, 1),
            span(2, 1, 0, "two.root", Internal, 0, 9),
        ],
    )
    .unwrap();
    assert_eq!(
        buf.take(),
        "trace 00000000000000000000000000000001\n\
             (incomplete: buffer full)\n\
             one.child  INTERNAL  1µs  (parent 0000000000000001 missing)\n\
             one.other  INTERNAL  1µs  (parent 0000000000000001 missing)\n"
    );
    exporter.shutdown().unwrap();
    assert_eq!(
        buf.take(),
        "trace 00000000000000000000000000000002\n\
             two.root  INTERNAL  9µs\n\
             └─ two.child  INTERNAL  1µs\n"
    );
}

#[test]
fn colour_only_when_enabled() {
    let root = || vec![span(1, 1, 0, "root", SpanKind::Server, 0, 5)];
    let (plain, buf) = buffered(Duration::ZERO);
    export(&plain, root()).unwrap();
    assert!(!buf.take().contains('\x1b'));

    let (colored, buf) = buffered(Duration::ZERO);
    let colored = colored.with_color(true);
    let mut failing = span(1, 2, 1, "child", SpanKind::Client, 1, 2);
    failing.status = Status::error("boom");
    let mut batch = root();
    batch.push(failing);
    export(&colored, batch).unwrap();
    assert_eq!(
        buf.take(),
        "\x1b[1mtrace 00000000000000000000000000000001\x1b[0m\n\
             \x1b[1mroot\x1b[0m  SERVER  \x1b[2m5µs\x1b[0m\n\
             └─ \x1b[1mchild\x1b[0m  CLIENT  \x1b[2m2µs\x1b[0m  \x1b[31mERROR: boom\x1b[0m\n"
    );
}

#[test]
fn remote_parent_root_is_marked_and_ready() {
    let (exporter, buf) = buffered(Duration::ZERO);
    let mut root = span(5, 1, 0xfeed, "GET /items", SpanKind::Server, 0, 1_000);
    root.parent_span_is_remote = true;
    let child = span(5, 2, 1, "db.query", SpanKind::Client, 10, 500);
    export(&exporter, vec![child, root]).unwrap();
    assert_eq!(
        buf.take(),
        "trace 00000000000000000000000000000005\n\
             GET /items  SERVER  1.00ms  (parent 000000000000feed remote)\n\
             └─ db.query  CLIENT  500µs\n"
    );
}

#[test]
fn orphans_wait_for_their_parent_until_flushed() {
    let (exporter, buf) = buffered(Duration::ZERO);
    export(
        &exporter,
        vec![span(6, 2, 1, "child", SpanKind::Internal, 5, 1)],
    )
    .unwrap();
    // Without a root a trace waits ten times the linger time (zero here).
    assert!(
        buf.take()
            .starts_with("trace 00000000000000000000000000000006\n")
    );

    let (exporter, buf) = buffered(HOUR);
    export(
        &exporter,
        vec![span(6, 2, 1, "child", SpanKind::Internal, 5, 1)],
    )
    .unwrap();
    assert_eq!(buf.take(), "");
    exporter.force_flush().unwrap();
    assert_eq!(
        buf.take(),
        "trace 00000000000000000000000000000006\n\
             child  INTERNAL  1µs  (parent 0000000000000001 missing)\n"
    );
}

#[test]
fn export_after_shutdown_fails() {
    let (exporter, buf) = buffered(HOUR);
    export(
        &exporter,
        vec![span(1, 1, 0, "root", SpanKind::Server, 0, 5)],
    )
    .unwrap();
    exporter.shutdown().unwrap();
    assert_eq!(
        buf.take(),
        "trace 00000000000000000000000000000001\nroot  SERVER  5µs\n"
    );
    let result = export(
        &exporter,
        vec![span(1, 2, 1, "late", SpanKind::Server, 0, 5)],
    );
    assert!(matches!(result, Err(OTelSdkError::AlreadyShutdown)));
    assert!(matches!(
        exporter.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert_eq!(buf.take(), "");
}

#[test]
fn write_errors_are_reported_not_panicked() {
    let exporter = ConsoleExporter::new()
        .with_writer(FailingWriter)
        .with_linger(Duration::ZERO);
    let result = export(
        &exporter,
        vec![span(1, 1, 0, "root", SpanKind::Server, 0, 5)],
    );
    match result {
        Err(OTelSdkError::InternalFailure(message)) => {
            assert!(message.contains("disk on fire"))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn works_with_sdk_provider_and_resource() {
    let buf = SharedBuf::default();
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_service_name("gorax-api")
                .build(),
        )
        .with_simple_exporter(
            ConsoleExporter::new()
                .with_writer(buf.clone())
                .with_linger(HOUR),
        )
        .build();
    let tracer = provider.tracer("test");
    let trace_id = tracer.in_span("parent", |cx| {
        use opentelemetry::trace::TraceContextExt;
        tracer.in_span("child", |_| {});
        cx.span().span_context().trace_id()
    });
    assert_eq!(buf.take(), "");
    provider.shutdown().unwrap();
    let out = buf.take();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], format!("trace {trace_id}  (gorax-api)"));
    assert!(lines[1].starts_with("parent  INTERNAL  "), "{out}");
    assert!(lines[2].starts_with("└─ child  INTERNAL  "), "{out}");
}

#[test]
fn drop_flushes_buffered_traces() {
    let (exporter, buf) = buffered(HOUR);
    export(
        &exporter,
        vec![span(1, 1, 0, "root", SpanKind::Server, 0, 5)],
    )
    .unwrap();
    drop(exporter);
    assert_eq!(
        buf.take(),
        "trace 00000000000000000000000000000001\nroot  SERVER  5µs\n"
    );
}

#[test]
fn formats_durations() {
    assert_eq!(format_duration(Duration::from_nanos(999)), "0µs");
    assert_eq!(format_duration(Duration::from_micros(850)), "850µs");
    assert_eq!(format_duration(Duration::from_micros(12_319)), "12.31ms");
    assert_eq!(format_duration(Duration::from_millis(999)), "999.00ms");
    assert_eq!(format_duration(Duration::from_millis(3_205)), "3.20s");
}

#[test]
fn debug_shows_configuration() {
    let (exporter, _) = buffered(HOUR);
    let debug = format!("{exporter:?}");
    assert!(
        debug.starts_with("ConsoleExporter { color: false, linger: 3600s"),
        "{debug}"
    );
}
