//! OTLP exporters built from the resolved configuration ([`OtlpSettings`], filled by `init` from
//! the [`TraceConfig`](crate::TraceConfig)).
//!
//! gRPC (tonic) needs a tokio runtime when the channel is built and while it exports. Instead of
//! borrowing the application's runtime (which panics outside one, and deadlocks a flush on a
//! current-thread runtime), the gRPC exporter gets a one-thread runtime of its own, owned by the
//! [`Telemetry`](crate::Telemetry) and dropped after the provider shut down.
//!
//! Both protocols use exporters of our own ([`otlp_http`](super::otlp_http),
//! [`otlp_grpc`](super::otlp_grpc); why: the table in [`export`](super#why-our-own)): the request is encoded straight from the spans once per
//! export ([`encode`](super::encode)) and shared by its attempts. Retries follow
//! opentelemetry-otlp 0.33's rules ([`retry`](super::retry): HTTP 429, 502, 503, 504 and network
//! errors; gRPC `UNAVAILABLE`, and `RESOURCE_EXHAUSTED` with `RetryInfo`; `Retry-After`/`RetryInfo`
//! honoured; every wait bounded by the export timeout, a wait past it gives up at once). They are
//! counted here: the HTTP client (HTTP) or the interceptor (gRPC) counts requests, and every
//! request of one export after the first is a retry
//! ([`HealthSnapshot::export_retries`](super::HealthSnapshot::export_retries)). Requests are
//! counted per export (those made while its future is polled), so that exports in flight at
//! the same time do not count each other's.
//!
//! Compression (`TRACING_COMPRESSION`, [`Compression`]) is the configured one: over HTTP the
//! counting client compresses (gzip at its fastest level: ~5× less CPU than the default level
//! for ~13 % more bytes on OTLP bodies); over gRPC tonic compresses. Every exporter using these
//! transports is our own and hands over the plain protobuf.
//!
//! The transports are built by functions of their own ([`tls_material`], [`http_transport`],
//! [`grpc_channel`], [`grpc_metadata`]) so that an OTLP exporter of another signal can use the
//! same ones.

use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

#[cfg(feature = "otlp-grpc")]
use super::Compression;
use super::ExportHealth;
use super::batch::Target;
#[cfg(feature = "otlp-http")]
use super::transport::http_transport;
use super::transport::{OtlpSettings, counted, tls_material};
#[cfg(feature = "otlp-grpc")]
use super::transport::{export_runtime, grpc_channel, grpc_metadata};
use super::{BuildError, ExportRuntime, Protocol};

/// The OTLP exporter with what the batch processor reports about it: endpoint, protocol and
/// retries.
#[derive(Debug)]
pub(crate) struct OtlpExporter {
    inner: Inner,
    target: Target,
    health: ExportHealth,
}

/// The exporter of each protocol ([`otlp_http`](super::otlp_http),
/// [`otlp_grpc`](super::otlp_grpc)).
#[derive(Debug)]
enum Inner {
    #[cfg(feature = "otlp-http")]
    Http(super::otlp_http::HttpSpanExporter),
    #[cfg(feature = "otlp-grpc")]
    Grpc(super::otlp_grpc::GrpcSpanExporter),
}

impl OtlpExporter {
    pub(crate) fn health(&self) -> ExportHealth {
        self.health.clone()
    }

    /// Until when the collector asked for quiet (the batch processor keeps spans queued until
    /// then), if it still does.
    pub(crate) fn throttled_until(&self) -> Option<std::time::Instant> {
        match &self.inner {
            #[cfg(feature = "otlp-http")]
            Inner::Http(e) => e.throttled_until(),
            #[cfg(feature = "otlp-grpc")]
            Inner::Grpc(e) => e.throttled_until(),
        }
    }

    pub(crate) fn target(&self) -> Target {
        self.target.clone()
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let (result, requests) = match &self.inner {
            #[cfg(feature = "otlp-http")]
            Inner::Http(e) => counted(e.export(batch)).await,
            #[cfg(feature = "otlp-grpc")]
            Inner::Grpc(e) => counted(e.export(batch)).await,
        };
        self.health.add_retries(requests.saturating_sub(1));
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match &self.inner {
            #[cfg(feature = "otlp-http")]
            Inner::Http(e) => e.shutdown_with_timeout(timeout),
            #[cfg(feature = "otlp-grpc")]
            Inner::Grpc(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match &self.inner {
            #[cfg(feature = "otlp-http")]
            Inner::Http(e) => e.force_flush(),
            #[cfg(feature = "otlp-grpc")]
            Inner::Grpc(e) => e.force_flush(),
        }
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        match &mut self.inner {
            #[cfg(feature = "otlp-http")]
            Inner::Http(e) => e.set_resource(resource),
            #[cfg(feature = "otlp-grpc")]
            Inner::Grpc(e) => e.set_resource(resource),
        }
    }
}

/// A built OTLP exporter and, for gRPC and HTTPS, the runtime that drives its connections.
pub(crate) struct Otlp {
    pub(crate) exporter: OtlpExporter,
    pub(crate) runtime: Option<ExportRuntime>,
}

pub(crate) fn build(config: &OtlpSettings<'_>) -> Result<Otlp, BuildError> {
    let endpoint = config.endpoint;
    let timeout = config.timeout;
    let material = tls_material(config)?;
    let wrap = |inner| OtlpExporter {
        inner,
        target: Target {
            endpoint: endpoint.to_owned(),
            protocol: config.protocol.to_string(),
        },
        health: ExportHealth::default(),
    };
    match config.protocol {
        #[cfg(feature = "otlp-http")]
        Protocol::HttpProtobuf => {
            let (client, runtime) = http_transport(config, &material)?;
            let exporter = super::otlp_http::HttpSpanExporter::new(client, endpoint, timeout)
                .map_err(|why| BuildError::Exporter(super::ExporterError::new(why)))?;
            Ok(Otlp {
                exporter: wrap(Inner::Http(exporter)),
                runtime,
            })
        }
        #[cfg(feature = "otlp-grpc")]
        Protocol::Grpc => {
            let runtime = export_runtime("gorax-trace-grpc")?;
            let channel = grpc_channel(config, &material, &runtime)?;
            let exporter = super::otlp_grpc::GrpcSpanExporter::new(
                channel,
                Box::new(grpc_metadata(config)?),
                config.compression == Compression::Gzip,
                timeout,
                endpoint,
            );
            Ok(Otlp {
                exporter: wrap(Inner::Grpc(exporter)),
                runtime: Some(ExportRuntime { runtime }),
            })
        }
        #[allow(unreachable_patterns)]
        other => Err(BuildError::protocol_missing(other)),
    }
}
