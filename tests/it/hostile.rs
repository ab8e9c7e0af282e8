//! Hostile and malformed input: always a 4xx JSON error, never a 5xx, a
//! panic or a hang, and the server keeps serving afterwards.

use crate::harness::*;

async fn post_raw(server: &Server, body: Vec<u8>) -> Reply {
    server
        .raw(
            server
                .http
                .post(server.token_url("ACME-U"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
}

#[tokio::test]
async fn malformed_bodies_are_invalid_request() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let valid = encode_form(&user_form("pa"));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("NUL in value", valid.replace("subject_username=pa", "subject_username=p%00a").into_bytes()),
        ("raw NUL", valid.replace("subject_username=pa", "subject_username=p\0a").into_bytes()),
        ("CR LF", valid.replace("subject_username=pa", "subject_username=pa%0D%0AX-Injected%3A+1").into_bytes()),
        ("invalid UTF-8 escaped", valid.replace("subject_username=pa", "subject_username=%C3%28").into_bytes()),
        ("invalid UTF-8 raw", [valid.as_bytes(), b"&scope2=\xff\xfe"].concat()),
        ("bad escape", valid.replace("grant_type=password", "grant_type=pass%zzword").into_bytes()),
        ("truncated escape", format!("{valid}&x=%4").into_bytes()),
        ("duplicate grant_type", format!("{valid}&grant_type=password").into_bytes()),
        ("empty client_id", valid.replace("client_id=app", "client_id=").into_bytes()),
    ];
    for (name, body) in cases {
        let r = post_raw(&server, body).await;
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        r.assert_error(400, "invalid_request");
    }
    server.token("ACME-U", &user_form("pa")).await.access_token();
}

#[tokio::test]
async fn thousands_of_parameters_and_oversized_bodies() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let valid = encode_form(&user_form("pa"));

    // Thousands of unknown parameters within 16 KiB are ignored.
    let mut many = valid.clone();
    while many.len() < 16 * 1024 - 8 {
        many.push_str("&a=b");
    }
    many.truncate(16 * 1024);
    let r = post_raw(&server, many.clone().into_bytes()).await;
    assert!(r.status == 200 || r.status == 400, "{}: {}", r.status, r.body);

    // One byte over 16 KiB: 413 with a JSON body.
    let mut big = valid.clone();
    big.push_str("&pad=");
    big.push_str(&"x".repeat(16 * 1024 + 1 - big.len()));
    let r = post_raw(&server, big.into_bytes()).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["error"].is_string());

    // A large body without Content-Length (chunked) is cut off too.
    let mut request = String::from(
        "POST /system/auth/ACME-U/oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for _ in 0..20 {
        request.push_str(&format!("400\r\n{}\r\n", "a".repeat(1024)));
    }
    request.push_str("0\r\n\r\n");
    let response = raw_http(&server, request.as_bytes());
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    // A megabyte of parameters with Content-Length is refused before it is read.
    let response = raw_http(
        &server,
        b"POST /system/auth/ACME-U/oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\na=b&a=b",
    );
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    // Oversized is 413 whatever the content type claims.
    let response = raw_http(
        &server,
        b"POST /system/auth/ACME-U/oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{}",
    );
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    server.token("ACME-U", &user_form("pa")).await.access_token();
}

/// Sends raw bytes over TCP and returns the whole response.
pub fn raw_http(server: &Server, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let addr = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn hostile_headers_and_subjects() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    for auth in ["Basic", "Basic !!!", "Basic Og==", "Basic YWJj", "basic "] {
        let r = server
            .raw(
                server
                    .http
                    .post(server.token_url("ACME-U"))
                    .header("authorization", auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=password&scope=read&subject_username=pa"),
            )
            .await;
        assert!(r.status == 401 || r.status == 400, "{auth}: {} {}", r.status, r.body);
        assert!(r.json()["error"].is_string());
    }
    let long = "x".repeat(10_000);
    server.token("ACME-U", &user_form(&long)).await.assert_error(400, "invalid_grant");
    server.token("ACME-U", &user_form("pa' OR '1'='1")).await.assert_error(400, "invalid_grant");
    server.token("ACME-U", &user_form("%")).await.assert_error(400, "invalid_grant");
    let r = server
        .raw(
            server
                .http
                .post(server.token_url("ACME-U"))
                .header("content-type", "application/x-www-form-urlencoded; charset=UTF-8")
                .body(encode_form(&user_form("pa"))),
        )
        .await;
    assert_eq!(r.status, 200, "charset parameter accepted: {}", r.body);
    let r = server.raw(server.http.post(server.token_url("ACME-U")).body(encode_form(&user_form("pa")))).await;
    r.assert_error(400, "invalid_request");
}

/// RFC 6749 §5.2: `error_description` is printable ASCII without `"` and
/// `\`, whatever the request held.
#[tokio::test]
async fn error_descriptions_keep_to_the_rfc_character_set() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let allowed = |s: &str| s.chars().all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e'));
    let scopes = ["é", "a\"b", "back\\slash", "日本", "read \u{202e}evil"];
    for scope in scopes {
        let mut form = user_form("pa");
        form.retain(|(k, _)| *k != "scope");
        form.push(("scope", scope));
        let r = server.token("ACME-U", &form).await;
        assert!(r.status == 400, "{scope}: {} {}", r.status, r.body);
        let description = r.json()["error_description"].as_str().expect("a description").to_owned();
        assert!(allowed(&description), "{scope}: {description:?}");
    }
    let r = server.token("ACME-U", &user_form("ü\"\\")).await;
    let description = r.json()["error_description"].as_str().unwrap_or_default().to_owned();
    assert!(allowed(&description), "{description:?}");
}
