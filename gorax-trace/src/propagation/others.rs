//! The non-W3C formats (`OTEL_PROPAGATORS=b3,b3multi,jaeger,xray`): B3 through
//! opentelemetry-zipkin's propagator (feature `propagator-b3`), X-Ray through opentelemetry-aws's
//! (feature `propagator-xray`), Jaeger's `uber-trace-id` here (opentelemetry-jaeger-propagator
//! is built against an older opentelemetry, so its propagator cannot take our contexts).
//!
//! opentelemetry-zipkin 0.33 marks its whole API deprecated (for its exporter: Zipkin takes OTLP
//! now); its B3 propagator is still the ecosystem's, hence the `allow(deprecated)` below.
//!
//! Each format sees the carrier through [`FieldExtractor`]/[`FieldInjector`], which map its keys
//! to [`Field`]s, so every [`Carrier`] works with them unchanged.

use std::fmt;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
#[cfg(any(feature = "propagator-b3", feature = "propagator-xray"))]
use opentelemetry::{Context, propagation::TextMapPropagator, trace::TraceContextExt};

use super::{Carrier, CarrierMut, Field};

/// A set of the non-W3C propagation formats (see [`Propagators::other`](super::Propagators)).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Formats(u8);

impl Formats {
    /// None of them.
    pub const NONE: Self = Self(0);
    /// Zipkin B3, one `b3` header (`OTEL_PROPAGATORS=b3`; feature `propagator-b3`).
    pub const B3: Self = Self(1);
    /// Zipkin B3, the `x-b3-*` headers (`OTEL_PROPAGATORS=b3multi`; feature `propagator-b3`).
    pub const B3_MULTI: Self = Self(2);
    /// Jaeger's `uber-trace-id` (`OTEL_PROPAGATORS=jaeger`).
    pub const JAEGER: Self = Self(4);
    /// AWS X-Ray's `x-amzn-trace-id` (`OTEL_PROPAGATORS=xray`; feature `propagator-xray`).
    pub const XRAY: Self = Self(8);

    const ALL: [(Self, &'static str); 4] = [
        (Self::B3, "b3"),
        (Self::B3_MULTI, "b3multi"),
        (Self::JAEGER, "jaeger"),
        (Self::XRAY, "xray"),
    ];

    /// Whether every format of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The cargo feature of `gorax-trace` a format needs, when it is not enabled in this build.
    pub fn missing_feature(self) -> Option<&'static str> {
        if (self.contains(Self::B3) || self.contains(Self::B3_MULTI))
            && !cfg!(feature = "propagator-b3")
        {
            return Some("propagator-b3");
        }
        if self.contains(Self::XRAY) && !cfg!(feature = "propagator-xray") {
            return Some("propagator-xray");
        }
        None
    }

    fn names(self) -> impl Iterator<Item = &'static str> {
        Self::ALL
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl std::ops::BitOr for Formats {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for Formats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// A [`Carrier`] as an OpenTelemetry [`Extractor`] over the non-W3C fields.
pub(super) struct FieldExtractor<'a, C: ?Sized>(pub(super) &'a C);

impl<C: Carrier + ?Sized> Extractor for FieldExtractor<'_, C> {
    fn get(&self, key: &str) -> Option<&str> {
        let field = Field::from_other_key(key)?;
        self.0.values(field).next().flatten()
    }

    fn keys(&self) -> Vec<&str> {
        Field::OTHERS
            .iter()
            .filter(|f| self.0.values(**f).next().is_some())
            .map(|f| f.key())
            .collect()
    }
}

/// A [`CarrierMut`] as an OpenTelemetry [`Injector`] over the non-W3C fields.
pub(super) struct FieldInjector<'a, C: ?Sized>(pub(super) &'a mut C);

impl<C: CarrierMut + ?Sized> Injector for FieldInjector<'_, C> {
    fn set(&mut self, key: &str, value: String) {
        if let Some(field) = Field::from_other_key(key) {
            self.0.set(field, &value);
        }
    }
}

/// The first valid span context among `formats` in `carrier` (B3, Jaeger, X-Ray in that order),
/// with only the sampled flag kept (B3 and X-Ray use other bits for "deferred" and "debug",
/// which W3C would read as its own flags).
#[cfg_attr(feature = "propagator-b3", allow(deprecated))]
pub(super) fn extract<C: Carrier + ?Sized>(formats: Formats, carrier: &C) -> Option<SpanContext> {
    let extractor = FieldExtractor(carrier);
    let found = None;
    #[cfg(feature = "propagator-b3")]
    let found = found.or_else(|| {
        (formats.contains(Formats::B3) || formats.contains(Formats::B3_MULTI))
            .then(|| valid(opentelemetry_zipkin::Propagator::new().extract(&extractor)))
            .flatten()
    });
    let found = found.or_else(|| {
        formats
            .contains(Formats::JAEGER)
            .then(|| jaeger_extract(&extractor))
            .flatten()
    });
    #[cfg(feature = "propagator-xray")]
    let found = found.or_else(|| {
        formats
            .contains(Formats::XRAY)
            .then(|| valid(opentelemetry_aws::trace::XrayPropagator::new().extract(&extractor)))
            .flatten()
    });
    found.map(|sc| {
        SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags() & TraceFlags::SAMPLED,
            true,
            sc.trace_state().clone(),
        )
    })
}

#[cfg(any(feature = "propagator-b3", feature = "propagator-xray"))]
fn valid(cx: Context) -> Option<SpanContext> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.clone())
}

/// Writes `span_context` in each of `formats`.
#[cfg_attr(feature = "propagator-b3", allow(deprecated))]
pub(super) fn inject<C: CarrierMut + ?Sized>(
    formats: Formats,
    span_context: &SpanContext,
    carrier: &mut C,
) {
    #[cfg(any(feature = "propagator-b3", feature = "propagator-xray"))]
    let cx = Context::new().with_remote_span_context(span_context.clone());
    let mut injector = FieldInjector(carrier);
    #[cfg(feature = "propagator-b3")]
    {
        use opentelemetry_zipkin::B3Encoding;
        let encoding = match (
            formats.contains(Formats::B3),
            formats.contains(Formats::B3_MULTI),
        ) {
            (true, true) => Some(B3Encoding::SingleAndMultiHeader),
            (true, false) => Some(B3Encoding::SingleHeader),
            (false, true) => Some(B3Encoding::MultipleHeader),
            (false, false) => None,
        };
        if let Some(encoding) = encoding {
            opentelemetry_zipkin::Propagator::with_encoding(encoding)
                .inject_context(&cx, &mut injector);
        }
    }
    if formats.contains(Formats::JAEGER) {
        injector.set(
            Field::UberTraceId.key(),
            format!(
                "{}:{}:0:{}",
                span_context.trace_id(),
                span_context.span_id(),
                u8::from(span_context.is_sampled())
            ),
        );
    }
    #[cfg(feature = "propagator-xray")]
    if formats.contains(Formats::XRAY) {
        opentelemetry_aws::trace::XrayPropagator::new().inject_context(&cx, &mut injector);
    }
}

/// Jaeger's `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}` (hex ids of up to 32
/// and 16 digits, flags bit 0 = sampled; the value may be percent-encoded, `%3A` for `:`).
fn jaeger_extract(extractor: &dyn Extractor) -> Option<SpanContext> {
    let raw = extractor.get(Field::UberTraceId.key())?.trim();
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let mut parts = decoded.split(':');
    let (trace, span, _parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let hex = |s: &str, max: usize| {
        (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u128::from_str_radix(s, 16).ok())
            .flatten()
    };
    let trace_id = TraceId::from(hex(trace, 32)?);
    let span_id = SpanId::from(u64::try_from(hex(span, 16)?).ok()?);
    let flags = hex(flags, 2)?;
    let sampled = if flags & 1 == 1 {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(trace_id, span_id, sampled, true, TraceState::NONE);
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn carrier(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn jaeger_round_trip_and_malformed_values() {
        let c = carrier(&[(
            "uber-trace-id",
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
        )]);
        let sc = extract(Formats::JAEGER, &c).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        let mut out = HashMap::new();
        inject(Formats::JAEGER, &sc, &mut out);
        assert_eq!(
            out["uber-trace-id"],
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"
        );
        // 64-bit ids, percent-encoding, unsampled.
        let c = carrier(&[("uber-trace-id", "a3ce929d0e0e4736%3Ab7%3A0%3A0")]);
        let sc = extract(Formats::JAEGER, &c).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00000000000000b7");
        assert!(!sc.is_sampled());
        for bad in [
            "",
            "1:2:3",
            "1:2:3:4:5",
            "0:1:0:1",
            "1:0:0:1",
            "x:1:0:1",
            "4bf92f3577b34da6a3ce929d0e0e47360:1:0:1",
            "1:1:0:zz",
        ] {
            let c = carrier(&[("uber-trace-id", bad)]);
            assert!(extract(Formats::JAEGER, &c).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn formats_debug_and_missing_features() {
        assert_eq!(
            format!("{:?}", Formats::B3 | Formats::XRAY),
            r#"{"b3", "xray"}"#
        );
        assert_eq!(Formats::JAEGER.missing_feature(), None);
        assert_eq!(
            Formats::B3_MULTI.missing_feature().is_some(),
            !cfg!(feature = "propagator-b3")
        );
        assert_eq!(
            Formats::XRAY.missing_feature().is_some(),
            !cfg!(feature = "propagator-xray")
        );
    }

    #[cfg(feature = "propagator-b3")]
    #[test]
    fn b3_multi_and_single_round_trip() {
        let c = carrier(&[
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
            ("x-b3-sampled", "1"),
        ]);
        let sc = extract(Formats::B3_MULTI, &c).unwrap();
        assert!(sc.is_sampled());
        let mut out = HashMap::new();
        inject(Formats::B3 | Formats::B3_MULTI, &sc, &mut out);
        assert_eq!(out["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(out["x-b3-spanid"], "00f067aa0ba902b7");
        assert_eq!(out["x-b3-sampled"], "1");
        assert_eq!(
            out["b3"],
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
        );
        // Deferred (no sampled header): extracted unsampled, no W3C-looking flag bits.
        let c = carrier(&[
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
        ]);
        let sc = extract(Formats::B3_MULTI, &c).unwrap();
        assert_eq!(sc.trace_flags(), TraceFlags::default());
    }

    #[cfg(feature = "propagator-xray")]
    #[test]
    fn xray_round_trip() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let c = carrier(&[("x-amzn-trace-id", header)]);
        let sc = extract(Formats::XRAY, &c).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(sc.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(sc.is_sampled());
        let mut out = HashMap::new();
        inject(Formats::XRAY, &sc, &mut out);
        assert_eq!(out["x-amzn-trace-id"], header);
    }
}
