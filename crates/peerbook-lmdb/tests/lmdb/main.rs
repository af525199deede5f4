//! Behaviour specific to the LMDB backend: map growth, the map cap, the directory
//! lock, concurrent readers while the map grows, and error mapping.
//!
//! One test binary, its tests split by role:
//!
//! - [`files`]: the files a book makes (the data file, its clear, `creating/`);
//! - [`map`]: the memory map growing, its cap, readers while it grows, odd options;
//! - [`lock`]: the directory lock, against this process and others, and a crash;
//! - [`errors`]: what the backend refuses or reports as an error;
//! - [`support`]: helpers they share.

mod errors;
mod files;
mod lock;
mod map;
mod support;
