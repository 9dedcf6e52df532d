//! The W3C Trace Context participant ([`gorax_examples::participant`]) as a service for the
//! specification's test harness (which listens on 127.0.0.1:7777 itself for the participant's
//! calls, so the participant takes another port):
//!
//! ```text
//! cargo run -p gorax-examples --bin tracecontext -- --port 5000
//! OTEL_PROPAGATORS=b3multi cargo run -p gorax-examples --bin tracecontext -- --port 5000
//! # in the harness's test/ folder:
//! STRICT_LEVEL=2 python test.py http://127.0.0.1:5000/test
//! ```

use std::net::SocketAddr;

use gorax_trace::config::TraceConfig;

fn port() -> Result<u16, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let raw = match args.as_slice() {
        [flag, port] if flag == "--port" => port.clone(),
        [] => std::env::var("PORT").map_err(|_| "give --port PORT or PORT")?,
        _ => return Err(format!("usage: tracecontext --port PORT (got {args:?})")),
    };
    raw.parse().map_err(|_| format!("invalid port {raw:?}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    gorax_trace::subscriber::install()?;
    let port = port()?;
    let config = TraceConfig::from_env()?.with_service_name("gorax-tracecontext");
    let telemetry = gorax_trace::init(config)?;
    // The installed handle carries the configured propagators (`OTEL_PROPAGATORS=b3multi`, …).
    let app = gorax_examples::participant::router_with(gorax_trace::TelemetryHandle::installed());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    eprintln!(
        "trace-context participant listening on {}",
        listener.local_addr()?
    );
    // Stops on SIGTERM or Ctrl-C after the requests in progress, then flushes within the
    // shutdown budget; losing telemetry is logged, not an exit status.
    axum::serve(listener, app)
        .with_graceful_shutdown(gorax_examples::stop_signal())
        .await?;
    if let Err(lost) = telemetry.shutdown() {
        eprintln!("telemetry was not fully delivered: {lost}");
    }
    Ok(())
}
