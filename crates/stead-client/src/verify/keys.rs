//! The issuer's public keys (RFC 7517): parsed from its JWKS, cached, and
//! fetched again when stale or when a token names an unknown `kid`.

use super::jws::Alg;
use super::VerifyError;
use crate::discovery::{fetch_metadata, get_json};
use aws_lc_rs::signature::{
    ParsedPublicKey, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Url;
use serde::Deserialize;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// A verification key of the issuer, parsed once.
pub(crate) struct VerifyingKey {
    pub kid: Option<String>,
    pub alg: Alg,
    key: ParsedPublicKey,
}

impl VerifyingKey {
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

/// A JWK as any server may publish it: only `kty` is required.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

fn b64(value: Option<&String>, name: &str) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("no {name}"))?;
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).map_err(|_| format!("{name} is not base64url"))
}

/// Parses one JWK into a signature verification key. Keys for other uses or
/// algorithms are refused with the reason.
fn parse_jwk(jwk: &RawJwk) -> Result<VerifyingKey, String> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key (use)".into());
    }
    if jwk.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|op| op == "verify")) {
        return Err("not a verification key (key_ops)".into());
    }
    let implied = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => Alg::ES256,
        ("OKP", Some("Ed25519")) => Alg::EdDSA,
        ("RSA", _) => Alg::RS256,
        (kty, crv) => return Err(format!("unsupported key type {kty} {}", crv.unwrap_or_default())),
    };
    // A JWK's alg pins the one algorithm it may be used with (RFC 7517 §4.4).
    if let Some(alg) = &jwk.alg {
        if Alg::parse(alg) != Some(implied) {
            return Err(format!("algorithm {alg} is not accepted for this key type"));
        }
    }
    let key = match implied {
        Alg::ES256 => {
            let (x, y) = (b64(jwk.x.as_ref(), "x")?, b64(jwk.y.as_ref(), "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("x and y of a P-256 key are 32 bytes".into());
            }
            let point = [&[4u8][..], &x, &y].concat();
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        }
        Alg::EdDSA => {
            let x = b64(jwk.x.as_ref(), "x")?;
            if x.len() != 32 {
                return Err("x of an Ed25519 key is 32 bytes".into());
            }
            ParsedPublicKey::new(&ED25519, x)
        }
        Alg::RS256 => {
            let n = b64(jwk.n.as_ref(), "n")?;
            let e = b64(jwk.e.as_ref(), "e")?;
            let strip = |v: &[u8]| v.iter().position(|&b| b != 0).map(|i| v[i..].to_vec()).unwrap_or_default();
            RsaPublicKeyComponents { n: strip(&n), e: strip(&e) }.to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        }
    }
    .map_err(|e| format!("invalid key: {e}"))?;
    Ok(VerifyingKey { kid: jwk.kid.clone(), alg: implied, key })
}

/// Parses a JWKS document, skipping the keys that cannot verify tokens here.
fn parse_jwks(set: RawJwkSet) -> Vec<Arc<VerifyingKey>> {
    let mut keys = Vec::new();
    for value in set.keys {
        let parsed = RawJwk::deserialize(&value).map_err(|e| e.to_string()).and_then(|jwk| parse_jwk(&jwk));
        match parsed {
            Ok(key) => keys.push(Arc::new(key)),
            Err(why) => {
                let kid = value.get("kid").and_then(|k| k.as_str()).unwrap_or("");
                tracing::debug!(kid, why, "JWKS key skipped");
            }
        }
    }
    keys
}

/// When to fetch the key set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyPolicy {
    /// Keys older than this are fetched again before use.
    pub max_age: Duration,
    /// Fetches for an unknown `kid`, or after a failure, are at least this
    /// far apart.
    pub min_refetch_interval: Duration,
}

#[derive(Default)]
struct KeyState {
    keys: Arc<[Arc<VerifyingKey>]>,
    /// The last successful fetch.
    fetched_at: Option<Instant>,
    /// The last fetch, successful or not.
    attempted_at: Option<Instant>,
    /// The key set URL: configured, or found in the metadata.
    jwks_uri: Option<Url>,
    fetches: u64,
}

/// The issuer's keys, shared by all clones of a verifier.
pub(crate) struct KeyStore {
    http: reqwest::Client,
    issuer: String,
    policy: KeyPolicy,
    state: RwLock<KeyState>,
    /// Held while fetching, so that concurrent misses make one fetch.
    fetching: tokio::sync::Mutex<()>,
}

impl KeyStore {
    pub(crate) fn new(http: reqwest::Client, issuer: String, jwks_uri: Option<Url>, policy: KeyPolicy) -> Self {
        let state = KeyState { jwks_uri, ..KeyState::default() };
        KeyStore { http, issuer, policy, state: RwLock::new(state), fetching: tokio::sync::Mutex::new(()) }
    }

    fn snapshot(&self) -> (Arc<[Arc<VerifyingKey>]>, Option<Instant>, Option<Instant>) {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        (state.keys.clone(), state.fetched_at, state.attempted_at)
    }

    /// How many times the key set was fetched (successfully or not).
    pub(crate) fn fetches(&self) -> u64 {
        self.state.read().unwrap_or_else(PoisonError::into_inner).fetches
    }

    /// The keys that may have signed a token with this `kid` and `alg`.
    pub(crate) async fn candidates(&self, kid: Option<&str>, alg: Alg) -> Result<Vec<Arc<VerifyingKey>>, VerifyError> {
        let (mut keys, fetched_at, attempted_at) = self.snapshot();
        let may_fetch = attempted_at.is_none_or(|t| t.elapsed() >= self.policy.min_refetch_interval);
        let stale = fetched_at.is_none_or(|t| t.elapsed() >= self.policy.max_age);
        if stale && may_fetch {
            match self.refresh(attempted_at, false).await {
                Ok(()) => keys = self.snapshot().0,
                // Stale keys still verify while the issuer is unreachable.
                Err(e) if fetched_at.is_some() => {
                    tracing::warn!(issuer = %self.issuer, error = %e, "JWKS refresh failed; using the keys fetched before")
                }
                Err(e) => return Err(e),
            }
        } else if fetched_at.is_none() {
            return Err(VerifyError::Unavailable("the key set could not be fetched; retrying shortly".into()));
        }
        let found = matching(&keys, kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        // An unknown kid: the issuer may have rotated its keys. Fetch again,
        // but not more often than the policy allows, so that tokens with
        // made-up kids cannot make us hammer the issuer.
        let (_, _, attempted_at) = self.snapshot();
        if attempted_at.is_none_or(|t| t.elapsed() >= self.policy.min_refetch_interval) {
            if let Err(e) = self.refresh(attempted_at, false).await {
                tracing::warn!(issuer = %self.issuer, error = %e, "JWKS refetch for an unknown kid failed");
            }
            let found = matching(&self.snapshot().0, kid, alg);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Err(VerifyError::UnknownKey)
    }

    /// Fetches the key set now, unless (without `force`) another task did
    /// so since `observed_attempt`: then its result stands.
    pub(crate) async fn refresh(&self, observed_attempt: Option<Instant>, force: bool) -> Result<(), VerifyError> {
        let _fetching = self.fetching.lock().await;
        if !force && self.snapshot().2 != observed_attempt {
            return Ok(());
        }
        let result = self.fetch().await;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        state.attempted_at = Some(now);
        state.fetches += 1;
        match result {
            Ok((uri, keys)) => {
                state.jwks_uri = Some(uri);
                state.keys = keys.into();
                state.fetched_at = Some(now);
                Ok(())
            }
            Err(e) => Err(VerifyError::Unavailable(e)),
        }
    }

    /// Fetches the key set, discovering its URL first when not known.
    async fn fetch(&self) -> Result<(Url, Vec<Arc<VerifyingKey>>), String> {
        let known = self.state.read().unwrap_or_else(PoisonError::into_inner).jwks_uri.clone();
        let uri = match known {
            Some(uri) => uri,
            None => {
                let metadata = fetch_metadata(&self.http, &self.issuer).await?;
                let uri = metadata.jwks_uri.ok_or("the issuer's metadata has no jwks_uri")?;
                Url::parse(&uri).map_err(|e| format!("the metadata's jwks_uri is not a URL: {e}"))?
            }
        };
        let set: RawJwkSet = get_json(&self.http, &uri).await.map_err(|e| format!("{uri}: {e}"))?;
        Ok((uri, parse_jwks(set)))
    }
}

fn matching(keys: &[Arc<VerifyingKey>], kid: Option<&str>, alg: Alg) -> Vec<Arc<VerifyingKey>> {
    keys.iter()
        .filter(|k| k.alg == alg)
        // Without a kid, every key of the algorithm is a candidate.
        .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwk(v: serde_json::Value) -> Result<VerifyingKey, String> {
        parse_jwk(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn parses_the_three_key_types() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = SystemRandom::new();
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = ec.public_key().as_ref().to_vec();
        let key = jwk(json!({"kty": "EC", "crv": "P-256", "kid": "e",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])}))
        .unwrap();
        let sig = ec.sign(&rng, b"msg").unwrap();
        assert!(key.verify(b"msg", sig.as_ref()) && !key.verify(b"msh", sig.as_ref()));
        assert_eq!((key.alg, key.kid.as_deref()), (Alg::ES256, Some("e")));

        let ed = Ed25519KeyPair::generate().unwrap();
        let key = jwk(json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref())}))
        .unwrap();
        assert!(key.verify(b"msg", ed.sign(b"msg").as_ref()));
        assert_eq!(key.alg, Alg::EdDSA);
    }

    #[test]
    fn refuses_keys_for_other_uses_and_algorithms() {
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        for (bad, why) in [
            (json!({"kty": "OKP", "crv": "Ed25519", "x": x, "use": "enc"}), "use"),
            (json!({"kty": "OKP", "crv": "Ed25519", "x": x, "key_ops": ["encrypt"]}), "key_ops"),
            (json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "ES256"}), "not accepted"),
            (json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "PS256"}), "not accepted"),
            (json!({"kty": "oct", "k": "c2VjcmV0"}), "unsupported"),
            (json!({"kty": "EC", "crv": "P-384", "x": x, "y": x}), "unsupported"),
            (json!({"kty": "EC", "crv": "P-256", "x": x}), "no y"),
            (json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}), "32 bytes"),
        ] {
            let err = jwk(bad.clone()).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
