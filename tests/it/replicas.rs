//! Several `stead serve` processes on one database, as behind a load
//! balancer: they share signing keys, revocations, the audit trail and
//! provisioning. Runs on SQLite (processes sharing one file) and, in the
//! PostgreSQL run, on PostgreSQL.

use crate::harness::*;
use crate::postgres::jti;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The public URL every replica is configured with, as behind one load
/// balancer: a token of any replica names the same issuer.
const PUBLIC_URL: &str = "https://stead.example";

fn replicas(stead: &Stead, n: usize) -> Vec<Server> {
    // Started together, as a deployment rolls them out.
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| stead.serve_with(&["--public-url", PUBLIC_URL]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// What one request got.
struct Sent {
    replica: usize,
    client: &'static str,
    sent: Instant,
    status: u16,
    jti: Option<String>,
}

async fn request(server: &Server, replica: usize, client: &'static str) -> Sent {
    let form = [
        ("grant_type", "password"),
        ("client_id", client),
        ("client_secret", SECRET),
        ("scope", "read"),
        ("subject_username", "pa"),
    ];
    let sent = Instant::now();
    let r = server.token("ACME-U", &form).await;
    let jti = (r.status == 200).then(|| jti(&r.access_token()));
    Sent { replica, client, sent, status: r.status, jti }
}

/// Three replicas under load spread across them; client `app` is disabled
/// by `stead import` halfway. Within a second no replica issues it a token;
/// every jti is unique; the audit trail holds one record per answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_honour_a_change_within_a_second() {
    let stead = Stead::with_fixture();
    let servers = Arc::new(replicas(&stead, 3));

    // Load: workers round-robin over the replicas, for `app` and for
    // `users-only` (which stays enabled).
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (servers, stop) = (servers.clone(), stop.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                let mut i = w;
                while !stop.load(Ordering::SeqCst) {
                    let replica = i % 3;
                    let client = if i % 4 == 0 { "users-only" } else { "app" };
                    sent.push(request(&servers[replica], replica, client).await);
                    i += 1;
                    // Keep refusals under the failed-authentication limits
                    // (100 per client and source per minute and replica).
                    if sent.last().is_some_and(|s| s.status != 200) {
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                }
                sent
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    stead.import_ok("[[tenants]]\nid = \"ACME\"\n[[tenants.clients]]\nid = \"app\"\nenabled = false\n");
    let imported = Instant::now();
    // Each replica on its own: how long until it refuses `app`?
    let mut took = Vec::new();
    let mut probes = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let mut refused_after = None;
        while imported.elapsed() < Duration::from_millis(1500) {
            let s = request(server, i, "app").await;
            let refused = s.status == 401;
            probes.push(s);
            if refused {
                refused_after = Some(imported.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took.push(refused_after);
    }
    // Load goes on for 1.5 s past the deadline, however long the probes
    // took: every replica must be seen serving after it.
    let deadline = imported + Duration::from_secs(1);
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline + Duration::from_millis(1500))).await;
    stop.store(true, Ordering::SeqCst);
    let mut sent = probes;
    for w in workers {
        sent.extend(w.await.unwrap());
    }

    let late: Vec<_> = sent.iter().filter(|s| s.client == "app" && s.sent > deadline && s.status == 200).collect();
    assert!(late.is_empty(), "{} tokens for the disabled client more than 1 s after the import", late.len());
    assert!(took.iter().all(|t| t.is_some_and(|t| t <= Duration::from_secs(1))), "propagation: {took:?}");
    for replica in 0..3 {
        let after = sent.iter().filter(|s| s.replica == replica && s.sent > deadline).count();
        assert!(after > 0, "replica {replica} got no load after the change");
        let before_ok = sent.iter().filter(|s| s.replica == replica && s.sent < imported && s.status == 200).count();
        assert!(before_ok > 0, "replica {replica} issued nothing");
    }
    let others_ok = sent.iter().filter(|s| s.client == "users-only" && s.sent > deadline && s.status == 200).count();
    assert!(others_ok > 0, "the other client kept getting tokens");
    for s in &sent {
        assert!(matches!(s.status, 200 | 401), "unexpected status {}", s.status);
    }

    let jtis: Vec<&String> = sent.iter().filter_map(|s| s.jti.as_ref()).collect();
    let unique: HashSet<&String> = jtis.iter().copied().collect();
    assert_eq!(unique.len(), jtis.len(), "every jti is unique");

    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let out = stead.command(&["audit", "--tenant", "ACME", "--json", "--data-dir", &dir]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let issued_rows: HashSet<&str> =
        rows.iter().filter(|r| r["outcome"] == "issued").map(|r| r["jti"].as_str().unwrap()).collect();
    let issued_rows_count = rows.iter().filter(|r| r["outcome"] == "issued").count();
    assert_eq!(issued_rows_count, jtis.len(), "audit rows of issued tokens = tokens issued");
    assert!(jtis.iter().all(|j| issued_rows.contains(j.as_str())));
    let refused = sent.iter().filter(|s| s.status == 401).count();
    let refused_rows = rows.iter().filter(|r| r["outcome"] == "refused").count();
    assert_eq!(refused_rows, refused, "audit rows of refusals = refusals");
    say_summary(&sent, &took, backend());
}

fn say_summary(sent: &[Sent], took: &[Option<Duration>], backend: Backend) {
    use std::io::Write;
    let ok = sent.iter().filter(|s| s.status == 200).count();
    let _ = writeln!(
        std::io::stderr(),
        "replicas ({backend:?}): {} requests over 3 replicas, {ok} tokens; the disabled client was refused by each \
         replica after {took:?}",
        sent.len()
    );
}

/// Replicas starting together on a database whose tenants have no keys
/// yet all decide to generate one; exactly one rotation per tenant happens
/// and every replica publishes and signs with the same key.
#[tokio::test]
async fn replicas_starting_together_agree_on_one_key() {
    let stead = Stead::with_fixture();
    let servers = replicas(&stead, 3);
    let mut kids = Vec::new();
    for server in &servers {
        let jwks = server.get("/system/auth/ACME-U/oauth2/jwks").await.json();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "one key: {jwks}");
        kids.push(keys[0]["kid"].as_str().unwrap().to_owned());
        let token = server.token("ACME-U", &user_form("pa")).await.access_token();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some(kids[0].as_str()));
        // A token from one replica verifies against another's JWKS.
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        let jwks0 = servers[0].get("/system/auth/ACME-U/oauth2/jwks").await.json();
        let set0: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks0).unwrap();
        for set in [set, set0] {
            let key = jsonwebtoken::DecodingKey::from_jwk(set.find(&kids[0]).unwrap()).unwrap();
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
            v.set_audience(&["https://api.acme.test"]);
            v.set_issuer(&[format!("{PUBLIC_URL}/system/auth/ACME-U")]);
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).expect("verifies at every replica");
        }
    }
    assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");

    // `stead keys rotate` through storage reaches every replica.
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let out = stead.command(&["keys", "rotate", "--tenant", "ACME", "--data-dir", &dir]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for server in &servers {
        let took = eventually(Duration::from_secs(1), || async {
            let t = server.token("ACME-U", &user_form("pa")).await.access_token();
            jsonwebtoken::decode_header(&t).unwrap().kid.unwrap() != kids[0]
        })
        .await;
        assert!(took.is_some(), "new key not used within 1 s");
    }
}

/// A token revoked through one replica is inactive at every other within a
/// second.
#[tokio::test]
async fn a_revocation_through_one_replica_reaches_the_others() {
    let stead = Stead::with_fixture();
    let servers = replicas(&stead, 2);
    let token = servers[0].token("ACME-U", &user_form("pa")).await.access_token();
    let post = |server: &Server, path: &str, token: &str| {
        let body = encode_form(&[("token", token), ("client_id", "app"), ("client_secret", SECRET)]);
        server
            .http
            .post(server.url(&format!("/system/auth/ACME-U/oauth2/{path}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let r = servers[1].raw(post(&servers[1], "introspect", &token)).await;
    assert_eq!(r.json()["active"], true, "{}", r.body);
    let r = servers[0].raw(post(&servers[0], "revoke", &token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let took = eventually(Duration::from_secs(1), || async {
        servers[1].raw(post(&servers[1], "introspect", &token)).await.json()["active"] == false
    })
    .await;
    assert!(took.is_some(), "revocation not seen by the other replica within 1 s");
}
