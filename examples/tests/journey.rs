//! The journey, black-box: the demo and the trace-context participant run as processes,
//! configured only through the environment, against collectors started here on 127.0.0.1 that
//! take only traces (404 / `UNIMPLEMENTED` for metrics, like Jaeger), throttle (429 with
//! `Retry-After`), never answer, are not there, or need TLS with a CA made in the test. Each case
//! asserts the exit status, the elapsed time, what arrived (every span of the journey with its
//! parent links) and what was printed.
//!
//! Runs in every build: `cargo test -p gorax-examples --test journey` (the README's default
//! features), `--features grpc,tls` (the gRPC and TLS cases), and `--all-features` from
//! `scripts/test.sh`. Every later capability adds its case here.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// One span as the collector received it.
#[derive(Clone, Debug)]
struct Span {
    service: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    name: String,
    /// `messaging.system`, when the span has it.
    system: Option<String>,
    /// End minus start, in nanoseconds.
    duration_ns: u64,
    /// `gorax.http.response.body.outcome`, when recorded.
    outcome: Option<String>,
    /// Every attribute, its value as text (strings as they are, other values as numbers or
    /// `Debug`).
    attributes: Vec<(String, String)>,
}

/// The string value of `key` among `attributes`, if present.
fn string_attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v) => {
                Some(v.clone())
            }
            _ => None,
        }
    })
}

/// An attribute value as text: a string as it is, an integer or a bool in decimal, anything
/// else in `Debug` form.
fn value_text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// What a collector saw: spans, and every request with its path and arrival time.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<SeenInner>>);

#[derive(Default)]
struct SeenInner {
    spans: Vec<Span>,
    records: Vec<Record>,
    /// Every request body as received (to search for planted secrets).
    raw: Vec<u8>,
    requests: Vec<(String, Instant, u16)>,
}

impl Seen {
    fn record_spans(&self, request: ExportTraceServiceRequest) {
        self.0
            .lock()
            .unwrap()
            .raw
            .extend_from_slice(&request.encode_to_vec());
        let spans = request.resource_spans.into_iter().flat_map(|rs| {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            rs.scope_spans
                .into_iter()
                .flat_map(|ss| ss.spans)
                .map(move |s| Span {
                    service: service.clone(),
                    system: string_attribute(&s.attributes, "messaging.system"),
                    duration_ns: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano),
                    outcome: string_attribute(&s.attributes, "gorax.http.response.body.outcome"),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
                        .collect(),
                    trace_id: s.trace_id,
                    span_id: s.span_id,
                    parent: s.parent_span_id,
                    name: s.name,
                })
        });
        self.0.lock().unwrap().spans.extend(spans);
    }

    fn record_logs(
        &self,
        request: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest,
    ) {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let text = |v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>| match v
            .and_then(|v| v.value.as_ref())
        {
            Some(Value::StringValue(s)) => s.clone(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let mut inner = self.0.lock().unwrap();
        inner.raw.extend_from_slice(&request.encode_to_vec());
        for r in request
            .resource_logs
            .into_iter()
            .flat_map(|rl| rl.scope_logs)
            .flat_map(|sl| sl.log_records)
        {
            inner.records.push(Record {
                body: text(r.body.as_ref()),
                severity: r.severity_text.clone(),
                attributes: r
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                    .collect(),
                trace_id: r.trace_id,
                span_id: r.span_id,
                flags: r.flags,
            });
        }
    }

    fn records(&self) -> Vec<Record> {
        self.0.lock().unwrap().records.clone()
    }

    /// The bytes around the first `needle` received (for a failure message).
    fn around(&self, needle: &str) -> String {
        let inner = self.0.lock().unwrap();
        match inner
            .raw
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
        {
            Some(i) => String::from_utf8_lossy(
                &inner.raw[i.saturating_sub(200)..(i + 100).min(inner.raw.len())],
            )
            .into_owned(),
            None => String::new(),
        }
    }

    /// Whether any request body held `needle`.
    fn received_bytes(&self, needle: &str) -> bool {
        let inner = self.0.lock().unwrap();
        inner
            .raw
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    fn record_request(&self, path: &str, status: u16) {
        self.0
            .lock()
            .unwrap()
            .requests
            .push((path.to_owned(), Instant::now(), status));
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().spans.clone()
    }

    fn requests(&self, path: &str) -> Vec<(Instant, u16)> {
        let inner = self.0.lock().unwrap();
        inner
            .requests
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, t, s)| (*t, *s))
            .collect()
    }
}

/// How an HTTP collector answers.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Takes traces; 404 for every other signal (Jaeger's OTLP/HTTP receiver).
    TracesOnly,
    /// The first request of each signal gets 429 with `Retry-After: N`; later ones are taken
    /// (metrics: 404 after that, as a traces-only backend).
    ThrottleFirst(u64),
    /// Takes traces but rejects one span of each request (`partial_success`).
    RejectOne,
    /// Takes every signal (an OpenTelemetry Collector): traces, metrics and logs.
    All,
}

/// One log record as the collector received it.
#[derive(Clone, Debug)]
struct Record {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    flags: u32,
    body: String,
    severity: String,
    attributes: Vec<(String, String)>,
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM; the CA is also written to a file
/// for `TRACING_CERTIFICATE`.
struct Pki {
    ca_file: std::path::PathBuf,
    cert: String,
    key: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let ca_file = std::env::temp_dir().join(format!(
            "gorax-journey-ca-{name}-{}.pem",
            std::process::id()
        ));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Self {
            ca_file,
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// An OTLP/HTTP collector on 127.0.0.1 (over TLS with `pki`) answering as `behaviour`.
fn http_collector(
    rt: &tokio::runtime::Runtime,
    behaviour: Behaviour,
    pki: Option<&Pki>,
) -> (Seen, SocketAddr) {
    let seen = Seen::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = pki.map(|pki| {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(pki.cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pki.key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let s = seen.clone();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let throttled: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (s, acceptor, throttled) = (s.clone(), acceptor.clone(), throttled.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (s, throttled) = (s.clone(), throttled.clone());
                        async move {
                            use http_body_util::BodyExt;
                            let path = req.uri().path().to_owned();
                            let bytes = req.into_body().collect().await?.to_bytes();
                            let first = throttled
                                .lock()
                                .unwrap()
                                .insert(path.clone(), true)
                                .is_none();
                            let (status, retry_after, body) = match (behaviour, path.as_str()) {
                                (Behaviour::ThrottleFirst(after), _) if first => {
                                    (429, Some(after), Vec::new())
                                }
                                (_, "/v1/traces") => {
                                    let request = ExportTraceServiceRequest::decode(bytes)
                                        .expect("an OTLP trace request");
                                    let n = request
                                        .resource_spans
                                        .iter()
                                        .flat_map(|rs| &rs.scope_spans)
                                        .map(|ss| ss.spans.len())
                                        .sum::<usize>();
                                    s.record_spans(request);
                                    let body = match behaviour {
                                        Behaviour::RejectOne if n > 0 => {
                                            ExportTraceServiceResponse {
                                                partial_success: Some(ExportTracePartialSuccess {
                                                    rejected_spans: 1,
                                                    error_message: "one too many".into(),
                                                }),
                                            }
                                            .encode_to_vec()
                                        }
                                        _ => Vec::new(),
                                    };
                                    (200, None, body)
                                }
                                (Behaviour::All, "/v1/logs") => {
                                    s.record_logs(
                                        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(bytes)
                                            .expect("an OTLP logs request"),
                                    );
                                    (200, None, Vec::new())
                                }
                                (Behaviour::All, _) => (200, None, Vec::new()),
                                _ => (404, None, Vec::new()),
                            };
                            s.record_request(&path, status);
                            let mut response = http::Response::new(http_body_util::Full::new(
                                hyper::body::Bytes::from(body),
                            ));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/x-protobuf"),
                            );
                            if let Some(after) = retry_after {
                                response
                                    .headers_mut()
                                    .insert(http::header::RETRY_AFTER, after.into());
                            }
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(a) => {
                        if let Ok(tls) = a.accept(tcp).await {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                            .await;
                    }
                }
            });
        }
    });
    (seen, addr)
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Seen {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record_request("TraceService/Export", 0);
        self.record_spans(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService for Seen {
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest,
        >,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse>,
        tonic::Status,
    > {
        self.record_request("LogsService/Export", 0);
        self.record_logs(request.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

/// An OTLP/gRPC collector on 127.0.0.1 (over TLS with `pki`) with the trace service only:
/// tonic answers `UNIMPLEMENTED` for metrics, as Jaeger does; with `logs`, the logs service too.
fn grpc_collector(rt: &tokio::runtime::Runtime, pki: Option<&Pki>) -> (Seen, SocketAddr) {
    grpc_collector_with(rt, pki, false)
}

fn grpc_collector_with(
    rt: &tokio::runtime::Runtime,
    pki: Option<&Pki>,
    logs: bool,
) -> (Seen, SocketAddr) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let seen = Seen::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut builder = tonic::transport::Server::builder();
    if let Some(pki) = pki {
        use tonic::transport::{Identity, ServerTlsConfig};
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(&pki.cert, &pki.key)))
            .unwrap();
    }
    let service = TraceServiceServer::new(seen.clone());
    let logs = logs.then(|| {
        opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsServiceServer::new(
            seen.clone(),
        )
    });
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let _ = builder
            .add_service(service)
            .add_optional_service(logs)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (seen, addr)
}

/// A collector that accepts connections and never answers (held until the test ends).
fn silent_collector() -> (std::thread::JoinHandle<()>, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (thread, addr)
}

/// A port nobody listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The trace-context participant started as a process with `env`, listening (checked) on a free
/// port of 127.0.0.1; its port, and a thread that collects its stderr until it exits.
fn participant(env: &[(&str, String)]) -> (Child, u16, std::thread::JoinHandle<String>) {
    let port = closed_port().port();
    let mut child = command(env!("CARGO_BIN_EXE_tracecontext"), env)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the participant listens");
    (child, port, reader)
}

/// Sends SIGTERM to `child` (what a service manager does to stop it).
fn sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {}", child.id());
}

/// The finished run of a program.
struct Run {
    ok: bool,
    code: Option<i32>,
    elapsed: Duration,
    stderr: String,
}

/// The binary configured by `env` only: every `TRACING_*`/`OTEL_*` variable of the test's own
/// environment is removed first.
fn command(bin: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRACING_") || key.starts_with("OTEL_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    // Plain lines: the assertions read stderr.
    cmd.env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the demo to its end (killed after 60 s: a hang fails the case, never the suite).
fn demo(env: &[(&str, String)]) -> Run {
    demo_with(&[], env)
}

/// [`demo`] with command-line arguments.
fn demo_with(args: &[&str], env: &[(&str, String)]) -> Run {
    let started = Instant::now();
    let mut child = command(env!("CARGO_BIN_EXE_demo"), env)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let elapsed = started.elapsed();
    Run {
        ok: status.is_some_and(|s| s.success()),
        code: status.and_then(|s| s.code()),
        elapsed,
        stderr: reader.join().unwrap(),
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lines of `stderr` that contain every one of `words`.
fn lines_with<'a>(stderr: &'a str, words: &[&str]) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .collect()
}

/// The spans of one whole journey arrived, in one trace, with the guide's parent links.
fn assert_journey(spans: &[Span], stderr: &str) {
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let root = named("POST /api/v1/workflows/{id}/execute");
    assert_eq!(
        root.len(),
        1,
        "one API span; got {:#?}\n{stderr}",
        names(spans)
    );
    let root = root[0];
    assert!(root.parent.is_empty(), "the API span is the root");
    let trace = &root.trace_id;
    for (child, parent) in [
        ("workflow.execute", "POST /api/v1/workflows/{id}/execute"),
        ("workflow.step.execute", "workflow.execute"),
        ("POST", "workflow.step.execute"),
        ("POST /api/v1/steps/{node}", "POST"),
        ("send gorax-executions", "workflow.execute"),
        ("process gorax-executions", "send gorax-executions"),
        ("workflow.step.execute", "process gorax-executions"),
        ("gorax.notify.v1.Notifier/Notify", "workflow.step.execute"),
    ] {
        let linked = named(child).into_iter().any(|c| {
            &c.trace_id == trace
                && named(parent)
                    .iter()
                    .any(|p| p.span_id == c.parent && &p.trace_id == trace)
        });
        assert!(
            linked,
            "{child} under {parent} in trace {}: {:#?}",
            hex(trace),
            names(spans)
        );
    }
    assert!(
        spans.iter().all(|s| &s.trace_id == trace),
        "every span in the one trace"
    );
}

fn names(spans: &[Span]) -> Vec<(String, String, String)> {
    spans
        .iter()
        .map(|s| (s.name.clone(), hex(&s.span_id), hex(&s.parent)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shutdown summary, if any, reports no lost span (only the metrics a traces-only collector
/// refused).
fn assert_no_span_lost(stderr: &str) {
    assert!(
        lines_with(stderr, &["not fully delivered", "traces:"]).is_empty(),
        "no span lost:\n{stderr}"
    );
}

/// The one warning that the collector does not take metrics, naming the answer.
fn assert_metrics_refused_once(stderr: &str, answer: &str) {
    let refused = lines_with(stderr, &["does not accept metrics", answer]);
    assert_eq!(
        refused.len(),
        1,
        "one warning naming metrics and {answer}:\n{stderr}"
    );
    assert!(!stderr.contains("Error:"), "no error exit text:\n{stderr}");
    assert_no_span_lost(stderr);
    // The shutdown summary names the refused metrics.
    assert_eq!(
        lines_with(stderr, &["not fully delivered", "metrics", "refused"]).len(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_traces_only_collector_over_http_gets_the_whole_trace_and_the_demo_exits_0() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let run = demo(&[("TRACING_ENDPOINT", format!("http://{addr}/v1/traces"))]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert_journey(&seen.spans(), &run.stderr);
    assert_metrics_refused_once(&run.stderr, "HTTP 404");
    // Refused once, then not asked again within the run.
    assert_eq!(seen.requests("/v1/metrics").len(), 1);
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
}

/// `TRACING_EXPORTER=console,otlp` (a list, issue 27): the collector gets the whole trace and
/// the terminal shows the tree.
#[test]
fn an_exporter_list_sends_to_the_collector_and_prints_the_tree() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let run = demo(&[
        ("TRACING_EXPORTER", "console,otlp".into()),
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_METRICS_ENABLED", "false".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert_journey(&seen.spans(), &run.stderr);
    assert!(
        run.stderr.contains("exporter=console,otlp"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("└─ workflow.execute"), "{}", run.stderr);
    assert_no_span_lost(&run.stderr);
}

/// A server address from the environment; `None` (the case is skipped, saying so) when unset,
/// a failure under `CI=true`.
fn server_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{name} is not set under CI=true: the test script must start this server")
        }
        _ => {
            eprintln!("skipped: {name} not set (scripts/test.sh starts the test servers)");
            None
        }
    }
}

#[test]
fn the_demo_over_redis_streams_gets_the_whole_trace_to_a_traces_only_collector() {
    let Some(url) = server_env("GORAX_TEST_REDIS_URL") else {
        return;
    };
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let run = demo_with(
        &["--redis", &url],
        &[("TRACING_ENDPOINT", format!("http://{addr}/v1/traces"))],
    );
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    let spans = seen.spans();
    // The producer and consumer spans arrived, linked (the consumer under the producer, both in
    // the request's trace), and they are Redis's.
    assert_journey(&spans, &run.stderr);
    for name in ["send gorax-executions", "process gorax-executions"] {
        let queue: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(queue.len(), 1, "one {name}: {:#?}", names(&spans));
        assert_eq!(queue[0].system.as_deref(), Some("redis"), "{name}");
    }
    assert_metrics_refused_once(&run.stderr, "HTTP 404");
}

#[test]
fn the_demo_over_nats_jetstream_gets_the_whole_trace_to_a_traces_only_collector() {
    let Some(url) = server_env("GORAX_TEST_NATS_URL") else {
        return;
    };
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let run = demo_with(
        &["--nats", &url],
        &[("TRACING_ENDPOINT", format!("http://{addr}/v1/traces"))],
    );
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    let spans = seen.spans();
    // The producer and consumer spans arrived, linked (the consumer under the producer, both in
    // the request's trace), and they are NATS's.
    assert_journey(&spans, &run.stderr);
    for name in ["send gorax-executions", "process gorax-executions"] {
        let queue: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(queue.len(), 1, "one {name}: {:#?}", names(&spans));
        assert_eq!(queue[0].system.as_deref(), Some("nats"), "{name}");
    }
    assert_metrics_refused_once(&run.stderr, "HTTP 404");
}

#[test]
fn the_demo_over_rabbitmq_gets_the_whole_trace_to_a_traces_only_collector() {
    let Some(url) = server_env("GORAX_TEST_AMQP_URL") else {
        return;
    };
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let run = demo_with(
        &["--amqp", &url],
        &[("TRACING_ENDPOINT", format!("http://{addr}/v1/traces"))],
    );
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    let spans = seen.spans();
    // The producer and consumer spans arrived, linked (the consumer under the producer, both in
    // the request's trace), and they are RabbitMQ's.
    assert_journey(&spans, &run.stderr);
    for name in ["send gorax-executions", "process gorax-executions"] {
        let queue: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(queue.len(), 1, "one {name}: {:#?}", names(&spans));
        assert_eq!(queue[0].system.as_deref(), Some("rabbitmq"), "{name}");
    }
    assert_metrics_refused_once(&run.stderr, "HTTP 404");
}

#[test]
fn a_collector_that_rejects_spans_is_reported_and_the_demo_exits_0() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::RejectOne, None);
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_METRICS_ENABLED", "false".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    let requests = seen.requests("/v1/traces").len();
    assert!(requests >= 1);
    // Each request had one span rejected: the summary says so, by reason.
    let summary = lines_with(
        &run.stderr,
        &["not fully delivered", "rejected by the collector"],
    );
    assert_eq!(summary.len(), 1, "{}", run.stderr);
    assert!(
        summary[0].contains(&format!("{requests} rejected by the collector")),
        "{}",
        summary[0]
    );
}

#[test]
fn a_throttling_collector_gets_the_next_request_after_retry_after_and_the_demo_exits_0() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::ThrottleFirst(5), None);
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_EXPORT_TIMEOUT_MS", "8000".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    let traces = seen.requests("/v1/traces");
    assert!(traces.len() >= 2, "{traces:?}");
    assert_eq!(traces[0].1, 429);
    let gap = traces[1].0 - traces[0].0;
    assert!(
        (Duration::from_secs(5)..Duration::from_millis(5500)).contains(&gap),
        "next request {gap:?} after the 429"
    );
    assert_journey(&seen.spans(), &run.stderr);
    // The metrics' only push (at shutdown) met the 429: not retried, reported as throttled.
    let metrics = seen.requests("/v1/metrics");
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    assert!(
        lines_with(&run.stderr, &["not fully delivered", "throttled"]).len() == 1,
        "{}",
        run.stderr
    );
    // Within the 8 s budget plus the journey.
    assert!(run.elapsed < Duration::from_secs(15), "{:?}", run.elapsed);
}

#[test]
fn a_silent_collector_costs_one_budget_and_the_demo_exits_0_within_3_s() {
    let (_held, addr) = silent_collector();
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_EXPORT_TIMEOUT_MS", "1000".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(3),
        "took {:?}",
        run.elapsed
    );
    let summary = lines_with(&run.stderr, &["not fully delivered", "timed out"]);
    assert_eq!(summary.len(), 1, "{}", run.stderr);
    assert!(summary[0].contains("metrics"), "{}", summary[0]);
}

#[test]
fn a_closed_port_loses_the_spans_with_a_summary_and_the_demo_exits_0() {
    let addr = closed_port();
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_EXPORT_TIMEOUT_MS", "1000".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert!(
        run.elapsed < Duration::from_secs(3),
        "took {:?}",
        run.elapsed
    );
    let summary = lines_with(&run.stderr, &["not fully delivered", "spans lost"]);
    assert_eq!(summary.len(), 1, "{}", run.stderr);
}

#[test]
fn sigterm_stops_demo_serve_with_every_request_delivered() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let started = Instant::now();
    let mut child = command(
        env!("CARGO_BIN_EXE_demo"),
        &[
            ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
            ("TRACING_EXPORT_TIMEOUT_MS", "2000".into()),
        ],
    )
    .arg("--serve")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Waits (bounded) for the line that holds every one of `words`.
    let wait_for = |words: &[&str]| -> String {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with {words:?} within 30 s"));
            if words.iter().all(|w| line.contains(w)) {
                return line;
            }
        }
    };
    let line = wait_for(&["curl -X POST"]);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let status = rt.block_on(client.post(&url).send()).unwrap().status();
        assert!(status.is_success(), "{status}");
    }
    // Each request's execution goes through the queue to the worker: SIGTERM once the three
    // were processed (a stop in the middle of one loses its spans, and says so).
    for _ in 0..3 {
        wait_for(&["worker processed the execution"]);
    }
    sigterm(&child);
    let stopping = Instant::now();
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stderr = reader.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{stderr}");
    // Within the 2 s budget (plus the process's own exit).
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
    // The journey's request and the three of the user's own: four API spans, all delivered.
    let api = seen
        .spans()
        .into_iter()
        .filter(|s| s.name == "POST /api/v1/workflows/{id}/execute")
        .count();
    assert_eq!(api, 4, "{stderr}");
    assert_no_span_lost(&stderr);
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// `--viewer --serve`: the viewer answers until Ctrl-C, and SIGINT ends the demo within the
/// shutdown budget (the viewer's server stops without waiting).
#[test]
fn sigint_stops_demo_viewer_within_the_shutdown_budget() {
    let mut child = command(
        env!("CARGO_BIN_EXE_demo"),
        &[
            ("TRACING_VIEWER_ADDR", "127.0.0.1:0".into()),
            ("TRACING_SHUTDOWN_TIMEOUT_MS", "2000".into()),
        ],
    )
    .args(["--viewer", "--serve"])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("trace viewer: http") {
                let _ = tx.send(line.clone());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the demo prints the viewer's URL");
    let addr: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    // The viewer answers, with the journey's trace in its list.
    let list = viewer_get(addr, "/api/traces");
    assert!(
        list.contains("POST /api/v1/workflows/{id}/execute"),
        "{list}"
    );
    let int = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let stopping = Instant::now();
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stderr = reader.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{stderr}");
    // Within the 2 s budget (plus the process's own exit).
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
    assert!(
        stderr.contains("workflow.execute"),
        "the console tree:\n{stderr}"
    );
    assert_no_span_lost(&stderr);
}

/// `GET path` on `addr` (Host: the address), the body as text.
fn viewer_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// Issue 23: the demo's SSE route, called while `demo --serve` runs: the API's server span
/// lasts as long as the stream (3 events, 100 ms apart), ends `completed`, and the spans the
/// stream makes are its children, all delivered to the collector.
#[test]
fn an_sse_stream_of_demo_serve_is_one_span_as_long_as_the_stream() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let mut child = command(
        env!("CARGO_BIN_EXE_demo"),
        &[
            ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
            ("TRACING_EXPORT_TIMEOUT_MS", "2000".into()),
        ],
    )
    .arg("--serve")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("curl -X POST") {
                let _ = tx.send(line.clone());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the demo prints its API URL");
    let execute = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let events = execute.replace("/execute", "/events");
    let body = rt
        .block_on(async { reqwest::get(&events).await?.text().await })
        .unwrap();
    assert_eq!(body.matches("event: progress").count(), 3, "{body}");
    sigterm(&child);
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stderr = reader.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{stderr}");
    let spans = seen.spans();
    let server: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "GET /api/v1/workflows/{id}/events")
        .collect();
    assert_eq!(server.len(), 1, "{stderr}");
    let server = server[0];
    assert!(
        (300_000_000..2_000_000_000).contains(&server.duration_ns),
        "{} ns",
        server.duration_ns
    );
    assert_eq!(server.outcome.as_deref(), Some("completed"));
    let progress: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "workflow.progress")
        .collect();
    assert_eq!(progress.len(), 3);
    assert!(
        progress
            .iter()
            .all(|p| p.parent == server.span_id && p.trace_id == server.trace_id)
    );
    assert_no_span_lost(&stderr);
}

#[test]
fn the_participant_runs_as_a_process_and_stops_on_sigterm() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let (mut child, port, reader) = participant(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_EXPORT_TIMEOUT_MS", "2000".into()),
    ]);
    let client = reqwest::Client::new();
    let response = rt
        .block_on(
            client
                .post(format!("http://127.0.0.1:{port}/test"))
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .json(&serde_json::json!([]))
                .send(),
        )
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    sigterm(&child);
    let stopping = Instant::now();
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stderr = reader.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{stderr}");
    assert!(stopping.elapsed() < Duration::from_secs(3));
    // The server span continued the caller's trace and reached the collector.
    let spans = seen.spans();
    assert!(
        spans
            .iter()
            .any(|s| hex(&s.trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736"
                && hex(&s.parent) == "00f067aa0ba902b7"),
        "{:#?}",
        names(&spans)
    );
}

/// A one-request HTTP server on 127.0.0.1: the header block of the request it gets (answered
/// 200, empty).
fn header_catcher() -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut head = Vec::new();
        let mut buf = [0_u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
    (addr, rx)
}

/// The participant as a process forwards a `tracestate` whose Level 2 keys opentelemetry's
/// `TraceState` refuses (`a@b@c`, `t@_x`), whole and in place, with the caller's trace.
#[test]
fn the_participant_process_forwards_every_valid_tracestate_member() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let (mut child, port, reader) = participant(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_EXPORT_TIMEOUT_MS", "2000".into()),
    ]);
    let (callback, heads) = header_catcher();
    let tracestate = "gorax=1,a@b@c=2,rojo=3,t@_x=4";
    let response = rt
        .block_on(
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/test"))
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .header("tracestate", tracestate)
                .json(&serde_json::json!([{
                    "url": format!("http://{callback}/callback"),
                    "arguments": [],
                }]))
                .send(),
        )
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let head = heads
        .recv_timeout(Duration::from_secs(10))
        .expect("the participant calls the callback")
        .to_ascii_lowercase();
    assert!(
        head.contains(&format!("\r\ntracestate: {tracestate}\r\n")),
        "forwarded whole, in place:\n{head}"
    );
    assert!(
        head.contains("\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{head}"
    );
    sigterm(&child);
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stderr = reader.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{stderr}");
    // The server and client spans of that trace reached the collector.
    let spans = seen.spans();
    let of_trace = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736")
        .count();
    assert!(of_trace >= 2, "{:#?}", names(&spans));
}

#[cfg(feature = "tls")]
#[test]
fn a_traces_only_collector_over_tls_with_its_own_ca() {
    let rt = runtime();
    let pki = Pki::new("http");
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, Some(&pki));
    let run = demo(&[
        (
            "TRACING_ENDPOINT",
            format!("https://127.0.0.1:{}/v1/traces", addr.port()),
        ),
        ("TRACING_CERTIFICATE", pki.ca_file.display().to_string()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert_journey(&seen.spans(), &run.stderr);
    assert_metrics_refused_once(&run.stderr, "HTTP 404");
}

#[cfg(feature = "grpc")]
#[test]
fn a_traces_only_collector_over_grpc_answers_unimplemented_for_metrics() {
    let rt = runtime();
    let (seen, addr) = grpc_collector(&rt, None);
    let run = demo(&[("TRACING_ENDPOINT", format!("127.0.0.1:{}", addr.port()))]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert_journey(&seen.spans(), &run.stderr);
    assert_metrics_refused_once(&run.stderr, "UNIMPLEMENTED");
}

#[cfg(all(feature = "grpc", feature = "tls"))]
#[test]
fn a_traces_only_collector_over_grpc_and_tls() {
    let rt = runtime();
    let pki = Pki::new("grpc");
    let (seen, addr) = grpc_collector(&rt, Some(&pki));
    let run = demo(&[
        (
            "TRACING_ENDPOINT",
            format!("https://127.0.0.1:{}", addr.port()),
        ),
        ("TRACING_PROTOCOL", "grpc".into()),
        ("TRACING_CERTIFICATE", pki.ca_file.display().to_string()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert_journey(&seen.spans(), &run.stderr);
    assert_metrics_refused_once(&run.stderr, "UNIMPLEMENTED");
}

#[cfg(not(feature = "grpc"))]
#[test]
fn a_grpc_endpoint_without_the_feature_is_a_clear_error() {
    let run = demo(&[("TRACING_ENDPOINT", "127.0.0.1:4317".into())]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("otlp-grpc"), "{}", run.stderr);
}

/// Issue 20: the demo's service name is a code default that the environment overrides.
#[test]
fn tracing_service_name_renames_the_demo() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_SERVICE_NAME", "renamed-demo".into()),
        ("TRACING_METRICS_ENABLED", "false".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    let spans = seen.spans();
    assert!(!spans.is_empty());
    assert!(
        spans.iter().all(|s| s.service == "renamed-demo"),
        "{:?}",
        spans.iter().map(|s| &s.service).collect::<Vec<_>>()
    );
    // Metrics off by the environment, over the demo's code default: none pushed.
    assert!(seen.requests("/v1/metrics").is_empty());
}

/// Issue 20: with `TRACING_LOG_FORMAT=json` every line on stderr is one JSON object, in a
/// successful run (the trace tree then goes to stdout) and in one that fails on a bad variable;
/// a default run prints none of the SDK's own INFO lines.
#[test]
fn json_logs_parse_line_by_line_and_the_sdk_is_quiet() {
    let run_json = |extra: &[(&str, String)]| {
        let mut env = vec![("TRACING_LOG_FORMAT", "json".to_owned())];
        env.extend(extra.iter().cloned());
        let out = command(env!("CARGO_BIN_EXE_demo"), &env)
            .output()
            .expect("the demo runs");
        (
            out.status,
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let every_line_json = |stderr: &str| {
        assert!(!stderr.trim().is_empty());
        for line in stderr.lines() {
            let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
            assert!(
                parsed.is_ok_and(|v| v.is_object()),
                "not JSON: {line:?}\n{stderr}"
            );
        }
    };
    let (status, stdout, stderr) = run_json(&[]);
    assert!(status.success(), "{stderr}");
    every_line_json(&stderr);
    assert!(
        stdout.contains("workflow.execute"),
        "the tree on stdout: {stdout}"
    );
    let (status, _, stderr) = run_json(&[("TRACING_SAMPLE_RATE", "lots".into())]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    every_line_json(&stderr);
    assert!(
        stderr.contains("TRACING_SAMPLE_RATE") && stderr.contains("lots"),
        "the error names the variable and value: {stderr}"
    );
    let run = demo(&[]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        !run.stderr.contains("Global tracer provider is set"),
        "{}",
        run.stderr
    );
}

/// Issue 20: a failed outgoing call to a URL with secrets exports none of them (the client
/// span's status would carry reqwest's error text, which names the URL).
#[test]
fn a_failed_call_with_secrets_in_its_url_exports_no_secret() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::All, None);
    let closed = closed_port();
    let (mut child, port, reader) = participant(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("TRACING_EXPORT_TIMEOUT_MS", "2000".into()),
        ("OTEL_LOGS_EXPORTER", "otlp".into()),
    ]);
    let secret_url = format!(
        "http://user:PLANTED0@{closed}/x?access_token=PLANTED1&a=1;token=PLANTED2&next=%2Fcb%3Ftoken%3DPLANTED3"
    );
    let response = rt
        .block_on(
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/test"))
                .json(&serde_json::json!([{ "url": secret_url, "arguments": {} }]))
                .send(),
        )
        .unwrap();
    assert!(response.status().is_success());
    sigterm(&child);
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stderr = reader.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "{stderr}");
    // The failed client span arrived, and no byte of any secret with it.
    assert!(
        seen.spans()
            .iter()
            .any(|s| s.name == "POST" && !s.parent.is_empty()),
        "{:#?}",
        names(&seen.spans())
    );
    // The participant logged the failed call with reqwest's error text (the whole URL): the
    // record arrived, in the request's trace, with every URL secret redacted.
    let records = seen.records();
    let failed = records
        .iter()
        .find(|r| r.body == "a call of the test harness failed")
        .unwrap_or_else(|| panic!("{records:#?}\n{stderr}"));
    assert_eq!(failed.trace_id.len(), 16);
    assert!(
        failed
            .attributes
            .iter()
            .any(|(k, v)| k == "error" && v.contains("REDACTED")),
        "{failed:?}"
    );
    for secret in ["PLANTED0", "PLANTED1", "PLANTED2", "PLANTED3"] {
        assert!(
            !seen.received_bytes(secret),
            "{secret} was exported: {:?}\n{:#?}",
            seen.around(secret),
            seen.records()
        );
    }
}

/// Issue 24: `tracing` events as OTLP log records, correlated with the journey's spans.
fn assert_logs_correlate(seen: &Seen, stderr: &str) {
    let spans = seen.spans();
    let records = seen.records();
    let executing = records
        .iter()
        .find(|r| r.body == "executing workflow")
        .unwrap_or_else(|| panic!("the journey's log line arrived: {records:#?}\n{stderr}"));
    assert_eq!(executing.severity, "INFO");
    assert!(
        executing
            .attributes
            .iter()
            .any(|(k, v)| k == "workflow_id" && v == "wf-42"),
        "{executing:?}"
    );
    let span = spans
        .iter()
        .find(|s| s.span_id == executing.span_id)
        .unwrap_or_else(|| panic!("the record's span_id is a span of the journey: {executing:?}"));
    assert_eq!(span.trace_id, executing.trace_id);
    assert_eq!(executing.flags & 0xff, 1, "sampled");
}

#[test]
fn otlp_logs_over_http_carry_the_ids_of_the_journeys_spans() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::All, None);
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("OTEL_LOGS_EXPORTER", "otlp".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert_journey(&seen.spans(), &run.stderr);
    assert_logs_correlate(&seen, &run.stderr);
    assert!(
        !run.stderr.contains("not fully delivered"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unsampled_requests_log_records_carry_its_trace_id() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::All, None);
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("OTEL_LOGS_EXPORTER", "otlp".into()),
        ("TRACING_SAMPLE_RATE", "0".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert!(seen.spans().is_empty(), "nothing sampled");
    let records = seen.records();
    let executing = records
        .iter()
        .find(|r| r.body == "executing workflow")
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(executing.trace_id.len(), 16);
    assert!(executing.trace_id.iter().any(|b| *b != 0));
    assert_eq!(executing.flags & 0xff, 0, "unsampled");
}

#[test]
fn a_collector_that_refuses_logs_leaves_the_traces_delivered() {
    let rt = runtime();
    let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
        ("OTEL_LOGS_EXPORTER", "otlp".into()),
        ("TRACING_METRICS_ENABLED", "false".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert_journey(&seen.spans(), &run.stderr);
    assert_eq!(
        lines_with(&run.stderr, &["does not accept logs", "HTTP 404"]).len(),
        1,
        "{}",
        run.stderr
    );
    assert_no_span_lost(&run.stderr);
}

#[cfg(feature = "grpc")]
#[test]
fn otlp_logs_over_grpc_carry_the_ids_of_the_journeys_spans() {
    let rt = runtime();
    let (seen, addr) = grpc_collector_with(&rt, None, true);
    let run = demo(&[
        ("TRACING_ENDPOINT", format!("127.0.0.1:{}", addr.port())),
        ("OTEL_LOGS_EXPORTER", "otlp".into()),
        ("TRACING_METRICS_ENABLED", "false".into()),
    ]);
    assert!(run.ok, "exit {:?}:\n{}", run.code, run.stderr);
    assert_journey(&seen.spans(), &run.stderr);
    assert_logs_correlate(&seen, &run.stderr);
}

/// Issue 22: the demo's gRPC call in each RPC conventions mode, configured by the environment
/// only: `rpc` gives the stable keys and none of the old or HTTP ones, `rpc/dup` both sets,
/// no opt-in the old keys as before.
#[test]
fn the_demos_grpc_spans_follow_otel_semconv_stability_opt_in() {
    const NOTIFY: &str = "gorax.notify.v1.Notifier/Notify";
    const NOT_IN_RPC_MODE: [&str; 8] = [
        "rpc.system",
        "rpc.service",
        "rpc.grpc.",
        "http.",
        "url.",
        "user_agent.",
        "network.protocol.",
        "client.address",
    ];
    for (mode, stable, old) in [
        ("rpc", true, false),
        ("rpc/dup", true, true),
        ("", false, true),
    ] {
        let rt = runtime();
        let (seen, addr) = http_collector(&rt, Behaviour::TracesOnly, None);
        let mut env = vec![
            ("TRACING_ENDPOINT", format!("http://{addr}/v1/traces")),
            ("TRACING_METRICS_ENABLED", "false".into()),
        ];
        if !mode.is_empty() {
            env.push(("OTEL_SEMCONV_STABILITY_OPT_IN", mode.into()));
        }
        let run = demo(&env);
        assert!(run.ok, "{mode}: exit {:?}:\n{}", run.code, run.stderr);
        let spans = seen.spans();
        assert_journey(&spans, &run.stderr);
        let calls: Vec<&Span> = spans.iter().filter(|s| s.name == NOTIFY).collect();
        assert_eq!(
            calls.len(),
            2,
            "{mode}: a client and a server span: {:#?}",
            names(&spans)
        );
        for span in calls {
            let get = |key: &str| {
                span.attributes
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
            };
            let attrs = &span.attributes;
            if stable {
                assert_eq!(get("rpc.system.name"), Some("grpc"), "{mode}: {attrs:?}");
                assert_eq!(get("rpc.method"), Some(NOTIFY), "{mode}: {attrs:?}");
                assert_eq!(get("rpc.status_code"), Some("OK"), "{mode}: {attrs:?}");
            } else {
                assert_eq!(get("rpc.method"), Some("Notify"), "{mode}: {attrs:?}");
                assert_eq!(get("rpc.system.name"), None, "{mode}: {attrs:?}");
            }
            if old {
                assert_eq!(get("rpc.system"), Some("grpc"), "{mode}: {attrs:?}");
                assert_eq!(get("rpc.grpc.status_code"), Some("0"), "{mode}: {attrs:?}");
            } else {
                for (key, _) in attrs {
                    // Prefixes end with a dot; other entries are whole keys.
                    let banned = NOT_IN_RPC_MODE
                        .iter()
                        .any(|k| key == k || (k.ends_with('.') && key.starts_with(k)));
                    assert!(!banned, "{mode}: {key} in {attrs:?}");
                }
            }
        }
    }
}
