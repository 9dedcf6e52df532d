//! The gorax-trace demo: one process runs an API service, a downstream service and a worker,
//! executes a workflow the way the guide's tree shows, and prints the single trace as a tree
//! through the console exporter (no collector needed).
//!
//! ```text
//! cargo run -p gorax-examples --bin demo
//! TRACING_ENDPOINT=http://localhost:4318/v1/traces cargo run -p gorax-examples --bin demo   # + /v1/metrics
//! cargo run -p gorax-examples --bin demo -- --redis redis://127.0.0.1:6379/   # Redis Streams
//! cargo run -p gorax-examples --bin demo -- --nats 127.0.0.1:4222   # NATS JetStream (nats-server -js)
//! cargo run -p gorax-examples --bin demo -- --amqp amqp://guest:guest@127.0.0.1:5672/%2f   # RabbitMQ
//! cargo run -p gorax-examples --bin demo -- --serve   # then stays up until SIGTERM or Ctrl-C
//! cargo run -p gorax-examples --bin demo -- --viewer  # then serves the trace viewer until SIGTERM or Ctrl-C
//! ```

use std::time::Duration;

use gorax_examples::journey;
use gorax_trace::config::{ExporterKind, TraceConfig};

/// Logs through `tracing` only (one JSON object per line with `TRACING_LOG_FORMAT=json`), an
/// error that ends the demo included, and exits 1 then.
fn main() -> std::process::ExitCode {
    // Before the subscriber there is nowhere else to say it.
    if let Err(e) = gorax_trace::subscriber::install() {
        eprintln!("demo: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "demo: cannot start the runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "demo failed");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The demo's choices are code defaults: every TRACING_*/OTEL_* variable overrides them
    // (TRACING_SERVICE_NAME renames it, TRACING_METRICS_ENABLED=false turns metrics off).
    // Metrics go to the traces' collector when there is one (a collector that takes only
    // traces, like Jaeger, refuses them: one warning, the traces are unaffected).
    let mut broker = journey::Broker::Memory;
    let (mut serve, mut viewer) = (false, false);
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next_if(|a| !a.starts_with("--"))) {
            ("--redis", Some(url)) => broker = journey::Broker::Redis(url),
            ("--nats", Some(url)) => broker = journey::Broker::Nats(url),
            ("--amqp", Some(url)) => broker = journey::Broker::Amqp(url),
            ("--serve", None) => serve = true,
            ("--viewer", None) => viewer = true,
            _ => {
                return Err(format!(
                    "usage: demo [--redis URL | --nats URL | --amqp URL] [--serve] [--viewer] (got {arg:?})"
                )
                .into());
            }
        }
    }
    let defaults = TraceConfig::new()
        .with_service_name("gorax-demo")
        .with_metrics(true);
    let config = TraceConfig::from_env_with_defaults(defaults)?;
    // `--viewer` adds the embedded viewer to the configured exporters (console, or OTLP with an
    // endpoint), as `TRACING_EXPORTER=console,viewer` would.
    let config = if viewer {
        let exporters = config.exporters();
        config.with_exporters(exporters.into_iter().chain([ExporterKind::Viewer]))
    } else {
        config
    };
    let exporting = config.exporters().contains(&ExporterKind::Otlp);
    let telemetry = gorax_trace::init(config)?;

    let mut services = journey::start_with(&telemetry, &broker).await?;
    let body = journey::execute_workflow(services.api, "wf-42").await?;
    tracing::info!(%body, "API answered");
    let processed = tokio::time::timeout(Duration::from_secs(10), services.processed.recv())
        .await?
        .ok_or("the worker stopped")?;
    tracing::info!(execution = %processed.execution_id, "worker processed the execution");

    let viewer_url = telemetry.viewer().and_then(|v| v.url());
    if viewer && viewer_url.is_none() {
        tracing::warn!("the trace viewer is not serving (see the warning above)");
    }
    if serve || viewer_url.is_some() {
        // The services (and the viewer) stay up until SIGTERM or Ctrl-C, as a service in
        // Kubernetes stops.
        if serve {
            tracing::info!(
                api = %format!("http://{}/api/v1/workflows/wf-1/execute", services.api),
                downstream = %format!("http://{}/api/v1/steps/{{node}}", services.downstream),
                notifier = %format!("http://{}", services.notifier),
                "serving until SIGTERM or Ctrl-C; try: curl -X POST http://{}/api/v1/workflows/wf-1/execute",
                services.api
            );
        }
        if let Some(url) = &viewer_url {
            tracing::info!(%url, "trace viewer: {url} (until SIGTERM or Ctrl-C)");
        }
        let stop = gorax_examples::stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                done = services.processed.recv() => match done {
                    Some(execution) => tracing::info!(execution = %execution.execution_id, "worker processed the execution"),
                    None => break,
                },
            }
        }
        tracing::info!("stopping: shutting the services and telemetry down");
    }
    drop(services);

    // Shutting down flushes: the console exporter prints the trace tree (or the OTLP exporter
    // sends it to the collector), every signal within one budget. Losing telemetry does not fail
    // the program: what was lost is logged, and the demo exits 0.
    match telemetry.shutdown() {
        Ok(()) if exporting => {
            tracing::info!(
                "trace exported over OTLP; open your collector's UI (e.g. Jaeger on :16686)"
            )
        }
        Ok(()) => {}
        Err(lost) => tracing::warn!(%lost, "telemetry was not fully delivered"),
    }
    Ok(())
}
