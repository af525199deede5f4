//! Differential state-machine test: a pure reference model of the book (ordered
//! maps + the core's scoring functions) and one `PeerBook` per backend (memory,
//! LMDB, RocksDB, file) stepped through the same random transitions. After every
//! step each book's result equals the model's (errors compared by kind), and every
//! book verifies clean.
//!
//! Every book sits on a [`FailingBackend`]: a `Faulty` step fails the first write
//! of a single-write step, before the engine applies it (the model keeps its state)
//! or after (the model applies the step). The book must answer with the backend
//! error, refuse writes until reopened, and after the reopen agree with the model:
//! the write is wholly there or wholly absent, and no acknowledged write is lost.
//! A `FaultyRead` step fails the nth engine read (get, scan or view, on the backend
//! or on a read view) of a read or write step: the step answers with the backend
//! error, the backend's contents are unchanged, the book is not poisoned, and the
//! same step then run without a fault matches the model.
//!
//! CI runs `PROPTEST_CASES` cases (default 128, set in the config below);
//! `cargo xtask long model` runs thousands. A failure shrinks to a short, readable
//! list of transitions.
//!
//! One test binary, split by role: [`steps`] (the transitions, what they return,
//! and their strategies), [`model`] (the reference model and how each step changes
//! it), [`books`] (the books under test and how each step runs on them); the test
//! itself is below. [`common`] is the cross-backend tests' shared `tests/common`.
//!
//! [`FailingBackend`]: peerbook::conformance::failing::FailingBackend

#[path = "../common/mod.rs"]
mod common;

mod books;
mod model;
mod steps;

use proptest::prelude::*;
use proptest_state_machine::prop_state_machine;

use books::Books;

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        max_shrink_iters: 4096,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn every_backend_matches_the_model(sequential 1..80 => Books);
}
