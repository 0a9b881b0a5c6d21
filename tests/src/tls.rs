//! HTTPS requests for tests of TLS endpoints (the workspace's reqwest has
//! no TLS): one GET over rustls trusting exactly the certificate given,
//! answering with the status, the body and the certificate the server
//! presented.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What an HTTPS GET got back.
#[derive(Debug, Clone)]
pub struct HttpsAnswer {
    /// The status code.
    pub status: u16,
    /// The server's leaf certificate (DER).
    pub leaf: Vec<u8>,
    /// The body, lossily as text (the whole answer after the head).
    pub body: String,
}

/// `GET path` on `addr` over TLS with SNI `server_name`, trusting only
/// `trusted` (DER), with HTTP Basic when `basic` is given. `Err` says why
/// the connection or handshake failed.
pub async fn get(
    addr: SocketAddr,
    trusted: &[u8],
    server_name: &str,
    path: &str,
    basic: Option<(&str, &str)>,
) -> Result<HttpsAnswer, String> {
    use base64::Engine;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(trusted.to_vec()))
        .map_err(|e| format!("unusable trusted certificate: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let authorization = basic
        .map(|(user, password)| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        })
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {server_name}\r\n{authorization}Connection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    Ok(HttpsAnswer {
        status,
        leaf,
        body: body.to_string(),
    })
}

/// A self-signed certificate for `names`: its PEM, its key's PEM, its DER.
pub fn self_signed(names: &[&str]) -> (String, String, Vec<u8>) {
    let generated =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("generate a certificate");
    (
        generated.cert.pem(),
        generated.signing_key.serialize_pem(),
        generated.cert.der().to_vec(),
    )
}
