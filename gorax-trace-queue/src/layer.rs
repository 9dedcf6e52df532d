//! The consumer [`Layer`] and its builder.

use std::borrow::Cow;
use std::sync::Arc;

use gorax_trace::{Binding, SdkTracer, TelemetryHandle};
use tower_layer::Layer;

use crate::ConsumerTraceService;
use crate::producer::DEFAULT_SYSTEM;

/// How the CONSUMER span relates to the context that created the message. The span always
/// links to that context; this chooses its parent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParentMode {
    /// The message's creation context is the parent (default; one trace from the request that
    /// published the message through its processing). A message without a valid creation
    /// context is processed under the current context (usually none: a new root).
    #[default]
    Parent,
    /// The span is a child of the current context when the service is called (usually none: a
    /// new trace per message) and only links to the creation context. For batch pollers or
    /// untrusted producers.
    LinkOnly,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) binding: Binding,
    pub(crate) parent: ParentMode,
    pub(crate) system: Cow<'static, str>,
}

/// A tower [`Layer`] that traces message handlers: for every
/// [`TracedMessage`](crate::TracedMessage) it extracts the creation context from the headers,
/// records one CONSUMER span `process {queue}` with the messaging attributes, and makes that
/// span's context current while the handler runs (so `tracing` spans, outgoing HTTP calls and
/// messages it sends become children).
///
/// Attributes: `messaging.system`, `messaging.destination.name`, `messaging.message.id`,
/// `messaging.operation.type` and `messaging.operation.name` (`process`), and the guide's
/// `queue.name`, `queue.message_id`, `retry_count`. A handler `Err` sets status Error,
/// `error.type` (the error's type name) and an `exception` event; a panic does the same with
/// `error.type` `panic`.
///
/// Defaults (each changed by a `with_*` method):
/// - telemetry: the [installed](gorax_trace::Telemetry::install) handle, resolved per message
///   (so the layer may be built before [`gorax_trace::init`]); [`with_telemetry`](Self::with_telemetry)
///   fixes one;
/// - parent: [`ParentMode::Parent`] (the message's creation context), with a link to it always;
/// - `messaging.system`: the one the adapter set on the message, else [`DEFAULT_SYSTEM`].
///
/// ```
/// use gorax_trace_queue::{ConsumerTraceLayer, ParentMode, TracedMessage};
/// use tower::{ServiceBuilder, service_fn};
///
/// let worker = ServiceBuilder::new()
///     .layer(ConsumerTraceLayer::new().with_parent_mode(ParentMode::Parent))
///     .service(service_fn(|msg: TracedMessage<String>| async move {
///         Ok::<_, std::io::Error>(msg.into_payload().len())
///     }));
/// # let _ = worker;
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerTraceLayer {
    config: Config,
}

impl Default for ConsumerTraceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsumerTraceLayer {
    /// A layer with the defaults listed above.
    pub fn new() -> Self {
        Self {
            config: Config {
                binding: Binding::installed(),
                parent: ParentMode::Parent,
                system: Cow::Borrowed(DEFAULT_SYSTEM),
            },
        }
    }

    /// Records with this handle (a [`Telemetry`](gorax_trace::Telemetry) or a
    /// [`TelemetryHandle`]) instead of the installed one.
    pub fn with_telemetry(mut self, telemetry: impl Into<TelemetryHandle>) -> Self {
        self.config.binding = Binding::fixed(telemetry);
        self
    }

    /// Records with this tracer (e.g. of a test provider) and default settings: a shortcut for
    /// [`with_telemetry`](Self::with_telemetry).
    pub fn with_tracer(self, tracer: SdkTracer) -> Self {
        self.with_telemetry(tracer)
    }

    /// Chooses the parent of the consumer span (default: [`ParentMode::Parent`]).
    pub fn with_parent_mode(mut self, mode: ParentMode) -> Self {
        self.config.parent = mode;
        self
    }

    /// The `messaging.system` written when the message does not name its broker.
    pub fn with_system(mut self, system: impl Into<Cow<'static, str>>) -> Self {
        self.config.system = system.into();
        self
    }
}

impl<S> Layer<S> for ConsumerTraceLayer {
    type Service = ConsumerTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsumerTraceService::new(inner, Arc::new(self.config.clone()))
    }
}
