//! The conformance kit's store and lifecycle rules, run through [`AsyncPeerBook`]:
//! every call the rules make goes through the async method of the same name,
//! awaited with a runtime's `block_on` (on a 2-worker runtime), on the memory and
//! file backends, with both write strategies.

use std::sync::OnceLock;

use peerbook::conformance::{BookUnderTest, Driver, MemoryFactory, TempDirFactory};
use peerbook::{Backend, Options, PeerBook};
use peerbook_file::{FileBackend, FileOptions};
use peerbook_tokio::{AsyncPeerBook, Error, Strategy};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Await `call` on the shared runtime; the book's own errors pass through.
fn block<T>(
    call: impl std::future::Future<Output = peerbook_tokio::Result<T>>,
) -> peerbook::Result<T> {
    match runtime().block_on(call) {
        Ok(value) => Ok(value),
        Err(Error::Book(e)) => Err(e),
        Err(other) => panic!("the async front failed to run a call: {other}"),
    }
}

/// An [`AsyncPeerBook`] seen as a blocking book; `SPAWN` picks the write strategy.
struct ViaAsync<B: Backend + 'static, const SPAWN: bool>(AsyncPeerBook<B>);

impl<B: Backend + 'static, const SPAWN: bool> std::fmt::Debug for ViaAsync<B, SPAWN> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! await_async {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        fn $name(&self, $($arg: $ty),*) -> peerbook::Result<$ret> {
            block(self.0.$name($($arg),*))
        }
    )*};
}

impl<B: Backend + 'static, const SPAWN: bool> BookUnderTest for ViaAsync<B, SPAWN> {
    type Backend = B;

    fn open(backend: B, options: Options) -> peerbook::Result<Self> {
        let strategy = if SPAWN {
            Strategy::SpawnBlocking
        } else {
            Strategy::WriterThread
        };
        let book = PeerBook::open(backend, options)?;
        Ok(ViaAsync(AsyncPeerBook::with_strategy(book, strategy)))
    }

    fn close(self) -> peerbook::Result<B> {
        Ok(block(self.0.close())?.expect("the kit holds no other clone"))
    }

    fn backend(&self) -> &B {
        self.0.blocking().backend()
    }

    peerbook::book_calls!(await_async);
}

/// Opens [`ViaAsync`] books with the writer thread.
struct WriterThread;

impl Driver for WriterThread {
    type Book<B: Backend + 'static> = ViaAsync<B, false>;
}

/// Opens [`ViaAsync`] books writing through `spawn_blocking`.
struct SpawnBlocking;

impl Driver for SpawnBlocking {
    type Book<B: Backend + 'static> = ViaAsync<B, true>;
}

fn file_factory() -> TempDirFactory<FileBackend> {
    TempDirFactory::new(
        |path| FileBackend::open(path, FileOptions::default()).expect("open a FileBackend"),
        |backend| backend.path().to_path_buf(),
    )
}

mod memory_writer_thread {
    use super::*;
    peerbook::store_conformance_tests!(MemoryFactory, WriterThread);
}

mod memory_spawn_blocking {
    use super::*;
    peerbook::store_conformance_tests!(MemoryFactory, SpawnBlocking);
}

mod file_writer_thread {
    use super::*;
    peerbook::store_conformance_tests!(file_factory(), WriterThread);
}

mod file_spawn_blocking {
    use super::*;
    peerbook::store_conformance_tests!(file_factory(), SpawnBlocking);
}
