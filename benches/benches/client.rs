//! Per-request overhead of the client middleware over bare reqwest: sequential keep-alive POSTs
//! to an axum server on 127.0.0.1 that runs on its own thread (its own runtime), so that the
//! client side (the bench thread, a current-thread runtime that also drives reqwest's connection)
//! is what differs between variants:
//!
//! - `bare`: `reqwest::Client`;
//! - `middleware-chain`: reqwest-middleware's `ClientWithMiddleware` with no middleware;
//! - `gorax/sampled`, `gorax/unsampled`: with `ClientTraceMiddleware`, under a sampled or an
//!   unsampled caller context, spans going to the gorax batch processor with an exporter that
//!   discards them.
//!
//! - `gorax/sampled-no-export`: sampled, with a provider that has no span processor (the span is
//!   recorded, its end goes nowhere): the middleware's own cost without the export path.
//!
//! A second group, `client-inprocess`, runs the same middleware chains ending in a middleware that
//! returns a canned response without any network: the middleware's cost without the noise of
//! sockets and another thread.
//!
//! Before criterion's wall-clock times, it prints, per variant, the client-thread CPU time per
//! request (from `/proc/thread-self/schedstat`, nanoseconds, median of interleaved rounds) and
//! the allocations per request (process-wide: client and server; the differences are the
//! client's).
//!
//! `cargo bench -p gorax-benches --bench client`

use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::Router;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use gorax_benches::{CountingAlloc, allocations_per_call};
use gorax_trace_client::ClientTraceMiddleware;
use opentelemetry::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use reqwest::Url;
use tokio::runtime::Runtime;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const BODY: &[u8] = br#"{"workflow_id":"wf-1","input":{"n":1}}"#;

fn provider() -> SdkTracerProvider {
    gorax_benches::provider(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
}

/// The axum server on its own thread and runtime; returns its address.
fn start_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app =
                Router::new().route("/api/v1/workflows/{id}/execute", post(|| async { "ok" }));
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The end of an in-process chain: a canned `200 ok`, no network.
fn canned<'a>(
    _req: reqwest::Request,
    _extensions: &'a mut http::Extensions,
    _next: reqwest_middleware::Next<'a>,
) -> BoxFuture<'a, reqwest_middleware::Result<reqwest::Response>> {
    Box::pin(async { Ok(http::Response::new(reqwest::Body::from("ok")).into()) })
}

/// One way of sending the request.
enum Client {
    Bare(reqwest::Client),
    Chain(reqwest_middleware::ClientWithMiddleware),
}

struct Variant {
    name: &'static str,
    client: Client,
    cx: Context,
}

fn caller(traceparent: &str) -> Context {
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", traceparent.parse().unwrap());
    gorax_trace::propagation::Propagators::W3C.extract(&headers)
}

fn send(rt: &Runtime, v: &Variant, url: &Url) {
    let _active = v.cx.clone().attach();
    rt.block_on(async {
        let res = match &v.client {
            Client::Bare(c) => c.post(url.clone()).body(BODY).send().await.unwrap(),
            Client::Chain(c) => c.post(url.clone()).body(BODY).send().await.unwrap(),
        };
        black_box(res.bytes().await.unwrap());
    });
}

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), if available.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn variants(
    traced: &dyn Fn(&opentelemetry_sdk::trace::SdkTracer) -> ClientTraceMiddleware,
    tracer: &opentelemetry_sdk::trace::SdkTracer,
    untraced: &opentelemetry_sdk::trace::SdkTracer,
    in_process: bool,
) -> Vec<Variant> {
    let chain = |mw: Option<ClientTraceMiddleware>| {
        let mut b = reqwest_middleware::ClientBuilder::new(reqwest::Client::new());
        if let Some(mw) = mw {
            b = b.with(mw);
        }
        if in_process {
            b = b.with(canned);
        }
        Client::Chain(b.build())
    };
    let mut v = Vec::new();
    if !in_process {
        v.push(Variant {
            name: "bare",
            client: Client::Bare(reqwest::Client::new()),
            cx: caller(SAMPLED),
        });
    }
    v.push(Variant {
        name: "middleware-chain",
        client: chain(None),
        cx: caller(SAMPLED),
    });
    v.push(Variant {
        name: "gorax/sampled",
        client: chain(Some(traced(tracer))),
        cx: caller(SAMPLED),
    });
    v.push(Variant {
        name: "gorax/sampled-no-export",
        client: chain(Some(traced(untraced))),
        cx: caller(SAMPLED),
    });
    v.push(Variant {
        name: "gorax/unsampled",
        client: chain(Some(traced(tracer))),
        cx: caller(UNSAMPLED),
    });
    v
}

/// Prints client-thread CPU (median of interleaved rounds) and allocations per request.
fn table(
    title: &str,
    rt: &Runtime,
    variants: &[Variant],
    url: &Url,
    per_round: u64,
    rounds: usize,
) {
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for v in variants {
        for _ in 0..per_round / 10 {
            send(rt, v, url);
        }
    }
    for _ in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            if let Some(start) = thread_cpu_ns() {
                for _ in 0..per_round {
                    send(rt, v, url);
                }
                let end = thread_cpu_ns().unwrap_or(start);
                cpu[i].push((end - start) as f64 / per_round as f64);
            }
        }
    }
    let allocs: Vec<f64> = variants
        .iter()
        .map(|v| allocations_per_call(per_round, || send(rt, v, url)))
        .collect();
    let medians: Vec<f64> = cpu
        .iter_mut()
        .map(|xs| {
            xs.sort_by(f64::total_cmp);
            xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
        })
        .collect();
    println!(
        "{title:<26} {:>16} {:>12} {:>16}",
        "CPU µs/request", "over first", "allocations/req"
    );
    for (i, v) in variants.iter().enumerate() {
        println!(
            "  {:<24} {:>16.3} {:>+12.3} {:>16.1}",
            v.name,
            medians[i] / 1_000.0,
            (medians[i] - medians[0]) / 1_000.0,
            allocs[i]
        );
    }
}

fn bench(c: &mut Criterion) {
    let addr = start_server();
    let url: Url = format!("http://{addr}/api/v1/workflows/wf-1/execute")
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let provider = provider();
    let tracer = provider.tracer("bench");
    // Records spans (sampler on) but has no processor: span end costs nothing.
    let no_export = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .build();
    let untraced = no_export.tracer("bench");
    let traced = |t: &opentelemetry_sdk::trace::SdkTracer| {
        ClientTraceMiddleware::new().with_telemetry(gorax_benches::handle(t.clone()))
    };

    let network = variants(&traced, &tracer, &untraced, false);
    let in_process = variants(&traced, &tracer, &untraced, true);
    // For callgrind: `GORAX_CLIENT_BENCH_ONLY=gorax/unsampled:3000` runs that in-process variant
    // so many times and exits (instructions per request = difference of two counts / difference
    // of the two request counts).
    if let Ok(only) = std::env::var("GORAX_CLIENT_BENCH_ONLY") {
        let (name, n) = only.rsplit_once(':').expect("variant:count");
        let v = in_process.iter().find(|v| v.name == name).expect("variant");
        let n = n.parse::<u64>().expect("count");
        let allocations = allocations_per_call(n, || send(&rt, v, &url));
        eprintln!("allocations per call: {allocations:.2}");
        std::process::exit(0);
    }
    table("client (127.0.0.1)", &rt, &network, &url, 2_000, 15);
    table("client-inprocess", &rt, &in_process, &url, 20_000, 15);

    let mut g = c.benchmark_group("client");
    for v in &network {
        g.bench_function(v.name, |b| b.iter(|| send(&rt, v, &url)));
    }
    g.finish();
    let mut g = c.benchmark_group("client-inprocess");
    for v in &in_process {
        g.bench_function(v.name, |b| b.iter(|| send(&rt, v, &url)));
    }
    g.finish();
    let _ = provider.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
