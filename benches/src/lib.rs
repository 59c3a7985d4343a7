//! Criterion benches comparing the backends (see docs/benchmarks.md).
