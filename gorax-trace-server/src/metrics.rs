//! The server's RED measurements: `http.server.request.duration` and
//! `http.server.active_requests` (`rpc.server.call.duration` in gRPC mode), recorded when the
//! handle has metrics ([`TelemetryHandle::metrics`](gorax_trace::TelemetryHandle::metrics)).
//! Every request counts, sampled or not; the sampled ones may leave an exemplar. Requests the
//! layer's filter skips are not measured.

use std::time::Instant;

use gorax_trace::httpconv::protocol_version;
use gorax_trace::metrics::{Metrics, RequestDuration};
use gorax_trace::rpcconv::grpc_status;
use gorax_trace::semconv;
use http::{HeaderMap, Request, StatusCode};
use opentelemetry::trace::SpanContext;
use opentelemetry::{KeyValue, StringValue, Value};

use crate::config::Config;
use crate::request::RequestFacts;
use gorax_trace::rpcconv::GrpcCall;

/// One request being measured. Dropped unfinished (the client went away), it still leaves the
/// active-requests count.
pub(crate) struct RequestMetrics {
    metrics: Metrics,
    start: Instant,
    method: &'static str,
    scheme: &'static str,
    version: &'static str,
    route: Option<StringValue>,
}

impl RequestMetrics {
    pub(crate) fn start<B>(
        metrics: &Metrics,
        req: &Request<B>,
        facts: &RequestFacts<'_>,
        config: &Config,
    ) -> Self {
        let method = facts.method;
        // The span's rule (a trusted proxy's `X-Forwarded-Proto`), narrowed to the two values so
        // a header cannot grow the series.
        let trusted = crate::attributes::from_trusted_proxy(req, config);
        let scheme = match crate::attributes::request_scheme(req, trusted) {
            "https" => "https",
            _ => "http",
        };
        metrics.add_http_server_active(1, method, scheme == "https");
        Self {
            metrics: metrics.clone(),
            start: Instant::now(),
            method,
            scheme,
            version: protocol_version(req.version()),
            route: facts
                .names()
                .map(|n| StringValue::from(n.route()))
                .or_else(|| facts.route.map(|r| metrics.intern(r))),
        }
    }

    /// Records the request: `response` is the status and headers (trailers, for a gRPC call
    /// whose status came there), `None` for an error of the inner service; `error_type` is the
    /// failure classifier's verdict (the span's). A gRPC call (`rpc`) is recorded as
    /// `rpc.server.call.duration`.
    pub(crate) fn finish(
        self,
        response: Option<(StatusCode, &HeaderMap)>,
        error_type: Option<Value>,
        span: &SpanContext,
        rpc: Option<&GrpcCall>,
    ) {
        let seconds = self.start.elapsed().as_secs_f64();
        if let Some(rpc) = rpc {
            let code = response.and_then(|(_, headers)| grpc_status(headers));
            let attrs = rpc.metric_attributes(code, error_type, |v| self.metrics.intern(v));
            return self
                .metrics
                .record_present(RequestDuration::RpcServer, seconds, attrs, span);
        }
        let mut attrs: [Option<KeyValue>; 6] = Default::default();
        attrs[0] = Some(KeyValue::new(semconv::HTTP_REQUEST_METHOD, self.method));
        attrs[1] = Some(KeyValue::new(semconv::URL_SCHEME, self.scheme));
        attrs[2] = Some(KeyValue::new(
            semconv::NETWORK_PROTOCOL_VERSION,
            self.version,
        ));
        attrs[3] = self
            .route
            .as_ref()
            .map(|r| KeyValue::new(semconv::HTTP_ROUTE, r.clone()));
        attrs[4] = response.map(|(status, _)| {
            KeyValue::new(
                semconv::HTTP_RESPONSE_STATUS_CODE,
                i64::from(status.as_u16()),
            )
        });
        attrs[5] = error_type.map(|e| KeyValue::new(semconv::ERROR_TYPE, e));
        self.metrics
            .record_present(RequestDuration::HttpServer, seconds, attrs, span);
    }
}

impl Drop for RequestMetrics {
    fn drop(&mut self) {
        self.metrics
            .add_http_server_active(-1, self.method, self.scheme == "https");
    }
}

/// A route that answers Prometheus scrapes with `scrape` (the OpenMetrics text format): mount
/// it where Prometheus looks, e.g. on an admin listener at `:9090/metrics`.
///
/// ```
/// use gorax_trace::config::{ExporterKind, TraceConfig};
/// use gorax_trace::metrics::MetricsExporters;
///
/// let config = TraceConfig::new()
///     .with_exporter(ExporterKind::None)
///     .with_metrics(true)
///     .with_metrics_exporters(MetricsExporters::NONE.with_prometheus(true));
/// let telemetry = gorax_trace::init(config).unwrap();
/// let admin: axum::Router = axum::Router::new().route(
///     "/metrics",
///     gorax_trace_server::prometheus_route(telemetry.prometheus().unwrap()),
/// );
/// # drop(admin);
/// ```
#[cfg(feature = "prometheus")]
pub fn prometheus_route<S>(
    scrape: gorax_trace::metrics::PrometheusScrape,
) -> axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::routing::get(move || {
        let scrape = scrape.clone();
        async move {
            (
                [(
                    http::header::CONTENT_TYPE,
                    gorax_trace::metrics::PrometheusScrape::CONTENT_TYPE,
                )],
                scrape.render(),
            )
        }
    })
}
