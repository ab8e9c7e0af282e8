//! The provisioning file (SPEC §6): arbitrary UTF-8 into
//! `stead_core::provision::parse`. It must never panic, and a plan it
//! accepts must hold the rules the file format promises.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::LazyLock;
use stead_core::model::{fold_case, TOKEN_TTL_RANGE};
use stead_core::provision::{self, is_scope_token, is_valid_email, ProvisioningPlan};
use stead_core::{MasterKey, SecretHasher};

static HASHER: LazyLock<SecretHasher> =
    LazyLock::new(|| SecretHasher::new(&MasterKey::parse(&"00".repeat(32)).expect("a valid master key")));

fn clean(s: &str) -> bool {
    !s.trim().is_empty() && !s.chars().any(char::is_control)
}

fn unique<'a>(items: impl IntoIterator<Item = &'a str>) -> bool {
    let mut seen = HashSet::new();
    items.into_iter().all(|s| seen.insert(s))
}

fn check(plan: &ProvisioningPlan) {
    assert!(unique(plan.tenants.iter().map(|t| t.id.as_str())), "a tenant twice");
    for t in &plan.tenants {
        let ttl_ok = |ttl: Option<u32>| ttl.is_none_or(|v| TOKEN_TTL_RANGE.contains(&v));
        assert!(ttl_ok(t.token_ttl_seconds), "tenant ttl out of range");
        assert!(t.audience.as_deref().is_none_or(clean), "bad audience");
        assert!(t.scopes.iter().all(|s| is_scope_token(&s.name)), "bad scope name");
        assert!(unique(t.scopes.iter().map(|s| s.name.as_str())), "a scope twice");

        assert!(unique(t.clients.iter().map(|c| c.id.as_str())), "a client twice");
        for c in &t.clients {
            assert!(clean(&c.id), "bad client id {:?}", c.id);
            assert!(ttl_ok(c.token_ttl_seconds), "client ttl out of range");
            assert!(c.secret_hashes.as_ref().is_none_or(|h| (1..=2).contains(&h.len())), "not one or two secrets");
            if let Some(scopes) = &c.scopes {
                assert!(scopes.iter().all(|s| is_scope_token(s)), "bad client scope");
                assert!(unique(scopes.iter().map(String::as_str)), "client scopes not deduplicated");
            }
            for groups in [&c.subject_groups, &c.deny_subject_groups].into_iter().flatten() {
                assert!(groups.iter().all(|g| clean(g)), "bad group name");
                assert!(unique(groups.iter().map(String::as_str)), "groups not deduplicated");
            }
        }

        assert!(unique(t.users.iter().map(|u| u.id.as_str())), "a user twice");
        let folded: Vec<String> = t.users.iter().map(|u| fold_case(&u.username)).collect();
        assert!(unique(folded.iter().map(String::as_str)), "a username twice (case-insensitively)");
        for u in &t.users {
            assert!(clean(&u.id) && clean(&u.username), "bad user id or username");
            assert!(u.email.as_deref().is_none_or(is_valid_email), "bad user email");
        }

        for c in &t.customers {
            assert!(is_valid_email(&c.email), "bad customer email");
            assert!(c.id.as_deref().is_none_or(clean), "bad customer id");
        }
        assert!(unique(t.customers.iter().filter_map(|c| c.id.as_deref())), "a customer id twice");
        let folded: Vec<String> = t.customers.iter().map(|c| fold_case(&c.email)).collect();
        assert!(unique(folded.iter().map(String::as_str)), "a customer email twice (case-insensitively)");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(plan) = provision::parse(text, &HASHER) {
        check(&plan);
    }
});
