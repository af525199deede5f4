//! Moving books: `migrate` across every backend (a non-empty target refused
//! without `--force`, its settings untouched), `export` (to a file replaced whole
//! or not at all) and `import` (secrets under the same key only; a failed import
//! into a new store leaves nothing behind).

use std::path::Path;

use serde_json::Value;

use crate::support::{bin, export_peers, listing, ok, run_cmd, run_in, seed, SECRET};

#[test]
fn migrate_across_every_backend_keeps_the_book() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("lmdb", d, 3);
    let original = export_peers(d, &spec, &d.join("peers.key"));
    assert_eq!(original.as_array().unwrap().len(), 6);

    let chain = ["lmdb:./peers", "rocksdb:./b", "file:./c", "lmdb:./d"];
    for pair in chain.windows(2) {
        let r = ok(run_in(d, &["migrate", pair[0], pair[1]]));
        r.stdout_has("checked 6/6");
        r.stdout_has("ok: ");
    }
    for (spec, key) in [
        ("rocksdb:./b", "b.key"),
        ("file:./c", "c.key"),
        ("lmdb:./d", "d.key"),
    ] {
        assert_eq!(export_peers(d, spec, &d.join(key)), original, "{spec}");
    }
    // Secrets still open at the end of the chain.
    let r = ok(run_in(d, &["get", "lmdb:./d", "alice", "--reveal-secrets"]));
    assert!(r.stdout.contains(SECRET));

    // A non-empty TO is refused without --force, and left alone.
    run_in(d, &["migrate", "file:./c", "rocksdb:./b"])
        .exits(1)
        .stderr_has("is not empty")
        .stderr_has("--force");
    ok(run_in(
        d,
        &["migrate", "file:./c", "rocksdb:./b", "--force"],
    ));
    run_in(d, &["migrate", "file:./c", "file:./c/"]).exits(2);
}

#[test]
fn export_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    ok(run_cmd(bin().current_dir(d).args([
        "export",
        &spec,
        "--out",
        "book.json",
    ])))
    .stderr_has("exported 4 peers to book.json");
    let text = std::fs::read_to_string(d.join("book.json")).unwrap();
    assert!(!text.contains(SECRET));

    // Sealed secrets only import under the same key.
    run_in(d, &["import", "file:./other", "book.json"])
        .exits(1)
        .stderr_starts("error: wrong key")
        .stderr_has("--no-secrets");
    ok(run_in(
        d,
        &[
            "import",
            "file:./same",
            "book.json",
            "--key-file",
            "peers.key",
        ],
    ));
    assert_eq!(
        export_peers(d, "file:./same", &d.join("peers.key")),
        export_peers(d, &spec, &d.join("peers.key"))
    );

    // Without secrets, into a book with its own new key.
    ok(run_cmd(bin().current_dir(d).args([
        "export",
        &spec,
        "--no-secrets",
        "--out",
        "plain.json",
    ])));
    let r = ok(run_in(
        d,
        &["import", "rocksdb:./fresh", "plain.json", "--replace"],
    ));
    r.stdout_has("imported 4 peers");
    assert!(d.join("fresh.key").is_file());
    let r = ok(run_in(
        d,
        &["get", "rocksdb:./fresh", "alice", "--reveal-secrets"],
    ));
    r.stdout_has("shared_secret:      -");

    std::fs::write(d.join("junk.json"), "{\"format\": 7").unwrap();
    run_in(d, &["import", "file:./x", "junk.json"])
        .exits(1)
        .stderr_has("is not a peerbook export");
    assert!(!d.join("x").exists(), "a bad document created a store");
}

#[test]
fn export_out_replaces_the_file_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    std::fs::write(d.join("book.json"), "previous export").unwrap();
    // A second name for the old file: a new file renamed into place leaves it as it
    // was, where rewriting book.json in place would change it too.
    std::fs::hard_link(d.join("book.json"), d.join("old-name.json")).unwrap();
    // A failing export (wrong key) leaves the old file and no temp file.
    std::fs::write(d.join("wrong.key"), [9u8; 32]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("wrong.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    run_in(
        d,
        &[
            "export",
            &spec,
            "--out",
            "book.json",
            "--key-file",
            "wrong.key",
        ],
    )
    .exits(1);
    assert_eq!(
        std::fs::read_to_string(d.join("book.json")).unwrap(),
        "previous export"
    );
    // A directory that does not exist: an error, nothing created.
    run_in(d, &["export", &spec, "--out", "missing/book.json"]).exits(1);
    assert!(!d.join("missing").exists());
    // Success replaces it whole, private, with no temp file left.
    ok(run_in(d, &["export", &spec, "--out", "book.json"]));
    let text = std::fs::read_to_string(d.join("book.json")).unwrap();
    assert!(ExportLike::peers(&text) == 4, "{text}");
    assert_eq!(
        std::fs::read_to_string(d.join("old-name.json")).unwrap(),
        "previous export",
        "book.json was rewritten in place, not replaced"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("book.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Reading an export document in tests.
struct ExportLike;

impl ExportLike {
    fn peers(text: &str) -> usize {
        let v: Value = serde_json::from_str(text).expect("an export is JSON");
        v["peers"].as_array().map_or(0, Vec::len)
    }
}

/// The retention settings of `settings --json` on `spec`.
fn retention(dir: &Path, spec: &str) -> Value {
    let r = ok(run_in(dir, &["settings", spec, "--json"]));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["retention"].clone()
}

/// `migrate` into a store that is not empty, without --force, changes nothing in it:
/// not its peers, not its retention settings.
#[test]
fn a_refused_migrate_leaves_the_target_settings_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("lmdb", d, 1);
    ok(run_in(d, &["migrate", &spec, "file:./b"]));
    ok(run_in(
        d,
        &[
            "settings",
            "file:./b",
            "--max-peers",
            "42",
            "--inactive-after",
            "3d",
        ],
    ));
    let before = retention(d, "file:./b");
    assert_eq!(before["max_peers"], 42);
    run_in(d, &["migrate", &spec, "file:./b"])
        .exits(1)
        .stderr_has("is not empty");
    assert_eq!(retention(d, "file:./b"), before);
    // With --force, TO takes FROM's settings.
    ok(run_in(d, &["migrate", &spec, "file:./b", "--force"]));
    assert_eq!(retention(d, "file:./b"), retention(d, &spec));
}

/// An import that would create a store and fails (secrets sealed under another
/// key) leaves no store directory and no key file behind; the retry with the right
/// key then works.
#[test]
fn a_failed_import_into_a_new_store_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    ok(run_in(d, &["export", &spec, "--out", "book.json"]));
    for engine in ["file", "lmdb", "rocksdb"] {
        let target = format!("{engine}:./new");
        run_in(d, &["import", &target, "book.json"])
            .exits(1)
            .stderr_starts("error: wrong key");
        assert!(!d.join("new").exists(), "{engine}: store left behind");
        assert!(
            !d.join("new.key").exists(),
            "{engine}: key file left behind"
        );
        // Nested, with a named key file: no parent directory left either.
        let target = format!("{engine}:./a/b/new");
        run_in(
            d,
            &["import", &target, "book.json", "--key-file", "new.key"],
        )
        .exits(1)
        .stderr_starts("error: wrong key");
        assert!(!d.join("a").exists(), "{engine}: directories left behind");
        assert!(
            !d.join("new.key").exists(),
            "{engine}: key file left behind"
        );
        // An empty directory given stays, empty.
        std::fs::create_dir(d.join("empty")).unwrap();
        let target = format!("{engine}:./empty");
        run_in(d, &["import", &target, "book.json"])
            .exits(1)
            .stderr_starts("error: wrong key");
        assert_eq!(listing(&d.join("empty")), Vec::<String>::new(), "{engine}");
        assert!(!d.join("empty.key").exists(), "{engine}");
        std::fs::remove_dir(d.join("empty")).unwrap();
    }
    let r = ok(run_in(
        d,
        &[
            "import",
            "file:./new",
            "book.json",
            "--key-file",
            "peers.key",
        ],
    ));
    r.stdout_has("imported 4 peers");
}

/// A document that would not import into a new store (its secrets sealed under
/// another key) is refused before anything is made on disk: here the new key file
/// could not even be written (its directory is missing), yet the error is the
/// document's.
#[test]
fn an_import_into_a_new_store_is_checked_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    ok(run_in(d, &["export", &spec, "--out", "book.json"]));
    let before = listing(d);
    for engine in ["file", "lmdb", "rocksdb"] {
        let target = format!("{engine}:./a/new");
        run_in(
            d,
            &["import", &target, "book.json", "--key-file", "keys/new.key"],
        )
        .exits(1)
        .stderr_starts("error: wrong key");
        assert_eq!(listing(d), before, "{engine}");
    }
}
