//! A `peerbook` built without some backends (`--no-default-features --features ...`)
//! refuses stores of the missing ones with a clear usage error. Runs only in such a
//! build, e.g. `cargo test -p peerbook-cli --no-default-features --features lmdb,file`.
#![cfg(not(all(feature = "lmdb", feature = "rocksdb", feature = "file")))]

use std::process::Command;

#[test]
fn a_backend_left_out_of_the_build_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing: Vec<&str> = [
        ("lmdb", cfg!(feature = "lmdb")),
        ("rocksdb", cfg!(feature = "rocksdb")),
        ("file", cfg!(feature = "file")),
    ]
    .into_iter()
    .filter(|(_, built)| !built)
    .map(|(name, _)| name)
    .collect();
    for engine in missing {
        let spec = format!("{engine}:./book");
        for args in [vec!["init", spec.as_str()], vec!["stats", spec.as_str()]] {
            let out = Command::new(env!("CARGO_BIN_EXE_peerbook"))
                .current_dir(dir.path())
                .args(&args)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "backend `{engine}` is not compiled into this peerbook"
                )),
                "{stderr}"
            );
            assert!(stderr.contains(&format!("--features {engine}")), "{stderr}");
        }
        assert!(
            !dir.path().join("book").exists(),
            "{engine}: a store was created"
        );
    }
}
