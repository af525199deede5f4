//! Key files and keys from the environment: `init` makes a private key file,
//! `rotate-key` re-seals under a new key, a wrong or badly given key is refused
//! with a hint, and no write command makes a new key for an existing store.

use peerbook::MasterKey;

use crate::support::{bin, ok, run_cmd, run_in, seed, CREDENTIAL, SECRET};

#[test]
fn init_creates_store_and_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(run_in(dir.path(), &["init", "file:./book"]));
    r.stdout_has("created store file:./book");
    let key = dir.path().join("book.key");
    assert!(key.is_file(), "key file beside the store");
    assert!(!dir.path().join("book").join("book.key").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let r = ok(run_in(dir.path(), &["init", "file:./book"]));
    r.stdout_has("already exists");
    let r = ok(run_in(dir.path(), &["stats", "file:./book"]));
    r.stdout_has("peers:         0 of max 100");
}

#[test]
fn rotate_key_then_only_the_new_key_opens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    let r = ok(run_in(
        d,
        &["rotate-key", &spec, "--new-key-file", "new.key"],
    ));
    r.stdout_has("re-sealed the secrets of 1 peer under");
    r.stdout_has("mv new.key");
    let r = ok(run_in(
        d,
        &[
            "get",
            &spec,
            "alice",
            "--key-file",
            "new.key",
            "--reveal-secrets",
        ],
    ));
    assert!(r.stdout.contains(SECRET) && r.stdout.contains(CREDENTIAL));
    run_in(d, &["get", &spec, "alice"])
        .exits(1)
        .stderr_starts("error: wrong key")
        .stderr_has("hint: ");

    // An existing target key file is refused before anything changes.
    run_in(
        d,
        &[
            "rotate-key",
            &spec,
            "--key-file",
            "new.key",
            "--new-key-file",
            "peers.key",
        ],
    )
    .exits(1)
    .stderr_has("nothing was changed");
    ok(run_in(d, &["verify", &spec, "--key-file", "new.key"]));
}

#[test]
fn wrong_key_file_and_key_env() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 0);
    MasterKey::create(d.join("other.key")).unwrap();
    run_in(d, &["get", &spec, "alice", "--key-file", "other.key"])
        .exits(1)
        .stderr_starts(
            "error: wrong key: the master key does not open this book's sealed data\nhint: ",
        );

    let bytes = std::fs::read(d.join("peers.key")).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let r = ok(run_cmd(bin().current_dir(d).env("PB_TEST_KEY", &hex).args(
        [
            "get",
            &spec,
            "alice",
            "--key-env",
            "PB_TEST_KEY",
            "--reveal-secrets",
        ],
    )));
    assert!(r.stdout.contains(SECRET));
    for bad in ["abc", "zz", &"g".repeat(64)] {
        run_cmd(bin().current_dir(d).env("PB_TEST_KEY", bad).args([
            "stats",
            &spec,
            "--key-env",
            "PB_TEST_KEY",
        ]))
        .exits(1)
        .stderr_has("64 hex characters");
    }
    run_cmd(bin().current_dir(d).env_remove("PB_UNSET_KEY").args([
        "stats",
        &spec,
        "--key-env",
        "PB_UNSET_KEY",
    ]))
    .exits(1)
    .stderr_has("PB_UNSET_KEY is not set");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("other.key"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        run_in(d, &["stats", &spec, "--key-file", "other.key"])
            .exits(1)
            .stderr_has("hint: run `chmod 600 other.key`");
    }
}

#[test]
fn write_commands_never_create_a_key_for_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = seed("file", dir.path(), 0);
    let key = dir.path().join("peers.key");
    let doc = dir.path().join("doc.json");
    ok(run_in(
        dir.path(),
        &[
            "export",
            &spec,
            "--no-secrets",
            "--out",
            doc.to_str().unwrap(),
        ],
    ));
    std::fs::rename(&key, dir.path().join("moved.key")).unwrap();
    for args in [
        vec!["init", spec.as_str()],
        vec!["import", spec.as_str(), doc.to_str().unwrap()],
    ] {
        run_in(dir.path(), &args)
            .exits(1)
            .stderr_has("refusing to create a new key for an existing store")
            .stderr_has("peers.key"); // the expected key file
        assert!(!key.exists(), "{args:?} created a stray key file");
    }
    // a new store still gets its key from a write command
    ok(run_in(
        dir.path(),
        &["import", "lmdb:./fresh", doc.to_str().unwrap()],
    ));
    assert!(dir.path().join("fresh.key").is_file());
}
