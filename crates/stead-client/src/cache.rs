//! A bounded token cache with refresh ahead of expiry and coalescing of
//! concurrent requests for the same token.

use crate::{ClientAuth, ClientCredentials, Error, Subject, TokenClient, TokenEndpoint, TokenResponse};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Default bound on the number of cached tokens.
pub const DEFAULT_MAX_ENTRIES: usize = 1024;
/// Default minimum time before expiry at which a token is refreshed.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// Default fraction of a token's lifetime before expiry at which it is
/// refreshed, when that is longer than the margin.
pub const DEFAULT_REFRESH_RATIO: f64 = 0.1;

/// Caches on-behalf-of tokens of one client per (realm, subject, scope set).
///
/// - A cached token is handed out until its remaining lifetime falls below
///   `max(refresh_margin, refresh_ratio × lifetime)`, capped at half its
///   lifetime (by default: 30 s, or 6 minutes of a one-hour token); the next
///   call then gets a fresh one.
/// - Concurrent calls for the same key while no usable token is cached make
///   one HTTP request and all get its result, success or error.
/// - Errors are never cached: the next call after a failure tries again.
///   When a refresh fails transiently ([`Error::is_transient`]) while the
///   previous token has not expired yet, that token is returned instead.
/// - At most `max_entries` keys are kept; the least recently used is evicted.
///
/// The key's scope set is order- and repetition-insensitive (`"a b"`,
/// `["b", "a", "a"]` are the same key). Subjects are compared exactly: a
/// username in another case is another key, though the server may map it
/// to the same user.
///
/// Cheap to clone: clones share the cache.
///
/// ```no_run
/// # async fn demo() -> Result<(), stead_client::Error> {
/// use stead_client::{ClientCredentials, Subject, TokenCache, TokenClient, TokenEndpoint};
///
/// let cache = TokenCache::new(TokenClient::new()?, ClientCredentials::new("my-client", "…secret…"));
/// let users = TokenEndpoint::parse("https://auth.example.com/system/auth/TMPRODB88619984-U")?;
/// let token = cache.token(&users, &Subject::Username("pa".into()), &["knowledge.portalmgr.onbehalfof.read"]).await?;
/// let api = reqwest::Client::new();
/// api.get("https://api.example.com/me").bearer_auth(token.access_token()).send().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

/// Configures a [`TokenCache`]; from [`TokenCache::builder`].
#[derive(Debug)]
pub struct TokenCacheBuilder {
    client: TokenClient,
    credentials: ClientCredentials,
    auth: ClientAuth,
    max_entries: usize,
    refresh_margin: Duration,
    refresh_ratio: f64,
}

impl TokenCacheBuilder {
    /// How the client authenticates (default: [`ClientAuth::Body`], as in
    /// the vendor's documentation).
    pub fn auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// The most keys kept (default [`DEFAULT_MAX_ENTRIES`]; at least 1).
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// The minimum remaining lifetime below which a token is refreshed
    /// (default [`DEFAULT_REFRESH_MARGIN`]). Capped at half the lifetime.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The fraction of the lifetime, between 0 and 0.5, below which a
    /// token is refreshed when that is longer than the margin (default
    /// [`DEFAULT_REFRESH_RATIO`]).
    pub fn refresh_ratio(mut self, ratio: f64) -> Self {
        self.refresh_ratio = if ratio.is_finite() { ratio.clamp(0.0, 0.5) } else { DEFAULT_REFRESH_RATIO };
        self
    }

    /// The cache.
    pub fn build(self) -> TokenCache {
        TokenCache {
            inner: Arc::new(Inner {
                client: self.client,
                credentials: self.credentials,
                auth: self.auth,
                max_entries: self.max_entries,
                refresh_margin: self.refresh_margin,
                refresh_ratio: self.refresh_ratio,
                entries: Mutex::new(Entries::default()),
            }),
        }
    }
}

/// A token handed out by a [`TokenCache`]. `Debug` does not show the
/// access token.
#[derive(Clone)]
pub struct CachedToken {
    response: Arc<TokenResponse>,
    expires_at: Instant,
    refresh_at: Instant,
}

impl CachedToken {
    fn new(response: TokenResponse, requested_at: Instant, margin: impl Fn(Duration) -> Duration) -> Self {
        // Lifetimes count from when the request was sent: never later than
        // the server's clock started them.
        let lifetime = Duration::from_secs(response.expires_in);
        let expires_at = requested_at + lifetime;
        CachedToken { response: Arc::new(response), expires_at, refresh_at: expires_at - margin(lifetime) }
    }

    /// The access token, for an `Authorization: Bearer` header.
    pub fn access_token(&self) -> &str {
        &self.response.access_token
    }

    /// The granted scopes, space-separated.
    pub fn scope(&self) -> &str {
        &self.response.scope
    }

    /// The token response it came in.
    pub fn response(&self) -> &TokenResponse {
        &self.response
    }

    /// When the token expires (by the local clock; counted from when it was
    /// requested).
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// When the cache stops handing it out and fetches a new one.
    pub fn refresh_at(&self) -> Instant {
        self.refresh_at
    }

    /// The remaining lifetime (zero once expired).
    pub fn expires_in(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("access_token", &"[redacted]")
            .field("scope", &self.response.scope)
            .field("expires_in", &self.expires_in())
            .finish()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("client_id", &self.inner.credentials.client_id())
            .field("auth", &self.inner.auth)
            .field("max_entries", &self.inner.max_entries)
            .field("entries", &self.len())
            .finish()
    }
}

struct Inner {
    client: TokenClient,
    credentials: ClientCredentials,
    auth: ClientAuth,
    max_entries: usize,
    refresh_margin: Duration,
    refresh_ratio: f64,
    entries: Mutex<Entries>,
}

/// The cache key: the realm's token URL, the subject and the sorted,
/// deduplicated scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    realm: String,
    subject: Subject,
    scopes: Vec<String>,
}

impl Key {
    fn new(endpoint: &TokenEndpoint, subject: &Subject, scopes: &[&str]) -> Result<Self, Error> {
        let mut set: Vec<String> = scopes.iter().flat_map(|s| s.split_whitespace()).map(str::to_owned).collect();
        set.sort();
        set.dedup();
        if set.is_empty() {
            return Err(Error::InvalidRequest("at least one scope is required".into()));
        }
        Ok(Key { realm: endpoint.url().as_str().to_owned(), subject: subject.clone(), scopes: set })
    }
}

/// One request in flight, shared by everyone waiting for its key.
type Flight = OnceCell<Result<CachedToken, Error>>;

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    clock: u64,
}

struct Entry {
    token: Option<CachedToken>,
    flight: Option<Arc<Flight>>,
    last_used: u64,
}

impl Entries {
    /// The entry of `key`, created (evicting the least recently used entry
    /// when full) if absent, marked as used now.
    fn touch(&mut self, key: &Key, max_entries: usize) -> &mut Entry {
        self.clock += 1;
        let now = self.clock;
        if !self.map.contains_key(key) && self.map.len() >= max_entries {
            if let Some(oldest) = self.map.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) {
                self.map.remove(&oldest);
            }
        }
        let entry = self.map.entry(key.clone()).or_insert(Entry { token: None, flight: None, last_used: now });
        entry.last_used = now;
        entry
    }
}

impl TokenCache {
    /// A cache of tokens requested by `client` with `credentials`, with the
    /// default settings.
    pub fn new(client: TokenClient, credentials: ClientCredentials) -> Self {
        Self::builder(client, credentials).build()
    }

    /// Configures a cache of tokens requested by `client` with `credentials`.
    pub fn builder(client: TokenClient, credentials: ClientCredentials) -> TokenCacheBuilder {
        TokenCacheBuilder {
            client,
            credentials,
            auth: ClientAuth::default(),
            max_entries: DEFAULT_MAX_ENTRIES,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            refresh_ratio: DEFAULT_REFRESH_RATIO,
        }
    }

    /// A token of the realm `endpoint` for `subject` with `scopes`: the
    /// cached one while it is fresh, else a new one (see [`TokenCache`]).
    pub async fn token(
        &self,
        endpoint: &TokenEndpoint,
        subject: &Subject,
        scopes: &[&str],
    ) -> Result<CachedToken, Error> {
        let key = Key::new(endpoint, subject, scopes)?;
        let (flight, previous) = {
            let mut entries = self.lock();
            let entry = entries.touch(&key, self.inner.max_entries);
            if let Some(token) = entry.token.as_ref().filter(|t| Instant::now() < t.refresh_at) {
                return Ok(token.clone());
            }
            let flight = entry.flight.get_or_insert_with(|| Arc::new(Flight::new())).clone();
            (flight, entry.token.clone())
        };
        // The first caller runs the request; the others wait for its result.
        // Should the first caller be cancelled, a waiter takes over.
        let result = flight.get_or_init(|| self.fetch(&key, endpoint, &flight)).await.clone();
        match (result, previous) {
            (Err(e), Some(previous)) if e.is_transient() && Instant::now() < previous.expires_at => Ok(previous),
            (result, _) => result,
        }
    }

    /// Requests the token of `key` and ends `flight`: on success the token
    /// is cached, on failure nothing is, so the next caller tries again.
    async fn fetch(&self, key: &Key, endpoint: &TokenEndpoint, flight: &Arc<Flight>) -> Result<CachedToken, Error> {
        let inner = &self.inner;
        let requested_at = Instant::now();
        let scopes: Vec<&str> = key.scopes.iter().map(String::as_str).collect();
        let result = inner
            .client
            .request_token(endpoint, &inner.credentials, inner.auth, &scopes, &key.subject)
            .await
            .map(|response| CachedToken::new(response, requested_at, |lifetime| self.margin(lifetime)));
        let mut entries = self.lock();
        if let Some(entry) = entries.map.get_mut(key) {
            if entry.flight.as_ref().is_some_and(|f| Arc::ptr_eq(f, flight)) {
                entry.flight = None;
                if let Ok(token) = &result {
                    entry.token = Some(token.clone());
                }
            }
        }
        result
    }

    /// How long before expiry a token of `lifetime` is refreshed.
    fn margin(&self, lifetime: Duration) -> Duration {
        let proportional = lifetime.mul_f64(self.inner.refresh_ratio);
        self.inner.refresh_margin.max(proportional).min(lifetime / 2)
    }

    /// Forgets the cached token of this key, e.g. after an API refused it
    /// as revoked; the next [`TokenCache::token`] requests a new one.
    pub fn invalidate(&self, endpoint: &TokenEndpoint, subject: &Subject, scopes: &[&str]) {
        if let Ok(key) = Key::new(endpoint, subject, scopes) {
            if let Some(entry) = self.lock().map.get_mut(&key) {
                entry.token = None;
            }
        }
    }

    /// Forgets every cached token.
    pub fn clear(&self) {
        self.lock().map.clear();
    }

    /// The number of keys held (at most the configured `max_entries`).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The client id the tokens are requested with.
    pub fn client_id(&self) -> &str {
        self.inner.credentials.client_id()
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // The map stays consistent at every await point; a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.inner.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> TokenCache {
        TokenCache::new(TokenClient::new().unwrap(), ClientCredentials::new("c", "s"))
    }

    #[test]
    fn refresh_margin_is_the_larger_of_margin_and_ratio_capped_at_half() {
        let c = cache();
        assert_eq!(c.margin(Duration::from_secs(3600)), Duration::from_secs(360));
        assert_eq!(c.margin(Duration::from_secs(120)), Duration::from_secs(30));
        assert_eq!(c.margin(Duration::from_secs(20)), Duration::from_secs(10));
        assert_eq!(c.margin(Duration::ZERO), Duration::ZERO);
        let c = TokenCache::builder(TokenClient::new().unwrap(), ClientCredentials::new("c", "s"))
            .refresh_margin(Duration::ZERO)
            .refresh_ratio(7.0)
            .build();
        assert_eq!(c.margin(Duration::from_secs(100)), Duration::from_secs(50));
    }

    #[test]
    fn keys_ignore_scope_order_and_repeats() {
        let e = TokenEndpoint::parse("https://h/system/auth/T-U").unwrap();
        let s = Subject::Username("pa".into());
        assert_eq!(Key::new(&e, &s, &["b a", "a"]).unwrap(), Key::new(&e, &s, &["a", "b"]).unwrap());
        assert_ne!(Key::new(&e, &s, &["a"]).unwrap(), Key::new(&e, &s, &["a b"]).unwrap());
        assert!(Key::new(&e, &s, &[" "]).is_err());
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let e = TokenEndpoint::parse("https://h/system/auth/T-U").unwrap();
        let key = |u: &str| Key::new(&e, &Subject::Username(u.into()), &["a"]).unwrap();
        let mut entries = Entries::default();
        entries.touch(&key("1"), 2);
        entries.touch(&key("2"), 2);
        entries.touch(&key("1"), 2);
        entries.touch(&key("3"), 2);
        assert!(entries.map.contains_key(&key("1")) && entries.map.contains_key(&key("3")));
        assert_eq!(entries.map.len(), 2);
    }

    #[test]
    fn debug_hides_the_token() {
        let response = TokenResponse {
            access_token: "eyJ-secret".into(),
            token_type: "Bearer".into(),
            expires_in: 60,
            scope: "a".into(),
        };
        let token = CachedToken::new(response, Instant::now(), |_| Duration::ZERO);
        assert!(!format!("{token:?}").contains("eyJ"));
    }
}
