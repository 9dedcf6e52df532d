//! [`GrpcClientLayer`] and its configuration.

use std::sync::Arc;

use gorax_trace::conventions::RpcSemconv;
use gorax_trace::rpcconv::{GrpcMethods, GrpcTarget};
use gorax_trace::{Binding, SdkTracer, TelemetryHandle};
use tower_layer::Layer;

use super::config::Config;
use super::service::GrpcClientService;

/// A tower [`Layer`] that traces outbound gRPC calls (see the [module](self) documentation).
///
/// Records with the [installed](gorax_trace::Telemetry::install) handle, resolved per call (the
/// layer may be built before [`gorax_trace::init`]), and injects with that handle's propagators;
/// [`with_telemetry`](Self::with_telemetry) fixes one.
#[derive(Debug, Clone, Default)]
pub struct GrpcClientLayer {
    config: Arc<Config>,
}

impl GrpcClientLayer {
    /// A layer recording with the installed handle.
    pub fn new() -> Self {
        Self::default()
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Records with this handle (a [`Telemetry`](gorax_trace::Telemetry) or a
    /// [`TelemetryHandle`]) instead of the installed one.
    pub fn with_telemetry(mut self, telemetry: impl Into<TelemetryHandle>) -> Self {
        self.config().binding = Binding::fixed(telemetry);
        self
    }

    /// Records with this tracer (e.g. of a test provider) and default settings.
    pub fn with_tracer(self, tracer: SdkTracer) -> Self {
        self.with_telemetry(tracer)
    }

    /// The target of the channel below (`dns:///notify.internal:50051`, a tonic `Endpoint`'s
    /// `http://host:port`, `unix:///run/x.sock`, ...): the source of `server.address` and
    /// `server.port`, parsed once here ([`GrpcTarget`]).
    ///
    /// ```
    /// use gorax_trace_client::grpc::GrpcClientLayer;
    ///
    /// let layer = GrpcClientLayer::new().with_target("dns:///notify.internal:50051");
    /// ```
    pub fn with_target(mut self, target: &str) -> Self {
        self.config().target = Some(GrpcTarget::parse(target));
        self
    }

    /// Chooses the RPC conventions (see the [module](self) documentation) instead of the
    /// handle's mode.
    pub fn with_rpc_semconv(mut self, mode: RpcSemconv) -> Self {
        self.config().semconv = Some(mode);
        self
    }

    /// Which methods are recognized (default: every method unless the server answers
    /// `UNIMPLEMENTED`); [`GrpcMethods::only`] lists them.
    pub fn with_grpc_methods(mut self, methods: GrpcMethods) -> Self {
        self.config().methods = methods;
        self
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            config: self.config.clone(),
        }
    }
}
