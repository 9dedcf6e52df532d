//! The gRPC client layer's configuration: a leaf module.

use gorax_trace::Binding;
use gorax_trace::conventions::RpcSemconv;
use gorax_trace::rpcconv::{GrpcMethods, GrpcTarget};

/// What [`GrpcClientLayer`](super::GrpcClientLayer) was built with, shared by its services.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) binding: Binding,
    pub(crate) target: Option<GrpcTarget>,
    pub(crate) methods: GrpcMethods,
    pub(crate) semconv: Option<RpcSemconv>,
}
