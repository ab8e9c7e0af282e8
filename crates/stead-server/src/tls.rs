//! HTTPS with rustls (aws-lc-rs provider). The certificate chain and key
//! are read from PEM files and re-read when either file changes, so a
//! renewed certificate is served to new connections without a restart. A
//! renewal that cannot be used (unreadable, unparsable, key not matching
//! the certificate, or caught half-written) is logged and the previous
//! certificate stays in service. Key material is never logged.

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The PEM files of the server certificate (chain, leaf first) and its
/// private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads and checks both files once, for a clear error at start-up.
    pub fn check(&self) -> Result<(), String> {
        load(self, &provider()).map(|_| ())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What identifies a version of the two files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([(Option<SystemTime>, u64, u64); 2]);

fn stamp(files: &TlsFiles) -> Option<Stamp> {
    let one = |p: &Path| {
        // Follows symbolic links, so certbot's `live/` links and
        // Kubernetes' swapped secret directories are seen to change.
        let m = std::fs::metadata(p).ok()?;
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let ino = 0;
        Some((m.modified().ok(), m.len(), ino))
    };
    Some(Stamp([one(&files.cert)?, one(&files.key)?]))
}

fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let cert_pem =
        std::fs::read(&files.cert).map_err(|e| format!("cannot read TLS certificate {}: {e}", files.cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM in TLS certificate {}: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no CERTIFICATE in {}", files.cert.display()));
    }
    let key_pem = std::fs::read(&files.key).map_err(|e| format!("cannot read TLS key {}: {e}", files.key.display()))?;
    // The parser's error could quote the file; say only where to look.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM) in {}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("TLS key {} does not fit certificate {}: {e}", files.key.display(), files.cert.display()))
}

/// Serves the current certificate to every handshake.
pub struct ReloadingCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// The version of the files last tried, loaded or not.
    tried: Mutex<Option<Stamp>>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert").field("files", &self.files).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ReloadingCert {
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        let provider = provider();
        let tried = stamp(&files);
        let key = load(&files, &provider)?;
        Ok(ReloadingCert { files, provider, current: ArcSwap::from_pointee(key), tried: Mutex::new(tried) })
    }

    /// Re-reads the files if they changed since last tried; true when a new
    /// certificate is now served.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files);
        {
            let mut tried = self.tried.lock().unwrap_or_else(|e| e.into_inner());
            if now.is_none() || *tried == now {
                return false;
            }
            *tried = now;
        }
        match load(&self.files, &self.provider) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; still serving the previous one");
                false
            }
        }
    }

    /// Checks the files every [`RELOAD_INTERVAL`].
    pub fn spawn_watch(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let this = self.clone();
                let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
            }
        })
    }
}

/// A TLS acceptor serving `resolver`'s certificate, offering HTTP/2 and
/// HTTP/1.1 by ALPN.
pub fn acceptor(resolver: Arc<ReloadingCert>) -> Result<TlsAcceptor, String> {
    let mut config = ServerConfig::builder_with_provider(resolver.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
