//! The HTTP vocabulary the server and client adapters share: which convention names a span
//! carries ([`HttpSemconv`]), method normalisation, span names, query redaction, header capture,
//! which responses are failures ([`ClassifyFailure`]) and the hooks users attach
//! ([`OnRequest`], [`OnResponse`]).
//!
//! Attribute *keys* live in [`semconv`](crate::semconv); this module decides their *values*.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, Method, Version, header};
use opentelemetry::trace::SpanRef;
use opentelemetry::{Key, KeyValue, StringValue, Value};

/// Which HTTP semantic conventions spans carry (`OTEL_SEMCONV_STABILITY_OPT_IN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HttpSemconv {
    /// The stable HTTP conventions only.
    #[default]
    Stable,
    /// The stable conventions plus the legacy pre-1.21 keys (`http/dup`).
    Dup,
}

impl HttpSemconv {
    /// Whether the legacy keys are emitted beside the stable ones.
    pub fn emits_legacy(self) -> bool {
        self == Self::Dup
    }
}

/// `http.request.method` as the HTTP conventions spell it: a known method as itself (with
/// `true`), any other as `_OTHER` (with `false`; record the original in
/// [`HTTP_REQUEST_METHOD_ORIGINAL`](crate::semconv::HTTP_REQUEST_METHOD_ORIGINAL)).
///
/// ```
/// use gorax_trace::httpconv::method;
/// assert_eq!(method(&http::Method::POST), ("POST", true));
/// assert_eq!(method(&http::Method::from_bytes(b"PURGE").unwrap()), ("_OTHER", false));
/// ```
pub fn method(method: &Method) -> (&'static str, bool) {
    let known = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return ("_OTHER", false),
    };
    (known, true)
}

/// The span name the HTTP conventions give: `{method} {target}` (the route on a server, the URL
/// template on a client), `{method}` without one, and `HTTP` in place of an unknown method.
///
/// ```
/// use gorax_trace::httpconv::span_name;
/// use http::Method;
/// assert_eq!(span_name(&Method::GET, Some("/a/{id}")), "GET /a/{id}");
/// assert_eq!(span_name(&Method::GET, None), "GET");
/// assert_eq!(span_name(&Method::from_bytes(b"PURGE").unwrap(), Some("/a")), "HTTP /a");
/// ```
pub fn span_name(method: &Method, target: Option<&str>) -> Cow<'static, str> {
    let (m, known) = self::method(method);
    let m = if known { m } else { "HTTP" };
    match target {
        Some(target) => {
            let mut name = String::with_capacity(m.len() + 1 + target.len());
            name.push_str(m);
            name.push(' ');
            name.push_str(target);
            name.into()
        }
        None => m.into(),
    }
}

/// `network.protocol.version` of an HTTP version (`1.1`, `2`, ...).
///
/// ```
/// use gorax_trace::httpconv::protocol_version;
/// assert_eq!(protocol_version(http::Version::HTTP_11), "1.1");
/// assert_eq!(protocol_version(http::Version::HTTP_2), "2");
/// ```
pub fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "_OTHER",
    }
}

/// Query keys whose values are replaced by `REDACTED` in `url.query` and `url.full` by default:
/// the sensitive query parameters listed by the OpenTelemetry HTTP semantic conventions.
pub const DEFAULT_REDACTED_QUERY_KEYS: &[&str] =
    &["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// A query string with the values of `sensitive` keys replaced by `REDACTED` (for `url.query`
/// and `url.full`; see [`DEFAULT_REDACTED_QUERY_KEYS`]).
///
/// ```
/// use gorax_trace::httpconv::redact_query;
/// let keys = ["sig".to_owned()];
/// assert_eq!(redact_query("a=1&sig=secret", &keys), "a=1&sig=REDACTED");
/// ```
pub fn redact_query(query: &str, sensitive: &[String]) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if sensitive.iter().any(|s| s == key) => {
                out.push_str(key);
                out.push_str("=REDACTED");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// Whether `query` holds a key of `sensitive` (so that redaction must rewrite it).
pub fn has_sensitive_key(query: &str, sensitive: &[String]) -> bool {
    query.split('&').any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        sensitive.iter().any(|s| s == key)
    })
}

/// `Content-Length` as a number, when present and valid.
pub fn content_length(headers: &HeaderMap) -> Option<i64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The attribute key of a captured header: `{prefix}{lowercase name}` (prefixes in
/// [`semconv`](crate::semconv)); reference-counted so that cloning it per request is cheap.
pub fn header_key(prefix: &str, name: &HeaderName) -> Key {
    Key::from(std::sync::Arc::<str>::from(format!(
        "{prefix}{}",
        name.as_str()
    )))
}

/// Appends the `wanted` headers present in `headers` as string-array attributes.
pub fn capture_headers(
    attrs: &mut Vec<KeyValue>,
    headers: &HeaderMap,
    wanted: &[(HeaderName, Key)],
) {
    for (name, key) in wanted {
        let values: Vec<StringValue> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.to_owned().into())
            .collect();
        if !values.is_empty() {
            attrs.push(KeyValue::new(key.clone(), Value::Array(values.into())));
        }
    }
}

/// An HTTP status code as a static string for `error.type` (no allocation for 4xx and 5xx).
pub fn status_str(status: u16) -> Value {
    const CODES_4XX: [&str; 32] = [
        "400", "401", "402", "403", "404", "405", "406", "407", "408", "409", "410", "411", "412",
        "413", "414", "415", "416", "417", "418", "419", "420", "421", "422", "423", "424", "425",
        "426", "427", "428", "429", "430", "431",
    ];
    const CODES_5XX: [&str; 12] = [
        "500", "501", "502", "503", "504", "505", "506", "507", "508", "509", "510", "511",
    ];
    let known = match status {
        400..=499 => CODES_4XX.get(usize::from(status - 400)),
        500..=599 => CODES_5XX.get(usize::from(status - 500)),
        _ => None,
    };
    match known {
        Some(s) => (*s).into(),
        None => status.to_string().into(),
    }
}

/// What a response looks like to a [`ClassifyFailure`]: its status and headers.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResponseHead<'a> {
    /// The HTTP status.
    pub status: http::StatusCode,
    /// The response headers (for gRPC: `grpc-status` of a trailers-only response).
    pub headers: &'a HeaderMap,
}

impl<'a> ResponseHead<'a> {
    /// A view of a response head.
    pub fn new(status: http::StatusCode, headers: &'a HeaderMap) -> Self {
        Self { status, headers }
    }
}

/// Decides whether a response is a failure, and its `error.type`. The adapters set the span
/// status to Error and record `error.type` when it returns `Some`.
pub trait ClassifyFailure: Send + Sync + 'static {
    /// `Some(error.type)` when the response is a failure.
    fn classify(&self, response: &ResponseHead<'_>) -> Option<Value>;
}

/// Server rule of the HTTP conventions: 5xx is a failure, 4xx is not (the caller's mistake).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrors;

impl ClassifyFailure for ServerErrors {
    fn classify(&self, response: &ResponseHead<'_>) -> Option<Value> {
        let status = response.status.as_u16();
        (status >= 500).then(|| status_str(status))
    }
}

/// Client rule of the HTTP conventions: 4xx and 5xx are failures.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientErrors;

impl ClassifyFailure for ClientErrors {
    fn classify(&self, response: &ResponseHead<'_>) -> Option<Value> {
        let status = response.status.as_u16();
        (status >= 400).then(|| status_str(status))
    }
}

/// gRPC over HTTP/2: the outcome is `grpc-status`, not the HTTP status (which is 200 for most
/// failures). As a server, only the codes the RPC conventions call server errors fail the span
/// (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`); as a
/// client, every code but `OK`. `error.type` is the numeric code.
///
/// Only a `grpc-status` in the response *headers* (a trailers-only response, which is how
/// servers answer an immediate error) is seen: the span ends at the response head.
#[derive(Debug, Clone, Copy)]
pub struct GrpcErrors {
    server: bool,
}

impl GrpcErrors {
    /// The server rule.
    pub fn server() -> Self {
        Self { server: true }
    }

    /// The client rule.
    pub fn client() -> Self {
        Self { server: false }
    }
}

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

impl ClassifyFailure for GrpcErrors {
    fn classify(&self, response: &ResponseHead<'_>) -> Option<Value> {
        let Some(code) = response
            .headers
            .get(GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u8>().ok())
        else {
            // No grpc-status yet: judge by HTTP status like any HTTP exchange.
            return if self.server {
                ServerErrors.classify(response)
            } else {
                ClientErrors.classify(response)
            };
        };
        let fails = if self.server {
            matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
        } else {
            code != 0
        };
        fails.then(|| Value::from(i64::from(code)))
    }
}

/// A hook called when a request's span has started and its attributes are set, to add
/// attributes or rename the span. `()` does nothing; closures `Fn(&R, &SpanRef<'_>)` implement it.
pub trait OnRequest<R: ?Sized>: Send + Sync + 'static {
    /// Called once per request with the span (recording or not: check
    /// [`SpanRef::is_recording`] before formatting).
    fn on_request(&self, request: &R, span: &SpanRef<'_>);
}

impl<R: ?Sized> OnRequest<R> for () {
    fn on_request(&self, _: &R, _: &SpanRef<'_>) {}
}

impl<R: ?Sized, F> OnRequest<R> for F
where
    F: Fn(&R, &SpanRef<'_>) + Send + Sync + 'static,
{
    fn on_request(&self, request: &R, span: &SpanRef<'_>) {
        self(request, span)
    }
}

/// A hook called with the response before the span ends. `()` does nothing; closures
/// `Fn(&R, &SpanRef<'_>)` implement it.
pub trait OnResponse<R: ?Sized>: Send + Sync + 'static {
    /// Called once per response with the span.
    fn on_response(&self, response: &R, span: &SpanRef<'_>);
}

impl<R: ?Sized> OnResponse<R> for () {
    fn on_response(&self, _: &R, _: &SpanRef<'_>) {}
}

impl<R: ?Sized, F> OnResponse<R> for F
where
    F: Fn(&R, &SpanRef<'_>) + Send + Sync + 'static,
{
    fn on_response(&self, response: &R, span: &SpanRef<'_>) {
        self(response, span)
    }
}

/// `value` cut to at most `limit` bytes, on a character boundary (borrowed when it fits); for
/// attribute values built from client-controlled input, with
/// [`TelemetryHandle::attribute_value_length_limit`](crate::TelemetryHandle::attribute_value_length_limit).
///
/// ```
/// use gorax_trace::httpconv::truncate_value;
///
/// assert_eq!(truncate_value("curl/8.5", Some(4)), "curl");
/// assert_eq!(truncate_value("héllo", Some(2)), "h"); // 'é' is two bytes: not split
/// assert_eq!(truncate_value("short", None), "short");
/// ```
pub fn truncate_value(value: &str, limit: Option<usize>) -> std::borrow::Cow<'_, str> {
    match limit {
        Some(limit) if value.len() > limit => {
            let mut end = limit;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            std::borrow::Cow::Borrowed(&value[..end])
        }
        _ => std::borrow::Cow::Borrowed(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_redaction() {
        let keys: Vec<String> = ["sig", "token"].map(String::from).to_vec();
        let table = [
            ("a=1&sig=secret&b=2", "a=1&sig=REDACTED&b=2"),
            ("token=x", "token=REDACTED"),
            ("signature=kept&sig", "signature=kept&sig"),
            ("", ""),
            ("a=1&&token=", "a=1&&token=REDACTED"),
        ];
        for (input, expected) in table {
            assert_eq!(redact_query(input, &keys), expected, "{input:?}");
        }
    }

    #[test]
    fn status_strings() {
        assert_eq!(status_str(503), Value::from("503"));
        assert_eq!(status_str(404), Value::from("404"));
        assert_eq!(status_str(599), Value::from("599"));
    }

    #[test]
    fn classifiers() {
        let h = HeaderMap::new();
        fn head(s: u16, h: &HeaderMap) -> ResponseHead<'_> {
            ResponseHead::new(http::StatusCode::from_u16(s).unwrap(), h)
        }
        assert_eq!(ServerErrors.classify(&head(404, &h)), None);
        assert_eq!(ServerErrors.classify(&head(502, &h)), Some("502".into()));
        assert_eq!(ClientErrors.classify(&head(404, &h)), Some("404".into()));
        assert_eq!(ClientErrors.classify(&head(204, &h)), None);
        let mut g = HeaderMap::new();
        g.insert(GRPC_STATUS, "5".parse().unwrap()); // NOT_FOUND
        assert_eq!(GrpcErrors::server().classify(&head(200, &g)), None);
        assert_eq!(
            GrpcErrors::client().classify(&head(200, &g)),
            Some(5.into())
        );
        g.insert(GRPC_STATUS, "14".parse().unwrap()); // UNAVAILABLE
        assert_eq!(
            GrpcErrors::server().classify(&head(200, &g)),
            Some(14.into())
        );
        g.insert(GRPC_STATUS, "0".parse().unwrap());
        assert_eq!(GrpcErrors::client().classify(&head(200, &g)), None);
    }
}
