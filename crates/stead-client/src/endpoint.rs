//! Where token requests go: a realm's token endpoint.

use crate::Error;
use reqwest::Url;
use std::fmt;
use std::str::FromStr;
use stead_proto::RealmPath;

/// The path a token endpoint has below its issuer (SPEC §1).
const TOKEN_PATH: &str = "/oauth2/token";

/// A realm's token endpoint, `{issuer}/oauth2/token`.
///
/// Built from either the realm's URL (its issuer, e.g.
/// `https://host/system/auth/TMPRODB88619984-U`) or the full token URL
/// (`…/TMPRODB88619984-U/oauth2/token`); a trailing slash is tolerated on
/// both. The URL must be `http` or `https`, and must carry neither
/// credentials (`user:pass@`) nor a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEndpoint {
    url: Url,
    issuer: String,
}

impl TokenEndpoint {
    /// Parses a realm URL (issuer) or a token endpoint URL.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let mut url = checked_url(input)?;
        let path = url.path().trim_end_matches('/');
        let issuer_path = path.strip_suffix(TOKEN_PATH).unwrap_or(path).to_owned();
        url.set_path(&format!("{issuer_path}{TOKEN_PATH}"));
        let mut issuer_url = url.clone();
        issuer_url.set_path(&issuer_path);
        issuer_url.set_query(None);
        let issuer = issuer_url.as_str().trim_end_matches('/').to_owned();
        Ok(TokenEndpoint { url, issuer })
    }

    /// A token endpoint at `token_url` (taken as is) of the realm whose
    /// issuer is `issuer`, for servers whose token URL is not
    /// `{issuer}/oauth2/token`, e.g. as found in their metadata.
    pub fn with_issuer(token_url: &str, issuer: &str) -> Result<Self, Error> {
        let url = checked_url(token_url)?;
        let issuer = issuer.trim();
        if issuer.is_empty() {
            return Err(Error::InvalidEndpoint("the issuer is empty".into()));
        }
        Ok(TokenEndpoint { url, issuer: issuer.to_owned() })
    }

    /// The token endpoint of `realm` on a server whose public base URL is
    /// `base` (e.g. `https://auth.example.com`): `{base}/system/auth/{realm}/oauth2/token`.
    pub fn for_realm(base: &str, realm: &RealmPath) -> Result<Self, Error> {
        Self::parse(&realm.issuer(base.trim().trim_end_matches('/')))
    }

    /// The URL requests are POSTed to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The realm's issuer: the token URL without `/oauth2/token` (and
    /// without any query), as it appears in the tokens' `iss` claim.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The realm named by the issuer's last path segment (`{tenant}-U` or
    /// `{tenant}-C`), when the server follows stead's URL layout.
    pub fn realm(&self) -> Option<RealmPath> {
        let issuer = Url::parse(&self.issuer).ok()?;
        let last = issuer.path_segments()?.next_back()?;
        RealmPath::parse(last)
    }

    /// Whether the endpoint sends credentials without TLS to a host other
    /// than the loopback interface.
    pub fn is_insecure(&self) -> bool {
        if self.url.scheme() == "https" {
            return false;
        }
        let host = self.url.host_str().unwrap_or_default();
        if host.eq_ignore_ascii_case("localhost") {
            return false;
        }
        let ip = host.trim_start_matches('[').trim_end_matches(']');
        !ip.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Parses and checks a token URL: http(s), a host, no credentials, no
/// fragment.
fn checked_url(input: &str) -> Result<Url, Error> {
    let input = input.trim();
    // The input is not echoed: it may hold credentials.
    let invalid = |why: &str| Error::InvalidEndpoint(why.to_owned());
    let url = Url::parse(input).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("the URL must not contain credentials; give the client id and secret separately"));
    }
    if url.fragment().is_some() {
        return Err(invalid("the URL must not contain a fragment (#…)"));
    }
    Ok(url)
}

impl FromStr for TokenEndpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        TokenEndpoint::parse(s)
    }
}

impl fmt::Display for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stead_proto::{RealmKind, TenantId};

    const ISSUER: &str = "https://ai.example.cloud/system/auth/TMPRODB88619984-U";
    const TOKEN: &str = "https://ai.example.cloud/system/auth/TMPRODB88619984-U/oauth2/token";

    #[test]
    fn accepts_issuer_and_token_url_with_or_without_trailing_slash() {
        for input in
            [ISSUER.to_owned(), format!("{ISSUER}/"), TOKEN.to_owned(), format!("{TOKEN}/"), format!("  {TOKEN}\n")]
        {
            let e = TokenEndpoint::parse(&input).unwrap();
            assert_eq!(e.url().as_str(), TOKEN, "{input}");
            assert_eq!(e.issuer(), ISSUER, "{input}");
            assert_eq!(e.to_string(), TOKEN);
            let realm = e.realm().unwrap();
            assert_eq!(realm.tenant.as_str(), "TMPRODB88619984");
            assert_eq!(realm.kind, RealmKind::User);
        }
    }

    #[test]
    fn handles_ports_roots_and_other_layouts() {
        let e: TokenEndpoint = "http://127.0.0.1:8080/system/auth/T_1-C".parse().unwrap();
        assert_eq!(e.url().as_str(), "http://127.0.0.1:8080/system/auth/T_1-C/oauth2/token");
        assert_eq!(e.realm().unwrap().kind, RealmKind::Customer);
        assert!(!e.is_insecure());

        let e = TokenEndpoint::parse("https://idp.example.com").unwrap();
        assert_eq!(e.url().as_str(), "https://idp.example.com/oauth2/token");
        assert_eq!(e.issuer(), "https://idp.example.com");
        assert_eq!(e.realm(), None);

        let e = TokenEndpoint::parse("https://idp.example.com/oauth2/token?tenant=x").unwrap();
        assert_eq!(e.url().as_str(), "https://idp.example.com/oauth2/token?tenant=x");
        assert_eq!(e.issuer(), "https://idp.example.com");

        let e = TokenEndpoint::parse("https://idp.example.com/realms/acme").unwrap();
        assert_eq!(e.url().as_str(), "https://idp.example.com/realms/acme/oauth2/token");
        assert_eq!(e.realm(), None);
    }

    #[test]
    fn takes_a_token_url_as_is_with_an_explicit_issuer() {
        let e =
            TokenEndpoint::with_issuer("https://idp.example.com/connect/token", "https://idp.example.com/").unwrap();
        assert_eq!(e.url().as_str(), "https://idp.example.com/connect/token");
        assert_eq!(e.issuer(), "https://idp.example.com/");
        assert!(TokenEndpoint::with_issuer("https://u:p@idp.example.com/token", "https://idp.example.com").is_err());
        assert!(TokenEndpoint::with_issuer("https://idp.example.com/token", " ").is_err());
    }

    #[test]
    fn builds_from_base_and_realm() {
        let realm = RealmPath::new(TenantId::parse("TMPRODB88619984").unwrap(), RealmKind::User);
        let e = TokenEndpoint::for_realm("https://ai.example.cloud/", &realm).unwrap();
        assert_eq!(e.url().as_str(), TOKEN);
    }

    #[test]
    fn flags_plain_http_to_remote_hosts() {
        assert!(TokenEndpoint::parse("http://auth.example.com/x").unwrap().is_insecure());
        assert!(!TokenEndpoint::parse("http://localhost:8080/x").unwrap().is_insecure());
        assert!(!TokenEndpoint::parse("http://[::1]:8080/x").unwrap().is_insecure());
        assert!(!TokenEndpoint::parse("https://auth.example.com/x").unwrap().is_insecure());
    }

    #[test]
    fn rejects_what_cannot_be_a_token_endpoint() {
        for bad in [
            "",
            "auth.example.com/system/auth/T-U",
            "ftp://auth.example.com/system/auth/T-U",
            "https://user:pw@auth.example.com/system/auth/T-U",
            "https://auth.example.com/system/auth/T-U#frag",
            "file:///etc/passwd",
        ] {
            let err = TokenEndpoint::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidEndpoint(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("pw@"), "no credentials echoed: {err}");
        }
    }
}
