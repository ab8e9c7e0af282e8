//! EdDSA (Ed25519) signing straight through AWS-LC's `ED25519_sign`.
//!
//! aws-lc-rs signs Ed25519 through the EVP layer, which sets up a key
//! context per signature; `ED25519_sign` is the same AWS-LC signature
//! (RFC 8032 §5.1.6, deterministic) without that set-up, as
//! [`crate::es256`] does for ES256.

use crate::pkcs8::PrivateKey;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use aws_lc_sys as sys;
use zeroize::Zeroize;

/// RFC 8032 §5.1.5: the 32-byte seed, then the 32-byte public key, as
/// `ED25519_sign` takes them.
const PRIVATE_KEY: usize = 64;
const SEED: usize = 32;
const PUBLIC_KEY: usize = 32;
const SIGNATURE: usize = 64;

/// An Ed25519 private key. Its `Debug` output and logs never show the key;
/// it is zeroed when the signer is dropped.
pub(crate) struct Ed25519Signer {
    private: [u8; PRIVATE_KEY],
}

impl Ed25519Signer {
    /// Parses a PKCS#8 Ed25519 private key (v1, or v2 whose public key must
    /// match the seed); `None` when `der` is not one. Returns the signer
    /// and its public key, derived here from the seed.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Option<(Ed25519Signer, Vec<u8>)> {
        // aws-lc-rs decides which documents are Ed25519 keys, as before.
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).ok()?;
        let mut seed = [0u8; SEED];
        let mut signer = Ed25519Signer { private: [0u8; PRIVATE_KEY] };
        let mut public = [0u8; PUBLIC_KEY];
        let key = PrivateKey::parse(der)?;
        // SAFETY: every output buffer has the length AWS-LC writes into it.
        let parsed = unsafe {
            let mut len = seed.len();
            // The seed goes straight into a buffer that is zeroed below
            // (aws-lc-rs's `seed()` would leave a copy in freed memory).
            let parsed = sys::EVP_PKEY_id(key.pkey.as_ptr()) == sys::EVP_PKEY_ED25519
                && sys::EVP_PKEY_get_raw_private_key(key.pkey.as_ptr(), seed.as_mut_ptr(), &mut len) == 1
                && len == SEED;
            if parsed {
                // RFC 8032 §5.1.5: the public key, and seed || public key
                // as ED25519_sign takes it, both from the seed.
                sys::ED25519_keypair_from_seed(public.as_mut_ptr(), signer.private.as_mut_ptr(), seed.as_ptr());
            }
            parsed
        };
        seed.zeroize();
        // ED25519_sign trusts the public half: it must be the seed's.
        (parsed && public.as_slice() == pair.public_key().as_ref()).then(|| (signer, public.to_vec()))
    }

    /// The Ed25519 signature of `message` (RFC 8037 §3.1: the 64 bytes of
    /// RFC 8032 §5.1.6).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0u8; SIGNATURE];
        // SAFETY: the buffers have the lengths ED25519_sign requires, and
        // `message` is passed with its length.
        let ok = unsafe {
            sys::ED25519_sign(signature.as_mut_ptr(), message.as_ptr(), message.len(), self.private.as_ptr())
        };
        assert_eq!(ok, 1, "Ed25519 signing failed");
        signature
    }
}

impl Drop for Ed25519Signer {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair};

    #[test]
    fn signatures_match_aws_lc_rs_and_verify() {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
        let (signer, public) = Ed25519Signer::from_pkcs8(der.as_ref()).unwrap();
        assert_eq!(public, pair.public_key().as_ref());
        let verifier = signature::UnparsedPublicKey::new(&signature::ED25519, &public);
        for i in 0..64 {
            let message = format!("header.claims {i}");
            let ours = signer.sign(message.as_bytes());
            // Deterministic (RFC 8032): the very bytes aws-lc-rs signs.
            assert_eq!(ours, pair.sign(message.as_bytes()).as_ref());
            assert!(verifier.verify(message.as_bytes(), &ours).is_ok());
            assert!(verifier.verify(b"other", &ours).is_err());
        }
    }

    #[test]
    fn rfc_8032_test_1() {
        // RFC 8032 §7.1 TEST 1: the empty message, as a PKCS#8 v1 key.
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let expected = concat!(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155",
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        let seed: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).unwrap()).collect();
        let mut der =
            vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(&seed);
        let (signer, public) = Ed25519Signer::from_pkcs8(&der).unwrap();
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(&public), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(hex(&signer.sign(b"")), expected);
    }

    #[test]
    fn other_keys_and_bytes_are_refused() {
        let p256 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        assert!(Ed25519Signer::from_pkcs8(p256.as_ref()).is_none());
        assert!(Ed25519Signer::from_pkcs8(b"not a key").is_none());
        assert!(Ed25519Signer::from_pkcs8(&[]).is_none());
        // A v2 document whose public key is not the seed's.
        let v2 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        assert!(Ed25519Signer::from_pkcs8(v2.as_ref()).is_some());
        let mut mismatched = v2.as_ref().to_vec();
        *mismatched.last_mut().unwrap() ^= 1;
        assert!(Ed25519Signer::from_pkcs8(&mismatched).is_none());
    }
}
