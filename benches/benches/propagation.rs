//! `traceparent` extract and inject: gorax's parser against the SDK's `TraceContextPropagator`,
//! in one binary so the ratio holds. Prints allocations per call next to criterion's times.
//!
//! `cargo bench -p gorax-benches --bench propagation`

use criterion::{Criterion, criterion_group, criterion_main};
use gorax_benches::{CountingAlloc, allocations_per_call};
use http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::hint::black_box;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_static(TP));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("user-agent", HeaderValue::from_static("bench/1"));
    h
}

fn bench(c: &mut Criterion) {
    let h = headers();
    let sdk = TraceContextPropagator::new();
    let cx = gorax_trace::propagation::Propagators::W3C.extract(&h);

    let report = [
        (
            "extract/gorax",
            allocations_per_call(10_000, || {
                black_box(gorax_trace::propagation::Propagators::W3C.extract(black_box(&h)));
            }),
        ),
        (
            "extract/sdk",
            allocations_per_call(10_000, || {
                black_box(
                    sdk.extract_with_context(&Context::new(), &HeaderExtractor(black_box(&h))),
                );
            }),
        ),
        (
            "inject/gorax",
            allocations_per_call(10_000, || {
                let mut out = HeaderMap::with_capacity(4);
                gorax_trace::propagation::Propagators::W3C.inject(black_box(&cx), &mut out);
                black_box(out);
            }),
        ),
        (
            "inject/sdk",
            allocations_per_call(10_000, || {
                let mut out = HeaderMap::with_capacity(4);
                sdk.inject_context(black_box(&cx), &mut HeaderInjector(&mut out));
                black_box(out);
            }),
        ),
    ];
    for (name, allocs) in report {
        println!("allocations per call  {name:<14} {allocs:.1}");
    }

    let mut g = c.benchmark_group("traceparent");
    g.bench_function("extract/gorax", |b| {
        b.iter(|| gorax_trace::propagation::Propagators::W3C.extract(black_box(&h)))
    });
    g.bench_function("extract/sdk", |b| {
        b.iter(|| sdk.extract_with_context(&Context::new(), &HeaderExtractor(black_box(&h))))
    });
    g.bench_function("parse_only/gorax", |b| {
        b.iter(|| gorax_trace::propagation::parse_traceparent(black_box(TP)))
    });
    g.bench_function("inject/gorax", |b| {
        b.iter(|| {
            let mut out = HeaderMap::with_capacity(4);
            gorax_trace::propagation::Propagators::W3C.inject(black_box(&cx), &mut out);
            out
        })
    });
    g.bench_function("inject/sdk", |b| {
        b.iter(|| {
            let mut out = HeaderMap::with_capacity(4);
            sdk.inject_context(black_box(&cx), &mut HeaderInjector(&mut out));
            out
        })
    });
    g.finish();
    assert!(cx.span().span_context().is_valid());
}

criterion_group!(benches, bench);
criterion_main!(benches);
