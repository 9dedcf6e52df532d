//! The client's RED measurement: `http.client.request.duration` per attempt, recorded when the
//! handle has metrics ([`TelemetryHandle::metrics`](gorax_trace::TelemetryHandle::metrics)),
//! sampled or not; the sampled ones may leave an exemplar.

use std::time::Instant;

use gorax_trace::httpconv::{ClassifyFailure, ResponseHead, protocol_version};
use gorax_trace::metrics::{Metrics, RequestDuration};
use gorax_trace::semconv;
use opentelemetry::trace::SpanContext;
use opentelemetry::{KeyValue, StringValue, Value};
use reqwest::{Request, Response};

/// One request being measured. Its attributes are kept as their values and made into
/// `KeyValue`s when the attempt ends: the middleware's future holds this across the request, and
/// four `KeyValue`s would make it too large for the allocator's fast path.
pub(crate) struct RequestMetrics {
    metrics: Metrics,
    start: Instant,
    method: &'static str,
    address: Option<StringValue>,
    port: Option<u16>,
    scheme: &'static str,
}

impl RequestMetrics {
    pub(crate) fn start(metrics: &Metrics, req: &Request, method: &'static str) -> Self {
        let url = req.url();
        let scheme = match url.scheme() {
            "https" => "https",
            _ => "http",
        };
        Self {
            metrics: metrics.clone(),
            start: Instant::now(),
            method,
            address: url.host_str().map(|h| metrics.intern(h)),
            port: url.port_or_known_default(),
            scheme,
        }
    }

    /// Records the attempt: the response, or the failed request's `error.type`.
    pub(crate) fn finish(
        self,
        result: Result<&Response, &'static str>,
        classify: &dyn ClassifyFailure,
        span: &SpanContext,
    ) {
        let seconds = self.start.elapsed().as_secs_f64();
        let (status, version, error): (Option<i64>, Option<&'static str>, Option<Value>) =
            match result {
                Ok(res) => (
                    Some(i64::from(res.status().as_u16())),
                    Some(protocol_version(res.version())),
                    classify.classify(&ResponseHead::new(res.status(), res.headers())),
                ),
                Err(error_type) => (None, None, Some(error_type.into())),
            };
        self.record(seconds, status, version, error, span);
    }

    /// Records the attempt as ending at `end` (the response body's mode: its last frame read).
    pub(crate) fn finish_at(
        self,
        end: Instant,
        status: i64,
        version: &'static str,
        error: Option<Value>,
        span: &SpanContext,
    ) {
        let seconds = end.saturating_duration_since(self.start).as_secs_f64();
        self.record(seconds, Some(status), Some(version), error, span);
    }

    fn record(
        self,
        seconds: f64,
        status: Option<i64>,
        version: Option<&'static str>,
        error: Option<Value>,
        span: &SpanContext,
    ) {
        self.metrics.record_present(
            RequestDuration::HttpClient,
            seconds,
            [
                Some(KeyValue::new(semconv::HTTP_REQUEST_METHOD, self.method)),
                self.address
                    .map(|h| KeyValue::new(semconv::SERVER_ADDRESS, h)),
                self.port
                    .map(|p| KeyValue::new(semconv::SERVER_PORT, i64::from(p))),
                Some(KeyValue::new(semconv::URL_SCHEME, self.scheme)),
                status.map(|s| KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, s)),
                version.map(|v| KeyValue::new(semconv::NETWORK_PROTOCOL_VERSION, v)),
                error.map(|e| KeyValue::new(semconv::ERROR_TYPE, e)),
            ],
            span,
        );
    }
}

#[cfg(feature = "grpc")]
/// One gRPC call being measured (`rpc.client.call.duration`), until its `grpc-status` arrives
/// (response headers of a trailers-only answer, or the trailers). Its labels come from the
/// call ([`GrpcCall::metric_attributes`](gorax_trace::rpcconv::GrpcCall::metric_attributes)),
/// plus `server.address`/`server.port` in the stable conventions.
pub(crate) struct RpcMetrics {
    metrics: Metrics,
    start: Instant,
    server: Option<(StringValue, Option<u16>)>,
}

#[cfg(feature = "grpc")]
impl RpcMetrics {
    pub(crate) fn start(metrics: &Metrics, server: Option<(StringValue, Option<u16>)>) -> Self {
        Self {
            metrics: metrics.clone(),
            start: Instant::now(),
            server,
        }
    }

    /// Records the call: `outcome` is the HTTP status and the headers or trailers holding
    /// `grpc-status`.
    pub(crate) fn finish(
        self,
        outcome: Option<(http::StatusCode, &http::HeaderMap)>,
        call: &gorax_trace::rpcconv::GrpcCall,
        span: &SpanContext,
    ) {
        let (code, error) = match outcome {
            Some((status, headers)) => (
                crate::grpc::status_code(call, status, headers),
                crate::grpc::classifier(call).classify(&ResponseHead::new(status, headers)),
            ),
            None => (None, Some(gorax_trace::rpcconv::OTHER.into())),
        };
        self.record(code, error, call, span);
    }

    /// Records a call that failed before any status, with `error.type` the error's type.
    pub(crate) fn finish_failed(
        self,
        error_type: &'static str,
        call: &gorax_trace::rpcconv::GrpcCall,
        span: &SpanContext,
    ) {
        self.record(None, Some(error_type.into()), call, span);
    }

    fn record(
        self,
        code: Option<u8>,
        error: Option<Value>,
        call: &gorax_trace::rpcconv::GrpcCall,
        span: &SpanContext,
    ) {
        let seconds = self.start.elapsed().as_secs_f64();
        let [a, b, c, d, e, f, g] = call.metric_attributes(code, error, |v| self.metrics.intern(v));
        let (address, port) = match (&self.server, call.mode().emits_stable()) {
            (Some((address, port)), true) => (
                Some(KeyValue::new(semconv::SERVER_ADDRESS, address.clone())),
                port.map(|p| KeyValue::new(semconv::SERVER_PORT, i64::from(p))),
            ),
            _ => (None, None),
        };
        self.metrics.record_present(
            RequestDuration::RpcClient,
            seconds,
            [a, b, c, d, e, f, g, address, port],
            span,
        );
    }
}
