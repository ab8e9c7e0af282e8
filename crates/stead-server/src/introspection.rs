//! `POST {issuer}/oauth2/introspect` (RFC 7662) and
//! `POST {issuer}/oauth2/revoke` (RFC 7009), for authenticated clients.

use crate::error::ErrorReply;
use crate::{basic, body, form, AppState, AuthGuard};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use stead_proto::RealmPath;

/// The authenticated client and the `token` parameter of a request.
struct Parsed {
    realm: RealmPath,
    credentials: stead_core::Credentials,
    token: Option<String>,
}

async fn parse(
    state: &AppState,
    realm: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Parsed, (ErrorReply, Option<RealmPath>, bool)> {
    let realm = RealmPath::parse(realm).ok_or((ErrorReply::not_found(), None, false))?;
    state.service.tenant(&realm).map_err(|e| (e.into(), None, false))?;
    let basic = basic::from_headers(headers);
    let used_basic = basic.is_some();
    let fail = |e: ErrorReply| (e, Some(realm.clone()), used_basic);
    let form = body::read_form(headers, body, form::Endpoint::TokenManagement).await.map_err(fail)?;
    let credentials = basic::combine(basic, form.client_id, form.client_secret);
    Ok(Parsed { realm, credentials, token: form.token })
}

fn refuse(mut reply: ErrorReply, realm: Option<RealmPath>, used_basic: bool) -> Response {
    if used_basic {
        reply.basic_realm = realm.map(|r| r.to_string());
    }
    reply.into_response()
}

fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub async fn introspect(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    guard: AuthGuard,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let p = match parse(&state, &realm, &headers, body).await {
        Ok(p) => p,
        Err((reply, realm, basic)) => return refuse(reply, realm, basic),
    };
    let used_basic = p.credentials.used_basic();
    // Brute-force protection, as at the token endpoint.
    let (tenant, client) = (p.realm.tenant.as_str(), p.credentials.client_id());
    let result = state.service.introspect(&p.realm, &p.credentials, p.token.as_deref(), stead_core::now()).await;
    match guard.settle(tenant, client, result) {
        Ok(answer) => no_store(axum::Json(answer).into_response()),
        Err(reply) => refuse(reply, Some(p.realm.clone()), used_basic),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    guard: AuthGuard,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let p = match parse(&state, &realm, &headers, body).await {
        Ok(p) => p,
        Err((reply, realm, basic)) => return refuse(reply, realm, basic),
    };
    let used_basic = p.credentials.used_basic();
    let (tenant, client) = (p.realm.tenant.as_str(), p.credentials.client_id());
    let result = state.service.revoke(&p.realm, &p.credentials, p.token.as_deref(), stead_core::now()).await;
    match guard.settle(tenant, client, result) {
        // RFC 7009 §2.2: 200 with an empty body.
        Ok(()) => no_store(axum::http::StatusCode::OK.into_response()),
        Err(reply) => refuse(reply, Some(p.realm.clone()), used_basic),
    }
}
