//! [`BookUnderTest`]: the book API the store rules drive, so the same rules run
//! on a [`PeerBook`] ([`Direct`]) and on any wrapper of one (an async front run
//! through a runtime's `block_on`, say) that implements the trait.
//!
//! The calls are listed once, in [`book_calls!`](crate::book_calls): the trait
//! and its [`PeerBook`] impl are generated from that list, and a wrapper's impl can
//! be too (see the macro).

use crate::backend::Backend;
use crate::{Options, PeerBook, Result};

/// Passes the book API the store rules use, as a list of
/// `$(#[doc])* fn name(arg: Type, ..) -> T;` (each call returns
/// `peerbook::Result<T>`), to the macro named `$callback`, which must be in scope
/// where `book_calls!` is invoked. A wrapper implements [`BookUnderTest`] by
/// writing `open`, `close` and `backend` by hand and generating the rest:
///
/// ```ignore
/// macro_rules! forward {
///     ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
///         fn $name(&self, $($arg: $ty),*) -> peerbook::Result<$ret> {
///             block_on(self.inner.$name($($arg),*))
///         }
///     )*};
/// }
/// impl<B: Backend + 'static> BookUnderTest for MyBook<B> {
///     type Backend = B;
///     // fn open, fn close, fn backend ...
///     peerbook::book_calls!(forward);
/// }
/// ```
#[macro_export]
macro_rules! book_calls {
    ($callback:ident) => {
        $callback! {
            /// [`PeerBook::get_peer`](crate::PeerBook::get_peer).
            fn get_peer(peer_id: &str) -> Option<$crate::PeerRecord>;
            /// [`PeerBook::query_peers`](crate::PeerBook::query_peers).
            fn query_peers(query: &$crate::PeerQuery) -> Vec<$crate::PeerRecord>;
            /// [`PeerBook::get_reconnection_candidates`](crate::PeerBook::get_reconnection_candidates).
            fn get_reconnection_candidates(query: &$crate::CandidateQuery) -> Vec<$crate::Candidate>;
            /// [`PeerBook::get_reconnection_candidates_by_address`](crate::PeerBook::get_reconnection_candidates_by_address).
            fn get_reconnection_candidates_by_address(
                query: &$crate::CandidateQuery,
                recent: ::std::time::Duration
            ) -> Vec<$crate::Candidate>;
            /// [`PeerBook::get_storage_stats`](crate::PeerBook::get_storage_stats).
            fn get_storage_stats() -> $crate::StorageStats;
            /// [`PeerBook::needs_cleanup`](crate::PeerBook::needs_cleanup).
            fn needs_cleanup() -> bool;
            /// [`PeerBook::verify`](crate::PeerBook::verify).
            fn verify() -> $crate::VerifyReport;
            /// [`PeerBook::export_data`](crate::PeerBook::export_data).
            fn export_data(options: $crate::ExportOptions) -> $crate::ExportDocument;
            /// [`PeerBook::open_shared_secret`](crate::PeerBook::open_shared_secret).
            fn open_shared_secret(record: &$crate::PeerRecord) -> Option<$crate::Secret>;
            /// [`PeerBook::open_ice_credential`](crate::PeerBook::open_ice_credential).
            fn open_ice_credential(record: &$crate::PeerRecord, index: usize) -> Option<$crate::Secret>;
            /// [`PeerBook::create_peer`](crate::PeerBook::create_peer).
            fn create_peer(new: $crate::NewPeer) -> $crate::PeerRecord;
            /// [`PeerBook::store_peer`](crate::PeerBook::store_peer).
            fn store_peer(peer: impl Into<$crate::PeerInput>) -> $crate::PeerRecord;
            /// [`PeerBook::learn_peer`](crate::PeerBook::learn_peer).
            fn learn_peer(peer: $crate::NewPeer) -> $crate::PeerRecord;
            /// [`PeerBook::replace_peer`](crate::PeerBook::replace_peer).
            fn replace_peer(peer: $crate::NewPeer) -> $crate::PeerRecord;
            /// [`PeerBook::update_peer`](crate::PeerBook::update_peer).
            fn update_peer(
                peer_id: &str,
                change: impl FnOnce(&mut $crate::PeerRecord) -> $crate::Result<()> + Send + 'static
            ) -> $crate::PeerRecord;
            /// [`PeerBook::record_session`](crate::PeerBook::record_session).
            fn record_session(peer_id: &str, observation: &$crate::SessionObservation) -> $crate::PeerRecord;
            /// [`PeerBook::add_address`](crate::PeerBook::add_address).
            fn add_address(
                peer_id: &str,
                addr: &str,
                source: $crate::AddressSource,
                expires_at: Option<u64>
            ) -> $crate::PeerRecord;
            /// [`PeerBook::remove_address`](crate::PeerBook::remove_address).
            fn remove_address(peer_id: &str, addr: &str) -> $crate::PeerRecord;
            /// [`PeerBook::record_address_result`](crate::PeerBook::record_address_result).
            fn record_address_result(peer_id: &str, addr: &str, ok: bool) -> $crate::PeerRecord;
            /// [`PeerBook::set_metadata`](crate::PeerBook::set_metadata).
            fn set_metadata(peer_id: &str, key: &str, value: Option<&str>) -> $crate::PeerRecord;
            /// [`PeerBook::remove_peer`](crate::PeerBook::remove_peer).
            fn remove_peer(peer_id: &str) -> bool;
            /// [`PeerBook::update_last_seen`](crate::PeerBook::update_last_seen).
            fn update_last_seen(peer_id: &str) -> $crate::PeerRecord;
            /// [`PeerBook::increment_reconnection_attempts`](crate::PeerBook::increment_reconnection_attempts).
            fn increment_reconnection_attempts(peer_id: &str) -> $crate::PeerRecord;
            /// [`PeerBook::update_connection_quality`](crate::PeerBook::update_connection_quality).
            fn update_connection_quality(
                peer_id: &str,
                update: impl Into<$crate::QualityUpdate>
            ) -> $crate::PeerRecord;
            /// [`PeerBook::cleanup_stale_peers`](crate::PeerBook::cleanup_stale_peers).
            fn cleanup_stale_peers() -> usize;
            /// [`PeerBook::cleanup_lru`](crate::PeerBook::cleanup_lru).
            fn cleanup_lru(n: usize) -> usize;
            /// [`PeerBook::repair`](crate::PeerBook::repair).
            fn repair() -> $crate::RepairReport;
            /// [`PeerBook::rotate_key`](crate::PeerBook::rotate_key).
            fn rotate_key(new_key: &$crate::MasterKey) -> usize;
            /// [`PeerBook::clear_all`](crate::PeerBook::clear_all).
            fn clear_all() -> ();
            /// [`PeerBook::import_data`](crate::PeerBook::import_data).
            fn import_data(doc: &$crate::ExportDocument, mode: $crate::ImportMode) -> $crate::ImportReport;
            /// [`PeerBook::flush`](crate::PeerBook::flush).
            fn flush() -> ();
        }
    };
}

macro_rules! declare {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        $(#[$doc])*
        fn $name(&self, $($arg: $ty),*) -> Result<$ret>;
    )*};
}

macro_rules! forward {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
            PeerBook::$name(self, $($arg),*)
        }
    )*};
}

/// A book the store rules can drive: a [`PeerBook`], or a wrapper that calls one
/// some other way. Every call returns what the [`PeerBook`] method of the same
/// name returns; a wrapper that cannot run a call (its worker is gone) panics.
pub trait BookUnderTest: std::fmt::Debug + Sized + Send + Sync + 'static {
    /// The backend the book runs on.
    type Backend: Backend + 'static;

    /// [`PeerBook::open`], then wrap.
    fn open(backend: Self::Backend, options: Options) -> Result<Self>;

    /// Close the book (waiting for whatever the wrapper has in flight) and give
    /// the backend back, as [`PeerBook::close`].
    fn close(self) -> Result<Self::Backend>;

    /// The backend, for checks below the book (raw scans, injected damage).
    fn backend(&self) -> &Self::Backend;

    crate::book_calls!(declare);
}

impl<B: Backend + 'static> BookUnderTest for PeerBook<B> {
    type Backend = B;

    fn open(backend: B, options: Options) -> Result<Self> {
        PeerBook::open(backend, options)
    }

    fn close(self) -> Result<B> {
        PeerBook::close(self)
    }

    fn backend(&self) -> &B {
        PeerBook::backend(self)
    }

    crate::book_calls!(forward);
}

/// Which [`BookUnderTest`] the store rules open on a backend: the rules are
/// generic over a driver, the [`conformance_tests!`](crate::conformance_tests)
/// macros take one (default [`Direct`]).
pub trait Driver {
    /// The book type over backend `B`.
    type Book<B: Backend + 'static>: BookUnderTest<Backend = B>;
}

/// The [`Driver`] that opens plain [`PeerBook`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

impl Driver for Direct {
    type Book<B: Backend + 'static> = PeerBook<B>;
}
