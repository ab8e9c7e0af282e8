//! `stead serve --demo`: the seed document's tenant, client, user `pa`, a
//! customer and the scope, with a generated secret kept in the data
//! directory so a second run reuses it.

use anyhow::Context;
use std::path::Path;
use stead_core::{SecretHasher, Store};

pub const TENANT: &str = "TMPRODB88619984";
pub const CLIENT_ID: &str = "7121f585-e403-4531-9a38-1826ebc7e7d8";
pub const SCOPE: &str = "knowledge.portalmgr.onbehalfof.read";
const SECRET_FILE: &str = "demo-client-secret";

pub async fn provision(store: &dyn Store, hasher: &SecretHasher, data_dir: &Path) -> anyhow::Result<String> {
    let secret = load_or_create_secret(data_dir)?;
    let file = format!(
        r#"
[[tenants]]
id = "{TENANT}"

[[tenants.scopes]]
name = "{SCOPE}"
description = "Read portal content on behalf of a user or customer"

[[tenants.clients]]
id = "{CLIENT_ID}"
name = "Demo portal sync job"
secret = "{secret}"
realms = ["user", "customer"]
scopes = ["{SCOPE}"]
enabled = true

[[tenants.users]]
id = "1001"
username = "pa"
email = "pa@example.com"
enabled = true

[[tenants.customers]]
email = "jane@example.com"
id = "c-42"
enabled = true
"#
    );
    let plan = stead_core::provision::parse(&file, hasher)?;
    store.apply_provisioning(&plan).await.context("cannot provision the demo tenant")?;
    Ok(secret)
}

fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(SECRET_FILE);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_owned();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let secret = stead_core::secret::generate_secret();
    std::fs::create_dir_all(data_dir)?;
    let _ = std::fs::remove_file(&path);
    stead_core::master_key::write_private_file(&path, secret.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret)
}

pub fn print_instructions(base_url: &str, secret: &str, data_dir: &Path) {
    let secret_path = data_dir.join(SECRET_FILE);
    println!();
    println!(
        "Demo tenant {TENANT} is ready. Its client secret is kept in {} (reused on the next run).",
        secret_path.display()
    );
    println!();
    println!("A token on behalf of user pa:");
    println!();
    print_curl(base_url, "U", secret, "subject_username=pa");
    println!();
    println!("A token on behalf of customer jane@example.com:");
    println!();
    print_curl(base_url, "C", secret, "subject_email=jane@example.com");
    println!();
}

fn print_curl(base_url: &str, realm: &str, secret: &str, subject: &str) {
    println!("curl --location --request POST '{base_url}/system/auth/{TENANT}-{realm}/oauth2/token' \\");
    println!("--header 'Content-Type: application/x-www-form-urlencoded' \\");
    println!("--data-urlencode 'grant_type=password' \\");
    println!("--data-urlencode 'client_id={CLIENT_ID}' \\");
    println!("--data-urlencode 'client_secret={secret}' \\");
    println!("--data-urlencode 'scope={SCOPE}' \\");
    println!("--data-urlencode '{subject}'");
}
