//! The gorax-trace demo's building blocks, shared by the example binaries and the end-to-end
//! tests.

pub mod journey;
pub mod participant;
