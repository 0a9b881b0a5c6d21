//! Probing an instance over the network, shared by Baton's scheduler
//! (Marathon-level `HTTP`, `HTTPS` and `TCP` health checks, readiness
//! checks) and `baton-executor` (Mesos-level checks run next to the task).
//!
//! # Layout
//!
//! - [`https`]: `GET` over TLS with rustls (ring), accepting any server
//!   certificate as Marathon and Mesos do; reqwest stays without TLS.
//! - [`tcp`]: a TCP connect within a timeout.
//! - [`error_chain`]: an error and its causes on one line, for the causes
//!   probes report (reqwest's and hyper's own messages are terse).
//!
//! Plain `HTTP` goes through each caller's reqwest client: the scheduler
//! and the executor judge answers differently (redirects, 1xx, bodies).

pub mod https;

use std::time::Duration;

pub use https::{HttpsClient, HttpsError};

/// An error and its sources, `: `-joined.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Why a TCP probe failed.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    /// The connection was refused or failed. (Its cause is in the
    /// message, not a `source`, so that `to_string` alone says why and
    /// [`error_chain`] does not say it twice.)
    #[error("connecting to {address} failed: {error}")]
    Connect {
        /// `host:port`.
        address: String,
        /// Why.
        error: std::io::Error,
    },
    /// Nothing answered in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// `host:port`, with IPv6 literals in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connects to `host:port` within `timeout`, then hangs up: passes when
/// something listens.
pub async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), TcpError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(timeout, connect).await {
        // The stream is dropped, so the connection closes at once.
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(error)) => Err(TcpError::Connect {
            address: host_port(host, port),
            error,
        }),
        Err(_) => Err(TcpError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_passes_when_something_listens_and_names_the_address_when_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tcp("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap();
        drop(listener);
        let refused = tcp("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with(&format!("connecting to 127.0.0.1:{port} failed: ")),
            "{refused}"
        );
    }

    #[test]
    fn errors_read_as_one_line_with_their_causes() {
        let inner = std::io::Error::other("refused");
        let outer = TcpError::Connect {
            address: "h:1".into(),
            error: inner,
        };
        assert_eq!(error_chain(&outer), "connecting to h:1 failed: refused");
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("10.0.0.1", 80), "10.0.0.1:80");
    }
}
