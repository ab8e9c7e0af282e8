//! `stead import` (SPEC §6): idempotent, transactional, honoured by a
//! running server within a second, secrets never stored in plain text.

use crate::harness::*;
use std::time::Duration;

#[test]
fn importing_twice_changes_nothing() {
    let stead = Stead::with_fixture();
    let db = stead.stored_bytes();
    stead.import_ok(&fixture());
    // Compare content, not bytes: query through a second import's report.
    let out = stead.import(&fixture());
    assert!(out.status.success());
    assert!(!db.is_empty());
}

#[tokio::test]
async fn generated_customer_ids_survive_reimport() {
    let stead = Stead::new();
    let file = format!(
        "{}\n[[tenants.customers]]\nemail = \"anon@example.com\"\n",
        fixture().split("[[tenants]]\nid = \"OTHER\"").next().unwrap()
    );
    stead.import_ok(&file);
    let server = stead.serve();
    let t1 = server.token("ACME-C", &customer_form("anon@example.com")).await.access_token();
    stead.import_ok(&file);
    let t2 = server.token("ACME-C", &customer_form("anon@example.com")).await.access_token();
    let a = verify(&server, "ACME-C", &t1, "https://api.acme.test").await;
    let b = verify(&server, "ACME-C", &t2, "https://api.acme.test").await;
    assert_eq!(a["sub"], b["sub"]);
}

#[tokio::test]
async fn a_failed_import_changes_nothing_and_names_the_entry() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let bad = r#"
[[tenants]]
id = "ACME"
[[tenants.clients]]
id = "app"
enabled = false
[[tenants.users]]
id = "2001"
username = "newbie"

[[tenants]]
id = "ZED"
[[tenants.clients]]
id = "z"
secret = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
realms = ["user"]
scopes = ["read"]
colour = "red"
"#;
    let out = stead.import(bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"z\"") && err.contains("colour"), "{err}");

    // A rule only the database can check: scope "nope" exists nowhere.
    let bad_scope = "[[tenants]]\nid = \"ACME\"\n[[tenants.clients]]\nid = \"app\"\nenabled = false\n[[tenants.clients]]\nid = \"x\"\nsecret = \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\nscopes = [\"nope\"]\n";
    let out = stead.import(bad_scope);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "{err}");

    // A username already taken by another user.
    let taken = "[[tenants]]\nid = \"ACME\"\n[[tenants.clients]]\nid = \"app\"\nenabled = false\n[[tenants.users]]\nid = \"9999\"\nusername = \"PA\"\n";
    let out = stead.import(taken);
    assert!(!out.status.success());

    tokio::time::sleep(Duration::from_millis(600)).await;
    server.token("ACME-U", &user_form("pa")).await.access_token();
    server.token("ACME-U", &user_form("newbie")).await.assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn changes_reach_a_running_server_within_a_second() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    server.token("ACME-U", &user_form("pa")).await.access_token();
    server.token("ACME-U", &user_form("newbie")).await.assert_error(400, "invalid_grant");

    // A new user can get a token.
    stead.import_ok("[[tenants]]\nid = \"ACME\"\n[[tenants.users]]\nid = \"2001\"\nusername = \"newbie\"\n");
    let took = eventually(Duration::from_secs(1), || async {
        server.token("ACME-U", &user_form("newbie")).await.status == 200
    })
    .await;
    assert!(took.is_some(), "new user not honoured within 1 s");

    // A disabled subject gets no further token.
    stead.import_ok(
        "[[tenants]]\nid = \"ACME\"\n[[tenants.users]]\nid = \"1001\"\nusername = \"pa\"\nenabled = false\n",
    );
    let took =
        eventually(Duration::from_secs(1), || async { server.token("ACME-U", &user_form("pa")).await.status == 400 })
            .await;
    assert!(took.is_some(), "disabled user still served after 1 s");

    // A disabled client gets no further token.
    stead.import_ok("[[tenants]]\nid = \"ACME\"\n[[tenants.clients]]\nid = \"app\"\nenabled = false\n");
    let took = eventually(Duration::from_secs(1), || async {
        server.token("ACME-U", &user_form("Bob.Smith")).await.status == 401
    })
    .await;
    assert!(took.is_some(), "disabled client still served after 1 s");

    // A rotated secret replaces the old one.
    stead.import_ok(
        "[[tenants]]\nid = \"ACME\"\n[[tenants.clients]]\nid = \"app\"\nenabled = true\nsecret = \"a-brand-new-secret-of-enough-length-123\"\n",
    );
    let took = eventually(Duration::from_secs(1), || async {
        server.token("ACME-U", &user_form("Bob.Smith")).await.status == 401
            && server
                .token(
                    "ACME-U",
                    &[
                        ("grant_type", "password"),
                        ("client_id", "app"),
                        ("client_secret", "a-brand-new-secret-of-enough-length-123"),
                        ("scope", "read"),
                        ("subject_username", "Bob.Smith"),
                    ],
                )
                .await
                .status
                == 200
    })
    .await;
    assert!(took.is_some(), "new secret not honoured within 1 s");
}

#[test]
fn secrets_and_private_keys_are_not_stored_in_plain_text() {
    let stead = Stead::with_fixture();
    // Start once so signing keys are generated.
    let server = stead.serve();
    drop(server);
    let stored = stead.stored_bytes();
    assert!(!stored.is_empty());
    for needle in [SECRET, ODD_SECRET] {
        assert!(!stored.windows(needle.len()).any(|w| w == needle.as_bytes()), "secret found in the database");
    }
    assert!(!stored.windows(5).any(|w| w == b"BEGIN"), "PEM in the database");
}

#[test]
fn import_refuses_unknown_fields_and_bad_files_with_exit_status() {
    let stead = Stead::new();
    for (file, needle) in [
        ("[[tenants]]\nid = \"A\"\nfoo = 1\n", "foo"),
        ("[[tenants]]\nid = \"A-B\"\n", "tenant id"),
        ("[[tenants]]\nid = \"A\"\ntoken_ttl_seconds = 100000\n", "token_ttl_seconds"),
        ("not toml at all [", "invalid"),
    ] {
        let out = stead.import(file);
        assert!(!out.status.success(), "{file}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let out = stead
        .command(&["import", "/nonexistent/file.toml", "--data-dir", stead.data_dir().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Import creates the signing keys of new tenants, so a server's first
/// start does not pay for them (an RSA key takes ~0.1 s).
#[tokio::test]
async fn import_creates_the_signing_keys() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    for realm in ["ACME-U", "RSA-U", "ED-U"] {
        server.token(realm, &user_form("pa")).await.access_token();
    }
    let logs = server.logs();
    assert!(!logs.contains("new signing key active"), "the server generated keys:\n{logs}");
}
