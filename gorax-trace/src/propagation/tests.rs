//! Unit tests of propagation: the specification's tables, carriers, property tests.

use super::*;
use opentelemetry::KeyValue;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use proptest::prelude::*;
use std::collections::HashMap;

fn extract<C: Carrier + ?Sized>(carrier: &C) -> Context {
    Propagators::W3C.extract(carrier)
}

fn inject<C: CarrierMut + ?Sized>(cx: &Context, carrier: &mut C) {
    Propagators::W3C.inject(cx, carrier)
}

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

    // (received, kept): an invalid member discards the whole header, a later duplicate goes
    // alone (Level 2 keys may start with a digit and hold `@` anywhere).
    for (received, kept) in [
        ("rojo", ""),
        ("a=1,a=2", "a=1"),
        ("UPPER=1,a=1", ""),
        ("k=v\u{7f}", ""),
        ("k=a\tb", ""),
        ("k=", ""),
        ("1k=v", "1k=v"),
        ("k@=v", "k@=v"),
        ("t@1sys=v", "t@1sys=v"),
    ] {
        let Ok(v) = HeaderValue::from_str(received) else {
            continue;
        };
        let mut h = headers(&[("traceparent", TP)]);
        h.insert(TRACESTATE, v);
        let cx = extract(&h);
        let span = cx.span();
        assert!(
            span.span_context().is_valid(),
            "traceparent kept for {received:?}"
        );
        assert_eq!(
            span.span_context().trace_state().header(),
            kept,
            "{received:?}"
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
    assert_eq!(
        extract(&h).span().span_context().trace_state().header(),
        "",
        "33 members: the whole header is discarded (the W3C test suite)"
    );
    assert!(
        extract(&h).span().span_context().is_valid(),
        "traceparent kept"
    );
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
    inject(&cx, &mut map);
    assert_eq!(map.get("traceparent").map(String::as_str), Some(TP));
    assert!(
        !map.contains_key("tracestate"),
        "empty tracestate is not written"
    );
    assert_eq!(map.get("baggage").map(String::as_str), Some("k=v"));
    let back = extract(&map);
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
