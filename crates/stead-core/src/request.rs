//! A token request after HTTP parsing, before any validation.

use crate::secret::SecretString;

/// How the client presented its credentials (RFC 6749 §2.3.1). Deciding
/// "both" here, once, keeps every later step simple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    /// `Authorization: Basic`, id and secret already form-urldecoded.
    Basic {
        client_id: String,
        secret: SecretString,
    },
    /// `client_id` / `client_secret` in the body.
    Body {
        client_id: String,
        secret: Option<SecretString>,
    },
    /// A malformed `Authorization: Basic` header.
    MalformedBasic,
    /// Basic and body credentials together: RFC 6749 §2.3 forbids it.
    Both,
}

impl Credentials {
    pub fn used_basic(&self) -> bool {
        matches!(self, Credentials::Basic { .. } | Credentials::MalformedBasic)
    }

    pub fn client_id(&self) -> Option<&str> {
        match self {
            Credentials::Basic { client_id, .. } | Credentials::Body { client_id, .. } => Some(client_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub credentials: Credentials,
    pub scope: Option<String>,
    pub subject_username: Option<String>,
    pub subject_userid: Option<String>,
    pub subject_email: Option<String>,
}
