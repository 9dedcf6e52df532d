//! W3C Trace Context (Level 2) and W3C Baggage propagation for HTTP headers and message headers.
//!
//! The `traceparent` path is written for speed: header names are pre-built, parsing does not
//! allocate, and an unsampled request costs a few hundred instructions. `tracestate` and
//! `baggage` are parsed only when present.
//!
//! Rules (from the W3C Trace Context specification):
//! - exactly one `traceparent` field; two or more fields, a bad length, upper-case hex, version
//!   `ff`, an all-zero trace id or parent id: the context is discarded and the caller starts a new
//!   trace; `tracestate` is then ignored too;
//! - a future version (> `00`) is parsed by its first four fields if the next character is `-`;
//! - leading and trailing spaces and tabs (OWS) around the value are tolerated;
//! - all `tracestate` fields are combined; an invalid `tracestate` (bad member, duplicate key, more
//!   than 32 members) is dropped on its own, keeping the valid `traceparent`;
//! - the flags the specification defines are kept (`sampled` 0x01 and Level 2 `random` 0x02);
//!   unknown flags are cleared before they are passed on.
//!
//! Which fields take part is process-wide configuration ([`set_propagators`], called by
//! [`init`](crate::init())); the default is trace context plus baggage.
//!
//! ```
//! use gorax_trace::propagation;
//! use http::HeaderMap;
//! use opentelemetry::trace::TraceContextExt;
//!
//! let mut incoming = HeaderMap::new();
//! incoming.insert(
//!     "traceparent",
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
//! );
//! let cx = propagation::extract(&incoming);
//! assert!(cx.span().span_context().is_sampled());
//!
//! let mut outgoing = HeaderMap::new();
//! propagation::inject(&cx, &mut outgoing);
//! assert_eq!(
//!     outgoing["traceparent"],
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
//! );
//! ```

use std::sync::atomic::{AtomicU8, Ordering};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::BaggagePropagator;

use crate::config::Propagators;

/// The `traceparent` header name.
pub const TRACEPARENT: HeaderName = HeaderName::from_static(TRACEPARENT_KEY);
/// The `tracestate` header name.
pub const TRACESTATE: HeaderName = HeaderName::from_static(TRACESTATE_KEY);
/// The `baggage` header name.
pub const BAGGAGE: HeaderName = HeaderName::from_static(BAGGAGE_KEY);
/// The `traceparent` key in string carriers (message headers).
pub const TRACEPARENT_KEY: &str = "traceparent";
/// The `tracestate` key in string carriers.
pub const TRACESTATE_KEY: &str = "tracestate";
/// The `baggage` key in string carriers.
pub const BAGGAGE_KEY: &str = "baggage";

/// Flags the W3C specification defines: `sampled` (0x01) and, in Level 2, `random` (0x02).
const KNOWN_FLAGS: u8 = 0x03;
/// Length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;
/// Maximum number of `tracestate` list members.
const MAX_TRACESTATE_MEMBERS: usize = 32;

const TRACE_CONTEXT_BIT: u8 = 1;
const BAGGAGE_BIT: u8 = 2;
static ENABLED: AtomicU8 = AtomicU8::new(TRACE_CONTEXT_BIT | BAGGAGE_BIT);

/// Chooses which W3C fields [`extract`] and [`inject`] (and the [`W3cPropagator`]) handle,
/// process-wide. [`init`](crate::init()) calls it with the configured propagators.
pub fn set_propagators(propagators: Propagators) {
    let bits = (if propagators.trace_context {
        TRACE_CONTEXT_BIT
    } else {
        0
    }) | (if propagators.baggage { BAGGAGE_BIT } else { 0 });
    ENABLED.store(bits, Ordering::Relaxed);
}

/// The propagators currently in force (see [`set_propagators`]).
pub fn propagators() -> Propagators {
    let bits = ENABLED.load(Ordering::Relaxed);
    Propagators {
        trace_context: bits & TRACE_CONTEXT_BIT != 0,
        baggage: bits & BAGGAGE_BIT != 0,
    }
}

/// Parses one `traceparent` value. Returns a remote [`SpanContext`] with an empty trace state,
/// or `None` when the value is not valid (the caller then starts a new trace).
///
/// ```
/// # use gorax_trace::propagation::parse_traceparent;
/// assert!(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
/// assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// assert!(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
/// ```
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let b = value.trim_matches([' ', '\t']).as_bytes();
    if b.len() < TRACEPARENT_LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex_u8(&b[0..2])?;
    match version {
        0x00 if b.len() != TRACEPARENT_LEN => return None,
        0xff => return None,
        // Future versions: parse what version 00 defines, require a delimiter after it.
        _ if b.len() > TRACEPARENT_LEN && b[TRACEPARENT_LEN] != b'-' => return None,
        _ => {}
    }
    let trace_id = hex_u128(&b[3..35])?;
    let span_id = hex_u64(&b[36..52])?;
    let flags = hex_u8(&b[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags & KNOWN_FLAGS),
        true,
        TraceState::NONE,
    ))
}

/// A formatted `traceparent` value on the stack (no allocation).
#[derive(Clone, Copy)]
pub struct Traceparent([u8; TRACEPARENT_LEN]);

impl Traceparent {
    /// Formats the version-00 `traceparent` of `span_context`.
    pub fn new(span_context: &SpanContext) -> Self {
        let mut buf = [b'-'; TRACEPARENT_LEN];
        buf[0] = b'0';
        buf[1] = b'0';
        write_hex(&mut buf[3..35], &span_context.trace_id().to_bytes());
        write_hex(&mut buf[36..52], &span_context.span_id().to_bytes());
        write_hex(
            &mut buf[53..55],
            &[span_context.trace_flags().to_u8() & KNOWN_FLAGS],
        );
        Traceparent(buf)
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and '-' are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The value as an HTTP header value.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl std::fmt::Debug for Traceparent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Traceparent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the combined `tracestate` header fields. Returns `None` when the list is invalid (a
/// member without `=`, a key or value outside the W3C grammar, a duplicate key, more than 32
/// members), in which case the whole `tracestate` is dropped as the specification asks.
pub fn parse_tracestate<'a>(fields: impl IntoIterator<Item = &'a str>) -> Option<TraceState> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for field in fields {
        for member in field.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=')?;
            if !valid_tracestate_key(key)
                || !valid_tracestate_value(value)
                || members.len() == MAX_TRACESTATE_MEMBERS
                || members.iter().any(|(k, _)| *k == key)
            {
                return None;
            }
            members.push((key, value));
        }
    }
    TraceState::from_key_value(members).ok()
}

/// `simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )`, or
/// `tenant-id "@" system-id` with `tenant-id = ( lcalpha / DIGIT ) 0*240( ... )` and
/// `system-id = lcalpha 0*13( ... )`.
fn valid_tracestate_key(key: &str) -> bool {
    let allowed = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/".contains(&c);
    let part = |s: &str, max: usize, digit_first: bool| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= max
            && (b[0].is_ascii_lowercase() || (digit_first && b[0].is_ascii_digit()))
            && b.iter().all(|&c| allowed(c))
    };
    match key.split_once('@') {
        None => part(key, 256, false),
        Some((tenant, system)) => part(tenant, 241, true) && part(system, 14, false),
    }
}

/// `value = 0*255(chr) nblk-chr`, `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`, `chr = %x20 / nblk-chr`.
fn valid_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b[b.len() - 1] != b' '
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

/// Extracts the caller's context from HTTP headers into a new [`Context`] (not the current one).
///
/// An invalid or missing `traceparent` gives a context without a span: the next span started in
/// it is a new root.
pub fn extract(headers: &HeaderMap) -> Context {
    extract_with_context(&Context::new(), headers)
}

/// Like [`extract`], adding to `cx`.
pub fn extract_with_context(cx: &Context, headers: &HeaderMap) -> Context {
    let enabled = ENABLED.load(Ordering::Relaxed);
    let mut out = None;
    if enabled & TRACE_CONTEXT_BIT != 0
        && let Some(sc) = extract_span_context(headers)
    {
        out = Some(cx.with_remote_span_context(sc));
    }
    if enabled & BAGGAGE_BIT != 0 {
        let mut fields = headers.get_all(BAGGAGE).iter();
        if let Some(first) = fields.next() {
            let base = out.as_ref().unwrap_or(cx);
            let extracted = match fields.next() {
                None => first.to_str().ok().map(|v| extract_baggage(base, v)),
                Some(_) => {
                    join_fields(headers.get_all(BAGGAGE).iter()).map(|v| extract_baggage(base, &v))
                }
            };
            if extracted.is_some() {
                out = extracted;
            }
        }
    }
    out.unwrap_or_else(|| cx.clone())
}

/// The caller's span context from `traceparent`/`tracestate`, or `None` when there is none or it
/// is invalid.
pub fn extract_span_context(headers: &HeaderMap) -> Option<SpanContext> {
    let mut fields = headers.get_all(TRACEPARENT).iter();
    let first = fields.next()?;
    if fields.next().is_some() {
        return None;
    }
    let sc = parse_traceparent(first.to_str().ok()?)?;
    Some(with_tracestate(sc, || {
        let mut values = headers.get_all(TRACESTATE).iter().peekable();
        values.peek()?;
        let strs: Option<Vec<&str>> = values.map(|v| v.to_str().ok()).collect();
        parse_tracestate(strs?)
    }))
}

/// Injects the span context and baggage of `cx` into HTTP headers, replacing any existing
/// `traceparent`/`tracestate`/`baggage`. Nothing is written for a context without a valid span.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    let span = cx.span();
    inject_span_context(span.span_context(), Some(cx), headers);
}

/// Injects `span_context` and, when `baggage_of` is given, that context's baggage, without
/// building a [`Context`] for it (what a client does for the span it just started).
pub fn inject_span_context(
    span_context: &SpanContext,
    baggage_of: Option<&Context>,
    headers: &mut HeaderMap,
) {
    let enabled = ENABLED.load(Ordering::Relaxed);
    if enabled & TRACE_CONTEXT_BIT != 0 && span_context.is_valid() {
        headers.insert(
            TRACEPARENT,
            Traceparent::new(span_context).to_header_value(),
        );
        let state = span_context.trace_state();
        let value = (*state != TraceState::NONE)
            .then(|| HeaderValue::from_str(&state.header()).ok())
            .flatten()
            .filter(|v| !v.is_empty());
        match value {
            Some(v) => {
                headers.insert(TRACESTATE, v);
            }
            None => {
                headers.remove(TRACESTATE);
            }
        }
    }
    if enabled & BAGGAGE_BIT != 0
        && let Some(cx) = baggage_of.filter(|cx| cx.has_baggage())
    {
        BaggagePropagator::new()
            .inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
    }
}

/// [`inject`] with the current context.
pub fn inject_current(headers: &mut HeaderMap) {
    Context::map_current(|cx| inject(cx, headers))
}

/// Extracts a context from any string carrier (message headers, a `HashMap<String, String>`).
/// Keys are looked up as `traceparent`, `tracestate` and `baggage`.
pub fn extract_from(carrier: &dyn Extractor) -> Context {
    W3cPropagator::new().extract_with_context(&Context::new(), carrier)
}

/// Injects `cx` into any string carrier (message headers, a `HashMap<String, String>`).
pub fn inject_into(cx: &Context, carrier: &mut dyn Injector) {
    W3cPropagator::new().inject_context(cx, carrier)
}

/// A [`TextMapPropagator`] for W3C trace context and baggage using this module's parser and the
/// process-wide [`propagators`] choice. [`init`](crate::init()) installs it as the global
/// propagator so that third-party code calling
/// `opentelemetry::global::get_text_map_propagator` gets the same behaviour.
#[derive(Debug, Default, Clone, Copy)]
pub struct W3cPropagator {
    _private: (),
}

impl W3cPropagator {
    /// A propagator following the process-wide [`propagators`] choice.
    pub fn new() -> Self {
        Self::default()
    }
}

static FIELDS: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
    [
        TRACEPARENT_KEY.to_owned(),
        TRACESTATE_KEY.to_owned(),
        BAGGAGE_KEY.to_owned(),
    ]
});

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let enabled = ENABLED.load(Ordering::Relaxed);
        if enabled & TRACE_CONTEXT_BIT != 0 {
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                injector.set(TRACEPARENT_KEY, Traceparent::new(sc).as_str().to_owned());
                let state = sc.trace_state().header();
                // An empty value is skipped: some carriers (SQS attributes) reject it.
                if !state.is_empty() {
                    injector.set(TRACESTATE_KEY, state);
                }
            }
        }
        if enabled & BAGGAGE_BIT != 0 && cx.has_baggage() {
            BaggagePropagator::new().inject_context(cx, injector);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let enabled = ENABLED.load(Ordering::Relaxed);
        let mut out = None;
        if enabled & TRACE_CONTEXT_BIT != 0 {
            let parents = extractor.get_all(TRACEPARENT_KEY).unwrap_or_default();
            if let [only] = parents.as_slice()
                && let Some(sc) = parse_traceparent(only)
            {
                let sc = with_tracestate(sc, || {
                    let states = extractor.get_all(TRACESTATE_KEY)?;
                    parse_tracestate(states)
                });
                out = Some(cx.with_remote_span_context(sc));
            }
        }
        if enabled & BAGGAGE_BIT != 0
            && let Some(values) = extractor.get_all(BAGGAGE_KEY)
        {
            let joined = values.join(",");
            out = Some(extract_baggage(out.as_ref().unwrap_or(cx), &joined));
        }
        out.unwrap_or_else(|| cx.clone())
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        opentelemetry::propagation::text_map_propagator::FieldIter::new(FIELDS.as_slice())
    }
}

/// Whether a context carries any baggage.
trait HasBaggage {
    fn has_baggage(&self) -> bool;
}

impl HasBaggage for Context {
    fn has_baggage(&self) -> bool {
        !self.baggage().is_empty()
    }
}

fn with_tracestate(sc: SpanContext, state: impl FnOnce() -> Option<TraceState>) -> SpanContext {
    match state() {
        Some(state) if state != TraceState::NONE => {
            SpanContext::new(sc.trace_id(), sc.span_id(), sc.trace_flags(), true, state)
        }
        _ => sc,
    }
}

fn extract_baggage(cx: &Context, value: &str) -> Context {
    struct One<'a>(&'a str);
    impl Extractor for One<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            (key == BAGGAGE_KEY).then_some(self.0)
        }
        fn keys(&self) -> Vec<&str> {
            vec![BAGGAGE_KEY]
        }
    }
    BaggagePropagator::new().extract_with_context(cx, &One(value))
}

fn join_fields<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<String> {
    let parts: Option<Vec<&str>> = values.map(|v| v.to_str().ok()).collect();
    Some(parts?.join(","))
}

/// Lowercase hex digit values; 0xff marks every other byte (upper case is invalid in W3C ids).
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xff_u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Up to 16 hex digits, branch-free per digit: invalid digits are collected and checked once.
#[inline]
fn hex_u64(b: &[u8]) -> Option<u64> {
    let mut acc = 0_u64;
    let mut invalid = 0_u8;
    for &c in b {
        let v = HEX_VALUE[usize::from(c)];
        invalid |= v;
        acc = acc << 4 | u64::from(v & 0x0f);
    }
    (invalid & 0xf0 == 0).then_some(acc)
}

#[inline]
fn hex_u8(b: &[u8]) -> Option<u8> {
    hex_u64(b).map(|v| v as u8)
}

#[inline]
fn hex_u128(b: &[u8]) -> Option<u128> {
    let (high, low) = b.split_at(16);
    Some(u128::from(hex_u64(high)?) << 64 | u128::from(hex_u64(low)?))
}

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::baggage::BaggageExt;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn traceparent_table_from_the_w3c_specification() {
        // (input, expected trace id, span id, flags) — None means "start a new trace".
        let valid: &[(&str, &str, &str, u8)] = &[
            (
                TP,
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                1,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                0,
            ),
            // Level 2 random flag kept, unknown flags cleared.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                3,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                3,
            ),
            // OWS around the value.
            (
                "  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                1,
            ),
            // Future versions: first four fields, then '-' and anything.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                1,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                1,
            ),
        ];
        for (input, trace, span, flags) in valid {
            let sc = parse_traceparent(input).unwrap_or_else(|| panic!("{input:?} should parse"));
            assert_eq!(sc.trace_id().to_string(), *trace, "{input:?}");
            assert_eq!(sc.span_id().to_string(), *span, "{input:?}");
            assert_eq!(sc.trace_flags().to_u8(), *flags, "{input:?}");
            assert!(sc.is_remote());
        }
        let invalid = [
            "",
            "00",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for input in invalid {
            assert!(
                parse_traceparent(input).is_none(),
                "{input:?} must be rejected"
            );
        }
    }

    #[test]
    fn two_traceparent_fields_start_a_new_trace() {
        let cx = extract(&headers(&[
            ("traceparent", TP),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ]));
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn tracestate_fields_are_combined_and_validated() {
        let cx = extract(&headers(&[
            ("traceparent", TP),
            ("tracestate", "rojo=00f067aa0ba902b7, ,"),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]));
        let span = cx.span();
        let state = span.span_context().trace_state();
        assert_eq!(state.header(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

        for bad in [
            "rojo",
            "a=1,a=2",
            "UPPER=1",
            "k=v\u{7f}",
            "k=a\tb",
            "k=",
            "1k=v",
            "k@=v",
            "t@1sys=v",
        ] {
            let Ok(v) = HeaderValue::from_str(bad) else {
                continue;
            };
            let mut h = headers(&[("traceparent", TP)]);
            h.insert(TRACESTATE, v);
            let cx = extract(&h);
            let span = cx.span();
            assert!(
                span.span_context().is_valid(),
                "traceparent kept for {bad:?}"
            );
            assert_eq!(
                span.span_context().trace_state().header(),
                "",
                "{bad:?} dropped"
            );
        }
        let members32: Vec<String> = (0..32).map(|i| format!("k{i}=v{i}")).collect();
        let h = headers(&[("traceparent", TP), ("tracestate", &members32.join(","))]);
        assert_eq!(
            extract(&h).span().span_context().trace_state().header(),
            members32.join(",")
        );
        let members33: Vec<String> = (0..33).map(|i| format!("k{i}=v{i}")).collect();
        let h = headers(&[("traceparent", TP), ("tracestate", &members33.join(","))]);
        assert_eq!(extract(&h).span().span_context().trace_state().header(), "");
    }

    #[test]
    fn tracestate_grammar() {
        let ok = [
            "a=1",
            "a-b_c*d/e=x y",
            "1tenant@sys=v",
            "t@s-1=v",
            "k=!\"#$%&'()*+-./:;<>?@[]^_`{|}~",
        ];
        for member in ok {
            assert!(parse_tracestate([member]).is_some(), "{member:?} is valid");
        }
        let long_key = format!("{}=v", "k".repeat(257));
        let long_value = format!("k={}", "v".repeat(257));
        for member in [long_key.as_str(), long_value.as_str(), "k=\u{e9}", "k=a=b"] {
            assert!(
                parse_tracestate([member]).is_none(),
                "{member:?} is invalid"
            );
        }
    }

    #[test]
    fn invalid_traceparent_ignores_tracestate_and_keeps_baggage() {
        let cx = extract(&headers(&[
            (
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            ("tracestate", "rojo=1"),
            ("baggage", "user=alice"),
        ]));
        assert!(!cx.span().span_context().is_valid());
        assert_eq!(
            cx.baggage().get("user").map(|v| v.as_str().to_owned()),
            Some("alice".into())
        );
    }

    #[test]
    fn round_trip_through_http_headers() {
        let cx = extract(&headers(&[
            ("traceparent", TP),
            ("tracestate", "rojo=1"),
            ("baggage", "user=alice"),
            ("baggage", "tenant=t1"),
        ]));
        assert_eq!(cx.baggage().len(), 2);
        let mut out = HeaderMap::new();
        inject(&cx, &mut out);
        assert_eq!(out[TRACEPARENT], TP);
        assert_eq!(out[TRACESTATE], "rojo=1");
        let baggage = out[BAGGAGE].to_str().unwrap();
        assert!(
            baggage.contains("user=alice") && baggage.contains("tenant=t1"),
            "{baggage}"
        );
    }

    #[test]
    fn string_carriers_round_trip_and_skip_empty_tracestate() {
        let cx = Context::new()
            .with_remote_span_context(parse_traceparent(TP).unwrap())
            .with_baggage(vec![KeyValue::new("k", "v")]);
        let mut map: HashMap<String, String> = HashMap::new();
        inject_into(&cx, &mut map);
        assert_eq!(map.get("traceparent").map(String::as_str), Some(TP));
        assert!(
            !map.contains_key("tracestate"),
            "empty tracestate is not written"
        );
        assert_eq!(map.get("baggage").map(String::as_str), Some("k=v"));
        let back = extract_from(&map);
        assert_eq!(
            back.span().span_context().span_id(),
            cx.span().span_context().span_id()
        );
        assert_eq!(
            back.baggage().get("k").map(|v| v.as_str().to_owned()),
            Some("v".into())
        );
    }

    #[test]
    fn nothing_is_injected_without_a_valid_span() {
        let mut out = HeaderMap::new();
        inject(&Context::new(), &mut out);
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics_and_output_is_valid(s in ".{0,80}", ts in ".{0,80}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&s) { h.insert(TRACEPARENT, v); }
            if let Ok(v) = HeaderValue::from_str(&ts) { h.insert(TRACESTATE, v); }
            let cx = extract(&h);
            let mut out = HeaderMap::new();
            inject(&cx, &mut out);
            if let Some(tp) = out.get(TRACEPARENT) {
                let reparsed = parse_traceparent(tp.to_str().unwrap());
                prop_assert!(reparsed.is_some());
                prop_assert_eq!(reparsed.unwrap().trace_id(), cx.span().span_context().trace_id());
            }
            if let Some(state) = out.get(TRACESTATE) {
                prop_assert!(parse_tracestate([state.to_str().unwrap()]).is_some());
            }
        }

        #[test]
        fn near_valid_mutations_never_panic(pos in 0usize..55, byte in any::<u8>()) {
            let mut bytes = TP.as_bytes().to_vec();
            bytes[pos] = byte;
            if let Ok(s) = std::str::from_utf8(&bytes)
                && let Some(sc) = parse_traceparent(s)
            {
                // Whatever parses must format back to the same canonical value.
                let again = Traceparent::new(&sc);
                prop_assert!(parse_traceparent(again.as_str()).is_some());
            }
        }

        #[test]
        fn valid_contexts_round_trip(trace in 1u128.., span in 1u64.., flags in 0u8..4) {
            let sc = SpanContext::new(TraceId::from(trace), SpanId::from(span), TraceFlags::new(flags), true, TraceState::NONE);
            let text = Traceparent::new(&sc);
            prop_assert_eq!(parse_traceparent(text.as_str()), Some(sc));
        }
    }
}
