//! The master key and its key file: created `0600` with create-new (a temp file,
//! synced, hard-linked into place so an existing key is never replaced), loaded only
//! when group and others cannot read it.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use super::KEY_LEN;
use crate::error::{Error, Result};

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
pub struct MasterKey(pub(super) Zeroizing<[u8; KEY_LEN]>);

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
pub(super) fn write_key_file(
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
