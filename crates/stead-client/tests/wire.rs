//! The token request as it goes over the wire, against a one-shot fake
//! server that records the request and plays back a canned response.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::collections::BTreeMap;
use stead_client::{ClientAuth, ClientCredentials, Error, Subject, TokenClient, TokenEndpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the fake server saw.
struct Seen {
    request_line: String,
    headers: BTreeMap<String, Vec<String>>,
    form: BTreeMap<String, String>,
}

fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().unwrap().into_owned()
}

/// Serves one request with `status`, extra `headers` and `body`.
async fn serve_once(status: &str, headers: &str, body: &str) -> (String, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let response =
        format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let handle = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed early");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap().to_owned();
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in lines {
            let (name, value) = line.split_once(':').unwrap();
            headers.entry(name.trim().to_ascii_lowercase()).or_default().push(value.trim().to_owned());
        }
        let length: usize = headers["content-length"][0].parse().unwrap();
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
        socket.write_all(response.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
        let body = String::from_utf8(body).unwrap();
        let mut form = BTreeMap::new();
        for pair in body.split('&') {
            let (name, value) = pair.split_once('=').unwrap();
            assert!(form.insert(form_decode(name), form_decode(value)).is_none(), "duplicate {name}");
        }
        Seen { request_line, headers, form }
    });
    (base, handle)
}

const TOKEN_BODY: &str = r#"{"access_token":"eyJ.x.y","token_type":"Bearer","expires_in":3600,"scope":"knowledge.portalmgr.onbehalfof.read"}"#;
const SECRET: &str = "p:%+ q&=secret";

fn creds() -> ClientCredentials {
    ClientCredentials::new("7121f585-e403-4531-9a38-1826ebc7e7d8", SECRET)
}

#[tokio::test]
async fn body_authentication_sends_the_vendor_documented_form() {
    let (base, seen) = serve_once("200 OK", "Content-Type: application/json\r\n", TOKEN_BODY).await;
    let endpoint = TokenEndpoint::parse(&format!("{base}/system/auth/TMPRODB88619984-U")).unwrap();
    let token = TokenClient::new()
        .unwrap()
        .request_token(
            &endpoint,
            &creds(),
            ClientAuth::Body,
            &["knowledge.portalmgr.onbehalfof.read"],
            &Subject::Username("pa".into()),
        )
        .await
        .unwrap();
    assert_eq!(token.access_token, "eyJ.x.y");
    assert_eq!(token.expires_in, 3600);
    let seen = seen.await.unwrap();
    assert_eq!(seen.request_line, "POST /system/auth/TMPRODB88619984-U/oauth2/token HTTP/1.1");
    assert_eq!(seen.headers["content-type"], ["application/x-www-form-urlencoded"]);
    assert!(!seen.headers.contains_key("authorization"));
    let expected: BTreeMap<String, String> = [
        ("grant_type", "password"),
        ("client_id", "7121f585-e403-4531-9a38-1826ebc7e7d8"),
        ("client_secret", SECRET),
        ("scope", "knowledge.portalmgr.onbehalfof.read"),
        ("subject_username", "pa"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(seen.form, expected);
}

#[tokio::test]
async fn basic_authentication_sends_credentials_only_in_the_header() {
    let (base, seen) = serve_once("200 OK", "", TOKEN_BODY).await;
    let endpoint = TokenEndpoint::parse(&format!("{base}/system/auth/T1-C/oauth2/token/")).unwrap();
    let reply = TokenClient::new()
        .unwrap()
        .request_token_reply(
            &endpoint,
            &creds(),
            ClientAuth::Basic,
            &["b a", "a"],
            &Subject::Email("jane+x@example.com".into()),
        )
        .await
        .unwrap();
    assert_eq!(reply.body["token_type"], "Bearer");
    let seen = seen.await.unwrap();
    assert_eq!(seen.request_line, "POST /system/auth/T1-C/oauth2/token HTTP/1.1");
    let auth = &seen.headers["authorization"];
    assert_eq!(auth.len(), 1);
    let pair = String::from_utf8(STANDARD.decode(auth[0].strip_prefix("Basic ").unwrap()).unwrap()).unwrap();
    let (id, secret) = pair.split_once(':').unwrap();
    assert_eq!(form_decode(id), "7121f585-e403-4531-9a38-1826ebc7e7d8");
    assert_eq!(form_decode(secret), SECRET);
    assert!(!seen.form.contains_key("client_id") && !seen.form.contains_key("client_secret"));
    assert_eq!(seen.form["scope"], "b a");
    assert_eq!(seen.form["subject_email"], "jane+x@example.com");
    assert_eq!(seen.form["grant_type"], "password");
}

#[tokio::test]
async fn an_oauth_error_body_is_a_typed_error() {
    let body = r#"{"error":"invalid_client","error_description":"client authentication failed"}"#;
    let (base, seen) = serve_once("401 Unauthorized", "WWW-Authenticate: Basic\r\n", body).await;
    let endpoint = TokenEndpoint::parse(&format!("{base}/system/auth/T-U")).unwrap();
    let err = TokenClient::new()
        .unwrap()
        .request_token(
            &endpoint,
            &creds(),
            ClientAuth::Body,
            &["s"],
            &Subject::UsernameAndUserId { username: "pa".into(), userid: "1001".into() },
        )
        .await
        .unwrap_err();
    match &err {
        Error::OAuth { status, error, description } => {
            assert_eq!(*status, 401);
            assert_eq!(error, "invalid_client");
            assert_eq!(description.as_deref(), Some("client authentication failed"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "invalid_client (HTTP 401): client authentication failed");
    let seen = seen.await.unwrap();
    assert_eq!(seen.form["subject_username"], "pa");
    assert_eq!(seen.form["subject_userid"], "1001");
}

#[tokio::test]
async fn other_answers_are_http_redirect_or_invalid_response_errors() {
    let client = TokenClient::new().unwrap();
    let subject = Subject::UserId("1001".into());
    let cases: [(&str, &str, &str); 3] = [
        ("502 Bad Gateway", "", "<html>upstream down</html>"),
        ("307 Temporary Redirect", "Location: https://elsewhere.example/token\r\n", ""),
        ("200 OK", "", "<html>login page</html>"),
    ];
    for (status, headers, body) in cases {
        let (base, seen) = serve_once(status, headers, body).await;
        let endpoint = TokenEndpoint::parse(&format!("{base}/system/auth/T-U")).unwrap();
        let err = client.request_token(&endpoint, &creds(), ClientAuth::Body, &["s"], &subject).await.unwrap_err();
        seen.await.unwrap();
        match (status, &err) {
            ("502 Bad Gateway", Error::Http { status: 502, body }) => {
                assert!(body.contains("upstream down"))
            }
            ("307 Temporary Redirect", Error::Redirect { status: 307, location: Some(l) }) => {
                assert_eq!(l, "https://elsewhere.example/token")
            }
            ("200 OK", Error::InvalidResponse(_)) => {}
            _ => panic!("{status}: {err:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = TokenEndpoint::parse(&format!("http://{addr}/system/auth/T-U")).unwrap();
    let err = TokenClient::new()
        .unwrap()
        .request_token(&endpoint, &creds(), ClientAuth::Body, &["s"], &Subject::Username("pa".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(!format!("{err:?}").contains("secret"), "{err:?}");
}
