//! JWS compact serialization (RFC 7515 §7.1) of a JWT, split and decoded
//! before any key is looked at.

use super::VerifyError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Tokens longer than this are refused before decoding.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The signature algorithms accepted (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    ES256,
    RS256,
    EdDSA,
}

impl Alg {
    pub(crate) fn parse(alg: &str) -> Option<Alg> {
        match alg {
            "ES256" => Some(Alg::ES256),
            "RS256" => Some(Alg::RS256),
            "EdDSA" => Some(Alg::EdDSA),
            _ => None,
        }
    }
}

/// The JOSE header members that matter here.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub crit: Option<Value>,
}

/// A split and decoded token; nothing verified yet.
pub(crate) struct Jws<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `BASE64URL(header) "." BASE64URL(payload)`, what the signature covers.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
}

/// Splits and decodes `token`, and applies the header checks that need no
/// key: the algorithm (never `none`), `typ` (RFC 9068 §4) and `crit`.
pub(crate) fn parse(token: &str) -> Result<Jws<'_>, VerifyError> {
    let malformed = |why: &str| VerifyError::Malformed(why.to_owned());
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("the token is too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWS has three dot-separated parts"));
    };
    let header_bytes = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| malformed("the header is not base64url"))?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|_| malformed("the header is not a JSON object with alg"))?;
    let alg = Alg::parse(&header.alg).ok_or_else(|| VerifyError::UnsupportedAlgorithm(header.alg.clone()))?;
    if !header.typ.as_deref().is_some_and(is_access_token_type) {
        return Err(VerifyError::WrongType);
    }
    // RFC 7515 §4.1.11: extensions this verifier does not understand.
    if header.crit.is_some() {
        return Err(malformed("the header has crit extensions, which are not supported"));
    }
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| malformed("the claims are not base64url"))?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| malformed("the claims are not a JSON object"))?;
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| malformed("the signature is not base64url"))?;
    if signature.is_empty() {
        return Err(malformed("the signature is empty"));
    }
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Jws { alg, kid: header.kid, claims, signing_input, signature })
}

/// RFC 9068 §4: `at+jwt`, or its full media type `application/at+jwt`;
/// media types are case-insensitive.
fn is_access_token_type(typ: &str) -> bool {
    let typ = typ.trim();
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&json!({"sub": "1"})))
    }

    #[test]
    fn accepts_the_rfc_9068_types() {
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
            let t = token(json!({"alg": "ES256", "typ": typ, "kid": "k"}));
            let jws = parse(&t).unwrap();
            assert_eq!((jws.alg, jws.kid.as_deref()), (Alg::ES256, Some("k")));
            assert_eq!(jws.signature, b"sig");
            assert_eq!(jws.claims["sub"], "1");
            assert_eq!(jws.signing_input, t.rsplit_once('.').unwrap().0.as_bytes());
        }
    }

    #[test]
    fn refuses_other_types_algorithms_and_shapes() {
        for typ in [json!("JWT"), json!("jwt"), json!(null), json!(1)] {
            let err = parse(&token(json!({"alg": "ES256", "typ": typ}))).err();
            assert!(matches!(err, Some(VerifyError::WrongType | VerifyError::Malformed(_))), "{typ}: {err:?}");
        }
        assert!(matches!(parse(&token(json!({"alg": "ES256"}))), Err(VerifyError::WrongType)));
        for alg in ["none", "None", "HS256", "ES384", "PS256", "RS512", ""] {
            let err = parse(&token(json!({"alg": alg, "typ": "at+jwt"}))).err();
            assert_eq!(err, Some(VerifyError::UnsupportedAlgorithm(alg.into())));
        }
        let crit = token(json!({"alg": "EdDSA", "typ": "at+jwt", "crit": ["b64"], "b64": false}));
        assert!(matches!(parse(&crit), Err(VerifyError::Malformed(_))));
        let h = b64(&json!({"alg": "RS256", "typ": "at+jwt"}));
        let c = b64(&json!({}));
        for bad in [
            format!("{h}.{c}"),
            format!("{h}.{c}.c2ln.x"),
            format!("{h}.{c}."),
            format!("{h}.{c}.c2ln="),
            format!("{h}.@@.c2ln"),
            format!("{h}.{}.c2ln", URL_SAFE_NO_PAD.encode("[]")),
            format!("{}.{c}.c2ln", URL_SAFE_NO_PAD.encode("{")),
            format!("{h}.{c}.{}", "A".repeat(MAX_TOKEN_LEN)),
        ] {
            assert!(matches!(parse(&bad), Err(VerifyError::Malformed(_))), "{bad:.80}");
        }
    }
}
