//! Sampling and propagation: `TRACING_SAMPLE_RATE` over `OTEL_TRACES_SAMPLER` (and its
//! argument), `OTEL_PROPAGATORS`.

use super::*;

impl Vars {
    pub(super) fn sampler(&mut self) -> Option<Setting<Sampler>> {
        let rate = self.parse(TRACING_SAMPLE_RATE, |s| {
            parse_ratio(s).map(Sampler::ParentBasedTraceIdRatio)
        });
        let mut otel = self.parse(OTEL_TRACES_SAMPLER, parse_sampler);
        let arg = self.parse(OTEL_TRACES_SAMPLER_ARG, parse_ratio);
        match (&mut otel, arg) {
            (Some(sampler), Some(arg)) if sampler.value.takes_ratio() => {
                sampler.value = sampler.value.with_ratio(arg.value);
                sampler.desc = format!("{} with {}", sampler.desc, arg.desc);
            }
            (_, Some(arg)) => self.warnings.push(format!(
                "{} is ignored: {OTEL_TRACES_SAMPLER} is not traceidratio or parentbased_traceidratio",
                arg.desc
            )),
            _ => {}
        }
        self.pick(rate, otel)
    }
}

pub(super) fn parse_ratio(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| RATIO_EXPECTED.to_owned())
}

/// An `OTEL_TRACES_SAMPLER` name; ratio samplers get 1.0 until `OTEL_TRACES_SAMPLER_ARG` is read.
pub(super) fn parse_sampler(s: &str) -> Result<Sampler, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatio(1.0),
        "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
        "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(1.0),
        _ => {
            return Err(
                "unsupported sampler; expected always_on, always_off, traceidratio, \
                        parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                    .to_owned(),
            );
        }
    })
}

pub(super) fn parse_propagators(s: &str) -> Result<Propagators, String> {
    use crate::propagation::Formats;
    const EXPECTED: &str = "expected a comma-separated list of tracecontext, baggage, b3, \
                            b3multi, jaeger, xray or none";
    let mut found = Propagators::NONE;
    let (mut none, mut any) = (false, false);
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        any = true;
        let other = match name.to_ascii_lowercase().as_str() {
            "tracecontext" => {
                found.trace_context = true;
                continue;
            }
            "baggage" => {
                found.baggage = true;
                continue;
            }
            "none" => {
                none = true;
                continue;
            }
            "b3" => Formats::B3,
            "b3multi" => Formats::B3_MULTI,
            "jaeger" => Formats::JAEGER,
            "xray" => Formats::XRAY,
            "ottrace" => return Err(format!("unsupported propagator {name:?}; {EXPECTED}")),
            _ => return Err(format!("unknown propagator {name:?}; {EXPECTED}")),
        };
        if let Some(feature) = other.missing_feature() {
            return Err(format!(
                "propagator {name:?} needs the gorax-trace cargo feature {feature:?}"
            ));
        }
        found.other = found.other | other;
    }
    if !any {
        return Err(EXPECTED.to_owned());
    }
    if none && found != Propagators::NONE {
        return Err("none cannot be combined with other propagators".to_owned());
    }
    Ok(found)
}
