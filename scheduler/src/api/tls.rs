//! The API over HTTPS (`--https_port`, `--ssl_cert`, `--ssl_key`, PEM),
//! with rustls on ring.
//!
//! The certificate is reloaded on SIGHUP and when either file's
//! modification time changes (checked every `--ssl_reload_interval`,
//! [`DEFAULT_RELOAD_POLL`] unless set; zero: SIGHUP only): new
//! handshakes get the new certificate, open connections keep theirs. A
//! pair that does not load (half-written, mismatched) is logged and the
//! previous one stays in use; only at start is it fatal.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often the certificate files are checked for changes by default.
pub const DEFAULT_RELOAD_POLL: Duration = Duration::from_secs(2);
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shutdown waits for open HTTPS connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where the HTTPS listener is and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSettings {
    /// `--https_address`:`--https_port`.
    pub addr: std::net::SocketAddr,
    /// `--ssl_cert`: the certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// `--ssl_key`: its private key, PEM.
    pub key: PathBuf,
    /// `--ssl_reload_interval`: how often the files are checked for
    /// changes; `None`: only on SIGHUP.
    pub reload_poll: Option<Duration>,
}

/// The certificate could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// `--ssl_cert` is unreadable or holds no certificate.
    #[error("--ssl_cert {path}: {reason}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--ssl_key` is unreadable, not a key, or not the certificate's.
    #[error("--ssl_key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a certificate chain and its key into what rustls serves.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_error = |reason: String| TlsError::Cert {
        path: cert.to_path_buf(),
        reason,
    };
    let key_error = |reason: String| TlsError::Key {
        path: key.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(cert_error("holds no PEM certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| key_error(e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, private, &provider)
        .map_err(|e| key_error(format!("does not go with --ssl_cert: {e}")))
}

/// The modification times of the certificate and key files.
type Stamps = Option<(SystemTime, SystemTime)>;

/// The certificate in service, swapped on reload.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Stamps)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ReloadingCert {
    /// Loads the pair; an error here stops the start.
    pub fn load(cert: &Path, key: &Path) -> Result<ReloadingCert, TlsError> {
        let stamps = modified(cert).zip(modified(key));
        let loaded = load_certified_key(cert, key)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new((Arc::new(loaded), stamps)),
        })
    }

    /// Loads the pair again. `Ok(true)` if a new certificate is in service;
    /// on error the old one stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let stamps = modified(&self.cert).zip(modified(&self.key));
        let loaded = load_certified_key(&self.cert, &self.key)?;
        let mut current = self.current.write().expect("never poisoned");
        let changed = current.0.cert != loaded.cert;
        *current = (Arc::new(loaded), stamps);
        Ok(changed)
    }

    /// Whether either file changed since the last load.
    fn files_changed(&self) -> bool {
        let now = modified(&self.cert).zip(modified(&self.key));
        now.is_some() && now != self.current.read().expect("never poisoned").1
    }

    /// Reloads on SIGHUP and, every `poll`, when the files changed, until
    /// `shutdown`.
    pub async fn watch(self: Arc<Self>, poll: Option<Duration>, shutdown: CancellationToken) {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP; the certificate reloads on file changes only");
                None
            }
        };
        let mut poll = poll.filter(|every| !every.is_zero()).map(|every| {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        loop {
            let why = tokio::select! {
                () = shutdown.cancelled() => return,
                Some(()) = async { match hangups.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
                _ = async { match poll.as_mut() { Some(p) => p.tick().await, None => std::future::pending().await } } => {
                    if !self.files_changed() { continue; }
                    "file change"
                }
            };
            match self.reload() {
                Ok(true) => info!(cert = %self.cert.display(), why, "HTTPS certificate reloaded"),
                Ok(false) => debug!(why, "HTTPS certificate unchanged"),
                Err(e) => {
                    warn!(error = %e, why, "HTTPS certificate not reloaded; the previous one stays in service")
                }
            }
        }
    }

    /// The rustls settings that serve whatever is current.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("never poisoned").0.clone())
    }
}

/// Serves `app` over TLS on `listener` until `shutdown`, then waits (a
/// bounded time) for open connections. Each request carries the peer's
/// address (`ConnectInfo`), as over plain HTTP.
pub async fn serve(
    listener: tokio::net::TcpListener,
    certs: Arc<ReloadingCert>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: do not spin.
                    warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // As over plain HTTP: no Nagle delay on an answer's last segment.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone().layer(axum::Extension(ConnectInfo(peer))),
        );
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return debug!(%peer, "TLS handshake timed out"),
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("HTTPS connections still open after the shutdown grace; dropping them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        (cert, key, generated.cert.der().to_vec())
    }

    #[test]
    fn a_reload_swaps_the_certificate_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, first) = write_pair(dir.path(), "a.test");
        let certs = ReloadingCert::load(&cert, &key).unwrap();
        assert_eq!(certs.current.read().unwrap().0.cert[0].as_ref(), first);
        assert!(!certs.reload().unwrap(), "same files, same certificate");

        let (other_cert, other_key, second) = write_pair(dir.path(), "b.test");
        std::fs::copy(&other_cert, &cert).unwrap();
        // A certificate with the old key: refused, the old pair stays.
        let e = certs.reload().unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e}");
        assert_eq!(certs.current.read().unwrap().0.cert[0].as_ref(), first);
        std::fs::copy(&other_key, &key).unwrap();
        assert!(certs.reload().unwrap());
        assert_eq!(certs.current.read().unwrap().0.cert[0].as_ref(), second);
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = write_pair(dir.path(), "a.test");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "junk").unwrap();
        let e = ReloadingCert::load(&junk, &key).unwrap_err().to_string();
        assert!(
            e.starts_with("--ssl_cert ") && e.contains("junk.pem"),
            "{e}"
        );
        let e = ReloadingCert::load(&cert, &junk).unwrap_err().to_string();
        assert!(e.starts_with("--ssl_key ") && e.contains("junk.pem"), "{e}");
        let e = ReloadingCert::load(&dir.path().join("none.crt"), &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.crt"), "{e}");
    }
}
