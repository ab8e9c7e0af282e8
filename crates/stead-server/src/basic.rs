//! HTTP Basic client authentication (RFC 6749 §2.3.1, RFC 7617): the id
//! and secret are form-urlencoded before base64, so both are decoded again.

use crate::form::decode;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use stead_core::{Credentials, SecretString};

/// What the `Authorization` header holds: nothing usable, Basic
/// credentials, or a Basic header that cannot be read.
pub fn from_headers(headers: &HeaderMap) -> Option<Credentials> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some(Credentials::MalformedBasic);
    }
    let Ok(value) = value.to_str() else {
        // Non-ASCII bytes: malformed if it claims to be Basic, so body
        // credentials cannot slip past a broken Basic header.
        let raw = value.as_bytes();
        return (raw.len() >= 6 && raw[..6].eq_ignore_ascii_case(b"basic ")).then_some(Credentials::MalformedBasic);
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    Some(parse_basic(rest.trim()).unwrap_or(Credentials::MalformedBasic))
}

fn parse_basic(encoded: &str) -> Option<Credentials> {
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let client_id = decode(id.as_bytes()).ok()?;
    let secret = decode(secret.as_bytes()).ok()?;
    if client_id.is_empty() || client_id.chars().any(char::is_control) {
        return None;
    }
    Some(Credentials::Basic { client_id, secret: SecretString::new(secret) })
}

/// Combines header and body credentials; both together is `Both`, except
/// that a body `client_id` equal to the Basic one (sent by some OAuth
/// libraries) is tolerated.
pub fn combine(basic: Option<Credentials>, body_id: Option<String>, body_secret: Option<String>) -> Credentials {
    match basic {
        Some(Credentials::Basic { client_id, secret }) => {
            if body_secret.is_some() || body_id.as_deref().is_some_and(|id| id != client_id) {
                Credentials::Both
            } else {
                Credentials::Basic { client_id, secret }
            }
        }
        Some(other) => {
            if body_id.is_some() || body_secret.is_some() {
                Credentials::Both
            } else {
                other
            }
        }
        None => match body_id {
            Some(client_id) => Credentials::Body { client_id, secret: body_secret.map(SecretString::new) },
            None => Credentials::None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn decodes_form_encoded_credentials() {
        // id "a b", secret "p:%+ q" form-urlencoded, then base64.
        let encoded = STANDARD.encode("a+b:p%3A%25%2B+q");
        match from_headers(&header(&format!("Basic {encoded}"))) {
            Some(Credentials::Basic { client_id, secret }) => {
                assert_eq!(client_id, "a b");
                assert_eq!(secret.expose(), "p:%+ q");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(from_headers(&header("Basic !!!")), Some(Credentials::MalformedBasic));
        assert_eq!(from_headers(&header("Bearer x")), None);
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, axum::http::HeaderValue::from_bytes(b"Basic YTpi\xff").unwrap());
        assert_eq!(from_headers(&h), Some(Credentials::MalformedBasic));
    }

    #[test]
    fn both_methods_at_once_is_both() {
        let basic = || Some(Credentials::Basic { client_id: "c".into(), secret: SecretString::new("s") });
        assert_eq!(combine(basic(), None, Some("s".into())), Credentials::Both);
        assert_eq!(combine(basic(), Some("other".into()), None), Credentials::Both);
        assert!(matches!(combine(basic(), Some("c".into()), None), Credentials::Basic { .. }));
        assert_eq!(combine(None, None, Some("s".into())), Credentials::None);
    }
}
