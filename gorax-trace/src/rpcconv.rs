//! The gRPC vocabulary the server and client layers share: request paths and methods, which
//! methods are *recognized* ([`GrpcMethods`]), `grpc-status` and its names, which statuses are
//! failures ([`GrpcErrors`]), and `server.address`/`server.port` from a channel's target
//! ([`GrpcTarget`]). Which keys carry these values is the mode's business
//! ([`RpcSemconv`]); the keys live in
//! [`semconv`].
//!
//! # Method recognition
//!
//! The RPC conventions let `rpc.method` hold a method name only when the method is
//! *recognized*; any other becomes `_OTHER` (the name the client sent goes to
//! `rpc.method_original`), so that a scanner sending random paths cannot grow span names and
//! metric series without bound. A tower layer sees paths, not a service's method table, so:
//!
//! - [`GrpcMethods::UnlessUnimplemented`] (the default): a method is recognized unless the
//!   answer is `UNIMPLEMENTED` (what tonic and every gRPC server answer for a method they do
//!   not have). The span gets `rpc.method` when the call ends; its name, the method at the
//!   start, becomes `grpc` for an unrecognized one.
//! - [`GrpcMethods::only`]: only the listed methods (`package.Service/Method`) are recognized,
//!   decided when the span starts (so the sampler sees `rpc.method`).
//!
//! In every mode, metrics never take an unrecognized method as a label: it is `_OTHER` there
//! (`rpc.service` too, in the old mode).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, StatusCode};
use opentelemetry::{StringValue, Value};

use crate::conventions::RpcSemconv;
use crate::httpconv::{
    ClassifyFailure, ClientErrors, ResponseHead, ServerErrors, limited, truncate_value,
};
use crate::semconv::{self, rpc_legacy};
use opentelemetry::KeyValue;

/// `rpc.system.name` (and the old `rpc.system`) of gRPC.
pub const GRPC: &str = "grpc";
/// The value of `rpc.method` (and of `error.type`) the conventions use for what is not named.
pub const OTHER: &str = "_OTHER";
/// The `UNIMPLEMENTED` status code (12): the server has no such method.
pub const UNIMPLEMENTED: u8 = 12;

/// The names of the gRPC status codes 0 to 16, as `rpc.status_code` and `error.type` spell them.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a gRPC status code (`14` → `"UNAVAILABLE"`); `None` past 16.
///
/// ```
/// assert_eq!(gorax_trace::rpcconv::code_name(0), Some("OK"));
/// assert_eq!(gorax_trace::rpcconv::code_name(14), Some("UNAVAILABLE"));
/// assert_eq!(gorax_trace::rpcconv::code_name(17), None);
/// ```
pub fn code_name(code: u8) -> Option<&'static str> {
    CODE_NAMES.get(usize::from(code)).copied()
}

/// `rpc.status_code` of a code: its name, or its digits past 16 (not a gRPC code; kept as sent).
pub fn status_code_value(code: u8) -> Value {
    match code_name(code) {
        Some(name) => name.into(),
        None => code.to_string().into(),
    }
}

/// Whether a server span fails with this code: the codes the gRPC conventions list (`UNKNOWN`,
/// `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`); the others
/// are the caller's doing.
pub fn is_server_error(code: u8) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// The code a gRPC client reports for an HTTP answer without `grpc-status` (gRPC's
/// `http-grpc-status-mapping.md`): 400 `INTERNAL`, 401 `UNAUTHENTICATED`, 403
/// `PERMISSION_DENIED`, 404 `UNIMPLEMENTED`, 429, 502, 503 and 504 `UNAVAILABLE`, any other
/// `UNKNOWN`; `None` for 200 (a gRPC answer whose status is still to come).
pub fn code_of_http_status(status: StatusCode) -> Option<u8> {
    Some(match status.as_u16() {
        200 => return None,
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    })
}

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// `(service, method)` of a gRPC request path `/{package.Service}/{Method}`, e.g.
/// `("opentelemetry.proto.collector.trace.v1.TraceService", "Export")`; `None` for any other
/// path (no leading slash, not two non-empty segments).
///
/// ```
/// use gorax_trace::rpcconv::grpc_path;
///
/// assert_eq!(grpc_path("/pkg.Echo/Say"), Some(("pkg.Echo", "Say")));
/// assert_eq!(grpc_path("/health"), None);
/// ```
pub fn grpc_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The numeric `grpc-status` of these headers (response headers of a trailers-only response, or
/// trailers), if present and valid.
pub fn grpc_status(headers: &HeaderMap) -> Option<u8> {
    headers
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u8>().ok())
}

/// Which methods a gRPC layer *recognizes* (see the [module](self) documentation).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum GrpcMethods {
    /// Every method with a gRPC path, unless the answer is `UNIMPLEMENTED` (the default).
    #[default]
    UnlessUnimplemented,
    /// Only these fully qualified methods (`package.Service/Method`).
    Only(Arc<HashSet<Box<str>>>),
}

/// What a layer knows of a method when its span starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recognition {
    /// Recognized: `rpc.method` is the method.
    Recognized,
    /// Not recognized: `rpc.method` is `_OTHER`.
    Unrecognized,
    /// Recognized unless the answer is `UNIMPLEMENTED`.
    UnlessUnimplemented,
}

impl Recognition {
    /// The verdict once the call's status is known (`None`: the call ended without one).
    pub fn resolve(self, code: Option<u8>) -> bool {
        match self {
            Self::Recognized => true,
            Self::Unrecognized => false,
            Self::UnlessUnimplemented => code != Some(UNIMPLEMENTED),
        }
    }
}

impl GrpcMethods {
    /// Only these methods, each `package.Service/Method` (a leading `/` is ignored).
    ///
    /// ```
    /// use gorax_trace::rpcconv::{GrpcMethods, Recognition};
    ///
    /// let methods = GrpcMethods::only(["gorax.notify.v1.Notifier/Notify"]);
    /// assert_eq!(methods.recognize("/gorax.notify.v1.Notifier/Notify"), Recognition::Recognized);
    /// assert_eq!(methods.recognize("/scanner.Probe/Run"), Recognition::Unrecognized);
    /// ```
    pub fn only<I, S>(methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::Only(Arc::new(
            methods
                .into_iter()
                .map(|m| m.as_ref().trim_start_matches('/').into())
                .collect(),
        ))
    }

    /// What is known of the method of a request `path` when its span starts: a path that is not
    /// a gRPC path is never recognized.
    pub fn recognize(&self, path: &str) -> Recognition {
        if grpc_path(path).is_none() {
            return Recognition::Unrecognized;
        }
        match self {
            Self::UnlessUnimplemented => Recognition::UnlessUnimplemented,
            Self::Only(set) if set.contains(&path[1..]) => Recognition::Recognized,
            Self::Only(_) => Recognition::Unrecognized,
        }
    }
}

/// gRPC over HTTP/2: the outcome is `grpc-status`, not the HTTP status (which is 200 for most
/// failures). As a server, only the codes the RPC conventions call server errors fail the span
/// ([`is_server_error`]); as a client, every code but `OK`.
///
/// `error.type` is the numeric code (the old RPC keys), or with
/// [`with_code_names`](Self::with_code_names) the code's name (`UNAVAILABLE`: the stable
/// conventions). Without a `grpc-status`, the HTTP status decides as for HTTP (old keys), or
/// as gRPC's HTTP-to-gRPC mapping says ([`code_of_http_status`], names).
///
/// Only a `grpc-status` in the response *headers* (a trailers-only response, which is how
/// servers answer an immediate error) is seen at the head; the layers read the trailers
/// themselves.
#[derive(Debug, Clone, Copy)]
pub struct GrpcErrors {
    server: bool,
    names: bool,
}

impl GrpcErrors {
    /// The server rule.
    pub const fn server() -> Self {
        Self {
            server: true,
            names: false,
        }
    }

    /// The client rule.
    pub const fn client() -> Self {
        Self {
            server: false,
            names: false,
        }
    }

    /// `error.type` the code's name (stable RPC conventions) instead of its number.
    pub const fn with_code_names(mut self) -> Self {
        self.names = true;
        self
    }

    fn fails(&self, code: u8) -> bool {
        if self.server {
            is_server_error(code)
        } else {
            code != 0
        }
    }
}

impl ClassifyFailure for GrpcErrors {
    fn classify(&self, response: &ResponseHead<'_>) -> Option<Value> {
        let code = match grpc_status(response.headers) {
            Some(code) => code,
            None if self.names => code_of_http_status(response.status)?,
            // No grpc-status yet: judged by HTTP status like any HTTP exchange.
            None if self.server => return ServerErrors.classify(response),
            None => return ClientErrors.classify(response),
        };
        if !self.fails(code) {
            return None;
        }
        Some(if self.names {
            status_code_value(code)
        } else {
            Value::from(i64::from(code))
        })
    }
}

/// `server.address` and `server.port` of a gRPC client, from the target of its channel, as the
/// gRPC conventions say (the gRPC name-resolution syntax):
///
/// | target | `server.address` | `server.port` |
/// |---|---|---|
/// | `grpc.io:50051`, `dns:///grpc.io:50051`, `dns://1.2.3.4/grpc.io:50051` | `grpc.io` | 50051 |
/// | `http://grpc.io:50051`, `https://grpc.io` (a tonic `Endpoint`) | `grpc.io` | 50051, 443 |
/// | `unix:///run/x.sock`, `unix:/run/x.sock` | `/run/x.sock` | – |
/// | anything else (`zk://…`, `ipv4:a:1,b:2`) | the whole target | – |
///
/// ```
/// use gorax_trace::rpcconv::GrpcTarget;
///
/// let t = GrpcTarget::parse("dns://8.8.8.8/grpc.io:50051");
/// assert_eq!((t.address(), t.port()), ("grpc.io", Some(50051)));
/// let t = GrpcTarget::parse("unix:///run/containerd/containerd.sock");
/// assert_eq!((t.address(), t.port()), ("/run/containerd/containerd.sock", None));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcTarget {
    address: StringValue,
    port: Option<u16>,
}

impl GrpcTarget {
    /// Parses a channel target.
    pub fn parse(target: &str) -> Self {
        let target = target.trim();
        let whole = || Self {
            address: Arc::<str>::from(target).into(),
            port: None,
        };
        if let Some(path) = target.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            return Self {
                address: Arc::<str>::from(path).into(),
                port: None,
            };
        }
        let (host_port, default_port) = if let Some(rest) = target.strip_prefix("dns:") {
            // `dns:[//authority/]host[:port]`
            let rest = match rest.strip_prefix("//") {
                Some(with_authority) => match with_authority.split_once('/') {
                    Some((_, name)) => name,
                    None => return whole(),
                },
                None => rest,
            };
            (rest, None)
        } else if let Some(rest) = target.strip_prefix("http://") {
            (rest.trim_end_matches('/'), Some(80))
        } else if let Some(rest) = target.strip_prefix("https://") {
            (rest.trim_end_matches('/'), Some(443))
        } else if target.contains("://") || target.contains(',') {
            return whole();
        } else if let Some((scheme, _)) = target.split_once(':')
            && matches!(scheme, "ipv4" | "ipv6" | "unix-abstract" | "vsock")
        {
            return whole();
        } else {
            (target, None)
        };
        match split_host_port(host_port) {
            Some((host, port)) if !host.is_empty() => Self {
                address: Arc::<str>::from(host).into(),
                port: port.or(default_port),
            },
            _ => whole(),
        }
    }

    /// `server.address`.
    pub fn address(&self) -> &str {
        self.address.as_str()
    }

    /// `server.address`, as an attribute value (shared, not copied).
    pub fn address_value(&self) -> StringValue {
        self.address.clone()
    }

    /// `server.port`, when the target has one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

/// `host[:port]` or `[v6][:port]` (brackets removed); `None` when the port is not a number or
/// a path follows.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.contains('/') {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        // A bare IPv6 address without brackets: no port.
        Some((host, _)) if host.contains(':') => Some((s, None)),
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((s, None)),
    }
}

/// One gRPC call as the RPC conventions see it, in one mode ([`RpcSemconv`]): made once when
/// the call starts, read by its span's attributes at the start and at the end and by its
/// measurement. Shared by the server and client layers (and any gRPC layer built on them).
///
/// ```
/// use gorax_trace::conventions::RpcSemconv;
/// use gorax_trace::rpcconv::{GrpcCall, GrpcMethods};
/// use gorax_trace::semconv;
///
/// let call = GrpcCall::new("/pkg.Echo/Say", RpcSemconv::Stable, &GrpcMethods::default(), 4096);
/// assert_eq!(call.span_name().as_deref(), Some("pkg.Echo/Say"));
/// let mut attrs = Vec::new();
/// call.start_attributes(&mut attrs, 4096);
/// // The server answered UNIMPLEMENTED: the method is not recognized after all.
/// assert_eq!(call.end_attributes(Some(12), &mut attrs), Some("grpc"));
/// let method = attrs.iter().find(|kv| kv.key.as_str() == semconv::RPC_METHOD).unwrap();
/// assert_eq!(method.value.as_str(), "_OTHER");
/// ```
#[derive(Clone, Debug)]
pub struct GrpcCall {
    mode: RpcSemconv,
    /// The request path without its leading `/` (`package.Service/Method` for a gRPC path),
    /// bounded by the attribute value length limit; shared by the span and the measurement.
    path: StringValue,
    /// Where `service/method` splits, for a gRPC path.
    split: Option<usize>,
    recognition: Recognition,
}

impl GrpcCall {
    /// The call of a request `path`, bounded by the attribute value length `limit`.
    pub fn new(path: &str, mode: RpcSemconv, methods: &GrpcMethods, limit: usize) -> Self {
        let recognition = methods.recognize(path);
        let split = grpc_path(path).map(|(service, _)| service.len());
        let bare = path.strip_prefix('/').unwrap_or(path);
        Self {
            mode,
            path: Arc::<str>::from(truncate_value(bare, limit).as_ref()).into(),
            split,
            recognition,
        }
    }

    /// The conventions' mode.
    pub fn mode(&self) -> RpcSemconv {
        self.mode
    }

    /// A gRPC path (`/{service}/{method}`).
    pub fn is_grpc_path(&self) -> bool {
        self.split.is_some()
    }

    /// The span's name when it starts: the method (`package.Service/Method`) or, for an
    /// unrecognized method in the stable conventions, `grpc`; `None`: the HTTP name (a path that
    /// is not a gRPC path, old keys only).
    pub fn span_name(&self) -> Option<Cow<'static, str>> {
        if self.mode.emits_stable() && self.recognition == Recognition::Unrecognized {
            return Some(GRPC.into());
        }
        self.split
            .map(|_| Cow::Owned(self.path.as_str().to_owned()))
    }

    /// The attributes known when the span starts.
    pub fn start_attributes(&self, attrs: &mut Vec<KeyValue>, limit: usize) {
        if self.mode.emits_legacy()
            && let Some(at) = self.split
        {
            let path = self.path.as_str();
            attrs.push(KeyValue::new(rpc_legacy::RPC_SYSTEM, GRPC));
            attrs.push(KeyValue::new(
                rpc_legacy::RPC_SERVICE,
                limited(&path[..at], limit),
            ));
            if !self.mode.emits_stable() {
                attrs.push(KeyValue::new(
                    semconv::RPC_METHOD,
                    limited(&path[at + 1..], limit),
                ));
            }
        }
        if self.mode.emits_stable() {
            attrs.push(KeyValue::new(semconv::RPC_SYSTEM_NAME, GRPC));
            match self.recognition {
                Recognition::Recognized => {
                    attrs.push(KeyValue::new(semconv::RPC_METHOD, self.path.clone()));
                }
                Recognition::Unrecognized => self.unrecognized(attrs),
                // Decided by the status.
                Recognition::UnlessUnimplemented => {}
            }
        }
    }

    fn unrecognized(&self, attrs: &mut Vec<KeyValue>) {
        attrs.push(KeyValue::new(semconv::RPC_METHOD, OTHER));
        attrs.push(KeyValue::new(
            semconv::RPC_METHOD_ORIGINAL,
            self.path.clone(),
        ));
    }

    /// The attributes of the call's end, with its status `code` (`None`: it ended without
    /// one); returns the span's new name when an unrecognized method is found out only now.
    pub fn end_attributes(
        &self,
        code: Option<u8>,
        attrs: &mut Vec<KeyValue>,
    ) -> Option<&'static str> {
        if let Some(code) = code {
            if self.mode.emits_legacy() {
                attrs.push(KeyValue::new(
                    rpc_legacy::RPC_GRPC_STATUS_CODE,
                    i64::from(code),
                ));
            }
            if self.mode.emits_stable() {
                attrs.push(KeyValue::new(
                    semconv::RPC_STATUS_CODE,
                    status_code_value(code),
                ));
            }
        }
        if !self.mode.emits_stable() || self.recognition != Recognition::UnlessUnimplemented {
            return None;
        }
        if self.recognition.resolve(code) {
            attrs.push(KeyValue::new(semconv::RPC_METHOD, self.path.clone()));
            None
        } else {
            self.unrecognized(attrs);
            Some(GRPC)
        }
    }

    /// The measurement's labels (`rpc.server.call.duration`) by the status `code`, with
    /// `error_type`: an unrecognized method is `_OTHER` in every mode (`rpc.service` too, with
    /// the old keys), so no request path makes a series of its own.
    pub fn metric_attributes(
        &self,
        code: Option<u8>,
        error_type: Option<Value>,
        intern: impl Fn(&str) -> StringValue,
    ) -> [Option<KeyValue>; 7] {
        let recognized = self.is_grpc_path() && self.recognition.resolve(code);
        let path = self.path.as_str();
        let part = |range: std::ops::Range<usize>| -> Value {
            if recognized {
                intern(&path[range]).into()
            } else {
                OTHER.into()
            }
        };
        let at = self.split.unwrap_or(0);
        let mut attrs: [Option<KeyValue>; 7] = Default::default();
        if self.mode.emits_stable() {
            attrs[0] = Some(KeyValue::new(semconv::RPC_SYSTEM_NAME, GRPC));
            attrs[1] = Some(KeyValue::new(semconv::RPC_METHOD, part(0..path.len())));
            attrs[2] = code.map(|c| KeyValue::new(semconv::RPC_STATUS_CODE, status_code_value(c)));
        }
        if self.mode.emits_legacy() {
            attrs[3] = Some(KeyValue::new(rpc_legacy::RPC_SYSTEM, GRPC));
            attrs[4] = Some(KeyValue::new(rpc_legacy::RPC_SERVICE, part(0..at)));
            if !self.mode.emits_stable() {
                // One key, one value: in `rpc/dup` mode `rpc.method` is the stable one.
                let method = path.len().min(at + 1)..path.len();
                attrs[1] = Some(KeyValue::new(semconv::RPC_METHOD, part(method)));
            }
            attrs[5] = code.map(|c| KeyValue::new(rpc_legacy::RPC_GRPC_STATUS_CODE, i64::from(c)));
        }
        attrs[6] = error_type.map(|e| KeyValue::new(semconv::ERROR_TYPE, e));
        attrs
    }

    /// Whether the span carries the HTTP attributes too (the old keys); the stable
    /// conventions only have none (`url.*`, `http.*`, `user_agent.*`, `network.protocol.*`,
    /// `client.address`).
    pub fn http_attributes(&self) -> bool {
        self.mode.emits_legacy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: u16, h: &HeaderMap) -> ResponseHead<'_> {
        ResponseHead::new(StatusCode::from_u16(s).unwrap(), h)
    }

    #[test]
    fn classifiers_numbers_and_names() {
        let mut g = HeaderMap::new();
        g.insert(GRPC_STATUS, "5".parse().unwrap()); // NOT_FOUND
        assert_eq!(GrpcErrors::server().classify(&head(200, &g)), None);
        assert_eq!(
            GrpcErrors::client().classify(&head(200, &g)),
            Some(5.into())
        );
        assert_eq!(
            GrpcErrors::client()
                .with_code_names()
                .classify(&head(200, &g)),
            Some("NOT_FOUND".into())
        );
        g.insert(GRPC_STATUS, "14".parse().unwrap()); // UNAVAILABLE
        assert_eq!(
            GrpcErrors::server().classify(&head(200, &g)),
            Some(14.into())
        );
        assert_eq!(
            GrpcErrors::server()
                .with_code_names()
                .classify(&head(200, &g)),
            Some("UNAVAILABLE".into())
        );
        g.insert(GRPC_STATUS, "0".parse().unwrap());
        assert_eq!(GrpcErrors::client().classify(&head(200, &g)), None);
        // Without grpc-status: HTTP rules (numbers) or gRPC's HTTP mapping (names).
        let h = HeaderMap::new();
        assert_eq!(
            GrpcErrors::client().classify(&head(503, &h)),
            Some("503".into())
        );
        assert_eq!(
            GrpcErrors::client()
                .with_code_names()
                .classify(&head(503, &h)),
            Some("UNAVAILABLE".into())
        );
        assert_eq!(
            GrpcErrors::server()
                .with_code_names()
                .classify(&head(404, &h)),
            Some("UNIMPLEMENTED".into())
        );
        assert_eq!(
            GrpcErrors::client()
                .with_code_names()
                .classify(&head(200, &h)),
            None
        );
    }

    #[test]
    fn code_names_cover_every_code() {
        for (code, name) in CODE_NAMES.iter().enumerate() {
            let code = u8::try_from(code).unwrap();
            assert_eq!(code_name(code), Some(*name));
            assert_eq!(status_code_value(code), Value::from(*name));
        }
        assert_eq!(status_code_value(99), Value::from("99"));
        let server: Vec<_> = (0..=16)
            .filter(|c| is_server_error(*c))
            .filter_map(code_name)
            .collect();
        assert_eq!(
            server,
            [
                "UNKNOWN",
                "DEADLINE_EXCEEDED",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS"
            ]
        );
    }

    #[test]
    fn recognition() {
        let default = GrpcMethods::default();
        assert_eq!(
            default.recognize("/pkg.S/M"),
            Recognition::UnlessUnimplemented
        );
        assert_eq!(default.recognize("/health"), Recognition::Unrecognized);
        assert!(Recognition::UnlessUnimplemented.resolve(Some(0)));
        assert!(Recognition::UnlessUnimplemented.resolve(None));
        assert!(!Recognition::UnlessUnimplemented.resolve(Some(UNIMPLEMENTED)));
        let only = GrpcMethods::only(["/pkg.S/M", "pkg.S/N"]);
        assert_eq!(only.recognize("/pkg.S/M"), Recognition::Recognized);
        assert_eq!(only.recognize("/pkg.S/N"), Recognition::Recognized);
        assert_eq!(only.recognize("/pkg.S/O"), Recognition::Unrecognized);
        assert!(Recognition::Recognized.resolve(Some(UNIMPLEMENTED)));
    }

    /// The examples of the gRPC conventions' `server.address` note, one row each, and the
    /// forms a tonic `Endpoint` prints.
    #[test]
    fn targets() {
        let cases: &[(&str, &str, Option<u16>)] = &[
            ("grpc.io:50051", "grpc.io", Some(50051)),
            ("dns:///grpc.io:50051", "grpc.io", Some(50051)),
            ("dns://1.2.3.4/grpc.io:50051", "grpc.io", Some(50051)),
            ("dns:grpc.io", "grpc.io", None),
            (
                "unix:///run/containerd/containerd.sock",
                "/run/containerd/containerd.sock",
                None,
            ),
            ("unix:relative.sock", "relative.sock", None),
            (
                "zk://zookeeper:2181/my-server",
                "zk://zookeeper:2181/my-server",
                None,
            ),
            (
                "ipv4:198.51.100.123:50051,198.51.100.124:50051",
                "ipv4:198.51.100.123:50051,198.51.100.124:50051",
                None,
            ),
            (
                "ipv4:198.51.100.123:50051",
                "ipv4:198.51.100.123:50051",
                None,
            ),
            ("http://127.0.0.1:4317", "127.0.0.1", Some(4317)),
            ("http://notify.internal", "notify.internal", Some(80)),
            ("https://notify.internal/", "notify.internal", Some(443)),
            ("[::1]:50051", "::1", Some(50051)),
            ("http://[::1]:50051", "::1", Some(50051)),
            ("::1", "::1", None),
            ("grpc.io:not-a-port", "grpc.io:not-a-port", None),
        ];
        for (target, address, port) in cases {
            let t = GrpcTarget::parse(target);
            assert_eq!((t.address(), t.port()), (*address, *port), "{target}");
        }
    }
}
