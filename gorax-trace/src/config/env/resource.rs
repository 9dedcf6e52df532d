//! The resource: `TRACING_RESOURCE_ATTRIBUTES` over `OTEL_RESOURCE_ATTRIBUTES`, and the
//! attributes with variables of their own.

use super::*;

impl Vars {
    /// `TRACING_RESOURCE_ATTRIBUTES` merged over `OTEL_RESOURCE_ATTRIBUTES`, with the source of
    /// each attribute.
    pub(super) fn resource_attributes(&mut self) -> Vec<(String, String, &'static str)> {
        let tracing = self.parse(TRACING_RESOURCE_ATTRIBUTES, |s| parse_kv_list(s, true));
        let otel = self.parse(OTEL_RESOURCE_ATTRIBUTES, |s| parse_kv_list(s, true));
        let mut merged: Vec<_> = otel
            .map(|s| s.value)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v, OTEL_RESOURCE_ATTRIBUTES))
            .collect();
        for (key, value) in tracing.map(|s| s.value).unwrap_or_default() {
            match merged.iter_mut().find(|(k, _, _)| *k == key) {
                Some(slot) => {
                    if slot.1 != value {
                        self.warnings.push(format!(
                            "{TRACING_RESOURCE_ATTRIBUTES}[{key}]={value:?} conflicts with \
                             {OTEL_RESOURCE_ATTRIBUTES}[{key}]={:?}; using {TRACING_RESOURCE_ATTRIBUTES} \
                             (TRACING_* takes precedence over OTEL_*)",
                            slot.1
                        ));
                    }
                    *slot = (key, value, TRACING_RESOURCE_ATTRIBUTES);
                }
                None => merged.push((key, value, TRACING_RESOURCE_ATTRIBUTES)),
            }
        }
        merged
    }

    /// A setting that also lives in the resource attributes (lowest precedence, first of `keys`).
    pub(super) fn named_attribute(
        &mut self,
        tracing: &'static str,
        otel: Option<&'static str>,
        attributes: &[(String, String, &'static str)],
        keys: &[&str],
    ) -> Option<String> {
        let own = |s: &str| Ok(s.to_owned());
        let tracing = self.parse(tracing, own);
        let otel = otel.and_then(|name| self.parse(name, own));
        let attribute = keys.iter().find_map(|key| {
            attributes
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(k, v, source)| Setting {
                    var: source,
                    desc: format!("{source}[{k}]={v:?}"),
                    value: v.clone(),
                })
        });
        self.pick(tracing, otel.or(attribute)).map(|s| s.value)
    }
}

pub(super) fn is_reserved_key(key: &str) -> bool {
    key == semconv::SERVICE_NAME
        || key == semconv::SERVICE_VERSION
        || ENVIRONMENT_KEYS.contains(&key)
}
