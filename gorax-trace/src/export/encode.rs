//! OTLP/protobuf encoding of finished spans, written straight from [`SpanData`] into the request
//! body: an `ExportTraceServiceRequest` with one `ResourceSpans` (the exporter's resource) and
//! one `ScopeSpans` per instrumentation scope, in the order the scopes first appear — the
//! message opentelemetry-proto's `group_spans_by_resource_and_scope` builds and prost encodes.
//!
//! Why not that path: the table in [`export`](super#why-our-own). Here each span's length is
//! computed once and the bytes are copied once; the only allocation is the
//! body. Field numbers and proto3 rules (default scalars omitted, `oneof` and optional messages
//! always written) follow `opentelemetry/proto/{collector/trace,trace,common,resource}/v1`; the
//! unit tests decode the output with the generated types and compare it with the SDK's path.

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use std::time::{SystemTime, UNIX_EPOCH};

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags`: the trace flags, plus whether the parent (or linked) context is remote.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

fn varint_len(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    ((64 - (v | 1).leading_zeros()) as usize).div_ceil(7)
}

fn tag_len(field: u32) -> usize {
    varint_len(u64::from(field) << 3)
}

/// A length-delimited field of `n` bytes.
fn len_field(field: u32, n: usize) -> usize {
    tag_len(field) + varint_len(n as u64) + n
}

/// A non-default string or bytes field.
fn bytes_field(field: u32, n: usize) -> usize {
    if n == 0 { 0 } else { len_field(field, n) }
}

fn varint_field(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        tag_len(field) + varint_len(v)
    }
}

fn fixed64_field(field: u32, v: u64) -> usize {
    if v == 0 { 0 } else { tag_len(field) + 8 }
}

fn fixed32_field(field: u32, v: u32) -> usize {
    if v == 0 { 0 } else { tag_len(field) + 4 }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn flags(cx: &SpanContext, remote: bool) -> u32 {
    let mut flags = u32::from(cx.trace_flags().to_u8()) | CONTEXT_HAS_IS_REMOTE;
    if remote {
        flags |= CONTEXT_IS_REMOTE;
    }
    flags
}

/// The body being written.
struct Out(Vec<u8>);

impl Out {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u32) {
        self.varint(u64::from((field << 3) | wire));
    }

    /// The header of a length-delimited field of `n` bytes (the bytes follow).
    fn len(&mut self, field: u32, n: usize) {
        self.tag(field, LEN);
        self.varint(n as u64);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        if !b.is_empty() {
            self.len(field, b.len());
            self.0.extend_from_slice(b);
        }
    }

    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.tag(field, VARINT);
            self.varint(v);
        }
    }

    fn fixed64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.tag(field, FIXED64);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn fixed32(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.tag(field, FIXED32);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
}

// AnyValue: string_value 1, bool_value 2, int_value 3, double_value 4, array_value 5 (a oneof:
// written even when it holds the default). ArrayValue: values 1.

fn any_len(v: &Value) -> usize {
    match v {
        Value::Bool(_) => tag_len(2) + 1,
        Value::I64(i) => tag_len(3) + varint_len(*i as u64),
        Value::F64(_) => tag_len(4) + 8,
        Value::String(s) => len_field(1, s.as_str().len()),
        Value::Array(a) => len_field(5, array_len(a)),
        _ => 0,
    }
}

fn array_len(a: &Array) -> usize {
    fn each<T>(v: &[T], len: impl Fn(&T) -> usize) -> usize {
        v.iter().map(|x| len_field(1, len(x))).sum()
    }
    match a {
        Array::Bool(v) => each(v, |_| tag_len(2) + 1),
        Array::I64(v) => each(v, |i| tag_len(3) + varint_len(*i as u64)),
        Array::F64(v) => each(v, |_| tag_len(4) + 8),
        Array::String(v) => each(v, |s: &StringValue| len_field(1, s.as_str().len())),
        _ => 0,
    }
}

fn put_any(out: &mut Out, v: &Value) {
    match v {
        Value::Bool(b) => {
            out.tag(2, VARINT);
            out.varint(u64::from(*b));
        }
        Value::I64(i) => {
            out.tag(3, VARINT);
            out.varint(*i as u64);
        }
        Value::F64(f) => {
            out.tag(4, FIXED64);
            out.0.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            out.len(1, s.as_str().len());
            out.0.extend_from_slice(s.as_str().as_bytes());
        }
        Value::Array(a) => {
            out.len(5, array_len(a));
            match a {
                Array::Bool(v) => v.iter().for_each(|b| put_element(out, &Value::Bool(*b))),
                Array::I64(v) => v.iter().for_each(|i| put_element(out, &Value::I64(*i))),
                Array::F64(v) => v.iter().for_each(|f| put_element(out, &Value::F64(*f))),
                Array::String(v) => v.iter().for_each(|s| {
                    out.len(1, len_field(1, s.as_str().len()));
                    out.len(1, s.as_str().len());
                    out.0.extend_from_slice(s.as_str().as_bytes());
                }),
                _ => {}
            }
        }
        _ => {}
    }
}

/// One `AnyValue` of an `ArrayValue` (scalars only: arrays do not nest in the API).
fn put_element(out: &mut Out, v: &Value) {
    out.len(1, any_len(v));
    put_any(out, v);
}

// KeyValue: key 1, value 2 (always present).

fn kv_len(kv: &KeyValue) -> usize {
    bytes_field(1, kv.key.as_str().len()) + len_field(2, any_len(&kv.value))
}

fn attributes_len(field: u32, attrs: &[KeyValue]) -> usize {
    attrs.iter().map(|kv| len_field(field, kv_len(kv))).sum()
}

fn put_attributes<'a>(out: &mut Out, field: u32, attrs: impl IntoIterator<Item = &'a KeyValue>) {
    for kv in attrs {
        out.len(field, kv_len(kv));
        out.bytes(1, kv.key.as_str().as_bytes());
        out.len(2, any_len(&kv.value));
        put_any(out, &kv.value);
    }
}

/// The `Resource` message (attributes 1) and the schema URL of a resource, encoded once per
/// `set_resource`.
#[derive(Debug, Default, Clone)]
pub(crate) struct EncodedResource {
    message: Vec<u8>,
    schema_url: String,
}

impl EncodedResource {
    pub(crate) fn new(resource: &Resource) -> Self {
        let attrs: Vec<KeyValue> = resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let mut out = Out(Vec::with_capacity(attributes_len(1, &attrs)));
        put_attributes(&mut out, 1, &attrs);
        Self {
            message: out.0,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }
}

// InstrumentationScope: name 1, version 2, attributes 3.

fn scope_len(scope: &InstrumentationScope) -> usize {
    let attrs: usize = scope.attributes().map(|kv| len_field(3, kv_len(kv))).sum();
    bytes_field(1, scope.name().len()) + bytes_field(2, scope.version().unwrap_or("").len()) + attrs
}

fn put_scope(out: &mut Out, scope: &InstrumentationScope) {
    out.bytes(1, scope.name().as_bytes());
    out.bytes(2, scope.version().unwrap_or("").as_bytes());
    put_attributes(out, 3, scope.attributes());
}

// Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6, start 7,
// end 8, attributes 9, dropped_attributes_count 10, events 11, dropped_events_count 12, links 13,
// dropped_links_count 14, status 15, flags 16. Event: time 1, name 2, attributes 3, dropped 4.
// Link: trace_id 1, span_id 2, trace_state 3, attributes 4, dropped 5, flags 6. Status:
// message 2, code 3.

fn status(status: &Status) -> (&str, u64) {
    match status {
        Status::Unset => ("", 0),
        Status::Ok => ("", 1),
        Status::Error { description } => (description, 2),
    }
}

fn event_len(e: &opentelemetry::trace::Event) -> usize {
    fixed64_field(1, nanos(e.timestamp))
        + bytes_field(2, e.name.len())
        + attributes_len(3, &e.attributes)
        + varint_field(4, u64::from(e.dropped_attributes_count))
}

fn link_len(l: &opentelemetry::trace::Link) -> usize {
    len_field(1, 16)
        + len_field(2, 8)
        + bytes_field(3, l.span_context.trace_state().header().len())
        + attributes_len(4, &l.attributes)
        + varint_field(5, u64::from(l.dropped_attributes_count))
        + fixed32_field(6, flags(&l.span_context, l.span_context.is_remote()))
}

fn span_len(s: &SpanData) -> usize {
    let (message, code) = status(&s.status);
    let parent = if s.parent_span_id == SpanId::INVALID {
        0
    } else {
        len_field(4, 8)
    };
    len_field(1, 16)
        + len_field(2, 8)
        + bytes_field(3, s.span_context.trace_state().header().len())
        + parent
        + bytes_field(5, s.name.len())
        + varint_field(6, kind(&s.span_kind))
        + fixed64_field(7, nanos(s.start_time))
        + fixed64_field(8, nanos(s.end_time))
        + attributes_len(9, &s.attributes)
        + varint_field(10, u64::from(s.dropped_attributes_count))
        + s.events
            .iter()
            .map(|e| len_field(11, event_len(e)))
            .sum::<usize>()
        + varint_field(12, u64::from(s.events.dropped_count))
        + s.links
            .iter()
            .map(|l| len_field(13, link_len(l)))
            .sum::<usize>()
        + varint_field(14, u64::from(s.links.dropped_count))
        + len_field(15, bytes_field(2, message.len()) + varint_field(3, code))
        + fixed32_field(16, flags(&s.span_context, s.parent_span_is_remote))
}

fn put_span(out: &mut Out, s: &SpanData, len: usize) {
    out.len(2, len);
    out.bytes(1, &s.span_context.trace_id().to_bytes());
    out.bytes(2, &s.span_context.span_id().to_bytes());
    out.bytes(3, s.span_context.trace_state().header().as_bytes());
    if s.parent_span_id != SpanId::INVALID {
        out.bytes(4, &s.parent_span_id.to_bytes());
    }
    out.bytes(5, s.name.as_bytes());
    out.uint(6, kind(&s.span_kind));
    out.fixed64(7, nanos(s.start_time));
    out.fixed64(8, nanos(s.end_time));
    put_attributes(out, 9, &s.attributes);
    out.uint(10, u64::from(s.dropped_attributes_count));
    for e in s.events.iter() {
        out.len(11, event_len(e));
        out.fixed64(1, nanos(e.timestamp));
        out.bytes(2, e.name.as_bytes());
        put_attributes(out, 3, &e.attributes);
        out.uint(4, u64::from(e.dropped_attributes_count));
    }
    out.uint(12, u64::from(s.events.dropped_count));
    for l in s.links.iter() {
        out.len(13, link_len(l));
        out.bytes(1, &l.span_context.trace_id().to_bytes());
        out.bytes(2, &l.span_context.span_id().to_bytes());
        out.bytes(3, l.span_context.trace_state().header().as_bytes());
        put_attributes(out, 4, &l.attributes);
        out.uint(5, u64::from(l.dropped_attributes_count));
        out.fixed32(6, flags(&l.span_context, l.span_context.is_remote()));
    }
    out.uint(14, u64::from(s.links.dropped_count));
    let (message, code) = status(&s.status);
    out.len(15, bytes_field(2, message.len()) + varint_field(3, code));
    out.bytes(2, message.as_bytes());
    out.uint(3, code);
    out.fixed32(16, flags(&s.span_context, s.parent_span_is_remote));
}

/// The body of an OTLP/HTTP (or gRPC) trace export request for `spans` from `resource`.
pub(crate) fn request(spans: &[SpanData], resource: &EncodedResource) -> Vec<u8> {
    // Spans grouped by scope, scopes in the order they first appear; a batch nearly always
    // has one or two scopes, so the previous span's scope is tried first, then each group.
    let mut groups: Vec<(&InstrumentationScope, Vec<usize>)> = Vec::new();
    let mut last = 0;
    for (i, span) in spans.iter().enumerate() {
        let scope = &span.instrumentation_scope;
        let group = match groups.get(last) {
            Some((s, _)) if *s == scope => last,
            _ => match groups.iter().position(|(s, _)| *s == scope) {
                Some(g) => g,
                None => {
                    groups.push((scope, Vec::with_capacity(spans.len() - i)));
                    groups.len() - 1
                }
            },
        };
        groups[group].1.push(i);
        last = group;
    }
    let lens: Vec<usize> = spans.iter().map(span_len).collect();
    let scope_spans_len = |(scope, members): &(&InstrumentationScope, Vec<usize>)| {
        len_field(1, scope_len(scope))
            + members
                .iter()
                .map(|&i| len_field(2, lens[i]))
                .sum::<usize>()
            + bytes_field(3, scope.schema_url().unwrap_or("").len())
    };
    let group_lens: Vec<usize> = groups.iter().map(scope_spans_len).collect();
    let resource_spans = len_field(1, resource.message.len())
        + group_lens.iter().map(|&n| len_field(2, n)).sum::<usize>()
        + bytes_field(3, resource.schema_url.len());

    let mut out = Out(Vec::with_capacity(len_field(1, resource_spans)));
    out.len(1, resource_spans);
    out.len(1, resource.message.len());
    out.0.extend_from_slice(&resource.message);
    for ((scope, members), &n) in groups.iter().zip(&group_lens) {
        out.len(2, n);
        out.len(1, scope_len(scope));
        put_scope(&mut out, scope);
        for &i in members {
            put_span(&mut out, &spans[i], lens[i]);
        }
        out.bytes(3, scope.schema_url().unwrap_or("").as_bytes());
    }
    out.bytes(3, resource.schema_url.as_bytes());
    debug_assert_eq!(out.0.len(), out.0.capacity());
    out.0
}

/// The spans an OTLP answer (`ExportTraceServiceResponse`, protobuf) says were rejected
/// (`partial_success.rejected_spans`); 0 for an empty or undecodable body (a collector that
/// answers 2xx with something else accepted everything).
pub(crate) fn rejected_spans(body: &[u8]) -> u64 {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message as _;
    if body.is_empty() {
        return 0;
    }
    ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Event, Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;
    use std::borrow::Cow;
    use std::time::Duration;

    fn context(trace: u128, span: u64, sampled: bool, state: &str, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            remote,
            state.parse::<TraceState>().unwrap(),
        )
    }

    fn every_value() -> Vec<KeyValue> {
        vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("empty", ""),
            KeyValue::new("n", 0),
            KeyValue::new("negative", -42),
            KeyValue::new("big", i64::MAX),
            KeyValue::new("f", 1.5),
            KeyValue::new("zero.f", 0.0),
            KeyValue::new("t", true),
            KeyValue::new("false", false),
            KeyValue::new("owned", "x".repeat(300)),
            KeyValue::new("", "empty key"),
            KeyValue::new("bools", Value::Array(vec![true, false].into())),
            KeyValue::new("ints", Value::Array(vec![0i64, -1, 300].into())),
            KeyValue::new("floats", Value::Array(vec![0.0, 2.5].into())),
            KeyValue::new(
                "strings",
                Value::Array(vec![StringValue::from(""), StringValue::from("ü")].into()),
            ),
            KeyValue::new("no strings", Value::Array(Vec::<StringValue>::new().into())),
        ]
    }

    fn span(name: &'static str, scope: &InstrumentationScope, rich: bool) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut events = SpanEvents::default();
        let mut links = SpanLinks::default();
        if rich {
            events.events.push(Event::new(
                "exception",
                start + Duration::from_millis(1),
                every_value(),
                3,
            ));
            events
                .events
                .push(Event::new("bare", UNIX_EPOCH, vec![], 0));
            events.dropped_count = 2;
            links.links.push(Link::new(
                context(7, 8, true, "k=v,a=b", true),
                vec![KeyValue::new("link", 1)],
                1,
            ));
            links
                .links
                .push(Link::new(context(9, 10, false, "", false), vec![], 0));
            links.dropped_count = 4;
        }
        SpanData {
            span_context: context(
                0x0af7651916cd43dd8448eb211c80319c,
                0xb7ad6b7169203331,
                true,
                if rich { "vendor=x" } else { "" },
                false,
            ),
            parent_span_id: if rich {
                SpanId::from(0x1234)
            } else {
                SpanId::INVALID
            },
            parent_span_is_remote: rich,
            span_kind: if rich {
                SpanKind::Consumer
            } else {
                SpanKind::Server
            },
            name: Cow::Borrowed(name),
            start_time: start,
            end_time: start + Duration::from_micros(1500),
            attributes: if rich {
                every_value()
            } else {
                vec![KeyValue::new("a", 1)]
            },
            dropped_attributes_count: if rich { 5 } else { 0 },
            events,
            links,
            status: if rich {
                Status::error("it broke")
            } else {
                Status::Ok
            },
            instrumentation_scope: scope.clone(),
        }
    }

    fn both(spans: Vec<SpanData>, resource: &Resource) {
        let ours = request(&spans, &EncodedResource::new(resource));
        let ours = ExportTraceServiceRequest::decode(ours.as_slice()).expect("decodes");
        let sdk = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(resource),
            ),
        };
        assert_eq!(ours, sdk);
        // Same bytes, too: prost writes fields in the same order.
        assert_eq!(ours.encode_to_vec(), sdk.encode_to_vec());
    }

    #[test]
    fn the_same_message_as_the_sdk_path() {
        let plain = InstrumentationScope::builder("gorax").build();
        let full = InstrumentationScope::builder("other")
            .with_version("1.2.3")
            .with_schema_url("https://opentelemetry.io/schemas/1.26.0")
            .with_attributes([KeyValue::new("scope.attr", "v")])
            .build();
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "billing"),
                KeyValue::new("n", 3),
            ])
            .with_schema_url([], "https://opentelemetry.io/schemas/1.25.0")
            .build();
        both(vec![], &resource);
        both(
            vec![span("one", &plain, false)],
            &Resource::builder_empty().build(),
        );
        both(
            vec![
                span("a", &plain, false),
                span("b", &full, true),
                span("c", &plain, true),
                span("", &full, false),
                span("d", &plain, false),
            ],
            &resource,
        );
        let mut unsampled = span("unsampled", &plain, false);
        unsampled.span_context = context(1, 2, false, "", false);
        unsampled.start_time = UNIX_EPOCH;
        unsampled.status = Status::Unset;
        unsampled.span_kind = SpanKind::Internal;
        let mut client = span("client", &full, false);
        client.span_kind = SpanKind::Client;
        let mut producer = span("producer", &full, false);
        producer.span_kind = SpanKind::Producer;
        producer.status = Status::error("");
        both(vec![unsampled, client, producer], &resource);
    }

    #[test]
    fn varint_lengths() {
        for (v, n) in [(0, 1), (1, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3)] {
            assert_eq!(varint_len(v), n, "{v}");
        }
        assert_eq!(varint_len(u64::MAX), 10);
        assert_eq!(tag_len(15), 1);
        assert_eq!(tag_len(16), 2);
    }
}
