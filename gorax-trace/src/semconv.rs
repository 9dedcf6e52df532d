//! Every attribute key the gorax-trace family writes, in one place.
//!
//! Three groups:
//! - **Upstream** keys re-exported from [`opentelemetry_semantic_conventions`] (stable HTTP, URL,
//!   network, error and exception keys; the messaging keys are still experimental upstream).
//! - **Legacy HTTP** keys of the pre-1.21 HTTP conventions. The gorax user guide (and dashboards
//!   built on it) use them; they are emitted next to the stable keys when
//!   `OTEL_SEMCONV_STABILITY_OPT_IN=http/dup` (see [`HttpSemconv`](crate::httpconv::HttpSemconv)).
//!   They are spelled here because upstream marks them deprecated.
//! - **gorax** keys the specification lacks: workflow identifiers, the guide's queue keys, and
//!   how a streamed HTTP response body ended.
//!
//! Adapters never spell an attribute key as a string literal; they use these constants.

/// `rpc.method`: the RPC method name, e.g. `Export` (gRPC conventions as collectors and
/// dashboards read them today; see [`RPC_SYSTEM`]).
pub use opentelemetry_semantic_conventions::attribute::RPC_METHOD;
pub use opentelemetry_semantic_conventions::attribute::{
    CLIENT_ADDRESS, CLIENT_PORT, ERROR_TYPE, EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE, HTTP_REQUEST_BODY_SIZE, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_REQUEST_RESEND_COUNT, HTTP_RESPONSE_BODY_SIZE, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE,
    MESSAGING_BATCH_MESSAGE_COUNT, MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_BODY_SIZE, MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE, MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
    MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG, MESSAGING_SYSTEM, NETWORK_PEER_ADDRESS,
    NETWORK_PEER_PORT, NETWORK_PROTOCOL_NAME, NETWORK_PROTOCOL_VERSION, OTEL_STATUS_CODE,
    OTEL_STATUS_DESCRIPTION, SERVER_ADDRESS, SERVER_PORT, URL_FULL, URL_PATH, URL_QUERY,
    URL_SCHEME, URL_TEMPLATE, USER_AGENT_ORIGINAL,
};

/// `rpc.system`: `grpc` for gRPC.
///
/// The gRPC keys ([`RPC_SYSTEM`], [`RPC_SERVICE`], [`RPC_METHOD`], [`RPC_GRPC_STATUS_CODE`]) are
/// the ones collectors, Jaeger and existing dashboards read. Upstream (semantic conventions
/// 1.37+, still experimental) is moving to `rpc.system.name`, a fully-qualified `rpc.method` and
/// a string `rpc.response.status_code`, and marks three of these deprecated, so they are spelled
/// here (and pinned to upstream's spelling by a test).
pub const RPC_SYSTEM: &str = "rpc.system";
/// `rpc.service`: the full service name, e.g. `opentelemetry.proto.collector.trace.v1.TraceService`.
pub const RPC_SERVICE: &str = "rpc.service";
/// `rpc.grpc.status_code`: the numeric gRPC status (`0` OK, `14` UNAVAILABLE, ...).
pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";

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
    pub use opentelemetry_semantic_conventions::metric::{
        HTTP_CLIENT_REQUEST_DURATION, HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_DURATION,
        MESSAGING_CLIENT_OPERATION_DURATION, MESSAGING_PROCESS_DURATION,
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

#[cfg(test)]
mod tests {
    #[test]
    #[allow(deprecated)]
    fn rpc_keys_match_upstream() {
        use opentelemetry_semantic_conventions::attribute as up;
        assert_eq!(super::RPC_SYSTEM, up::RPC_SYSTEM);
        assert_eq!(super::RPC_SERVICE, up::RPC_SERVICE);
        assert_eq!(super::RPC_GRPC_STATUS_CODE, up::RPC_GRPC_STATUS_CODE);
    }
}
