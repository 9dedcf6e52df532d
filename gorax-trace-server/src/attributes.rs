//! Request and response attributes of the server span (stable HTTP semantic conventions, plus
//! the legacy names in dup mode). Only called when the span is recording.

use std::net::{IpAddr, SocketAddr};

use gorax_trace::httpconv::{
    capture_headers as capture, content_length, has_sensitive_key, limited, protocol_version,
    redact_query, truncate_value,
};
use gorax_trace::rpcconv;
use gorax_trace::semconv::{self, legacy};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use std::sync::Arc;

use opentelemetry::trace::{Span, SpanRef};
use opentelemetry::{KeyValue, StringValue};

use crate::config::Config;
use crate::request::RequestFacts;
use gorax_trace::rpcconv::GrpcCall;

/// `url.scheme` without allocating for the usual schemes.
fn scheme_value(scheme: &str) -> StringValue {
    match scheme {
        "http" => "http".into(),
        "https" => "https".into(),
        other => other.to_owned().into(),
    }
}

/// The scheme the caller used: `X-Forwarded-Proto` when the peer is a trusted proxy, else the
/// URI's, else `http`. Shared by the span's and the metrics' `url.scheme`.
pub(crate) fn request_scheme<B>(req: &Request<B>, trusted_proxy: bool) -> &str {
    let forwarded = trusted_proxy
        .then(|| req.headers().get(X_FORWARDED_PROTO)?.to_str().ok())
        .flatten();
    forwarded.or(req.uri().scheme_str()).unwrap_or("http")
}

/// Whether the peer of `req` is one of `config`'s trusted proxies (no lookup when there are none).
pub(crate) fn from_trusted_proxy<B>(req: &Request<B>, config: &Config) -> bool {
    !config.trusted_proxies.is_empty()
        && peer(req.extensions()).is_some_and(|p| config.trusted_proxies.contains(&p.ip()))
}

/// The peer address: from axum's `ConnectInfo` when present.
pub(crate) fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    let _ = extensions;
    None
}

/// The first `X-Forwarded-For` address, believed only from a trusted proxy.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get(X_FORWARDED_FOR)?.to_str().ok()?;
    value.split(',').next()?.trim().parse().ok()
}

const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: header::HeaderName = header::HeaderName::from_static("x-forwarded-proto");

/// The first value of each request header the attributes read, found in one pass over the
/// headers (three lookups for a map with many names).
struct Found<'a> {
    host: Option<&'a HeaderValue>,
    user_agent: Option<&'a HeaderValue>,
    content_length: Option<&'a HeaderValue>,
}

impl<'a> Found<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        if headers.keys_len() > 24 {
            return Self {
                host: headers.get(header::HOST),
                user_agent: headers.get(header::USER_AGENT),
                content_length: headers.get(header::CONTENT_LENGTH),
            };
        }
        let mut found = Self {
            host: None,
            user_agent: None,
            content_length: None,
        };
        for (name, value) in headers {
            let slot = if name == header::HOST {
                &mut found.host
            } else if name == header::USER_AGENT {
                &mut found.user_agent
            } else if name == header::CONTENT_LENGTH {
                &mut found.content_length
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        found
    }
}

/// How many attributes a span of this layer may get, request and response together (its list
/// is allocated once with this capacity; only attributes added by hooks can grow it).
pub(crate) fn capacity(config: &Config, dup: bool) -> usize {
    // Request: method and its original, path, query, scheme, route, server address and port,
    // client address, peer address and port, protocol version, user agent, body size (14);
    // response: status code, body size, error type (3). A streamed response's end adds the body
    // outcome and the time to its first frame: its list grows once then (sized for the plain
    // response, which is the common one and must not pay for the larger list).
    let stable = 17;
    let legacy = if dup { 5 } else { 0 };
    // Old and stable RPC keys together (`rpc/dup`), status codes included.
    let rpc = if config.grpc { 8 } else { 0 };
    stable + legacy + rpc + config.request_headers.len() + config.response_headers.len()
}

/// Sets the request attributes (the span is already named). `initial_given`: the method and
/// route were already set when the span started (for the sampler).
pub(crate) fn on_request<B>(
    span: &mut impl Span,
    req: &Request<B>,
    facts: &RequestFacts<'_>,
    config: &Config,
    initial_given: bool,
) {
    let limit = facts.limit;
    if let Some(rpc) = facts.rpc.as_ref().filter(|rpc| !rpc.http_attributes()) {
        return on_rpc_request(span, req, rpc, config, limit);
    }
    if !initial_given {
        span.set_attribute(KeyValue::new(semconv::HTTP_REQUEST_METHOD, facts.method));
    }
    if !facts.known_method {
        span.set_attribute(KeyValue::new(
            semconv::HTTP_REQUEST_METHOD_ORIGINAL,
            limited(req.method().as_str(), limit),
        ));
    }
    let uri = req.uri();
    span.set_attribute(KeyValue::new(semconv::URL_PATH, limited(uri.path(), limit)));
    let query: Option<StringValue> = uri.query().map(|q| {
        if has_sensitive_key(q, &config.redact) {
            limited(&redact_query(q, &config.redact), limit)
        } else {
            limited(q, limit)
        }
    });
    if let Some(q) = &query {
        span.set_attribute(KeyValue::new(semconv::URL_QUERY, q.clone()));
    }
    let peer = peer(req.extensions());
    let trusted = peer.is_some_and(|p| config.trusted_proxies.contains(&p.ip()));
    let scheme = scheme_value(request_scheme(req, trusted));
    span.set_attribute(KeyValue::new(semconv::URL_SCHEME, scheme.clone()));
    if let Some(route) = facts.route_value().filter(|_| !initial_given) {
        span.set_attribute(KeyValue::new(semconv::HTTP_ROUTE, route));
    }
    let headers = Found::of(req.headers());
    server_address(span, uri, headers.host, limit);
    let client = if trusted {
        forwarded_for(req.headers())
    } else {
        None
    };
    // The peer's address is formatted once and shared by both attributes.
    let peer_ip: Option<StringValue> = peer.map(|p| Arc::<str>::from(p.ip().to_string()).into());
    match (client, &peer_ip) {
        (Some(ip), _) => {
            span.set_attribute(KeyValue::new(semconv::CLIENT_ADDRESS, ip.to_string()));
        }
        (None, Some(ip)) => span.set_attribute(KeyValue::new(semconv::CLIENT_ADDRESS, ip.clone())),
        (None, None) => {}
    }
    if let (Some(p), Some(ip)) = (peer, peer_ip) {
        network_peer(span, p, ip);
    }
    span.set_attribute(KeyValue::new(
        semconv::NETWORK_PROTOCOL_VERSION,
        protocol_version(req.version()),
    ));
    let user_agent = headers.user_agent.and_then(|v| v.to_str().ok());
    if let Some(ua) = user_agent {
        span.set_attribute(KeyValue::new(
            semconv::USER_AGENT_ORIGINAL,
            limited(ua, limit),
        ));
    }
    if let Some(len) = headers
        .content_length
        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
    {
        span.set_attribute(KeyValue::new(semconv::HTTP_REQUEST_BODY_SIZE, len));
    }
    if !config.request_headers.is_empty() {
        let mut captured = Vec::new();
        capture(&mut captured, req.headers(), &config.request_headers, limit);
        span.set_attributes(captured);
    }
    if facts.dup {
        span.set_attribute(KeyValue::new(
            legacy::HTTP_METHOD,
            limited(req.method().as_str(), limit),
        ));
        let target = match &query {
            Some(q) => format!("{}?{}", uri.path(), q.as_str()),
            None => uri.path().to_owned(),
        };
        span.set_attribute(KeyValue::new(
            legacy::HTTP_TARGET,
            truncate_value(&target, limit).into_owned(),
        ));
        span.set_attribute(KeyValue::new(legacy::HTTP_SCHEME, scheme));
        if let Some(ua) = user_agent {
            span.set_attribute(KeyValue::new(legacy::HTTP_USER_AGENT, limited(ua, limit)));
        }
    }
    if let Some(rpc) = &facts.rpc {
        let mut attrs = Vec::with_capacity(5);
        rpc.start_attributes(&mut attrs, limit);
        span.set_attributes(attrs);
    }
}

/// `server.address` and `server.port` from the request's authority (HTTP/2 `:authority`),
/// else its `Host` header; never from the socket.
fn server_address(
    span: &mut impl Span,
    uri: &http::Uri,
    host_header: Option<&HeaderValue>,
    limit: usize,
) {
    let host = match uri.authority() {
        Some(a) => Some((a.host(), a.port_u16())),
        None => host_header
            .and_then(|h| h.to_str().ok())
            .map(split_host_port),
    };
    if let Some((host, port)) = host {
        span.set_attribute(KeyValue::new(semconv::SERVER_ADDRESS, limited(host, limit)));
        if let Some(port) = port {
            span.set_attribute(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
        }
    }
}

fn network_peer(span: &mut impl Span, peer: SocketAddr, ip: StringValue) {
    span.set_attribute(KeyValue::new(semconv::NETWORK_PEER_ADDRESS, ip));
    span.set_attribute(KeyValue::new(
        semconv::NETWORK_PEER_PORT,
        i64::from(peer.port()),
    ));
}

/// The request attributes of the stable RPC conventions only: the gRPC page's keys, no HTTP
/// key (captured headers become `rpc.request.metadata.<key>`).
fn on_rpc_request<B>(
    span: &mut impl Span,
    req: &Request<B>,
    rpc: &GrpcCall,
    config: &Config,
    limit: usize,
) {
    let mut attrs = Vec::with_capacity(8);
    rpc.start_attributes(&mut attrs, limit);
    span.set_attributes(attrs);
    server_address(span, req.uri(), req.headers().get(header::HOST), limit);
    if let Some(p) = peer(req.extensions()) {
        network_peer(span, p, Arc::<str>::from(p.ip().to_string()).into());
    }
    if !config.request_headers.is_empty() {
        let mut captured = Vec::new();
        capture(&mut captured, req.headers(), &config.request_headers, limit);
        span.set_attributes(as_metadata(captured, semconv::RPC_REQUEST_METADATA_PREFIX));
    }
}

/// Captured headers (`http.{request,response}.header.<key>`) renamed `{prefix}<key>`.
fn as_metadata(captured: Vec<KeyValue>, prefix: &str) -> Vec<KeyValue> {
    captured
        .into_iter()
        .map(|kv| {
            let key = kv.key.as_str();
            let name = key.rsplit_once(".header.").map_or(key, |(_, name)| name);
            KeyValue::new(format!("{prefix}{name}"), kv.value)
        })
        .collect()
}

/// Sets the response attributes and the status (5xx is an error on a server span; 4xx is not).
/// Each write locks the span once; the usual response has two attributes. Returns whether
/// `http.response.body.size` was known from the head.
pub(crate) fn on_response<B: http_body::Body>(
    span: &SpanRef<'_>,
    res: &Response<B>,
    config: &Config,
    dup: bool,
    limit: usize,
    error_type: Option<opentelemetry::Value>,
    rpc: Option<(&GrpcCall, bool)>,
) -> bool {
    let http = rpc.is_none_or(|(rpc, _)| rpc.http_attributes());
    let mut size_known = false;
    if http {
        let status = res.status().as_u16();
        span.set_attribute(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status),
        ));
        if dup {
            span.set_attribute(KeyValue::new(legacy::HTTP_STATUS_CODE, i64::from(status)));
        }
        let size = content_length(res.headers()).or_else(|| {
            res.body()
                .size_hint()
                .exact()
                .and_then(|n| i64::try_from(n).ok())
        });
        if let Some(size) = size {
            span.set_attribute(KeyValue::new(semconv::HTTP_RESPONSE_BODY_SIZE, size));
        }
        size_known = size.is_some();
    }
    if !config.response_headers.is_empty() {
        let mut captured = Vec::new();
        capture(
            &mut captured,
            res.headers(),
            &config.response_headers,
            limit,
        );
        if !http {
            captured = as_metadata(captured, semconv::RPC_RESPONSE_METADATA_PREFIX);
        }
        span.set_attributes(captured);
    }
    // The call ends at its head (a trailers-only answer, or not a gRPC answer at all).
    if let Some((rpc, true)) = rpc {
        on_rpc_end(span, rpc, rpcconv::grpc_status(res.headers()));
    }
    if let Some(error_type) = error_type {
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type));
        span.set_status(opentelemetry::trace::Status::error(""));
    }
    size_known
}

/// The end of a gRPC call with its status `code` (`None`: none came): the status attributes,
/// the method once recognized or not, and the name of a span whose method is unrecognized.
pub(crate) fn on_rpc_end(span: &SpanRef<'_>, rpc: &GrpcCall, code: Option<u8>) {
    let mut attrs = Vec::with_capacity(3);
    let rename = rpc.end_attributes(code, &mut attrs);
    span.set_attributes(attrs);
    if let Some(name) = rename {
        span.update_name(name);
    }
}

/// An inner service error: status Error, `error.type` the error's type name (low cardinality),
/// and the `http.server.request.exception` as a span event or a log record
/// (`OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`).
pub(crate) fn on_error<E: std::fmt::Display + ?Sized>(span: &SpanRef<'_>, error: &E) {
    gorax_trace::span::record_exception_on(span, error, gorax_trace::span::Exception::HTTP_SERVER)
}

/// A gRPC response body error: as [`on_error`], with `rpc.server.call.exception`.
pub(crate) fn on_grpc_error<E: std::fmt::Display + ?Sized>(span: &SpanRef<'_>, error: &E) {
    gorax_trace::span::record_exception_on(span, error, gorax_trace::span::Exception::RPC_SERVER)
}

/// `host[:port]` or `[v6]:port` from a `Host` header.
fn split_host_port(value: &str) -> (&str, Option<u16>) {
    let port_at = match value.rfind(':') {
        Some(i) if !value[i..].contains(']') => i,
        _ => return (value, None),
    };
    (&value[..port_at], value[port_at + 1..].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_split() {
        assert_eq!(
            split_host_port("example.com:8080"),
            ("example.com", Some(8080))
        );
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:3000"), ("[::1]", Some(3000)));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
    }
}
