//! The OTLP metric exporter: the SDK's aggregates as an `ExportMetricsServiceRequest`
//! (opentelemetry-proto's transform), with the exemplars of [`Exemplars`] added to the histogram
//! data points, sent over the same transports as the spans (the counting HTTP client with its
//! TLS and headers, or a gRPC channel built the same way).
//!
//! The protobuf is built first and the exemplars are added to it (why not opentelemetry-otlp's
//! `MetricExporter`: the table in [`metrics`](super#why-our-own)).
//!
//! No retries: the temporality is cumulative, so the next export (one interval later) carries
//! everything a failed one had. The answer is classified as for the spans: 404/405/501 and gRPC
//! `UNIMPLEMENTED` mean the collector does not take metrics, `Retry-After`/`RetryInfo` ask for
//! quiet (the signal's [`Gate`](crate::export) keeps both across pushes), and an answer's
//! `partial_success.rejected_data_points` is counted. The push loop
//! ([`MetricsPush`](super::MetricsPush)) counts every push in [`MetricsExportHealth`].

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar as ProtoExemplar, exemplar, metric};
use opentelemetry_sdk::metrics::data::ResourceMetrics;

use super::exemplar::{Scalar, attribute_set_hash};
use super::{Exemplars, RequestDuration};
#[cfg(feature = "otlp-http")]
use crate::export::gate;
use crate::export::gate::{Closed, Gate, Signal};
use crate::export::transport::OtlpSettings;
use crate::export::{BuildError, ExportRuntime, LossKind};

use crate::export::transport::SignalTransport as Transport;

/// The OTLP push exporter of the metrics pipeline.
pub(crate) struct OtlpMetricExporter {
    transport: Transport,
    exemplars: Arc<Exemplars>,
    timeout: Duration,
    gate: Gate,
}

/// Why a push was lost.
pub(crate) type PushLoss = (LossKind, String);

impl std::fmt::Debug for OtlpMetricExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpMetricExporter").finish_non_exhaustive()
    }
}

impl OtlpMetricExporter {
    pub(crate) fn build(
        config: &OtlpSettings<'_>,
        exemplars: Arc<Exemplars>,
    ) -> Result<(Self, Option<ExportRuntime>), BuildError> {
        let (transport, runtime) = Transport::build(config, "gorax-trace-grpc-metrics")?;
        Ok((
            Self {
                transport,
                exemplars,
                timeout: config.timeout,
                gate: Gate::new(Signal::Metrics, config.endpoint),
            },
            runtime,
        ))
    }

    /// Whether a push may go out now (the collector neither refuses metrics nor asked for
    /// quiet).
    pub(crate) fn check(&self) -> Result<(), PushLoss> {
        match self.gate.check() {
            Ok(()) => Ok(()),
            Err(Closed::Refused(answer)) => Err((
                LossKind::Refused,
                format!("not pushed: the collector refuses metrics (it answered {answer})"),
            )),
            Err(Closed::Throttled(until)) => Err((
                LossKind::Throttled,
                format!(
                    "not pushed: the collector asked for quiet for another {} ms",
                    until
                        .saturating_duration_since(std::time::Instant::now())
                        .as_millis()
                ),
            )),
        }
    }

    /// Pushes `metrics` once: `Ok` with the data points the collector rejected.
    pub(crate) fn export(&self, metrics: &ResourceMetrics) -> Result<u64, PushLoss> {
        self.check()?;
        let mut request = ExportMetricsServiceRequest::from(metrics);
        add_exemplars(&mut request, &self.exemplars);
        futures_executor::block_on(self.send(request))
    }

    /// An HTTP status that is not a success, classified (and kept in the gate).
    #[cfg(feature = "otlp-http")]
    fn http_failure(&self, status: u16, retry_after: Option<Duration>) -> PushLoss {
        if gate::http_refuses(status) {
            self.gate.refuse(&format!("HTTP {status}"));
            return (
                LossKind::Refused,
                format!("the collector answered HTTP {status}: it does not take metrics"),
            );
        }
        match (status, retry_after) {
            (429 | 503, Some(after)) => {
                self.gate.throttle(after);
                (
                    LossKind::Throttled,
                    format!(
                        "the collector answered HTTP {status} with Retry-After {} s",
                        after.as_secs()
                    ),
                )
            }
            _ => (
                LossKind::Failed,
                format!("the collector answered HTTP {status}"),
            ),
        }
    }

    /// A gRPC status, classified (and kept in the gate).
    #[cfg(feature = "otlp-grpc")]
    fn grpc_failure(&self, status: &tonic::Status) -> PushLoss {
        use tonic::Code;
        use tonic_types::StatusExt;
        let code = status.code();
        let delay = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .filter(|d| !d.is_zero());
        match (code, delay) {
            (Code::Unimplemented, _) => {
                self.gate.refuse("gRPC UNIMPLEMENTED");
                (
                    LossKind::Refused,
                    "the collector answered gRPC UNIMPLEMENTED: it does not take metrics"
                        .to_owned(),
                )
            }
            (Code::ResourceExhausted | Code::Unavailable, Some(delay)) => {
                self.gate.throttle(delay);
                (
                    LossKind::Throttled,
                    format!(
                        "the collector answered gRPC {code:?} with RetryInfo {} ms",
                        delay.as_millis()
                    ),
                )
            }
            (Code::DeadlineExceeded | Code::Cancelled, _) => (
                LossKind::Timeout,
                format!("the collector answered gRPC {code:?}"),
            ),
            _ => (
                LossKind::Failed,
                format!("the collector answered gRPC {code:?}"),
            ),
        }
    }

    async fn send(&self, request: ExportMetricsServiceRequest) -> Result<u64, PushLoss> {
        match &self.transport {
            #[cfg(feature = "otlp-http")]
            Transport::Http { client, endpoint } => {
                use opentelemetry_http::HttpClient as _;
                use prost::Message as _;
                let body = request.encode_to_vec();
                let request = http::Request::post(endpoint.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(opentelemetry_http::Bytes::from(body))
                    .map_err(|e| (LossKind::Failed, e.to_string()))?;
                let response = client.send_bytes(request).await.map_err(|e| {
                    let failure = crate::export::transport::transport_failure(&*e, self.timeout);
                    (failure.kind, failure.message)
                })?;
                let status = response.status();
                if status.is_success() {
                    Ok(rejected_data_points(response.body()))
                } else {
                    let retry_after = response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(crate::export::transport::retry_after);
                    Err(self.http_failure(status.as_u16(), retry_after))
                }
            }
            #[cfg(feature = "otlp-grpc")]
            Transport::Grpc {
                channel,
                metadata,
                runtime,
                gzip,
            } => {
                use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
                let mut client = MetricsServiceClient::new(channel.clone());
                if *gzip {
                    client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                let mut request = tonic::Request::new(request);
                *request.metadata_mut() = metadata.clone();
                let timeout = self.timeout;
                // On the export runtime, like the span exporter's channel; the push thread
                // waits for the task.
                let task = runtime.spawn(async move {
                    tokio::time::timeout(timeout, client.export(request)).await
                });
                match task.await {
                    Ok(Ok(Ok(response))) => Ok(response
                        .into_inner()
                        .partial_success
                        .map_or(0, |p| u64::try_from(p.rejected_data_points).unwrap_or(0))),
                    Ok(Ok(Err(status))) => Err(self.grpc_failure(&status)),
                    Ok(Err(_)) => Err((
                        LossKind::Timeout,
                        format!("no answer within {} ms", timeout.as_millis()),
                    )),
                    Err(e) => Err((LossKind::Failed, format!("export task: {e}"))),
                }
            }
        }
    }
}

/// Adds the stored exemplars to the histogram data points of `request`.
pub(crate) fn add_exemplars(request: &mut ExportMetricsServiceRequest, exemplars: &Exemplars) {
    for rm in &mut request.resource_metrics {
        for sm in &mut rm.scope_metrics {
            for m in &mut sm.metrics {
                let Some(instrument) = RequestDuration::from_name(&m.name) else {
                    continue;
                };
                let Some(metric::Data::Histogram(h)) = &mut m.data else {
                    continue;
                };
                for point in &mut h.data_points {
                    let hash = attribute_set_hash(point.attributes.iter().map(|kv| {
                        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(ProtoValue::StringValue(s)) => Scalar::Str(s),
                            Some(ProtoValue::IntValue(i)) => Scalar::Int(*i),
                            Some(ProtoValue::BoolValue(b)) => Scalar::Bool(*b),
                            Some(ProtoValue::DoubleValue(d)) => Scalar::Double(*d),
                            _ => Scalar::Other,
                        };
                        (kv.key.as_str(), value)
                    }));
                    point.exemplars = exemplars
                        .of(instrument as u8, hash)
                        .into_iter()
                        .map(|e| ProtoExemplar {
                            filtered_attributes: Vec::new(),
                            time_unix_nano: e.time_unix_nano,
                            span_id: e.span_id.to_vec(),
                            trace_id: e.trace_id.to_vec(),
                            value: Some(exemplar::Value::AsDouble(e.value)),
                        })
                        .collect();
                }
            }
        }
    }
}

/// The data points an OTLP/HTTP answer (`ExportMetricsServiceResponse`, protobuf) says were
/// rejected; 0 for an empty or undecodable body.
#[cfg(feature = "otlp-http")]
fn rejected_data_points(body: &[u8]) -> u64 {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use prost::Message as _;
    if body.is_empty() {
        return 0;
    }
    ExportMetricsServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| u64::try_from(p.rejected_data_points).unwrap_or(0))
}
