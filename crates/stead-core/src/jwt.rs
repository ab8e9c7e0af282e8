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
