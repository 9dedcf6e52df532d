//! The end-to-end overhead target: an axum service, bare or with the gorax server layer at a
//! given sampling ratio, exporting through the gorax batch processor to an exporter that
//! discards (no network noise). Load it with wrk from `scripts/e2e-bench.sh`.
//!
//! `e2e_server MODE PORT` with MODE `bare`, `traced:1.0`, `traced:0.01`.

use axum::Router;
use axum::routing::post;
use gorax_trace_server::ServerTraceLayer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::Sampler;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, port] = args.as_slice() else {
        return Err("usage: e2e_server bare|traced:RATIO PORT".into());
    };
    let port: u16 = port.parse()?;
    let routes = Router::new().route("/api/v1/workflows/{id}/execute", post(|| async { "ok" }));
    let mut provider = None;
    let app = match mode.strip_prefix("traced:") {
        None if mode == "bare" => routes,
        None => return Err(format!("unknown mode {mode:?}").into()),
        Some(ratio) => {
            let ratio: f64 = ratio.parse()?;
            let p = gorax_benches::provider(Sampler::ParentBased(Box::new(
                Sampler::TraceIdRatioBased(ratio),
            )));
            let layer =
                ServerTraceLayer::new().with_telemetry(gorax_benches::handle(p.tracer("e2e")));
            provider = Some(p);
            routes.layer(layer)
        }
    };
    // One worker thread: wrk gets the other core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await
    })?;
    drop(provider);
    Ok(())
}
