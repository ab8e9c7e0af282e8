//! Reading a request body under the size limit of SPEC §2 (16 KiB → 413),
//! and a form body of the token, introspection and revocation endpoints.

use crate::error::ErrorReply;
use crate::form::{self, Endpoint, TokenForm};
use axum::body::Body;
use axum::http::{header, HeaderMap};
use http_body_util::{BodyExt, Limited};
use stead_core::OAuthError;
use stead_proto::ErrorCode;

pub const MAX_BODY: usize = 16 * 1024;

fn too_large() -> ErrorReply {
    ErrorReply::code(ErrorCode::RequestTooLarge, "the request body is larger than 16 KiB")
}

pub async fn read_limited(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ErrorReply> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(ErrorReply::code(ErrorCode::InvalidRequest, "the request body could not be read")),
    }
}

/// A form body for `endpoint`: the size limit first (an oversized body is
/// 413 whatever its type), then the content type, then the strict parser.
pub async fn read_form(headers: &HeaderMap, body: Body, endpoint: Endpoint) -> Result<TokenForm, ErrorReply> {
    let bytes = read_limited(headers, body).await?;
    if !is_form_content_type(headers) {
        return Err(OAuthError::invalid_request("Content-Type must be application/x-www-form-urlencoded").into());
    }
    Ok(form::parse_for(&bytes, endpoint)?)
}

/// RFC 6749 §4.3.2: the body is `application/x-www-form-urlencoded`
/// (parameters such as `charset=UTF-8` are allowed).
fn is_form_content_type(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else { return false };
    let Ok(value) = value.to_str() else { return false };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}
