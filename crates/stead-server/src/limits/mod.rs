//! Abuse resistance: brute-force protection of client authentication
//! ([`auth`]), global bounds on requests in flight and per second
//! ([`global`]), on sliding-window counters of bounded size ([`window`]).
//! Connection-level limits (header, idle and TLS handshake timeouts, header
//! sizes, the number of connections) live in `crate::listener`.

pub mod auth;
pub mod global;
pub mod window;

pub use auth::{AuthFailureLimits, AuthThrottle};
pub use global::Gate;

use crate::addr::ClientAddr;
use crate::error::ErrorReply;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use stead_core::OAuthError;

/// The failed-authentication throttle as one request from `source` sees it;
/// an extractor for the handlers that authenticate clients.
pub struct AuthGuard {
    throttle: Arc<AuthThrottle>,
    /// The request's source address ([`ClientAddr`]).
    pub source: IpAddr,
}

impl<S> FromRequestParts<S> for AuthGuard
where
    Arc<AuthThrottle>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientAddr(source) = ClientAddr::from_request_parts(parts, state).await?;
        Ok(AuthGuard { throttle: Arc::from_ref(state), source })
    }
}

impl AuthGuard {
    /// See [`AuthThrottle::settle`].
    pub fn settle<T>(
        &self,
        tenant: &str,
        client_id: Option<&str>,
        result: Result<T, OAuthError>,
    ) -> Result<T, ErrorReply> {
        self.throttle.settle(self.source, tenant, client_id, result)
    }
}
