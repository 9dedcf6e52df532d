//! The trace-context participant (`examples/participant.rs`) behaves as W3C Trace Context Level 2
//! requires of a participant that forwards the context.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use gorax_examples::participant::{self, Call};
use gorax_tests::serve;
use gorax_trace::sampling::Sampler;
use gorax_trace::testing::TestTracing;
use http::HeaderMap;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

/// What one downstream call received: `traceparent`, `tracestate` (all fields joined).
type Received = (Option<String>, Option<String>);

struct Harness {
    participant: SocketAddr,
    echo: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    tracing: TestTracing,
}

async fn harness(sampler: Sampler) -> Harness {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = received.clone();
    let echo = serve(Router::new().route(
        "/echo",
        post(move |headers: HeaderMap| {
            let field = |name: &str| {
                let values: Vec<&str> = headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            };
            sink.lock()
                .unwrap()
                .push((field("traceparent"), field("tracestate")));
            async { "ok" }
        }),
    ))
    .await;
    let tracing = TestTracing::with_sampler(sampler);
    let participant = serve(participant::router(tracing.tracer())).await;
    Harness {
        participant,
        echo,
        received,
        tracing,
    }
}

impl Harness {
    /// Sends `POST /test` with `headers` asking for two downstream calls; returns what they got.
    async fn test(&self, headers: &[(&str, &str)]) -> Vec<Received> {
        self.received.lock().unwrap().clear();
        let calls = vec![
            Call {
                url: format!("http://{}/echo", self.echo),
                arguments: serde_json::json!({"n": 1}),
            },
            Call {
                url: format!("http://{}/echo", self.echo),
                arguments: serde_json::json!({"n": 2}),
            },
            // A failing call is ignored and does not stop the others.
            Call {
                url: "http://127.0.0.1:9/closed".into(),
                arguments: serde_json::Value::Null,
            },
        ];
        let mut req = reqwest::Client::new().post(format!("http://{}/test", self.participant));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req
            .body(serde_json::to_vec(&calls).unwrap())
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        self.received.lock().unwrap().clone()
    }
}

fn parse(tp: &Option<String>) -> (String, String, String) {
    let tp = tp.as_deref().expect("a traceparent downstream");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00", "we send version 00: {tp}");
    assert!(
        gorax_trace::propagation::parse_traceparent(tp).is_some(),
        "valid: {tp}"
    );
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_the_trace_with_a_new_parent_id_per_call_and_the_tracestate() {
    let h = harness(Sampler::ParentBasedAlwaysOn).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let got = h
        .test(&[
            ("traceparent", &tp),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ])
        .await;
    assert_eq!(got.len(), 2);
    let (a, b) = (parse(&got[0].0), parse(&got[1].0));
    assert_eq!((a.0.as_str(), b.0.as_str()), (TRACE, TRACE));
    assert_ne!(a.1, b.1, "a new parent id per outgoing call");
    assert_ne!(a.1, PARENT);
    assert_eq!((a.2.as_str(), b.2.as_str()), ("01", "01"));
    for (_, state) in &got {
        assert_eq!(
            state.as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
    }
    // The parent ids sent are the participant's client spans.
    let spans = h.tracing.spans();
    let clients: Vec<String> = spans
        .find_all("POST")
        .iter()
        .map(|s| s.span_context.span_id().to_string())
        .collect();
    assert!(
        clients.contains(&a.1) && clients.contains(&b.1),
        "{clients:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_does_not_depend_on_sampling() {
    let h = harness(Sampler::ParentBasedAlwaysOn).await;
    let tp = format!("00-{TRACE}-{PARENT}-00");
    let got = h
        .test(&[("traceparent", &tp), ("tracestate", "rojo=1")])
        .await;
    let (a, b) = (parse(&got[0].0), parse(&got[1].0));
    assert_eq!(
        (a.0.as_str(), a.2.as_str(), b.0.as_str(), b.2.as_str()),
        (TRACE, "00", TRACE, "00")
    );
    assert_ne!(a.1, b.1);
    assert_eq!(got[0].1.as_deref(), Some("rojo=1"));
    assert!(h.tracing.spans().is_empty(), "unsampled: nothing recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_random_flag_is_kept_and_unknown_flags_are_cleared() {
    let h = harness(Sampler::ParentBasedAlwaysOn).await;
    let tp = format!("00-{TRACE}-{PARENT}-ff");
    let got = h.test(&[("traceparent", &tp)]).await;
    assert_eq!(parse(&got[0].0).2, "03");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_restarts_the_trace_and_drops_tracestate() {
    let h = harness(Sampler::ParentBasedAlwaysOn).await;
    let upper = format!("00-{}-{PARENT}-01", TRACE.to_uppercase());
    let zero_trace = format!("00-{}-{PARENT}-01", "0".repeat(32));
    let zero_parent = format!("00-{TRACE}-{}-01", "0".repeat(16));
    let ff = format!("ff-{TRACE}-{PARENT}-01");
    let short = format!("00-{TRACE}-{PARENT}-1");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("traceparent", &upper), ("tracestate", "rojo=1")],
        vec![("traceparent", &zero_trace), ("tracestate", "rojo=1")],
        vec![("traceparent", &zero_parent)],
        vec![("traceparent", &ff)],
        vec![("traceparent", &short)],
        vec![("traceparent", "garbage"), ("tracestate", "rojo=1")],
        vec![],
    ];
    for headers in cases {
        let got = h.test(&headers).await;
        let (a, b) = (parse(&got[0].0), parse(&got[1].0));
        assert_ne!(a.0, TRACE, "{headers:?}: a new trace");
        assert_eq!(
            a.0, b.0,
            "{headers:?}: both calls in the participant's new trace"
        );
        assert_eq!(
            got[0].1, None,
            "{headers:?}: no tracestate without a valid traceparent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_traceparent_restarts_and_tracestate_fields_combine() {
    let h = harness(Sampler::ParentBasedAlwaysOn).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let other = format!("00-{}-{PARENT}-01", "1".repeat(32));
    let got = h
        .test(&[("traceparent", &tp), ("traceparent", &other)])
        .await;
    let a = parse(&got[0].0);
    assert!(
        a.0 != TRACE && a.0 != "1".repeat(32),
        "two traceparent fields: a new trace"
    );

    let got = h
        .test(&[
            ("traceparent", &tp),
            ("tracestate", "rojo=1"),
            ("tracestate", "congo=2"),
        ])
        .await;
    assert_eq!(got[0].1.as_deref(), Some("rojo=1,congo=2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_versions_and_tracestate_limits() {
    let h = harness(Sampler::ParentBasedAlwaysOn).await;
    let future = format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like");
    let got = h.test(&[("traceparent", &future)]).await;
    assert_eq!(
        parse(&got[0].0).0,
        TRACE,
        "a higher version is parsed by its known fields"
    );

    let tp = format!("00-{TRACE}-{PARENT}-01");
    let members32: Vec<String> = (0..32).map(|i| format!("k{i}=v{i}")).collect();
    let got = h
        .test(&[("traceparent", &tp), ("tracestate", &members32.join(","))])
        .await;
    assert_eq!(got[0].1.as_deref(), Some(members32.join(",").as_str()));
    let members33: Vec<String> = (0..33).map(|i| format!("k{i}=v{i}")).collect();
    let got = h
        .test(&[("traceparent", &tp), ("tracestate", &members33.join(","))])
        .await;
    assert_eq!(parse(&got[0].0).0, TRACE, "the traceparent stays valid");
    assert_eq!(
        got[0].1, None,
        "33 members: the whole tracestate is discarded (the W3C test suite, Level 2 strict)"
    );
    // An invalid member (key character, value character, key length) discards the whole list.
    let long_key = format!("{}=v", "k".repeat(257));
    for bad in ["a=1,B=2", "a=1,b=x=y", &long_key] {
        let got = h.test(&[("traceparent", &tp), ("tracestate", bad)]).await;
        assert_eq!(
            parse(&got[0].0).0,
            TRACE,
            "{bad:?}: the traceparent stays valid"
        );
        assert_eq!(got[0].1, None, "{bad:?}: discarded whole");
    }
    // A duplicated key keeps the first.
    let got = h
        .test(&[("traceparent", &tp), ("tracestate", "a=1,b=2,a=3")])
        .await;
    assert_eq!(got[0].1.as_deref(), Some("a=1,b=2"));
    // A valid list of 32 long members is forwarded bounded to 512 characters, whole members.
    let long32: Vec<String> = (0..32)
        .map(|i| format!("k{i:02}={}", "v".repeat(40)))
        .collect();
    let got = h
        .test(&[("traceparent", &tp), ("tracestate", &long32.join(","))])
        .await;
    let sent = got[0].1.clone().unwrap();
    assert!(sent.len() <= 512, "{}", sent.len());
    assert!(
        long32.join(",").starts_with(&sent),
        "whole members, in order: {sent}"
    );
}

/// "Vendors receiving a `tracestate` request header MUST send it to outgoing requests": members
/// with valid Level 2 keys that `opentelemetry`'s `TraceState` refuses (`a@b@c`, `t@_x`, a
/// system part of 14 characters, the keys of the W3C suite's `key_length_limit` and
/// `key_illegal_vendor_format` cases) are forwarded in place, sampled or not, and only with the
/// trace they came with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_level_2_keys_the_sdk_cannot_hold_are_forwarded_in_place() {
    let tenant = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let received = format!("congo=1,a@b@c=2,rojo=3,t@_x=4,{tenant}=5,foo@=6");
    for (sampler, flags) in [
        (Sampler::ParentBasedAlwaysOn, "01"),
        (Sampler::ParentBasedAlwaysOn, "00"),
        (Sampler::AlwaysOn, "00"),
    ] {
        let h = harness(sampler).await;
        let tp = format!("00-{TRACE}-{PARENT}-{flags}");
        let got = h
            .test(&[("traceparent", &tp), ("tracestate", &received)])
            .await;
        assert_eq!(got.len(), 2, "{sampler:?} {flags}");
        for (traceparent, tracestate) in &got {
            assert_eq!(parse(traceparent).0, TRACE);
            assert_eq!(
                tracestate.as_deref(),
                Some(received.as_str()),
                "{sampler:?} {flags}: sent on as received"
            );
        }
    }
    // An untrusted or restarted trace does not carry it: garbage traceparent, same tracestate.
    let h = harness(Sampler::ParentBasedAlwaysOn).await;
    let got = h
        .test(&[("traceparent", "garbage"), ("tracestate", &received)])
        .await;
    assert!(got.iter().all(|(_, state)| state.is_none()), "{got:?}");
}

/// Level 2 `random` flag (0x02): passed on as received, sampled or not; set on new roots (the
/// SDK's trace ids are random). Rows: (sampler, incoming flags or none for a new root,
/// expected outgoing flags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_random_flag_is_passed_on_as_received_and_set_on_new_roots() {
    let rows: [(Sampler, Option<&str>, &str); 8] = [
        // received set
        (Sampler::ParentBasedAlwaysOn, Some("03"), "03"),
        (Sampler::ParentBasedAlwaysOn, Some("02"), "02"),
        // received not set
        (Sampler::ParentBasedAlwaysOn, Some("01"), "01"),
        (Sampler::ParentBasedAlwaysOn, Some("00"), "00"),
        // sampler ignoring the parent: the flag still follows the caller's trace
        (Sampler::AlwaysOff, Some("03"), "02"),
        (Sampler::AlwaysOn, Some("02"), "03"),
        // new roots, sampled and not
        (Sampler::ParentBasedAlwaysOn, None, "03"),
        (Sampler::ParentBasedAlwaysOff, None, "02"),
    ];
    for (sampler, incoming, expected) in rows {
        let h = harness(sampler).await;
        let tp = incoming.map(|f| format!("00-{TRACE}-{PARENT}-{f}"));
        let headers: Vec<(&str, &str)> = tp.iter().map(|tp| ("traceparent", tp.as_str())).collect();
        let got = h.test(&headers).await;
        assert_eq!(got.len(), 2);
        for (tp_out, _) in &got {
            let (trace, _, flags) = parse(tp_out);
            assert_eq!(flags, expected, "{sampler:?} {incoming:?}: {tp_out:?}");
            if incoming.is_some() {
                assert_eq!(trace, TRACE, "{sampler:?} {incoming:?}");
            } else {
                assert_ne!(trace, TRACE);
            }
        }
    }
}

/// The participant built as its binary builds it (`router_with` a handle whose propagators come
/// from `OTEL_PROPAGATORS`), one call to an echo that records every header; returns the headers
/// of that call and the test provider.
async fn forward_with(
    otel_propagators: &str,
    headers: &[(&str, &str)],
) -> (HeaderMap, TestTracing) {
    let received: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let sink = received.clone();
    let echo = serve(Router::new().route(
        "/echo",
        post(move |headers: HeaderMap| {
            sink.lock().unwrap().push(headers);
            async { "ok" }
        }),
    ))
    .await;
    let config =
        gorax_trace::config::TraceConfig::from_vars([("OTEL_PROPAGATORS", otel_propagators)])
            .expect("a valid OTEL_PROPAGATORS");
    let tracing = TestTracing::new();
    let handle = gorax_trace::TelemetryHandle::new(
        tracing.tracer(),
        gorax_trace::Settings::default().with_propagators(config.propagators()),
        Default::default(),
    );
    let participant = serve(participant::router_with(handle)).await;
    let calls = vec![Call {
        url: format!("http://{echo}/echo"),
        arguments: serde_json::json!({}),
    }];
    let mut req = reqwest::Client::new().post(format!("http://{participant}/test"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.json(&calls).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let got = received.lock().unwrap().pop().expect("one downstream call");
    (got, tracing)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_b3multi_the_participant_forwards_the_callers_b3_trace() {
    let (got, tracing) = forward_with(
        "b3multi",
        &[
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", PARENT),
            ("X-B3-Sampled", "1"),
        ],
    )
    .await;
    assert_eq!(header(&got, "x-b3-traceid"), Some(TRACE), "{got:?}");
    let span_id = header(&got, "x-b3-spanid").expect("x-b3-spanid");
    assert_ne!(span_id, PARENT, "a new span id downstream");
    assert_eq!(header(&got, "x-b3-sampled"), Some("1"));
    assert!(got.get("traceparent").is_none(), "only b3multi: {got:?}");
    // The server span continued the caller's B3 trace.
    let spans = tracing.spans();
    let server = spans.find("POST /test");
    assert_eq!(server.span_context.trace_id().to_string(), TRACE);
    assert_eq!(server.parent_span_id.to_string(), PARENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3c_first_then_xray_and_both_are_written() {
    let xray_in = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let (got, _) = forward_with("tracecontext,baggage,xray", &[("X-Amzn-Trace-Id", xray_in)]).await;
    let xray = header(&got, "x-amzn-trace-id").expect("x-amzn-trace-id");
    assert!(
        xray.starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=")
            && xray.ends_with(";Sampled=1"),
        "{xray}"
    );
    assert!(!xray.contains("53995c3f42cd8ad8"), "a new parent: {xray}");
    let (trace, _, flags) = parse(&header(&got, "traceparent").map(str::to_owned));
    assert_eq!(
        (trace.as_str(), flags.as_str()),
        ("5759e988bd862e3fe1be46a994272793", "01")
    );

    // A valid traceparent wins over X-Ray.
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let (got, _) = forward_with(
        "tracecontext,xray",
        &[("traceparent", &tp), ("X-Amzn-Trace-Id", xray_in)],
    )
    .await;
    let (trace, _, _) = parse(&header(&got, "traceparent").map(str::to_owned));
    assert_eq!(trace, TRACE);
    let xray = header(&got, "x-amzn-trace-id").unwrap();
    assert!(
        xray.starts_with("Root=1-0af76519-16cd43dd8448eb211c80319c;"),
        "{xray}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jaeger_the_participant_forwards_uber_trace_id() {
    let (got, _) = forward_with(
        "jaeger",
        &[("uber-trace-id", &format!("{TRACE}:{PARENT}:0:1"))],
    )
    .await;
    let value = header(&got, "uber-trace-id").expect("uber-trace-id");
    let parts: Vec<&str> = value.split(':').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], TRACE);
    assert_ne!(parts[1], PARENT);
    assert_eq!(parts[3], "1");
}
