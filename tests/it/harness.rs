//! Starts `stead` processes on temporary data directories and talks to them.
//!
//! The storage backend follows `STEAD_TEST_BACKEND`: unset (or `sqlite`),
//! each [`Stead`] is an SQLite file in its data directory; `postgres`, each
//! [`Stead`] also gets a PostgreSQL database of its own on the test server
//! (`STEAD_TEST_POSTGRES_URL`, default 127.0.0.1:5432), created on first use,
//! dropped with it, and handed to every command as `STEAD_DATABASE_URL`. The
//! data directory still holds the master key all its commands share.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
pub use stead_store::postgres::testing::TestDatabase;

pub const BIN: &str = env!("CARGO_BIN_EXE_stead");

pub const SECRET: &str = "acme-app-secret-0123456789-abcdefghijklmnop";
/// A secret with every character that Basic authentication must encode.
pub const ODD_SECRET: &str = "a:b%c+d e/f=g&h?i#j~k'l\"m-0123456789-xyz";

/// The fixture most tests use: tenant ACME with clients, users and
/// customers for every case, and tenants RSA and ED for the other
/// algorithms.
pub fn fixture() -> String {
    format!(
        r#"
[[tenants]]
id = "ACME"
audience = "https://api.acme.test"

[[tenants.scopes]]
name = "read"
[[tenants.scopes]]
name = "write"
[[tenants.scopes]]
name = "admin"

[[tenants.clients]]
id = "app"
secret = "{SECRET}"
realms = ["user", "customer"]
scopes = ["read", "write"]

[[tenants.clients]]
id = "odd-client:1"
secret = '''{ODD_SECRET}'''
realms = ["user", "customer"]
scopes = ["read"]
token_ttl_seconds = 600

[[tenants.clients]]
id = "users-only"
secret = "{SECRET}"
realms = ["user"]
scopes = ["read"]

[[tenants.clients]]
id = "off"
secret = "{SECRET}"
realms = ["user"]
scopes = ["read"]
enabled = false

[[tenants.users]]
id = "1001"
username = "pa"
email = "pa@example.com"

[[tenants.users]]
id = "1002"
username = "Bob.Smith"

[[tenants.users]]
id = "1003"
username = "ghost"
enabled = false

[[tenants.customers]]
email = "Jane@Example.com"
id = "c-42"

[[tenants.customers]]
email = "gone@example.com"
id = "c-43"
enabled = false

[[tenants]]
id = "OTHER"
[[tenants.scopes]]
name = "read"
[[tenants.clients]]
id = "other-app"
secret = "{SECRET}"
realms = ["user"]
scopes = ["read"]
[[tenants.users]]
id = "1001"
username = "pa"

[[tenants]]
id = "RSA"
signing_alg = "RS256"
token_ttl_seconds = 120
[[tenants.scopes]]
name = "read"
[[tenants.clients]]
id = "app"
secret = "{SECRET}"
realms = ["user", "customer"]
scopes = ["read"]
[[tenants.users]]
id = "u1"
username = "pa"

[[tenants]]
id = "ED"
signing_alg = "EdDSA"
auto_provision_customers = true
[[tenants.scopes]]
name = "read"
[[tenants.clients]]
id = "app"
secret = "{SECRET}"
realms = ["customer", "user"]
scopes = ["read"]
[[tenants.users]]
id = "u1"
username = "pa"
"#
    )
}

/// The storage the integration tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The variable that selects [`Backend::Postgres`] (value `postgres`).
pub const BACKEND_ENV: &str = "STEAD_TEST_BACKEND";

pub fn backend() -> Backend {
    match std::env::var(BACKEND_ENV).as_deref() {
        Ok("postgres") | Ok("postgresql") => Backend::Postgres,
        Ok("") | Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("{BACKEND_ENV}={other}: expected sqlite or postgres"),
    }
}

/// A data directory, with `stead` commands run against it.
pub struct Stead {
    pub dir: tempfile::TempDir,
    /// On PostgreSQL: the database, created on first use. Declared after
    /// `dir`, so dropped after it (servers are dropped before their `Stead`).
    db: OnceLock<TestDatabase>,
}

impl Default for Stead {
    fn default() -> Self {
        Self::new()
    }
}

impl Stead {
    pub fn new() -> Self {
        Stead { dir: tempfile::tempdir().expect("temp dir"), db: OnceLock::new() }
    }

    /// The PostgreSQL URL every command of this `Stead` uses; `None` on SQLite.
    pub fn database_url(&self) -> Option<&str> {
        self.database().map(|db| db.url.as_str())
    }

    /// The PostgreSQL database of this `Stead`, created on first use.
    pub fn database(&self) -> Option<&TestDatabase> {
        if backend() != Backend::Postgres {
            return None;
        }
        Some(self.db.get_or_init(|| {
            TestDatabase::create_blocking().unwrap_or_else(|e| panic!("cannot create a PostgreSQL test database: {e}"))
        }))
    }

    /// Everything the storage holds, as bytes, to search for what must not
    /// be stored in plain text: the SQLite files, or a `pg_dump` of the
    /// database with every bytea value decoded from its hex form too.
    pub fn stored_bytes(&self) -> Vec<u8> {
        match self.database() {
            None => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(self.data_dir()).unwrap() {
                    let path = entry.unwrap().path();
                    if path.file_name().unwrap().to_str().unwrap().starts_with("stead.db") {
                        bytes.extend(std::fs::read(&path).unwrap());
                    }
                }
                bytes
            }
            Some(db) => {
                let out = Command::new("pg_dump")
                    .args(["--data-only", "--no-owner", "--dbname", &db.url])
                    .output()
                    .expect("run pg_dump");
                assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
                let mut bytes = out.stdout.clone();
                bytes.extend(decode_hex_runs(&out.stdout));
                bytes
            }
        }
    }

    /// A data directory with [`fixture`] imported.
    pub fn with_fixture() -> Self {
        let s = Self::new();
        s.import_ok(&fixture());
        s
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `stead ARGS` on this `Stead`'s storage: on PostgreSQL with
    /// `STEAD_DATABASE_URL` set (and a small pool, as many processes share
    /// the test server); `--data-dir` still locates the master key.
    pub fn command(&self, args: &[&str]) -> Command {
        self.configure(Command::new(BIN), args)
    }

    /// `stead serve` allowed to run on one CPU only (by `taskset`), as in
    /// a container given one CPU.
    pub fn serve_on_one_cpu(&self) -> Server {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
        let cpu = allowed.split([',', '-']).next().unwrap().to_owned();
        let mut taskset = Command::new("taskset");
        taskset.args(["-c", &cpu, BIN]);
        Server::spawn(self.configure(taskset, &self.serve_args(&[])))
    }

    /// `serve` on a free port of 127.0.0.1 with this `Stead`'s data, then `extra`.
    fn serve_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", self.dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        args
    }

    fn configure(&self, mut c: Command, args: &[&str]) -> Command {
        c.args(args)
            .env_remove("STEAD_MASTER_KEY")
            .env_remove("STEAD_DATABASE_URL")
            .env_remove("STEAD_DATABASE_POOL_SIZE")
            .env_remove("STEAD_CONFIG");
        if let Some(url) = self.database_url() {
            c.env("STEAD_DATABASE_URL", url).env("STEAD_DATABASE_POOL_SIZE", "4");
        }
        c
    }

    pub fn import(&self, toml: &str) -> Output {
        let path = self.dir.path().join(format!("import-{}.toml", unique()));
        std::fs::write(&path, toml).unwrap();
        self.command(&["import", path.to_str().unwrap(), "--data-dir", self.dir.path().to_str().unwrap()])
            .output()
            .expect("run stead import")
    }

    pub fn import_ok(&self, toml: &str) {
        let out = self.import(toml);
        assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    pub fn serve_with(&self, extra: &[&str]) -> Server {
        Server::spawn(self.command(&self.serve_args(extra)))
    }
}

/// The bytes of every run of hex digits after `\x` (bytea in a dump).
fn decode_hex_runs(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < text.len() {
        if text[i] == b'\\' && text[i + 1] == b'x' {
            let start = i + 2;
            let mut end = start;
            while end < text.len() && text[end].is_ascii_hexdigit() {
                end += 1;
            }
            let run = &text[start..end - (end - start) % 2];
            for pair in run.chunks(2) {
                let hex = std::str::from_utf8(pair).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running `stead serve`; stopped with SIGTERM when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

impl Server {
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn stead serve");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let err_buf = stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(err_pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                err_buf.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let out_pipe = child.stdout.take().unwrap();
        let out_buf = stdout.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(out_pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if let Some(rest) = line.strip_prefix("stead listening on ") {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                out_buf.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("stead serve did not start; stderr:\n{}", stderr.lock().unwrap());
            }
        };
        Server { child: Some(child), base, stdout, stderr, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn token_url(&self, realm: &str) -> String {
        self.url(&format!("/system/auth/{realm}/oauth2/token"))
    }

    pub fn issuer(&self, realm: &str) -> String {
        self.url(&format!("/system/auth/{realm}"))
    }

    /// POSTs a form to a realm's token endpoint.
    pub async fn token(&self, realm: &str, form: &[(&str, &str)]) -> Reply {
        let body = encode_form(form);
        let r = self
            .http
            .post(self.token_url(realm))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request");
        Reply::from(r).await
    }

    pub async fn raw(&self, request: reqwest::RequestBuilder) -> Reply {
        Reply::from(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw(self.http.get(self.url(path))).await
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Kills the process with SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate().expect("running")
    }

    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

pub fn encode_form(form: &[(&str, &str)]) -> String {
    form.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&")
}

/// application/x-www-form-urlencoded encoding of one name or value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap_or_default();
        Reply { status, headers, body }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OAuth error of RFC 6749 §5.2 with this status and code.
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "status; body: {}", self.body);
        let json = self.json();
        assert_eq!(json["error"], error, "error code; body: {}", self.body);
        assert!(json["error_description"].is_string(), "description: {}", self.body);
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert!(self.header("content-type").unwrap_or("").starts_with("application/json"));
    }

    pub fn access_token(&self) -> String {
        assert_eq!(self.status, 200, "expected a token; body: {}", self.body);
        self.json()["access_token"].as_str().expect("access_token").to_owned()
    }
}

/// The usual form for a user token from client `app` of ACME.
pub fn user_form(subject: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", "app"),
        ("client_secret", SECRET),
        ("scope", "read"),
        ("subject_username", subject),
    ]
}

pub fn customer_form(email: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", "app"),
        ("client_secret", SECRET),
        ("scope", "read"),
        ("subject_email", email),
    ]
}

/// Verifies `token` with an independent JOSE implementation (the
/// `jsonwebtoken` crate, on `ring`) against the realm's served JWKS, and
/// returns its claims.
pub async fn verify(server: &Server, realm: &str, token: &str, audience: &str) -> serde_json::Value {
    use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
    let header = decode_header(token).expect("JWS header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 typ");
    let kid = header.kid.clone().expect("kid");
    let metadata = server.get(&format!("/system/auth/{realm}/.well-known/openid-configuration")).await.json();
    let jwks_uri = metadata["jwks_uri"].as_str().expect("jwks_uri");
    let jwks: JwkSet = server.http.get(jwks_uri).send().await.unwrap().json().await.expect("JWKS");
    let jwk = jwks.find(&kid).unwrap_or_else(|| panic!("kid {kid} not in JWKS"));
    let key = DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[server.issuer(realm)]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    decode::<serde_json::Value>(token, &key, &validation).expect("token verifies").claims
}

/// Polls `check` until it returns true or `within` passes; returns the time taken.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
