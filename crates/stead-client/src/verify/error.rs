//! Why a token was not accepted, and how a resource server answers that
//! (RFC 6750 §3.1).

/// A token that does not verify, or a request without a usable token.
///
/// [`VerifyError::oauth_error`] and [`VerifyError::status`] give the answer
/// RFC 6750 §3.1 prescribes; with the `axum` feature the error is itself a
/// response (see the `axum` module).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request carries no access token (no `Authorization: Bearer`).
    #[error("an access token is required")]
    Missing,
    /// The request is malformed, e.g. two `Authorization` headers or a
    /// Bearer header without a well-formed token.
    #[error("{0}")]
    InvalidRequest(String),
    /// The token is not a well-formed JWS compact JWT, or its header
    /// asks for what this verifier does not do (`crit`).
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    /// The header's `alg` is `none`, unknown, or not one of ES256, RS256,
    /// EdDSA.
    #[error("the access token's algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The header's `typ` is not `at+jwt` (RFC 9068 §4): the JWT is not an
    /// access token (it may be an ID token or something else).
    #[error("the JWT is not an access token (typ must be at+jwt)")]
    WrongType,
    /// No key of the issuer's key set matches the token's `kid` and `alg`,
    /// even after fetching the key set again.
    #[error("the access token is signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the access token's signature is invalid")]
    BadSignature,
    /// The token was issued by another issuer.
    #[error("the access token was issued by another issuer")]
    WrongIssuer,
    /// The token is not meant for this audience.
    #[error("the access token is not meant for this resource")]
    WrongAudience,
    /// The token has expired (beyond the leeway).
    #[error("the access token has expired")]
    Expired,
    /// The token is not valid yet (`nbf` or `iat` in the future, beyond the
    /// leeway).
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// A required claim is missing or of the wrong type.
    #[error("the access token's {0} claim is missing or invalid")]
    InvalidClaim(&'static str),
    /// The token is valid but lacks scopes the resource requires.
    #[error("the access token lacks the required scope: {}", required.join(" "))]
    InsufficientScope {
        /// Every scope the resource requires (not only the missing ones),
        /// as RFC 6750 §3 puts in the `scope` attribute.
        required: Vec<String>,
    },
    /// The issuer's metadata or key set could not be fetched, so the token
    /// cannot be checked now. Not the caller's fault: answer 503.
    #[error("cannot fetch the issuer's signing keys: {0}")]
    Unavailable(String),
    /// The verifier is misconfigured (e.g. no audience).
    #[error("invalid verifier configuration: {0}")]
    Config(String),
}

impl VerifyError {
    /// The RFC 6750 §3.1 error code: `invalid_request`, `invalid_token` or
    /// `insufficient_scope`; `None` for a missing token (which gets a bare
    /// challenge) and for failures on the verifier's side.
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self {
            VerifyError::Missing | VerifyError::Unavailable(_) | VerifyError::Config(_) => None,
            VerifyError::InvalidRequest(_) => Some("invalid_request"),
            VerifyError::InsufficientScope { .. } => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }

    /// The HTTP status to answer with: 400, 401, 403, 503 (keys
    /// unavailable) or 500 (misconfigured).
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::InvalidRequest(_) => 400,
            VerifyError::InsufficientScope { .. } => 403,
            VerifyError::Unavailable(_) => 503,
            VerifyError::Config(_) => 500,
            _ => 401,
        }
    }

    /// Whether the token itself was refused (`invalid_token`).
    pub fn is_invalid_token(&self) -> bool {
        self.oauth_error() == Some("invalid_token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_rfc_6750() {
        assert_eq!((VerifyError::Missing.status(), VerifyError::Missing.oauth_error()), (401, None));
        assert_eq!(VerifyError::Expired.oauth_error(), Some("invalid_token"));
        assert!(VerifyError::BadSignature.is_invalid_token());
        let e = VerifyError::InsufficientScope { required: vec!["a".into(), "b".into()] };
        assert_eq!((e.status(), e.oauth_error()), (403, Some("insufficient_scope")));
        assert_eq!(e.to_string(), "the access token lacks the required scope: a b");
        assert_eq!(VerifyError::InvalidRequest("x".into()).status(), 400);
        assert_eq!(VerifyError::Unavailable("x".into()).status(), 503);
    }
}
