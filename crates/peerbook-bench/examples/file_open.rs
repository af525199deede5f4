//! The file backend's open, as the `open` benchmark measures it (a `FileBackend`
//! opened through the registry on a copy of the pristine book, then
//! `PeerBook::open`), outside criterion: quick to repeat, one process per run, with
//! the peak and steady RSS of each open and the floors under it.
//!
//! ```text
//! cargo run --release -p peerbook-bench --example file_open -- open N [REPS]
//! cargo run --release -p peerbook-bench --example file_open -- floor N
//! ```
//!
//! Books are built with the bench's generator and fixtures (`pristine`) under
//! `$FILE_OPEN_BOOKS` (default `$CARGO_TARGET_DIR-books`, else `./file-open-books`)
//! and reused whatever binary runs (a book is rebuilt only when missing: the bench's
//! own cache is tied to its binary). `open` times REPS (default 5) opens of a copy,
//! each dropped before the next (untimed), and prints each time, the median, and the
//! peak (`VmHWM`, reset before each open) and steady (`VmRSS` with the book open) RSS.
//! `floor` times reading the snapshot through 1 MiB reads, with and without its
//! CRC-32C, and `std::fs::read` of the whole file.
//!
//! Rep 0 runs in a fresh process: it pays a page fault for every page of the
//! loaded book, and its peak/steady is the book's. Later reps reuse the memory the
//! dropped book freed (glibc keeps it), so they fault far less (at 1M peers on a
//! busy 2-core machine: 2.0-3.1 s for rep 0, 0.8-1.1 s after); criterion's `open`
//! benchmark repeats opens in one process too, so its median is the second kind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use peerbook::{Durability, PeerBook};
use peerbook_bench::{
    copy_dir, median, open_backend, options, pristine, status_kib, Generator, Kind,
};

fn books() -> PathBuf {
    if let Some(dir) = std::env::var_os("FILE_OPEN_BOOKS") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(format!("{}-books", t.to_string_lossy())),
        None => PathBuf::from("file-open-books"),
    }
}

/// The pristine book of `n` peers (built once) and a working copy of it.
fn book(n: usize) -> PathBuf {
    let out = books();
    let dir = out.join("books").join(format!("file-{n}"));
    if !dir.join("done").exists() {
        let started = Instant::now();
        let p = pristine(&out, &Generator::new(), Kind::File, n);
        assert_eq!(p.dir.as_deref(), Some(dir.as_path()));
        std::fs::write(dir.join("done"), b"").expect("mark the book");
        eprintln!(
            "built {n} peers in {:.1} s, {} bytes on disk",
            started.elapsed().as_secs_f64(),
            p.stats.disk_usage
        );
    }
    let work = out.join(format!("work-file-{n}"));
    if !work.join("done").exists() {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&dir, &work).expect("copy the book");
    }
    work
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn open(n: usize, reps: usize) {
    let work = book(n);
    let mut times = Vec::new();
    for rep in 0..reps {
        // Reset VmHWM to the current RSS, so each open's peak is its own.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let base = status_kib("VmRSS:");
        let t = Instant::now();
        let book = PeerBook::open(open_backend(Kind::File, &work), options(Durability::Sync))
            .expect("open");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let (peak, steady) = (status_kib("VmHWM:"), status_kib("VmRSS:"));
        drop(std::hint::black_box(book));
        println!(
            "n={n} rep={rep} open {ms:.1} ms, RSS before {:.0} MiB, peak {:.0} MiB, steady {:.0} MiB, peak/steady {:.3}",
            mib(base),
            mib(peak),
            mib(steady),
            peak as f64 / steady.max(1) as f64
        );
        times.push(ms);
    }
    println!("n={n} median open {:.1} ms over {reps}", median(&times));
}

fn floor(n: usize) {
    let work = book(n);
    let snap = std::fs::read_dir(&work)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("snapshot."))
        })
        .expect("a snapshot");
    let chunks = |crc: bool, path: &Path| {
        let mut f = std::fs::File::open(path).expect("open");
        let mut buf = vec![0u8; 1 << 20];
        let (mut total, mut c) = (0usize, 0u32);
        let t = Instant::now();
        loop {
            let k = f.read(&mut buf).expect("read");
            if k == 0 {
                break;
            }
            if crc {
                c = crc32c::crc32c_append(c, &buf[..k]);
            }
            total += k;
        }
        (t.elapsed().as_secs_f64() * 1e3, total, c)
    };
    for _ in 0..3 {
        let (read_ms, total, _) = chunks(false, &snap);
        let (crc_ms, _, c) = chunks(true, &snap);
        let t = Instant::now();
        let whole = std::fs::read(&snap).expect("read");
        let whole_ms = t.elapsed().as_secs_f64() * 1e3;
        let gib = total as f64 / f64::from(1u32 << 30);
        println!(
            "n={n} snapshot {total} B: 1 MiB reads {read_ms:.0} ms ({:.2} GiB/s), + CRC-32C {crc_ms:.0} ms (crc {c:08x}), fs::read whole {whole_ms:.0} ms",
            gib / read_ms * 1e3
        );
        drop(whole);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    match args.get(1).map(String::as_str) {
        Some("open") => open(n, args.get(3).and_then(|r| r.parse().ok()).unwrap_or(5)),
        Some("floor") => floor(n),
        _ => eprintln!("usage: file_open open N [REPS] | file_open floor N"),
    }
}
