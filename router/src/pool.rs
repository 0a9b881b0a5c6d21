//! HTTP/1.1 to instances over keep-alive connections, one pool per serving
//! thread.
//!
//! The exchange runs in the request's own task: the head (and a small body)
//! goes out in one write, the response head is parsed with `httparse`, and
//! the response body is read from the socket as the client takes it, with
//! the message framing of RFC 9112 §6.3 (no body, `Content-Length`, chunked,
//! or until the instance closes). No connection task, no channel between
//! tasks: this is the router's hot path.
//!
//! A connection goes back to the pool when its response body has been read
//! to its end and both sides allow keep-alive; a response abandoned midway
//! closes it. An idle connection the instance closed is noticed before
//! reuse (its socket turned readable) and dropped. Failures say whether the
//! instance can have seen the request ([`Error::unsent`]).
//!
//! A request that asks to switch protocols (WebSocket) goes out on a new
//! connection; a `101` answer hands that connection to the caller
//! ([`ResponseBody::switched`]) to carry the new protocol.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Idle connections kept per instance beyond which the oldest is closed.
const MAX_IDLE_PER_INSTANCE: usize = 256;

/// Bound on a response head.
const MAX_HEAD: usize = 64 * 1024;

/// Headers parsed per response head.
const MAX_HEADERS: usize = 100;

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// Why a request did not get (all of) a response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be made.
    #[error("cannot connect to {authority}")]
    Connect {
        authority: Arc<str>,
        #[source]
        source: io::Error,
    },
    /// Connecting took longer than allowed.
    #[error("connecting to {authority} took longer than {timeout:?}")]
    ConnectTimeout {
        authority: Arc<str>,
        timeout: Duration,
    },
    /// Writing the request head failed on a new connection: nothing of it
    /// was processed.
    #[error("cannot send the request to {authority}")]
    NotSent {
        authority: Arc<str>,
        #[source]
        source: io::Error,
    },
    /// The exchange failed after the request (or part of it) went out.
    #[error("request to {authority} failed")]
    Exchange {
        authority: Arc<str>,
        #[source]
        source: io::Error,
    },
    /// The client's request body failed while being forwarded.
    #[error("the request body could not be read while sending it to {authority}")]
    RequestBody {
        authority: Arc<str>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The instance answered something that is not HTTP/1.x.
    #[error("{authority} answered with an invalid response: {reason}")]
    Invalid { authority: Arc<str>, reason: String },
}

impl Error {
    /// Whether the instance certainly never saw the request, so that it
    /// may be sent elsewhere whatever its method.
    pub fn unsent(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::NotSent { .. }
        )
    }
}

/// One keep-alive connection and the bytes read past the last message.
struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
}

struct Idle {
    connection: Connection,
    since: Instant,
}

/// Idle connections by instance address (`host:port`).
pub struct Pool {
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

/// What the caller sends: the request head up to (not including) the
/// framing headers and the blank line, and the body.
pub struct Outgoing<'a, B> {
    /// `METHOD target HTTP/1.1\r\n` and header lines, each ending `\r\n`.
    pub head: &'a [u8],
    /// Whether the method is `HEAD` (its response has no body).
    pub head_method: bool,
    /// Whether an empty body is still announced (`Content-Length: 0`), as
    /// for methods whose requests normally carry one.
    pub announce_empty: bool,
    /// Whether the head asks to switch protocols (it carries `Connection:
    /// upgrade` and `Upgrade`): sent on a new connection, never pooled.
    pub upgrade: bool,
    pub body: B,
}

/// A connection that switched protocols: the instance's socket and what
/// it sent after its `101` head.
#[derive(Debug)]
pub struct Switched {
    pub stream: TcpStream,
    pub read_ahead: Bytes,
}

impl Pool {
    /// An empty pool.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
            idle_timeout,
        })
    }

    /// Sends `request` to `authority` and reads the response head; the
    /// body follows as the response's body is read.
    pub async fn send<B>(
        self: &Arc<Self>,
        authority: &Arc<str>,
        request: Outgoing<'_, B>,
    ) -> Result<Response<ResponseBody>, Error>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Outgoing {
            head,
            head_method,
            announce_empty,
            upgrade,
            mut body,
        } = request;
        let exact = body.size_hint().exact();
        let whole = if body.is_end_stream() {
            Some(Bytes::new())
        } else {
            None
        };
        // A body with a known, small length goes out with the head.
        let (whole, chunked) = match (whole, exact) {
            (Some(empty), _) => (Some(empty), false),
            (None, Some(n)) if n <= 64 * 1024 => {
                (Some(collect(&mut body, authority).await?), false)
            }
            (None, Some(_)) => (None, false),
            (None, None) => (None, true),
        };
        let mut first = Vec::with_capacity(head.len() + 40 + whole.as_ref().map_or(0, Bytes::len));
        first.extend_from_slice(head);
        match (&whole, exact) {
            (Some(bytes), _) if !bytes.is_empty() || announce_empty => {
                push_content_length(&mut first, bytes.len() as u64)
            }
            (Some(_), _) => {}
            (None, Some(n)) if !chunked => push_content_length(&mut first, n),
            _ => first.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        first.extend_from_slice(b"\r\n");
        if let Some(bytes) = &whole {
            first.extend_from_slice(bytes);
        }

        // An idle connection first; one the instance closed meanwhile
        // fails the write before anything was processed, and the next one
        // is tried. Bounded: each turn takes a connection out of the pool.
        let mut connection = loop {
            let idle = if upgrade { None } else { self.take(authority) };
            match idle {
                Some(mut connection) => {
                    if connection.stream.write_all(&first).await.is_ok() {
                        break connection;
                    }
                }
                None => {
                    let mut connection = self.connect(authority).await?;
                    connection
                        .stream
                        .write_all(&first)
                        .await
                        .map_err(|source| Error::NotSent {
                            authority: authority.clone(),
                            source,
                        })?;
                    break connection;
                }
            }
        };
        if whole.is_none() {
            stream_body(&mut connection.stream, &mut body, chunked, authority).await?;
        }
        let (parts, keep_alive) = loop {
            let head = read_head(&mut connection, authority).await?;
            let status = head.0.status;
            if status == StatusCode::SWITCHING_PROTOCOLS && !upgrade {
                return Err(Error::Invalid {
                    authority: authority.clone(),
                    reason: "101 Switching Protocols to a request without Upgrade".into(),
                });
            }
            // 1xx answers (100 Continue, 103 Early Hints) precede the real
            // one; a 101 is the last this protocol carries.
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                continue;
            }
            break head;
        };
        // After a 101 the connection waits in the (empty) body for
        // `ResponseBody::switched`.
        let switched = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        let framing = match switched {
            true => Framing::Done,
            false => framing(&parts, head_method).map_err(|reason| Error::Invalid {
                authority: authority.clone(),
                reason,
            })?,
        };
        let body = ResponseBody {
            connection: Some(connection),
            framing,
            // A declined upgrade leaves a connection the instance may
            // still treat as being upgraded: not reused.
            keep_alive: keep_alive && !upgrade && !matches!(framing, Framing::UntilClose),
            pool: self.clone(),
            authority: authority.clone(),
            errored: false,
            switched,
        };
        let mut response = Response::new(body);
        *response.status_mut() = parts.status;
        *response.version_mut() = parts.version;
        *response.headers_mut() = parts.headers;
        if framing == Framing::Done && !switched {
            response.body_mut().finish();
        }
        Ok(response)
    }

    /// Closes connections idle longer than the idle timeout, those the
    /// instance closed, and those to instances `keep` no longer names.
    pub fn sweep(&self, keep: impl Fn(&str) -> bool) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|authority, connections| {
            connections.retain_mut(|c| {
                now.duration_since(c.since) < self.idle_timeout && usable(&mut c.connection)
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

    /// The most recently used idle connection that is still usable,
    /// dropping closed and expired ones on the way.
    fn take(&self, authority: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = idle.get_mut(authority)?;
        let now = Instant::now();
        while let Some(mut c) = connections.pop() {
            if now.duration_since(c.since) < self.idle_timeout && usable(&mut c.connection) {
                return Some(c.connection);
            }
        }
        None
    }

    fn put(&self, authority: &Arc<str>, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = match idle.get_mut(authority) {
            Some(connections) => connections,
            None => idle.entry(authority.clone()).or_default(),
        };
        if connections.len() >= MAX_IDLE_PER_INSTANCE {
            connections.remove(0);
        }
        connections.push(Idle {
            connection,
            since: Instant::now(),
        });
    }

    async fn connect(&self, authority: &Arc<str>) -> Result<Connection, Error> {
        let connecting = async {
            match authority.parse::<SocketAddr>() {
                Ok(address) => TcpStream::connect(address).await,
                // A host name: resolved on the blocking pool.
                Err(_) => TcpStream::connect(&**authority).await,
            }
        };
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| Error::ConnectTimeout {
                authority: authority.clone(),
                timeout: self.connect_timeout,
            })?
            .map_err(|source| Error::Connect {
                authority: authority.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buffer: BytesMut::with_capacity(READ_CHUNK),
        })
    }
}

/// Whether an idle connection can carry another request: nothing arrived
/// on it since its last response (an instance that closed it, or sent
/// bytes nobody asked for, made it readable). Costs a system call only
/// when the socket did turn readable.
fn usable(connection: &mut Connection) -> bool {
    if !connection.buffer.is_empty() {
        return false;
    }
    let mut cx = Context::from_waker(Waker::noop());
    match connection.stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(connection.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

fn push_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

async fn collect<B>(body: &mut B, authority: &Arc<str>) -> Result<Bytes, Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::RequestBody {
            authority: authority.clone(),
            source: e.into(),
        })?;
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Forwards a body of unknown or large length as it arrives.
async fn stream_body<B>(
    stream: &mut TcpStream,
    body: &mut B,
    chunked: bool,
    authority: &Arc<str>,
) -> Result<(), Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let write_error = |source| Error::Exchange {
        authority: authority.clone(),
        source,
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::RequestBody {
            authority: authority.clone(),
            source: e.into(),
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let size = format!("{:x}\r\n", data.len());
            stream
                .write_all(size.as_bytes())
                .await
                .map_err(write_error)?;
            stream.write_all(&data).await.map_err(write_error)?;
            stream.write_all(b"\r\n").await.map_err(write_error)?;
        } else {
            stream.write_all(&data).await.map_err(write_error)?;
        }
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n").await.map_err(write_error)?;
    }
    Ok(())
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

/// Reads and parses one response head; whether the instance allows
/// keep-alive after it.
async fn read_head(
    connection: &mut Connection,
    authority: &Arc<str>,
) -> Result<(Head, bool), Error> {
    let invalid = |reason: String| Error::Invalid {
        authority: authority.clone(),
        reason,
    };
    loop {
        if !connection.buffer.is_empty() {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&connection.buffer) {
                Ok(httparse::Status::Complete(length)) => {
                    let status = StatusCode::from_u16(parsed.code.unwrap_or(0))
                        .map_err(|_| invalid(format!("status {:?}", parsed.code)))?;
                    let version = match parsed.version {
                        Some(0) => Version::HTTP_10,
                        _ => Version::HTTP_11,
                    };
                    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
                    let mut close = version == Version::HTTP_10;
                    for h in parsed.headers.iter() {
                        let name = HeaderName::from_bytes(h.name.as_bytes())
                            .map_err(|_| invalid(format!("header name {:?}", h.name)))?;
                        let value = HeaderValue::from_bytes(h.value)
                            .map_err(|_| invalid(format!("header {name} has an invalid value")))?;
                        if name == hyper::header::CONNECTION {
                            for token in value.to_str().unwrap_or("").split(',') {
                                let token = token.trim();
                                if token.eq_ignore_ascii_case("close") {
                                    close = true;
                                } else if token.eq_ignore_ascii_case("keep-alive") {
                                    close = false;
                                }
                            }
                        }
                        headers.append(name, value);
                    }
                    connection.buffer.advance(length);
                    return Ok((
                        Head {
                            status,
                            version,
                            headers,
                        },
                        !close,
                    ));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(invalid(format!("{e}"))),
            }
            if connection.buffer.len() > MAX_HEAD {
                return Err(invalid(format!("a response head over {MAX_HEAD} bytes")));
            }
        }
        let read = read_more(connection)
            .await
            .map_err(|source| Error::Exchange {
                authority: authority.clone(),
                source,
            })?;
        if read == 0 {
            return Err(Error::Exchange {
                authority: authority.clone(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before a complete response head",
                ),
            });
        }
    }
}

async fn read_more(connection: &mut Connection) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_more(connection, cx)).await
}

/// Reads what is available into the connection's buffer.
fn poll_read_more(connection: &mut Connection, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    let buffer = &mut connection.buffer;
    if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
        buffer.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(&mut connection.stream), cx, buffer)
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No (more) body.
    Done,
    /// This many bytes remain.
    Length(u64),
    /// Chunked, in the given state.
    Chunked(Chunk),
    /// Until the instance closes the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
}

fn framing(head: &Head, head_method: bool) -> Result<Framing, String> {
    let status = head.status.as_u16();
    if head_method || status == 204 || status == 304 {
        return Ok(Framing::Done);
    }
    if let Some(codings) = head.headers.get(hyper::header::TRANSFER_ENCODING) {
        let last = codings
            .to_str()
            .unwrap_or("")
            .rsplit(',')
            .next()
            .unwrap_or("");
        return Ok(if last.trim().eq_ignore_ascii_case("chunked") {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::UntilClose
        });
    }
    let mut lengths = head.headers.get_all(hyper::header::CONTENT_LENGTH).iter();
    match lengths.next() {
        None => Ok(Framing::UntilClose),
        Some(value) => {
            let n = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| format!("Content-Length {value:?}"))?;
            if lengths.any(|other| other != value) {
                return Err("conflicting Content-Length headers".into());
            }
            Ok(if n == 0 {
                Framing::Done
            } else {
                Framing::Length(n)
            })
        }
    }
}

/// A response body read from the instance's connection as the client
/// takes it; the connection returns to the pool at its end.
pub struct ResponseBody {
    connection: Option<Connection>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
    authority: Arc<str>,
    errored: bool,
    /// A `101` answer's: the connection is the caller's to take.
    switched: bool,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("authority", &self.authority)
            .field("framing", &self.framing)
            .finish()
    }
}

impl ResponseBody {
    /// The instance's connection after a `101 Switching Protocols`, with
    /// the bytes it already sent in the new protocol; `None` for any
    /// other response (or once taken).
    pub fn switched(&mut self) -> Option<Switched> {
        if !self.switched {
            return None;
        }
        let connection = self.connection.take()?;
        Some(Switched {
            stream: connection.stream,
            read_ahead: connection.buffer.freeze(),
        })
    }

    /// The body is over: the connection goes back to the pool if it can
    /// carry another exchange.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(connection) = self.connection.take()
            && self.keep_alive
            && !self.errored
            && connection.buffer.is_empty()
        {
            self.pool.put(&self.authority, connection);
        }
    }

    fn fail(&mut self, error: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.errored = true;
        self.connection = None;
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(error)))
    }

    /// The next data frame from what is buffered, if the framing allows
    /// one; advances the chunked state machine over sizes and CRLFs.
    fn next_buffered(&mut self) -> Result<Option<Bytes>, io::Error> {
        let Some(connection) = self.connection.as_mut() else {
            return Ok(None);
        };
        let buffer = &mut connection.buffer;
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(remaining) => {
                    if buffer.is_empty() {
                        return Ok(None);
                    }
                    let n = remaining.min(buffer.len() as u64);
                    let left = remaining - n;
                    self.framing = if left == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(left)
                    };
                    return Ok(Some(buffer.split_to(n as usize).freeze()));
                }
                Framing::UntilClose => {
                    if buffer.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(buffer.split().freeze()));
                }
                Framing::Chunked(Chunk::Data(remaining)) => {
                    if buffer.is_empty() {
                        return Ok(None);
                    }
                    let n = remaining.min(buffer.len() as u64);
                    let left = remaining - n;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Some(buffer.split_to(n as usize).freeze()));
                }
                Framing::Chunked(state) => {
                    let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") else {
                        if buffer.len() > MAX_HEAD {
                            return Err(invalid_data("a chunk line is too long"));
                        }
                        return Ok(None);
                    };
                    let line = buffer.split_to(end + 2);
                    let line = &line[..end];
                    self.framing = match state {
                        Chunk::Size => {
                            let digits = line.split(|&b| b == b';').next().unwrap_or(b"");
                            let digits = std::str::from_utf8(digits)
                                .map_err(|_| invalid_data("a chunk size is not text"))?;
                            let size = u64::from_str_radix(digits.trim(), 16)
                                .map_err(|_| invalid_data("an invalid chunk size"))?;
                            Framing::Chunked(if size == 0 {
                                Chunk::Trailers
                            } else {
                                Chunk::Data(size)
                            })
                        }
                        Chunk::DataEnd if line.is_empty() => Framing::Chunked(Chunk::Size),
                        Chunk::DataEnd => return Err(invalid_data("no CRLF after chunk data")),
                        // Trailers are dropped; an empty line ends them.
                        Chunk::Trailers if line.is_empty() => Framing::Done,
                        Chunk::Trailers => Framing::Chunked(Chunk::Trailers),
                        Chunk::Data(_) => unreachable!("handled above"),
                    };
                }
            }
        }
    }
}

fn invalid_data(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_string())
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        // Bounded: each turn either returns or reads more bytes.
        loop {
            match this.next_buffered() {
                Err(e) => return this.fail(e),
                Ok(Some(data)) => {
                    if this.framing == Framing::Done {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(None) if this.framing == Framing::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match poll_read_more(connection, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(e),
                Poll::Ready(Ok(0)) => {
                    if this.framing == Framing::UntilClose {
                        this.connection = None;
                        this.framing = Framing::Done;
                        return Poll::Ready(None);
                    }
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the instance closed the connection before the end of the body",
                    ));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
