//! How the HTTP server protects itself: every bound `stead serve` can set.

use crate::limits::AuthFailureLimits;
use crate::tls::TlsFiles;
use std::time::Duration;

/// Settings of [`crate::serve_with`]. The defaults never refuse correctly
/// authenticated traffic at any throughput one process reaches (SPEC §5):
/// only failed authentication is throttled, the bound on requests in flight
/// is far above what a busy server holds, and the request rate is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Brute-force protection of client authentication.
    pub auth_failures: AuthFailureLimits,
    /// Requests handled at once; beyond, 503 `temporarily_unavailable` with
    /// `Retry-After` at once rather than a queue. `None`: unbounded.
    pub max_concurrent_requests: Option<usize>,
    /// Requests started per second (bursts of as many); beyond, 429.
    /// `None`: unbounded.
    pub max_requests_per_second: Option<u32>,
    /// Open connections; further ones wait in the listen backlog.
    /// `None`: unbounded.
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers (and to complete the
    /// TLS handshake, and to send anything at all on a new connection).
    pub header_read_timeout: Duration,
    /// Time a request may take, body included; beyond, 408.
    pub request_timeout: Duration,
    /// An HTTP/2 connection without requests for this long is closed.
    /// (An idle HTTP/1.1 connection is closed after `header_read_timeout`.)
    pub idle_timeout: Duration,
    /// Take the source address from `X-Forwarded-For` / `Forwarded`.
    pub trust_proxy_headers: bool,
    /// Serve HTTPS with these files.
    pub tls: Option<TlsFiles>,
}

pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4096;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            auth_failures: AuthFailureLimits::default(),
            max_concurrent_requests: Some(DEFAULT_MAX_CONCURRENT_REQUESTS),
            max_requests_per_second: None,
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: crate::routes::REQUEST_TIMEOUT,
            idle_timeout: Duration::from_secs(60),
            trust_proxy_headers: false,
            tls: None,
        }
    }
}
