//! RFC 8414 metadata and the RFC 7517 JWKS of a realm.

use crate::error::ErrorReply;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use stead_proto::{JwkSet, RealmPath, ServerMetadata};

pub async fn metadata(State(state): State<AppState>, Path(realm): Path<String>) -> Result<Response, ErrorReply> {
    let realm = RealmPath::parse(&realm).ok_or_else(ErrorReply::not_found)?;
    let tenant = state.service.tenant(&realm).map_err(|_| ErrorReply::not_found())?;
    let issuer = realm.issuer(state.service.base_url());
    let body = ServerMetadata {
        token_endpoint: format!("{issuer}/oauth2/token"),
        jwks_uri: format!("{issuer}/oauth2/jwks"),
        grant_types_supported: vec!["password".into()],
        token_endpoint_auth_methods_supported: vec!["client_secret_basic".into(), "client_secret_post".into()],
        scopes_supported: tenant.scopes.iter().map(|s| s.name.clone()).collect(),
        response_types_supported: vec![],
        introspection_endpoint: Some(format!("{issuer}/oauth2/introspect")),
        revocation_endpoint: Some(format!("{issuer}/oauth2/revoke")),
        issuer,
    };
    Ok(cached(axum::Json(body).into_response(), "public, max-age=60"))
}

pub async fn jwks(State(state): State<AppState>, Path(realm): Path<String>) -> Result<Response, ErrorReply> {
    let realm = RealmPath::parse(&realm).ok_or_else(ErrorReply::not_found)?;
    let tenant = state.service.tenant(&realm).map_err(|_| ErrorReply::not_found())?;
    let set = JwkSet { keys: tenant.keys.iter().map(|k| k.jwk.clone()).collect() };
    let mut response = cached(axum::Json(set).into_response(), "public, max-age=60");
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    Ok(response)
}

fn cached(mut response: Response, policy: &'static str) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}
