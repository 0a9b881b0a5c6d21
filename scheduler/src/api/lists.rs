//! The list endpoints' answers: `GET /v2/apps` (every `embed`, the `cmd`,
//! `id` and `label` filters), `/v2/groups[/{id}[/apps|/versions[/{v}]]]`,
//! `/v2/tasks`, `/v2/queue` and `/v2/deployments`, rendered from the
//! published snapshot the same way whether they are kept or not.
//!
//! A request is turned into a [`ListKey`] (its endpoint and normalised
//! query), then [`respond`] answers it:
//!
//! - from the [`ResponseCache`] when the snapshot still has what the kept
//!   body was rendered from: the same [`Bytes`] for every reader, gzipped
//!   once when a client asks for it, with a strong `ETag` per
//!   representation, `Vary: Accept-Encoding`, and 304 for a matching
//!   `If-None-Match`;
//! - otherwise rendered once, on a blocking thread, and kept — unless its
//!   rendering read the clock ([`Now`]), or it is larger than an entry may
//!   be, in which case it is streamed: written element by element into
//!   64 KiB chunks that the connection sends as they come (at most a few
//!   in flight), so a 49 MB list never exists as one buffer. Streamed
//!   bodies are gzipped on the fly (at the fastest level) when asked, and
//!   have no `ETag` (a digest is known only at their end); one that fits
//!   a chunk is sent whole, with a `Content-Length`.
//!
//! Every body is byte for byte what the handlers wrote before bodies were
//! kept: the same shapes serialized by serde_json's compact writer, the
//! maps that went through `json!` (tasks, queue entries, deployments)
//! still going through a `Value` one element at a time, so their keys stay
//! sorted (`tests/integration/api_cache.rs` checks every endpoint).

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::ApiError;
use super::apps::AppsQuery;
use super::cache::{Audience, CachedBody, Entry, Fill};
use super::deployments::DeploymentsQuery;
use super::encoding::{self, Coding};
use super::groups::GroupsQuery;
use super::params::Params;
use super::queue::QueueQuery;
use super::render::{Now, Reads, RenderError};
use super::tasks::TasksQuery;

/// The cache of list bodies, by [`ListKey`].
pub type ResponseCache = super::cache::ResponseCache<ListKey>;
use crate::auth::Caller;
use crate::reconcile::View;
use crate::state::app::Timestamp;

/// The size of the chunks a streamed body is sent in.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks a streamed body may have rendered ahead of the connection.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Streamed renderings at once. Each holds a blocking thread while its
/// client reads, and the blocking pool (512 threads) is also where the
/// scheduler writes its store: slow readers of huge lists must not take
/// it all. Requests past this wait for a turn.
const STREAMS_AT_ONCE: usize = 32;

static STREAMS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STREAMS_AT_ONCE);

/// A list request: the endpoint and its query, normalised so that two
/// requests that must get the same bytes are equal (`embed` order,
/// repeated values, unknown parameters and the case of the `cmd` and `id`
/// filters do not matter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKey {
    /// `GET /v2/apps`.
    Apps(AppsQuery),
    /// `GET /v2/groups...`.
    Groups(GroupsQuery),
    /// `GET /v2/tasks`.
    Tasks(TasksQuery),
    /// `GET /v2/queue`.
    Queue,
    /// `GET /v2/deployments`.
    Deployments,
}

impl ListKey {
    /// The key of a `GET` of `path` (`/v2/apps`, `/v2/groups/prod/apps`)
    /// with `query`; an error for a path that is not a list endpoint (404)
    /// or a query its handler refuses (400).
    pub fn parse(path: &str, query: Option<&str>) -> Result<ListKey, ApiError> {
        let params = Params::parse(query)?;
        let path = path.trim_end_matches('/');
        Ok(match path {
            "/v2/apps" => ListKey::Apps(AppsQuery::parse(&params)?),
            "/v2/tasks" => ListKey::Tasks(TasksQuery::parse(&params)),
            "/v2/queue" => ListKey::Queue,
            "/v2/deployments" => ListKey::Deployments,
            "/v2/groups" => ListKey::Groups(GroupsQuery::parse("", &params)?),
            _ => match path.strip_prefix("/v2/groups/") {
                Some(rest) => ListKey::Groups(GroupsQuery::parse(rest, &params)?),
                None => return Err(ApiError::NotFound("URI not found".into())),
            },
        })
    }

    /// What of a snapshot the body shows.
    pub fn reads(&self) -> Reads {
        match self {
            ListKey::Apps(q) => q.reads(),
            ListKey::Groups(q) => q.reads(),
            ListKey::Tasks(_) => Reads {
                apps: true,
                instances: true,
                health: true,
                ..Reads::default()
            },
            ListKey::Queue => Reads {
                apps: true,
                instances: true,
                offer_stats: true,
                delays: true,
                last_failures: true,
                ..Reads::default()
            },
            ListKey::Deployments => Reads {
                deployments: true,
                readiness: true,
                ..Reads::default()
            },
        }
    }
}

impl From<AppsQuery> for ListKey {
    fn from(q: AppsQuery) -> ListKey {
        ListKey::Apps(q)
    }
}

impl From<GroupsQuery> for ListKey {
    fn from(q: GroupsQuery) -> ListKey {
        ListKey::Groups(q)
    }
}

impl From<TasksQuery> for ListKey {
    fn from(q: TasksQuery) -> ListKey {
        ListKey::Tasks(q)
    }
}

impl From<QueueQuery> for ListKey {
    fn from(_: QueueQuery) -> ListKey {
        ListKey::Queue
    }
}

impl From<DeploymentsQuery> for ListKey {
    fn from(_: DeploymentsQuery) -> ListKey {
        ListKey::Deployments
    }
}

/// Renders `key`'s body from `view` into `out`, as the handler always
/// has: the uncached path, and what is kept.
pub fn render<W: Write>(view: &View, key: &ListKey, now: &Now, out: W) -> Result<(), RenderError> {
    match key {
        ListKey::Apps(q) => q.render(view, now, out),
        ListKey::Groups(q) => q.render(view, now, out),
        ListKey::Tasks(q) => q.render(view, out),
        ListKey::Queue => super::queue::render(view, now, out),
        ListKey::Deployments => super::deployments::render(view, out),
    }
}

/// A `Vec` that refuses to grow past a limit (the largest body kept).
struct Capped {
    buf: Vec<u8>,
    limit: usize,
}

/// The error [`Capped`] stops a rendering with.
fn too_large() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        "over the cache's entry size",
    )
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(too_large());
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What rendering a body to keep gave.
enum Rendered {
    /// A body to keep.
    Keep(CachedBody),
    /// A body for this request only: it shows the time.
    Once(Vec<u8>),
    /// Larger than an entry may be: stream it.
    TooLarge,
    /// Refused.
    Refused(ApiError),
}

fn render_capped(view: &View, key: &ListKey, at: Timestamp, limit: usize) -> Rendered {
    let now = Now::new(at);
    let mut out = Capped {
        buf: Vec::new(),
        limit,
    };
    match render(view, key, &now, &mut out) {
        Ok(()) if now.was_read() => Rendered::Once(out.buf),
        Ok(()) => Rendered::Keep(CachedBody::new(out.buf.into())),
        Err(RenderError::Refused(e)) => Rendered::Refused(e),
        Err(RenderError::Write(e)) => {
            if e.kind() != std::io::ErrorKind::FileTooLarge {
                tracing::warn!(error = %e, "rendering a list failed");
            }
            Rendered::TooLarge
        }
    }
}

/// `whole` as `caller` may see it.
pub fn visible(whole: &Arc<View>, caller: &Caller) -> Arc<View> {
    if caller.is_unrestricted() {
        return whole.clone();
    }
    Arc::new(whole.visible_to(|app| caller.may(crate::auth::Action::View, app)))
}

/// What a request asks of the answer's form.
#[derive(Debug, Clone)]
struct Wants {
    coding: Coding,
    if_none_match: Vec<HeaderValue>,
}

impl Wants {
    fn of(headers: &HeaderMap) -> Wants {
        Wants {
            coding: encoding::negotiate(
                headers
                    .get_all(header::ACCEPT_ENCODING)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            ),
            if_none_match: headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect(),
        }
    }
}

/// Answers the list request `key` from `whole` (the current snapshot, not
/// filtered) for `caller`, honouring the request's `Accept-Encoding` and
/// `If-None-Match`. `now` is the scheduler's clock.
pub async fn respond(
    cache: &Arc<ResponseCache>,
    whole: Arc<View>,
    caller: &Caller,
    now: Timestamp,
    key: ListKey,
    headers: &HeaderMap,
) -> Response {
    let wants = Wants::of(headers);
    let count = |counter: &std::sync::atomic::AtomicU64| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    if !cache.enabled() || key.reads().time {
        count(&cache.counters.uncached);
        return stream(visible(&whole, caller), key, now, wants.coding, None).await;
    }
    let audience = Audience::of(caller);
    let entry = cache.entry(&key, key.reads(), &audience, &whole);
    match entry.fill.get() {
        Some(Fill::Ready(body)) => {
            count(&cache.counters.hits);
            return kept(cache, body, &wants).await;
        }
        Some(Fill::Uncacheable) => {
            count(&cache.counters.uncached);
            return stream(visible(&whole, caller), key, now, wants.coding, None).await;
        }
        None => {}
    }
    let view = visible(&whole, caller);
    if entry.large {
        // Too large last time: stream it, keeping a copy if it fits now.
        count(&cache.counters.uncached);
        let keep = Keep {
            cache: cache.clone(),
            entry,
            audience,
        };
        return stream(view, key, now, wants.coding, Some(keep)).await;
    }
    count(&cache.counters.misses);
    let mut own: Option<Result<Vec<u8>, ApiError>> = None;
    let fill = entry
        .fill
        .get_or_init(|| async {
            let (view, rendered_key) = (view.clone(), key.clone());
            let limit = cache.limits().max_entry_bytes;
            let rendered = tokio::task::spawn_blocking(move || {
                render_capped(&view, &rendered_key, now, limit)
            })
            .await;
            match rendered {
                Ok(Rendered::Keep(body)) => Fill::Ready(Arc::new(body)),
                Ok(Rendered::Once(bytes)) => {
                    own = Some(Ok(bytes));
                    Fill::Uncacheable
                }
                Ok(Rendered::Refused(e)) => {
                    own = Some(Err(e));
                    Fill::Uncacheable
                }
                Ok(Rendered::TooLarge) => {
                    cache.mark_large(&key, &audience);
                    Fill::Uncacheable
                }
                Err(e) => {
                    tracing::error!(error = %e, "rendering a list panicked");
                    Fill::Uncacheable
                }
            }
        })
        .await;
    match (own, fill) {
        (Some(Ok(bytes)), _) => whole_body(Bytes::from(bytes), wants.coding).await,
        (Some(Err(e)), _) => e.into_response(),
        (None, Fill::Ready(body)) => {
            cache.trim();
            kept(cache, body, &wants).await
        }
        (None, Fill::Uncacheable) => stream(view, key, now, wants.coding, None).await,
    }
}

/// A kept body in the representation `wants` asks for, or 304.
async fn kept(cache: &ResponseCache, body: &Arc<CachedBody>, wants: &Wants) -> Response {
    let etag = body.etag(wants.coding);
    let matched = etag.to_str().is_ok_and(|tag| {
        encoding::none_match(wants.if_none_match.iter().map(HeaderValue::as_bytes), tag)
    });
    let mut response = if matched {
        cache
            .counters
            .not_modified
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = match wants.coding {
            Coding::Identity => body.identity().clone(),
            Coding::Gzip => {
                let first = body.gzip_ready().is_none();
                let gz = body.gzip().await;
                if first {
                    // This request added bytes to the cache.
                    cache.trim();
                }
                gz
            }
        };
        json_response(Body::from(bytes), wants.coding)
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// A 200 with a JSON `body` in `coding`.
fn json_response(body: Body, coding: Coding) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(name) = coding.content_encoding() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// A body rendered for one request, whole.
async fn whole_body(bytes: Bytes, coding: Coding) -> Response {
    let bytes = match coding {
        Coding::Identity => bytes,
        Coding::Gzip => {
            tokio::task::spawn_blocking(move || Bytes::from(super::cache::gzip(&bytes, 1)))
                .await
                .unwrap_or_default()
        }
    };
    json_response(Body::from(bytes), coding)
}

/// Where a streamed body is also kept, if it fits.
struct Keep {
    cache: Arc<ResponseCache>,
    entry: Entry,
    audience: Audience,
}

/// What a streamed rendering sends: chunks, or a refusal before any.
type Message = Result<Bytes, ApiError>;

/// Sends what is written in [`CHUNK_BYTES`] chunks, waiting while
/// [`CHUNKS_IN_FLIGHT`] are unsent; fails once the receiver is gone (the
/// client hung up), which ends the rendering.
struct ChunkWriter {
    tx: mpsc::Sender<Message>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client hung up"))
    }

    /// Sends what is left.
    fn finish(mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Passes writes on, keeping a copy of them up to `limit` bytes (and
/// none once they are more).
struct Tee<W> {
    inner: W,
    copy: Option<Vec<u8>>,
    limit: usize,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        if let Some(copy) = &mut self.copy {
            if copy.len() + n > self.limit {
                self.copy = None;
            } else {
                copy.extend_from_slice(&data[..n]);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Renders into `writer` in `coding`, keeping a copy of the body as
/// rendered (before gzip) in `copy` up to `limit` bytes; gives the copy
/// back if it was kept whole.
fn render_streamed(
    view: &View,
    key: &ListKey,
    now: &Now,
    coding: Coding,
    writer: ChunkWriter,
    copy: Option<Vec<u8>>,
    limit: usize,
) -> Result<Option<Vec<u8>>, RenderError> {
    match coding {
        Coding::Identity => {
            let mut tee = Tee {
                inner: writer,
                copy,
                limit,
            };
            render(view, key, now, &mut tee)?;
            tee.inner.finish()?;
            Ok(tee.copy)
        }
        Coding::Gzip => {
            // serde_json writes a few bytes at a time, and each write into
            // the encoder is a deflate call: buffer them into big ones.
            let gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
            let mut tee = Tee {
                inner: std::io::BufWriter::with_capacity(CHUNK_BYTES, gz),
                copy,
                limit,
            };
            render(view, key, now, &mut tee)?;
            let gz = tee.inner.into_inner().map_err(|e| e.into_error())?;
            gz.finish()?.finish()?;
            Ok(tee.copy)
        }
    }
}

/// The body rendered on a blocking thread as the connection takes it. A
/// body that fits one chunk is sent whole (with a `Content-Length`); a
/// refusal before any byte is answered as the error it is. With `keep`,
/// the rendered bytes are also kept in the cache if they fit an entry and
/// do not show the time.
async fn stream(
    view: Arc<View>,
    key: ListKey,
    at: Timestamp,
    coding: Coding,
    keep: Option<Keep>,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Message>(CHUNKS_IN_FLIGHT);
    let Ok(turn) = STREAMS.acquire().await else {
        return ApiError::Unavailable("shutting down".into()).into_response();
    };
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let now = Now::new(at);
        let writer = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK_BYTES),
        };
        let (copy, limit) = match &keep {
            Some(k) => (Some(Vec::new()), k.cache.limits().max_entry_bytes),
            None => (None, 0),
        };
        let result = render_streamed(&view, &key, &now, coding, writer, copy, limit);
        match result {
            Ok(copy) => {
                if let (Some(keep), Some(copy)) = (keep, copy)
                    && !now.was_read()
                {
                    let body = Arc::new(CachedBody::new(Bytes::from(copy)));
                    if keep.entry.fill.set(Fill::Ready(body)).is_ok() {
                        keep.cache.mark_fits(&key, &keep.audience);
                        keep.cache.trim();
                    }
                }
            }
            Err(RenderError::Refused(e)) => {
                let _ = tx.blocking_send(Err(e));
            }
            Err(RenderError::Write(e)) => {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    tracing::warn!(error = %e, "streaming a list failed");
                }
            }
        }
    });
    let first = match rx.recv().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(refused)) => return refused.into_response(),
        // Nothing at all: an empty body cannot be rendered, so the
        // rendering failed (it logged why).
        None => {
            return ApiError::Internal("the list could not be rendered".into()).into_response();
        }
    };
    let second = match rx.recv().await {
        None => return json_response(Body::from(first), coding),
        Some(Err(refused)) => return refused.into_response(),
        Some(Ok(chunk)) => chunk,
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await? {
            Ok(chunk) => Some((Ok::<_, std::io::Error>(chunk), rx)),
            // Cannot happen after data; end the body as failed if it does.
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), rx)),
        }
    });
    let chunks = futures::StreamExt::chain(futures::stream::iter([Ok(first), Ok(second)]), rest);
    json_response(Body::from_stream(chunks), coding)
}
