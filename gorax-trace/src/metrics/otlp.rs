//! The OTLP metric exporter: the SDK's aggregates as an `ExportMetricsServiceRequest`
//! (opentelemetry-proto's transform), with the exemplars of [`Exemplars`] added to the histogram
//! data points, sent over the same transports as the spans (the counting HTTP client with its
//! TLS and headers, or a gRPC channel built the same way).
//!
//! Own code instead of opentelemetry-otlp's `MetricExporter` because that one takes the SDK's
//! data, whose exemplars the SDK never fills in; here the protobuf is built first and the
//! exemplars are added to it.
//!
//! No retries: the temporality is cumulative, so the next export (one interval later) carries
//! everything a failed one had. A failed export is counted
//! ([`MetricsExportHealth`]) and never blocks longer than the export timeout.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar as ProtoExemplar, exemplar, metric};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

use super::exemplar::{Scalar, attribute_set_hash};
use super::{Exemplars, MetricsExportHealth, RequestDuration};
use crate::export::otlp::OtlpSettings;
use crate::export::{BuildError, ExportRuntime, Protocol};

enum Transport {
    #[cfg(feature = "otlp-http")]
    Http {
        client: crate::export::otlp::CountingClient,
        endpoint: http::Uri,
    },
    #[cfg(feature = "otlp-grpc")]
    Grpc {
        channel: tonic::transport::Channel,
        metadata: tonic::metadata::MetadataMap,
        runtime: tokio::runtime::Handle,
        gzip: bool,
    },
}

/// The OTLP push exporter of the metrics pipeline.
pub(crate) struct OtlpMetricExporter {
    transport: Transport,
    exemplars: Arc<Exemplars>,
    #[cfg_attr(not(feature = "otlp-grpc"), allow(dead_code))]
    timeout: Duration,
    health: MetricsExportHealth,
}

impl std::fmt::Debug for OtlpMetricExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpMetricExporter").finish_non_exhaustive()
    }
}

impl OtlpMetricExporter {
    pub(crate) fn build(
        config: &OtlpSettings<'_>,
        exemplars: Arc<Exemplars>,
    ) -> Result<(Self, Option<ExportRuntime>, MetricsExportHealth), BuildError> {
        let health = MetricsExportHealth::default();
        let (transport, runtime) = match config.protocol {
            #[cfg(feature = "otlp-http")]
            Protocol::HttpProtobuf => {
                let endpoint: http::Uri = config.endpoint.parse().map_err(|e| {
                    BuildError::Exporter(format!("invalid endpoint {:?}: {e}", config.endpoint))
                })?;
                let material = crate::export::otlp::tls_material(config)?;
                let (client, runtime) = crate::export::otlp::http_transport(config, &material)?;
                (Transport::Http { client, endpoint }, runtime)
            }
            #[cfg(feature = "otlp-grpc")]
            Protocol::Grpc => {
                let metadata = tonic::metadata::MetadataMap::from_headers(
                    crate::export::otlp::header_map(config)?,
                );
                let material = crate::export::otlp::tls_material(config)?;
                let runtime = crate::export::otlp::export_runtime("gorax-trace-grpc-metrics")?;
                let channel = crate::export::otlp::grpc_channel(config, &material, &runtime)?;
                (
                    Transport::Grpc {
                        channel,
                        metadata,
                        runtime: runtime.handle().clone(),
                        gzip: config.compression == crate::export::Compression::Gzip,
                    },
                    Some(ExportRuntime { runtime }),
                )
            }
            #[allow(unreachable_patterns)]
            other => return Err(BuildError::protocol_missing(other)),
        };
        Ok((
            Self {
                transport,
                exemplars,
                timeout: config.timeout,
                health: health.clone(),
            },
            runtime,
            health,
        ))
    }

    async fn send(&self, request: ExportMetricsServiceRequest) -> Result<(), String> {
        match &self.transport {
            #[cfg(feature = "otlp-http")]
            Transport::Http { client, endpoint } => {
                use opentelemetry_http::HttpClient as _;
                use prost::Message as _;
                let body = request.encode_to_vec();
                let request = http::Request::post(endpoint.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(opentelemetry_http::Bytes::from(body))
                    .map_err(|e| e.to_string())?;
                let response = client
                    .send_bytes(request)
                    .await
                    .map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("the collector answered {}", response.status()))
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
                // On the export runtime, like the span exporter's channel; the reader's thread
                // waits for the task.
                let task = runtime.spawn(async move {
                    match tokio::time::timeout(timeout, client.export(request)).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(status)) => Err(format!("the collector answered {status}")),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    }
                });
                task.await.map_err(|e| format!("export task: {e}"))?
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

impl PushMetricExporter for OtlpMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut request = ExportMetricsServiceRequest::from(metrics);
        add_exemplars(&mut request, &self.exemplars);
        match self.send(request).await {
            Ok(()) => {
                self.health.add(true);
                Ok(())
            }
            Err(why) => {
                self.health.add(false);
                Err(OTelSdkError::InternalFailure(why))
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
