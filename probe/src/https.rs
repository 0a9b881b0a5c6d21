//! `GET` over TLS, for HTTPS health and readiness checks.
//!
//! reqwest is built without TLS: its rustls support, once enabled, is
//! enabled for every reqwest client in the workspace, and without a crypto
//! provider installed process-wide first each of them panics when built.
//! So an HTTPS probe speaks HTTP/1.1 with hyper over a tokio-rustls stream
//! whose configuration names its provider (ring) itself: one connection per
//! request, closed after it.
//!
//! As in Marathon and Mesos (whose executors run `curl -k`), a probe does
//! not verify the server's certificate: any chain and any name pass. The
//! handshake's signatures must still be valid for the certificate the
//! server presents. A [`HttpsClient::verifying`] client (the fetcher's)
//! verifies chain and name against [`trust_roots`].

use std::pin::pin;
use std::sync::Arc;

use futures::future::{self, Either};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, HOST};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use reqwest::Url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why an HTTPS request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// The answer's body could not be written where it was asked to go.
    #[error("cannot write the body")]
    Write(#[source] std::io::Error),
    /// Not an `https` URL with a host.
    #[error("not an https URL with a host")]
    Url,
    /// The TCP connection failed.
    #[error("cannot connect to {0}")]
    Connect(String, #[source] std::io::Error),
    /// The TLS handshake failed.
    #[error("TLS handshake failed")]
    Handshake(#[source] std::io::Error),
    /// The HTTP exchange failed: a malformed or missing answer, a reset.
    #[error("HTTP exchange failed")]
    Http(#[source] hyper::Error),
}

/// Why trust roots could not be read.
#[derive(Debug, thiserror::Error)]
#[error("CA file {path}: {reason}")]
pub struct RootsError {
    /// The file.
    pub path: std::path::PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The system's trust roots plus those in `ca_file` (PEM), which must hold
/// at least one usable certificate.
pub fn trust_roots(ca_file: Option<&std::path::Path>) -> Result<RootCertStore, RootsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let error = |reason: String| RootsError {
            path: path.to_path_buf(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| error(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| error(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(error("holds no PEM certificate".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| error(format!("unusable certificate: {e}")))?;
        }
    }
    Ok(roots)
}

/// Sends HTTPS requests; [`HttpsClient::new`] accepts any server
/// certificate, [`HttpsClient::verifying`] only trusted ones. Cheap to
/// clone.
#[derive(Clone)]
pub struct HttpsClient {
    tls: TlsConnector,
}

impl Default for HttpsClient {
    fn default() -> Self {
        HttpsClient::new()
    }
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient").finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// TLS 1.2 and 1.3 with ring's algorithms, offering only HTTP/1.1.
    pub fn new() -> HttpsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = AnyCertificate(provider.signature_verification_algorithms);
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        HttpsClient {
            tls: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Verifies the server's chain against `roots` and its name, as curl
    /// does by default (the Mesos fetcher's downloads).
    pub fn verifying(roots: RootCertStore) -> HttpsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        HttpsClient {
            tls: TlsConnector::from(Arc::new(config)),
        }
    }

    /// `GET url` on a connection of its own: the answer's head, its body
    /// written to `out` as it arrives when the status is a success (else
    /// not read). Not bounded in time: callers apply their timeout.
    pub async fn get_into<W>(&self, url: &Url, out: &mut W) -> Result<Response<()>, HttpsError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::AsyncWriteExt;
        self.exchange(url, async |response| {
            let (parts, mut body) = response.into_parts();
            if parts.status.is_success() {
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.map_err(HttpsError::Http)?.into_data() {
                        out.write_all(&data).await.map_err(HttpsError::Write)?;
                    }
                }
            }
            Ok(Response::from_parts(parts, ()))
        })
        .await
    }

    /// `GET url` on a connection of its own: the answer, with its body read
    /// until it ends or `max_body` bytes are in (the rest is not read). Not
    /// bounded in time: callers apply their timeout.
    pub async fn get(&self, url: &Url, max_body: usize) -> Result<Response<Vec<u8>>, HttpsError> {
        self.exchange(url, async |response| {
            read_body(response, max_body)
                .await
                .map_err(HttpsError::Http)
        })
        .await
    }

    /// Connects to `url`'s server, sends `GET`, and gives the answer to
    /// `read`, driving the connection meanwhile.
    async fn exchange<T>(
        &self,
        url: &Url,
        read: impl AsyncFnOnce(Response<Incoming>) -> Result<T, HttpsError>,
    ) -> Result<T, HttpsError> {
        if url.scheme() != "https" {
            return Err(HttpsError::Url);
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(HttpsError::Url);
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare.to_string()).map_err(|_| HttpsError::Url)?;
        let tcp = TcpStream::connect((bare, port))
            .await
            .map_err(|e| HttpsError::Connect(format!("{host}:{port}"), e))?;
        // Best effort: a probe's few packets should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let stream = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(HttpsError::Handshake)?;

        let mut target = url.path().to_string();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let request = Request::get(target)
            .header(HOST, authority)
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|_| HttpsError::Url)?;

        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(HttpsError::Http)?;
        let exchange = async move {
            let response = sender
                .send_request(request)
                .await
                .map_err(HttpsError::Http)?;
            read(response).await
        };
        // The connection must be driven while the exchange runs; dropping it
        // closes the socket.
        match future::select(pin!(exchange), pin!(connection)).await {
            Either::Left((answer, _connection)) => answer,
            // It closed cleanly: what it received is in the exchange's reach.
            Either::Right((Ok(()), exchange)) => exchange.await,
            Either::Right((Err(e), _exchange)) => Err(HttpsError::Http(e)),
        }
    }
}

/// `response` with its body's first `max_body` bytes (or more: whole
/// frames) read.
async fn read_body(
    response: Response<Incoming>,
    max_body: usize,
) -> Result<Response<Vec<u8>>, hyper::Error> {
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while bytes.len() < max_body {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Response::from_parts(parts, bytes))
}

/// Accepts every certificate (Marathon and Mesos do not verify those of health
/// checks), but checks the handshake's signatures against the one presented.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
