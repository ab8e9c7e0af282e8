//! `apply_provisioning`: upserts, defaults, leave-alone semantics, refusals
//! and atomicity, against a real database file.

mod common;

use common::*;
use stead_core::model::{fold_case, Client, Customer, RealmSet, User};
use stead_core::provision::{ProvisioningPlan, TenantPlan, UserPlan};
use stead_core::store::ImportReport;
use stead_core::SigningAlg;

async fn round_trips_a_full_plan(env: Env) {
    let report = env.import(EXAMPLE).await.unwrap();
    assert_eq!(report, ImportReport { tenants: 1, scopes: 1, clients: 1, users: 1, customers: 2 });

    let d = env.store.load_directory().await.unwrap();
    assert_eq!(d.tenants.len(), 1);
    let t = &d.tenants[0];
    assert_eq!(t.id, tenant("TMPRODB88619984"));
    assert_eq!(t.audience.as_deref(), Some("https://api.example.com"));
    assert_eq!(t.token_ttl_seconds, Some(3600));
    assert_eq!(t.signing_alg, SigningAlg::ES256);
    assert!(!t.auto_provision_customers);

    assert_eq!(d.scopes.len(), 1);
    assert_eq!(d.scopes[0].1.name, "knowledge.portalmgr.onbehalfof.read");
    assert_eq!(d.scopes[0].1.description.as_deref(), Some("Read portal content on behalf of a user"));

    assert_eq!(d.clients.len(), 1);
    let (ct, c) = &d.clients[0];
    assert_eq!(*ct, t.id);
    assert_eq!(c.id, "7121f585-e403-4531-9a38-1826ebc7e7d8");
    assert_eq!(c.name.as_deref(), Some("Portal sync job"));
    assert_eq!(hashes(c), vec![env.hasher.hash("use-a-long-random-secret-of-32+-characters")]);
    assert_eq!(c.secrets[0].expires_at, None);
    let now = stead_core::now();
    assert!((now - 5..=now).contains(&c.secrets[0].created_at));
    assert!(env.hasher.verify("use-a-long-random-secret-of-32+-characters", Some(&c.secrets), now));
    assert_eq!((c.subject_groups.clone(), c.deny_subject_groups.clone()), (None, vec![]));
    assert_eq!(c.realms, RealmSet { user: true, customer: true });
    assert_eq!(c.scopes, vec!["knowledge.portalmgr.onbehalfof.read".to_string()]);
    assert_eq!(c.token_ttl_seconds, Some(900));
    assert!(c.enabled);
    assert!(d.keys.is_empty());

    let tid = &t.id;
    let pa = User {
        id: "1001".into(),
        username: "pa".into(),
        email: Some("pa@example.com".into()),
        enabled: true,
        groups: vec![],
    };
    assert_eq!(env.store.user_by_username(tid, "pa").await.unwrap(), Some(pa.clone()));
    assert_eq!(env.store.user_by_id(tid, "1001").await.unwrap(), Some(pa));
    let jane = env.store.customer_by_email(tid, "jane@example.com").await.unwrap().unwrap();
    assert_eq!(jane, Customer { id: "c-42".into(), email: "jane@example.com".into(), enabled: true, groups: vec![] });
    let bob = env.store.customer_by_email(tid, "bob@example.com").await.unwrap().unwrap();
    assert_eq!(bob.email, "Bob@Example.com", "the original case is kept");
    assert_eq!(bob.id.len(), 36, "a generated id: {}", bob.id);
    assert!(bob.enabled);
}

async fn new_entities_take_their_defaults(env: Env) {
    env.import(
        r#"
[[tenants]]
id = "T1"
[[tenants.clients]]
id = "app"
secret = "s3cret-s3cret-s3cret-s3cret-s3cret"
[[tenants.users]]
id = "u1"
username = "Alice"
[[tenants.customers]]
email = "c@example.com"
"#,
    )
    .await
    .unwrap();
    let d = env.store.load_directory().await.unwrap();
    let t = &d.tenants[0];
    assert_eq!(
        (t.audience.clone(), t.token_ttl_seconds, t.signing_alg, t.auto_provision_customers),
        (None, None, SigningAlg::ES256, false)
    );
    let c = &d.clients[0].1;
    assert_eq!(
        (c.name.clone(), c.token_ttl_seconds, c.realms, c.scopes.len(), c.enabled),
        (None, None, RealmSet::default(), 0, true)
    );
    let u = env.store.user_by_id(&tenant("T1"), "u1").await.unwrap().unwrap();
    assert_eq!(u, User { id: "u1".into(), username: "Alice".into(), email: None, enabled: true, groups: vec![] });
    assert!(env.store.customer_by_email(&tenant("T1"), "c@example.com").await.unwrap().unwrap().enabled);
}

async fn importing_the_same_file_twice_changes_nothing(env: Env) {
    env.import(EXAMPLE).await.unwrap();
    let before = env.directory().await;
    let version = env.version().await;
    let bob = env.store.customer_by_email(&tenant("TMPRODB88619984"), "bob@example.com").await.unwrap().unwrap();

    let report = env.import(EXAMPLE).await.unwrap();
    assert_eq!(report.customers, 2);
    assert_eq!(env.directory().await, before);
    assert_eq!(env.version().await, version, "a no-op import does not bump the change version");
    let again = env.store.customer_by_email(&tenant("TMPRODB88619984"), "bob@example.com").await.unwrap().unwrap();
    assert_eq!(again, bob, "a customer without an id in the file keeps its generated id");
}

async fn fields_a_file_leaves_out_are_left_alone(env: Env) {
    env.import(EXAMPLE).await.unwrap();
    env.import(
        r#"
[[tenants]]
id = "TMPRODB88619984"
signing_alg = "EdDSA"
[[tenants.users]]
id = "1001"
username = "pa"
enabled = false
[[tenants.customers]]
email = "JANE@example.com"
enabled = false
"#,
    )
    .await
    .unwrap();
    // A file that names entities without their optional fields.
    env.import(
        r#"
[[tenants]]
id = "TMPRODB88619984"
[[tenants.scopes]]
name = "knowledge.portalmgr.onbehalfof.read"
[[tenants.clients]]
id = "7121f585-e403-4531-9a38-1826ebc7e7d8"
[[tenants.users]]
id = "1001"
username = "PA"
[[tenants.customers]]
email = "jane@EXAMPLE.com"
"#,
    )
    .await
    .unwrap();

    let d = env.store.load_directory().await.unwrap();
    let t = &d.tenants[0];
    assert_eq!(t.audience.as_deref(), Some("https://api.example.com"));
    assert_eq!(t.token_ttl_seconds, Some(3600));
    assert_eq!(t.signing_alg, SigningAlg::EdDSA);
    assert_eq!(d.scopes[0].1.description.as_deref(), Some("Read portal content on behalf of a user"));
    let c = &d.clients[0].1;
    assert_eq!(c.name.as_deref(), Some("Portal sync job"));
    assert_eq!(hashes(c), vec![env.hasher.hash("use-a-long-random-secret-of-32+-characters")]);
    assert_eq!(c.realms, RealmSet { user: true, customer: true });
    assert_eq!(c.scopes.len(), 1);
    assert_eq!(c.token_ttl_seconds, Some(900));

    let tid = tenant("TMPRODB88619984");
    let pa = env.store.user_by_id(&tid, "1001").await.unwrap().unwrap();
    assert_eq!(
        pa,
        User {
            id: "1001".into(),
            username: "PA".into(),
            email: Some("pa@example.com".into()),
            enabled: false,
            groups: vec![]
        }
    );
    let jane = env.store.customer_by_email(&tid, "jane@example.com").await.unwrap().unwrap();
    assert_eq!(jane, Customer { id: "c-42".into(), email: "jane@EXAMPLE.com".into(), enabled: false, groups: vec![] });
}

async fn updates_what_a_file_changes(env: Env) {
    env.import(EXAMPLE).await.unwrap();
    let v = env.version().await;
    env.import(
        r#"
[[tenants]]
id = "TMPRODB88619984"
auto_provision_customers = true
[[tenants.scopes]]
name = "second"
[[tenants.clients]]
id = "7121f585-e403-4531-9a38-1826ebc7e7d8"
secret = "a-rotated-secret-a-rotated-secret"
realms = ["customer"]
scopes = ["second", "knowledge.portalmgr.onbehalfof.read"]
enabled = false
[[tenants.customers]]
email = "bob@example.com"
id = "c-bob"
"#,
    )
    .await
    .unwrap();
    assert!(env.version().await > v);
    let d = env.store.load_directory().await.unwrap();
    assert!(d.tenants[0].auto_provision_customers);
    let c = &d.clients[0].1;
    assert_eq!(hashes(c), vec![env.hasher.hash("a-rotated-secret-a-rotated-secret")]);
    assert_eq!(c.realms, RealmSet { user: false, customer: true });
    assert_eq!(c.scopes, vec!["second".to_string(), "knowledge.portalmgr.onbehalfof.read".to_string()]);
    assert!(!c.enabled);
    let bob = env.store.customer_by_email(&tenant("TMPRODB88619984"), "bob@example.com").await.unwrap().unwrap();
    assert_eq!(bob.id, "c-bob");
}

async fn a_refused_file_changes_nothing(env: Env) {
    env.import(EXAMPLE).await.unwrap();
    let before = env.directory().await;
    let version = env.version().await;

    // Valid entries first, in an existing tenant and a new one; the last
    // entry names a scope no one defined.
    let text = format!(
        r#"{}
[[tenants]]
id = "T2"
audience = "aud2"
[[tenants.users]]
id = "x1"
username = "xavier"
[[tenants.clients]]
id = "bad"
secret = "some-secret-some-secret-some-secret"
scopes = ["nope"]
"#,
        EXAMPLE
            .replace("username = \"pa\"", "username = \"pa2\"")
            .replace("enabled = true\n\n[[tenants.customers]]", "enabled = false\n\n[[tenants.customers]]")
    );
    let m = rejected(env.import(&text).await);
    assert!(m.contains("tenant \"T2\"") && m.contains("client \"bad\"") && m.contains("scope \"nope\""), "{m}");

    assert_eq!(env.directory().await, before);
    assert_eq!(env.version().await, version);
    let tid = tenant("TMPRODB88619984");
    assert_eq!(env.store.user_by_id(&tid, "1001").await.unwrap().unwrap().username, "pa");
    assert!(env.store.user_by_id(&tenant("T2"), "x1").await.unwrap().is_none());
    // The store is still usable after the rollback.
    env.import(EXAMPLE).await.unwrap();
}

async fn a_new_client_needs_a_secret(env: Env) {
    let m = rejected(env.import("[[tenants]]\nid = \"T\"\n[[tenants.clients]]\nid = \"ID\"\n").await);
    assert_eq!(m, "tenant \"T\" client \"ID\": a new client needs a secret");
    assert!(env.store.load_directory().await.unwrap().tenants.is_empty());
}

async fn a_scope_defined_by_an_earlier_import_counts(env: Env) {
    env.import("[[tenants]]\nid = \"T\"\n[[tenants.scopes]]\nname = \"a\"\n").await.unwrap();
    env.import("[[tenants]]\nid = \"T\"\n[[tenants.clients]]\nid = \"c\"\nsecret = \"x-secret-x-secret-x-secret-x-secret\"\nscopes = [\"a\"]\n")
        .await
        .unwrap();
    // A scope of another tenant does not.
    let m = rejected(
        env.import("[[tenants]]\nid = \"U\"\n[[tenants.clients]]\nid = \"c\"\nsecret = \"x-secret-x-secret-x-secret-x-secret\"\nscopes = [\"a\"]\n")
            .await,
    );
    assert!(m.contains("tenant \"U\" client \"c\"") && m.contains("\"a\""), "{m}");
}

async fn a_username_taken_by_another_user_is_refused(env: Env) {
    env.import(EXAMPLE).await.unwrap();
    let version = env.version().await;
    let m = rejected(
        env.import("[[tenants]]\nid = \"TMPRODB88619984\"\n[[tenants.users]]\nid = \"1002\"\nusername = \"PA\"\n")
            .await,
    );
    assert!(m.contains("tenant \"TMPRODB88619984\" user \"1002\"") && m.contains("\"PA\""), "{m}");
    assert_eq!(env.version().await, version);
    // The same username in another tenant is fine.
    env.import("[[tenants]]\nid = \"OTHER\"\n[[tenants.users]]\nid = \"1002\"\nusername = \"PA\"\n").await.unwrap();
}

async fn a_conflict_inside_a_large_batch_names_the_entry(env: Env) {
    let tid = tenant("BIG");
    let users = |n: usize, extra: Option<UserPlan>| {
        let mut users: Vec<UserPlan> = (0..n)
            .map(|i| UserPlan {
                id: format!("u{i}"),
                username: format!("user{i}"),
                email: None,
                enabled: None,
                groups: None,
            })
            .collect();
        users.extend(extra);
        ProvisioningPlan { tenants: vec![TenantPlan { users, ..tenant_plan(&tid) }] }
    };
    env.store.apply_provisioning(&users(1000, None)).await.unwrap();
    let plan = users(
        1000,
        Some(UserPlan { id: "intruder".into(), username: "USER500".into(), email: None, enabled: None, groups: None }),
    );
    let m = rejected(env.store.apply_provisioning(&plan).await);
    assert!(m.contains("user \"intruder\"") && m.contains("by user \"u500\""), "{m}");
    assert!(env.store.user_by_id(&tid, "intruder").await.unwrap().is_none());
}

async fn users_can_swap_usernames_in_one_file(env: Env) {
    let file = |a: &str, b: &str| {
        format!("[[tenants]]\nid = \"T\"\n[[tenants.users]]\nid = \"1\"\nusername = \"{a}\"\n[[tenants.users]]\nid = \"2\"\nusername = \"{b}\"\n")
    };
    env.import(&file("ann", "bea")).await.unwrap();
    env.import(&file("Bea", "Ann")).await.unwrap();
    let t = tenant("T");
    assert_eq!(env.store.user_by_username(&t, "bea").await.unwrap().unwrap().id, "1");
    assert_eq!(env.store.user_by_username(&t, "ann").await.unwrap().unwrap().id, "2");
    assert_eq!(env.store.user_by_id(&t, "1").await.unwrap().unwrap().username, "Bea");
}

async fn a_two_entry_claim_built_without_the_parser_is_refused(env: Env) {
    // The parser refuses a file where two users share a username; a plan
    // built in code can still hold one and must not leave a parked row.
    env.import("[[tenants]]\nid = \"T\"\n[[tenants.users]]\nid = \"1\"\nusername = \"ann\"\n").await.unwrap();
    let t = tenant("T");
    let user = |id: &str, name: &str| UserPlan {
        id: id.into(),
        username: name.into(),
        email: None,
        enabled: None,
        groups: None,
    };
    let plan = ProvisioningPlan {
        tenants: vec![TenantPlan { users: vec![user("2", "ANN"), user("1", "Ann")], ..tenant_plan(&t) }],
    };
    let m = rejected(env.store.apply_provisioning(&plan).await);
    assert!(m.contains("tenant \"T\""), "{m}");
    assert_eq!(env.store.user_by_username(&t, "ann").await.unwrap().unwrap().id, "1");
}

async fn customer_ids_stay_unique(env: Env) {
    env.import(EXAMPLE).await.unwrap();
    let t = tenant("TMPRODB88619984");
    // Another email claiming c-42.
    let m = rejected(
        env.import(
            "[[tenants]]\nid = \"TMPRODB88619984\"\n[[tenants.customers]]\nemail = \"x@example.com\"\nid = \"c-42\"\n",
        )
        .await,
    );
    assert!(
        m.contains("customer \"x@example.com\"") && m.contains("\"c-42\"") && m.contains("jane@example.com"),
        "{m}"
    );
    // An existing customer given c-42 while jane keeps it.
    let m = rejected(
        env.import("[[tenants]]\nid = \"TMPRODB88619984\"\n[[tenants.customers]]\nemail = \"bob@example.com\"\nid = \"c-42\"\n")
            .await,
    );
    assert!(m.contains("customer \"bob@example.com\""), "{m}");
    // Giving an existing customer a free id changes it.
    env.import(
        "[[tenants]]\nid = \"TMPRODB88619984\"\n[[tenants.customers]]\nemail = \"JANE@example.com\"\nid = \"c-43\"\n",
    )
    .await
    .unwrap();
    assert_eq!(env.store.customer_by_email(&t, "jane@example.com").await.unwrap().unwrap().id, "c-43");
    // Two customers swapping ids in one file.
    env.import(
        "[[tenants]]\nid = \"TMPRODB88619984\"\n[[tenants.customers]]\nemail = \"bob@example.com\"\nid = \"c-43\"\n\
         [[tenants.customers]]\nemail = \"jane@example.com\"\nid = \"c-bob\"\n",
    )
    .await
    .unwrap();
    assert_eq!(env.store.customer_by_email(&t, "bob@example.com").await.unwrap().unwrap().id, "c-43");
    assert_eq!(env.store.customer_by_email(&t, "jane@example.com").await.unwrap().unwrap().id, "c-bob");
}

async fn lookups_fold_case_where_the_spec_says_so(env: Env) {
    env.import("[[tenants]]\nid = \"T\"\n[[tenants.users]]\nid = \"Ab-1\"\nusername = \"ÅSA.Berg\"\n[[tenants.customers]]\nemail = \"Jane.DOE@Example.COM\"\n")
        .await
        .unwrap();
    let t = tenant("T");
    for name in ["ÅSA.Berg", "åsa.berg", "ÅSA.BERG"] {
        let u = env.store.user_by_username(&t, &fold_case(name)).await.unwrap().unwrap();
        assert_eq!((u.id.as_str(), u.username.as_str()), ("Ab-1", "ÅSA.Berg"));
    }
    assert!(env.store.user_by_id(&t, "Ab-1").await.unwrap().is_some());
    assert!(env.store.user_by_id(&t, "ab-1").await.unwrap().is_none(), "ids match exactly");
    let c = env.store.customer_by_email(&t, &fold_case("JANE.doe@example.com")).await.unwrap().unwrap();
    assert_eq!(c.email, "Jane.DOE@Example.COM");
    assert!(env.store.user_by_username(&tenant("OTHER"), "åsa.berg").await.unwrap().is_none());
}

fn hashes(c: &Client) -> Vec<[u8; 32]> {
    c.secrets.iter().map(|s| s.hash).collect()
}

fn tenant_plan(id: &stead_proto::TenantId) -> TenantPlan {
    TenantPlan {
        id: id.clone(),
        audience: None,
        token_ttl_seconds: None,
        signing_alg: None,
        auto_provision_customers: None,
        scopes: vec![],
        clients: vec![],
        users: vec![],
        customers: vec![],
    }
}

const GROUPS: &str = r#"
[[tenants]]
id = "G"
[[tenants.clients]]
id = "restricted"
secrets = ["first-secret-first-secret-first-secret", "second-secret-second-secret-second"]
subject_groups = ["staff", "contractors"]
deny_subject_groups = ["admins"]
[[tenants.clients]]
id = "open"
secret = "open-secret-open-secret-open-secret"
[[tenants.users]]
id = "u1"
username = "ann"
groups = ["staff", "admins"]
[[tenants.users]]
id = "u2"
username = "bea"
[[tenants.customers]]
email = "c1@example.com"
id = "c1"
groups = ["vip"]
[[tenants.customers]]
email = "c2@example.com"
"#;

async fn groups_round_trip(env: Env) {
    env.import(GROUPS).await.unwrap();
    let t = tenant("G");
    let d = env.store.load_directory().await.unwrap();
    let client = |id: &str| d.clients.iter().find(|(_, c)| c.id == id).unwrap().1.clone();
    let restricted = client("restricted");
    assert_eq!(restricted.subject_groups, Some(vec!["staff".to_string(), "contractors".to_string()]));
    assert_eq!(restricted.deny_subject_groups, vec!["admins".to_string()]);
    assert_eq!(restricted.secrets.len(), 2);
    let open = client("open");
    assert_eq!((open.subject_groups, open.deny_subject_groups), (None, vec![]));

    let ann = env.store.user_by_username(&t, "ann").await.unwrap().unwrap();
    assert_eq!(ann.groups, ["staff", "admins"]);
    assert_eq!(env.store.user_by_id(&t, "u1").await.unwrap().unwrap().groups, ["staff", "admins"]);
    assert!(env.store.user_by_id(&t, "u2").await.unwrap().unwrap().groups.is_empty());
    assert_eq!(env.store.customer_by_email(&t, "c1@example.com").await.unwrap().unwrap().groups, ["vip"]);
    assert_eq!(env.store.customer_by_id(&t, "c1").await.unwrap().unwrap().groups, ["vip"]);
    assert!(env.store.customer_by_email(&t, "c2@example.com").await.unwrap().unwrap().groups.is_empty());
    assert!(!restricted.may_act_for(&ann.groups), "admins are denied");
}

async fn groups_a_file_leaves_out_are_left_alone(env: Env) {
    env.import(GROUPS).await.unwrap();
    let before = env.directory().await;
    let v = env.version().await;
    // The same entities without their groups: nothing changes.
    env.import(
        "[[tenants]]\nid = \"G\"\n[[tenants.clients]]\nid = \"restricted\"\n[[tenants.users]]\nid = \"u1\"\nusername = \"ann\"\n\
         [[tenants.customers]]\nemail = \"c1@example.com\"\n",
    )
    .await
    .unwrap();
    assert_eq!(env.directory().await, before);
    assert_eq!(env.version().await, v);
    let t = tenant("G");
    assert_eq!(env.store.user_by_id(&t, "u1").await.unwrap().unwrap().groups, ["staff", "admins"]);
    assert_eq!(env.store.customer_by_id(&t, "c1").await.unwrap().unwrap().groups, ["vip"]);

    // Given groups replace the stored ones; an empty list empties them.
    env.import(
        "[[tenants]]\nid = \"G\"\n[[tenants.clients]]\nid = \"restricted\"\nsubject_groups = []\ndeny_subject_groups = []\n\
         [[tenants.clients]]\nid = \"open\"\ndeny_subject_groups = [\"x\"]\n\
         [[tenants.users]]\nid = \"u1\"\nusername = \"ann\"\ngroups = []\n[[tenants.users]]\nid = \"u2\"\nusername = \"bea\"\ngroups = [\"staff\"]\nenabled = false\n\
         [[tenants.customers]]\nemail = \"C1@example.com\"\ngroups = [\"gold\", \"vip\"]\n\
         [[tenants.customers]]\nemail = \"c2@example.com\"\nid = \"c2\"\ngroups = [\"new\"]\n",
    )
    .await
    .unwrap();
    assert!(env.version().await > v);
    let d = env.store.load_directory().await.unwrap();
    let client = |id: &str| d.clients.iter().find(|(_, c)| c.id == id).unwrap().1.clone();
    assert_eq!((client("restricted").subject_groups, client("restricted").deny_subject_groups), (Some(vec![]), vec![]));
    assert_eq!((client("open").subject_groups, client("open").deny_subject_groups), (None, vec!["x".to_string()]));
    assert!(env.store.user_by_id(&t, "u1").await.unwrap().unwrap().groups.is_empty());
    let bea = env.store.user_by_id(&t, "u2").await.unwrap().unwrap();
    assert_eq!((bea.groups, bea.enabled), (vec!["staff".to_string()], false));
    assert_eq!(env.store.customer_by_id(&t, "c1").await.unwrap().unwrap().groups, ["gold", "vip"]);
    assert_eq!(env.store.customer_by_id(&t, "c2").await.unwrap().unwrap().groups, ["new"]);
}

async fn reimporting_secrets_and_groups_changes_nothing(env: Env) {
    env.import(GROUPS).await.unwrap();
    let before = env.directory().await;
    let v = env.version().await;
    env.import(GROUPS).await.unwrap();
    assert_eq!(env.directory().await, before);
    assert_eq!(env.version().await, v);
    // The same secrets in another order are the same set.
    let swapped = GROUPS.replace(
        "secrets = [\"first-secret-first-secret-first-secret\", \"second-secret-second-secret-second\"]",
        "secrets = [\"second-secret-second-secret-second\", \"first-secret-first-secret-first-secret\"]",
    );
    env.import(&swapped).await.unwrap();
    assert_eq!(env.version().await, v);
}

async fn imported_secrets_replace_the_clients_secrets(env: Env) {
    env.import(GROUPS).await.unwrap();
    let t = tenant("G");
    let secrets = || async {
        let d = env.store.load_directory().await.unwrap();
        d.clients.into_iter().find(|(_, c)| c.id == "restricted").unwrap().1.secrets
    };
    let first = secrets().await;
    let h = |s: &str| env.hasher.hash(s);

    // A rotation leaves the first two expiring; the file, which still names
    // them, makes them permanent again and drops the rotated one.
    let now = stead_core::now();
    env.store
        .rotate_client_secret(&t, "restricted", &stead_core::ClientSecret::new(h("rotated"), now + 10), now + 100)
        .await
        .unwrap();
    assert_eq!(secrets().await.len(), 3);
    let v = env.version().await;
    env.import(GROUPS).await.unwrap();
    assert!(env.version().await > v);
    assert!(secrets().await == first, "kept secrets keep their creation time");

    // One of the two replaced by a new one.
    let v = env.version().await;
    env.import(&GROUPS.replace("first-secret-first-secret-first-secret", "third-secret-third-secret-third-secret"))
        .await
        .unwrap();
    assert!(env.version().await > v);
    let now_secrets = secrets().await;
    assert_eq!(
        now_secrets.iter().map(|s| s.hash).collect::<Vec<_>>(),
        [h("second-secret-second-secret-second"), h("third-secret-third-secret-third-secret")]
    );
    assert!(now_secrets.iter().all(|s| s.expires_at.is_none()));
    assert!(now_secrets[0] == first[1]);

    // A plan built in code cannot leave a client without a secret.
    let mut plan = env.plan(GROUPS);
    plan.tenants[0].clients[0].secret_hashes = Some(vec![]);
    let m = rejected(env.store.apply_provisioning(&plan).await);
    assert!(m.contains("client \"restricted\""), "{m}");
}

/// Lookups keep a read snapshot between calls where the backend allows it
/// (SQLite); a change committed by another process must still show in the
/// very next lookup, however often the same subject was just looked up.
async fn lookups_see_another_stores_import_at_once(env: Env) {
    let other = env.second().await;
    let import = |text: &str| {
        let plan = env.plan(text);
        let other = other.clone();
        async move { other.apply_provisioning(&plan).await.unwrap() }
    };
    let t = tenant("LIVE");
    import("[[tenants]]\nid = \"LIVE\"\n").await;
    for round in 0..20 {
        let name = format!("u{round}");
        for _ in 0..3 {
            assert_eq!(env.store.user_by_username(&t, &name).await.unwrap(), None);
        }
        import(&format!("[[tenants]]\nid = \"LIVE\"\n[[tenants.users]]\nid = \"{round}\"\nusername = \"{name}\"\n"))
            .await;
        let user = env.store.user_by_username(&t, &name).await.unwrap();
        assert_eq!(user.map(|u| u.enabled), Some(true), "round {round}: a new user is seen at once");
        import(&format!(
            "[[tenants]]\nid = \"LIVE\"\n[[tenants.users]]\nid = \"{round}\"\nusername = \"{name}\"\nenabled = false\n"
        ))
        .await;
        let user = env.store.user_by_id(&t, &round.to_string()).await.unwrap();
        assert_eq!(user.map(|u| u.enabled), Some(false), "round {round}: a disabled user is seen at once");
    }
    // Also after the lookup connections sat idle.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    import("[[tenants]]\nid = \"LIVE\"\n[[tenants.customers]]\nid = \"c\"\nemail = \"c@example.com\"\n").await;
    assert!(env.store.customer_by_email(&t, "c@example.com").await.unwrap().is_some());
}

on_both_backends!(
    lookups_see_another_stores_import_at_once,
    round_trips_a_full_plan,
    new_entities_take_their_defaults,
    importing_the_same_file_twice_changes_nothing,
    fields_a_file_leaves_out_are_left_alone,
    updates_what_a_file_changes,
    a_refused_file_changes_nothing,
    a_new_client_needs_a_secret,
    a_scope_defined_by_an_earlier_import_counts,
    a_username_taken_by_another_user_is_refused,
    a_conflict_inside_a_large_batch_names_the_entry,
    users_can_swap_usernames_in_one_file,
    a_two_entry_claim_built_without_the_parser_is_refused,
    customer_ids_stay_unique,
    lookups_fold_case_where_the_spec_says_so,
    groups_round_trip,
    groups_a_file_leaves_out_are_left_alone,
    reimporting_secrets_and_groups_changes_nothing,
    imported_secrets_replace_the_clients_secrets,
);
