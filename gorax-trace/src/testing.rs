//! Test kit (feature `testing`): an in-memory tracer provider and span-tree assertions.
//!
//! ```
//! use gorax_trace::testing::TestTracing;
//! use opentelemetry::trace::{Tracer, TraceContextExt, SpanKind};
//! use opentelemetry::Context;
//!
//! let t = TestTracing::new();
//! let tracer = t.tracer();
//! tracer.in_span("parent", |cx| {
//!     let _child = tracer.start_with_context("child", &cx);
//! });
//! let spans = t.spans();
//! spans.assert_child_of("child", "parent");
//! assert_eq!(spans.find("parent").span_kind, SpanKind::Internal);
//! ```

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracer, SdkTracerProvider, ShouldSample, SpanData,
};

use crate::sampling::Sampler;
use crate::telemetry::{Settings, TelemetryHandle};

/// The value of environment variable `name` that points a test at a real server (a broker, a
/// collector). Unset or empty: `None`, after a visible `skipped` notice on stderr, so that plain
/// `cargo test` runs without the servers; under CI (`CI=true`) a missing server is a failure and
/// this panics.
pub fn server_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{name} is not set under CI=true: the test script must start this server")
        }
        _ => {
            let test = std::thread::current().name().unwrap_or("test").to_owned();
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "{test}: skipped: {name} not set (scripts/test.sh starts the test servers)"
            );
            None
        }
    }
}

/// A name no other test of this process, nor another test process, uses (for streams, queues,
/// span names on a shared receiver): `{prefix}-{pid}-{counter}`.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An in-memory tracer provider for tests: spans are exported synchronously when they end.
///
/// It is not installed globally (tests run as threads of one process); pass
/// [`tracer`](TestTracing::tracer) to the layer or middleware under test.
#[derive(Debug, Clone)]
pub struct TestTracing {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
}

impl Default for TestTracing {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTracing {
    /// Records every span (parent-based always-on).
    pub fn new() -> Self {
        Self::with_sampler(Sampler::ParentBasedAlwaysOn)
    }

    /// Records as `sampler` decides.
    pub fn with_sampler(sampler: Sampler) -> Self {
        Self::with_sdk_sampler(crate::sampling::sdk_sampler(sampler))
    }

    /// Records as an SDK sampler decides.
    pub fn with_sdk_sampler(sampler: impl ShouldSample + 'static) -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_simple_exporter(exporter.clone())
            .build();
        Self { provider, exporter }
    }

    /// A tracer of this provider.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer(crate::SCOPE_NAME)
    }

    /// A handle recording into this provider with default settings, for adapters'
    /// `with_telemetry`.
    pub fn handle(&self) -> TelemetryHandle {
        self.handle_with(Settings::default())
    }

    /// A handle recording into this provider with `settings`.
    pub fn handle_with(&self, settings: Settings) -> TelemetryHandle {
        TelemetryHandle::new(self.tracer(), settings, Default::default())
    }

    /// The provider.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// The spans finished so far.
    pub fn spans(&self) -> Spans {
        let _ = self.provider.force_flush();
        Spans(self.exporter.get_finished_spans().unwrap_or_default())
    }

    /// Forgets the spans finished so far.
    pub fn reset(&self) {
        self.exporter.reset();
    }
}

/// Finished spans with lookups and assertions that explain what they found when they fail.
#[derive(Debug, Clone)]
pub struct Spans(pub Vec<SpanData>);

impl Spans {
    /// The number of spans.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no spans.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All spans in the order they ended.
    pub fn iter(&self) -> impl Iterator<Item = &SpanData> {
        self.0.iter()
    }

    /// The span names in the order they ended.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|s| s.name.as_ref()).collect()
    }

    /// The only span named `name`; panics (listing the names) when there is none or several.
    #[track_caller]
    pub fn find(&self, name: &str) -> &SpanData {
        let found = self.find_all(name);
        match found.as_slice() {
            [one] => one,
            _ => panic!(
                "expected one span named {name:?}, found {}; spans: {:?}",
                found.len(),
                self.names()
            ),
        }
    }

    /// Every span named `name`.
    pub fn find_all(&self, name: &str) -> Vec<&SpanData> {
        self.0.iter().filter(|s| s.name == name).collect()
    }

    /// The span with this id.
    pub fn by_id(&self, id: SpanId) -> Option<&SpanData> {
        self.0.iter().find(|s| s.span_context.span_id() == id)
    }

    /// The parent of `span` among these spans.
    pub fn parent_of(&self, span: &SpanData) -> Option<&SpanData> {
        self.by_id(span.parent_span_id)
    }

    /// Asserts that the span named `child` is a child of the span named `parent` in the same trace.
    #[track_caller]
    pub fn assert_child_of(&self, child: &str, parent: &str) {
        let (c, p) = (self.find(child), self.find(parent));
        assert_eq!(
            c.span_context.trace_id(),
            p.span_context.trace_id(),
            "{child:?} and {parent:?} are in different traces"
        );
        assert_eq!(
            c.parent_span_id,
            p.span_context.span_id(),
            "{child:?} has parent {:?}, not {parent:?}",
            self.parent_of(c).map(|s| s.name.as_ref())
        );
    }

    /// The value of attribute `key` of `span`.
    pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// Asserts that `span` has attribute `key` equal to `value`.
    #[track_caller]
    pub fn assert_attr(&self, span: &SpanData, key: impl Into<Key>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        assert_eq!(
            Self::attr(span, key.as_str()),
            Some(&value),
            "attribute {key} of span {:?}; attributes: {:?}",
            span.name,
            span.attributes
        );
    }

    /// Asserts that `span` has no attribute `key`.
    #[track_caller]
    pub fn assert_no_attr(&self, span: &SpanData, key: &str) {
        assert!(
            Self::attr(span, key).is_none(),
            "span {:?} must not have {key}; attributes: {:?}",
            span.name,
            span.attributes
        );
    }
}
