//! The [`PeerBook`] API as `async fn`: each method hands the matching blocking call
//! to [`AsyncPeerBook::read`] or [`AsyncPeerBook::write`], owning its arguments so
//! the call can outlive the caller's borrow. Docs of each call: the [`PeerBook`]
//! method of the same name.

use std::time::Duration;

#[cfg(doc)]
use peerbook::PeerBook;
use peerbook::{
    AddressSource, Backend, Candidate, CandidateQuery, ExportDocument, ExportOptions, ImportMode,
    ImportReport, MasterKey, NewPeer, PeerInput, PeerQuery, PeerRecord, QualityUpdate,
    RepairReport, RetentionSettings, Secret, SessionObservation, StorageStats, VerifyReport,
};

use crate::{AsyncPeerBook, Result};

/// `kind { name(mode arg: Type, ..) -> T; .. }` becomes `async fn name` calling the
/// method of the same name on the reader (`read`) or the writer (`write`). A `ref`
/// argument is borrowed by the caller and cloned for the call (`to_owned`), a `val`
/// argument moves.
macro_rules! calls {
    ($via:ident { $($(#[$doc:meta])* $name:ident($($mode:ident $arg:ident: $ty:ty),*) -> $ret:ty;)* }) => {$(
        $(#[$doc])*
        pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
            $(let $arg = calls!(@own $mode $arg);)*
            self.$via(move |book| book.$name($(calls!(@pass $mode $arg)),*)).await
        }
    )*};
    (@own ref $arg:ident) => { $arg.to_owned() };
    (@own val $arg:ident) => { $arg };
    (@pass ref $arg:ident) => { &$arg };
    (@pass val $arg:ident) => { $arg };
}

impl<B: Backend + 'static> AsyncPeerBook<B> {
    calls! { read {
        /// [`PeerBook::get_peer`].
        get_peer(ref peer_id: &str) -> Option<PeerRecord>;
        /// [`PeerBook::query_peers`].
        query_peers(ref query: &PeerQuery) -> Vec<PeerRecord>;
        /// [`PeerBook::get_reconnection_candidates`].
        get_reconnection_candidates(ref query: &CandidateQuery) -> Vec<Candidate>;
        /// [`PeerBook::get_reconnection_candidates_by_address`].
        get_reconnection_candidates_by_address(ref query: &CandidateQuery, val recent: Duration) -> Vec<Candidate>;
        /// [`PeerBook::get_storage_stats`].
        get_storage_stats() -> StorageStats;
        /// [`PeerBook::needs_cleanup`].
        needs_cleanup() -> bool;
        /// [`PeerBook::verify`].
        verify() -> VerifyReport;
        /// [`PeerBook::export_data`].
        export_data(val options: ExportOptions) -> ExportDocument;
        /// [`PeerBook::open_shared_secret`].
        open_shared_secret(ref record: &PeerRecord) -> Option<Secret>;
        /// [`PeerBook::open_ice_credential`].
        open_ice_credential(ref record: &PeerRecord, val index: usize) -> Option<Secret>;
    }}

    calls! { write {
        /// [`PeerBook::learn_peer`].
        learn_peer(val peer: NewPeer) -> PeerRecord;
        /// [`PeerBook::replace_peer`].
        replace_peer(val peer: NewPeer) -> PeerRecord;
        /// [`PeerBook::record_session`].
        record_session(ref peer_id: &str, ref observation: &SessionObservation) -> PeerRecord;
        /// [`PeerBook::add_address`].
        add_address(ref peer_id: &str, ref addr: &str, val source: AddressSource, val expires_at: Option<u64>) -> PeerRecord;
        /// [`PeerBook::remove_address`].
        remove_address(ref peer_id: &str, ref addr: &str) -> PeerRecord;
        /// [`PeerBook::record_address_result`].
        record_address_result(ref peer_id: &str, ref addr: &str, val ok: bool) -> PeerRecord;
        /// [`PeerBook::remove_peer`].
        remove_peer(ref peer_id: &str) -> bool;
        /// [`PeerBook::update_last_seen`].
        update_last_seen(ref peer_id: &str) -> PeerRecord;
        /// [`PeerBook::increment_reconnection_attempts`].
        increment_reconnection_attempts(ref peer_id: &str) -> PeerRecord;
        /// [`PeerBook::cleanup_stale_peers`].
        cleanup_stale_peers() -> usize;
        /// [`PeerBook::cleanup_lru`].
        cleanup_lru(val n: usize) -> usize;
        /// [`PeerBook::repair`].
        repair() -> RepairReport;
        /// [`PeerBook::rotate_key`].
        rotate_key(ref new_key: &MasterKey) -> usize;
        /// [`PeerBook::clear_all`].
        clear_all() -> ();
        /// [`PeerBook::import_data`].
        import_data(ref doc: &ExportDocument, val mode: ImportMode) -> ImportReport;
    }}

    /// [`PeerBook::flush`], after every write handed off before it (awaited or
    /// not).
    pub async fn flush(&self) -> Result<()> {
        self.writes_handed_off().await?;
        self.write(|book| book.flush()).await
    }

    /// [`PeerBook::store_peer`]: a [`NewPeer`] upsert or a whole [`PeerRecord`].
    pub async fn store_peer(&self, peer: impl Into<PeerInput>) -> Result<PeerRecord> {
        let peer = peer.into();
        self.write(move |book| book.store_peer(peer)).await
    }

    /// [`PeerBook::set_metadata`].
    pub async fn set_metadata(
        &self,
        peer_id: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<PeerRecord> {
        let (peer_id, key) = (peer_id.to_owned(), key.to_owned());
        let value = value.map(str::to_owned);
        self.write(move |book| book.set_metadata(&peer_id, &key, value.as_deref()))
            .await
    }

    /// [`PeerBook::update_connection_quality`].
    pub async fn update_connection_quality(
        &self,
        peer_id: &str,
        update: impl Into<QualityUpdate>,
    ) -> Result<PeerRecord> {
        let (peer_id, update) = (peer_id.to_owned(), update.into());
        self.write(move |book| book.update_connection_quality(&peer_id, update))
            .await
    }

    /// [`PeerBook::update_peer`]: `change` runs on the writer with the book's
    /// writer lock held (it must not call the book).
    pub async fn update_peer<F>(&self, peer_id: &str, change: F) -> Result<PeerRecord>
    where
        F: FnOnce(&mut PeerRecord) -> peerbook::Result<()> + Send + 'static,
    {
        let peer_id = peer_id.to_owned();
        self.write(move |book| book.update_peer(&peer_id, change))
            .await
    }

    /// [`PeerBook::create_peer`] (seals the secrets; nothing is stored).
    pub async fn create_peer(&self, new: NewPeer) -> Result<PeerRecord> {
        self.read(move |book| book.create_peer(new)).await
    }

    /// [`PeerBook::retention`] (no I/O).
    pub fn retention(&self) -> RetentionSettings {
        self.inner.book().retention()
    }

    /// [`PeerBook::is_stale`] (no I/O).
    pub fn is_stale(&self, record: &PeerRecord, now: u64) -> bool {
        self.inner.book().is_stale(record, now)
    }

    /// [`PeerBook::needs_reopen`] (no I/O).
    pub fn needs_reopen(&self) -> bool {
        self.inner.book().needs_reopen()
    }
}
