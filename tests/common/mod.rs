//! Shared helpers of the cross-backend tests: every engine behind one enum, opened
//! on a directory as `Arc<dyn Backend>` (through the `peerbook_engines` registry)
//! so one test drives them all alike.
#![allow(dead_code)] // each test binary uses its own subset

pub mod kill;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use peerbook::{Backend, ManualClock, MasterKey, MemoryBackend, Options};

/// The storage engines under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Memory,
    Lmdb,
    Rocks,
    File,
}

/// Every engine, the reference first.
pub const ENGINES: [Engine; 4] = [Engine::Memory, Engine::Lmdb, Engine::Rocks, Engine::File];

/// The engines that persist to a directory.
pub const DISK_ENGINES: [Engine; 3] = [Engine::Lmdb, Engine::Rocks, Engine::File];

/// Memory backends by directory, so "reopening" a memory book finds its data.
fn memory_registry() -> &'static Mutex<HashMap<PathBuf, MemoryBackend>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, MemoryBackend>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Engine {
    /// The registry's engine (`peerbook_engines`), which opens the disk engines.
    pub fn registry(self) -> peerbook_engines::Engine {
        match self {
            Engine::Memory => peerbook_engines::Engine::Memory,
            Engine::Lmdb => peerbook_engines::Engine::Lmdb,
            Engine::Rocks => peerbook_engines::Engine::Rocks,
            Engine::File => peerbook_engines::Engine::File,
        }
    }

    /// The engine called `name` (as [`Engine::name`] gives it; a child process gets
    /// its engine this way). Panics on an unknown name.
    pub fn named(name: &str) -> Engine {
        ENGINES
            .into_iter()
            .find(|e| e.name() == name)
            .unwrap_or_else(|| panic!("unknown engine {name}"))
    }

    /// A short name for messages (the registry's).
    pub fn name(self) -> &'static str {
        self.registry().name()
    }

    /// Open (or reopen) this engine's store in `dir`.
    pub fn open(self, dir: &Path) -> Arc<dyn Backend> {
        self.try_open(dir)
            .unwrap_or_else(|e| panic!("open {} in {}: {e}", self.name(), dir.display()))
    }

    /// Open, reporting the error. Disk engines go through the registry; a memory
    /// store reopened on the same `dir` is the same store (the registry's would
    /// start empty).
    pub fn try_open(self, dir: &Path) -> Result<Arc<dyn Backend>, peerbook::BackendError> {
        let path = dir.join(self.name());
        if self == Engine::Memory {
            let mut registry = memory_registry().lock().unwrap_or_else(|e| e.into_inner());
            return Ok(Arc::new(registry.entry(path).or_default().clone()));
        }
        self.registry().open(&path)
    }
}

/// The test key.
pub fn key() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

/// Default options with the test key and `clock`.
pub fn options(clock: &ManualClock) -> Options {
    Options::new(key()).with_clock(clock.clone())
}
