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
/// Either pass [`handle`](TestTracing::handle) to the adapter under test (`with_telemetry`), or
/// [`install`](TestTracing::install) it for the test's duration so that everything recording
/// with the installed handle lands here: default-built adapters, the [`span`](crate::span)
/// helpers, [`CurrentTracer`](crate::subscriber::CurrentTracer) and OpenTelemetry's global
/// tracer.
///
/// ```
/// use gorax_trace::{span, testing::TestTracing};
/// use opentelemetry::trace::TraceContextExt;
///
/// let t = TestTracing::new();
/// {
///     let _installed = t.install(); // process-wide until dropped: serialize such tests
///     let wf = span::start_workflow("tenant-1", "wf-42", "exec-7");
///     span::start_step_with_parent(&wf, "fetch", "http").span().end();
///     wf.span().end();
/// }
/// let spans = t.spans();
/// spans.assert_child_of("workflow.step.execute", "workflow.execute");
/// spans.assert_attr(spans.find("workflow.execute"), "execution_id", "exec-7");
/// ```
#[derive(Debug, Clone)]
pub struct TestTracing {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
    /// Known from a [`Sampler`]: what `init` would set in the handle's settings.
    drops_unsampled_children: bool,
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
        Self {
            drops_unsampled_children: sampler.drops_children_of_unsampled_parents(),
            ..Self::with_sdk_sampler(crate::sampling::sdk_sampler(sampler))
        }
    }

    /// Records as an SDK sampler decides.
    pub fn with_sdk_sampler(sampler: impl ShouldSample + 'static) -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_simple_exporter(exporter.clone())
            .build();
        Self {
            provider,
            exporter,
            drops_unsampled_children: false,
        }
    }

    /// A tracer of this provider.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer(crate::SCOPE_NAME)
    }

    /// A handle recording into this provider with default settings, for adapters'
    /// `with_telemetry`; as [`init`](crate::init()) does, it says whether the sampler drops the
    /// children of unsampled parents when the sampler is a [`Sampler`].
    pub fn handle(&self) -> TelemetryHandle {
        self.handle_with(self.default_settings())
    }

    fn default_settings(&self) -> Settings {
        Settings::default().with_drops_unsampled_children(self.drops_unsampled_children)
    }

    /// A handle recording into this provider with `settings` (as given).
    pub fn handle_with(&self, settings: Settings) -> TelemetryHandle {
        TelemetryHandle::with_provider(&self.provider, settings, Default::default())
    }

    /// Makes this provider the installed handle (with default [`Settings`]) and OpenTelemetry's
    /// global tracer provider until the guard drops; then the handle installed before comes
    /// back (unless something else was installed meanwhile). The provider is not shut down, so
    /// [`spans`](Self::spans) still works after the guard is gone.
    ///
    /// Installing is process-wide and tests run as threads of one process: tests that install
    /// (or call [`init`](crate::init())) must not run at the same time (hold one mutex).
    #[must_use = "the test provider is uninstalled when the guard drops"]
    pub fn install(&self) -> InstalledTestTracing {
        self.install_with(self.default_settings())
    }

    /// [`install`](Self::install) with these settings (e.g. legacy HTTP names).
    #[must_use = "the test provider is uninstalled when the guard drops"]
    pub fn install_with(&self, settings: Settings) -> InstalledTestTracing {
        let handle = self.handle_with(settings);
        let previous = handle.install_returning_previous();
        let previous_global = opentelemetry::global::tracer_provider();
        opentelemetry::global::set_tracer_provider(self.provider.clone());
        InstalledTestTracing {
            handle,
            previous,
            previous_global: Some(previous_global),
        }
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

/// The guard of [`TestTracing::install`]: uninstalls the test provider when dropped.
#[derive(Debug)]
pub struct InstalledTestTracing {
    handle: TelemetryHandle,
    previous: Option<TelemetryHandle>,
    previous_global: Option<opentelemetry::global::GlobalTracerProvider>,
}

impl InstalledTestTracing {
    /// The installed handle.
    pub fn handle(&self) -> TelemetryHandle {
        self.handle.clone()
    }
}

impl Drop for InstalledTestTracing {
    fn drop(&mut self) {
        self.handle.restore_installed(self.previous.take());
        if let Some(global) = self.previous_global.take() {
            opentelemetry::global::set_tracer_provider(global);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceContextExt, Tracer};
    use opentelemetry::{Context, KeyValue};

    /// `parent` → `child`, `sibling` in one trace, `stray` in another trace, two spans named `twin`.
    fn tree() -> Spans {
        let t = TestTracing::new();
        let tracer = t.tracer();
        tracer.in_span("parent", |cx| {
            let mut child = tracer
                .span_builder("child")
                .with_attributes([KeyValue::new("k", "v")])
                .start_with_context(&tracer, &cx);
            opentelemetry::trace::Span::end(&mut child);
            tracer.in_span("sibling", |_| {});
            tracer.in_span("twin", |_| {});
            tracer.in_span("twin", |_| {});
        });
        let stray = tracer.start_with_context("stray", &Context::new());
        Context::new().with_span(stray).span().end();
        t.spans()
    }

    fn message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let err = std::panic::catch_unwind(f).expect_err("the assertion must fail");
        err.downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    }

    #[test]
    fn assertions_pass_on_the_right_tree() {
        let spans = tree();
        spans.assert_child_of("child", "parent");
        spans.assert_attr(spans.find("child"), "k", "v");
        spans.assert_no_attr(spans.find("child"), "other");
        assert_eq!(spans.find_all("twin").len(), 2);
    }

    #[test]
    fn find_fails_on_a_missing_or_repeated_name() {
        let spans = tree();
        let m = message(|| {
            tree().find("nope");
        });
        assert!(
            m.contains("expected one span named \"nope\", found 0"),
            "{m}"
        );
        assert!(m.contains("\"parent\""), "lists the names: {m}");
        let m = message(move || {
            spans.find("twin");
        });
        assert!(m.contains("found 2"), "{m}");
    }

    #[test]
    fn assert_child_of_fails_on_a_wrong_parent_or_trace() {
        let m = message(|| tree().assert_child_of("parent", "child"));
        assert!(
            m.contains("\"parent\" has parent None, not \"child\""),
            "{m}"
        );
        let m = message(|| tree().assert_child_of("sibling", "child"));
        assert!(
            m.contains("has parent Some(\"parent\"), not \"child\""),
            "{m}"
        );
        let m = message(|| tree().assert_child_of("stray", "parent"));
        assert!(m.contains("in different traces"), "{m}");
        let m = message(|| tree().assert_child_of("child", "nope"));
        assert!(m.contains("expected one span named \"nope\""), "{m}");
    }

    #[test]
    fn assert_attr_fails_on_a_wrong_or_missing_value() {
        let m = message(|| {
            let spans = tree();
            spans.assert_attr(spans.find("child"), "k", "w");
        });
        assert!(m.contains("attribute k of span \"child\""), "{m}");
        let m = message(|| {
            let spans = tree();
            spans.assert_attr(spans.find("child"), "k", 1_i64);
        });
        assert!(m.contains("attribute k"), "a string is not an int: {m}");
        let m = message(|| {
            let spans = tree();
            spans.assert_attr(spans.find("parent"), "k", "v");
        });
        assert!(m.contains("attribute k of span \"parent\""), "{m}");
    }

    #[test]
    #[should_panic(expected = "span \"child\" must not have k")]
    fn assert_no_attr_fails_when_present() {
        let spans = tree();
        spans.assert_no_attr(spans.find("child"), "k");
    }
}
