//! The verifier against a fake issuer: discovery, the key cache, every
//! check, and the axum layer.

mod support;

use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use stead_client::{SubjectType, Verifier, VerifyError};
use support::{b64, now, Fake, Signer, AUDIENCE};

fn verifier(fake: &Fake) -> Verifier {
    Verifier::builder(&fake.issuer).audience(AUDIENCE).build().unwrap()
}

#[tokio::test]
async fn verifies_all_three_algorithms_and_exposes_the_claims() {
    let fake = Fake::start().await;
    let signers = [Signer::es256("e1"), Signer::rs256("r1"), Signer::eddsa("d1")];
    fake.set_keys(&signers.iter().collect::<Vec<_>>());
    let verifier = Verifier::discover(&fake.issuer, AUDIENCE).await.unwrap();
    for signer in &signers {
        let token =
            verifier.verify(&signer.sign(&fake.claims())).await.unwrap_or_else(|e| panic!("{}: {e}", signer.alg));
        assert_eq!(token.subject(), "1001");
        assert_eq!(token.subject_type(), Some(&SubjectType::User));
        assert_eq!(token.actor(), Some("app"));
        assert_eq!(token.scopes(), ["read", "write"]);
        assert_eq!(token.issuer(), fake.issuer);
        assert_eq!((token.tenant(), token.username(), token.client_id()), (Some("T1"), Some("pa"), Some("app")));
    }
    assert_eq!(fake.jwks_fetches(), 1, "the key set is cached");
    assert_eq!(verifier.jwks_fetches(), 1);
    // The full media type, any case, also names an access token.
    let header = json!({"alg": "ES256", "typ": "Application/AT+JWT", "kid": "e1"});
    verifier.verify(&signers[0].sign_with_header(&header, &fake.claims())).await.unwrap();
}

#[tokio::test]
async fn refuses_forgeries_and_tokens_for_others() {
    let fake = Fake::start().await;
    let (ec, rsa) = (Signer::es256("e1"), Signer::rs256("r1"));
    fake.set_keys(&[&ec, &rsa]);
    let v = verifier(&fake);
    let claims = fake.claims();
    let with = |changes: serde_json::Value| {
        let mut c = claims.clone();
        for (k, val) in changes.as_object().unwrap() {
            c[k] = val.clone();
        }
        c
    };
    let good = ec.sign(&claims);
    let mut parts = good.split('.');
    let (h, p) = (parts.next().unwrap(), parts.next().unwrap());
    let unsigned = format!("{}.{p}.", b64(json!({"alg": "none", "typ": "at+jwt"}).to_string()));
    let tampered =
        format!("{h}.{}.{}", b64(with(json!({"sub": "1002"})).to_string()), good.rsplit('.').next().unwrap());
    // A key of the right kid but another private key.
    let impostor = Signer::es256("e1").sign(&claims);
    // alg confusion: an RS256 header on the EC key's kid, and HS256 keyed
    // with public key material.
    let confused = rsa.sign_with_header(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "e1"}), &claims);
    let hs256 = format!("{}.{p}.c2ln", b64(json!({"alg": "HS256", "typ": "at+jwt", "kid": "e1"}).to_string()));
    let id_token = ec.sign_with_header(&json!({"alg": "ES256", "typ": "JWT", "kid": "e1"}), &claims);
    let cases: Vec<(String, VerifyError)> = vec![
        (unsigned, VerifyError::UnsupportedAlgorithm("none".into())),
        (hs256, VerifyError::UnsupportedAlgorithm("HS256".into())),
        (id_token, VerifyError::WrongType),
        (tampered, VerifyError::BadSignature),
        (impostor, VerifyError::BadSignature),
        (confused, VerifyError::UnknownKey),
        (ec.sign(&with(json!({"iss": "https://evil.test/system/auth/T1-U"}))), VerifyError::WrongIssuer),
        (ec.sign(&with(json!({"aud": "https://other.test"}))), VerifyError::WrongAudience),
        (ec.sign(&with(json!({"exp": now() - 120}))), VerifyError::Expired),
        (ec.sign(&with(json!({"nbf": now() + 120}))), VerifyError::NotYetValid),
        (ec.sign(&with(json!({"sub": null}))), VerifyError::InvalidClaim("sub")),
        ("not-a-jwt".into(), VerifyError::Malformed("a JWS has three dot-separated parts".into())),
    ];
    for (token, expected) in cases {
        assert_eq!(v.verify(&token).await.err(), Some(expected), "{token:.60}");
    }
    // An audience array holding ours is accepted.
    assert!(v.verify(&ec.sign(&with(json!({"aud": ["https://other.test", AUDIENCE]})))).await.is_ok());
    // Expired within the leeway passes; a shorter leeway refuses it.
    let late = ec.sign(&with(json!({"exp": now() - 5})));
    assert!(v.verify(&late).await.is_ok());
    let strict = Verifier::builder(&fake.issuer).audience(AUDIENCE).leeway(Duration::ZERO).build().unwrap();
    assert_eq!(strict.verify(&late).await.err(), Some(VerifyError::Expired));
}

#[tokio::test]
async fn required_scopes_come_from_the_verifier_and_the_call() {
    let fake = Fake::start().await;
    let ec = Signer::es256("e1");
    fake.set_keys(&[&ec]);
    let token = ec.sign(&fake.claims());
    let v = Verifier::builder(&fake.issuer).audience(AUDIENCE).require_scopes(["read"]).build().unwrap();
    assert!(v.verify(&token).await.is_ok());
    assert!(v.verify_with_scopes(&token, &["write"]).await.is_ok());
    assert_eq!(
        v.verify_with_scopes(&token, &["admin"]).await.err(),
        Some(VerifyError::InsufficientScope { required: vec!["read".into(), "admin".into()] })
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_at_a_limited_rate() {
    let fake = Fake::start().await;
    let (old, new) = (Signer::es256("old"), Signer::eddsa("new"));
    fake.set_keys(&[&old]);
    let v = Verifier::builder(&fake.issuer)
        .audience(AUDIENCE)
        .jwks_refetch_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    v.verify(&old.sign(&fake.claims())).await.unwrap();
    assert_eq!(fake.jwks_fetches(), 1);

    // The issuer rotates; the next token names the new kid.
    tokio::time::sleep(Duration::from_millis(350)).await;
    fake.set_keys(&[&old, &new]);
    let rotated = new.sign(&fake.claims());
    let concurrent: Vec<_> = (0..20)
        .map(|_| {
            let (v, t) = (v.clone(), rotated.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for task in concurrent {
        task.await.unwrap().unwrap();
    }
    assert_eq!(fake.jwks_fetches(), 2, "one fetch for all concurrent misses");

    // Made-up kids do not make the verifier hammer the issuer.
    let stranger = Signer::es256("stranger");
    for _ in 0..10 {
        assert_eq!(v.verify(&stranger.sign(&fake.claims())).await.err(), Some(VerifyError::UnknownKey));
    }
    assert_eq!(fake.jwks_fetches(), 2, "within the refetch interval");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(v.verify(&stranger.sign(&fake.claims())).await.err(), Some(VerifyError::UnknownKey));
    assert_eq!(fake.jwks_fetches(), 3);
    // Other issuers' tokens never cause a fetch.
    let mut foreign = fake.claims();
    foreign["iss"] = json!("https://elsewhere.test");
    assert_eq!(v.verify(&stranger.sign(&foreign)).await.err(), Some(VerifyError::WrongIssuer));
    assert_eq!(fake.jwks_fetches(), 3);
}

#[tokio::test]
async fn stale_keys_are_refreshed_and_kept_while_the_issuer_is_down() {
    let fake = Fake::start().await;
    let ec = Signer::es256("e1");
    fake.set_keys(&[&ec]);
    let v = Verifier::builder(&fake.issuer)
        .audience(AUDIENCE)
        .jwks_max_age(Duration::from_millis(100))
        .jwks_refetch_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let token = ec.sign(&fake.claims());
    v.verify(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    v.verify(&token).await.unwrap();
    assert_eq!(fake.jwks_fetches(), 2, "refetched once stale");
    fake.state.jwks_broken.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    v.verify(&token).await.expect("the old keys still verify");
    assert_eq!(fake.jwks_fetches(), 3);
}

#[tokio::test]
async fn discovery_falls_back_to_oidc_and_checks_the_issuer() {
    let fake = Fake::start().await;
    let ec = Signer::es256("e1");
    fake.set_keys(&[&ec]);
    fake.state.rfc8414_off.store(true, Ordering::SeqCst);
    let v = Verifier::discover(&fake.issuer, AUDIENCE).await.unwrap();
    v.verify(&ec.sign(&fake.claims())).await.unwrap();

    // RFC 8414 §3.3: metadata naming another issuer is not used.
    let fake = Fake::start().await;
    *fake.state.metadata_issuer_override.lock().unwrap() = Some("https://evil.test".into());
    let err = Verifier::discover(&fake.issuer, AUDIENCE).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Unavailable(m) if m.contains("evil.test")), "{err}");

    // An unreachable issuer: 503-worthy, not the token's fault.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}/system/auth/T1-U", listener.local_addr().unwrap());
    drop(listener);
    let v = Verifier::builder(&gone).audience(AUDIENCE).build().unwrap();
    let mut claims = fake.claims();
    claims["iss"] = json!(gone);
    let err = v.verify(&ec.sign(&claims)).await.unwrap_err();
    assert!(matches!(err, VerifyError::Unavailable(_)), "{err}");
    assert_eq!(err.status(), 503);
    // A configured jwks_uri skips discovery.
    let fake = Fake::start().await;
    fake.set_keys(&[&ec]);
    let v = Verifier::builder(&fake.issuer)
        .audience(AUDIENCE)
        .jwks_uri(format!("{}/oauth2/jwks", fake.issuer))
        .build()
        .unwrap();
    v.verify(&ec.sign(&fake.claims())).await.unwrap();
    assert_eq!(fake.state.metadata_fetches.load(Ordering::SeqCst), 0);
}

#[cfg(feature = "axum")]
mod layer {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::{Json, Router};
    use stead_client::axum::BearerLayer;
    use stead_client::VerifiedToken;
    use tower::ServiceExt;

    async fn me(token: VerifiedToken) -> Json<serde_json::Value> {
        Json(json!({"sub": token.subject(), "act": token.actor(), "scopes": token.scopes()}))
    }

    async fn maybe(token: Option<VerifiedToken>) -> String {
        token.map(|t| t.subject().to_owned()).unwrap_or_default()
    }

    fn app(v: &Verifier) -> Router {
        Router::new()
            .route("/me", get(me))
            .route("/admin", get(me).layer(BearerLayer::new(v.clone()).require_scopes(["admin"])))
            .layer(BearerLayer::new(v.clone()).require_scopes(["read"]).realm("test-api"))
            .route("/open", get(maybe))
    }

    async fn call(app: &Router, path: &str, auth: Option<&str>) -> (StatusCode, String, String) {
        let mut req = Request::get(path);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let challenge =
            res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        (status, challenge, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn rejects_with_rfc_6750_challenges_and_admits_valid_tokens() {
        let fake = Fake::start().await;
        let ec = Signer::es256("e1");
        fake.set_keys(&[&ec]);
        let v = verifier(&fake);
        let app = app(&v);
        let token = ec.sign(&fake.claims());
        let bearer = format!("Bearer {token}");

        let (status, _, body) = call(&app, "/me", Some(&bearer)).await;
        assert_eq!(status, StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({"sub": "1001", "act": "app", "scopes": ["read", "write"]}));

        let (status, challenge, _) = call(&app, "/me", None).await;
        assert_eq!((status, challenge.as_str()), (StatusCode::UNAUTHORIZED, "Bearer realm=\"test-api\""));
        let (status, challenge, _) = call(&app, "/me", Some("Basic YTpi")).await;
        assert_eq!((status, challenge.as_str()), (StatusCode::UNAUTHORIZED, "Bearer realm=\"test-api\""));

        let (status, challenge, body) = call(&app, "/me", Some("Bearer not.a.token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(challenge.starts_with("Bearer realm=\"test-api\", error=\"invalid_token\", error_description=\""));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"], "invalid_token");

        let mut expired = fake.claims();
        expired["exp"] = json!(now() - 3600);
        let (status, challenge, _) = call(&app, "/me", Some(&format!("Bearer {}", ec.sign(&expired)))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(challenge.contains("error_description=\"the access token has expired\""), "{challenge}");

        let (status, challenge, _) = call(&app, "/admin", Some(&bearer)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.ends_with("scope=\"admin\""));

        let mut write_only = fake.claims();
        write_only["scope"] = json!("write");
        let (status, challenge, _) = call(&app, "/me", Some(&format!("Bearer {}", ec.sign(&write_only)))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(challenge.ends_with("scope=\"read\""), "{challenge}");

        let (status, challenge, _) = call(&app, "/me", Some("Bearer a b")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(challenge.contains("error=\"invalid_request\""));

        // Outside the layer, Option<VerifiedToken> is None.
        let (status, _, body) = call(&app, "/open", Some(&bearer)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
        assert_eq!(fake.jwks_fetches(), 1);
    }

    #[tokio::test]
    async fn answers_503_when_the_keys_cannot_be_fetched() {
        let fake = Fake::start().await;
        let ec = Signer::es256("e1");
        fake.state.jwks_broken.store(true, Ordering::SeqCst);
        let app = app(&verifier(&fake));
        let (status, challenge, body) = call(&app, "/me", Some(&format!("Bearer {}", ec.sign(&fake.claims())))).await;
        assert_eq!((status, challenge.as_str()), (StatusCode::SERVICE_UNAVAILABLE, ""));
        assert!(!body.contains("127.0.0.1"), "no internals: {body}");
    }
}
