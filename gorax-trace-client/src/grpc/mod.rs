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

mod body;
mod config;
mod future;
mod layer;
mod outcome;
mod service;

pub use body::GrpcBody;
pub use future::GrpcResponseFuture;
pub use layer::GrpcClientLayer;
pub(crate) use outcome::{classifier, status_code};
pub use service::GrpcClientService;

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;

    use bytes::Bytes;
    use gorax_trace::testing::TestTracing;
    use http_body::{Body, Frame};
    use tower::ServiceExt;

    use std::pin::Pin;
    use std::task::{Context as TaskContext, Poll};

    use gorax_trace::semconv;
    use http::{Request, Response};
    use opentelemetry::trace::{SpanKind, Status};
    use tower_layer::Layer;

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
