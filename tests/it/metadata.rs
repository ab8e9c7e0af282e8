//! Metadata (RFC 8414) at both URLs, and the JWKS.

use crate::harness::*;

#[tokio::test]
async fn both_metadata_urls_for_both_realms() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    for realm in ["ACME-U", "ACME-C"] {
        let a = server.get(&format!("/system/auth/{realm}/.well-known/openid-configuration")).await;
        let b = server.get(&format!("/.well-known/oauth-authorization-server/system/auth/{realm}")).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json(), b.json(), "the same JSON at both URLs");
        let m = a.json();
        assert_eq!(m["issuer"], server.issuer(realm));
        assert_eq!(m["token_endpoint"], server.token_url(realm));
        assert!(m["grant_types_supported"].as_array().unwrap().contains(&"password".into()));
        let methods = m["token_endpoint_auth_methods_supported"].as_array().unwrap();
        assert!(methods.contains(&"client_secret_post".into()) && methods.contains(&"client_secret_basic".into()));
        assert_eq!(m["response_types_supported"], serde_json::json!([]));
        let scopes = m["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&"read".into()) && scopes.contains(&"write".into()));
        let jwks = server.raw(server.http.get(m["jwks_uri"].as_str().unwrap())).await;
        assert_eq!(jwks.status, 200);
        let keys = jwks.json()["keys"].as_array().unwrap().clone();
        assert!(!keys.is_empty());
        for key in keys {
            assert!(key["kid"].is_string());
            assert!(key.get("d").is_none(), "no private member in the JWKS");
        }
    }
    for path in [
        "/system/auth/NOPE-U/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/system/auth/ACME-Q",
        "/system/auth/NOPE-C/oauth2/jwks",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["error"].is_string());
    }
    let r = server.raw(server.http.post(server.url("/system/auth/ACME-U/.well-known/openid-configuration"))).await;
    assert_eq!(r.status, 405);
    let r = server.raw(server.http.post(server.url("/system/auth/NOPE-U/oauth2/jwks"))).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_tenant_imported_while_running_gets_keys_and_metadata() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    stead.import_ok(&format!(
        "[[tenants]]\nid = \"LATE\"\nsigning_alg = \"EdDSA\"\n[[tenants.scopes]]\nname = \"read\"\n[[tenants.clients]]\nid = \"app\"\nsecret = \"{SECRET}\"\nrealms = [\"user\"]\nscopes = [\"read\"]\n[[tenants.users]]\nid = \"1\"\nusername = \"pa\"\n"
    ));
    let took = eventually(std::time::Duration::from_secs(1), || async {
        server.token("LATE-U", &user_form("pa")).await.status == 200
    })
    .await;
    assert!(took.is_some(), "a new tenant works within 1 s");
    let token = server.token("LATE-U", &user_form("pa")).await.access_token();
    verify(&server, "LATE-U", &token, "LATE").await;
}
