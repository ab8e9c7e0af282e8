//! Brute-force protection for client authentication (RFC 6749 §2.3.1:
//! "the authorization server MUST protect any endpoint utilizing it against
//! brute force attacks").
//!
//! Only *failed* authentications (`invalid_client`) are counted, in three
//! sliding windows:
//!
//! - per **source and client** (a source address guessing one client's
//!   secret);
//! - per **source** (one address trying many client ids);
//! - per **client** (many addresses guessing one client's secret).
//!
//! Once a budget is spent, a failed authentication it covers is answered
//! 429 `too_many_requests` (with `Retry-After`) instead of 401. The secret
//! is still checked first: the right one is served whatever the counters
//! say.
//!
//! Why this shape:
//!
//! - Correctly authenticated traffic is never refused by default (SPEC §5:
//!   "throttling by default targets failed authentication only"). Refusing
//!   a source unchecked once it spent its budget would let anyone who
//!   shares the real client's address (a NAT, a proxy without
//!   `--trust-proxy-headers`) or who knows a client id lock that client
//!   out, and would turn the brute-force protection into a denial of
//!   service.
//! - What stops guessing is the secrets' strength: at least 32 characters
//!   unless a client sets `allow_short_secret`, compared in constant time,
//!   against an online attack that the 429s and `stead::abuse` warnings
//!   make visible. `--max-requests-per-second` bounds any caller's rate
//!   outright, at the price of refusing correct requests too.
//! - The per-source-and-client budget is the tight one. The per-source
//!   budget is larger: behind a NAT or a proxy (without
//!   `--trust-proxy-headers`) many clients share one address, and one
//!   misconfigured job retrying a stale secret should not make the others'
//!   typos answer 429.
//! - The defaults (100 failures a minute per client and source, 300 per
//!   client, 500 per source) leave room for a deployment that retries a
//!   just-rotated secret in a tight loop while the new one propagates.
//! - Unknown client ids are counted like known ones: a 429 must not reveal
//!   whether a client exists.
//!
//! The success path costs nothing: counters are read and touched only when
//! an authentication fails, memory is bounded (see
//! [`WindowCounter`]) and IPv6 sources are counted per /64, the block one
//! subscriber usually holds.

use super::window::{Millis, WindowCounter};
use crate::error::ErrorReply;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stead_core::OAuthError;
use stead_proto::ErrorCode;

/// Budgets of failed client authentications. A budget of 0 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailureLimits {
    /// The sliding window the budgets apply to.
    pub window: Duration,
    /// Failures from one source address, all clients together.
    pub per_source: u32,
    /// Failures for one client from one source address.
    pub per_client_and_source: u32,
    /// Failures for one client from all source addresses together.
    pub per_client: u32,
    /// Most keys each of the three counters keeps (memory bound).
    pub max_tracked: usize,
}

impl Default for AuthFailureLimits {
    fn default() -> Self {
        AuthFailureLimits {
            window: Duration::from_secs(60),
            per_source: 500,
            per_client_and_source: 100,
            per_client: 300,
            max_tracked: 100_000,
        }
    }
}

const DESCRIPTION: &str = "too many failed authentication attempts; retry later";

pub struct AuthThrottle {
    limits: AuthFailureLimits,
    window_ms: u64,
    start: Instant,
    keys: RandomState,
    sources: WindowCounter,
    pairs: WindowCounter,
    clients: WindowCounter,
    next_prune: AtomicU64,
}

impl std::fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthThrottle").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Default for AuthThrottle {
    fn default() -> Self {
        Self::new(AuthFailureLimits::default())
    }
}

impl AuthThrottle {
    pub fn new(limits: AuthFailureLimits) -> Self {
        let window_ms = (limits.window.as_millis() as u64).max(1);
        let cap = limits.max_tracked.max(1);
        AuthThrottle {
            window_ms,
            start: Instant::now(),
            keys: RandomState::new(),
            sources: WindowCounter::new(window_ms, cap),
            pairs: WindowCounter::new(window_ms, cap),
            clients: WindowCounter::new(window_ms, cap),
            next_prune: AtomicU64::new(window_ms),
            limits,
        }
    }

    pub fn limits(&self) -> &AuthFailureLimits {
        &self.limits
    }

    fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    fn source_key(&self, source: IpAddr) -> u64 {
        self.keys.hash_one((0u8, source))
    }

    fn pair_key(&self, source: IpAddr, tenant: &str, client: &str) -> u64 {
        self.keys.hash_one((1u8, source, tenant, client))
    }

    fn client_key(&self, tenant: &str, client: &str) -> u64 {
        self.keys.hash_one((2u8, tenant, client))
    }

    /// After the credentials were checked: counts an `invalid_client`, and
    /// answers it with 429 rather than 401 once one of the budgets that
    /// cover it is spent. Every other outcome, success included, passes
    /// through unchanged.
    pub fn settle<T>(
        &self,
        source: IpAddr,
        tenant: &str,
        client_id: Option<&str>,
        result: Result<T, OAuthError>,
    ) -> Result<T, ErrorReply> {
        match result {
            Err(e) if e.code == ErrorCode::InvalidClient => Err(self.failed(normalize(source), tenant, client_id, e)),
            other => other.map_err(ErrorReply::from),
        }
    }

    fn failed(&self, source: IpAddr, tenant: &str, client_id: Option<&str>, error: OAuthError) -> ErrorReply {
        let now = self.now();
        self.prune_now_and_then(now);
        let limits = &self.limits;
        // Each count includes this failure; a budget was already spent
        // when the count before it (one less) had reached the limit.
        let s = self.source_key(source);
        let source_failures = self.sources.add(s, now);
        if crossed(limits.per_source, source_failures) {
            tracing::warn!(
                target: "stead::abuse",
                source = %source,
                failures = limits.per_source,
                "failed-authentication budget of a source address spent; its failures get 429 until the window frees"
            );
        }
        let source_spent = over(limits.per_source, source_failures - 1.0);
        let Some(client) = client_id else {
            return if source_spent {
                refusal(self.sources.time_until_below(s, now, limits.per_source))
            } else {
                error.into()
            };
        };
        let p = self.pair_key(source, tenant, client);
        let pair_failures = self.pairs.add(p, now);
        let c = self.client_key(tenant, client);
        let client_failures = self.clients.add(c, now);
        if crossed(limits.per_client_and_source, pair_failures) {
            tracing::warn!(
                target: "stead::abuse",
                source = %source,
                tenant,
                client = %printable(client),
                failures = limits.per_client_and_source,
                "failed-authentication budget of a client at one source address spent"
            );
        }
        if crossed(limits.per_client, client_failures) {
            tracing::warn!(
                target: "stead::abuse",
                tenant,
                client = %printable(client),
                failures = limits.per_client,
                "failed-authentication budget of a client spent: its wrong secrets get 429"
            );
        }
        if source_spent {
            return refusal(self.sources.time_until_below(s, now, limits.per_source));
        }
        if over(limits.per_client_and_source, pair_failures - 1.0) {
            return refusal(self.pairs.time_until_below(p, now, limits.per_client_and_source));
        }
        if over(limits.per_client, client_failures) {
            // Until the client's window frees or this source's failures
            // for it expire.
            let client_frees = self.clients.time_until_below(c, now, limits.per_client);
            let source_clears = self.pairs.time_until_below(p, now, 1);
            return refusal(client_frees.min(source_clears));
        }
        error.into()
    }

    /// Drops expired counters about once a window, on the failure path.
    fn prune_now_and_then(&self, now: Millis) {
        let due = self.next_prune.load(Ordering::Relaxed);
        if now >= due
            && self.next_prune.compare_exchange(due, now + self.window_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.sources.prune(now);
            self.pairs.prune(now);
            self.clients.prune(now);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.sources.tracked() + self.pairs.tracked() + self.clients.tracked()
    }
}

fn over(limit: u32, estimate: f64) -> bool {
    limit > 0 && estimate >= limit as f64
}

/// True when the event just counted brought the estimate to the limit.
fn crossed(limit: u32, estimate: f64) -> bool {
    over(limit, estimate) && !over(limit, estimate - 1.0)
}

fn refusal(wait: Millis) -> ErrorReply {
    ErrorReply::too_many_requests(DESCRIPTION, wait.div_ceil(1000))
}

/// IPv4-mapped IPv6 addresses as IPv4; other IPv6 addresses as their /64.
pub(crate) fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// A caller-supplied id fit for a log line.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_client() -> Result<(), OAuthError> {
        Err(OAuthError::invalid_client())
    }

    fn status(r: &Result<(), ErrorReply>) -> u16 {
        match r {
            Ok(()) => 200,
            Err(e) => e.error.code.http_status(),
        }
    }

    /// One request whose credentials check came out `correct` or not.
    fn attempt(t: &AuthThrottle, source: &str, client: &str, correct: bool) -> u16 {
        status(&settle(t, source, client, correct))
    }

    fn settle(t: &AuthThrottle, source: &str, client: &str, correct: bool) -> Result<(), ErrorReply> {
        let ip: IpAddr = source.parse().unwrap();
        t.settle(ip, "T", Some(client), if correct { Ok(()) } else { invalid_client() })
    }

    fn limits(per_source: u32, pair: u32, client: u32) -> AuthFailureLimits {
        AuthFailureLimits {
            per_source,
            per_client_and_source: pair,
            per_client: client,
            ..AuthFailureLimits::default()
        }
    }

    #[test]
    fn one_source_guessing_one_client_is_stopped() {
        let t = AuthThrottle::new(limits(60, 10, 100));
        let answers: Vec<u16> = (0..30).map(|_| attempt(&t, "192.0.2.1", "app", false)).collect();
        assert!(answers[..10].iter().all(|&s| s == 401), "{answers:?}");
        assert!(answers[10..].iter().all(|&s| s == 429), "{answers:?}");
        // SPEC §5: the right secret is served, from that source too.
        assert_eq!(attempt(&t, "192.0.2.1", "app", true), 200);
        assert_eq!(attempt(&t, "198.51.100.7", "app", true), 200);
        assert_eq!(attempt(&t, "192.0.2.1", "other", true), 200);
        // Another client's first failure here is a plain 401.
        assert_eq!(attempt(&t, "192.0.2.1", "other", false), 401);
        let wait = settle(&t, "192.0.2.1", "app", false).unwrap_err().retry_after.unwrap();
        // Failures past the budget count too, so the sliding estimate may
        // take up to two windows (of a minute) to fall back under it.
        assert!((1..=121).contains(&wait), "{wait}");
    }

    #[test]
    fn one_source_spraying_client_ids_is_stopped() {
        let t = AuthThrottle::new(limits(20, 10, 100));
        for i in 0..20 {
            assert_eq!(attempt(&t, "192.0.2.1", &format!("c{i}"), false), 401);
        }
        assert_eq!(attempt(&t, "192.0.2.1", "c99", false), 429);
        assert_eq!(attempt(&t, "192.0.2.1", "app", false), 429);
        assert_eq!(attempt(&t, "192.0.2.1", "app", true), 200);
        assert_eq!(attempt(&t, "192.0.2.2", "app", false), 401);
    }

    #[test]
    fn many_sources_guessing_one_client() {
        let t = AuthThrottle::new(limits(60, 10, 30));
        let answers: Vec<u16> =
            (0..60).map(|i| attempt(&t, &format!("10.0.{}.{}", i / 200, i % 200), "app", false)).collect();
        assert!(answers[..29].iter().all(|&s| s == 401), "{answers:?}");
        assert!(answers[29..].iter().all(|&s| s == 429), "{answers:?}");
        // Every wrong secret for the client gets 429 now...
        assert_eq!(attempt(&t, "10.0.0.1", "app", false), 429);
        assert_eq!(attempt(&t, "203.0.113.9", "app", false), 429);
        // ...the right one is served, wherever it comes from...
        assert_eq!(attempt(&t, "10.0.0.1", "app", true), 200);
        assert_eq!(attempt(&t, "203.0.113.10", "app", true), 200);
        // ...and other clients are unaffected.
        assert_eq!(attempt(&t, "10.0.0.1", "other", false), 401);
    }

    #[test]
    fn ipv6_counts_per_64_and_zero_is_unlimited() {
        let t = AuthThrottle::new(limits(0, 3, 0));
        for i in 0..3 {
            assert_eq!(attempt(&t, &format!("2001:db8:1:2::{i:x}"), "app", false), 401);
        }
        assert_eq!(attempt(&t, "2001:db8:1:2:ffff::1", "app", false), 429, "same /64");
        assert_eq!(attempt(&t, "2001:db8:1:3::1", "app", false), 401, "another /64");
        assert_eq!(attempt(&t, "2001:db8:1:2:ffff::1", "app", true), 200);
        assert_eq!(normalize("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
        let t = AuthThrottle::new(limits(0, 0, 0));
        assert!((0..500).all(|_| attempt(&t, "192.0.2.1", "app", false) == 401));
    }

    #[test]
    fn memory_stays_bounded_under_rotation() {
        let t = AuthThrottle::new(AuthFailureLimits { max_tracked: 1_000, ..AuthFailureLimits::default() });
        for i in 0..50_000u32 {
            let ip = IpAddr::V4(i.into());
            let _ = t.settle::<()>(ip, "T", Some(&format!("id{i}")), invalid_client());
        }
        assert!(t.tracked() <= 3 * 1_000 + 3 * 16, "{}", t.tracked());
    }
}
