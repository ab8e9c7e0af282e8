//! HTTPS: `--tls-cert` / `--tls-key`, and a renewed certificate picked up
//! without a restart.

use crate::harness::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::path::Path;
use std::time::Duration;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("certificate");
    (generated.cert.pem(), generated.key_pair.serialize_pem())
}

/// An HTTPS client that trusts only `cert`, with no pooled connections.
fn trusting(cert: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn write(path: &Path, text: &str) {
    // Written aside and renamed, as renewal tools do.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn https_with_a_certificate_renewed_in_place() {
    let stead = Stead::with_fixture();
    let cert_path = stead.data_dir().join("tls.crt");
    let key_path = stead.data_dir().join("tls.key");
    let (cert1, key1) = self_signed();
    write(&cert_path, &cert1);
    write(&key_path, &key1);
    let server =
        stead.serve_with(&["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()]);
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);

    // A token over HTTPS; the issuer is https:// by default.
    let first = trusting(&cert1);
    let r = Reply::from(
        first
            .post(server.token_url("ACME-U"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode_form(&user_form("pa")))
            .send()
            .await
            .expect("HTTPS request"),
    )
    .await;
    let token = r.access_token();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["iss"], server.issuer("ACME-U"));
    let metadata: serde_json::Value = first
        .get(server.url("/system/auth/ACME-U/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(metadata["token_endpoint"].as_str().unwrap().starts_with("https://"), "{metadata}");

    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::Client::new().get(server.url("/healthz").replace("https://", "http://")).send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    // Renewal: a new key and certificate replace the files.
    let (cert2, key2) = self_signed();
    write(&key_path, &key2);
    write(&cert_path, &cert2);
    let renewed = eventually(Duration::from_secs(10), || async {
        trusting(&cert2).get(server.url("/healthz")).send().await.is_ok()
    })
    .await;
    assert!(renewed.is_some(), "the renewed certificate was not served; logs:\n{}", server.logs());
    assert!(trusting(&cert1).get(server.url("/healthz")).send().await.is_err(), "the old certificate is still served");
    assert!(server.logs().contains("TLS certificate reloaded"));

    // A broken renewal is logged and the current certificate stays.
    write(&cert_path, "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
    let logged =
        eventually(Duration::from_secs(10), || async { server.logs().contains("TLS certificate not reloaded") }).await;
    assert!(logged.is_some(), "{}", server.logs());
    let r = trusting(&cert2).get(server.url("/healthz")).send().await.expect("still served");
    assert_eq!(r.status(), 200);

    // No key material in the logs.
    let logs = server.logs();
    for key in [&key1, &key2] {
        let body_line = key.lines().nth(1).unwrap();
        assert!(!logs.contains(body_line), "key material logged");
    }
}

#[test]
fn unusable_tls_files_stop_the_start() {
    let stead = Stead::with_fixture();
    let dir = stead.data_dir().to_str().unwrap().to_owned();
    let cert = stead.data_dir().join("c.pem");
    let key = stead.data_dir().join("k.pem");
    let (cert_pem, _) = self_signed();
    let (_, other_key) = self_signed();
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &other_key).unwrap();
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir];
        args.extend_from_slice(extra);
        stead.command(&args).output().unwrap()
    };

    // Only one of the two.
    let out = serve(&["--tls-cert", c]);
    assert!(!out.status.success());
    // A key that does not belong to the certificate.
    let out = serve(&["--tls-cert", c, "--tls-key", k]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not fit"), "{stderr}");
    // A missing file.
    let out = serve(&["--tls-cert", c, "--tls-key", "/nonexistent/key.pem"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/key.pem"));
    // Not a key at all: the message names the file and quotes nothing.
    std::fs::write(&key, "secret-looking-garbage\n").unwrap();
    let out = serve(&["--tls-cert", c, "--tls-key", k]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("k.pem") && !stderr.contains("secret-looking"), "{stderr}");
}
