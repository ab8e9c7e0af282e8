//! Signing keys: generated with aws-lc-rs, stored as sealed PKCS#8, parsed
//! once when loaded and then used for every token without re-parsing.

use crate::ed25519::Ed25519Signer;
use crate::es256::Es256Signer;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use stead_proto::Jwk;

/// JWS algorithms stead signs with (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SigningAlg {
    #[default]
    ES256,
    RS256,
    EdDSA,
}

impl SigningAlg {
    /// Whether a signature costs about what the audit commit of its batch
    /// does per token (ES256 ~11 µs, EdDSA ~10 µs), rather than dwarfing
    /// it (RSA-2048: 0.25–0.9 ms).
    pub fn signs_fast(self) -> bool {
        !matches!(self, SigningAlg::RS256)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(SigningAlg::ES256),
            "RS256" => Some(SigningAlg::RS256),
            "EdDSA" => Some(SigningAlg::EdDSA),
            _ => None,
        }
    }

    /// A fresh private key as PKCS#8 DER.
    pub fn generate_pkcs8(self) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let der = match self {
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?.as_ref().to_vec()
            }
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)?.as_ref().to_vec(),
            SigningAlg::RS256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)?.as_ref().to_vec()
            }
        };
        Ok(der)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("key rejected: {0}")]
    Rejected(String),
}

impl From<aws_lc_rs::error::Unspecified> for KeyError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        KeyError::Generate
    }
}

impl From<aws_lc_rs::error::KeyRejected> for KeyError {
    fn from(e: aws_lc_rs::error::KeyRejected) -> Self {
        KeyError::Rejected(e.to_string())
    }
}

enum KeyPairInner {
    Es256(Es256Signer),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519Signer),
}

/// A parsed signing key with its public JWK and its precomputed JWS header.
pub struct SigningKey {
    pair: KeyPairInner,
    /// The public key in the form aws-lc-rs verifies with.
    public: Vec<u8>,
    rng: SystemRandom,
    pub alg: SigningAlg,
    pub kid: String,
    pub jwk: Jwk,
    /// base64url of the protected header, identical for every token of this key.
    pub header_b64: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, KeyError> {
        let (pair, mut jwk, public) = match alg {
            SigningAlg::ES256 => {
                // The parse checks that the public point belongs to the
                // private key.
                let rejected = || KeyError::Rejected("not a P-256 private key".into());
                let signer = Es256Signer::from_pkcs8(der).ok_or_else(rejected)?;
                // Uncompressed point: 0x04 || x || y.
                let point = signer.public_point();
                let jwk = jwk_base("EC", alg, Some("P-256"), Some(&point[1..33]), Some(&point[33..65]), None, None);
                (KeyPairInner::Es256(signer), jwk, point.to_vec())
            }
            SigningAlg::EdDSA => {
                let rejected = || KeyError::Rejected("not an Ed25519 private key".into());
                let (pair, public) = Ed25519Signer::from_pkcs8(der).ok_or_else(rejected)?;
                let jwk = jwk_base("OKP", alg, Some("Ed25519"), Some(&public), None, None, None);
                (KeyPairInner::EdDsa(pair), jwk, public)
            }
            SigningAlg::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der)?;
                let public = pair.public_key();
                let n = public.modulus().big_endian_without_leading_zero().to_vec();
                let e = public.exponent().big_endian_without_leading_zero().to_vec();
                let jwk = jwk_base("RSA", alg, None, None, None, Some(&n), Some(&e));
                let public = public.as_ref().to_vec();
                (KeyPairInner::Rs256(pair), jwk, public)
            }
        };
        let kid = thumbprint(&jwk);
        jwk.kid = kid.clone();
        let header = format!(r#"{{"alg":"{}","typ":"at+jwt","kid":"{}"}}"#, alg.as_str(), kid);
        Ok(SigningKey { pair, public, rng: SystemRandom::new(), alg, kid, jwk, header_b64: B64.encode(header) })
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            SigningAlg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            SigningAlg::EdDSA => &signature::ED25519,
            SigningAlg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        signature::UnparsedPublicKey::new(alg, &self.public).verify(message, signature).is_ok()
    }

    /// The JWS signature of `message` (RFC 7515 §5.1), in JWS encoding:
    /// for ES256 the fixed-width `r || s` of RFC 7518 §3.4.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            KeyPairInner::Es256(k) => k.sign(message),
            KeyPairInner::EdDsa(k) => k.sign(message),
            KeyPairInner::Rs256(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig).expect("RSA signing");
                sig
            }
        }
    }
}

fn jwk_base(
    kty: &str,
    alg: SigningAlg,
    crv: Option<&str>,
    x: Option<&[u8]>,
    y: Option<&[u8]>,
    n: Option<&[u8]>,
    e: Option<&[u8]>,
) -> Jwk {
    Jwk {
        kty: kty.into(),
        use_: "sig".into(),
        alg: alg.as_str().into(),
        kid: String::new(),
        crv: crv.map(Into::into),
        x: x.map(|b| B64.encode(b)),
        y: y.map(|b| B64.encode(b)),
        n: n.map(|b| B64.encode(b)),
        e: e.map(|b| B64.encode(b)),
    }
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in
/// lexicographic order, base64url. A stable, content-derived `kid`.
fn thumbprint(jwk: &Jwk) -> String {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#, s(&jwk.crv), s(&jwk.x), s(&jwk.y)),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s(&jwk.crv), s(&jwk.x)),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s(&jwk.e), s(&jwk.n)),
    };
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alg_generates_loads_and_signs() {
        for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
            let der = alg.generate_pkcs8().unwrap();
            let key = SigningKey::from_pkcs8(alg, &der).unwrap();
            let again = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(key.kid, again.kid, "kid is derived from the key");
            let sig = key.sign(b"message");
            let expected = match alg {
                SigningAlg::ES256 => 64,
                SigningAlg::EdDSA => 64,
                SigningAlg::RS256 => 256,
            };
            assert_eq!(sig.len(), expected);
            assert!(key.verify(b"message", &sig));
            assert!(!key.verify(b"messagE", &sig));
            assert!(!format!("{key:?}").contains(&B64.encode(&der)));
        }
    }
}
