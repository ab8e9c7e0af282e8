//! The Rust SDK of stead, for both halves of an on-behalf-of token:
//!
//! - **Applications** get tokens that act for a user or customer from stead
//!   or any server compatible with its token endpoint (SPEC §2), the
//!   vendor's URL layout included: [`TokenClient`] makes one request;
//!   [`TokenCache`] keeps tokens per (realm, subject, scope set), refreshes
//!   them before they expire and makes one request for many concurrent
//!   callers. Refusals are [`Error::OAuth`] with the OAuth error code and
//!   description.
//! - **APIs (resource servers)** verify them: [`Verifier`] discovers the
//!   realm's metadata, caches its keys (JWKS) and checks signature, `typ`,
//!   `iss`, `aud`, `exp`/`nbf` and scopes, yielding a [`VerifiedToken`]
//!   (subject, subject type, actor, scopes). With the `axum` feature (on by
//!   default), [`axum::BearerLayer`] protects routes and answers with
//!   RFC 6750 `WWW-Authenticate` challenges.
//!
//! # Getting a token
//!
//! A confidential client names a realm's token endpoint, its credentials, the
//! scopes it wants and the user or customer it acts for, and gets back the
//! token response of RFC 6749 §5.1:
//!
//! ```no_run
//! # async fn demo() -> Result<(), stead_client::Error> {
//! use stead_client::{ClientAuth, ClientCredentials, Subject, TokenClient, TokenEndpoint};
//!
//! // The realm's URL (its issuer), or the full token URL ending in /oauth2/token.
//! let endpoint = TokenEndpoint::parse("https://auth.example.com/system/auth/TMPRODB88619984-U")?;
//! let credentials = ClientCredentials::new("7121f585-e403-4531-9a38-1826ebc7e7d8", "…secret…");
//! let token = TokenClient::new()?
//!     .request_token(
//!         &endpoint,
//!         &credentials,
//!         ClientAuth::Body, // client_secret_post; ClientAuth::Basic for client_secret_basic
//!         &["knowledge.portalmgr.onbehalfof.read"],
//!         &Subject::Username("pa".into()), // or UserId, Email (customers, on -C)
//!     )
//!     .await?;
//! println!("{}", token.access_token);
//! # Ok(())
//! # }
//! ```
//!
//! A job acting for many users uses a [`TokenCache`] instead (see its
//! documentation and `examples/on_behalf_job.rs`).
//!
//! # Verifying a token
//!
//! ```no_run
//! # async fn demo(bearer: &str) -> Result<(), stead_client::VerifyError> {
//! use stead_client::Verifier;
//!
//! let verifier = Verifier::builder("https://auth.example.com/system/auth/TMPRODB88619984-U")
//!     .audience("TMPRODB88619984") // the tenant's audience; the tenant id unless configured
//!     .build()?;
//! let token = verifier.verify_with_scopes(bearer, &["knowledge.portalmgr.onbehalfof.read"]).await?;
//! println!("{:?} acts for {} {}", token.actor(), token.subject_type_str().unwrap_or("subject"), token.subject());
//! # Ok(())
//! # }
//! ```
//!
//! # Examples
//!
//! `examples/protected_api.rs` is an axum API protected by the layer
//! (`GET /me` answers subject, subject type, actor and scopes);
//! `examples/on_behalf_job.rs` calls it on behalf of a user with tokens from
//! the cache. Against the demo server, from the workspace root:
//!
//! ```sh
//! cargo run -- serve --demo                               # terminal 1: stead on :8080
//! cargo run -p stead-client --example protected_api       # terminal 2: the API on :3000
//! cargo run -p stead-client --example on_behalf_job       # terminal 3: the job
//! ```

#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod cache;
mod client;
mod credentials;
mod discovery;
mod endpoint;
mod error;
mod form;
mod jwt;
mod verify;

pub use cache::{
    CachedToken, TokenCache, TokenCacheBuilder, DEFAULT_MAX_ENTRIES, DEFAULT_REFRESH_MARGIN, DEFAULT_REFRESH_RATIO,
};
pub use client::{TokenClient, TokenReply};
pub use credentials::{ClientAuth, ClientCredentials, Subject};
pub use endpoint::TokenEndpoint;
pub use error::{DecodeError, Error};
pub use jwt::{decode_jwt, decode_jwt_claims, DecodedJwt};
pub use reqwest::Url;
pub use stead_proto::TokenResponse;
pub use verify::{
    SubjectType, VerifiedToken, Verifier, VerifierBuilder, VerifyError, DEFAULT_JWKS_MAX_AGE,
    DEFAULT_JWKS_REFETCH_INTERVAL, DEFAULT_LEEWAY,
};
