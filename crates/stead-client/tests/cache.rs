//! The token cache against a fake token endpoint that counts requests.

mod support;

use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use stead_client::{ClientAuth, ClientCredentials, Error, Subject, TokenCache, TokenClient, TokenEndpoint};
use support::Fake;

fn cache() -> TokenCache {
    TokenCache::new(TokenClient::new().unwrap(), ClientCredentials::new("app", "s3cret"))
}

fn endpoint(fake: &Fake, realm: &str) -> TokenEndpoint {
    TokenEndpoint::parse(&format!("{}/system/auth/{realm}", fake.base)).unwrap()
}

fn pa() -> Subject {
    Subject::Username("pa".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_one_key_make_one_http_call() {
    let fake = Fake::start().await;
    fake.state.token_delay_ms.store(200, Ordering::SeqCst);
    let cache = cache();
    let users = endpoint(&fake, "T1-U");
    let calls = (0..50).map(|i| {
        let (cache, users) = (cache.clone(), users.clone());
        // The same scope set, in different orders.
        let scopes: &[&str] = if i % 2 == 0 { &["read write"] } else { &["write", "read", "read"] };
        tokio::spawn(async move { cache.token(&users, &pa(), scopes).await.unwrap().access_token().to_owned() })
    });
    let tokens: Vec<String> = futures_join(calls).await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(fake.token_requests(), 1);
    // Cached afterwards.
    assert_eq!(cache.token(&users, &pa(), &["read", "write"]).await.unwrap().access_token(), "tok-1");
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(cache.len(), 1);
    let form = fake.state.token_forms.lock().unwrap()[0].clone();
    assert!(form.contains("scope=read+write") && form.contains("subject_username=pa"), "{form}");

    // Another subject, scope set or realm is another key.
    fake.state.token_delay_ms.store(0, Ordering::SeqCst);
    let other = [
        cache.token(&users, &Subject::UserId("1001".into()), &["read write"]).await.unwrap(),
        cache.token(&users, &pa(), &["read"]).await.unwrap(),
        cache.token(&endpoint(&fake, "T1-C"), &Subject::Email("j@x.io".into()), &["read write"]).await.unwrap(),
    ];
    let names: Vec<&str> = other.iter().map(|t| t.access_token()).collect();
    assert_eq!(names, ["tok-2", "tok-3", "tok-4"]);
    assert_eq!(other[1].scope(), "read");
    assert_eq!(cache.len(), 4);
}

async fn futures_join<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let fake = Fake::start().await;
    // A 2 s token is refreshed once less than half of it (1 s) remains.
    fake.state.token_ttl.store(2, Ordering::SeqCst);
    let cache = cache();
    let users = endpoint(&fake, "T1-U");
    let first = cache.token(&users, &pa(), &["read"]).await.unwrap();
    assert_eq!(first.access_token(), "tok-1");
    assert!(first.expires_in() <= Duration::from_secs(2));
    assert!(first.refresh_at() < first.expires_at());
    assert_eq!(cache.token(&users, &pa(), &["read"]).await.unwrap().access_token(), "tok-1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(cache.token(&users, &pa(), &["read"]).await.unwrap().access_token(), "tok-2");
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn a_transient_failure_while_refreshing_keeps_the_unexpired_token() {
    let fake = Fake::start().await;
    fake.state.token_ttl.store(4, Ordering::SeqCst);
    let cache = cache();
    let users = endpoint(&fake, "T1-U");
    assert_eq!(cache.token(&users, &pa(), &["read"]).await.unwrap().access_token(), "tok-1");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    fake.script(503, json!({"error": "temporarily_unavailable", "error_description": "storage down"}));
    assert_eq!(cache.token(&users, &pa(), &["read"]).await.unwrap().access_token(), "tok-1");
    // Not cached: the next call tries again, and succeeds.
    assert_eq!(cache.token(&users, &pa(), &["read"]).await.unwrap().access_token(), "tok-3");
    // A refusal is not papered over.
    cache.invalidate(&users, &pa(), &["read"]);
    fake.script(400, json!({"error": "invalid_grant", "error_description": "subject disabled"}));
    let err = cache.token(&users, &pa(), &["read"]).await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_grant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_are_shared_by_concurrent_callers_but_not_cached() {
    let fake = Fake::start().await;
    fake.state.token_delay_ms.store(200, Ordering::SeqCst);
    fake.script(400, json!({"error": "invalid_scope", "error_description": "scope admin is not assigned"}));
    let cache = cache();
    let users = endpoint(&fake, "T1-U");
    let calls = (0..10).map(|_| {
        let (cache, users) = (cache.clone(), users.clone());
        tokio::spawn(async move { cache.token(&users, &pa(), &["admin"]).await })
    });
    for result in futures_join(calls).await {
        match result {
            Err(Error::OAuth { status: 400, error, description }) => {
                assert_eq!(error, "invalid_scope");
                assert_eq!(description.as_deref(), Some("scope admin is not assigned"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(cache.token(&users, &pa(), &["admin"]).await.unwrap().access_token(), "tok-2");
}

#[tokio::test]
async fn a_cancelled_request_does_not_wedge_its_key() {
    let fake = Fake::start().await;
    fake.state.token_delay_ms.store(300, Ordering::SeqCst);
    let cache = cache();
    let users = endpoint(&fake, "T1-U");
    let cancelled = tokio::time::timeout(Duration::from_millis(50), cache.token(&users, &pa(), &["read"])).await;
    assert!(cancelled.is_err());
    fake.state.token_delay_ms.store(0, Ordering::SeqCst);
    let token = cache.token(&users, &pa(), &["read"]).await.unwrap();
    assert_eq!(token.access_token(), "tok-2");
}

#[tokio::test]
async fn the_cache_is_bounded_least_recently_used_first() {
    let fake = Fake::start().await;
    let cache = TokenCache::builder(TokenClient::new().unwrap(), ClientCredentials::new("app", "s3cret"))
        .max_entries(2)
        .build();
    let users = endpoint(&fake, "T1-U");
    let user = |n: &str| Subject::UserId(n.into());
    cache.token(&users, &user("1"), &["read"]).await.unwrap();
    cache.token(&users, &user("2"), &["read"]).await.unwrap();
    cache.token(&users, &user("1"), &["read"]).await.unwrap();
    cache.token(&users, &user("3"), &["read"]).await.unwrap();
    assert_eq!((cache.len(), fake.token_requests()), (2, 3));
    cache.token(&users, &user("1"), &["read"]).await.unwrap();
    assert_eq!(fake.token_requests(), 3, "1 was used recently and kept");
    cache.token(&users, &user("2"), &["read"]).await.unwrap();
    assert_eq!(fake.token_requests(), 4, "2 was evicted");
    cache.clear();
    assert!(cache.is_empty());
}

#[tokio::test]
async fn basic_authentication_and_invalid_requests() {
    let fake = Fake::start().await;
    let cache = TokenCache::builder(TokenClient::new().unwrap(), ClientCredentials::new("app", "s3cret"))
        .auth(ClientAuth::Basic)
        .build();
    let users = endpoint(&fake, "T1-U");
    cache.token(&users, &pa(), &["read"]).await.unwrap();
    let headers = fake.state.token_headers.lock().unwrap()[0].clone();
    assert!(headers["authorization"].to_str().unwrap().starts_with("Basic "));
    assert!(!fake.state.token_forms.lock().unwrap()[0].contains("client_secret"));
    let err = cache.token(&users, &pa(), &[" "]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)));
    assert_eq!(fake.token_requests(), 1);
    assert!(!format!("{cache:?}").contains("s3cret"));
}
