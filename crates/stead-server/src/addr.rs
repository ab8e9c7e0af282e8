//! The address a request comes from: the TCP peer or, when the operator
//! says a reverse proxy sits in front (`--trust-proxy-headers`), the address
//! that proxy reports. Trusting the headers is opt-in: without a proxy that
//! overwrites them, any client could name any address.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The resolved source address of a request, set as a request extension by
/// the server for every request (for rate limits, logs and audit records).
/// As an extractor it falls back to the TCP peer, then to `0.0.0.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(addr) = parts.extensions.get::<ClientAddr>() {
            return Ok(*addr);
        }
        if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            return Ok(ClientAddr(peer.ip()));
        }
        Ok(ClientAddr(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The source address of a request from `peer` with `headers`.
///
/// With `trust_proxy_headers`, the rightmost `X-Forwarded-For` entry (the
/// address the proxy next to stead saw; entries to its left are whatever
/// the client sent), or failing that the last `for=` of `Forwarded`
/// (RFC 7239). One proxy hop is assumed; an entry that is not an address
/// (`unknown`, an obfuscated node) leaves the TCP peer.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trust_proxy_headers: bool) -> IpAddr {
    if !trust_proxy_headers {
        return peer;
    }
    forwarded_for(headers).or_else(|| forwarded(headers)).unwrap_or(peer)
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all(&X_FORWARDED_FOR).iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?;
    parse_node(entry)
}

fn forwarded(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all(&FORWARDED).iter().next_back()?;
    let element = last.to_str().ok()?.rsplit(',').next()?;
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value)
    })?;
    parse_node(value)
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:80`, each
/// optionally quoted.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    let inner = text.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn proxy_headers_only_when_trusted() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7")]);
        assert_eq!(resolve(peer, &h, false), peer);
        assert_eq!(resolve(peer, &h, true), "203.0.113.7".parse::<IpAddr>().unwrap());
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "198.51.100.2:4711")]);
        assert_eq!(resolve(peer, &h, true), "198.51.100.2".parse::<IpAddr>().unwrap());
        let h = headers(&[("forwarded", "for=1.1.1.1, for=\"[2001:db8::1]:80\";proto=https")]);
        assert_eq!(resolve(peer, &h, true), "2001:db8::1".parse::<IpAddr>().unwrap());
        let h = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(resolve(peer, &h, true), peer);
        assert_eq!(resolve(peer, &HeaderMap::new(), true), peer);
        let h = headers(&[("forwarded", "by=10.0.0.2;for=_hidden")]);
        assert_eq!(resolve(peer, &h, true), peer);
    }
}
