//! Keep-alive connections to instances, one pool per serving thread.
//!
//! A request takes the most recently used idle connection to its instance
//! (or opens one), and gives it back when the response body has been read
//! to its end; a connection whose response was abandoned is closed, not
//! reused. Nothing here is shared between threads, so the lock is never
//! contended, and nothing is spawned per request: each connection has one
//! task, driving its I/O, for its whole life.
//!
//! A pooled connection the instance has closed in the meantime is noticed
//! when the request is handed to it (hyper gives the request back unsent);
//! the request then goes to the next idle connection or a new one. Only
//! failures after the request went out, or failures to connect, reach the
//! caller, which tells them apart with [`Error::unsent`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

/// Idle connections kept per instance beyond which the oldest is closed.
const MAX_IDLE_PER_INSTANCE: usize = 256;

/// Why a request did not get a response head.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be made.
    #[error("cannot connect to {authority}")]
    Connect {
        authority: Arc<str>,
        #[source]
        source: std::io::Error,
    },
    /// Connecting took longer than allowed.
    #[error("connecting to {authority} took longer than {timeout:?}")]
    ConnectTimeout {
        authority: Arc<str>,
        timeout: Duration,
    },
    /// The connection failed before the request could be written.
    #[error("the connection to {authority} failed before the request went out")]
    NotSent {
        authority: Arc<str>,
        #[source]
        source: hyper::Error,
    },
    /// The exchange failed after the request (or part of it) went out.
    #[error("request to {authority} failed")]
    Exchange {
        authority: Arc<str>,
        #[source]
        source: hyper::Error,
    },
}

impl Error {
    /// Whether the instance certainly never saw the request, so that it
    /// may be sent elsewhere whatever its method.
    pub fn unsent(&self) -> bool {
        !matches!(self, Error::Exchange { .. })
    }
}

/// A connection on loan to one request; see [`Lease::release`].
pub struct Lease<B> {
    pool: Arc<Pool<B>>,
    authority: Arc<str>,
    sender: Option<SendRequest<B>>,
}

impl<B> Lease<B> {
    /// Gives the connection back for the next request: call only once the
    /// response body has been read to its end.
    pub fn release(mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.put(&self.authority, sender);
        }
    }
}

/// Dropping a lease without [`Lease::release`] closes its connection
/// (once hyper has finished with it), as its response was abandoned.
impl<B> std::fmt::Debug for Lease<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("authority", &self.authority)
            .finish()
    }
}

struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
}

/// Idle connections by instance address (`host:port`).
pub struct Pool<B> {
    idle: Mutex<HashMap<Arc<str>, Vec<Idle<B>>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl<B> std::fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl<B> Pool<B> {
    /// An empty pool.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Pool<B>> {
        Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
            idle_timeout,
        })
    }

    /// Closes connections idle longer than the idle timeout, and those to
    /// instances `keep` no longer names.
    pub fn sweep(&self, keep: impl Fn(&str) -> bool) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|authority, connections| {
            connections.retain(|c| {
                !c.sender.is_closed() && now.duration_since(c.since) < self.idle_timeout
            });
            !connections.is_empty() && keep(authority)
        });
    }

    /// Idle connections, over all instances.
    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(Vec::len)
            .sum()
    }

    fn lease(self: &Arc<Self>, authority: &Arc<str>, sender: SendRequest<B>) -> Lease<B> {
        Lease {
            pool: self.clone(),
            authority: authority.clone(),
            sender: Some(sender),
        }
    }

    /// The most recently used idle connection that is ready, dropping
    /// closed and expired ones on the way.
    fn take(&self, authority: &str) -> Option<SendRequest<B>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = idle.get_mut(authority)?;
        let now = Instant::now();
        while let Some(c) = connections.pop() {
            if c.sender.is_ready() && now.duration_since(c.since) < self.idle_timeout {
                return Some(c.sender);
            }
            // Closed, expired, or (rarely) still finishing its last
            // response: dropping the sender closes the connection.
        }
        None
    }

    fn put(&self, authority: &Arc<str>, sender: SendRequest<B>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = match idle.get_mut(authority) {
            Some(connections) => connections,
            None => idle.entry(authority.clone()).or_default(),
        };
        if connections.len() >= MAX_IDLE_PER_INSTANCE {
            connections.remove(0);
        }
        connections.push(Idle {
            sender,
            since: Instant::now(),
        });
    }
}

impl<B> Pool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Sends `request` (origin-form URI, with its Host header) to
    /// `authority`: the response head, and the lease of the connection
    /// its body arrives on.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Arc<str>,
        mut request: Request<B>,
    ) -> Result<(Response<Incoming>, Lease<B>), Error> {
        // Idle connections first; each one that turns out dead gives the
        // request back. Bounded: every turn takes one connection out.
        while let Some(mut sender) = self.take(authority) {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, self.lease(authority, sender))),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => {
                        debug!(%authority, "a pooled connection was closed; trying another");
                        request = unsent;
                    }
                    None => return Err(exchange(authority, failed.into_error())),
                },
            }
        }
        let mut sender = self.connect(authority).await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok((response, self.lease(authority, sender))),
            Err(mut failed) => {
                let unsent = failed.take_message().is_some();
                let source = failed.into_error();
                Err(if unsent {
                    Error::NotSent {
                        authority: authority.clone(),
                        source,
                    }
                } else {
                    exchange(authority, source)
                })
            }
        }
    }

    /// A new connection to `authority`, its I/O driven by a task of its own.
    async fn connect(&self, authority: &Arc<str>) -> Result<SendRequest<B>, Error> {
        let connecting = async {
            let stream = match authority.parse::<SocketAddr>() {
                Ok(address) => TcpStream::connect(address).await,
                // A host name: resolved on the blocking pool.
                Err(_) => TcpStream::connect(&**authority).await,
            }
            .map_err(|source| Error::Connect {
                authority: authority.clone(),
                source,
            })?;
            let _ = stream.set_nodelay(true);
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|source| Error::NotSent {
                    authority: authority.clone(),
                    source,
                })
        };
        let (sender, connection) = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| Error::ConnectTimeout {
                authority: authority.clone(),
                timeout: self.connect_timeout,
            })??;
        let authority = authority.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%authority, error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

fn exchange(authority: &Arc<str>, source: hyper::Error) -> Error {
    Error::Exchange {
        authority: authority.clone(),
        source,
    }
}
