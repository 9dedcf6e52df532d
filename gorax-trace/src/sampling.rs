//! Head sampling: the configured [`Sampler`] turned into the SDK's sampler.
//!
//! The default is parent-based: a request whose caller sampled it is recorded, one whose caller
//! did not is not, and new traces are sampled at the configured ratio (`TRACING_SAMPLE_RATE`).
//! A trace id ratio sampler decides by the trace id, so every service of a trace that uses the
//! same ratio makes the same decision.

use std::fmt;

use opentelemetry_sdk::trace::Sampler as SdkSampler;

/// Head sampler, named as in `OTEL_TRACES_SAMPLER`. Ratios are between 0.0 and 1.0.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum Sampler {
    /// Record every trace.
    AlwaysOn,
    /// Record nothing.
    AlwaysOff,
    /// Record this fraction of traces, ignoring the parent's decision.
    TraceIdRatio(f64),
    /// Follow the parent; record every root trace.
    #[default]
    ParentBasedAlwaysOn,
    /// Follow the parent; record no root trace.
    ParentBasedAlwaysOff,
    /// Follow the parent; record this fraction of root traces.
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    pub(crate) fn takes_ratio(self) -> bool {
        matches!(
            self,
            Self::TraceIdRatio(_) | Self::ParentBasedTraceIdRatio(_)
        )
    }

    /// Whether this sampler drops every span whose parent is valid and not sampled: the
    /// parent-based ones (which follow such a parent) and `always_off`. Adapters then give such
    /// a span its span context themselves ([`TelemetryHandle::unsampled_child`]) instead of
    /// having the SDK build a span only to discard it.
    ///
    /// [`TelemetryHandle::unsampled_child`]: crate::TelemetryHandle::unsampled_child
    pub fn drops_children_of_unsampled_parents(self) -> bool {
        matches!(
            self,
            Self::AlwaysOff
                | Self::ParentBasedAlwaysOn
                | Self::ParentBasedAlwaysOff
                | Self::ParentBasedTraceIdRatio(_)
        )
    }

    pub(crate) fn with_ratio(self, ratio: f64) -> Self {
        match self {
            Self::TraceIdRatio(_) => Self::TraceIdRatio(ratio),
            Self::ParentBasedTraceIdRatio(_) => Self::ParentBasedTraceIdRatio(ratio),
            other => other,
        }
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlwaysOn => f.write_str("always_on"),
            Self::AlwaysOff => f.write_str("always_off"),
            Self::TraceIdRatio(r) => write!(f, "traceidratio({r})"),
            Self::ParentBasedAlwaysOn => f.write_str("parentbased_always_on"),
            Self::ParentBasedAlwaysOff => f.write_str("parentbased_always_off"),
            Self::ParentBasedTraceIdRatio(r) => write!(f, "parentbased_traceidratio({r})"),
        }
    }
}

/// The SDK sampler for a configured [`Sampler`].
///
/// ```
/// use gorax_trace::sampling::Sampler;
/// let sdk = gorax_trace::sampling::sdk_sampler(Sampler::ParentBasedTraceIdRatio(0.25));
/// assert!(format!("{sdk:?}").contains("ParentBased"));
/// ```
pub fn sdk_sampler(sampler: Sampler) -> SdkSampler {
    match sampler {
        Sampler::AlwaysOn => SdkSampler::AlwaysOn,
        Sampler::AlwaysOff => SdkSampler::AlwaysOff,
        Sampler::TraceIdRatio(r) => SdkSampler::TraceIdRatioBased(r),
        Sampler::ParentBasedAlwaysOn => SdkSampler::ParentBased(Box::new(SdkSampler::AlwaysOn)),
        Sampler::ParentBasedAlwaysOff => SdkSampler::ParentBased(Box::new(SdkSampler::AlwaysOff)),
        Sampler::ParentBasedTraceIdRatio(r) => {
            SdkSampler::ParentBased(Box::new(SdkSampler::TraceIdRatioBased(r)))
        }
    }
}

/// The sampler used when tracing is disabled: nothing new is recorded, but a caller's sampled
/// decision is honoured so that the spans this service makes for outgoing calls carry the
/// caller's `sampled` flag on (W3C: a participant that does not record passes the flag on).
pub(crate) fn disabled() -> SdkSampler {
    sdk_sampler(Sampler::ParentBasedAlwaysOff)
}

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SamplingResult;
use opentelemetry_sdk::trace::ShouldSample;

use crate::semconv;

/// A per-route sampling rule for server spans, e.g. `/health` never, `POST …/execute` always.
///
/// ```
/// use gorax_trace::sampling::Sampler;
/// use gorax_trace::sampling::SamplingRule;
///
/// let rules = [
///     SamplingRule::new("/health", Sampler::AlwaysOff),
///     SamplingRule::new("/api/v1/workflows/{id}/execute", Sampler::AlwaysOn).with_method("POST"),
///     SamplingRule::new("/internal/*", Sampler::ParentBasedTraceIdRatio(0.01)),
/// ];
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRule {
    route: String,
    method: Option<String>,
    sampler: Sampler,
}

impl SamplingRule {
    /// A rule for the route template `route` (as the router names it, e.g.
    /// `/api/v1/workflows/{id}/execute`); a trailing `*` matches every route with that prefix.
    pub fn new(route: impl Into<String>, sampler: Sampler) -> Self {
        Self {
            route: route.into(),
            method: None,
            sampler,
        }
    }

    /// Restricts the rule to one HTTP method.
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    fn matches(&self, method: Option<&str>, route: &str) -> bool {
        let route_ok = match self.route.strip_suffix('*') {
            Some(prefix) => route.starts_with(prefix),
            None => route == self.route,
        };
        route_ok && self.method.as_deref().is_none_or(|m| Some(m) == method)
    }
}

/// A sampler that applies [`SamplingRule`]s to SERVER spans by their `http.route` and
/// `http.request.method` initial attributes, and the base sampler to everything else. The first
/// matching rule wins.
#[derive(Debug, Clone)]
pub struct RouteSampler {
    rules: Vec<(SamplingRule, SdkSampler)>,
    base: SdkSampler,
}

impl RouteSampler {
    /// `rules` in order, then `base`.
    pub fn new(rules: impl IntoIterator<Item = SamplingRule>, base: Sampler) -> Self {
        let rules: Vec<_> = rules
            .into_iter()
            .map(|r| {
                let sdk = sdk_sampler(r.sampler);
                (r, sdk)
            })
            .collect();
        Self {
            rules,
            base: sdk_sampler(base),
        }
    }
}

impl ShouldSample for RouteSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let sampler = if *span_kind == SpanKind::Server {
            let attr = |key: &str| {
                attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.as_str())
            };
            let route = attr(semconv::HTTP_ROUTE);
            let method = attr(semconv::HTTP_REQUEST_METHOD);
            route.and_then(|route| {
                self.rules
                    .iter()
                    .find(|(rule, _)| rule.matches(method.as_deref(), &route))
                    .map(|(_, sdk)| sdk)
            })
        } else {
            None
        };
        sampler.unwrap_or(&self.base).should_sample(
            parent_context,
            trace_id,
            name,
            span_kind,
            attributes,
            links,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::SamplingDecision;

    #[test]
    fn rules_match_route_and_method_first_wins() {
        let sampler = RouteSampler::new(
            [
                SamplingRule::new("/health", Sampler::AlwaysOff),
                SamplingRule::new("/api/v1/workflows/{id}/execute", Sampler::AlwaysOn)
                    .with_method("POST"),
                SamplingRule::new("/api/*", Sampler::AlwaysOff),
            ],
            Sampler::AlwaysOn,
        );
        let decide = |kind: SpanKind, method: &'static str, route: &'static str| {
            let attrs = [
                KeyValue::new(semconv::HTTP_REQUEST_METHOD, method),
                KeyValue::new(semconv::HTTP_ROUTE, route),
            ];
            sampler
                .should_sample(None, TraceId::from(1u128), "x", &kind, &attrs, &[])
                .decision
        };
        use SamplingDecision::{Drop, RecordAndSample};
        assert_eq!(decide(SpanKind::Server, "GET", "/health"), Drop);
        assert_eq!(
            decide(SpanKind::Server, "POST", "/api/v1/workflows/{id}/execute"),
            RecordAndSample
        );
        assert_eq!(
            decide(SpanKind::Server, "GET", "/api/v1/workflows/{id}/execute"),
            Drop
        );
        assert_eq!(decide(SpanKind::Server, "GET", "/other"), RecordAndSample);
        assert_eq!(decide(SpanKind::Client, "GET", "/health"), RecordAndSample);
    }
}
