//! The layer's configuration and the request- and response-head types its customisation
//! points see: a leaf module, read by every other file of the crate.

use std::net::IpAddr;
use std::sync::Arc;

use gorax_trace::Binding;
use gorax_trace::conventions::RpcSemconv;
use gorax_trace::httpconv::{
    CapturedHeader, ClassifyFailure, HttpSemconv, OnRequest, OnResponse, ResponseHead,
};
use gorax_trace::propagation::BaggagePolicy;
use gorax_trace::rpcconv::GrpcMethods;
use gorax_trace::trust::TrustedPeers;
use http::{Extensions, HeaderMap, HeaderName, Method, Uri};

/// What a predicate sees of a request: its head and, with axum, the matched route template.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI (path and query; authority for HTTP/2 and absolute-form requests).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request extensions.
    pub extensions: &'a Extensions,
    /// The route template (`/api/v1/workflows/{id}/execute`) when the router matched one.
    pub route: Option<&'a str>,
}

impl<'a> RequestHead<'a> {
    /// The head of `req`, matched to `route`.
    pub(crate) fn of<B>(req: &'a http::Request<B>, route: Option<&'a str>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
            route,
        }
    }
}

pub(crate) type Predicate = Arc<dyn Fn(&RequestHead<'_>) -> bool + Send + Sync>;

/// The trace context written to the response, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseHeader {
    /// Nothing (default).
    #[default]
    None,
    /// W3C `traceresponse: 00-{trace id}-{server span id}-{flags}` (Trace Context Level 2).
    TraceResponse,
    /// The trace id (32 lowercase hex digits) in a header of this name, e.g. `x-trace-id`.
    TraceId(HeaderName),
}

/// Where the server span (and the request's duration measurement) of a response ends.
///
/// The default is [`SpanEnd::Body`] for every response. Chosen per layer
/// ([`ServerTraceLayer::with_span_end`](crate::ServerTraceLayer::with_span_end), [`ServerTraceLayer::with_span_end_by`](crate::ServerTraceLayer::with_span_end_by)) or per response:
/// a handler that puts a `SpanEnd` in the response's extensions (with axum,
/// `(Extension(SpanEnd::Head), body)`) overrides the layer's choice.
///
/// Whatever is chosen, these end at the head: a `101 Switching Protocols` response and a 2xx
/// answer to `CONNECT` (HTTP/2 extended CONNECT: WebSockets over HTTP/2), whose "body" is the
/// upgraded connection, and a body complete at the head (known to be empty, or of an exact
/// length of at most [`SpanEnd::SENT_WITH_HEAD`] bytes: strings, JSON, `Full` bodies, which
/// are written with the head), so that such a response costs what it did before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SpanEnd {
    /// At the response head: the span measures the handler, not the body's streaming (the
    /// behaviour before issue 23, for latency dashboards that must keep measuring the head).
    Head,
    /// When the response body ends: at its last frame (trailers included), when it fails, or
    /// when it is dropped before its end (the client went away).
    #[default]
    Body,
}

impl SpanEnd {
    /// Bodies of an exact length up to this many bytes are complete at the head.
    pub const SENT_WITH_HEAD: u64 = 64 * 1024;
}

pub(crate) type SpanEndFn = Arc<dyn Fn(&ResponseHead<'_>) -> SpanEnd + Send + Sync>;

/// Decides whether a response body dropped before its end (abandoned) fails the span.
///
/// The HTTP conventions' example "HTTP server call: connection dropped before response body was
/// sent" records `error.type` beside the status code the head had sent; whether that makes the
/// request a failure depends on the response: [`DefaultBodyOutcome`] does not count an
/// abandoned `text/event-stream` (a client closing is how server-sent events end) and counts
/// every other body. A failed body (one that yields an error) is always a failure, and a
/// completed one never is (the head's status still decides).
pub trait ClassifyBodyOutcome: Send + Sync + 'static {
    /// Whether the body of the response with this head is a failure when dropped before its end.
    fn abandoned_is_failure(&self, head: &ResponseHead<'_>) -> bool;
}

impl<F> ClassifyBodyOutcome for F
where
    F: Fn(&ResponseHead<'_>) -> bool + Send + Sync + 'static,
{
    fn abandoned_is_failure(&self, head: &ResponseHead<'_>) -> bool {
        self(head)
    }
}

/// The default [`ClassifyBodyOutcome`]: an abandoned body is a failure unless the response is a
/// `text/event-stream` (server-sent events).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultBodyOutcome;

impl ClassifyBodyOutcome for DefaultBodyOutcome {
    fn abandoned_is_failure(&self, head: &ResponseHead<'_>) -> bool {
        !is_event_stream(head.headers)
    }
}

/// Whether the `Content-Type` is `text/event-stream` (case-insensitive, parameters ignored).
fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"))
}

pub(crate) type RequestHook = Arc<dyn for<'a> OnRequest<RequestHead<'a>>>;
pub(crate) type ResponseHook = Arc<dyn for<'a> OnResponse<ResponseHead<'a>>>;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) binding: Binding,
    /// Set by `with_http_semconv`; otherwise the handle's mode.
    pub(crate) semconv: Option<HttpSemconv>,
    pub(crate) classify: Arc<dyn ClassifyFailure>,
    /// `None` for no hook: the common case costs no context lookup nor dynamic call.
    pub(crate) on_request: Option<RequestHook>,
    pub(crate) on_response: Option<ResponseHook>,
    pub(crate) redact: Vec<String>,
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) untrusted: Option<Predicate>,
    /// Set by `with_trusted_peers`/`public`; otherwise the handle's (`TRACING_TRUSTED_PEERS`).
    pub(crate) trusted_peers: Option<TrustedPeers>,
    pub(crate) filter: Option<Predicate>,
    pub(crate) baggage: BaggagePolicy,
    pub(crate) response_header: ResponseHeader,
    pub(crate) request_headers: Vec<CapturedHeader>,
    pub(crate) response_headers: Vec<CapturedHeader>,
    /// Sensitive headers opted in by name (recorded in clear when captured).
    pub(crate) recorded_sensitive: Vec<HeaderName>,
    /// Attribute value length limit of attributes built from caller input, in characters.
    /// Set by `with_attribute_value_length_limit`; otherwise the handle's limit.
    pub(crate) attr_limit: Option<usize>,
    /// gRPC mode ([`ServerTraceLayer::grpc`]): RPC span names and `rpc.*` attributes.
    pub(crate) grpc: bool,
    /// Set by `with_rpc_semconv`; otherwise the handle's mode.
    pub(crate) rpc_semconv: Option<RpcSemconv>,
    /// Which gRPC methods are recognized (`with_grpc_methods`).
    pub(crate) grpc_methods: GrpcMethods,
    /// `classify` is the gRPC mode's default (the stable conventions then name the codes).
    pub(crate) grpc_default_classifier: bool,
    /// Where spans end when the response does not say (`span_end_by` first, when set).
    pub(crate) span_end: SpanEnd,
    pub(crate) span_end_by: Option<SpanEndFn>,
    pub(crate) body_outcome: Arc<dyn ClassifyBodyOutcome>,
}
