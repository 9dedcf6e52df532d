//! The OTLP/HTTP span exporter: the request body encoded straight from the spans
//! ([`encode`](super::encode); why our own: the table in [`export`](super#why-our-own)), sent by the counting HTTP client of [`otlp`](super::otlp) (TLS, headers,
//! compression, request count), with opentelemetry-otlp 0.33's retry rules.
//!
//! Retries ([`retry`](super::retry)), as opentelemetry-otlp classifies them: HTTP 429 and 503
//! wait for `Retry-After` (seconds or an HTTP date, at most 600 s) when given, else back off
//! like 502, 504 and network errors; other statuses are not retried. The encoded body is shared
//! by the attempts (no copy per attempt). A 404, 405 or 501 means the endpoint does not take
//! traces ([`gate`](super::gate)): no retry, and no request for a while. A 2xx answer's
//! `partial_success.rejected_spans` counts as lost (rejected), not delivered.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_http::Bytes;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::encode::{self, EncodedResource};
use super::gate::{self, Gate, Signal};
use super::health::LossKind;
use super::retry::{Failure, Retry, with_retries};
use super::transport::CountingClient;

/// opentelemetry-otlp's limit of a request body.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Exports spans as OTLP/HTTP protobuf requests to one endpoint.
#[derive(Debug)]
pub(crate) struct HttpSpanExporter {
    /// `None` after shutdown.
    client: Mutex<Option<Arc<CountingClient>>>,
    endpoint: http::Uri,
    timeout: Duration,
    resource: EncodedResource,
    gate: Gate,
}

impl HttpSpanExporter {
    pub(crate) fn new(
        client: CountingClient,
        endpoint: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let gate = Gate::new(Signal::Traces, endpoint);
        let endpoint: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("invalid endpoint {endpoint:?}: {e}"))?;
        Ok(Self {
            client: Mutex::new(Some(Arc::new(client))),
            gate,
            endpoint,
            timeout,
            resource: EncodedResource::default(),
        })
    }

    /// Until when the collector asked for quiet, if it still does.
    pub(crate) fn throttled_until(&self) -> Option<std::time::Instant> {
        self.gate.throttled_until()
    }

    /// Sends one request; `Ok` carries the spans the collector rejected in its answer.
    async fn send_once(
        &self,
        body: &Bytes,
        rejected: &std::sync::atomic::AtomicU64,
    ) -> Result<(), Failure> {
        let client = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                Failure::new(Retry::Never, LossKind::Failed, "Exporter already shutdown")
            })?;
        let response = super::transport::http_post(
            &client,
            &self.endpoint,
            body,
            self.timeout,
            Signal::Traces,
        )
        .await?;
        rejected.store(
            super::encode::rejected_spans(response.body()),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }
}

impl SpanExporter for HttpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = encode::request(&batch, &self.resource);
        drop(batch);
        if body.len() > MAX_BODY {
            gate::report_loss(LossKind::Failed);
            return Err(OTelSdkError::InternalFailure(format!(
                "OTLP HTTP request body is {} bytes, exceeding the limit of {MAX_BODY} bytes; \
                 the spans are dropped (reduce the batch size or the span size)",
                body.len()
            )));
        }
        let body = Bytes::from(body);
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
    use crate::export::transport::retry_after;

    #[test]
    fn retry_after_as_seconds_or_date() {
        use std::time::SystemTime;
        assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("100000"), Some(Duration::from_secs(600)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(later);
        let d = retry_after(&date).unwrap();
        assert!(
            (Duration::from_secs(118)..=Duration::from_secs(120)).contains(&d),
            "{d:?}"
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    /// Prints the body size and gzip time per span at the fastest and the default level for
    /// batches of server spans (a measurement, not a check: `cargo test --release -p
    /// gorax-trace --lib gzip_levels -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn gzip_levels() {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
        use std::io::Write;
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = provider.tracer("gorax-trace");
        for i in 0..512 {
            let mut span = tracer
                .span_builder("POST /api/v1/workflows/{id}/execute")
                .with_kind(SpanKind::Server)
                .start(&tracer);
            span.set_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new(
                    "url.path",
                    format!("/api/v1/workflows/{}/execute", 1000 + i * 7),
                ),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("http.route", "/api/v1/workflows/{id}/execute"),
                KeyValue::new(
                    "http.response.status_code",
                    if i % 50 == 0 { 500 } else { 200 },
                ),
                KeyValue::new("server.address", "workflows.internal"),
                KeyValue::new("network.protocol.version", "1.1"),
                KeyValue::new("client.address", format!("10.0.{}.{}", i % 7, i % 251)),
                KeyValue::new(
                    "user_agent.original",
                    [
                        "gorax-client/1.4 reqwest/0.13",
                        "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
                    ][i % 2],
                ),
            ]);
            span.end();
        }
        let spans = exporter.get_finished_spans().unwrap();
        let body = encode::request(
            &spans,
            &EncodedResource::new(
                &opentelemetry_sdk::Resource::builder_empty()
                    .with_service_name("billing")
                    .build(),
            ),
        );
        println!("uncompressed {:.0} bytes/span", body.len() as f64 / 512.0);
        for (name, level) in [
            ("fast", flate2::Compression::fast()),
            ("default", flate2::Compression::default()),
        ] {
            let rounds = 200;
            let start = std::time::Instant::now();
            let mut size = 0;
            for _ in 0..rounds {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
                e.write_all(&body).unwrap();
                size = e.finish().unwrap().len();
            }
            let per_span = start.elapsed().as_nanos() as f64 / (rounds * 512) as f64;
            println!(
                "gzip {name}: {:.0} bytes/span, {per_span:.0} ns/span",
                size as f64 / 512.0
            );
        }
        let start = std::time::Instant::now();
        for _ in 0..200 {
            std::hint::black_box(encode::request(&spans, &EncodedResource::default()));
        }
        println!(
            "encode: {:.0} ns/span",
            start.elapsed().as_nanos() as f64 / (200 * 512) as f64
        );
        // The SDK path, for comparison: clone (its input is consumed; timed apart and taken
        // off), conversion into proto structs, prost encoding.
        use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
        use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
        use prost::Message;
        let resource = ResourceAttributesWithSchema::default();
        let start = std::time::Instant::now();
        for _ in 0..200 {
            std::hint::black_box(spans.clone());
        }
        let clone = start.elapsed();
        let start = std::time::Instant::now();
        for _ in 0..200 {
            let request =
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
                    resource_spans: group_spans_by_resource_and_scope(spans.clone(), &resource),
                };
            std::hint::black_box(request.encode_to_vec());
        }
        let sdk = start.elapsed().saturating_sub(clone);
        println!(
            "SDK conversion + prost: {:.0} ns/span (clone {:.0} ns/span)",
            sdk.as_nanos() as f64 / (200 * 512) as f64,
            clone.as_nanos() as f64 / (200 * 512) as f64
        );
    }
}
