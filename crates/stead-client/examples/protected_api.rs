//! A small API protected by stead tokens.
//!
//! `GET /me` answers who the bearer token acts for: the subject, its type
//! (user or customer), the actor (the client acting on its behalf) and the
//! granted scopes. Requests without a valid token, or without the required
//! scope, are refused with RFC 6750 `WWW-Authenticate` challenges.
//!
//! Against `stead serve --demo` (see the crate's README):
//!
//! ```sh
//! cargo run -p stead-client --example protected_api
//! ```
//!
//! Environment: `STEAD_ISSUER` (default the demo's user realm,
//! `http://127.0.0.1:8080/system/auth/TMPRODB88619984-U`), `STEAD_AUDIENCE`
//! (default `TMPRODB88619984`, the demo tenant's audience), `API_SCOPE`
//! (default `knowledge.portalmgr.onbehalfof.read`), `API_LISTEN` (default
//! `127.0.0.1:3000`).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use stead_client::axum::BearerLayer;
use stead_client::{VerifiedToken, Verifier};

/// The API: `GET /me`, for tokens of `verifier`'s issuer holding `scope`.
pub fn app(verifier: Verifier, scope: &str) -> Router {
    Router::new().route("/me", get(me)).layer(BearerLayer::new(verifier).require_scopes([scope]).realm("protected_api"))
}

async fn me(token: VerifiedToken) -> Json<Value> {
    Json(json!({
        "subject": token.subject(),
        "subject_type": token.subject_type_str(),
        "actor": token.actor(),
        "scopes": token.scopes(),
    }))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let issuer = env_or("STEAD_ISSUER", "http://127.0.0.1:8080/system/auth/TMPRODB88619984-U");
    let audience = env_or("STEAD_AUDIENCE", "TMPRODB88619984");
    let scope = env_or("API_SCOPE", "knowledge.portalmgr.onbehalfof.read");
    let listen = env_or("API_LISTEN", "127.0.0.1:3000");
    // Metadata and keys are fetched on the first request, so the API starts
    // even while stead is down (and answers 503 until it is up).
    let verifier = Verifier::builder(&issuer).audience(audience).build()?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("protected_api listening on http://{}/me (tokens of {issuer})", listener.local_addr()?);
    axum::serve(listener, app(verifier, &scope)).await?;
    Ok(())
}
