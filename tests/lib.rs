//! Helpers of the cross-crate integration tests: an in-process OTLP gRPC collector, access to the
//! real OTLP/HTTP receiver that `scripts/test.sh` starts, and a lock for tests that install
//! process-wide state (`gorax_trace::init`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;

/// Serializes tests that call `gorax_trace::init`. Adapters no longer read hidden globals (each
/// test may build its own `Telemetry` or test handle and pass it), but `init` still installs the
/// one process-wide handle and the OpenTelemetry global provider, which default-built adapters
/// and the `span` helpers read: two such tests at once would record into each other's provider.
pub fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use gorax_trace::testing::server_env;

pub use gorax_trace::testing::unique_name as unique;

/// An in-process OTLP/gRPC collector on 127.0.0.1 that keeps every span it receives.
#[derive(Debug, Clone, Default)]
pub struct GrpcCollector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl GrpcCollector {
    /// Starts the collector on `runtime`; returns it and its address.
    pub fn start(runtime: &tokio::runtime::Handle) -> (Self, SocketAddr) {
        let collector = Self::default();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let service = TraceServiceServer::new(collector.clone());
        runtime.spawn(async move {
            let _guard = ();
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .expect("collector");
        });
        (collector, addr)
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

/// Spans received by the OTLP/HTTP receiver (oteltap): one JSON object per line of its log.
pub fn received_http_spans(log: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// Serves `app` on 127.0.0.1 (a free port) in the current tokio runtime; returns the address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// The OTLP/HTTP receiver's endpoint and its span log, or `None` (skipped; see [`server_env`]).
pub fn http_receiver() -> Option<(String, String)> {
    Some((
        server_env("GORAX_TEST_OTLP_HTTP_ENDPOINT")?,
        server_env("GORAX_TEST_OTLP_HTTP_LOG")?,
    ))
}

/// Waits (bounded) until `check` holds, polling.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}
