//! The commands: each opens its store(s), does one job, prints a report. This file
//! dispatches the command line and holds `init`; the read-only commands live in
//! `inspect`, the upkeep commands in `upkeep` (transfers in `crate::transfer`).

use peerbook::{CandidateQuery, Clock, ImportMode, Options, Order, PeerQuery, SortBy, SystemClock};
use serde_json::json;

use crate::creation::{key_for_new_store, Creation};
use crate::format::{self};
use crate::progress;
use crate::say;
use crate::store::{open_with, Access, Book, CliError, KeySource, StoreSpec, StoreSpecExt};
use crate::transfer;
use crate::{Cli, Command, Sort, SortOrder};

mod inspect;
mod upkeep;

use inspect::{candidates, get, list, stats};
use upkeep::{cleanup, clear, repair, rotate_key, settings, verify};

/// The exit code of `verify` when the book has problems (distinct from an
/// operational failure, 1, and a usage error, 2).
pub const EXIT_PROBLEMS: u8 = 3;

/// Run the parsed command line; `Ok` carries the exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    let key_file = cli.key.key_file.as_deref();
    let key_env = cli.key.key_env.as_deref();
    let json = cli.json;
    let key_for = |spec: &StoreSpec| KeySource::resolve(key_file, key_env, spec);
    let open = |spec: &StoreSpec, access| open_with(spec, &key_for(spec), access, |o| o);
    match &cli.command {
        Command::Init { store } => {
            let existed = store.exists()?;
            let key = key_for(store);
            if existed {
                return init(store, &key, true, open(store, Access::Write), json);
            }
            // A new store: its key is loaded (or made) before anything is created,
            // and what a failed creation made is removed again (see `Creation`),
            // unless only the report was lost (the store is made).
            let creation = Creation::start(store, &key, &key_for_new_store(&key)?)?;
            let book = open(store, Access::Write);
            init_new(store, &key, creation, book, |book| {
                init(store, &key, false, book, json)
            })
        }
        Command::Stats { store } => stats(&open(store, Access::Read)?, json),
        Command::List {
            store,
            sort,
            order,
            limit,
            max_age,
            min_quality,
            reveal_secrets,
        } => {
            let query = PeerQuery {
                sort_by: match sort {
                    Sort::LastSeen => SortBy::LastSeen,
                    Sort::Quality => SortBy::Quality,
                    Sort::Score => SortBy::ReconnectionScore,
                },
                order: match order {
                    SortOrder::Asc => Order::Asc,
                    SortOrder::Desc => Order::Desc,
                },
                limit: *limit,
                max_age: *max_age,
                min_quality: *min_quality,
            };
            let book = open(store, Access::Read)?;
            list(&book, store, &key_for(store), &query, json, *reveal_secrets)
        }
        Command::Get {
            store,
            id,
            reveal_secrets,
        } => {
            let book = open(store, Access::Read)?;
            get(&book, store, &key_for(store), id, json, *reveal_secrets)
        }
        Command::Candidates {
            store,
            limit,
            max_age,
        } => {
            let book = open(store, Access::Read)?;
            let query = CandidateQuery {
                limit: *limit,
                max_age: *max_age,
            };
            candidates(&book, store, &key_for(store), &query, json)
        }
        Command::Verify { store } => {
            verify(&open(store, Access::Read)?, store, &key_for(store), json)
        }
        Command::Repair { store } => {
            let book = open(store, Access::Read)?;
            repair(&book, store, &key_for(store), json)
                .map_err(|e| e.after_change(format!("repaired {store}")))
        }
        Command::Export {
            store,
            out,
            no_secrets,
        } => {
            let book = open(store, Access::Read)?;
            transfer::export(
                &book,
                store,
                &key_for(store),
                out.as_deref(),
                *no_secrets,
                json,
            )
        }
        Command::Import {
            store,
            file,
            merge: _,
            replace,
        } => {
            let doc = transfer::read_document(file)?;
            // A store this import creates gets room for the whole document; an
            // existing one keeps its settings (its node's quota).
            let creating = !store.exists()?;
            let key = key_for(store);
            let room = doc.peers.len() as u64;
            let mode = if *replace {
                ImportMode::Replace
            } else {
                ImportMode::Merge
            };
            let new_store = |o: Options| Options {
                max_peers: o.max_peers.max(room),
                ..o
            };
            // A new store: the import is first made in memory, with the key the
            // store will take (a missing key file's is new, written only then), so
            // a document that does not import (secrets under another key, invalid)
            // creates nothing; and a later failure (storage) leaves no store nor
            // key file it created.
            let creation = if creating {
                let fresh = key_for_new_store(&key)?;
                transfer::check_import(store, &doc, mode, new_store(Options::new(fresh.clone())))?;
                Some(Creation::start(store, &key, &fresh)?)
            } else {
                None
            };
            let imported = open_with(store, &key, Access::Write, |o| {
                if creating {
                    new_store(o)
                } else {
                    o
                }
            })
            .inspect(|book| {
                if let Some(creation) = &creation {
                    creation.note_open(book);
                }
            })
            .and_then(|book| transfer::import(&book, store, &doc, mode)); // the book is closed here
            match imported {
                Ok(report) => transfer::print_import(store, &report, json).map_err(|e| {
                    e.after_change(format!(
                        "imported {} peers into {store} ({} replaced, {} removed)",
                        report.imported, report.replaced, report.removed
                    ))
                }),
                Err(e) => {
                    if let Some(creation) = creation {
                        creation.undo();
                    }
                    Err(e)
                }
            }
        }
        Command::Migrate { from, to, force } => {
            let from_key = key_for(from);
            // With default key files, TO gets a copy of FROM's key unless it has one.
            let default_keys = key_file.is_none() && key_env.is_none();
            let to_key = if default_keys {
                KeySource::File(to.default_key_file())
            } else {
                from_key.clone()
            };
            transfer::migrate(from, &from_key, to, &to_key, *force, json)
        }
        Command::Settings {
            store,
            max_peers,
            max_bytes,
            inactive_after,
            failed_attempts,
            blacklist_for,
            cleanup_interval,
            evict_when_full,
        } => {
            let change = |o: Options| Options {
                max_peers: max_peers.unwrap_or(o.max_peers),
                max_bytes: match max_bytes {
                    None => o.max_bytes,
                    Some(0) => None,
                    Some(n) => Some(*n),
                },
                inactive_after: inactive_after.unwrap_or(o.inactive_after),
                failed_attempts: failed_attempts.unwrap_or(o.failed_attempts),
                blacklist_for: blacklist_for.unwrap_or(o.blacklist_for),
                cleanup_interval: cleanup_interval.unwrap_or(o.cleanup_interval),
                evict_when_full: evict_when_full.unwrap_or(o.evict_when_full),
                ..o
            };
            let changing = max_peers.is_some()
                || max_bytes.is_some()
                || inactive_after.is_some()
                || failed_attempts.is_some()
                || blacklist_for.is_some()
                || cleanup_interval.is_some()
                || evict_when_full.is_some();
            let key = key_for(store);
            let before = if changing {
                Some(open(store, Access::Read)?.retention())
            } else {
                None
            };
            let book = open_with(store, &key, Access::Read, change)?;
            settings(&book, store, before.as_ref(), json).map_err(|e| match &before {
                Some(b) if *b != book.retention() => {
                    e.after_change(format!("changed the retention settings stored in {store}"))
                }
                _ => e,
            })
        }
        Command::RotateKey {
            store,
            new_key_file,
        } => rotate_key(
            &open(store, Access::Read)?,
            store,
            &key_for(store),
            new_key_file,
            json,
        )
        .map_err(|e| {
            e.after_change(format!(
                "re-sealed {store} under the new key: it now opens ONLY with the key file {}",
                new_key_file.display()
            ))
        }),
        Command::Clear { store, destroy_key } => {
            let key = key_for(store);
            if let (true, KeySource::Env(var)) = (destroy_key, &key) {
                return Err(CliError::usage(format!(
                    "--destroy-key destroys a key file, but the key comes from --key-env {var}"
                ))
                .hint("nothing was changed; pass the key file with --key-file PATH, or clear without --destroy-key and delete the key from wherever you keep it"));
            }
            clear(open(store, Access::Read)?, store, &key, *destroy_key, json)
        }
        Command::Cleanup {
            store,
            stale,
            lru,
            dry_run,
        } => {
            let book = open(store, Access::Read)?;
            cleanup(&book, store, &key_for(store), *stale, *lru, *dry_run, json)
        }
    }
}

fn now() -> u64 {
    SystemClock.now_ms()
}

/// The number of peers, for progress; only counted when someone watches (it scans).
pub fn book_size(book: &Book) -> u64 {
    if progress::watching() {
        book.get_storage_stats().map_or(0, |s| s.peer_count)
    } else {
        0
    }
}

/// Whether `init` created the store it opened as `book`: it did not exist when the
/// command started and this open started its book. A store another process made
/// between the two (with the same key) is reported as there already, never as
/// created: its undo, not ours, may remove it.
fn created_by(existed: bool, book: &Book) -> bool {
    !existed && book.created_book()
}

/// What a new store's `init` did when only its report was lost: created the
/// store, or (another process made it between the check and the open) found it.
fn lost_report_change(spec: &StoreSpec, key: &KeySource, created: bool) -> String {
    if created {
        format!("created store {spec} (it opens with the {key})")
    } else {
        format!(
            "store {spec} exists: another process created it meanwhile (it opens with the {key})"
        )
    }
}

/// The error of a new store's `init` that lost only its report (`e`): a store it
/// created is a change made ([`CliError::after_change`]: do not rerun). One that
/// another process created meanwhile is not this command's change: the command
/// changed nothing in it, and nothing is undone (the store, its directories and
/// `new_key_file`, the key file this command wrote if any, stay); since this
/// command's open of it succeeded, that store opens with the command's key.
fn lost_init_report(
    e: CliError,
    spec: &StoreSpec,
    key: &KeySource,
    created: bool,
    new_key_file: Option<&std::path::Path>,
) -> CliError {
    if created || !e.lost_report {
        return e.after_change(lost_report_change(spec, key, created));
    }
    let opens_with = match new_key_file {
        Some(file) => format!(
            "the key file {} this command wrote stays and is what opens it: keep it",
            file.display()
        ),
        None => format!("it opens with the {key}"),
    };
    CliError {
        cause: format!(
            "{}; only the report was lost: {}",
            lost_report_change(spec, key, false),
            e.cause
        ),
        hint: Some(format!(
            "this command changed nothing in that store; {} shows it; {opens_with}",
            match key.command_for("stats", spec) {
                Some(command) => format!("`{command}`"),
                None => "`peerbook stats` on it (its path, or its key file's, is not UTF-8 \
                         and cannot be shown as a command)"
                    .to_owned(),
            }
        )),
        ..e
    }
}

/// `init` of a store that did not exist when the command started, opened as
/// `book` after `creation` began: `report` (`init`) says what it did. What a
/// failed creation made is removed again, unless only the report was lost (then
/// the error says whether this command created the store, or found it made
/// meanwhile: [`lost_init_report`]).
fn init_new(
    spec: &StoreSpec,
    key: &KeySource,
    creation: Creation,
    book: Result<Book, CliError>,
    report: impl FnOnce(Result<Book, CliError>) -> Result<u8, CliError>,
) -> Result<u8, CliError> {
    let created = book.as_ref().is_ok_and(|book| created_by(false, book));
    if let Ok(book) = &book {
        creation.note_open(book);
    }
    report(book).map_err(|e| {
        if e.lost_report {
            lost_init_report(e, spec, key, created, creation.new_key_file())
        } else {
            creation.undo();
            e
        }
    })
}

fn init(
    spec: &StoreSpec,
    key: &KeySource,
    existed: bool,
    book: Result<Book, CliError>,
    json: bool,
) -> Result<u8, CliError> {
    let book = book?;
    let created = created_by(existed, &book);
    let stats = book
        .get_storage_stats()
        .map_err(|e| CliError::store(e, key, spec))?;
    if json {
        say!(
            "{}",
            format::json(&json!({
                "store": spec.to_string(),
                "created": created,
                "peers": stats.peer_count,
                "key": key.to_string(),
            }))
        );
    } else if !created {
        say!(
            "store {spec} already exists ({} peers); it opens with the {key}",
            stats.peer_count
        );
    } else {
        say!("created store {spec}");
        say!("{key} (keep it safe and outside the data directory: without it no secret opens)");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbook::{MasterKey, MemoryBackend, PeerBook};
    use std::sync::Arc;

    /// `init` says "created" only for the open that started the book: a store that
    /// did not exist at the start but whose book another open started meanwhile is
    /// reported as there already.
    #[test]
    fn init_reports_created_only_for_the_open_that_started_the_book() {
        let key = MasterKey::generate().unwrap();
        let backend: Arc<dyn peerbook::backend::Backend> = Arc::new(MemoryBackend::new());
        let first: Book = PeerBook::open(backend, Options::new(key.clone())).unwrap();
        assert!(created_by(false, &first));
        assert!(!created_by(true, &first));
        // another open (another process, meanwhile) of the book the first started
        let second: Book = PeerBook::open(first.close().unwrap(), Options::new(key)).unwrap();
        assert!(!created_by(false, &second));
    }

    /// A lost report after `init` of a new store says "created" only when its
    /// open started the book.
    #[test]
    fn a_lost_init_report_says_created_only_for_the_book_it_started() {
        // Built, not parsed: whichever engines this build has (parsing refuses
        // one not compiled in), the report's words are the same.
        let spec = StoreSpec {
            engine: peerbook_engines::Engine::Lmdb,
            path: "/tmp/peers".into(),
        };
        let key = KeySource::Env("PEERBOOK_KEY".into());
        assert!(lost_report_change(&spec, &key, true).starts_with("created store"));
        let found = lost_report_change(&spec, &key, false);
        assert!(!found.contains("created store"), "{found}");
        assert!(found.contains("another process created it"), "{found}");
    }

    /// A lost report of `init` whose new store another process made meanwhile
    /// (`created == false`): this command changed nothing there, so its hint does
    /// not say "the change is made: do NOT rerun", but how to see the store and
    /// which key opens it (the key file this command wrote, if any).
    #[test]
    fn a_lost_init_report_of_a_store_another_process_made_says_nothing_changed() {
        let spec = StoreSpec {
            engine: peerbook_engines::Engine::Lmdb,
            path: "/tmp/peers".into(),
        };
        let lost = || CliError {
            lost_report: true,
            ..CliError::new("writing to stdout: broken pipe")
        };
        let key = KeySource::File("/tmp/peers.key".into());

        let found = lost_init_report(lost(), &spec, &key, false, Some("/tmp/peers.key".as_ref()));
        assert!(
            found.cause.contains("another process created it"),
            "{found}"
        );
        assert!(found.cause.contains("broken pipe"), "{found}");
        let hint = found.hint.as_deref().unwrap_or_default();
        assert!(!hint.contains("do NOT rerun"), "{hint}");
        assert!(!hint.contains("change is made"), "{hint}");
        assert!(hint.contains("changed nothing"), "{hint}");
        assert!(hint.contains("peerbook stats lmdb:/tmp/peers"), "{hint}");
        assert!(
            hint.contains("key file /tmp/peers.key this command wrote"),
            "{hint}"
        );
        assert_eq!(found.code, 1);

        let env = KeySource::Env("PEERBOOK_KEY".into());
        let found = lost_init_report(lost(), &spec, &env, false, None);
        let hint = found.hint.as_deref().unwrap_or_default();
        assert!(!hint.contains("do NOT rerun"), "{hint}");
        assert!(
            hint.contains("opens with the key from $PEERBOOK_KEY"),
            "{hint}"
        );

        // The store this command made is its change: do not rerun.
        let made = lost_init_report(lost(), &spec, &key, true, Some("/tmp/peers.key".as_ref()));
        assert!(made.cause.starts_with("created store"), "{made}");
        assert!(made.hint.unwrap().contains("do NOT rerun"));
    }

    /// The command that hint suggests works as given: it passes the key flag
    /// this `init` used (`--key-env VAR`, or `--key-file PATH` other than the
    /// store's default key file), none for the default key file.
    #[test]
    fn a_lost_init_report_suggests_stats_with_the_key_flag_used() {
        let spec = StoreSpec {
            engine: peerbook_engines::Engine::Lmdb,
            path: "/tmp/peers".into(),
        };
        let hint = |key: &KeySource| {
            let lost = CliError {
                lost_report: true,
                ..CliError::new("writing to stdout: broken pipe")
            };
            lost_init_report(lost, &spec, key, false, None)
                .hint
                .unwrap()
        };
        let default = hint(&KeySource::File("/tmp/peers.key".into()));
        assert!(
            default.contains("`peerbook stats lmdb:/tmp/peers`"),
            "{default}"
        );
        let file = hint(&KeySource::File("/keys/other.key".into()));
        assert!(
            file.contains("`peerbook stats lmdb:/tmp/peers --key-file=/keys/other.key`"),
            "{file}"
        );
        let env = hint(&KeySource::Env("PEERBOOK_KEY".into()));
        assert!(
            env.contains("`peerbook stats lmdb:/tmp/peers --key-env=PEERBOOK_KEY`"),
            "{env}"
        );
    }

    /// The suggested command, split into words by a POSIX shell, is what
    /// clap parses back to the same store and key: a space, a quote, a `$`
    /// in either, a key file's path starting with `-`, a `--key-env`.
    #[cfg(unix)]
    #[test]
    fn the_suggested_command_parses_back_to_the_same_store_and_key() {
        use clap::Parser;
        let words = |command: &str| -> Vec<String> {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s\\0' {command}"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{command}");
            let out = String::from_utf8(out.stdout).unwrap();
            out.split_terminator('\0').map(str::to_owned).collect()
        };
        for (path, key) in [
            ("/tmp/my peers", KeySource::File("-k it's $HOME.key".into())),
            ("/tmp/p'eers", KeySource::File("/tmp/p'eers.key".into())),
            ("/tmp/peers", KeySource::Env("MY_KEY".into())),
        ] {
            let spec = StoreSpec {
                engine: peerbook_engines::Engine::Lmdb,
                path: path.into(),
            };
            let command = key.command_for("stats", &spec).unwrap();
            let cli = crate::Cli::try_parse_from(words(&command)).unwrap();
            match cli.command {
                crate::Command::Stats { store } => assert_eq!(store, spec, "{command}"),
                other => panic!("{command}: {other:?}"),
            }
            let parsed = KeySource::resolve(
                cli.key.key_file.as_deref(),
                cli.key.key_env.as_deref(),
                &spec,
            );
            assert_eq!(parsed, key, "{command}");
        }
    }

    /// A store whose path is not UTF-8: the hint says why it shows no
    /// command, rather than one naming another path.
    #[cfg(unix)]
    #[test]
    fn a_lost_init_report_suggests_no_command_for_a_path_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let spec = StoreSpec {
            engine: peerbook_engines::Engine::Lmdb,
            path: std::ffi::OsStr::from_bytes(b"/tmp/p\xffeers").into(),
        };
        let lost = CliError {
            lost_report: true,
            ..CliError::new("writing to stdout: broken pipe")
        };
        let key = KeySource::File(spec.default_key_file());
        let hint = lost_init_report(lost, &spec, &key, false, None)
            .hint
            .unwrap();
        assert!(hint.contains("cannot be shown as a command"), "{hint}");
        assert!(!hint.contains("`peerbook stats lmdb:"), "{hint}");
    }

    /// A new store's `init` whose report alone is lost: "created", with "do NOT
    /// rerun", only when its own open started the book; one another process
    /// made between the command's start and its open is reported as found
    /// (this command changed nothing there). Either way nothing is undone.
    #[cfg(feature = "file")]
    #[test]
    fn a_new_stores_lost_init_report_says_created_only_if_its_open_started_the_book() {
        for made_meanwhile in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let spec: StoreSpec = format!("file:{}", tmp.path().join("book").display())
                .parse()
                .unwrap();
            let key = KeySource::File(tmp.path().join("book.key"));
            let creation = Creation::start(&spec, &key, &MasterKey::generate().unwrap()).unwrap();
            if made_meanwhile {
                let theirs = spec.open().unwrap();
                let theirs = PeerBook::open(theirs, Options::new(key.load(false).unwrap()));
                drop(theirs.unwrap().close().unwrap());
            }
            let book = open_with(&spec, &key, Access::Write, |o| o);
            let lost = |_| {
                Err(CliError {
                    lost_report: true,
                    ..CliError::new("cannot write to stdout: no space left on device")
                })
            };
            let e = init_new(&spec, &key, creation, book, lost).unwrap_err();
            let hint = e.hint.as_deref().unwrap_or_default();
            if made_meanwhile {
                assert!(e.cause.contains("another process created it"), "{e}");
                assert!(!hint.contains("do NOT rerun"), "{hint}");
            } else {
                assert!(e.cause.starts_with("created store"), "{e}");
                assert!(hint.contains("do NOT rerun"), "{hint}");
            }
            assert!(e.cause.contains("only the report was lost"), "{e}");
            assert!(tmp.path().join("book.key").is_file());
            let found = spec.engine.probe(&spec.path).unwrap();
            assert_eq!(found, peerbook_engines::DirContents::Store);
        }
    }
}
