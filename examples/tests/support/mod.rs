//! Shared by the black-box suites: an OTLP/HTTP collector on 127.0.0.1 that keeps every decoded
//! request of every signal (traces, metrics, logs), and the demo run as a process configured by
//! its environment only.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// Every request a [`Collector`] took, decoded, in arrival order per signal.
#[derive(Clone, Debug, Default)]
pub(crate) struct Received {
    /// `/v1/traces` bodies.
    pub(crate) traces: Vec<ExportTraceServiceRequest>,
    /// `/v1/metrics` bodies.
    pub(crate) metrics: Vec<ExportMetricsServiceRequest>,
    /// `/v1/logs` bodies.
    pub(crate) logs: Vec<ExportLogsServiceRequest>,
}

/// An OTLP/HTTP collector that takes every signal (as an OpenTelemetry Collector does) and keeps
/// what it was sent; it stops with the runtime it was started on.
pub(crate) struct Collector {
    /// Where it listens (127.0.0.1, a free port).
    pub(crate) addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

type Shared = Arc<Mutex<Received>>;

async fn traces(State(r): State<Shared>, body: axum::body::Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace request");
    r.lock().unwrap().traces.push(request);
    ""
}

async fn metrics(State(r): State<Shared>, body: axum::body::Bytes) -> &'static str {
    let request = ExportMetricsServiceRequest::decode(body).expect("an OTLP metrics request");
    r.lock().unwrap().metrics.push(request);
    ""
}

async fn logs(State(r): State<Shared>, body: axum::body::Bytes) -> &'static str {
    let request = ExportLogsServiceRequest::decode(body).expect("an OTLP logs request");
    r.lock().unwrap().logs.push(request);
    ""
}

impl Collector {
    /// Starts the collector on `rt`.
    pub(crate) fn start(rt: &tokio::runtime::Runtime) -> Self {
        let received = Shared::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .route("/v1/logs", post(logs))
            .with_state(received.clone());
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, received }
    }

    /// What arrived so far.
    pub(crate) fn received(&self) -> Received {
        self.received.lock().unwrap().clone()
    }

    /// The `TRACING_ENDPOINT` value for it.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }
}

/// A multi-thread runtime with one worker, for the collector.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The finished run of a program.
pub(crate) struct Run {
    /// Exited 0.
    pub(crate) ok: bool,
    /// Its exit code, if it exited.
    pub(crate) code: Option<i32>,
    /// All it printed on stderr.
    pub(crate) stderr: String,
}

/// The binary configured by `env` only: every `TRACING_*`/`OTEL_*` variable (and `RUST_LOG`) of
/// the test's own environment is removed first.
pub(crate) fn command(bin: &str, env: &[(&str, String)]) -> Command {
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

/// Runs `bin` with `args` and `env` to its end (killed after 60 s: a hang fails the case).
pub(crate) fn run(bin: &str, args: &[&str], env: &[(&str, String)]) -> Run {
    let mut child = command(bin, env)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    Run {
        ok: status.is_some_and(|s| s.success()),
        code: status.and_then(|s| s.code()),
        stderr: reader.join().unwrap(),
    }
}

/// Waits for `child` at most `limit`, then kills it (`None`).
pub(crate) fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
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

/// A server address from the environment; `None` (the case is skipped, saying so) when unset, a
/// failure under `CI=true`.
pub(crate) fn server_env(name: &str) -> Option<String> {
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
