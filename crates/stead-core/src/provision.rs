//! The provisioning file (SPEC §6): parsed, validated and turned into a
//! [`ProvisioningPlan`] whose secrets are already hashed. Rules that need
//! the database (a username taken by another user, a scope defined by an
//! earlier import) are checked by the store inside the import transaction.
//!
//! Fields a file leaves out are left alone on existing entities and take
//! their defaults on new ones, so a file that only lists users does not
//! reset its tenant's settings.

use crate::keys::SigningAlg;
use crate::model::{fold_case, RealmSet, Scope, TOKEN_TTL_RANGE};
use crate::secret::SecretHasher;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashSet;
use stead_proto::{RealmKind, TenantId};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProvisioningPlan {
    pub tenants: Vec<TenantPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPlan {
    pub id: TenantId,
    pub audience: Option<String>,
    pub token_ttl_seconds: Option<u32>,
    pub signing_alg: Option<SigningAlg>,
    pub auto_provision_customers: Option<bool>,
    pub scopes: Vec<Scope>,
    pub clients: Vec<ClientPlan>,
    pub users: Vec<UserPlan>,
    pub customers: Vec<CustomerPlan>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ClientPlan {
    pub id: String,
    pub name: Option<String>,
    pub secret_hashes: Option<Vec<[u8; 32]>>,
    pub realms: Option<RealmSet>,
    pub scopes: Option<Vec<String>>,
    pub token_ttl_seconds: Option<u32>,
    pub enabled: Option<bool>,
    pub subject_groups: Option<Vec<String>>,
    pub deny_subject_groups: Option<Vec<String>>,
}

impl std::fmt::Debug for ClientPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPlan").field("id", &self.id).field("realms", &self.realms).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPlan {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub enabled: Option<bool>,
    pub groups: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerPlan {
    pub email: String,
    pub id: Option<String>,
    pub enabled: Option<bool>,
    pub groups: Option<Vec<String>>,
}

/// Imported secrets shorter than this are refused unless the client sets
/// `allow_short_secret`: the pepper stops offline guessing only while it
/// stays secret, the secret's own entropy is the last line.
pub const MIN_SECRET_CHARS: usize = 32;

/// A provisioning file was refused; the message names the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProvisionError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoot {
    #[serde(default)]
    tenants: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    id: String,
    audience: Option<String>,
    token_ttl_seconds: Option<i64>,
    signing_alg: Option<String>,
    auto_provision_customers: Option<bool>,
    #[serde(default)]
    scopes: Vec<toml::Value>,
    #[serde(default)]
    clients: Vec<toml::Value>,
    #[serde(default)]
    users: Vec<toml::Value>,
    #[serde(default)]
    customers: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    name: String,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    id: String,
    name: Option<String>,
    secret: Option<String>,
    secrets: Option<Vec<String>>,
    allow_short_secret: Option<bool>,
    realms: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    token_ttl_seconds: Option<i64>,
    enabled: Option<bool>,
    subject_groups: Option<Vec<String>>,
    deny_subject_groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    id: String,
    username: String,
    email: Option<String>,
    enabled: Option<bool>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerFile {
    email: String,
    id: Option<String>,
    enabled: Option<bool>,
    groups: Option<Vec<String>>,
}

/// Parses and validates a provisioning file.
pub fn parse(text: &str, hasher: &SecretHasher) -> Result<ProvisioningPlan, ProvisionError> {
    let root: FileRoot = toml::from_str(text).map_err(|e| ProvisionError(format!("invalid provisioning file: {e}")))?;
    let mut seen_tenants = HashSet::new();
    let mut plan = ProvisioningPlan::default();
    for (i, value) in root.tenants.into_iter().enumerate() {
        let label = match value.get("id").and_then(|v| v.as_str()) {
            Some(id) => format!("tenant {id:?}"),
            None => format!("tenants[{i}]"),
        };
        let file: TenantFile = entry(value, &label)?;
        let tenant = parse_tenant(file, &label, hasher)?;
        if !seen_tenants.insert(tenant.id.clone()) {
            return Err(ProvisionError(format!("{label}: appears twice in the file")));
        }
        plan.tenants.push(tenant);
    }
    Ok(plan)
}

fn entry<T: DeserializeOwned>(value: toml::Value, label: &str) -> Result<T, ProvisionError> {
    value.try_into().map_err(|e: toml::de::Error| ProvisionError(format!("{label}: {}", e.message().trim())))
}

fn err<T>(label: &str, msg: impl std::fmt::Display) -> Result<T, ProvisionError> {
    Err(ProvisionError(format!("{label}: {msg}")))
}

fn ttl(label: &str, value: Option<i64>) -> Result<Option<u32>, ProvisionError> {
    match value {
        None => Ok(None),
        Some(v) if v >= *TOKEN_TTL_RANGE.start() as i64 && v <= *TOKEN_TTL_RANGE.end() as i64 => Ok(Some(v as u32)),
        Some(v) => err(
            label,
            format!("token_ttl_seconds = {v} is outside {}..={}", TOKEN_TTL_RANGE.start(), TOKEN_TTL_RANGE.end()),
        ),
    }
}

fn non_empty(label: &str, field: &str, value: &str) -> Result<(), ProvisionError> {
    if value.trim().is_empty() {
        return err(label, format!("{field} must not be empty"));
    }
    if value.chars().any(char::is_control) {
        return err(label, format!("{field} must not contain control characters"));
    }
    Ok(())
}

fn no_control(label: &str, field: &str, value: &str) -> Result<(), ProvisionError> {
    if value.chars().any(char::is_control) {
        return err(label, format!("{field} must not contain control characters"));
    }
    Ok(())
}

fn parse_tenant(file: TenantFile, label: &str, hasher: &SecretHasher) -> Result<TenantPlan, ProvisionError> {
    let Some(id) = TenantId::parse(&file.id) else {
        return err(label, "tenant id must match [A-Za-z0-9_]{1,64}");
    };
    if let Some(aud) = &file.audience {
        non_empty(label, "audience", aud)?;
    }
    let signing_alg = match file.signing_alg.as_deref() {
        None => None,
        Some(s) => match SigningAlg::parse(s) {
            Some(alg) => Some(alg),
            None => return err(label, format!("signing_alg {s:?} is not one of ES256, RS256, EdDSA")),
        },
    };
    let mut plan = TenantPlan {
        id,
        audience: file.audience,
        token_ttl_seconds: ttl(label, file.token_ttl_seconds)?,
        signing_alg,
        auto_provision_customers: file.auto_provision_customers,
        scopes: Vec::new(),
        clients: Vec::new(),
        users: Vec::new(),
        customers: Vec::new(),
    };

    let mut names = HashSet::new();
    for value in file.scopes {
        let l = sub_label(label, "scope", &value, "name");
        let s: ScopeFile = entry(value, &l)?;
        if !is_scope_token(&s.name) {
            return err(&l, "a scope name is one or more printable ASCII characters other than space, '\"' and '\\' (RFC 6749 §3.3)");
        }
        if !names.insert(s.name.clone()) {
            return err(&l, "appears twice in the file");
        }
        if let Some(d) = &s.description {
            no_control(&l, "description", d)?;
        }
        plan.scopes.push(Scope { name: s.name, description: s.description });
    }

    let mut ids = HashSet::new();
    for value in file.clients {
        let l = sub_label(label, "client", &value, "id");
        let c: ClientFile = entry(value, &l)?;
        non_empty(&l, "id", &c.id)?;
        if let Some(name) = &c.name {
            no_control(&l, "name", name)?;
        }
        if !ids.insert(c.id.clone()) {
            return err(&l, "appears twice in the file");
        }
        let secrets = match (c.secret, c.secrets) {
            (Some(_), Some(_)) => return err(&l, "give either secret or secrets, not both"),
            (Some(one), None) => Some(vec![one]),
            (None, many) => many,
        };
        let secret_hashes = match secrets {
            None => None,
            Some(list) => {
                if list.is_empty() || list.len() > 2 {
                    return err(&l, "a client holds one or two secrets");
                }
                let allow_short = c.allow_short_secret.unwrap_or(false);
                for s in &list {
                    if s.is_empty() || s.chars().any(char::is_control) {
                        return err(&l, "a secret must not be empty or contain control characters");
                    }
                    if s.chars().count() < MIN_SECRET_CHARS && !allow_short {
                        return err(
                            &l,
                            format!(
                                "a secret has fewer than {MIN_SECRET_CHARS} characters; use a long random secret \
                                 (or set allow_short_secret = true)"
                            ),
                        );
                    }
                }
                Some(list.iter().map(|s| hasher.hash(s)).collect())
            }
        };
        let realms = match c.realms {
            None => None,
            Some(names) => {
                let mut set = RealmSet::default();
                for n in names {
                    match RealmKind::parse_name(&n) {
                        Some(k) => set.insert(k),
                        None => return err(&l, format!("realm {n:?} is not \"user\" or \"customer\"")),
                    }
                }
                Some(set)
            }
        };
        if let Some(scopes) = &c.scopes {
            if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
                return err(&l, format!("scope {bad:?} is not a valid scope name"));
            }
        }
        plan.clients.push(ClientPlan {
            id: c.id,
            name: c.name,
            secret_hashes,
            realms,
            scopes: c.scopes.map(dedup),
            token_ttl_seconds: ttl(&l, c.token_ttl_seconds)?,
            enabled: c.enabled,
            subject_groups: groups(&l, c.subject_groups)?,
            deny_subject_groups: groups(&l, c.deny_subject_groups)?,
        });
    }

    let (mut ids, mut usernames) = (HashSet::new(), HashSet::new());
    for value in file.users {
        let l = sub_label(label, "user", &value, "id");
        let u: UserFile = entry(value, &l)?;
        non_empty(&l, "id", &u.id)?;
        non_empty(&l, "username", &u.username)?;
        if let Some(email) = &u.email {
            if !is_valid_email(email) {
                return err(&l, format!("email {email:?} is not a valid email address"));
            }
        }
        if !ids.insert(u.id.clone()) {
            return err(&l, "appears twice in the file");
        }
        if !usernames.insert(fold_case(&u.username)) {
            return err(&l, format!("username {:?} is used by another user in the file", u.username));
        }
        let groups = groups(&l, u.groups)?;
        plan.users.push(UserPlan { id: u.id, username: u.username, email: u.email, enabled: u.enabled, groups });
    }

    let (mut emails, mut ids) = (HashSet::new(), HashSet::new());
    for value in file.customers {
        let l = sub_label(label, "customer", &value, "email");
        let c: CustomerFile = entry(value, &l)?;
        if !is_valid_email(&c.email) {
            return err(&l, "email is not a valid email address");
        }
        if !emails.insert(fold_case(&c.email)) {
            return err(&l, "appears twice in the file (emails match case-insensitively)");
        }
        if let Some(id) = &c.id {
            non_empty(&l, "id", id)?;
            if !ids.insert(id.clone()) {
                return err(&l, format!("customer id {id:?} is used by another customer in the file"));
            }
        }
        let groups = groups(&l, c.groups)?;
        plan.customers.push(CustomerPlan { email: c.email, id: c.id, enabled: c.enabled, groups });
    }
    Ok(plan)
}

fn sub_label(tenant: &str, kind: &str, value: &toml::Value, key: &str) -> String {
    match value.get(key).and_then(|v| v.as_str()) {
        Some(k) => format!("{tenant} {kind} {k:?}"),
        None => format!("{tenant} {kind} without {key}"),
    }
}

/// Group names: non-empty, no control characters, each once.
fn groups(label: &str, list: Option<Vec<String>>) -> Result<Option<Vec<String>>, ProvisionError> {
    let Some(list) = list else { return Ok(None) };
    for g in &list {
        non_empty(label, "a group name", g)?;
    }
    Ok(Some(dedup(list)))
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    list.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// A pragmatic email check: `local@domain`, no spaces or control
/// characters, a dot in the domain, at most 254 characters.
pub fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !local.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == ',' || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> SecretHasher {
        SecretHasher::new(&crate::MasterKey::generate().unwrap())
    }

    const EXAMPLE: &str = r#"
[[tenants]]
id = "TMPRODB88619984"
audience = "https://api.example.com"
token_ttl_seconds = 3600
signing_alg = "ES256"
auto_provision_customers = false

[[tenants.scopes]]
name = "knowledge.portalmgr.onbehalfof.read"
description = "Read portal content on behalf of a user"

[[tenants.clients]]
id = "7121f585-e403-4531-9a38-1826ebc7e7d8"
name = "Portal sync job"
secret = "use-a-long-random-secret-of-32+-characters"
realms = ["user", "customer"]
scopes = ["knowledge.portalmgr.onbehalfof.read"]
token_ttl_seconds = 900
enabled = true

[[tenants.users]]
id = "1001"
username = "pa"
email = "pa@example.com"
enabled = true

[[tenants.customers]]
email = "jane@example.com"
id = "c-42"
enabled = true
"#;

    #[test]
    fn parses_the_spec_example() {
        let plan = parse(EXAMPLE, &hasher()).unwrap();
        let t = &plan.tenants[0];
        assert_eq!(t.id.as_str(), "TMPRODB88619984");
        assert_eq!(t.clients[0].realms, Some(RealmSet { user: true, customer: true }));
        assert_eq!(t.clients[0].token_ttl_seconds, Some(900));
        assert_eq!(t.users[0].username, "pa");
        assert_eq!(t.customers[0].id.as_deref(), Some("c-42"));
        assert!(!format!("{plan:?}").contains("use-a-long"));
    }

    #[test]
    fn names_the_entry_with_an_unknown_field() {
        let text = EXAMPLE.replace("name = \"Portal sync job\"", "name = \"x\"\ncolour = \"red\"");
        let e = parse(&text, &hasher()).unwrap_err().0;
        assert!(e.contains("client \"7121f585-e403-4531-9a38-1826ebc7e7d8\""), "{e}");
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn refuses_broken_rules() {
        let cases = [
            (EXAMPLE.replace("token_ttl_seconds = 900", "token_ttl_seconds = 59"), "token_ttl_seconds"),
            (EXAMPLE.replace("signing_alg = \"ES256\"", "signing_alg = \"HS256\""), "signing_alg"),
            (EXAMPLE.replace("realms = [\"user\", \"customer\"]", "realms = [\"admin\"]"), "realm"),
            (EXAMPLE.replace("id = \"TMPRODB88619984\"", "id = \"bad-id\""), "tenant id"),
            (EXAMPLE.replace("email = \"jane@example.com\"", "email = \"not-an-email\""), "email"),
            (format!("{EXAMPLE}\n[[tenants.users]]\nid = \"1002\"\nusername = \"PA\"\n"), "username"),
            (format!("{EXAMPLE}\n[[tenants.customers]]\nemail = \"JANE@example.com\"\n"), "twice"),
            ("[[tenants]]\nid = \"A\"\n[[tenants]]\nid = \"A\"\n".to_string(), "twice"),
            ("tenants = 3".to_string(), "invalid"),
            ("unknown = 1".to_string(), "unknown"),
            (EXAMPLE.replace("use-a-long-random-secret-of-32+-characters", "short"), "fewer than 32"),
            (
                EXAMPLE.replace("secret = \"use-a-long", "secrets = []\nsecret = \"use-a-long"),
                "either secret or secrets",
            ),
        ];
        for (text, needle) in cases {
            let e = parse(&text, &hasher()).unwrap_err().0;
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn short_secrets_need_an_explicit_opt_in_and_groups_parse() {
        let text = EXAMPLE
            .replace("use-a-long-random-secret-of-32+-characters", "short")
            .replace("enabled = true\n\n[[tenants.users]]", "enabled = true\nallow_short_secret = true\nsubject_groups = [\"staff\"]\ndeny_subject_groups = [\"admins\"]\n\n[[tenants.users]]")
            .replace("email = \"pa@example.com\"", "email = \"pa@example.com\"\ngroups = [\"staff\", \"staff\"]");
        let plan = parse(&text, &hasher()).unwrap();
        let t = &plan.tenants[0];
        assert_eq!(t.clients[0].subject_groups, Some(vec!["staff".to_string()]));
        assert_eq!(t.clients[0].deny_subject_groups, Some(vec!["admins".to_string()]));
        assert_eq!(t.users[0].groups, Some(vec!["staff".to_string()]));
        let two = EXAMPLE.replace(
            "secret = \"use-a-long-random-secret-of-32+-characters\"",
            "secrets = [\"use-a-long-random-secret-of-32+-characters\", \"another-long-random-secret-of-32+-chars\"]",
        );
        assert_eq!(parse(&two, &hasher()).unwrap().tenants[0].clients[0].secret_hashes.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn checks_emails_and_scope_tokens() {
        assert!(is_valid_email("a.b+c@example.co.uk"));
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b..c", "a@.b.c"] {
            assert!(!is_valid_email(bad), "{bad}");
        }
        assert!(is_scope_token("knowledge.portalmgr.onbehalfof.read"));
        assert!(!is_scope_token("a b") && !is_scope_token("") && !is_scope_token("a\"b") && !is_scope_token("é"));
    }
}
