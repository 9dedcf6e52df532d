//! How a call ended: its status code, whether it failed and with which `error.type`, on the
//! span (the measurement reads the same rules).

use gorax_trace::httpconv::{ClassifyFailure, ResponseHead};
use gorax_trace::rpcconv::{GrpcCall, GrpcErrors, grpc_status};
use gorax_trace::semconv;
use opentelemetry::KeyValue;
use opentelemetry::trace::Status;

/// The client rule of the stable conventions: `error.type` the status code's name.
static NAMED_CLIENT_ERRORS: GrpcErrors = GrpcErrors::client().with_code_names();

/// The failure rule of a call in its conventions' mode.
pub(crate) fn classifier(call: &GrpcCall) -> &'static GrpcErrors {
    static CLIENT_ERRORS: GrpcErrors = GrpcErrors::client();
    if call.mode().emits_stable() {
        &NAMED_CLIENT_ERRORS
    } else {
        &CLIENT_ERRORS
    }
}

/// The status code of an answer: its `grpc-status`, else (stable conventions) the code a gRPC
/// client makes of its HTTP status.
pub(crate) fn status_code(
    call: &GrpcCall,
    status: http::StatusCode,
    headers: &http::HeaderMap,
) -> Option<u8> {
    grpc_status(headers).or_else(|| {
        call.mode()
            .emits_stable()
            .then(|| gorax_trace::rpcconv::code_of_http_status(status))
            .flatten()
    })
}

/// Records the status of `headers` (response headers or trailers) and the outcome.
pub(crate) fn record_status(
    span: &opentelemetry::trace::SpanRef<'_>,
    call: &GrpcCall,
    status: http::StatusCode,
    headers: &http::HeaderMap,
) {
    let mut attrs = Vec::with_capacity(4);
    let rename = call.end_attributes(status_code(call, status, headers), &mut attrs);
    if let Some(error_type) = classifier(call).classify(&ResponseHead::new(status, headers)) {
        attrs.push(KeyValue::new(semconv::ERROR_TYPE, error_type));
        span.set_status(Status::error(""));
    }
    span.set_attributes(attrs);
    if let Some(name) = rename {
        span.update_name(name);
    }
}

/// A call that failed before any status: `error.type` its type name; the method is resolved.
pub(crate) fn record_failure<E: std::fmt::Display>(
    span: &opentelemetry::trace::SpanRef<'_>,
    call: &GrpcCall,
    error: &E,
) {
    gorax_trace::span::record_exception_on(span, error, gorax_trace::span::Exception::RPC_CLIENT);
    let mut attrs = Vec::with_capacity(2);
    let rename = call.end_attributes(None, &mut attrs);
    span.set_attributes(attrs);
    if let Some(name) = rename {
        span.update_name(name);
    }
}
