//! The [`Telemetry`] handle: what [`init`](crate::init()) returns, what adapters are built
//! from, and the one process-wide value of the crate (the *installed* handle).
//!
//! Two binding rules would be one too many, so there is one: an adapter built from a handle
//! ([`ServerTraceLayer::new().with_telemetry(&telemetry)`], the same for the client and the
//! queue) records with that handle; an adapter built without one resolves the installed handle
//! **each time it records**, so a router, a client or a consumer may be built before or after
//! `init`. Before any handle is installed, adapters record nothing and still propagate context.
//!
//! [`ServerTraceLayer::new().with_telemetry(&telemetry)`]: https://docs.rs/gorax-trace-server

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TracerProvider as _};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, SdkTracer, SdkTracerProvider};

use crate::conventions::{HttpSemconv, MessagingSemconv, RpcSemconv};
use crate::export::ExportHealth;
use opentelemetry::Context;

use crate::propagation::{Carrier, CarrierMut, Propagators, W3cPropagator};
use crate::trust::TrustedPeers;

/// The instrumentation scope name of the spans gorax-trace makes (helpers of [`span`](crate::span),
/// the `tracing` bridge); the adapter crates record under their own ([`AdapterScope`]).
pub const SCOPE_NAME: &str = "gorax-trace";

/// How many adapter scopes a handle keeps tracers for (three crates, a few schema URLs each);
/// scopes past that record with the handle's tracer.
const SCOPE_SLOTS: usize = 16;
static NEXT_SCOPE_SLOT: AtomicUsize = AtomicUsize::new(0);

/// An instrumentation scope an adapter crate records its spans under: the crate's name and
/// version and the schema URL of the semantic-conventions version it emits (none where its keys
/// match no single version). A `static` per crate and schema; see
/// [`TelemetryHandle::tracer_in`] and [`AdapterScopes`].
#[derive(Debug)]
pub struct AdapterScope {
    name: &'static str,
    version: &'static str,
    schema_url: Option<&'static str>,
    slot: OnceLock<usize>,
}

impl AdapterScope {
    /// A scope (`version`: the crate's, e.g. `env!("CARGO_PKG_VERSION")`).
    pub const fn new(
        name: &'static str,
        version: &'static str,
        schema_url: Option<&'static str>,
    ) -> Self {
        Self {
            name,
            version,
            schema_url,
            slot: OnceLock::new(),
        }
    }

    /// The scope's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The scope's schema URL.
    pub fn schema_url(&self) -> Option<&'static str> {
        self.schema_url
    }

    fn to_scope(&self) -> opentelemetry::InstrumentationScope {
        let builder =
            opentelemetry::InstrumentationScope::builder(self.name).with_version(self.version);
        match self.schema_url {
            Some(url) => builder.with_schema_url(url).build(),
            None => builder.build(),
        }
    }
}

/// One adapter crate's scopes, one per schema URL it may emit under:
/// [`for_schema`](Self::for_schema) picks the one of a mode's
/// [`schema_url`](crate::conventions::RpcSemconv::schema_url).
///
/// ```
/// use gorax_trace::AdapterScopes;
/// use gorax_trace::conventions::RpcSemconv;
///
/// static SCOPES: AdapterScopes = AdapterScopes::new("my-grpc-layer", "0.1.0");
/// let scope = SCOPES.for_schema(RpcSemconv::Stable.schema_url());
/// assert_eq!(scope.schema_url(), Some("https://opentelemetry.io/schemas/1.45.0"));
/// assert_eq!(SCOPES.for_schema(RpcSemconv::Dup.schema_url()).schema_url(), None);
/// ```
#[derive(Debug)]
pub struct AdapterScopes {
    v1_45_0: AdapterScope,
    v1_44_0: AdapterScope,
    none: AdapterScope,
}

impl AdapterScopes {
    /// The scopes of crate `name` at `version`.
    pub const fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            v1_45_0: AdapterScope::new(name, version, Some(crate::conventions::SCHEMA_URL_1_45_0)),
            v1_44_0: AdapterScope::new(name, version, Some(crate::conventions::SCHEMA_URL_1_44_0)),
            none: AdapterScope::new(name, version, None),
        }
    }

    /// The scope for this schema URL (one of [`conventions`](crate::conventions)' or none; an
    /// unknown URL gets the scope without one).
    pub fn for_schema(&'static self, schema_url: Option<&str>) -> &'static AdapterScope {
        match schema_url {
            Some(crate::conventions::SCHEMA_URL_1_45_0) => &self.v1_45_0,
            Some(crate::conventions::SCHEMA_URL_1_44_0) => &self.v1_44_0,
            _ => &self.none,
        }
    }
}

/// What adapters record with: the tracer, the propagation fields, the HTTP convention mode and
/// whether the sampler reads route attributes. Cheap to clone (one reference count); taken from
/// a [`Telemetry`] with [`Telemetry::handle`] or `From<&Telemetry>`.
#[derive(Clone, Debug)]
pub struct TelemetryHandle(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    tracer: SdkTracer,
    /// The provider the tracer belongs to, when known: the adapters' scoped tracers come
    /// from it ([`TelemetryHandle::tracer_in`]).
    provider: Option<SdkTracerProvider>,
    /// The adapters' tracers, one per [`AdapterScope`] slot, made on first use.
    scoped: [OnceLock<SdkTracer>; SCOPE_SLOTS],
    propagators: Propagators,
    http_semconv: HttpSemconv,
    rpc_semconv: RpcSemconv,
    messaging_semconv: MessagingSemconv,
    route_attributes: bool,
    attribute_value_length_limit: Option<usize>,
    trusted_peers: TrustedPeers,
    health: ExportHealth,
    metrics: Option<crate::metrics::Metrics>,
    drops_unsampled_children: bool,
    exception_signal: crate::config::ExceptionSignal,
    /// Set when the [`Telemetry`] that owns the provider shuts it down: the SDK then starts
    /// only invalid spans, and [`TelemetryHandle::unsampled_child`] leaves it to the SDK.
    closed: AtomicBool,
    /// The logger of the logs pipeline, when OTLP logs are on (feature `logs`).
    #[cfg(feature = "logs")]
    logger: std::sync::OnceLock<opentelemetry_sdk::logs::SdkLogger>,
}

/// The installed handle: the one mutable static of the crate.
static INSTALLED: ArcSwapOption<Shared> = ArcSwapOption::const_empty();

/// What adapters use before any handle is installed (immutable).
static DISABLED: LazyLock<TelemetryHandle> = LazyLock::new(|| {
    let provider = SdkTracerProvider::builder()
        .with_sampler(crate::sampling::disabled())
        .build();
    TelemetryHandle::new(
        provider.tracer(SCOPE_NAME),
        Settings::default().with_drops_unsampled_children(true),
        ExportHealth::default(),
    )
});

/// The settings a [`TelemetryHandle`] carries besides its tracer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Which propagation fields adapters read and write.
    pub propagators: Propagators,
    /// Which HTTP attribute names adapters write.
    pub http_semconv: HttpSemconv,
    /// Which RPC attribute names the gRPC layers write.
    pub rpc_semconv: RpcSemconv,
    /// Which messaging names the queue crate writes (reserved: one version today).
    pub messaging_semconv: MessagingSemconv,
    /// Whether the server layer gives the sampler `http.route` and `http.request.method` when a
    /// span starts (needed by per-route sampling rules; costs an allocation per request).
    pub route_attributes: bool,
    /// Which connection peers the server layer lets continue their trace
    /// (`TRACING_TRUSTED_PEERS`; default: all).
    pub trusted_peers: TrustedPeers,
    /// The length limit (bytes, cut on a character boundary with
    /// [`truncate_value`](crate::httpconv::truncate_value)) of attribute values that adapters
    /// build from client-controlled input (`user_agent.original`, `url.*`, captured headers);
    /// `None` for none. Default
    /// [`DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT`](crate::httpconv::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT).
    pub attribute_value_length_limit: Option<usize>,
    /// The RED instruments adapters record with; `None` (the default): no metrics.
    pub metrics: Option<crate::metrics::Metrics>,
    /// Whether the tracer's sampler drops every span whose parent is valid and not sampled
    /// ([`Sampler::drops_children_of_unsampled_parents`](crate::sampling::Sampler::drops_children_of_unsampled_parents)):
    /// adapters then make such spans' span contexts themselves, as the SDK would, without the
    /// SDK span it builds only to discard ([`TelemetryHandle::unsampled_child`]). `false` by
    /// default, since a custom provider's sampler may record them; [`init`](crate::init()) sets
    /// it from the configured sampler (not with per-route rules or keep mode).
    pub drops_unsampled_children: bool,
    /// Where exceptions go (`OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`): span events (default), log
    /// records, or both.
    pub exception_signal: crate::config::ExceptionSignal,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            propagators: Propagators::default(),
            http_semconv: HttpSemconv::default(),
            rpc_semconv: RpcSemconv::default(),
            messaging_semconv: MessagingSemconv::default(),
            route_attributes: false,
            attribute_value_length_limit: Some(
                crate::httpconv::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT,
            ),
            trusted_peers: TrustedPeers::default(),
            metrics: None,
            drops_unsampled_children: false,
            exception_signal: crate::config::ExceptionSignal::default(),
        }
    }
}

impl Settings {
    /// With these propagators.
    pub fn with_propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// With this HTTP convention mode.
    pub fn with_http_semconv(mut self, mode: HttpSemconv) -> Self {
        self.http_semconv = mode;
        self
    }

    /// With this RPC convention mode.
    pub fn with_rpc_semconv(mut self, mode: RpcSemconv) -> Self {
        self.rpc_semconv = mode;
        self
    }

    /// With this messaging convention mode.
    pub fn with_messaging_semconv(mut self, mode: MessagingSemconv) -> Self {
        self.messaging_semconv = mode;
        self
    }

    /// With these trusted peers (see [`TrustedPeers`]).
    pub fn with_trusted_peers(mut self, peers: TrustedPeers) -> Self {
        self.trusted_peers = peers;
        self
    }

    /// With these RED instruments (`None`: no metrics).
    pub fn with_metrics(mut self, metrics: Option<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// With or without route attributes for the sampler.
    pub fn with_route_attributes(mut self, on: bool) -> Self {
        self.route_attributes = on;
        self
    }

    /// Saying whether the tracer's sampler drops every child of an unsampled parent (see
    /// [`drops_unsampled_children`](Self::drops_unsampled_children)).
    pub fn with_drops_unsampled_children(mut self, drops: bool) -> Self {
        self.drops_unsampled_children = drops;
        self
    }

    /// With this exception signal (see [`exception_signal`](Self::exception_signal)).
    pub fn with_exception_signal(mut self, signal: crate::config::ExceptionSignal) -> Self {
        self.exception_signal = signal;
        self
    }

    /// With this length limit of attribute values from client-controlled input (`None`: none).
    pub fn with_attribute_value_length_limit(mut self, limit: Option<usize>) -> Self {
        self.attribute_value_length_limit = limit;
        self
    }
}

impl TelemetryHandle {
    /// A handle recording with `tracer` (e.g. of a test provider) under `settings`.
    pub fn new(tracer: SdkTracer, settings: Settings, health: ExportHealth) -> Self {
        Self::build(tracer, None, settings, health)
    }

    /// A handle recording with `provider`: adapters record under their own instrumentation
    /// scopes ([`tracer_in`](Self::tracer_in)), other spans under [`SCOPE_NAME`].
    pub fn with_provider(
        provider: &SdkTracerProvider,
        settings: Settings,
        health: ExportHealth,
    ) -> Self {
        Self::build(
            provider.tracer(SCOPE_NAME),
            Some(provider.clone()),
            settings,
            health,
        )
    }

    fn build(
        tracer: SdkTracer,
        provider: Option<SdkTracerProvider>,
        settings: Settings,
        health: ExportHealth,
    ) -> Self {
        Self(Arc::new(Shared {
            tracer,
            provider,
            scoped: Default::default(),
            propagators: settings.propagators,
            http_semconv: settings.http_semconv,
            rpc_semconv: settings.rpc_semconv,
            messaging_semconv: settings.messaging_semconv,
            route_attributes: settings.route_attributes,
            attribute_value_length_limit: settings.attribute_value_length_limit,
            trusted_peers: settings.trusted_peers,
            health,
            metrics: settings.metrics,
            drops_unsampled_children: settings.drops_unsampled_children,
            exception_signal: settings.exception_signal,
            closed: AtomicBool::new(false),
            #[cfg(feature = "logs")]
            logger: std::sync::OnceLock::new(),
        }))
    }

    /// The logger `tracing` events are exported with, when OTLP logs are on (and not shut down).
    #[cfg(feature = "logs")]
    pub(crate) fn logger(&self) -> Option<&opentelemetry_sdk::logs::SdkLogger> {
        if self.0.closed.load(Ordering::Relaxed) {
            return None;
        }
        self.0.logger.get()
    }

    /// The span context of a span started under `parent` when it is certain not to be
    /// recorded: `parent` is valid and not sampled, and the sampler drops the children of such
    /// parents ([`Settings::drops_unsampled_children`]). It is what the SDK would give that span
    /// (a new span id in the parent's trace, flags cleared, the parent's `tracestate`), without
    /// building the SDK span that would be discarded. `None` when the SDK has to decide.
    ///
    /// ```
    /// use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    /// use gorax_trace::{Settings, TelemetryHandle};
    ///
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let handle = TelemetryHandle::new(
    ///     opentelemetry::trace::TracerProvider::tracer(&provider, "doc"),
    ///     Settings::default().with_drops_unsampled_children(true),
    ///     Default::default(),
    /// );
    /// let caller = SpanContext::new(
    ///     TraceId::from(7),
    ///     SpanId::from(9),
    ///     TraceFlags::default(),
    ///     true,
    ///     TraceState::NONE,
    /// );
    /// let child = handle.unsampled_child(&caller).unwrap();
    /// assert_eq!(child.trace_id(), caller.trace_id());
    /// assert_ne!(child.span_id(), caller.span_id());
    /// assert!(!child.is_sampled() && !child.is_remote());
    /// ```
    #[inline]
    pub fn unsampled_child(&self, parent: &SpanContext) -> Option<SpanContext> {
        self.unsampled_child_of(parent)
    }

    /// [`unsampled_child`](Self::unsampled_child) for a span started in the context `parent`
    /// (`None` too when `parent` suppresses telemetry: the SDK then starts an invalid span).
    #[inline]
    pub fn unsampled_child_in(&self, parent: &Context) -> Option<SpanContext> {
        if parent.is_telemetry_suppressed() {
            return None;
        }
        self.unsampled_child_of(parent.span().span_context())
    }

    #[inline]
    fn unsampled_child_of(&self, parent: &SpanContext) -> Option<SpanContext> {
        let shared = &*self.0;
        if !shared.drops_unsampled_children
            || !parent.is_valid()
            || parent.is_sampled()
            || shared.closed.load(Ordering::Relaxed)
        {
            return None;
        }
        Some(SpanContext::new(
            parent.trace_id(),
            RandomIdGenerator::default().new_span_id(),
            TraceFlags::default(),
            false,
            parent.trace_state().clone(),
        ))
    }

    /// The installed handle, or before any is installed one that records nothing (context
    /// still propagates, each outgoing call still gets its own span id).
    pub fn installed() -> Self {
        match INSTALLED.load_full() {
            Some(shared) => Self(shared),
            None => DISABLED.clone(),
        }
    }

    /// Makes this handle the installed one: what default-built adapters, the `span` helpers,
    /// [`CurrentTracer`](crate::subscriber::CurrentTracer) and
    /// [`TelemetryHandle::installed`] use from now on. The OpenTelemetry
    /// globals are left alone ([`Telemetry::install`] sets them too).
    pub fn install(&self) {
        INSTALLED.store(Some(self.0.clone()));
    }

    /// Installs this handle and returns the one installed before (for a scoped install that
    /// [`restore_installed`](Self::restore_installed) undoes).
    #[cfg(feature = "testing")]
    pub(crate) fn install_returning_previous(&self) -> Option<TelemetryHandle> {
        INSTALLED.swap(Some(self.0.clone())).map(Self)
    }

    /// If this handle is still the installed one, installs `previous` instead (`None`: nothing).
    #[cfg(feature = "testing")]
    pub(crate) fn restore_installed(&self, previous: Option<TelemetryHandle>) {
        let mine = Arc::as_ptr(&self.0);
        let previous = previous.map(|h| h.0);
        INSTALLED.rcu(|current| match current {
            Some(c) if Arc::as_ptr(c) == mine => previous.clone(),
            other => other.clone(),
        });
    }

    /// The tracer (scope [`SCOPE_NAME`]).
    pub fn tracer(&self) -> &SdkTracer {
        &self.0.tracer
    }

    /// The tracer of an adapter's instrumentation `scope` (its crate's name and version, and
    /// the schema URL of the conventions it emits), made once per handle and scope; without a
    /// known provider (a handle made from a bare tracer), [`tracer`](Self::tracer). Costs an
    /// atomic load once made.
    ///
    /// ```
    /// use gorax_trace::{AdapterScope, Settings, TelemetryHandle};
    /// use opentelemetry_sdk::trace::SdkTracerProvider;
    ///
    /// static SCOPE: AdapterScope =
    ///     AdapterScope::new("my-adapter", "1.0.0", Some(gorax_trace::conventions::SCHEMA_URL_1_45_0));
    /// let provider = SdkTracerProvider::builder().build();
    /// let handle = TelemetryHandle::with_provider(&provider, Settings::default(), Default::default());
    /// let tracer = handle.tracer_in(&SCOPE);
    /// # drop(tracer);
    /// ```
    pub fn tracer_in(&self, scope: &'static AdapterScope) -> &SdkTracer {
        let Some(provider) = &self.0.provider else {
            return &self.0.tracer;
        };
        let slot = *scope
            .slot
            .get_or_init(|| NEXT_SCOPE_SLOT.fetch_add(1, Ordering::Relaxed));
        match self.0.scoped.get(slot) {
            Some(cell) => cell.get_or_init(|| provider.tracer_with_scope(scope.to_scope())),
            None => &self.0.tracer,
        }
    }

    /// The propagation fields.
    pub fn propagators(&self) -> Propagators {
        self.0.propagators
    }

    /// The HTTP convention mode.
    pub fn http_semconv(&self) -> HttpSemconv {
        self.0.http_semconv
    }

    /// The RPC convention mode of the gRPC layers.
    pub fn rpc_semconv(&self) -> RpcSemconv {
        self.0.rpc_semconv
    }

    /// The messaging convention mode of the queue crate.
    pub fn messaging_semconv(&self) -> MessagingSemconv {
        self.0.messaging_semconv
    }

    /// Whether the sampler needs route attributes when a server span starts.
    #[doc(hidden)]
    pub fn route_attributes(&self) -> bool {
        self.0.route_attributes
    }

    /// The length limit of attribute values built from client-controlled input
    /// ([`Settings::attribute_value_length_limit`]); apply it with
    /// [`truncate_value`](crate::httpconv::truncate_value).
    pub fn attribute_value_length_limit(&self) -> Option<usize> {
        self.0.attribute_value_length_limit
    }

    /// Which connection peers may continue their trace through the server layer.
    pub fn trusted_peers(&self) -> &TrustedPeers {
        &self.0.trusted_peers
    }

    /// The export counters of the provider behind this handle.
    pub fn health(&self) -> ExportHealth {
        self.0.health.clone()
    }

    /// Where exceptions go ([`Settings::exception_signal`]).
    pub fn exception_signal(&self) -> crate::config::ExceptionSignal {
        self.0.exception_signal
    }

    /// The RED instruments, when metrics are on.
    pub fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.0.metrics.as_ref()
    }

    /// The caller's context from `carrier` under this handle's propagators
    /// ([`Propagators::extract`]).
    ///
    /// ```
    /// use gorax_trace::TelemetryHandle;
    /// use opentelemetry::trace::TraceContextExt;
    ///
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
    /// let cx = TelemetryHandle::installed().extract(&headers);
    /// assert!(cx.span().span_context().is_sampled());
    /// ```
    pub fn extract<C: Carrier + ?Sized>(&self, carrier: &C) -> Context {
        self.0.propagators.extract(carrier)
    }

    /// Writes the context of `cx` into `carrier` under this handle's propagators
    /// ([`Propagators::inject`]).
    pub fn inject<C: CarrierMut + ?Sized>(&self, cx: &Context, carrier: &mut C) {
        self.0.propagators.inject(cx, carrier)
    }

    /// [`inject`](Self::inject) with the current context.
    pub fn inject_current<C: CarrierMut + ?Sized>(&self, carrier: &mut C) {
        Context::map_current(|cx| self.inject(cx, carrier))
    }

    /// Whether two handles are the same one.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<&Telemetry> for TelemetryHandle {
    fn from(t: &Telemetry) -> Self {
        t.handle.clone()
    }
}

/// A handle recording with `tracer` (e.g. of a test provider) under default settings.
impl From<SdkTracer> for TelemetryHandle {
    fn from(tracer: SdkTracer) -> Self {
        Self::new(tracer, Settings::default(), ExportHealth::default())
    }
}

impl From<&TelemetryHandle> for TelemetryHandle {
    fn from(h: &TelemetryHandle) -> Self {
        h.clone()
    }
}

/// Which handle an adapter records with: a given one, or the installed one resolved when it
/// records (the default).
#[derive(Clone, Debug, Default)]
pub struct Binding(Option<TelemetryHandle>);

impl Binding {
    /// Always the handle installed at the time of recording.
    pub fn installed() -> Self {
        Self(None)
    }

    /// Always `handle`.
    pub fn fixed(handle: impl Into<TelemetryHandle>) -> Self {
        Self(Some(handle.into()))
    }

    /// The handle to record with now.
    pub fn get(&self) -> TelemetryHandle {
        match &self.0 {
            Some(h) => h.clone(),
            None => TelemetryHandle::installed(),
        }
    }
}

/// Running tracing: owns the tracer provider (and the gRPC exporter's runtime), hands out
/// [`TelemetryHandle`]s to adapters, and flushes and shuts down when dropped (or on
/// [`shutdown`](Self::shutdown)), every signal together within one budget
/// ([`TraceConfig::with_shutdown_timeout`](crate::TraceConfig::with_shutdown_timeout)).
///
/// Dropping never hangs: the export thread (and for gRPC its own runtime) is independent of the
/// application's runtime.
#[must_use = "tracing stops (and buffered spans are lost) when the handle is dropped"]
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    handle: TelemetryHandle,
    timeout: Duration,
    shut_down: bool,
    runtime: Mutex<Vec<crate::export::ExportRuntime>>,
    metrics: Option<MetricsPipeline>,
    keep: Option<Arc<crate::export::keep::KeepStats>>,
    /// Dropped with the rest (its server stops without waiting).
    #[cfg(feature = "viewer")]
    viewer: Option<crate::viewer::Viewer>,
    #[cfg(feature = "logs")]
    logs: Option<LogsPipeline>,
}

/// The logs side of a [`Telemetry`]: the logger provider and its processor's closer and counters.
#[cfg(feature = "logs")]
#[derive(Debug)]
pub(crate) struct LogsPipeline {
    pub(crate) provider: opentelemetry_sdk::logs::SdkLoggerProvider,
    pub(crate) closer: crate::logs::processor::LogsCloser,
    pub(crate) health: crate::logs::LogsHealth,
    /// The `otel.sdk.*` log counters, when metrics are on (kept for their callbacks).
    pub(crate) counters: Vec<opentelemetry::metrics::ObservableCounter<u64>>,
}

/// The metrics side of a [`Telemetry`]: the meter provider and its scrape and export counters.
#[derive(Debug)]
pub(crate) struct MetricsPipeline {
    pub(crate) provider: opentelemetry_sdk::metrics::SdkMeterProvider,
    #[cfg(feature = "prometheus")]
    pub(crate) prometheus: Option<crate::metrics::PrometheusScrape>,
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    pub(crate) push: Option<crate::metrics::MetricsPush>,
}

impl Telemetry {
    /// Wraps a provider built elsewhere (a test provider, an application's own pipeline) with
    /// these settings; not installed. `timeout` bounds flush and shutdown (the shutdown budget).
    ///
    /// ```
    /// use gorax_trace::{Settings, Telemetry};
    /// use opentelemetry_sdk::trace::SdkTracerProvider;
    /// use std::time::Duration;
    ///
    /// let telemetry = Telemetry::from_provider(
    ///     SdkTracerProvider::builder().build(),
    ///     Settings::default(),
    ///     Default::default(),
    ///     Duration::from_secs(1),
    /// );
    /// assert!(!telemetry.is_installed());
    /// ```
    pub fn from_provider(
        provider: SdkTracerProvider,
        settings: Settings,
        health: ExportHealth,
        timeout: Duration,
    ) -> Self {
        let handle = TelemetryHandle::with_provider(&provider, settings, health);
        Self {
            provider,
            handle,
            timeout,
            shut_down: false,
            runtime: Mutex::new(Vec::new()),
            metrics: None,
            keep: None,
            #[cfg(feature = "viewer")]
            viewer: None,
            #[cfg(feature = "logs")]
            logs: None,
        }
    }

    #[cfg(feature = "viewer")]
    pub(crate) fn with_viewer(mut self, viewer: Option<crate::viewer::Viewer>) -> Self {
        self.viewer = viewer;
        self
    }

    /// The trace viewer, when `TRACING_EXPORTER` (or [`with_exporters`](crate::TraceConfig::with_exporters))
    /// includes `viewer` (cargo feature `viewer`).
    #[cfg(feature = "viewer")]
    pub fn viewer(&self) -> Option<&crate::viewer::Viewer> {
        self.viewer.as_ref()
    }

    #[cfg(feature = "logs")]
    pub(crate) fn with_logs_pipeline(mut self, pipeline: Option<LogsPipeline>) -> Self {
        if let Some(p) = &pipeline {
            let _ = self
                .handle
                .0
                .logger
                .set(opentelemetry::logs::LoggerProvider::logger(
                    &p.provider,
                    SCOPE_NAME,
                ));
        }
        self.logs = pipeline;
        self
    }

    /// The counters of the OTLP logs pipeline, when logs are on (feature `logs`).
    #[cfg(feature = "logs")]
    pub fn logs_health(&self) -> Option<crate::logs::LogsHealth> {
        self.logs.as_ref().map(|l| l.health.clone())
    }

    pub(crate) fn with_runtime(self, runtime: Option<crate::export::ExportRuntime>) -> Self {
        self.runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(runtime);
        self
    }

    pub(crate) fn with_metrics_pipeline(mut self, pipeline: Option<MetricsPipeline>) -> Self {
        self.metrics = pipeline;
        self
    }

    pub(crate) fn with_keep_stats(
        mut self,
        stats: Option<Arc<crate::export::keep::KeepStats>>,
    ) -> Self {
        self.keep = stats;
        self
    }

    /// The counters of keep mode (`TRACING_KEEP_ERRORS`, `TRACING_KEEP_SLOWER_THAN_MS`), when it
    /// is on: trees kept and discarded, spans kept and evicted.
    pub fn keep_stats(&self) -> Option<Arc<crate::export::keep::KeepStats>> {
        self.keep.clone()
    }

    /// The meter provider, when metrics are on (installed as the OpenTelemetry global by
    /// [`install`](Self::install), so third-party instruments export with the family's).
    pub fn meter_provider(&self) -> Option<&opentelemetry_sdk::metrics::SdkMeterProvider> {
        self.metrics.as_ref().map(|m| &m.provider)
    }

    /// The Prometheus scrape, when metrics are on with the `prometheus` exporter.
    #[cfg(feature = "prometheus")]
    pub fn prometheus(&self) -> Option<crate::metrics::PrometheusScrape> {
        self.metrics.as_ref().and_then(|m| m.prometheus.clone())
    }

    /// The counters of the OTLP metric push, when metrics go over OTLP.
    pub fn metrics_export_health(&self) -> Option<crate::metrics::MetricsExportHealth> {
        #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
        {
            self.metrics
                .as_ref()
                .and_then(|m| m.push.as_ref())
                .map(crate::metrics::MetricsPush::health)
        }
        #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
        None
    }

    /// The shutdown budget: how long [`shutdown`](Self::shutdown) (or drop) may take for every
    /// signal together.
    pub fn shutdown_timeout(&self) -> Duration {
        self.timeout
    }

    /// Makes this the installed handle, and its provider and W3C propagator the OpenTelemetry
    /// globals, so that default-built adapters and third-party OpenTelemetry code use it.
    pub fn install(&self) {
        self.handle.install();
        opentelemetry::global::set_tracer_provider(self.provider.clone());
        opentelemetry::global::set_text_map_propagator(W3cPropagator::new(
            self.handle.propagators(),
        ));
        if let Some(m) = &self.metrics {
            opentelemetry::global::set_meter_provider(m.provider.clone());
        }
    }

    /// Whether this is the installed handle.
    pub fn is_installed(&self) -> bool {
        TelemetryHandle::installed().ptr_eq(&self.handle)
    }

    /// The handle adapters record with.
    pub fn handle(&self) -> TelemetryHandle {
        self.handle.clone()
    }

    /// The tracer.
    pub fn tracer(&self) -> &SdkTracer {
        self.handle.tracer()
    }

    /// The tracer provider.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Export counters: spans exported, dropped (queue full), failed.
    pub fn health(&self) -> ExportHealth {
        self.handle.health()
    }

    /// Exports everything finished so far (and, with metrics over OTLP, pushes the metrics;
    /// with OTLP logs, exports the queued records), waiting at most the export timeout.
    pub fn force_flush(&self) -> Result<(), opentelemetry_sdk::error::OTelSdkError> {
        let spans = self.provider.force_flush();
        #[cfg(feature = "logs")]
        if let Some(l) = &self.logs {
            l.provider.force_flush()?;
        }
        #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
        if let Some(push) = self.metrics.as_ref().and_then(|m| m.push.as_ref()) {
            push.flush()
                .map_err(|(_, e)| opentelemetry_sdk::error::OTelSdkError::InternalFailure(e))?;
        }
        spans
    }

    /// Flushes and shuts every signal down within the shutdown budget
    /// ([`shutdown_timeout`](Self::shutdown_timeout); the spans' last export and the metrics'
    /// last push run side by side), and reports what was lost over the handle's lifetime.
    ///
    /// `Ok` only when every span given to the exporter was acknowledged by the collector (HTTP
    /// 2xx or gRPC OK, minus what its `partial_success` rejects) and the final metrics push was
    /// delivered; otherwise a [`ShutdownError`](crate::ShutdownError) that says, per signal, how
    /// many were lost and why. The counters of [`health`](Self::health) and
    /// [`metrics_export_health`](Self::metrics_export_health) are final when this returns and
    /// agree with the error. Losing telemetry should not fail a service: log the error.
    ///
    /// ```
    /// use gorax_trace::config::{ExporterKind, TraceConfig};
    ///
    /// let telemetry = gorax_trace::init(TraceConfig::new().with_exporter(ExporterKind::None)).unwrap();
    /// if let Err(lost) = telemetry.shutdown() {
    ///     tracing::warn!(%lost, "telemetry lost at shutdown");
    /// }
    /// ```
    pub fn shutdown(mut self) -> Result<(), crate::ShutdownError> {
        self.shut_down = true;
        self.close()
    }

    /// Shuts every signal down within the budget and reports (see [`shutdown`](Self::shutdown)).
    fn close(&mut self) -> Result<(), crate::ShutdownError> {
        let started = std::time::Instant::now();
        let by = started + self.timeout;
        self.handle.0.closed.store(true, Ordering::Relaxed);
        #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
        let final_push = self
            .metrics
            .as_ref()
            .and_then(|m| m.push.as_ref())
            .map(crate::metrics::MetricsPush::begin_shutdown);
        #[cfg(feature = "logs")]
        let logs_closing = self.logs.as_ref().map(|l| l.closer.begin());
        let spans = self.provider.shutdown_with_timeout(self.timeout);
        #[cfg(feature = "logs")]
        let logs = logs_closing.and_then(|closing| {
            let counts = closing.wait(by);
            let health = self.logs.as_ref().map(|l| l.health.clone());
            if let Some(l) = self.logs.take() {
                let _ = l.provider.shutdown_with_timeout(Duration::from_millis(1));
            }
            (counts.created != counts.exported).then(|| {
                Box::new(crate::shutdown::LogsLost {
                    counts,
                    last_error: health.and_then(|h| h.last_error()),
                })
            })
        });
        #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
        let metrics = final_push.and_then(|push| match push.wait(by) {
            (Ok(()), _) => None,
            (Err((kind, error)), pushes) => Some(Box::new(crate::shutdown::MetricsLost {
                reason: kind.as_str(),
                error,
                pushes,
            })),
        });
        #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
        let metrics = {
            let _ = by;
            None
        };
        if let Some(m) = self.metrics.take() {
            // The readers left are manual (the push's, the scrape's): nothing to wait for.
            let _ = m
                .provider
                .shutdown_with_timeout(by.saturating_duration_since(std::time::Instant::now()));
        }
        self.stop_runtime();
        let h = self.handle.health().snapshot();
        let spans_given = h.spans_exported + h.spans_failed + h.spans_dropped;
        let traces = match spans {
            _ if h.spans_failed + h.spans_dropped > 0 => {
                Some(Box::new(crate::shutdown::TracesLost {
                    spans: spans_given,
                    delivered: h.spans_exported,
                    health: h,
                    last_error: self.handle.health().last_error(),
                }))
            }
            Ok(()) => None,
            // A provider of the application's own whose processor failed to shut down.
            Err(e) => Some(Box::new(crate::shutdown::TracesLost {
                spans: spans_given,
                delivered: h.spans_exported,
                health: h,
                last_error: Some(e.to_string()),
            })),
        };
        #[cfg(feature = "logs")]
        let all_delivered = traces.is_none() && metrics.is_none() && logs.is_none();
        #[cfg(not(feature = "logs"))]
        let all_delivered = traces.is_none() && metrics.is_none();
        if all_delivered {
            Ok(())
        } else {
            Err(crate::ShutdownError {
                traces,
                metrics,
                #[cfg(feature = "logs")]
                logs,
            })
        }
    }

    fn stop_runtime(&mut self) {
        let runtimes = std::mem::take(
            self.runtime
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for rt in runtimes {
            rt.stop();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if !self.shut_down
            && let Err(lost) = self.close()
        {
            tracing::warn!(%lost, "telemetry dropped; not everything was delivered");
        }
        self.stop_runtime();
        // A handle that is gone stops being the installed one: default adapters fall back to
        // recording nothing instead of writing into a shut-down provider.
        let mine = Arc::as_ptr(&self.handle.0);
        INSTALLED.rcu(|current| match current {
            Some(c) if Arc::as_ptr(c) == mine => None,
            other => other.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;
    use crate::TraceConfig;
    use crate::sampling::Sampler;

    fn caller(flags: u8) -> SpanContext {
        let state = TraceState::from_key_value([("k", "v")]).unwrap();
        SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            TraceFlags::new(flags),
            true,
            state,
        )
    }

    #[test]
    fn unsampled_child_only_where_the_sdk_would_drop_it() {
        let handle = |sampler, keep: bool, rules: bool| {
            let mut config = TraceConfig::new()
                .with_exporter(crate::config::ExporterKind::None)
                .with_sampler(sampler);
            if keep {
                config =
                    config.with_keep(crate::export::keep::KeepSettings::off().with_errors(true));
            }
            if rules {
                config = config.with_sampling_rule(crate::sampling::SamplingRule::new(
                    "/x",
                    Sampler::AlwaysOn,
                ));
            }
            Telemetry::new(&config).unwrap()
        };
        for (sampler, keep, rules, follows) in [
            (Sampler::ParentBasedAlwaysOn, false, false, true),
            (Sampler::ParentBasedTraceIdRatio(0.1), false, false, true),
            (Sampler::ParentBasedAlwaysOff, false, false, true),
            (Sampler::AlwaysOff, false, false, true),
            (Sampler::AlwaysOn, false, false, false),
            (Sampler::TraceIdRatio(0.5), false, false, false),
            (Sampler::ParentBasedAlwaysOn, true, false, false),
            (Sampler::ParentBasedAlwaysOn, false, true, false),
        ] {
            let telemetry = handle(sampler, keep, rules);
            let h = telemetry.handle();
            let child = h.unsampled_child(&caller(0x02));
            assert_eq!(
                child.is_some(),
                follows,
                "{sampler} keep={keep} rules={rules}"
            );
            if let Some(child) = child {
                assert_eq!(child.trace_id(), TraceId::from(7));
                assert_ne!(child.span_id(), SpanId::from(9));
                assert_eq!(child.trace_flags(), TraceFlags::default());
                assert!(!child.is_remote());
                assert_eq!(child.trace_state().header(), "k=v");
            }
            // A sampled or an invalid parent is the SDK's to decide.
            assert!(h.unsampled_child(&caller(0x01)).is_none());
            assert!(h.unsampled_child(&SpanContext::empty_context()).is_none());
            // Once the provider is shut down the SDK starts only invalid spans: no shortcut.
            telemetry.shutdown().unwrap();
            assert!(h.unsampled_child(&caller(0x00)).is_none());
        }
        // A handle over a provider of unknown sampler never takes the shortcut.
        let provider = SdkTracerProvider::builder().build();
        let bare = TelemetryHandle::from(provider.tracer("t"));
        assert!(bare.unsampled_child(&caller(0x00)).is_none());
        // Tracing disabled (parent-based always-off) and the handle before any init follow.
        let off = Telemetry::new(&TraceConfig::new().with_enabled(false)).unwrap();
        assert!(off.handle().unsampled_child(&caller(0x00)).is_some());
        assert!(DISABLED.unsampled_child(&caller(0x00)).is_some());
    }
}
