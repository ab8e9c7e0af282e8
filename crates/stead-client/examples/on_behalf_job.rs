//! A job that calls an API on behalf of users: it gets a token for each
//! user from stead through a [`TokenCache`] and calls the API with it.
//!
//! Against `stead serve --demo` and the `protected_api` example (see the
//! crate's README):
//!
//! ```sh
//! cargo run -p stead-client --example on_behalf_job
//! ```
//!
//! Environment: `STEAD_URL` (the realm's issuer or token URL; default the
//! demo's user realm `http://127.0.0.1:8080/system/auth/TMPRODB88619984-U`),
//! `STEAD_CLIENT_ID` (default the demo client), `STEAD_CLIENT_SECRET`, else
//! the file `STEAD_CLIENT_SECRET_FILE` (default
//! `stead-data/demo-client-secret`, where the demo keeps it), `JOB_USERS`
//! (comma-separated usernames, default `pa`), `JOB_SCOPE` (default
//! `knowledge.portalmgr.onbehalfof.read`), `API_URL` (default
//! `http://127.0.0.1:3000/me`).

use anyhow::Context;
use serde_json::Value;
use stead_client::{ClientCredentials, Subject, TokenCache, TokenClient, TokenEndpoint};

/// Calls `api` on behalf of `subject` with a token from `cache`. Should the
/// API refuse the token as invalid (revoked, keys rotated…), the cached
/// token is dropped and the call retried once with a new one.
pub async fn call_api(
    http: &reqwest::Client,
    cache: &TokenCache,
    endpoint: &TokenEndpoint,
    subject: &Subject,
    scope: &str,
    api: &str,
) -> anyhow::Result<Value> {
    for attempt in 0..2 {
        let token = cache.token(endpoint, subject, &[scope]).await.context("getting a token")?;
        let response = http.get(api).bearer_auth(token.access_token()).send().await.context("calling the API")?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
            cache.invalidate(endpoint, subject, &[scope]);
            continue;
        }
        let status = response.status();
        if !status.is_success() {
            let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
            anyhow::bail!("the API answered {status} {challenge}");
        }
        return response.json().await.context("reading the API's answer");
    }
    unreachable!("the loop returns on its second attempt")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = TokenEndpoint::parse(&env_or("STEAD_URL", "http://127.0.0.1:8080/system/auth/TMPRODB88619984-U"))?;
    let client_id = env_or("STEAD_CLIENT_ID", "7121f585-e403-4531-9a38-1826ebc7e7d8");
    let secret = match std::env::var("STEAD_CLIENT_SECRET") {
        Ok(secret) => secret,
        Err(_) => {
            let path = env_or("STEAD_CLIENT_SECRET_FILE", "stead-data/demo-client-secret");
            std::fs::read_to_string(&path).with_context(|| format!("reading the client secret from {path}"))?
        }
    };
    let scope = env_or("JOB_SCOPE", "knowledge.portalmgr.onbehalfof.read");
    let api = env_or("API_URL", "http://127.0.0.1:3000/me");
    let cache = TokenCache::new(TokenClient::new()?, ClientCredentials::new(client_id, secret.trim_end()));
    let http = reqwest::Client::new();
    for user in env_or("JOB_USERS", "pa").split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let subject = Subject::Username(user.to_owned());
        // Twice: the second call reuses the cached token.
        for _ in 0..2 {
            let answer = call_api(&http, &cache, &endpoint, &subject, &scope, &api).await?;
            println!("on behalf of {user}: {answer}");
        }
    }
    Ok(())
}
