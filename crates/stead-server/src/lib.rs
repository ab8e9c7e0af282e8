//! The HTTP face of stead: axum routes, request parsing, the mapping of
//! OAuth errors to HTTP, health checks and the directory refresh loop; the
//! accept loop (HTTP/1.1 and HTTP/2, optionally over TLS) with its abuse
//! limits ([`limits`], [`ServerSettings`]). Business rules live in
//! `stead-core`.

mod addr;
mod basic;
mod body;
mod error;
mod form;
mod health;
mod introspection;
pub mod limits;
mod listener;
mod metadata;
mod refresh;
mod routes;
mod settings;
pub mod tls;
mod token;

pub use addr::ClientAddr;
pub use error::ErrorReply;
pub use limits::AuthGuard;
pub use limits::{AuthFailureLimits, AuthThrottle};
pub use refresh::{spawn_maintenance, spawn_refresh};
pub use routes::{router, router_with};
pub use settings::{ServerSettings, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_CONNECTIONS};
pub use tls::TlsFiles;

/// Entry points for the cargo-fuzz targets in `fuzz/` (see CONTRIBUTING.md);
/// not part of the supported API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::form::{parse as parse_token_form, TokenForm};
    use stead_core::Credentials;

    /// Reads `value` as the request's only `Authorization` header, as the
    /// token endpoint does; `None` when it is not a valid header value.
    pub fn parse_authorization(value: &[u8]) -> Option<Option<Credentials>> {
        let value = axum::http::HeaderValue::from_bytes(value).ok()?;
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, value);
        Some(crate::basic::from_headers(&headers))
    }

    /// Combines header and body credentials, as the token endpoint does.
    pub fn combine_credentials(
        basic: Option<Credentials>,
        body_id: Option<String>,
        body_secret: Option<String>,
    ) -> Credentials {
        crate::basic::combine(basic, body_id, body_secret)
    }
}

use std::sync::Arc;
use stead_core::{Store, TokenService};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<TokenService>,
    pub store: Arc<dyn Store>,
}

/// The router's state: the handlers' [`AppState`] and the server's own
/// parts, each extracted through `FromRef`.
#[derive(Clone)]
pub(crate) struct ServerState {
    app: AppState,
    auth_throttle: Arc<AuthThrottle>,
}

impl axum::extract::FromRef<ServerState> for AppState {
    fn from_ref(state: &ServerState) -> AppState {
        state.app.clone()
    }
}

impl axum::extract::FromRef<ServerState> for Arc<AuthThrottle> {
    fn from_ref(state: &ServerState) -> Arc<AuthThrottle> {
        state.auth_throttle.clone()
    }
}

/// Serves `router` on `listener` with the default [`ServerSettings`] until
/// `shutdown` resolves; requests in flight then finish before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ServerSettings::default(), shutdown).await
}

/// Serves `router` on `listener` with `settings` until `shutdown` resolves;
/// requests in flight then finish before this returns. Fails at once when
/// the TLS files cannot be used.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    settings: ServerSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let throttle = Arc::new(AuthThrottle::new(settings.auth_failures.clone()));
    let app = routes::router_with(state, throttle, settings.request_timeout);
    listener::run(listener, app, &settings, shutdown).await
}
