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

pub use crate::conventions::HttpSemconv;

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
        Some(target) if let Some(names) = route_names(target) => names.span_name(method).into(),
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

/// A route or URL template kept for the life of the process, with the span names made from it
/// ([`route_names`]).
#[derive(Debug)]
#[doc(hidden)]
pub struct RouteNames {
    route: &'static str,
    /// One per known method (in [`method`]'s order), then `HTTP` for the others.
    names: [std::sync::OnceLock<&'static str>; 10],
}

impl RouteNames {
    /// The route.
    pub fn route(&self) -> &'static str {
        self.route
    }

    /// `{method} {route}`, as [`span_name`] spells it.
    pub fn span_name(&self, method: &Method) -> &'static str {
        let (m, known) = self::method(method);
        let (index, m) = match KNOWN_METHODS.iter().position(|k| *k == m) {
            Some(i) if known => (i, m),
            _ => (KNOWN_METHODS.len(), "HTTP"),
        };
        self.names[index].get_or_init(|| Box::leak(format!("{m} {}", self.route).into_boxed_str()))
    }
}

const KNOWN_METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// Routes kept at most by [`route_names`].
#[doc(hidden)]
pub const MAX_ROUTE_NAMES: usize = 1024;

type RouteTable =
    std::collections::HashMap<&'static str, &'static RouteNames, foldhash::fast::RandomState>;

static ROUTES: std::sync::LazyLock<arc_swap::ArcSwap<RouteTable>> =
    std::sync::LazyLock::new(Default::default);

/// `route` (a server's route template, a client's URL template: values of bounded variety) and
/// its span names as `&'static str`s, so that spans name themselves and carry `http.route`
/// without allocating per request. The first call for a route stores it for the life of the
/// process; at most [`MAX_ROUTE_NAMES`] routes are stored (a few hundred kilobytes at most),
/// and past that this gives `None` (the caller allocates, as before). Lookups take no lock.
///
/// ```
/// use gorax_trace::httpconv::route_names;
/// let names = route_names("/api/v1/workflows/{id}/execute").unwrap();
/// assert_eq!(names.route(), "/api/v1/workflows/{id}/execute");
/// assert_eq!(names.span_name(&http::Method::POST), "POST /api/v1/workflows/{id}/execute");
/// // The same storage every time.
/// assert!(std::ptr::eq(names, route_names("/api/v1/workflows/{id}/execute").unwrap()));
/// ```
#[doc(hidden)]
pub fn route_names(route: &str) -> Option<&'static RouteNames> {
    if let Some(names) = ROUTES.load().get(route) {
        return Some(names);
    }
    if ROUTES.load().len() >= MAX_ROUTE_NAMES {
        return None;
    }
    // Leaked at most once per call (kept across `rcu`'s retries), and only stored routes are:
    // the table and every span share them.
    let mut fresh: Option<&'static RouteNames> = None;
    let mut found = None;
    ROUTES.rcu(|table| {
        found = table.get(route).copied();
        if found.is_some() || table.len() >= MAX_ROUTE_NAMES {
            return std::sync::Arc::clone(table);
        }
        let names = *fresh.get_or_insert_with(|| {
            Box::leak(Box::new(RouteNames {
                route: Box::leak(route.into()),
                names: Default::default(),
            }))
        });
        found = Some(names);
        let mut table = RouteTable::clone(table);
        table.insert(names.route, names);
        std::sync::Arc::new(table)
    });
    found
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

/// Query keys whose values are replaced by `REDACTED` in `url.query` and `url.full` by default
/// (matched case-insensitively, also percent-encoded): the sensitive query parameters listed by
/// the OpenTelemetry HTTP semantic conventions (`AWSAccessKeyId`, `Signature`, `sig`,
/// `X-Goog-Signature`), the other signed-URL credentials of S3 and GCS, and the usual names of
/// tokens, passwords and API keys.
///
/// `code` is in the list: it is the OAuth 2.0 authorization code of every redirect callback
/// (`/callback?code=...&state=...`), exchangeable for tokens; a non-secret `code` parameter
/// (a country code) costs a `REDACTED` in a trace, a leaked authorization code costs an account.
pub const DEFAULT_REDACTED_QUERY_KEYS: &[&str] = &[
    // OpenTelemetry semantic conventions
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    // S3 SigV4 and GCS signed URLs
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Goog-Credential",
    // tokens, passwords, keys
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "code",
];

/// The value written in place of a secret.
pub const REDACTED: &str = "REDACTED";

/// Whether the query key `key` (as written in the URL: percent-encoded or not) is one of
/// `sensitive`, compared case-insensitively.
fn is_sensitive_key(key: &str, sensitive: &[String]) -> bool {
    let decoded: Cow<'_, str> = if key.contains(['%', '+']) {
        let plus = key.replace('+', " ");
        Cow::Owned(
            percent_encoding::percent_decode_str(&plus)
                .decode_utf8_lossy()
                .into_owned(),
        )
    } else {
        Cow::Borrowed(key)
    };
    let decoded = decoded.trim();
    sensitive.iter().any(|s| s.eq_ignore_ascii_case(decoded))
}

/// The members of a query: split on `&` and on `;` (the separator HTML 4 recommended and some
/// servers still accept, so `a=1;token=secret` carries a token too).
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, Option<char>)> {
    query.split_inclusive(['&', ';']).map(|piece| {
        match piece
            .strip_suffix('&')
            .map(|p| (p, '&'))
            .or_else(|| piece.strip_suffix(';').map(|p| (p, ';')))
        {
            Some((pair, sep)) => (pair, Some(sep)),
            None => (piece, None),
        }
    })
}

/// A parameter value that is itself a (percent-encoded) URL or path with a query, decoded:
/// `next=%2Fcb%3Ftoken%3Dsecret` carries a token as much as `token=secret` does.
fn nested_query(value: &str) -> Option<String> {
    if !value.contains('%') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(&value.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned();
    decoded.contains(['?', '=']).then_some(decoded)
}

/// `decoded` (a nested URL, path or query) with its sensitive values redacted, if any were.
fn redact_nested(decoded: &str, sensitive: &[String]) -> Option<String> {
    let (head, query) = match decoded.split_once('?') {
        Some((head, query)) => (Some(head), query),
        None => (None, decoded),
    };
    let query = query.split('#').next().unwrap_or_default();
    if !has_sensitive_key(query, sensitive) {
        return None;
    }
    let redacted = redact_query(query, sensitive);
    Some(match head {
        Some(head) => format!("{head}?{redacted}"),
        None => redacted,
    })
}

/// A query string with the values of `sensitive` keys (case-insensitive, also when the key is
/// percent-encoded) replaced by `REDACTED` (for `url.query` and `url.full`; see
/// [`DEFAULT_REDACTED_QUERY_KEYS`]). Members are separated by `&` or `;`, and a value that is
/// itself a percent-encoded URL with a query (`next=%2Fcb%3Ftoken%3Dsecret`) is redacted inside.
///
/// ```
/// use gorax_trace::httpconv::redact_query;
/// let keys = ["sig".to_owned(), "token".to_owned()];
/// assert_eq!(redact_query("a=1&sig=secret", &keys), "a=1&sig=REDACTED");
/// assert_eq!(redact_query("a=1&Sig=secret", &keys), "a=1&Sig=REDACTED");
/// assert_eq!(redact_query("a=1;token=secret", &keys), "a=1;token=REDACTED");
/// assert_eq!(
///     redact_query("next=%2Fcb%3Ftoken%3Dsecret", &keys),
///     "next=%2Fcb%3Ftoken%3DREDACTED"
/// );
/// ```
pub fn redact_query(query: &str, sensitive: &[String]) -> String {
    let mut out = String::with_capacity(query.len());
    for (pair, sep) in query_pairs(query) {
        match pair.split_once('=') {
            Some((key, _)) if is_sensitive_key(key, sensitive) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            Some((key, value)) => {
                match nested_query(value).and_then(|decoded| redact_nested(&decoded, sensitive)) {
                    Some(redacted) => {
                        out.push_str(key);
                        out.push('=');
                        out.extend(percent_encoding::utf8_percent_encode(
                            &redacted,
                            percent_encoding::NON_ALPHANUMERIC,
                        ));
                    }
                    None => out.push_str(pair),
                }
            }
            None => out.push_str(pair),
        }
        out.extend(sep);
    }
    out
}

/// Whether `query` holds a key of `sensitive`, directly or inside a percent-encoded URL in a
/// value (so that redaction must rewrite it).
pub fn has_sensitive_key(query: &str, sensitive: &[String]) -> bool {
    query_pairs(query).any(|(pair, _)| match pair.split_once('=') {
        Some((key, value)) => {
            is_sensitive_key(key, sensitive)
                || nested_query(value).is_some_and(|decoded| {
                    let query = decoded.split_once('?').map_or(decoded.as_str(), |(_, q)| q);
                    has_sensitive_key(query, sensitive)
                })
        }
        None => is_sensitive_key(pair, sensitive),
    })
}

/// `text` (an error message, a log line) with every URL in it (`scheme://…`) redacted by the
/// rules of `url.full`: credentials become `REDACTED:REDACTED`, and the values of sensitive query
/// keys ([`DEFAULT_REDACTED_QUERY_KEYS`]) become `REDACTED`. Borrowed when nothing changes.
/// The crates apply it to every error text they record (span status, `exception.message`):
/// reqwest's errors name the URL they failed for, Redis's the connection URL with its password.
///
/// ```
/// use gorax_trace::httpconv::redact_text;
/// assert_eq!(
///     redact_text("error sending request for url (http://h/x?access_token=s1&a=1;token=s2)"),
///     "error sending request for url (http://h/x?access_token=REDACTED&a=1;token=REDACTED)"
/// );
/// assert_eq!(
///     redact_text("cannot connect to redis://:hunter2@cache:6379/0"),
///     "cannot connect to redis://REDACTED:REDACTED@cache:6379/0"
/// );
/// assert_eq!(redact_text("disk full"), "disk full");
/// ```
pub fn redact_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    static KEYS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        DEFAULT_REDACTED_QUERY_KEYS
            .iter()
            .map(|k| (*k).to_owned())
            .collect()
    });
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        // The scheme: the letters, digits, `+`, `-`, `.` before `://`.
        let start = rest[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(i, |(j, _)| j);
        // The URL runs to whitespace or a quote; a `)` closes it when it has no `(`.
        let after = i + 3;
        let mut end = rest[after..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .map_or(rest.len(), |e| after + e);
        if let Some(close) = rest[after..end].find(')')
            && !rest[after..after + close].contains('(')
        {
            end = after + close;
        }
        out.push_str(&rest[..start]);
        let url = &rest[start..end];
        let redacted = redact_url(url, &KEYS);
        changed |= redacted != url;
        out.push_str(&redacted);
        rest = &rest[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// One URL with its credentials and sensitive query values redacted.
fn redact_url<'a>(url: &'a str, sensitive: &[String]) -> Cow<'a, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let after = scheme_end + 3;
    let authority_end = url[after..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |e| after + e);
    let mut out = String::with_capacity(url.len() + 16);
    out.push_str(&url[..after]);
    match url[after..authority_end].rfind('@') {
        Some(at) => {
            out.push_str("REDACTED:REDACTED");
            out.push_str(&url[after + at..authority_end]);
        }
        None => out.push_str(&url[after..authority_end]),
    }
    let rest = &url[authority_end..];
    match rest.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            out.push_str(path);
            out.push('?');
            if has_sensitive_key(query, sensitive) {
                out.push_str(&redact_query(query, sensitive));
            } else {
                out.push_str(query);
            }
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
        }
        None => out.push_str(rest),
    }
    if out == url {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(out)
    }
}

/// The default attribute value length limit of attributes built from caller input
/// (`url.path`, `url.query`, `url.full`, `user_agent.original`, `server.address`, captured
/// headers), in characters: a caller cannot make a span bigger than this per attribute.
pub const DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT: usize = 4096;

/// `value` cut to at most `limit` characters (Unicode scalar values, as the OpenTelemetry
/// attribute limits count them), on a character boundary; borrowed when it fits.
///
/// ```
/// use gorax_trace::httpconv::truncate_value;
/// assert_eq!(truncate_value("abcdef", 4), "abcd");
/// assert_eq!(truncate_value("héllo", 2), "hé");
/// assert_eq!(truncate_value("ok", 4096), "ok");
/// ```
pub fn truncate_value(value: &str, limit: usize) -> Cow<'_, str> {
    if value.len() <= limit {
        return Cow::Borrowed(value);
    }
    match value.char_indices().nth(limit) {
        Some((cut, _)) => Cow::Owned(value[..cut].to_owned()),
        None => Cow::Borrowed(value),
    }
}

/// [`truncate_value`] into an owned attribute value.
pub fn limited(value: &str, limit: usize) -> StringValue {
    truncate_value(value, limit).into_owned().into()
}

/// Request and response headers whose values are credentials, recorded as `REDACTED` when
/// captured unless opted in by name (see [`is_sensitive_header`] for the rule beyond this list).
pub const DEFAULT_SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-refresh-token",
    "x-csrf-token",
    "x-xsrf-token",
    "x-amz-security-token",
    "x-goog-api-key",
    "x-session-id",
];

/// Name fragments that make a header sensitive too (`x-vendor-token`, `x-client-secret`, ...).
const SENSITIVE_HEADER_PARTS: &[&str] = &[
    "auth",
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "apikey",
    "api_key",
    "credential",
    "signature",
    "cookie",
    "session",
];

/// Whether a header's value is treated as a credential: a name of
/// [`DEFAULT_SENSITIVE_HEADERS`] or one containing `auth`, `token`, `secret`, `password`,
/// `api-key`, `credential`, `signature`, `cookie` or `session`.
///
/// ```
/// use gorax_trace::httpconv::is_sensitive_header;
/// assert!(is_sensitive_header(&http::header::AUTHORIZATION));
/// assert!(is_sensitive_header(&http::HeaderName::from_static("x-vendor-token")));
/// assert!(!is_sensitive_header(&http::header::CONTENT_TYPE));
/// ```
pub fn is_sensitive_header(name: &HeaderName) -> bool {
    let name = name.as_str(); // always lower case
    DEFAULT_SENSITIVE_HEADERS.contains(&name)
        || SENSITIVE_HEADER_PARTS
            .iter()
            .any(|part| name.contains(part))
}

/// One header to capture as an attribute: its name, the attribute key and whether its values
/// are recorded as `REDACTED`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapturedHeader {
    /// The header.
    pub name: HeaderName,
    /// The attribute key (`http.request.header.<name>`).
    pub key: Key,
    /// Record `REDACTED` instead of the values.
    pub redacted: bool,
}

impl CapturedHeader {
    /// Captures `name` under `{prefix}{name}`; redacted when [`is_sensitive_header`] unless
    /// `name` is in `recorded` (the headers opted in by name).
    pub fn new(prefix: &str, name: HeaderName, recorded: &[HeaderName]) -> Self {
        let key = header_key(prefix, &name);
        let redacted = is_sensitive_header(&name) && !recorded.contains(&name);
        Self {
            name,
            key,
            redacted,
        }
    }

    /// Recomputes `redacted` for this opt-in list.
    pub fn set_recorded(&mut self, recorded: &[HeaderName]) {
        self.redacted = is_sensitive_header(&self.name) && !recorded.contains(&self.name);
    }
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

/// Appends the `wanted` headers present in `headers` as string-array attributes: values of
/// redacted headers as `REDACTED`, the others cut to `limit` characters (at most 64 values per
/// header).
pub fn capture_headers(
    attrs: &mut Vec<KeyValue>,
    headers: &HeaderMap,
    wanted: &[CapturedHeader],
    limit: usize,
) {
    for h in wanted {
        let values: Vec<StringValue> = headers
            .get_all(&h.name)
            .iter()
            .take(64)
            .filter_map(|v| {
                if h.redacted {
                    Some(REDACTED.into())
                } else {
                    v.to_str().ok().map(|v| limited(v, limit))
                }
            })
            .collect();
        if !values.is_empty() {
            attrs.push(KeyValue::new(h.key.clone(), Value::Array(values.into())));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_are_shared_and_bounded() {
        let a = route_names("/t/{id}").unwrap();
        assert_eq!(a.span_name(&Method::GET), "GET /t/{id}");
        assert_eq!(
            a.span_name(&Method::from_bytes(b"PURGE").unwrap()),
            "HTTP /t/{id}"
        );
        assert!(std::ptr::eq(
            a.span_name(&Method::GET),
            a.span_name(&Method::GET)
        ));
        // Past the bound nothing more is stored; names are still right (allocated per call).
        for i in 0..MAX_ROUTE_NAMES {
            let _ = route_names(&format!("/fill/{i}"));
        }
        assert!(route_names("/after/the/bound").is_none());
        assert_eq!(ROUTES.load().len(), MAX_ROUTE_NAMES);
        assert_eq!(
            span_name(&Method::POST, Some("/after/the/bound")),
            "POST /after/the/bound"
        );
        // Stored routes stay.
        assert!(std::ptr::eq(a, route_names("/t/{id}").unwrap()));
    }

    #[test]
    fn query_redaction() {
        let keys: Vec<String> = ["sig", "token"].map(String::from).to_vec();
        let table = [
            ("a=1&sig=secret&b=2", "a=1&sig=REDACTED&b=2"),
            ("token=x", "token=REDACTED"),
            ("signature=kept&sig", "signature=kept&sig"),
            ("", ""),
            ("a=1&&token=", "a=1&&token=REDACTED"),
            ("Sig=x&TOKEN=y", "Sig=REDACTED&TOKEN=REDACTED"),
            ("%73ig=x&to%6Ben=y", "%73ig=REDACTED&to%6Ben=REDACTED"),
        ];
        for (input, expected) in table {
            assert_eq!(redact_query(input, &keys), expected, "{input:?}");
        }
    }

    #[test]
    fn default_keys_cover_semconv_and_common_credentials() {
        let keys: Vec<String> = DEFAULT_REDACTED_QUERY_KEYS
            .iter()
            .map(|k| (*k).to_owned())
            .collect();
        for key in [
            "AWSAccessKeyId",
            "signature",
            "SIG",
            "x-goog-signature",
            "token",
            "Access_Token",
            "refresh_token",
            "id_token",
            "password",
            "passwd",
            "secret",
            "client_secret",
            "api_key",
            "apikey",
            "key",
            "X-Amz-Signature",
            "x-amz-credential",
            "X-Amz-Security-Token",
            "code",
        ] {
            let q = format!("a=1&{key}=s3cr3t");
            let r = redact_query(&q, &keys);
            assert!(!r.contains("s3cr3t"), "{key}: {r}");
            assert!(has_sensitive_key(&q, &keys), "{key}");
        }
        assert_eq!(redact_query("page=2&state=x", &keys), "page=2&state=x");
    }

    #[test]
    fn truncation_cuts_on_char_boundaries() {
        let table = [
            ("", 0, ""),
            ("abc", 0, ""),
            ("abc", 3, "abc"),
            ("abc", 2, "ab"),
            ("ééé", 2, "éé"),
            ("ééé", 3, "ééé"),
            ("a😀b", 2, "a😀"),
        ];
        for (input, limit, expected) in table {
            assert_eq!(truncate_value(input, limit), expected, "{input:?} {limit}");
        }
    }

    #[test]
    fn sensitive_headers_are_redacted_unless_opted_in() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer SECRET".parse().unwrap());
        h.insert(header::COOKIE, "session=SECRET".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        h.insert("x-vendor-token", "SECRET".parse().unwrap());
        let names = [
            header::AUTHORIZATION,
            header::COOKIE,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-vendor-token"),
        ];
        let wanted: Vec<CapturedHeader> = names
            .iter()
            .map(|n| CapturedHeader::new("h.", n.clone(), &[header::COOKIE]))
            .collect();
        let mut attrs = Vec::new();
        capture_headers(&mut attrs, &h, &wanted, 8);
        let shown: Vec<String> = attrs.iter().map(|kv| kv.value.to_string()).collect();
        assert_eq!(
            shown,
            [
                "[\"REDACTED\"]",
                "[\"session=\"]",
                "[\"text/pla\"]",
                "[\"REDACTED\"]"
            ]
            .map(String::from)
            .to_vec()
        );
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
    }
}
