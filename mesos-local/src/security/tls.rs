//! TLS for the master's API, as a Mesos master with
//! `LIBPROCESS_SSL_ENABLED=true` serves it: a PEM certificate chain and key,
//! https only (no downgrade). rustls with ring.
//!
//! Handshakes run in their own tasks, off the accept loop, so one slow or
//! silent client never holds up the others; finished connections are handed
//! to `axum::serve` through `TlsListener`, which keeps axum's graceful
//! shutdown as it is for plain TCP.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for `axum::serve` to take them.
const READY_BACKLOG: usize = 64;

/// A certificate or key that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} '{path}': {source}")]
    Read {
        /// "certificate file" or "key file".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate PEM holds no certificate or is malformed.
    #[error("{0}: no PEM certificate could be read")]
    Certificate(String),
    /// The key PEM holds no private key or is malformed.
    #[error("{0}: no PEM private key could be read")]
    Key(String),
    /// rustls refuses the pair (e.g. the key does not match).
    #[error("certificate and key cannot be served: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The master's TLS settings, checked when made: a cluster given one
/// starts serving it or not at all.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
}

/// Never prints key material.
impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// From PEM text: the certificate chain (leaf first) and its private
    /// key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<TlsConfig, TlsError> {
        TlsConfig::build(cert_chain, key, "certificate", "key")
    }

    /// From PEM files, as `--ssl_cert_file` / `--ssl_key_file`
    /// (`LIBPROCESS_SSL_CERT_FILE` / `LIBPROCESS_SSL_KEY_FILE`).
    pub fn from_pem_files(cert_file: &Path, key_file: &Path) -> Result<TlsConfig, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let cert = read("certificate file", cert_file)?;
        let key = read("key file", key_file)?;
        TlsConfig::build(
            &cert,
            &key,
            &format!("'{}'", cert_file.display()),
            &format!("'{}'", key_file.display()),
        )
    }

    fn build(
        cert_chain: &[u8],
        key: &[u8],
        cert_name: &str,
        key_name: &str,
    ) -> Result<TlsConfig, TlsError> {
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| TlsError::Certificate(cert_name.to_string()))?;
        let key =
            PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsError::Key(key_name.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            server: Arc::new(server),
        })
    }
}

/// TLS connections for `axum::serve`, handshaken by a background accept
/// loop that stops when `stop` is cancelled.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp`; handshake tasks are tracked by `tracker`.
    pub(crate) fn start(
        tcp: TcpListener,
        addr: SocketAddr,
        tls: &TlsConfig,
        stop: CancellationToken,
        tracker: &TaskTracker,
    ) -> TlsListener {
        let (tx, ready) = mpsc::channel(READY_BACKLOG);
        let acceptor = TlsAcceptor::from(tls.server.clone());
        let handshakes = tracker.clone();
        tracker.spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = stop.cancelled() => return,
                    () = tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: as axum's
                            // own accept loop, wait a little and retry.
                            warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx, stop) = (acceptor.clone(), tx.clone(), stop.clone());
                handshakes.spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    tokio::select! {
                        () = stop.cancelled() => {}
                        done = handshake => match done {
                            Ok(Ok(tls)) => {
                                let _ = tx.send((tls, peer)).await;
                            }
                            Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => debug!(%peer, "TLS handshake timed out"),
                        },
                    }
                });
            }
        });
        TlsListener { ready, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop stopped: shutdown is under way, and axum stops
            // calling this once its graceful shutdown begins.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_a_clear_error() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = made.cert.pem();
        let key = made.signing_key.serialize_pem();
        assert!(TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).is_ok());
        assert!(matches!(
            TlsConfig::from_pem(b"nothing", key.as_bytes()),
            Err(TlsError::Certificate(_))
        ));
        assert!(matches!(
            TlsConfig::from_pem(cert.as_bytes(), cert.as_bytes()),
            Err(TlsError::Key(_))
        ));
        let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        assert!(matches!(
            TlsConfig::from_pem(
                cert.as_bytes(),
                other.signing_key.serialize_pem().as_bytes()
            ),
            Err(TlsError::Rustls(_))
        ));
        let err = TlsConfig::from_pem_files(Path::new("/no/cert.pem"), Path::new("/no/key.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/cert.pem"), "{err}");
    }
}
