//! The entities of a tenant.

use crate::keys::SigningAlg;
use stead_proto::{RealmKind, TenantId};

/// Token lifetime when neither the client nor its tenant sets one.
pub const DEFAULT_TOKEN_TTL: u32 = 3600;
/// Bounds of `token_ttl_seconds` (SPEC §6).
pub const TOKEN_TTL_RANGE: std::ops::RangeInclusive<u32> = 60..=86400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    /// `aud` of its tokens; the tenant id when not set (SPEC §4).
    pub audience: Option<String>,
    pub token_ttl_seconds: Option<u32>,
    pub signing_alg: SigningAlg,
    pub auto_provision_customers: bool,
}

impl Tenant {
    pub fn audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(self.id.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub name: String,
    pub description: Option<String>,
}

/// Which realms a client may act in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RealmSet {
    pub user: bool,
    pub customer: bool,
}

impl RealmSet {
    pub fn contains(self, kind: RealmKind) -> bool {
        match kind {
            RealmKind::User => self.user,
            RealmKind::Customer => self.customer,
        }
    }

    pub fn insert(&mut self, kind: RealmKind) {
        match kind {
            RealmKind::User => self.user = true,
            RealmKind::Customer => self.customer = true,
        }
    }

    pub fn names(self) -> Vec<&'static str> {
        [RealmKind::User, RealmKind::Customer]
            .into_iter()
            .filter(|k| self.contains(*k))
            .map(RealmKind::as_str)
            .collect()
    }
}

/// One secret of a client, held only as a keyed hash (see `secret.rs`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret {
    /// HMAC-SHA-256 of the secret under the pepper.
    pub hash: [u8; 32],
    pub created_at: i64,
    /// After a rotation the old secret stays valid until then.
    pub expires_at: Option<i64>,
}

impl ClientSecret {
    pub fn new(hash: [u8; 32], created_at: i64) -> Self {
        ClientSecret { hash, created_at, expires_at: None }
    }

    pub fn is_active(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// A confidential client.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: Option<String>,
    /// Its secrets; two during a rotation's overlap.
    pub secrets: Vec<ClientSecret>,
    pub realms: RealmSet,
    pub scopes: Vec<String>,
    pub token_ttl_seconds: Option<u32>,
    pub enabled: bool,
    /// When set, the client may act only for subjects in one of these groups.
    pub subject_groups: Option<Vec<String>>,
    /// The client may never act for subjects in these groups.
    pub deny_subject_groups: Vec<String>,
}

impl Client {
    /// Whether this client may act for a subject with these groups.
    pub fn may_act_for(&self, groups: &[String]) -> bool {
        let allowed = match &self.subject_groups {
            None => true,
            Some(allowed) => groups.iter().any(|g| allowed.contains(g)),
        };
        allowed && !groups.iter().any(|g| self.deny_subject_groups.contains(g))
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .field("realms", &self.realms)
            .field("scopes", &self.scopes)
            .field("token_ttl_seconds", &self.token_ttl_seconds)
            .field("enabled", &self.enabled)
            .field("subject_groups", &self.subject_groups)
            .field("deny_subject_groups", &self.deny_subject_groups)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub enabled: bool,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub enabled: bool,
    pub groups: Vec<String>,
}

/// The identity a token is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(User),
    Customer(Customer),
}

impl Subject {
    pub fn id(&self) -> &str {
        match self {
            Subject::User(u) => &u.id,
            Subject::Customer(c) => &c.id,
        }
    }

    pub fn enabled(&self) -> bool {
        match self {
            Subject::User(u) => u.enabled,
            Subject::Customer(c) => c.enabled,
        }
    }

    pub fn groups(&self) -> &[String] {
        match self {
            Subject::User(u) => &u.groups,
            Subject::Customer(c) => &c.groups,
        }
    }
}

/// Case folding for usernames and emails, which match case-insensitively
/// (SPEC §2). Storage indexes the folded form.
pub fn fold_case(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

/// A random identifier in UUID v4 form, for generated customer ids.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
