//! Real-network tests: a reqwest client with the middleware calls an axum server on
//! 127.0.0.1 that echoes the headers it received.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, get};
use gorax_trace::httpconv::HttpSemconv;
use gorax_trace::propagation::parse_traceparent;
use gorax_trace::sampling::Sampler;
use gorax_trace::semconv::{self, legacy};
use gorax_trace::testing::{Spans, TestTracing};
use opentelemetry::trace::{
    FutureExt as _, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::SpanData;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;

use crate::{ClientTraceMiddleware, NoPropagation, PropagationPolicy, UrlTemplate};
use gorax_trace::TelemetryHandle;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TP_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

/// The headers the echo server received, one `name: value` per line.
#[derive(Debug)]
struct Echoed {
    status: StatusCode,
    headers: Vec<(String, String)>,
}

impl Echoed {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The only value of `name`, or `None`; panics on several.
    #[track_caller]
    fn get(&self, name: &str) -> Option<&str> {
        match self.all(name).as_slice() {
            [] => None,
            [one] => Some(one),
            many => panic!("{name} received {} times: {many:?}", many.len()),
        }
    }

    /// The received `traceparent`, parsed (panics when missing or invalid).
    #[track_caller]
    fn traceparent(&self) -> SpanContext {
        let value = self
            .get("traceparent")
            .unwrap_or_else(|| panic!("no traceparent received; headers: {:?}", self.headers));
        parse_traceparent(value).unwrap_or_else(|| panic!("invalid traceparent {value:?}"))
    }

    fn has_no_trace_headers(&self) -> bool {
        ["traceparent", "tracestate", "baggage"]
            .iter()
            .all(|h| self.all(h).is_empty())
    }
}

fn echo_body(headers: &HeaderMap) -> String {
    headers
        .iter()
        .map(|(k, v)| format!("{}: {}\n", k, v.to_str().unwrap_or("<binary>")))
        .collect()
}

/// Starts the echo server on 127.0.0.1:0 and returns its base URL:
/// - `/echo` (any method): 200 and the headers;
/// - `/status/{code}`: that status and the headers;
/// - `/flaky`: 503 for the first two calls, 200 afterwards.
async fn echo_server() -> String {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/echo", any(|h: HeaderMap| async move { echo_body(&h) }))
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>, h: HeaderMap| async move {
                (StatusCode::from_u16(code).unwrap(), echo_body(&h))
            }),
        )
        .route(
            "/flaky",
            get(
                |State(hits): State<Arc<AtomicUsize>>, h: HeaderMap| async move {
                    let status = if hits.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    (status, echo_body(&h))
                },
            ),
        )
        .with_state(hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn traced_client(middleware: ClientTraceMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

fn traced(t: &TestTracing) -> ClientTraceMiddleware {
    ClientTraceMiddleware::new().with_tracer(t.tracer())
}

async fn echoed(res: reqwest::Response) -> Echoed {
    let status = res.status();
    let body = res.text().await.unwrap();
    let headers = body
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Echoed { status, headers }
}

async fn send(builder: reqwest_middleware::RequestBuilder, cx: &Context) -> Echoed {
    echoed(builder.send().with_context(cx.clone()).await.unwrap()).await
}

/// A remote caller context as the server layer would extract it.
fn caller(headers: &[(&str, &str)]) -> Context {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    gorax_trace::propagation::Propagators::W3C.extract(&map)
}

fn by_span_id<'a>(spans: &'a Spans, sc: &SpanContext) -> &'a SpanData {
    spans.by_id(sc.span_id()).unwrap_or_else(|| {
        panic!(
            "no span with id {}; spans: {:?}",
            sc.span_id(),
            spans.names()
        )
    })
}

#[tokio::test]
async fn each_request_carries_its_own_client_span_under_the_current_span() {
    let t = TestTracing::new();
    let base = echo_server().await;
    let client = traced_client(traced(&t));
    let tracer = t.tracer();
    let parent = tracer.start("caller");
    let cx = Context::new().with_span(parent);

    let first = send(client.get(format!("{base}/echo")), &cx).await;
    let second = send(client.post(format!("{base}/echo")), &cx).await;
    cx.span().end();

    let spans = t.spans();
    let caller = spans.find("caller");
    let (tp1, tp2) = (first.traceparent(), second.traceparent());
    assert_ne!(tp1.span_id(), tp2.span_id(), "a new span id per request");
    for (tp, method) in [(&tp1, "GET"), (&tp2, "POST")] {
        assert_eq!(tp.trace_id(), caller.span_context.trace_id());
        assert!(tp.is_sampled());
        let span = by_span_id(&spans, tp);
        assert_eq!(span.name, method);
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(span.parent_span_id, caller.span_context.span_id());
        assert_eq!(span.status, Status::Unset);
        let port = base.rsplit(':').next().unwrap().parse::<i64>().unwrap();
        for (key, value) in [
            (semconv::HTTP_REQUEST_METHOD, Value::from(method)),
            (semconv::SERVER_ADDRESS, "127.0.0.1".into()),
            (semconv::SERVER_PORT, port.into()),
            (semconv::URL_FULL, format!("{base}/echo").into()),
            (semconv::NETWORK_PROTOCOL_VERSION, "1.1".into()),
            (semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64.into()),
        ] {
            spans.assert_attr(span, key, value);
        }
        for key in [
            semconv::ERROR_TYPE,
            semconv::HTTP_REQUEST_RESEND_COUNT,
            semconv::URL_TEMPLATE,
            legacy::HTTP_METHOD,
            legacy::HTTP_URL,
            legacy::HTTP_STATUS_CODE,
        ] {
            spans.assert_no_attr(span, key);
        }
    }
    assert!(first.get("tracestate").is_none() && first.get("baggage").is_none());
}

#[tokio::test]
async fn remote_callers_trace_id_tracestate_and_baggage_are_forwarded() {
    let t = TestTracing::new();
    let base = echo_server().await;
    let client = traced_client(traced(&t));
    let cx = caller(&[
        ("traceparent", TP),
        ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ("baggage", "tenant_id=t1,user=alice"),
    ]);

    let got = send(client.get(format!("{base}/echo")), &cx).await;

    let tp = got.traceparent();
    assert_eq!(tp.trace_id().to_string(), CALLER_TRACE);
    assert_ne!(tp.span_id().to_string(), CALLER_SPAN);
    assert_eq!(
        got.get("tracestate"),
        Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    );
    let mut baggage: Vec<&str> = got.get("baggage").unwrap().split(',').collect();
    baggage.sort_unstable();
    assert_eq!(baggage, ["tenant_id=t1", "user=alice"]);

    let spans = t.spans();
    let span = by_span_id(&spans, &tp);
    assert_eq!(span.parent_span_id.to_string(), CALLER_SPAN);
    assert!(span.parent_span_is_remote);
}

#[tokio::test]
async fn unsampled_requests_still_propagate_a_fresh_span_id() {
    let t = TestTracing::with_sampler(Sampler::ParentBasedAlwaysOn);
    let base = echo_server().await;
    // Through the SDK (a bare tracer), and through the handle that knows its sampler follows
    // the parent (the span context made without the SDK span): the same on the wire.
    for (path, middleware) in [
        ("sdk", traced(&t)),
        (
            "handle",
            ClientTraceMiddleware::new().with_telemetry(t.handle()),
        ),
    ] {
        let client = traced_client(middleware);
        let cx = caller(&[("traceparent", TP_UNSAMPLED), ("tracestate", "rojo=1")]);

        let first = send(client.get(format!("{base}/echo")), &cx).await;
        let second = send(client.get(format!("{base}/echo")), &cx).await;

        let (tp1, tp2) = (first.traceparent(), second.traceparent());
        for tp in [&tp1, &tp2] {
            assert_eq!(tp.trace_id().to_string(), CALLER_TRACE, "{path}");
            assert_ne!(tp.span_id().to_string(), CALLER_SPAN, "{path}");
            assert!(!tp.is_sampled(), "{path}");
            assert_eq!(tp.trace_flags().to_u8(), 0, "{path}");
        }
        assert_ne!(tp1.span_id(), tp2.span_id());
        assert_eq!(first.get("tracestate"), Some("rojo=1"), "{path}");
        // The Level 2 random flag of the caller is passed on, with baggage.
        let random = caller(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
            ),
            ("baggage", "k=v"),
        ]);
        let third = send(client.get(format!("{base}/echo")), &random).await;
        assert_eq!(third.traceparent().trace_flags().to_u8(), 2, "{path}");
        assert_eq!(third.get("baggage"), Some("k=v"), "{path}");
        assert!(
            t.spans().is_empty(),
            "{path}: nothing recorded: {:?}",
            t.spans()
        );
    }
}

#[tokio::test]
async fn disabled_tracing_still_propagates() {
    // No `init` in this process: the default tracer records nothing.
    let base = echo_server().await;
    let client = traced_client(ClientTraceMiddleware::new());

    // A caller's trace goes on, with a fresh span id and the caller's decision.
    let cx = caller(&[("traceparent", TP), ("baggage", "tenant_id=t1")]);
    let first = send(client.get(format!("{base}/echo")), &cx).await;
    let second = send(client.get(format!("{base}/echo")), &cx).await;
    let (tp1, tp2) = (first.traceparent(), second.traceparent());
    for tp in [&tp1, &tp2] {
        assert_eq!(tp.trace_id().to_string(), CALLER_TRACE);
        assert_ne!(tp.span_id().to_string(), CALLER_SPAN);
        assert!(tp.is_sampled(), "the caller's sampled flag is passed on");
    }
    assert_ne!(tp1.span_id(), tp2.span_id());
    assert_eq!(first.get("baggage"), Some("tenant_id=t1"));

    // Without a caller: a new trace id per request, still propagated.
    let a = send(client.get(format!("{base}/echo")), &Context::new()).await;
    let b = send(client.get(format!("{base}/echo")), &Context::new()).await;
    let (a, b) = (a.traceparent(), b.traceparent());
    assert_ne!(a.trace_id(), b.trace_id());
    assert!(!a.is_sampled());
}

#[tokio::test]
async fn per_request_opt_out_records_the_span_but_sends_nothing() {
    let t = TestTracing::new();
    let base = echo_server().await;
    let client = traced_client(traced(&t));
    let cx = caller(&[
        ("traceparent", TP),
        ("tracestate", "rojo=1"),
        ("baggage", "token=secret"),
    ]);

    let got = send(
        client
            .get(format!("{base}/echo"))
            .with_extension(NoPropagation),
        &cx,
    )
    .await;
    assert!(got.has_no_trace_headers(), "{:?}", got.headers);

    let spans = t.spans();
    let span = spans.find("GET");
    assert_eq!(span.parent_span_id.to_string(), CALLER_SPAN);
    spans.assert_attr(span, semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64);
}

#[tokio::test]
async fn host_policy_decides_who_receives_context_and_baggage() {
    let base = echo_server().await;
    let url = format!("{base}/echo");
    let cx = caller(&[
        ("traceparent", TP),
        ("tracestate", "rojo=1"),
        ("baggage", "token=secret"),
    ]);

    // Not on the allow-list: traced, nothing sent.
    let t = TestTracing::new();
    let other = traced_client(
        traced(&t).with_propagation_policy(PropagationPolicy::hosts(["api.gorax.internal"])),
    );
    let got = send(other.get(&url), &cx).await;
    assert!(got.has_no_trace_headers(), "{:?}", got.headers);
    assert_eq!(t.spans().find_all("GET").len(), 1, "the span is recorded");

    // On the allow-list.
    let t = TestTracing::new();
    let listed =
        traced_client(traced(&t).with_propagation_policy(PropagationPolicy::hosts(["127.0.0.1"])));
    let got = send(listed.get(&url), &cx).await;
    assert_eq!(got.traceparent().trace_id().to_string(), CALLER_TRACE);
    assert_eq!(got.get("baggage"), Some("token=secret"));

    // A closure, and `none`.
    for (policy, expected) in [
        (PropagationPolicy::custom(|u| u.path() == "/echo"), true),
        (PropagationPolicy::custom(|u| u.scheme() == "https"), false),
        (PropagationPolicy::none(), false),
    ] {
        let c = traced_client(ClientTraceMiddleware::new().with_propagation_policy(policy.clone()));
        let got = send(c.get(&url), &cx).await;
        assert_eq!(!got.has_no_trace_headers(), expected, "{policy:?}");
    }

    // Baggage only to the allow-listed hosts; trace context everywhere.
    let t = TestTracing::new();
    let no_baggage = traced_client(
        traced(&t).with_baggage_hosts(PropagationPolicy::hosts(["*.gorax.internal"])),
    );
    let got = send(no_baggage.get(&url), &cx).await;
    let tp = got.traceparent();
    assert_eq!(tp.trace_id().to_string(), CALLER_TRACE);
    assert_eq!(got.get("tracestate"), Some("rojo=1"));
    assert_eq!(got.get("baggage"), None);
    assert_eq!(
        t.spans().find("GET").span_context.span_id(),
        tp.span_id(),
        "the client span's id is still the one sent"
    );
}

#[tokio::test]
async fn error_statuses_and_transport_errors() {
    let t = TestTracing::new();
    let base = echo_server().await;
    let client = traced_client(traced(&t));
    for code in [200_u16, 302, 404, 503] {
        let got = send(client.get(format!("{base}/status/{code}")), &Context::new()).await;
        assert_eq!(got.status.as_u16(), code);
    }
    let spans = t.spans();
    for (span, code) in spans
        .find_all("GET")
        .into_iter()
        .zip([200_i64, 302, 404, 503])
    {
        spans.assert_attr(span, semconv::HTTP_RESPONSE_STATUS_CODE, code);
        if code >= 400 {
            assert!(matches!(span.status, Status::Error { .. }), "{code}");
            spans.assert_attr(span, semconv::ERROR_TYPE, code.to_string());
        } else {
            assert_eq!(span.status, Status::Unset, "{code}");
            spans.assert_no_attr(span, semconv::ERROR_TYPE);
        }
    }

    // A closed port: connection refused.
    let t = TestTracing::new();
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let client = traced_client(traced(&t));
    let err = client
        .get(format!("http://{closed}/echo"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let spans = t.spans();
    let span = spans.find("GET");
    spans.assert_attr(span, semconv::ERROR_TYPE, "connect");
    spans.assert_no_attr(span, semconv::HTTP_RESPONSE_STATUS_CODE);
    match &span.status {
        Status::Error { description } => assert!(!description.is_empty()),
        other => panic!("expected an error status, got {other:?}"),
    }
}

/// Issue 20: a failed call to a URL holding secrets (`&`- and `;`-separated, and inside an
/// encoded URL in another parameter) exports no byte of them: not in the status (reqwest's error
/// names the URL), not in `url.full`, not anywhere in the span.
#[tokio::test]
async fn a_failed_call_exports_no_secret_of_its_url() {
    let t = TestTracing::new();
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let client = traced_client(traced(&t));
    let url = format!(
        "http://user:PASSWORD0@{closed}/x?access_token=SECRET1&a=1;token=SECRET2&next=%2Fcb%3Ftoken%3DSECRET3"
    );
    let err = client.get(&url).send().await.unwrap_err();
    // reqwest's own text names the whole URL: what the span must not carry.
    assert!(err.to_string().contains("SECRET1"), "{err}");
    let spans = t.spans();
    let span = spans.find("GET");
    let everything = format!(
        "{:?} {:?} {:?} {:?}",
        span.status, span.attributes, span.events, span.name
    );
    for secret in ["PASSWORD0", "SECRET1", "SECRET2", "SECRET3"] {
        assert!(!everything.contains(secret), "{secret} in {everything}");
    }
    match &span.status {
        Status::Error { description } => {
            assert!(
                description.contains("error sending request"),
                "{description}"
            )
        }
        other => panic!("expected an error status, got {other:?}"),
    }
}

#[tokio::test]
async fn each_retry_attempt_is_a_span_with_its_resend_count() {
    let t = TestTracing::new();
    let base = echo_server().await;
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(2))
        .build_with_max_retries(3);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(traced(&t))
        .build();
    let tracer = t.tracer();
    let cx = Context::new().with_span(tracer.start("caller"));

    let got = send(client.get(format!("{base}/flaky")), &cx).await;
    assert_eq!(got.status, StatusCode::OK);
    // A second logical request counts from zero again.
    send(client.get(format!("{base}/echo")), &cx).await;
    cx.span().end();

    let spans = t.spans();
    let attempts = spans.find_all("GET");
    assert_eq!(attempts.len(), 4, "{:?}", spans.names());
    let expected: [(Option<i64>, i64); 4] =
        [(None, 503), (Some(1), 503), (Some(2), 200), (None, 200)];
    for (span, (resend, status)) in attempts.iter().zip(expected) {
        spans.assert_child_of_span(span, "caller");
        spans.assert_attr(span, semconv::HTTP_RESPONSE_STATUS_CODE, status);
        match resend {
            Some(n) => spans.assert_attr(span, semconv::HTTP_REQUEST_RESEND_COUNT, n),
            None => spans.assert_no_attr(span, semconv::HTTP_REQUEST_RESEND_COUNT),
        }
    }
    // The last attempt's span id is the one the server saw on the successful call.
    assert_eq!(
        got.traceparent().span_id(),
        attempts[2].span_context.span_id()
    );
}

trait ChildOfSpan {
    fn assert_child_of_span(&self, span: &SpanData, parent: &str);
}

impl ChildOfSpan for Spans {
    #[track_caller]
    fn assert_child_of_span(&self, span: &SpanData, parent: &str) {
        let p = self.find(parent);
        assert_eq!(span.span_context.trace_id(), p.span_context.trace_id());
        assert_eq!(span.parent_span_id, p.span_context.span_id());
    }
}

#[tokio::test]
async fn a_tracing_instrument_span_is_the_parent() {
    use tracing_subscriber::layer::SubscriberExt;

    let t = TestTracing::new();
    let subscriber =
        tracing_subscriber::registry().with(gorax_trace::subscriber::otel_layer(t.tracer()));
    let _default = tracing::subscriber::set_default(subscriber);
    let base = echo_server().await;
    let client = traced_client(traced(&t));

    #[tracing::instrument(skip_all)]
    async fn load_user(client: &ClientWithMiddleware, url: String) -> Echoed {
        echoed(client.get(url).send().await.unwrap()).await
    }

    let got = load_user(&client, format!("{base}/echo")).await;
    let spans = t.spans();
    spans.assert_child_of("GET", "load_user");
    assert_eq!(
        got.traceparent().span_id(),
        spans.find("GET").span_context.span_id()
    );
    assert_eq!(
        got.traceparent().trace_id(),
        spans.find("load_user").span_context.trace_id()
    );
}

#[tokio::test]
async fn templates_dup_mode_redaction_and_unknown_methods() {
    let t = TestTracing::new();
    let base = echo_server().await;
    let client = traced_client(
        traced(&t)
            .with_http_semconv(HttpSemconv::Dup)
            .with_redacted_query_keys(["token"]),
    );
    let authority = base.trim_start_matches("http://");
    let got = send(
        client
            .get(format!(
                "http://user:pw@{authority}/echo?sig=abc&token=t&page=2"
            ))
            .with_extension(UrlTemplate::new("/echo")),
        &Context::new(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let purge = reqwest::Method::from_bytes(b"PURGE").unwrap();
    send(
        client.request(purge, format!("{base}/echo")),
        &Context::new(),
    )
    .await;

    let spans = t.spans();
    let span = spans.find("GET /echo");
    let full = format!("{base}/echo?sig=REDACTED&token=REDACTED&page=2");
    for (key, value) in [
        (semconv::URL_FULL, Value::from(full.clone())),
        (semconv::URL_TEMPLATE, "/echo".into()),
        (legacy::HTTP_METHOD, "GET".into()),
        (legacy::HTTP_URL, full.into()),
        (legacy::HTTP_STATUS_CODE, 200_i64.into()),
        (semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64.into()),
    ] {
        spans.assert_attr(span, key, value);
    }

    let other = spans.find("HTTP");
    spans.assert_attr(other, semconv::HTTP_REQUEST_METHOD, "_OTHER");
    spans.assert_attr(other, semconv::HTTP_REQUEST_METHOD_ORIGINAL, "PURGE");
    spans.assert_attr(other, legacy::HTTP_METHOD, "PURGE");
}

#[test]
fn inject_helpers_write_the_given_or_current_context() {
    let cx = caller(&[("traceparent", TP), ("baggage", "k=v")]);
    let mut headers = http::HeaderMap::new();
    TelemetryHandle::installed().inject(&cx, &mut headers);
    assert_eq!(headers["traceparent"], TP);
    assert_eq!(headers["baggage"], "k=v");

    let mut req = reqwest::Request::new(reqwest::Method::GET, "http://127.0.0.1/".parse().unwrap());
    {
        let _active = cx.clone().attach();
        TelemetryHandle::installed().inject_current(req.headers_mut());
    }
    assert_eq!(req.headers()["traceparent"], TP);

    let mut request = http::Request::builder().uri("/").body(()).unwrap();
    TelemetryHandle::installed().inject(&cx, request.headers_mut());
    assert_eq!(request.headers()["traceparent"], TP);

    let mut empty = http::HeaderMap::new();
    TelemetryHandle::installed().inject_current(&mut empty);
    assert!(empty.is_empty(), "no current span, nothing written");
}

#[test]
fn host_policy_table() {
    let policy = PropagationPolicy::hosts(["API.gorax.internal", "*.svc.local", "[::1]"]);
    let table = [
        ("http://api.gorax.internal/x", true),
        ("http://API.GORAX.INTERNAL:8080/x", true),
        ("http://gorax.internal/x", false),
        ("http://a.svc.local/", true),
        ("http://a.b.svc.local/", true),
        ("http://svc.local/", false),
        ("http://evilsvc.local/", false),
        ("http://[::1]:3000/", true),
        ("http://127.0.0.1/", false),
    ];
    for (url, expected) in table {
        assert_eq!(policy.allows(&url.parse().unwrap()), expected, "{url}");
    }
    assert!(PropagationPolicy::all().allows(&"http://x/".parse().unwrap()));
    assert!(!PropagationPolicy::none().allows(&"http://x/".parse().unwrap()));
}

#[tokio::test]
async fn hooks_see_the_request_response_and_span() {
    use opentelemetry::trace::SpanRef;
    let base = echo_server().await;
    let t = TestTracing::new();
    let client = traced_client(
        traced(&t)
            .on_request(|req: &reqwest::Request, span: &SpanRef<'_>| {
                span.update_name(format!("call {}", req.url().path()));
            })
            .on_response(|res: &reqwest::Response, span: &SpanRef<'_>| {
                span.set_attribute(opentelemetry::KeyValue::new(
                    "seen.status",
                    i64::from(res.status().as_u16()),
                ));
            }),
    );
    client
        .get(format!("{base}/status/404"))
        .send()
        .await
        .unwrap();
    let spans = t.spans();
    let span = spans.find("call /status/404");
    spans.assert_attr(span, "seen.status", 404_i64);
    spans.assert_attr(span, semconv::ERROR_TYPE, "404");
    assert_eq!(span.span_kind, opentelemetry::trace::SpanKind::Client);
}

/// A server streaming 4 chunks of 1 KiB, the first at once, then one per 150 ms.
async fn streaming_server() -> String {
    let app = Router::new().route(
        "/stream",
        get(|| async {
            let stream = futures_util::stream::unfold(0, |i| async move {
                if i == 4 {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                Some((Ok::<_, std::convert::Infallible>(vec![b'x'; 1024]), i + 1))
            });
            axum::body::Body::from_stream(stream)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn span_duration(span: &SpanData) -> Duration {
    span.end_time.duration_since(span.start_time).unwrap()
}

#[tokio::test]
async fn response_body_in_span_covers_the_body_when_opted_in() {
    let base = streaming_server().await;
    let url = format!("{base}/stream");
    // Default: the span ends at the head (the conventions' client span).
    let t = TestTracing::new();
    let client = traced_client(traced(&t));
    let mut res = client.get(&url).send().await.unwrap();
    while res.chunk().await.unwrap().is_some() {}
    let spans = t.spans();
    let head = spans.find("GET");
    assert!(span_duration(head) < Duration::from_millis(300));
    spans.assert_no_attr(head, semconv::GORAX_HTTP_RESPONSE_BODY_OUTCOME);

    // Opted in, read to the end.
    let t = TestTracing::new();
    let client = traced_client(traced(&t).with_response_body_in_span());
    let mut res = client.get(&url).send().await.unwrap();
    assert_eq!(res.url().as_str(), url, "the response keeps its URL");
    assert!(t.spans().is_empty(), "open while the body is read");
    let mut read = 0;
    while let Some(chunk) = res.chunk().await.unwrap() {
        read += chunk.len();
    }
    assert_eq!(read, 4096);
    let spans = t.spans();
    let full = spans.find("GET");
    assert!(
        span_duration(full) >= Duration::from_millis(450),
        "{:?}",
        span_duration(full)
    );
    spans.assert_attr(full, semconv::GORAX_HTTP_RESPONSE_BODY_OUTCOME, "completed");
    spans.assert_attr(full, semconv::HTTP_RESPONSE_BODY_SIZE, 4096_i64);
    assert_eq!(full.status, Status::Unset);

    // Opted in, dropped after the first chunk: the span ends at that chunk, not at the drop.
    let t = TestTracing::new();
    let client = traced_client(traced(&t).with_response_body_in_span());
    let mut res = client.get(&url).send().await.unwrap();
    res.chunk().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(res);
    let spans = t.spans();
    let left = spans.find("GET");
    assert!(
        span_duration(left) < Duration::from_millis(300),
        "{:?}",
        span_duration(left)
    );
    spans.assert_attr(left, semconv::GORAX_HTTP_RESPONSE_BODY_OUTCOME, "abandoned");
    spans.assert_attr(left, semconv::HTTP_RESPONSE_BODY_SIZE, 1024_i64);
    assert_eq!(left.status, Status::Unset);
}
