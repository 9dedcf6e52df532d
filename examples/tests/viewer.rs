//! The trace viewer, end to end: the demo runs as a process with `--viewer --serve`, two other
//! processes (`peer`) export OTLP/HTTP into the same trace, and headless Chromium, driven over
//! WebDriver by chromedriver, reads the page: the trace list, the waterfall's nesting and bar
//! widths, a click that shows attributes, the error mark, and a `<script>` User-Agent shown as
//! text. The HTTP-level checks (foreign `Host`, CSP, malformed OTLP, eviction and RSS after
//! 100 000 spans) need no browser.
//!
//! `scripts/test.sh` installs Debian's `chromium` and `chromium-driver`; without them the
//! browser test skips with a message, except under `CI=true`, where it fails.
//!
//! The WebDriver client is the handful of JSON commands below (new session, navigate, find,
//! click, execute script): a crate such as fantoccini would bring its own HTTP stack for six
//! calls.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const XSS: &str = "<script>window.__pwned=1</script><b>bold?</b>";

/// One HTTP/1.1 exchange on a fresh connection: (status, head, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    // Reads the head, then Content-Length bytes (chromedriver keeps connections open), else to
    // the end.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed before the head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    match length {
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the connection closed before the body");
                body.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut body).unwrap();
        }
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, _, body) = http(addr, "GET", path, &addr.to_string(), &[], b"");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// A command with none of the test runner's tracing settings.
fn command(bin: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRACING_") || key.starts_with("OTEL_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The demo with `--viewer` (and more flags), its stderr read on a thread; killed on drop.
struct Demo {
    child: Child,
    viewer: SocketAddr,
    api: Option<String>,
    _lines: std::thread::JoinHandle<String>,
}

impl Demo {
    fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut env = env.to_vec();
        env.push(("TRACING_VIEWER_ADDR", "127.0.0.1:0".into()));
        let mut child = command(env!("CARGO_BIN_EXE_demo"), &env)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let lines = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("trace viewer: http") || line.contains("curl -X POST") {
                    let _ = tx.send(line.clone());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let url = |line: &str| {
            line.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap()
                .to_owned()
        };
        let (mut viewer, mut api) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while viewer.is_none() || (args.contains(&"--serve") && api.is_none()) {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the demo prints the viewer's URL");
            if line.contains("trace viewer: http") {
                let u = url(&line);
                viewer = Some(
                    u.trim_start_matches("http://")
                        .trim_end_matches('/')
                        .parse()
                        .unwrap(),
                );
            } else {
                api = Some(url(&line));
            }
        }
        Self {
            child,
            viewer: viewer.unwrap(),
            api,
            _lines: lines,
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 100 ms for up to `limit`.
fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The trace whose root is the journey's API request, with every span (10) arrived.
fn journey_trace(viewer: SocketAddr) -> Value {
    eventually(Duration::from_secs(20), || {
        let list = get_json(viewer, "/api/traces?name=workflow.execute");
        let id = list["traces"]
            .as_array()?
            .iter()
            .find(|t| t["root"] == "POST /api/v1/workflows/{id}/execute")?["trace_id"]
            .as_str()?
            .to_owned();
        let trace = get_json(viewer, &format!("/api/traces/{id}"));
        (trace["spans"].as_array()?.len() >= 10).then_some(trace)
    })
    .expect("the journey's trace in the viewer")
}

fn span<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

/// Runs `peer` (another process) exporting OTLP/HTTP to the viewer, inside `trace`.
fn peer(viewer: SocketAddr, service: &str, traceparent: &str, error: bool) {
    let mut cmd = command(
        env!("CARGO_BIN_EXE_peer"),
        &[
            ("TRACING_SERVICE_NAME", service.into()),
            ("TRACING_ENDPOINT", format!("http://{viewer}/v1/traces")),
            ("TRACING_EXPORTER", "otlp".into()),
        ],
    );
    cmd.args(["--traceparent", traceparent]);
    if error {
        cmd.arg("--error");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The demo's trace, two other processes in it, an error, a `<script>` User-Agent: what the
/// browser test reads. Returns (the journey's trace id, the XSS request's trace id).
fn populate(demo: &Demo) -> (String, String) {
    let viewer = demo.viewer;
    let journey = journey_trace(viewer);
    let id = journey["trace_id"].as_str().unwrap().to_owned();
    let root = span(&journey, "POST /api/v1/workflows/{id}/execute")["span_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let traceparent = format!("00-{id}-{root}-01");
    peer(viewer, "inventory", &traceparent, false);
    peer(viewer, "billing", &traceparent, true);

    // A request of the user's own whose User-Agent holds a script.
    let api_url = demo.api.as_deref().expect("--serve prints the API URL");
    let rest = api_url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let api: SocketAddr = host.parse().unwrap();
    let (status, _, _) = http(api, "POST", path, host, &[("User-Agent", XSS)], b"");
    assert_eq!(status, 200);
    let xss = eventually(Duration::from_secs(10), || {
        let list = get_json(viewer, "/api/traces?attr=user_agent.original");
        list["traces"].as_array()?.iter().find_map(|t| {
            let tid = t["trace_id"].as_str()?;
            let trace = get_json(viewer, &format!("/api/traces/{tid}"));
            trace["spans"]
                .as_array()?
                .iter()
                .any(|s| {
                    s["attributes"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|kv| kv[1] == XSS))
                })
                .then(|| tid.to_owned())
        })
    })
    .expect("the XSS request's trace");
    (id, xss)
}

#[test]
fn other_processes_join_the_demos_trace_and_the_viewer_is_safe() {
    let demo = Demo::start(&["--viewer", "--serve"], &[]);
    let viewer = demo.viewer;
    let (id, _) = populate(&demo);

    // Two other processes, one trace: three services, the peers' spans under the demo's root.
    let trace = eventually(Duration::from_secs(10), || {
        let t = get_json(viewer, &format!("/api/traces/{id}"));
        (t["spans"].as_array()?.len() == 14).then_some(t)
    })
    .unwrap_or_else(|| get_json(viewer, &format!("/api/traces/{id}")));
    let services: std::collections::BTreeSet<&str> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["billing", "gorax-demo", "inventory"],
        "{trace:#}"
    );
    let root = span(&trace, "POST /api/v1/workflows/{id}/execute")["span_id"].clone();
    let handles: Vec<&Value> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "peer.handle")
        .collect();
    assert_eq!(handles.len(), 2);
    assert!(handles.iter().all(|h| h["parent_span_id"] == root));
    let list = get_json(viewer, &format!("/api/traces?trace_id={id}"));
    assert_eq!(list["traces"][0]["errors"], 1, "{list:#}");

    // A foreign Host (DNS rebinding) gets no data; the CSP is on every answer; no CORS.
    let (status, head, body) = http(
        viewer,
        "GET",
        "/api/traces",
        "rebind.attacker.example",
        &[("Origin", "http://rebind.attacker.example")],
        b"",
    );
    assert_eq!(status, 421);
    assert!(!String::from_utf8_lossy(&body).contains(&id));
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-security-policy: default-src 'none'"));
    assert!(!lower.contains("access-control-allow"), "{head}");
    let (status, head, _) = http(
        viewer,
        "GET",
        "/",
        &format!("localhost:{}", viewer.port()),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );

    // Malformed OTLP: 400, counted, and the viewer goes on.
    let host = viewer.to_string();
    for (ct, body) in [
        ("application/x-protobuf", &b"\xff\xff\xff\xff not protobuf"[..]),
        ("application/json", &b"{\"resourceSpans\": [{"[..]),
        (
            "application/json",
            &br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"0102030405060708","name":"x"}]}]}]}"#[..],
        ),
    ] {
        let (status, _, _) = http(viewer, "POST", "/v1/traces", &host, &[("Content-Type", ct)], body);
        assert_eq!(status, 400, "{ct}");
    }
    // A well-formed JSON request from "curl" is taken.
    let json_body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "curl"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "from-json", "kind": 2,
            "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
            "attributes": [{"key": "tenant_id", "value": {"stringValue": "tenant-123"}}]
        }]}]
    }]});
    let (status, _, _) = http(
        viewer,
        "POST",
        "/v1/traces",
        &host,
        &[("Content-Type", "application/json")],
        json_body.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let list = get_json(viewer, "/api/traces?service=curl");
    assert_eq!(list["traces"][0]["root"], "from-json");
    assert_eq!(list["stats"]["rejected_requests"], 3);

    // The viewer's own requests are never traced: no span of its API in the store.
    let all = get_json(viewer, "/api/traces?name=/api/traces");
    assert_eq!(all["traces"].as_array().unwrap().len(), 0, "{all:#}");
}

/// Fills the viewer, with its default bounds, with 100 000 spans over OTLP/HTTP (1000 traces of
/// 100 spans, about 50 MB by the viewer's accounting): the store stays within its byte bound,
/// evictions are counted and shown, and the process's RSS grows by no more than the README's
/// figure (twice the byte bound plus 16 MiB of allocator slack).
#[test]
fn memory_stays_bounded_after_100_000_spans() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    // The defaults (gorax_trace::config::ViewerSettings).
    const MAX_BYTES: usize = 32 << 20;
    let demo = Demo::start(&["--viewer"], &[]);
    let viewer = demo.viewer;
    journey_trace(viewer);
    let rss = || -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", demo.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap()
            * 1024
    };
    let before = rss();
    let started = Instant::now();
    let s = |v: &str| AnyValue {
        value: Some(any_value::Value::StringValue(v.to_owned())),
    };
    let kv = |key: &str, value: AnyValue| KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..KeyValue::default()
    };
    let (batches, per_batch) = (200, 500);
    for b in 0..batches {
        let spans = (0..per_batch)
            .map(|i: u32| {
                let n = b * per_batch + i;
                let mut trace_id = [0u8; 16];
                trace_id[..4].copy_from_slice(&(n / 100).to_be_bytes());
                trace_id[15] = 1;
                let mut span_id = [0u8; 8];
                span_id[..4].copy_from_slice(&n.to_be_bytes());
                span_id[7] = 1;
                Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    name: format!("GET /api/v1/items/{n}"),
                    kind: 2,
                    start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n) * 1000,
                    end_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n) * 1000 + 500,
                    attributes: vec![
                        kv("http.request.method", s("GET")),
                        kv("url.path", s(&format!("/api/v1/items/{n}?page=1&size=50"))),
                        kv("tenant_id", s("tenant-123")),
                    ],
                    ..Span::default()
                }
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s("load"))],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let (status, _, body) = http(
            viewer,
            "POST",
            "/v1/traces",
            &viewer.to_string(),
            &[("Content-Type", "application/x-protobuf")],
            &request.encode_to_vec(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "bounded in time"
        );
    }
    let after = rss();
    let list = get_json(viewer, "/api/traces?service=none");
    let stats = &list["stats"];
    eprintln!(
        "100000 spans: store {} bytes of {} ({} traces, {} spans held; {} traces evicted); RSS {} -> {} KiB",
        stats["bytes"],
        MAX_BYTES,
        stats["traces"],
        stats["spans"],
        stats["evicted_traces"],
        before / 1024,
        after / 1024
    );
    assert!(stats["bytes"].as_u64().unwrap() <= MAX_BYTES as u64);
    assert!(stats["evicted_traces"].as_u64().unwrap() > 0);
    assert!(
        after.saturating_sub(before) <= 2 * MAX_BYTES + (16 << 20),
        "RSS grew by {} bytes",
        after.saturating_sub(before)
    );
}

// ---------------------------------------------------------------------------------------------
// The browser.

/// Where Chromium and chromedriver are, or why the browser test cannot run.
fn browser() -> Result<(String, String), String> {
    let chromium =
        std::env::var("GORAX_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver =
        std::env::var("GORAX_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    for path in [&chromium, &driver] {
        if !std::path::Path::new(path).exists() {
            return Err(format!(
                "{path} is missing (apt-get install chromium chromium-driver; scripts/test.sh does)"
            ));
        }
    }
    Ok((chromium, driver))
}

/// A chromedriver process and one headless Chromium session; both end on drop.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    fn start(chromium: &str, driver: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        eventually(Duration::from_secs(20), || TcpStream::connect(addr).ok())
            .expect("chromedriver listens");
        let profile = std::env::temp_dir().join(format!(
            "gorax-viewer-chromium-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let mut browser = Self {
            driver,
            addr,
            session: String::new(),
            _profile: TempDir(profile.clone()),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let created = browser.call("POST", "/session", &caps);
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created:#}"))
            .to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if method == "POST" {
            body.to_string().into_bytes()
        } else {
            Vec::new()
        };
        let (_, _, out) = http(
            self.addr,
            method,
            path,
            &self.addr.to_string(),
            &[("Content-Type", "application/json")],
            &body,
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        v["value"].clone()
    }

    fn cmd(&self, path: &str, body: Value) -> Value {
        let v = self.call("POST", &format!("/session/{}{path}", self.session), &body);
        if let Some(err) = v.get("error") {
            panic!("WebDriver {path}: {err} {}", v["message"]);
        }
        v
    }

    fn goto(&self, url: &str) {
        self.cmd("/url", json!({ "url": url }));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd("/execute/sync", json!({ "script": script, "args": [] }))
    }

    /// Clicks the element `css` selects (a real pointer click through WebDriver).
    fn click(&self, css: &str) {
        let found = self.cmd("/element", json!({ "using": "css selector", "value": css }));
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        self.cmd(&format!("/element/{id}/click"), json!({}));
    }

    /// Waits (bounded) until `script` returns something truthy, and returns it.
    fn wait_for(&self, script: &str) -> Value {
        eventually(Duration::from_secs(15), || {
            let v = self.js(script);
            (!v.is_null() && v != false && v != 0).then_some(v)
        })
        .unwrap_or_else(|| panic!("timed out waiting for: {script}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call(
                "DELETE",
                &format!("/session/{}", self.session),
                &Value::Null,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn chromium_shows_the_demos_trace_as_a_waterfall() {
    let (chromium, driver) = match browser() {
        Ok(found) => found,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI needs the browser test: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED chromium_shows_the_demos_trace_as_a_waterfall: {why}");
            return;
        }
    };
    let demo = Demo::start(&["--viewer", "--serve"], &[]);
    let (id, xss) = populate(&demo);
    let trace = eventually(Duration::from_secs(10), || {
        let t = get_json(demo.viewer, &format!("/api/traces/{id}"));
        (t["spans"].as_array()?.len() == 14).then_some(t)
    })
    .expect("14 spans: the demo's 10 and two per peer");
    let browser = Browser::start(&chromium, &driver);
    let base = format!("http://{}/", demo.viewer);
    browser.goto(&base);

    // The list shows the journey's trace, with its error mark (the billing peer failed).
    let row = format!("#traces tbody tr[data-trace-id='{id}']");
    let text = browser.wait_for(&format!(
        "const r = document.querySelector(\"{row}\"); return r && r.textContent;"
    ));
    let text = text.as_str().unwrap();
    assert!(
        text.contains("POST /api/v1/workflows/{id}/execute"),
        "{text}"
    );
    assert!(text.contains("⚠ 1 error"), "{text}");
    assert!(
        browser
            .js("return document.getElementById('stats').textContent")
            .as_str()
            .unwrap()
            .contains("evicted: 0 traces")
    );

    // Click: the waterfall shows every span, children under their parents.
    browser.click(&row);
    let rows = browser.wait_for(
        "const rows = [...document.querySelectorAll('#waterfall .row')];
         if (rows.length < 14) return null;
         return rows.map(r => ({
           id: r.dataset.spanId, parent: r.dataset.parentSpanId, depth: +r.dataset.depth,
           duration: +r.dataset.durationNs, error: r.classList.contains('error'),
           text: r.querySelector('.label').textContent,
           bar: r.querySelector('.bar').getBoundingClientRect().width,
           track: r.querySelector('.track').getBoundingClientRect().width,
         }));",
    );
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), trace["spans"].as_array().unwrap().len());
    let total = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["offset_ns"].as_f64().unwrap() + s["duration_ns"].as_f64().unwrap())
        .fold(0.0, f64::max);
    for (i, r) in rows.iter().enumerate() {
        let s = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["span_id"] == r["id"])
            .expect("a row per span");
        // Nesting: the parent is an earlier row, one level up; the root is at depth 0.
        match s["parent_span_id"].as_str() {
            Some(parent) => {
                let p = rows[..i]
                    .iter()
                    .find(|p| p["id"] == parent)
                    .unwrap_or_else(|| panic!("{} before its parent", s["name"]));
                assert_eq!(
                    r["depth"].as_i64().unwrap(),
                    p["depth"].as_i64().unwrap() + 1
                );
            }
            None => assert_eq!(r["depth"], 0),
        }
        assert!(
            r["text"]
                .as_str()
                .unwrap()
                .contains(s["name"].as_str().unwrap())
        );
        assert!(
            r["text"]
                .as_str()
                .unwrap()
                .contains(s["service"].as_str().unwrap())
        );
        // Bar width proportional to the duration (within a pixel and a half; min 1 px).
        let want = r["track"].as_f64().unwrap() * s["duration_ns"].as_f64().unwrap() / total;
        let got = r["bar"].as_f64().unwrap();
        assert!(
            (got - want.max(1.0)).abs() <= 1.5,
            "{}: bar {got} px, expected {want} px",
            s["name"]
        );
        assert_eq!(r["error"], s["status"] == "error", "{}", s["name"]);
    }
    // The whole tree: the demo's spans by name, nested as the demo makes them.
    let depth_of = |name: &str| {
        rows.iter()
            .find(|r| r["text"].as_str().unwrap().ends_with(name))
            .map(|r| r["depth"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no row {name}"))
    };
    assert_eq!(depth_of("POST /api/v1/workflows/{id}/execute"), 0);
    assert_eq!(depth_of("workflow.execute"), 1);
    assert_eq!(depth_of("send gorax-executions"), 2);
    assert_eq!(depth_of("process gorax-executions"), 3);
    assert_eq!(depth_of("POST /api/v1/steps/{node}"), 4);
    let notify: Vec<i64> = rows
        .iter()
        .filter(|r| {
            r["text"]
                .as_str()
                .unwrap()
                .ends_with("gorax.notify.v1.Notifier/Notify")
        })
        .map(|r| r["depth"].as_i64().unwrap())
        .collect();
    assert_eq!(notify, [5, 6]);
    assert_eq!(depth_of("peer.handle"), 1);
    // The error span is marked.
    assert!(rows.iter().any(|r| r["error"] == true
        && r["text"].as_str().unwrap().contains("peer.work")
        && r["text"].as_str().unwrap().contains("⚠")));

    // Click a span: its attributes show.
    let producer = span(&trace, "send gorax-executions")["span_id"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.click(&format!("#waterfall .row[data-span-id='{producer}']"));
    let attrs = browser.wait_for(
        "const t = document.getElementById('detail-attributes'); return t && t.textContent;",
    );
    assert!(
        attrs
            .as_str()
            .unwrap()
            .contains("messaging.destination.name"),
        "{attrs}"
    );
    assert!(
        attrs.as_str().unwrap().contains("gorax-executions"),
        "{attrs}"
    );
    let status = browser.js("return document.getElementById('detail-status').textContent");
    assert_eq!(status, "status: unset");

    // "Copy as JSON": the trace, and the subtree of the selected span (the producer and below).
    browser.click("#copy-trace");
    let copied = browser.wait_for("return document.getElementById('copied').value;");
    let copied: Value = serde_json::from_str(copied.as_str().unwrap()).unwrap();
    assert_eq!(copied["trace_id"], id.as_str());
    assert_eq!(copied["spans"].as_array().unwrap().len(), 14);
    browser.click("#copy-subtree");
    let copied = browser.wait_for(
        "const v = document.getElementById('copied').value; \
         return JSON.parse(v).spans.length < 14 ? v : null;",
    );
    let copied: Value = serde_json::from_str(copied.as_str().unwrap()).unwrap();
    let names: Vec<&str> = copied["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "send gorax-executions",
            "process gorax-executions",
            "workflow.step.execute",
            "gorax.notify.v1.Notifier/Notify",
            "gorax.notify.v1.Notifier/Notify",
        ]
    );

    // A trace that arrives later shows up without a reload (the page polls).
    let late = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "late"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "name": "arrived-later", "kind": 1,
            "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712660100000000"
        }]}]
    }]});
    let (status, _, _) = http(
        demo.viewer,
        "POST",
        "/v1/traces",
        &demo.viewer.to_string(),
        &[("Content-Type", "application/json")],
        late.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let late_row = browser.wait_for(
        "const r = document.querySelector(\"#traces tbody tr[data-trace-id='0af7651916cd43dd8448eb211c80319c']\");
         return r && r.textContent;",
    );
    assert!(late_row.as_str().unwrap().contains("arrived-later"));

    // A permalink opens the XSS request's trace; the `<script>` User-Agent is text, never run.
    browser.goto("about:blank");
    browser.goto(&format!("{base}#trace={xss}"));
    let server = browser.wait_for(&format!(
        "if (!document.getElementById('trace-title').textContent.includes('{xss}')) return null;
         const r = [...document.querySelectorAll('#waterfall .row')].find(r => r.dataset.depth === '0');
         return r && r.dataset.spanId;"
    ));
    browser.click(&format!(
        "#waterfall .row[data-span-id='{}']",
        server.as_str().unwrap()
    ));
    let shown = browser.wait_for(
        "const t = document.getElementById('detail-attributes');
         return t && [...t.querySelectorAll('td.value')].map(td => td.textContent)
           .find(v => v.includes('pwned'));",
    );
    assert_eq!(shown, XSS);
    let safe = browser.js(
        "return [typeof window.__pwned, document.querySelectorAll('script').length,
                 document.querySelectorAll('#detail b').length];",
    );
    assert_eq!(safe, json!(["undefined", 1, 0]));
}

/// A second process with the viewer on the same address: a warning naming the address and how
/// to export to the first instead, never an init error (the demo runs and exits 0); then it does
/// so, and its trace shows in the first viewer.
#[test]
fn a_second_viewer_on_the_same_address_warns_and_can_export_to_the_first() {
    let first = Demo::start(&["--viewer"], &[]);
    let taken = first.viewer;
    let out = command(
        env!("CARGO_BIN_EXE_demo"),
        &[("TRACING_VIEWER_ADDR", taken.to_string())],
    )
    .arg("--viewer")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("in use"))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(warning.contains(&taken.to_string()), "{warning}");
    assert!(
        warning.contains(&format!("TRACING_ENDPOINT=http://{taken}/v1/traces")),
        "{warning}"
    );
    assert!(
        stderr.contains("the trace viewer is not serving"),
        "{stderr}"
    );

    // As the warning says: the second demo exports to the first one's viewer.
    let out = command(
        env!("CARGO_BIN_EXE_demo"),
        &[
            ("TRACING_EXPORTER", "otlp".into()),
            ("TRACING_ENDPOINT", format!("http://{taken}/v1/traces")),
            ("TRACING_METRICS_ENABLED", "false".into()),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let journeys = eventually(Duration::from_secs(10), || {
        let list = get_json(taken, "/api/traces?name=workflow.execute");
        let n = list["traces"].as_array()?.len();
        (n == 2).then_some(n)
    });
    assert_eq!(journeys, Some(2), "the first demo's trace and the second's");
}
