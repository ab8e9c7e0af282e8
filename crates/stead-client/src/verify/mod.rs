//! Verifying access tokens in a resource server (RFC 9068 §4).

mod error;
mod jws;
mod keys;

pub use error::VerifyError;

use keys::{KeyPolicy, KeyStore};
use reqwest::Url;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default clock skew tolerated on `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default age after which the key set is fetched again.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// Default minimum interval between key set fetches triggered by unknown
/// `kid`s or following a failure.
pub const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Verifies the access tokens of one issuer (one realm) for one resource
/// server.
///
/// The issuer's metadata (RFC 8414, else OpenID Connect Discovery) is
/// fetched on first use to find its `jwks_uri`; the key set is cached,
/// fetched again after [`VerifierBuilder::jwks_max_age`], and fetched at
/// once when a token names an unknown `kid` (at most once per
/// [`VerifierBuilder::jwks_refetch_interval`]).
///
/// A token is accepted when:
/// - it is a JWS signed with ES256, RS256 or EdDSA (never `none`, never an
///   algorithm the key's JWK does not allow) by a key of the issuer;
/// - its header `typ` is `at+jwt` or `application/at+jwt` (RFC 9068 §4);
/// - `iss` is the issuer, `aud` (a string or an array) holds one of the
///   configured audiences, `exp` has not passed and `nbf`/`iat` are not in
///   the future (each with the leeway), `sub` is a non-empty string;
/// - its `scope` holds every required scope.
///
/// Cheap to clone: clones share the key cache.
///
/// ```no_run
/// # async fn demo(token: &str) -> Result<(), stead_client::VerifyError> {
/// use stead_client::Verifier;
///
/// let verifier = Verifier::builder("https://auth.example.com/system/auth/TMPRODB88619984-U")
///     .audience("https://api.example.com")
///     .require_scopes(["knowledge.portalmgr.onbehalfof.read"])
///     .build()?;
/// let token = verifier.verify(token).await?;
/// println!("{} acting for {} {}", token.actor().unwrap_or("?"), token.subject_type_str().unwrap_or("?"), token.subject());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    leeway: Duration,
    required_scopes: Vec<String>,
    keys: KeyStore,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("leeway", &self.inner.leeway)
            .field("required_scopes", &self.inner.required_scopes)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Verifier`]; from [`Verifier::builder`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    leeway: Duration,
    required_scopes: Vec<String>,
    jwks_uri: Option<String>,
    http: Option<reqwest::Client>,
    policy: KeyPolicy,
}

impl VerifierBuilder {
    /// An audience this resource server accepts (the `aud` claim; stead's
    /// is the tenant's configured audience, else the tenant id). Call again
    /// to accept several. At least one is required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Scopes every token must hold (in addition to those asked for per
    /// call or per route).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The clock skew tolerated on `exp`, `nbf` and `iat` (default
    /// [`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The key set URL, instead of the `jwks_uri` of the issuer's metadata.
    pub fn jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// The HTTP client for metadata and key set requests (default: one with
    /// 5 s connect and 10 s overall timeouts).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// How long a fetched key set is used before it is fetched again
    /// (default [`DEFAULT_JWKS_MAX_AGE`]). Should the fetch fail, the old
    /// keys stay in use.
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.policy.max_age = max_age;
        self
    }

    /// The minimum interval between key set fetches caused by unknown
    /// `kid`s or following a failed fetch (default
    /// [`DEFAULT_JWKS_REFETCH_INTERVAL`]).
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.policy.min_refetch_interval = interval;
        self
    }

    /// The verifier. Nothing is fetched yet; see [`Verifier::discover`] to
    /// fail fast when the issuer cannot be reached.
    pub fn build(self) -> Result<Verifier, VerifyError> {
        let config = |why: String| VerifyError::Config(why);
        crate::discovery::metadata_urls(&self.issuer).map_err(config)?;
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(config("at least one non-empty audience is required".into()));
        }
        let jwks_uri = match &self.jwks_uri {
            Some(uri) => Some(Url::parse(uri).map_err(|e| config(format!("jwks_uri {uri:?}: {e}")))?),
            None => None,
        };
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .user_agent(concat!("stead-client/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| config(format!("cannot build an HTTP client: {e}")))?,
        };
        let mut required_scopes = self.required_scopes;
        required_scopes.retain(|s| !s.trim().is_empty());
        let keys = KeyStore::new(http, self.issuer.clone(), jwks_uri, self.policy);
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audiences: self.audiences,
                leeway: self.leeway,
                required_scopes,
                keys,
            }),
        })
    }
}

impl Verifier {
    /// Configures a verifier of the tokens of `issuer`, e.g.
    /// `https://auth.example.com/system/auth/TMPRODB88619984-U`.
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            required_scopes: Vec::new(),
            jwks_uri: None,
            http: None,
            policy: KeyPolicy { max_age: DEFAULT_JWKS_MAX_AGE, min_refetch_interval: DEFAULT_JWKS_REFETCH_INTERVAL },
        }
    }

    /// A verifier of `issuer`'s tokens for `audience`, with the issuer's
    /// metadata and keys fetched now.
    pub async fn discover(issuer: impl Into<String>, audience: impl Into<String>) -> Result<Verifier, VerifyError> {
        let verifier = Verifier::builder(issuer).audience(audience).build()?;
        verifier.refresh_keys().await?;
        Ok(verifier)
    }

    /// The issuer whose tokens this verifier accepts.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Fetches the issuer's key set now (discovering its URL first if
    /// needed), regardless of the refetch interval.
    pub async fn refresh_keys(&self) -> Result<(), VerifyError> {
        self.inner.keys.refresh(None, true).await
    }

    /// How many times the key set was fetched so far (for monitoring and
    /// tests).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.keys.fetches()
    }

    /// Verifies `token` (see [`Verifier`]) with the verifier's required
    /// scopes.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        self.verify_with_scopes(token, &[]).await
    }

    /// Verifies `token`, which must also hold every scope of `scopes`.
    pub async fn verify_with_scopes(&self, token: &str, scopes: &[&str]) -> Result<VerifiedToken, VerifyError> {
        let token = token.trim();
        let jws = jws::parse(token)?;
        let inner = &self.inner;
        // Cheap claim checks before any key lookup, so that tokens of other
        // issuers never cause a key set fetch.
        if jws.claims.get("iss").and_then(Value::as_str) != Some(inner.issuer.as_str()) {
            return Err(VerifyError::WrongIssuer);
        }
        let candidates = inner.keys.candidates(jws.kid.as_deref(), jws.alg).await?;
        if !candidates.iter().any(|key| key.verify(jws.signing_input, &jws.signature)) {
            return Err(VerifyError::BadSignature);
        }
        let verified = check_claims(jws.claims, &inner.audiences, inner.leeway, SystemTime::now())?;
        verified.require_scopes(inner.required_scopes.iter().map(String::as_str).chain(scopes.iter().copied()))?;
        Ok(verified)
    }
}

/// Seconds since the epoch of a NumericDate claim (RFC 7519 §2), which may
/// be fractional.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().filter(|v| v.is_finite()).map(Some).ok_or(VerifyError::InvalidClaim(name)),
    }
}

/// The time-, audience- and subject-related checks of a token whose
/// signature and issuer are verified.
fn check_claims(
    claims: Map<String, Value>,
    audiences: &[String],
    leeway: Duration,
    now: SystemTime,
) -> Result<VerifiedToken, VerifyError> {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let leeway = leeway.as_secs_f64();
    let exp = numeric_date(&claims, "exp")?.ok_or(VerifyError::InvalidClaim("exp"))?;
    if now > exp + leeway {
        return Err(VerifyError::Expired);
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if now + leeway < nbf {
            return Err(VerifyError::NotYetValid);
        }
    }
    if let Some(iat) = numeric_date(&claims, "iat")? {
        if now + leeway < iat {
            return Err(VerifyError::NotYetValid);
        }
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences.contains(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(|a| audiences.iter().any(|x| x == a)),
        _ => return Err(VerifyError::InvalidClaim("aud")),
    };
    if !aud_ok {
        return Err(VerifyError::WrongAudience);
    }
    let string = |name: &'static str| -> Result<Option<String>, VerifyError> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(VerifyError::InvalidClaim(name)),
        }
    };
    let subject = string("sub")?.filter(|s| !s.is_empty()).ok_or(VerifyError::InvalidClaim("sub"))?;
    let scopes = scope_list(string("scope")?.as_deref().unwrap_or(""));
    let subject_type = string("subject_type")?.map(|t| SubjectType::parse(&t));
    let actor = match claims.get("act") {
        None | Some(Value::Null) => None,
        Some(Value::Object(act)) => match act.get("sub") {
            Some(Value::String(sub)) => Some(sub.clone()),
            _ => return Err(VerifyError::InvalidClaim("act")),
        },
        Some(_) => return Err(VerifyError::InvalidClaim("act")),
    };
    let client_id = string("client_id")?;
    let expires_at = UNIX_EPOCH + Duration::from_secs_f64(exp.max(0.0));
    Ok(VerifiedToken { subject, subject_type, actor, client_id, scopes, expires_at, claims })
}

/// Scopes of a space-separated `scope` value, each once, in order.
fn scope_list(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split_whitespace() {
        if !out.iter().any(|x| x == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// The kind of subject a token acts for (the `subject_type` claim).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectType {
    /// `user`: a staff user of a `-U` realm.
    User,
    /// `customer`: a customer of a `-C` realm.
    Customer,
    /// Another value, from a server that is not stead.
    Other(String),
}

impl SubjectType {
    /// Reads a `subject_type` value.
    pub fn parse(value: &str) -> SubjectType {
        match value {
            "user" => SubjectType::User,
            "customer" => SubjectType::Customer,
            other => SubjectType::Other(other.to_owned()),
        }
    }

    /// The claim value: `user`, `customer`, or the other value.
    pub fn as_str(&self) -> &str {
        match self {
            SubjectType::User => "user",
            SubjectType::Customer => "customer",
            SubjectType::Other(s) => s,
        }
    }
}

impl fmt::Display for SubjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An access token that passed verification: who it acts for, who acts,
/// and what it allows.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    subject: String,
    subject_type: Option<SubjectType>,
    actor: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    expires_at: SystemTime,
    claims: Map<String, Value>,
}

impl VerifiedToken {
    /// `sub`: the stable id of the user or customer the token acts for.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `subject_type`: a user or a customer (absent from tokens of servers
    /// other than stead).
    pub fn subject_type(&self) -> Option<&SubjectType> {
        self.subject_type.as_ref()
    }

    /// `subject_type` as a string.
    pub fn subject_type_str(&self) -> Option<&str> {
        self.subject_type.as_ref().map(SubjectType::as_str)
    }

    /// `act.sub`: the client acting on the subject's behalf (RFC 8693 §4.1).
    pub fn actor(&self) -> Option<&str> {
        self.actor.as_deref()
    }

    /// `client_id`: the client the token was issued to (RFC 9068 §2.2).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The granted scopes, each once.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Checks that the token grants every scope of `required`; else
    /// [`VerifyError::InsufficientScope`] listing all of `required`.
    pub fn require_scopes<'a>(&self, required: impl IntoIterator<Item = &'a str>) -> Result<(), VerifyError> {
        let required: Vec<&str> = required.into_iter().flat_map(str::split_whitespace).collect();
        if required.iter().all(|s| self.has_scope(s)) {
            return Ok(());
        }
        let mut all: Vec<String> = Vec::new();
        for s in required {
            if !all.iter().any(|x| x == s) {
                all.push(s.to_owned());
            }
        }
        Err(VerifyError::InsufficientScope { required: all })
    }

    /// `exp`: when the token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// `iss`: the issuer.
    pub fn issuer(&self) -> &str {
        self.claims.get("iss").and_then(Value::as_str).unwrap_or_default()
    }

    /// `jti`: the token's unique id, when present.
    pub fn jti(&self) -> Option<&str> {
        self.claim_str("jti")
    }

    /// `tenant`: stead's tenant id, when present.
    pub fn tenant(&self) -> Option<&str> {
        self.claim_str("tenant")
    }

    /// `preferred_username`: the user's username (`-U` realms).
    pub fn username(&self) -> Option<&str> {
        self.claim_str("preferred_username")
    }

    /// `email`: the customer's email (`-C` realms).
    pub fn email(&self) -> Option<&str> {
        self.claim_str("email")
    }

    /// A string claim by name.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// Every claim of the token.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn check(claims: Value) -> Result<VerifiedToken, VerifyError> {
        let Value::Object(map) = claims else { panic!() };
        check_claims(
            map,
            &["api".into(), "other".into()],
            Duration::from_secs(30),
            UNIX_EPOCH + Duration::from_secs(NOW),
        )
    }

    fn good() -> Value {
        json!({"iss": "i", "sub": "1001", "aud": "api", "exp": NOW + 10, "iat": NOW - 10, "scope": "b a b",
               "act": {"sub": "app"}, "subject_type": "user", "client_id": "app", "tenant": "T",
               "preferred_username": "pa", "jti": "j"})
    }

    fn with(changes: Value) -> Value {
        let mut v = good();
        for (k, c) in changes.as_object().unwrap() {
            if c.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = c.clone();
            }
        }
        v
    }

    #[test]
    fn exposes_subject_actor_and_scopes() {
        let t = check(good()).unwrap();
        assert_eq!(t.subject(), "1001");
        assert_eq!(t.subject_type(), Some(&SubjectType::User));
        assert_eq!(t.actor(), Some("app"));
        assert_eq!(t.scopes(), ["b", "a"]);
        assert_eq!((t.client_id(), t.tenant(), t.username(), t.jti()), (Some("app"), Some("T"), Some("pa"), Some("j")));
        assert_eq!(t.expires_at(), UNIX_EPOCH + Duration::from_secs(NOW + 10));
        assert!(t.require_scopes(["a", "b a"]).is_ok());
        assert_eq!(
            t.require_scopes(["a", "c", "c"]),
            Err(VerifyError::InsufficientScope { required: vec!["a".into(), "c".into()] })
        );
        let c = check(with(json!({"subject_type": "customer", "aud": ["x", "other"], "scope": null}))).unwrap();
        assert_eq!(c.subject_type_str(), Some("customer"));
        assert!(c.scopes().is_empty());
    }

    #[test]
    fn time_checks_allow_the_leeway_only() {
        assert!(check(with(json!({"exp": NOW - 29}))).is_ok());
        assert_eq!(check(with(json!({"exp": NOW - 31}))).err(), Some(VerifyError::Expired));
        assert!(check(with(json!({"exp": NOW as f64 + 0.5}))).is_ok());
        assert_eq!(check(with(json!({"exp": null}))).err(), Some(VerifyError::InvalidClaim("exp")));
        assert_eq!(check(with(json!({"exp": "soon"}))).err(), Some(VerifyError::InvalidClaim("exp")));
        assert!(check(with(json!({"nbf": NOW + 29}))).is_ok());
        assert_eq!(check(with(json!({"nbf": NOW + 31}))).err(), Some(VerifyError::NotYetValid));
        assert_eq!(check(with(json!({"iat": NOW + 31}))).err(), Some(VerifyError::NotYetValid));
    }

    #[test]
    fn audience_and_subject_are_required() {
        assert_eq!(check(with(json!({"aud": "elsewhere"}))).err(), Some(VerifyError::WrongAudience));
        assert_eq!(check(with(json!({"aud": ["a", "b"]}))).err(), Some(VerifyError::WrongAudience));
        assert_eq!(check(with(json!({"aud": null}))).err(), Some(VerifyError::InvalidClaim("aud")));
        assert_eq!(check(with(json!({"sub": null}))).err(), Some(VerifyError::InvalidClaim("sub")));
        assert_eq!(check(with(json!({"sub": ""}))).err(), Some(VerifyError::InvalidClaim("sub")));
        assert_eq!(check(with(json!({"sub": 5}))).err(), Some(VerifyError::InvalidClaim("sub")));
        assert_eq!(check(with(json!({"act": "app"}))).err(), Some(VerifyError::InvalidClaim("act")));
        assert_eq!(check(with(json!({"scope": ["a"]}))).err(), Some(VerifyError::InvalidClaim("scope")));
    }

    #[test]
    fn the_builder_requires_an_issuer_url_and_an_audience() {
        assert!(matches!(Verifier::builder("https://h/system/auth/T-U").build(), Err(VerifyError::Config(_))));
        assert!(matches!(Verifier::builder("not a url").audience("a").build(), Err(VerifyError::Config(_))));
        assert!(Verifier::builder("https://h/system/auth/T-U").audience("a").build().is_ok());
    }
}
