//! Export and import: a versioned JSON document that keeps secrets sealed.
//!
//! ```json
//! { "format": "peerbook-export", "version": 2, "exported_at": 1700000000000,
//!   "key_check": "<base64>", "peers": [ { "peer_id": "...", ... } ] }
//! ```
//!
//! Version 2 (schema 3) adds each peer's `addresses` and `metadata`; a version-1
//! document has neither and imports with both empty.
//!
//! `key_check` is present when secrets are included: importing into a book with
//! another key fails with [`Error::WrongKey`]. Import is all-or-nothing.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::keys::Counters;
use super::{PeerBook, StagedWrite};
use crate::backend::{Backend, Direction, KeyRange, ReadView, Space};
use crate::crypto::{SealedSecret, SecretKind};
use crate::error::{Error, Quota, Result};
use crate::schema::PeerRecord;

/// The `format` field of every export document.
pub const EXPORT_FORMAT: &str = "peerbook-export";
/// The newest export document version this build writes and reads.
pub const EXPORT_VERSION: u32 = 2;

/// A whole book as a portable document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportDocument {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The document version ([`EXPORT_VERSION`]).
    pub version: u32,
    /// When it was exported (ms).
    pub exported_at: u64,
    /// A key check sealed under the exporting book's key; present when secrets are.
    pub key_check: Option<SealedSecret>,
    /// The peers, in peer id order.
    pub peers: Vec<PeerRecord>,
}

impl ExportDocument {
    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Parse a JSON document, checking its format and version first so a document
    /// from a newer peerbook is named as such.
    pub fn from_json(json: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Header {
            format: Option<serde_json::Value>,
            version: Option<serde_json::Value>,
        }
        let header: Header = serde_json::from_str(json)
            .map_err(|e| Error::invalid("document", format!("not a JSON object: {e}")))?;
        match header.format.as_ref().and_then(|v| v.as_str()) {
            Some(EXPORT_FORMAT) => {}
            _ => {
                return Err(Error::invalid(
                    "format",
                    format!("must be \"{EXPORT_FORMAT}\""),
                ))
            }
        }
        let version = header.version.as_ref().and_then(|v| v.as_u64());
        match version {
            Some(v) if v >= 1 && v <= u64::from(EXPORT_VERSION) => {}
            Some(v) if v > u64::from(EXPORT_VERSION) => {
                return Err(Error::invalid(
                    "version",
                    format!("version {v} is newer than this peerbook reads ({EXPORT_VERSION}); upgrade peerbook"),
                ))
            }
            _ => return Err(Error::invalid("version", format!("a whole number 1..={EXPORT_VERSION}"))),
        }
        serde_json::from_str(json).map_err(|e| Error::invalid("document", e.to_string()))
    }
}

/// What [`PeerBook::export_data`] includes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Keep sealed secrets (and a key check) in the document (default true). Without
    /// them, the document can be imported into a book with any key.
    pub include_secrets: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            include_secrets: true,
        }
    }
}

/// How [`PeerBook::import_data`] combines the document with the book.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImportMode {
    /// Add the document's peers, replacing those with the same id (default).
    #[default]
    Merge,
    /// Make the book hold exactly the document's peers.
    Replace,
}

/// What [`PeerBook::import_data`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Peers written.
    pub imported: usize,
    /// Of those, peers that replaced a stored one.
    pub replaced: usize,
    /// Peers removed (by [`ImportMode::Replace`]).
    pub removed: usize,
}

impl<B: Backend> PeerBook<B> {
    /// Export every readable record (corrupt ones are skipped and logged).
    pub fn export_data(&self, options: ExportOptions) -> Result<ExportDocument> {
        let mut peers = Vec::new();
        let mut corrupt = 0u64;
        // The view and the cipher are taken together under the writer lock: a key
        // rotation (which holds it) is either wholly before or wholly after them, so
        // the seals and the key check of the document always match.
        let (view, cipher) = {
            let _writers = self.lock_writer();
            (self.backend.view()?, self.cipher())
        };
        view.scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |k, v| {
                match super::decode_stored(k, v) {
                    Ok(mut r) => {
                        if !options.include_secrets {
                            r.shared_secret = None;
                            for s in &mut r.ice_servers {
                                s.credential = None;
                            }
                        }
                        peers.push(r);
                    }
                    Err(_) => corrupt += 1,
                }
                ControlFlow::Continue(())
            },
        )?;
        if corrupt > 0 {
            warn!(corrupt, "peerbook export skipped corrupt records");
        }
        let key_check = if options.include_secrets {
            Some(cipher.key_check()?)
        } else {
            None
        };
        Ok(ExportDocument {
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
            exported_at: self.now(),
            key_check,
            peers,
        })
    }

    /// Import a document, all or nothing: every record is validated and every sealed
    /// secret must open under this book's key for its peer before anything is
    /// written, then one atomic batch writes it all. Quotas apply (no eviction).
    pub fn import_data(&self, doc: &ExportDocument, mode: ImportMode) -> Result<ImportReport> {
        if doc.format != EXPORT_FORMAT {
            return Err(Error::invalid(
                "format",
                format!("must be \"{EXPORT_FORMAT}\""),
            ));
        }
        if doc.version == 0 || doc.version > EXPORT_VERSION {
            return Err(Error::invalid(
                "version",
                format!("1..={EXPORT_VERSION}, found {}", doc.version),
            ));
        }
        // Every check against the key happens under the writer lock, so a concurrent
        // rotate_key is wholly before (the document is refused) or after the commit.
        let guard = self.lock_writer_to_write()?;
        let cipher = self.cipher();
        let has_secrets = doc.peers.iter().any(|p| {
            p.shared_secret.is_some() || p.ice_servers.iter().any(|s| s.credential.is_some())
        });
        if has_secrets {
            match &doc.key_check {
                Some(check) if cipher.verify_key_check(check) => {}
                _ => return Err(Error::WrongKey),
            }
        }
        let now = self.now();
        let mut ids = BTreeSet::new();
        for (i, p) in doc.peers.iter().enumerate() {
            let field = |f: &str| format!("peers[{i}].{f}");
            if !ids.insert(p.peer_id.clone()) {
                return Err(Error::invalid(
                    field("peer_id"),
                    format!("duplicate peer id {}", p.peer_id),
                ));
            }
            p.validate()
                .and_then(|()| self.check_times(p, now, None))
                .map_err(|e| match e {
                    Error::InvalidInput { field: f, rule } => Error::InvalidInput {
                        field: field(&f),
                        rule,
                    },
                    other => other,
                })?;
            let opens = |kind, s: &SealedSecret| cipher.open(kind, p.peer_id.as_str(), s).is_ok();
            let rule = "does not open under this book's key for this peer (tampered, or moved between peers)";
            if p.shared_secret
                .as_ref()
                .is_some_and(|s| !opens(SecretKind::SharedSecret, s))
            {
                return Err(Error::invalid(field("shared_secret"), rule));
            }
            for (j, server) in p.ice_servers.iter().enumerate() {
                if server
                    .credential
                    .as_ref()
                    .is_some_and(|c| !opens(SecretKind::IceCredential, c))
                {
                    return Err(Error::invalid(
                        field(&format!("ice_servers[{j}].credential")),
                        rule,
                    ));
                }
            }
        }

        let mut report = ImportReport::default();
        let mut staged = StagedWrite::new(*guard);
        let view = self.writer_view()?;
        if mode == ImportMode::Replace {
            report.removed = self.delete_everything_into(&*view, &mut staged)?;
        }
        for record in &doc.peers {
            let existing = if mode == ImportMode::Replace {
                None
            } else {
                self.load_existing(&*view, &record.peer_id)?
            };
            if let Some(old) = &existing {
                self.delete_record(&*view, &mut staged, &record.peer_id, old)?;
                report.replaced += 1;
            }
            Self::put_record_into(&mut staged, record, record.encode(), None);
            report.imported += 1;
        }
        if staged.counters.peers > self.settings.max_peers {
            return Err(Error::QuotaExceeded(Quota::Peers {
                limit: self.settings.max_peers,
            }));
        }
        if let Some(limit) = self.settings.max_bytes {
            if staged.counters.bytes > limit {
                return Err(Error::QuotaExceeded(Quota::Bytes {
                    limit,
                    needed: staged.counters.bytes,
                }));
            }
        }
        drop(view); // a view ends before its thread writes (LMDB)
        self.commit(guard, staged)?;
        info!(
            imported = report.imported,
            replaced = report.replaced,
            removed = report.removed,
            "peerbook import done"
        );
        Ok(report)
    }

    /// Delete every record and index entry into `staged`. Returns the records removed.
    fn delete_everything_into(
        &self,
        view: &dyn ReadView,
        staged: &mut StagedWrite,
    ) -> Result<usize> {
        let mut removed = 0;
        for space in [Space::Peers, Space::ByLastSeen, Space::ByQuality] {
            let batch = &mut staged.batch;
            view.scan(space, KeyRange::all(), Direction::Forward, &mut |k, _| {
                batch.delete(space, k.to_vec());
                removed += usize::from(space == Space::Peers);
                ControlFlow::Continue(())
            })?;
        }
        staged.counters = Counters::default();
        Ok(removed)
    }
}
