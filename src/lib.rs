//! Root package of the peerbook workspace (not published): the cross-backend tests
//! live in `tests/` and the comparative benchmarks in `benches/`.

/// The README's example, compiled and run as a doctest so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
