//! The messaging attributes and the error rules shared by producer and consumer spans.

use std::borrow::Cow;
use std::sync::Arc;

use gorax_trace::semconv;
// Every messaging name from the one version the crate emits (see `gorax_trace::semconv::messaging`).
use gorax_trace::semconv::messaging::EMITTED as M;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanRef, Status};

use crate::TracedMessage;

/// `messaging.operation.type` and `messaging.operation.name` of a producer span.
pub(crate) const SEND: &str = M.send;
/// `messaging.operation.type` and `messaging.operation.name` of a consumer span.
pub(crate) const PROCESS: &str = M.process;

/// The attribute list a producer span starts with, sized for what it may get: the five
/// messaging ones, the message id twice, `error.type`, and two the caller adds (e.g.
/// `messaging.message.body.size`).
pub(crate) const SEND_CAPACITY: usize = 10;
/// The attribute list a consumer span starts with: the five messaging ones, the message id
/// twice, `retry_count`, `error.type`, and three the handler adds.
pub(crate) const PROCESS_CAPACITY: usize = 12;

/// `{operation} {queue}`: the span name of the messaging conventions.
pub(crate) fn span_name(operation: &str, queue: &str) -> String {
    let mut name = String::with_capacity(operation.len() + 1 + queue.len());
    name.push_str(operation);
    name.push(' ');
    name.push_str(queue);
    name
}

/// The messaging attributes plus the guide's `queue.*` keys; `retry_count` on consumer spans.
///
/// Written straight into the span's list (no list of their own). The queue name and the message
/// id are each copied once and shared by the two keys that carry them; a `'static` system name
/// is not copied.
pub(crate) fn message_attributes<T>(
    system: Cow<'static, str>,
    operation: &'static str,
    msg: &TracedMessage<T>,
) -> impl Iterator<Item = KeyValue> {
    let queue: Arc<str> = msg.queue().into();
    let extra = msg.attributes();
    // An adapter's own destination name (a RabbitMQ `{exchange}:{routing key}`) replaces the
    // queue's.
    let destination = extra
        .iter()
        .all(|kv| kv.key.as_str() != M.destination_name)
        .then(|| KeyValue::new(M.destination_name, queue.clone()));
    [
        KeyValue::new(M.system, system),
        KeyValue::new(M.operation_type, operation),
        KeyValue::new(M.operation_name, operation),
        KeyValue::new(semconv::QUEUE_NAME, queue),
    ]
    .into_iter()
    .chain(destination)
    .chain(msg.message_id().into_iter().flat_map(message_id_attributes))
    .chain(
        (operation == PROCESS)
            .then(|| KeyValue::new(semconv::RETRY_COUNT, i64::from(msg.retry_count()))),
    )
    .chain(extra.iter().cloned())
}

/// The attributes of a batch's consumer span: the messaging ones of the first message without
/// its id and retry count (they differ per message), and `messaging.batch.message_count`.
pub(crate) fn batch_attributes<T>(system: &str, batch: &[TracedMessage<T>]) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(6);
    attrs.push(KeyValue::new(M.system, system.to_owned()));
    if let Some(first) = batch.first() {
        attrs.push(KeyValue::new(M.destination_name, first.queue().to_owned()));
        attrs.push(KeyValue::new(semconv::QUEUE_NAME, first.queue().to_owned()));
    }
    attrs.push(KeyValue::new(M.operation_type, PROCESS));
    attrs.push(KeyValue::new(M.operation_name, PROCESS));
    attrs.push(KeyValue::new(M.batch_message_count, batch.len() as i64));
    attrs
}

/// The messaging attributes of a queue without a message (a delivery that could not be decoded).
pub(crate) fn queue_attributes(system: &str, queue: &str) -> [KeyValue; 5] {
    [
        KeyValue::new(M.system, system.to_owned()),
        KeyValue::new(M.destination_name, queue.to_owned()),
        KeyValue::new(M.operation_type, PROCESS),
        KeyValue::new(M.operation_name, PROCESS),
        KeyValue::new(semconv::QUEUE_NAME, queue.to_owned()),
    ]
}

/// `messaging.message.id` and the guide's `queue.message_id`.
pub(crate) fn message_id_attributes(id: &str) -> [KeyValue; 2] {
    let id: Arc<str> = id.into();
    [
        KeyValue::new(M.message_id, id.clone()),
        KeyValue::new(semconv::QUEUE_MESSAGE_ID, id),
    ]
}

pub(crate) use gorax_trace::span::record_error_on as record_error;

/// A handler's error: status Error, `error.type`, and `messaging.process.exception` as a span
/// event or a log record (`OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN`).
pub(crate) fn record_process_error<E: std::fmt::Display + ?Sized>(span: &SpanRef<'_>, error: &E) {
    gorax_trace::span::record_exception_on(
        span,
        error,
        gorax_trace::span::Exception::MESSAGING_PROCESS,
    )
}

/// A failed send: as [`record_process_error`], with `messaging.send.exception`.
pub(crate) fn record_send_error<E: std::fmt::Display + ?Sized>(span: &SpanRef<'_>, error: &E) {
    gorax_trace::span::record_exception_on(
        span,
        error,
        gorax_trace::span::Exception::MESSAGING_SEND,
    )
}

/// A handler that panicked: status Error, `error.type` `panic`, an `exception` event.
pub(crate) fn record_panic(span: &SpanRef<'_>) {
    if !span.is_recording() {
        return;
    }
    span.add_event(
        semconv::EXCEPTION_EVENT,
        vec![
            KeyValue::new(semconv::EXCEPTION_TYPE, "panic"),
            KeyValue::new(semconv::EXCEPTION_MESSAGE, "the handler panicked"),
        ],
    );
    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "panic"));
    span.set_status(Status::error("the handler panicked"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(span_name(SEND, "gorax-executions"), "send gorax-executions");
    }
}
