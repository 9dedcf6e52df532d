//! Outbound gRPC tracing: [`GrpcClientLayer`], a tower layer for any `http::Request` ->
//! `http::Response` service, such as a tonic `Channel`, that records one CLIENT span per call and
//! propagates the trace context in the request metadata (headers).
//!
//! - **Name and attributes**: `{package.Service}/{Method}` from the request path, `rpc.system=grpc`,
//!   `rpc.service`, `rpc.method`, `server.address`/`server.port` when the URI has an authority,
//!   `rpc.grpc.status_code` from the response headers' `grpc-status`.
//! - **Status**: every code but `OK` is an error
//!   ([`GrpcErrors::client`](gorax_trace::httpconv::GrpcErrors::client)), `error.type` the
//!   numeric code; a transport error is an error with `error.type` its type name.
//! - **Span end**: at the response head. A server error returned before the first message (a
//!   *trailers-only* response, how tonic answers every `Err(Status)` of a unary handler) is in
//!   the headers and recorded; a status sent in the trailers after a message body (an `OK` unary
//!   call, an error in the middle of a stream) is not seen: the span has no
//!   `rpc.grpc.status_code` and status Unset.
//!
//! ```no_run
//! use gorax_trace_client::grpc::GrpcClientLayer;
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect().await?;
//! let channel = ServiceBuilder::new().layer(GrpcClientLayer::new()).service(channel);
//! // let client = my_proto::echo_client::EchoClient::new(channel);
//! # drop(channel); Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use gorax_trace::httpconv::{ClassifyFailure, GrpcErrors, ResponseHead, grpc_path, grpc_status};
use gorax_trace::propagation;
use gorax_trace::semconv;
use gorax_trace::{Binding, SdkTracer, Settings, TelemetryHandle};
use http::{Request, Response};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// A tower [`Layer`] that traces outbound gRPC calls (see the [module](self) documentation).
///
/// Records with the [installed](gorax_trace::Telemetry::install) handle, resolved per call (the
/// layer may be built before [`gorax_trace::init`]), and injects with that handle's propagators;
/// [`with_telemetry`](Self::with_telemetry) fixes one.
#[derive(Debug, Clone, Default)]
pub struct GrpcClientLayer {
    binding: Binding,
}

impl GrpcClientLayer {
    /// A layer recording with the installed handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records with this handle (a [`Telemetry`](gorax_trace::Telemetry) or a
    /// [`TelemetryHandle`]) instead of the installed one.
    pub fn with_telemetry(mut self, telemetry: impl Into<TelemetryHandle>) -> Self {
        self.binding = Binding::fixed(telemetry);
        self
    }

    /// Records with this tracer (e.g. of a test provider) and default settings.
    pub fn with_tracer(self, tracer: SdkTracer) -> Self {
        self.with_telemetry(TelemetryHandle::new(
            tracer,
            Settings::default(),
            Default::default(),
        ))
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            binding: self.binding.clone(),
        }
    }
}

/// The [`Service`] made by [`GrpcClientLayer`].
#[derive(Debug, Clone)]
pub struct GrpcClientService<S> {
    inner: S,
    binding: Binding,
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
    type Response = S::Response;
    type Error = S::Error;
    type Future = GrpcResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let telemetry = self.binding.get();
        let tracer = telemetry.tracer();
        let limit = telemetry
            .attribute_value_length_limit()
            .unwrap_or(usize::MAX);
        let rpc = grpc_path(req.uri().path());
        let name = match rpc {
            Some((service, method)) => format!("{service}/{method}"),
            None => req.uri().path().to_owned(),
        };
        let parent = Context::current();
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .start_with_context(tracer, &parent);
        if span.is_recording() {
            let mut attrs = Vec::with_capacity(5);
            attrs.push(KeyValue::new(semconv::RPC_SYSTEM, "grpc"));
            if let Some((service, method)) = rpc {
                attrs.push(KeyValue::new(
                    semconv::RPC_SERVICE,
                    gorax_trace::httpconv::limited(service, limit),
                ));
                attrs.push(KeyValue::new(
                    semconv::RPC_METHOD,
                    gorax_trace::httpconv::limited(method, limit),
                ));
            }
            if let Some(authority) = req.uri().authority() {
                attrs.push(KeyValue::new(
                    semconv::SERVER_ADDRESS,
                    authority.host().to_owned(),
                ));
                if let Some(port) = authority.port_u16() {
                    attrs.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
                }
            }
            span.set_attributes(attrs);
        }
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
        }
    }
}

pin_project! {
    /// The response future of [`GrpcClientService`]: ends the client span at the response head.
    pub struct GrpcResponseFuture<F> {
        #[pin]
        inner: F,
        cx: Option<Context>,
    }
}

impl<F> std::fmt::Debug for GrpcResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GrpcResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: std::fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.cx {
            Some(cx) => {
                let _active = cx.clone().attach();
                ready!(this.inner.poll(task))
            }
            None => ready!(this.inner.poll(task)),
        };
        let Some(cx) = this.cx.take() else {
            return Poll::Ready(result);
        };
        let span = cx.span();
        if span.is_recording() {
            match &result {
                Ok(response) => {
                    let mut attrs = Vec::with_capacity(2);
                    if let Some(code) = grpc_status(response.headers()) {
                        attrs.push(KeyValue::new(
                            semconv::RPC_GRPC_STATUS_CODE,
                            i64::from(code),
                        ));
                    }
                    let head = ResponseHead::new(response.status(), response.headers());
                    if let Some(error_type) = GrpcErrors::client().classify(&head) {
                        attrs.push(KeyValue::new(semconv::ERROR_TYPE, error_type));
                        span.set_status(Status::error(""));
                    }
                    span.set_attributes(attrs);
                }
                Err(error) => gorax_trace::span::record_error_on(&span, error),
            }
            span.end();
        }
        Poll::Ready(result)
    }
}
