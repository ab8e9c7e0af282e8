//! Tenants and realms as they appear in URLs (SPEC §1).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which kind of subject a realm issues tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RealmKind {
    /// `{tenant}-U`: staff users, by username or user id.
    User,
    /// `{tenant}-C`: customers, by email.
    Customer,
}

impl RealmKind {
    pub fn suffix(self) -> &'static str {
        match self {
            RealmKind::User => "U",
            RealmKind::Customer => "C",
        }
    }

    /// The name used in the provisioning file and in the `subject_type` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            RealmKind::User => "user",
            RealmKind::Customer => "customer",
        }
    }

    pub fn parse_name(name: &str) -> Option<Self> {
        match name {
            "user" => Some(RealmKind::User),
            "customer" => Some(RealmKind::Customer),
            _ => None,
        }
    }
}

/// A tenant id: `[A-Za-z0-9_]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Option<Self> {
        let valid = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        valid.then(|| TenantId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        TenantId::parse(&s).ok_or_else(|| format!("tenant id {s:?} must match [A-Za-z0-9_]{{1,64}}"))
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The realm segment of a URL, `{tenant}-U` or `{tenant}-C`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RealmPath {
    pub tenant: TenantId,
    pub kind: RealmKind,
}

impl RealmPath {
    pub fn new(tenant: TenantId, kind: RealmKind) -> Self {
        RealmPath { tenant, kind }
    }

    /// Parses `TMPRODB88619984-U`. Anything else is `None`.
    pub fn parse(segment: &str) -> Option<Self> {
        let (tenant, suffix) = segment.rsplit_once('-')?;
        let kind = match suffix {
            "U" => RealmKind::User,
            "C" => RealmKind::Customer,
            _ => return None,
        };
        Some(RealmPath { tenant: TenantId::parse(tenant)?, kind })
    }

    /// The issuer of this realm under `base` (no trailing slash).
    pub fn issuer(&self, base: &str) -> String {
        format!("{base}/system/auth/{self}")
    }
}

impl fmt::Display for RealmPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.tenant, self.kind.suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_realms_and_rejects_others() {
        let u = RealmPath::parse("TMPRODB88619984-U").unwrap();
        assert_eq!(u.tenant.as_str(), "TMPRODB88619984");
        assert_eq!(u.kind, RealmKind::User);
        assert_eq!(RealmPath::parse("a_b-C").unwrap().kind, RealmKind::Customer);
        for bad in ["T-X", "T", "-U", "T-u", "bad tenant-U", "T-U-", &format!("{}-U", "a".repeat(65))] {
            assert!(RealmPath::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(RealmPath::parse("a-b-U"), None, "a dash is not a tenant character");
    }
}
