//! The command line as a user runs it: the demo and `stead token`.

use crate::harness::*;
use std::process::{Command, Stdio};

/// The curl commands `serve --demo` prints, each as one shell command.
fn printed_curls(stdout: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if line.starts_with("curl ") {
            current = Some(String::new());
        }
        if let Some(cmd) = current.as_mut() {
            cmd.push_str(line);
            cmd.push('\n');
            if !line.ends_with('\\') {
                commands.push(current.take().unwrap());
            }
        }
    }
    commands
}

#[tokio::test]
async fn the_demo_prints_curl_commands_that_work() {
    let stead = Stead::new();
    let server = stead.serve_with(&["--demo"]);
    // Wait until both curl commands are printed.
    let ok = eventually(std::time::Duration::from_secs(5), || async {
        printed_curls(&server.stdout.lock().unwrap()).len() == 2
    })
    .await;
    assert!(ok.is_some(), "demo output:\n{}", server.stdout.lock().unwrap());
    let stdout = server.stdout.lock().unwrap().clone();
    assert!(stdout.contains("demo-client-secret"), "says where the secret is kept");
    let curls = printed_curls(&stdout);
    for (curl, subject_type) in curls.iter().zip(["user", "customer"]) {
        let out = Command::new("bash").arg("-c").arg(format!("{curl} --silent --show-error")).output().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{curl}\n{}", String::from_utf8_lossy(&out.stderr)));
        let token = body["access_token"].as_str().expect("a token from the printed curl");
        let realm = if subject_type == "user" { "TMPRODB88619984-U" } else { "TMPRODB88619984-C" };
        let claims = verify(&server, realm, token, "TMPRODB88619984").await;
        assert_eq!(claims["subject_type"], subject_type);
        assert_eq!(claims["scope"], "knowledge.portalmgr.onbehalfof.read");
    }
    // A second run reuses the same secret.
    drop(server);
    let again = stead.serve_with(&["--demo"]);
    let ok = eventually(std::time::Duration::from_secs(5), || async {
        printed_curls(&again.stdout.lock().unwrap()).len() == 2
    })
    .await;
    assert!(ok.is_some());
    let secret_line = |s: &str| s.lines().find(|l| l.contains("client_secret=")).map(str::to_owned);
    assert_eq!(secret_line(&stdout), secret_line(&again.stdout.lock().unwrap()));
}

fn token_cmd(stead: &Stead, args: &[&str]) -> Command {
    let mut c = stead.command(&["token"]);
    c.args(args).env("APP_SECRET", SECRET).stdin(Stdio::null());
    c
}

#[tokio::test]
async fn stead_token_gets_and_prints_tokens() {
    let stead = Stead::with_fixture();
    let server = stead.serve();
    let issuer = server.issuer("ACME-U");
    let common =
        ["--url", issuer.as_str(), "--client-id", "app", "--client-secret-env", "APP_SECRET", "--scope", "read"];

    let out = token_cmd(&stead, &[&common[..], &["--username", "pa"]].concat()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    verify(&server, "ACME-U", json["access_token"].as_str().unwrap(), "https://api.acme.test").await;

    let out = token_cmd(&stead, &[&common[..], &["--userid", "1002", "--basic", "--raw"]].concat()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let raw = String::from_utf8(out.stdout).unwrap();
    let claims = verify(&server, "ACME-U", raw.trim(), "https://api.acme.test").await;
    assert_eq!(claims["sub"], "1002");

    let out = token_cmd(&stead, &[&common[..], &["--username", "pa", "--decode"]].concat()).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"preferred_username\""));

    // The secret from a file and from stdin; the customer realm by token URL.
    let secret_file = stead.data_dir().join("secret.txt");
    std::fs::write(&secret_file, format!("{ODD_SECRET}\n")).unwrap();
    let token_url = server.token_url("ACME-C");
    let out = stead
        .command(&[
            "token",
            "--url",
            &token_url,
            "--client-id",
            "odd-client:1",
            "--client-secret-file",
            secret_file.to_str().unwrap(),
            "--scope",
            "read",
            "--email",
            "jane@example.com",
            "--basic",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut child = stead
        .command(&[
            "token",
            "--url",
            &token_url,
            "--client-id",
            "app",
            "--client-secret-stdin",
            "--scope",
            "read",
            "--email",
            "jane@example.com",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(format!("{SECRET}\n").as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    // A refusal prints the OAuth error and exits non-zero.
    let out = token_cmd(&stead, &[&common[..], &["--username", "nobody"]].concat()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_grant"));
}
