//! The embedded trace viewer (cargo feature `viewer`): `TRACING_EXPORTER=viewer` keeps the
//! process's recent traces in memory and shows them as a waterfall on a web page served from
//! the binary, with no collector, container or CDN.
//!
//! - **Where**: [`TRACING_VIEWER_ADDR`](crate::config), default
//!   [`crate::config::DEFAULT_VIEWER_ADDR`] (`127.0.0.1:16786`, loopback).
//!   An explicit address that is not loopback is used, with a warning (the page shows request
//!   data). An address in use is a warning naming it, never an init error: the traces are then
//!   not served here, and the warning says how to export to the viewer already listening.
//! - **How much**: at most [`ViewerSettings::max_traces`](crate::config::ViewerSettings) traces
//!   and [`max_bytes`](crate::config::ViewerSettings) bytes of span data by the viewer's own
//!   accounting (default 1000 traces, 32 MiB); the oldest trace goes first, and the page shows
//!   how many were evicted.
//! - **Several processes**: `POST /v1/traces` takes OTLP/HTTP (protobuf or JSON, plain or
//!   gzip), so other local services pointed at it (`TRACING_ENDPOINT=http://127.0.0.1:16786`)
//!   show in the same trace; a malformed body gets `400` and changes nothing. There is no
//!   OTLP/gRPC intake (it would need a second, HTTP/2 listener and tonic's server): every SDK
//!   can send OTLP/HTTP (`OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`).
//! - **Safe on a developer's machine**: only requests whose `Host` is `localhost` or the bound
//!   address are answered (DNS rebinding gets `421` and no data); no CORS header; a
//!   `Content-Security-Policy` that allows the viewer's own script and style only; the page
//!   writes every string with `textContent`, never as HTML.
//! - **Never traced, never blocking**: the server runs on a one-thread runtime of its own with
//!   no tracing layer (axum without its `tracing` feature), so its requests make no spans;
//!   shutting [`Telemetry`](crate::Telemetry) down stops it without waiting.
//!
//! What upstream lacks, and is written here: no maintained crate serves a trace waterfall from
//! inside a Rust process (Jaeger all-in-one, otel-desktop-viewer and the Aspire dashboard are
//! separate programs), so the store, the JSON API and the page (plain HTML, CSS and JavaScript,
//! under 100 KiB, no build step) are this module's own. HTTP is axum's; OTLP decoding is
//! opentelemetry-proto's (prost for protobuf, its serde support for JSON).
//!
//! ```no_run
//! use gorax_trace::config::{ExporterKind, TraceConfig};
//!
//! // TRACING_EXPORTER=console,viewer does the same.
//! let config = TraceConfig::new().with_exporters([ExporterKind::Console, ExporterKind::Viewer]);
//! let telemetry = gorax_trace::init(config)?;
//! if let Some(url) = telemetry.viewer().and_then(|v| v.url()) {
//!     eprintln!("traces at {url}");
//! }
//! # Ok::<(), gorax_trace::InitError>(())
//! ```

mod server;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::config::{DEFAULT_VIEWER_ADDR, ViewerSettings};
pub use store::ViewerStats;

/// A running viewer: its store and, when it could bind, its web server. Dropping it stops the
/// server without waiting.
///
/// ```
/// use gorax_trace::config::ViewerSettings;
/// use gorax_trace::viewer::Viewer;
///
/// let viewer = Viewer::start(&ViewerSettings::default().with_addr("127.0.0.1:0".parse().unwrap()));
/// let url = viewer.url().expect("a free port was taken");
/// assert!(url.starts_with("http://127.0.0.1:"));
/// assert_eq!(viewer.stats().traces, 0);
/// ```
#[derive(Debug)]
pub struct Viewer {
    shared: Arc<server::Shared>,
    addr: Option<SocketAddr>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Viewer {
    /// Starts the store and serves it on `settings.addr` (default loopback). Problems (the
    /// address in use, no runtime) are warnings: the viewer then only stores.
    pub fn start(settings: &ViewerSettings) -> Self {
        let shared = Arc::new(server::Shared {
            store: Mutex::new(store::Store::new(settings.max_traces, settings.max_bytes)),
        });
        let wanted = settings.addr.unwrap_or(DEFAULT_VIEWER_ADDR);
        if settings.addr.is_some() && !wanted.ip().is_loopback() {
            tracing::warn!(
                addr = %wanted,
                "the trace viewer listens on {wanted}, not only on loopback: anyone who reaches \
                 this address sees the traces, request data included"
            );
        }
        let (addr, runtime) = match serve(shared.clone(), wanted) {
            Ok((addr, runtime)) => (Some(addr), Some(runtime)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::warn!(
                    addr = %wanted,
                    "trace viewer: {wanted} is in use (another process's viewer?); this \
                     process's traces are not served here. To see them in the viewer on \
                     {wanted}, export to it: TRACING_EXPORTER=otlp \
                     TRACING_ENDPOINT=http://{wanted}/v1/traces (or set TRACING_VIEWER_ADDR)"
                );
                (None, None)
            }
            Err(e) => {
                tracing::warn!(addr = %wanted, error = %e, "trace viewer: cannot serve on {wanted}: {e}");
                (None, None)
            }
        };
        Self {
            shared,
            addr,
            runtime,
        }
    }

    /// The address served, if the viewer could bind.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The page's URL (`http://127.0.0.1:16786/`), if the viewer could bind.
    pub fn url(&self) -> Option<String> {
        self.addr.map(|a| format!("http://{a}/"))
    }

    /// What the store holds and has evicted.
    pub fn stats(&self) -> ViewerStats {
        self.shared.store().stats()
    }

    /// The span processor that feeds this viewer with the process's own spans.
    pub(crate) fn processor(&self) -> ViewerProcessor {
        ViewerProcessor {
            shared: self.shared.clone(),
            service: Arc::from("unknown_service"),
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Binds, then serves on a one-thread runtime of the viewer's own (independent of the
/// application's runtime, if any).
fn serve(
    shared: Arc<server::Shared>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::runtime::Runtime)> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gorax-viewer")
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let app = server::router(shared, bound);
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the trace viewer stopped serving");
        }
    });
    Ok((bound, runtime))
}

/// Puts the process's sampled spans into the viewer's store as they end.
#[derive(Debug)]
pub(crate) struct ViewerProcessor {
    shared: Arc<server::Shared>,
    service: Arc<str>,
}

impl SpanProcessor for ViewerProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let span = store::ViewSpan::from_sdk(span, &self.service);
        self.shared.store().insert([span]);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(name) = resource.get(&opentelemetry::Key::from_static_str("service.name")) {
            self.service = Arc::from(name.as_str().as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second viewer on an address in use is a warning, never an error: it only stores.
    #[test]
    fn an_address_in_use_is_not_an_error() {
        let first =
            Viewer::start(&ViewerSettings::default().with_addr("127.0.0.1:0".parse().unwrap()));
        let taken = first.local_addr().unwrap();
        let second = Viewer::start(&ViewerSettings::default().with_addr(taken));
        assert_eq!(second.url(), None);
        assert!(first.url().is_some());
    }

    /// `init` with the viewer: the process's spans land in the store; dropping stops it.
    #[test]
    fn the_processs_spans_reach_the_store() {
        use crate::config::{ExporterKind, TraceConfig};
        use opentelemetry::trace::{Tracer, TracerProvider as _};
        let config = TraceConfig::new()
            .with_service_name("viewer-unit")
            .with_exporter(ExporterKind::Viewer)
            .with_viewer(ViewerSettings::default().with_addr("127.0.0.1:0".parse().unwrap()));
        let telemetry = crate::Telemetry::new(&config).unwrap();
        let tracer = telemetry.provider().tracer("t");
        tracer.in_span("outer", |_| tracer.in_span("inner", |_| {}));
        let viewer = telemetry.viewer().unwrap();
        assert_eq!((viewer.stats().traces, viewer.stats().spans), (1, 2));
        let listed = viewer.shared.store().list(&store::Filter::default());
        assert_eq!(listed["traces"][0]["root"], "outer");
        assert_eq!(listed["traces"][0]["services"][0], "viewer-unit");
        telemetry.shutdown().unwrap();
    }
}
