//! Root package of the peerbook workspace (not published): the cross-backend tests
//! live in `tests/`; the comparative benchmarks are the `peerbook-bench` crate.

/// The README's example, compiled and run as a doctest so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
