//! HTTP/2 towards instances, for apps labelled
//! `BATON_BACKEND_PROTOCOL=h2` (or `grpc`): gRPC passes through as it
//! came, streams, trailers and all. One cleartext HTTP/2 connection (prior
//! knowledge, as gRPC servers expect) per instance address, shared by
//! every serving thread, its streams multiplexed; a connection that closed
//! is replaced on the next request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// A request body as sent to an instance.
pub type H2Body = BoxBody<Bytes, hyper::Error>;

/// Why a request got no answer over HTTP/2.
#[derive(Debug, thiserror::Error)]
pub enum H2Error {
    /// The TCP connection failed (nothing was sent).
    #[error("cannot connect to {0}")]
    Connect(Arc<str>, #[source] std::io::Error),
    /// The connect did not finish in time (nothing was sent).
    #[error("connecting to {0} timed out")]
    ConnectTimeout(Arc<str>),
    /// The HTTP/2 handshake or the exchange failed.
    #[error("HTTP/2 exchange with {0} failed")]
    Exchange(Arc<str>, #[source] hyper::Error),
}

impl H2Error {
    /// Whether the request never went out (another instance may take it).
    pub fn unsent(&self) -> bool {
        matches!(self, H2Error::Connect(..) | H2Error::ConnectTimeout(_))
    }
}

/// The connections, by instance address.
#[derive(Default)]
pub struct H2Pool {
    connections: Mutex<HashMap<Arc<str>, SendRequest<H2Body>>>,
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool").finish_non_exhaustive()
    }
}

impl H2Pool {
    /// A connection to the instance at `authority` ready for a request:
    /// its open one, or a new one. Nothing is sent yet, so on an error the
    /// request can go to another instance.
    pub async fn ready(
        &self,
        authority: &Arc<str>,
        connect_timeout: Duration,
    ) -> Result<SendRequest<H2Body>, H2Error> {
        let cached = self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(authority)
            .filter(|s| !s.is_closed())
            .cloned();
        let mut sender = match cached {
            Some(sender) => sender,
            None => {
                let sender = connect(authority, connect_timeout).await?;
                self.connections
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(authority.clone(), sender.clone());
                sender
            }
        };
        match sender.ready().await {
            Ok(()) => Ok(sender),
            // It closed meanwhile: once more, on a new connection.
            Err(_) => {
                let sender = connect(authority, connect_timeout).await?;
                self.connections
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(authority.clone(), sender.clone());
                Ok(sender)
            }
        }
    }
}

/// Sends `request` (its URI absolute: `http://<authority><path>`) on
/// `sender`, a connection to the instance at `authority`.
pub async fn send(
    mut sender: SendRequest<H2Body>,
    authority: &Arc<str>,
    request: Request<H2Body>,
) -> Result<Response<Incoming>, H2Error> {
    sender
        .send_request(request)
        .await
        .map_err(|e| H2Error::Exchange(authority.clone(), e))
}

/// A new connection to `authority`, driven on the current runtime until
/// it closes (the instance goes, or the last sender is dropped).
async fn connect(authority: &Arc<str>, timeout: Duration) -> Result<SendRequest<H2Body>, H2Error> {
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&**authority)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(H2Error::Connect(authority.clone(), e)),
        Err(_) => return Err(H2Error::ConnectTimeout(authority.clone())),
    };
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| H2Error::Exchange(authority.clone(), e))?;
    let name = authority.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(instance = %name, error = %e, "HTTP/2 connection to an instance ended");
        }
    });
    Ok(sender)
}
