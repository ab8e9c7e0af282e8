//! ES256 signing straight through AWS-LC's `ECDSA_do_sign`.
//!
//! aws-lc-rs signs through the EVP layer: per signature it sets up a digest
//! context and a key context, DER-encodes the signature and decodes it again
//! into the fixed `r || s` form JWS needs. That took ~1 µs of a ~16 µs
//! signature (BENCHMARKS.md). Here the message is hashed once with
//! aws-lc-rs's SHA-256 and the digest signed by the same AWS-LC ECDSA
//! implementation (same nonce generation: random, hedged with the key and
//! the digest), whose `r` and `s` are written out directly.

use aws_lc_sys as sys;
use std::ptr::NonNull;

/// The P-256 scalar width in bytes (RFC 7518 §3.4: `r` and `s` are each
/// written as 32 bytes, big-endian).
const SCALAR: usize = 32;

/// A P-256 private key in AWS-LC's `EC_KEY` form. Its `Debug` output and
/// logs never show the key; AWS-LC zeroes the scalar when it is freed.
pub(crate) struct Es256Signer {
    key: NonNull<sys::EC_KEY>,
}

// SAFETY: the EC_KEY is never mutated after `from_pkcs8` returns, and
// AWS-LC's ECDSA_do_sign takes it as `const`: it may be used from several
// threads at once (as aws-lc-rs does with its own EVP_PKEY).
unsafe impl Send for Es256Signer {}
unsafe impl Sync for Es256Signer {}

impl Es256Signer {
    /// Parses a PKCS#8 P-256 private key; `None` when `der` is not one.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Option<Es256Signer> {
        // SAFETY: the CBS borrows `der` only during the parse; the EVP_PKEY
        // is freed after get1 has taken its own reference to the EC_KEY.
        unsafe {
            let mut cbs = std::mem::MaybeUninit::<sys::CBS>::uninit();
            sys::CBS_init(cbs.as_mut_ptr(), der.as_ptr(), der.len());
            let mut cbs = cbs.assume_init();
            let pkey = sys::EVP_parse_private_key(&mut cbs);
            if pkey.is_null() {
                return None;
            }
            let key = sys::EVP_PKEY_get1_EC_KEY(pkey);
            sys::EVP_PKEY_free(pkey);
            let signer = Es256Signer { key: NonNull::new(key)? };
            let group = sys::EC_KEY_get0_group(signer.key.as_ptr());
            let is_p256 = !group.is_null() && sys::EC_GROUP_get_curve_name(group) == sys::NID_X9_62_prime256v1;
            // Trailing bytes after the key are not a PKCS#8 key either.
            (is_p256 && cbs.len == 0).then_some(signer)
        }
    }

    /// The public key as an uncompressed SEC 1 point: `0x04 || x || y`.
    /// (The parse checked that it belongs to the private key.)
    pub(crate) fn public_point(&self) -> Option<[u8; 1 + 2 * SCALAR]> {
        let mut point = [0u8; 1 + 2 * SCALAR];
        // SAFETY: group and point belong to the key, which outlives the
        // call; the output buffer's length is passed along with it.
        let written = unsafe {
            let key = self.key.as_ptr();
            let public = sys::EC_KEY_get0_public_key(key);
            if public.is_null() {
                return None;
            }
            sys::EC_POINT_point2oct(
                sys::EC_KEY_get0_group(key),
                public,
                sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED,
                point.as_mut_ptr(),
                point.len(),
                std::ptr::null_mut(),
            )
        };
        (written == point.len()).then_some(point)
    }

    /// The ES256 signature of `message`: ECDSA over SHA-256 (RFC 7518 §3.4),
    /// fixed-width `r || s`.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let digest = digest.as_ref();
        let mut signature = vec![0u8; 2 * SCALAR];
        // SAFETY: `digest` outlives the call; `sig` is checked for null and
        // freed once `r` and `s` (which it owns) have been copied out into
        // buffers of exactly SCALAR bytes.
        unsafe {
            let sig = sys::ECDSA_do_sign(digest.as_ptr(), digest.len(), self.key.as_ptr());
            assert!(!sig.is_null(), "ECDSA signing failed");
            let (mut r, mut s) = (std::ptr::null(), std::ptr::null());
            sys::ECDSA_SIG_get0(sig, &mut r, &mut s);
            let (r_out, s_out) = signature.split_at_mut(SCALAR);
            let written = sys::BN_bn2bin_padded(r_out.as_mut_ptr(), SCALAR, r)
                & sys::BN_bn2bin_padded(s_out.as_mut_ptr(), SCALAR, s);
            sys::ECDSA_SIG_free(sig);
            assert_eq!(written, 1, "an ECDSA P-256 scalar wider than 32 bytes");
        }
        signature
    }
}

impl Drop for Es256Signer {
    fn drop(&mut self) {
        // SAFETY: the signer owns its one reference to the key.
        unsafe { sys::EC_KEY_free(self.key.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};

    #[test]
    fn signatures_verify_with_the_public_key_and_differ_each_time() {
        let der =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref()).unwrap();
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pair.public_key());
        let signer = Es256Signer::from_pkcs8(der.as_ref()).unwrap();
        assert_eq!(signer.public_point().unwrap().as_slice(), pair.public_key().as_ref());
        let first = signer.sign(b"header.claims");
        assert_eq!(first.len(), 64);
        assert!(public.verify(b"header.claims", &first).is_ok());
        assert!(public.verify(b"header.claimz", &first).is_err());
        // A fresh nonce per signature.
        assert_ne!(first, signer.sign(b"header.claims"));
        // Many signatures: every one verifies, including those whose r or s
        // has leading zero bytes (about 1 in 128), which must be padded.
        for i in 0..512 {
            let message = format!("message {i}");
            assert!(public.verify(message.as_bytes(), &signer.sign(message.as_bytes())).is_ok(), "{i}");
        }
    }

    #[test]
    fn other_keys_and_bytes_are_refused() {
        let rng = SystemRandom::new();
        let ed = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        assert!(Es256Signer::from_pkcs8(ed.as_ref()).is_none());
        let p384 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        assert!(Es256Signer::from_pkcs8(p384.as_ref()).is_none());
        assert!(Es256Signer::from_pkcs8(b"not a key").is_none());
        assert!(Es256Signer::from_pkcs8(&[]).is_none());
        let p256 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let mut trailing = p256.as_ref().to_vec();
        trailing.push(0);
        assert!(Es256Signer::from_pkcs8(&trailing).is_none());
    }
}
