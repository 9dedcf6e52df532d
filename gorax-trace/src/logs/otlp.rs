//! The OTLP log exporter: opentelemetry-proto's transform of the SDK's records into an
//! `ExportLogsServiceRequest`, the record limits and URL redaction applied to it, sent over the
//! span exporter's transports with the same retry rules and the logs signal's own
//! [`Gate`](crate::export::gate::Gate) (refused, throttled), reading the answer's
//! `partial_success.rejected_log_records`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue as ProtoAnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord};

use super::processor::LogSink;
use crate::export::gate::{Gate, Signal};
use crate::export::retry::with_retries;
use crate::export::transport::OtlpSettings;
use crate::export::{BuildError, ExportRuntime, LossKind};

use crate::export::transport::SignalTransport as Transport;

/// The limits applied to each record before it is sent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordLimits {
    /// Attributes kept per record.
    pub(crate) attributes: usize,
    /// Characters kept per string attribute value and body.
    pub(crate) value_length: usize,
}

/// Exports log records over OTLP/HTTP or OTLP/gRPC.
pub(crate) struct OtlpLogExporter {
    transport: Transport,
    timeout: Duration,
    gate: Gate,
    limits: RecordLimits,
}

impl OtlpLogExporter {
    pub(crate) fn build(
        config: &OtlpSettings<'_>,
        limits: RecordLimits,
    ) -> Result<(Self, Option<ExportRuntime>), BuildError> {
        let (transport, runtime) = Transport::build(config, "gorax-trace-grpc-logs")?;
        Ok((
            Self {
                transport,
                timeout: config.timeout,
                gate: Gate::new(Signal::Logs, config.endpoint),
                limits,
            },
            runtime,
        ))
    }

    async fn send(&self, request: &ExportLogsServiceRequest) -> Result<u64, (LossKind, String)> {
        let rejected = AtomicU64::new(0);
        let result = match &self.transport {
            #[cfg(feature = "otlp-http")]
            Transport::Http { client, endpoint } => {
                use prost::Message as _;
                let body = opentelemetry_http::Bytes::from(request.encode_to_vec());
                with_retries(self.timeout, &self.gate, || async {
                    let response = crate::export::transport::http_post(
                        client,
                        endpoint,
                        &body,
                        self.timeout,
                        Signal::Logs,
                    )
                    .await?;
                    rejected.store(rejected_records(response.body()), Ordering::Relaxed);
                    Ok(())
                })
                .await
            }
            #[cfg(feature = "otlp-grpc")]
            Transport::Grpc {
                channel,
                metadata,
                runtime,
                gzip,
            } => {
                use crate::export::retry::{Failure, Retry};
                use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
                with_retries(self.timeout, &self.gate, || async {
                    let mut client = LogsServiceClient::new(channel.clone());
                    if *gzip {
                        client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                    }
                    let mut call = tonic::Request::new(request.clone());
                    *call.metadata_mut() = metadata.clone();
                    let timeout = self.timeout;
                    // On the export runtime; this thread waits for the task.
                    let task = runtime.spawn(async move {
                        tokio::time::timeout(timeout, client.export(call)).await
                    });
                    match task.await {
                        Ok(Ok(Ok(response))) => {
                            let n = response
                                .into_inner()
                                .partial_success
                                .map_or(0, |p| u64::try_from(p.rejected_log_records).unwrap_or(0));
                            rejected.store(n, Ordering::Relaxed);
                            Ok(())
                        }
                        Ok(Ok(Err(status))) => {
                            let kind = match status.code() {
                                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                                    LossKind::Timeout
                                }
                                _ => LossKind::Failed,
                            };
                            Err(Failure::new(
                                crate::export::otlp_grpc::classify(&status),
                                kind,
                                crate::export::otlp_grpc::message(&status),
                            ))
                        }
                        Ok(Err(_)) => Err(Failure::new(
                            Retry::Backoff,
                            LossKind::Timeout,
                            format!("no answer within {} ms", timeout.as_millis()),
                        )),
                        Err(e) => Err(Failure::new(
                            Retry::Never,
                            LossKind::Failed,
                            format!("export task: {e}"),
                        )),
                    }
                })
                .await
            }
        };
        result
            .map(|()| rejected.load(Ordering::Relaxed))
            .map_err(|lost| (lost.kind, lost.message))
    }
}

impl LogSink for OtlpLogExporter {
    fn export(
        &self,
        batch: &[(&SdkLogRecord, &InstrumentationScope)],
        resource: &Resource,
    ) -> Result<u64, (LossKind, String)> {
        use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
        use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
        let logs = LogBatch::new(batch);
        let mut request = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(
                &logs,
                &ResourceAttributesWithSchema::from(resource),
            ),
        };
        limit(&mut request, self.limits);
        futures_executor::block_on(self.send(&request))
    }
}

/// Applies the attribute count and value length limits, and redacts every URL in string bodies
/// and attribute values ([`redact_text`](crate::httpconv::redact_text)).
fn limit(request: &mut ExportLogsServiceRequest, limits: RecordLimits) {
    fn value(v: &mut Option<ProtoAnyValue>, max: usize) {
        if let Some(ProtoAnyValue {
            value: Some(ProtoValue::StringValue(s)),
        }) = v
        {
            let redacted = crate::httpconv::redact_text(s);
            let cut = crate::httpconv::truncate_value(&redacted, max);
            if cut.len() != s.len() || cut != s.as_str() {
                *s = cut.into_owned();
            }
        }
    }
    for record in request
        .resource_logs
        .iter_mut()
        .flat_map(|rl| &mut rl.scope_logs)
        .flat_map(|sl| &mut sl.log_records)
    {
        if record.attributes.len() > limits.attributes {
            let extra = record.attributes.len() - limits.attributes;
            record.attributes.truncate(limits.attributes);
            record.dropped_attributes_count += u32::try_from(extra).unwrap_or(u32::MAX);
        }
        value(&mut record.body, limits.value_length);
        for kv in &mut record.attributes {
            value(&mut kv.value, limits.value_length);
        }
    }
}

/// The records an OTLP/HTTP answer (`ExportLogsServiceResponse`) says were rejected.
#[cfg(feature = "otlp-http")]
fn rejected_records(body: &[u8]) -> u64 {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    use prost::Message as _;
    if body.is_empty() {
        return 0;
    }
    ExportLogsServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| u64::try_from(p.rejected_log_records).unwrap_or(0))
}
