//! A strict `application/x-www-form-urlencoded` parser for the token,
//! introspection and revocation requests. Unlike a lenient decoder it refuses what RFC 6749 §3.2 and
//! SPEC §2 refuse: invalid UTF-8, malformed percent escapes, a known
//! parameter given twice or empty, and control characters in values.

use stead_core::OAuthError;

/// The parameters stead reads; everything else is ignored (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub subject_username: Option<String>,
    pub subject_userid: Option<String>,
    pub subject_email: Option<String>,
    /// Introspection (RFC 7662 §2.1) and revocation (RFC 7009 §2.1).
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
}

/// Which endpoint a body is for: each reads its own parameters and ignores
/// the rest (RFC 6749 §3.2, RFC 7662 §2.1, RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    /// Introspection and revocation.
    TokenManagement,
}

impl TokenForm {
    fn slot(&mut self, name: &str, endpoint: Endpoint) -> Option<&mut Option<String>> {
        let token_endpoint = endpoint == Endpoint::Token;
        Some(match name {
            "client_id" => &mut self.client_id,
            "client_secret" => &mut self.client_secret,
            "grant_type" if token_endpoint => &mut self.grant_type,
            "scope" if token_endpoint => &mut self.scope,
            "subject_username" if token_endpoint => &mut self.subject_username,
            "subject_userid" if token_endpoint => &mut self.subject_userid,
            "subject_email" if token_endpoint => &mut self.subject_email,
            "token" if !token_endpoint => &mut self.token,
            "token_type_hint" if !token_endpoint => &mut self.token_type_hint,
            _ => return None,
        })
    }
}

/// A token request body.
pub fn parse(body: &[u8]) -> Result<TokenForm, OAuthError> {
    parse_for(body, Endpoint::Token)
}

pub fn parse_for(body: &[u8], endpoint: Endpoint) -> Result<TokenForm, OAuthError> {
    let mut form = TokenForm::default();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode(raw_name)?;
        let value = decode(raw_value)?;
        let Some(slot) = form.slot(&name, endpoint) else { continue };
        // RFC 6749 §3.2: parameters MUST NOT be included more than once.
        if slot.is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {name} is given more than once")));
        }
        // An empty scope is invalid_scope (SPEC §5), decided by the service.
        if value.is_empty() && name != "scope" {
            return Err(OAuthError::invalid_request(format!("parameter {name} is empty")));
        }
        if value.chars().any(char::is_control) {
            return Err(OAuthError::invalid_request(format!("parameter {name} contains control characters")));
        }
        *slot = Some(value);
    }
    Ok(form)
}

/// Decodes one name or value: `+` is a space, `%XX` a byte; the result must
/// be UTF-8.
pub fn decode(raw: &[u8]) -> Result<String, OAuthError> {
    let malformed = || OAuthError::invalid_request("the body is not valid application/x-www-form-urlencoded UTF-8");
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or_else(malformed)?;
                let hi = (hex[0] as char).to_digit(16).ok_or_else(malformed)?;
                let lo = (hex[1] as char).to_digit(16).ok_or_else(malformed)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_ignores_unknown() {
        let f = parse(b"grant_type=password&scope=a+b%20c&x=1&x=2&&client_secret=%3A%25%2B%20").unwrap();
        assert_eq!(f.grant_type.as_deref(), Some("password"));
        assert_eq!(f.scope.as_deref(), Some("a b c"));
        assert_eq!(f.client_secret.as_deref(), Some(":%+ "));
    }

    #[test]
    fn refuses_hostile_input() {
        for body in [
            &b"scope=a&scope=b"[..],
            b"grant_type=",
            b"grant_type=%zz",
            b"grant_type=%2",
            b"grant_type=%FF",
            b"grant_type=\xff",
            b"subject_username=a%00b",
            b"subject_username=a%0D%0Ab",
            b"client_id",
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.code, stead_proto::ErrorCode::InvalidRequest, "{:?}", String::from_utf8_lossy(body));
        }
        assert_eq!(parse(b"scope=").unwrap().scope.as_deref(), Some(""));
    }

    #[test]
    fn each_endpoint_ignores_the_others_parameters() {
        let token = parse(b"grant_type=password&token=&token=x&token_type_hint=").unwrap();
        assert_eq!(token.grant_type.as_deref(), Some("password"));
        assert_eq!(token.token, None);
        let body = b"token=abc&grant_type=&scope=a&scope=b&subject_email=";
        let management = parse_for(body, Endpoint::TokenManagement).unwrap();
        assert_eq!(management.token.as_deref(), Some("abc"));
        assert_eq!(management.grant_type, None);
        assert!(parse_for(b"client_id=a&client_id=b", Endpoint::TokenManagement).is_err());
        assert!(parse_for(b"token=a&token=b", Endpoint::TokenManagement).is_err());
    }
}
