//! Turning a [`TraceConfig`] into a running [`Telemetry`].

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::config::{ConfigError, ExporterKind, TraceConfig};
use crate::export::keep::{KeepProcessor, KeepSampler};
use crate::export::{AnyExporter, BatchProcessor, ConsoleExporter, ExportHealth};
use crate::telemetry::{MetricsPipeline, Settings, Telemetry};
use crate::{sampling, semconv};

/// The OTLP exporter, in builds that have one.
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
type OtlpExporterBox = Box<crate::export::otlp::OtlpExporter>;
#[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
type OtlpExporterBox = std::convert::Infallible;

/// Why [`init`] failed. Its `Debug` form is its message, as for
/// [`ConfigError`](crate::config::ConfigError) (a `main` returning `Result` prints it).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A setting given in code does not validate (see [`TraceConfig::validate`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The exporter could not be built (bad endpoint, TLS, headers); the underlying error is
    /// its [`source`](std::error::Error::source).
    #[error("cannot build the span exporter: {0}")]
    Exporter(#[source] crate::export::ExporterError),
    /// The configuration asks for something whose cargo feature of gorax-trace is off.
    #[error(
        "{what} needs the `{feature}` cargo feature of gorax-trace; enable it with \
         `gorax-trace = {{ version = \"0.1\", features = [\"{feature}\"] }}` \
         (or `cargo add gorax-trace --features {feature}`)"
    )]
    FeatureMissing {
        /// What the configuration asks for, e.g. `OTLP/gRPC`.
        what: &'static str,
        /// The cargo feature that provides it, e.g. `otlp-grpc`.
        feature: &'static str,
    },
}

impl std::fmt::Debug for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<crate::export::BuildError> for InitError {
    fn from(e: crate::export::BuildError) -> Self {
        match e {
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            crate::export::BuildError::Exporter(why) => Self::Exporter(why),
            crate::export::BuildError::FeatureMissing { what, feature } => {
                Self::FeatureMissing { what, feature }
            }
        }
    }
}

/// Starts tracing as `config` says and installs it ([`Telemetry::install`]): default-built
/// adapters, the span helpers and third-party OpenTelemetry code record with it.
///
/// With tracing disabled, a provider that records nothing is installed, and context still
/// propagates from incoming requests to outgoing calls.
///
/// ```
/// use gorax_trace::config::{ExporterKind, TraceConfig};
///
/// let config = TraceConfig::new().with_exporter(ExporterKind::None);
/// let telemetry = gorax_trace::init(config).unwrap();
/// // ... serve requests ...
/// telemetry.shutdown().unwrap(); // flushes, with a timeout (dropping does the same)
/// ```
pub fn init(config: TraceConfig) -> Result<Telemetry, InitError> {
    let telemetry = Telemetry::new(&config)?;
    telemetry.install();
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let exporters = config.exporters();
    let exporter = exporters
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    match (
        config.enabled(),
        exporters.contains(&ExporterKind::Otlp),
        config.otlp_endpoint(),
    ) {
        (false, _, _) => {
            tracing::info!("distributed tracing disabled; trace context still propagates")
        }
        (true, true, Some(endpoint)) => tracing::info!(
            service.name = config.service_name(),
            %exporter,
            endpoint,
            protocol = %config.protocol(),
            sampler = %config.sampler(),
            "distributed tracing enabled"
        ),
        (true, _, _) => tracing::info!(
            service.name = config.service_name(),
            %exporter,
            sampler = %config.sampler(),
            "distributed tracing enabled"
        ),
    }
    #[cfg(feature = "viewer")]
    if let Some(url) = telemetry.viewer().and_then(crate::viewer::Viewer::url) {
        tracing::info!(%url, "trace viewer serving");
    }
    Ok(telemetry)
}

impl Telemetry {
    /// Builds tracing as `config` says, without installing it (e.g. a second provider in a
    /// test, side by side with the installed one). [`init`] is `new` plus
    /// [`install`](Self::install).
    pub fn new(config: &TraceConfig) -> Result<Self, InitError> {
        config.validate()?;
        let timeout: Duration = config.shutdown_timeout();
        let resource = resource(config);
        let mut health = ExportHealth::default();
        let mut runtimes = Vec::new();
        let mut keep_stats = None;
        let mut runtime = None;
        #[cfg(feature = "viewer")]
        let mut viewer = None;
        let settings = Settings::default()
            .with_propagators(config.propagators())
            .with_http_semconv(config.http_semconv())
            .with_rpc_semconv(config.rpc_semconv())
            .with_messaging_semconv(config.messaging_semconv())
            .with_route_attributes(config.enabled() && !config.sampling_rules().is_empty())
            .with_attribute_value_length_limit(config.attribute_value_length_limit())
            .with_trusted_peers(config.trusted_peers().clone())
            .with_exception_signal(config.exception_signal())
            // Tracing disabled is parent-based too (`sampling::disabled`); rules and keep mode
            // may record what the parent did not sample.
            .with_drops_unsampled_children(
                !config.enabled()
                    || (config.sampling_rules().is_empty()
                        && !config.keep().is_enabled()
                        && config.sampler().drops_children_of_unsampled_parents()),
            );

        let provider = if !config.enabled() {
            SdkTracerProvider::builder()
                .with_sampler(sampling::disabled())
                .with_resource(resource)
                .build()
        } else {
            let builder = SdkTracerProvider::builder().with_resource(resource);
            let exporters = config.exporters();
            let console = exporters.contains(&ExporterKind::Console)
                // OTLP without an endpoint prints instead, as it always did.
                || (exporters.contains(&ExporterKind::Otlp) && config.otlp_endpoint().is_none());
            let otlp: Option<OtlpExporterBox> = match (
                exporters.contains(&ExporterKind::Otlp),
                config.otlp_endpoint(),
            ) {
                (true, Some(endpoint)) => {
                    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
                    {
                        let otlp =
                            crate::export::otlp::build(&crate::export::transport::OtlpSettings {
                                endpoint: &endpoint,
                                protocol: config.protocol(),
                                timeout: config.batch().export_timeout,
                                headers: config.headers(),
                                compression: config.compression(),
                                tls: config.uses_tls(),
                                #[cfg(feature = "tls")]
                                certificate: config.certificate(),
                                #[cfg(feature = "tls")]
                                client_certificate: config.client_certificate(),
                            })?;
                        runtime = otlp.runtime;
                        Some(Box::new(otlp.exporter))
                    }
                    #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
                    {
                        let _ = (endpoint, &mut runtime);
                        return Err(
                            crate::export::BuildError::protocol_missing(config.protocol()).into(),
                        );
                    }
                }
                _ => None,
            };
            // With JSON log lines on stderr, the tree goes to stdout.
            let console_exporter = || match config.log_format() {
                crate::config::LogFormat::Json => {
                    ConsoleExporter::new().with_writer(std::io::stdout())
                }
                _ => ConsoleExporter::new(),
            };
            let exporter = match (console, otlp) {
                (false, None) => None,
                (true, None) => Some(AnyExporter::Console(console_exporter())),
                #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
                (false, Some(otlp)) => Some(AnyExporter::Otlp(otlp)),
                #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
                (true, Some(otlp)) => Some(AnyExporter::ConsoleAndOtlp(console_exporter(), otlp)),
                #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
                (_, Some(never)) => match never {},
            };
            if exporters.contains(&ExporterKind::Viewer) {
                #[cfg(feature = "viewer")]
                {
                    viewer = Some(crate::viewer::Viewer::start(config.viewer()));
                }
                #[cfg(not(feature = "viewer"))]
                return Err(InitError::FeatureMissing {
                    what: "the trace viewer (TRACING_EXPORTER=viewer)",
                    feature: "viewer",
                });
            }
            // Keeping failures needs an exporter; without one it would only cost.
            let keep = config.keep().is_enabled() && exporter.is_some();
            let builder = match (config.sampling_rules().is_empty(), keep) {
                (true, false) => builder.with_sampler(sampling::sdk_sampler(config.sampler())),
                (true, true) => {
                    builder.with_sampler(KeepSampler::new(sampling::sdk_sampler(config.sampler())))
                }
                (false, keep) => {
                    let rules = sampling::RouteSampler::new(
                        config.sampling_rules().iter().cloned(),
                        config.sampler(),
                    );
                    if keep {
                        builder.with_sampler(KeepSampler::new(rules))
                    } else {
                        builder.with_sampler(rules)
                    }
                }
            };
            let builder = match exporter {
                Some(exporter) => {
                    let processor = BatchProcessor::with_concurrent_exports(
                        exporter,
                        config.batch(),
                        config.export_concurrency(),
                    );
                    health = processor.health();
                    if keep {
                        let keep = KeepProcessor::new(processor, config.keep().clone());
                        keep_stats = Some(keep.stats());
                        builder.with_span_processor(keep)
                    } else {
                        builder.with_span_processor(processor)
                    }
                }
                None => builder,
            };
            // The viewer takes every sampled span as it ends, beside the exporters.
            #[cfg(feature = "viewer")]
            let builder = match &viewer {
                Some(v) => builder.with_span_processor(v.processor()),
                None => builder,
            };
            builder.build()
        };
        runtimes.extend(runtime);
        let metrics = metrics_pipeline(
            config,
            self::resource(config),
            &health,
            keep_stats.clone(),
            &mut runtimes,
        )?;
        #[cfg(feature = "logs")]
        let logs = logs_pipeline(config, self::resource(config), &mut runtimes)?.map(|mut l| {
            if let Some((_, m)) = &metrics {
                let meter =
                    opentelemetry::metrics::MeterProvider::meter(&m.provider, crate::SCOPE_NAME);
                l.counters = crate::logs::health_counters(&meter, &l.health);
            }
            l
        });
        #[cfg(not(feature = "logs"))]
        if config.logs_enabled() {
            return Err(InitError::FeatureMissing {
                what: "OTLP logs (TRACING_LOGS_ENABLED, OTEL_LOGS_EXPORTER=otlp)",
                feature: "logs",
            });
        }
        let settings = settings.with_metrics(metrics.as_ref().map(|(m, _)| m.clone()));
        let mut telemetry = Telemetry::from_provider(provider, settings, health, timeout);
        for rt in runtimes {
            telemetry = telemetry.with_runtime(Some(rt));
        }
        #[cfg(feature = "viewer")]
        let telemetry = telemetry.with_viewer(viewer);
        #[cfg(feature = "logs")]
        let telemetry = telemetry.with_logs_pipeline(logs);
        Ok(telemetry
            .with_metrics_pipeline(metrics.map(|(_, p)| p))
            .with_keep_stats(keep_stats))
    }
}

/// The meter provider with its readers (OTLP push, Prometheus scrape) and the instruments, when
/// metrics are on.
fn metrics_pipeline(
    config: &TraceConfig,
    resource: Resource,
    health: &ExportHealth,
    keep: Option<std::sync::Arc<crate::export::keep::KeepStats>>,
    runtimes: &mut Vec<crate::export::ExportRuntime>,
) -> Result<Option<(crate::metrics::Metrics, MetricsPipeline)>, InitError> {
    if !config.metrics_enabled() {
        return Ok(None);
    }
    let exporters = config.metrics_exporters();
    if exporters.otlp && !exporters.prometheus && config.metrics_otlp_endpoint().is_none() {
        // Nowhere to go (e.g. metrics on by a code default, run without a collector): not
        // recorded at all, so the adapters skip them.
        tracing::info!(
            "metrics are on but have no collector endpoint (TRACING_ENDPOINT, \
             OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT) and no Prometheus exporter: not recorded"
        );
        return Ok(None);
    }
    let exemplars = std::sync::Arc::new(crate::metrics::Exemplars::default());
    let builder = SdkMeterProvider::builder().with_resource(resource);
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    let mut push = None;
    let builder = match (exporters.otlp, config.metrics_otlp_endpoint()) {
        (false, _) => builder,
        (true, None) => {
            tracing::warn!(
                "metrics over OTLP need a collector endpoint (TRACING_ENDPOINT, \
                 OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT); none is set, so none are pushed"
            );
            builder
        }
        (true, Some(endpoint)) => {
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            {
                let (exporter, runtime) = crate::metrics::otlp::OtlpMetricExporter::build(
                    &crate::export::transport::OtlpSettings {
                        endpoint: &endpoint,
                        protocol: config.metrics_protocol(),
                        timeout: config.metric_export_timeout(),
                        headers: config.metrics_headers(),
                        compression: config.metrics_compression(),
                        tls: endpoint.starts_with("https://"),
                        #[cfg(feature = "tls")]
                        certificate: config.certificate(),
                        #[cfg(feature = "tls")]
                        client_certificate: config.client_certificate(),
                    },
                    exemplars.clone(),
                )?;
                runtimes.extend(runtime);
                let (pusher, reader) = crate::metrics::MetricsPush::start(
                    exporter,
                    config.metric_export_interval(),
                    config.metric_export_timeout(),
                );
                push = Some(pusher);
                builder.with_reader(reader)
            }
            #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
            {
                let _ = (endpoint, runtimes);
                return Err(
                    crate::export::BuildError::protocol_missing(config.metrics_protocol()).into(),
                );
            }
        }
    };
    #[cfg(feature = "prometheus")]
    let (builder, prometheus) = if exporters.prometheus {
        let (scrape, reader) = crate::metrics::PrometheusScrape::new();
        (builder.with_reader(reader), Some(scrape))
    } else {
        (builder, None)
    };
    #[cfg(not(feature = "prometheus"))]
    if exporters.prometheus {
        return Err(crate::export::BuildError::FeatureMissing {
            what: "the Prometheus scrape (OTEL_METRICS_EXPORTER=prometheus)",
            feature: "prometheus",
        }
        .into());
    }
    let provider = builder.build();
    let meter = opentelemetry::metrics::MeterProvider::meter(&provider, crate::SCOPE_NAME);
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    let pushes = push.as_ref().map(crate::metrics::MetricsPush::health);
    #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
    let pushes = None;
    let metrics = crate::metrics::Metrics::with_exemplars(&meter, health, keep, exemplars, pushes);
    Ok(Some((
        metrics,
        MetricsPipeline {
            provider,
            #[cfg(feature = "prometheus")]
            prometheus,
            #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
            push,
        },
    )))
}

/// The logger provider with the bounded log processor and the OTLP log exporter, when OTLP logs
/// are on and there is a collector.
#[cfg(feature = "logs")]
fn logs_pipeline(
    config: &TraceConfig,
    resource: Resource,
    runtimes: &mut Vec<crate::export::ExportRuntime>,
) -> Result<Option<crate::telemetry::LogsPipeline>, InitError> {
    if !config.logs_enabled() {
        return Ok(None);
    }
    let Some(endpoint) = config.logs_otlp_endpoint() else {
        tracing::info!(
            "OTLP logs are on but have no collector endpoint (TRACING_ENDPOINT, \
             OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT): not exported"
        );
        return Ok(None);
    };
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    {
        let settings = config.log_batch();
        let (exporter, runtime) = crate::logs::otlp::OtlpLogExporter::build(
            &crate::export::transport::OtlpSettings {
                endpoint: &endpoint,
                protocol: config.logs_protocol(),
                timeout: settings.export_timeout,
                headers: config.logs_headers(),
                compression: config.logs_compression(),
                tls: endpoint.starts_with("https://"),
                #[cfg(feature = "tls")]
                certificate: config.certificate(),
                #[cfg(feature = "tls")]
                client_certificate: config.client_certificate(),
            },
            crate::logs::otlp::RecordLimits {
                attributes: settings.attribute_count_limit,
                value_length: settings.attribute_value_length_limit,
            },
        )?;
        runtimes.extend(runtime);
        let processor = crate::logs::processor::LogQueueProcessor::new(exporter, settings);
        let (health, closer) = (processor.health(), processor.closer());
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(processor)
            .build();
        Ok(Some(crate::telemetry::LogsPipeline {
            provider,
            closer,
            health,
            counters: Vec::new(),
        }))
    }
    #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
    {
        let _ = (endpoint, resource, runtimes);
        Err(crate::export::BuildError::protocol_missing(config.logs_protocol()).into())
    }
}

fn resource(config: &TraceConfig) -> Resource {
    let mut attrs = vec![KeyValue::new(
        semconv::SERVICE_NAME,
        config.service_name().to_owned(),
    )];
    if let Some(v) = config.service_version() {
        attrs.push(KeyValue::new(semconv::SERVICE_VERSION, v.to_owned()));
    }
    if let Some(env) = config.environment() {
        attrs.push(KeyValue::new(
            semconv::DEPLOYMENT_ENVIRONMENT_NAME,
            env.to_owned(),
        ));
    }
    let extra = config
        .resource_attributes()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
    // Only what the configuration resolved: `Resource::builder()` would run the SDK's env
    // detectors and read `OTEL_RESOURCE_ATTRIBUTES` / `OTEL_SERVICE_NAME` a second time, behind
    // the precedence of `TRACING_*` and code. The SDK's own `telemetry.sdk.*` attributes are
    // kept (`TelemetryResourceDetector` reads no environment).
    // `with_attributes` keeps the last value of a key: extras first, explicit settings win.
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(extra.chain(attrs))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing cargo feature is an `InitError` naming what needs it and the feature, never a
    /// panic (run with `cargo test -p gorax-trace` and `--no-default-features --features otlp-grpc`).
    #[test]
    fn missing_features_are_errors() {
        let grpc = TraceConfig::new().with_endpoint("localhost:4317");
        let https = TraceConfig::new().with_endpoint("https://collector.example.com:443");
        let viewer =
            TraceConfig::new().with_exporters([ExporterKind::Console, ExporterKind::Viewer]);
        let cases: Vec<(TraceConfig, &str)> = [
            (!cfg!(feature = "otlp-grpc")).then_some((grpc, "otlp-grpc")),
            (!cfg!(feature = "viewer")).then_some((viewer, "viewer")),
            (!cfg!(feature = "tls") && cfg!(feature = "otlp-grpc")).then_some((https, "tls")),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (config, feature) in cases {
            match Telemetry::new(&config) {
                Err(e @ InitError::FeatureMissing { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("`{feature}`")), "{msg}");
                    assert!(msg.contains("features = ["), "{msg}");
                }
                other => panic!("{feature}: {other:?}"),
            }
        }
    }
}

/// Issue 21: an exporter that cannot be built keeps the error that stopped it as its source.
#[cfg(all(test, feature = "tls", feature = "otlp-http"))]
mod exporter_error_tests {
    use super::*;

    #[test]
    fn an_unreadable_ca_file_is_an_exporter_error_whose_source_is_the_io_error() {
        let missing = std::env::temp_dir().join("gorax-no-such-ca-4d1e.pem");
        let config = TraceConfig::new()
            .with_endpoint("https://127.0.0.1:4318/v1/traces")
            .with_certificate(&missing);
        let err = build_for_test(config);
        let InitError::Exporter(exporter) = &err else {
            panic!("an exporter error: {err:?}");
        };
        assert!(
            err.to_string().contains("gorax-no-such-ca-4d1e.pem"),
            "{err}"
        );
        let source = std::error::Error::source(exporter).expect("the underlying error");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "{source:?}"
        );
    }

    fn build_for_test(config: TraceConfig) -> InitError {
        match Telemetry::new(&config) {
            Ok(_) => panic!("the CA file does not exist"),
            Err(e) => e,
        }
    }
}
