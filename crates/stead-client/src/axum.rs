//! Protecting an axum API with stead tokens (feature `axum`).
//!
//! [`BearerLayer`] reads `Authorization: Bearer …` (RFC 6750 §2.1),
//! verifies the token with a [`Verifier`] and hands the [`VerifiedToken`]
//! to handlers, which take it as an extractor. Requests it refuses get the
//! answer of RFC 6750 §3:
//!
//! | request | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no token | 401 | `Bearer` (with `realm` when configured) |
//! | malformed `Authorization`, two of them | 400 | `Bearer error="invalid_request", error_description="…"` |
//! | token invalid, expired, of another issuer or audience | 401 | `Bearer error="invalid_token", error_description="…"` |
//! | token lacks a required scope | 403 | `Bearer error="insufficient_scope", error_description="…", scope="…"` |
//! | the issuer's keys cannot be fetched | 503 | none (`Retry-After`) |
//!
//! Errors also carry a JSON body `{"error": …, "error_description": …}`.
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use stead_client::axum::BearerLayer;
//! use stead_client::{Verifier, VerifiedToken};
//!
//! async fn me(token: VerifiedToken) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({"subject": token.subject(), "actor": token.actor()}))
//! }
//!
//! # fn app() -> Result<Router, stead_client::VerifyError> {
//! let verifier = Verifier::builder("https://auth.example.com/system/auth/TMPRODB88619984-U")
//!     .audience("TMPRODB88619984")
//!     .build()?;
//! let app = Router::new()
//!     .route("/me", get(me))
//!     // A route needing more scopes: the outer layer has verified the
//!     // token already; the inner one only checks the scopes.
//!     .route("/admin", get(me).layer(BearerLayer::new(verifier.clone()).require_scopes(["admin"])))
//!     .layer(BearerLayer::new(verifier).require_scopes(["knowledge.portalmgr.onbehalfof.read"]).realm("portal"));
//! # Ok(app)
//! # }
//! ```

use crate::{VerifiedToken, Verifier, VerifyError};
use ::axum::body::Body;
use ::axum::extract::{FromRequestParts, OptionalFromRequestParts, Request};
use ::axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderMap, HeaderValue, StatusCode};
use ::axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A tower layer that admits only requests with a valid bearer token (see
/// the [module documentation](self)). The verified token is put into the
/// request's extensions, where the [`VerifiedToken`] extractor finds it.
///
/// When an outer `BearerLayer` has verified the token already, an inner
/// one only checks its own required scopes.
#[derive(Debug, Clone)]
pub struct BearerLayer {
    verifier: Verifier,
    scopes: Arc<[String]>,
    realm: Option<Arc<str>>,
}

impl BearerLayer {
    /// A layer verifying tokens with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        BearerLayer { verifier, scopes: Arc::new([]), realm: None }
    }

    /// Scopes every request through this layer needs (in addition to the
    /// verifier's own).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all: Vec<String> = self.scopes.to_vec();
        all.extend(scopes.into_iter().map(Into::into));
        self.scopes = all.into();
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenges (RFC 6750 §3).
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = Some(realm.into());
        self
    }

    async fn check(&self, request: &Parts) -> Result<Option<VerifiedToken>, VerifyError> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        if let Some(token) = request.extensions.get::<VerifiedToken>() {
            return token.require_scopes(scopes).map(|()| None);
        }
        let token = bearer_token(&request.headers)?;
        self.verifier.verify_with_scopes(token, &scopes).await.map(Some)
    }
}

impl<S> tower::Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService { inner, layer: self.clone() }
    }
}

/// The service of a [`BearerLayer`].
#[derive(Debug, Clone)]
pub struct BearerService<S> {
    inner: S,
    layer: BearerLayer,
}

impl<S> tower::Service<Request> for BearerService<S>
where
    S: tower::Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            // The body is not `Sync`; only the head is looked at.
            let (mut parts, body) = request.into_parts();
            match layer.check(&parts).await {
                Ok(verified) => {
                    if let Some(token) = verified {
                        parts.extensions.insert(token);
                    }
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(e) => Ok(error_response(&e, layer.realm.as_deref())),
            }
        })
    }
}

/// The bearer token of `Authorization: Bearer <token>` (RFC 6750 §2.1).
///
/// [`VerifyError::Missing`] without the header or with another scheme;
/// [`VerifyError::InvalidRequest`] for two headers or a malformed token.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(VerifyError::Missing);
    };
    if values.next().is_some() {
        return Err(VerifyError::InvalidRequest("more than one Authorization header".into()));
    }
    let value =
        value.to_str().map_err(|_| VerifyError::InvalidRequest("the Authorization header is not ASCII".into()))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(VerifyError::Missing);
    }
    let token = rest.trim_matches(' ');
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    let well_formed = !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if !well_formed {
        return Err(VerifyError::InvalidRequest("the Bearer credentials are malformed".into()));
    }
    Ok(token)
}

/// The response RFC 6750 §3 prescribes for `error`, with the challenge's
/// `realm` when given.
pub fn error_response(error: &VerifyError, realm: Option<&str>) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut params: Vec<String> = Vec::new();
    if let Some(realm) = realm {
        params.push(format!("realm=\"{}\"", quoted(realm)));
    }
    let (code, description) = match error {
        VerifyError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "cannot verify access tokens: the issuer's keys are unavailable");
            ("temporarily_unavailable", "the access token cannot be verified now; try again later".to_owned())
        }
        VerifyError::Config(detail) => {
            tracing::error!(error = %detail, "access token verifier misconfigured");
            ("server_error", "the access token cannot be verified".to_owned())
        }
        _ => (error.oauth_error().unwrap_or("invalid_token"), error.to_string()),
    };
    if let Some(code) = error.oauth_error() {
        params.push(format!("error=\"{code}\""));
        params.push(format!("error_description=\"{}\"", quoted(&description)));
    }
    if let VerifyError::InsufficientScope { required } = error {
        params.push(format!("scope=\"{}\"", quoted(&required.join(" "))));
    }
    let body = match error {
        VerifyError::Missing => Body::empty(),
        _ => Body::from(serde_json::json!({"error": code, "error_description": description}).to_string()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if !matches!(error, VerifyError::Missing) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    match error {
        VerifyError::Unavailable(_) => {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        VerifyError::Config(_) => {}
        _ => {
            let challenge =
                if params.is_empty() { "Bearer".to_owned() } else { format!("Bearer {}", params.join(", ")) };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(WWW_AUTHENTICATE, value);
            }
        }
    }
    response
}

/// Text made fit for a quoted auth-param of RFC 6750 §3: printable ASCII
/// without `"` and `\`.
fn quoted(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '\'' }).collect()
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        error_response(&self, None)
    }
}

/// The token verified by a [`BearerLayer`] around the route. On a route
/// without the layer the request fails with 500 (a wiring error).
impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<VerifiedToken>().cloned().ok_or_else(|| {
            tracing::error!("the VerifiedToken extractor is used on a route without a BearerLayer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
    }
}

/// `Option<VerifiedToken>`: the token verified by a [`BearerLayer`], if any.
impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedToken {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedToken>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_bearer_credentials_per_rfc_6750() {
        assert_eq!(bearer_token(&headers(&["Bearer abc.DEF-_~+/=="])), Ok("abc.DEF-_~+/=="));
        assert_eq!(bearer_token(&headers(&["bearer  abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&[])), Err(VerifyError::Missing));
        assert_eq!(bearer_token(&headers(&["Basic YTpi"])), Err(VerifyError::Missing));
        for bad in
            [&["Bearer"][..], &["Bearer "], &["Bearer a b"], &["Bearer a\"b"], &["Bearer ="], &["Bearer a", "Bearer b"]]
        {
            assert!(matches!(bearer_token(&headers(bad)), Err(VerifyError::InvalidRequest(_))), "{bad:?}");
        }
    }

    fn challenge(r: &Response) -> &str {
        r.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    #[test]
    fn answers_with_rfc_6750_challenges() {
        let r = error_response(&VerifyError::Missing, None);
        assert_eq!((r.status(), challenge(&r)), (StatusCode::UNAUTHORIZED, "Bearer"));
        let r = error_response(&VerifyError::Missing, Some("api \"x\""));
        assert_eq!(challenge(&r), "Bearer realm=\"api 'x'\"");
        let r = error_response(&VerifyError::Expired, Some("api"));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&r),
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the access token has expired\""
        );
        let r = error_response(&VerifyError::InsufficientScope { required: vec!["a".into(), "b".into()] }, None);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(challenge(&r).starts_with("Bearer error=\"insufficient_scope\", error_description="));
        assert!(challenge(&r).ends_with(", scope=\"a b\""));
        let r = error_response(&VerifyError::InvalidRequest("two".into()), None);
        assert_eq!(
            (r.status(), challenge(&r)),
            (StatusCode::BAD_REQUEST, "Bearer error=\"invalid_request\", error_description=\"two\"")
        );
        let r = error_response(&VerifyError::Unavailable("http://x: down".into()), None);
        assert_eq!((r.status(), challenge(&r)), (StatusCode::SERVICE_UNAVAILABLE, ""));
        assert_eq!(r.headers()[RETRY_AFTER], "5");
    }
}
