//! The HTTP face of stead: axum routes, request parsing, the mapping of
//! OAuth errors to HTTP, health checks and the directory refresh loop.
//! Business rules live in `stead-core`.

mod basic;
mod body;
mod error;
mod form;
mod health;
mod metadata;
mod refresh;
mod routes;
mod token;

pub use error::ErrorReply;
pub use refresh::spawn_refresh;
pub use routes::router;

use std::sync::Arc;
use stead_core::{Store, TokenService};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<TokenService>,
    pub store: Arc<dyn Store>,
}

/// Serves `router` on `listener` until `shutdown` resolves; requests in
/// flight then finish before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
