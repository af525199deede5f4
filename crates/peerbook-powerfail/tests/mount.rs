//! The file system through the kernel: plain I/O, a memory map, syncs, a power cut
//! and a remount.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use peerbook_powerfail::PowerFailFs;

fn read(path: &std::path::Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

#[test]
fn synced_files_survive_a_cut_and_unsynced_ones_may_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mp = dir.path();
    let fs = PowerFailFs::new();
    let Some(mut m) = fs.mount_in_test(mp) else {
        return;
    };
    let mut lost = 0;
    for round in 0..8u64 {
        fs::create_dir_all(mp.join("d")).expect("mkdir");
        let mut f = File::create(mp.join("d/synced")).expect("create");
        f.write_all(format!("synced {round}").as_bytes())
            .expect("write");
        f.sync_all().expect("fsync");
        File::open(mp.join("d"))
            .expect("open dir")
            .sync_all()
            .expect("fsyncdir");
        let g = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(mp.join("d/volatile"))
            .expect("create");
        g.write_all_at(&vec![round as u8; 10_000], 0)
            .expect("pwrite");
        // Reads after writes, through read(2) and through a memory map.
        let mut back = Vec::new();
        (&g).seek(SeekFrom::Start(0)).expect("seek");
        (&g).read_to_end(&mut back).expect("read");
        assert_eq!(back, vec![round as u8; 10_000]);
        // SAFETY: the file is not changed while mapped.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                10_000,
                libc::PROT_READ,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&g),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // SAFETY: mapped above, 10,000 bytes long, read only.
        let mapped = unsafe { std::slice::from_raw_parts(map as *const u8, 10_000) };
        assert!(mapped.iter().all(|&b| b == round as u8));
        g.write_all_at(b"!", 5).expect("pwrite");
        assert_eq!(mapped[5], b'!', "a write is visible through the map");
        // SAFETY: unmapping what was mapped above.
        unsafe { libc::munmap(map, 10_000) };
        g.set_len(20_000).expect("ftruncate");
        drop((f, g));
        let report = fs.cut_power(round);
        assert!(report.pieces_pending > 0, "{report:?}");
        assert_eq!(
            fs::read(mp.join("d/synced")).map_err(|e| e.raw_os_error()),
            Err(Some(libc::EIO)),
            "the power is off"
        );
        lost += usize::from(report.pieces_kept < report.pieces_pending);
        m.unmount().expect("unmount");
        m = fs.mount(mp).expect("mount again");
        assert_eq!(
            read(&mp.join("d/synced")),
            Some(format!("synced {round}").into_bytes()),
            "synced file and name survive ({report:?})"
        );
        match read(&mp.join("d/volatile")) {
            None => assert_eq!(report.names_kept, 0, "{report:?}"),
            Some(bytes) => {
                assert!(bytes.len() <= 20_000);
                // Leftovers of earlier rounds may survive a dropped truncate.
                assert!(bytes.iter().all(|&b| b <= round as u8 || b == b'!'));
            }
        }
    }
    m.unmount().expect("unmount");
    assert!(lost > 0, "no cut ever lost anything");
}

#[test]
fn a_failing_fsync_reports_eio_once_drops_the_data_and_the_fs_keeps_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mp = dir.path();
    let fs = PowerFailFs::new();
    let Some(m) = fs.mount_in_test(mp) else {
        return;
    };
    let mut f = File::create(mp.join("log")).expect("create");
    f.write_all(b"acked ").expect("write");
    f.sync_data().expect("fdatasync");
    f.write_all(b"lost").expect("write");
    fs.fail_syncs(1);
    let e = f.sync_data().expect_err("the armed fdatasync fails");
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    assert_eq!(fs.failed_syncs(), 1);
    // Every other request keeps working, and the next sync succeeds: the trap.
    f.write_all(b" later").expect("write after the failure");
    f.sync_all().expect("the next fsync succeeds");
    fs::write(mp.join("other"), b"x").expect("another file");
    drop(f);
    // Reopened (the page cache is dropped at open), the failed write is gone.
    let got = fs::read(mp.join("log")).expect("read");
    assert!(got.starts_with(b"acked "), "{got:?}");
    assert!(!got.windows(4).any(|w| w == b"lost"), "{got:?}");
    // The second fsync made the later write durable at its offset, over a hole.
    assert!(got.ends_with(b" later"), "{got:?}");
    // A directory sync fails too when armed.
    fs.fail_syncs(1);
    let e = File::open(mp)
        .expect("open dir")
        .sync_all()
        .expect_err("fsyncdir");
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    File::open(mp)
        .expect("open dir")
        .sync_all()
        .expect("then it works");
    assert_eq!(fs.failed_syncs(), 2);
    m.unmount().expect("unmount");
}
