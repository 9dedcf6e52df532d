use gorax_trace::propagation;
use http::HeaderMap;
use opentelemetry::Context;

/// Writes W3C trace context (`traceparent`, `tracestate`) and `baggage` into an outgoing
/// request, for HTTP clients other than reqwest-middleware (hyper, a raw `reqwest::Client`, a
/// gRPC channel). Implemented for [`HeaderMap`], [`http::Request`], [`http::request::Builder`]
/// and [`reqwest::Request`]; each call goes through [`gorax_trace::propagation::inject`].
///
/// Unlike [`ClientTraceMiddleware`](crate::ClientTraceMiddleware), this records no client span:
/// the receiver's parent is the span of the context you inject. Existing `traceparent`,
/// `tracestate` and `baggage` headers are replaced; nothing is written for a context without a
/// valid span context (except its baggage).
///
/// ```
/// use gorax_trace_client::InjectContext;
/// use opentelemetry::Context;
/// use opentelemetry::trace::TraceContextExt;
///
/// let caller = gorax_trace::propagation::parse_traceparent(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
/// )
/// .unwrap();
/// let cx = Context::new().with_remote_span_context(caller);
///
/// let mut req = http::Request::get("http://users.internal/users/42").body(()).unwrap();
/// req.inject_context(&cx);
/// assert_eq!(
///     req.headers()["traceparent"],
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
/// );
/// ```
pub trait InjectContext {
    /// Injects `cx`.
    fn inject_context(&mut self, cx: &Context);

    /// Injects [`Context::current()`].
    fn inject_current_context(&mut self) {
        Context::map_current(|cx| self.inject_context(cx))
    }
}

impl InjectContext for HeaderMap {
    fn inject_context(&mut self, cx: &Context) {
        propagation::inject(cx, self);
    }
}

impl<B> InjectContext for http::Request<B> {
    fn inject_context(&mut self, cx: &Context) {
        propagation::inject(cx, self.headers_mut());
    }
}

impl InjectContext for http::request::Builder {
    /// Does nothing when the builder already holds an error.
    fn inject_context(&mut self, cx: &Context) {
        if let Some(headers) = self.headers_mut() {
            propagation::inject(cx, headers);
        }
    }
}

impl InjectContext for reqwest::Request {
    fn inject_context(&mut self, cx: &Context) {
        propagation::inject(cx, self.headers_mut());
    }
}
