//! Outbound gRPC tracing: [`GrpcClientLayer`], a tower layer for any `http::Request` ->
//! `http::Response` service, such as a tonic `Channel`, that records one CLIENT span per call and
//! propagates the trace context in the request metadata (headers).
//!
//! - **Conventions**: the RPC conventions' mode of the handle (`OTEL_SEMCONV_STABILITY_OPT_IN`)
//!   or [`with_rpc_semconv`](GrpcClientLayer::with_rpc_semconv):
//!
//!   | | old keys (default) | `rpc` (stable, v1.45.0) | `rpc/dup` |
//!   |---|---|---|---|
//!   | span name | `{package.Service}/{Method}` | the same; `grpc` for an unrecognized method | as `rpc` |
//!   | attributes | `rpc.system=grpc`, `rpc.service`, `rpc.method` (`Method`), `rpc.grpc.status_code` (int) | `rpc.system.name=grpc`, `rpc.method` (`package.Service/Method` or `_OTHER`), `rpc.method_original`, `rpc.status_code` (`"OK"`) | both; `rpc.method` as in `rpc` |
//!   | `error.type` | the numeric code | the code's name | the name |
//!   | `rpc.client.call.duration` | `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, `error.type` | `rpc.system.name`, `rpc.method`, `rpc.status_code`, `error.type`, `server.address`, `server.port` | both |
//!
//!   `server.address`/`server.port` (every mode) come from the channel's target given to
//!   [`with_target`](GrpcClientLayer::with_target) (parsed as [`GrpcTarget`] says), else from
//!   the request URI's authority (tonic adds it only below the layer, unless the client is
//!   built `with_origin`). Methods are recognized unless the server answers `UNIMPLEMENTED`,
//!   or only those of [`with_grpc_methods`](GrpcClientLayer::with_grpc_methods); an
//!   unrecognized method is `_OTHER` in the stable keys and in every mode's metrics.
//! - **Status**: every code but `OK` is an error
//!   ([`GrpcErrors::client`](gorax_trace::rpcconv::GrpcErrors::client)); an HTTP answer without
//!   `grpc-status` is judged (and, in the stable mode, given a `rpc.status_code`) by gRPC's
//!   HTTP-to-status mapping ([`code_of_http_status`](gorax_trace::rpcconv::code_of_http_status));
//!   a transport error before any status is an error with `error.type` its type name.
//! - **Span end**: when the response's trailers arrive (the response body, [`GrpcBody`], reads
//!   their `grpc-status`), so the span covers the whole call and records the status of an `OK`
//!   unary call and of an error in the middle of a stream. A *trailers-only* response (a
//!   status in the headers: how tonic answers every `Err(Status)` of a unary handler) and a
//!   transport error end it at the response head. A body dropped before its trailers (the call
//!   cancelled) ends the span without a status code.
//!
//! ```no_run
//! use gorax_trace_client::grpc::GrpcClientLayer;
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect().await?;
//! let channel = ServiceBuilder::new()
//!     .layer(GrpcClientLayer::new().with_target("http://127.0.0.1:50051"))
//!     .service(channel);
//! // let client = my_proto::echo_client::EchoClient::with_origin(channel, origin);
//! # drop(channel); Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use std::sync::Arc;

use gorax_trace::conventions::RpcSemconv;
use gorax_trace::httpconv::{ClassifyFailure, ResponseHead};
use gorax_trace::propagation;
use gorax_trace::rpcconv::{GrpcCall, GrpcErrors, GrpcMethods, GrpcTarget, grpc_status};
use gorax_trace::semconv;
use gorax_trace::{Binding, SdkTracer, TelemetryHandle};

use crate::metrics::RpcMetrics;
use http::{Request, Response};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _,
};
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
    config: Arc<Config>,
}

#[derive(Debug, Clone, Default)]
struct Config {
    binding: Binding,
    target: Option<GrpcTarget>,
    methods: GrpcMethods,
    semconv: Option<RpcSemconv>,
}

impl GrpcClientLayer {
    /// A layer recording with the installed handle.
    pub fn new() -> Self {
        Self::default()
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Records with this handle (a [`Telemetry`](gorax_trace::Telemetry) or a
    /// [`TelemetryHandle`]) instead of the installed one.
    pub fn with_telemetry(mut self, telemetry: impl Into<TelemetryHandle>) -> Self {
        self.config().binding = Binding::fixed(telemetry);
        self
    }

    /// Records with this tracer (e.g. of a test provider) and default settings.
    pub fn with_tracer(self, tracer: SdkTracer) -> Self {
        self.with_telemetry(tracer)
    }

    /// The target of the channel below (`dns:///notify.internal:50051`, a tonic `Endpoint`'s
    /// `http://host:port`, `unix:///run/x.sock`, ...): the source of `server.address` and
    /// `server.port`, parsed once here ([`GrpcTarget`]).
    ///
    /// ```
    /// use gorax_trace_client::grpc::GrpcClientLayer;
    ///
    /// let layer = GrpcClientLayer::new().with_target("dns:///notify.internal:50051");
    /// ```
    pub fn with_target(mut self, target: &str) -> Self {
        self.config().target = Some(GrpcTarget::parse(target));
        self
    }

    /// Chooses the RPC conventions (see the [module](self) documentation) instead of the
    /// handle's mode.
    pub fn with_rpc_semconv(mut self, mode: RpcSemconv) -> Self {
        self.config().semconv = Some(mode);
        self
    }

    /// Which methods are recognized (default: every method unless the server answers
    /// `UNIMPLEMENTED`); [`GrpcMethods::only`] lists them.
    pub fn with_grpc_methods(mut self, methods: GrpcMethods) -> Self {
        self.config().methods = methods;
        self
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The [`Service`] made by [`GrpcClientLayer`].
#[derive(Debug, Clone)]
pub struct GrpcClientService<S> {
    inner: S,
    config: Arc<Config>,
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

pin_project! {
    /// The response future of [`GrpcClientService`].
    pub struct GrpcResponseFuture<F> {
        #[pin]
        inner: F,
        cx: Option<Context>,
        metrics: Option<RpcMetrics>,
        call: Option<GrpcCall>,
    }
}

impl<F> std::fmt::Debug for GrpcResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcResponseFuture").finish_non_exhaustive()
    }
}

/// The client rule of the stable conventions: `error.type` the status code's name.
static NAMED_CLIENT_ERRORS: GrpcErrors = GrpcErrors::client().with_code_names();

/// The failure rule of a call in its conventions' mode.
pub(crate) fn classifier(call: &GrpcCall) -> &'static GrpcErrors {
    static CLIENT_ERRORS: GrpcErrors = GrpcErrors::client();
    if call.mode().emits_stable() {
        &NAMED_CLIENT_ERRORS
    } else {
        &CLIENT_ERRORS
    }
}

/// The status code of an answer: its `grpc-status`, else (stable conventions) the code a gRPC
/// client makes of its HTTP status.
pub(crate) fn status_code(
    call: &GrpcCall,
    status: http::StatusCode,
    headers: &http::HeaderMap,
) -> Option<u8> {
    grpc_status(headers).or_else(|| {
        call.mode()
            .emits_stable()
            .then(|| gorax_trace::rpcconv::code_of_http_status(status))
            .flatten()
    })
}

/// Records the status of `headers` (response headers or trailers) and the outcome.
fn record_status(
    span: &opentelemetry::trace::SpanRef<'_>,
    call: &GrpcCall,
    status: http::StatusCode,
    headers: &http::HeaderMap,
) {
    let mut attrs = Vec::with_capacity(4);
    let rename = call.end_attributes(status_code(call, status, headers), &mut attrs);
    if let Some(error_type) = classifier(call).classify(&ResponseHead::new(status, headers)) {
        attrs.push(KeyValue::new(semconv::ERROR_TYPE, error_type));
        span.set_status(Status::error(""));
    }
    span.set_attributes(attrs);
    if let Some(name) = rename {
        span.update_name(name);
    }
}

/// A call that failed before any status: `error.type` its type name; the method is resolved.
fn record_failure<E: std::fmt::Display>(
    span: &opentelemetry::trace::SpanRef<'_>,
    call: &GrpcCall,
    error: &E,
) {
    gorax_trace::span::record_exception_on(span, error, gorax_trace::span::Exception::RPC_CLIENT);
    let mut attrs = Vec::with_capacity(2);
    let rename = call.end_attributes(None, &mut attrs);
    span.set_attributes(attrs);
    if let Some(name) = rename {
        span.update_name(name);
    }
}

impl<F, B, E> Future for GrpcResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<GrpcBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.cx {
            Some(cx) => {
                let _active = cx.clone().attach();
                ready!(this.inner.poll(task))
            }
            None => ready!(this.inner.poll(task)),
        };
        let cx = this.cx.take();
        let metrics = this.metrics.take();
        let cx = cx.filter(|cx| cx.span().is_recording());
        let call = this.call.take();
        let (Some(call), true) = (call, cx.is_some() || metrics.is_some()) else {
            return Poll::Ready(result.map(|r| r.map(GrpcBody::done)));
        };
        let span_context = |cx: &Option<Context>| {
            cx.as_ref().map_or_else(SpanContext::empty_context, |cx| {
                cx.span().span_context().clone()
            })
        };
        match result {
            Ok(response) => {
                let status = response.status();
                // Trailers-only (status in the headers) or not gRPC at all: the call is over.
                let over =
                    status != http::StatusCode::OK || grpc_status(response.headers()).is_some();
                if over {
                    if let Some(cx) = &cx {
                        let span = cx.span();
                        record_status(&span, &call, status, response.headers());
                        span.end();
                    }
                    if let Some(m) = metrics {
                        m.finish(
                            Some((status, response.headers())),
                            &call,
                            &span_context(&cx),
                        );
                    }
                    Poll::Ready(Ok(response.map(GrpcBody::done)))
                } else {
                    Poll::Ready(Ok(response.map(|inner| GrpcBody {
                        inner,
                        cx,
                        metrics,
                        call: Some(call),
                    })))
                }
            }
            Err(error) => {
                if let Some(cx) = &cx {
                    let span = cx.span();
                    record_failure(&span, &call, &error);
                    span.end();
                }
                if let Some(m) = metrics {
                    m.finish_failed(
                        gorax_trace::span::short_type_name::<E>(),
                        &call,
                        &span_context(&cx),
                    );
                }
                Poll::Ready(Err(error))
            }
        }
    }
}

pin_project! {
    /// The response body of [`GrpcClientService`]: the inner body, unchanged; ends the client
    /// span when the trailers (with `grpc-status`) arrive, the body ends or fails.
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        // The call's context while its span waits for the trailers.
        cx: Option<Context>,
        // The call's measurement while it waits for the trailers.
        metrics: Option<RpcMetrics>,
        // The call, while its span or measurement waits for the trailers.
        call: Option<GrpcCall>,
    }
}

impl<B> std::fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBody").finish_non_exhaustive()
    }
}

impl<B> GrpcBody<B> {
    /// A body whose call is already recorded.
    fn done(inner: B) -> Self {
        Self {
            inner,
            cx: None,
            metrics: None,
            call: None,
        }
    }

    /// Unwraps the inner body (the span, if still open, ends without a status code).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> http_body::Body for GrpcBody<B>
where
    B: http_body::Body,
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        task: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(task));
        let finished = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().is_some(),
            Some(Err(_)) | None => true,
        };
        if !finished {
            return Poll::Ready(frame);
        }
        let trailers = match &frame {
            Some(Ok(frame)) => frame.trailers_ref(),
            _ => None,
        };
        let cx = this.cx.take();
        let Some(call) = this.call.take() else {
            return Poll::Ready(frame);
        };
        if let Some(cx) = &cx {
            let span = cx.span();
            match &frame {
                Some(Ok(_)) => {
                    if let Some(trailers) = trailers {
                        record_status(&span, &call, http::StatusCode::OK, trailers);
                    }
                }
                Some(Err(error)) => record_failure(&span, &call, error),
                // Ended without trailers: no status (judged as an HTTP 200 below).
                None => {
                    let mut attrs = Vec::with_capacity(2);
                    let rename = call.end_attributes(None, &mut attrs);
                    span.set_attributes(attrs);
                    if let Some(name) = rename {
                        span.update_name(name);
                    }
                }
            }
            span.end();
        }
        if let Some(m) = this.metrics.take() {
            let sc = cx.as_ref().map_or_else(SpanContext::empty_context, |cx| {
                cx.span().span_context().clone()
            });
            // A body that ended without trailers has no grpc-status: judged as an HTTP 200.
            let none = http::HeaderMap::new();
            match (&frame, trailers) {
                (_, Some(t)) => m.finish(Some((http::StatusCode::OK, t)), &call, &sc),
                (None, None) => m.finish(Some((http::StatusCode::OK, &none)), &call, &sc),
                _ => m.finish_failed(gorax_trace::span::short_type_name::<B::Error>(), &call, &sc),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;

    use bytes::Bytes;
    use gorax_trace::testing::TestTracing;
    use http_body::{Body, Frame};
    use tower::ServiceExt;

    use super::*;

    /// A body of given frames.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn trailers(code: &'static str) -> Frame<Bytes> {
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static(code));
        Frame::trailers(t)
    }

    async fn drain<B: Body + Unpin>(mut body: B) {
        while std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .is_some()
        {}
    }

    #[tokio::test]
    async fn an_error_in_the_trailers_after_a_message_fails_the_span_when_they_arrive() {
        let t = TestTracing::new();
        let inner = tower::service_fn(|_req: Request<()>| async {
            let frames = VecDeque::from([Frame::data(Bytes::from_static(b"msg")), trailers("13")]);
            Ok::<_, Infallible>(Response::new(Frames(frames)))
        });
        let svc = GrpcClientLayer::new().with_tracer(t.tracer()).layer(inner);
        let req = Request::builder()
            .uri("http://svc.internal:50051/pkg.Echo/Stream")
            .body(())
            .unwrap();
        let response = svc.oneshot(req).await.unwrap();
        assert!(t.spans().is_empty(), "the span waits for the trailers");
        drain(response.into_body()).await;
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Stream");
        assert_eq!(span.span_kind, SpanKind::Client);
        spans.assert_attr(span, semconv::rpc_legacy::RPC_SERVICE, "pkg.Echo");
        spans.assert_attr(span, semconv::RPC_METHOD, "Stream");
        spans.assert_attr(span, semconv::SERVER_ADDRESS, "svc.internal");
        spans.assert_attr(span, semconv::SERVER_PORT, 50051_i64);
        spans.assert_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE, 13_i64);
        spans.assert_attr(span, semconv::ERROR_TYPE, 13_i64);
        assert!(matches!(span.status, Status::Error { .. }), "{span:?}");
    }

    #[tokio::test]
    async fn a_body_without_trailers_ends_the_span_and_an_http_error_fails_it() {
        let t = TestTracing::new();
        let inner = tower::service_fn(|_req: Request<()>| async {
            let mut res = Response::new(Frames(VecDeque::new()));
            *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, Infallible>(res)
        });
        let svc = GrpcClientLayer::new().with_tracer(t.tracer()).layer(inner);
        let req = Request::builder().uri("/pkg.Echo/Say").body(()).unwrap();
        let response = svc.oneshot(req).await.unwrap();
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Say");
        spans.assert_no_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE);
        spans.assert_attr(span, semconv::ERROR_TYPE, "503");
        drop(response);
    }

    #[tokio::test]
    async fn the_trace_context_goes_into_the_request_headers() {
        let t = TestTracing::new();
        let inner = tower::service_fn(|req: Request<()>| async move {
            let tp = req.headers().get("traceparent").cloned();
            let mut res = Response::new(Frames(VecDeque::from([trailers("0")])));
            if let Some(tp) = tp {
                res.headers_mut().insert("x-seen-traceparent", tp);
            }
            Ok::<_, Infallible>(res)
        });
        let svc = GrpcClientLayer::new().with_tracer(t.tracer()).layer(inner);
        let req = Request::builder().uri("/pkg.Echo/Say").body(()).unwrap();
        let response = svc.oneshot(req).await.unwrap();
        let seen = response.headers().get("x-seen-traceparent").cloned();
        drain(response.into_body()).await;
        let spans = t.spans();
        let span = spans.find("pkg.Echo/Say");
        spans.assert_attr(span, semconv::rpc_legacy::RPC_GRPC_STATUS_CODE, 0_i64);
        assert_eq!(span.status, Status::Unset);
        // Its own span id (flags: sampled, and Level 2's `random` on a root it started).
        let expected = format!(
            "00-{}-{}-",
            span.span_context.trace_id(),
            span.span_context.span_id()
        );
        let seen = seen.expect("traceparent sent");
        assert!(seen.to_str().unwrap().starts_with(&expected), "{seen:?}");
    }
}
