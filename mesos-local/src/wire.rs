//! What the master's and the agents' HTTP APIs share: picking the encoding
//! from `Content-Type` and `Accept` exactly as Mesos does, the 4xx answers,
//! RecordIO event streams whose backlog is bounded in bytes, and ID
//! validation.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mesos_proto::Encoding;
use prost::{Message, Name};
use tokio::sync::mpsc;

/// Bytes a subscriber may fall behind by before it is dropped as
/// disconnected: a slow or dead reader must never block the master or an
/// agent, nor make either hold an unbounded backlog. Counted in bytes, not
/// records, so that a legitimate burst (the answers to a RECONCILE of
/// every task, tens of thousands of records) fits.
pub const STREAM_BACKLOG: usize = 16 * 1024 * 1024;

/// Largest call body accepted (an ACCEPT launching many tasks is big).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// A request refused before it reached the master or agent logic. The
/// variants are the HTTP answers a real Mesos gives, with its texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// 401 with `WWW-Authenticate: Basic realm="<realm>"` and libprocess's
    /// body, for missing or wrong credentials alike.
    #[error("401 Unauthorized.")]
    Unauthorized(&'static str),
    /// 405: only POST is allowed.
    #[error("Expecting POST")]
    MethodNotAllowed,
    /// 400 with a message.
    #[error("{0}")]
    BadRequest(String),
    /// 415: a Content-Type other than the two exact media types.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 406: `Accept` allows neither encoding.
    #[error("{0}")]
    NotAcceptable(String),
    /// 403 with a message.
    #[error("{0}")]
    Forbidden(String),
    /// 501: a call type this server does not implement.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the server is stopping (or, for an agent, stopped) or cannot
    /// take more of this now.
    #[error("{0}")]
    ServiceUnavailable(String),
}

impl Rejection {
    /// The status code this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Rejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Rejection::Forbidden(_) => StatusCode::FORBIDDEN,
            Rejection::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Rejection::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), self.to_string()).into_response();
        match self {
            Rejection::MethodNotAllowed => {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            Rejection::Unauthorized(realm) => {
                if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// A header as text, `None` if absent or not visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decodes a call body, checking in Mesos's order: method, presence of
/// `Content-Type`, its exact value, then the body.
pub fn decode_call<M: Message + Name + Default>(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(M, Encoding), Rejection> {
    if method != Method::POST {
        return Err(Rejection::MethodNotAllowed);
    }
    let Some(raw) = headers.get(header::CONTENT_TYPE) else {
        return Err(Rejection::BadRequest(
            "Expecting 'Content-Type' to be present".into(),
        ));
    };
    let content_type = raw.to_str().unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return Err(Rejection::UnsupportedMediaType(format!(
            "Expecting 'Content-Type' of application/json or application/x-protobuf, got '{content_type}'"
        )));
    };
    let short = M::NAME;
    match encoding.decode::<M>(body) {
        Ok(call) => Ok((call, encoding)),
        Err(e) => Err(Rejection::BadRequest(match encoding {
            Encoding::Protobuf => format!("Failed to parse body into {short} protobuf: {e}"),
            Encoding::Json => format!("Failed to convert JSON into {short} protobuf: {e}"),
        })),
    }
}

/// The encoding of an event stream from the request's `Accept`, or 406.
pub fn negotiate(headers: &HeaderMap) -> Result<Encoding, Rejection> {
    let accept = header_str(headers, header::ACCEPT.as_str());
    Encoding::negotiate(accept).ok_or_else(|| {
        Rejection::NotAcceptable(format!(
            "Expecting 'Accept' to allow application/json or application/x-protobuf, got '{}'",
            accept.unwrap_or("")
        ))
    })
}

/// One RecordIO record holding `event` in `encoding`.
pub fn record<M: Message + Name>(encoding: Encoding, event: &M) -> Bytes {
    match encoding.encode(event) {
        Ok(bytes) => mesos_proto::recordio::encode_to_bytes(&bytes),
        Err(e) => {
            // Our own events always encode; never take the server down.
            tracing::error!(error = %e, "failed to encode an event");
            Bytes::new()
        }
    }
}

/// Why an [`Outbox`] refused a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamGone {
    /// The response body was dropped (the client went away).
    Closed,
    /// The client reads too slowly: more than [`STREAM_BACKLOG`] bytes wait.
    TooFarBehind,
}

/// The sending half of an event stream: never blocks, and refuses records
/// once the reader has fallen [`STREAM_BACKLOG`] bytes behind.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    backlog: Arc<AtomicUsize>,
}

/// The receiving half, turned into a response body by [`stream_response`].
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Bytes>,
    backlog: Arc<AtomicUsize>,
}

/// A new event stream.
pub fn event_stream() -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            backlog: backlog.clone(),
        },
        Inbox { rx, backlog },
    )
}

impl Outbox {
    /// Queues one record for the reader.
    pub fn push(&self, record: Bytes) -> Result<(), StreamGone> {
        if self.tx.is_closed() {
            return Err(StreamGone::Closed);
        }
        let len = record.len();
        let before = self.backlog.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > STREAM_BACKLOG {
            self.backlog.fetch_sub(len, Ordering::Relaxed);
            return Err(StreamGone::TooFarBehind);
        }
        self.tx.send(record).map_err(|_| {
            self.backlog.fetch_sub(len, Ordering::Relaxed);
            StreamGone::Closed
        })
    }

    /// Resolves once the reader is gone.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

impl Inbox {
    /// The next record, once one is queued; `None` when every [`Outbox`]
    /// is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let record = self.rx.recv().await?;
        self.backlog.fetch_sub(record.len(), Ordering::Relaxed);
        Some(record)
    }

    /// The next queued record, if any, without waiting.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let record = self.rx.try_recv().ok()?;
        self.backlog.fetch_sub(record.len(), Ordering::Relaxed);
        Some(record)
    }
}

/// A streaming 200 response whose body is whatever arrives on `inbox`,
/// ending when every sender is gone.
pub fn stream_response(
    encoding: Encoding,
    inbox: Inbox,
    extra: &[(&'static str, String)],
) -> Response {
    let stream = futures::stream::unfold(inbox, |mut inbox| async move {
        inbox.recv().await.map(|b| (Ok::<_, Infallible>(b), inbox))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.media_type()),
    );
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(*name, v);
        }
    }
    resp
}

/// Mesos's ID rule (`common::validation::validateID`), for framework, task,
/// executor and agent IDs.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("ID must not be empty".into());
    }
    if id.len() > 255 {
        return Err(format!("ID must not be longer than 255 bytes: '{id}'"));
    }
    if id == "." || id == ".." {
        return Err(format!("'{id}' is disallowed"));
    }
    if id.contains('/') || id.contains('\\') {
        return Err(format!("'/' and '\\' are not allowed in ID '{id}'"));
    }
    if id.chars().any(char::is_control) {
        return Err(format!("Control characters are not allowed in ID '{id}'"));
    }
    Ok(())
}

/// Whether a status uuid is a valid 16-byte UUID.
pub fn valid_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::scheduler::Call;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn status_codes_follow_the_masters_order() {
        let json = headers(&[("content-type", "application/json")]);
        let body = br#"{"type":"TEARDOWN"}"#;
        assert_eq!(
            decode_call::<Call>(&Method::GET, &json, body).unwrap_err(),
            Rejection::MethodNotAllowed
        );
        let err = decode_call::<Call>(&Method::POST, &HeaderMap::new(), body).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let charset = headers(&[("content-type", "application/json; charset=utf-8")]);
        let err = decode_call::<Call>(&Method::POST, &charset, body).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let err = decode_call::<Call>(&Method::POST, &json, b"{not json").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let proto = headers(&[("content-type", "application/x-protobuf")]);
        let err = decode_call::<Call>(&Method::POST, &proto, &[0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let (call, enc) = decode_call::<Call>(&Method::POST, &json, body).unwrap();
        assert_eq!(enc, Encoding::Json);
        assert_eq!(
            call.r#type,
            Some(mesos_proto::scheduler::call::Type::Teardown as i32)
        );
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(&HeaderMap::new()), Ok(Encoding::Json));
        assert_eq!(
            negotiate(&headers(&[("accept", "application/x-protobuf")])),
            Ok(Encoding::Protobuf)
        );
        assert_eq!(
            negotiate(&headers(&[("accept", "text/html")]))
                .unwrap_err()
                .status(),
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn a_reader_too_far_behind_is_refused_and_draining_makes_room() {
        let (outbox, mut inbox) = event_stream();
        let mib = Bytes::from(vec![0u8; 1 << 20]);
        for _ in 0..STREAM_BACKLOG >> 20 {
            assert_eq!(outbox.push(mib.clone()), Ok(()));
        }
        assert_eq!(outbox.push(mib.clone()), Err(StreamGone::TooFarBehind));
        assert_eq!(inbox.try_recv().map(|b| b.len()), Some(1 << 20));
        assert_eq!(outbox.push(mib.clone()), Ok(()));
        drop(inbox);
        assert_eq!(
            outbox.push(Bytes::from_static(b"x")),
            Err(StreamGone::Closed)
        );
    }

    #[test]
    fn id_rules() {
        assert!(validate_id("app.web.1").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_id(&"x".repeat(256)).is_err());
    }
}
