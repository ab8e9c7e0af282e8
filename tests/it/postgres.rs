//! The PostgreSQL side of the integration tests.
//!
//! `postgres_suite` runs this whole test binary again with
//! `STEAD_TEST_BACKEND=postgres`: every test then runs its `stead`
//! processes on a PostgreSQL database of its own (see the harness). Without
//! a reachable PostgreSQL it says plainly that the suite was skipped, unless
//! `CI=true`: then that is a failure.
//!
//! The other tests here need PostgreSQL and do nothing on SQLite: private
//! keys at rest, and a database that goes away under load.

use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stead_store::postgres::testing;
use tokio::net::{TcpListener, TcpStream};

/// Longest the PostgreSQL run may take.
const SUITE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Written straight to stderr, past the test harness's output capture, so
/// it shows in a passing run too.
fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

#[test]
fn postgres_suite() {
    if backend() == Backend::Postgres {
        return; // We are the PostgreSQL run.
    }
    let admin = testing::admin_url();
    if let Err(e) = testing::blocking(testing::check_available()) {
        let host = host_port(&admin).unwrap_or_else(|| admin.clone());
        if testing::required() {
            panic!("CI=true and PostgreSQL is required, but cannot connect to {host}: {e}");
        }
        say(&format!("PostgreSQL suite SKIPPED: cannot connect to {host} ({e})"));
        return;
    }

    say(&format!("PostgreSQL suite: running every integration test again on {admin}"));
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--skip", "postgres_suite", "--test-threads", "2"])
        .env(BACKEND_ENV, "postgres")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test binary again");
    let output = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|pipe| {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                // Failures and the summary as they come; everything on failure.
                if line.contains("FAILED") || line.starts_with("test result:") || line.contains("panicked") {
                    say(&format!("[postgres] {line}"));
                }
                let mut out = output.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        })
    })
    .collect();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SUITE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the PostgreSQL run took longer than {SUITE_TIMEOUT:?}:\n{}", output.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for r in readers {
        let _ = r.join();
    }
    let output = output.lock().unwrap().clone();
    assert!(status.success(), "the integration tests failed on PostgreSQL ({status}):\n{output}");
    let summary = output.lines().rfind(|l| l.starts_with("test result:")).unwrap_or("").to_owned();
    say(&format!("PostgreSQL suite passed in {:.0?}: {summary}", started.elapsed()));
}

/// `host:port` of a `postgres://` URL.
fn host_port(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit('@').next()?;
    Some(if host.contains(':') { host.to_owned() } else { format!("{host}:5432") })
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let start = url.find("://").unwrap() + 3;
    let end = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let userinfo = authority.rfind('@').map_or("", |at| &authority[..=at]);
    format!("{}{userinfo}{addr}{}", &url[..start], &url[end..])
}

#[test]
fn urls_are_taken_apart() {
    assert_eq!(host_port("postgres://postgres@127.0.0.1:5432/postgres").unwrap(), "127.0.0.1:5432");
    assert_eq!(host_port("postgres://db.example/x?sslmode=require").unwrap(), "db.example:5432");
    let addr: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    assert_eq!(via("postgres://u:p@127.0.0.1:5432/db?x=1", addr), "postgres://u:p@127.0.0.1:6000/db?x=1");
    assert_eq!(via("postgres://h/db", addr), "postgres://127.0.0.1:6000/db");
}

#[tokio::test]
async fn private_keys_are_encrypted_at_rest_in_postgres() {
    use stead_core::directory::key_context;
    use stead_core::store::StoredKey;
    use stead_core::{MasterKey, SigningAlg, Store};
    if backend() != Backend::Postgres {
        return;
    }
    let stead = Stead::new();
    let store = stead_store::PgStore::connect(stead.database_url().unwrap()).await.unwrap();
    let master = MasterKey::generate().unwrap();
    let plan =
        stead_core::provision::parse("[[tenants]]\nid = \"K\"\n", &stead_core::SecretHasher::new(&master)).unwrap();
    store.apply_provisioning(&plan).await.unwrap();
    let mut ders = Vec::new();
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
        let der = alg.generate_pkcs8().unwrap();
        let key = stead_core::SigningKey::from_pkcs8(alg, &der).unwrap();
        let tenant = stead_proto::TenantId::parse("K").unwrap();
        let stored = StoredKey {
            sealed_private_key: master.seal(&key_context(&tenant, &key.kid), &der),
            tenant,
            kid: key.kid.clone(),
            alg,
            created_at: stead_core::now(),
            retired_at: None,
        };
        let active =
            store.load_directory().await.unwrap().keys.iter().find(|k| k.retired_at.is_none()).map(|k| k.kid.clone());
        assert!(store.rotate_signing_key(active.as_deref(), &stored).await.unwrap());
        ders.push((alg, der));
    }
    store.close().await;
    let bytes = stead.stored_bytes();
    assert!(bytes.len() > 1000, "the dump holds the sealed keys");
    for (alg, der) in ders {
        // Any 24-byte window of the PKCS#8 document (which holds the private key).
        let found = der.windows(24).step_by(8).any(|w| bytes.windows(24).any(|b| b == w));
        assert!(!found, "{alg:?} private key bytes found in the database");
    }
}

/// A TCP proxy in front of PostgreSQL that can be cut: every connection
/// through it dropped, new ones closed at once, as when the database host
/// goes away. Lets one replica lose its database while the shared test
/// server keeps running for everyone else.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, connections) = (cut.clone(), connections.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else { continue };
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Proxy { addr, cut, connections, accept }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// One answer of the token endpoint under load.
#[derive(Debug, Clone)]
struct Answer {
    at: Instant,
    status: u16,
    error: Option<String>,
    retry_after: bool,
    jti: Option<String>,
}

/// Keeps `workers` requests in flight against `server` until `stop` is set.
fn load(server: &Server, workers: usize, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<Answer>>> {
    (0..workers)
        .map(|_| {
            let (http, url, stop) = (server.http.clone(), server.token_url("ACME-U"), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let sent = http
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(encode_form(&user_form("pa")))
                        .timeout(Duration::from_secs(15))
                        .send()
                        .await;
                    let Ok(r) = sent else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    answers.push(answer(Reply::from(r).await));
                }
                answers
            })
        })
        .collect()
}

fn answer(r: Reply) -> Answer {
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    Answer {
        at: Instant::now(),
        status: r.status,
        error: json["error"].as_str().map(str::to_owned),
        retry_after: r.header("retry-after").is_some(),
        jti: json["access_token"].as_str().map(jti),
    }
}

/// The `jti` claim of a JWT, read without verifying it.
pub fn jti(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

async fn ready(server: &Server) -> u16 {
    match server.http.get(server.url("/readyz")).timeout(Duration::from_secs(5)).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// The database goes away under load, twice: first its connections are
/// killed (`pg_terminate_backend`, as a failover or an administrator
/// does), then it becomes unreachable (the proxy is cut) for a few seconds.
/// Throughout, every answer is a token or a 503 `temporarily_unavailable`
/// with `Retry-After`, never a 500; `/readyz` turns red while the database
/// cannot be reached; service resumes by itself; and every token issued has
/// its audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_database_under_load_answers_503_and_recovers() {
    if backend() != Backend::Postgres {
        return;
    }
    let stead = Stead::with_fixture();
    let db = stead.database().unwrap();
    let proxy = Proxy::start(host_port(&db.url).unwrap()).await;
    let mut serve =
        stead.command(&["serve", "--listen", "127.0.0.1:0", "--data-dir", stead.data_dir().to_str().unwrap()]);
    serve.env("STEAD_DATABASE_URL", via(&db.url, proxy.addr));
    let server = Server::spawn(serve);
    server.token("ACME-U", &user_form("pa")).await.access_token();

    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&server, 8, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. Every connection killed mid-load.
    let killed = db.terminate_connections().await.unwrap();
    let killed_at = Instant::now();
    assert!(killed >= 1, "the server holds connections");
    let recovered =
        eventually(Duration::from_secs(5), || async { server.token("ACME-U", &user_form("pa")).await.status == 200 })
            .await;
    assert!(recovered.is_some(), "no token within 5 s after the connections were killed");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 2. The database unreachable for three seconds.
    proxy.cut();
    let cut_at = Instant::now();
    let red = eventually(Duration::from_secs(3), || async { ready(&server).await == 503 }).await;
    assert!(red.is_some(), "/readyz still green 3 s after the database went away");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = server.token("ACME-U", &user_form("pa")).await;
    during.assert_error(503, "temporarily_unavailable");
    assert!(during.header("retry-after").is_some());
    assert_eq!(server.get("/healthz").await.status, 200, "the process itself is alive");
    proxy.restore();
    let restored_at = Instant::now();
    let green = eventually(Duration::from_secs(5), || async { ready(&server).await == 200 }).await;
    assert!(green.is_some(), "/readyz not green 5 s after the database came back");
    let resumed =
        eventually(Duration::from_secs(5), || async { server.token("ACME-U", &user_form("pa")).await.status == 200 })
            .await;
    assert!(resumed.is_some(), "no token within 5 s after the database came back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);

    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.unwrap());
    }
    let count = |f: &dyn Fn(&Answer) -> bool| answers.iter().filter(|a| f(a)).count();
    let ok = count(&|a| a.status == 200);
    let unavailable = count(&|a| a.status == 503);
    let while_cut = count(&|a| a.at > cut_at + Duration::from_secs(1) && a.at < restored_at);
    let after_kill = count(&|a| a.status == 503 && a.at > killed_at && a.at < cut_at);
    say(&format!(
        "fault test: {} answers: {ok} tokens, {unavailable} × 503; {killed} connections killed \
         ({after_kill} × 503, service back after {:?}); unreachable for {:?}: readyz red after {:?}, {while_cut} answers while cut, \
         readyz green {:?} and tokens {:?} after it came back",
        answers.len(),
        recovered.unwrap(),
        restored_at - cut_at,
        red.unwrap(),
        green.unwrap(),
        resumed.unwrap(),
    ));
    for a in &answers {
        assert!(a.status == 200 || a.status == 503, "unexpected answer {a:?}");
        if a.status == 503 {
            assert_eq!(a.error.as_deref(), Some("temporarily_unavailable"), "{a:?}");
            assert!(a.retry_after, "503 without Retry-After: {a:?}");
        }
    }
    assert!(ok > 0 && unavailable > 0, "{ok} tokens, {unavailable} refusals");
    // Killed connections are found and replaced at once: a few requests in
    // flight see it, not everything until the pool turns over.
    assert!(after_kill <= 16, "{after_kill} requests failed after the connections were killed");
    let late = answers.iter().filter(|a| a.at > cut_at + Duration::from_secs(1) && a.at < restored_at);
    assert!(late.clone().all(|a| a.status == 503), "a token was issued while the database was unreachable");
    drop(server);

    // Every token that left has its audit record.
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let out = stead.command(&["audit", "--json", "--outcome", "issued", "--data-dir", &dir]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let audited: std::collections::HashSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["jti"].as_str().unwrap().to_owned())
        .collect();
    let tokens: Vec<&String> = answers.iter().filter_map(|a| a.jti.as_ref()).collect();
    let missing = tokens.iter().filter(|j| !audited.contains(**j)).count();
    assert_eq!(missing, 0, "{missing} of {} tokens have no audit record", tokens.len());
}

#[test]
fn stead_migrate_brings_the_schema_up_to_date() {
    let stead = Stead::new();
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let out = stead.command(&["migrate", "--data-dir", &dir]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = String::from_utf8_lossy(&out.stdout).into_owned();
    let out = stead.command(&["migrate", "--data-dir", &dir]).output().unwrap();
    assert!(out.status.success());
    let second = String::from_utf8_lossy(&out.stdout).into_owned();
    match backend() {
        Backend::Postgres => {
            assert!(first.contains("applied migrations [1, 2]"), "{first}");
            assert!(second.contains("up to date"), "{second}");
        }
        Backend::Sqlite => assert!(first.contains("up to date") && stead.data_dir().join("stead.db").exists()),
    }
    // The migrated database serves at once.
    stead.import_ok(&fixture());
    let out = stead.command(&["migrate", "--database-url", "mysql://x", "--data-dir", &dir]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres://"));
}
