//! Message headers as a propagation carrier (the core's
//! [`Carrier`](gorax_trace::propagation::Carrier) and
//! [`CarrierMut`](gorax_trace::propagation::CarrierMut)).

use std::collections::BTreeMap;

use gorax_trace::propagation;
use opentelemetry::propagation::{Extractor, Injector};
use serde::{Deserialize, Serialize};

/// String headers of a message: `traceparent`, `tracestate`, `baggage` and anything the
/// application adds. Ordered, so a serialized message is deterministic.
///
/// It implements OpenTelemetry's [`Injector`] and [`Extractor`], and the core's [`Carrier`](gorax_trace::propagation::Carrier). Setting an
/// empty value is a no-op (some brokers, SQS among them, reject empty attribute values).
///
/// ```
/// use gorax_trace_queue::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("tenant", "t1");
/// headers.insert("tracestate", "");
/// assert_eq!(headers.get("tenant"), Some("t1"));
/// assert_eq!(headers.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Sets `key` to `value`, replacing any previous value; an empty `value` is skipped.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.0.insert(key.into(), value);
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The headers in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The underlying map.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Unwraps the underlying map.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

impl From<BTreeMap<String, String>> for Headers {
    fn from(mut map: BTreeMap<String, String>) -> Self {
        map.retain(|_, v| !v.is_empty());
        Self(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (k, v) in iter {
            headers.insert(k, v);
        }
        headers
    }
}

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key, value);
    }
}

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        Headers::get(self, key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Headers carry trace context through the core's one propagation implementation
/// ([`Propagators`](gorax_trace::propagation::Propagators)); empty values are never written.
impl propagation::Carrier for Headers {
    fn values(&self, field: propagation::Field) -> propagation::Values<'_> {
        propagation::Carrier::values(self as &dyn Extractor, field)
    }

    /// A map holds one value per key: one lookup, no list (the provided method would build one
    /// through [`Extractor::get_all`] for every field).
    fn only(&self, field: propagation::Field) -> Result<Option<&str>, propagation::Several> {
        Ok(Headers::get(self, field.key()))
    }
}

impl propagation::CarrierMut for Headers {
    fn set(&mut self, field: propagation::Field, value: &str) {
        if value.is_empty() {
            return;
        }
        // A field already there (a re-injected message) keeps its key and, if it fits, its buffer.
        match self.0.get_mut(field.key()) {
            Some(existing) => value.clone_into(existing),
            None => {
                self.0.insert(field.key().to_owned(), value.to_owned());
            }
        }
    }

    fn remove(&mut self, field: propagation::Field) {
        self.0.remove(field.key());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn headers_round_trip() {
        let w3c = propagation::Propagators::W3C;
        let mut incoming = Headers::new();
        incoming.insert(propagation::TRACEPARENT_KEY, TP);
        let cx = w3c.extract(&incoming);
        assert!(cx.span().span_context().is_valid());
        let mut headers = Headers::new();
        w3c.inject(&cx, &mut headers);
        assert_eq!(headers.get(propagation::TRACEPARENT_KEY), Some(TP));
        assert!(headers.get(propagation::TRACESTATE_KEY).is_none());
    }

    #[test]
    fn empty_values_are_skipped_and_json_is_a_plain_object() {
        let headers: Headers = [("a", "1"), ("b", "")].into_iter().collect();
        assert_eq!(headers.len(), 1);
        assert_eq!(serde_json::to_string(&headers).unwrap(), r#"{"a":"1"}"#);
        let from_map = Headers::from(BTreeMap::from([("x".to_owned(), String::new())]));
        assert!(from_map.is_empty());
    }
}
