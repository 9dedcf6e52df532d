//! Turning a [`TraceConfig`] into a running tracer provider, and shutting it down.

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::{ExporterKind, TraceConfig};
use crate::export::{AnyExporter, BatchProcessor, ConsoleExporter, ExportHealth};
use crate::{propagation, sampling, semconv};

/// The instrumentation scope name of the spans gorax-trace makes.
pub const SCOPE_NAME: &str = "gorax-trace";

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The exporter could not be built (bad endpoint, TLS, headers).
    #[error("cannot build the span exporter: {0}")]
    Exporter(String),
    /// The configuration asks for an exporter whose cargo feature is off.
    #[error("this exporter needs the `{0}` feature of gorax-trace")]
    FeatureMissing(&'static str),
}

/// Keeps tracing running; flushes and shuts the provider down when dropped (or on
/// [`shutdown`](TraceGuard::shutdown)), waiting at most the configured export timeout.
///
/// Dropping the guard never hangs: the export thread (and for gRPC its own runtime) is
/// independent of the application's runtime, so this works from `main`, inside any tokio runtime
/// flavour, or with none.
#[must_use = "tracing stops (and buffered spans are lost) when the guard is dropped"]
#[derive(Debug)]
pub struct TraceGuard {
    provider: SdkTracerProvider,
    health: ExportHealth,
    timeout: Duration,
    shut_down: bool,
    #[cfg(feature = "otlp-grpc")]
    runtime: Option<tokio::runtime::Runtime>,
}

impl TraceGuard {
    /// The tracer provider (also installed as the global one).
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Export counters: spans exported, dropped (queue full), failed.
    pub fn health(&self) -> ExportHealth {
        self.health.clone()
    }

    /// Exports everything finished so far, waiting at most the export timeout.
    pub fn force_flush(&self) -> Result<(), opentelemetry_sdk::error::OTelSdkError> {
        self.provider.force_flush()
    }

    /// Flushes and shuts down now, reporting the outcome (dropping the guard does the same
    /// silently).
    pub fn shutdown(mut self) -> Result<(), opentelemetry_sdk::error::OTelSdkError> {
        self.shut_down = true;
        let result = self.provider.shutdown_with_timeout(self.timeout);
        #[cfg(feature = "otlp-grpc")]
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(100));
        }
        result
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if !self.shut_down {
            let _ = self.provider.shutdown_with_timeout(self.timeout);
        }
        #[cfg(feature = "otlp-grpc")]
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

static TRACER: RwLock<Option<SdkTracer>> = RwLock::new(None);

/// The tracer gorax-trace adapters use by default: the one [`init`] installed, or before that
/// (and in processes that never call it) a tracer that records nothing but still gives every
/// outgoing call its own span id, so context keeps propagating.
pub fn tracer() -> SdkTracer {
    if let Some(t) = TRACER
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return t.clone();
    }
    let mut slot = TRACER.write().unwrap_or_else(PoisonError::into_inner);
    slot.get_or_insert_with(|| disabled_provider().tracer(SCOPE_NAME))
        .clone()
}

fn disabled_provider() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(sampling::disabled())
        .build()
}

/// Starts tracing as `config` says and installs it process-wide: the tracer provider (also as
/// the OpenTelemetry global), the propagators and the HTTP semantic-convention mode.
///
/// With tracing disabled, a provider that records nothing is installed, and context still
/// propagates from incoming requests to outgoing calls.
///
/// ```
/// use gorax_trace::config::{ExporterKind, TraceConfig};
///
/// let config = TraceConfig::new().with_exporter(ExporterKind::None);
/// let guard = gorax_trace::init(config).unwrap();
/// // ... serve requests ...
/// drop(guard); // flushes, with a timeout
/// ```
pub fn init(config: TraceConfig) -> Result<TraceGuard, InitError> {
    let timeout = config.batch().export_timeout;
    let resource = resource(&config);
    let health;
    #[cfg(feature = "otlp-grpc")]
    let mut runtime = None;

    let provider = if !config.enabled() {
        health = ExportHealth::default();
        SdkTracerProvider::builder()
            .with_sampler(sampling::disabled())
            .with_resource(resource)
            .build()
    } else {
        let builder = SdkTracerProvider::builder().with_resource(resource);
        let builder = if config.sampling_rules().is_empty() {
            builder.with_sampler(sampling::sdk_sampler(config.sampler()))
        } else {
            builder.with_sampler(sampling::RouteSampler::new(
                config.sampling_rules().iter().cloned(),
                config.sampler(),
            ))
        };
        let exporter = match (config.exporter(), config.otlp_endpoint()) {
            (ExporterKind::None, _) => None,
            (ExporterKind::Otlp, Some(endpoint)) => {
                #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
                {
                    let otlp = crate::export::otlp::build(&config, endpoint)?;
                    #[cfg(feature = "otlp-grpc")]
                    {
                        runtime = otlp.runtime;
                    }
                    Some(AnyExporter::Otlp(Box::new(otlp.exporter)))
                }
                #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
                {
                    let _ = endpoint;
                    return Err(InitError::FeatureMissing("otlp-http"));
                }
            }
            _ => Some(AnyExporter::Console(ConsoleExporter::new())),
        };
        match exporter {
            Some(exporter) => {
                let processor = BatchProcessor::new(exporter, config.batch());
                health = processor.health();
                builder.with_span_processor(processor).build()
            }
            None => {
                health = ExportHealth::default();
                builder.build()
            }
        }
    };

    *TRACER.write().unwrap_or_else(PoisonError::into_inner) = Some(provider.tracer(SCOPE_NAME));
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(propagation::W3cPropagator::new());
    propagation::set_propagators(config.propagators());
    semconv::set_http_semconv(config.http_semconv());

    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    match (config.enabled(), config.exporter(), config.otlp_endpoint()) {
        (false, _, _) => {
            tracing::info!("distributed tracing disabled; trace context still propagates")
        }
        (true, ExporterKind::Otlp, Some(endpoint)) => tracing::info!(
            service.name = config.service_name(),
            endpoint,
            protocol = %config.protocol(),
            sampler = %config.sampler(),
            "distributed tracing enabled"
        ),
        (true, exporter, _) => tracing::info!(
            service.name = config.service_name(),
            %exporter,
            sampler = %config.sampler(),
            "distributed tracing enabled"
        ),
    }

    Ok(TraceGuard {
        provider,
        health,
        timeout,
        shut_down: false,
        #[cfg(feature = "otlp-grpc")]
        runtime,
    })
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
    // `with_attributes` keeps the last value of a key: extras first, explicit settings win.
    Resource::builder()
        .with_attributes(extra.chain(attrs))
        .build()
}
