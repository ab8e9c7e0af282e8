//! The token service: validate a request into a [`Grant`], then issue it.
//! The order of the checks follows RFC 6749: request syntax and grant type,
//! client authentication (§2.3.1), the client's right to the realm, the
//! subject parameters, the scope (§3.3), and finally the subject itself.

use crate::audit::{bounded, AuditLog, AuditRecord, Outcome};
use crate::directory::{DirectoryHandle, TenantEntry};
use crate::error::OAuthError;
use crate::jwt;
use crate::model::{fold_case, Client, Customer, Subject, DEFAULT_TOKEN_TTL};
use crate::provision::{is_scope_token, is_valid_email};
use crate::request::{Credentials, TokenRequest};
use crate::secret::SecretHasher;
use crate::store::{Store, StoreError};
use crate::UnixTime;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use std::sync::Arc;
use stead_proto::{Actor, Claims, ErrorCode, IntrospectionResponse, RealmKind, RealmPath, TokenResponse};

/// What is known about a request as it is processed, for its log line and
/// audit record, whether it succeeds or not.
#[derive(Debug, Default, Clone)]
pub struct RequestContext {
    pub client_id: Option<String>,
    pub subject_id: Option<String>,
    /// The identifier the caller gave (username, user id or email).
    pub subject_given: Option<String>,
    pub requested_scope: Option<String>,
    pub granted_scope: Option<String>,
    pub jti: Option<String>,
}

/// A fully validated request: everything issuing needs, nothing it must check.
#[derive(Debug)]
pub struct Grant {
    pub tenant: Arc<TenantEntry>,
    pub realm: RealmPath,
    pub client_id: String,
    pub subject: Subject,
    pub scopes: Vec<String>,
    pub ttl: u32,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub response: TokenResponse,
    pub claims: Claims,
}

/// Where a request came from, for its audit record.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub remote_addr: Option<String>,
    pub request_id: String,
}

pub struct TokenService {
    directory: Arc<DirectoryHandle>,
    store: Arc<dyn Store>,
    hasher: SecretHasher,
    base_url: String,
    audit: AuditLog,
}

impl TokenService {
    pub fn new(
        directory: Arc<DirectoryHandle>,
        store: Arc<dyn Store>,
        hasher: SecretHasher,
        base_url: String,
        audit: AuditLog,
    ) -> Self {
        TokenService { directory, store, hasher, base_url: base_url.trim_end_matches('/').to_owned(), audit }
    }

    pub fn directory(&self) -> &DirectoryHandle {
        &self.directory
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The tenant of a realm, or `not_found` (SPEC §1: 404).
    pub fn tenant(&self, realm: &RealmPath) -> Result<Arc<TenantEntry>, OAuthError> {
        self.directory
            .get()
            .tenant(&realm.tenant)
            .cloned()
            .ok_or_else(|| OAuthError::new(ErrorCode::NotFound, "unknown tenant"))
    }

    /// Validates, issues and audits one token request. An issued token is
    /// returned only once its audit record is committed; when the record
    /// cannot be written the caller gets `temporarily_unavailable` instead.
    pub async fn token(
        &self,
        realm: &RealmPath,
        request: TokenRequest,
        now: UnixTime,
        ctx: &mut RequestContext,
        meta: &RequestMeta,
    ) -> Result<IssuedToken, OAuthError> {
        let grant = match self.validate(realm, request, ctx, now).await {
            Ok(grant) => grant,
            Err(e) => {
                self.record(realm, ctx, meta, Err(e.code)).await?;
                return Err(e);
            }
        };
        let claims = self.claims(&grant, now);
        ctx.jti = Some(claims.jti.clone());
        // The record describes the token before it is signed, so it goes
        // to storage first. With ES256 and EdDSA the token is signed once
        // the record's batch is sealed, while that batch commits and syncs
        // (BENCHMARKS.md). A batch of RSA signatures takes far longer than
        // its commit: waiting for the seal would add a batch of signatures
        // to every wait instead of hiding a commit (RS256 p99 42 -> 65 ms).
        // Either way the token leaves only once its record is durable.
        let record = self.audit_record(realm, ctx, meta, Ok(&claims));
        let mut pending = self.audit.submit(record).await.map_err(not_committed)?;
        if grant.tenant.active_key.alg.signs_fast() {
            pending.sealed().await;
        }
        let issued = self.sign(&grant, claims);
        pending.durable().await.map_err(not_committed)?;
        Ok(issued)
    }

    /// Commits the audit record of one token request refused by the
    /// service or before it (malformed, throttled). Fails with
    /// `temporarily_unavailable` when the record cannot be written.
    pub async fn record(
        &self,
        realm: &RealmPath,
        ctx: &RequestContext,
        meta: &RequestMeta,
        result: Result<&Claims, ErrorCode>,
    ) -> Result<(), OAuthError> {
        self.audit.record(self.audit_record(realm, ctx, meta, result)).await.map_err(not_committed)
    }

    fn audit_record(
        &self,
        realm: &RealmPath,
        ctx: &RequestContext,
        meta: &RequestMeta,
        result: Result<&Claims, ErrorCode>,
    ) -> AuditRecord {
        AuditRecord {
            time_ms: crate::now_ms(),
            tenant: realm.tenant.to_string(),
            realm: realm.kind.as_str().to_owned(),
            client_id: ctx.client_id.as_deref().map(bounded),
            subject_id: ctx.subject_id.clone(),
            subject_given: ctx.subject_given.as_deref().map(bounded),
            requested_scope: ctx.requested_scope.as_deref().map(bounded),
            granted_scope: result.ok().map(|c| c.scope.clone()),
            jti: result.ok().map(|c| c.jti.clone()),
            outcome: if result.is_ok() { Outcome::Issued } else { Outcome::Refused },
            error: result.err().map(|code| code.as_str().to_owned()),
            remote_addr: meta.remote_addr.clone(),
            request_id: meta.request_id.clone(),
        }
    }

    pub async fn validate(
        &self,
        realm: &RealmPath,
        req: TokenRequest,
        ctx: &mut RequestContext,
        now: UnixTime,
    ) -> Result<Grant, OAuthError> {
        let tenant = self.tenant(realm)?;
        ctx.client_id = req.credentials.client_id().map(str::to_owned);
        // SPEC §6: a change is honoured within a second; a directory that
        // storage has not confirmed for longer may grant what was revoked.
        if !self.directory.is_fresh() {
            return Err(OAuthError::unavailable());
        }
        ctx.requested_scope = req.scope.clone();

        // RFC 6749 §4.3.2: grant_type is required and must be "password".
        match req.grant_type.as_deref() {
            None => return Err(OAuthError::invalid_request("grant_type is required")),
            Some("password") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    "this endpoint supports only grant_type=password",
                ))
            }
        }

        let client = self.authenticate(&tenant, &req.credentials, now)?;

        // SPEC §2: a client acts only in the realms it was granted.
        if !client.realms.contains(realm.kind) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!("this client is not allowed to act for {}s", realm.kind.as_str()),
            ));
        }

        let lookup = subject_lookup(realm, &req)?;
        ctx.subject_given = Some(lookup.given().to_owned());

        let scopes = grant_scopes(&tenant, client, req.scope.as_deref())?;

        let subject = self.find_subject(&tenant, lookup).await?;
        ctx.subject_id = Some(subject.id().to_owned());
        if !subject.enabled() {
            return Err(OAuthError::invalid_grant("the subject is unknown or disabled"));
        }
        // The client's subject_groups / deny_subject_groups. The refusal
        // does not say which group decided it.
        if !client.may_act_for(subject.groups()) {
            return Err(OAuthError::invalid_grant("this client may not act for this subject"));
        }
        ctx.granted_scope = Some(scopes.join(" "));

        let ttl = client.token_ttl_seconds.or(tenant.tenant.token_ttl_seconds).unwrap_or(DEFAULT_TOKEN_TTL);
        Ok(Grant { client_id: client.id.clone(), tenant, realm: realm.clone(), subject, scopes, ttl })
    }

    /// RFC 6749 §2.3.1. Every failure gives the same `invalid_client`, and an
    /// unknown id costs the same hashing as a wrong secret.
    pub fn authenticate<'t>(
        &self,
        tenant: &'t TenantEntry,
        credentials: &Credentials,
        now: UnixTime,
    ) -> Result<&'t Client, OAuthError> {
        let (client_id, secret) = match credentials {
            Credentials::Both => {
                return Err(OAuthError::invalid_request(
                    "use either HTTP Basic or client_id/client_secret in the body, not both",
                ))
            }
            Credentials::None | Credentials::MalformedBasic => return Err(OAuthError::invalid_client()),
            Credentials::Basic { client_id, secret } => (client_id, Some(secret)),
            Credentials::Body { client_id, secret } => (client_id, secret.as_ref()),
        };
        let client = tenant.clients.get(client_id.as_str());
        let verified = match secret {
            Some(secret) => self.hasher.verify(secret.expose(), client.map(|c| c.secrets.as_slice()), now),
            None => false,
        };
        match client {
            Some(c) if verified && c.enabled => Ok(c),
            _ => Err(OAuthError::invalid_client()),
        }
    }

    async fn find_subject(&self, tenant: &TenantEntry, lookup: SubjectLookup<'_>) -> Result<Subject, OAuthError> {
        let t = &tenant.tenant.id;
        let unknown = || OAuthError::invalid_grant("the subject is unknown or disabled");
        match lookup {
            SubjectLookup::User { username, userid } => {
                let by_name = match username {
                    Some(name) => Some(self.store.user_by_username(t, &fold_case(name)).await.map_err(storage)?),
                    None => None,
                };
                let by_id = match userid {
                    Some(id) => Some(self.store.user_by_id(t, id).await.map_err(storage)?),
                    None => None,
                };
                // SPEC §2: given both, they must name the same existing user;
                // either one unknown makes the subject unknown.
                match (by_name, by_id) {
                    (Some(Some(a)), Some(Some(b))) if a.id != b.id => {
                        Err(OAuthError::invalid_grant("subject_username and subject_userid name different users"))
                    }
                    (Some(Some(u)), Some(Some(_)) | None) | (None, Some(Some(u))) => Ok(Subject::User(u)),
                    _ => Err(unknown()),
                }
            }
            SubjectLookup::Customer { email } => {
                let folded = fold_case(email);
                if let Some(c) = self.store.customer_by_email(t, &folded).await.map_err(storage)? {
                    return Ok(Subject::Customer(c));
                }
                if !tenant.tenant.auto_provision_customers || !is_valid_email(email) {
                    return Err(unknown());
                }
                let customer = Customer {
                    id: crate::model::random_id(),
                    email: email.to_owned(),
                    enabled: true,
                    groups: Vec::new(),
                };
                let created = self.store.create_customer(t, &customer).await.map_err(storage)?;
                tracing::info!(tenant = %t, customer = %created.id, "auto-provisioned customer");
                Ok(Subject::Customer(created))
            }
        }
    }

    /// The claims of the access token of SPEC §4 for a validated grant.
    pub fn claims(&self, grant: &Grant, now: UnixTime) -> Claims {
        let (preferred_username, email) = match &grant.subject {
            Subject::User(u) => (Some(u.username.clone()), None),
            Subject::Customer(c) => (None, Some(c.email.clone())),
        };
        Claims {
            iss: grant.realm.issuer(&self.base_url),
            sub: grant.subject.id().to_owned(),
            aud: grant.tenant.tenant.audience().to_owned(),
            exp: now + grant.ttl as i64,
            iat: now,
            jti: new_jti(),
            client_id: grant.client_id.clone(),
            scope: grant.scopes.join(" "),
            act: Actor { sub: grant.client_id.clone() },
            subject_type: grant.realm.kind.as_str().to_owned(),
            tenant: grant.tenant.tenant.id.to_string(),
            preferred_username,
            email,
        }
    }

    /// Signs `claims` with the tenant's active key: the token response.
    pub fn sign(&self, grant: &Grant, claims: Claims) -> IssuedToken {
        let access_token = jwt::sign_claims(&grant.tenant.active_key, &claims);
        let response = TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: grant.ttl as u64,
            scope: claims.scope.clone(),
        };
        IssuedToken { response, claims }
    }
}

impl TokenService {
    /// RFC 7662: the state of `token` for an authenticated client of the
    /// realm's tenant. Active only when the signature verifies, it was
    /// issued by this realm, has not expired or been revoked, and its
    /// client and subject are still enabled.
    pub async fn introspect(
        &self,
        realm: &RealmPath,
        credentials: &Credentials,
        token: Option<&str>,
        now: UnixTime,
    ) -> Result<IntrospectionResponse, OAuthError> {
        let tenant = self.tenant(realm)?;
        self.authenticate(&tenant, credentials, now)?;
        let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let inactive = IntrospectionResponse::default();
        let Some(claims) = self.live_claims(&tenant, realm, token, now) else { return Ok(inactive) };
        let client_enabled = tenant.clients.get(&claims.client_id).is_some_and(|c| c.enabled);
        if !client_enabled || !self.subject_enabled(&tenant, &claims).await? {
            return Ok(inactive);
        }
        Ok(IntrospectionResponse {
            active: true,
            username: claims.preferred_username.clone().or(claims.email.clone()),
            sub: Some(claims.sub),
            act: Some(claims.act),
            scope: Some(claims.scope),
            client_id: Some(claims.client_id),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            subject_type: Some(claims.subject_type),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            jti: Some(claims.jti),
            token_type: Some("Bearer".into()),
            tenant: Some(claims.tenant),
        })
    }

    /// RFC 7009: revokes `token` for the client it was issued to. Invalid
    /// or expired tokens need no revocation and succeed (§2.2).
    pub async fn revoke(
        &self,
        realm: &RealmPath,
        credentials: &Credentials,
        token: Option<&str>,
        now: UnixTime,
    ) -> Result<(), OAuthError> {
        let tenant = self.tenant(realm)?;
        let client = self.authenticate(&tenant, credentials, now)?;
        let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let Some(claims) = self.live_claims(&tenant, realm, token, now) else { return Ok(()) };
        // RFC 7009 §2.1: a client revokes only its own tokens.
        if claims.client_id != client.id {
            return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "the token was issued to another client"));
        }
        self.store.revoke_token(&tenant.tenant.id, &claims.jti, claims.exp).await.map_err(storage)?;
        tracing::info!(tenant = %tenant.tenant.id, client = %client.id, jti = %claims.jti, "token revoked");
        // RFC 7009 §2.2: the token is invalid once the revocation is
        // answered. This server reloads now rather than at its next poll
        // (other servers follow within SPEC §6's second).
        if let Err(e) = self.directory.refresh_if_changed().await {
            tracing::warn!(error = %e, "revocation stored; this server sees it at its next directory poll");
        }
        Ok(())
    }

    /// The claims of a token this realm issued that is still within its
    /// lifetime and not revoked.
    fn live_claims(&self, tenant: &TenantEntry, realm: &RealmPath, token: &str, now: UnixTime) -> Option<Claims> {
        let claims = jwt::verify_claims(token, |kid| tenant.key(kid).map(|k| &**k))?;
        let ours = claims.iss == realm.issuer(&self.base_url) && claims.tenant == tenant.tenant.id.as_str();
        (ours && claims.exp > now && !self.directory.is_revoked(&tenant.tenant.id, &claims.jti)).then_some(claims)
    }

    async fn subject_enabled(&self, tenant: &TenantEntry, claims: &Claims) -> Result<bool, OAuthError> {
        let t = &tenant.tenant.id;
        let enabled = match claims.subject_type.as_str() {
            "user" => self.store.user_by_id(t, &claims.sub).await.map_err(storage)?.map(|u| u.enabled),
            "customer" => self.store.customer_by_id(t, &claims.sub).await.map_err(storage)?.map(|c| c.enabled),
            _ => None,
        };
        Ok(enabled.unwrap_or(false))
    }
}

fn not_committed(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "audit record not committed; request answered 503");
    OAuthError::unavailable()
}

fn storage(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "storage failed during a token request");
    OAuthError::unavailable()
}

/// 128 random bits, base64url.
fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    B64.encode(bytes)
}

enum SubjectLookup<'a> {
    User { username: Option<&'a str>, userid: Option<&'a str> },
    Customer { email: &'a str },
}

impl SubjectLookup<'_> {
    fn given(&self) -> &str {
        match self {
            SubjectLookup::User { username: Some(u), .. } => u,
            SubjectLookup::User { userid: Some(id), .. } => id,
            SubjectLookup::User { .. } => "",
            SubjectLookup::Customer { email } => email,
        }
    }
}

/// SPEC §2: which subject parameters each realm takes.
fn subject_lookup<'a>(realm: &RealmPath, req: &'a TokenRequest) -> Result<SubjectLookup<'a>, OAuthError> {
    let other = |param: &str, kind: RealmKind| {
        let suffix = kind.suffix();
        OAuthError::invalid_request(format!(
            "{param} names a {}; request it from the {}-{suffix} token endpoint",
            kind.as_str(),
            realm.tenant
        ))
    };
    match realm.kind {
        RealmKind::User => {
            if req.subject_email.is_some() {
                return Err(other("subject_email", RealmKind::Customer));
            }
            let (username, userid) = (req.subject_username.as_deref(), req.subject_userid.as_deref());
            if username.is_none() && userid.is_none() {
                return Err(OAuthError::invalid_request("subject_username or subject_userid is required"));
            }
            Ok(SubjectLookup::User { username, userid })
        }
        RealmKind::Customer => {
            if req.subject_username.is_some() {
                return Err(other("subject_username", RealmKind::User));
            }
            if req.subject_userid.is_some() {
                return Err(other("subject_userid", RealmKind::User));
            }
            match req.subject_email.as_deref() {
                Some(email) => Ok(SubjectLookup::Customer { email }),
                None => Err(OAuthError::invalid_request("subject_email is required")),
            }
        }
    }
}

/// RFC 6749 §3.3: a space-separated set; every token must be a scope of the
/// tenant assigned to the client. Repeats count once; order is kept.
fn grant_scopes(tenant: &TenantEntry, client: &Client, scope: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let mut granted: Vec<String> = Vec::new();
    for token in scope.unwrap_or("").split(' ').filter(|t| !t.is_empty()) {
        let allowed =
            is_scope_token(token) && tenant.scope_names.contains(token) && client.scopes.iter().any(|s| s == token);
        if !allowed {
            let shown: String = token.chars().take(64).filter(|c| !c.is_control()).collect();
            return Err(OAuthError::invalid_scope(format!("scope {shown:?} is not available to this client")));
        }
        if !granted.iter().any(|g| g == token) {
            granted.push(token.to_owned());
        }
    }
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope("scope is required: a space-separated list of scopes"));
    }
    Ok(granted)
}
