//! The viewer's memory: recent traces, bounded in traces and in bytes (the oldest trace, by first
//! arrival, is evicted first; evictions are counted), and their JSON for the page.
//!
//! Spans arrive from this process (SDK `SpanData`) and from others (OTLP protobuf or JSON); both
//! are turned into the same small record of strings, whose size is estimated by
//! [`ViewSpan::cost`] (the heap the record owns plus its own size).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as ProtoKeyValue, any_value};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Value, json};

/// A span as the viewer keeps it: every value already rendered as text.
#[derive(Clone, Debug)]
pub(crate) struct ViewSpan {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) parent: Option<[u8; 8]>,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) service: Arc<str>,
    pub(crate) scope: String,
    /// Unix nanoseconds.
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// `unset`, `ok` or `error`.
    pub(crate) status: &'static str,
    pub(crate) status_message: String,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) events: Vec<ViewEvent>,
    pub(crate) links: Vec<ViewLink>,
}

/// A span event.
#[derive(Clone, Debug)]
pub(crate) struct ViewEvent {
    pub(crate) name: String,
    pub(crate) time: u64,
    pub(crate) attributes: Vec<(String, String)>,
}

/// A span link.
#[derive(Clone, Debug)]
pub(crate) struct ViewLink {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) attributes: Vec<(String, String)>,
}

fn attrs_cost(attrs: &[(String, String)]) -> usize {
    attrs
        .iter()
        .map(|(k, v)| std::mem::size_of::<(String, String)>() + k.capacity() + v.capacity())
        .sum()
}

impl ViewSpan {
    /// Bytes this record holds: its own size and every heap allocation it owns (the service
    /// name is shared per batch and counted once per span all the same, as an upper bound).
    pub(crate) fn cost(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.name.capacity()
            + self.service.len()
            + self.scope.capacity()
            + self.status_message.capacity()
            + attrs_cost(&self.attributes)
            + self
                .events
                .iter()
                .map(|e| {
                    std::mem::size_of::<ViewEvent>() + e.name.capacity() + attrs_cost(&e.attributes)
                })
                .sum::<usize>()
            + self
                .links
                .iter()
                .map(|l| std::mem::size_of::<ViewLink>() + attrs_cost(&l.attributes))
                .sum::<usize>()
    }

    /// From this process's SDK.
    pub(crate) fn from_sdk(span: SpanData, service: &Arc<str>) -> Self {
        let nanos = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        };
        let kv = |attrs: Vec<opentelemetry::KeyValue>| {
            attrs
                .into_iter()
                .map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
                .collect::<Vec<_>>()
        };
        let parent = span.parent_span_id;
        let (status, status_message) = match span.status {
            Status::Unset => ("unset", String::new()),
            Status::Ok => ("ok", String::new()),
            Status::Error { description } => ("error", description.into_owned()),
        };
        Self {
            trace_id: span.span_context.trace_id().to_bytes(),
            span_id: span.span_context.span_id().to_bytes(),
            parent: (parent != opentelemetry::trace::SpanId::INVALID).then(|| parent.to_bytes()),
            name: span.name.into_owned(),
            kind: match span.span_kind {
                SpanKind::Client => "client",
                SpanKind::Server => "server",
                SpanKind::Producer => "producer",
                SpanKind::Consumer => "consumer",
                SpanKind::Internal => "internal",
            },
            service: service.clone(),
            scope: span.instrumentation_scope.name().to_owned(),
            start: nanos(span.start_time),
            end: nanos(span.end_time),
            status,
            status_message,
            attributes: kv(span.attributes),
            events: span
                .events
                .events
                .into_iter()
                .map(|e| ViewEvent {
                    name: e.name.into_owned(),
                    time: nanos(e.timestamp),
                    attributes: kv(e.attributes),
                })
                .collect(),
            links: span
                .links
                .links
                .into_iter()
                .map(|l| ViewLink {
                    trace_id: l.span_context.trace_id().to_bytes(),
                    span_id: l.span_context.span_id().to_bytes(),
                    attributes: kv(l.attributes),
                })
                .collect(),
        }
    }
}

/// Why an OTLP request was refused (answered with 400).
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) String);

fn render(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| render(Some(v))).collect();
            format!("[{}]", items.join(", "))
        }
        Some(any_value::Value::KvlistValue(l)) => {
            let items: Vec<String> = l
                .values
                .iter()
                .map(|kv| format!("{}={}", kv.key, render(kv.value.as_ref())))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        // Dictionary references (profiles only): nothing to show.
        Some(_) => String::new(),
    }
}

fn proto_attrs(attrs: &[ProtoKeyValue]) -> Vec<(String, String)> {
    attrs
        .iter()
        .map(|kv| (kv.key.clone(), render(kv.value.as_ref())))
        .collect()
}

fn id<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], Malformed> {
    bytes
        .try_into()
        .map_err(|_| Malformed(format!("{what} must be {N} bytes, got {}", bytes.len())))
}

/// The spans of an OTLP request, or why it is malformed (ids of the wrong length, times that go
/// backwards).
pub(crate) fn from_otlp(request: &ExportTraceServiceRequest) -> Result<Vec<ViewSpan>, Malformed> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let service: Arc<str> = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map_or_else(
                || Arc::from("unknown_service"),
                |kv| Arc::from(render(kv.value.as_ref())),
            );
        for ss in &rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            for s in &ss.spans {
                if s.end_time_unix_nano < s.start_time_unix_nano {
                    return Err(Malformed(format!(
                        "span {} ends before it starts",
                        hex(&s.span_id)
                    )));
                }
                let status = s.status.as_ref();
                out.push(ViewSpan {
                    trace_id: id(&s.trace_id, "traceId")?,
                    span_id: id(&s.span_id, "spanId")?,
                    parent: if s.parent_span_id.is_empty() {
                        None
                    } else {
                        Some(id(&s.parent_span_id, "parentSpanId")?)
                    },
                    name: s.name.clone(),
                    kind: match s.kind {
                        2 => "server",
                        3 => "client",
                        4 => "producer",
                        5 => "consumer",
                        _ => "internal",
                    },
                    service: service.clone(),
                    scope: scope.clone(),
                    start: s.start_time_unix_nano,
                    end: s.end_time_unix_nano,
                    status: match status.map(|st| st.code) {
                        Some(1) => "ok",
                        Some(2) => "error",
                        _ => "unset",
                    },
                    status_message: status.map(|st| st.message.clone()).unwrap_or_default(),
                    attributes: proto_attrs(&s.attributes),
                    events: s
                        .events
                        .iter()
                        .map(|e| ViewEvent {
                            name: e.name.clone(),
                            time: e.time_unix_nano,
                            attributes: proto_attrs(&e.attributes),
                        })
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| {
                            Ok(ViewLink {
                                trace_id: id(&l.trace_id, "link traceId")?,
                                span_id: id(&l.span_id, "link spanId")?,
                                attributes: proto_attrs(&l.attributes),
                            })
                        })
                        .collect::<Result<_, Malformed>>()?,
                });
            }
        }
    }
    Ok(out)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_trace_id(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

struct Trace {
    spans: Vec<ViewSpan>,
    bytes: usize,
}

/// What the store holds and has evicted (shown on the page).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewerStats {
    /// Traces held.
    pub traces: usize,
    /// Spans held.
    pub spans: usize,
    /// Bytes held, by the viewer's own accounting.
    pub bytes: usize,
    /// Traces evicted to stay within the bounds.
    pub evicted_traces: u64,
    /// Spans evicted with them.
    pub evicted_spans: u64,
    /// OTLP requests refused as malformed.
    pub rejected_requests: u64,
}

/// Recent traces, bounded.
pub(crate) struct Store {
    traces: HashMap<[u8; 16], Trace>,
    /// Trace ids by first arrival, oldest first.
    order: VecDeque<[u8; 16]>,
    max_traces: usize,
    max_bytes: usize,
    stats: ViewerStats,
    /// Bumped on every change: the page polls with it.
    version: u64,
}

/// The page's filters (`GET /api/traces?…`).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Filter {
    service: Option<String>,
    name: Option<String>,
    min_duration_ms: Option<f64>,
    errors: Option<String>,
    trace_id: Option<String>,
    attr: Option<String>,
}

const LIST_LIMIT: usize = 500;

impl Store {
    pub(crate) fn new(max_traces: usize, max_bytes: usize) -> Self {
        Self {
            traces: HashMap::new(),
            order: VecDeque::new(),
            max_traces: max_traces.max(1),
            max_bytes,
            stats: ViewerStats::default(),
            version: 0,
        }
    }

    pub(crate) fn stats(&self) -> ViewerStats {
        self.stats
    }

    pub(crate) fn rejected(&mut self) {
        self.stats.rejected_requests += 1;
    }

    /// Adds spans, then evicts the oldest traces until both bounds hold.
    pub(crate) fn insert(&mut self, spans: impl IntoIterator<Item = ViewSpan>) {
        for span in spans {
            let cost = span.cost();
            let trace = self.traces.entry(span.trace_id).or_insert_with(|| {
                self.order.push_back(span.trace_id);
                Trace {
                    spans: Vec::new(),
                    bytes: 0,
                }
            });
            trace.spans.push(span);
            trace.bytes += cost;
            self.stats.spans += 1;
            self.stats.bytes += cost;
            while self.traces.len() > self.max_traces || self.stats.bytes > self.max_bytes {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                if let Some(t) = self.traces.remove(&oldest) {
                    self.stats.bytes -= t.bytes;
                    self.stats.spans -= t.spans.len();
                    self.stats.evicted_traces += 1;
                    self.stats.evicted_spans += t.spans.len() as u64;
                }
            }
        }
        self.stats.traces = self.traces.len();
        self.version += 1;
    }

    /// The list: stats, services and trace summaries matching `filter`, newest first.
    pub(crate) fn list(&self, filter: &Filter) -> Value {
        let lower = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
        };
        let name = lower(&filter.name);
        let service = filter.service.as_deref().filter(|s| !s.is_empty());
        let trace_id = lower(&filter.trace_id);
        let attr = filter
            .attr
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (a, None),
            });
        let errors_only = matches!(filter.errors.as_deref(), Some("1" | "true" | "on"));
        let min_ns = filter.min_duration_ms.map(|ms| (ms * 1e6) as u64);
        let mut services = HashSet::new();
        let mut out = Vec::new();
        for id in self.order.iter().rev() {
            let Some(t) = self.traces.get(id) else {
                continue;
            };
            let s = summary(t);
            for svc in &s.services {
                services.insert(svc.clone());
            }
            if out.len() >= LIST_LIMIT
                || service.is_some_and(|want| !s.services.iter().any(|x| &**x == want))
                || (errors_only && s.errors == 0)
                || min_ns.is_some_and(|min| s.duration < min)
                || trace_id
                    .as_ref()
                    .is_some_and(|p| !hex(id).starts_with(p.as_str()))
                || name.as_ref().is_some_and(|n| {
                    !t.spans
                        .iter()
                        .any(|sp| sp.name.to_ascii_lowercase().contains(n.as_str()))
                })
                || attr.is_some_and(|(k, v)| {
                    !t.spans.iter().any(|sp| {
                        sp.attributes
                            .iter()
                            .any(|(ak, av)| ak == k && v.is_none_or(|v| av == v))
                    })
                })
            {
                continue;
            }
            out.push(json!({
                "trace_id": hex(id),
                "root": s.root,
                "root_service": s.root_service,
                "services": s.services.iter().map(|x| &**x).collect::<Vec<&str>>(),
                "start_ms": s.start as f64 / 1e6,
                "duration_ns": s.duration,
                "spans": t.spans.len(),
                "errors": s.errors,
            }));
        }
        let mut services: Vec<String> = services.into_iter().map(|s| s.to_string()).collect();
        services.sort();
        let st = self.stats;
        json!({
            "version": self.version,
            "stats": {
                "traces": st.traces,
                "spans": st.spans,
                "bytes": st.bytes,
                "max_traces": self.max_traces,
                "max_bytes": self.max_bytes,
                "evicted_traces": st.evicted_traces,
                "evicted_spans": st.evicted_spans,
                "rejected_requests": st.rejected_requests,
            },
            "services": services,
            "traces": out,
        })
    }

    /// One trace with every span, times relative to its first span; `None` when not held.
    pub(crate) fn trace(&self, id: &str) -> Option<Value> {
        let id = parse_trace_id(&id.to_ascii_lowercase())?;
        let t = self.traces.get(&id)?;
        let start = t.spans.iter().map(|s| s.start).min().unwrap_or(0);
        let spans: Vec<Value> = t
            .spans
            .iter()
            .map(|s| {
                json!({
                    "span_id": hex(&s.span_id),
                    "parent_span_id": s.parent.map(|p| hex(&p)),
                    "name": s.name,
                    "kind": s.kind,
                    "service": &*s.service,
                    "scope": s.scope,
                    "start_unix_nano": s.start.to_string(),
                    "offset_ns": s.start.saturating_sub(start),
                    "duration_ns": s.end.saturating_sub(s.start),
                    "status": s.status,
                    "status_message": s.status_message,
                    "attributes": kv(&s.attributes),
                    "events": s.events.iter().map(|e| json!({
                        "name": e.name,
                        "offset_ns": e.time.saturating_sub(s.start),
                        "attributes": kv(&e.attributes),
                    })).collect::<Vec<_>>(),
                    "links": s.links.iter().map(|l| json!({
                        "trace_id": hex(&l.trace_id),
                        "span_id": hex(&l.span_id),
                        "present": self.traces.contains_key(&l.trace_id),
                        "attributes": kv(&l.attributes),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Some(json!({
            "trace_id": hex(&id),
            "start_unix_nano": start.to_string(),
            "spans": spans,
        }))
    }
}

struct Summary {
    root: String,
    root_service: String,
    services: Vec<Arc<str>>,
    start: u64,
    duration: u64,
    errors: usize,
}

fn kv(a: &[(String, String)]) -> Vec<[&str; 2]> {
    a.iter().map(|(k, v)| [k.as_str(), v.as_str()]).collect()
}

fn summary(t: &Trace) -> Summary {
    let ids: HashSet<[u8; 8]> = t.spans.iter().map(|s| s.span_id).collect();
    // The root: a span without a parent, else the earliest whose parent is not here.
    let root = t
        .spans
        .iter()
        .filter(|s| s.parent.is_none())
        .min_by_key(|s| s.start)
        .or_else(|| {
            t.spans
                .iter()
                .filter(|s| s.parent.is_some_and(|p| !ids.contains(&p)))
                .min_by_key(|s| s.start)
        });
    let start = t.spans.iter().map(|s| s.start).min().unwrap_or(0);
    let end = t.spans.iter().map(|s| s.end).max().unwrap_or(0);
    let mut services: Vec<Arc<str>> = Vec::new();
    for s in &t.spans {
        if !services.contains(&s.service) {
            services.push(s.service.clone());
        }
    }
    Summary {
        root: root.map_or_else(String::new, |r| r.name.clone()),
        root_service: root.map_or_else(String::new, |r| r.service.to_string()),
        services,
        start,
        duration: end.saturating_sub(start),
        errors: t.spans.iter().filter(|s| s.status == "error").count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: u8, n: usize) -> ViewSpan {
        ViewSpan {
            trace_id: [trace; 16],
            span_id: [n as u8 + 1; 8],
            parent: None,
            name: "x".repeat(n),
            kind: "internal",
            service: Arc::from("svc"),
            scope: String::new(),
            start: 1,
            end: 2,
            status: "unset",
            status_message: String::new(),
            attributes: vec![("k".into(), "v".into())],
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    /// Oldest traces go first, in traces and in bytes, and each eviction is counted.
    #[test]
    fn bounded_in_traces_and_bytes() {
        let mut store = Store::new(3, usize::MAX);
        for t in 1..=5 {
            store.insert([span(t, 1)]);
        }
        let st = store.stats();
        assert_eq!((st.traces, st.evicted_traces), (3, 2));
        assert!(store.trace(&hex(&[1; 16])).is_none());
        assert!(store.trace(&hex(&[5; 16])).is_some());

        let one = span(0, 1000).cost();
        let mut store = Store::new(1000, one * 2 + one / 2);
        for t in 1..=4 {
            store.insert([span(t, 1000)]);
        }
        let st = store.stats();
        assert_eq!((st.traces, st.evicted_traces), (2, 2));
        assert!(st.bytes <= one * 2 + one / 2);
    }

    #[test]
    fn filters() {
        let mut store = Store::new(10, usize::MAX);
        let mut a = span(1, 3);
        a.attributes.push(("tenant_id".into(), "tenant-123".into()));
        let mut b = span(2, 4);
        b.status = "error";
        store.insert([a, b]);
        let ids = |f: Filter| -> Vec<String> {
            store.list(&f)["traces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["trace_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let attr = Filter {
            attr: Some("tenant_id=tenant-123".into()),
            ..Filter::default()
        };
        assert_eq!(ids(attr), [hex(&[1; 16])]);
        let errors = Filter {
            errors: Some("1".into()),
            ..Filter::default()
        };
        assert_eq!(ids(errors), [hex(&[2; 16])]);
        assert_eq!(ids(Filter::default()).len(), 2);
    }
}
