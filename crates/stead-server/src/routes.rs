//! The URL map of SPEC §1.

use crate::error::ErrorReply;
use crate::limits::AuthThrottle;
use crate::{health, introspection, metadata, token, AppState, ServerState};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use stead_proto::RealmPath;
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
    Router::new()
        .route("/system/auth/{realm}/oauth2/token", post(token::token).fallback(wrong_method("POST")))
        .route("/system/auth/{realm}/oauth2/introspect", post(introspection::introspect).fallback(wrong_method("POST")))
        .route("/system/auth/{realm}/oauth2/revoke", post(introspection::revoke).fallback(wrong_method("POST")))
        .route(
            "/system/auth/{realm}/.well-known/openid-configuration",
            get(metadata::metadata).fallback(wrong_method("GET, HEAD")),
        )
        .route(
            "/.well-known/oauth-authorization-server/system/auth/{realm}",
            get(metadata::metadata).fallback(wrong_method("GET, HEAD")),
        )
        .route("/system/auth/{realm}/oauth2/jwks", get(metadata::jwks).fallback(wrong_method("GET, HEAD")))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { ErrorReply::not_found().into_response() })
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, request_timeout))
        .with_state(ServerState { app: state, auth_throttle })
}

/// Another method on a realm's URL: 405 with `Allow` (RFC 9110 §15.5.6)
/// when the realm exists, the 404 of SPEC §1 when it does not, so that the
/// answer for an unknown tenant does not depend on the method.
fn wrong_method(
    allow: &'static str,
) -> impl Fn(State<AppState>, Path<String>) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |State(state): State<AppState>, Path(realm): Path<String>| {
        let known = RealmPath::parse(&realm).is_some_and(|realm| state.service.tenant(&realm).is_ok());
        let reply = if known { ErrorReply::method_not_allowed(allow) } else { ErrorReply::not_found() };
        std::future::ready(reply.into_response())
    }
}
