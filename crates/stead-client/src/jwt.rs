//! Looking inside a JWT for display. Nothing here verifies a signature:
//! decoded claims are only as trustworthy as the channel the token came by.

use crate::DecodeError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// The decoded (NOT verified) parts of a JWS compact JWT.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DecodedJwt {
    /// The JOSE header, e.g. `{"alg":"ES256","typ":"at+jwt","kid":"…"}`.
    pub header: Value,
    /// The claims (payload).
    pub claims: Value,
}

/// Decodes the header and claims of a JWS compact JWT without verifying
/// its signature. For display and debugging only.
pub fn decode_jwt(token: &str) -> Result<DecodedJwt, DecodeError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    match parts.len() {
        3 => {}
        5 => return Err(DecodeError("the token is encrypted (JWE)")),
        _ => return Err(DecodeError("a JWT has three dot-separated parts")),
    }
    let header = decode_part(parts[0], ("the header is not base64url", "the header is not a JSON object"))?;
    let claims = decode_part(parts[1], ("the claims are not base64url", "the claims are not a JSON object"))?;
    Ok(DecodedJwt { header, claims })
}

/// Decodes the claims of a JWS compact JWT without verifying its
/// signature. For display and debugging only.
pub fn decode_jwt_claims(token: &str) -> Result<Value, DecodeError> {
    decode_jwt(token).map(|jwt| jwt.claims)
}

/// Decodes one base64url part into a JSON object; `errors` are the
/// messages for bad base64 and for anything but a JSON object.
fn decode_part(part: &str, errors: (&'static str, &'static str)) -> Result<Value, DecodeError> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| DecodeError(errors.0))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) if value.is_object() => Ok(value),
        _ => Err(DecodeError(errors.1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn decodes_header_and_claims() {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        let claims = json!({"sub": "1001", "scope": "a b", "act": {"sub": "c"}, "name": "ü?>"});
        let token = format!("{}.{}.c2ln", b64(&header), b64(&claims));
        let jwt = decode_jwt(&token).unwrap();
        assert_eq!(jwt.header, header);
        assert_eq!(jwt.claims, claims);
        assert_eq!(decode_jwt_claims(&format!("{token}\n")).unwrap(), claims);
    }

    #[test]
    fn refuses_what_is_not_a_jws() {
        let ok = b64(&json!({"alg": "none"}));
        for (token, why) in [
            ("opaque-token".to_owned(), "three"),
            (format!("{ok}.{ok}"), "three"),
            (format!("{ok}.{ok}.{ok}.{ok}.{ok}"), "encrypted"),
            (format!("{ok}.@@@.sig"), "claims are not base64url"),
            (format!("{ok}.{}.sig", URL_SAFE_NO_PAD.encode("[1]")), "claims are not a JSON object"),
            (format!("{}.{ok}.sig", URL_SAFE_NO_PAD.encode("nope")), "header is not a JSON object"),
        ] {
            let err = decode_jwt(&token).unwrap_err();
            assert!(err.to_string().contains(why), "{token}: {err}");
        }
    }
}
