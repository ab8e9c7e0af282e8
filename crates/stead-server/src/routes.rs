//! The URL map of SPEC §1.

use crate::error::ErrorReply;
use crate::{health, metadata, token, AppState};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;

/// A request that takes longer than this is cut off, so slow clients
/// cannot hold connections and memory indefinitely.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(state: AppState) -> Router {
    let get_only = || ErrorReply::method_not_allowed("GET, HEAD").into_response();
    Router::new()
        .route(
            "/system/auth/{realm}/oauth2/token",
            post(token::token).fallback(|| async { ErrorReply::method_not_allowed("POST").into_response() }),
        )
        .route(
            "/system/auth/{realm}/.well-known/openid-configuration",
            get(metadata::metadata).fallback(move || async move { get_only() }),
        )
        .route(
            "/.well-known/oauth-authorization-server/system/auth/{realm}",
            get(metadata::metadata).fallback(move || async move { get_only() }),
        )
        .route("/system/auth/{realm}/oauth2/jwks", get(metadata::jwks).fallback(move || async move { get_only() }))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { ErrorReply::not_found().into_response() })
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .with_state(state)
}
