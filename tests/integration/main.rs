//! Cross-crate integration tests (one binary): export over real protocols, and the journey
//! across server, client and queue.

mod custom_spans;
mod edge;
mod export;
mod export_memory;
mod export_retry;
mod export_shutdown;
mod export_throughput;
mod export_tls;
mod grpc;
mod handle;
mod journey;
mod lifecycle;
mod logs;
mod metrics;
mod promises;
mod reliability;
mod spawn;
mod tracecontext;
