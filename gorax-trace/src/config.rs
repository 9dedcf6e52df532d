//! Temporary minimal configuration (replaced by the full parser).
#![allow(missing_docs)]

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct TraceConfig {
    enabled: bool,
    exporter: Option<ExporterKind>,
    endpoint: Option<String>,
    protocol: Protocol,
    headers: Vec<(String, String)>,
    service_name: String,
    sampler: Sampler,
    propagators: Propagators,
    http_semconv: HttpSemconv,
    batch: BatchSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterKind {
    Otlp,
    Console,
    None,
}
impl std::fmt::Display for ExporterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}
impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}
impl std::fmt::Display for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Propagators {
    pub trace_context: bool,
    pub baggage: bool,
}
impl Default for Propagators {
    fn default() -> Self {
        Self {
            trace_context: true,
            baggage: true,
        }
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HttpSemconv {
    #[default]
    Stable,
    Dup,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub max_queue_size: usize,
    pub scheduled_delay: Duration,
    pub max_export_batch_size: usize,
    pub export_timeout: Duration,
}
impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_queue_size: 2048,
            scheduled_delay: Duration::from_secs(5),
            max_export_batch_size: 512,
            export_timeout: Duration::from_secs(10),
        }
    }
}
#[derive(Debug, thiserror::Error)]
#[error("invalid tracing configuration")]
pub struct ConfigError;

impl Default for TraceConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceConfig {
    pub fn new() -> Self {
        Self {
            enabled: true,
            exporter: None,
            endpoint: None,
            protocol: Protocol::Grpc,
            headers: vec![],
            service_name: "gorax".into(),
            sampler: Sampler::ParentBasedAlwaysOn,
            propagators: Propagators::default(),
            http_semconv: HttpSemconv::Stable,
            batch: BatchSettings::default(),
        }
    }
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::new())
    }
    pub fn with_enabled(mut self, v: bool) -> Self {
        self.enabled = v;
        self
    }
    pub fn with_exporter(mut self, v: ExporterKind) -> Self {
        self.exporter = Some(v);
        self
    }
    pub fn with_endpoint(mut self, v: impl Into<String>) -> Result<Self, ConfigError> {
        self.endpoint = Some(v.into());
        Ok(self)
    }
    pub fn with_protocol(mut self, v: Protocol) -> Self {
        self.protocol = v;
        self
    }
    pub fn with_service_name(mut self, v: impl Into<String>) -> Self {
        self.service_name = v.into();
        self
    }
    pub fn with_sampler(mut self, v: Sampler) -> Self {
        self.sampler = v;
        self
    }
    pub fn with_batch(mut self, v: BatchSettings) -> Self {
        self.batch = v;
        self
    }
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    pub fn exporter(&self) -> ExporterKind {
        self.exporter.unwrap_or(if self.endpoint.is_some() {
            ExporterKind::Otlp
        } else {
            ExporterKind::Console
        })
    }
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    pub fn uses_tls(&self) -> bool {
        false
    }
    pub fn service_name(&self) -> &str {
        &self.service_name
    }
    pub fn service_version(&self) -> Option<&str> {
        None
    }
    pub fn environment(&self) -> Option<&str> {
        None
    }
    pub fn resource_attributes(&self) -> &[(String, String)] {
        &[]
    }
    pub fn sampler(&self) -> Sampler {
        self.sampler
    }
    pub fn propagators(&self) -> Propagators {
        self.propagators
    }
    pub fn http_semconv(&self) -> HttpSemconv {
        self.http_semconv
    }
    pub fn batch(&self) -> &BatchSettings {
        &self.batch
    }
    pub fn warnings(&self) -> &[String] {
        &[]
    }
}
