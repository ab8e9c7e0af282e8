//! Client side of stead: requests on-behalf-of access tokens from stead or
//! any server compatible with its token endpoint (SPEC §2).
//!
//! A confidential client names a realm's token endpoint, its credentials, the
//! scopes it wants and the user or customer it acts for, and gets back the
//! token response of RFC 6749 §5.1:
//!
//! ```no_run
//! # async fn demo() -> Result<(), stead_client::Error> {
//! use stead_client::{ClientAuth, ClientCredentials, Subject, TokenClient, TokenEndpoint};
//!
//! let endpoint = TokenEndpoint::parse("https://auth.example.com/system/auth/TMPRODB88619984-U")?;
//! let credentials = ClientCredentials::new("7121f585-e403-4531-9a38-1826ebc7e7d8", "…secret…");
//! let token = TokenClient::new()?
//!     .request_token(
//!         &endpoint,
//!         &credentials,
//!         ClientAuth::Body,
//!         &["knowledge.portalmgr.onbehalfof.read"],
//!         &Subject::Username("pa".into()),
//!     )
//!     .await?;
//! println!("{}", token.access_token);
//! # Ok(())
//! # }
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
