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
//! [`Propagators`] is the one implementation: which fields take part (from the configuration,
//! held by the [`Telemetry`](crate::Telemetry) handle) and the extract/inject rules, over any
//! carrier: an [`http::HeaderMap`] (the allocation-free fast path), a
//! `HashMap<String, String>`, or any OpenTelemetry [`Extractor`]/[`Injector`] (pass it as
//! `&dyn Extractor`). The [`W3cPropagator`] gives third-party code the same rules through the
//! OpenTelemetry global propagator.
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
//! let w3c = propagation::Propagators::default();
//! let cx = w3c.extract(&incoming);
//! assert!(cx.span().span_context().is_sampled());
//!
//! let mut outgoing = HeaderMap::new();
//! w3c.inject(&cx, &mut outgoing);
//! assert_eq!(
//!     outgoing["traceparent"],
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
//! );
//! ```

use std::borrow::Cow;
use std::collections::HashMap;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState};

mod baggage;
mod others;
#[cfg(test)]
mod tests;
mod traceparent;
mod tracestate;

pub use others::Formats;
use traceparent::TRACEPARENT_LEN;
pub use traceparent::{Traceparent, parse_traceparent};

/// The W3C Trace Context Level 2 `random` flag (0x02): the right-most 7 bytes of the trace id
/// are random.
pub const RANDOM_FLAG: u8 = 0x02;

/// A [`Context`] value saying that the trace of this id has a random trace id, so that every
/// `traceparent` written for it carries the Level 2 `random` flag.
///
/// Needed because the SDK gives an unsampled span `TraceFlags::default()` (the caller's `02`
/// would leave as `00`) and a new root only the sampled bit. The server layer puts it in the
/// request's context when the caller's flags had it or when the request starts a new trace (the
/// SDK's trace ids are random); [`Propagators::inject`] and the client middleware read it.
/// With a provider whose `IdGenerator` is not random, do not add it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomTraceId(pub TraceId);

/// Whether `child`, a span started in `parent`, belongs to a trace with a random trace id: its
/// own flags say so, `parent` holds a [`RandomTraceId`] of its trace, `parent`'s span (of the
/// same trace) has the flag, or `parent` has no valid span (so `child` is a new local root,
/// whose id the SDK drew at random).
pub fn random_flag(parent: &Context, child: &SpanContext) -> bool {
    if child.trace_flags().to_u8() & RANDOM_FLAG != 0 {
        return true;
    }
    if parent
        .get::<RandomTraceId>()
        .is_some_and(|r| r.0 == child.trace_id())
    {
        return true;
    }
    let span = parent.span();
    let psc = span.span_context();
    if !psc.is_valid() {
        return child.is_valid() && !child.is_remote();
    }
    psc.trace_id() == child.trace_id() && psc.trace_flags().to_u8() & RANDOM_FLAG != 0
}

/// `span_context` with the `random` flag set when `random` is true (borrowed when nothing
/// changes).
pub fn with_random_flag(span_context: &SpanContext, random: bool) -> Cow<'_, SpanContext> {
    let flags = span_context.trace_flags().to_u8();
    if !random || flags & RANDOM_FLAG != 0 {
        return Cow::Borrowed(span_context);
    }
    Cow::Owned(SpanContext::new(
        span_context.trace_id(),
        span_context.span_id(),
        TraceFlags::new(flags | RANDOM_FLAG),
        span_context.is_remote(),
        span_context.trace_state().clone(),
    ))
}

/// Parses the combined `tracestate` header fields by the W3C list grammar: a member that is not
/// valid, or more than 32 members, discard the whole list (as the W3C test suite expects); a
/// later duplicate of a key is dropped (the first is kept); the list is truncated to 512
/// characters by whole members. `None` when nothing is left.
///
/// Members with valid Level 2 keys that `opentelemetry`'s [`TraceState`] refuses (`a@b@c`,
/// `t@_x`) are not in the result; extraction through [`Propagators`] keeps them in the caller's
/// context and injection for the same trace writes them back in place.
pub fn parse_tracestate<'a>(fields: impl IntoIterator<Item = &'a str>) -> Option<TraceState> {
    tracestate::parse(fields)
}

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

/// One propagation field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// `traceparent`.
    Traceparent,
    /// `tracestate`.
    Tracestate,
    /// `baggage`.
    Baggage,
    /// Zipkin's single `b3` header.
    B3,
    /// `x-b3-traceid`.
    B3TraceId,
    /// `x-b3-spanid`.
    B3SpanId,
    /// `x-b3-parentspanid`.
    B3ParentSpanId,
    /// `x-b3-sampled`.
    B3Sampled,
    /// `x-b3-flags`.
    B3Flags,
    /// Jaeger's `uber-trace-id`.
    UberTraceId,
    /// AWS X-Ray's `x-amzn-trace-id`.
    XrayTraceId,
}

impl Field {
    /// The fields of the non-W3C [`Formats`].
    const OTHERS: [Self; 8] = [
        Self::B3,
        Self::B3TraceId,
        Self::B3SpanId,
        Self::B3ParentSpanId,
        Self::B3Sampled,
        Self::B3Flags,
        Self::UberTraceId,
        Self::XrayTraceId,
    ];

    /// The key in string carriers.
    pub fn key(self) -> &'static str {
        match self {
            Self::Traceparent => TRACEPARENT_KEY,
            Self::Tracestate => TRACESTATE_KEY,
            Self::Baggage => BAGGAGE_KEY,
            Self::B3 => "b3",
            Self::B3TraceId => "x-b3-traceid",
            Self::B3SpanId => "x-b3-spanid",
            Self::B3ParentSpanId => "x-b3-parentspanid",
            Self::B3Sampled => "x-b3-sampled",
            Self::B3Flags => "x-b3-flags",
            Self::UberTraceId => "uber-trace-id",
            Self::XrayTraceId => "x-amzn-trace-id",
        }
    }

    /// The HTTP header name.
    #[inline]
    pub fn header_name(self) -> HeaderName {
        match self {
            Self::Traceparent => TRACEPARENT,
            Self::Tracestate => TRACESTATE,
            Self::Baggage => BAGGAGE,
            other => HeaderName::from_static(other.key()),
        }
    }

    /// The non-W3C field with this key (any case).
    fn from_other_key(key: &str) -> Option<Self> {
        Self::OTHERS
            .into_iter()
            .find(|f| f.key().eq_ignore_ascii_case(key))
    }
}

/// The values of one field in a carrier; `None` items are values that are not text (a header
/// with non-UTF-8 bytes), which make the field invalid.
#[derive(Debug)]
pub struct Values<'a>(ValuesInner<'a>);

#[derive(Debug)]
enum ValuesInner<'a> {
    Headers(http::header::ValueIter<'a, HeaderValue>),
    List(std::vec::IntoIter<&'a str>),
    One(Option<&'a str>),
}

impl<'a> Iterator for Values<'a> {
    type Item = Option<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            ValuesInner::Headers(it) => it.next().map(|v| v.to_str().ok()),
            ValuesInner::List(it) => it.next().map(Some),
            ValuesInner::One(v) => v.take().map(Some),
        }
    }
}

/// Where propagation fields are read from. Implemented for [`HeaderMap`] (every field of a
/// name is seen, without allocation), `HashMap<String, String>` and `dyn Extractor` (any
/// OpenTelemetry extractor: pass `&my_extractor as &dyn Extractor`).
pub trait Carrier {
    /// Every value of `field`, in order.
    fn values(&self, field: Field) -> Values<'_>;

    /// The value of `field` when there is exactly one: `Ok(None)` when absent, `Err(Several)`
    /// when there are more (or one is not text). The fast path of every extraction; carriers
    /// override it to skip the [`Values`] iterator.
    fn only(&self, field: Field) -> Result<Option<&str>, Several> {
        let mut values = self.values(field);
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(Some(v)), None) => Ok(Some(v)),
            _ => Err(Several),
        }
    }

    /// The carrier as an [`HeaderMap`], when it is one: extraction then finds `traceparent`,
    /// `tracestate` and `baggage` in one pass over the headers instead of one lookup each.
    fn as_header_map(&self) -> Option<&HeaderMap> {
        None
    }
}

/// A field with several values (or a value that is not text): see [`Carrier::only`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Several;

impl Carrier for HeaderMap {
    fn values(&self, field: Field) -> Values<'_> {
        Values(ValuesInner::Headers(
            self.get_all(field.header_name()).into_iter(),
        ))
    }

    #[inline]
    fn only(&self, field: Field) -> Result<Option<&str>, Several> {
        let mut values = self.get_all(field.header_name()).into_iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => v.to_str().map(Some).map_err(|_| Several),
            _ => Err(Several),
        }
    }

    fn as_header_map(&self) -> Option<&HeaderMap> {
        Some(self)
    }
}

/// One W3C field of a [`HeaderMap`] as a single pass found it.
#[derive(Clone, Copy)]
enum Slot<'a> {
    Absent,
    One(&'a HeaderValue),
    Several,
}

impl<'a> Slot<'a> {
    fn add(&mut self, value: &'a HeaderValue) {
        *self = match self {
            Slot::Absent => Slot::One(value),
            _ => Slot::Several,
        };
    }

    /// What [`Carrier::only`] gives for this field.
    fn only(self) -> Result<Option<&'a str>, Several> {
        match self {
            Slot::Absent => Ok(None),
            Slot::One(v) => v.to_str().map(Some).map_err(|_| Several),
            Slot::Several => Err(Several),
        }
    }
}

/// `traceparent`, `tracestate` and `baggage` of a [`HeaderMap`].
struct W3cSlots<'a> {
    traceparent: Slot<'a>,
    tracestate: Slot<'a>,
    baggage: Slot<'a>,
}

/// Above this many header names, three hash lookups cost less than one pass.
const SCAN_MAX_NAMES: usize = 24;

impl<'a> W3cSlots<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        if headers.keys_len() > SCAN_MAX_NAMES {
            let slot = |name: HeaderName| {
                let mut slot = Slot::Absent;
                for v in headers.get_all(name).iter().take(2) {
                    slot.add(v);
                }
                slot
            };
            return Self {
                traceparent: slot(TRACEPARENT),
                tracestate: slot(TRACESTATE),
                baggage: slot(BAGGAGE),
            };
        }
        let mut slots = Self {
            traceparent: Slot::Absent,
            tracestate: Slot::Absent,
            baggage: Slot::Absent,
        };
        for (name, value) in headers {
            let name = name.as_str();
            let slot = match name.len() {
                11 if name == TRACEPARENT_KEY => &mut slots.traceparent,
                10 if name == TRACESTATE_KEY => &mut slots.tracestate,
                7 if name == BAGGAGE_KEY => &mut slots.baggage,
                _ => continue,
            };
            slot.add(value);
        }
        slots
    }

    fn get(&self, field: Field) -> Slot<'a> {
        match field {
            Field::Traceparent => self.traceparent,
            Field::Tracestate => self.tracestate,
            Field::Baggage => self.baggage,
            _ => Slot::Absent,
        }
    }
}

impl Carrier for HashMap<String, String> {
    fn values(&self, field: Field) -> Values<'_> {
        Values(ValuesInner::One(self.get(field.key()).map(String::as_str)))
    }
}

impl Carrier for dyn Extractor + '_ {
    fn values(&self, field: Field) -> Values<'_> {
        Values(ValuesInner::List(
            self.get_all(field.key()).unwrap_or_default().into_iter(),
        ))
    }
}

impl Carrier for dyn Extractor + Send + Sync + '_ {
    fn values(&self, field: Field) -> Values<'_> {
        (self as &dyn Extractor).values(field)
    }
}

/// Where propagation fields are written. Implemented for [`HeaderMap`], `HashMap<String,
/// String>` and `dyn Injector` (any OpenTelemetry injector).
pub trait CarrierMut {
    /// Sets `field` to `value`, replacing what was there.
    fn set(&mut self, field: Field, value: &str);
    /// Removes `field` (a no-op for carriers that cannot remove).
    fn remove(&mut self, field: Field);

    /// The carrier as an [`HeaderMap`], when it is one: `traceparent` is then written as a
    /// header value straight from its bytes, and a `tracestate` is looked for only in a map that
    /// has headers.
    fn as_header_map_mut(&mut self) -> Option<&mut HeaderMap> {
        None
    }
}

impl CarrierMut for HeaderMap {
    fn set(&mut self, field: Field, value: &str) {
        // Every value written is validated ASCII; a failure here would be a bug, and dropping
        // the field is the safe outcome.
        if let Ok(v) = HeaderValue::from_str(value) {
            self.insert(field.header_name(), v);
        }
    }

    fn remove(&mut self, field: Field) {
        // `remove` on an absent name still hashes; look first (the common case).
        if self.contains_key(field.header_name()) {
            HeaderMap::remove(self, field.header_name());
        }
    }

    fn as_header_map_mut(&mut self) -> Option<&mut HeaderMap> {
        Some(self)
    }
}

impl CarrierMut for HashMap<String, String> {
    fn set(&mut self, field: Field, value: &str) {
        self.insert(field.key().to_owned(), value.to_owned());
    }

    fn remove(&mut self, field: Field) {
        HashMap::remove(self, field.key());
    }
}

impl CarrierMut for dyn Injector + '_ {
    fn set(&mut self, field: Field, value: &str) {
        Injector::set(self, field.key(), value.to_owned());
    }

    fn remove(&mut self, _: Field) {}
}

impl CarrierMut for dyn Injector + Send + Sync + '_ {
    fn set(&mut self, field: Field, value: &str) {
        Injector::set(self, field.key(), value.to_owned());
    }

    fn remove(&mut self, _: Field) {}
}

/// Which propagation formats are extracted and injected (`OTEL_PROPAGATORS`), and the rules
/// for doing it. Default: W3C trace context and baggage.
///
/// Extraction takes the first valid span context in the order W3C `traceparent`, B3 (single or
/// multi), Jaeger, X-Ray (the OpenTelemetry composite propagator lets the last one win; here a
/// valid `traceparent` always does); baggage comes from `baggage` either way. Injection writes
/// every configured format.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Propagators {
    /// `traceparent` / `tracestate`.
    pub trace_context: bool,
    /// `baggage`.
    pub baggage: bool,
    /// The non-W3C formats (formats whose cargo feature is off are skipped).
    pub other: Formats,
}

impl std::fmt::Debug for Propagators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Propagators");
        d.field("trace_context", &self.trace_context)
            .field("baggage", &self.baggage);
        if !self.other.is_empty() {
            d.field("other", &self.other);
        }
        d.finish()
    }
}

impl Default for Propagators {
    fn default() -> Self {
        Self::W3C
    }
}

impl Propagators {
    /// Trace context and baggage.
    pub const W3C: Self = Self {
        trace_context: true,
        baggage: true,
        other: Formats::NONE,
    };
    /// Nothing is propagated.
    pub const NONE: Self = Self {
        trace_context: false,
        baggage: false,
        other: Formats::NONE,
    };

    /// These propagators with W3C trace context on or off.
    ///
    /// ```
    /// use gorax_trace::propagation::Propagators;
    ///
    /// let baggage_only = Propagators::NONE.with_baggage(true);
    /// assert!(baggage_only.baggage && !baggage_only.trace_context);
    /// assert_eq!(Propagators::W3C.with_trace_context(false), baggage_only);
    /// ```
    pub const fn with_trace_context(mut self, on: bool) -> Self {
        self.trace_context = on;
        self
    }

    /// These propagators with W3C baggage on or off.
    pub const fn with_baggage(mut self, on: bool) -> Self {
        self.baggage = on;
        self
    }

    /// These propagators with the non-W3C formats `other`.
    pub const fn with_other(mut self, other: Formats) -> Self {
        self.other = other;
        self
    }

    /// The caller's context from `carrier` in a new [`Context`] (not the current one).
    ///
    /// An invalid or missing `traceparent` gives a context without a span: the next span
    /// started in it is a new root.
    pub fn extract<C: Carrier + ?Sized>(&self, carrier: &C) -> Context {
        self.extract_with_context(&Context::new(), carrier)
    }

    /// Like [`extract`](Self::extract), adding to `cx`.
    pub fn extract_with_context<C: Carrier + ?Sized>(&self, cx: &Context, carrier: &C) -> Context {
        match self.extract_parts(cx, carrier) {
            (Some(sc), cx) => cx.with_remote_span_context(sc),
            (None, cx) => cx,
        }
    }

    /// What [`extract_with_context`](Self::extract_with_context) puts together, apart: the
    /// caller's span context (`None` when no valid one was sent) and `cx` with the caller's
    /// baggage. For an adapter that starts its own span from the caller's span context without
    /// building the caller's [`Context`] first (one allocation fewer).
    pub fn extract_parts<C: Carrier + ?Sized>(
        &self,
        cx: &Context,
        carrier: &C,
    ) -> (Option<SpanContext>, Context) {
        let slots = carrier.as_header_map().map(W3cSlots::of);
        let only = |field: Field| match &slots {
            Some(slots) => slots.get(field).only(),
            None => carrier.only(field),
        };
        let mut span_context = None;
        let mut unheld = None;
        if self.trace_context {
            let traceparent = match slots.as_ref().map(|s| s.traceparent) {
                // The usual value: its bytes are parsed as they are (only hex digits and `-`
                // pass, so the text check of `only` is implied).
                Some(Slot::One(v)) if v.len() == TRACEPARENT_LEN => {
                    traceparent::parse_bytes(v.as_bytes())
                }
                _ => only(Field::Traceparent)
                    .ok()
                    .flatten()
                    .and_then(parse_traceparent),
            };
            span_context = traceparent.map(|sc| {
                let (sc, list) = with_tracestate(sc, carrier, only);
                unheld = list.map(|list| tracestate::Unheld {
                    trace_id: sc.trace_id(),
                    list,
                });
                sc
            });
        }
        if span_context.is_none() && !self.other.is_empty() {
            span_context = others::extract(self.other, carrier);
        }
        let mut out = None;
        if self.baggage {
            out = match only(Field::Baggage) {
                Ok(None) => None,
                Ok(Some(v)) => Some(baggage::extract(cx, v)),
                // Several fields are one list (RFC 9110 combination); a non-text one spoils it.
                Err(Several) => {
                    let all: Option<Vec<&str>> = carrier.values(Field::Baggage).collect();
                    all.map(|all| baggage::extract(cx, &all.join(",")))
                }
            };
        }
        let out = out.unwrap_or_else(|| cx.clone());
        match unheld {
            Some(unheld) => (span_context, out.with_value(unheld)),
            None => (span_context, out),
        }
    }

    /// Writes the span context and baggage of `cx` into `carrier`, replacing any existing
    /// fields. Nothing is written for a context without a valid span (baggage still is).
    ///
    /// A [`RandomTraceId`] of the span's trace in `cx` adds the `random` flag.
    pub fn inject<C: CarrierMut + ?Sized>(&self, cx: &Context, carrier: &mut C) {
        let span = cx.span();
        let sc = span.span_context();
        let random = cx
            .get::<RandomTraceId>()
            .is_some_and(|r| r.0 == sc.trace_id());
        self.inject_span_context(&with_random_flag(sc, random), Some(cx), carrier);
    }

    /// Writes `span_context` without building a [`Context`] for it (what a client does for the
    /// span it just started). `parent`, the context that span continues, gives the baggage
    /// (when baggage is on: [`with_baggage(false)`](Self::with_baggage) to send none) and the
    /// received `tracestate` members the span context could not hold (see
    /// [`parse_tracestate`]), written back for a span of the same trace.
    pub fn inject_span_context<C: CarrierMut + ?Sized>(
        &self,
        span_context: &SpanContext,
        parent: Option<&Context>,
        carrier: &mut C,
    ) {
        if self.trace_context && span_context.is_valid() {
            let traceparent = Traceparent::new(span_context);
            // An empty map has no `tracestate` to remove.
            let mut had_headers = true;
            match carrier.as_header_map_mut() {
                Some(headers) => {
                    had_headers = !headers.is_empty();
                    headers.insert(TRACEPARENT, traceparent.to_header_value());
                }
                None => carrier.set(Field::Traceparent, traceparent.as_str()),
            }
            let state = span_context.trace_state();
            // A received list the span context could not hold whole goes back out with it.
            let unheld = parent
                .and_then(|cx| cx.get::<tracestate::Unheld>())
                .filter(|unheld| unheld.trace_id == span_context.trace_id());
            let value = match unheld {
                Some(unheld) => tracestate::header_value_with_received(
                    state,
                    &unheld.list,
                    tracestate::DEFAULT_MAX_LEN,
                ),
                None => (*state != TraceState::NONE)
                    .then(|| tracestate::header_value(state, tracestate::DEFAULT_MAX_LEN))
                    .flatten(),
            };
            match value.filter(|v| !v.is_empty()) {
                // An empty value is never written: some carriers (SQS attributes) reject it.
                Some(v) => carrier.set(Field::Tracestate, &v),
                None if had_headers => carrier.remove(Field::Tracestate),
                None => {}
            }
        }
        if !self.other.is_empty() && span_context.is_valid() {
            others::inject(self.other, span_context, carrier);
        }
        if self.baggage
            && let Some(cx) = parent
            && let Some(v) = baggage::header_value(cx.baggage())
        {
            carrier.set(Field::Baggage, &v);
        }
    }
}

/// `sc`, parsed from a valid `traceparent`, with the carrier's `tracestate` (an invalid one is
/// dropped on its own), and the received list when the span context cannot hold all of it
/// (boxed: the usual request carries a pointer-sized `None` through the extraction).
fn with_tracestate<'a, C: Carrier + ?Sized>(
    sc: SpanContext,
    carrier: &'a C,
    only: impl Fn(Field) -> Result<Option<&'a str>, Several>,
) -> (SpanContext, Option<Box<tracestate::Parsed>>) {
    let (state, unheld) = match only(Field::Tracestate) {
        Ok(None) => return (sc, None),
        Ok(Some(one)) => tracestate::parse_keeping([one]),
        Err(Several) => match carrier
            .values(Field::Tracestate)
            .collect::<Option<Vec<&str>>>()
        {
            Some(fields) => tracestate::parse_keeping(fields),
            None => (None, None),
        },
    };
    let sc = match state {
        Some(state) if state != TraceState::NONE => {
            SpanContext::new(sc.trace_id(), sc.span_id(), sc.trace_flags(), true, state)
        }
        _ => sc,
    };
    (sc, unheld.map(Box::new))
}

/// What happens to a context's W3C baggage at a boundary (the server's incoming requests, the
/// client's outgoing ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BaggagePolicy {
    /// Keep all of it (default).
    #[default]
    Keep,
    /// Drop all of it.
    Drop,
    /// Keep only these keys (with their properties).
    Allow(Vec<String>),
}

impl BaggagePolicy {
    /// `cx` with its baggage filtered by the policy (the same context when nothing changes).
    #[inline]
    pub fn apply(&self, cx: Context) -> Context {
        match self {
            Self::Keep => cx,
            _ if cx.baggage().is_empty() => cx,
            Self::Drop => cx.with_cleared_baggage(),
            Self::Allow(keys) => {
                let bag = cx.baggage();
                if bag
                    .iter()
                    .all(|(k, _)| keys.iter().any(|a| a == k.as_str()))
                {
                    return cx;
                }
                let kept = baggage::allow(bag, keys);
                cx.with_baggage(kept)
            }
        }
    }

    /// Whether no baggage passes.
    pub fn drops_all(&self) -> bool {
        matches!(self, Self::Drop)
    }
}

/// A [`TextMapPropagator`] with these [`Propagators`]' rules, for third-party code that calls
/// `opentelemetry::global::get_text_map_propagator`; [`init`](crate::init()) installs it.
#[derive(Debug, Default, Clone, Copy)]
pub struct W3cPropagator {
    propagators: Propagators,
}

impl W3cPropagator {
    /// A propagator for these fields.
    pub fn new(propagators: Propagators) -> Self {
        Self { propagators }
    }
}

/// The W3C fields, then those of the other formats.
static FIELDS: std::sync::LazyLock<[String; 11]> = std::sync::LazyLock::new(|| {
    [Field::Traceparent, Field::Tracestate, Field::Baggage]
        .into_iter()
        .chain(Field::OTHERS)
        .map(|f| f.key().to_owned())
        .collect::<Vec<_>>()
        .try_into()
        .expect("eleven fields")
});

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.propagators.inject(cx, injector)
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.propagators.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        let fields = match self.propagators.other.is_empty() {
            true => &FIELDS[..3],
            false => &FIELDS[..],
        };
        opentelemetry::propagation::text_map_propagator::FieldIter::new(fields)
    }
}
