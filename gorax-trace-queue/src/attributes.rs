//! The messaging attributes and the error rules shared by producer and consumer spans.

use gorax_trace::semconv;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanRef, Status};

use crate::TracedMessage;

/// `messaging.operation.type` and `messaging.operation.name` of a producer span.
pub(crate) const SEND: &str = "send";
/// `messaging.operation.type` and `messaging.operation.name` of a consumer span.
pub(crate) const PROCESS: &str = "process";

/// `{operation} {queue}`: the span name of the messaging conventions.
pub(crate) fn span_name(operation: &str, queue: &str) -> String {
    let mut name = String::with_capacity(operation.len() + 1 + queue.len());
    name.push_str(operation);
    name.push(' ');
    name.push_str(queue);
    name
}

/// The messaging attributes plus the guide's `queue.*` keys; `retry_count` on consumer spans.
pub(crate) fn message_attributes<T>(
    system: &str,
    operation: &'static str,
    msg: &TracedMessage<T>,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(9);
    attrs.push(KeyValue::new(semconv::MESSAGING_SYSTEM, system.to_owned()));
    attrs.push(KeyValue::new(
        semconv::MESSAGING_DESTINATION_NAME,
        msg.queue().to_owned(),
    ));
    attrs.push(KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, operation));
    attrs.push(KeyValue::new(semconv::MESSAGING_OPERATION_NAME, operation));
    attrs.push(KeyValue::new(semconv::QUEUE_NAME, msg.queue().to_owned()));
    if let Some(id) = msg.message_id() {
        attrs.extend(message_id_attributes(id));
    }
    if operation == PROCESS {
        attrs.push(KeyValue::new(
            semconv::RETRY_COUNT,
            i64::from(msg.retry_count()),
        ));
    }
    attrs
}

/// The attributes of a batch's consumer span: the messaging ones of the first message without
/// its id and retry count (they differ per message), and `messaging.batch.message_count`.
pub(crate) fn batch_attributes<T>(system: &str, batch: &[TracedMessage<T>]) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(6);
    attrs.push(KeyValue::new(semconv::MESSAGING_SYSTEM, system.to_owned()));
    if let Some(first) = batch.first() {
        attrs.push(KeyValue::new(
            semconv::MESSAGING_DESTINATION_NAME,
            first.queue().to_owned(),
        ));
        attrs.push(KeyValue::new(semconv::QUEUE_NAME, first.queue().to_owned()));
    }
    attrs.push(KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, PROCESS));
    attrs.push(KeyValue::new(semconv::MESSAGING_OPERATION_NAME, PROCESS));
    attrs.push(KeyValue::new(
        semconv::MESSAGING_BATCH_MESSAGE_COUNT,
        batch.len() as i64,
    ));
    attrs
}

/// The messaging attributes of a queue without a message (a delivery that could not be decoded).
pub(crate) fn queue_attributes(system: &str, queue: &str) -> [KeyValue; 5] {
    [
        KeyValue::new(semconv::MESSAGING_SYSTEM, system.to_owned()),
        KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, queue.to_owned()),
        KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, PROCESS),
        KeyValue::new(semconv::MESSAGING_OPERATION_NAME, PROCESS),
        KeyValue::new(semconv::QUEUE_NAME, queue.to_owned()),
    ]
}

/// `messaging.message.id` and the guide's `queue.message_id`.
pub(crate) fn message_id_attributes(id: &str) -> [KeyValue; 2] {
    [
        KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_owned()),
        KeyValue::new(semconv::QUEUE_MESSAGE_ID, id.to_owned()),
    ]
}

pub(crate) use gorax_trace::span::record_error_on as record_error;

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
