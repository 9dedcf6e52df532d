//! The OTLP/gRPC span exporter: the same encoding as over HTTP ([`encode`](super::encode)),
//! sent as the `TraceService/Export` unary call on the channel and with the metadata of
//! [`otlp`](super::otlp), through a codec that writes the encoded bytes as they are. The request
//! is encoded once and shared by the attempts (why our own: the table in
//! [`export`](super#why-our-own)).
//!
//! Retries ([`retry`](super::retry)), classified as opentelemetry-otlp does: `UNAVAILABLE` backs
//! off (or waits for a `RetryInfo` delay), `RESOURCE_EXHAUSTED` is retried only with a
//! `RetryInfo`, `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE` and `DATA_LOSS` back
//! off, every other code fails at once. `UNIMPLEMENTED` means the collector does not take traces
//! ([`gate`](super::gate)): no request for a while. `DEADLINE_EXCEEDED` and `CANCELLED` (tonic's
//! own timeout) count as a timeout. An OK answer's `partial_success.rejected_spans` counts as
//! lost (rejected), not delivered.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use super::encode::{self, EncodedResource};
use super::gate::{self, Gate, Signal};
use super::health::LossKind;
use super::retry::{Failure, Retry, with_retries};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Writes a request encoded beforehand; reads the response's `partial_success.rejected_spans`
/// (opentelemetry-otlp 0.33 only logs it, with `internal-logs`).
#[derive(Debug, Clone, Copy)]
struct Encoded;

impl Codec for Encoded {
    type Encode = Bytes;
    type Decode = u64;
    type Encoder = Encoded;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Self::Encoder {
        Encoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        Encoded
    }
}

impl Encoder for Encoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Encoded {
    type Item = u64;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<u64>, tonic::Status> {
        let body = src.copy_to_bytes(src.remaining());
        Ok(Some(encode::rejected_spans(&body)))
    }
}

/// A metadata interceptor (see [`grpc_metadata`](super::otlp::grpc_metadata)).
pub(crate) type Interceptor =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>;

/// Exports spans as OTLP/gRPC `Export` calls.
pub(crate) struct GrpcSpanExporter {
    /// `None` after shutdown.
    client: Mutex<Option<(tonic::client::Grpc<Channel>, Interceptor)>>,
    timeout: Duration,
    resource: EncodedResource,
    gate: Gate,
}

impl std::fmt::Debug for GrpcSpanExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcSpanExporter")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How opentelemetry-otlp retries a status (`retry_classification.rs`).
pub(crate) fn classify(status: &tonic::Status) -> Retry {
    use tonic::Code;
    use tonic_types::StatusExt;
    let delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .map(|d| d.min(Duration::from_secs(600)));
    match status.code() {
        Code::Unimplemented => Retry::Refused("gRPC UNIMPLEMENTED".to_owned()),
        Code::ResourceExhausted => delay.map_or(Retry::Never, Retry::After),
        Code::Unavailable => delay
            .filter(|d| !d.is_zero())
            .map_or(Retry::Backoff, Retry::After),
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Retry::Backoff,
        _ => Retry::Never,
    }
}

/// The error of a failed export: the code, and the source chain of a locally made status
/// (connect errors), never the server's message (it may echo credentials).
pub(crate) fn message(status: &tonic::Status) -> String {
    let mut message = format!(
        "OTLP/gRPC export failed with gRPC code: {:?}",
        status.code()
    );
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

impl GrpcSpanExporter {
    pub(crate) fn new(
        channel: Channel,
        interceptor: Interceptor,
        gzip: bool,
        timeout: Duration,
        endpoint: &str,
    ) -> Self {
        let mut client = tonic::client::Grpc::new(channel);
        if gzip {
            let encoding = tonic::codec::CompressionEncoding::Gzip;
            client = client.send_compressed(encoding).accept_compressed(encoding);
        }
        Self {
            client: Mutex::new(Some((client, interceptor))),
            timeout,
            resource: EncodedResource::default(),
            gate: Gate::new(Signal::Traces, endpoint),
        }
    }

    /// Until when the collector asked for quiet, if it still does.
    pub(crate) fn throttled_until(&self) -> Option<std::time::Instant> {
        self.gate.throttled_until()
    }

    /// Sends one call; `Ok` carries the spans the collector rejected in its answer.
    async fn send_once(
        &self,
        body: &Bytes,
        rejected: &std::sync::atomic::AtomicU64,
    ) -> Result<(), Failure> {
        let fail = |status: tonic::Status| {
            let kind = match status.code() {
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => LossKind::Timeout,
                _ => LossKind::Failed,
            };
            Failure::new(classify(&status), kind, message(&status))
        };
        let (mut client, request) = {
            let mut guard = self.client.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((client, interceptor)) = guard.as_mut() else {
                return Err(Failure::new(
                    Retry::Never,
                    LossKind::Failed,
                    "exporter already shutdown",
                ));
            };
            let (metadata, extensions, ()) = interceptor(tonic::Request::new(()))
                .map_err(fail)?
                .into_parts();
            let request = tonic::Request::from_parts(metadata, extensions, body.clone());
            (client.clone(), request)
        };
        client.ready().await.map_err(|e| {
            Failure::new(
                Retry::Backoff,
                LossKind::Failed,
                format!("OTLP/gRPC channel not ready: {e}"),
            )
        })?;
        let path = http::uri::PathAndQuery::from_static(EXPORT);
        let response = client
            .unary::<Bytes, u64, _>(request, path, Encoded)
            .await
            .map_err(fail)?;
        rejected.store(response.into_inner(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl SpanExporter for GrpcSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = Bytes::from(encode::request(&batch, &self.resource));
        drop(batch);
        let rejected = std::sync::atomic::AtomicU64::new(0);
        match with_retries(self.timeout, &self.gate, || {
            self.send_once(&body, &rejected)
        })
        .await
        {
            Ok(()) => {
                if rejected.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                    gate::report_rejected(rejected.load(std::sync::atomic::Ordering::Relaxed));
                }
                Ok(())
            }
            Err(lost) => {
                gate::report_loss(lost.kind);
                Err(OTelSdkError::InternalFailure(lost.message))
            }
        }
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        super::retry::shut_down(&self.client)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_opentelemetry_otlp() {
        use tonic::Code;
        let retry = |code| classify(&tonic::Status::new(code, "x"));
        assert!(matches!(retry(Code::Unavailable), Retry::Backoff));
        assert!(matches!(retry(Code::ResourceExhausted), Retry::Never));
        assert!(matches!(retry(Code::DeadlineExceeded), Retry::Backoff));
        assert!(matches!(retry(Code::PermissionDenied), Retry::Never));
        let throttled = {
            use tonic_types::{ErrorDetails, StatusExt};
            tonic::Status::with_error_details(
                Code::ResourceExhausted,
                "slow down",
                ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
            )
        };
        assert!(matches!(classify(&throttled), Retry::After(d) if d == Duration::from_secs(2)));
        assert_eq!(
            message(&tonic::Status::unavailable("token=secret")),
            "OTLP/gRPC export failed with gRPC code: Unavailable"
        );
    }
}
