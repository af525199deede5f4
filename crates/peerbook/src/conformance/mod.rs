//! The conformance kit: plain test functions that any [`Backend`] can run.
//!
//! Enabled by the cargo feature `conformance`. Every backend crate of this workspace
//! calls the whole kit from its own tests, and a third party's backend can do the
//! same: implement [`Factory`] for your engine and invoke [`conformance_tests!`](crate::conformance_tests)
//! in a test file:
//!
//! ```
//! use peerbook::conformance::Factory;
//! use peerbook::MemoryBackend;
//!
//! /// Fresh storage on every `create` (keep temp dirs alive in the factory),
//! /// the same storage again on `reopen`.
//! struct MyFactory;
//!
//! impl Factory for MyFactory {
//!     type Backend = MemoryBackend; // your engine's backend type
//!     fn create(&self) -> MemoryBackend {
//!         MemoryBackend::new()
//!     }
//!     fn reopen(&self, backend: MemoryBackend) -> MemoryBackend {
//!         backend // drop it and open the same directory again
//!     }
//! }
//!
//! peerbook::conformance_tests!(MyFactory);
//! # fn main() {}
//! ```
//!
//! The functions are grouped by what they test:
//! - [`backend`]: the storage trait itself (point ops, ordered scans with bounds and
//!   early stop, batch atomicity, clear, persistence across reopen);
//! - [`store`]: every [`PeerBook`](crate::PeerBook) operation and every rule of the
//!   design (scoring rows, retention, quota, blacklist, encryption, export and
//!   import, corruption handling), run over the backend;
//! - [`ranking`]: candidates and score-ordered queries equal a full sort, with
//!   ties, recency steps and damaged entries among the best;
//! - [`lifecycle`]: upserts that keep history, discovery, public-key changes,
//!   atomic `update_peer` / `record_session` racing on one peer;
//! - [`concurrency`]: read views, walks and key rotation racing writers, past
//!   blacklist ends, one book per backend instance;
//! - [`migration`]: schema migrations on open (from schema 1, 3 and 4), resumed
//!   after a failed write, and the marker that picks their steps;
//! - [`group`]: the group commit of concurrent Sync writers (every acknowledged
//!   write visible and durable, no return before the engine's write, a failed group
//!   write fails every writer in it);
//! - [`failing`]: [`FailingBackend`](failing::FailingBackend) injects write, flush,
//!   scan and view failures into any backend; a failure never leaves a book lying;
//! - [`hooked`]: [`HookedBackend`](hooked::HookedBackend) runs a test's hook before
//!   each write, flush and clear of any backend (watch or hold writers);
//! - [`fixtures`]: where the workspace's committed fixture books are, and a copy of
//!   one to open;
//! - [`needles`]: the forms a peer id takes on disk, and the files of a directory
//!   holding one (what a clear must leave nowhere);
//! - [`open_failure`]: a failed open of an on-disk backend returns an error of
//!   the expected kind and removes the directories it created, but for the
//!   files the engine is documented to leave (called with the backend's `open`,
//!   which must also make a fresh store).
//!
//! Each function panics with a message naming the broken rule.

use crate::backend::Backend;

pub mod backend;
mod book;
pub mod concurrency;
mod factory;
pub mod failing;
pub mod fixtures;
pub mod group;
pub mod group_stress;
pub mod hooked;
pub mod lifecycle;
pub mod migration;
pub mod needles;
pub mod open_failure;
pub mod ranking;
pub mod store;

pub use book::{BookUnderTest, Direct, Driver};
pub use factory::TempDirFactory;

/// Makes backends for the conformance kit.
///
/// `create` returns a new, empty backend on its own storage (a fresh temp dir for
/// disk engines); the factory keeps whatever must outlive the backend (the temp
/// dir). `reopen` closes a backend and opens the same storage again, as a process
/// restart would.
pub trait Factory {
    /// The backend under test.
    type Backend: Backend + 'static;

    /// A new, empty backend.
    fn create(&self) -> Self::Backend;

    /// Close `backend` (drop it) and open the same storage again.
    fn reopen(&self, backend: Self::Backend) -> Self::Backend;
}

/// [`Factory`] for [`MemoryBackend`](crate::MemoryBackend): "reopen" keeps the data,
/// since clones share it.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryFactory;

impl Factory for MemoryFactory {
    type Backend = crate::MemoryBackend;
    fn create(&self) -> Self::Backend {
        crate::MemoryBackend::new()
    }
    fn reopen(&self, backend: Self::Backend) -> Self::Backend {
        let again = backend.clone();
        drop(backend);
        again
    }
}

/// A small deterministic pseudo-random generator (xorshift64*), so every run of the
/// kit walks the same cases and a failure reproduces exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a fixed non-zero seed).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// A short key over a tiny alphabet (including 0x00 and 0xff) so keys collide and
    /// share prefixes often.
    pub fn key(&mut self, max_len: u64) -> Vec<u8> {
        const ALPHABET: [u8; 5] = [0x00, b'a', b'b', 0x7f, 0xff];
        let len = self.below(max_len) + 1;
        (0..len).map(|_| ALPHABET[self.below(5) as usize]).collect()
    }
}

/// Generates one `#[test]` per conformance function for the factory expression given.
///
/// The expression is evaluated anew in each test; it may name items of the calling
/// module.
///
/// ```
/// peerbook::conformance_tests!(peerbook::conformance::MemoryFactory);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::backend_conformance_tests!($factory);
        $crate::store_conformance_tests!($factory);
        $crate::concurrency_conformance_tests!($factory);
    };
}

/// Generates one `#[test]` per [`backend`] conformance function (the storage trait only).
#[macro_export]
macro_rules! backend_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_group!(
            backend_conformance,
            backend,
            $factory,
            [
                point_ops,
                scan_order_and_bounds,
                batch_semantics,
                clear_empties_everything,
                reads_through_clear,
                persistence_across_reopen,
                concurrent_readers,
                random_ops_match_model,
            ]
        );
    };
}

/// Generates one `#[test]` per [`store`] and [`lifecycle`] conformance function
/// (every PeerBook rule), on books that the [`Driver`] given opens (default
/// [`Direct`]: plain [`PeerBook`](crate::PeerBook)s).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!($factory, $crate::conformance::Direct);
    };
    ($factory:expr, $driver:ty) => {
        $crate::__conformance_group!(
            store_conformance,
            store,
            $factory,
            [
                store_and_get_round_trip,
                update_existing_peer_rewrites_indexes,
                remove_peer,
                invalid_input_changes_nothing,
                quality_index_follows_score,
                candidate_scores_follow_reconnection_score,
                reconnection_candidates_ranking_and_filters,
                query_peers_sorting_and_filters,
                update_last_seen_resets_attempts,
                blacklist_after_failed_attempts,
                connection_quality_partial_update,
                cleanup_stale_peers_rules,
                needs_cleanup_rules,
                cleanup_lru_removes_least_recently_seen,
                quota_max_peers,
                quota_max_bytes,
                eviction_when_asked,
                storage_stats,
                secrets_sealed_and_bound_to_peer,
                wrong_key_refused_at_open,
                rotate_key_keeps_every_secret,
                export_import_round_trip,
                import_is_all_or_nothing,
                import_refuses_other_key_and_bad_documents,
                clear_all,
                corrupt_record_reported_skipped_and_repaired,
                verify_finds_index_damage_and_repair_fixes_it,
                schema_version_too_new_refused,
                version_0_wrong_key_refused_unchanged,
                key_check_without_version_wrong_key_refused_unchanged,
                key_check_without_version_or_peers_wrong_key_refused_unchanged,
                resumed_migration_from_0_ignores_a_damaged_first_seal,
                far_future_timestamps_refused,
                book_persists_across_reopen,
                concurrent_updates_lose_nothing,
            ],
            ($driver)
        );
        $crate::__conformance_group!(
            lifecycle_conformance,
            lifecycle,
            $factory,
            [
                lifecycle_replayed_keeps_history,
                upsert_replaces_given_fields_only,
                learn_peer_counts_no_success,
                public_key_change_refused_unless_replaced,
                an_unset_public_key_is_set_once,
                update_peer_validates_and_changes_nothing_on_error,
                concurrent_record_session_exact,
                addresses_validated_nothing_changed,
                address_results_expiry_and_transfer,
                candidates_prefer_recently_working_address,
            ],
            ($driver)
        );
        $crate::__conformance_group!(
            ranking_conformance,
            ranking,
            $factory,
            [
                candidates_match_full_ranking,
                candidates_skip_damage_among_the_best,
            ]
        );
    };
}

/// Generates one `#[test]` per [`concurrency`] conformance function (views,
/// races between writers and readers, one book per backend), per [`migration`]
/// one (schema migrations), and per [`failing`] and [`group`] one.
#[macro_export]
macro_rules! concurrency_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_group!(
            concurrency_conformance,
            concurrency,
            $factory,
            [
                view_is_a_snapshot,
                paged_query_under_concurrent_updates,
                rotate_key_under_concurrent_writers,
                past_blacklist_ranked_normally,
                second_book_on_one_backend_refused,
            ]
        );
        $crate::__conformance_group!(
            migration_conformance,
            migration,
            $factory,
            [
                schema_1_score_hints_migrate,
                schema_3_index_migrates_after_interruption,
                schema_4_rank_index_migrates_after_interruption,
                migration_marker_picks_the_steps,
            ]
        );
        $crate::__conformance_group!(
            failure_conformance,
            failing,
            $factory,
            [
                injected_write_failures_poison_until_reopen,
                not_applied_failures_poison_nothing,
            ]
        );
        $crate::__conformance_group!(
            group_commit_conformance,
            group,
            $factory,
            [
                group_commit_writers_and_readers,
                group_commit_returns_only_after_the_write,
                failed_group_write_fails_every_waiter,
                refused_group_write_rejects_its_batches_and_rolls_back,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_group {
    ($module:ident, $group:ident, $factory:expr, [$($name:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    let factory = $factory;
                    $crate::conformance::$group::$name(&factory);
                }
            )*
        }
    };
    ($module:ident, $group:ident, $factory:expr, [$($name:ident),* $(,)?], ($driver:ty)) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    let factory = $factory;
                    $crate::conformance::$group::$name::<_, $driver>(&factory);
                }
            )*
        }
    };
}
