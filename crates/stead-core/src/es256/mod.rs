//! ES256 signing: ECDSA P-256 over SHA-256 (RFC 7518 §3.4).
//!
//! The key is parsed (and checked against its public point) by AWS-LC. A
//! signature takes a nonce precomputed by [`nonces`] — its `r` and `k⁻¹`
//! — and computes `s = k⁻¹ (e + r d) mod n` (SEC 1 §4.1.3 steps 5–6),
//! which is all that depends on the key and the message. Making `r` and
//! `k⁻¹` in batches shares one inversion mod `n` among many signatures
//! instead of paying it in each; the signature is the same ECDSA
//! signature, and verifies with any ES256 verifier.

mod nonces;

use crate::pkcs8::PrivateKey;
use aws_lc_sys as sys;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::zeroize::Zeroize;
use p256::elliptic_curve::{Field, PrimeField};
use p256::{FieldBytes, Scalar, U256};

/// The P-256 scalar width in bytes (RFC 7518 §3.4: `r` and `s` are each
/// written as 32 bytes, big-endian).
const SCALAR: usize = 32;

/// A P-256 private key. Its `Debug` output and logs never show the key;
/// the scalar is zeroed when the signer is dropped.
pub(crate) struct Es256Signer {
    d: Scalar,
    /// Uncompressed SEC 1 point: `0x04 || x || y`.
    public: [u8; 1 + 2 * SCALAR],
}

impl Es256Signer {
    /// Parses a PKCS#8 P-256 private key; `None` when `der` is not one.
    /// AWS-LC's parse checks that the public point in the key, when
    /// present, belongs to the private scalar.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Option<Es256Signer> {
        let document = PrivateKey::parse(der)?;
        // SAFETY: get1 takes its own reference to the EC_KEY, which is freed
        // (and its scalar zeroed) before returning. Output buffers are
        // passed with their lengths.
        unsafe {
            let key = sys::EVP_PKEY_get1_EC_KEY(document.pkey.as_ptr());
            if key.is_null() {
                return None;
            }
            let group = sys::EC_KEY_get0_group(key);
            let is_p256 = !group.is_null() && sys::EC_GROUP_get_curve_name(group) == sys::NID_X9_62_prime256v1;
            let private = sys::EC_KEY_get0_private_key(key);
            let public = sys::EC_KEY_get0_public_key(key);
            let mut d_bytes = FieldBytes::default();
            let mut point = [0u8; 1 + 2 * SCALAR];
            // Trailing bytes after the key are not a PKCS#8 key either.
            let parsed = is_p256
                && document.trailing == 0
                && !private.is_null()
                && !public.is_null()
                && sys::BN_bn2bin_padded(d_bytes.as_mut_ptr(), d_bytes.len(), private) == 1
                && sys::EC_POINT_point2oct(
                    group,
                    public,
                    sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED,
                    point.as_mut_ptr(),
                    point.len(),
                    std::ptr::null_mut(),
                ) == point.len();
            sys::EC_KEY_free(key);
            let d = Option::<Scalar>::from(Scalar::from_repr(d_bytes));
            d_bytes.zeroize();
            let d = d.filter(|d| parsed && !bool::from(d.is_zero()))?;
            nonces::count_forks();
            Some(Es256Signer { d, public: point })
        }
    }

    /// The public key as an uncompressed SEC 1 point: `0x04 || x || y`.
    pub(crate) fn public_point(&self) -> [u8; 1 + 2 * SCALAR] {
        self.public
    }

    /// The ES256 signature of `message`: ECDSA over SHA-256 (RFC 7518 §3.4),
    /// fixed-width `r || s`.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        // SEC 1 §4.1.3 step 5: e is the 256-bit digest as an integer; it is
        // used mod n (one conditional subtraction, as e < 2n).
        let e = <Scalar as Reduce<U256>>::reduce_bytes(FieldBytes::from_slice(digest.as_ref()));
        loop {
            // Step 6: s = 0 (probability ~2⁻²⁵⁶) takes another nonce.
            if let Some(signature) = self.sign_with(&e, nonces::take()) {
                return signature;
            }
        }
    }

    /// `r || s` for the digest `e` (mod n) and `nonce`; `None` when s = 0.
    fn sign_with(&self, e: &Scalar, nonce: nonces::Nonce) -> Option<Vec<u8>> {
        // r·d gives d away with r (public): zeroed once used.
        let mut rd = nonce.r * self.d;
        let s = nonce.k_inv * (*e + rd);
        rd.zeroize();
        if bool::from(s.is_zero()) {
            return None;
        }
        let mut signature = Vec::with_capacity(2 * SCALAR);
        signature.extend_from_slice(&nonce.r.to_repr());
        signature.extend_from_slice(&s.to_repr());
        Some(signature)
    }
}

impl Drop for Es256Signer {
    fn drop(&mut self) {
        self.d.zeroize();
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
        assert_eq!(signer.public_point().as_slice(), pair.public_key().as_ref());
        let first = signer.sign(b"header.claims");
        assert_eq!(first.len(), 64);
        assert!(public.verify(b"header.claims", &first).is_ok());
        assert!(public.verify(b"header.claimz", &first).is_err());
        // A fresh nonce per signature.
        assert_ne!(first, signer.sign(b"header.claims"));
        // Many signatures: every one verifies, including those whose r or s
        // has leading zero bytes (about 1 in 128), which must be padded:
        // among 2,048 signatures none has one with probability ~e⁻³².
        let mut leading_zero = 0;
        for i in 0..2048 {
            let message = format!("message {i}");
            let signature = signer.sign(message.as_bytes());
            assert_eq!(signature.len(), 64);
            leading_zero += usize::from(signature[0] == 0 || signature[32] == 0);
            assert!(public.verify(message.as_bytes(), &signature).is_ok(), "{i}");
        }
        assert!(leading_zero > 0);
    }

    /// RFC 6979 §A.2.5, P-256 with SHA-256, message "sample": with the
    /// nonce given there, the signature is the one given there.
    #[test]
    fn known_answer_with_a_given_nonce() {
        fn scalar(hex: &str) -> Scalar {
            let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
            Scalar::from_repr(*FieldBytes::from_slice(&bytes)).unwrap()
        }
        let signer = Es256Signer {
            d: scalar("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"),
            public: [0; 65],
        };
        let k = scalar("A6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60");
        let nonce = nonces::from_k(&[k]).pop().unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"sample");
        let e = <Scalar as Reduce<U256>>::reduce_bytes(FieldBytes::from_slice(digest.as_ref()));
        let signature = signer.sign_with(&e, nonce).unwrap();
        let hex: String = signature.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(
            hex,
            concat!(
                "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
                "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
            )
        );
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
