//! Memory bounded in bytes: with a blackhole collector (accepts connections, never answers),
//! 5 000 spans carrying a 120 KB attribute (the issue's `User-Agent`) go through `init`'s batch
//! processor with the default bounds. The queue's byte budget (16 MiB) drops and counts what does
//! not fit, resident memory grows by far less than the 5 000 × 120 KB the span count alone would
//! allow, and shutdown returns within the export timeout.

use std::time::{Duration, Instant};

use gorax_tests::{global_lock, unique};
use gorax_trace::config::{Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, Tracer};

/// Resident memory of this process in bytes (Linux), if available.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn blackhole_collector_and_huge_attributes_stay_within_the_byte_budget() {
    let _lock = global_lock();
    // Accepts (the kernel completes the handshake) and never reads or answers.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let config = TraceConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_service_name("gorax-it-memory")
        .with_batch(
            BatchSettings::default()
                .with_scheduled_delay(Duration::from_millis(100))
                .with_export_timeout(Duration::from_secs(2)),
        );
    let guard = gorax_trace::init(config).unwrap();
    let tracer = gorax_trace::TelemetryHandle::installed().tracer().clone();
    let user_agent = "u".repeat(120 * 1024);
    let name = unique("huge");
    let Some(before) = resident_bytes() else {
        return;
    };
    for _ in 0..5_000 {
        let mut span = tracer.start(name.clone());
        span.set_attribute(KeyValue::new("user_agent.original", user_agent.clone()));
        span.end();
    }
    let grown = resident_bytes().unwrap().saturating_sub(before);
    let s = guard.health().snapshot();
    eprintln!(
        "5 000 spans × 120 KB, blackhole collector: resident +{:.1} MiB, {s:?}",
        grown as f64 / (1 << 20) as f64
    );
    assert!(s.spans_dropped_bytes > 0, "{s:?}");
    // 5 000 × 120 KB = 586 MiB if only the span count bounded the queue.
    assert!(grown < 64 << 20, "resident +{grown} bytes");

    let started = Instant::now();
    let _ = guard.shutdown();
    // Liveness bound: the export timeout is 2 s; a wedged export would never return.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(blackhole);
}

/// The case end to end: collector down (blackhole), 5 000 requests with a 120 KB
/// `User-Agent` through a real server with the default layer. The attribute cap (4096
/// characters) and the byte budget keep resident memory growth far below the 586 MiB the raw
/// values would take.
#[test]
fn huge_user_agents_through_a_real_server_stay_bounded() {
    let _lock = global_lock();
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let config = TraceConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_service_name("gorax-it-memory-server")
        .with_batch(
            BatchSettings::default()
                .with_scheduled_delay(Duration::from_millis(100))
                .with_export_timeout(Duration::from_secs(2)),
        );
    let telemetry = gorax_trace::init(config).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(before) = resident_bytes() else {
        return;
    };
    let (ok, grown) = rt.block_on(async {
        let app = axum::Router::new()
            .route("/work", axum::routing::get(|| async { "ok" }))
            .layer(gorax_trace_server::ServerTraceLayer::new());
        let addr = gorax_tests::serve(app).await;
        let user_agent = "u".repeat(120 * 1024);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut ok = 0_u32;
        // 4 callers, 1 250 requests each, bounded in time too.
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (client, user_agent) = (client.clone(), user_agent.clone());
                tokio::spawn(async move {
                    let mut ok = 0_u32;
                    for _ in 0..1_250 {
                        if Instant::now() > deadline {
                            break;
                        }
                        let res = client
                            .get(format!("http://{addr}/work"))
                            .header("user-agent", &user_agent)
                            .send()
                            .await;
                        ok += u32::from(res.is_ok_and(|r| r.status() == 200));
                    }
                    ok
                })
            })
            .collect();
        for t in tasks {
            ok += t.await.unwrap();
        }
        (ok, resident_bytes().unwrap().saturating_sub(before))
    });
    let s = telemetry.health().snapshot();
    eprintln!(
        "{ok} requests × 120 KB User-Agent, blackhole collector: resident +{:.1} MiB, {s:?}",
        grown as f64 / (1 << 20) as f64
    );
    assert!(ok >= 1_000, "only {ok} requests succeeded");
    assert!(grown < 64 << 20, "resident +{grown} bytes");
    let _ = telemetry.shutdown();
    drop(blackhole);
}
