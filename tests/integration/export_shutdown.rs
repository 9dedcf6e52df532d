//! No panic, no hang: `init` and then `Telemetry::shutdown()` or drop, from async main on the
//! multi-thread and the current-thread runtime, inside a handler (a spawned task), inside
//! `spawn_blocking` and outside any runtime, for every exporter: console, none, OTLP/HTTP and
//! OTLP/gRPC against a port that refuses connections and against a blackhole (a listener that
//! accepts and never answers). Each case runs on a thread of its own and must end within a
//! generous guard (a hang fails the test; times are printed, not asserted).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gorax_trace::config::{ExporterKind, Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use opentelemetry::trace::Tracer;

#[derive(Clone, Copy, Debug)]
enum Place {
    Outside,
    MultiThreadMain,
    CurrentThreadMain,
    Handler,
    SpawnBlocking,
}

#[derive(Clone, Copy, Debug)]
enum End {
    Shutdown,
    Drop,
}

const TIMEOUT: Duration = Duration::from_millis(300);

/// A port nothing listens on (bound, then released).
fn refusing_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listener that accepts connections and never reads or answers (kept for the process).
fn blackhole_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

fn configs(refusing: u16, blackhole: u16) -> Vec<(&'static str, TraceConfig)> {
    let batch = BatchSettings::default()
        .with_scheduled_delay(Duration::from_millis(20))
        .with_export_timeout(TIMEOUT);
    let otlp = |protocol: Protocol, port: u16| {
        let endpoint = match protocol {
            Protocol::Grpc => format!("http://127.0.0.1:{port}"),
            _ => format!("http://127.0.0.1:{port}/v1/traces"),
        };
        TraceConfig::new()
            .with_endpoint(endpoint)
            .with_protocol(protocol)
            .with_batch(batch.clone())
    };
    vec![
        (
            "console",
            TraceConfig::new()
                .with_exporter(ExporterKind::Console)
                .with_batch(batch.clone()),
        ),
        (
            "none",
            TraceConfig::new()
                .with_exporter(ExporterKind::None)
                .with_batch(batch.clone()),
        ),
        ("otlp-http refusing", otlp(Protocol::HttpProtobuf, refusing)),
        (
            "otlp-http blackhole",
            otlp(Protocol::HttpProtobuf, blackhole),
        ),
        ("otlp-grpc refusing", otlp(Protocol::Grpc, refusing)),
        ("otlp-grpc blackhole", otlp(Protocol::Grpc, blackhole)),
    ]
}

/// `init` + one span + shutdown/drop; returns how long the shutdown/drop took.
fn lifecycle(config: TraceConfig, end: End) -> Duration {
    let telemetry = gorax_trace::Telemetry::new(&config).expect("init");
    telemetry.tracer().in_span("shutdown-case", |_| {});
    let started = Instant::now();
    match end {
        End::Shutdown => {
            // An error (export failed) is fine; a panic or a hang is not.
            let _ = telemetry.shutdown();
        }
        End::Drop => drop(telemetry),
    }
    started.elapsed()
}

fn run(place: Place, config: TraceConfig, end: End) -> Duration {
    let multi = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    match place {
        Place::Outside => lifecycle(config, end),
        Place::MultiThreadMain => multi().block_on(async move { lifecycle(config, end) }),
        Place::CurrentThreadMain => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { lifecycle(config, end) }),
        Place::Handler => multi().block_on(async move {
            tokio::spawn(async move { lifecycle(config, end) })
                .await
                .unwrap()
        }),
        Place::SpawnBlocking => multi().block_on(async move {
            tokio::task::spawn_blocking(move || lifecycle(config, end))
                .await
                .unwrap()
        }),
    }
}

#[test]
fn shutdown_and_drop_never_panic_or_hang() {
    let (refusing, blackhole) = (refusing_port(), blackhole_port());
    let places = [
        Place::Outside,
        Place::MultiThreadMain,
        Place::CurrentThreadMain,
        Place::Handler,
        Place::SpawnBlocking,
    ];
    let mut worst: Vec<(&str, Duration)> = Vec::new();
    for (name, config) in configs(refusing, blackhole) {
        let mut max = Duration::ZERO;
        for place in places {
            for end in [End::Shutdown, End::Drop] {
                let (tx, rx) = mpsc::channel();
                let config = config.clone();
                let case = std::thread::spawn(move || {
                    let _ = tx.send(run(place, config, end));
                });
                // A hang guard, not a performance bound: 20 export timeouts.
                let took = rx
                    .recv_timeout(TIMEOUT * 20)
                    .unwrap_or_else(|_| panic!("{name} {place:?} {end:?}: hung or panicked"));
                case.join()
                    .unwrap_or_else(|_| panic!("{name} {place:?} {end:?}: panicked"));
                eprintln!("{name:20} {place:18?} {end:9?} {took:?}");
                max = max.max(took);
            }
        }
        worst.push((name, max));
    }
    eprintln!("slowest shutdown per exporter (export timeout {TIMEOUT:?}): {worst:?}");
}

/// Every way `init` can fail returns an error: a bad endpoint, an `https` gRPC endpoint whose
/// CA file is missing, a bad header, a zero timeout. None panics, in or out of a runtime.
#[test]
fn init_errors_are_errors_in_any_context() {
    let bad = || {
        vec![
            TraceConfig::new().with_endpoint("not a url"),
            TraceConfig::new()
                .with_endpoint("https://127.0.0.1:1")
                .with_protocol(Protocol::Grpc)
                .with_certificate("/nonexistent/ca.pem"),
            TraceConfig::new()
                .with_endpoint("https://127.0.0.1:1/v1/traces")
                .with_certificate("/nonexistent/ca.pem"),
            TraceConfig::new()
                .with_endpoint("127.0.0.1:4317")
                .with_header("bad header", "x"),
            TraceConfig::new()
                .with_batch(BatchSettings::default().with_export_timeout(Duration::ZERO)),
        ]
    };
    for config in bad() {
        assert!(gorax_trace::Telemetry::new(&config).is_err(), "{config:?}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for config in bad() {
            assert!(gorax_trace::Telemetry::new(&config).is_err(), "{config:?}");
        }
    });
}
