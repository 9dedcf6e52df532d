//! Registry conformance, black-box: the demo runs as a process (configured by its environment
//! only) against an OTLP/HTTP collector started here on 127.0.0.1, once per
//! `OTEL_SEMCONV_STABILITY_OPT_IN` mode of [`MODES`]. Every attribute key (span, span event,
//! resource, metric data point, log record of an event), event name and metric (name, instrument
//! kind, unit) that the crates emitted — HTTP server and client, gRPC server and client,
//! producer, consumer, the resource, each metric — is checked against the semantic-conventions
//! registry:
//!
//! - the key exists with its type and is not deprecated, except the mode's own small allow-list
//!   (the legacy HTTP keys in `http/dup`, the pre-stable RPC keys without `rpc`);
//! - each definition's required attributes are there (HTTP server and client spans, gRPC server
//!   and client spans, producer and consumer spans, the service entity, each checked metric),
//!   with the conditionally required ones whose condition always holds here ([`APPLICABLE`]);
//! - metric data points (and gRPC spans in `rpc` mode) carry no registry key outside their
//!   definitions;
//! - closed enums hold registry values (open ones registry values or the extras table's);
//! - keys, values, events and metrics outside the registry are in the project's extras table (the
//!   README's, between the `semconv-extras` markers).
//!
//! Every one of those kinds must have been collected at least once, so an empty collection fails.
//! A second run per mode, the trace-context participant making a failed call, adds `error.type`
//! and the exception events (span event and log record). The application's own `tracing` events
//! (their fields are its own) are not checked.
//!
//! The registry is `data/semconv-table.tsv`, derived from `../shared/semconv` by
//! `scripts/semconv-table.py` (run from a fresh clone, where `../shared` may be absent).
//!
//! `scripts/test.sh --run cargo test -p gorax-examples --test semconv_registry` (the Redis and
//! NATS runs need their servers; CI runs it so).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use support::{Collector, runtime, server_env};

// ---------------------------------------------------------------------------------------------
// The modes.

/// Which RPC keys a mode emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    /// Without `rpc` in the opt-in: the pre-stable keys (`rpc.system`, `rpc.service`, numeric
    /// `rpc.grpc.status_code`).
    Legacy,
    /// `rpc`: the stable conventions only.
    Stable,
    /// `rpc/dup`: both.
    Dup,
}

/// One value of `OTEL_SEMCONV_STABILITY_OPT_IN` and what it must emit.
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// The variable's value (`None`: unset).
    opt_in: Option<&'static str>,
    /// The legacy (pre-1.21) HTTP keys beside the stable ones.
    legacy_http: bool,
    /// The RPC keys.
    rpc: Rpc,
}

/// The modes the demo and the participant run in (a new opt-in value is one more row, e.g.
/// `messaging` when stable messaging conventions exist; [`Mode::allowed_deprecated`] and
/// [`definitions`] say what each kind of row emits).
const MODES: &[Mode] = &[
    Mode {
        opt_in: None,
        legacy_http: false,
        rpc: Rpc::Legacy,
    },
    Mode {
        opt_in: Some("http"),
        legacy_http: false,
        rpc: Rpc::Legacy,
    },
    Mode {
        opt_in: Some("http/dup"),
        legacy_http: true,
        rpc: Rpc::Legacy,
    },
    Mode {
        opt_in: Some("rpc"),
        legacy_http: false,
        rpc: Rpc::Stable,
    },
    Mode {
        opt_in: Some("rpc/dup"),
        legacy_http: false,
        rpc: Rpc::Dup,
    },
    Mode {
        opt_in: Some("http/dup,rpc/dup"),
        legacy_http: true,
        rpc: Rpc::Dup,
    },
];

/// The conditionally required keys whose condition always holds for what the crates record in
/// the demo (a response status was received, a route matched, the operation has a type, the
/// destination is a low-cardinality queue name, a gRPC method and status are known): required
/// like the registry's own, except [`HTTP_STATUS`] on a failure (`error.type`) that may have
/// had no response. Each must be conditionally required in the table (a test checks).
const APPLICABLE: &[(&str, &[&str])] = &[
    (
        "span.http.server",
        &["http.response.status_code", "http.route"],
    ),
    ("span.http.client", &["http.response.status_code"]),
    (
        "metric.http.server.request.duration",
        &["http.response.status_code", "http.route"],
    ),
    (
        "metric.http.client.request.duration",
        &["http.response.status_code"],
    ),
    ("span.rpc.grpc.call.server", &["rpc.method"]),
    (
        "metric.rpc.server.call.duration",
        &["rpc.method", "rpc.status_code"],
    ),
    (
        "metric.rpc.client.call.duration",
        &["rpc.method", "rpc.status_code", "server.address"],
    ),
    (
        "messaging.send.producer",
        &["messaging.operation.type", "messaging.destination.name"],
    ),
    (
        "messaging.process.consumer",
        &["messaging.operation.type", "messaging.destination.name"],
    ),
    (
        "metric.messaging.client.operation.duration",
        &["messaging.operation.type", "messaging.destination.name"],
    ),
    (
        "metric.messaging.process.duration",
        &["messaging.destination.name"],
    ),
];

/// `http.response.status_code`: conditionally required "if and only if one was received/sent".
const HTTP_STATUS: &str = "http.response.status_code";

/// The legacy HTTP keys `http/dup` must emit (deprecated in the registry).
const LEGACY_HTTP_KEYS: &[&str] = &[
    "http.method",
    "http.target",
    "http.status_code",
    "http.user_agent",
    "http.scheme",
    "http.url",
    "http.flavor",
];

/// The pre-stable RPC keys emitted without `rpc` in the opt-in (deprecated in the registry).
const LEGACY_RPC_KEYS: &[&str] = &["rpc.system", "rpc.service", "rpc.grpc.status_code"];

/// What the pre-stable gRPC conventions (before v1.37) required of spans and metrics; the
/// registry no longer defines them.
const LEGACY_RPC_REQUIRED: &[&str] = &["rpc.system"];

impl Mode {
    /// The deprecated keys this mode may emit.
    fn allowed_deprecated(&self) -> BTreeSet<&'static str> {
        let mut allowed = BTreeSet::new();
        if self.legacy_http {
            allowed.extend(LEGACY_HTTP_KEYS);
        }
        if self.rpc != Rpc::Stable {
            allowed.extend(LEGACY_RPC_KEYS);
        }
        allowed
    }

    fn name(&self) -> &'static str {
        self.opt_in.unwrap_or("(unset)")
    }
}

// ---------------------------------------------------------------------------------------------
// The registry table and the extras table.

/// One attribute of the registry.
#[derive(Clone, Debug)]
struct Attr {
    /// `string`, `int`, `double`, `boolean`, `string[]`..., `template[T]`, `enum[string]`,
    /// `enum[int]`.
    ty: String,
    /// `-`, or what replaces it (`renamed:<key>`, `obsoleted`, ...).
    deprecated: String,
    /// An enum's values (deprecated ones prefixed `~`).
    members: Vec<String>,
    /// A closed enum (it has `_OTHER`): only its values are valid. An open enum's other values
    /// must be in the extras table.
    closed: bool,
}

/// The registry facts the check uses.
#[derive(Debug, Default)]
struct Registry {
    snapshot: String,
    attrs: BTreeMap<String, Attr>,
    /// name → (instrument, unit, deprecated)
    metrics: BTreeMap<String, (String, String, String)>,
    /// name → deprecated
    events: BTreeMap<String, String>,
    /// definition id → required keys
    required: BTreeMap<String, Vec<String>>,
    /// definition id → conditionally required keys
    conditional: BTreeMap<String, Vec<String>>,
    /// definition id → all its attributes
    attributes: BTreeMap<String, Vec<String>>,
}

impl Registry {
    fn load() -> Self {
        let text = include_str!("data/semconv-table.tsv");
        let mut r = Registry::default();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            match f[0] {
                "snapshot" => r.snapshot = f[1].to_owned(),
                "attr" => {
                    let members = match f[5] {
                        "-" => Vec::new(),
                        m => m.split(',').map(str::to_owned).collect(),
                    };
                    r.attrs.insert(
                        f[1].to_owned(),
                        Attr {
                            ty: f[2].to_owned(),
                            deprecated: f[4].to_owned(),
                            members,
                            closed: f[6] == "closed",
                        },
                    );
                }
                "metric" => {
                    r.metrics.insert(
                        f[1].to_owned(),
                        (f[2].to_owned(), f[3].to_owned(), f[5].to_owned()),
                    );
                }
                "event" => {
                    r.events.insert(f[1].to_owned(), f[3].to_owned());
                }
                "required" | "conditional" | "attributes" => {
                    let keys = match f[2] {
                        "-" => Vec::new(),
                        k => k.split(',').map(str::to_owned).collect(),
                    };
                    let rows = match f[0] {
                        "required" => &mut r.required,
                        "conditional" => &mut r.conditional,
                        _ => &mut r.attributes,
                    };
                    rows.insert(f[1].to_owned(), keys);
                }
                other => panic!("unknown row {other:?} in semconv-table.tsv"),
            }
        }
        assert!(
            r.attrs.len() > 500 && !r.metrics.is_empty() && !r.required.is_empty(),
            "semconv-table.tsv is truncated"
        );
        r
    }

    /// The registry attribute `key` is, directly or as a template (`prefix.<suffix>`).
    fn attr(&self, key: &str) -> Option<(&str, &Attr)> {
        if let Some((k, a)) = self.attrs.get_key_value(key) {
            return Some((k.as_str(), a));
        }
        let mut prefix = key;
        while let Some((head, _)) = prefix.rsplit_once('.') {
            if let Some((k, a)) = self.attrs.get_key_value(head)
                && a.ty.starts_with("template[")
            {
                return Some((k.as_str(), a));
            }
            prefix = head;
        }
        None
    }

    /// The keys `definition` requires, with the conditionally required ones of [`APPLICABLE`]
    /// (without [`HTTP_STATUS`] for an item that `failed`).
    fn required(&self, definition: &str, failed: bool) -> Vec<String> {
        let mut keys = self
            .required
            .get(definition)
            .unwrap_or_else(|| panic!("{definition} is not in semconv-table.tsv"))
            .clone();
        for (d, applicable) in APPLICABLE {
            if *d == definition {
                keys.extend(
                    applicable
                        .iter()
                        .filter(|k| !(failed && **k == HTTP_STATUS))
                        .map(|k| k.to_string()),
                );
            }
        }
        keys
    }
}

/// The project's own names outside the registry: the README's table between the
/// `semconv-extras` markers (its one source).
#[derive(Debug, Default)]
struct Extras {
    /// key → type
    attrs: BTreeMap<String, String>,
    /// (key, value) of an enum the registry lacks
    values: BTreeSet<(String, String)>,
    /// name → (instrument, unit)
    metrics: BTreeMap<String, (String, String)>,
    events: BTreeSet<String>,
}

impl Extras {
    fn load() -> Self {
        Self::parse(include_str!("../../README.md"))
    }

    fn parse(readme: &str) -> Self {
        let start = readme
            .find("<!-- semconv-extras -->")
            .expect("the README's semconv-extras table");
        let end = readme[start..]
            .find("<!-- /semconv-extras -->")
            .expect("the end of the README's semconv-extras table")
            + start;
        let mut extras = Extras::default();
        let cell = |s: &str| s.trim().trim_matches('`').to_owned();
        for line in readme[start..end]
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(2)
        {
            let cols: Vec<String> = line.trim_matches('|').split('|').map(cell).collect();
            let [kind, name, ty_or_value, unit, ..] = cols.as_slice() else {
                panic!("a semconv-extras row has at least four columns: {line}");
            };
            match kind.as_str() {
                "attribute" => {
                    extras.attrs.insert(name.clone(), ty_or_value.clone());
                }
                "value" => {
                    extras.values.insert((name.clone(), ty_or_value.clone()));
                }
                "metric" => {
                    extras
                        .metrics
                        .insert(name.clone(), (ty_or_value.clone(), unit.clone()));
                }
                "event" => {
                    extras.events.insert(name.clone());
                }
                other => panic!("unknown kind {other:?} in the semconv-extras table: {line}"),
            }
        }
        assert!(
            !extras.attrs.is_empty(),
            "the semconv-extras table is empty"
        );
        extras
    }
}

// ---------------------------------------------------------------------------------------------
// What was emitted.

/// An attribute value, as far as the check needs it.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Array(Vec<Val>),
    Other,
}

impl Val {
    fn of(v: Option<&AnyValue>) -> Self {
        match v.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Val::Str(s.clone()),
            Some(any_value::Value::IntValue(i)) => Val::Int(*i),
            Some(any_value::Value::DoubleValue(d)) => Val::Double(*d),
            Some(any_value::Value::BoolValue(b)) => Val::Bool(*b),
            Some(any_value::Value::ArrayValue(a)) => {
                Val::Array(a.values.iter().map(|v| Val::of(Some(v))).collect())
            }
            _ => Val::Other,
        }
    }

    /// The registry's name of this value's type.
    fn ty(&self) -> String {
        match self {
            Val::Str(_) => "string".into(),
            Val::Int(_) => "int".into(),
            Val::Double(_) => "double".into(),
            Val::Bool(_) => "boolean".into(),
            Val::Array(items) => match items.first() {
                Some(first) => format!("{}[]", first.ty()),
                None => "[]".into(),
            },
            Val::Other => "other".into(),
        }
    }

    /// The value as an enum member is written in the table.
    fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        }
    }
}

/// The definition a span, a resource or a metric data point is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    HttpServer,
    HttpClient,
    GrpcServer,
    GrpcClient,
    Producer,
    Consumer,
    /// The demo's own spans (workflow steps): keys checked, no definition.
    Internal,
    Resource,
    Metric,
}

/// What a run must have collected at least: kinds (each item with its definitions' required
/// keys), metrics and events. An empty or partial collection fails.
#[derive(Debug)]
struct Expect {
    kinds: &'static [Kind],
    metrics: &'static [&'static str],
    events: &'static [&'static str],
}

/// The demo's journey: every kind and every RED metric.
const JOURNEY: Expect = Expect {
    kinds: &[
        Kind::HttpServer,
        Kind::HttpClient,
        Kind::GrpcServer,
        Kind::GrpcClient,
        Kind::Producer,
        Kind::Consumer,
        Kind::Resource,
        Kind::Metric,
    ],
    metrics: &[
        "http.server.request.duration",
        "http.server.active_requests",
        "http.client.request.duration",
        "rpc.server.call.duration",
        "rpc.client.call.duration",
        "messaging.client.operation.duration",
        "messaging.process.duration",
    ],
    events: &[],
};

/// The participant asked to call a closed port and then itself: a failed and a successful
/// client call, and the failure's exception as a span event and as a log record
/// (`OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN=logs/dup`).
const FAILED_CALL: Expect = Expect {
    kinds: &[
        Kind::HttpServer,
        Kind::HttpClient,
        Kind::Resource,
        Kind::Metric,
    ],
    metrics: &[
        "http.server.request.duration",
        "http.client.request.duration",
    ],
    events: &["exception", "http.client.request.exception"],
};

/// One attribute set that was emitted, and where.
#[derive(Clone, Debug)]
struct Item {
    kind: Kind,
    /// Span name, metric name, `resource`, or `event NAME on SPAN`.
    what: String,
    attrs: Vec<(String, Val)>,
}

/// One metric as it arrived.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MetricFacts {
    name: String,
    /// `histogram`, `counter`, `updowncounter`, `gauge`.
    instrument: String,
    unit: String,
}

/// Everything a run emitted.
#[derive(Clone, Debug, Default)]
struct Emitted {
    items: Vec<Item>,
    /// Span events and log records of events: (event name, where).
    events: Vec<(String, String)>,
    metrics: BTreeSet<MetricFacts>,
    /// The application's own `tracing` events (span events and log records), not checked.
    application_events: usize,
}

fn attrs(kvs: &[KeyValue]) -> Vec<(String, Val)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), Val::of(kv.value.as_ref())))
        .collect()
}

fn has(attrs: &[(String, Val)], key: &str) -> bool {
    attrs.iter().any(|(k, _)| k == key)
}

impl Emitted {
    fn from(received: &support::Received) -> Self {
        let mut e = Emitted::default();
        let resource = |r: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
                        e: &mut Emitted| {
            if let Some(r) = r {
                e.items.push(Item {
                    kind: Kind::Resource,
                    what: "resource".into(),
                    attrs: attrs(&r.attributes),
                });
            }
        };
        for rs in received.traces.iter().flat_map(|t| &t.resource_spans) {
            resource(rs.resource.as_ref(), &mut e);
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                let a = attrs(&span.attributes);
                let rpc = has(&a, "rpc.system") || has(&a, "rpc.system.name");
                let kind = match SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified) {
                    SpanKind::Server if rpc => Kind::GrpcServer,
                    SpanKind::Server => Kind::HttpServer,
                    SpanKind::Client if rpc => Kind::GrpcClient,
                    SpanKind::Client => Kind::HttpClient,
                    SpanKind::Producer => Kind::Producer,
                    SpanKind::Consumer => Kind::Consumer,
                    _ => Kind::Internal,
                };
                for event in &span.events {
                    let ea = attrs(&event.attributes);
                    // A `tracing` event of the application, bridged as a span event (with the
                    // bridge's `level` and `target`): its name and fields are the application's.
                    if has(&ea, "level") && has(&ea, "target") {
                        e.application_events += 1;
                        continue;
                    }
                    let what = format!("event {} on {}", event.name, span.name);
                    e.events.push((event.name.clone(), what.clone()));
                    e.items.push(Item {
                        kind: Kind::Internal,
                        what,
                        attrs: ea,
                    });
                }
                e.items.push(Item {
                    kind,
                    what: span.name.clone(),
                    attrs: a,
                });
            }
        }
        for rm in received.metrics.iter().flat_map(|m| &m.resource_metrics) {
            resource(rm.resource.as_ref(), &mut e);
            for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
                let (instrument, points): (&str, Vec<&[KeyValue]>) = match &m.data {
                    Some(metric::Data::Histogram(h)) => (
                        "histogram",
                        h.data_points.iter().map(|p| &p.attributes[..]).collect(),
                    ),
                    Some(metric::Data::ExponentialHistogram(h)) => (
                        "histogram",
                        h.data_points.iter().map(|p| &p.attributes[..]).collect(),
                    ),
                    Some(metric::Data::Sum(s)) => (
                        if s.is_monotonic {
                            "counter"
                        } else {
                            "updowncounter"
                        },
                        s.data_points.iter().map(|p| &p.attributes[..]).collect(),
                    ),
                    Some(metric::Data::Gauge(g)) => (
                        "gauge",
                        g.data_points.iter().map(|p| &p.attributes[..]).collect(),
                    ),
                    _ => ("unknown", Vec::new()),
                };
                e.metrics.insert(MetricFacts {
                    name: m.name.clone(),
                    instrument: instrument.into(),
                    unit: m.unit.clone(),
                });
                for p in points {
                    e.items.push(Item {
                        kind: Kind::Metric,
                        what: m.name.clone(),
                        attrs: attrs(p),
                    });
                }
            }
        }
        for rl in received.logs.iter().flat_map(|l| &l.resource_logs) {
            resource(rl.resource.as_ref(), &mut e);
            // Log records of events (`event_name` set, e.g. exceptions as logs) are the crates';
            // `tracing` events of the application (named `event FILE:LINE` by `tracing`) carry
            // its own fields.
            for r in rl.scope_logs.iter().flat_map(|sl| &sl.log_records) {
                if r.event_name.is_empty() || r.event_name.starts_with("event ") {
                    e.application_events += 1;
                } else {
                    let what = format!("log record of event {}", r.event_name);
                    e.events.push((r.event_name.clone(), what.clone()));
                    e.items.push(Item {
                        kind: Kind::Internal,
                        what,
                        attrs: attrs(&r.attributes),
                    });
                }
            }
        }
        e
    }
}

// ---------------------------------------------------------------------------------------------
// The check.

/// Every finding of `emitted` in `mode` (empty: conformant).
fn check(
    registry: &Registry,
    extras: &Extras,
    mode: &Mode,
    expect: &Expect,
    emitted: &Emitted,
) -> Vec<String> {
    let mut findings = BTreeSet::new();
    let allowed = mode.allowed_deprecated();
    for item in &emitted.items {
        for (key, value) in &item.attrs {
            check_attr(
                registry,
                extras,
                &allowed,
                key,
                value,
                &item.what,
                &mut findings,
            );
        }
        check_closed_set(registry, &allowed, mode, item, &mut findings);
        for definition in definitions(item, mode) {
            let required: Vec<String> = match definition {
                Definition::Registry(id) => registry.required(id, has(&item.attrs, "error.type")),
                Definition::LegacyRpc => {
                    LEGACY_RPC_REQUIRED.iter().map(|k| k.to_string()).collect()
                }
            };
            for key in required {
                if !has(&item.attrs, &key) {
                    findings.insert(format!(
                        "{}: required {key} ({definition:?}) missing [{}]",
                        item.what,
                        mode.name()
                    ));
                }
            }
        }
    }
    for (name, what) in &emitted.events {
        match registry.events.get(name) {
            Some(dep) if dep != "-" => {
                findings.insert(format!("{what}: event {name} is deprecated ({dep})"));
            }
            Some(_) => {}
            None if extras.events.contains(name) => {}
            None => {
                findings.insert(format!(
                    "{what}: event {name} is neither in the registry nor in the extras table"
                ));
            }
        }
    }
    for m in &emitted.metrics {
        let (instrument, unit) = match registry.metrics.get(&m.name) {
            Some((_, _, dep)) if dep != "-" => {
                findings.insert(format!("metric {} is deprecated ({dep})", m.name));
                continue;
            }
            Some((instrument, unit, _)) => (instrument, unit),
            None => match extras.metrics.get(&m.name) {
                Some((instrument, unit)) => (instrument, unit),
                None => {
                    findings.insert(format!(
                        "metric {} is neither in the registry nor in the extras table",
                        m.name
                    ));
                    continue;
                }
            },
        };
        if *instrument != m.instrument || *unit != m.unit {
            findings.insert(format!(
                "metric {}: {} `{}`, the definition says {instrument} `{unit}`",
                m.name, m.instrument, m.unit
            ));
        }
    }
    // At least one of each kind, each with its required keys (checked above): an empty or
    // partial collection fails.
    let kinds: BTreeSet<Kind> = emitted.items.iter().map(|i| i.kind).collect();
    for kind in expect.kinds {
        if !kinds.contains(kind) {
            findings.insert(format!("nothing of kind {kind:?} was collected"));
        }
    }
    for name in expect.metrics {
        if !emitted.metrics.iter().any(|m| m.name == *name) {
            findings.insert(format!("metric {name} was not collected"));
        }
    }
    for name in expect.events {
        if !emitted.events.iter().any(|(e, _)| e == name) {
            findings.insert(format!("event {name} was not collected"));
        }
    }
    findings.into_iter().collect()
}

/// Metric data points, and the gRPC spans in `rpc` mode (the gRPC page's attributes only, no
/// HTTP ones), carry no registry key outside their definitions (beside the deprecated keys the
/// mode must emit); the project's extras are allowed.
fn check_closed_set(
    registry: &Registry,
    allowed: &BTreeSet<&str>,
    mode: &Mode,
    item: &Item,
    findings: &mut BTreeSet<String>,
) {
    let closed = match item.kind {
        Kind::Metric => true,
        Kind::GrpcServer | Kind::GrpcClient => mode.rpc == Rpc::Stable,
        _ => false,
    };
    let ids: Vec<&str> = definitions(item, mode)
        .into_iter()
        .filter_map(|d| match d {
            Definition::Registry(id) => Some(id),
            Definition::LegacyRpc => None,
        })
        .collect();
    if !closed || ids.is_empty() {
        return;
    }
    let defined: BTreeSet<&str> = ids
        .iter()
        .flat_map(|id| &registry.attributes[*id])
        .map(String::as_str)
        .collect();
    for (key, _) in &item.attrs {
        if let Some((k, _)) = registry.attr(key)
            && !defined.contains(k)
            && !allowed.contains(k)
        {
            findings.insert(format!(
                "{}: {key} is not an attribute of {ids:?} [{}]",
                item.what,
                mode.name()
            ));
        }
    }
}

fn check_attr(
    registry: &Registry,
    extras: &Extras,
    allowed: &BTreeSet<&str>,
    key: &str,
    value: &Val,
    what: &str,
    findings: &mut BTreeSet<String>,
) {
    let Some((defined, attr)) = registry.attr(key) else {
        match extras.attrs.get(key) {
            Some(ty) if *ty == value.ty() => {}
            Some(ty) => {
                findings.insert(format!(
                    "{what}: {key} is {}, the extras table says {ty}",
                    value.ty()
                ));
            }
            None => {
                findings.insert(format!(
                    "{what}: {key} is neither in the registry nor in the extras table"
                ));
            }
        }
        return;
    };
    if attr.deprecated != "-" && !allowed.contains(defined) {
        findings.insert(format!("{what}: {key} is deprecated ({})", attr.deprecated));
    }
    let ty = attr
        .ty
        .strip_prefix("template[")
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(&attr.ty);
    let expected = match ty {
        "enum[string]" => "string",
        "enum[int]" => "int",
        other => other,
    };
    if expected != value.ty() && expected != "any" {
        findings.insert(format!(
            "{what}: {key} is {}, the registry says {}",
            value.ty(),
            attr.ty
        ));
    }
    if !attr.members.is_empty() {
        let text = value.text();
        let member = attr.members.contains(&text);
        let deprecated_member = attr
            .members
            .iter()
            .any(|m| m.strip_prefix('~') == Some(text.as_str()));
        if deprecated_member {
            findings.insert(format!("{what}: {key}={text} is a deprecated value"));
        } else if member {
            // A registry value.
        } else if attr.closed {
            findings.insert(format!(
                "{what}: {key}={text} is not a value of this closed enum"
            ));
        } else if !extras.values.contains(&(key.to_owned(), text.clone())) {
            findings.insert(format!(
                "{what}: {key}={text} is neither a registry value nor in the extras table"
            ));
        }
    }
}

/// A definition an item must satisfy.
#[derive(Clone, Copy, Debug)]
enum Definition {
    Registry(&'static str),
    /// The pre-stable gRPC keys ([`LEGACY_RPC_REQUIRED`]).
    LegacyRpc,
}

/// The definitions whose required keys `item` must carry in `mode`.
fn definitions(item: &Item, mode: &Mode) -> Vec<Definition> {
    use Definition::{LegacyRpc, Registry as R};
    let rpc = |stable: &[Definition]| -> Vec<Definition> {
        match mode.rpc {
            Rpc::Legacy => vec![LegacyRpc],
            Rpc::Stable => stable.to_vec(),
            Rpc::Dup => stable.iter().copied().chain([LegacyRpc]).collect(),
        }
    };
    match item.kind {
        Kind::HttpServer => vec![R("span.http.server")],
        Kind::HttpClient => vec![R("span.http.client")],
        Kind::GrpcServer => rpc(&[R("span.rpc.call.server"), R("span.rpc.grpc.call.server")]),
        Kind::GrpcClient => rpc(&[R("span.rpc.call.client"), R("span.rpc.grpc.call.client")]),
        Kind::Producer => vec![R("messaging.send.producer")],
        Kind::Consumer => vec![R("messaging.process.consumer")],
        Kind::Resource => vec![R("entity.service")],
        Kind::Metric => match item.what.as_str() {
            "http.server.request.duration" => vec![R("metric.http.server.request.duration")],
            "http.server.active_requests" => vec![R("metric.http.server.active_requests")],
            "http.client.request.duration" => vec![R("metric.http.client.request.duration")],
            "rpc.server.call.duration" => rpc(&[R("metric.rpc.server.call.duration")]),
            "rpc.client.call.duration" => rpc(&[R("metric.rpc.client.call.duration")]),
            "messaging.client.operation.duration" => {
                vec![R("metric.messaging.client.operation.duration")]
            }
            "messaging.process.duration" => vec![R("metric.messaging.process.duration")],
            _ => Vec::new(),
        },
        Kind::Internal => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The runs.

/// Runs the demo (with `args`) in `mode` against a collector taking every signal, OTLP logs on;
/// what arrived.
fn run_demo(mode: &Mode, args: &[&str]) -> Emitted {
    let rt = runtime();
    let collector = Collector::start(&rt);
    let mut env = vec![
        ("TRACING_ENDPOINT", collector.endpoint()),
        ("TRACING_METRICS_ENABLED", "true".to_owned()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_owned()),
    ];
    if let Some(v) = mode.opt_in {
        env.push(("OTEL_SEMCONV_STABILITY_OPT_IN", v.to_owned()));
    }
    let run = support::run(env!("CARGO_BIN_EXE_demo"), args, &env);
    assert!(
        run.ok,
        "demo {args:?} in mode {}: exit {:?}\n{}",
        mode.name(),
        run.code,
        run.stderr
    );
    assert!(
        !run.stderr.contains("not fully delivered"),
        "everything delivered in mode {}:\n{}",
        mode.name(),
        run.stderr
    );
    Emitted::from(&collector.received())
}

fn assert_conformant(mode: &Mode, what: &str, expect: &Expect, emitted: &Emitted) {
    let registry = Registry::load();
    let findings = check(&registry, &Extras::load(), mode, expect, emitted);
    assert!(
        findings.is_empty(),
        "{what} in mode {} against the registry snapshot {}:\n  {}",
        mode.name(),
        registry.snapshot,
        findings.join("\n  ")
    );
}

#[test]
fn the_demo_emits_registry_names_in_every_opt_in_mode() {
    for mode in MODES {
        let emitted = run_demo(mode, &[]);
        assert_conformant(mode, "the demo (memory queue)", &JOURNEY, &emitted);
    }
}

#[test]
fn the_demo_over_redis_streams_emits_registry_names() {
    let Some(url) = server_env("GORAX_TEST_REDIS_URL") else {
        return;
    };
    let emitted = run_demo(&MODES[0], &["--redis", &url]);
    assert_conformant(&MODES[0], "the demo over Redis Streams", &JOURNEY, &emitted);
}

#[test]
fn the_demo_over_nats_jetstream_emits_registry_names() {
    let Some(url) = server_env("GORAX_TEST_NATS_URL") else {
        return;
    };
    let emitted = run_demo(&MODES[0], &["--nats", &url]);
    assert_conformant(
        &MODES[0],
        "the demo over NATS JetStream",
        &JOURNEY,
        &emitted,
    );
}

/// Runs the trace-context participant in `mode` and asks it to call a closed port (a failed
/// client call: `error.type` and the exception event) and then itself; what arrived after
/// SIGTERM.
fn run_failed_call(mode: &Mode) -> Emitted {
    use std::io::BufRead;
    let rt = runtime();
    let collector = Collector::start(&rt);
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, closed) = (free_port(), free_port());
    let mut env = vec![
        ("TRACING_ENDPOINT", collector.endpoint()),
        ("TRACING_METRICS_ENABLED", "true".to_owned()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_owned()),
        ("TRACING_EXPORT_TIMEOUT_MS", "2000".to_owned()),
        (
            "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN",
            "logs/dup".to_owned(),
        ),
    ];
    if let Some(v) = mode.opt_in {
        env.push(("OTEL_SEMCONV_STABILITY_OPT_IN", v.to_owned()));
    }
    let mut child = support::command(env!("CARGO_BIN_EXE_tracecontext"), &env)
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("the participant listens");
    let calls = serde_json::json!([
        { "url": format!("http://127.0.0.1:{closed}/test"), "arguments": [] },
        { "url": format!("http://127.0.0.1:{port}/test"), "arguments": [] },
    ]);
    let status = rt
        .block_on(
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/test"))
                .json(&calls)
                .send(),
        )
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = support::wait_bounded(&mut child, std::time::Duration::from_secs(30));
    let stderr = reader.join().unwrap();
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}:\n{stderr}");
    assert!(
        !stderr.contains("not fully delivered"),
        "everything delivered in mode {}:\n{stderr}",
        mode.name()
    );
    Emitted::from(&collector.received())
}

#[test]
fn a_failed_client_call_emits_registry_names_in_every_opt_in_mode() {
    for mode in MODES {
        let emitted = run_failed_call(mode);
        assert_conformant(
            mode,
            "the participant's failed call",
            &FAILED_CALL,
            &emitted,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The checker itself.

/// A value of the registry type `ty` (its first member for an enum).
fn value_of(attr: &Attr) -> Val {
    if let Some(m) = attr.members.iter().find(|m| !m.starts_with('~')) {
        return match attr.ty.as_str() {
            "enum[int]" => Val::Int(m.parse().unwrap()),
            _ => Val::Str(m.clone()),
        };
    }
    match attr.ty.as_str() {
        "int" => Val::Int(1),
        "double" => Val::Double(1.0),
        "boolean" => Val::Bool(true),
        "string[]" => Val::Array(vec![Val::Str("x".into())]),
        _ => Val::Str("x".into()),
    }
}

/// A collection that satisfies the checker in `mode`: one item of each kind with the required
/// keys of its definitions, and each metric that must be there.
fn conformant(registry: &Registry, mode: &Mode) -> Emitted {
    let mut e = Emitted::default();
    let item = |kind: Kind, what: &str, extra: &[(&str, Val)]| {
        let mut item = Item {
            kind,
            what: what.into(),
            attrs: Vec::new(),
        };
        for d in definitions(&item, mode) {
            let keys: Vec<String> = match d {
                Definition::Registry(id) => registry.required(id, false),
                Definition::LegacyRpc => {
                    LEGACY_RPC_REQUIRED.iter().map(|k| k.to_string()).collect()
                }
            };
            for key in keys {
                if !has(&item.attrs, &key) {
                    let value = value_of(&registry.attrs[&key]);
                    item.attrs.push((key, value));
                }
            }
        }
        item.attrs
            .extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        item
    };
    for kind in JOURNEY.kinds {
        if *kind != Kind::Metric {
            e.items.push(item(*kind, &format!("{kind:?}"), &[]));
        }
    }
    for name in JOURNEY.metrics {
        e.items.push(item(Kind::Metric, name, &[]));
        let (instrument, unit, _) = &registry.metrics[*name];
        e.metrics.insert(MetricFacts {
            name: name.to_string(),
            instrument: instrument.clone(),
            unit: unit.clone(),
        });
    }
    e
}

#[test]
fn the_checker_passes_a_conformant_collection_in_every_mode() {
    let registry = Registry::load();
    for mode in MODES {
        let findings = check(
            &registry,
            &Extras::load(),
            mode,
            &JOURNEY,
            &conformant(&registry, mode),
        );
        assert!(findings.is_empty(), "{}: {findings:#?}", mode.name());
    }
}

#[test]
fn the_checker_fails_a_misspelled_key() {
    let registry = Registry::load();
    let mut e = conformant(&registry, &MODES[0]);
    e.items[0]
        .attrs
        .push(("http.request.methd".into(), Val::Str("GET".into())));
    let findings = check(&registry, &Extras::load(), &MODES[0], &JOURNEY, &e);
    assert!(
        findings.iter().any(|f| f.contains("http.request.methd")
            && f.contains("neither in the registry nor in the extras table")),
        "{findings:#?}"
    );
}

#[test]
fn the_checker_fails_a_deprecated_key_outside_its_mode() {
    let registry = Registry::load();
    let http_dup = MODES.iter().find(|m| m.legacy_http).unwrap();
    // `http.method` is deprecated: allowed in `http/dup`, a finding without it.
    for (mode, fails) in [(&MODES[0], true), (http_dup, false)] {
        let mut e = conformant(&registry, mode);
        e.items[0]
            .attrs
            .push(("http.method".into(), Val::Str("GET".into())));
        let findings = check(&registry, &Extras::load(), mode, &JOURNEY, &e);
        let found = findings
            .iter()
            .any(|f| f.contains("http.method is deprecated (renamed:http.request.method)"));
        assert_eq!(found, fails, "{}: {findings:#?}", mode.name());
    }
    // A deprecated metric and event, a wrong type, an unknown value of a closed enum, a wrong
    // unit, a missing required key.
    let mut e = conformant(&registry, &MODES[0]);
    e.items[0]
        .attrs
        .push(("server.port".into(), Val::Str("8080".into())));
    e.items[0]
        .attrs
        .push(("http.request.method".into(), Val::Str("FETCH".into())));
    e.items
        .iter_mut()
        .find(|i| i.kind == Kind::Producer)
        .unwrap()
        .attrs
        .retain(|(k, _)| k != "messaging.system");
    e.events.push(("exception".into(), "a span".into()));
    e.events
        .push(("messaging.send.exceptio".into(), "a span".into()));
    e.metrics.insert(MetricFacts {
        name: "http.server.request.duration".into(),
        instrument: "histogram".into(),
        unit: "ms".into(),
    });
    let findings = check(&registry, &Extras::load(), &MODES[0], &JOURNEY, &e);
    for expected in [
        "server.port is string, the registry says int",
        "http.request.method=FETCH is not a value of this closed enum",
        "Producer: required messaging.system",
        "event messaging.send.exceptio is neither",
        "metric http.server.request.duration: histogram `ms`",
    ] {
        assert!(
            findings.iter().any(|f| f.contains(expected)),
            "{expected:?} in {findings:#?}"
        );
    }
    assert!(
        !findings.iter().any(|f| f.contains("event exception ")),
        "{findings:#?}"
    );
}

#[test]
fn the_checker_fails_keys_outside_a_closed_definition() {
    let registry = Registry::load();
    let rpc = MODES.iter().find(|m| m.rpc == Rpc::Stable).unwrap();
    for (mode, kind, what, fails) in [
        (rpc, Kind::GrpcServer, "GrpcServer", true),
        (&MODES[0], Kind::GrpcServer, "GrpcServer", false),
        (
            &MODES[0],
            Kind::Metric,
            "http.server.request.duration",
            true,
        ),
        (&MODES[0], Kind::HttpServer, "HttpServer", false),
    ] {
        let mut e = conformant(&registry, mode);
        e.items
            .iter_mut()
            .find(|i| i.kind == kind && i.what == what)
            .unwrap()
            .attrs
            .push(("url.path".into(), Val::Str("/a/b".into())));
        let findings = check(&registry, &Extras::load(), mode, &JOURNEY, &e);
        let found = findings
            .iter()
            .any(|f| f.starts_with(&format!("{what}: url.path is not an attribute of")));
        assert_eq!(found, fails, "{what} in {}: {findings:#?}", mode.name());
    }
}

#[test]
fn the_checker_fails_an_empty_collection() {
    let registry = Registry::load();
    for mode in MODES {
        let findings = check(
            &registry,
            &Extras::load(),
            mode,
            &JOURNEY,
            &Emitted::default(),
        );
        for kind in JOURNEY.kinds {
            assert!(
                findings
                    .iter()
                    .any(|f| f == &format!("nothing of kind {kind:?} was collected")),
                "{kind:?}: {findings:#?}"
            );
        }
        assert!(
            findings
                .iter()
                .any(|f| f == "metric rpc.server.call.duration was not collected")
        );
    }
}

/// Where `../shared/semconv` is present (not in every clone) and Python has PyYAML, the committed
/// table is what `scripts/semconv-table.py` makes of it now: a moved snapshot needs a regenerated
/// table.
#[test]
fn the_table_is_current_with_the_snapshot_when_present() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let snapshot = root.join("../shared/semconv/model");
    if !snapshot.is_dir() {
        eprintln!("skipped: no {} here", snapshot.display());
        return;
    }
    let yaml = std::process::Command::new("python3")
        .args(["-c", "import yaml"])
        .status();
    if !yaml.is_ok_and(|s| s.success()) {
        eprintln!("skipped: python3 with PyYAML is not installed");
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/semconv-table.py"))
        .arg(root.join("../shared/semconv"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout).unwrap() == include_str!("data/semconv-table.tsv"),
        "examples/tests/data/semconv-table.tsv is stale: python3 scripts/semconv-table.py > \
         examples/tests/data/semconv-table.tsv"
    );
}

/// Each key [`APPLICABLE`] requires is conditionally required by its definition.
#[test]
fn applicable_keys_are_conditionally_required_in_the_registry() {
    let registry = Registry::load();
    for (definition, keys) in APPLICABLE {
        let conditional = &registry.conditional[*definition];
        for key in *keys {
            assert!(
                conditional.iter().any(|k| k == key),
                "{key} is not conditionally required by {definition}: {conditional:?}"
            );
        }
    }
}

/// The README's extras table names nothing the registry defines (an extra that the registry
/// gained is to be removed from the table), and its rows are well-formed.
#[test]
fn the_extras_table_holds_only_names_outside_the_registry() {
    let registry = Registry::load();
    let extras = Extras::load();
    for key in extras.attrs.keys() {
        assert!(registry.attr(key).is_none(), "{key} is in the registry");
    }
    for (key, value) in &extras.values {
        let attr = &registry
            .attrs
            .get(key)
            .unwrap_or_else(|| panic!("extra value of {key}, which is not in the registry"));
        assert!(
            !attr
                .members
                .iter()
                .any(|m| m.trim_start_matches('~') == value),
            "{key}={value} is a registry value"
        );
    }
    for name in extras.metrics.keys() {
        assert!(
            !registry.metrics.contains_key(name),
            "{name} is in the registry"
        );
    }
    for name in &extras.events {
        assert!(
            !registry.events.contains_key(name),
            "{name} is in the registry"
        );
    }
}
