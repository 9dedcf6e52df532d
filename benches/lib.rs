//! Shared pieces of the benchmarks: a counting global allocator so that every bench reports
//! allocations per operation next to its time, and the provider every bench records into.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// A global allocator that counts allocations (install with `#[global_allocator]`).
#[derive(Debug)]
pub struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// Delegates to the system allocator and only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations so far in this process.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Average allocations per call of `f` over `n` calls.
pub fn allocations_per_call(n: u64, mut f: impl FnMut()) -> f64 {
    let before = allocations();
    for _ in 0..n {
        f();
    }
    (allocations() - before) as f64 / n as f64
}

/// An exporter that drops what it receives: export cost without the network.
#[derive(Debug)]
pub struct DiscardExporter;

impl opentelemetry_sdk::trace::SpanExporter for DiscardExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

/// A provider as a service runs it: `sampler`, the gorax batch processor with default bounds,
/// exporting to [`DiscardExporter`].
pub fn provider(
    sampler: opentelemetry_sdk::trace::Sampler,
) -> opentelemetry_sdk::trace::SdkTracerProvider {
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(gorax_trace::export::BatchProcessor::new(
            DiscardExporter,
            &gorax_trace::export::BatchSettings::default(),
        ))
        .build()
}

/// A handle over `tracer` as [`init`](gorax_trace::init()) makes one for a parent-based sampler
/// (what the benches give [`provider`]): children of unsampled parents get their span context
/// without an SDK span.
pub fn handle(tracer: opentelemetry_sdk::trace::SdkTracer) -> gorax_trace::TelemetryHandle {
    gorax_trace::TelemetryHandle::new(
        tracer,
        gorax_trace::Settings::default().with_drops_unsampled_children(true),
        gorax_trace::export::ExportHealth::default(),
    )
}
