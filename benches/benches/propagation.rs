//! `traceparent` extract and inject: gorax's parser vs the SDK's `TraceContextPropagator`.
fn main() {}
