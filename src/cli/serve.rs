//! `stead serve`: open storage, load the directory, listen, and shut down
//! gracefully on SIGTERM or SIGINT.

use super::config::{FileConfig, Limit, LogFormat};
use super::storage::StorageArgs;
use super::{demo, logging};
use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use stead_core::directory::KeyPolicy;
use stead_core::{AuditLog, DirectoryHandle, SecretHasher, TokenService};
use stead_server::{AppState, AuthFailureLimits, ServerSettings, TlsFiles};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "STEAD_LISTEN", value_name = "ADDR")]
    listen: Option<String>,

    /// Public base URL of this server, used in issuers and metadata
    /// [default: http://LISTEN, or http://localhost:PORT on a wildcard address]
    #[arg(long, env = "STEAD_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Log format [default: text]
    #[arg(long, env = "STEAD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,

    /// Log filter, e.g. `info` or `stead=debug` [default: info]
    #[arg(long, env = "STEAD_LOG", value_name = "FILTER")]
    log_level: Option<String>,

    /// Replace each tenant's signing key when it is older than this
    /// (e.g. `90d`, `12h`; `off` never) [default: 90d]
    #[arg(long, env = "STEAD_KEY_ROTATION", value_name = "DURATION")]
    key_rotation: Option<String>,

    /// Delete audit records older than this (e.g. `400d`; `off` keeps them
    /// forever) [default: 400d]
    #[arg(long, env = "STEAD_AUDIT_RETENTION", value_name = "DURATION")]
    audit_retention: Option<String>,

    /// Provision the seed document's demo tenant, client, user and customer,
    /// and print ready-to-paste curl commands.
    #[arg(long)]
    demo: bool,

    // Boxed: it holds many options, and `Command` should stay small.
    #[command(flatten)]
    protection: Box<ProtectionArgs>,

    #[command(flatten)]
    storage: StorageArgs,
}

/// TLS and the limits that protect the server from abuse.
#[derive(clap::Args, Debug)]
struct ProtectionArgs {
    /// Serve HTTPS with this PEM certificate chain (leaf first); a renewed
    /// file is picked up within seconds, without a restart. Needs --tls-key
    #[arg(long, env = "STEAD_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "STEAD_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Take each request's source address from the rightmost
    /// X-Forwarded-For entry (or the last Forwarded `for=`), as set by the
    /// one reverse proxy in front of stead. Only behind such a proxy:
    /// otherwise clients could pick their address [default: false]
    #[arg(
        long,
        env = "STEAD_TRUST_PROXY_HEADERS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    trust_proxy_headers: Option<bool>,

    /// The window in which failed client authentications are counted
    /// [default: 1m]
    #[arg(long, env = "STEAD_AUTH_FAILURE_WINDOW", value_name = "DURATION")]
    auth_failure_window: Option<String>,

    /// Failed client authentications from one source address (all
    /// clients) per window; beyond, that address's failures get 429
    /// instead of 401 (`off`: no limit) [default: 500]
    #[arg(long, env = "STEAD_MAX_AUTH_FAILURES_PER_SOURCE", value_name = "N")]
    max_auth_failures_per_source: Option<String>,

    /// Failed authentications of one client from one source address per
    /// window; beyond, that address's wrong secrets for the client get 429
    /// instead of 401 (`off`: no limit) [default: 100]
    #[arg(long, env = "STEAD_MAX_AUTH_FAILURES_PER_CLIENT_AND_SOURCE", value_name = "N")]
    max_auth_failures_per_client_and_source: Option<String>,

    /// Failed authentications of one client from all addresses per window;
    /// beyond, every wrong secret for the client gets 429 instead of 401
    /// (`off`: no limit) [default: 300]
    #[arg(long, env = "STEAD_MAX_AUTH_FAILURES_PER_CLIENT", value_name = "N")]
    max_auth_failures_per_client: Option<String>,

    /// Requests handled at once; beyond, 503 with Retry-After at once
    /// instead of a queue (`off`: no limit) [default: 4096]
    #[arg(long, env = "STEAD_MAX_CONCURRENT_REQUESTS", value_name = "N")]
    max_concurrent_requests: Option<String>,

    /// Requests accepted per second, in bursts of as many; beyond, 429.
    /// This refuses correct requests too: set it only to cap load [default: off]
    #[arg(long, env = "STEAD_MAX_REQUESTS_PER_SECOND", value_name = "N")]
    max_requests_per_second: Option<String>,

    /// Open connections; further ones wait until one closes (`off`: no
    /// limit) [default: 10000]
    #[arg(long, env = "STEAD_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<String>,

    /// Time a client has to send a request's headers (and to finish the TLS
    /// handshake); also how long an idle HTTP/1.1 connection stays open
    /// [default: 10s]
    #[arg(long, env = "STEAD_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    header_read_timeout: Option<String>,

    /// Time a request may take, body included; beyond, 408 [default: 10s]
    #[arg(long, env = "STEAD_REQUEST_TIMEOUT", value_name = "DURATION")]
    request_timeout: Option<String>,

    /// An HTTP/2 connection without requests for this long is closed
    /// [default: 60s]
    #[arg(long, env = "STEAD_IDLE_TIMEOUT", value_name = "DURATION")]
    idle_timeout: Option<String>,
}

impl ProtectionArgs {
    /// The server settings: flags and environment, then the file, then the
    /// defaults.
    fn resolve(&self, file: &FileConfig) -> anyhow::Result<ServerSettings> {
        let d = ServerSettings::default();
        let timeout = |name: &str, flag: &Option<String>, key: &Option<String>, default: Duration| {
            flag.as_ref().or(key.as_ref()).map_or(Ok(default), |text| positive_duration(name, text))
        };
        // `Some(None)` is `off`; `None` is neither flag nor file.
        let limit = |name: &str, flag: &Option<String>, key: &Option<Limit>| -> anyhow::Result<Option<Option<u64>>> {
            let text = flag.clone().or_else(|| key.as_ref().map(Limit::to_text));
            text.map(|text| optional_number(name, &text)).transpose()
        };
        let budget = |name: &str, flag: &Option<String>, key: &Option<Limit>, default: u32| -> anyhow::Result<u32> {
            match limit(name, flag, key)? {
                None => Ok(default),
                Some(n) => u32::try_from(n.unwrap_or(0)).with_context(|| format!("{name} is too large")),
            }
        };
        let bound = |name: &str, flag: &Option<String>, key: &Option<Limit>, default: Option<usize>| {
            anyhow::Ok(limit(name, flag, key)?.map_or(default, |n| n.map(|n| n as usize)))
        };
        let auth = AuthFailureLimits {
            window: timeout(
                "--auth-failure-window",
                &self.auth_failure_window,
                &file.auth_failure_window,
                d.auth_failures.window,
            )?,
            per_source: budget(
                "--max-auth-failures-per-source",
                &self.max_auth_failures_per_source,
                &file.max_auth_failures_per_source,
                d.auth_failures.per_source,
            )?,
            per_client_and_source: budget(
                "--max-auth-failures-per-client-and-source",
                &self.max_auth_failures_per_client_and_source,
                &file.max_auth_failures_per_client_and_source,
                d.auth_failures.per_client_and_source,
            )?,
            per_client: budget(
                "--max-auth-failures-per-client",
                &self.max_auth_failures_per_client,
                &file.max_auth_failures_per_client,
                d.auth_failures.per_client,
            )?,
            ..d.auth_failures
        };
        anyhow::ensure!(auth.window >= Duration::from_secs(1), "--auth-failure-window must be at least a second");
        let max_requests_per_second =
            bound("--max-requests-per-second", &self.max_requests_per_second, &file.max_requests_per_second, None)?
                .map(|n| u32::try_from(n).context("--max-requests-per-second is too large"))
                .transpose()?;
        let tls = match (self.tls_cert.clone().or(file.tls_cert.clone()), self.tls_key.clone().or(file.tls_key.clone()))
        {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        Ok(ServerSettings {
            auth_failures: auth,
            max_concurrent_requests: bound(
                "--max-concurrent-requests",
                &self.max_concurrent_requests,
                &file.max_concurrent_requests,
                d.max_concurrent_requests,
            )?,
            max_requests_per_second,
            max_connections: bound(
                "--max-connections",
                &self.max_connections,
                &file.max_connections,
                d.max_connections,
            )?,
            header_read_timeout: timeout(
                "--header-read-timeout",
                &self.header_read_timeout,
                &file.header_read_timeout,
                d.header_read_timeout,
            )?,
            request_timeout: timeout(
                "--request-timeout",
                &self.request_timeout,
                &file.request_timeout,
                d.request_timeout,
            )?,
            idle_timeout: timeout("--idle-timeout", &self.idle_timeout, &file.idle_timeout, d.idle_timeout)?,
            trust_proxy_headers: self.trust_proxy_headers.or(file.trust_proxy_headers).unwrap_or(d.trust_proxy_headers),
            tls,
        })
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = FileConfig::load(args.storage.config.as_deref())?;
    let log_format = args.log_format.or(file.log_format).unwrap_or_default();
    let log_level = args.log_level.clone().or(file.log_level.clone()).unwrap_or_else(|| "info".into());
    logging::init(log_format, &log_level);

    let storage = args.storage.resolve(&file)?;
    let settings = args.protection.resolve(&file)?;
    if let Some(tls) = &settings.tls {
        tls.check().map_err(anyhow::Error::msg)?;
    }
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    let listen = args.listen.clone().or(file.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let public_url = args.public_url.as_deref().or(file.public_url.as_deref()).map(public_base_url).transpose()?;

    let master = storage.master_key()?;
    let store = storage.open_for_serving().await?;
    let hasher = SecretHasher::new(&master);
    let demo_secret = if args.demo { Some(demo::provision(&*store, &hasher, &storage.data_dir).await?) } else { None };

    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let base_url = public_url.unwrap_or_else(|| default_base_url(scheme, &listen, local));

    let key_rotation = optional_duration(
        "key rotation",
        args.key_rotation.as_deref().or(file.key_rotation.as_deref()).unwrap_or("90d"),
    )?;
    let audit_retention = optional_duration(
        "audit retention",
        args.audit_retention.as_deref().or(file.audit_retention.as_deref()).unwrap_or("400d"),
    )?;
    let policy = KeyPolicy { rotation_period: key_rotation.map(|d| d.as_secs() as i64) };
    let directory =
        Arc::new(DirectoryHandle::load(store.clone(), master, policy).await.context("cannot load the directory")?);
    let (audit, audit_writer) = AuditLog::start(store.clone());
    let service = Arc::new(TokenService::new(directory.clone(), store.clone(), hasher, base_url.clone(), audit));
    let refresher = stead_server::spawn_refresh(directory.clone());
    let maintenance = stead_server::spawn_maintenance(directory, store.clone(), audit_retention);

    let runtime = tokio::runtime::Handle::current();
    let flavor = match runtime.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => "current-thread",
        _ => "multi-thread",
    };
    tracing::info!(
        listen = %local,
        base_url = %base_url,
        tls = settings.tls.is_some(),
        runtime = flavor,
        workers = runtime.metrics().num_workers(),
        "stead listening"
    );
    tracing::info!(
        trust_proxy_headers = settings.trust_proxy_headers,
        auth_failure_window = ?settings.auth_failures.window,
        max_auth_failures_per_source = settings.auth_failures.per_source,
        max_auth_failures_per_client_and_source = settings.auth_failures.per_client_and_source,
        max_auth_failures_per_client = settings.auth_failures.per_client,
        max_concurrent_requests = ?settings.max_concurrent_requests,
        max_requests_per_second = ?settings.max_requests_per_second,
        max_connections = ?settings.max_connections,
        header_read_timeout = ?settings.header_read_timeout,
        request_timeout = ?settings.request_timeout,
        idle_timeout = ?settings.idle_timeout,
        "limits"
    );
    println!("stead listening on {scheme}://{local} (public URL {base_url})");
    if let Some(secret) = &demo_secret {
        demo::print_instructions(&base_url, secret, &storage.data_dir);
    }

    stead_server::serve_with(listener, AppState { service, store }, settings, shutdown_signal()).await?;
    refresher.abort();
    maintenance.abort();
    // Every answered request already waited for its audit record; this only
    // lets the writer finish a batch in progress.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), audit_writer).await;
    tracing::info!("stead stopped");
    Ok(ExitCode::SUCCESS)
}

/// A duration like `90d` or `12h`, or `off`.
fn optional_duration(what: &str, text: &str) -> anyhow::Result<Option<std::time::Duration>> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let d = humantime::parse_duration(text)
        .with_context(|| format!("invalid {what} {text:?}: use e.g. 90d, 12h or off"))?;
    anyhow::ensure!(d.as_secs() >= 60, "{what} must be at least a minute");
    Ok(Some(d))
}

/// A timeout or window like `10s` or `500ms`; more than zero.
fn positive_duration(what: &str, text: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(text).with_context(|| format!("invalid {what} {text:?}: use e.g. 10s or 1m"))?;
    anyhow::ensure!(!d.is_zero(), "{what} must be more than zero");
    Ok(d)
}

/// A number, or `off` (also `0`) for no limit.
fn optional_number(what: &str, text: &str) -> anyhow::Result<Option<u64>> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let n: u64 = text.trim().parse().with_context(|| format!("invalid {what} {text:?}: use a number or off"))?;
    Ok((n > 0).then_some(n))
}

/// SPEC §1: `http://{listen}` (`https://` with TLS), or
/// `http://localhost:{port}` with a warning when listening on a wildcard
/// address. A host name in `--listen` (e.g. `localhost:8080`) stays as
/// written; the port is the bound one (which differs for port 0).
/// `--public-url` as the base of every issuer, without a trailing slash.
/// RFC 8414 §2: an issuer is a URL with a scheme and a host and no query
/// or fragment; http is allowed besides https for local and test setups.
fn public_base_url(url: &str) -> anyhow::Result<String> {
    // The value is not echoed: it might hold credentials.
    let invalid = |why: &str| anyhow::anyhow!("--public-url {why}");
    let lower = url.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| lower.starts_with(scheme).then(|| &url[scheme.len()..]))
        .ok_or_else(|| invalid("must start with https:// or http://"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain spaces or control characters"));
    }
    if url.contains(['?', '#']) {
        return Err(invalid("must not have a query or a fragment (RFC 8414 §2)"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Err(invalid("must name a host"));
    }
    if authority.contains('@') {
        return Err(invalid("must not hold credentials"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn default_base_url(scheme: &str, listen: &str, local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        tracing::warn!(
            "listening on a wildcard address without --public-url; issuers will use {scheme}://localhost:{}",
            local.port()
        );
        return format!("{scheme}://localhost:{}", local.port());
    }
    match listen.rsplit_once(':') {
        Some((host, _)) if !host.is_empty() && !host.starts_with('[') && host.parse::<IpAddr>().is_err() => {
            format!("{scheme}://{}:{}", host.to_ascii_lowercase(), local.port())
        }
        _ => format!("{scheme}://{local}"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
