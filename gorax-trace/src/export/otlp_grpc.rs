//! The OTLP/gRPC span exporter: the same encoding as over HTTP ([`encode`](super::encode)),
//! sent as the `TraceService/Export` unary call on the channel and with the metadata of
//! [`otlp`](super::otlp), through a codec that writes the encoded bytes as they are. The request
//! is encoded once and shared by the attempts: opentelemetry-otlp's tonic exporter clones the
//! whole `Vec<SpanData>` and converts it again for every attempt.
//!
//! Retries ([`retry`](super::retry)), classified as opentelemetry-otlp does: `UNAVAILABLE` backs
//! off (or waits for a `RetryInfo` delay), `RESOURCE_EXHAUSTED` is retried only with a
//! `RetryInfo`, `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE` and `DATA_LOSS` back
//! off, every other code fails at once.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use super::encode::{self, EncodedResource};
use super::retry::{Failure, Retry, with_retries};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Writes a request encoded beforehand; reads and discards the response (its only content is
/// an optional partial success, which opentelemetry-otlp logs only with `internal-logs`).
#[derive(Debug, Clone, Copy)]
struct Encoded;

impl Codec for Encoded {
    type Encode = Bytes;
    type Decode = ();
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
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
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
}

impl std::fmt::Debug for GrpcSpanExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcSpanExporter")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How opentelemetry-otlp retries a status (`retry_classification.rs`).
fn classify(status: &tonic::Status) -> Retry {
    use tonic::Code;
    use tonic_types::StatusExt;
    let delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .map(|d| d.min(Duration::from_secs(600)));
    match status.code() {
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
fn message(status: &tonic::Status) -> String {
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
        }
    }

    async fn send_once(&self, body: &Bytes) -> Result<(), Failure> {
        let fail = |status: tonic::Status| Failure {
            retry: classify(&status),
            message: message(&status),
        };
        let (mut client, request) = {
            let mut guard = self.client.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((client, interceptor)) = guard.as_mut() else {
                return Err(Failure {
                    retry: Retry::Never,
                    message: "exporter already shutdown".to_owned(),
                });
            };
            let (metadata, extensions, ()) = interceptor(tonic::Request::new(()))
                .map_err(fail)?
                .into_parts();
            let request = tonic::Request::from_parts(metadata, extensions, body.clone());
            (client.clone(), request)
        };
        client.ready().await.map_err(|e| Failure {
            retry: Retry::Backoff,
            message: format!("OTLP/gRPC channel not ready: {e}"),
        })?;
        let path = http::uri::PathAndQuery::from_static(EXPORT);
        client
            .unary::<Bytes, (), _>(request, path, Encoded)
            .await
            .map(drop)
            .map_err(fail)
    }
}

impl SpanExporter for GrpcSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = Bytes::from(encode::request(&batch, &self.resource));
        drop(batch);
        with_retries(self.timeout, || self.send_once(&body))
            .await
            .map_err(OTelSdkError::InternalFailure)
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
