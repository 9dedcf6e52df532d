//! RED metrics beside the traces: request rate, errors and duration of the server, the client
//! and the queue, on the OpenTelemetry metrics API and SDK, with exemplars that point at the
//! sampled trace of a measurement.
//!
//! | instrument | kind | recorded by |
//! |---|---|---|
//! | `http.server.request.duration` | histogram, s | the server layer |
//! | `http.server.active_requests` | up-down counter | the server layer |
//! | `http.client.request.duration` | histogram, s | the client middleware |
//! | `rpc.server.call.duration` / `rpc.client.call.duration` | histogram, s | the gRPC modes |
//! | `messaging.client.operation.duration` | histogram, s | the queue producer (`send`) |
//! | `messaging.process.duration` | histogram, s | the queue consumer |
//! | `otel.sdk.exporter.span.exported`, `otel.sdk.processor.span.processed`, `gorax.exporter.retries` | counters | the export pipeline ([`ExportHealth`]) |
//!
//! Histograms use the bucket boundaries the semantic conventions advise
//! ([`DURATION_BUCKETS`]). Metrics are off unless asked for (`TRACING_METRICS_ENABLED=true`, or
//! `OTEL_METRICS_EXPORTER=otlp|prometheus`; [`TraceConfig::with_metrics`](crate::TraceConfig::with_metrics));
//! then they go over OTLP to the traces' collector (`/v1/metrics`, or
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) every `OTEL_METRIC_EXPORT_INTERVAL`, and/or to a
//! Prometheus scrape route ([`PrometheusScrape`]).
//!
//! Adapters take the instruments from their [`TelemetryHandle`](crate::TelemetryHandle)
//! ([`metrics`](crate::TelemetryHandle::metrics)): `None` when metrics are off, and the
//! request path then costs one branch. Recording is one SDK histogram update (no allocation once
//! the attribute set was seen) and, for sampled requests, one exemplar slot (see
//! the `exemplar` module).
//!
//! # Why our own
//!
//! The instruments are the OpenTelemetry SDK's; around them, these parts are our own. This
//! table is the one place that says why, against opentelemetry_sdk 0.33.1 (in `Cargo.lock`),
//! opentelemetry-otlp 0.33.1 and opentelemetry-prometheus 0.33.1 (checked in their released
//! sources; neither is in our tree).
//!
//! | part | what upstream lacks | what ours does | measured gain | delete when |
//! |---|---|---|---|---|
//! | exemplars (`exemplar`) | opentelemetry_sdk 0.33.1 declares the exemplar fields of its data points but always leaves them empty (`metrics/internal/aggregate.rs`; open-telemetry/opentelemetry-rust#3369) | per series and bucket, the latest measurement made in a sampled span, with its trace and span id; at most [`MAX_SERIES`] series, never waiting for a lock (skips counted) | a capability, not a speed-up: a slow bucket links to a trace; it costs ~0.9 k instructions per sampled request (+2.1 k unsampled, +3.0 k sampled for all of the recording; README, "Metrics") | the SDK fills exemplars in (trace-based filter, aligned-bucket reservoir) |
//! | bound series (`Metrics`) | opentelemetry_sdk 0.33.1 looks every measurement's attribute set up with SipHash over keys and values | each histogram series bound the first time its set is seen, found again by a hash of the values only and strings compared by address; route, host and queue names interned | recording +2.1 k / +3.0 k instructions per server request (unsampled / sampled), no allocation, instead of +6.6 k / +8.6 k (README, "Metrics", server bench under callgrind) | the SDK's lookup costs about the same |
//! | OTLP push exporter (`otlp`) | opentelemetry-otlp 0.33.1's `MetricExporter` exports the SDK's data as it is, so the exemplars above would have nowhere to go | opentelemetry-proto's transform of the collection, then the exemplars added to the histogram points; sent over the spans' transports ([`export`](crate::export)) | none measured: it exists for the exemplars | with the exemplars |
//! | push loop (`push`) | opentelemetry_sdk 0.33.1's `PeriodicReader::shutdown_with_timeout` ignores its timeout and waits a hard-coded 5 s for its thread (`metrics/periodic_reader.rs`), passing no deadline to the exporter | the collection on a thread of our own; the final push inside the one shutdown budget, counted as lost to the timeout if it misses it | with a collector that never answers, no 5 s beyond the shutdown budget (reasoned from the SDK's code above, not benchmarked; `tests/integration/metrics.rs` checks only that a silent collector does not hang the shutdown) | the SDK's reader honours the timeout it is given |
//! | Prometheus scrape (`prometheus`, feature `prometheus`) | opentelemetry-prometheus 0.33.1 is maintained (its 0.33.1 changelog un-deprecates it, opentelemetry-rust#3288) but renders through tikv's `prometheus` 0.14 registry and its text format, not OpenMetrics, and brings that crate beside prometheus-client | the same `ManualReader` collection written in OpenMetrics text with prometheus-client 0.26 (~160 lines of code) | none measured | opentelemetry-prometheus writes OpenMetrics, or a side-by-side measurement favours it |

mod exemplar;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) mod otlp;
#[cfg(feature = "prometheus")]
mod prometheus;
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
mod push;
#[cfg(any(feature = "prometheus", feature = "otlp-http", feature = "otlp-grpc"))]
mod reader;

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    BoundHistogram, BoundUpDownCounter, Histogram, Meter, ObservableCounter,
};
use opentelemetry::trace::SpanContext;

use crate::export::ExportHealth;
use crate::semconv::{self, metric};

pub(crate) use exemplar::Exemplars;
use exemplar::sdk_attribute_set_hash;
pub use exemplar::{Exemplar, MAX_SERIES};
#[cfg(feature = "prometheus")]
pub use prometheus::{OPENMETRICS_CONTENT_TYPE, PrometheusScrape};
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub(crate) use push::MetricsPush;

/// The bucket boundaries (seconds) of every duration histogram: the semantic conventions'
/// advice for `http.server.request.duration` and the other request durations.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The `http.request.method` values of `http.server.active_requests` (the last for every other
/// method).
const ACTIVE_METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];

/// The duration histograms, for [`Metrics::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[doc(hidden)]
pub enum RequestDuration {
    /// `http.server.request.duration`
    HttpServer,
    /// `http.client.request.duration`
    HttpClient,
    /// `rpc.server.call.duration`
    RpcServer,
    /// `rpc.client.call.duration`
    RpcClient,
    /// `messaging.process.duration`
    MessagingProcess,
    /// `messaging.client.operation.duration`
    MessagingOperation,
}

const ALL: [RequestDuration; 6] = [
    RequestDuration::HttpServer,
    RequestDuration::HttpClient,
    RequestDuration::RpcServer,
    RequestDuration::RpcClient,
    RequestDuration::MessagingProcess,
    RequestDuration::MessagingOperation,
];

impl RequestDuration {
    /// The instrument's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::HttpServer => metric::HTTP_SERVER_REQUEST_DURATION,
            Self::HttpClient => metric::HTTP_CLIENT_REQUEST_DURATION,
            Self::RpcServer => metric::RPC_SERVER_CALL_DURATION,
            Self::RpcClient => metric::RPC_CLIENT_CALL_DURATION,
            Self::MessagingProcess => metric::MESSAGING_PROCESS_DURATION,
            Self::MessagingOperation => metric::MESSAGING_CLIENT_OPERATION_DURATION,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::HttpServer => "Duration of HTTP server requests.",
            Self::HttpClient => "Duration of HTTP client requests.",
            Self::RpcServer => "Duration of RPCs measured by the server.",
            Self::RpcClient => "Duration of RPCs measured by the client.",
            Self::MessagingProcess => "Duration of processing operation.",
            Self::MessagingOperation => {
                "Duration of messaging operation initiated by a producer or consumer client."
            }
        }
    }

    /// The instrument with this name.
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|d| d.name() == name)
    }
}

/// The instruments adapters record with. Cheap to clone (one reference count).
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Instruments>);

/// One series of a duration histogram: bound to its attribute set, with that set's exemplar key.
struct Series {
    bound: BoundHistogram<f64>,
    hash: u64,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// The bound series by attribute set. hashbrown for its `Equivalent` lookups: a measurement's
/// attributes are looked up as they are, with the cheaper hash and comparison of [`SeriesKey`].
type SeriesMap = hashbrown::HashMap<SeriesKey, Series, foldhash::fast::RandomState>;

/// An attribute set as a series key. Hashed by the keys' lengths (the keys of one instrument's
/// sets differ in which are present, not in spelling; equality still compares them) and the
/// values' contents; compared string by string, by address first (static and interned strings
/// are the same string every time). About half the instructions of `KeyValue`'s own `Hash` and
/// `Eq`, which hash every key's text.
#[derive(Debug)]
struct SeriesKey(Box<[KeyValue]>);

/// A measurement's attributes, looked up without building a [`SeriesKey`].
struct SeriesQuery<'a>(&'a [KeyValue]);

/// The same for the attributes that are `Some` (what [`Metrics::record_present`] is given).
struct PresentQuery<'a>(&'a [Option<KeyValue>]);

fn hash_attributes<'a, H: std::hash::Hasher>(
    attrs: impl Iterator<Item = &'a KeyValue> + Clone,
    state: &mut H,
) {
    state.write_usize(attrs.clone().count());
    for kv in attrs {
        state.write_usize(kv.key.as_str().len());
        match &kv.value {
            opentelemetry::Value::String(s) => state.write(s.as_str().as_bytes()),
            opentelemetry::Value::I64(i) => state.write_i64(*i),
            opentelemetry::Value::Bool(b) => state.write_u8(u8::from(*b)),
            opentelemetry::Value::F64(f) => state.write_u64(f.to_bits()),
            // Arrays (no instrument here records them): by their text.
            other => state.write(other.as_str().as_bytes()),
        }
    }
}

fn same_str(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

fn same_attribute(x: &KeyValue, y: &KeyValue) -> bool {
    same_str(x.key.as_str(), y.key.as_str())
        && match (&x.value, &y.value) {
            (opentelemetry::Value::String(s), opentelemetry::Value::String(t)) => {
                same_str(s.as_str(), t.as_str())
            }
            // By bits, as hashed.
            (opentelemetry::Value::F64(f), opentelemetry::Value::F64(g)) => {
                f.to_bits() == g.to_bits()
            }
            (v, w) => v == w,
        }
}

fn same_attributes<'a>(a: impl Iterator<Item = &'a KeyValue>, b: &[KeyValue]) -> bool {
    let mut n = 0;
    for x in a {
        match b.get(n) {
            Some(y) if same_attribute(x, y) => n += 1,
            _ => return false,
        }
    }
    n == b.len()
}

impl std::hash::Hash for SeriesKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        hash_attributes(self.0.iter(), state);
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        same_attributes(self.0.iter(), &other.0)
    }
}

impl Eq for SeriesKey {}

impl std::hash::Hash for SeriesQuery<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        hash_attributes(self.0.iter(), state);
    }
}

impl hashbrown::Equivalent<SeriesKey> for SeriesQuery<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        same_attributes(self.0.iter(), &key.0)
    }
}

impl std::hash::Hash for PresentQuery<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        hash_attributes(self.0.iter().flatten(), state);
    }
}

impl hashbrown::Equivalent<SeriesKey> for PresentQuery<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        same_attributes(self.0.iter().flatten(), &key.0)
    }
}

/// Series of one duration histogram kept bound (more are recorded through the SDK's own
/// attribute lookup).
pub(crate) const MAX_BOUND_SERIES: usize = 2_000;

#[derive(Debug)]
struct Instruments {
    durations: [Histogram<f64>; 6],
    /// Per histogram, the series seen so far, bound: a measurement of a known attribute set costs
    /// a fast hash and a read lock instead of the SDK's SipHash lookup, and its exemplar key is
    /// already computed.
    series: [std::sync::RwLock<SeriesMap>; 6],
    /// `http.server.active_requests` bound per (method, scheme): [`ACTIVE_METHODS`] × http/https.
    http_server_active: Vec<[BoundUpDownCounter<i64>; 2]>,
    exemplars: Arc<Exemplars>,
    values: Interner,
    // Kept with the instruments: the export-health counters' callbacks.
    _health: Vec<ObservableCounter<u64>>,
}

impl Metrics {
    /// The instruments on `meter` (e.g. of a test `SdkMeterProvider`), with a store of their own
    /// for exemplars, and observable counters reading `health`.
    pub fn new(meter: &Meter, health: &ExportHealth) -> Self {
        Self::with_exemplars(meter, health, None, Arc::default(), None)
    }

    pub(crate) fn with_exemplars(
        meter: &Meter,
        health: &ExportHealth,
        keep: Option<Arc<crate::export::keep::KeepStats>>,
        exemplars: Arc<Exemplars>,
        pushes: Option<MetricsExportHealth>,
    ) -> Self {
        let durations = ALL.map(|d| {
            meter
                .f64_histogram(d.name())
                .with_unit("s")
                .with_description(d.description())
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        });
        let active = meter
            .i64_up_down_counter(metric::HTTP_SERVER_ACTIVE_REQUESTS)
            .with_unit("{request}")
            .with_description("Number of active HTTP server requests.")
            .build();
        let http_server_active = ACTIVE_METHODS
            .iter()
            .map(|method| {
                ["http", "https"].map(|scheme| {
                    active.bind(&[
                        KeyValue::new(semconv::HTTP_REQUEST_METHOD, *method),
                        KeyValue::new(semconv::URL_SCHEME, scheme),
                    ])
                })
            })
            .collect();
        Self(Arc::new(Instruments {
            durations,
            series: Default::default(),
            http_server_active,
            exemplars: exemplars.clone(),
            values: Interner::default(),
            _health: health_counters(meter, health, keep, exemplars, pushes),
        }))
    }

    /// Records `seconds` in the `duration` histogram under `attrs`; when `span` is sampled, the
    /// measurement may become the exemplar of its bucket.
    #[doc(hidden)]
    pub fn record(
        &self,
        duration: RequestDuration,
        seconds: f64,
        attrs: &[KeyValue],
        span: &SpanContext,
    ) {
        let i = duration as usize;
        let known = self.0.series[i]
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(series) = known.get(&SeriesQuery(attrs)) {
            series.bound.record(seconds);
            return self
                .0
                .exemplars
                .offer_hashed(duration as u8, series.hash, seconds, span);
        }
        let full = known.len() >= MAX_BOUND_SERIES;
        drop(known);
        if full {
            self.0.durations[i].record(seconds, attrs);
            return self.0.exemplars.offer(duration as u8, attrs, seconds, span);
        }
        let hash = {
            let mut known = self.0.series[i]
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let series = known
                .entry(SeriesKey(attrs.into()))
                .or_insert_with(|| Series {
                    bound: self.0.durations[i].bind(attrs),
                    hash: sdk_attribute_set_hash(attrs.iter()),
                });
            series.bound.record(seconds);
            series.hash
        };
        self.0
            .exemplars
            .offer_hashed(duration as u8, hash, seconds, span);
    }

    /// [`record`](Self::record) under the attributes of `attrs` that are `Some`, in order,
    /// without allocating (for attributes that are set only sometimes, such as `error.type`).
    #[doc(hidden)]
    pub fn record_present<const N: usize>(
        &self,
        duration: RequestDuration,
        seconds: f64,
        attrs: [Option<KeyValue>; N],
        span: &SpanContext,
    ) {
        // A known series is found from the attributes as they are.
        {
            let known = self.0.series[duration as usize]
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(series) = known.get(&PresentQuery(&attrs)) {
                series.bound.record(seconds);
                return self
                    .0
                    .exemplars
                    .offer_hashed(duration as u8, series.hash, seconds, span);
            }
        }
        let len = attrs.iter().flatten().count();
        let mut set = attrs.into_iter().flatten();
        let Some(first) = set.next() else {
            return self.record(duration, seconds, &[], span);
        };
        // The unused tail repeats the first attribute and is not passed on.
        let filler = first.clone();
        let mut first = Some(first);
        let items: [KeyValue; N] = std::array::from_fn(|_| {
            first
                .take()
                .or_else(|| set.next())
                .unwrap_or_else(|| filler.clone())
        });
        self.record(duration, seconds, &items[..len], span);
    }

    /// `value` (a route, a host, a queue name) as an attribute value, shared with earlier
    /// measurements instead of allocated (see [`Interner`]).
    #[doc(hidden)]
    pub fn intern(&self, value: &str) -> opentelemetry::StringValue {
        self.0.values.get(value)
    }

    /// Adds `delta` (1 when a request starts, -1 when it ends) to `http.server.active_requests`
    /// of `method` (as [`httpconv::method`](crate::httpconv::method) names it) and scheme.
    #[doc(hidden)]
    pub fn add_http_server_active(&self, delta: i64, method: &str, https: bool) {
        let row = ACTIVE_METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(ACTIVE_METHODS.len() - 1);
        self.0.http_server_active[row][usize::from(https)].add(delta);
    }
}

/// The export-health counters as observable counters (read when metrics are collected).
fn health_counters(
    meter: &Meter,
    health: &ExportHealth,
    keep: Option<Arc<crate::export::keep::KeepStats>>,
    exemplars: Arc<Exemplars>,
    pushes: Option<MetricsExportHealth>,
) -> Vec<ObservableCounter<u64>> {
    let exported = {
        let health = health.clone();
        meter
            .u64_observable_counter(metric::OTEL_SDK_EXPORTER_SPAN_EXPORTED)
            .with_unit("{span}")
            .with_description(
                "Spans the collector acknowledged, and (error.type: timeout, refused, throttled, \
                 rejected, export_failed) those lost in export.",
            )
            .with_callback(move |observer| {
                let s = health.snapshot();
                observer.observe(s.spans_exported, &[]);
                let by_kind =
                    s.spans_timed_out + s.spans_refused + s.spans_throttled + s.spans_rejected;
                for (n, kind) in [
                    (s.spans_failed - by_kind, crate::export::LossKind::Failed),
                    (s.spans_timed_out, crate::export::LossKind::Timeout),
                    (s.spans_refused, crate::export::LossKind::Refused),
                    (s.spans_throttled, crate::export::LossKind::Throttled),
                    (s.spans_rejected, crate::export::LossKind::Rejected),
                ] {
                    observer.observe(n, &[KeyValue::new(semconv::ERROR_TYPE, kind.as_str())]);
                }
            })
            .build()
    };
    let processed = {
        let health = health.clone();
        meter
            .u64_observable_counter(metric::OTEL_SDK_PROCESSOR_SPAN_PROCESSED)
            .with_unit("{span}")
            .with_description(
                "Spans the batch processor handed to the exporter, and (error.type) those it dropped.",
            )
            .with_callback(move |observer| {
                let s = health.snapshot();
                observer.observe(s.spans_exported + s.spans_failed, &[]);
                observer.observe(
                    s.spans_dropped - s.spans_dropped_bytes,
                    &[KeyValue::new(
                        semconv::ERROR_TYPE,
                        semconv::ERROR_TYPE_QUEUE_FULL,
                    )],
                );
                observer.observe(
                    s.spans_dropped_bytes,
                    &[KeyValue::new(
                        semconv::ERROR_TYPE,
                        semconv::ERROR_TYPE_QUEUE_BYTES_FULL,
                    )],
                );
            })
            .build()
    };
    let retries = {
        let health = health.clone();
        meter
            .u64_observable_counter(metric::GORAX_EXPORTER_RETRIES)
            .with_unit("{request}")
            .with_description("OTLP span export requests repeated after a retryable answer.")
            .with_callback(move |observer| observer.observe(health.snapshot().export_retries, &[]))
            .build()
    };
    let skipped = meter
        .u64_observable_counter(metric::GORAX_EXEMPLARS_SKIPPED)
        .with_unit("{exemplar}")
        .with_description("Exemplars not kept because their store was busy or full.")
        .with_callback(move |observer| observer.observe(exemplars.skipped(), &[]))
        .build();
    let mut counters = vec![exported, processed, retries, skipped];
    if let Some(pushes) = pushes {
        counters.push(
            meter
                .u64_observable_counter(metric::GORAX_EXPORTER_METRIC_PUSHES)
                .with_unit("{push}")
                .with_description(
                    "OTLP metric pushes the collector acknowledged, and (error.type: timeout, \
                     refused, throttled, export_failed) those lost or skipped.",
                )
                .with_callback(move |observer| {
                    use crate::export::LossKind;
                    let c = pushes.snapshot();
                    observer.observe(c.delivered, &[]);
                    for (n, kind) in [
                        (c.timed_out, LossKind::Timeout),
                        (c.refused, LossKind::Refused),
                        (c.throttled, LossKind::Throttled),
                        (c.other, LossKind::Failed),
                    ] {
                        observer.observe(n, &[KeyValue::new(semconv::ERROR_TYPE, kind.as_str())]);
                    }
                })
                .build(),
        );
    }
    if let Some(keep) = keep {
        let traces = keep.clone();
        counters.push(
            meter
                .u64_observable_counter(metric::GORAX_KEEP_TRACES)
                .with_unit("{trace}")
                .with_description(
                    "Local trees of unsampled requests that keep mode exported (failed or slow) or discarded.",
                )
                .with_callback(move |observer| {
                    observer.observe(
                        traces.traces_kept(),
                        &[KeyValue::new(semconv::GORAX_KEEP_OUTCOME, "kept")],
                    );
                    observer.observe(
                        traces.traces_discarded(),
                        &[KeyValue::new(semconv::GORAX_KEEP_OUTCOME, "discarded")],
                    );
                })
                .build(),
        );
        counters.push(
            meter
                .u64_observable_counter(metric::GORAX_KEEP_SPANS_EVICTED)
                .with_unit("{span}")
                .with_description("Buffered spans keep mode evicted over its bounds.")
                .with_callback(move |observer| observer.observe(keep.spans_evicted(), &[]))
                .build(),
        );
    }
    counters
}

/// Counters of the OTLP metric push: pushes the collector accepted, pushes lost and why, and
/// pushes skipped while the collector refused metrics or asked for quiet. Cheap to clone; every
/// clone sees the same counters. Sealed by [`Telemetry::shutdown`](crate::Telemetry::shutdown):
/// read right after it, the counters are final.
#[derive(Clone, Debug, Default)]
pub struct MetricsExportHealth {
    inner: Arc<std::sync::Mutex<PushCounts>>,
}

/// A point-in-time copy of [`MetricsExportHealth`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushCounts {
    /// Pushes the collector acknowledged.
    pub delivered: u64,
    /// Pushes lost for any reason (the sum of the four below); nothing recorded is lost with
    /// one unless it is the last, since the next push carries the cumulative totals.
    pub failed: u64,
    /// Of [`failed`](Self::failed): no answer within the export timeout or the shutdown budget.
    pub timed_out: u64,
    /// Of [`failed`](Self::failed): not sent, or answered 404/405/501/`UNIMPLEMENTED`, because
    /// the collector does not take metrics.
    pub refused: u64,
    /// Of [`failed`](Self::failed): not sent because the collector asked for quiet.
    pub throttled: u64,
    /// Of [`failed`](Self::failed): any other failure (collector unreachable, another status).
    pub other: u64,
    /// Data points the collector acknowledged but rejected (`partial_success`).
    pub rejected_data_points: u64,
    /// Whether the last push (at shutdown, the final one) was delivered.
    pub last_delivered: bool,
    /// Whether the final push (at shutdown) was counted by the push thread.
    final_counted: bool,
    sealed: bool,
}

impl PushCounts {
    /// Of [`failed`](Self::failed), the pushes that were never sent (refused or throttled).
    pub fn skipped(&self) -> u64 {
        self.refused + self.throttled
    }
}

impl MetricsExportHealth {
    /// A copy of the counters now.
    pub fn snapshot(&self) -> PushCounts {
        *self.lock()
    }

    /// Pushes the collector accepted.
    pub fn exports(&self) -> u64 {
        self.lock().delivered
    }

    /// Pushes that were lost (collector down, refused, throttled, timed out); nothing is lost
    /// with them unless it is the last, the next push carries the cumulative totals.
    pub fn failures(&self) -> u64 {
        self.lock().failed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PushCounts> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one push (nothing once sealed).
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    pub(crate) fn add(&self, outcome: &Result<u64, crate::export::LossKind>, final_push: bool) {
        let mut c = self.lock();
        if c.sealed {
            return;
        }
        c.final_counted |= final_push;
        Self::count(&mut c, outcome);
    }

    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    fn count(c: &mut PushCounts, outcome: &Result<u64, crate::export::LossKind>) {
        c.last_delivered = outcome.is_ok();
        match outcome {
            Ok(rejected) => {
                c.delivered += 1;
                c.rejected_data_points += rejected;
            }
            Err(kind) => {
                c.failed += 1;
                use crate::export::LossKind;
                match kind {
                    LossKind::Timeout => c.timed_out += 1,
                    LossKind::Refused => c.refused += 1,
                    LossKind::Throttled => c.throttled += 1,
                    _ => c.other += 1,
                }
            }
        }
    }

    /// Seals the counters: an outstanding push (`Some`: its reason) is counted as lost first.
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    pub(crate) fn seal(&self, outstanding: Option<crate::export::LossKind>) -> PushCounts {
        let mut c = self.lock();
        if !c.sealed
            && !c.final_counted
            && let Some(kind) = outstanding
        {
            Self::count(&mut c, &Err(kind));
        }
        c.sealed = true;
        *c
    }
}

/// Two handles to the same instruments are equal.
impl PartialEq for Metrics {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Metrics {}

/// Where metrics go (`OTEL_METRICS_EXPORTER`: a comma-separated list of `otlp`, `prometheus`,
/// `none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsExporters {
    /// Push over OTLP every export interval.
    pub otlp: bool,
    /// Keep them for a Prometheus scrape route ([`PrometheusScrape`]).
    pub prometheus: bool,
}

impl Default for MetricsExporters {
    /// OTLP only (the specification's default).
    fn default() -> Self {
        Self {
            otlp: true,
            prometheus: false,
        }
    }
}

impl MetricsExporters {
    /// No exporter: instruments record nothing anywhere.
    pub const NONE: Self = Self {
        otlp: false,
        prometheus: false,
    };

    /// These exporters with the OTLP push on or off.
    ///
    /// ```
    /// use gorax_trace::metrics::MetricsExporters;
    ///
    /// let scrape_only = MetricsExporters::NONE.with_prometheus(true);
    /// assert_eq!(scrape_only.to_string(), "prometheus");
    /// assert_eq!(MetricsExporters::default().with_otlp(false), MetricsExporters::NONE);
    /// ```
    pub const fn with_otlp(mut self, on: bool) -> Self {
        self.otlp = on;
        self
    }

    /// These exporters with the Prometheus scrape on or off.
    pub const fn with_prometheus(mut self, on: bool) -> Self {
        self.prometheus = on;
        self
    }
}

impl std::fmt::Display for MetricsExporters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.otlp, self.prometheus) {
            (true, true) => f.write_str("otlp,prometheus"),
            (true, false) => f.write_str("otlp"),
            (false, true) => f.write_str("prometheus"),
            (false, false) => f.write_str("none"),
        }
    }
}

/// Attribute values of bounded variety (routes, host names) shared instead of allocated on every
/// measurement: the first measurement of a value stores it, later ones clone a reference. At most
/// [`Interner::CAPACITY`] values are stored; past that, values are allocated per measurement.
/// Lookups take no lock (an `arc-swap` load).
#[derive(Debug, Default)]
pub(crate) struct Interner {
    values: arc_swap::ArcSwap<
        std::collections::HashMap<
            Box<str>,
            opentelemetry::StringValue,
            foldhash::fast::RandomState,
        >,
    >,
}

impl Interner {
    /// Values stored at most.
    pub(crate) const CAPACITY: usize = 1024;

    /// `value` as an attribute value.
    pub(crate) fn get(&self, value: &str) -> opentelemetry::StringValue {
        if let Some(v) = self.values.load().get(value) {
            return v.clone();
        }
        let shared: opentelemetry::StringValue = std::sync::Arc::<str>::from(value).into();
        if self.values.load().len() < Self::CAPACITY {
            self.values.rcu(|map| {
                let mut map = map.as_ref().clone();
                if map.len() < Self::CAPACITY {
                    map.entry(value.into()).or_insert_with(|| shared.clone());
                }
                map
            });
        }
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};

    /// `record_present` with gaps, `record` with the same attributes compacted, and the same set
    /// built from owned strings all land in one bound series; a different value or a missing
    /// attribute is another.
    #[test]
    fn present_and_compacted_attributes_are_one_series() {
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        let metrics = Metrics::new(&provider.meter("t"), &ExportHealth::default());
        let span = SpanContext::empty_context();
        let d = RequestDuration::HttpServer;
        let route = metrics.intern("/a/{id}");
        metrics.record_present(
            d,
            0.1,
            [
                Some(KeyValue::new("m", "GET")),
                None,
                Some(KeyValue::new("route", route.clone())),
                Some(KeyValue::new("status", 200_i64)),
            ],
            &span,
        );
        metrics.record(
            d,
            0.1,
            &[
                KeyValue::new("m", "GET"),
                KeyValue::new("route", route),
                KeyValue::new("status", 200_i64),
            ],
            &span,
        );
        metrics.record(
            d,
            0.1,
            &[
                KeyValue::new("m".to_owned(), "GET".to_owned()),
                KeyValue::new("route", "/a/{id}".to_owned()),
                KeyValue::new("status", 200_i64),
            ],
            &span,
        );
        assert_eq!(metrics.0.series[d as usize].read().unwrap().len(), 1);
        metrics.record_present(
            d,
            0.1,
            [Some(KeyValue::new("m", "GET")), None, None, None],
            &span,
        );
        metrics.record(d, 0.1, &[KeyValue::new("m", "PUT")], &span);
        assert_eq!(metrics.0.series[d as usize].read().unwrap().len(), 3);
    }

    /// Past the bound series, measurements still count (through the SDK's lookup), each in its
    /// own data point; the exemplar store stays bounded.
    #[test]
    fn more_series_than_are_bound_all_count() {
        let (scrape, reader) = PrometheusScrape::new();
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .build();
        let metrics = Metrics::new(&provider.meter("t"), &ExportHealth::default());
        let span = SpanContext::new(
            TraceId::from_bytes([1; 16]),
            SpanId::from_bytes([1; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let n = MAX_BOUND_SERIES as i64 + 300;
        for round in 0..2 {
            for i in 0..n {
                let attrs = [KeyValue::new("i", i)];
                metrics.record(
                    RequestDuration::HttpServer,
                    0.01 * f64::from(round + 1),
                    &attrs,
                    &span,
                );
            }
        }
        let mut rm = ResourceMetrics::default();
        scrape.collect(&mut rm).unwrap();
        let points: Vec<(u64, f64)> = rm
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == RequestDuration::HttpServer.name())
            .flat_map(|m| match m.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                    .data_points()
                    .map(|p| (p.count(), p.sum()))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        // The SDK's own cardinality limit (2000 per instrument) folds the rest into one
        // overflow point; nothing is lost in the totals.
        let total: u64 = points.iter().map(|p| p.0).sum();
        assert_eq!(total, 2 * n as u64);
        let sum: f64 = points.iter().map(|p| p.1).sum();
        assert!((sum - 0.03 * n as f64).abs() < 1e-6, "{sum}");
        assert!(metrics.0.exemplars.series() <= exemplar::MAX_SERIES);
        assert_eq!(metrics.0.series[0].read().unwrap().len(), MAX_BOUND_SERIES);
    }
}
