//! Damaged files on a real file system: every damage is either repaired and
//! reported (a torn tail) or refused with a clear `Corrupted` error; never a panic.
//! The tests parse the files with the byte layout documented in the crate docs.
//!
//! One test binary, its tests split by role:
//!
//! - [`headers`]: file headers (cut, wrong magic, newer or older format version);
//! - [`log`]: damaged log frames, a torn tail or corruption, and forged frames;
//! - [`snapshot`]: damaged snapshots;
//! - [`files`]: missing, leftover and foreign files in the store directory;
//! - [`random`]: random damage to either file;
//! - [`support`]: helpers they share (stores, the byte layout, `Corrupted`'s source).

mod files;
mod headers;
mod log;
mod random;
mod snapshot;
mod support;
