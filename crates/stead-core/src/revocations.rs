//! The revoked, unexpired tokens a server knows of (RFC 7009), kept apart
//! from the rest of the directory and brought up to date a revocation at a
//! time: each one is read from storage once, not with every reload. With
//! the whole set reloaded on each revocation, revoking grew slower with
//! every token revoked (BENCHMARKS.md).

use crate::store::RevocationsSince;
use crate::UnixTime;
use std::collections::HashMap;
use std::sync::RwLock;
use stead_proto::TenantId;

#[derive(Debug, Default)]
pub struct RevokedTokens {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The point of storage's revocation sequence read up to.
    up_to: i64,
    /// Per tenant: jti → when the token expires.
    by_tenant: HashMap<TenantId, HashMap<String, UnixTime>>,
}

impl RevokedTokens {
    /// Whether the token `jti` of `tenant` was revoked.
    pub fn contains(&self, tenant: &TenantId, jti: &str) -> bool {
        self.read().by_tenant.get(tenant).is_some_and(|revoked| revoked.contains_key(jti))
    }

    /// The point of the revocation sequence to read on from.
    pub fn up_to(&self) -> i64 {
        self.read().up_to
    }

    /// Adds what storage answered. Two reads may overlap (a poll and a
    /// revocation) and end in either order: every revocation read is
    /// kept, and the point only moves forward.
    pub fn apply(&self, since: RevocationsSince) {
        self.add(since, i64::max);
    }

    /// Adds a read from the start of a sequence that went back, and
    /// continues from its point. What is held stays: it was revoked.
    pub fn rewind(&self, all: RevocationsSince) {
        self.add(all, |_held, read| read);
    }

    fn add(&self, read: RevocationsSince, point: impl FnOnce(i64, i64) -> i64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for r in read.revoked {
            inner.by_tenant.entry(r.tenant).or_default().insert(r.jti, r.expires_at);
        }
        inner.up_to = point(inner.up_to, read.up_to);
    }

    /// Forgets the revocations of tokens expired by `now`: such a token is
    /// refused for its expiry already.
    pub fn prune(&self, now: UnixTime) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.by_tenant.retain(|_, revoked| {
            revoked.retain(|_, expires_at| *expires_at > now);
            !revoked.is_empty()
        });
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.read().by_tenant.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock leaves a set that is still whole:
        // each write inserts or removes whole entries.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Revocation;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn revoked(up_to: i64, list: &[(&str, &str, UnixTime)]) -> RevocationsSince {
        RevocationsSince {
            up_to,
            revoked: list
                .iter()
                .map(|(t, jti, exp)| Revocation { tenant: tenant(t), jti: jti.to_string(), expires_at: *exp })
                .collect(),
        }
    }

    #[test]
    fn holds_what_it_was_given_per_tenant() {
        let set = RevokedTokens::default();
        assert_eq!(set.up_to(), 0);
        set.apply(revoked(2, &[("A", "j1", 100), ("B", "j2", 100)]));
        assert!(set.contains(&tenant("A"), "j1"));
        assert!(!set.contains(&tenant("A"), "j2"), "another tenant's jti");
        assert!(set.contains(&tenant("B"), "j2"));
        assert!(!set.contains(&tenant("C"), "j1"));
        assert_eq!(set.up_to(), 2);
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn overlapping_reads_applied_out_of_order_lose_nothing() {
        let set = RevokedTokens::default();
        // Read 0..5 and 0..3 concurrently; the longer one lands first.
        set.apply(revoked(5, &[("A", "j1", 100), ("A", "j2", 100)]));
        set.apply(revoked(3, &[("A", "j1", 100)]));
        assert_eq!(set.up_to(), 5, "the point never moves back");
        assert!(set.contains(&tenant("A"), "j2"));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn a_rewind_keeps_what_was_held_and_moves_the_point_back() {
        let set = RevokedTokens::default();
        set.apply(revoked(9, &[("A", "lost", 100)]));
        set.rewind(revoked(4, &[("A", "kept", 100)]));
        assert_eq!(set.up_to(), 4);
        assert!(set.contains(&tenant("A"), "lost") && set.contains(&tenant("A"), "kept"));
    }

    #[test]
    fn pruning_forgets_expired_tokens_only() {
        let set = RevokedTokens::default();
        set.apply(revoked(3, &[("A", "old", 10), ("A", "new", 20), ("B", "old", 10)]));
        set.prune(10);
        assert!(!set.contains(&tenant("A"), "old"));
        assert!(set.contains(&tenant("A"), "new"));
        assert!(!set.contains(&tenant("B"), "old"));
        assert_eq!(set.len(), 1);
        assert_eq!(set.up_to(), 3);
    }
}
