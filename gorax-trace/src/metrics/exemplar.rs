//! Exemplars: for each histogram data point, the latest sampled measurement of each bucket with
//! the trace id and span id it was made in (the specification's
//! `AlignedHistogramBucketExemplarReservoir` under the `trace_based` filter).
//!
//! Why our own: the table in [`metrics`](super#why-our-own). The store is keyed by instrument and by a hash of
//! the attribute set that does not depend on the order of the attributes, so the exporter finds
//! the exemplars of a data point from the SDK's attributes or from the protobuf ones alike.
//!
//! Bounded: at most [`MAX_SERIES`] attribute sets in all (one fixed array of slots each, about
//! 0.7 KiB); measurements of further sets get no exemplar and are counted. Recording never
//! waits: when another thread holds the store, the exemplar is skipped (and counted).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::SpanContext;
use opentelemetry::{KeyValue, Value};

use super::DURATION_BUCKETS;

/// Attribute sets (series) that get exemplars, over all instruments.
pub const MAX_SERIES: usize = 2_000;

/// Slots per series: one per bucket of [`DURATION_BUCKETS`], plus the overflow bucket.
const SLOTS: usize = DURATION_BUCKETS.len() + 1;

/// One exemplar: a measurement and the span it was made in.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Exemplar {
    /// The measured value (seconds).
    pub value: f64,
    /// When it was measured, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// The trace id of the span the measurement was made in.
    pub trace_id: [u8; 16],
    /// The span id of that span.
    pub span_id: [u8; 8],
}

/// The bucket slots of one series.
type Slots = Box<[Option<Exemplar>; SLOTS]>;

/// The exemplar store of one meter provider: slots per (instrument, attribute-set hash).
#[derive(Debug, Default)]
pub(crate) struct Exemplars {
    series: Mutex<HashMap<(u8, u64), Slots>>,
    skipped: AtomicU64,
}

impl Exemplars {
    /// Keeps `value` as the exemplar of its bucket when `span` is sampled.
    pub(crate) fn offer(&self, instrument: u8, attrs: &[KeyValue], value: f64, span: &SpanContext) {
        if span.is_sampled() {
            self.offer_hashed(
                instrument,
                sdk_attribute_set_hash(attrs.iter()),
                value,
                span,
            );
        }
    }

    /// [`offer`](Self::offer) for an attribute set whose [`sdk_attribute_set_hash`] is known.
    pub(crate) fn offer_hashed(&self, instrument: u8, hash: u64, value: f64, span: &SpanContext) {
        if !span.is_sampled() {
            return;
        }
        let key = (instrument, hash);
        let Ok(mut series) = self.series.try_lock() else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if series.len() >= MAX_SERIES && !series.contains_key(&key) {
            drop(series);
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let slots = series.entry(key).or_insert_with(|| Box::new([None; SLOTS]));
        slots[bucket(value)] = Some(Exemplar {
            value,
            time_unix_nano: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            trace_id: span.trace_id().to_bytes(),
            span_id: span.span_id().to_bytes(),
        });
    }

    /// The exemplars of the series with this attribute-set hash, in bucket order.
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    pub(crate) fn of(&self, instrument: u8, attribute_set_hash: u64) -> Vec<Exemplar> {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        series
            .get(&(instrument, attribute_set_hash))
            .map(|slots| slots.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// Series held.
    #[cfg(test)]
    pub(crate) fn series(&self) -> usize {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Exemplars not kept: the store was busy or full.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// The bucket of `value` under [`DURATION_BUCKETS`] (upper bounds inclusive, as OTLP and
/// Prometheus count them).
fn bucket(value: f64) -> usize {
    DURATION_BUCKETS.partition_point(|bound| *bound < value)
}

/// An attribute value as the hash sees it: the same for the API's values and the protobuf's.
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Double(f64),
    Other,
}

fn pair(kv: &KeyValue) -> (&str, Scalar<'_>) {
    let value = match &kv.value {
        Value::String(s) => Scalar::Str(s.as_str()),
        Value::I64(i) => Scalar::Int(*i),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::F64(f) => Scalar::Double(*f),
        _ => Scalar::Other,
    };
    (kv.key.as_str(), value)
}

/// A hash of an attribute set that does not depend on the order of its members (a sum of the
/// members' hashes). The hasher is `DefaultHasher::new()`: fixed keys, the same in every run.
pub(crate) fn attribute_set_hash<'a>(pairs: impl Iterator<Item = (&'a str, Scalar<'a>)>) -> u64 {
    pairs
        .map(|(key, value)| {
            let mut h = std::hash::DefaultHasher::new();
            key.hash(&mut h);
            match value {
                Scalar::Str(s) => (0u8, s).hash(&mut h),
                Scalar::Int(i) => (1u8, i).hash(&mut h),
                Scalar::Bool(b) => (2u8, b).hash(&mut h),
                Scalar::Double(f) => (3u8, f.to_bits()).hash(&mut h),
                Scalar::Other => 4u8.hash(&mut h),
            }
            h.finish()
        })
        .fold(0u64, u64::wrapping_add)
}

/// The hash of an SDK data point's attributes.
pub(crate) fn sdk_attribute_set_hash<'a>(attrs: impl Iterator<Item = &'a KeyValue>) -> u64 {
    attribute_set_hash(attrs.map(pair))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn span(sampled: bool, n: u8) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes([n; 16]),
            SpanId::from_bytes([n; 8]),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            TraceState::NONE,
        )
    }

    #[test]
    fn one_exemplar_per_bucket_latest_wins_sampled_only() {
        let store = Exemplars::default();
        let attrs = [KeyValue::new("a", "x"), KeyValue::new("b", 200)];
        store.offer(0, &attrs, 0.003, &span(true, 1));
        store.offer(0, &attrs, 0.004, &span(true, 2)); // same bucket (<= 0.005): replaces
        store.offer(0, &attrs, 0.2, &span(true, 3));
        store.offer(0, &attrs, 0.3, &span(false, 4)); // not sampled: no exemplar
        store.offer(0, &attrs, 99.0, &span(true, 5)); // overflow bucket
        let reversed = [KeyValue::new("b", 200), KeyValue::new("a", "x")];
        let got = store.of(0, sdk_attribute_set_hash(reversed.iter()));
        let ids: Vec<u8> = got.iter().map(|e| e.trace_id[0]).collect();
        assert_eq!(ids, [2, 3, 5]);
        assert_eq!(got[0].value, 0.004);
        assert!(store.of(1, sdk_attribute_set_hash(attrs.iter())).is_empty());
    }

    #[test]
    fn bounded_in_series_and_counted() {
        let store = Exemplars::default();
        for i in 0..(MAX_SERIES as i64 + 500) {
            store.offer(0, &[KeyValue::new("i", i)], 0.01, &span(true, 1));
        }
        assert_eq!(store.series(), MAX_SERIES);
        assert_eq!(store.skipped(), 500);
    }

    #[test]
    fn buckets_are_upper_inclusive() {
        assert_eq!(bucket(0.005), 0);
        assert_eq!(bucket(0.0051), 1);
        assert_eq!(bucket(10.0), DURATION_BUCKETS.len() - 1);
        assert_eq!(bucket(10.1), DURATION_BUCKETS.len());
    }
}
