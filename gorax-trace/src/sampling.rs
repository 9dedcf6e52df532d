//! Head sampling: the configured [`Sampler`] turned into the SDK's sampler.
//!
//! The default is parent-based: a request whose caller sampled it is recorded, one whose caller
//! did not is not, and new traces are sampled at the configured ratio (`TRACING_SAMPLE_RATE`).
//! A trace id ratio sampler decides by the trace id, so every service of a trace that uses the
//! same ratio makes the same decision.

use opentelemetry_sdk::trace::Sampler as SdkSampler;

use crate::config::Sampler;

/// The SDK sampler for a configured [`Sampler`].
///
/// ```
/// use gorax_trace::config::Sampler;
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
