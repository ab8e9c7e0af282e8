//! A fake issuer for the SDK's own tests: metadata, a JWKS it can rotate or
//! break, and a token endpoint that plays back scripted answers. Tokens are
//! signed here with aws-lc-rs keys. (The real server is exercised by the
//! root package's integration tests, tests/it/sdk.rs.)

#![allow(dead_code)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const REALM: &str = "T1-U";
pub const AUDIENCE: &str = "https://api.test";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A signing key and its public JWK.
pub struct Signer {
    pub kid: String,
    pub alg: &'static str,
    pub jwk: Value,
    pair: Pair,
}

impl Signer {
    pub fn es256(kid: &str) -> Signer {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                         "x": b64(&p[1..33]), "y": b64(&p[33..65])});
        Signer { kid: kid.into(), alg: "ES256", jwk, pair: Pair::Ec(pair) }
    }

    pub fn eddsa(kid: &str) -> Signer {
        let pair = Ed25519KeyPair::generate().unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                         "x": b64(pair.public_key().as_ref())});
        Signer { kid: kid.into(), alg: "EdDSA", jwk, pair: Pair::Ed(pair) }
    }

    pub fn rs256(kid: &str) -> Signer {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        // A leading zero byte on n, as some servers send it, must be tolerated.
        let n = [&[0u8][..], &c.n].concat();
        let jwk = json!({"kty": "RSA", "use": "sig", "kid": kid, "n": b64(&n), "e": b64(&c.e)});
        Signer { kid: kid.into(), alg: "RS256", jwk, pair: Pair::Rsa(pair) }
    }

    pub fn signature(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ec(p) => p.sign(&rng, message).unwrap().as_ref().to_vec(),
            Pair::Ed(p) => p.sign(message).as_ref().to_vec(),
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig).unwrap();
                sig
            }
        }
    }

    /// A JWS of `claims` with `header`.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig = self.signature(input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    /// An RFC 9068 access token of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": self.alg, "typ": "at+jwt", "kid": self.kid}), claims)
    }
}

/// What the fake issuer serves and has seen.
#[derive(Default)]
pub struct FakeState {
    pub issuer: Mutex<String>,
    pub jwks: Mutex<Vec<Value>>,
    pub jwks_broken: AtomicBool,
    pub rfc8414_off: AtomicBool,
    pub metadata_issuer_override: Mutex<Option<String>>,
    pub jwks_fetches: AtomicUsize,
    pub metadata_fetches: AtomicUsize,
    pub token_requests: AtomicUsize,
    pub token_delay_ms: AtomicU64,
    pub token_ttl: AtomicU64,
    /// Scripted answers, used first; then a fresh token each time.
    pub token_replies: Mutex<VecDeque<(u16, Value)>>,
    pub token_headers: Mutex<Vec<HeaderMap>>,
    pub token_forms: Mutex<Vec<String>>,
}

pub struct Fake {
    pub base: String,
    pub issuer: String,
    pub state: Arc<FakeState>,
}

impl Fake {
    pub async fn start() -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = format!("{base}/system/auth/{REALM}");
        let state = Arc::new(FakeState::default());
        *state.issuer.lock().unwrap() = issuer.clone();
        state.token_ttl.store(3600, Ordering::SeqCst);
        let app = Router::new()
            .route(&format!("/.well-known/oauth-authorization-server/system/auth/{REALM}"), get(rfc8414))
            .route(&format!("/system/auth/{REALM}/.well-known/openid-configuration"), get(oidc))
            .route(&format!("/system/auth/{REALM}/oauth2/jwks"), get(jwks))
            .route("/system/auth/{realm}/oauth2/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { base, issuer, state }
    }

    pub fn set_keys(&self, signers: &[&Signer]) {
        *self.state.jwks.lock().unwrap() = signers.iter().map(|s| s.jwk.clone()).collect();
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    pub fn script(&self, status: u16, body: Value) {
        self.state.token_replies.lock().unwrap().push_back((status, body));
    }

    /// Claims of a valid token for this issuer.
    pub fn claims(&self) -> Value {
        json!({"iss": self.issuer, "sub": "1001", "aud": AUDIENCE, "exp": now() + 600, "iat": now(),
               "jti": "j1", "client_id": "app", "scope": "read write", "act": {"sub": "app"},
               "subject_type": "user", "tenant": "T1", "preferred_username": "pa"})
    }
}

fn metadata(state: &FakeState) -> Value {
    let issuer = state.issuer.lock().unwrap().clone();
    let named = state.metadata_issuer_override.lock().unwrap().clone().unwrap_or_else(|| issuer.clone());
    json!({"issuer": named, "token_endpoint": format!("{issuer}/oauth2/token"),
           "jwks_uri": format!("{issuer}/oauth2/jwks"), "grant_types_supported": ["password"]})
}

async fn rfc8414(State(state): State<Arc<FakeState>>) -> Response {
    state.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    if state.rfc8414_off.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(metadata(&state)).into_response()
}

async fn oidc(State(state): State<Arc<FakeState>>) -> Response {
    state.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    Json(metadata(&state)).into_response()
}

async fn jwks(State(state): State<Arc<FakeState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.jwks_broken.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Json(json!({"keys": *state.jwks.lock().unwrap()})).into_response()
}

async fn token(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: String) -> Response {
    let n = state.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    state.token_headers.lock().unwrap().push(headers);
    state.token_forms.lock().unwrap().push(body.clone());
    let delay = state.token_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let scripted = state.token_replies.lock().unwrap().pop_front();
    if let Some((status, body)) = scripted {
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let scope = body
        .split('&')
        .find_map(|p| p.strip_prefix("scope="))
        .map(|s| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().unwrap().into_owned())
        .unwrap_or_default();
    let ttl = state.token_ttl.load(Ordering::SeqCst);
    Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": ttl, "scope": scope}))
        .into_response()
}
