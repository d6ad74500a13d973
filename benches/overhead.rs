//! Criterion benches (being written; see BENCHMARKS.md once generated).
fn main() {}
