//! The Prometheus scrape: the SDK's aggregates, read on each scrape by a `ManualReader` and
//! written in the OpenMetrics text format by `prometheus-client` (the Prometheus project's
//! Rust client). Why not opentelemetry-prometheus: the table in [`metrics`](super#why-our-own).
//!
//! Names follow the OpenTelemetry-to-Prometheus rules: dots become underscores and the unit
//! becomes a suffix (`http.server.request.duration` in `s` is
//! `http_server_request_duration_seconds`), counters end in `_total`, attribute keys become
//! labels with underscores.
//!
//! Exemplars are not in this output: `prometheus-client` 0.26 builds them only inside its own
//! metric types (its `Exemplar` has no public constructor), so a collector of foreign aggregates
//! cannot attach them. They are in the OTLP export.

use std::sync::Arc;

#[cfg(test)]
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, Temporality};

use super::reader::SharedReader;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// A Prometheus scrape of the metrics of one [`Telemetry`](crate::Telemetry): mount
/// [`render`](Self::render) on a route (`gorax_trace_server::prometheus_route` does it for
/// axum). Cheap to clone.
///
/// ```
/// use gorax_trace::config::{ExporterKind, TraceConfig};
/// use gorax_trace::metrics::MetricsExporters;
///
/// let config = TraceConfig::new()
///     .with_exporter(ExporterKind::None)
///     .with_metrics(true)
///     .with_metrics_exporters(MetricsExporters::NONE.with_prometheus(true));
/// let telemetry = gorax_trace::Telemetry::new(&config).unwrap();
/// let scrape = telemetry.prometheus().unwrap();
/// assert!(scrape.render().contains("# EOF"));
/// ```
#[derive(Clone, Debug)]
pub struct PrometheusScrape {
    reader: Arc<ManualReader>,
}

/// The `Content-Type` of [`PrometheusScrape::render`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl PrometheusScrape {
    /// A scrape and the reader to register with the meter provider.
    pub(crate) fn new() -> (Self, impl MetricReader) {
        let reader = Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        );
        (
            Self {
                reader: reader.clone(),
            },
            SharedReader(reader),
        )
    }

    /// Collects into `rm` (for tests of the aggregates).
    #[cfg(test)]
    pub(crate) fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.reader.collect(rm)
    }

    /// The `Content-Type` to answer with.
    pub const CONTENT_TYPE: &'static str = OPENMETRICS_CONTENT_TYPE;

    /// Collects the metrics now and writes them in the OpenMetrics text format (ends in
    /// `# EOF`). After the provider shut down, the output holds no metrics.
    pub fn render(&self) -> String {
        let mut rm = ResourceMetrics::default();
        let collected = self.reader.collect(&mut rm).is_ok();
        let mut registry = Registry::default();
        if collected {
            registry.register_collector(Box::new(Collected(rm)));
        }
        let mut out = String::with_capacity(4096);
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// One collection, as a `prometheus-client` collector.
#[derive(Debug)]
struct Collected(ResourceMetrics);

/// `name` with every character Prometheus does not allow replaced by `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn unit(unit: &str) -> Option<Unit> {
    match unit {
        "" => None,
        "s" => Some(Unit::Seconds),
        "By" => Some(Unit::Bytes),
        "1" => Some(Unit::Ratios),
        // Annotations such as `{request}` are not units in Prometheus.
        u if u.starts_with('{') => None,
        other => Some(Unit::Other(sanitize(other))),
    }
}

fn labels<'a>(attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Vec<(String, String)> {
    attrs
        .map(|kv| (sanitize(kv.key.as_str()), kv.value.to_string()))
        .collect()
}

impl prometheus_client::collector::Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for scope in self.0.scope_metrics() {
            for metric in scope.metrics() {
                let name = sanitize(metric.name());
                let unit = unit(metric.unit());
                let help = metric.description();
                match metric.data() {
                    AggregatedMetrics::F64(data) => {
                        encode_data(&mut encoder, &name, help, unit.as_ref(), data, |v| v)?
                    }
                    AggregatedMetrics::U64(data) => {
                        encode_data(&mut encoder, &name, help, unit.as_ref(), data, |v| v as f64)?
                    }
                    AggregatedMetrics::I64(data) => {
                        encode_data(&mut encoder, &name, help, unit.as_ref(), data, |v| v as f64)?
                    }
                }
            }
        }
        Ok(())
    }
}

fn encode_data<T: Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    data: &MetricData<T>,
    to_f64: impl Fn(T) -> f64,
) -> Result<(), std::fmt::Error> {
    match data {
        MetricData::Histogram(h) => {
            let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Histogram)?;
            for point in h.data_points() {
                let labels = labels(point.attributes());
                let buckets = buckets(point);
                family
                    .encode_family(&labels)?
                    .encode_histogram::<Vec<(String, String)>>(
                        to_f64(point.sum()),
                        point.count(),
                        &buckets,
                        None,
                    )?;
            }
        }
        MetricData::Sum(s) => {
            let kind = if s.is_monotonic() {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut family = encoder.encode_descriptor(name, help, unit, kind)?;
            for point in s.data_points() {
                let labels = labels(point.attributes());
                let value = to_f64(point.value());
                let mut m = family.encode_family(&labels)?;
                if s.is_monotonic() {
                    m.encode_counter::<Vec<(String, String)>, f64, f64>(&value, None)?;
                } else {
                    m.encode_gauge(&value)?;
                }
            }
        }
        MetricData::Gauge(g) => {
            let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
            for point in g.data_points() {
                let labels = labels(point.attributes());
                family
                    .encode_family(&labels)?
                    .encode_gauge(&to_f64(point.value()))?;
            }
        }
        // Not produced by the family's instruments (no exponential-histogram view).
        MetricData::ExponentialHistogram(_) => {}
    }
    Ok(())
}

/// `(upper bound, count)` per bucket, the last one `+Inf`, as `prometheus-client` takes them.
fn buckets<T>(point: &HistogramDataPoint<T>) -> Vec<(f64, u64)> {
    point
        .bounds()
        .chain(std::iter::once(f64::INFINITY))
        .zip(point.bucket_counts())
        .collect()
}
