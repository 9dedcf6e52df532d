use std::sync::Arc;

use gorax_trace::httpconv::{
    ClassifyFailure, ClientErrors, DEFAULT_REDACTED_QUERY_KEYS, HttpSemconv, OnRequest, OnResponse,
};
use gorax_trace::propagation::{self, BaggagePolicy, Propagators};
use gorax_trace::{Binding, SdkTracer, TelemetryHandle};
use http::Extensions;
use opentelemetry::Context;
use opentelemetry::trace::{Span as _, SpanBuilder, SpanContext, SpanKind, TraceContextExt};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::attributes::{self, AttributeList};
use crate::config::{
    Attempt, Config, NoPropagation, PropagationPolicy, UrlTemplate, count_failure, resend_count,
};
use crate::metrics::RequestMetrics;

/// A [reqwest-middleware](reqwest_middleware) [`Middleware`] that records one OpenTelemetry
/// CLIENT span per request (per attempt, inside a retry middleware) and injects the W3C trace
/// context of that span into the request.
///
/// - **Parent**: [`Context::current()`] when the request is sent: a gorax server span, a
///   `tracing` span (bridged by tracing-opentelemetry, which makes its context current when the
///   span is entered) or any OpenTelemetry context.
/// - **Propagation**: `traceparent` carries the client span's own new span id, also when the
///   span is not sampled or tracing is disabled; the caller's `tracestate` and baggage are passed
///   on. Per host: [`with_propagation_policy`](Self::with_propagation_policy) and
///   [`with_baggage_policy`](Self::with_baggage_policy); per request: [`NoPropagation`].
/// - **Name**: `{method}`, or `{method} {template}` with a [`UrlTemplate`]; `HTTP` for
///   methods outside the HTTP specification.
/// - **Attributes** (only when the span is recording): `http.request.method`, `server.address`,
///   `server.port`, `url.full` (userinfo removed, sensitive query values `REDACTED`),
///   `url.template`, `network.protocol.version`, `http.response.status_code`,
///   `http.request.resend_count` (second and later attempts), `error.type`; plus `http.method`,
///   `http.url`, `http.status_code` in `http/dup` mode.
/// - **Status**: 4xx and 5xx responses are errors (`error.type` = the status code), as are
///   transport errors (`error.type` = `timeout`, `connect`, `request`, `body`, `decode`,
///   `redirect`, `builder` or `_OTHER`).
/// - **Retries**: put a retry middleware *before* this one
///   (`.with(RetryTransientMiddleware::new_with_policy(..)).with(ClientTraceMiddleware::new())`):
///   each attempt then gets its own span, and the second and later attempts carry
///   `http.request.resend_count`. Attempts that ended in a transport error or a 4xx/5xx
///   status (what retry middlewares retry) are counted in the request's `Extensions`, which
///   reqwest-middleware passes to every attempt; reuse one `Extensions` value for one logical
///   request only. A retry after a 1xx–3xx response is not counted.
/// - **Span end**: when the response head arrives (or the request fails), as the HTTP
///   conventions ask of client spans; reading the body is not part of the span (opt in with
///   [`with_response_body_in_span`](Self::with_response_body_in_span)). A dropped (cancelled)
///   request ends its span when it is dropped.
///
/// Defaults (each changed by a `with_*` method):
/// - telemetry: the [installed](gorax_trace::Telemetry::install) handle, resolved per request
///   (so the middleware may be built before [`gorax_trace::init`]);
///   [`with_telemetry`](Self::with_telemetry) fixes one;
/// - HTTP conventions and propagators: the handle's;
/// - query values of [`DEFAULT_REDACTED_QUERY_KEYS`] redacted in `url.full`;
/// - failures: 4xx and 5xx ([`ClientErrors`]);
/// - trace context and baggage sent to every host ([`PropagationPolicy::all`]), all baggage
///   keys ([`BaggagePolicy::Keep`]).
///
/// ```
/// use gorax_trace_client::{ClientTraceMiddleware, PropagationPolicy};
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(
///         ClientTraceMiddleware::new()
///             .with_baggage_hosts(PropagationPolicy::hosts(["*.gorax.internal"])),
///     )
///     .build();
/// # drop(client);
/// ```
#[derive(Clone)]
pub struct ClientTraceMiddleware {
    config: Config,
}

impl std::fmt::Debug for ClientTraceMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("ClientTraceMiddleware")
            .field("binding", &c.binding)
            .field("semconv", &c.semconv)
            .field("redact", &c.redact)
            .field("propagation", &c.propagation)
            .field("baggage_hosts", &c.baggage_hosts)
            .field("baggage", &c.baggage)
            .field("attr_limit", &c.attr_limit)
            .field("body_in_span", &c.body_in_span)
            .finish_non_exhaustive()
    }
}

impl Default for ClientTraceMiddleware {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientTraceMiddleware {
    /// A middleware with the defaults listed above.
    pub fn new() -> Self {
        Self {
            config: Config {
                binding: Binding::installed(),
                semconv: None,
                redact: DEFAULT_REDACTED_QUERY_KEYS
                    .iter()
                    .map(|k| (*k).to_owned())
                    .collect(),
                propagation: PropagationPolicy::all(),
                baggage_hosts: PropagationPolicy::all(),
                baggage: BaggagePolicy::Keep,
                classify: Arc::new(ClientErrors),
                on_request: None,
                on_response: None,
                attr_limit: None,
                body_in_span: false,
            },
        }
    }

    /// The client span and `http.client.request.duration` cover the response body (for callers
    /// that read it: LLM streams, downloads): they end at the body's last frame, when it fails
    /// (status Error, `error.type=body`), or, when the body is dropped unread, at the last frame
    /// read (at the head if none was), never at the drop itself (the conventions' rule against
    /// ending in an asynchronous clean-up). The span records
    /// `gorax.http.response.body.outcome` (`completed`, `failed`, `abandoned`: not an error)
    /// and `http.response.body.size` (bytes read). Off by default: the conventions end client
    /// spans after the response head. Costs a boxed body per response.
    ///
    /// Without it, an error while reading the body (after the span ended) is on no span: the
    /// caller sees it from reqwest (`Response::chunk`, `bytes`, `text`), and
    /// `http.client.request.duration` measured the head. The conventions' client exception
    /// record for it needs OTLP logs (a later issue).
    pub fn with_response_body_in_span(mut self) -> Self {
        self.config.body_in_span = true;
        self
    }

    /// Records with this handle (a [`Telemetry`](gorax_trace::Telemetry) or a
    /// [`TelemetryHandle`]) instead of the installed one.
    pub fn with_telemetry(mut self, telemetry: impl Into<TelemetryHandle>) -> Self {
        self.config.binding = Binding::fixed(telemetry);
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
        self.config.semconv = Some(mode);
        self
    }

    /// Decides which responses fail the span (default [`ClientErrors`]: 4xx and 5xx).
    pub fn with_failure_classifier(mut self, classify: impl ClassifyFailure) -> Self {
        self.config.classify = Arc::new(classify);
        self
    }

    /// Calls `hook` with the request and the span after the request attributes are set (to add
    /// attributes or rename the span; `()` means none).
    pub fn on_request(mut self, hook: impl OnRequest<Request>) -> Self {
        self.config.on_request = Some(Arc::new(hook));
        self
    }

    /// Calls `hook` with the response and the span before the span ends.
    pub fn on_response(mut self, hook: impl OnResponse<Response>) -> Self {
        self.config.on_response = Some(Arc::new(hook));
        self
    }

    /// Adds query keys whose values are recorded as `REDACTED` in `url.full` (matched
    /// case-insensitively, in addition to the default list).
    pub fn with_redacted_query_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.redact.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Which hosts receive `traceparent`, `tracestate` and `baggage` (default: all). Requests to
    /// other hosts are still traced, but nothing is written to them.
    pub fn with_propagation_policy(mut self, policy: PropagationPolicy) -> Self {
        self.config.propagation = policy;
        self
    }

    /// Which hosts receive `baggage` (default: all), among those the propagation policy allows.
    /// Other hosts get `traceparent` and `tracestate` only, so a value in baggage (a tenant id, a
    /// token) never leaves for a third-party API.
    pub fn with_baggage_hosts(mut self, policy: PropagationPolicy) -> Self {
        self.config.baggage_hosts = policy;
        self
    }

    /// Cuts `url.full` and `server.address` to `limit` characters (default: the handle's limit,
    /// `TRACING_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else
    /// [`DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT`](gorax_trace::httpconv::DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT)).
    pub fn with_attribute_value_length_limit(mut self, limit: usize) -> Self {
        self.config.attr_limit = Some(limit);
        self
    }

    /// Which baggage keys outgoing requests carry (default: [`BaggagePolicy::Keep`]); the same
    /// policy type as the server layer's.
    pub fn with_baggage_policy(mut self, policy: BaggagePolicy) -> Self {
        self.config.baggage = policy;
        self
    }
}

#[async_trait::async_trait]
impl Middleware for ClientTraceMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let config = &self.config;
        // Everything that borrows the request, the telemetry handle or the parent context
        // happens in this block: a local borrowed before an `.await` stays in the future's state
        // across it, and the request alone is 264 bytes. Kept out, the future (allocated for
        // every request) stays within the allocator's per-thread cache sizes. What outlives the
        // block is assigned to these locals in place (a tuple handed out of the block was built
        // and taken apart again: two copies of the request and of the span per request), and
        // the request goes from the block straight into the next middleware's future.
        let dup;
        // The client span: the SDK's, or only the span context of one certain not to record
        // ([`TelemetryHandle::unsampled_child`]). Two locals, not an enum: the enum (the size of
        // the SDK span) was built and then copied whole even for the span context alone. Both
        // `None` once moved into the hooks' context.
        let mut sdk_span: Option<SdkSpan>;
        let mut unsampled_sc: Option<SpanContext>;
        let measured;
        // Hooks see the span through a context.
        let hook_cx;
        let pending = {
            let mut req = req;
            let telemetry = config.binding.get();
            let mode = config.semconv.unwrap_or(telemetry.http_semconv());
            dup = mode.emits_legacy();
            let tracer = telemetry.tracer_in(crate::SCOPES.for_schema(mode.schema_url()));
            let propagate =
                extensions.get::<NoPropagation>().is_none() && config.propagation.allows(req.url());
            let (method, known_method) = gorax_trace::httpconv::method(req.method());
            let attempt = Attempt {
                method,
                known_method,
                dup,
                limit: config
                    .attr_limit
                    .or(telemetry.attribute_value_length_limit())
                    .unwrap_or(usize::MAX),
                resend_count: resend_count(extensions),
                template: extensions.get::<UrlTemplate>(),
            };
            let hooked = config.on_request.is_some() || config.on_response.is_some();
            // A clone of the current context (a reference count or two): the span, several
            // hundred bytes, is built where it stays, not moved out of the thread-local access.
            let parent = Context::current();
            let (likely, unsampled) = {
                let span = parent.span();
                let sc = span.span_context();
                // When the span will likely record (the parent sampled, or a new trace), its
                // attribute list is allocated once, large enough for every attribute it gets.
                let likely = !sc.is_valid() || sc.is_sampled();
                // A parent that did not sample, under a sampler that follows it: the span
                // context the SDK would give the span, without the span it would discard.
                let unsampled = (!likely)
                    .then(|| telemetry.unsampled_child_in(&parent))
                    .flatten();
                (likely, unsampled)
            };
            match unsampled {
                Some(sc) => {
                    sdk_span = None;
                    unsampled_sc = Some(sc);
                }
                None => {
                    sdk_span = Some(
                        SpanBuilder {
                            name: attempt.span_name(req.method()),
                            span_kind: Some(SpanKind::Client),
                            attributes: likely.then(|| Vec::with_capacity(attributes::CAPACITY)),
                            ..SpanBuilder::default()
                        }
                        .start_with_context(tracer, &parent),
                    );
                    unsampled_sc = None;
                }
            }
            if propagate {
                inject(
                    config,
                    telemetry.propagators(),
                    &parent,
                    span_context(&sdk_span, &unsampled_sc),
                    &mut req,
                );
            }
            if let Some(span) = &mut sdk_span
                && span.is_recording()
            {
                attributes::on_request(span, &req, &attempt, config);
            }
            measured = telemetry
                .metrics()
                .map(|m| RequestMetrics::start(m, &req, attempt.method));
            hook_cx = match hooked {
                false => None,
                true => {
                    let cx = match (sdk_span.take(), unsampled_sc.take()) {
                        (Some(span), _) => parent.with_span(span),
                        (None, sc) => parent.with_remote_span_context(
                            sc.unwrap_or_else(SpanContext::empty_context),
                        ),
                    };
                    if let Some(hook) = &config.on_request {
                        hook.on_request(&req, &cx.span());
                    }
                    Some(cx)
                }
            };
            next.run(req, extensions)
        };
        let result = pending.await;
        count_failure(extensions, &result);
        if config.body_in_span
            && let Ok(res) = result
        {
            let cx = match hook_cx {
                Some(cx) => cx,
                None => match (sdk_span.take(), unsampled_sc.take()) {
                    (Some(span), _) => Context::new().with_span(span),
                    (None, sc) => Context::new()
                        .with_remote_span_context(sc.unwrap_or_else(SpanContext::empty_context)),
                },
            };
            return Ok(into_body_span(config, res, cx, measured, dup));
        }
        match hook_cx {
            // No hooks: the SDK span stays in our hands (no context, no span mutex).
            None => finish(config, &result, &mut sdk_span, &unsampled_sc, measured, dup),
            Some(cx) => finish_hooked(config, &result, &cx, measured, dup),
        }
        result
    }
}

/// A response whose span ends with its body ([`ClientTraceMiddleware::with_response_body_in_span`]):
/// the head's attributes now, the rest when the body ends.
fn into_body_span(
    config: &Config,
    res: Response,
    cx: Context,
    measured: Option<RequestMetrics>,
    dup: bool,
) -> Response {
    if let Some(hook) = &config.on_response {
        hook.on_response(&res, &cx.span());
    }
    let head_error = measured.as_ref().and_then(|_| {
        config
            .classify
            .classify(&gorax_trace::httpconv::ResponseHead::new(
                res.status(),
                res.headers(),
            ))
    });
    {
        let span = cx.span();
        if span.is_recording() {
            let mut attrs = AttributeList::default();
            attributes::on_response(&mut attrs, &res, config, dup);
            span.set_attributes(attrs.attributes);
            if let Some(status) = attrs.status {
                span.set_status(status);
            }
        }
    }
    crate::body::in_span(res, cx, measured, head_error)
}

/// Ends an attempt without hooks: the SDK span is written to directly.
fn finish(
    config: &Config,
    result: &reqwest_middleware::Result<Response>,
    sdk_span: &mut Option<SdkSpan>,
    unsampled_sc: &Option<SpanContext>,
    measured: Option<RequestMetrics>,
    dup: bool,
) {
    if let Err(error) = result {
        attributes::exception_log(span_context(sdk_span, unsampled_sc), error);
    }
    if let Some(m) = measured {
        m.finish(
            result.as_ref().map_err(attributes::error_type),
            &*config.classify,
            span_context(sdk_span, unsampled_sc),
        );
    }
    if let Some(span) = sdk_span
        && span.is_recording()
    {
        attributes::outcome(span, result, config, dup);
        span.end();
    }
    // An unrecorded span is dropped without `end()`, which would read the clock.
}

/// Ends an attempt whose span the hooks saw through its context.
fn finish_hooked(
    config: &Config,
    result: &reqwest_middleware::Result<Response>,
    cx: &Context,
    measured: Option<RequestMetrics>,
    dup: bool,
) {
    if let (Some(hook), Ok(res)) = (&config.on_response, result) {
        hook.on_response(res, &cx.span());
    }
    let span = cx.span();
    if let Err(error) = result {
        attributes::exception_log(span.span_context(), error);
    }
    if let Some(m) = measured {
        m.finish(
            result.as_ref().map_err(attributes::error_type),
            &*config.classify,
            span.span_context(),
        );
    }
    if span.is_recording() {
        let mut attrs = AttributeList::default();
        attributes::outcome(&mut attrs, result, config, dup);
        span.set_attributes(attrs.attributes);
        for (name, attributes) in attrs.events {
            span.add_event(name, attributes);
        }
        if let Some(status) = attrs.status {
            span.set_status(status);
        }
        span.end();
    }
}

type SdkSpan = <SdkTracer as opentelemetry::trace::Tracer>::Span;

/// The span context of the client span: the SDK span's, else the unsampled one.
fn span_context<'a>(
    sdk: &'a Option<SdkSpan>,
    unsampled: &'a Option<SpanContext>,
) -> &'a SpanContext {
    match (sdk, unsampled) {
        (Some(span), _) => span.span_context(),
        (None, Some(sc)) => sc,
        (None, None) => const { &SpanContext::NONE },
    }
}

/// Writes the context of the client span (`sc`, child of `parent`) to the request.
fn inject(
    config: &Config,
    propagators: Propagators,
    parent: &Context,
    sc: &SpanContext,
    req: &mut Request,
) {
    let send_baggage = propagators.baggage
        && !config.baggage.drops_all()
        && (config.baggage_hosts.is_all() || config.baggage_hosts.allows(req.url()));
    // The parent goes to injection either way (a received `tracestate` it keeps goes back out
    // with it); its baggage only when it may be sent.
    let filtered;
    let (propagators, parent_cx) = match (&config.baggage, send_baggage) {
        (_, false) => (propagators.with_baggage(false), parent),
        (BaggagePolicy::Keep, true) => (propagators, parent),
        (policy, true) => {
            filtered = policy.apply(parent.clone());
            (propagators, &filtered)
        }
    };
    if sc.is_valid() {
        // Level 2: the `random` flag of the trace goes on (the SDK loses it on unsampled
        // children and never sets it on a root it starts).
        let random = propagation::random_flag(parent, sc);
        let sc = propagation::with_random_flag(sc, random);
        propagators.inject_span_context(&sc, Some(parent_cx), req.headers_mut());
    } else {
        // A span without a valid context (provider shut down, telemetry suppressed) must not
        // stop propagation: pass the parent's context on as it is.
        let parent_span = parent.span();
        propagators.inject_span_context(
            parent_span.span_context(),
            Some(parent_cx),
            req.headers_mut(),
        );
    }
}
