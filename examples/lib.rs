//! The gorax-trace demo's building blocks, shared by the `demo` binary and the end-to-end tests.

pub mod journey;
