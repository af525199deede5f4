//! Secrets at rest: the master key, the zeroizing [`Secret`] type, and AES-256-GCM
//! sealing of shared secrets and TURN credentials.
//!
//! - The 256-bit [`MasterKey`] is never stored with the data: it lives in a key file
//!   (created `0600` with create-new, refused when group or others may read it) kept
//!   outside the data directory, or comes from the application's own keyring as bytes.
//! - Every seal draws a fresh random 96-bit nonce. The associated data is a domain tag
//!   (what kind of secret) followed by the peer id, so a sealed secret copied onto
//!   another peer, or used as another kind of secret, fails to open.
//! - Plaintext lives only in [`Secret`], which zeroizes its memory on drop and whose
//!   `Debug` prints a placeholder.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 12;
/// Length of the GCM authentication tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Largest plaintext secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 4096;

/// The 256-bit key that seals every secret of a book.
///
/// Its memory is zeroized on drop, and `Debug` never shows it.
///
/// ```
/// use peerbook::MasterKey;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("peerbook.key");
/// let key = MasterKey::load_or_create(&path).unwrap();     // created 0600
/// let again = MasterKey::load(&path).unwrap();
/// assert_eq!(format!("{key:?}"), "MasterKey([redacted])");
/// # let _ = again;
/// ```
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::getrandom(bytes.as_mut()).map_err(|e| Error::Io {
            path: "<os random source>".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(MasterKey(bytes))
    }

    /// A key from 32 bytes the application holds (e.g. from its own keyring).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A key from a byte slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            Error::invalid(
                "master_key",
                format!("must be exactly {KEY_LEN} bytes, got {}", bytes.len()),
            )
        })?;
        Ok(Self::from_bytes(array))
    }

    /// Read a key file: exactly 32 raw bytes in a file this process may trust.
    ///
    /// On Unix the file is opened without following a symbolic link and without
    /// blocking (a FIFO or device never hangs the open), and refused with
    /// [`Error::InsecureKeyFile`] (the reason carries a hint) unless it is a regular
    /// file, owned by the effective user, with no group or other permission bits:
    /// whoever can replace or read the key file chooses or learns the key that seals
    /// every secret.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = open_key_file(path, fs::OpenOptions::new().read(true))?;
        let meta = file.metadata().map_err(io)?;
        check_key_file_meta(path, &meta)?;
        if meta.len() != KEY_LEN as u64 {
            return Err(Error::Corrupted {
                what: "key file",
                location: path.display().to_string(),
                detail: format!("must hold exactly {KEY_LEN} bytes, holds {}", meta.len()),
            });
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        (&file).read_exact(bytes.as_mut()).map_err(io)?;
        Ok(MasterKey(bytes))
    }

    /// Create a new key file holding a fresh random key: created with create-new (an
    /// existing file or symbolic link is never overwritten or followed), mode `0600`,
    /// synced to disk with its directory entry.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let key = Self::generate()?;
        key.write_new_file(path)?;
        Ok(key)
    }

    /// Write this key to a new key file, as [`create`](Self::create) does (create-new,
    /// mode `0600`, synced with its directory entry), e.g. to copy a book's key
    /// without handling its bytes. The key is written whole to a temporary file
    /// beside `path` first and linked to `path` once synced: a failure (a full disk,
    /// a crash) never leaves a short key file at `path`.
    pub fn write_new_file(&self, path: impl AsRef<Path>) -> Result<()> {
        write_key_file(path.as_ref(), self.0.as_ref(), |file, bytes| {
            file.write_all(bytes)
        })
    }

    /// [`create`](Self::create) the key file if nothing is at `path`, else
    /// [`load`](Self::load) it with every check of `load`: a file this call did not
    /// create is never adopted unless it passes them (a file appearing between the
    /// two steps is loaded, and checked, too).
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        match Self::create(path) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load(path)
            }
            other => other,
        }
    }

    /// Destroy a key file: overwrite its bytes with zeros, sync, remove it and sync
    /// its directory. Every seal made under the key (in the store, its backups and
    /// exports) becomes unreadable once no other copy of the key exists.
    ///
    /// What it cannot reach: copies of the key elsewhere (backups of the key file,
    /// the application's keyring), and blocks the file system or the device keeps
    /// (copy-on-write file systems, snapshots, SSD wear levelling may keep the old
    /// bytes). A symbolic link or a non-regular file is refused with
    /// [`Error::InsecureKeyFile`] and left alone.
    pub fn destroy_file(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        // Look before opening: opening a FIFO for writing fails (or would block) and a
        // directory cannot be opened for writing, and both must be refused as what
        // they are.
        let before = fs::symlink_metadata(path).map_err(io)?;
        if !before.file_type().is_file() {
            return Err(insecure(path, "not a regular file; not touched"));
        }
        let mut file = open_key_file(path, fs::OpenOptions::new().write(true))?;
        let meta = file.metadata().map_err(io)?;
        // Only what could be our key file is wiped: a regular file of this user,
        // exactly a key long, with no other name (a hard link elsewhere would be
        // wiped too).
        if !meta.is_file() {
            return Err(insecure(path, "not a regular file; not touched"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let euid = rustix::process::geteuid().as_raw();
            if meta.uid() != euid {
                return Err(insecure(
                    path,
                    format!(
                        "owned by uid {}, not by this user (uid {euid}); not touched",
                        meta.uid()
                    ),
                ));
            }
            if meta.nlink() != 1 {
                return Err(insecure(
                    path,
                    format!(
                        "has {} names (hard links); not touched: remove the other names first",
                        meta.nlink()
                    ),
                ));
            }
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(insecure(
                path,
                format!(
                    "holds {} bytes, a key file holds exactly {KEY_LEN}; not touched",
                    meta.len()
                ),
            ));
        }
        let zeros = [0u8; KEY_LEN];
        file.write_all(&zeros).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        fs::remove_file(path).map_err(io)?;
        sync_parent(path)
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Sync the directory holding `path`, so its creation or removal is durable.
/// The body of [`MasterKey::write_new_file`], with its write step given (a test
/// injects a failing one).
///
/// The key is written to a temporary `0600` file beside `path` and synced, then
/// linked to `path` (a hard link fails if anything is there, so nothing is ever
/// replaced), the temporary name removed and the directory synced. A failure at
/// any step leaves no file at `path` holding part of a key.
fn write_key_file(
    path: &Path,
    bytes: &[u8],
    write: impl FnOnce(&mut fs::File, &[u8]) -> std::io::Result<()>,
) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let temp = temp_key_path(path).map_err(io)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temp).map_err(io)?;
    let written = write(&mut file, bytes).and_then(|()| file.sync_all());
    drop(file);
    let placed = written
        .map_err(io)
        .and_then(|()| link_no_clobber(&temp, path));
    // The temporary name goes whatever happened: after a failure it may hold part
    // of a key, after a link it is a second name of the key file.
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            if placed.is_ok() {
                let _ = fs::remove_file(path);
            }
            placed?;
            return Err(io(e));
        }
    }
    placed?;
    sync_parent(path)
}

/// A fresh name beside `path` for the key file being written.
fn temp_key_path(path: &Path) -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a key file path must end in a file name",
        )
    })?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(path.with_file_name(temp))
}

/// Give the written file `temp` its final name `path`, never replacing anything
/// there: a hard link (fails with `AlreadyExists`). On a file system without hard
/// links, a rename after checking that `path` is free (there a creator racing in
/// that instant could be replaced).
fn link_no_clobber(temp: &Path, path: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    match fs::hard_link(temp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(io(e)),
        Err(_) => match fs::symlink_metadata(path) {
            Ok(_) => Err(io(std::io::ErrorKind::AlreadyExists.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::rename(temp, path).map_err(io)
            }
            Err(e) => Err(io(e)),
        },
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => sync_dir(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

fn insecure(path: &Path, reason: impl Into<String>) -> Error {
    Error::InsecureKeyFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Open a key file with `options`, never following a symbolic link and never
/// blocking on a FIFO or device (Unix); the caller checks what it opened with fstat.
fn open_key_file(path: &Path, options: &mut fs::OpenOptions) -> Result<fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    options.open(path).map_err(|source| {
        #[cfg(unix)]
        if source.raw_os_error() == Some(libc::ELOOP) {
            return insecure(
                path,
                "is a symbolic link; point the key path at the file itself",
            );
        }
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn check_key_file_meta(path: &Path, meta: &fs::Metadata) -> Result<()> {
    if !meta.is_file() {
        return Err(insecure(
            path,
            "not a regular file; a key file is a plain 32-byte file",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let euid = rustix::process::geteuid().as_raw();
        if meta.uid() != euid {
            return Err(insecure(
                path,
                format!(
                    "owned by uid {}, not by this user (uid {euid}); another user chose it: \
                     remove it, or `chown` it to this user if you trust it",
                    meta.uid()
                ),
            ));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(insecure(
                path,
                format!("mode {mode:04o} lets group or others access it; run `chmod 600` on it"),
            ));
        }
    }
    Ok(())
}

/// A plaintext secret (a shared secret or a TURN credential).
///
/// Zeroized on drop; `Debug` prints `Secret([redacted])`; no `Display`, no serde.
///
/// ```
/// use peerbook::Secret;
/// let s = Secret::from("hunter2");
/// assert_eq!(s.expose(), b"hunter2");
/// assert_eq!(format!("{s:?}"), "Secret([redacted])");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wrap plaintext bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The plaintext bytes. Keep the borrow short.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The plaintext as UTF-8, when it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s.into_bytes())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Secret::new(v)
    }
}

/// A secret sealed with AES-256-GCM: a 96-bit nonce and the ciphertext with its tag.
///
/// In JSON (exports) it is one base64 string of nonce + ciphertext; in the binary
/// record encoding, a byte string. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    bytes: Vec<u8>,
}

impl SealedSecret {
    /// Parse stored bytes (nonce + ciphertext + tag).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(format!(
                "sealed secret of {} bytes is shorter than nonce + tag",
                bytes.len()
            ));
        }
        if bytes.len() > NONCE_LEN + TAG_LEN + MAX_SECRET_LEN {
            return Err(format!(
                "sealed secret of {} bytes is longer than allowed",
                bytes.len()
            ));
        }
        Ok(SealedSecret { bytes })
    }

    /// The stored bytes: nonce, then ciphertext and tag.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn nonce(&self) -> &[u8] {
        &self.bytes[..NONCE_LEN]
    }

    fn ciphertext(&self) -> &[u8] {
        &self.bytes[NONCE_LEN..]
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.bytes.len())
    }
}

impl Serialize for SealedSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.bytes))
        } else {
            serializer.serialize_bytes(&self.bytes)
        }
    }
}

impl<'de> Deserialize<'de> for SealedSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let bytes = if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| D::Error::custom(format!("sealed secret is not base64: {e}")))?
        } else {
            serde_bytes_vec(deserializer)?
        };
        SealedSecret::from_bytes(bytes).map_err(D::Error::custom)
    }
}

fn serde_bytes_vec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
    deserializer.deserialize_bytes(V)
}

/// What a sealed value is; part of the associated data, so one kind never opens as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecretKind {
    SharedSecret,
    IceCredential,
    KeyCheck,
}

impl SecretKind {
    fn tag(self) -> &'static [u8] {
        match self {
            SecretKind::SharedSecret => b"peerbook/v1/shared-secret",
            SecretKind::IceCredential => b"peerbook/v1/ice-credential",
            SecretKind::KeyCheck => b"peerbook/v1/key-check",
        }
    }
}

/// The constant sealed into meta so a wrong key is caught at open.
const KEY_CHECK_PLAINTEXT: &[u8] = b"peerbook key check";

/// Seals and opens secrets under one master key.
pub(crate) struct Cipher {
    aead: Aes256Gcm,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

fn associated_data(kind: SecretKind, peer_id: &str) -> Vec<u8> {
    let tag = kind.tag();
    let mut aad = Vec::with_capacity(tag.len() + 1 + peer_id.len());
    aad.extend_from_slice(tag);
    aad.push(0);
    aad.extend_from_slice(peer_id.as_bytes());
    aad
}

/// Opening failed: wrong key, wrong peer, wrong kind, or tampered bytes (GCM cannot tell which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenFailed;

impl Cipher {
    pub(crate) fn new(key: &MasterKey) -> Self {
        Cipher {
            aead: Aes256Gcm::new(key.bytes().into()),
        }
    }

    pub(crate) fn seal(
        &self,
        kind: SecretKind,
        peer_id: &str,
        plaintext: &[u8],
    ) -> Result<SealedSecret> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| Error::Io {
            path: "<os random source>".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let aad = associated_data(kind, peer_id);
        let ciphertext = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::invalid("secret", "could not be sealed (too long)"))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(SealedSecret { bytes })
    }

    pub(crate) fn open(
        &self,
        kind: SecretKind,
        peer_id: &str,
        sealed: &SealedSecret,
    ) -> Result<Secret, OpenFailed> {
        let aad = associated_data(kind, peer_id);
        self.aead
            .decrypt(
                Nonce::from_slice(sealed.nonce()),
                Payload {
                    msg: sealed.ciphertext(),
                    aad: &aad,
                },
            )
            .map(Secret::new)
            .map_err(|_| OpenFailed)
    }

    pub(crate) fn key_check(&self) -> Result<SealedSecret> {
        self.seal(SecretKind::KeyCheck, "", KEY_CHECK_PLAINTEXT)
    }

    /// True when `sealed` is a key check made under this cipher's key.
    pub(crate) fn verify_key_check(&self, sealed: &SealedSecret) -> bool {
        matches!(self.open(SecretKind::KeyCheck, "", sealed), Ok(s) if s.expose() == KEY_CHECK_PLAINTEXT)
    }
}

#[cfg(test)]
mod tests {
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
        assert!(
            SealedSecret::from_bytes(vec![0; NONCE_LEN + TAG_LEN + MAX_SECRET_LEN + 1]).is_err()
        );
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
}
