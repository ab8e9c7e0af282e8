//! Abuse resistance: brute-force protection of client authentication
//! (RFC 6749 §2.3.1), global bounds, slow clients and proxy headers. Correct
//! traffic is never refused by the defaults.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn form<'a>(client: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", client),
        ("client_secret", secret),
        ("scope", "read"),
        ("subject_username", "pa"),
    ]
}

/// A token request that a proxy says came from `from`.
async fn token_from(server: &Server, from: &str, form: &[(&str, &str)]) -> Reply {
    server
        .raw(
            server
                .http
                .post(server.token_url("ACME-U"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-forwarded-for", format!("10.9.9.9, {from}"))
                .body(encode_form(form)),
        )
        .await
}

/// The server's log without terminal colour codes.
fn plain_logs(server: &Server) -> String {
    let logs = server.logs();
    let mut out = String::with_capacity(logs.len());
    let mut chars = logs.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn assert_throttled(r: &Reply) {
    r.assert_error(429, "too_many_requests");
    let wait: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    // Up to two windows of a minute: failures past a budget count too.
    assert!((1..=121).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn a_hundred_wrong_secrets_then_429() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    // The default budget for one client from one address: 100 failures a minute.
    for i in 0..100 {
        let r = server.token("ACME-U", &form("app", "wrong-secret")).await;
        assert_eq!(r.status, 401, "wrong secret {i}: {}", r.body);
    }
    assert_throttled(&server.token("ACME-U", &form("app", "wrong-secret")).await);
    // SPEC §5: correctly authenticated traffic is never refused by default,
    // from this address too, however many failures it sent.
    server.token("ACME-U", &user_form("pa")).await.access_token();
    assert_throttled(&server.token("ACME-U", &form("app", "wrong-secret")).await);
    // Basic credentials count the same.
    let basic = |secret: &'static str| {
        server.raw(
            server
                .http
                .post(server.token_url("ACME-U"))
                .basic_auth("app", Some(secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=password&scope=read&subject_username=pa"),
        )
    };
    assert_throttled(&basic("wrong-secret").await);
    basic(SECRET).await.access_token();
    // Other clients at the same address are still served.
    server.token("ACME-U", &form("users-only", SECRET)).await.access_token();
    let logs = plain_logs(&server);
    assert!(logs.contains("failed-authentication budget of a client at one source address spent"), "{logs}");
    assert!(logs.contains(r#"error="too_many_requests""#) && logs.contains(r#"client="app""#), "{logs}");
}

#[tokio::test]
async fn a_client_attacked_from_many_addresses_keeps_working() {
    let stead = Stead::with_fixture();
    let server = stead.serve_with(&["--trust-proxy-headers", "--max-auth-failures-per-client", "20"]);
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(token_from(&server, &format!("198.51.100.{i}"), &form("app", "guess")).await.status);
    }
    // Once the client's budget is spent a wrong secret gets 429, not 401.
    assert!(statuses[..19].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses[19..].iter().all(|&s| s == 429), "{statuses:?}");
    // The real client is served, at an address without failures and at one
    // that guessed wrong before alike (SPEC §5)...
    token_from(&server, "203.0.113.5", &user_form("pa")).await.access_token();
    token_from(&server, "198.51.100.3", &user_form("pa")).await.access_token();
    // ...while every wrong secret for the client now gets 429.
    assert_throttled(&token_from(&server, "203.0.113.6", &form("app", "guess")).await);
    // Unknown client ids are throttled alike (no oracle for existence).
    let mut statuses = Vec::new();
    for i in 0..25 {
        statuses.push(token_from(&server, &format!("192.0.2.{i}"), &form("no-such-client", "guess")).await.status);
    }
    assert!(statuses[..19].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses[19..].iter().all(|&s| s == 429), "{statuses:?}");
}

#[tokio::test]
async fn one_address_trying_many_clients_is_stopped() {
    let stead = Stead::with_fixture();
    let server = stead.serve_with(&["--trust-proxy-headers", "--max-auth-failures-per-source", "5"]);
    for i in 0..5 {
        token_from(&server, "192.0.2.9", &form(&format!("c{i}"), "guess")).await.assert_error(401, "invalid_client");
    }
    assert_throttled(&token_from(&server, "192.0.2.9", &form("c9", "guess")).await);
    assert_throttled(&token_from(&server, "192.0.2.9", &form("app", "guess")).await);
    token_from(&server, "192.0.2.9", &user_form("pa")).await.access_token();
    token_from(&server, "192.0.2.10", &form("app", "guess")).await.assert_error(401, "invalid_client");
    // Introspection authenticates clients too, under the same budget.
    let introspect = |secret: &'static str| {
        server.raw(
            server
                .http
                .post(server.url("/system/auth/ACME-U/oauth2/introspect"))
                .header("x-forwarded-for", "192.0.2.9")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&[("client_id", "app"), ("client_secret", secret), ("token", "x")])),
        )
    };
    assert_throttled(&introspect("guess").await);
    assert_eq!(introspect(SECRET).await.status, 200);
}

#[tokio::test]
async fn proxy_headers_are_ignored_unless_trusted() {
    let stead = Stead::with_fixture();
    {
        let server = stead.serve_with(&["--max-auth-failures-per-client-and-source", "10"]);
        // Each request claims another address; all count against the peer.
        for i in 0..10 {
            token_from(&server, &format!("192.0.2.{i}"), &form("app", "guess"))
                .await
                .assert_error(401, "invalid_client");
        }
        assert_throttled(&token_from(&server, "192.0.2.77", &form("app", "guess")).await);
        token_from(&server, "192.0.2.78", &form("users-only", SECRET)).await.access_token();
        let logs = plain_logs(&server);
        assert!(logs.contains("remote=127.0.0.1"), "{logs}");
        assert!(!logs.contains("remote=192.0.2."), "{logs}");
    }
    let server = stead.serve_with(&["--trust-proxy-headers", "--max-auth-failures-per-client-and-source", "10"]);
    for _ in 0..10 {
        token_from(&server, "192.0.2.1", &form("app", "guess")).await.assert_error(401, "invalid_client");
    }
    assert_throttled(&token_from(&server, "192.0.2.1", &form("app", "guess")).await);
    // The rightmost entry is the proxy's; the ones before it are the client's word.
    token_from(&server, "192.0.2.2", &form("app", "guess")).await.assert_error(401, "invalid_client");
    token_from(&server, "192.0.2.2", &user_form("pa")).await.access_token();
    server.token("ACME-U", &user_form("pa")).await.access_token();
    let logs = plain_logs(&server);
    assert!(logs.contains("remote=192.0.2.2"), "{logs}");
    assert!(!logs.contains("remote=10.9.9.9"), "{logs}");
}

/// Reads until the server closes the connection; how long that took, or
/// `None` when it stayed open past `limit`.
fn time_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).unwrap()
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let stead = Stead::with_fixture();
    let server = stead.serve_with(&["--header-read-timeout", "1s", "--idle-timeout", "1s"]);

    // Headers sent a byte at a time (slowloris) are cut off.
    let mut slow = connect(&server);
    let mut writer = slow.try_clone().unwrap();
    let drip = std::thread::spawn(move || {
        let request = b"POST /system/auth/ACME-U/oauth2/token HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa";
        for byte in request.iter().cycle().take(200) {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let closed = time_to_close(&mut slow, Duration::from_secs(8)).expect("slow headers were cut off");
    assert!(closed < Duration::from_secs(4), "{closed:?}");
    drip.join().unwrap();

    // A connection that never sends anything is closed too.
    let mut silent = connect(&server);
    let closed = time_to_close(&mut silent, Duration::from_secs(8)).expect("a silent connection was closed");
    assert!(closed < Duration::from_secs(4), "{closed:?}");

    // So is an idle keep-alive connection after its request.
    let mut idle = connect(&server);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let closed = time_to_close(&mut idle, Duration::from_secs(8)).expect("an idle connection was closed");
    assert!(closed < Duration::from_secs(4), "{closed:?}");

    // Oversized headers: 431, not memory.
    let mut big = connect(&server);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    let _ = big.write_all(request.as_bytes());
    let mut answer = Vec::new();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = big.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");

    server.token("ACME-U", &user_form("pa")).await.access_token();
}

/// A token request whose headers are complete and whose body never comes.
fn hog_request(server: &Server) -> TcpStream {
    let mut hog = connect(server);
    hog.write_all(
        b"POST /system/auth/ACME-U/oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type",
    )
    .unwrap();
    hog
}

/// Whether the server has answered (or closed) `stream`, without waiting.
fn was_answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let answered = !matches!(stream.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    answered
}

#[tokio::test]
async fn saturation_sheds_load_with_503() {
    let stead = Stead::with_fixture();
    // A request timeout long enough that the hog still holds its slot on a
    // machine slowed by other tests.
    let server = stead.serve_with(&["--max-concurrent-requests", "1", "--request-timeout", "6s"]);
    // One request holds the only slot: its body never arrives. If a probe
    // below took the slot before the server read the hog's request, the
    // hog itself is shed; it is then replaced until one holds the slot.
    let hog = std::cell::RefCell::new(hog_request(&server));
    let shed = eventually(Duration::from_secs(10), || {
        if was_answered(&hog.borrow()) {
            *hog.borrow_mut() = hog_request(&server);
        }
        async { server.token("ACME-U", &user_form("pa")).await.status == 503 }
    })
    .await;
    assert!(shed.is_some(), "a saturated server sheds load");
    let r = server.token("ACME-U", &user_form("pa")).await;
    r.assert_error(503, "temporarily_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Health probes still answer.
    assert_eq!(server.get("/healthz").await.status, 200);
    // The hog times out (408) and the slot is free again.
    let freed =
        eventually(Duration::from_secs(15), || async { server.token("ACME-U", &user_form("pa")).await.status == 200 })
            .await;
    assert!(freed.is_some());
    let mut hog = hog.into_inner();
    let mut answer = Vec::new();
    hog.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = hog.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn the_global_rate_limit_is_opt_in() {
    let stead = Stead::with_fixture();
    let server = stead.serve_with(&["--max-requests-per-second", "5"]);
    let mut ok = 0;
    let mut limited = None;
    for _ in 0..30 {
        let r = server.token("ACME-U", &user_form("pa")).await;
        match r.status {
            200 => ok += 1,
            429 => limited = Some(r),
            other => panic!("{other}: {}", r.body),
        }
    }
    assert!(ok >= 5, "{ok}");
    assert_throttled(&limited.expect("some requests over the rate"));

    drop(server);
    // Without the flag, nothing limits correct requests.
    let server = stead.serve();
    for _ in 0..300 {
        server.token("ACME-U", &user_form("pa")).await.access_token();
    }
}

#[tokio::test]
async fn limits_from_the_file_and_the_environment() {
    let stead = Stead::with_fixture();
    let config = stead.data_dir().join("stead.toml");
    std::fs::write(
        &config,
        "trust_proxy_headers = true\nmax_auth_failures_per_client_and_source = 3\nmax_requests_per_second = \"off\"\n",
    )
    .unwrap();
    let dir = stead.data_dir().to_str().unwrap();
    let mut command =
        stead.command(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--config", config.to_str().unwrap()]);
    // The environment overrides the file.
    command.env("STEAD_MAX_AUTH_FAILURES_PER_CLIENT_AND_SOURCE", "5");
    let server = Server::spawn(command);
    for _ in 0..5 {
        token_from(&server, "192.0.2.50", &form("app", "guess")).await.assert_error(401, "invalid_client");
    }
    assert_throttled(&token_from(&server, "192.0.2.50", &form("app", "guess")).await);
    // trust_proxy_headers from the file: another claimed address is another source.
    token_from(&server, "192.0.2.51", &user_form("pa")).await.access_token();
}

#[test]
fn limit_flags_are_validated() {
    let stead = Stead::new();
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    for bad in [
        vec!["--max-concurrent-requests", "many"],
        vec!["--header-read-timeout", "0s"],
        vec!["--auth-failure-window", "soon"],
        vec!["--trust-proxy-headers=maybe"],
        vec!["--public-url", "not a url"],
        vec!["--public-url", "ftp://auth.example.com"],
        vec!["--public-url", "https://auth.example.com?x=1"],
        vec!["--public-url", "https://auth.example.com/#top"],
        vec!["--public-url", "https://user:pw@auth.example.com"],
        vec!["--public-url", "https:///path"],
    ] {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir];
        args.extend(bad.iter().copied());
        let out = stead.command(&args).output().unwrap();
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(!out.stderr.is_empty());
    }
    let help = stead.command(&["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--tls-cert",
        "--tls-key",
        "--trust-proxy-headers",
        "--max-auth-failures-per-source",
        "--max-auth-failures-per-client-and-source",
        "--max-auth-failures-per-client",
        "--auth-failure-window",
        "--max-concurrent-requests",
        "--max-requests-per-second",
        "--max-connections",
        "--header-read-timeout",
        "--request-timeout",
        "--idle-timeout",
        "STEAD_TRUST_PROXY_HEADERS",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
