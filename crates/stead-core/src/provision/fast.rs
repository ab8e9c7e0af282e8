//! A fast reader for provisioning files of the plain shape that tools
//! generate and most people write: `[[tenants]]` and `[[tenants.KIND]]`
//! headers, one `key = value` per line, values that are strings without
//! escapes, decimal integers, booleans or one-line arrays of such strings,
//! and comments. It reads a million users in a fraction of a second and
//! without building a document, where the toml crate takes seconds and a
//! gigabyte or more.
//!
//! It never refuses a file: at the first thing outside that shape (an
//! escape, a dotted or quoted key, a multi-line value, an unknown or
//! repeated key, a missing field, a value of the wrong type, …) it gives
//! up and the toml crate reads the whole file. So which files are accepted,
//! and every error message, stay the toml crate's; what this reader
//! accepts, it reads exactly as the toml crate would.

use super::{ClientFile, CustomerFile, ScopeFile, TenantFile, UserFile};

/// The tenants of `text`, or `None` when the toml crate must read it.
pub(super) fn parse(text: &str) -> Option<Vec<TenantFile>> {
    let mut doc = Doc::default();
    // TOML's newlines are LF and CRLF; a CR anywhere else fails below.
    for line in text.split('\n') {
        let line = trim_ws(line.strip_suffix('\r').unwrap_or(line));
        match line.as_bytes().first() {
            None => {}
            Some(b'#') => comment(&line[1..])?,
            Some(b'[') => doc.header(line)?,
            Some(_) => doc.key_value(line)?,
        }
    }
    doc.close()?;
    Some(doc.tenants)
}

/// The table that `key = value` lines go to.
#[derive(Default, Clone, Copy)]
enum Table {
    /// Before the first header; the only root key, `tenants`, is left to toml.
    #[default]
    Root,
    Tenant,
    Scope,
    Client,
    User,
    Customer,
}

#[derive(Default)]
struct Doc {
    tenants: Vec<TenantFile>,
    table: Table,
    /// The fields set in the current table, one bit per `Fields::KEYS` index.
    seen: u32,
}

impl Doc {
    /// Opens the table of a `[[…]]` header: a new tenant, or a new entry of
    /// the last tenant.
    fn header(&mut self, line: &str) -> Option<()> {
        let (header, rest) = line.split_once("]]")?;
        end_of_line(rest)?;
        let table = match header {
            "[[tenants" => Table::Tenant,
            "[[tenants.scopes" => Table::Scope,
            "[[tenants.clients" => Table::Client,
            "[[tenants.users" => Table::User,
            "[[tenants.customers" => Table::Customer,
            _ => return None,
        };
        self.close()?;
        if let Table::Tenant = table {
            self.tenants.push(TenantFile::default());
        } else {
            // An entry before any tenant makes `tenants` a table, not an array.
            let tenant = self.tenants.last_mut()?;
            match table {
                Table::Scope => tenant.scopes.push(ScopeFile::default()),
                Table::Client => tenant.clients.push(ClientFile::default()),
                Table::User => tenant.users.push(UserFile::default()),
                Table::Customer => tenant.customers.push(CustomerFile::default()),
                Table::Root | Table::Tenant => return None,
            }
        }
        self.table = table;
        self.seen = 0;
        Some(())
    }

    /// Leaves the current table, which must hold its required fields.
    fn close(&self) -> Option<()> {
        let required = match self.table {
            Table::Root => 0,
            Table::Tenant => TenantFile::REQUIRED,
            Table::Scope => ScopeFile::REQUIRED,
            Table::Client => ClientFile::REQUIRED,
            Table::User => UserFile::REQUIRED,
            Table::Customer => CustomerFile::REQUIRED,
        };
        let mask = (1u32 << required) - 1;
        (self.seen & mask == mask).then_some(())
    }

    fn key_value(&mut self, line: &str) -> Option<()> {
        let (key, rest) = key(line)?;
        let (value, rest) = value(rest)?;
        end_of_line(rest)?;
        let tenant = self.tenants.last_mut();
        let seen = &mut self.seen;
        match self.table {
            Table::Root => None,
            Table::Tenant => set(tenant?, key, value, seen),
            Table::Scope => set(tenant?.scopes.last_mut()?, key, value, seen),
            Table::Client => set(tenant?.clients.last_mut()?, key, value, seen),
            Table::User => set(tenant?.users.last_mut()?, key, value, seen),
            Table::Customer => set(tenant?.customers.last_mut()?, key, value, seen),
        }
    }
}

/// Sets a field not set before in this table.
fn set<T: Fields>(entry: &mut T, key: &str, value: Value<'_>, seen: &mut u32) -> Option<()> {
    let i = T::KEYS.iter().position(|k| *k == key)?;
    let bit = 1u32 << i;
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    entry.set(i, value)
}

/// The fields of a table, as its `#[derive(Deserialize)]` knows them.
trait Fields {
    /// Field names, the required ones first.
    const KEYS: &'static [&'static str];
    /// How many of `KEYS` are required.
    const REQUIRED: usize;
    /// Sets field `KEYS[i]`; `None` if `value` is not of its type.
    fn set(&mut self, i: usize, value: Value<'_>) -> Option<()>;
}

impl Fields for TenantFile {
    const KEYS: &'static [&'static str] =
        &["id", "audience", "token_ttl_seconds", "signing_alg", "auto_provision_customers"];
    const REQUIRED: usize = 1;
    fn set(&mut self, i: usize, value: Value<'_>) -> Option<()> {
        match i {
            0 => self.id = value.string()?,
            1 => self.audience = Some(value.string()?),
            2 => self.token_ttl_seconds = Some(value.integer()?),
            3 => self.signing_alg = Some(value.string()?),
            4 => self.auto_provision_customers = Some(value.boolean()?),
            _ => return None,
        }
        Some(())
    }
}

impl Fields for ScopeFile {
    const KEYS: &'static [&'static str] = &["name", "description"];
    const REQUIRED: usize = 1;
    fn set(&mut self, i: usize, value: Value<'_>) -> Option<()> {
        match i {
            0 => self.name = value.string()?,
            1 => self.description = Some(value.string()?),
            _ => return None,
        }
        Some(())
    }
}

impl Fields for ClientFile {
    const KEYS: &'static [&'static str] = &[
        "id",
        "name",
        "secret",
        "secrets",
        "allow_short_secret",
        "realms",
        "scopes",
        "token_ttl_seconds",
        "enabled",
        "subject_groups",
        "deny_subject_groups",
    ];
    const REQUIRED: usize = 1;
    fn set(&mut self, i: usize, value: Value<'_>) -> Option<()> {
        match i {
            0 => self.id = value.string()?,
            1 => self.name = Some(value.string()?),
            2 => self.secret = Some(value.string()?),
            3 => self.secrets = Some(value.strings()?),
            4 => self.allow_short_secret = Some(value.boolean()?),
            5 => self.realms = Some(value.strings()?),
            6 => self.scopes = Some(value.strings()?),
            7 => self.token_ttl_seconds = Some(value.integer()?),
            8 => self.enabled = Some(value.boolean()?),
            9 => self.subject_groups = Some(value.strings()?),
            10 => self.deny_subject_groups = Some(value.strings()?),
            _ => return None,
        }
        Some(())
    }
}

impl Fields for UserFile {
    const KEYS: &'static [&'static str] = &["id", "username", "email", "enabled", "groups"];
    const REQUIRED: usize = 2;
    fn set(&mut self, i: usize, value: Value<'_>) -> Option<()> {
        match i {
            0 => self.id = value.string()?,
            1 => self.username = value.string()?,
            2 => self.email = Some(value.string()?),
            3 => self.enabled = Some(value.boolean()?),
            4 => self.groups = Some(value.strings()?),
            _ => return None,
        }
        Some(())
    }
}

impl Fields for CustomerFile {
    const KEYS: &'static [&'static str] = &["email", "id", "enabled", "groups"];
    const REQUIRED: usize = 1;
    fn set(&mut self, i: usize, value: Value<'_>) -> Option<()> {
        match i {
            0 => self.email = value.string()?,
            1 => self.id = Some(value.string()?),
            2 => self.enabled = Some(value.boolean()?),
            3 => self.groups = Some(value.strings()?),
            _ => return None,
        }
        Some(())
    }
}

enum Value<'a> {
    String(&'a str),
    Integer(i64),
    Boolean(bool),
    Strings(Vec<&'a str>),
}

impl Value<'_> {
    fn string(self) -> Option<String> {
        match self {
            Value::String(s) => Some(s.to_owned()),
            _ => None,
        }
    }

    fn integer(self) -> Option<i64> {
        match self {
            Value::Integer(n) => Some(n),
            _ => None,
        }
    }

    fn boolean(self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }

    fn strings(self) -> Option<Vec<String>> {
        match self {
            Value::Strings(list) => Some(list.into_iter().map(str::to_owned).collect()),
            _ => None,
        }
    }
}

/// A bare key and what follows its `=`.
fn key(line: &str) -> Option<(&str, &str)> {
    let end = line.bytes().position(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))?;
    let rest = trim_start_ws(&line[end..]).strip_prefix('=')?;
    (end > 0).then(|| (&line[..end], trim_start_ws(rest)))
}

/// A value at the start of `s`, and what follows it.
fn value(s: &str) -> Option<(Value<'_>, &str)> {
    match s.as_bytes().first()? {
        b'"' | b'\'' => string(s).map(|(v, rest)| (Value::String(v), rest)),
        b'[' => strings(s),
        b't' => Some((Value::Boolean(true), s.strip_prefix("true")?)),
        b'f' => Some((Value::Boolean(false), s.strip_prefix("false")?)),
        b'-' | b'0'..=b'9' => integer(s),
        _ => None,
    }
}

/// A basic (`"…"`) or literal (`'…'`) string on one line, without escapes
/// or control characters, so that its value is its text. (A multi-line
/// string's `"""` reads as `""` followed by a `"`, which nothing accepts.)
fn string(s: &str) -> Option<(&str, &str)> {
    let quote = match s.as_bytes().first()? {
        b'"' => '"',
        b'\'' => '\'',
        _ => return None,
    };
    let body = &s[1..];
    let end = body.find(|c: char| c == quote || c == '\\' || c.is_control())?;
    let rest = body[end..].strip_prefix(quote)?;
    Some((&body[..end], rest))
}

/// A one-line array of strings, a trailing comma allowed.
fn strings(s: &str) -> Option<(Value<'_>, &str)> {
    let mut rest = trim_start_ws(s.strip_prefix('[')?);
    let mut items = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(']') {
            return Some((Value::Strings(items), after));
        }
        let (item, after) = string(rest)?;
        items.push(item);
        rest = trim_start_ws(after);
        match rest.strip_prefix(',') {
            Some(after) => rest = trim_start_ws(after),
            None if rest.starts_with(']') => {}
            None => return None,
        }
    }
}

/// A decimal integer: an optional `-`, no leading zero, no `_`, within
/// i64. Anything else numeric (`+1`, `1_000`, `0x1f`, `1.5`, a date)
/// leaves the rest of the line unread, which [`end_of_line`] refuses.
fn integer(s: &str) -> Option<(Value<'_>, &str)> {
    let sign = usize::from(s.starts_with('-'));
    let digits = s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits > 1 && s.as_bytes()[sign] == b'0') {
        return None;
    }
    let (number, rest) = s.split_at(sign + digits);
    Some((Value::Integer(number.parse().ok()?), rest))
}

/// What may follow a value or header: whitespace and a comment.
fn end_of_line(rest: &str) -> Option<()> {
    match trim_start_ws(rest).strip_prefix('#') {
        Some(text) => comment(text),
        None => trim_start_ws(rest).is_empty().then_some(()),
    }
}

/// TOML refuses control characters in comments, tab aside.
fn comment(text: &str) -> Option<()> {
    (!text.chars().any(|c| c.is_control() && c != '\t')).then_some(())
}

/// TOML's whitespace is space and tab only.
fn trim_ws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn trim_start_ws(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::super::FileRoot;
    use super::*;

    /// Every field of every table, in the shapes this reader knows.
    const FULL: &str = "# provisioning\r
[[tenants]]   # the first\r
id = \"T1\"
audience = 'https://api.example.com'
\ttoken_ttl_seconds = 3600
signing_alg = \"ES256\"
auto_provision_customers = false

[[tenants.scopes]]
name = \"a.read\"
description = \"Réad ☃ # not a comment\"

[[tenants.clients]]
id = \"c1\"
name = \"\"
secret = \"s1-long-enough-0123456789abcdefghij\"
allow_short_secret = true
realms = [\"user\" , 'customer',]
scopes = []
token_ttl_seconds = -0
enabled = true
subject_groups = [ \"g\" ]
deny_subject_groups = [\"h\",\"i\"]

[[tenants.clients]]
secrets = [\"x\", \"y\"]
id = \"c2\"

[[tenants.users]]
id = \"1\"
username = \"U.1\"
email = \"u1@example.com\"
enabled = false
groups = [\"staff\", \"staff\"]

[[tenants.customers]]
email = \"c@example.com\"
id = \"c-1\"
enabled = true
groups = []

[[tenants.users]]
username = \"u2\"
id = \"2\"

[[tenants]]
id = \"T2\"
token_ttl_seconds = -9223372036854775808
";

    fn toml_reads(text: &str) -> Vec<TenantFile> {
        toml::from_str::<FileRoot<TenantFile>>(text).unwrap().tenants
    }

    #[test]
    fn reads_what_toml_reads() {
        assert_eq!(parse(FULL).unwrap(), toml_reads(FULL));
        assert_eq!(parse("").unwrap(), toml_reads(""));
        assert_eq!(parse("\n# only a comment\n").unwrap(), Vec::new());
    }

    #[test]
    fn leaves_everything_else_to_toml() {
        let cases = [
            // Valid TOML this reader does not read.
            FULL.replace("name = \"a.read\"", "name = \"a\\u002eread\""),
            FULL.replace("id = \"c1\"", "\"id\" = \"c1\""),
            FULL.replace("[[tenants.users]]\nid = \"1\"", "[[ tenants.users ]]\nid = \"1\""),
            FULL.replace("enabled = false", "enabled = false # ok\nprofile.x = 1"),
            FULL.replace("token_ttl_seconds = 3600", "token_ttl_seconds = 3_600"),
            FULL.replace("token_ttl_seconds = 3600", "token_ttl_seconds = +3600"),
            FULL.replace("groups = []", "groups = [\n]"),
            FULL.replace("name = \"\"", "name = \"\"\"x\"\"\""),
            FULL.replace("name = \"\"", "name = '''x'''"),
            format!("\u{feff}{FULL}"),
            "tenants = []".to_string(),
            // Files toml refuses, or that do not deserialize.
            FULL.replace("token_ttl_seconds = 3600", "token_ttl_seconds = 03600"),
            FULL.replace("token_ttl_seconds = 3600", "token_ttl_seconds = 99999999999999999999"),
            FULL.replace("token_ttl_seconds = 3600", "token_ttl_seconds = 1.5"),
            FULL.replace("token_ttl_seconds = 3600", "token_ttl_seconds = \"3600\""),
            FULL.replace("enabled = false", "enabled = False"),
            FULL.replace("enabled = false", "enabled = falsey"),
            FULL.replace("enabled = false", "enabled = false\nenabled = true"),
            FULL.replace("enabled = false", "colour = \"red\""),
            FULL.replace("username = \"u2\"", ""),
            FULL.replace("[[tenants]]   # the first", "[tenants]"),
            FULL.replace("# provisioning", "# a\u{7}bell"),
            FULL.replace("Réad", "Ré\rad"),
            FULL.replace("Réad", "Ré\tad"),
            FULL.replace("realms = [\"user\" , 'customer',]", "realms = [\"user\" 'customer']"),
            FULL.replace("realms = [\"user\" , 'customer',]", "realms = [,]"),
            FULL.replace("realms = [\"user\" , 'customer',]", "realms = [\"user\", 1]"),
            format!("[[tenants.users]]\nid = \"1\"\nusername = \"u\"\n{FULL}"),
            format!("x = 1\n{FULL}"),
            "[[tenants]]\nid = \"A\" \"B\"\n".to_string(),
            "[[tenants]]\nid = \"A\nB\"\n".to_string(),
            "[[tenants]]\n= \"A\"\n".to_string(),
            "[[tenants]]\nid =\n".to_string(),
            "[[tenants]]\nid = -\n".to_string(),
            "[[tenants]]\n".to_string(),
        ];
        for text in cases {
            assert!(parse(&text).is_none(), "{text}");
        }
    }
}
