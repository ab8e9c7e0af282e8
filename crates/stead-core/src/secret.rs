//! Client secrets: kept only as HMAC-SHA-256 under a server-side pepper.
//!
//! Threat model: an attacker with a copy of the database but not the master
//! key cannot test guesses offline, because every guess needs the pepper.
//! With the pepper too, guessing is bounded by the secret's entropy, which
//! is why imported secrets must be long. A memory-hard hash would cost ~15 ms
//! per request (SPEC's throughput would fall to ~70/s/core); an HMAC costs
//! well under a microsecond, and the pepper does the work that the hash's
//! slowness would do for low-entropy passwords.

use crate::model::ClientSecret;
use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;

/// A secret in memory: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

/// A new client secret: 256 random bits, base64url (43 characters).
pub fn generate_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Clone)]
pub struct SecretHasher {
    pepper: hmac::Key,
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher([redacted])")
    }
}

impl SecretHasher {
    pub fn new(master: &crate::MasterKey) -> Self {
        SecretHasher { pepper: hmac::Key::new(hmac::HMAC_SHA256, &master.derive("stead/v1/client-secret-pepper")) }
    }

    pub fn hash(&self, secret: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.pepper, secret.as_bytes());
        tag.as_ref().try_into().expect("HMAC-SHA-256 is 32 bytes")
    }

    /// Whether `secret` matches one of the `stored` secrets active at
    /// `now`, in time independent of which one matches or where they
    /// differ. With `stored = None` (an unknown client) the same work is
    /// done against a dummy, so an unknown client id costs the same as a
    /// wrong secret.
    pub fn verify(&self, secret: &str, stored: Option<&[ClientSecret]>, now: i64) -> bool {
        let presented = self.hash(secret);
        let dummy = [ClientSecret::new([0u8; 32], 0)];
        let (secrets, known) = match stored {
            Some(s) if !s.is_empty() => (s, true),
            _ => (&dummy[..], false),
        };
        let mut matched = subtle::Choice::from(0);
        for s in secrets {
            let active = subtle::Choice::from(s.is_active(now) as u8);
            matched |= presented.ct_eq(&s.hash) & active;
        }
        known && bool::from(matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_any_active_secret_and_nothing_else() {
        let h = SecretHasher::new(&crate::MasterKey::generate().unwrap());
        let a = ClientSecret::new(h.hash("first secret"), 0);
        let mut b = ClientSecret::new(h.hash("second secret"), 0);
        b.expires_at = Some(100);
        let both = [a, b];
        assert!(h.verify("first secret", Some(&both), 50));
        assert!(h.verify("second secret", Some(&both), 50));
        assert!(!h.verify("second secret", Some(&both), 100), "expired after its overlap");
        assert!(!h.verify("third", Some(&both), 50));
        assert!(!h.verify("first secret", None, 50));
        assert!(!h.verify("", Some(&[]), 50));
    }

    #[test]
    fn pepper_changes_the_hash() {
        let a = SecretHasher::new(&crate::MasterKey::generate().unwrap()).hash("s");
        let b = SecretHasher::new(&crate::MasterKey::generate().unwrap()).hash("s");
        assert_ne!(a, b);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        assert_eq!(format!("{:?}", SecretString::new("hunter2")), "[redacted]");
    }
}
