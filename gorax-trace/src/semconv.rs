//! Every attribute key the gorax-trace family writes, in one place.
//!
//! Four groups:
//! - **Upstream** keys re-exported from [`opentelemetry_semantic_conventions`] (stable HTTP, URL,
//!   network, error and exception keys).
//! - **Messaging** keys, still `development` upstream: one table per conventions version in
//!   [`messaging`]; the top-level `MESSAGING_*` are those of the version emitted.
//! - **Legacy HTTP** keys of the pre-1.21 HTTP conventions. The gorax user guide (and dashboards
//!   built on it) use them; they are emitted next to the stable keys when
//!   `OTEL_SEMCONV_STABILITY_OPT_IN=http/dup` (see [`HttpSemconv`](crate::httpconv::HttpSemconv)).
//!   They are spelled here because upstream marks them deprecated.
//! - **Old RPC** keys ([`rpc_legacy`]) of the RPC conventions before 1.37, emitted without an `rpc`
//!   opt-in and in `rpc/dup` mode (see [`RpcSemconv`](crate::conventions::RpcSemconv)).
//! - **gorax** keys the specification lacks: workflow identifiers, the guide's queue keys, and
//!   how a streamed HTTP response body ended.
//!
//! Adapters never spell an attribute key as a string literal; they use these constants.

/// The messaging keys of the version the queue crate emits ([`messaging::EMITTED`]).
pub use messaging::dev_384d661::{
    MESSAGING_BATCH_MESSAGE_COUNT, MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_BODY_SIZE, MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE, MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
    MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG, MESSAGING_SYSTEM,
};
/// `rpc.method`: in the stable RPC conventions the fully qualified method
/// (`package.Service/Method`) or `_OTHER`; with the old keys the method's own name (`Export`).
pub use opentelemetry_semantic_conventions::attribute::RPC_METHOD;
/// `rpc.method_original` (stable RPC): the method the client sent, when `rpc.method` is
/// `_OTHER`.
pub use opentelemetry_semantic_conventions::attribute::RPC_METHOD_ORIGINAL;
/// `rpc.system.name` (stable RPC): `grpc`.
pub use opentelemetry_semantic_conventions::attribute::RPC_SYSTEM_NAME;
pub use opentelemetry_semantic_conventions::attribute::{
    CLIENT_ADDRESS, CLIENT_PORT, ERROR_TYPE, EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE, HTTP_REQUEST_BODY_SIZE, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_REQUEST_RESEND_COUNT, HTTP_RESPONSE_BODY_SIZE, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE,
    NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT, NETWORK_PROTOCOL_NAME, NETWORK_PROTOCOL_VERSION,
    OTEL_STATUS_CODE, OTEL_STATUS_DESCRIPTION, SERVER_ADDRESS, SERVER_PORT, URL_FULL, URL_PATH,
    URL_QUERY, URL_SCHEME, URL_TEMPLATE, USER_AGENT_ORIGINAL,
};

/// `rpc.status_code` (stable RPC): the status code's name (`"OK"`, `"UNAVAILABLE"`). Spelled
/// here: opentelemetry-semantic-conventions 0.33.1 (conventions 1.42) still has its previous
/// name, `rpc.response.status_code`, which v1.45.0 renamed.
pub const RPC_STATUS_CODE: &str = "rpc.status_code";
/// Prefix of captured request metadata in the stable RPC conventions:
/// `rpc.request.metadata.<lowercase key>`.
pub const RPC_REQUEST_METADATA_PREFIX: &str = "rpc.request.metadata.";
/// Prefix of captured response metadata in the stable RPC conventions:
/// `rpc.response.metadata.<lowercase key>`.
pub const RPC_RESPONSE_METADATA_PREFIX: &str = "rpc.response.metadata.";

/// The old RPC keys (conventions before 1.37, still what many collectors and dashboards read),
/// emitted without an `rpc` opt-in and in `rpc/dup` mode; deprecated upstream, so spelled here.
pub mod rpc_legacy {
    /// `rpc.system`: `grpc` for gRPC; replaced by [`RPC_SYSTEM_NAME`](super::RPC_SYSTEM_NAME).
    pub const RPC_SYSTEM: &str = "rpc.system";
    /// `rpc.service`: the full service name, e.g.
    /// `opentelemetry.proto.collector.trace.v1.TraceService`; now part of
    /// [`RPC_METHOD`](super::RPC_METHOD).
    pub const RPC_SERVICE: &str = "rpc.service";
    /// `rpc.grpc.status_code`: the numeric gRPC status (`0` OK, `14` UNAVAILABLE, ...); replaced
    /// by [`RPC_STATUS_CODE`](super::RPC_STATUS_CODE).
    pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
}

pub use opentelemetry_semantic_conventions::resource::{
    DEPLOYMENT_ENVIRONMENT_NAME, SERVICE_NAME, SERVICE_VERSION,
};

/// Prefix of captured request headers: `http.request.header.<lowercase name>` (stable HTTP
/// conventions).
pub const HTTP_REQUEST_HEADER_PREFIX: &str = "http.request.header.";
/// Prefix of captured response headers: `http.response.header.<lowercase name>` (stable HTTP
/// conventions).
pub const HTTP_RESPONSE_HEADER_PREFIX: &str = "http.response.header.";

/// Name of the event that [`record_error`](crate::span::record_error) adds (OpenTelemetry
/// exception conventions).
pub const EXCEPTION_EVENT: &str = "exception";

/// Every metric name the family records, with the semantic conventions' names where they have
/// one (all durations in seconds, histograms with
/// [`DURATION_BUCKETS`](crate::metrics::DURATION_BUCKETS)).
pub mod metric {
    /// The messaging metrics of the version the queue crate emits
    /// ([`messaging::EMITTED`](super::messaging::EMITTED)).
    pub use super::messaging::dev_384d661::{
        MESSAGING_CLIENT_OPERATION_DURATION, MESSAGING_PROCESS_DURATION,
    };
    pub use opentelemetry_semantic_conventions::metric::{
        HTTP_CLIENT_REQUEST_DURATION, HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_DURATION,
        OTEL_SDK_EXPORTER_SPAN_EXPORTED, OTEL_SDK_PROCESSOR_SPAN_PROCESSED,
        RPC_CLIENT_CALL_DURATION, RPC_SERVER_CALL_DURATION,
    };
    /// `gorax.exporter.retries`: OTLP span export requests repeated after a retryable answer (no
    /// upstream name).
    pub const GORAX_EXPORTER_RETRIES: &str = "gorax.exporter.retries";
    /// OTLP metric pushes, by outcome (`error.type` for the lost and skipped ones).
    pub const GORAX_EXPORTER_METRIC_PUSHES: &str = "gorax.exporter.metric_pushes";
    /// `gorax.metrics.exemplars.skipped`: exemplars not kept because their store was busy or
    /// full (no upstream name).
    pub const GORAX_EXEMPLARS_SKIPPED: &str = "gorax.metrics.exemplars.skipped";
    /// `gorax.keep.traces`: local trees keep mode exported or discarded (by
    /// [`GORAX_KEEP_OUTCOME`](super::GORAX_KEEP_OUTCOME)).
    pub const GORAX_KEEP_TRACES: &str = "gorax.keep.traces";
    /// `gorax.keep.spans.evicted`: buffered spans keep mode evicted over its bounds.
    pub const GORAX_KEEP_SPANS_EVICTED: &str = "gorax.keep.spans.evicted";
}

/// `gorax.keep.outcome` of [`metric::GORAX_KEEP_TRACES`]: `kept` or `discarded`.
pub const GORAX_KEEP_OUTCOME: &str = "gorax.keep.outcome";

/// `gorax.http.response.body.outcome`: how the response body of a server span that covered
/// it ended: `completed` (its last frame was sent), `failed` (it yielded an error) or
/// `abandoned` (dropped before its end: the client went away, or the server stopped sending).
/// The HTTP conventions have no such key.
pub const GORAX_HTTP_RESPONSE_BODY_OUTCOME: &str = "gorax.http.response.body.outcome";
/// `gorax.http.response.time_to_first_frame`: seconds (double) from the response head to the
/// first data frame of its body (time to first token of an LLM stream, first event of an SSE
/// stream). The HTTP conventions have no such key.
pub const GORAX_HTTP_RESPONSE_TIME_TO_FIRST_FRAME: &str = "gorax.http.response.time_to_first_frame";
/// `error.type` of a server span whose response body was dropped before its end and counted as
/// a failure (the conventions' "connection dropped before response body was sent" example sets
/// `error.type` beside the status code the head had sent).
pub const ERROR_TYPE_RESPONSE_ABANDONED: &str = "response_abandoned";

/// `error.type` of an error whose type is not known: a `dyn Error` that is none of the types
/// [`span::record_error`](crate::span::record_error) recognises (the conventions' fallback value).
pub const ERROR_TYPE_OTHER: &str = "_OTHER";

/// `error.type` of spans dropped because the export queue was full (in spans).
pub const ERROR_TYPE_QUEUE_FULL: &str = "queue_full";
/// `error.type` of spans dropped because the export queue's byte budget was reached.
pub const ERROR_TYPE_QUEUE_BYTES_FULL: &str = "queue_bytes_full";
/// `error.type` of spans lost in a failed export call.
pub const ERROR_TYPE_EXPORT_FAILED: &str = "export_failed";

/// Legacy HTTP keys (HTTP conventions before v1.21), emitted only in `http/dup` mode.
pub mod legacy {
    /// `http.method`: replaced by [`HTTP_REQUEST_METHOD`](super::HTTP_REQUEST_METHOD).
    pub const HTTP_METHOD: &str = "http.method";
    /// `http.target`: path and query; replaced by [`URL_PATH`](super::URL_PATH) and
    /// [`URL_QUERY`](super::URL_QUERY).
    pub const HTTP_TARGET: &str = "http.target";
    /// `http.status_code`: replaced by
    /// [`HTTP_RESPONSE_STATUS_CODE`](super::HTTP_RESPONSE_STATUS_CODE).
    pub const HTTP_STATUS_CODE: &str = "http.status_code";
    /// `http.user_agent`: replaced by [`USER_AGENT_ORIGINAL`](super::USER_AGENT_ORIGINAL).
    pub const HTTP_USER_AGENT: &str = "http.user_agent";
    /// `http.scheme`: replaced by [`URL_SCHEME`](super::URL_SCHEME).
    pub const HTTP_SCHEME: &str = "http.scheme";
    /// `http.url`: the full client URL; replaced by [`URL_FULL`](super::URL_FULL).
    pub const HTTP_URL: &str = "http.url";
    /// `http.flavor`: replaced by [`NETWORK_PROTOCOL_VERSION`](super::NETWORK_PROTOCOL_VERSION).
    pub const HTTP_FLAVOR: &str = "http.flavor";
    /// `deployment.environment`: replaced by
    /// [`DEPLOYMENT_ENVIRONMENT_NAME`](super::DEPLOYMENT_ENVIRONMENT_NAME); still read from
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment";
}

/// `tenant_id`: the gorax tenant that owns the workflow (gorax user guide).
pub const TENANT_ID: &str = "tenant_id";
/// `workflow_id`: the workflow definition being executed (gorax user guide).
pub const WORKFLOW_ID: &str = "workflow_id";
/// `execution_id`: one run of a workflow (gorax user guide).
pub const EXECUTION_ID: &str = "execution_id";
/// `node_id`: a step (node) of a workflow (gorax user guide).
pub const NODE_ID: &str = "node_id";
/// `node_type`: the kind of a workflow step, e.g. `http`, `transform` (gorax user guide).
pub const NODE_TYPE: &str = "node_type";

/// `queue.name`: the guide's name for the queue; the same value as
/// [`MESSAGING_DESTINATION_NAME`].
pub const QUEUE_NAME: &str = "queue.name";
/// `queue.message_id`: the broker's message id (not the execution id, as the Go original wrote);
/// the same value as [`MESSAGING_MESSAGE_ID`].
pub const QUEUE_MESSAGE_ID: &str = "queue.message_id";
/// `retry_count`: how many times this message was delivered before this delivery, taken from the
/// broker's delivery count (SQS `ApproximateReceiveCount - 1`, Redis `XPENDING` count - 1).
pub const RETRY_COUNT: &str = "retry_count";

/// `messaging.dead_letter`: the span event recorded on the delivery attempt that dead-letters a
/// message (gorax; the messaging conventions have no dead-letter event).
pub const DEAD_LETTER_EVENT: &str = "messaging.dead_letter";
/// `messaging.dead_letter.reason`: span and event attribute with the reason a message was
/// dead-lettered (gorax).
pub const DEAD_LETTER_REASON: &str = "messaging.dead_letter.reason";
/// `messaging.message.delivery_count`: the delivery count of a dead-lettered message, this
/// delivery included (gorax).
pub const DELIVERY_COUNT: &str = "messaging.message.delivery_count";

/// The messaging conventions, one table per version.
///
/// Messaging is still `development` in the semantic conventions and its names keep moving, so
/// the queue crate (`gorax-trace-queue`) takes every messaging name it writes from one
/// [`MessagingConventions`](messaging::MessagingConventions) table:
/// [`EMITTED`](messaging::EMITTED). A version is a module holding its keys and its table
/// ([`dev_384d661`](messaging::dev_384d661) today); when a stable messaging version is released, it becomes a
/// second module and the `OTEL_SEMCONV_STABILITY_OPT_IN` values `messaging` and `messaging/dup`
/// (reserved) select it, as `http` and `rpc` do for theirs.
///
/// The names that are this project's own (the guide's [`QUEUE_NAME`], [`QUEUE_MESSAGE_ID`],
/// [`RETRY_COUNT`], the
/// dead-letter keys, the `messaging.system` values `gorax_memory`, `redis`, `nats`) are in no
/// version: the README's extras table lists them.
pub mod messaging {
    /// The names one version of the messaging conventions gives: span attributes, exception
    /// events and metrics.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct MessagingConventions {
        /// Which version this is, as the README names it.
        pub version: &'static str,
        /// The schema URL of the release these names are exactly; `None` when they match no
        /// single released version.
        pub schema_url: Option<&'static str>,
        /// `messaging.system`
        pub system: &'static str,
        /// `messaging.destination.name`
        pub destination_name: &'static str,
        /// `messaging.operation.type`
        pub operation_type: &'static str,
        /// The `messaging.operation.type` (and `.name`) of a producer span: `send`.
        pub send: &'static str,
        /// The `messaging.operation.type` (and `.name`) of a consumer span: `process`.
        pub process: &'static str,
        /// `messaging.operation.name`
        pub operation_name: &'static str,
        /// `messaging.message.id`
        pub message_id: &'static str,
        /// `messaging.message.body.size`
        pub message_body_size: &'static str,
        /// `messaging.batch.message_count`
        pub batch_message_count: &'static str,
        /// `messaging.consumer.group.name`
        pub consumer_group_name: &'static str,
        /// The exception event (or log record) of a failed send.
        pub send_exception: &'static str,
        /// The exception event (or log record) of a failed handler.
        pub process_exception: &'static str,
        /// The producer's histogram (s).
        pub client_operation_duration: &'static str,
        /// The consumer's histogram (s).
        pub process_duration: &'static str,
    }

    /// The messaging conventions of semantic-conventions commit `384d66161cb1` (2026-08-20, the
    /// registry snapshot in `../shared/semconv`, after v1.44.0; messaging `development`).
    ///
    /// What the queue crate emits was compared with that snapshot's `model/messaging` and
    /// `docs/messaging`: a producer span per send (`messaging.send.producer`, kind PRODUCER,
    /// named `send {queue}`, its context injected as the creation context), a consumer span per
    /// handler call (`messaging.process.consumer`, kind CONSUMER, `process {queue}`,
    /// `messaging.batch.message_count` for a batch), `messaging.send.exception` /
    /// `messaging.process.exception`, and the two duration histograms. The snapshot holds no
    /// copy of v1.44.0 itself, so no release is claimed: [`CONVENTIONS`](dev_384d661::CONVENTIONS) has no schema URL.
    pub mod dev_384d661 {
        use super::MessagingConventions;

        /// `messaging.system`
        pub const MESSAGING_SYSTEM: &str = "messaging.system";
        /// `messaging.destination.name`
        pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
        /// `messaging.operation.type`
        pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
        /// `messaging.operation.name`
        pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
        /// `messaging.message.id`
        pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
        /// `messaging.message.body.size`
        pub const MESSAGING_MESSAGE_BODY_SIZE: &str = "messaging.message.body.size";
        /// `messaging.batch.message_count`
        pub const MESSAGING_BATCH_MESSAGE_COUNT: &str = "messaging.batch.message_count";
        /// `messaging.consumer.group.name`
        pub const MESSAGING_CONSUMER_GROUP_NAME: &str = "messaging.consumer.group.name";
        /// `messaging.send.exception`
        pub const MESSAGING_SEND_EXCEPTION: &str = "messaging.send.exception";
        /// `messaging.process.exception`
        pub const MESSAGING_PROCESS_EXCEPTION: &str = "messaging.process.exception";
        /// `messaging.client.operation.duration` (histogram, s)
        pub const MESSAGING_CLIENT_OPERATION_DURATION: &str = "messaging.client.operation.duration";
        /// `messaging.process.duration` (histogram, s)
        pub const MESSAGING_PROCESS_DURATION: &str = "messaging.process.duration";
        /// `messaging.rabbitmq.destination.routing_key` (RabbitMQ)
        pub const MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY: &str =
            "messaging.rabbitmq.destination.routing_key";
        /// `messaging.rabbitmq.message.delivery_tag` (RabbitMQ)
        pub const MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG: &str =
            "messaging.rabbitmq.message.delivery_tag";
        /// `messaging.operation.type` (and `.name`) of a producer span: `send`.
        pub const SEND: &str = "send";
        /// `messaging.operation.type` (and `.name`) of a consumer span: `process`.
        pub const PROCESS: &str = "process";

        /// This version's table.
        pub const CONVENTIONS: MessagingConventions = MessagingConventions {
            version: "semantic conventions at commit 384d66161cb1 (after v1.44.0), messaging development",
            schema_url: None,
            system: MESSAGING_SYSTEM,
            destination_name: MESSAGING_DESTINATION_NAME,
            operation_type: MESSAGING_OPERATION_TYPE,
            send: SEND,
            process: PROCESS,
            operation_name: MESSAGING_OPERATION_NAME,
            message_id: MESSAGING_MESSAGE_ID,
            message_body_size: MESSAGING_MESSAGE_BODY_SIZE,
            batch_message_count: MESSAGING_BATCH_MESSAGE_COUNT,
            consumer_group_name: MESSAGING_CONSUMER_GROUP_NAME,
            send_exception: MESSAGING_SEND_EXCEPTION,
            process_exception: MESSAGING_PROCESS_EXCEPTION,
            client_operation_duration: MESSAGING_CLIENT_OPERATION_DURATION,
            process_duration: MESSAGING_PROCESS_DURATION,
        };
    }

    /// The messaging conventions the queue crate emits (in every opt-in mode: no stable
    /// messaging version exists yet).
    pub const EMITTED: MessagingConventions = dev_384d661::CONVENTIONS;
}

#[cfg(test)]
mod tests {
    /// The version table agrees with the upstream crate's (experimental) names and with the
    /// exception events of [`crate::span::Exception`].
    #[test]
    fn messaging_names_match_upstream() {
        use opentelemetry_semantic_conventions::{attribute as up, metric as upm};
        let t = super::messaging::EMITTED;
        for (ours, theirs) in [
            (t.system, up::MESSAGING_SYSTEM),
            (t.destination_name, up::MESSAGING_DESTINATION_NAME),
            (t.operation_type, up::MESSAGING_OPERATION_TYPE),
            (t.operation_name, up::MESSAGING_OPERATION_NAME),
            (t.message_id, up::MESSAGING_MESSAGE_ID),
            (t.message_body_size, up::MESSAGING_MESSAGE_BODY_SIZE),
            (t.batch_message_count, up::MESSAGING_BATCH_MESSAGE_COUNT),
            (t.consumer_group_name, up::MESSAGING_CONSUMER_GROUP_NAME),
            (
                t.client_operation_duration,
                upm::MESSAGING_CLIENT_OPERATION_DURATION,
            ),
            (t.process_duration, upm::MESSAGING_PROCESS_DURATION),
            (
                t.send_exception,
                crate::span::Exception::MESSAGING_SEND.name,
            ),
            (
                t.process_exception,
                crate::span::Exception::MESSAGING_PROCESS.name,
            ),
        ] {
            assert_eq!(ours, theirs);
        }
        assert_eq!(t.schema_url, None, "no released version is claimed");
    }

    #[test]
    #[allow(deprecated)]
    fn rpc_keys_match_upstream() {
        use opentelemetry_semantic_conventions::attribute as up;
        assert_eq!(super::rpc_legacy::RPC_SYSTEM, up::RPC_SYSTEM);
        assert_eq!(super::rpc_legacy::RPC_SERVICE, up::RPC_SERVICE);
        assert_eq!(
            super::rpc_legacy::RPC_GRPC_STATUS_CODE,
            up::RPC_GRPC_STATUS_CODE
        );
    }
}
