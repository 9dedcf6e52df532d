//! The demo binary's log lines in each `TRACING_LOG_FORMAT`.

use std::process::Command;

fn run_demo(vars: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    // No trace tree on stderr (the console exporter), no collector: only log lines remain.
    cmd.env_remove("RUST_LOG")
        .env_remove("TRACING_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("TRACING_EXPORTER", "none");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the demo runs");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 logs");
    assert!(out.status.success(), "demo failed: {stderr}");
    stderr
}

#[test]
fn json_format_makes_every_line_a_json_object_with_ids_inside_spans() {
    let stderr = run_demo(&[("TRACING_LOG_FORMAT", "json")]);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{stderr}");
    let in_span = lines
        .iter()
        .find(|l| l["fields"]["message"] == "executing workflow")
        .unwrap_or_else(|| panic!("no handler line: {stderr}"));
    let trace_id = in_span["trace_id"].as_str().expect("trace_id");
    let span_id = in_span["span_id"].as_str().expect("span_id");
    assert_eq!(trace_id.len(), 32, "{in_span}");
    assert_eq!(span_id.len(), 16, "{in_span}");
    let outside = lines
        .iter()
        .find(|l| l["fields"]["message"] == "API answered")
        .unwrap_or_else(|| panic!("no main line: {stderr}"));
    assert!(outside.get("trace_id").is_none(), "{outside}");
}

#[test]
fn text_format_prefixes_in_span_lines_and_rust_log_warn_silences_info() {
    let text = run_demo(&[]);
    let line = text
        .lines()
        .find(|l| l.contains("executing workflow"))
        .unwrap_or_else(|| panic!("no handler line: {text}"));
    assert!(line.starts_with("trace_id="), "{line}");
    assert!(!text.contains('\u{1b}'), "colour codes in a pipe: {text:?}");

    let quiet = run_demo(&[("RUST_LOG", "warn")]);
    assert!(!quiet.contains(" INFO "), "{quiet}");
}

#[test]
fn an_invalid_log_format_names_the_variable_and_value() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env("TRACING_LOG_FORMAT", "yaml")
        .env("TRACING_EXPORTER", "none")
        .output()
        .expect("the demo runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TRACING_LOG_FORMAT") && stderr.contains("yaml"),
        "{stderr}"
    );
}
