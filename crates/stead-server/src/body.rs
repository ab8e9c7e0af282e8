//! Reading a request body under the size limit of SPEC §2 (16 KiB → 413).

use crate::error::ErrorReply;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use http_body_util::{BodyExt, Limited};
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
