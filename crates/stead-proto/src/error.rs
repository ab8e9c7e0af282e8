//! OAuth 2.0 error codes and the error body (RFC 6749 §5.2).

use serde::{Deserialize, Serialize};

/// The `error` values stead returns. RFC 6749 §5.2 plus the codes of
/// RFC 6749 §4.1.2.1 that apply to a token endpoint, and two for routing
/// and throttling that have no RFC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    TemporarilyUnavailable,
    ServerError,
    /// Unknown tenant or realm (HTTP 404).
    NotFound,
    /// Throttled (HTTP 429).
    TooManyRequests,
    /// HTTP method not allowed on this URL (HTTP 405).
    MethodNotAllowed,
    /// Body above the size limit (HTTP 413).
    RequestTooLarge,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTooLarge => "request_too_large",
        }
    }

    /// The HTTP status RFC 6749 §5.2 (and SPEC §5) gives this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient => 401,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::ServerError => 500,
            ErrorCode::NotFound => 404,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTooLarge => 413,
            _ => 400,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON error body of RFC 6749 §5.2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}
