//! Amazon SQS adapter (feature `sqs`).
//!
//! - [`SqsProducer::send`]: a PRODUCER span `send {queue}`, then `SendMessage` with the payload
//!   (JSON) as the body and each header (`traceparent`, `tracestate`, `baggage`, application
//!   headers) as a `String` message attribute. SQS's limits are checked before sending, with a
//!   clear error: at most [`MAX_MESSAGE_ATTRIBUTES`] attributes, valid names, no empty value
//!   (empty header values, such as an empty `tracestate`, are skipped, never sent). The SQS
//!   `MessageId` becomes `messaging.message.id`.
//! - [`SqsConsumer`]: [`receive`](SqsConsumer::receive) long-polls `ReceiveMessage`, asking for
//!   `ApproximateReceiveCount` and all message attributes; `retry_count` is
//!   `ApproximateReceiveCount` − 1. [`process`](SqsConsumer::process) runs a batch through a
//!   handler service (usually wrapped in [`ConsumerTraceLayer`](crate::ConsumerTraceLayer)) and
//!   deletes (acknowledges) only what succeeded: a failed message stays in the queue and comes
//!   back when its visibility timeout ends, or after the configured retry delay
//!   (`ChangeMessageVisibility`).
//! - Dead-lettering: configure a redrive policy on the queue (SQS moves a message after
//!   `maxReceiveCount` receives; [`redrive_policy`] writes the attribute), or let the consumer
//!   move it explicitly ([`SqsConsumer::with_dead_letter_queue`]): a message received more than
//!   the maximum number of times, or whose body does not decode, is sent to the dead-letter
//!   queue with its attributes and then deleted.
//!
//! The adapter takes any [`aws_sdk_sqs::Client`] (e.g. one built with `aws-config`). [`client`]
//! and [`client_from_env`] build one without `aws-config`: region, static credentials and an
//! optional endpoint such as an emulator. That client speaks plain HTTP; with the `sqs-rustls`
//! feature it speaks HTTPS too (rustls with ring), as real AWS needs.
//!
//! ```no_run
//! use gorax_trace_queue::sqs::{self, SqsConsumer, SqsProducer};
//! use gorax_trace_queue::{ConsumerTraceLayer, TracedMessage};
//! use tower::{ServiceBuilder, service_fn};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = sqs::client_from_env()?;
//! let producer = SqsProducer::new(client.clone());
//! producer.send(TracedMessage::new("gorax-executions", "exec-7".to_owned())).await?;
//!
//! let consumer = SqsConsumer::connect(client, "gorax-executions").await?;
//! let mut worker = ServiceBuilder::new()
//!     .layer(ConsumerTraceLayer::new())
//!     .service(service_fn(|msg: TracedMessage<String>| async move {
//!         println!("executing {} (retry {})", msg.payload(), msg.retry_count());
//!         Ok::<_, std::io::Error>(())
//!     }));
//! loop {
//!     consumer.process(&mut worker).await?;
//! }
//! # }
//! ```

mod consumer;
mod producer;

use std::collections::HashMap;

pub use aws_sdk_sqs;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::MessageAttributeValue;

pub use crate::consumer::ProcessReport;
pub use consumer::{Delivery, SqsConsumer, SqsReceipt};
pub use producer::SqsProducer;

use crate::Headers;

/// The `messaging.system` value of this adapter (the OpenTelemetry messaging conventions' value
/// for Amazon SQS).
pub const SYSTEM: &str = "aws_sqs";
/// The most message attributes SQS accepts on one message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// The largest message SQS accepts, body and attributes (names, types and values) together:
/// 1 MiB since August 2025 (it was 256 KiB). A queue's `MaximumMessageSize` may be lower; set
/// it with [`SqsProducer::with_max_message_size`].
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;
/// The attribute that carries `traceparent`, `tracestate` and `baggage` together (a JSON
/// object) when one attribute each would pass [`MAX_MESSAGE_ATTRIBUTES`]: upstream baggage
/// never pushes a message over the limit. Consumers unpack it into the headers.
pub const TRACE_CONTEXT_ATTRIBUTE: &str = "gorax_trace_context";
/// Attribute of a dead-letter copy with no room for the three `dead_letter_*` attributes: one
/// JSON object with `reason`, `source_id`, `deliveries` (and `attributes`, the original string
/// attributes, when even one more attribute did not fit).
pub const DEAD_LETTER_ATTRIBUTE: &str = "dead_letter";
/// Attribute added to a message the consumer dead-letters: the id of the original message.
pub const DEAD_LETTER_SOURCE_ATTRIBUTE: &str = "dead_letter_source_id";
/// Attribute added to a message the consumer dead-letters: its receive count when it was given
/// up.
pub const DEAD_LETTER_DELIVERIES_ATTRIBUTE: &str = "dead_letter_deliveries";
/// Attribute added to a message the consumer dead-letters: why it was given up.
pub const DEAD_LETTER_REASON_ATTRIBUTE: &str = "dead_letter_reason";

const STRING_TYPE: &str = "String";

/// What went wrong talking to SQS or encoding a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqsQueueError {
    /// An SQS request failed.
    #[error("sqs: {0}")]
    Sqs(#[source] Box<aws_sdk_sqs::Error>),
    /// A `SendMessage` timed out or got no usable answer after the request was sent: the
    /// message may or may not be in the queue.
    #[error("sqs: the outcome of SendMessage to `{queue}` is unknown: {source}")]
    OutcomeUnknown {
        /// The queue sent to.
        queue: String,
        /// What failed.
        #[source]
        source: Box<aws_sdk_sqs::Error>,
    },
    /// A [`send_timeout`](crate::Producer::send_timeout) was cut off before SQS answered: the
    /// message may or may not be in the queue.
    #[error(
        "sqs: no answer to SendMessage to `{queue}` within {after:?}; the message may be in the queue"
    )]
    TimedOut {
        /// The queue sent to.
        queue: String,
        /// The wait.
        after: std::time::Duration,
    },
    /// The payload could not be encoded as JSON.
    #[error("cannot encode the payload: {0}")]
    Encode(#[source] serde_json::Error),
    /// The message has more attributes (headers) than SQS accepts.
    #[error(
        "message for queue `{queue}` has {count} attributes (headers {keys:?}); SQS accepts at most {max}"
    )]
    TooManyAttributes {
        /// The queue the message was for.
        queue: String,
        /// The number of attributes the message would have had.
        count: usize,
        /// The limit, [`MAX_MESSAGE_ATTRIBUTES`].
        max: usize,
        /// The header names.
        keys: Vec<String>,
    },
    /// A header name SQS does not accept as an attribute name.
    #[error("header `{0}` is not a valid SQS message attribute name ({1})")]
    InvalidAttributeName(String, &'static str),
    /// A header with an empty value (SQS rejects empty attribute values).
    #[error("header `{0}` has an empty value; SQS rejects empty attribute values")]
    EmptyAttributeValue(String),
    /// SQS answered without a field the adapter needs.
    #[error("sqs: the response has no {0}")]
    MissingField(&'static str),
    /// A setting or environment variable is missing or invalid.
    #[error("sqs configuration: {0}")]
    Config(String),
    /// The handler service reported it cannot take messages any more.
    #[error("the handler service failed: {0}")]
    Handler(String),
    /// The message is larger than SQS (or the configured limit) accepts.
    #[error(
        "message for queue `{queue}` is {size} bytes (body and attributes); the limit is {max}"
    )]
    MessageTooLarge {
        /// The queue the message was for.
        queue: String,
        /// Body plus attribute names, types and values, in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl From<crate::consumer::HandlerUnavailable> for SqsQueueError {
    fn from(e: crate::consumer::HandlerUnavailable) -> Self {
        Self::Handler(e.0)
    }
}

impl SqsQueueError {
    pub(crate) fn sqs(error: impl Into<aws_sdk_sqs::Error>) -> Self {
        Self::Sqs(Box::new(error.into()))
    }
}

/// An SQS client for `region` with static `credentials`, sending to `endpoint_url` when given
/// (an emulator such as `http://127.0.0.1:4566`) and to the regional AWS endpoint otherwise.
///
/// No `aws-config`: no profile files, no instance metadata, no credential refresh. Without the
/// `sqs-rustls` feature the client speaks plain HTTP only. For anything more (IAM roles, SSO),
/// build the client with `aws-config` and pass it to [`SqsProducer::new`] /
/// [`SqsConsumer::connect`] instead.
pub fn client(
    region: impl Into<String>,
    credentials: Credentials,
    endpoint_url: Option<&str>,
) -> aws_sdk_sqs::Client {
    let mut builder = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.into()))
        .credentials_provider(credentials)
        .http_client(http_client());
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_sqs::Client::from_conf(builder.build())
}

/// [`client`] configured from the environment: `AWS_REGION` (or `AWS_DEFAULT_REGION`),
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`, and the endpoint
/// from `AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL` when set.
pub fn client_from_env() -> Result<aws_sdk_sqs::Client, SqsQueueError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .ok_or_else(|| SqsQueueError::Config("AWS_REGION is not set".into()))?;
    let key = var("AWS_ACCESS_KEY_ID")
        .ok_or_else(|| SqsQueueError::Config("AWS_ACCESS_KEY_ID is not set".into()))?;
    let secret = var("AWS_SECRET_ACCESS_KEY")
        .ok_or_else(|| SqsQueueError::Config("AWS_SECRET_ACCESS_KEY is not set".into()))?;
    let credentials = Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "env");
    let endpoint = var("AWS_ENDPOINT_URL_SQS").or_else(|| var("AWS_ENDPOINT_URL"));
    Ok(client(region, credentials, endpoint.as_deref()))
}

#[cfg(feature = "sqs-rustls")]
fn http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

#[cfg(not(feature = "sqs-rustls"))]
fn http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_http()
}

/// The `RedrivePolicy` queue attribute value that makes SQS move a message to
/// `dead_letter_queue_arn` once it was received `max_receive_count` times (set it with
/// `SetQueueAttributes` or at `CreateQueue`).
pub fn redrive_policy(dead_letter_queue_arn: &str, max_receive_count: u32) -> String {
    serde_json::json!({
        "deadLetterTargetArn": dead_letter_queue_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    })
    .to_string()
}

/// Checks an attribute name against SQS's rules.
fn check_attribute_name(name: &str) -> Result<(), SqsQueueError> {
    let invalid = |why| Err(SqsQueueError::InvalidAttributeName(name.to_owned(), why));
    if name.is_empty() || name.len() > 256 {
        return invalid("1 to 256 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return invalid("only A-Z, a-z, 0-9, '_', '-' and '.'");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return invalid("no leading, trailing or consecutive '.'");
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return invalid("the `AWS.` and `Amazon.` prefixes are reserved");
    }
    Ok(())
}

const TRACE_KEYS: [&str; 3] = [
    gorax_trace::propagation::TRACEPARENT_KEY,
    gorax_trace::propagation::TRACESTATE_KEY,
    "baggage",
];

/// Moves the trace context attributes (when two or more are present) into one
/// [`TRACE_CONTEXT_ATTRIBUTE`].
pub(crate) fn pack_trace_context(attrs: &mut HashMap<String, MessageAttributeValue>) {
    let present: Vec<&str> = TRACE_KEYS
        .into_iter()
        .filter(|k| attrs.get(*k).and_then(|v| v.string_value()).is_some())
        .collect();
    if present.len() < 2 {
        return;
    }
    let packed: serde_json::Map<String, serde_json::Value> = present
        .into_iter()
        .filter_map(|k| {
            let v = attrs.remove(k)?;
            Some((k.to_owned(), v.string_value()?.into()))
        })
        .collect();
    attrs.insert(
        TRACE_CONTEXT_ATTRIBUTE.to_owned(),
        string_attribute(&serde_json::Value::Object(packed).to_string()),
    );
}

/// The headers as SQS message attributes, checked against SQS's limits. When one attribute per
/// header would be too many, the trace context goes into one [`TRACE_CONTEXT_ATTRIBUTE`].
pub(crate) fn headers_to_attributes(
    queue: &str,
    headers: &Headers,
) -> Result<HashMap<String, MessageAttributeValue>, SqsQueueError> {
    let mut attrs = HashMap::with_capacity(headers.len());
    for (key, value) in headers.iter() {
        check_attribute_name(key)?;
        if value.is_empty() {
            return Err(SqsQueueError::EmptyAttributeValue(key.to_owned()));
        }
        attrs.insert(key.to_owned(), string_attribute(value));
    }
    if attrs.len() > MAX_MESSAGE_ATTRIBUTES {
        pack_trace_context(&mut attrs);
    }
    if attrs.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(SqsQueueError::TooManyAttributes {
            queue: queue.to_owned(),
            count: attrs.len(),
            max: MAX_MESSAGE_ATTRIBUTES,
            keys: headers.iter().map(|(k, _)| k.to_owned()).collect(),
        });
    }
    Ok(attrs)
}

/// The size SQS counts: the body and each attribute's name, data type and value.
pub(crate) fn message_size(body: &str, attrs: &HashMap<String, MessageAttributeValue>) -> usize {
    body.len()
        + attrs
            .iter()
            .map(|(k, v)| {
                k.len()
                    + v.data_type().len()
                    + v.string_value().map_or(0, str::len)
                    + v.binary_value().map_or(0, |b| b.as_ref().len())
            })
            .sum::<usize>()
}

/// String message attributes as headers (binary and number attributes are not headers); a
/// [`TRACE_CONTEXT_ATTRIBUTE`] is unpacked.
pub(crate) fn attributes_to_headers(
    attrs: Option<&HashMap<String, MessageAttributeValue>>,
) -> Headers {
    let mut headers: Headers = attrs
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != TRACE_CONTEXT_ATTRIBUTE)
        .filter(|(_, v)| v.data_type() == STRING_TYPE || v.data_type().starts_with("String."))
        .filter_map(|(k, v)| Some((k.as_str(), v.string_value()?)))
        .collect();
    let packed = attrs
        .and_then(|a| a.get(TRACE_CONTEXT_ATTRIBUTE))
        .and_then(|v| v.string_value())
        .and_then(|v| serde_json::from_str::<HashMap<String, String>>(v).ok());
    for (k, v) in packed.into_iter().flatten() {
        if TRACE_KEYS.contains(&k.as_str()) {
            headers.insert(k, v);
        }
    }
    headers
}

pub(crate) fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type(STRING_TYPE)
        .string_value(value)
        .build()
        .expect("data_type is set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_limits_are_checked() {
        let ok: Headers = (0..MAX_MESSAGE_ATTRIBUTES)
            .map(|i| (format!("h{i}"), "v"))
            .collect();
        assert_eq!(headers_to_attributes("q", &ok).unwrap().len(), 10);
        let mut too_many = ok.clone();
        too_many.insert("h10", "v");
        let err = headers_to_attributes("q", &too_many).unwrap_err();
        assert!(
            matches!(
                err,
                SqsQueueError::TooManyAttributes {
                    count: 11,
                    max: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("at most 10"), "{err}");
        for bad in ["", "a b", ".a", "a.", "a..b", "AWS.x", "amazon.y", "k:v"] {
            let headers = Headers::from_iter([(bad, "v")]);
            if bad.is_empty() {
                // Headers keep an empty key; SQS does not.
                assert!(headers_to_attributes("q", &headers).is_err());
                continue;
            }
            assert!(
                matches!(
                    headers_to_attributes("q", &headers),
                    Err(SqsQueueError::InvalidAttributeName(..))
                ),
                "{bad}"
            );
        }
        // Empty values never reach SQS: the header map skips them.
        let headers = Headers::from_iter([("tracestate", ""), ("traceparent", "x")]);
        assert_eq!(
            headers_to_attributes("q", &headers)
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["traceparent"]
        );
    }

    #[test]
    fn attributes_round_trip_as_headers() {
        let headers = Headers::from_iter([("traceparent", "tp"), ("baggage", "k=v")]);
        let mut attrs = headers_to_attributes("q", &headers).unwrap();
        attrs.insert(
            "bin".into(),
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(aws_sdk_sqs::primitives::Blob::new(vec![1]))
                .build()
                .unwrap(),
        );
        assert_eq!(attributes_to_headers(Some(&attrs)), headers);
        assert!(attributes_to_headers(None).is_empty());
    }

    #[test]
    fn baggage_never_pushes_a_message_over_the_limit() {
        // 8 application headers + traceparent + tracestate + baggage = 11: packed into 9.
        let mut headers: Headers = (0..8).map(|i| (format!("h{i}"), "v")).collect();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        headers.insert("tracestate", "k=v");
        headers.insert("baggage", "user=1");
        let attrs = headers_to_attributes("q", &headers).unwrap();
        assert_eq!(attrs.len(), 9);
        assert!(attrs.contains_key(TRACE_CONTEXT_ATTRIBUTE));
        assert_eq!(
            attributes_to_headers(Some(&attrs)),
            headers,
            "unpacked on receive"
        );
        // Few headers: one attribute each, as before.
        let small = Headers::from_iter([("traceparent", "tp"), ("baggage", "b")]);
        assert_eq!(headers_to_attributes("q", &small).unwrap().len(), 2);
    }

    #[test]
    fn the_size_counts_body_and_attributes() {
        let attrs = headers_to_attributes("q", &Headers::from_iter([("ab", "xyz")])).unwrap();
        assert_eq!(message_size("body", &attrs), 4 + 2 + "String".len() + 3);
    }

    #[test]
    fn a_dead_letter_copy_keeps_its_reason_with_ten_attributes() {
        use aws_sdk_sqs::types::Message;
        let full: HashMap<String, MessageAttributeValue> = (0..MAX_MESSAGE_ATTRIBUTES)
            .map(|i| (format!("h{i}"), string_attribute("v")))
            .collect();
        let message = Message::builder()
            .message_id("m-1")
            .body("b")
            .set_message_attributes(Some(full))
            .build();
        let attrs = consumer::dead_letter_attributes(&message, "max deliveries", 6);
        assert!(attrs.len() <= MAX_MESSAGE_ATTRIBUTES);
        let record: serde_json::Value =
            serde_json::from_str(attrs[DEAD_LETTER_ATTRIBUTE].string_value().unwrap()).unwrap();
        assert_eq!(record["reason"], "max deliveries");
        assert_eq!(record["source_id"], "m-1");
        assert_eq!(record["attributes"]["h3"], "v");
        // Room for the three: kept apart, as before.
        let roomy = Message::builder().message_id("m-2").body("b").build();
        let attrs = consumer::dead_letter_attributes(&roomy, "bad", 1);
        assert_eq!(
            attrs[DEAD_LETTER_REASON_ATTRIBUTE].string_value(),
            Some("bad")
        );
    }

    #[test]
    fn redrive_policy_is_the_json_sqs_expects() {
        assert_eq!(
            redrive_policy("arn:aws:sqs:us-east-1:000000000000:dlq", 3),
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}"#
        );
    }
}
