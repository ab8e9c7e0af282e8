//! Process lifecycle: health checks, restart persistence, graceful
//! shutdown, configuration sources, logs.

use crate::harness::*;

#[tokio::test]
async fn health_and_readiness() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    assert_eq!(server.get("/healthz").await.status, 200);
    assert_eq!(server.get("/readyz").await.status, 200);
    let r = server.get("/no/such/path").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
}

#[tokio::test]
async fn on_one_cpu_one_thread_serves_concurrent_requests() {
    let stead = Stead::with_fixture();
    let server = stead.serve_on_one_cpu();
    // Every request of a burst is answered; the connections are served
    // concurrently by the one thread.
    let form = encode_form(&user_form("pa"));
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let request = server
            .http
            .post(server.token_url("ACME-U"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone());
        requests.spawn(async move { Reply::from(request.send().await.expect("request")).await });
    }
    let replies = requests.join_all().await;
    assert!(replies.iter().all(|r| r.status == 200), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    let token = replies[0].access_token();
    let introspected = server
        .raw(
            server
                .http
                .post(server.url("/system/auth/ACME-U/oauth2/introspect"))
                .basic_auth("app", Some(SECRET))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&[("token", &token)])),
        )
        .await;
    assert_eq!(introspected.json()["active"], true);
    // The server chose a current-thread runtime, and says so.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let logs = server.logs();
    let listening = logs.lines().find(|l| l.contains("stead listening")).unwrap_or_default();
    assert!(listening.contains("current-thread") && listening.contains("workers=1"), "{logs}");
    let status = server.stop();
    assert!(status.success(), "graceful exit: {status:?}");
}

#[tokio::test]
async fn a_token_issued_before_a_restart_verifies_after_it() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let token = server.token("ACME-U", &user_form("pa")).await.access_token();
    let status = server.stop();
    assert!(status.success(), "graceful exit: {status:?}");

    let server = stead.serve();
    // The issuer is the same base URL only if the port is; verify against
    // the keys, which must persist.
    let jwks = server.get("/system/auth/ACME-U/oauth2/jwks").await.json();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let kid = header.kid.unwrap();
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid.as_str()), "kid kept across restart");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&["https://api.acme.test"]);
    jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).expect("old token verifies");
    // And new tokens use the same key.
    let new = server.token("ACME-U", &user_form("pa")).await.access_token();
    assert_eq!(jsonwebtoken::decode_header(&new).unwrap().kid.unwrap(), kid);
}

#[tokio::test]
async fn public_url_and_json_logs_from_flags_env_and_file() {
    let stead = Stead::with_fixture();
    let config = stead.data_dir().join("stead.toml");
    std::fs::write(&config, "public_url = \"https://from-file.example\"\nlog_format = \"json\"\n").unwrap();
    let server = stead.serve_with(&["--config", config.to_str().unwrap()]);
    let meta = server.get("/system/auth/ACME-U/.well-known/openid-configuration").await.json();
    assert_eq!(meta["issuer"], "https://from-file.example/system/auth/ACME-U");
    server.token("ACME-U", &user_form("pa")).await.access_token();
    server.token("ACME-U", &user_form("nobody")).await;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = server.logs();
    let token_lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["outcome"].is_string())
        .collect();
    assert_eq!(token_lines.len(), 2, "one line per token request:\n{logs}");
    let issued = &token_lines[0];
    assert_eq!(issued["outcome"], "issued");
    assert_eq!(issued["tenant"], "ACME");
    assert_eq!(issued["realm"], "user");
    assert_eq!(issued["client"], "app");
    assert_eq!(issued["subject"], "1001");
    assert_eq!(issued["scopes"], "read");
    assert!(issued["latency_us"].is_number());
    assert_eq!(token_lines[1]["outcome"], "refused");
    assert_eq!(token_lines[1]["error"], "invalid_grant");
    assert!(!logs.contains(SECRET));
    drop(server);

    // Environment overrides the file; a flag overrides the environment.
    let mut cmd = stead.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        stead.data_dir().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    cmd.env("STEAD_PUBLIC_URL", "https://from-env.example");
    let server = Server::spawn(cmd);
    let meta = server.get("/system/auth/ACME-U/.well-known/openid-configuration").await.json();
    assert_eq!(meta["issuer"], "https://from-env.example/system/auth/ACME-U");
    drop(server);
    let mut cmd = stead.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        stead.data_dir().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--public-url",
        "https://from-flag.example/",
    ]);
    cmd.env("STEAD_PUBLIC_URL", "https://from-env.example");
    let server = Server::spawn(cmd);
    let meta = server.get("/system/auth/ACME-U/.well-known/openid-configuration").await.json();
    assert_eq!(meta["issuer"], "https://from-flag.example/system/auth/ACME-U");
}

#[tokio::test]
async fn a_host_name_in_listen_is_kept_in_the_issuer() {
    let stead = Stead::with_fixture();
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let server = Server::spawn(stead.command(&["serve", "--listen", "localhost:0", "--data-dir", &dir]));
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let meta = server.get("/system/auth/ACME-U/.well-known/openid-configuration").await.json();
    assert_eq!(meta["issuer"], format!("http://localhost:{port}/system/auth/ACME-U"));
    drop(server);
    // An address stays an address.
    let server = Server::spawn(stead.command(&["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir]));
    let meta = server.get("/system/auth/ACME-C/.well-known/openid-configuration").await.json();
    assert_eq!(meta["issuer"], format!("{}/system/auth/ACME-C", server.base));
}

#[tokio::test]
async fn data_dir_from_the_environment() {
    let stead = Stead::with_fixture();
    let mut cmd = stead.command(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("STEAD_DATA_DIR", stead.data_dir());
    let server = Server::spawn(cmd);
    server.token("ACME-U", &user_form("pa")).await.access_token();
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let stead = Stead::new();
    let config = stead.data_dir().join("bad.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nunknown_key = 1\n").unwrap();
    let out = stead
        .command(&["serve", "--config", config.to_str().unwrap(), "--data-dir", stead.data_dir().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_key"));
    // Out of range in the file (the PostgreSQL run of this suite sets
    // STEAD_DATABASE_POOL_SIZE, which would override the file).
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ndatabase_pool_size = 0\n").unwrap();
    let out = stead
        .command(&["serve", "--config", config.to_str().unwrap(), "--data-dir", stead.data_dir().to_str().unwrap()])
        .env_remove("STEAD_DATABASE_POOL_SIZE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_pool_size 0"), "{out:?}");
    let out = stead
        .command(&["serve", "--listen", "not-an-address", "--data-dir", stead.data_dir().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let help = stead.command(&["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--listen", "--data-dir", "--database-url", "--public-url", "--config", "--demo", "STEAD_LISTEN"] {
        assert!(help.contains(flag), "{flag} in --help");
    }
}
