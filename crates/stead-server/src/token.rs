//! `POST {issuer}/oauth2/token`: route → parse and authenticate → the token
//! service → response, with one log line per request.

use crate::error::ErrorReply;
use crate::{basic, body, form, AppState, AuthGuard};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use stead_core::service::{RequestContext, RequestMeta};
use stead_core::TokenRequest;
use stead_proto::RealmPath;

pub async fn token(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    // Brute-force protection, and the source address: the TCP peer, or the
    // proxy's client with --trust-proxy-headers.
    guard: AuthGuard,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let Some(realm) = RealmPath::parse(&realm) else {
        return ErrorReply::not_found().into_response();
    };
    let mut ctx = RequestContext::default();
    let basic = basic::from_headers(&headers);
    let used_basic = basic.is_some();
    let request_id = request_id();
    let remote = guard.source;
    let meta = RequestMeta { remote_addr: Some(remote.to_string()), request_id: request_id.clone() };
    let result = handle(&state, &realm, &headers, basic, body, &mut ctx, &meta, &guard).await;
    let latency_us = started.elapsed().as_micros() as u64;

    match result {
        Ok(issued) => {
            tracing::info!(
                target: "stead::token",
                request_id = %request_id,
                outcome = "issued",
                tenant = %realm.tenant,
                realm = realm.kind.as_str(),
                client = ctx.client_id.as_deref().unwrap_or(""),
                subject = ctx.subject_id.as_deref().unwrap_or(""),
                scopes = ctx.granted_scope.as_deref().unwrap_or(""),
                jti = ctx.jti.as_deref().unwrap_or(""),
                remote = %remote,
                latency_us,
            );
            let mut response = axum::Json(issued.response).into_response();
            let h = response.headers_mut();
            // RFC 6749 §5.1: token responses must not be cached.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(mut reply) => {
            tracing::info!(
                target: "stead::token",
                request_id = %request_id,
                outcome = "refused",
                error = reply.error.code.as_str(),
                tenant = %realm.tenant,
                realm = realm.kind.as_str(),
                client = ctx.client_id.as_deref().unwrap_or(""),
                subject = ctx.subject_id.as_deref().unwrap_or(""),
                scopes = ctx.requested_scope.as_deref().map(printable).unwrap_or_default(),
                remote = %remote,
                latency_us,
            );
            if used_basic {
                reply.basic_realm = Some(realm.to_string());
            }
            reply.into_response()
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &AppState,
    realm: &RealmPath,
    headers: &HeaderMap,
    basic: Option<stead_core::Credentials>,
    body: Body,
    ctx: &mut RequestContext,
    meta: &RequestMeta,
    guard: &AuthGuard,
) -> Result<stead_core::IssuedToken, ErrorReply> {
    // SPEC §1: an unknown tenant is a 404 whatever the request holds.
    state.service.tenant(realm)?;
    match screen(headers, basic, body).await {
        Ok(request) => {
            let result = state.service.token(realm, request, stead_core::now(), ctx, meta).await;
            // Brute-force protection (crate::limits::auth): a failed client
            // authentication is counted, and answered 429 rather than 401
            // once a budget that covers it is spent.
            guard.settle(realm.tenant.as_str(), ctx.client_id.as_deref(), result)
        }
        // Refused before the token service saw it: audited all the same.
        Err(reply) => {
            state.service.record(realm, ctx, meta, Err(reply.error.code)).await?;
            Err(reply)
        }
    }
}

/// Everything before the token service: content type, body and form.
async fn screen(
    headers: &HeaderMap,
    basic: Option<stead_core::Credentials>,
    body: Body,
) -> Result<TokenRequest, ErrorReply> {
    let form = body::read_form(headers, body, form::Endpoint::Token).await?;
    Ok(TokenRequest {
        grant_type: form.grant_type,
        credentials: basic::combine(basic, form.client_id, form.client_secret),
        scope: form.scope,
        subject_username: form.subject_username,
        subject_userid: form.subject_userid,
        subject_email: form.subject_email,
    })
}

/// A caller-supplied value fit for a log line: bounded, no control characters.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(256).collect()
}

/// A process-unique request id: the start time and a counter. Unique and
/// cheap; not a secret.
pub(crate) fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(stead_core::now);
    format!("{start:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}
