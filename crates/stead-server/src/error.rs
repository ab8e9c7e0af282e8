//! OAuth errors as HTTP responses (RFC 6749 §5.2): JSON body, no caching,
//! `WWW-Authenticate` for Basic failures (§5.2: 401 and the scheme the
//! client used), `Retry-After` for 503 and 429.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stead_core::OAuthError;
use stead_proto::{ErrorCode, ErrorResponse};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ErrorReply {
    pub error: OAuthError,
    /// The client tried HTTP Basic: answer 401 with `WWW-Authenticate: Basic`.
    pub basic_realm: Option<String>,
    pub allow: Option<&'static str>,
    /// Seconds for `Retry-After` on 429 and 503 (1 when not set).
    pub retry_after: Option<u64>,
}

impl ErrorReply {
    pub fn new(error: OAuthError) -> Self {
        ErrorReply { error, basic_realm: None, allow: None, retry_after: None }
    }

    pub fn code(code: ErrorCode, description: &'static str) -> Self {
        Self::new(OAuthError::new(code, description))
    }

    pub fn not_found() -> Self {
        Self::code(ErrorCode::NotFound, "no such tenant, realm or endpoint")
    }

    /// 429 `too_many_requests`, retry after `seconds` (at least 1).
    pub fn too_many_requests(description: &'static str, seconds: u64) -> Self {
        let mut reply = Self::code(ErrorCode::TooManyRequests, description);
        reply.retry_after = Some(seconds.max(1));
        reply
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut reply = Self::code(ErrorCode::MethodNotAllowed, "method not allowed");
        reply.allow = Some(allow);
        reply
    }
}

/// RFC 6749 §5.2: `error_description` holds only %x20-21 / %x23-5B /
/// %x5D-7E, printable ASCII without `"` and `\`. Descriptions that quote a
/// caller's value (a scope, a parameter name) use `'` for quotes; any other
/// character, such as non-ASCII from the request, becomes `?`.
fn description_chars(description: &str) -> String {
    description
        .chars()
        .map(|c| match c {
            '"' => '\'',
            ' '..='~' if c != '\\' => c,
            _ => '?',
        })
        .collect()
}

impl From<OAuthError> for ErrorReply {
    fn from(error: OAuthError) -> Self {
        ErrorReply::new(error)
    }
}

impl IntoResponse for ErrorReply {
    fn into_response(self) -> Response {
        let code = self.error.code;
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = ErrorResponse {
            error: code.as_str().to_owned(),
            error_description: Some(description_chars(&self.error.description)),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if code == ErrorCode::InvalidClient {
            if let Some(realm) = self.basic_realm {
                let value = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if matches!(code, ErrorCode::TemporarilyUnavailable | ErrorCode::TooManyRequests) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after.unwrap_or(1).max(1)));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}
