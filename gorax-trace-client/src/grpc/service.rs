//! [`GrpcClientService`]: starts the CLIENT span of a call and injects its context.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use gorax_trace::propagation;
use gorax_trace::rpcconv::GrpcCall;
use gorax_trace::semconv;
use http::{Request, Response};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use tower_service::Service;

use super::body::GrpcBody;
use super::config::Config;
use super::future::GrpcResponseFuture;
use crate::metrics::RpcMetrics;

/// The [`Service`] made by [`GrpcClientLayer`].
#[derive(Debug, Clone)]
pub struct GrpcClientService<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> GrpcClientService<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcClientService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<GrpcBody<ResBody>>;
    type Error = S::Error;
    type Future = GrpcResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let telemetry = config.binding.get();
        let limit = telemetry
            .attribute_value_length_limit()
            .unwrap_or(usize::MAX);
        let mode = config.semconv.unwrap_or(telemetry.rpc_semconv());
        let call = GrpcCall::new(req.uri().path(), mode, &config.methods, limit);
        let tracer = telemetry.tracer_in(crate::SCOPES.for_schema(mode.schema_url()));
        let name = call
            .span_name()
            .unwrap_or_else(|| req.uri().path().to_owned().into());
        let parent = Context::current();
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .start_with_context(tracer, &parent);
        let server = match &config.target {
            Some(target) => Some((target.address_value(), target.port())),
            None => req.uri().authority().map(|a| {
                let host: opentelemetry::StringValue =
                    gorax_trace::httpconv::limited(a.host(), limit);
                (host, a.port_u16())
            }),
        };
        if span.is_recording() {
            let mut attrs = Vec::with_capacity(6);
            call.start_attributes(&mut attrs, limit);
            if let Some((address, port)) = &server {
                attrs.push(KeyValue::new(semconv::SERVER_ADDRESS, address.clone()));
                if let Some(port) = port {
                    attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(*port)));
                }
            }
            span.set_attributes(attrs);
        }
        let metrics = telemetry.metrics().map(|m| RpcMetrics::start(m, server));
        let propagators = telemetry.propagators();
        let sc = span.span_context().clone();
        if sc.is_valid() {
            let random = propagation::random_flag(&parent, &sc);
            let sc = propagation::with_random_flag(&sc, random);
            propagators.inject_span_context(&sc, Some(&parent), req.headers_mut());
        } else {
            // No valid span (provider shut down, suppressed): pass the caller's context on.
            propagators.inject(&parent, req.headers_mut());
        }
        let cx = parent.with_span(span);
        let future = {
            let _active = cx.clone().attach();
            self.inner.call(req)
        };
        GrpcResponseFuture {
            inner: future,
            cx: Some(cx),
            metrics,
            call: Some(call),
        }
    }
}
