use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use gorax_trace::conventions::RpcSemconv;
use gorax_trace::httpconv::{
    CapturedHeader, ClassifyFailure, DEFAULT_REDACTED_QUERY_KEYS, HttpSemconv, OnRequest,
    OnResponse, ResponseHead, ServerErrors,
};
use gorax_trace::propagation::BaggagePolicy;
use gorax_trace::rpcconv::{GrpcErrors, GrpcMethods};
use gorax_trace::trust::TrustedPeers;
use gorax_trace::{Binding, SdkTracer, TelemetryHandle};
use http::HeaderName;
use tower_layer::Layer;

use crate::config::{
    ClassifyBodyOutcome, Config, DefaultBodyOutcome, RequestHead, ResponseHeader, SpanEnd,
};
use crate::mode::{Grpc, Http, Mode};
use crate::service::ServerTraceService;

/// A tower [`Layer`] that traces inbound HTTP requests: it continues the caller's W3C trace,
/// records one SERVER span per request with the stable HTTP semantic-convention attributes, and
/// makes that span's context current while the inner service runs.
///
/// Defaults (each changed by a `with_*` method):
/// - telemetry: the [installed](gorax_trace::Telemetry::install) handle, resolved per request
///   (so the layer may be built before [`gorax_trace::init`]); [`with_telemetry`](Self::with_telemetry)
///   fixes one;
/// - HTTP conventions, propagators: the handle's (`OTEL_SEMCONV_STABILITY_OPT_IN=http/dup` adds
///   the legacy names);
/// - failures: 5xx ([`ServerErrors`]; [`with_failure_classifier`](Self::with_failure_classifier)
///   changes it, e.g. to [`GrpcErrors::server`](gorax_trace::rpcconv::GrpcErrors::server));
/// - `url.query` values of [`DEFAULT_REDACTED_QUERY_KEYS`](gorax_trace::httpconv::DEFAULT_REDACTED_QUERY_KEYS) redacted;
/// - trusted peers: the handle's (`TRACING_TRUSTED_PEERS`, default every caller), baggage kept, no request filtered, no response header, no header
///   captured, `client.address` from the connection peer only (no proxy trusted);
/// - span end: when the response body ends ([`SpanEnd::Body`]; plain and upgraded responses at
///   the head), an abandoned body an error unless it is a `text/event-stream`
///   ([`DefaultBodyOutcome`]).
///
/// ```
/// use axum::{Router, routing::post};
/// use gorax_trace_server::ServerTraceLayer;
///
/// let app: Router = Router::new()
///     .route("/api/v1/workflows/{id}/execute", post(|| async { "ok" }))
///     .layer(ServerTraceLayer::new());
/// ```
///
/// `M` is the protocol mode: [`Http`] (the default), or [`Grpc`] from
/// [`grpc`](Self::grpc) / [`with_grpc`](Self::with_grpc), whose responses carry a
/// [`ResponseBody`](crate::ResponseBody) that ends the span at the trailers.
pub struct ServerTraceLayer<M = Http> {
    // Shared: axum may apply the layer per request (a `Router<()>` called without `with_state`),
    // so `layer` must cost one reference count, not a copy of the configuration.
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<M> Clone for ServerTraceLayer<M> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            mode: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for ServerTraceLayer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("ServerTraceLayer")
            .field("binding", &c.binding)
            .field("semconv", &c.semconv)
            .field("redact", &c.redact)
            .field("trusted_proxies", &c.trusted_proxies)
            .field("untrusted", &c.untrusted.is_some())
            .field("trusted_peers", &c.trusted_peers)
            .field("filter", &c.filter.is_some())
            .field("baggage", &c.baggage)
            .field("response_header", &c.response_header)
            .field("request_headers", &c.request_headers)
            .field("response_headers", &c.response_headers)
            .field("recorded_sensitive", &c.recorded_sensitive)
            .field("attr_limit", &c.attr_limit)
            .field("grpc", &c.grpc)
            .field("span_end", &c.span_end)
            .field("span_end_by", &c.span_end_by.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ServerTraceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerTraceLayer {
    /// A layer with the defaults listed above.
    pub fn new() -> Self {
        Self {
            mode: PhantomData,
            config: Arc::new(Config {
                binding: Binding::installed(),
                semconv: None,
                classify: Arc::new(ServerErrors),
                on_request: None,
                on_response: None,
                redact: DEFAULT_REDACTED_QUERY_KEYS
                    .iter()
                    .map(|k| (*k).to_owned())
                    .collect(),
                trusted_proxies: Vec::new(),
                untrusted: None,
                trusted_peers: None,
                filter: None,
                baggage: BaggagePolicy::Keep,
                response_header: ResponseHeader::None,
                request_headers: Vec::new(),
                response_headers: Vec::new(),
                recorded_sensitive: Vec::new(),
                attr_limit: None,
                grpc: false,
                rpc_semconv: None,
                grpc_methods: GrpcMethods::default(),
                grpc_default_classifier: false,
                span_end: SpanEnd::Body,
                span_end_by: None,
                body_outcome: Arc::new(DefaultBodyOutcome),
            }),
        }
    }

    /// A layer for a gRPC server (e.g. around tonic's `Routes`, or as
    /// `tonic::transport::Server::builder().layer(ServerTraceLayer::grpc())`): [`new`](Self::new)
    /// in gRPC mode ([`with_grpc`](Self::with_grpc)).
    ///
    /// ```
    /// use gorax_trace_server::ServerTraceLayer;
    ///
    /// let layer = ServerTraceLayer::grpc();
    /// ```
    pub fn grpc() -> ServerTraceLayer<Grpc> {
        Self::new().with_grpc()
    }

    /// A layer for a public endpoint (webhooks, public triggers): [`new`](Self::new) with no
    /// trusted peer, so no caller chooses the trace id or the sampling decision (see
    /// [`with_trusted_peers`](Self::with_trusted_peers)).
    pub fn public() -> Self {
        Self::new().with_trusted_peers(TrustedPeers::None)
    }

    /// gRPC mode, for requests whose path is `/{package.Service}/{Method}`, in the RPC
    /// conventions' mode of the handle (`OTEL_SEMCONV_STABILITY_OPT_IN`) or
    /// [`with_rpc_semconv`](ServerTraceLayer::with_rpc_semconv):
    ///
    /// | | old keys (default) | `rpc` (stable, v1.45.0) | `rpc/dup` |
    /// |---|---|---|---|
    /// | span name | `{package.Service}/{Method}` | the same; `grpc` for an unrecognized method | as `rpc` |
    /// | attributes | `rpc.system=grpc`, `rpc.service`, `rpc.method` (`Method`), `rpc.grpc.status_code` (int), and the HTTP attributes | `rpc.system.name=grpc`, `rpc.method` (`package.Service/Method` or `_OTHER`), `rpc.method_original`, `rpc.status_code` (`"OK"`), `server.address`/`server.port` (`:authority`), `network.peer.*`; no HTTP key | both; `rpc.method` as in `rpc` |
    /// | `error.type` | the numeric code | the code's name (`UNAVAILABLE`) | the name |
    /// | `rpc.server.call.duration` | `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, `error.type` | `rpc.system.name`, `rpc.method`, `rpc.status_code`, `error.type` | both |
    ///
    /// - Failures, by [`GrpcErrors::server`](gorax_trace::rpcconv::GrpcErrors::server): the
    ///   codes the gRPC conventions call server errors (`UNKNOWN`, `DEADLINE_EXCEEDED`,
    ///   `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`; a later
    ///   [`with_failure_classifier`](ServerTraceLayer::with_failure_classifier) replaces it).
    ///   `error.type` is one of those names (or, with the old keys, numbers); an error of the
    ///   inner service before any status is its type name (see
    ///   [`record_error`](gorax_trace::span::record_error)); an HTTP error without
    ///   `grpc-status` is named by gRPC's HTTP-to-status mapping.
    /// - Methods: recognized unless the answer is `UNIMPLEMENTED`, or only those of
    ///   [`with_grpc_methods`](ServerTraceLayer::with_grpc_methods) (see
    ///   [`rpcconv`](gorax_trace::rpcconv)). An unrecognized method is `_OTHER` in the
    ///   stable keys and in every mode's metrics, so request paths never grow the series.
    /// - Captured headers ([`with_request_headers`](ServerTraceLayer::with_request_headers))
    ///   are `rpc.request.metadata.<key>` / `rpc.response.metadata.<key>` in the stable mode.
    ///
    /// A status the server returns before the first message (a *trailers-only* response: with
    /// tonic, every `Err(Status)` of a unary handler and of a streaming handler before its
    /// stream) is in the headers: the span ends at the response head, as in HTTP mode. A response
    /// that starts a body carries its status in the trailers: the span (and
    /// `rpc.server.call.duration`) then ends when the response body ([`ResponseBody`]) yields the
    /// trailers, ends, fails or is dropped (without trailers there is no status code to record).
    ///
    /// [`ResponseBody`]: crate::ResponseBody
    pub fn with_grpc(mut self) -> ServerTraceLayer<Grpc> {
        let config = self.config();
        config.grpc = true;
        config.classify = Arc::new(GrpcErrors::server());
        config.grpc_default_classifier = true;
        ServerTraceLayer {
            config: self.config,
            mode: PhantomData,
        }
    }
}

impl ServerTraceLayer<Grpc> {
    /// Chooses the RPC conventions (old keys, stable, or both: see
    /// [`with_grpc`](ServerTraceLayer::with_grpc)) instead of the handle's mode.
    ///
    /// ```
    /// use gorax_trace::conventions::RpcSemconv;
    /// use gorax_trace_server::ServerTraceLayer;
    ///
    /// let layer = ServerTraceLayer::grpc().with_rpc_semconv(RpcSemconv::Stable);
    /// ```
    pub fn with_rpc_semconv(mut self, mode: RpcSemconv) -> Self {
        self.config().rpc_semconv = Some(mode);
        self
    }

    /// Which methods are recognized (default: every method unless the answer is
    /// `UNIMPLEMENTED`); [`GrpcMethods::only`] lists them, e.g. from the service's descriptors.
    ///
    /// ```
    /// use gorax_trace::rpcconv::GrpcMethods;
    /// use gorax_trace_server::ServerTraceLayer;
    ///
    /// let layer = ServerTraceLayer::grpc()
    ///     .with_grpc_methods(GrpcMethods::only(["gorax.notify.v1.Notifier/Notify"]));
    /// ```
    pub fn with_grpc_methods(mut self, methods: GrpcMethods) -> Self {
        self.config().grpc_methods = methods;
        self
    }
}

impl<M> ServerTraceLayer<M> {
    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Records with this handle (a [`Telemetry`](gorax_trace::Telemetry) or a
    /// [`TelemetryHandle`]) instead of the installed one.
    pub fn with_telemetry(mut self, telemetry: impl Into<TelemetryHandle>) -> Self {
        self.config().binding = Binding::fixed(telemetry);
        self
    }

    /// Records with this tracer (e.g. of a test provider) and default settings: a shortcut for
    /// [`with_telemetry`](Self::with_telemetry).
    pub fn with_tracer(self, tracer: SdkTracer) -> Self {
        self.with_telemetry(tracer)
    }

    /// Chooses the HTTP attribute names (stable only, or stable plus legacy with
    /// [`HttpSemconv::Dup`]) instead of the handle's mode.
    pub fn with_http_semconv(mut self, mode: HttpSemconv) -> Self {
        self.config().semconv = Some(mode);
        self
    }

    /// Decides which responses fail the span (default [`ServerErrors`]: 5xx).
    pub fn with_failure_classifier(mut self, classify: impl ClassifyFailure) -> Self {
        let config = self.config();
        config.classify = Arc::new(classify);
        config.grpc_default_classifier = false;
        self
    }

    /// Calls `hook` with the request head and the span after the request attributes are set
    /// (to add attributes or rename the span; `()` means none).
    ///
    /// ```
    /// use gorax_trace_server::{RequestHead, ServerTraceLayer};
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::trace::SpanRef;
    ///
    /// let layer = ServerTraceLayer::new().on_request(|req: &RequestHead<'_>, span: &SpanRef<'_>| {
    ///     if let Some(tenant) = req.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
    ///         span.set_attribute(KeyValue::new("tenant_id", tenant.to_owned()));
    ///     }
    /// });
    /// ```
    pub fn on_request(mut self, hook: impl for<'a> OnRequest<RequestHead<'a>>) -> Self {
        self.config().on_request = Some(Arc::new(hook));
        self
    }

    /// Calls `hook` with the response head and the span before the span ends.
    pub fn on_response(mut self, hook: impl for<'a> OnResponse<ResponseHead<'a>>) -> Self {
        self.config().on_response = Some(Arc::new(hook));
        self
    }

    /// Adds query keys whose values are recorded as `REDACTED` (matched case-insensitively, in
    /// addition to [`DEFAULT_REDACTED_QUERY_KEYS`](gorax_trace::httpconv::DEFAULT_REDACTED_QUERY_KEYS)).
    pub fn with_redacted_query_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config()
            .redact
            .extend(keys.into_iter().map(Into::into));
        self
    }

    /// Peers whose `X-Forwarded-For`/`X-Forwarded-Proto` headers are believed for
    /// `client.address` and `url.scheme`. From any other peer those headers are ignored.
    pub fn with_trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.config().trusted_proxies.extend(proxies);
        self
    }

    /// Edge policy by connection peer, instead of the handle's `TRACING_TRUSTED_PEERS`: a request
    /// whose peer (axum `ConnectInfo<SocketAddr>`; serve with
    /// `into_make_service_with_connect_info`) is not in `peers` is untrusted, as is one without
    /// peer information unless `peers` is [`TrustedPeers::All`]. Untrusted requests are treated
    /// as by [`with_untrusted`](Self::with_untrusted).
    pub fn with_trusted_peers(mut self, peers: TrustedPeers) -> Self {
        self.config().trusted_peers = Some(peers);
        self
    }

    /// Edge policy: requests for which `predicate` returns `true` come from an untrusted caller
    /// (in addition to those from untrusted peers, see
    /// [`with_trusted_peers`](Self::with_trusted_peers)). Such a request starts a new root
    /// trace (sampled by this service's own sampler, whatever the caller's flag says), links to
    /// the caller's context instead of taking it as parent, and drops the caller's baggage
    /// except the keys of a [`BaggagePolicy::Allow`].
    pub fn with_untrusted(
        mut self,
        predicate: impl Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config().untrusted = Some(Arc::new(predicate));
        self
    }

    /// Records no span for requests where `predicate` returns `false` (health checks, metrics
    /// scrapes). The caller's context still becomes current, so outgoing calls propagate it.
    pub fn with_filter(
        mut self,
        predicate: impl Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config().filter = Some(Arc::new(predicate));
        self
    }

    /// What happens to the caller's baggage (default: [`BaggagePolicy::Keep`]).
    pub fn with_baggage_policy(mut self, policy: BaggagePolicy) -> Self {
        self.config().baggage = policy;
        self
    }

    /// Writes the request's trace context to the response (default: [`ResponseHeader::None`]).
    pub fn with_response_header(mut self, header: ResponseHeader) -> Self {
        self.config().response_header = header;
        self
    }

    /// Records these request headers as `http.request.header.<name>` (string array attributes,
    /// each value cut to the attribute value length limit). Credential headers
    /// ([`is_sensitive_header`](gorax_trace::httpconv::is_sensitive_header): `authorization`,
    /// `cookie`, `x-api-key`, names with `token`, `secret`, ...) are recorded as `REDACTED`
    /// unless opted in with [`with_sensitive_headers_recorded`](Self::with_sensitive_headers_recorded).
    pub fn with_request_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        let config = self.config();
        for name in names {
            let h = CapturedHeader::new(
                gorax_trace::semconv::HTTP_REQUEST_HEADER_PREFIX,
                name,
                &config.recorded_sensitive,
            );
            config.request_headers.push(h);
        }
        self
    }

    /// Records these response headers as `http.response.header.<name>` (`set-cookie` and the
    /// other credential headers as `REDACTED`, as for requests).
    pub fn with_response_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        let config = self.config();
        for name in names {
            let h = CapturedHeader::new(
                gorax_trace::semconv::HTTP_RESPONSE_HEADER_PREFIX,
                name,
                &config.recorded_sensitive,
            );
            config.response_headers.push(h);
        }
        self
    }

    /// Records these credential headers in clear when they are captured (by
    /// [`with_request_headers`](Self::with_request_headers) or
    /// [`with_response_headers`](Self::with_response_headers)): an explicit opt-in, by name,
    /// for a header that the default rule redacts.
    pub fn with_sensitive_headers_recorded(
        mut self,
        names: impl IntoIterator<Item = HeaderName>,
    ) -> Self {
        let config = self.config();
        config.recorded_sensitive.extend(names);
        for h in config
            .request_headers
            .iter_mut()
            .chain(config.response_headers.iter_mut())
        {
            h.set_recorded(&config.recorded_sensitive);
        }
        self
    }

    /// Where the span of every response ends (default [`SpanEnd::Body`]), unless the response
    /// carries its own [`SpanEnd`] extension. [`SpanEnd::Head`] keeps the span (and
    /// `http.server.request.duration`) measuring the handler only, as before issue 23.
    pub fn with_span_end(mut self, end: SpanEnd) -> Self {
        let config = self.config();
        config.span_end = end;
        config.span_end_by = None;
        self
    }

    /// Where the span ends, decided per response from its head (unless the response carries
    /// its own [`SpanEnd`] extension).
    ///
    /// ```
    /// use gorax_trace_server::{ServerTraceLayer, SpanEnd};
    ///
    /// // Downloads are measured to their last byte, everything else at the head.
    /// let layer = ServerTraceLayer::new().with_span_end_by(|head| {
    ///     match head.headers.get("content-type").map(|v| v.as_bytes()) {
    ///         Some(b"application/octet-stream") => SpanEnd::Body,
    ///         _ => SpanEnd::Head,
    ///     }
    /// });
    /// ```
    pub fn with_span_end_by(
        mut self,
        end: impl Fn(&ResponseHead<'_>) -> SpanEnd + Send + Sync + 'static,
    ) -> Self {
        self.config().span_end_by = Some(Arc::new(end));
        self
    }

    /// Decides whether a response body dropped before its end fails the span (default
    /// [`DefaultBodyOutcome`]: every body but a `text/event-stream`).
    pub fn with_body_outcome_classifier(mut self, classify: impl ClassifyBodyOutcome) -> Self {
        self.config().body_outcome = Arc::new(classify);
        self
    }

    /// Cuts attributes built from caller input (`url.path`, `url.query`,
    /// `user_agent.original`, `server.address`, `http.request.method_original`, captured
    /// headers) to `limit` characters (default
    /// [`DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT`](gorax_trace::httpconv::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT)).
    pub fn with_attribute_value_length_limit(mut self, limit: usize) -> Self {
        self.config().attr_limit = Some(limit);
        self
    }
}

impl<S, M: Mode> Layer<S> for ServerTraceLayer<M> {
    type Service = ServerTraceService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTraceService::new(inner, self.config.clone())
    }
}
