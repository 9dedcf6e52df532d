//! The gorax-trace demo's building blocks, shared by the example binaries and the end-to-end
//! tests.

pub mod journey;
pub mod notifier;
pub mod participant;

/// The README's "Use it" block, compiled as a doc test so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
