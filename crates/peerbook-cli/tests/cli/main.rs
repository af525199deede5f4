//! The real `peerbook` binary on real stores in temp dirs: every backend, migration
//! across them, verify/repair, key rotation, secrets redaction, usage errors.
//!
//! One test binary (it needs every engine, RocksDB too: `required-features` in
//! Cargo.toml), its tests split by role:
//!
//! - [`usage`]: the command line itself: help, usage errors, durations, `--json`,
//!   quiet progress in pipes;
//! - [`inspect`]: the reading commands (`stats`, `list`, `get`, `candidates`) and
//!   secrets redaction;
//! - [`keys`]: key files and key environment variables, `init`, `rotate-key`;
//! - [`transfer`]: `migrate`, `export` and `import`;
//! - [`maintenance`]: `verify`/`repair`, `cleanup`, `settings`, `clear`;
//! - [`store_dirs`]: what is and is not a store directory, locks, symbolic links;
//! - [`stdout`] (Linux): a report that cannot be written;
//! - [`support`]: running the binary, seeding stores, helpers they share.

mod inspect;
mod keys;
mod maintenance;
#[cfg(target_os = "linux")]
mod stdout;
mod store_dirs;
mod support;
mod transfer;
mod usage;
