//! The URL map of SPEC §1.

use crate::error::ErrorReply;
use crate::limits::AuthThrottle;
use crate::{health, introspection, metadata, token, AppState, ServerState};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;

/// A request that takes longer than this is cut off, so slow clients
/// cannot hold connections and memory indefinitely.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes with the default failed-authentication budgets and request
/// timeout.
pub fn router(state: AppState) -> Router {
    router_with(state, Arc::new(AuthThrottle::default()), REQUEST_TIMEOUT)
}

/// The routes, failed authentications counted by `auth_throttle`, each
/// request cut off after `request_timeout` (408).
pub fn router_with(state: AppState, auth_throttle: Arc<AuthThrottle>, request_timeout: Duration) -> Router {
    let get_only = || ErrorReply::method_not_allowed("GET, HEAD").into_response();
    Router::new()
        .route(
            "/system/auth/{realm}/oauth2/token",
            post(token::token).fallback(|| async { ErrorReply::method_not_allowed("POST").into_response() }),
        )
        .route(
            "/system/auth/{realm}/oauth2/introspect",
            post(introspection::introspect)
                .fallback(|| async { ErrorReply::method_not_allowed("POST").into_response() }),
        )
        .route(
            "/system/auth/{realm}/oauth2/revoke",
            post(introspection::revoke).fallback(|| async { ErrorReply::method_not_allowed("POST").into_response() }),
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
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, request_timeout))
        .with_state(ServerState { app: state, auth_throttle })
}
