//! `peerbook`: inspect, check, repair, migrate and re-key a peer book on any backend.
//!
//! Every command names a store as `BACKEND:PATH` (`lmdb:./peers`, `rocksdb:./peers`,
//! `file:./peers`) and finds the master key in `--key-file PATH` (default
//! `<PATH>.key`, beside the store directory) or `--key-env VAR` (64 hex characters).
//! Errors print `error: <cause>` and `hint: <what to do>` on stderr; the exit code is
//! 0 on success, 1 on an operational error (output that cannot be written is one,
//! and after a change made says so; a closed pipe, as in `peerbook list | head`, is
//! not), 2 on a usage error, 3 when
//! `verify` found problems in the book. `--json` makes every command print one JSON
//! document on stdout. Long commands show progress on stderr when it is a terminal,
//! nothing in pipes. The book's retention settings live in the book (`settings`). A
//! directory holding anything but a store of the named backend (its marker, LMDB's
//! `data.mdb`, RocksDB's `CURRENT`, the file backend's `snapshot.G`/`log.G`, and
//! only files the backend makes; for RocksDB, no column family but peerbook's; for
//! LMDB, no database but peerbook's, read without writing to the environment) is
//! refused by every command and left as it was; so is, by the commands that need
//! a book, a store holding no peerbook book.
//!
//! Each backend is a cargo feature (`lmdb`, `rocksdb`, `file`; all by default); a
//! store naming a backend left out of the build is refused with a clear error.

mod commands;
mod creation;
mod duration;
mod format;
mod progress;
mod store;
mod transfer;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_duration;
use crate::store::StoreSpec;

/// Inspect and maintain a peerbook store (the book of known peers of a P2P node).
#[derive(Debug, Parser)]
#[command(
    name = "peerbook",
    version,
    about = "Inspect and maintain a peerbook store (a P2P node's book of known peers).",
    long_about = "Inspect and maintain a peerbook store (a P2P node's book of known peers).\n\n\
        STORE is BACKEND:PATH, one of lmdb:DIR, rocksdb:DIR or file:DIR.\n\
        The master key comes from --key-file PATH (default: DIR.key, a file beside the\n\
        store directory, never inside it) or --key-env VAR (64 hex characters).\n\
        init, import and migrate (its TO) create a missing store and key file (0600);\n\
        every other command fails when either is missing. A directory holding anything\n\
        but a store of BACKEND (another backend's store, a store's parent directory, a\n\
        store directory with other files in it) is refused by every command, with\n\
        nothing changed in it. Secrets are never printed unless\n\
        --reveal-secrets is given.",
    after_help = "Examples:\n  \
        peerbook init lmdb:./peers\n  \
        peerbook stats lmdb:./peers\n  \
        peerbook list lmdb:./peers --sort quality --limit 10\n  \
        peerbook candidates lmdb:./peers --limit 5 --max-age 24h\n  \
        peerbook verify lmdb:./peers || peerbook repair lmdb:./peers\n  \
        peerbook migrate lmdb:./peers rocksdb:./peers-rocks\n  \
        peerbook settings lmdb:./peers --max-peers 500 --inactive-after 14d\n  \
        peerbook export lmdb:./peers --out peers.json\n  \
        peerbook rotate-key lmdb:./peers --new-key-file ./peers.key.new\n\n\
        Exit codes: 0 success, 1 operational error, 2 usage error, 3 verify found problems\n\
        in the book."
)]
struct Cli {
    #[command(flatten)]
    key: KeyArgs,
    /// Print one JSON document on stdout instead of text (every command).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where the master key comes from.
#[derive(Debug, Args)]
struct KeyArgs {
    /// Key file holding the 32-byte master key (default: `PATH.key` beside the store).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help = "Key file holding the 32-byte master key [default: <PATH>.key beside the store]"
    )]
    key_file: Option<PathBuf>,
    /// Environment variable holding the master key as 64 hex characters.
    #[arg(long, global = true, value_name = "VAR", conflicts_with = "key_file")]
    key_env: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new, empty store and its key file (0600), or check an existing one.
    ///
    /// A creation that fails removes what it made (the key file, the store
    /// directory, directories made above it), never what was there before; what
    /// it could not remove is named in a warning.
    Init {
        /// BACKEND:PATH
        store: StoreSpec,
    },
    /// Counts, sizes, utilization, blacklisted, oldest/newest seen, corrupt, quarantined.
    Stats {
        /// BACKEND:PATH
        store: StoreSpec,
    },
    /// List peers as a table (or JSON), sorted and filtered.
    List {
        /// BACKEND:PATH
        store: StoreSpec,
        /// Sort key.
        #[arg(long, value_enum, default_value_t = Sort::LastSeen)]
        sort: Sort,
        /// Sort order.
        #[arg(long, value_enum, default_value_t = SortOrder::Desc)]
        order: SortOrder,
        /// At most N peers.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Only peers seen within this long (90s, 15m, 24h, 7d, 1h30m).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        max_age: Option<Duration>,
        /// Only peers with a quality score of at least Q (0..=100).
        #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(0..=100))]
        min_quality: Option<u8>,
        /// Open and print the secrets (with --json).
        #[arg(long)]
        reveal_secrets: bool,
    },
    /// Show one peer (secrets sealed unless --reveal-secrets).
    #[command(about = "Show one peer (secrets \"<sealed>\" unless --reveal-secrets)")]
    Get {
        /// BACKEND:PATH
        store: StoreSpec,
        /// The peer id.
        id: String,
        /// Open and print the shared secret and TURN credentials.
        #[arg(long)]
        reveal_secrets: bool,
    },
    /// Who to reconnect to first, with every part of the reconnection score.
    Candidates {
        /// BACKEND:PATH
        store: StoreSpec,
        /// At most N candidates.
        #[arg(long, value_name = "N", default_value_t = 5)]
        limit: usize,
        /// Only peers seen within this long (90s, 15m, 24h, 7d, 1h30m).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        max_age: Option<Duration>,
    },
    /// Check records, indexes and counters; exit 3 when anything is wrong.
    Verify {
        /// BACKEND:PATH
        store: StoreSpec,
    },
    /// Quarantine corrupt records, rebuild indexes and counters (one atomic batch).
    Repair {
        /// BACKEND:PATH
        store: StoreSpec,
    },
    /// Export the book as JSON (secrets stay sealed; --no-secrets drops them).
    Export {
        /// BACKEND:PATH
        store: StoreSpec,
        /// Write to FILE instead of stdout, atomically (a new, private temp file of
        /// an unguessable name, renamed over it).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Leave secrets out (the document then imports into a book with any key).
        #[arg(long)]
        no_secrets: bool,
    },
    /// Import an export document, all or nothing (creates the store if missing;
    /// a failed import leaves no store or key file of its making, except a store
    /// found holding peers when undone: it stays, with its key file).
    ///
    /// Into a new store the document is first imported in memory (the book's size
    /// again, for that time), so one that does not import creates nothing.
    #[command(group(ArgGroup::new("mode").args(["merge", "replace"])))]
    Import {
        /// BACKEND:PATH
        store: StoreSpec,
        /// The export document ("-" for stdin).
        file: PathBuf,
        /// Add the document's peers, replacing those with the same id (default).
        #[arg(long)]
        merge: bool,
        /// Make the book hold exactly the document's peers.
        #[arg(long)]
        replace: bool,
    },
    /// Copy a whole book to another store (any backend), then check it record by record.
    ///
    /// FROM is only read. TO uses the same key (by default FROM's key file is copied
    /// to TO's default key file when that does not exist yet).
    ///
    /// A migration into a TO that did not exist that fails removes what it made (the
    /// copied key file, TO, directories made above it), never what was there
    /// before; a copy that fails its record-by-record check is not FROM's book, so
    /// it is emptied and removed too (FROM is unchanged: rerun once fixed). Only a
    /// report lost once the peers were written keeps TO (the error says so). What
    /// could not be removed is named in a warning.
    Migrate {
        /// BACKEND:PATH to copy from (never written).
        from: StoreSpec,
        /// BACKEND:PATH to copy to.
        to: StoreSpec,
        /// Replace TO's peers even when it is not empty.
        #[arg(long)]
        force: bool,
    },
    /// Show the book's retention settings, or change them (stored in the book: the
    /// node and this command share them; a node opening with other Options wins).
    Settings {
        /// BACKEND:PATH
        store: StoreSpec,
        /// Most peers in the book.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max_peers: Option<u64>,
        /// Cap on the stored record bytes (0 removes the cap).
        #[arg(long, value_name = "BYTES")]
        max_bytes: Option<u64>,
        /// A peer unseen for longer than this is stale (30d, 2w).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        inactive_after: Option<Duration>,
        /// Failed reconnection attempts that blacklist a peer.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        failed_attempts: Option<u32>,
        /// How long a blacklist lasts (24h).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        blacklist_for: Option<Duration>,
        /// How often the node should run cleanup (6h).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        cleanup_interval: Option<Duration>,
        /// Evict the least recently seen peers instead of refusing a new one when full.
        #[arg(long, value_name = "BOOL")]
        evict_when_full: Option<bool>,
    },
    /// Re-seal every secret under a new key written to a new key file.
    RotateKey {
        /// BACKEND:PATH
        store: StoreSpec,
        /// Where to create the new key file (must not exist).
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
    /// Erase every peer: no byte of a former record stays in the store's directory.
    ///
    /// Copies made outside the store (backups, exports, file-system snapshots) keep
    /// theirs; --destroy-key also overwrites and removes the key file, so the sealed
    /// secrets of every such copy become unreadable (unless the key was copied too).
    Clear {
        /// BACKEND:PATH
        store: StoreSpec,
        /// Also destroy the key file (overwritten, synced, removed) and remove the
        /// emptied store: the backend's own files, then the directory unless
        /// something is left in it (e.g. lost+found); a symbolic link to it stays;
        /// the next write starts a new store and key.
        /// Refused, before anything changes, with --key-env (no key file).
        #[arg(long)]
        destroy_key: bool,
    },
    /// Remove stale peers and/or the N least recently seen.
    #[command(group(ArgGroup::new("what").args(["stale", "lru"]).required(true).multiple(true)))]
    Cleanup {
        /// BACKEND:PATH
        store: StoreSpec,
        /// Remove stale peers (unseen for longer than the book's inactive-after, or given
        /// up after its failed attempts).
        #[arg(long)]
        stale: bool,
        /// Remove the N least recently seen peers (after --stale).
        #[arg(long, value_name = "N")]
        lru: Option<usize>,
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `list --sort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Sort {
    /// Last contact.
    LastSeen,
    /// Quality score.
    Quality,
    /// Reconnection score.
    Score,
}

/// `list --order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            ExitCode::from(e.code)
        }
    }
}
