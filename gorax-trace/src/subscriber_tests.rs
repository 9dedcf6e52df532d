//! The tests of [`subscriber`](super): log lines, their ids and the bridge span.
use super::*;
use crate::testing::TestTracing;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn log_lines_carry_ids_and_tracing_spans_become_otel_spans() {
    let t = TestTracing::new();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::registry()
        .with(otel_layer(t.tracer()))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .event_format(WithTraceIds(Format::default())),
        );
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("outside");
        tracing::info_span!("outer").in_scope(|| {
            tracing::info_span!("inner").in_scope(|| tracing::info!("inside"));
        });
    });
    let spans = t.spans();
    spans.assert_child_of("inner", "outer");
    let inner = spans.find("inner");
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let inside = out.lines().find(|l| l.contains("inside")).unwrap();
    assert!(
        inside.starts_with(&format!(
            "trace_id={} span_id={} ",
            inner.span_context.trace_id(),
            inner.span_context.span_id()
        )),
        "{inside}"
    );
    let outside = out.lines().find(|l| l.contains("outside")).unwrap();
    assert!(!outside.contains("trace_id="), "{outside}");
}

fn json_lines(filter: &str, f: impl FnOnce()) -> (Vec<serde_json::Value>, TestTracing) {
    let t = TestTracing::new();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::registry()
        .with(env_filter(Some(filter)).unwrap())
        .with(otel_layer(t.tracer()))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .fmt_fields(JsonFields::new())
                .event_format(JsonWithTraceIds::default()),
        );
    tracing::subscriber::with_default(subscriber, f);
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (lines, t)
}

#[test]
fn every_json_line_parses_and_in_span_lines_carry_the_span_ids() {
    let (lines, t) = json_lines("info", || {
        tracing::info!(answer = 42, "outside");
        tracing::info_span!("outer", tenant = "t\"1").in_scope(|| {
            tracing::info!(quote = "a \"quoted\" {brace}", "inside");
        });
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    let outside = &lines[0];
    assert_eq!(outside["fields"]["message"], "outside");
    assert_eq!(outside["fields"]["answer"], 42);
    assert!(outside.get("trace_id").is_none(), "{outside}");
    let inside = &lines[1];
    let outer = t.spans().find("outer").span_context.clone();
    assert_eq!(inside["trace_id"], outer.trace_id().to_string());
    assert_eq!(inside["span_id"], outer.span_id().to_string());
    assert_eq!(inside["fields"]["quote"], "a \"quoted\" {brace}");
    assert_eq!(inside["span"]["name"], "outer");
    assert_eq!(inside["level"], "INFO");
}

/// Lines inside a bridge span show no internal span name (text and JSON, through the
/// `Builder`), carry the ids of the span it stands for, and become that span's events.
#[test]
fn log_lines_inside_a_bridge_name_no_internal_span() {
    use crate::config::LogFormat;
    use opentelemetry::trace::SpanKind;
    for format in [LogFormat::Text, LogFormat::Json] {
        let t = TestTracing::new();
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = Builder::new()
            .with_format(format)
            .with_writer(move || writer.clone())
            .build();
        let cx = crate::span::start_in(
            &t.tracer(),
            &opentelemetry::Context::new(),
            "GET /orders",
            SpanKind::Server,
            [],
        );
        tracing::subscriber::with_default(subscriber, || {
            let bridge = {
                let _active = cx.clone().attach();
                bridge_span()
            };
            let _active = cx.clone().attach();
            let _entered = bridge.enter();
            tracing::info!(order = 7, "in the bridge");
        });
        cx.span().end();
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        for internal in [BRIDGE_SPAN_NAME, BRIDGE_TARGET] {
            assert!(!out.contains(internal), "{format:?}: {out}");
        }
        let spans = t.spans();
        let server = spans.find("GET /orders");
        let ids = (
            server.span_context.trace_id().to_string(),
            server.span_context.span_id().to_string(),
        );
        match format {
            LogFormat::Json => {
                let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
                assert_eq!(line["trace_id"], ids.0);
                assert_eq!(line["span_id"], ids.1);
                assert!(
                    line.get("span").is_none() && line.get("spans").is_none(),
                    "{line}"
                );
            }
            _ => assert!(
                out.starts_with(&format!("trace_id={} span_id={} ", ids.0, ids.1)),
                "{out}"
            ),
        }
        // tracing-opentelemetry names an event after its message.
        let names: Vec<&str> = server.events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(names, ["in the bridge"], "{format:?}");
    }
}

/// The filter leaves the `tracing` spans around a bridge in the line: an `#[instrument]`
/// span outside it, and one inside it (a child of the span it stands for).
#[test]
fn log_lines_keep_the_user_spans_around_a_bridge() {
    use opentelemetry::trace::SpanKind;
    let t = TestTracing::new();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::registry()
        .with(otel_layer(t.tracer()))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .event_format(WithTraceIds(Format::default()))
                .with_filter(filter_fn(not_bridge)),
        );
    tracing::subscriber::with_default(subscriber, || {
        let cx = crate::span::start_in(
            &t.tracer(),
            &opentelemetry::Context::new(),
            "workflow.execute",
            SpanKind::Internal,
            [],
        );
        tracing::info_span!("outer").in_scope(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(crate::span::in_span(cx, async {
                tracing::info!("in the workflow");
                tokio::task::yield_now().await;
                tracing::info_span!("inner").in_scope(|| tracing::info!("in inner"));
            }));
        });
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(!out.contains(BRIDGE_SPAN_NAME), "{out}");
    let workflow_line = out.lines().find(|l| l.contains("in the workflow")).unwrap();
    assert!(workflow_line.contains(" outer: "), "{workflow_line}");
    let inner_line = out.lines().find(|l| l.contains("in inner")).unwrap();
    assert!(inner_line.contains(" outer:inner: "), "{inner_line}");
    let spans = t.spans();
    spans.assert_child_of("inner", "workflow.execute");
    let workflow = spans.find("workflow.execute");
    assert_eq!(workflow.events.events[0].name, "in the workflow");
    assert_eq!(workflow.events.len(), 1, "{:?}", workflow.events);
    let inner = spans.find("inner");
    assert_eq!(inner.events.events[0].name, "in inner");
}

#[test]
fn rust_log_warn_silences_info() {
    let (lines, t) = json_lines("warn", || {
        tracing::info!("quiet");
        tracing::info_span!("not recorded").in_scope(|| tracing::warn!("loud"));
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["fields"]["message"], "loud");
    assert!(t.spans().is_empty());
    assert_eq!(
        env_filter(Some("warn")).unwrap().max_level_hint(),
        Some(LevelFilter::WARN)
    );
}

#[test]
fn rust_log_defaults_to_info_and_rejects_nonsense() {
    for unset in [None, Some(""), Some("  ")] {
        assert_eq!(
            env_filter(unset).unwrap().max_level_hint(),
            Some(LevelFilter::INFO)
        );
    }
    assert_eq!(
        env_filter(Some("info,my_crate=debug"))
            .unwrap()
            .max_level_hint(),
        Some(LevelFilter::DEBUG)
    );
    let err = env_filter(Some("my_crate=loud")).unwrap_err();
    assert_eq!(err.errors()[0].variable, "RUST_LOG");
    assert_eq!(err.errors()[0].value, "my_crate=loud");
}

#[test]
fn log_format_parses_text_and_json_and_names_a_bad_value() {
    assert_eq!(LogFormat::from_value(None).unwrap(), LogFormat::Text);
    assert_eq!(LogFormat::from_value(Some("")).unwrap(), LogFormat::Text);
    assert_eq!(
        LogFormat::from_value(Some("JSON")).unwrap(),
        LogFormat::Json
    );
    assert_eq!(
        LogFormat::from_value(Some(" text ")).unwrap(),
        LogFormat::Text
    );
    let err = LogFormat::from_value(Some("yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid tracing configuration: TRACING_LOG_FORMAT=\"yaml\": expected text or json"
    );
}

#[test]
fn the_builder_writes_json_without_colour_to_its_writer() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = Builder::new()
        .with_format(LogFormat::Json)
        .with_ansi(true)
        .with_writer(move || writer.clone())
        .build();
    tracing::subscriber::with_default(subscriber, || {
        tracing::debug!("filtered");
        tracing::info!("kept");
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
}

#[test]
fn text_lines_written_to_a_file_have_no_colour_codes() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = Builder::new().with_writer(move || writer.clone()).build();
    tracing::subscriber::with_default(subscriber, || tracing::warn!(k = 1, "plain"));
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("WARN") && out.contains("plain"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
}
