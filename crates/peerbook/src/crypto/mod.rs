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

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
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

mod key;

pub use key::MasterKey;

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

/// Room for the associated data of any peer id the schema admits: the longest tag,
/// the separator and [`MAX_PEER_ID_LEN`](crate::schema::MAX_PEER_ID_LEN) bytes.
const AAD_ROOM: usize = 32 + 1 + crate::schema::MAX_PEER_ID_LEN;

/// The associated data of a seal: `kind`'s tag, a zero byte, the peer id.
///
/// Built on the stack (a seal or an open is two or three per `store_peer`, and the
/// heap allocation cost about as much as the copy); an id longer than the schema
/// allows (never stored, but `open` takes any `&str`) gets a heap buffer.
struct AssociatedData {
    room: [u8; AAD_ROOM],
    len: usize,
    long: Vec<u8>,
}

impl AssociatedData {
    fn new(kind: SecretKind, peer_id: &str) -> Self {
        let tag = kind.tag();
        let len = tag.len() + 1 + peer_id.len();
        let mut aad = AssociatedData {
            room: [0; AAD_ROOM],
            len,
            long: Vec::new(),
        };
        let out = match aad.room.get_mut(..len) {
            Some(out) => out,
            None => {
                aad.long = vec![0; len];
                &mut aad.long
            }
        };
        out[..tag.len()].copy_from_slice(tag);
        out[tag.len() + 1..].copy_from_slice(peer_id.as_bytes());
        aad
    }

    fn as_bytes(&self) -> &[u8] {
        self.room.get(..self.len).unwrap_or(&self.long)
    }
}

/// Fill `out` from the OS random source.
fn fill_random(out: &mut [u8]) -> Result<()> {
    getrandom::getrandom(out).map_err(|e| Error::Io {
        path: "<os random source>".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Fresh random nonces for the seals of one call, read from the OS random source
/// in one go (a system call costs about as much as the AES-GCM seal itself); each
/// is handed out once, and a seal past the count gets its own fresh read.
pub(crate) struct Nonces {
    /// Not yet handed out: the first `left` nonces of `bytes`, `NONCE_LEN` bytes each.
    bytes: [u8; NONCES_AT_ONCE * NONCE_LEN],
    left: usize,
}

/// The most nonces one read fetches: a peer's seals are its shared secret and one
/// per ICE server credential (usually one or two); more take a read each.
const NONCES_AT_ONCE: usize = 4;

impl Nonces {
    /// `count` nonces (the first [`NONCES_AT_ONCE`] of them read now, on the stack).
    pub(crate) fn new(count: usize) -> Result<Nonces> {
        let left = count.min(NONCES_AT_ONCE);
        let mut bytes = [0; NONCES_AT_ONCE * NONCE_LEN];
        if left > 0 {
            fill_random(&mut bytes[..left * NONCE_LEN])?;
        }
        Ok(Nonces { bytes, left })
    }

    /// The next unused nonce (removed from the set).
    fn take(&mut self) -> Result<[u8; NONCE_LEN]> {
        let mut nonce = [0u8; NONCE_LEN];
        match self.left.checked_sub(1) {
            Some(left) => {
                let at = left * NONCE_LEN;
                nonce.copy_from_slice(&self.bytes[at..at + NONCE_LEN]);
                // handed out once: forget it
                self.bytes[at..at + NONCE_LEN].fill(0);
                self.left = left;
            }
            None => fill_random(&mut nonce)?,
        }
        Ok(nonce)
    }
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
        fill_random(&mut nonce)?;
        self.seal_with_nonce(nonce, kind, peer_id, plaintext)
    }

    /// [`seal`](Self::seal) with the next nonce of `nonces` (several seals of one
    /// call share one read of the OS random source).
    pub(crate) fn seal_with(
        &self,
        nonces: &mut Nonces,
        kind: SecretKind,
        peer_id: &str,
        plaintext: &[u8],
    ) -> Result<SealedSecret> {
        let nonce = nonces.take()?;
        self.seal_with_nonce(nonce, kind, peer_id, plaintext)
    }

    /// Seal under `nonce`, which must be fresh from the OS random source and used
    /// for this seal only.
    fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        kind: SecretKind,
        peer_id: &str,
        plaintext: &[u8],
    ) -> Result<SealedSecret> {
        let aad = AssociatedData::new(kind, peer_id);
        // nonce || ciphertext || tag in one buffer, encrypted in place: one
        // allocation, where `encrypt` and then a copy behind the nonce took two.
        // The buffer holds the plaintext until it is encrypted: wiped if that fails.
        let mut bytes = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(plaintext);
        let tag = self
            .aead
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                aad.as_bytes(),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| Error::invalid("secret", "could not be sealed (too long)"))?;
        bytes.extend_from_slice(&tag);
        let bytes = std::mem::take(&mut *bytes);
        Ok(SealedSecret { bytes })
    }

    pub(crate) fn open(
        &self,
        kind: SecretKind,
        peer_id: &str,
        sealed: &SealedSecret,
    ) -> Result<Secret, OpenFailed> {
        let aad = AssociatedData::new(kind, peer_id);
        self.aead
            .decrypt(
                Nonce::from_slice(sealed.nonce()),
                Payload {
                    msg: sealed.ciphertext(),
                    aad: aad.as_bytes(),
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
mod tests;
