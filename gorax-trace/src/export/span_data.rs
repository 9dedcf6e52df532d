//! What the batch processor and keep mode do to a finished span before it is queued: weigh it
//! (the queue's byte budget) and redact URLs in its event and status texts.

use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;

/// The estimated memory a finished span holds: its struct plus the bytes of its name, attribute
/// keys and values, events and links (what grows with client-controlled input: a 120 KB
/// `User-Agent` counts as 120 KB). An estimate, not an allocator's count: it ignores capacity
/// slack and shared (`Arc`, `&'static`) strings.
pub(crate) fn span_size(span: &SpanData) -> usize {
    fn value(v: &Value) -> usize {
        match v {
            Value::String(s) => s.as_str().len(),
            Value::Array(a) => match a {
                opentelemetry::Array::String(v) => v.iter().map(|s| s.as_str().len() + 8).sum(),
                opentelemetry::Array::Bool(v) => v.len(),
                opentelemetry::Array::I64(v) => v.len() * 8,
                opentelemetry::Array::F64(v) => v.len() * 8,
                _ => 0,
            },
            _ => 0,
        }
    }
    fn attributes(attrs: &[opentelemetry::KeyValue]) -> usize {
        attrs
            .iter()
            .map(|kv| {
                std::mem::size_of::<opentelemetry::KeyValue>()
                    + kv.key.as_str().len()
                    + value(&kv.value)
            })
            .sum()
    }
    let events: usize = span
        .events
        .iter()
        .map(|e| std::mem::size_of_val(e) + e.name.len() + attributes(&e.attributes))
        .sum();
    let links: usize = span
        .links
        .iter()
        .map(|l| {
            std::mem::size_of_val(l)
                + attributes(&l.attributes)
                + l.span_context.trace_state().header().len()
        })
        .sum();
    let status = match &span.status {
        opentelemetry::trace::Status::Error { description } => description.len(),
        _ => 0,
    };
    std::mem::size_of::<SpanData>()
        + span.name.len()
        + attributes(&span.attributes)
        + events
        + links
        + status
}

/// Redacts the URLs in the text of a span's events and status
/// ([`redact_text`](crate::httpconv::redact_text)): `tracing` events inside a span become span
/// events with their fields as written (an error's text naming a URL with its token), and user
/// code sets statuses from error texts. Costs one scan per string event attribute (most spans
/// have no event).
pub(crate) fn redact_events(span: &mut SpanData) {
    for event in span.events.events.iter_mut() {
        for kv in event.attributes.iter_mut() {
            if let Value::String(s) = &kv.value
                && s.as_str().contains("://")
                && let std::borrow::Cow::Owned(redacted) = crate::httpconv::redact_text(s.as_str())
            {
                kv.value = Value::String(redacted.into());
            }
        }
    }
    if let opentelemetry::trace::Status::Error { description } = &mut span.status
        && description.contains("://")
        && let std::borrow::Cow::Owned(redacted) = crate::httpconv::redact_text(description)
    {
        *description = redacted.into();
    }
}
