//! Cross-crate integration tests (one binary): export over real protocols, and the journey
//! across server, client and queue.

mod export;
mod export_memory;
mod export_retry;
mod handle;
mod journey;
mod reliability;
mod spawn;
mod tracecontext;
