//! gRPC mode: which failure rule a call is judged by. The call itself is
//! [`GrpcCall`](gorax_trace::rpcconv::GrpcCall).

use gorax_trace::httpconv::ClassifyFailure;
use gorax_trace::rpcconv::{GrpcCall, GrpcErrors};

use crate::config::Config;

/// The server rule of the stable conventions: `error.type` the status code's name.
static NAMED_SERVER_ERRORS: GrpcErrors = GrpcErrors::server().with_code_names();

/// The failure classifier of `call`: the layer's, but the stable conventions' naming rule where
/// the layer keeps its gRPC default.
pub(crate) fn classifier<'a>(call: &GrpcCall, config: &'a Config) -> &'a dyn ClassifyFailure {
    if call.mode().emits_stable() && config.grpc_default_classifier {
        &NAMED_SERVER_ERRORS
    } else {
        &*config.classify
    }
}
