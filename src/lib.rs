//! Root package of the peerbook workspace: cross-backend tests and benchmarks live in `tests/` and `benches/`.
