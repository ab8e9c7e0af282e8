//! The provisioning file (SPEC §6): parsed, validated and turned into a
//! [`ProvisioningPlan`] whose secrets are already hashed. Rules that need
//! the database (a username taken by another user, a scope defined by an
//! earlier import) are checked by the store inside the import transaction.
//!
//! Fields a file leaves out are left alone on existing entities and take
//! their defaults on new ones, so a file that only lists users does not
//! reset its tenant's settings.

mod fast;

use crate::keys::SigningAlg;
use crate::model::{fold_case, RealmSet, Scope, TOKEN_TTL_RANGE};
use crate::secret::SecretHasher;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
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

/// The file's root. `T` is [`TenantFile`], or `toml::Value` when the file
/// is read again entry by entry to name the one that is wrong.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoot<T> {
    #[serde(default = "Vec::new")]
    tenants: Vec<T>,
}

/// A tenant as the file gives it. The entry types are parameters so that
/// the same fields can be read with every entry left a `toml::Value`
/// ([`TenantValues`]), each entry then deserialized on its own.
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(deny_unknown_fields)]
struct TenantFile<S = ScopeFile, C = ClientFile, U = UserFile, K = CustomerFile> {
    id: String,
    audience: Option<String>,
    token_ttl_seconds: Option<i64>,
    signing_alg: Option<String>,
    auto_provision_customers: Option<bool>,
    // `default = "Vec::new"`: plain `default` would ask S: Default.
    #[serde(default = "Vec::new")]
    scopes: Vec<S>,
    #[serde(default = "Vec::new")]
    clients: Vec<C>,
    #[serde(default = "Vec::new")]
    users: Vec<U>,
    #[serde(default = "Vec::new")]
    customers: Vec<K>,
}

type TenantValues = TenantFile<toml::Value, toml::Value, toml::Value, toml::Value>;

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    name: String,
    description: Option<String>,
}

// No Debug outside tests: it holds the secrets in clear.
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
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

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(deny_unknown_fields)]
struct UserFile {
    id: String,
    username: String,
    email: Option<String>,
    enabled: Option<bool>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(deny_unknown_fields)]
struct CustomerFile {
    email: String,
    id: Option<String>,
    enabled: Option<bool>,
    groups: Option<Vec<String>>,
}

/// Parses and validates a provisioning file.
///
/// Three readers, cheapest first; each one that gives up hands the file to
/// the next. The `fast` module reads the plain shape of generated files in
/// a fraction of the time and memory a toml document takes; the toml crate
/// then deserializes straight into the file's types; only a file that
/// refuses that is read as `toml::Value`s, entry by entry, the slow way
/// that names the entry at fault. Every reader accepts the same files with
/// the same result, and all errors come from the last one or from the
/// validation the three share, so they are the same whichever reader ran.
pub fn parse(text: &str, hasher: &SecretHasher) -> Result<ProvisioningPlan, ProvisionError> {
    let tenants = match fast::parse(text) {
        Some(tenants) => tenants,
        None => match toml::from_str::<FileRoot<TenantFile>>(text) {
            Ok(root) => root.tenants,
            Err(_) => return parse_entry_by_entry(text, hasher),
        },
    };
    let mut plan = Plans::with_capacity(tenants.len());
    for file in tenants {
        let label = format!("tenant {:?}", file.id);
        let tenant = build_tenant(file, &label, hasher)?;
        plan.push(tenant, &label)?;
    }
    Ok(plan.plan)
}

/// The slow reader: every entry deserialized on its own, so that an error
/// names it. Entries are validated in file order, the checks of earlier
/// entries before the deserialization of later ones.
fn parse_entry_by_entry(text: &str, hasher: &SecretHasher) -> Result<ProvisioningPlan, ProvisionError> {
    let root: FileRoot<toml::Value> =
        toml::from_str(text).map_err(|e| ProvisionError(format!("invalid provisioning file: {e}")))?;
    let mut plan = Plans::with_capacity(root.tenants.len());
    for (i, value) in root.tenants.into_iter().enumerate() {
        let label = match value.get("id").and_then(|v| v.as_str()) {
            Some(id) => format!("tenant {id:?}"),
            None => format!("tenants[{i}]"),
        };
        let values: TenantValues = entry(value, &label)?;
        let (file, failure) = deserialize_entries(values, &label);
        let tenant = build_tenant(file, &label, hasher)?;
        if let Some(e) = failure {
            return Err(e);
        }
        plan.push(tenant, &label)?;
    }
    Ok(plan.plan)
}

/// The plan being built, refusing a tenant given twice.
struct Plans {
    plan: ProvisioningPlan,
    seen: HashSet<TenantId>,
}

impl Plans {
    fn with_capacity(n: usize) -> Self {
        Plans { plan: ProvisioningPlan { tenants: Vec::with_capacity(n) }, seen: HashSet::with_capacity(n) }
    }

    fn push(&mut self, tenant: TenantPlan, label: &str) -> Result<(), ProvisionError> {
        if !self.seen.insert(tenant.id.clone()) {
            return err(&label, "appears twice in the file");
        }
        self.plan.tenants.push(tenant);
        Ok(())
    }
}

/// Deserializes a tenant's entries in file order up to the first that
/// fails, whose error is returned beside the entries before it: those come
/// first in the file, so their own errors take precedence.
fn deserialize_entries(t: TenantValues, label: &str) -> (TenantFile, Option<ProvisionError>) {
    let mut failure = None;
    let scopes = entries(t.scopes, label, "scope", "name", &mut failure);
    let clients = entries(t.clients, label, "client", "id", &mut failure);
    let users = entries(t.users, label, "user", "id", &mut failure);
    let customers = entries(t.customers, label, "customer", "email", &mut failure);
    let file = TenantFile {
        id: t.id,
        audience: t.audience,
        token_ttl_seconds: t.token_ttl_seconds,
        signing_alg: t.signing_alg,
        auto_provision_customers: t.auto_provision_customers,
        scopes,
        clients,
        users,
        customers,
    };
    (file, failure)
}

/// Deserializes `values` unless an earlier entry failed, stopping at the
/// first that fails.
fn entries<T: DeserializeOwned>(
    values: Vec<toml::Value>,
    tenant: &str,
    kind: &str,
    key: &str,
    failure: &mut Option<ProvisionError>,
) -> Vec<T> {
    let mut out = Vec::new();
    if failure.is_some() {
        return out;
    }
    out.reserve_exact(values.len());
    for value in values {
        let label = match value.get(key).and_then(|v| v.as_str()) {
            Some(k) => format!("{tenant} {kind} {k:?}"),
            None => format!("{tenant} {kind} without {key}"),
        };
        match entry(value, &label) {
            Ok(t) => out.push(t),
            Err(e) => {
                *failure = Some(e);
                break;
            }
        }
    }
    out
}

fn entry<T: DeserializeOwned>(value: toml::Value, label: &str) -> Result<T, ProvisionError> {
    value.try_into().map_err(|e: toml::de::Error| ProvisionError(format!("{label}: {}", e.message().trim())))
}

/// Names an entry in an error, `tenant "T" user "1001"`; formatted only
/// when there is an error, not for each of a million entries.
struct EntryLabel<'a> {
    tenant: &'a str,
    kind: &'static str,
    key: &'a str,
}

impl fmt::Display for EntryLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {:?}", self.tenant, self.kind, self.key)
    }
}

fn err<T>(label: &dyn fmt::Display, msg: impl fmt::Display) -> Result<T, ProvisionError> {
    Err(ProvisionError(format!("{label}: {msg}")))
}

fn ttl(label: &dyn fmt::Display, value: Option<i64>) -> Result<Option<u32>, ProvisionError> {
    match value {
        None => Ok(None),
        Some(v) if v >= *TOKEN_TTL_RANGE.start() as i64 && v <= *TOKEN_TTL_RANGE.end() as i64 => Ok(Some(v as u32)),
        Some(v) => err(
            label,
            format!("token_ttl_seconds = {v} is outside {}..={}", TOKEN_TTL_RANGE.start(), TOKEN_TTL_RANGE.end()),
        ),
    }
}

fn non_empty(label: &dyn fmt::Display, field: &str, value: &str) -> Result<(), ProvisionError> {
    if value.trim().is_empty() {
        return err(label, format!("{field} must not be empty"));
    }
    no_control(label, field, value)
}

fn no_control(label: &dyn fmt::Display, field: &str, value: &str) -> Result<(), ProvisionError> {
    if value.chars().any(char::is_control) {
        return err(label, format!("{field} must not contain control characters"));
    }
    Ok(())
}

/// Validates a tenant and its entries, in file order, and builds its plan.
fn build_tenant(file: TenantFile, label: &str, hasher: &SecretHasher) -> Result<TenantPlan, ProvisionError> {
    let Some(id) = TenantId::parse(&file.id) else {
        return err(&label, "tenant id must match [A-Za-z0-9_]{1,64}");
    };
    if let Some(aud) = &file.audience {
        non_empty(&label, "audience", aud)?;
    }
    let signing_alg = match file.signing_alg.as_deref() {
        None => None,
        Some(s) => match SigningAlg::parse(s) {
            Some(alg) => Some(alg),
            None => return err(&label, format!("signing_alg {s:?} is not one of ES256, RS256, EdDSA")),
        },
    };
    Ok(TenantPlan {
        id,
        audience: file.audience,
        token_ttl_seconds: ttl(&label, file.token_ttl_seconds)?,
        signing_alg,
        auto_provision_customers: file.auto_provision_customers,
        scopes: scopes(label, file.scopes)?,
        clients: clients(label, file.clients, hasher)?,
        users: users(label, file.users)?,
        customers: customers(label, file.customers)?,
    })
}

fn scopes(tenant: &str, list: Vec<ScopeFile>) -> Result<Vec<Scope>, ProvisionError> {
    let mut names = HashSet::with_capacity(list.len());
    let mut plans = Vec::with_capacity(list.len());
    for s in list {
        let l = EntryLabel { tenant, kind: "scope", key: &s.name };
        if !is_scope_token(&s.name) {
            return err(&l, "a scope name is one or more printable ASCII characters other than space, '\"' and '\\' (RFC 6749 §3.3)");
        }
        if !names.insert(s.name.clone()) {
            return err(&l, "appears twice in the file");
        }
        if let Some(d) = &s.description {
            no_control(&l, "description", d)?;
        }
        plans.push(Scope { name: s.name, description: s.description });
    }
    Ok(plans)
}

// Clients are few: one pass, and the set of ids may own its copies.
fn clients(tenant: &str, list: Vec<ClientFile>, hasher: &SecretHasher) -> Result<Vec<ClientPlan>, ProvisionError> {
    let mut ids = HashSet::with_capacity(list.len());
    let mut plans = Vec::with_capacity(list.len());
    for c in list {
        let l = EntryLabel { tenant, kind: "client", key: &c.id };
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
                check_secrets(&l, &list, c.allow_short_secret.unwrap_or(false))?;
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
        let token_ttl_seconds = ttl(&l, c.token_ttl_seconds)?;
        check_groups(&l, c.subject_groups.as_deref())?;
        check_groups(&l, c.deny_subject_groups.as_deref())?;
        plans.push(ClientPlan {
            id: c.id,
            name: c.name,
            secret_hashes,
            realms,
            scopes: c.scopes.map(dedup),
            token_ttl_seconds,
            enabled: c.enabled,
            subject_groups: c.subject_groups.map(dedup),
            deny_subject_groups: c.deny_subject_groups.map(dedup),
        });
    }
    Ok(plans)
}

fn check_secrets(label: &dyn fmt::Display, list: &[String], allow_short: bool) -> Result<(), ProvisionError> {
    if list.is_empty() || list.len() > 2 {
        return err(label, "a client holds one or two secrets");
    }
    for s in list {
        if s.is_empty() || s.chars().any(char::is_control) {
            return err(label, "a secret must not be empty or contain control characters");
        }
        if s.chars().count() < MIN_SECRET_CHARS && !allow_short {
            return err(
                label,
                format!(
                    "a secret has fewer than {MIN_SECRET_CHARS} characters; use a long random secret \
                     (or set allow_short_secret = true)"
                ),
            );
        }
    }
    Ok(())
}

// Users and customers can number millions: they are checked in place,
// their keys borrowed, and then moved into the plan.
fn users(tenant: &str, list: Vec<UserFile>) -> Result<Vec<UserPlan>, ProvisionError> {
    check_users(tenant, &list)?;
    let plans = list.into_iter().map(|u| UserPlan {
        id: u.id,
        username: u.username,
        email: u.email,
        enabled: u.enabled,
        groups: u.groups.map(dedup),
    });
    Ok(plans.collect())
}

fn check_users(tenant: &str, list: &[UserFile]) -> Result<(), ProvisionError> {
    let mut ids = Repeats::new(list.iter().map(|u| u.id.as_str()));
    let mut usernames = Repeats::new(list.iter().map(|u| folded(&u.username)));
    for u in list {
        let l = EntryLabel { tenant, kind: "user", key: &u.id };
        non_empty(&l, "id", &u.id)?;
        non_empty(&l, "username", &u.username)?;
        if let Some(email) = &u.email {
            if !is_valid_email(email) {
                return err(&l, format!("email {email:?} is not a valid email address"));
            }
        }
        if ids.repeated(|| u.id.as_str()) {
            return err(&l, "appears twice in the file");
        }
        if usernames.repeated(|| folded(&u.username)) {
            return err(&l, format!("username {:?} is used by another user in the file", u.username));
        }
        check_groups(&l, u.groups.as_deref())?;
    }
    Ok(())
}

fn customers(tenant: &str, list: Vec<CustomerFile>) -> Result<Vec<CustomerPlan>, ProvisionError> {
    check_customers(tenant, &list)?;
    let plans = list.into_iter().map(|c| CustomerPlan {
        email: c.email,
        id: c.id,
        enabled: c.enabled,
        groups: c.groups.map(dedup),
    });
    Ok(plans.collect())
}

fn check_customers(tenant: &str, list: &[CustomerFile]) -> Result<(), ProvisionError> {
    let mut emails = Repeats::new(list.iter().map(|c| folded(&c.email)));
    let mut ids = Repeats::new(list.iter().filter_map(|c| c.id.as_deref()));
    for c in list {
        let l = EntryLabel { tenant, kind: "customer", key: &c.email };
        if !is_valid_email(&c.email) {
            return err(&l, "email is not a valid email address");
        }
        if emails.repeated(|| folded(&c.email)) {
            return err(&l, "appears twice in the file (emails match case-insensitively)");
        }
        if let Some(id) = &c.id {
            non_empty(&l, "id", id)?;
            if ids.repeated(|| id.as_str()) {
                return err(&l, format!("customer id {id:?} is used by another customer in the file"));
            }
        }
        check_groups(&l, c.groups.as_deref())?;
    }
    Ok(())
}

/// Finds the entries whose key an earlier entry has. A set of a million
/// strings is slow to build (a cache miss or two per entry), so the keys'
/// hashes are sorted first: only when two are equal, which unequal keys
/// almost never are, is the set built to name the entry in file order.
struct Repeats<K> {
    seen: Option<HashSet<K>>,
}

impl<K: Hash + Eq> Repeats<K> {
    fn new(keys: impl Iterator<Item = K>) -> Self {
        let state = RandomState::new();
        let mut hashes: Vec<u64> = keys.map(|k| state.hash_one(k)).collect();
        hashes.sort_unstable();
        let may_repeat = hashes.windows(2).any(|w| w[0] == w[1]);
        Repeats { seen: may_repeat.then(|| HashSet::with_capacity(hashes.len())) }
    }

    /// Whether an earlier call had this key; `key` is only called when some
    /// hashes are equal.
    fn repeated(&mut self, key: impl FnOnce() -> K) -> bool {
        self.seen.as_mut().is_some_and(|seen| !seen.insert(key()))
    }
}

/// [`fold_case`], borrowed when `s` needs no folding, as most usernames and
/// emails do not: no allocation per entry.
fn folded(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(fold_case(s))
    }
}

/// Group names: non-empty, no control characters. [`dedup`] then keeps
/// each once.
fn check_groups(label: &dyn fmt::Display, list: Option<&[String]>) -> Result<(), ProvisionError> {
    for g in list.unwrap_or_default() {
        non_empty(label, "a group name", g)?;
    }
    Ok(())
}

/// Keeps the first of equal names, in order.
fn dedup(list: Vec<String>) -> Vec<String> {
    if list.len() < 2 {
        return list;
    }
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(list.len());
        list.iter().map(|s| seen.insert(s.as_str())).collect()
    };
    list.into_iter().zip(keep).filter_map(|(s, keep)| keep.then_some(s)).collect()
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
    fn earlier_entries_are_checked_before_later_ones_are_read() {
        // The bad email of user "1001" comes before the unknown field of
        // user "1002": the error is the email's, as when every entry was
        // read and checked in turn.
        let text = EXAMPLE.replace("email = \"pa@example.com\"", "email = \"nope\"")
            + "\n[[tenants.users]]\nid = \"1002\"\nusername = \"b\"\ncolour = 1\n";
        let e = parse(&text, &hasher()).unwrap_err().0;
        assert!(e.contains("user \"1001\"") && e.contains("nope"), "{e}");
        let text = text.replace("email = \"nope\"", "email = \"pa@example.com\"");
        let e = parse(&text, &hasher()).unwrap_err().0;
        assert!(e.contains("user \"1002\"") && e.contains("colour"), "{e}");
    }

    /// Mutants of the example (lines dropped, repeated, moved, replaced by
    /// odd ones): the fast readers and the entry-by-entry one agree on
    /// every plan and every error.
    #[test]
    fn all_readers_agree() {
        let hasher = hasher();
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let odd = [
            "[[tenants]]",
            "[[tenants.users]]",
            "[[tenants.customers]]",
            "[tenants]",
            "id = \"1001\"",
            "id = \"T2\"",
            "id = 7",
            "username = \"PA\"",
            "username = \"p\\u0041\"",
            "email = \"JANE@example.com\"",
            "email = \"x\"",
            "groups = [\"g\", \"g\"]",
            "groups = [\"\"]",
            "enabled = \"yes\"",
            "colour = 1",
            "token_ttl_seconds = 1_000",
            "token_ttl_seconds = 10",
            "name = 'literal'",
            "secrets = [\"short\", \"also-short\"]",
            "allow_short_secret = true",
            "a.b = 1",
            "= 1",
            "# comment",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..1000 {
            let mut mutant = lines.clone();
            for _ in 0..1 + next(3) {
                let at = next(mutant.len());
                match next(4) {
                    0 => drop(mutant.remove(at)),
                    1 => {
                        let line = mutant[next(mutant.len())];
                        mutant.insert(at, line);
                    }
                    2 => mutant.insert(at, odd[next(odd.len())]),
                    _ => {
                        let other = next(mutant.len());
                        mutant.swap(at, other);
                    }
                }
            }
            let text = mutant.join("\n");
            assert_eq!(parse(&text, &hasher), parse_entry_by_entry(&text, &hasher), "{text}");
        }
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
