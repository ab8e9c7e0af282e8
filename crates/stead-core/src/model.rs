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

/// A confidential client. Its secret is held only as a keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: Option<String>,
    /// HMAC-SHA-256 of each active secret (see `secret.rs`).
    pub secret_hashes: Vec<[u8; 32]>,
    pub realms: RealmSet,
    pub scopes: Vec<String>,
    pub token_ttl_seconds: Option<u32>,
    pub enabled: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret_hashes", &format_args!("[{} redacted]", self.secret_hashes.len()))
            .field("realms", &self.realms)
            .field("scopes", &self.scopes)
            .field("token_ttl_seconds", &self.token_ttl_seconds)
            .field("enabled", &self.enabled)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub enabled: bool,
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
