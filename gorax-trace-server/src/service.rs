use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use gorax_trace::propagation::{self, BaggagePolicy, Propagators};
use http::{Request, Response};
use opentelemetry::trace::{
    Link, Span as _, SpanBuilder, SpanContext, SpanKind, TraceContextExt, Tracer,
};
use opentelemetry::{Context, KeyValue};
use tower_service::Service;

use crate::attributes;
use crate::config::{Config, RequestHead};
use crate::future::{ResponseFuture, Traced};
use crate::metrics::RequestMetrics;
use crate::mode::sealed::Wraps;
use crate::mode::{Http, Mode};
use crate::request::RequestFacts;

/// The [`Service`] made by [`ServerTraceLayer`](crate::ServerTraceLayer), in the layer's
/// protocol mode `M`.
pub struct ServerTraceService<S, M = Http> {
    inner: S,
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for ServerTraceService<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            mode: PhantomData,
        }
    }
}

impl<S: std::fmt::Debug, M> std::fmt::Debug for ServerTraceService<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTraceService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, M> ServerTraceService<S, M> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self {
            inner,
            config,
            mode: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn route<B>(req: &Request<B>) -> Option<&str> {
    #[cfg(feature = "axum")]
    if let Some(path) = req.extensions().get::<axum::extract::MatchedPath>() {
        return Some(path.as_str());
    }
    let _ = req;
    None
}

/// The caller's span context and a context with the caller's baggage under the policy.
fn caller_parts(
    headers: &http::HeaderMap,
    propagators: Propagators,
    policy: &BaggagePolicy,
) -> (Option<SpanContext>, Context) {
    let propagators = propagators.with_baggage(propagators.baggage && !policy.drops_all());
    let (span_context, baggage) = propagators.extract_parts(&Context::new(), headers);
    (span_context, policy.apply(baggage))
}

/// The caller's context under the baggage policy.
fn caller_context(
    headers: &http::HeaderMap,
    propagators: Propagators,
    policy: &BaggagePolicy,
) -> Context {
    match caller_parts(headers, propagators, policy) {
        (Some(sc), cx) => cx.with_remote_span_context(sc),
        (None, cx) => cx,
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for ServerTraceService<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body,
    M: Mode + Wraps<ResBody>,
{
    type Response = Response<M::Body<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, M>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let telemetry = config.binding.get();
        let propagators = telemetry.propagators();
        let route = route(&req);
        let head = RequestHead::of(&req, route);
        if config.filter.as_ref().is_some_and(|keep| !keep(&head)) {
            let cx = caller_context(req.headers(), propagators, &config.baggage);
            let future = {
                let _active = cx.clone().attach();
                self.inner.call(req)
            };
            return ResponseFuture::new(future, cx, tracing::Span::none(), None);
        }
        let untrusted = is_untrusted(&req, &head, config, &telemetry);
        let facts = RequestFacts::new(&req, route, config, &telemetry);
        let metrics = telemetry
            .metrics()
            .map(|m| RequestMetrics::start(m, &req, &facts, config));
        let caller =
            (!untrusted).then(|| caller_parts(req.headers(), propagators, &config.baggage));
        let (cx, recording) = self.context(&req, &telemetry, caller, &facts);
        if let Some(hook) = &config.on_request {
            let head = RequestHead::of(&req, route);
            hook.on_request(&head, &cx.span());
        }
        let connect = req.method() == http::Method::CONNECT;
        let RequestFacts {
            dup, limit, rpc, ..
        } = facts;
        let active = cx.clone().attach();
        // Created while the server span is current, so it stands for that span.
        let bridge = gorax_trace::subscriber::bridge_span();
        let entered = bridge.enter();
        let future = self.inner.call(req);
        // Left in this order (as nested scopes would), so that the bridge span needs no clone
        // to outlive its guard.
        drop(entered);
        drop(active);
        ResponseFuture::new(
            future,
            cx,
            bridge,
            Some(Traced {
                config: self.config.clone(),
                dup,
                limit,
                recording,
                metrics,
                connect,
                rpc,
            }),
        )
    }
}

/// Whether the caller may not continue its trace: its connection's peer is not trusted, or the
/// layer's predicate says so.
fn is_untrusted<B>(
    req: &Request<B>,
    head: &RequestHead<'_>,
    config: &Config,
    telemetry: &gorax_trace::TelemetryHandle,
) -> bool {
    let peers = config
        .trusted_peers
        .as_ref()
        .unwrap_or_else(|| telemetry.trusted_peers());
    (!peers.is_all() && !peers.trusts(attributes::peer(req.extensions()).map(|p| p.ip())))
        || config
            .untrusted
            .as_ref()
            .is_some_and(|is_untrusted| is_untrusted(head))
}

impl<S, M> ServerTraceService<S, M> {
    /// The request's context and whether its span records. A caller that did not sample,
    /// under a sampler that follows it, gets the span context the SDK would make, without the
    /// SDK span it would discard; any other request starts its span through the SDK.
    fn context<B>(
        &self,
        req: &Request<B>,
        telemetry: &gorax_trace::TelemetryHandle,
        caller: Option<(Option<SpanContext>, Context)>,
        facts: &RequestFacts<'_>,
    ) -> (Context, bool) {
        let unsampled = match &caller {
            Some((Some(caller), _)) => telemetry.unsampled_child(caller).map(|child| {
                // What `propagation::random_flag` says for a child of this caller.
                (
                    child,
                    caller.trace_flags().to_u8() & propagation::RANDOM_FLAG != 0,
                )
            }),
            _ => None,
        };
        match (unsampled, caller) {
            (Some((child, random)), Some((_, baggage))) => {
                let baggage = if random {
                    baggage.with_value(propagation::RandomTraceId(child.trace_id()))
                } else {
                    baggage
                };
                (baggage.with_remote_span_context(child), false)
            }
            (_, caller) => self.start(req, telemetry, caller, facts),
        }
    }

    /// Starts the server span through the SDK: its context, and whether it records.
    /// `caller` is `None` for an untrusted caller, else the caller's span context and baggage.
    fn start<B>(
        &self,
        req: &Request<B>,
        telemetry: &gorax_trace::TelemetryHandle,
        caller: Option<(Option<SpanContext>, Context)>,
        facts: &RequestFacts<'_>,
    ) -> (Context, bool) {
        let config = &*self.config;
        let propagators = telemetry.propagators();
        let tracer = telemetry.tracer_in(crate::SCOPES.for_schema(facts.schema_url()));
        let rules = telemetry.route_attributes();
        let (parent, links) = match caller {
            Some((Some(sc), cx)) => (cx.with_remote_span_context(sc), None),
            Some((None, cx)) => (cx, None),
            None => new_root(req, config, propagators),
        };
        // The span's attribute list, sized for every attribute the request and the response
        // add, so that it never grows: when the span will likely record (the caller sampled, or
        // a new trace) or when the sampler needs the route attributes. The sampler sees only
        // those, as before.
        let likely = {
            let span = parent.span();
            let caller = span.span_context();
            !caller.is_valid() || caller.is_sampled()
        };
        let list = (likely || rules).then(|| {
            let mut initial = Vec::with_capacity(attributes::capacity(config, facts.dup));
            if rules {
                initial.push(KeyValue::new(
                    gorax_trace::semconv::HTTP_REQUEST_METHOD,
                    facts.method,
                ));
                if let Some(route) = facts.route_value() {
                    initial.push(KeyValue::new(gorax_trace::semconv::HTTP_ROUTE, route));
                }
            }
            initial
        });
        // One builder, moved once; the span is named once, here.
        let builder = SpanBuilder {
            name: facts.span_name(req.method()),
            span_kind: Some(SpanKind::Server),
            attributes: list,
            links,
            ..SpanBuilder::default()
        };
        let mut span = tracer.build_with_context(builder, &parent);
        let recording = span.is_recording();
        // Attributes go on the span itself, before it moves into the context (where every call
        // would lock its mutex and go through a boxed trait object).
        if recording {
            attributes::on_request(&mut span, req, facts, config, rules);
        }
        // Level 2 `random` flag: the SDK drops it from unsampled children and never sets it
        // on new roots; the marker makes every `traceparent` of this trace carry it.
        let random = propagation::random_flag(&parent, span.span_context());
        let parent = if random {
            parent.with_value(propagation::RandomTraceId(span.span_context().trace_id()))
        } else {
            parent
        };
        // A span that does not record holds nothing but its context (every write to it is a
        // no-op, ending it does nothing): the context carries just that, with no boxed span
        // and no mutex.
        let cx = if recording {
            parent.with_span(span)
        } else {
            parent.with_remote_span_context(span.span_context().clone())
        };
        (cx, recording)
    }
}

/// The parent of an untrusted caller's span: a new root. The caller's context is only a link;
/// its flag is ignored and its baggage dropped but for the keys an `Allow` policy lists.
fn new_root<B>(
    req: &Request<B>,
    config: &Config,
    propagators: Propagators,
) -> (Context, Option<Vec<Link>>) {
    let caller = propagators.with_baggage(false).extract(req.headers());
    let caller_span = caller.span();
    let links = caller_span
        .span_context()
        .is_valid()
        .then(|| vec![Link::with_context(caller_span.span_context().clone())]);
    let allow = propagators.baggage && matches!(config.baggage, BaggagePolicy::Allow(_));
    let parent = if allow {
        let baggage_only = Propagators::NONE.with_baggage(true).extract(req.headers());
        config.baggage.apply(baggage_only)
    } else {
        Context::new()
    };
    (parent, links)
}
