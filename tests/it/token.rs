//! The token endpoint of SPEC §2–§5: successes in both realms, both client
//! authentication methods, and every row of the error table.

use crate::harness::*;
use base64::Engine;

fn basic(id: &str, secret: &str) -> String {
    // RFC 6749 §2.3.1: form-urlencode, then base64.
    let pair = format!("{}:{}", urlencode(id), urlencode(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

#[tokio::test]
async fn user_token_has_the_claims_of_spec_4() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let reply = server.token("ACME-U", &user_form("pa")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.header("content-type").unwrap().starts_with("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read");
    let claims = verify(&server, "ACME-U", body["access_token"].as_str().unwrap(), "https://api.acme.test").await;
    assert_eq!(claims["iss"], server.issuer("ACME-U"));
    assert_eq!(claims["sub"], "1001");
    assert_eq!(claims["aud"], "https://api.acme.test");
    assert_eq!(claims["client_id"], "app");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["act"], serde_json::json!({"sub": "app"}));
    assert_eq!(claims["subject_type"], "user");
    assert_eq!(claims["tenant"], "ACME");
    assert_eq!(claims["preferred_username"], "pa");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
}

#[tokio::test]
async fn customer_token_and_case_insensitive_subjects() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let token = server.token("ACME-C", &customer_form("jane@EXAMPLE.com")).await.access_token();
    let claims = verify(&server, "ACME-C", &token, "https://api.acme.test").await;
    assert_eq!(claims["sub"], "c-42");
    assert_eq!(claims["subject_type"], "customer");
    assert_eq!(claims["email"], "Jane@Example.com");
    assert_eq!(claims["iss"], server.issuer("ACME-C"));

    let token = server.token("ACME-U", &user_form("bob.SMITH")).await.access_token();
    let claims = verify(&server, "ACME-U", &token, "https://api.acme.test").await;
    assert_eq!(claims["sub"], "1002");
    assert_eq!(claims["preferred_username"], "Bob.Smith");
}

#[tokio::test]
async fn user_by_id_and_by_both() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let mut form = user_form("pa");
    form.pop();
    form.push(("subject_userid", "1002"));
    let token = server.token("ACME-U", &form).await.access_token();
    assert_eq!(verify(&server, "ACME-U", &token, "https://api.acme.test").await["sub"], "1002");

    form.push(("subject_username", "BOB.smith"));
    server.token("ACME-U", &form).await.access_token();

    // User ids match exactly.
    let mut by_wrong_case = user_form("pa");
    by_wrong_case.pop();
    by_wrong_case.push(("subject_userid", "1001 "));
    server.token("ACME-U", &by_wrong_case).await.assert_error(400, "invalid_grant");

    // Username and id naming different users.
    let mut mismatch = user_form("pa");
    mismatch.push(("subject_userid", "1002"));
    server.token("ACME-U", &mismatch).await.assert_error(400, "invalid_grant");

    // Both given, one of them unknown: the pair names no user.
    let mut unknown_id = user_form("pa");
    unknown_id.push(("subject_userid", "no-such-id"));
    server.token("ACME-U", &unknown_id).await.assert_error(400, "invalid_grant");
    let mut unknown_name = user_form("no.such.user");
    unknown_name.push(("subject_userid", "1001"));
    server.token("ACME-U", &unknown_name).await.assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn scopes_are_a_deduplicated_subset() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let mut form = user_form("pa");
    form[3] = ("scope", "write read write");
    let body = server.token("ACME-U", &form).await.json();
    assert_eq!(body["scope"], "write read");

    for (scope, why) in
        [("", "empty"), ("   ", "blank"), ("admin", "not assigned"), ("nope", "unknown"), ("read nope", "one unknown")]
    {
        form[3] = ("scope", scope);
        let r = server.token("ACME-U", &form).await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        r.assert_error(400, "invalid_scope");
    }
    let without: Vec<_> = user_form("pa").into_iter().filter(|(k, _)| *k != "scope").collect();
    server.token("ACME-U", &without).await.assert_error(400, "invalid_scope");
}

#[tokio::test]
async fn basic_authentication_with_awkward_secrets() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let form = [("grant_type", "password"), ("scope", "read"), ("subject_username", "pa")];
    let ok = server
        .raw(
            server
                .http
                .post(server.token_url("ACME-U"))
                .header("authorization", basic("odd-client:1", ODD_SECRET))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&form)),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["expires_in"], 600, "the client's own lifetime");

    // The same awkward secret in the body.
    let mut body = form.to_vec();
    body.push(("client_id", "odd-client:1"));
    body.push(("client_secret", ODD_SECRET));
    server.token("ACME-U", &body).await.access_token();

    // A wrong secret under Basic: 401 with WWW-Authenticate.
    let bad = server
        .raw(
            server
                .http
                .post(server.token_url("ACME-U"))
                .header("authorization", basic("odd-client:1", "a:b%c+d e"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&form)),
        )
        .await;
    bad.assert_error(401, "invalid_client");
    assert!(bad.header("www-authenticate").unwrap().starts_with("Basic"), "{:?}", bad.headers);

    // Basic and body credentials together.
    let both = server
        .raw(
            server
                .http
                .post(server.token_url("ACME-U"))
                .header("authorization", basic("app", SECRET))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&user_form("pa"))),
        )
        .await;
    both.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn every_row_of_the_error_table() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let without = |key: &str| -> Vec<(&str, &str)> { user_form("pa").into_iter().filter(|(k, _)| *k != key).collect() };
    let with = |key: &'static str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        user_form("pa").into_iter().map(|(k, v)| if k == key { (k, value) } else { (k, v) }).collect()
    };

    // invalid_request
    server.token("ACME-U", &without("grant_type")).await.assert_error(400, "invalid_request");
    let mut dup = user_form("pa");
    dup.push(("scope", "read"));
    server.token("ACME-U", &dup).await.assert_error(400, "invalid_request");
    server.token("ACME-U", &with("subject_username", "")).await.assert_error(400, "invalid_request");
    server.token("ACME-U", &without("subject_username")).await.assert_error(400, "invalid_request");
    let wrong_type = server
        .raw(server.http.post(server.token_url("ACME-U")).header("content-type", "application/json").body("{}"))
        .await;
    wrong_type.assert_error(400, "invalid_request");
    let mut email_on_u = user_form("pa");
    email_on_u.push(("subject_email", "jane@example.com"));
    let r = server.token("ACME-U", &email_on_u).await;
    r.assert_error(400, "invalid_request");
    assert!(r.json()["error_description"].as_str().unwrap().contains("ACME-C"), "{}", r.body);
    let r = server.token("ACME-C", &user_form("pa")).await;
    r.assert_error(400, "invalid_request");
    assert!(r.json()["error_description"].as_str().unwrap().contains("ACME-U"), "{}", r.body);

    // unsupported_grant_type
    server.token("ACME-U", &with("grant_type", "client_credentials")).await.assert_error(400, "unsupported_grant_type");

    // invalid_client: unknown, wrong secret, disabled, other tenant, none.
    let unknown = server.token("ACME-U", &with("client_id", "nobody")).await;
    unknown.assert_error(401, "invalid_client");
    let wrong = server.token("ACME-U", &with("client_secret", "wrong")).await;
    wrong.assert_error(401, "invalid_client");
    assert_eq!(unknown.json()["error_description"], wrong.json()["error_description"], "no client-id oracle");
    assert!(wrong.header("www-authenticate").is_none(), "no Basic challenge when Basic was not used");
    let mut off = user_form("pa");
    off[1] = ("client_id", "off");
    server.token("ACME-U", &off).await.assert_error(401, "invalid_client");
    let mut other = user_form("pa");
    other[1] = ("client_id", "other-app");
    server.token("ACME-U", &other).await.assert_error(401, "invalid_client");
    let none: Vec<_> = without("client_id").into_iter().filter(|(k, _)| *k != "client_secret").collect();
    server.token("ACME-U", &none).await.assert_error(401, "invalid_client");
    server.token("ACME-U", &without("client_secret")).await.assert_error(401, "invalid_client");

    // unauthorized_client
    let mut users_only = customer_form("jane@example.com");
    users_only[1] = ("client_id", "users-only");
    server.token("ACME-C", &users_only).await.assert_error(400, "unauthorized_client");

    // invalid_grant: unknown, disabled.
    server.token("ACME-U", &user_form("nobody")).await.assert_error(400, "invalid_grant");
    server.token("ACME-U", &user_form("ghost")).await.assert_error(400, "invalid_grant");
    server.token("ACME-C", &customer_form("nobody@example.com")).await.assert_error(400, "invalid_grant");
    server.token("ACME-C", &customer_form("gone@example.com")).await.assert_error(400, "invalid_grant");

    // Nothing a refusal says or logs carries the secret.
    assert!(!server.logs().contains(SECRET), "secret in logs");
}

#[tokio::test]
async fn unknown_tenants_and_realms_are_404_and_other_methods_405() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    for realm in ["NOPE-U", "ACME-X", "ACME", "ACME-u", "AC%20ME-U"] {
        let r = server.token(realm, &user_form("pa")).await;
        assert_eq!(r.status, 404, "{realm}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = server.raw(server.http.request(method.clone(), server.token_url("ACME-U"))).await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("POST"));
        // An unknown tenant is 404 whatever the method.
        for realm in ["NOPE-U", "ACME-X"] {
            let r = server.raw(server.http.request(method.clone(), server.token_url(realm))).await;
            assert_eq!(r.status, 404, "{method} {realm}");
            assert!(r.json()["error"].is_string());
        }
    }
}

#[tokio::test]
async fn signing_algorithms_per_tenant() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    for (tenant, alg) in [("ACME", "ES256"), ("RSA", "RS256"), ("ED", "EdDSA")] {
        let realm = format!("{tenant}-U");
        let token = server.token(&realm, &user_form("pa")).await.access_token();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        let aud = if tenant == "ACME" { "https://api.acme.test" } else { tenant };
        let claims = verify(&server, &realm, &token, aud).await;
        if tenant == "RSA" {
            assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120, "tenant ttl");
        }
    }
}

#[tokio::test]
async fn unknown_customers_are_created_where_the_tenant_allows() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let token = server.token("ED-C", &customer_form("New.Person@example.com")).await.access_token();
    let first = verify(&server, "ED-C", &token, "ED").await;
    let token = server.token("ED-C", &customer_form("new.person@EXAMPLE.com")).await.access_token();
    let second = verify(&server, "ED-C", &token, "ED").await;
    assert_eq!(first["sub"], second["sub"], "one customer, found again case-insensitively");
    server.token("ED-C", &customer_form("not-an-email")).await.assert_error(400, "invalid_grant");
    // ACME does not auto-provision.
    server.token("ACME-C", &customer_form("new.person@example.com")).await.assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn unknown_parameters_are_ignored_and_jti_unique() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let mut form = user_form("pa");
    form.push(("response_type", "whatever"));
    form.push(("extra", ""));
    form.push(("extra", "twice"));
    // Introspection's parameters mean nothing here either.
    form.push(("token", ""));
    form.push(("token", "x"));
    form.push(("token_type_hint", ""));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let token = server.token("ACME-U", &form).await.access_token();
        let claims = verify(&server, "ACME-U", &token, "https://api.acme.test").await;
        assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
}
