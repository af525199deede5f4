//! The commands that move books: `export`, `import` and `migrate` (with its record
//! by record check), and the atomic file write behind `export --out`.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use peerbook::{ExportDocument, ExportOptions, ImportMode, ImportReport, Options};
use serde_json::json;

use crate::commands::book_size;
use crate::creation::Creation;
use crate::format;
use crate::progress;
use crate::say;
use crate::store::{Access, Book, CliError, KeySource, StoreSpec, StoreSpecExt};

/// `export [--out FILE]`.
pub fn export(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    out: Option<&Path>,
    no_secrets: bool,
    json: bool,
) -> Result<u8, CliError> {
    let peers = book_size(book);
    let spinner = progress::spinner(peers, "exporting");
    let doc = book
        .export_data(ExportOptions {
            include_secrets: !no_secrets,
        })
        .map_err(|e| CliError::store(e, key, spec));
    spinner.finish_and_clear();
    let doc = doc?;
    let text = doc.to_json();
    match out {
        // the document is JSON already
        None => say!("{text}"),
        Some(path) => {
            write_atomically(path, text.as_bytes())?;
            if json {
                say!(
                    "{}",
                    format::json(&json!({
                        "exported": doc.peers.len(),
                        "out": path.display().to_string(),
                        "secrets": !no_secrets,
                    }))
                );
            } else {
                let _ = writeln!(
                    std::io::stderr(),
                    "exported {} peers to {}",
                    doc.peers.len(),
                    path.display()
                );
            }
        }
    }
    Ok(0)
}

/// Replace `path` with `data` + a newline, all or nothing: a temp file in the same
/// directory (readable by its owner only: it may hold sealed secrets), fsynced, then
/// renamed over `path`, then the directory fsynced. A crash or an error leaves the
/// old file (or none) and no temp file behind.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::new(format!("cannot write {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| CliError::usage(format!("--out {}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tmp, mut f) = create_temp(&dir, name).map_err(io)?;
    let tmp_path = &tmp;
    let write = move || -> std::io::Result<()> {
        f.write_all(data)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        fs::rename(tmp_path, path)?;
        // the rename itself is durable once the directory is synced
        #[cfg(unix)]
        fs::File::open(&dir)?.sync_all()?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(e)
    })
}

/// A new, empty temp file for `name` in `dir`, readable by its owner only, under a
/// name no one can guess (`.NAME.tmp-PID-RANDOM`), created exclusively: an entry
/// already there under that name, a planted symbolic link included, is never
/// opened (`create_new` is `O_CREAT | O_EXCL`, which does not follow links).
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> std::io::Result<(PathBuf, fs::File)> {
    use std::hash::{BuildHasher, Hasher};
    let mut last = None;
    for _ in 0..8 {
        // SipHash under the process's random keys: unpredictable without them.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}-{random:016x}", std::process::id()));
        let tmp = dir.join(tmp_name);
        match create_private(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temp file name")))
}

/// Create `path` (mode 0600), failing if anything, a symbolic link included, is
/// there.
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The export document in `file` (`-` for stdin).
pub fn read_document(file: &Path) -> Result<ExportDocument, CliError> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text).map(|_| ()))
    };
    read.map_err(|e| CliError::new(format!("cannot read {}: {e}", file.display())))?;
    ExportDocument::from_json(&text).map_err(|e| {
        CliError::new(format!("{} is not a peerbook export: {e}", file.display()))
            .hint("make one with `peerbook export BACKEND:PATH --out FILE`")
    })
}

/// `import FILE [--merge|--replace]`: import, all or nothing (see
/// [`print_import`] for the report).
pub fn import(
    book: &Book,
    spec: &StoreSpec,
    doc: &ExportDocument,
    mode: ImportMode,
) -> Result<ImportReport, CliError> {
    let spinner = progress::spinner(doc.peers.len() as u64, "importing");
    let report = book.import_data(doc, mode);
    spinner.finish_and_clear();
    report.map_err(|e| import_error(e, spec))
}

/// Import `doc` into a new in-memory book opened with `options` (the key and
/// settings a new store gets), to refuse a document that would not import before
/// anything is created on disk. Holds a second copy of the book in memory for the
/// time of the check.
pub fn check_import(
    spec: &StoreSpec,
    doc: &ExportDocument,
    mode: ImportMode,
    options: Options,
) -> Result<(), CliError> {
    let backend: std::sync::Arc<dyn peerbook::Backend> =
        std::sync::Arc::new(peerbook::MemoryBackend::new());
    let book = peerbook::PeerBook::open(backend, options)
        .map_err(|e| CliError::new(e.to_string()).hint("nothing was created"))?;
    let spinner = progress::spinner(doc.peers.len() as u64, "checking");
    let report = book.import_data(doc, mode);
    spinner.finish_and_clear();
    report.map(drop).map_err(|e| import_error(e, spec))
}

fn import_error(e: peerbook::Error, spec: &StoreSpec) -> CliError {
    match e {
        peerbook::Error::WrongKey => CliError::new(e.to_string()).hint(
            "the document's secrets were sealed under another key: import with that book's key (--key-file / --key-env), or export with --no-secrets",
        ),
        peerbook::Error::QuotaExceeded(_) => CliError::new(e.to_string())
            .hint(format!("nothing was imported; raise the book's limit with `peerbook settings {spec} --max-peers N` if its node allows more")),
        other => CliError::new(other.to_string()).hint("nothing was imported"),
    }
}

/// The report of a finished `import`.
pub fn print_import(spec: &StoreSpec, report: &ImportReport, json: bool) -> Result<u8, CliError> {
    if json {
        say!(
            "{}",
            format::json(&json!({ "store": spec.to_string(), "import": report }))
        );
        return Ok(0);
    }
    say!(
        "imported {} peers into {spec} ({} replaced, {} removed)",
        report.imported,
        report.replaced,
        report.removed
    );
    Ok(0)
}

/// The key of FROM's key file, loaded with every check of `MasterKey::load`, to
/// be written to TO's new key file (0600, create-new: `Creation::start`); the key
/// bytes never sit in a buffer of ours.
fn load_key_to_copy(src: &Path) -> Result<peerbook::MasterKey, CliError> {
    peerbook::MasterKey::load(src).map_err(|e| {
        CliError::new(e.to_string())
            .hint("pass the key of FROM with --key-file PATH or --key-env VAR")
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `migrate FROM TO [--force]`.
pub fn migrate(
    from: &StoreSpec,
    from_key: &KeySource,
    to: &StoreSpec,
    to_key: &KeySource,
    force: bool,
    json: bool,
) -> Result<u8, CliError> {
    if same_dir(&from.path, &to.path) {
        return Err(CliError::usage("FROM and TO are the same directory")
            .hint("migrate copies a book into another, new or empty, store"));
    }
    let source = crate::store::open_with(from, from_key, Access::Read, |o| o)?;
    let spinner = progress::spinner(book_size(&source), "reading");
    let doc = source
        .export_data(ExportOptions::default())
        .map_err(|e| CliError::store(e, from_key, from));
    spinner.finish_and_clear();
    let doc = doc?;
    let n = doc.peers.len();
    if !json {
        say!("read {n} peers from {from}");
    }
    let migration = Migration {
        from,
        to,
        to_key,
        force,
        json,
        creation: None,
    };
    if to.exists()? {
        return migration.write_copy(&source, &doc);
    }
    // A new TO: its key (FROM's, copied to TO's own missing key file, or the one
    // both use) is loaded before anything is created, and what a failed
    // migration made is removed again (see `Creation`).
    let copying = match (from_key, to_key) {
        (KeySource::File(src), KeySource::File(dst))
            if src != dst && fs::symlink_metadata(dst).is_err() =>
        {
            Some(src)
        }
        _ => None,
    };
    let key = match copying {
        Some(src) => load_key_to_copy(src)?,
        None => to_key.load(false)?,
    };
    let creation = Creation::start(to, to_key, &key)?;
    drop(key);
    let migration = Migration {
        creation: Some(&creation),
        ..migration
    };
    let announce = || -> Result<(), CliError> {
        if let (Some(src), Some(dst), false) = (copying, creation.new_key_file(), json) {
            say!("copied key file {} to {}", src.display(), dst.display());
        }
        Ok(())
    };
    // A report lost here is lost before TO was written: undone too.
    if let Err(e) = announce() {
        creation.undo();
        return Err(e);
    }
    migration.write_copy(&source, &doc).inspect_err(|e| {
        if !e.lost_report {
            creation.undo();
        }
    })
}

/// The stores and flags of one `migrate`.
struct Migration<'a> {
    from: &'a StoreSpec,
    to: &'a StoreSpec,
    to_key: &'a KeySource,
    force: bool,
    json: bool,
    /// What this command made creating a new TO (`None`: TO existed): its first
    /// open of TO is noted there ([`Creation::note_open`]).
    creation: Option<&'a Creation>,
}

impl Migration<'_> {
    /// Write `doc` (read from `source`, FROM's book) into TO, refused when TO holds
    /// peers unless `force`, then check the copy record by record. When this
    /// command's open started TO's book (TO new, `creation`, and not made by
    /// another process meanwhile), a failed check empties it again while its
    /// lock is still held, so that the caller can remove it: a copy that failed
    /// its check is not FROM's book.
    fn write_copy(&self, source: &Book, doc: &ExportDocument) -> Result<u8, CliError> {
        let Migration {
            from,
            to,
            to_key,
            force,
            json,
            creation,
        } = *self;
        let new = creation.is_some();
        let n = doc.peers.len();
        if !new {
            // Checked under TO's own settings: opening with FROM's would store them
            // in TO before a refusal.
            let existing = crate::store::open_with(to, to_key, Access::Write, |o| o)?;
            refuse_unless_empty(&existing, to, to_key, force)?;
        }
        // Again on this open, under TO's own settings: between the two, another
        // process may have written peers into TO (or made it), which only --force
        // replaces.
        // A TO that did not exist is never replaced: one holding peers now was
        // made meanwhile by another process, whose book --force (meant for the
        // TO the user saw) must not replace.
        let target = crate::store::open_with(to, to_key, Access::Write, |o| o)?;
        if let Some(creation) = creation {
            creation.note_open(&target);
        }
        // Whether this open started TO's book: only then is TO this command's,
        // which its undo removes (`Creation::undo`). A new TO another process
        // made meanwhile stays, as an existing one does.
        let ours = new && target.created_book();
        refuse_unless_empty(&target, to, to_key, force && !new)?;
        // Then TO takes FROM's retention settings, with room for every peer
        // (reopened on the same backend: its lock kept other processes out since
        // the check).
        let retention = source.retention();
        // TO's own settings, stored again if the import is refused.
        let own = target.retention();
        let target = crate::store::reopen_with(target, to, to_key, |o| {
            let o = retention.apply(o);
            Options {
                max_peers: o.max_peers.max(n as u64).max(1),
                ..o
            }
        })?;
        let spinner = progress::spinner(n as u64, "writing");
        let report = target.import_data(doc, ImportMode::Replace);
        spinner.finish_and_clear();
        let report = match report {
            Ok(report) => report,
            // TO goes with what this command made (`Creation::undo`), unless a
            // write of unknown outcome landed.
            Err(e) if ours => {
                let changed_nothing = import_changed_nothing(&e, target.needs_reopen());
                let hint = own_new_to_import_hint(to, changed_nothing);
                return Err(CliError::store(e, to_key, to).hint(hint));
            }
            // A commit with an unknown outcome (the book is poisoned): FROM's
            // peers may have landed, under FROM's settings; those stay as they are.
            Err(e) if !import_changed_nothing(&e, target.needs_reopen()) => {
                return Err(CliError::store(e, to_key, to).hint(format!(
                    "the import's write failed with an unknown outcome: {to} may now hold \
                     FROM's peers and its retention settings are FROM's; check them with \
                     `peerbook list {to}` and `peerbook settings {to}`"
                )));
            }
            // The import wrote nothing; the settings this command stored in an
            // existing TO, which were FROM's, are replaced by TO's own again.
            Err(e) => {
                let err = CliError::store(e, to_key, to);
                return Err(
                    match crate::store::reopen_with(target, to, to_key, |o| own.apply(o)) {
                        Ok(_) => err.hint("TO was not changed"),
                        Err(restore) => err.hint(format!(
                            "TO's peers were not changed, but its retention settings are now \
                             FROM's: storing its own again failed ({}); check them with \
                             `peerbook settings {to}`",
                            restore.cause
                        )),
                    },
                );
            }
        };
        let written = format!(
            "wrote the {n} peers of {from} to {to} ({} removed; it opens with the {to_key})",
            report.removed
        );
        let finish = || -> Result<(), CliError> {
            if !json {
                say!(
                    "wrote {} peers to {to} ({} removed)",
                    report.imported,
                    report.removed
                );
            }
            check_copy(source, &target, doc, to, to_key).map_err(|e| {
                if !new {
                    return e;
                }
                let hint = e.hint.clone().unwrap_or_default();
                // Not this command's: the undo keeps it (and says so).
                if !ours {
                    return e.hint(format!(
                        "{hint}; {to} was made by another process meanwhile, not by this \
                         command: it stays, holding the copy that failed its check; do not \
                         use it"
                    ));
                }
                // Emptied while its lock is held, so that the undo removes it.
                match target.clear_all() {
                    Ok(()) => e.hint(format!(
                        "{hint}; the new {to} failed its check and is removed with what this \
                         command made (emptied first; a warning above names anything that \
                         stays)"
                    )),
                    Err(clear) => e.hint(format!(
                        "{hint}; the new {to} failed its check and could not be emptied \
                         ({clear}): it stays, holding the copy, and so does what this command \
                         made (a warning above names it); do not use it"
                    )),
                }
            })?;
            if json {
                say!(
                    "{}",
                    format::json(&json!({
                        "from": from.to_string(),
                        "to": to.to_string(),
                        "peers": n,
                        "removed": report.removed,
                        "checked": n,
                        "key": to_key.to_string(),
                    }))
                );
            } else {
                say!("checked {n}/{n}");
                say!("ok: {to} holds exactly the {n} peers of {from}; it opens with the {to_key}");
            }
            Ok(())
        };
        finish().map_err(|e| e.after_change(written))?;
        Ok(0)
    }
}

/// The hint of a failed import into a new TO that this command's open created:
/// the undo that follows (`Creation::undo`) removes it with what this command
/// made when it holds no peer: always when the import is known to have
/// `changed_nothing`; after a write of unknown outcome, only if that write did
/// not land (else TO stays, holding FROM's peers, and a warning says so).
fn own_new_to_import_hint(to: &StoreSpec, changed_nothing: bool) -> String {
    if changed_nothing {
        format!(
            "the import wrote nothing; the new {to} is removed with what this command made \
             (a warning above names anything that stays)"
        )
    } else {
        format!(
            "the import's write failed with an unknown outcome: the new {to} may hold FROM's \
             peers; it is removed with what this command made only if it holds none, else it \
             stays (a warning above says so): check it with `peerbook list {to}`"
        )
    }
}

/// Whether an import that failed with `e` is known to have changed nothing in
/// its book: a refusal before the commit (the document, the key, the book's
/// limits), or any failure that left the book usable (`poisoned` is
/// [`PeerBook::needs_reopen`](peerbook::PeerBook::needs_reopen): a write that
/// failed with an unknown outcome, which may have landed, poisons the book).
fn import_changed_nothing(e: &peerbook::Error, poisoned: bool) -> bool {
    use peerbook::Error;
    matches!(
        e,
        Error::QuotaExceeded(_) | Error::InvalidInput { .. } | Error::WrongKey
    ) || !poisoned
}

/// Unless `force`: an error when `book` (TO) holds peers.
fn refuse_unless_empty(
    book: &Book,
    to: &StoreSpec,
    to_key: &KeySource,
    force: bool,
) -> Result<(), CliError> {
    let peers = book
        .get_storage_stats()
        .map_err(|e| CliError::store(e, to_key, to))?
        .peer_count;
    if peers > 0 && !force {
        return Err(CliError::new(format!("{to} is not empty ({peers} peers)"))
            .hint("pass --force to replace its peers with FROM's"));
    }
    Ok(())
}

/// Record by record: every peer of `doc` reads back identical from `target`, and
/// `target` holds nothing else.
fn check_copy(
    source: &Book,
    target: &Book,
    doc: &ExportDocument,
    to: &StoreSpec,
    to_key: &KeySource,
) -> Result<(), CliError> {
    let n = doc.peers.len();
    let bar = progress::bar(n as u64, "checking");
    for peer in &doc.peers {
        let id = peer.peer_id.as_str();
        let copy = target
            .get_peer(id)
            .map_err(|e| CliError::store(e, to_key, to))?;
        let original = source
            .get_peer(id)
            .map_err(|e| CliError::new(format!("re-reading {id} from FROM: {e}")))?;
        if copy.as_ref() != Some(peer) || original.as_ref() != Some(peer) {
            return Err(CliError::new(format!(
                "check failed: peer {} differs in {to}",
                peer.peer_id
            ))
            .hint("report this bug; FROM is unchanged"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let stats = target
        .get_storage_stats()
        .map_err(|e| CliError::store(e, to_key, to))?;
    let clean = target
        .verify()
        .map_err(|e| CliError::store(e, to_key, to))?
        .is_clean();
    if stats.peer_count != n as u64 || !clean {
        return Err(CliError::new(format!(
            "check failed: {to} holds {} records (expected {n}), verify clean: {clean}",
            stats.peer_count
        ))
        .hint("FROM is unchanged"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
