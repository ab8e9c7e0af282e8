//! Governance of acting for others: each test shows the attack or mistake
//! a control stops.

use crate::harness::*;
use std::time::Duration;

fn form_with_secret<'a>(secret: &'a str, subject: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", "app"),
        ("client_secret", secret),
        ("scope", "read"),
        ("subject_username", subject),
    ]
}

#[tokio::test]
async fn rotated_secret_overlaps_then_the_old_one_is_refused() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let out = stead
        .command(&[
            "client",
            "rotate-secret",
            "--tenant",
            "ACME",
            "--client",
            "app",
            "--keep-old-for",
            "2s",
            "--data-dir",
            &dir,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(new_secret.len() >= 32);

    // Both work during the overlap.
    let took = eventually(Duration::from_secs(1), || async {
        server.token("ACME-U", &form_with_secret(&new_secret, "pa")).await.status == 200
    })
    .await;
    assert!(took.is_some(), "new secret honoured within 1 s");
    server.token("ACME-U", &form_with_secret(SECRET, "pa")).await.access_token();

    // After the overlap only the new one.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    server.token("ACME-U", &form_with_secret(SECRET, "pa")).await.assert_error(401, "invalid_client");
    server.token("ACME-U", &form_with_secret(&new_secret, "pa")).await.access_token();

    // revoke-secret ends an overlap at once.
    let out = stead
        .command(&[
            "client",
            "rotate-secret",
            "--tenant",
            "ACME",
            "--client",
            "app",
            "--keep-old-for",
            "1h",
            "--data-dir",
            &dir,
        ])
        .output()
        .unwrap();
    let newest = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = stead
        .command(&["client", "revoke-secret", "--tenant", "ACME", "--client", "app", "--data-dir", &dir])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let took = eventually(Duration::from_secs(1), || async {
        server.token("ACME-U", &form_with_secret(&new_secret, "pa")).await.status == 401
    })
    .await;
    assert!(took.is_some(), "revoked secret refused within 1 s");
    server.token("ACME-U", &form_with_secret(&newest, "pa")).await.access_token();

    let out = stead
        .command(&["client", "rotate-secret", "--tenant", "ACME", "--client", "nobody", "--data-dir", &dir])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn short_secrets_need_an_explicit_opt_in() {
    let stead = Stead::new();
    let file = "[[tenants]]\nid = \"T\"\n[[tenants.scopes]]\nname = \"read\"\n[[tenants.clients]]\nid = \"c\"\nsecret = \"short-secret\"\nrealms = [\"user\"]\nscopes = [\"read\"]\n";
    let out = stead.import(file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("32"));
    stead.import_ok(&file.replace("scopes = [\"read\"]\n", "scopes = [\"read\"]\nallow_short_secret = true\n"));
}

#[tokio::test]
async fn clients_act_only_for_their_subject_groups() {
    let stead = Stead::with_fixture();
    stead.import_ok(&format!(
        r#"
[[tenants]]
id = "ACME"
[[tenants.clients]]
id = "support"
secret = "{SECRET}"
realms = ["user", "customer"]
scopes = ["read"]
subject_groups = ["staff", "vip-customers"]
deny_subject_groups = ["admins"]
[[tenants.users]]
id = "1001"
username = "pa"
groups = ["staff"]
[[tenants.users]]
id = "1002"
username = "Bob.Smith"
groups = ["staff", "admins"]
[[tenants.users]]
id = "1004"
username = "outsider"
[[tenants.customers]]
email = "jane@example.com"
groups = ["vip-customers"]
"#
    ));
    let server = stead.serve();
    let form = |subject: &'static str| {
        vec![
            ("grant_type", "password"),
            ("client_id", "support"),
            ("client_secret", SECRET),
            ("scope", "read"),
            ("subject_username", subject),
        ]
    };
    server.token("ACME-U", &form("pa")).await.access_token();
    let admin = server.token("ACME-U", &form("Bob.Smith")).await;
    admin.assert_error(400, "invalid_grant");
    assert!(!admin.body.contains("admins") && !admin.body.contains("staff"), "no group disclosed: {}", admin.body);
    server.token("ACME-U", &form("outsider")).await.assert_error(400, "invalid_grant");
    let mut customer = customer_form("jane@example.com");
    customer[1] = ("client_id", "support");
    server.token("ACME-C", &customer).await.access_token();
    // A client without group settings is unchanged.
    server.token("ACME-U", &user_form("outsider")).await.access_token();
    server.token("ACME-U", &user_form("Bob.Smith")).await.access_token();
}

async fn introspect(server: &Server, realm: &str, client: &str, secret: &str, token: &str) -> Reply {
    server
        .raw(
            server
                .http
                .post(server.url(&format!("/system/auth/{realm}/oauth2/introspect")))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&[("client_id", client), ("client_secret", secret), ("token", token)])),
        )
        .await
}

async fn revoke(server: &Server, realm: &str, client: &str, secret: &str, token: &str) -> Reply {
    server
        .raw(
            server
                .http
                .post(server.url(&format!("/system/auth/{realm}/oauth2/revoke")))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&[("client_id", client), ("client_secret", secret), ("token", token)])),
        )
        .await
}

#[tokio::test]
async fn introspection_and_revocation() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let meta = server.get("/system/auth/ACME-U/.well-known/openid-configuration").await.json();
    assert_eq!(meta["introspection_endpoint"], server.url("/system/auth/ACME-U/oauth2/introspect"));
    assert_eq!(meta["revocation_endpoint"], server.url("/system/auth/ACME-U/oauth2/revoke"));

    let token = server.token("ACME-U", &user_form("pa")).await.access_token();
    let r = introspect(&server, "ACME-U", "users-only", SECRET, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["active"], true);
    assert_eq!(j["sub"], "1001");
    assert_eq!(j["act"]["sub"], "app");
    assert_eq!(j["scope"], "read");
    assert_eq!(j["client_id"], "app");
    assert_eq!(j["subject_type"], "user");
    assert!(j["exp"].is_number() && j["iat"].is_number());

    // Only authenticated clients may ask.
    introspect(&server, "ACME-U", "users-only", "wrong", &token).await.assert_error(401, "invalid_client");
    revoke(&server, "ACME-U", "app", "wrong", &token).await.assert_error(401, "invalid_client");
    // Garbage and tokens of another realm are inactive, not errors.
    assert_eq!(
        introspect(&server, "ACME-U", "app", SECRET, "not-a-token").await.json(),
        serde_json::json!({"active": false})
    );
    assert_eq!(introspect(&server, "ACME-C", "app", SECRET, &token).await.json()["active"], false);
    let tampered = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(introspect(&server, "ACME-U", "app", SECRET, &tampered).await.json()["active"], false);

    // A client cannot revoke another client's token.
    revoke(&server, "ACME-U", "users-only", SECRET, &token).await.assert_error(400, "unauthorized_client");
    // Revocation by its client: inactive as soon as it is answered, on the
    // server that answered it (RFC 7009 §2.2).
    let r = revoke(&server, "ACME-U", "app", SECRET, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(introspect(&server, "ACME-U", "app", SECRET, &token).await.json()["active"], false);
    // Each of several tokens, revoked one after the other, at once.
    for _ in 0..5 {
        let token = server.token("ACME-U", &user_form("pa")).await.access_token();
        assert_eq!(revoke(&server, "ACME-U", "app", SECRET, &token).await.status, 200);
        assert_eq!(introspect(&server, "ACME-U", "app", SECRET, &token).await.json()["active"], false);
    }
    // Revoking garbage is fine (RFC 7009 §2.2).
    assert_eq!(revoke(&server, "ACME-U", "app", SECRET, "garbage").await.status, 200);

    // Disabling the subject or the client deactivates outstanding tokens.
    let t_bob = server.token("ACME-U", &user_form("Bob.Smith")).await.access_token();
    let t_pa = server.token("ACME-U", &user_form("pa")).await.access_token();
    assert_eq!(introspect(&server, "ACME-U", "users-only", SECRET, &t_bob).await.json()["active"], true);
    stead.import_ok(
        "[[tenants]]\nid = \"ACME\"\n[[tenants.users]]\nid = \"1002\"\nusername = \"Bob.Smith\"\nenabled = false\n",
    );
    assert_eq!(introspect(&server, "ACME-U", "users-only", SECRET, &t_bob).await.json()["active"], false);
    stead.import_ok("[[tenants]]\nid = \"ACME\"\n[[tenants.clients]]\nid = \"app\"\nenabled = false\n");
    let took = eventually(Duration::from_secs(1), || async {
        introspect(&server, "ACME-U", "users-only", SECRET, &t_pa).await.json()["active"] == false
    })
    .await;
    assert!(took.is_some(), "token of a disabled client still active after 1 s");
}

/// Revocations are read a revocation at a time, apart from the rest of
/// the directory: they must outlast a directory reload and a restart, and
/// one more revocation must not forget earlier ones.
#[tokio::test]
async fn revocations_outlast_reloads_and_restarts() {
    let stead = Stead::with_fixture();
    // One issuer for both servers, whatever port each listens on.
    let public_url = ["--public-url", "https://auth.acme.test"];
    let server = stead.serve_with(&public_url);
    let mut revoked = Vec::new();
    for _ in 0..3 {
        let token = server.token("ACME-U", &user_form("pa")).await.access_token();
        assert_eq!(revoke(&server, "ACME-U", "app", SECRET, &token).await.status, 200);
        revoked.push(token);
    }
    let kept = server.token("ACME-U", &user_form("pa")).await.access_token();
    async fn active(server: &Server, token: &str) -> bool {
        introspect(server, "ACME-U", "app", SECRET, token).await.json()["active"] == true
    }

    // A provisioning change reloads the directory.
    stead.import_ok("[[tenants]]\nid = \"ACME\"\n[[tenants.scopes]]\nname = \"added\"\n");
    let reloaded = eventually(Duration::from_secs(1), || async {
        let meta = server.get("/system/auth/ACME-U/.well-known/openid-configuration").await.json();
        meta["scopes_supported"].as_array().is_some_and(|s| s.iter().any(|s| s == "added"))
    })
    .await;
    assert!(reloaded.is_some(), "the import was not seen within 1 s");
    for token in &revoked {
        assert!(!active(&server, token).await, "revoked token active after a reload");
    }
    assert!(active(&server, &kept).await);

    // A new server on the same storage starts with every revocation.
    drop(server);
    let server = stead.serve_with(&public_url);
    for token in &revoked {
        assert!(!active(&server, token).await, "revoked token active after a restart");
    }
    assert!(active(&server, &kept).await);
    assert_eq!(revoke(&server, "ACME-U", "app", SECRET, &kept).await.status, 200);
    assert!(!active(&server, &kept).await);
    assert!(!active(&server, &revoked[0]).await);
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_verifiable() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let before = server.token("ACME-U", &user_form("pa")).await.access_token();
    let old_kid = jsonwebtoken::decode_header(&before).unwrap().kid.unwrap();
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let out = stead.command(&["keys", "rotate", "--tenant", "ACME", "--data-dir", &dir]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let took = eventually(Duration::from_secs(1), || async {
        let t = server.token("ACME-U", &user_form("pa")).await.access_token();
        jsonwebtoken::decode_header(&t).unwrap().kid.unwrap() != old_kid
    })
    .await;
    assert!(took.is_some(), "new key not used within 1 s");
    let after = server.token("ACME-U", &user_form("pa")).await.access_token();
    // Both verify against the served JWKS.
    verify(&server, "ACME-U", &before, "https://api.acme.test").await;
    verify(&server, "ACME-U", &after, "https://api.acme.test").await;
    let jwks = server.get("/system/auth/ACME-U/oauth2/jwks").await.json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn automatic_rotation_on_a_period() {
    let stead = Stead::with_fixture();
    let server = stead.serve_with(&["--key-rotation", "1m"]);
    let first = server.token("ACME-U", &user_form("pa")).await.access_token();
    // A period is at least a minute; just check the flag is accepted and
    // `off` works too.
    drop(server);
    let server = stead.serve_with(&["--key-rotation", "off"]);
    let second = server.token("ACME-U", &user_form("pa")).await.access_token();
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_eq!(kid(&first), kid(&second));
    let out = stead
        .command(&["serve", "--key-rotation", "soon", "--data-dir", stead.data_dir().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn every_request_is_audited() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let mut issued = 0;
    let mut refused = 0;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let http = server.http.clone();
        let url = server.token_url("ACME-U");
        let subject = if i % 3 == 0 { "nobody" } else { "pa" };
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&user_form(subject)))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        match t.await.unwrap() {
            200 => issued += 1,
            _ => refused += 1,
        }
    }
    // Refused before the token service runs: audited too.
    let malformed =
        server.raw(server.http.post(server.token_url("ACME-U")).header("content-type", "text/plain").body("x")).await;
    malformed.assert_error(400, "invalid_request");
    refused += 1;
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let out = stead.command(&["audit", "--tenant", "ACME", "--json", "--data-dir", &dir]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), issued + refused);
    assert_eq!(rows.iter().filter(|r| r["outcome"] == "issued").count(), issued);
    let sample = rows.iter().find(|r| r["outcome"] == "issued").unwrap();
    assert_eq!(sample["client_id"], "app");
    assert_eq!(sample["subject_id"], "1001");
    assert_eq!(sample["subject_given"], "pa");
    assert_eq!(sample["requested_scope"], "read");
    assert_eq!(sample["granted_scope"], "read");
    assert_eq!(sample["realm"], "user");
    assert!(sample["jti"].is_string() && sample["request_id"].is_string() && sample["remote_addr"].is_string());
    let refusal = rows.iter().find(|r| r["outcome"] == "refused").unwrap();
    assert_eq!(refusal["error"], "invalid_grant");
    let text = String::from_utf8_lossy(&stead.stored_bytes()).into_owned();
    assert!(!text.contains(SECRET));

    // Filters and the table form.
    let out = stead.command(&["audit", "--outcome", "refused", "--json", "--data-dir", &dir]).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), refused);
    let out = stead.command(&["audit", "--subject", "1001", "--since", "1h", "--data-dir", &dir]).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), issued + 1, "header plus one line per issued token");
    let out =
        stead.command(&["audit", "--until", "2000-01-01T00:00:00Z", "--json", "--data-dir", &dir]).output().unwrap();
    assert_eq!(out.stdout.len(), 0);
}

#[tokio::test]
async fn nothing_is_lost_on_kill_9() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let mut ok = 0;
    for _ in 0..50 {
        if server.token("ACME-U", &user_form("pa")).await.status == 200 {
            ok += 1;
        }
    }
    server.kill9();
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let out = stead.command(&["audit", "--json", "--data-dir", &dir]).output().unwrap();
    let rows = String::from_utf8(out.stdout).unwrap().lines().count();
    assert_eq!(rows, ok, "every answered request has its audit record");
}

#[tokio::test]
async fn private_keys_are_encrypted_at_rest() {
    use stead_core::directory::key_context;
    use stead_core::store::StoredKey;
    use stead_core::{MasterKey, SigningAlg, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = stead_store::SqliteStore::open(&dir.path().join("stead.db")).await.unwrap();
    let master = MasterKey::generate().unwrap();
    let plan =
        stead_core::provision::parse("[[tenants]]\nid = \"K\"\n", &stead_core::SecretHasher::new(&master)).unwrap();
    store.apply_provisioning(&plan).await.unwrap();
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
        let mut bytes = Vec::new();
        for f in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(f.unwrap().path()).unwrap());
        }
        // Any 24-byte window of the PKCS#8 document (which holds the private key).
        let found = der.windows(24).step_by(8).any(|w| bytes.windows(24).any(|b| b == w));
        assert!(!found, "{alg:?} private key bytes found in the database files");
    }
}
