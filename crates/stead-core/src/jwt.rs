//! Compact JWS serialization of access tokens (RFC 7515 §7.1).

use crate::keys::SigningKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use stead_proto::Claims;

/// `header.payload.signature`, with the key's precomputed header.
pub fn sign_claims(key: &SigningKey, claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let mut token = String::with_capacity(key.header_b64.len() + payload.len() * 4 / 3 + 120);
    token.push_str(&key.header_b64);
    token.push('.');
    B64.encode_string(&payload, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    B64.encode_string(&signature, &mut token);
    token
}

/// The claims of a compact JWS signed by one of `keys`, or `None` when it
/// is malformed or no key's signature matches. Checks no claim.
pub fn verify_claims<'k>(token: &str, find_key: impl Fn(&str) -> Option<&'k SigningKey>) -> Option<Claims> {
    #[derive(serde::Deserialize)]
    struct Header {
        alg: String,
        kid: Option<String>,
    }
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || token.len() > 16 * 1024 {
        return None;
    }
    let header: Header = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
    let key = find_key(header.kid.as_deref()?)?;
    // RFC 8725 §3.1: the algorithm comes from the key, never from the token.
    if header.alg != key.alg.as_str() {
        return None;
    }
    let signature = B64.decode(s).ok()?;
    if !key.verify(&token.as_bytes()[..h.len() + 1 + p.len()], &signature) {
        return None;
    }
    serde_json::from_slice(&B64.decode(p).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningAlg;
    use stead_proto::Actor;

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let key = SigningKey::from_pkcs8(SigningAlg::ES256, &SigningAlg::ES256.generate_pkcs8().unwrap()).unwrap();
        let claims = Claims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            exp: 2,
            iat: 1,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "r".into(),
            act: Actor { sub: "c".into() },
            subject_type: "user".into(),
            tenant: "T".into(),
            preferred_username: None,
            email: None,
        };
        let token = sign_claims(&key, &claims);
        let find = |kid: &str| (kid == key.kid).then_some(&key);
        assert_eq!(verify_claims(&token, find), Some(claims));
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = B64.encode(br#"{"sub":"admin"}"#);
        parts[1] = &other;
        assert_eq!(verify_claims(&parts.join("."), find), None);
        assert_eq!(verify_claims("a.b", find), None);
        assert_eq!(verify_claims("", find), None);
    }
}
