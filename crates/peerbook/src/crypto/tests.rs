//! Unit tests of the crypto module: key files, sealing, opening, redaction.

use std::fs;
use std::io::Write;

use super::key::write_key_file;
use super::*;

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes([b; KEY_LEN])
}

/// A key file write that fails part way (half the key written, then a full
/// disk) reports the error and leaves no key file, and nothing else, behind:
/// a short key file would be refused at every later load, or worse, a retry of
/// `load_or_create` would report it corrupted instead of creating a key.
#[test]
fn a_failed_key_file_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("book.key");
    let result = write_key_file(&path, key(7).0.as_ref(), |file, bytes| {
        file.write_all(&bytes[..KEY_LEN / 2])?;
        Err(std::io::ErrorKind::StorageFull.into())
    });
    assert!(
        matches!(&result, Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::StorageFull),
        "{result:?}"
    );
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a failed write left {left:?}");
    // The path is free: a new key file is created there, whole.
    let created = MasterKey::load_or_create(&path).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), KEY_LEN as u64);
    assert_eq!(MasterKey::load(&path).unwrap().0, created.0);
}

/// An existing file at the path is never replaced (create-new), and the
/// temporary file of the attempt is gone.
#[test]
fn write_new_file_never_replaces_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("book.key");
    fs::write(&path, b"someone else's").unwrap();
    let err = key(1).write_new_file(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), b"someone else's");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Seals sharing one read of the random source each get their own nonce, also
/// past the count read, and open like any seal (with its kind and peer only).
#[test]
fn seals_sharing_one_random_read_get_distinct_nonces() {
    let c = Cipher::new(&key(1));
    // fewer than one read holds, and more (past NONCES_AT_ONCE)
    let sealed: Vec<SealedSecret> = [(2, 3), (6, 8)]
        .into_iter()
        .flat_map(|(count, seals)| {
            let mut nonces = Nonces::new(count).unwrap();
            (0..seals)
                .map(|_| {
                    c.seal_with(&mut nonces, SecretKind::IceCredential, "bob", b"turn")
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let distinct: std::collections::HashSet<&[u8]> = sealed.iter().map(|s| s.nonce()).collect();
    assert_eq!(distinct.len(), 11, "no nonce handed out twice");
    assert!(!distinct.contains(&[0; NONCE_LEN][..]), "no unread nonce");
    for s in &sealed {
        assert_eq!(
            c.open(SecretKind::IceCredential, "bob", s)
                .unwrap()
                .expose(),
            b"turn"
        );
        assert!(c.open(SecretKind::SharedSecret, "bob", s).is_err());
        assert!(c.open(SecretKind::IceCredential, "eve", s).is_err());
    }
}

#[test]
fn seal_open_round_trip_with_fresh_nonces() {
    let c = Cipher::new(&key(1));
    let a = c
        .seal(SecretKind::SharedSecret, "alice", b"s3cret")
        .unwrap();
    let b = c
        .seal(SecretKind::SharedSecret, "alice", b"s3cret")
        .unwrap();
    assert_ne!(a.nonce(), b.nonce(), "every seal draws a new nonce");
    assert_ne!(a, b);
    assert_eq!(
        c.open(SecretKind::SharedSecret, "alice", &a)
            .unwrap()
            .expose(),
        b"s3cret"
    );
    assert_eq!(a.as_bytes().len(), NONCE_LEN + 6 + TAG_LEN);
}

#[test]
fn wrong_peer_kind_key_or_tampering_fail() {
    let c = Cipher::new(&key(1));
    let sealed = c
        .seal(SecretKind::SharedSecret, "alice", b"s3cret")
        .unwrap();
    assert_eq!(
        c.open(SecretKind::SharedSecret, "bob", &sealed),
        Err(OpenFailed)
    );
    assert_eq!(
        c.open(SecretKind::SharedSecret, "alicex", &sealed),
        Err(OpenFailed)
    );
    assert_eq!(
        c.open(SecretKind::IceCredential, "alice", &sealed),
        Err(OpenFailed)
    );
    assert_eq!(
        Cipher::new(&key(2)).open(SecretKind::SharedSecret, "alice", &sealed),
        Err(OpenFailed)
    );
    for i in 0..sealed.as_bytes().len() {
        let mut bytes = sealed.as_bytes().to_vec();
        bytes[i] ^= 0x01;
        let tampered = SealedSecret::from_bytes(bytes).unwrap();
        assert_eq!(
            c.open(SecretKind::SharedSecret, "alice", &tampered),
            Err(OpenFailed),
            "bit flip at {i}"
        );
    }
}

#[test]
fn key_check_tells_keys_apart() {
    let check = Cipher::new(&key(1)).key_check().unwrap();
    assert!(Cipher::new(&key(1)).verify_key_check(&check));
    assert!(!Cipher::new(&key(2)).verify_key_check(&check));
}

#[test]
fn sealed_secret_rejects_bad_lengths_and_serializes_both_ways() {
    assert!(SealedSecret::from_bytes(vec![0; NONCE_LEN + TAG_LEN - 1]).is_err());
    assert!(SealedSecret::from_bytes(vec![0; NONCE_LEN + TAG_LEN + MAX_SECRET_LEN + 1]).is_err());
    let s = Cipher::new(&key(3))
        .seal(SecretKind::SharedSecret, "p", b"x")
        .unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.starts_with('"'), "JSON form is a base64 string");
    assert_eq!(serde_json::from_str::<SealedSecret>(&json).unwrap(), s);
    let bin = postcard::to_stdvec(&s).unwrap();
    assert_eq!(postcard::from_bytes::<SealedSecret>(&bin).unwrap(), s);
    assert!(serde_json::from_str::<SealedSecret>("\"not base64!\"").is_err());
    assert_eq!(
        format!("{s:?}"),
        format!("SealedSecret({} bytes)", s.as_bytes().len())
    );
}

#[test]
fn key_files_are_private_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let created = MasterKey::create(&path).unwrap();
    assert_eq!(MasterKey::load(&path).unwrap().bytes(), created.bytes());
    assert!(
        matches!(MasterKey::create(&path), Err(Error::Io { .. })),
        "create-new refuses an existing file"
    );
    assert_eq!(
        MasterKey::load(&path).unwrap().bytes(),
        created.bytes(),
        "existing key untouched"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = MasterKey::load(&path).unwrap_err();
        assert!(matches!(err, Error::InsecureKeyFile { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            MasterKey::load(&path),
            Err(Error::InsecureKeyFile { .. })
        ));
    }
    let short = dir.path().join("short");
    fs::write(&short, [1u8; 5]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(matches!(
        MasterKey::load(&short),
        Err(Error::Corrupted { .. })
    ));
    assert!(matches!(
        MasterKey::load(dir.path().join("missing")),
        Err(Error::Io { .. })
    ));
    assert!(MasterKey::from_slice(&[0; 31]).is_err());
    assert!(MasterKey::from_slice(&[0; 32]).is_ok());
}

#[cfg(unix)]
fn assert_insecure(result: Result<MasterKey>, what: &str) {
    match result {
        Err(Error::InsecureKeyFile { reason, .. }) => assert!(!reason.is_empty()),
        Err(e) => panic!("{what}: expected InsecureKeyFile, got {e}"),
        Ok(_) => panic!("{what}: the key file was accepted"),
    }
}

#[cfg(unix)]
#[test]
fn symlinked_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.key");
    MasterKey::create(&real).unwrap();
    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_insecure(MasterKey::load(&link), "symlink to a good key file");
    assert_insecure(
        MasterKey::load_or_create(&link),
        "load_or_create via symlink",
    );
    // a dangling link is not created through either
    let dangling = dir.path().join("dangling.key");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    assert_insecure(MasterKey::load_or_create(&dangling), "dangling symlink");
    assert!(
        !dir.path().join("nowhere").exists(),
        "nothing created at the target"
    );
}

#[cfg(unix)]
#[test]
fn fifo_key_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.key");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send((MasterKey::load(&path), MasterKey::load_or_create(&path)));
    });
    // A blocking open never returns: fail the test instead of hanging it.
    let (load, load_or_create) = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("opening a FIFO key file blocked");
    assert_insecure(load, "FIFO");
    assert_insecure(load_or_create, "FIFO via load_or_create");
}

#[cfg(unix)]
#[test]
fn group_readable_and_foreign_key_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    MasterKey::create(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert_insecure(MasterKey::load(&path), "mode 0640");
    assert_insecure(
        MasterKey::load_or_create(&path),
        "mode 0640 via load_or_create",
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(MasterKey::load(&path).is_ok());
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: cannot chown a file to another user; owner check skipped");
        return;
    }
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    assert_insecure(MasterKey::load(&path), "owned by uid 65534");
    assert_insecure(
        MasterKey::load_or_create(&path),
        "foreign owner via load_or_create",
    );
}

#[test]
fn destroy_file_wipes_and_removes_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    MasterKey::create(&path).unwrap();
    MasterKey::destroy_file(&path).unwrap();
    assert!(!path.exists());
    assert!(matches!(
        MasterKey::destroy_file(&path),
        Err(Error::Io { .. })
    ));
    #[cfg(unix)]
    {
        let real = dir.path().join("real");
        let created = MasterKey::create(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            MasterKey::destroy_file(&link),
            Err(Error::InsecureKeyFile { .. })
        ));
        assert_eq!(MasterKey::load(&real).unwrap().bytes(), created.bytes());

        // A hard link to another file, a file of another length, a FIFO and a
        // directory are refused as insecure and left as they were.
        let linked = dir.path().join("linked");
        std::fs::hard_link(&real, &linked).unwrap();
        assert!(matches!(
            MasterKey::destroy_file(&linked),
            Err(Error::InsecureKeyFile { .. })
        ));
        assert_eq!(MasterKey::load(&real).unwrap().bytes(), created.bytes());
        let long = dir.path().join("not-a-key");
        std::fs::write(
            &long,
            b"a document that is not a key file at all, 64 bytes long...",
        )
        .unwrap();
        assert!(matches!(
            MasterKey::destroy_file(&long),
            Err(Error::InsecureKeyFile { .. })
        ));
        assert!(std::fs::read(&long).unwrap().starts_with(b"a document"));
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(matches!(
            MasterKey::destroy_file(&fifo),
            Err(Error::InsecureKeyFile { .. })
        ));
        assert!(matches!(
            MasterKey::destroy_file(dir.path()),
            Err(Error::InsecureKeyFile { .. })
        ));
    }
}

/// The AES key schedule inside every `Cipher` is wiped when it drops (the `aes`
/// crate's `zeroize` feature; without it this does not compile). The POLYVAL
/// key has no such marker trait: `cargo tree -e features -i polyval` shows its
/// `zeroize` feature on.
#[test]
fn aes_round_keys_are_zeroized_on_drop() {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<aes::Aes256>();
}

#[test]
fn debug_never_shows_secrets() {
    let k = MasterKey::from_bytes([0xAB; KEY_LEN]);
    let s = Secret::from("topsecretvalue");
    assert!(!format!("{k:?}").contains("ab"));
    assert!(!format!("{k:?}{s:?}").contains("topsecret"));
    assert!(!format!("{:?}", Cipher::new(&k)).contains("171"));
}

/// The associated data is the kind's tag, a zero byte and the peer id, whether it
/// fits the stack buffer (every id the schema admits) or not (any `&str` given to
/// `open`), and a seal opens only under the id it was made for at every length.
#[test]
fn associated_data_is_tag_zero_id_at_every_length() {
    let cipher = Cipher::new(&MasterKey::from_bytes([3; 32]));
    for len in [0, 1, 127, 128, 129, 300] {
        let id = "i".repeat(len);
        for kind in [
            SecretKind::SharedSecret,
            SecretKind::IceCredential,
            SecretKind::KeyCheck,
        ] {
            let mut expected = kind.tag().to_vec();
            expected.push(0);
            expected.extend_from_slice(id.as_bytes());
            assert_eq!(AssociatedData::new(kind, &id).as_bytes(), expected, "{len}");
        }
        let sealed = cipher.seal(SecretKind::SharedSecret, &id, b"s").unwrap();
        assert!(cipher.open(SecretKind::SharedSecret, &id, &sealed).is_ok());
        let other = format!("{id}x");
        assert!(cipher
            .open(SecretKind::SharedSecret, &other, &sealed)
            .is_err());
    }
}
