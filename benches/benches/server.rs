//! Server layer overhead.
fn main() {}
