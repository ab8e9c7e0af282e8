//! What can go wrong when asking for a token.

use std::fmt::Write;
use std::sync::Arc;

/// A failed token request (or a failed discovery of the token endpoint).
///
/// Cheap to clone, so that every caller waiting on one coalesced request of
/// a [`crate::TokenCache`] gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server refused the request with an OAuth error body
    /// (RFC 6749 §5.2), e.g. `invalid_client` or `invalid_scope`.
    #[error("{}", oauth_message(*status, error, description.as_deref()))]
    OAuth {
        /// The HTTP status.
        status: u16,
        /// The `error` code.
        error: String,
        /// The `error_description`, when given.
        description: Option<String>,
    },
    /// The server answered with an HTTP error status but no OAuth error body.
    #[error("the token endpoint answered HTTP {status}{}", snippet(body))]
    Http {
        /// The HTTP status.
        status: u16,
        /// The start of the response body (possibly empty), as text.
        body: String,
    },
    /// The server redirected. Token requests are never re-sent elsewhere,
    /// since that would send the credentials elsewhere too.
    #[error(
        "the token endpoint redirected (HTTP {status}){}; use the final token URL instead",
        location.as_deref().map(|l| format!(" to {}", printable(l))).unwrap_or_default()
    )]
    Redirect {
        /// The HTTP status.
        status: u16,
        /// The `Location` header, when given.
        location: Option<String>,
    },
    /// The server could not be reached or the exchange broke off
    /// (DNS, TCP, TLS, timeout).
    #[error("cannot reach the token endpoint")]
    Transport(#[source] Arc<reqwest::Error>),
    /// A success status without a usable token response body.
    #[error("invalid token response: {0}")]
    InvalidResponse(String),
    /// The endpoint URL cannot name a token endpoint.
    #[error("invalid token endpoint URL: {0}")]
    InvalidEndpoint(String),
    /// The request was not sent because it is incomplete (e.g. no scope).
    #[error("invalid token request: {0}")]
    InvalidRequest(String),
    /// The authorization server metadata (RFC 8414) could not be fetched or
    /// does not describe the expected issuer.
    #[error("metadata discovery failed: {0}")]
    Discovery(String),
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::Transport(Arc::new(e))
    }
}

impl Error {
    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::OAuth { status, .. } | Error::Http { status, .. } | Error::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OAuth `error` code (e.g. `invalid_grant`), when the server sent one.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Error::OAuth { error, .. } => Some(error.as_str()),
            _ => None,
        }
    }

    /// Whether trying again later may succeed without changing the request:
    /// the server could not be reached, was overloaded or unavailable
    /// (HTTP 429, 5xx, `temporarily_unavailable`).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::OAuth { status, error, .. } => {
                error == "temporarily_unavailable" || *status == 429 || *status >= 500
            }
            Error::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Why a token could not be decoded by [`crate::decode_jwt`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a decodable JWT: {0}")]
pub struct DecodeError(pub(crate) &'static str);

fn oauth_message(status: u16, error: &str, description: Option<&str>) -> String {
    let mut out = format!("{} (HTTP {status})", printable(error));
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        let _ = write!(out, ": {}", printable(d));
    }
    out
}

fn snippet(body: &str) -> String {
    let text = printable(body.trim());
    if text.is_empty() {
        return String::new();
    }
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!(": {}…", &text[..cut]),
        None => format!(": {text}"),
    }
}

/// Server-chosen text made safe for a terminal: control characters
/// (including escape sequences and newlines) become spaces.
pub(crate) fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let e = Error::OAuth {
            status: 400,
            error: "invalid_scope".into(),
            description: Some("scope x is not\nassigned\u{1b}[31m".into()),
        };
        assert_eq!(e.to_string(), "invalid_scope (HTTP 400): scope x is not assigned [31m");
        assert_eq!(e.status(), Some(400));
        let e = Error::OAuth { status: 401, error: "invalid_client".into(), description: None };
        assert_eq!(e.to_string(), "invalid_client (HTTP 401)");
        let e = Error::Http { status: 502, body: "x".repeat(500) };
        assert!(e.to_string().starts_with("the token endpoint answered HTTP 502: xxx"));
        assert!(e.to_string().ends_with('…'));
        assert_eq!(Error::Http { status: 404, body: " ".into() }.to_string(), "the token endpoint answered HTTP 404");
        let e = Error::Redirect { status: 301, location: Some("https://x/".into()) };
        assert_eq!(
            e.to_string(),
            "the token endpoint redirected (HTTP 301) to https://x/; use the final token URL instead"
        );
    }
}
