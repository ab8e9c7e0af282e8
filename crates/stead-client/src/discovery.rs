//! Authorization server metadata (RFC 8414), as far as a client or a
//! resource server needs it: the issuer, its token endpoint and its keys.

use reqwest::header::ACCEPT;
use reqwest::Url;
use serde::Deserialize;

/// Metadata and key set bodies are read up to this size.
pub(crate) const MAX_DOCUMENT: usize = 1 << 20;

/// The members of RFC 8414 metadata stead's clients use. Other members are
/// ignored, and only `issuer` is required, so any compliant server fits.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// The URLs metadata of `issuer` may be served at, in the order tried:
/// RFC 8414 §3.1 (`/.well-known/oauth-authorization-server` inserted before
/// the issuer's path), then OpenID Connect Discovery (appended).
pub(crate) fn metadata_urls(issuer: &str) -> Result<Vec<Url>, String> {
    let url = Url::parse(issuer).map_err(|e| format!("the issuer {issuer:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("the issuer {issuer:?} is not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("the issuer {issuer:?} must not have a query or fragment (RFC 8414 §2)"));
    }
    let path = url.path().trim_end_matches('/');
    let mut rfc8414 = url.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let mut oidc = url.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    Ok(vec![rfc8414, oidc])
}

/// Fetches the metadata of `issuer` and checks that it names that issuer
/// (RFC 8414 §3.3). The error is a message for the caller's error type.
pub(crate) async fn fetch_metadata(http: &reqwest::Client, issuer: &str) -> Result<Metadata, String> {
    let mut failures = Vec::new();
    for url in metadata_urls(issuer)? {
        match get_json::<Metadata>(http, &url).await {
            Ok(metadata) if metadata.issuer == issuer => return Ok(metadata),
            Ok(metadata) => {
                // RFC 8414 §3.3: a mismatch must not be used.
                return Err(format!(
                    "the metadata at {url} names the issuer {:?}, not {issuer:?}",
                    crate::error::printable(&metadata.issuer)
                ));
            }
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    Err(failures.join("; "))
}

/// GETs `url` and parses its JSON body (at most [`MAX_DOCUMENT`] bytes).
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &Url) -> Result<T, String> {
    let response = http
        .get(url.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot fetch: {}", error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let bytes = read_limited(response, MAX_DOCUMENT).await?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not the expected JSON: {e}"))
}

/// The body of `response`, refusing bodies above `max` bytes.
pub(crate) async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("cannot read: {}", error_chain(&e)))? {
        if bytes.len() + chunk.len() > max {
            return Err(format!("the body exceeds {max} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// An error and its sources on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_follow_rfc_8414_then_oidc() {
        let urls = metadata_urls("https://auth.example.com/system/auth/T-U").unwrap();
        assert_eq!(urls[0].as_str(), "https://auth.example.com/.well-known/oauth-authorization-server/system/auth/T-U");
        assert_eq!(urls[1].as_str(), "https://auth.example.com/system/auth/T-U/.well-known/openid-configuration");
        let urls = metadata_urls("http://127.0.0.1:8080").unwrap();
        assert_eq!(urls[0].as_str(), "http://127.0.0.1:8080/.well-known/oauth-authorization-server");
        assert_eq!(urls[1].as_str(), "http://127.0.0.1:8080/.well-known/openid-configuration");
        for bad in ["", "auth.example.com", "ftp://x/y", "https://x/y?q=1", "https://x/y#f"] {
            assert!(metadata_urls(bad).is_err(), "{bad}");
        }
    }
}
