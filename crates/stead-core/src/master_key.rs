//! The master key: the one secret from which stead derives the pepper for
//! client-secret hashes and the key that encrypts signing keys at rest.
//!
//! It comes from `STEAD_MASTER_KEY` (base64 or hex of 32 bytes), from a key
//! file, or is generated into the data directory (mode 0600) on first use.
//! It never enters the database, so a stolen database alone reveals neither
//! a client secret nor a private key.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{self, SecureRandom};
use base64::Engine;
use std::path::Path;

const KEY_LEN: usize = 32;
/// Format tag of an encrypted blob, so the format can change later.
const SEALED_V1: u8 = 1;

#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be 32 bytes, given as 64 hex digits or base64 ({0})")]
    Malformed(&'static str),
    #[error("cannot read or create the master key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cannot generate a master key")]
    Random,
}

impl MasterKey {
    /// Parses 32 bytes given as 64 hex digits or as (url-safe or standard) base64.
    pub fn parse(text: &str) -> Result<Self, MasterKeyError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| MasterKeyError::Malformed("bad hex"))?
        } else {
            let b64 = base64::engine::general_purpose::STANDARD;
            let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            b64.decode(text)
                .or_else(|_| url.decode(text.trim_end_matches('=')))
                .map_err(|_| MasterKeyError::Malformed("neither hex nor base64"))?
        };
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| MasterKeyError::Malformed("wrong length"))?;
        Ok(MasterKey(key))
    }

    pub fn generate() -> Result<Self, MasterKeyError> {
        let mut key = [0u8; KEY_LEN];
        rand::SystemRandom::new().fill(&mut key).map_err(|_| MasterKeyError::Random)?;
        Ok(MasterKey(key))
    }

    /// Reads the key file, or creates it with a fresh key (mode 0600) when
    /// it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        let io = |source| MasterKeyError::Io { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::parse(&text),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            Err(_) => {}
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let key = Self::generate()?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(key.0);
        match write_private_file(path, encoded.as_bytes()) {
            Ok(()) => Ok(key),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::parse(&std::fs::read_to_string(path).map_err(io)?)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A sub-key for one purpose: HMAC-SHA-256(master, label), so keys for
    /// different purposes are independent.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(&key, label.as_bytes());
        tag.as_ref().try_into().expect("HMAC-SHA-256 is 32 bytes")
    }

    fn data_key(&self) -> LessSafeKey {
        let unbound =
            UnboundKey::new(&aead::AES_256_GCM, &self.derive("stead/v1/data-encryption")).expect("32-byte AES key");
        LessSafeKey::new(unbound)
    }

    /// AES-256-GCM encryption with a random nonce; `context` is bound as
    /// associated data so a blob cannot be moved to another row.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::SystemRandom::new().fill(&mut nonce).expect("system randomness");
        let mut buf = plaintext.to_vec();
        self.data_key()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut buf)
            .expect("AES-GCM seal");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out
    }

    /// Inverse of [`seal`](Self::seal); `None` when the blob was not sealed
    /// by this key for this context.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEALED_V1 {
            return None;
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().ok()?;
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .data_key()
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// Creates `path` with mode 0600, failing if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal("a", b"private");
        assert_eq!(key.open("a", &sealed).unwrap(), b"private");
        assert!(key.open("b", &sealed).is_none());
        assert!(MasterKey::generate().unwrap().open("a", &sealed).is_none());
        assert!(!sealed.windows(7).any(|w| w == b"private"));
    }

    #[test]
    fn parses_hex_and_base64_and_hides_itself() {
        let hex = "00".repeat(32);
        let k = MasterKey::parse(&hex).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        assert_eq!(MasterKey::parse(&b64).unwrap().0, k.0);
        assert!(MasterKey::parse("short").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey([redacted])");
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("stead-mk-{}", std::process::id()));
        let path = dir.join("master.key");
        let _ = std::fs::remove_file(&path);
        let a = MasterKey::load_or_create(&path).unwrap();
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
