//! The token request itself (SPEC §2) and reading its answer (SPEC §3, §5).

use crate::{form, ClientAuth, ClientCredentials, Error, Subject, TokenEndpoint};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use stead_proto::{ErrorResponse, TokenResponse};

/// Response bodies are read up to this size; a token response is far smaller.
const MAX_BODY: usize = 1 << 20;

/// Requests on-behalf-of tokens. Cheap to clone; reuse one for many
/// requests so connections are pooled.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
}

/// A successful token response: the typed fields and the JSON body exactly
/// as the server sent it (which may hold more members than the typed ones).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenReply {
    /// The token response. When the server leaves out `scope` (RFC 6749
    /// §5.1 allows it when it equals the requested scope), the requested
    /// scope; when it leaves out `expires_in`, `exp - iat` of the token.
    pub token: TokenResponse,
    /// The response body as sent.
    pub body: Value,
}

impl TokenClient {
    /// A client with connect/overall timeouts of 10 s/30 s that never
    /// follows redirects (a redirected token request would carry the client
    /// secret to another URL).
    pub fn new() -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("stead-client/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(TokenClient { http })
    }

    /// A client using an existing `reqwest::Client`. Configure it not to
    /// follow redirects (`reqwest::redirect::Policy::none()`).
    pub fn with_http_client(http: reqwest::Client) -> Self {
        TokenClient { http }
    }

    /// Finds the token endpoint of `issuer` in its authorization server
    /// metadata (RFC 8414, falling back to OpenID Connect Discovery), for
    /// servers whose token URL is not `{issuer}/oauth2/token`. The metadata
    /// must name `issuer` exactly (RFC 8414 §3.3).
    pub async fn discover_endpoint(&self, issuer: &str) -> Result<TokenEndpoint, Error> {
        let metadata = crate::discovery::fetch_metadata(&self.http, issuer.trim()).await.map_err(Error::Discovery)?;
        let token_url = metadata
            .token_endpoint
            .ok_or_else(|| Error::Discovery(format!("the metadata of {issuer} has no token_endpoint")))?;
        TokenEndpoint::with_issuer(&token_url, &metadata.issuer)
    }

    /// Requests a token for `subject` with the password grant of SPEC §2.
    ///
    /// Each entry of `scopes` may itself hold several space-separated
    /// scopes; repeats are sent once. A refusal with an OAuth error body is
    /// [`Error::OAuth`].
    pub async fn request_token(
        &self,
        endpoint: &TokenEndpoint,
        credentials: &ClientCredentials,
        auth: ClientAuth,
        scopes: &[&str],
        subject: &Subject,
    ) -> Result<TokenResponse, Error> {
        let reply = self.request_token_reply(endpoint, credentials, auth, scopes, subject).await?;
        Ok(reply.token)
    }

    /// Like [`TokenClient::request_token`], also returning the response
    /// body as sent.
    pub async fn request_token_reply(
        &self,
        endpoint: &TokenEndpoint,
        credentials: &ClientCredentials,
        auth: ClientAuth,
        scopes: &[&str],
        subject: &Subject,
    ) -> Result<TokenReply, Error> {
        let scope = scope_param(scopes)?;
        let body = request_body(credentials, auth, &scope, subject)?;
        let mut request = self
            .http
            .post(endpoint.url().clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body);
        if auth == ClientAuth::Basic {
            let mut value = HeaderValue::from_str(&credentials.basic_authorization())
                .map_err(|_| Error::InvalidRequest("the credentials cannot form a Basic header".into()))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let mut response = request.send().await?;
        let status = response.status().as_u16();
        let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut bytes = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await? {
            if bytes.len() + chunk.len() > MAX_BODY {
                truncated = true;
                bytes.extend_from_slice(&chunk[..MAX_BODY - bytes.len()]);
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        if truncated && (200..300).contains(&status) {
            return Err(Error::InvalidResponse("the response body exceeds 1 MiB".into()));
        }
        parse_reply(status, location, &bytes, &scope)
    }
}

/// The `scope` parameter: all scopes, space-separated, each once, in order.
fn scope_param(scopes: &[&str]) -> Result<String, Error> {
    let mut seen: Vec<&str> = Vec::new();
    for scope in scopes.iter().flat_map(|s| s.split_whitespace()) {
        if !seen.contains(&scope) {
            seen.push(scope);
        }
    }
    if seen.is_empty() {
        return Err(Error::InvalidRequest("at least one scope is required".into()));
    }
    Ok(seen.join(" "))
}

/// The form body of the token request.
fn request_body(
    credentials: &ClientCredentials,
    auth: ClientAuth,
    scope: &str,
    subject: &Subject,
) -> Result<String, Error> {
    if credentials.client_id().is_empty() {
        return Err(Error::InvalidRequest("the client id is empty".into()));
    }
    let subject = subject.params();
    if let Some((name, _)) = subject.iter().find(|(_, value)| value.is_empty()) {
        return Err(Error::InvalidRequest(format!("{name} is empty")));
    }
    let mut pairs = vec![("grant_type", "password")];
    if auth == ClientAuth::Body {
        pairs.push(("client_id", credentials.client_id()));
        pairs.push(("client_secret", credentials.expose_secret()));
    }
    pairs.push(("scope", scope));
    pairs.extend(subject);
    Ok(form::body(&pairs))
}

/// The members of a token response stead reads, leniently: `scope` and
/// `expires_in` may be absent, `expires_in` may be a numeric string.
#[derive(Deserialize)]
struct WireToken {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    scope: Option<String>,
}

fn parse_reply(status: u16, location: Option<String>, body: &[u8], requested_scope: &str) -> Result<TokenReply, Error> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let oauth_error =
        json.as_ref().filter(|v| v.get("access_token").is_none()).and_then(|v| ErrorResponse::deserialize(v).ok());
    if let Some(e) = oauth_error {
        return Err(Error::OAuth { status, error: e.error, description: e.error_description });
    }
    match status {
        200..=299 => {}
        300..=399 => return Err(Error::Redirect { status, location }),
        _ => return Err(Error::Http { status, body: String::from_utf8_lossy(body).into_owned() }),
    }
    let Some(body) = json.filter(Value::is_object) else {
        return Err(Error::InvalidResponse("the body is not a JSON object".into()));
    };
    let wire = WireToken::deserialize(&body).map_err(|e| Error::InvalidResponse(e.to_string()))?;
    if wire.access_token.is_empty() {
        return Err(Error::InvalidResponse("access_token is empty".into()));
    }
    let expires_in = match wire.expires_in {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
        None => lifetime_from_jwt(&wire.access_token),
    }
    .ok_or_else(|| Error::InvalidResponse("expires_in is missing or not a non-negative integer".into()))?;
    let token = TokenResponse {
        access_token: wire.access_token,
        token_type: wire.token_type,
        expires_in,
        scope: wire.scope.unwrap_or_else(|| requested_scope.to_owned()),
    };
    Ok(TokenReply { token, body })
}

/// `exp - iat` of a JWT access token, for servers that leave out `expires_in`.
fn lifetime_from_jwt(token: &str) -> Option<u64> {
    let claims = crate::decode_jwt_claims(token).ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    let iat = claims.get("iat")?.as_i64()?;
    u64::try_from(exp.checked_sub(iat)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    #[test]
    fn scope_is_space_separated_and_deduplicated() {
        assert_eq!(scope_param(&["a"]).unwrap(), "a");
        assert_eq!(scope_param(&["a b", " c\t", "a", "b"]).unwrap(), "a b c");
        for empty in [&[][..], &[""], &["  ", "\n"]] {
            assert!(matches!(scope_param(empty), Err(Error::InvalidRequest(_))));
        }
    }

    #[test]
    fn body_carries_credentials_only_for_body_auth() {
        let creds = ClientCredentials::new("7121f585", "s&e=c r+t");
        let subject = Subject::Username("pa".into());
        assert_eq!(
            request_body(&creds, ClientAuth::Body, "a b", &subject).unwrap(),
            "grant_type=password&client_id=7121f585&client_secret=s%26e%3Dc+r%2Bt&scope=a+b&subject_username=pa"
        );
        assert_eq!(
            request_body(&creds, ClientAuth::Basic, "a", &Subject::Email("j+1@x.io".into())).unwrap(),
            "grant_type=password&scope=a&subject_email=j%2B1%40x.io"
        );
        let err = request_body(&creds, ClientAuth::Body, "a", &Subject::UserId(String::new())).unwrap_err();
        assert!(err.to_string().contains("subject_userid is empty"), "{err}");
        let err = request_body(&ClientCredentials::new("", "s"), ClientAuth::Body, "a", &subject).unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)));
    }

    #[test]
    fn parses_a_token_response() {
        let body =
            json!({"access_token": "eyJ", "token_type": "Bearer", "expires_in": 3600, "scope": "a b", "extra": 1});
        let reply = parse_reply(200, None, body.to_string().as_bytes(), "a b c").unwrap();
        assert_eq!(
            reply.token,
            TokenResponse {
                access_token: "eyJ".into(),
                token_type: "Bearer".into(),
                expires_in: 3600,
                scope: "a b".into()
            }
        );
        assert_eq!(reply.body, body);
    }

    #[test]
    fn fills_in_what_rfc_6749_lets_a_server_leave_out() {
        let body = json!({"access_token": "x", "token_type": "bearer", "expires_in": "900"});
        let reply = parse_reply(200, None, body.to_string().as_bytes(), "a b").unwrap();
        assert_eq!((reply.token.expires_in, reply.token.scope.as_str()), (900, "a b"));

        let claims = URL_SAFE_NO_PAD.encode(json!({"iat": 1000, "exp": 1600}).to_string());
        let jwt = format!("eyJhbGciOiJub25lIn0.{claims}.sig");
        let body = json!({"access_token": jwt, "token_type": "Bearer", "scope": "a"});
        assert_eq!(parse_reply(200, None, body.to_string().as_bytes(), "a").unwrap().token.expires_in, 600);

        let body = json!({"access_token": "opaque", "token_type": "Bearer"});
        assert!(matches!(parse_reply(200, None, body.to_string().as_bytes(), "a"), Err(Error::InvalidResponse(_))));
    }

    #[test]
    fn classifies_failures() {
        let err = parse_reply(400, None, br#"{"error":"invalid_scope","error_description":"no"}"#, "a").unwrap_err();
        assert!(
            matches!(&err, Error::OAuth { status: 400, error, description: Some(d) } if error == "invalid_scope" && d == "no")
        );
        let err = parse_reply(401, None, br#"{"error":"invalid_client"}"#, "a").unwrap_err();
        assert!(matches!(&err, Error::OAuth { status: 401, description: None, .. }));
        let err = parse_reply(502, None, b"<html>Bad Gateway</html>", "a").unwrap_err();
        assert!(matches!(&err, Error::Http { status: 502, body } if body.contains("Bad Gateway")));
        let err = parse_reply(302, Some("https://elsewhere/".into()), b"", "a").unwrap_err();
        assert!(matches!(&err, Error::Redirect { status: 302, location: Some(_) }));
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"token_type":"Bearer","expires_in":1}"#,
            br#"{"access_token":"","token_type":"Bearer","expires_in":1}"#,
        ] {
            let err = parse_reply(200, None, bad, "a").unwrap_err();
            assert!(matches!(err, Error::InvalidResponse(_)), "{}", String::from_utf8_lossy(bad));
        }
        let err = parse_reply(200, None, br#"{"error":"server_error"}"#, "a").unwrap_err();
        assert!(matches!(err, Error::OAuth { status: 200, .. }));
    }
}
