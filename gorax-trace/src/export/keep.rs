//! Keeping the failures at low sampling rates (`TRACING_KEEP_ERRORS`,
//! `TRACING_KEEP_SLOWER_THAN_MS`): a request the head sampler dropped is still recorded, and its
//! local spans are exported when its local root span ends in error or slower than a threshold.
//!
//! Two parts, wired by [`init`](crate::init()) when [`KeepSettings::is_enabled`]:
//!
//! - [`KeepSampler`] wraps the head sampler: where it says *drop*, the span is recorded but not
//!   sampled (`RecordOnly`) — for a root, for a span whose caller did not sample it (remote
//!   parent), and for a local child of such a recording span. Sampled spans are unchanged.
//! - [`KeepProcessor`] sits in front of the export processor: sampled spans pass straight on;
//!   recorded-only spans wait in a buffer keyed by trace id until their local root ends. A root
//!   that ended in error (status Error, i.e. a 5xx for the server layer) or took at least the
//!   threshold is exported with every buffered span of its local tree, marked sampled, and the
//!   attribute `gorax.keep.reason` (`error` or `slow`) on the root; otherwise the tree is
//!   discarded. The buffer is bounded in spans and in estimated bytes: beyond them the oldest
//!   traces are evicted and counted ([`KeepStats::spans_evicted`]).
//!
//! What this does not do, honestly: the sampled flag this service propagates is still the head
//! sampler's, so downstream services follow it and do not export their part unless they run the
//! same mode (then each keeps its own failing subtree, which hangs off a parent the collector may
//! not have). Kept traces are not a uniform sample: do not extrapolate counts from them. Every
//! request of the unsampled majority now costs what a sampled one costs in the process (the
//! spans are built and buffered), without the export.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    SamplingDecision, SamplingResult, ShouldSample, Span, SpanData, SpanProcessor,
};

use super::span_data::span_size;

/// Attribute set on a kept local root: why it was kept (`error` or `slow`).
pub const KEEP_REASON: &str = "gorax.keep.reason";

/// When to keep a request the head sampler dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepSettings {
    /// Keep when the local root ends with status Error (`TRACING_KEEP_ERRORS`).
    pub errors: bool,
    /// Keep when the local root lasted at least this long (`TRACING_KEEP_SLOWER_THAN_MS`).
    pub slower_than: Option<Duration>,
    /// Recorded-only spans buffered at most, all traces together. Default 4096.
    pub max_buffered_spans: usize,
    /// Estimated bytes buffered at most. Default 4 MiB.
    pub max_buffered_bytes: usize,
}

impl Default for KeepSettings {
    fn default() -> Self {
        Self {
            errors: false,
            slower_than: None,
            max_buffered_spans: 4096,
            max_buffered_bytes: 4 << 20,
        }
    }
}

impl KeepSettings {
    /// Off: nothing the head sampler dropped is recorded.
    pub fn off() -> Self {
        Self::default()
    }

    /// With or without keeping errors.
    pub fn with_errors(mut self, on: bool) -> Self {
        self.errors = on;
        self
    }

    /// Keeping requests at least this slow (`None`: not by duration).
    pub fn with_slower_than(mut self, threshold: Option<Duration>) -> Self {
        self.slower_than = threshold;
        self
    }

    /// With these buffer bounds.
    pub fn with_buffer(mut self, max_spans: usize, max_bytes: usize) -> Self {
        self.max_buffered_spans = max_spans;
        self.max_buffered_bytes = max_bytes;
        self
    }

    /// Whether anything is kept (errors or a threshold).
    pub fn is_enabled(&self) -> bool {
        self.errors || self.slower_than.is_some()
    }

    fn reason(&self, span: &SpanData) -> Option<&'static str> {
        if self.errors && matches!(span.status, Status::Error { .. }) {
            return Some("error");
        }
        let took = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        self.slower_than
            .is_some_and(|t| took >= t)
            .then_some("slow")
    }
}

/// A sampler that records (without sampling) what `inner` drops, so that [`KeepProcessor`] can
/// export it after the fact. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct KeepSampler<S> {
    inner: S,
}

impl<S> KeepSampler<S> {
    /// Wraps the head sampler.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: ShouldSample + Clone + 'static> ShouldSample for KeepSampler<S> {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let mut result =
            self.inner
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        if result.decision == SamplingDecision::Drop {
            let record = match parent_context.filter(|cx| cx.has_active_span()) {
                None => true,
                Some(cx) => {
                    let span = cx.span();
                    let sc = span.span_context();
                    // A root, a caller that did not sample, or a recording local parent.
                    !sc.is_valid() || sc.is_remote() || span.is_recording()
                }
            };
            if record {
                result.decision = SamplingDecision::RecordOnly;
            }
        }
        result
    }
}

/// Counters of a [`KeepProcessor`].
#[derive(Debug, Default)]
pub struct KeepStats {
    traces_kept: AtomicU64,
    traces_discarded: AtomicU64,
    spans_kept: AtomicU64,
    spans_evicted: AtomicU64,
}

impl KeepStats {
    /// Local trees exported because their root failed or was slow.
    pub fn traces_kept(&self) -> u64 {
        self.traces_kept.load(Ordering::Relaxed)
    }
    /// Local trees discarded because their root was fine.
    pub fn traces_discarded(&self) -> u64 {
        self.traces_discarded.load(Ordering::Relaxed)
    }
    /// Spans exported through keeping (roots included).
    pub fn spans_kept(&self) -> u64 {
        self.spans_kept.load(Ordering::Relaxed)
    }
    /// Buffered spans evicted over the bounds (their tree can no longer be kept whole).
    pub fn spans_evicted(&self) -> u64 {
        self.spans_evicted.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct Buffer {
    traces: HashMap<TraceId, Pending>,
    /// Insertion order, for evicting the oldest trace; may hold ids already gone.
    order: VecDeque<(u64, TraceId)>,
    seq: u64,
    spans: usize,
    bytes: usize,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    spans: Vec<(SpanData, usize)>,
}

impl Buffer {
    fn remove(&mut self, trace_id: TraceId) -> Option<Pending> {
        let pending = self.traces.remove(&trace_id)?;
        self.spans -= pending.spans.len();
        self.bytes -= pending.spans.iter().map(|(_, b)| b).sum::<usize>();
        if self.order.len() > 2 * self.traces.len() + 64 {
            let traces = &self.traces;
            self.order
                .retain(|(seq, id)| traces.get(id).is_some_and(|p| p.seq == *seq));
        }
        Some(pending)
    }

    /// Evicts the oldest traces until one more span of `size` bytes fits; returns the spans
    /// evicted.
    fn make_room(&mut self, size: usize, max_spans: usize, max_bytes: usize) -> usize {
        let mut evicted = 0;
        while self.spans + 1 > max_spans || self.bytes + size > max_bytes {
            let Some((seq, id)) = self.order.pop_front() else {
                break;
            };
            if self.traces.get(&id).is_some_and(|p| p.seq == seq) {
                evicted += self.remove(id).map_or(0, |p| p.spans.len());
            }
        }
        evicted
    }
}

/// A span processor in front of `next` that holds recorded-only spans until their local root
/// ends, then exports the tree (failed or slow root) or discards it. See the
/// [module docs](self).
#[derive(Debug)]
pub struct KeepProcessor<P> {
    next: P,
    settings: KeepSettings,
    buffer: Mutex<Buffer>,
    stats: Arc<KeepStats>,
}

impl<P: SpanProcessor> KeepProcessor<P> {
    /// Keeps as `settings` say, exporting through `next`.
    pub fn new(next: P, settings: KeepSettings) -> Self {
        Self {
            next,
            settings,
            buffer: Mutex::new(Buffer::default()),
            stats: Arc::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<KeepStats> {
        self.stats.clone()
    }

    fn forward(&self, mut span: SpanData) {
        let sc = &span.span_context;
        span.span_context = SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().with_sampled(true),
            sc.is_remote(),
            sc.trace_state().clone(),
        );
        self.next.on_end(span);
    }

    fn root_ended(&self, mut root: SpanData) {
        let trace_id = root.span_context.trace_id();
        let reason = self.settings.reason(&root);
        let tree = {
            let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(mut pending) = buffer.remove(trace_id) else {
                drop(buffer);
                return self.decided(root, reason, Vec::new());
            };
            // The root's descendants among the buffered spans (children end first, so they are
            // here); other local roots' spans of the same trace stay buffered.
            let mut tree_ids = vec![root.span_context.span_id()];
            let mut tree = Vec::new();
            loop {
                let before = tree.len();
                let mut i = 0;
                while i < pending.spans.len() {
                    if tree_ids.contains(&pending.spans[i].0.parent_span_id) {
                        let (span, _) = pending.spans.swap_remove(i);
                        tree_ids.push(span.span_context.span_id());
                        tree.push(span);
                    } else {
                        i += 1;
                    }
                }
                if tree.len() == before {
                    break;
                }
            }
            if !pending.spans.is_empty() {
                let (seq, size) = (
                    pending.seq,
                    pending.spans.iter().map(|(_, b)| b).sum::<usize>(),
                );
                buffer.spans += pending.spans.len();
                buffer.bytes += size;
                buffer.traces.insert(trace_id, pending);
                buffer.order.push_back((seq, trace_id));
            }
            tree
        };
        if let Some(reason) = reason {
            root.attributes.push(KeyValue::new(KEEP_REASON, reason));
        }
        self.decided(root, reason, tree)
    }

    fn decided(&self, root: SpanData, reason: Option<&'static str>, tree: Vec<SpanData>) {
        if reason.is_none() {
            self.stats.traces_discarded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.stats.traces_kept.fetch_add(1, Ordering::Relaxed);
        self.stats
            .spans_kept
            .fetch_add(tree.len() as u64 + 1, Ordering::Relaxed);
        for span in tree {
            self.forward(span);
        }
        self.forward(root);
    }

    fn buffer(&self, span: SpanData) {
        let size = span_size(&span);
        let trace_id = span.span_context.trace_id();
        let (max_spans, max_bytes) = (
            self.settings.max_buffered_spans,
            self.settings.max_buffered_bytes,
        );
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut evicted = buffer.make_room(size, max_spans, max_bytes);
        if buffer.spans < max_spans && buffer.bytes + size <= max_bytes {
            buffer.spans += 1;
            buffer.bytes += size;
            let buffer = &mut *buffer;
            match buffer.traces.get_mut(&trace_id) {
                Some(pending) => pending.spans.push((span, size)),
                None => {
                    buffer.seq += 1;
                    let seq = buffer.seq;
                    buffer.order.push_back((seq, trace_id));
                    buffer.traces.insert(
                        trace_id,
                        Pending {
                            seq,
                            spans: vec![(span, size)],
                        },
                    );
                }
            }
        } else {
            evicted += 1; // larger than the whole budget
        }
        drop(buffer);
        if evicted > 0 {
            self.stats
                .spans_evicted
                .fetch_add(evicted as u64, Ordering::Relaxed);
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for KeepProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.next.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            return self.next.on_end(span);
        }
        let local_root = span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote;
        if local_root {
            self.root_ended(span);
        } else {
            self.buffer(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.next.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.next.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.next.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, TraceFlags, Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::{
        InMemorySpanExporter, Sampler, SdkTracerProvider, SimpleSpanProcessor,
    };

    fn provider(
        settings: KeepSettings,
    ) -> (SdkTracerProvider, InMemorySpanExporter, Arc<KeepStats>) {
        let exporter = InMemorySpanExporter::default();
        let keep = KeepProcessor::new(SimpleSpanProcessor::new(exporter.clone()), settings);
        let stats = keep.stats();
        let provider = SdkTracerProvider::builder()
            .with_sampler(KeepSampler::new(Sampler::ParentBased(Box::new(
                Sampler::AlwaysOff,
            ))))
            .with_span_processor(keep)
            .build();
        (provider, exporter, stats)
    }

    fn request(tracer: &opentelemetry_sdk::trace::SdkTracer, fail: bool) -> TraceId {
        let root = tracer.start("root");
        let trace_id = root.span_context().trace_id();
        assert!(root.is_recording() && !root.span_context().is_sampled());
        let cx = Context::new().with_span(root);
        let mut child = tracer.start_with_context("child", &cx);
        let grandchild = tracer.start_with_context(
            "grandchild",
            &cx.with_span(tracer.start_with_context("mid", &cx)),
        );
        drop(grandchild);
        child.end();
        if fail {
            cx.span().set_status(Status::error("boom"));
        }
        cx.span().end();
        trace_id
    }

    #[test]
    fn a_failed_dropped_request_exports_its_whole_local_tree() {
        let (provider, exporter, stats) = provider(KeepSettings::off().with_errors(true));
        let tracer = provider.tracer("t");
        let ok = request(&tracer, false);
        let failed = request(&tracer, true);
        let spans = exporter.get_finished_spans().unwrap();
        assert!(spans.iter().all(|s| s.span_context.trace_id() == failed));
        assert!(!spans.iter().any(|s| s.span_context.trace_id() == ok));
        let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
        names.sort();
        assert_eq!(names, ["child", "grandchild", "mid", "root"]);
        assert!(spans.iter().all(|s| s.span_context.is_sampled()));
        let root = spans.iter().find(|s| s.name == "root").unwrap();
        assert!(
            root.attributes
                .contains(&KeyValue::new(KEEP_REASON, "error"))
        );
        assert_eq!((stats.traces_kept(), stats.traces_discarded()), (1, 1));
        assert_eq!(stats.spans_kept(), 4);
        assert_eq!(stats.spans_evicted(), 0);
    }

    #[test]
    fn slow_threshold_zero_keeps_everything() {
        let (provider, exporter, stats) =
            provider(KeepSettings::off().with_slower_than(Some(Duration::ZERO)));
        let tracer = provider.tracer("t");
        request(&tracer, false);
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 4);
        let root = exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|s| s.name == "root")
            .unwrap();
        assert!(
            root.attributes
                .contains(&KeyValue::new(KEEP_REASON, "slow"))
        );
        assert_eq!(stats.traces_kept(), 1);
    }

    #[test]
    fn the_buffer_is_bounded_and_evicts_the_oldest_trace() {
        let (provider, exporter, stats) = provider(
            KeepSettings::off()
                .with_errors(true)
                .with_buffer(3, 1 << 20),
        );
        let tracer = provider.tracer("t");
        // An old request that never ends its root: its 3 children fill the buffer.
        let old = Context::new().with_span(tracer.start("old-root"));
        for _ in 0..3 {
            tracer.start_with_context("old-child", &old).end();
        }
        let failed = request(&tracer, true);
        assert_eq!(stats.spans_evicted(), 3, "the old trace made room");
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 4);
        assert!(spans.iter().all(|s| s.span_context.trace_id() == failed));
        old.span().end();
    }

    #[test]
    fn sampled_spans_pass_and_unsampled_parents_stay_unrecorded_without_keep() {
        let sampler = KeepSampler::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        let root =
            sampler.should_sample(None, TraceId::from(1u128), "r", &SpanKind::Server, &[], &[]);
        assert_eq!(root.decision, SamplingDecision::RecordAndSample);
        let remote_unsampled = Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(1u128),
            SpanId::from(2u64),
            TraceFlags::default(),
            true,
            Default::default(),
        ));
        let d = sampler.should_sample(
            Some(&remote_unsampled),
            TraceId::from(1u128),
            "r",
            &SpanKind::Server,
            &[],
            &[],
        );
        assert_eq!(
            d.decision,
            SamplingDecision::RecordOnly,
            "the caller dropped it"
        );
        // A local parent that records nothing (e.g. tracing disabled) is not resurrected.
        let local_dropped = Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(1u128),
            SpanId::from(2u64),
            TraceFlags::default(),
            false,
            Default::default(),
        ));
        let d = sampler.should_sample(
            Some(&local_dropped),
            TraceId::from(1u128),
            "c",
            &SpanKind::Internal,
            &[],
            &[],
        );
        assert_eq!(d.decision, SamplingDecision::Drop);
    }

    #[test]
    fn variables_and_builder_set_the_mode() {
        use crate::config::TraceConfig;
        let c = TraceConfig::from_vars([
            ("TRACING_KEEP_ERRORS", "true"),
            ("TRACING_KEEP_SLOWER_THAN_MS", "250"),
        ])
        .unwrap();
        assert!(c.keep().errors);
        assert_eq!(c.keep().slower_than, Some(Duration::from_millis(250)));
        assert!(!TraceConfig::new().keep().is_enabled());
        let c = TraceConfig::new()
            .with_keep_errors(true)
            .with_keep_slower_than(None);
        assert!(c.keep().is_enabled() && c.keep().slower_than.is_none());
        let err = TraceConfig::from_vars([
            ("TRACING_KEEP_ERRORS", "maybe"),
            ("TRACING_KEEP_SLOWER_THAN_MS", "-1"),
        ])
        .unwrap_err();
        let vars: Vec<&str> = err.errors().iter().map(|e| e.variable.as_str()).collect();
        assert_eq!(vars, ["TRACING_KEEP_ERRORS", "TRACING_KEEP_SLOWER_THAN_MS"]);
    }
}
