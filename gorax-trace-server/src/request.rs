//! What the layer works out of a request once ([`RequestFacts`]), handed to the span's start,
//! its attributes, its end and the request's measurement: the method is normalised, the route
//! looked up, the modes and the length limit resolved here and nowhere else.

use std::borrow::Cow;
use std::cell::OnceCell;

use gorax_trace::TelemetryHandle;
use gorax_trace::conventions::HttpSemconv;
use gorax_trace::httpconv::{RouteNames, route_names};
use gorax_trace::rpcconv::GrpcCall;
use http::{Method, Request};
use opentelemetry::StringValue;

use crate::config::Config;

/// One request, as the span and the measurement see it.
pub(crate) struct RequestFacts<'a> {
    /// The matched route template (axum's `MatchedPath`).
    pub(crate) route: Option<&'a str>,
    /// The route's names kept for the process (`http.route`, span names), looked up on first
    /// use: a request whose span does not record (and without metrics) never needs them.
    names: OnceCell<Option<&'static RouteNames>>,
    /// `http.request.method`: the method, or `_OTHER`.
    pub(crate) method: &'static str,
    /// The method is one of the HTTP specification's.
    pub(crate) known_method: bool,
    /// The legacy HTTP keys too (`http/dup`).
    pub(crate) dup: bool,
    /// The length limit of attribute values built from caller input.
    pub(crate) limit: usize,
    /// gRPC mode: the call (boxed: HTTP requests carry one pointer through every future and
    /// body that holds it instead of the whole call; a gRPC request pays one allocation).
    pub(crate) rpc: Option<Box<GrpcCall>>,
}

impl<'a> RequestFacts<'a> {
    pub(crate) fn new<B>(
        req: &Request<B>,
        route: Option<&'a str>,
        config: &Config,
        telemetry: &TelemetryHandle,
    ) -> Self {
        let (method, known_method) = gorax_trace::httpconv::method(req.method());
        let dup = config
            .semconv
            .unwrap_or(telemetry.http_semconv())
            .emits_legacy();
        let limit = config
            .attr_limit
            .or(telemetry.attribute_value_length_limit())
            .unwrap_or(usize::MAX);
        let rpc = config.grpc.then(|| {
            let mode = config.rpc_semconv.unwrap_or(telemetry.rpc_semconv());
            Box::new(GrpcCall::new(
                req.uri().path(),
                mode,
                &config.grpc_methods,
                limit,
            ))
        });
        Self {
            route,
            names: OnceCell::new(),
            method,
            known_method,
            dup,
            limit,
            rpc,
        }
    }

    /// The route's names kept for the process, once stored (one table lookup per request).
    pub(crate) fn names(&self) -> Option<&'static RouteNames> {
        *self.names.get_or_init(|| self.route.and_then(route_names))
    }

    /// The span's name, decided once when it starts: the gRPC method (or `grpc`), else
    /// `{method} {route}` (`HTTP {route}` for a method outside the specification), else the
    /// method alone (`HTTP`).
    pub(crate) fn span_name(&self, method: &Method) -> Cow<'static, str> {
        if let Some(name) = self.rpc.as_deref().and_then(GrpcCall::span_name) {
            return name;
        }
        match (self.names(), self.route) {
            (Some(names), _) => names.span_name(method).into(),
            (None, Some(_)) => gorax_trace::httpconv::span_name(method, self.route),
            (None, None) if self.known_method => self.method.into(),
            (None, None) => "HTTP".into(),
        }
    }

    /// `http.route`, shared with the route table when it is stored there.
    pub(crate) fn route_value(&self) -> Option<StringValue> {
        match (self.names(), self.route) {
            (Some(names), _) => Some(names.route().into()),
            (None, Some(route)) => Some(route.to_owned().into()),
            (None, None) => None,
        }
    }

    /// The schema URL of the conventions the span follows (its instrumentation scope's).
    pub(crate) fn schema_url(&self) -> Option<&'static str> {
        match &self.rpc {
            Some(call) => call.mode().schema_url(),
            None if self.dup => HttpSemconv::Dup.schema_url(),
            None => HttpSemconv::Stable.schema_url(),
        }
    }
}
