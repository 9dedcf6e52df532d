//! Message headers as a propagation carrier, and the [`Carrier`] trait that lets any broker's
//! header type carry trace context.

use std::collections::{BTreeMap, HashMap};

use gorax_trace::propagation;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use serde::{Deserialize, Serialize};

/// String headers of a message: `traceparent`, `tracestate`, `baggage` and anything the
/// application adds. Ordered, so a serialized message is deterministic.
///
/// It implements OpenTelemetry's [`Injector`] and [`Extractor`], and [`Carrier`]. Setting an
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

/// A broker's header type that can carry trace context: an AMQP table, SQS message attributes,
/// Redis stream fields, Kafka record headers.
///
/// Implement the three methods for your type and use [`inject_context`] / [`extract_context`];
/// the W3C encoding itself always comes from [`gorax_trace::propagation`].
///
/// ```
/// use gorax_trace_queue::{Carrier, extract_context, inject_context};
/// use opentelemetry::trace::TraceContextExt;
///
/// struct Attrs(Vec<(String, String)>);
/// impl Carrier for Attrs {
///     fn get(&self, key: &str) -> Option<&str> {
///         self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
///     }
///     fn set(&mut self, key: &str, value: String) {
///         self.0.retain(|(k, _)| k != key);
///         self.0.push((key.to_owned(), value));
///     }
///     fn keys(&self) -> Vec<&str> {
///         self.0.iter().map(|(k, _)| k.as_str()).collect()
///     }
/// }
///
/// let incoming = Attrs(vec![(
///     "traceparent".into(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
/// )]);
/// let cx = extract_context(&incoming);
/// let mut outgoing = Attrs(Vec::new());
/// inject_context(&cx, &mut outgoing);
/// assert_eq!(outgoing.0.len(), 1);
/// ```
pub trait Carrier {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> Option<&str>;
    /// Sets `key` to `value` (never called with an empty value).
    fn set(&mut self, key: &str, value: String);
    /// Every key present.
    fn keys(&self) -> Vec<&str>;
}

impl Carrier for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        Headers::get(self, key)
    }
    fn set(&mut self, key: &str, value: String) {
        self.insert(key, value);
    }
    fn keys(&self) -> Vec<&str> {
        Extractor::keys(self)
    }
}

impl Carrier for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }
    fn keys(&self) -> Vec<&str> {
        BTreeMap::keys(self).map(String::as_str).collect()
    }
}

impl<S: std::hash::BuildHasher> Carrier for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }
    fn keys(&self) -> Vec<&str> {
        HashMap::keys(self).map(String::as_str).collect()
    }
}

/// Adapts a [`Carrier`] to OpenTelemetry's [`Injector`] and [`Extractor`].
struct Adapter<C: ?Sized>(C);

impl<C: Carrier + ?Sized> Injector for Adapter<&mut C> {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.set(key, value);
        }
    }
}

impl<C: Carrier + ?Sized> Extractor for Adapter<&C> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
}

/// Writes the trace context and baggage of `cx` into `carrier` (through
/// [`gorax_trace::propagation::inject_into`]); empty values are skipped.
pub fn inject_context<C: Carrier + ?Sized>(cx: &Context, carrier: &mut C) {
    propagation::inject_into(cx, &mut Adapter(carrier));
}

/// Reads a context from `carrier` (through [`gorax_trace::propagation::extract_from`]). A missing
/// or invalid `traceparent` gives a context without a span.
pub fn extract_context<C: Carrier + ?Sized>(carrier: &C) -> Context {
    propagation::extract_from(&Adapter(carrier))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn carriers_round_trip() {
        let mut hm: HashMap<String, String> = HashMap::new();
        hm.insert(propagation::TRACEPARENT_KEY.into(), TP.into());
        let cx = extract_context(&hm);
        assert!(cx.span().span_context().is_valid());
        let mut bt = BTreeMap::new();
        inject_context(&cx, &mut bt);
        assert_eq!(
            bt.get(propagation::TRACEPARENT_KEY).map(String::as_str),
            Some(TP)
        );
        assert!(!bt.contains_key(propagation::TRACESTATE_KEY));
        let mut headers = Headers::new();
        inject_context(&cx, &mut headers);
        assert_eq!(headers.get(propagation::TRACEPARENT_KEY), Some(TP));
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
