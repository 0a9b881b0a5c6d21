//! `/v2/events`: the event bus as Server-Sent Events (shared/reference/
//! marathon-api.md §1.8).
//!
//! - The client must accept `text/event-stream`; any other `GET` is a 405
//!   (Jetty's `EventSourceServlet` answers so for Marathon).
//! - `event_type` (repeatable) keeps only those types; without it every
//!   event is sent. The filter applies to every event, the stream's own
//!   `event_stream_attached` included.
//! - Each event goes out as `event: <eventType>\ndata: <one-line JSON>\n\n`;
//!   a `:ping` comment keeps an idle connection open every
//!   [`KEEPALIVE_INTERVAL`].
//! - On connect `event_stream_attached` (`remoteAddress`) is put on the bus,
//!   so other subscribers see it too; the new stream sends it first. When a
//!   stream ends, `event_stream_detached` follows on the bus.
//! - A subscriber more than [`EVENT_BUFFER`] events behind is disconnected,
//!   as Marathon does since 1.8, rather than silently skipping events.
//! - Streams end when the server begins its graceful shutdown
//!   ([`StreamShutdown`], installed by [`super::serve`]), so that shutdown
//!   does not wait for clients that never hang up.
//!
//! Each connection runs in one `event_stream` span.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Extension, FromRequestParts, RawQuery};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, info, info_span, warn};

use super::params::Params;
use super::{Api, ApiError, ApiState};
use crate::reconcile::events::{BusEvent, EVENT_BUFFER, Event};

/// How long an idle stream waits before a keepalive comment.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// The media type a client must accept.
pub const EVENT_STREAM: &str = "text/event-stream";

/// The `/v2/events` route.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/v2/events", get(stream))
}

/// Cancelled when the server starts shutting down: open event streams end
/// so that the graceful shutdown can finish. [`super::serve`] adds it to
/// every request; without it (a router used on its own) streams end only
/// when the bus closes.
///
/// In an `Arc`: the extension is cloned into every request, and cloning a
/// `CancellationToken` takes its tree's lock.
#[derive(Debug, Clone, Default)]
pub struct StreamShutdown(pub std::sync::Arc<CancellationToken>);

/// The client's IP address, from the connection ([`ConnectInfo`], which
/// [`super::serve`] provides), or `unknown`. What Marathon reports as
/// `clientIp` and `remoteAddress` (`getRemoteAddr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string()),
        ))
    }
}

/// Whether an `Accept` header lists `text/event-stream`.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| range.split(';').next())
        .any(|media| media.trim().eq_ignore_ascii_case(EVENT_STREAM))
}

/// The event types a subscriber asked for; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Filter(Vec<String>);

impl Filter {
    fn new<'a>(types: impl IntoIterator<Item = &'a str>) -> Filter {
        let mut types: Vec<String> = types
            .into_iter()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        types.sort();
        types.dedup();
        Filter(types)
    }

    fn allows(&self, event_type: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|t| t == event_type)
    }
}

/// An event as SSE: `event: <type>` and one `data:` line.
fn sse_event(event: &BusEvent) -> SseEvent {
    SseEvent::default()
        .event(event.event_type())
        .data(super::event_json::render(event))
}

async fn stream(
    state: Api,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ClientAddr(remote): ClientAddr,
    shutdown: Option<Extension<StreamShutdown>>,
) -> Result<Response, ApiError> {
    if !accepts_event_stream(&headers) {
        return Err(ApiError::Body {
            status: StatusCode::METHOD_NOT_ALLOWED,
            body: json!({
                "message": format!(
                    "/v2/events is an event stream: send 'Accept: {EVENT_STREAM}'"
                ),
            }),
        });
    }
    let params = Params::parse(query.as_deref())?;
    let filter = Filter::new(params.all("event_type"));
    // Subscribe before announcing, so the announcement is on this
    // receiver too (where it is recognised and skipped).
    let receiver = state.scheduler.subscribe_events();
    let attached = state.scheduler.publish_event(Event::StreamAttached {
        remote: remote.clone(),
    });
    let span = info_span!("event_stream", remote = %remote, event_types = ?filter.0);
    span.in_scope(|| info!("event stream attached"));
    let scheduler = state.scheduler.clone();
    let detached = Box::new(move || {
        scheduler.publish_event(Event::StreamDetached { remote });
    });
    let mut subscriber = Subscriber::new(
        receiver,
        filter,
        attached,
        shutdown.map(|Extension(s)| (*s.0).clone()),
        span,
        detached,
    );
    if !state.caller.is_unrestricted() {
        subscriber.caller = Some(state.caller.clone());
    }
    let events = futures::stream::unfold(subscriber, |mut s| async move {
        let event = s.next().await?;
        Some((Ok::<_, Infallible>(event), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE_INTERVAL).text("ping"))
        .into_response())
}

/// One connection's side of the bus.
struct Subscriber {
    receiver: broadcast::Receiver<Arc<BusEvent>>,
    filter: Filter,
    /// This stream's `event_stream_attached`, sent before anything else.
    first: Option<Arc<BusEvent>>,
    /// The same event, skipped when it comes round the bus.
    own: Arc<BusEvent>,
    shutdown: Option<CancellationToken>,
    span: Span,
    /// Announces `event_stream_detached` when the stream is dropped.
    detached: Option<Box<dyn FnOnce() + Send>>,
    sent: u64,
    /// Why the stream ended, for the log.
    ended: &'static str,
    /// A caller who may view only some apps: events about others are
    /// skipped.
    caller: Option<crate::auth::Caller>,
}

impl Subscriber {
    fn new(
        receiver: broadcast::Receiver<Arc<BusEvent>>,
        filter: Filter,
        attached: Arc<BusEvent>,
        shutdown: Option<CancellationToken>,
        span: Span,
        detached: Box<dyn FnOnce() + Send>,
    ) -> Subscriber {
        Subscriber {
            receiver,
            filter,
            first: Some(attached.clone()),
            own: attached,
            shutdown,
            span,
            detached: Some(detached),
            sent: 0,
            ended: "client disconnected",
            caller: None,
        }
    }

    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        let span = self.span.clone();
        self.next_inner().instrument(span).await
    }

    async fn next_inner(&mut self) -> Option<SseEvent> {
        if let Some(first) = self.first.take()
            && self.filter.allows(first.event_type())
        {
            self.sent += 1;
            return Some(sse_event(&first));
        }
        loop {
            let received = tokio::select! {
                biased;
                () = cancelled(self.shutdown.as_ref()) => None,
                received = self.receiver.recv() => Some(received),
            };
            let Some(received) = received else {
                self.ended = "server shutting down";
                return None;
            };
            match received {
                Ok(event) => {
                    if Arc::ptr_eq(&event, &self.own) || !self.filter.allows(event.event_type()) {
                        continue;
                    }
                    if let Some(caller) = &self.caller
                        && !event
                            .event
                            .visible_to(|app| caller.may(crate::auth::Action::View, app))
                    {
                        continue;
                    }
                    self.sent += 1;
                    return Some(sse_event(&event));
                }
                Err(RecvError::Lagged(missed)) => {
                    warn!(
                        missed,
                        limit = EVENT_BUFFER,
                        "event stream subscriber fell too far behind; disconnecting it"
                    );
                    self.ended = "subscriber too slow";
                    return None;
                }
                Err(RecvError::Closed) => {
                    self.ended = "event bus closed";
                    return None;
                }
            }
        }
    }
}

/// Resolves when `token` is cancelled; never without one.
async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.span.in_scope(|| {
            info!(
                sent = self.sent,
                reason = self.ended,
                "event stream detached"
            );
        });
        if let Some(detached) = self.detached.take() {
            detached();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    use crate::state::app::Timestamp;

    #[test]
    fn only_clients_accepting_an_event_stream_get_one() {
        let with = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            }
            accepts_event_stream(&h)
        };
        assert!(with(&["text/event-stream"]));
        assert!(with(&["application/json, Text/Event-Stream;q=0.9"]));
        assert!(with(&["application/json", "text/event-stream"]));
        assert!(!with(&[]));
        assert!(!with(&["*/*"]));
        assert!(!with(&["application/json"]));
    }

    #[test]
    fn the_filter_keeps_the_types_asked_for_or_everything() {
        let all = Filter::new([]);
        assert!(all.allows("status_update_event"));
        let some = Filter::new([
            "status_update_event",
            "deployment_info",
            "",
            "deployment_info",
        ]);
        assert_eq!(some.0, ["deployment_info", "status_update_event"]);
        assert!(some.allows("deployment_info"));
        assert!(!some.allows("event_stream_attached"));
    }

    fn subscriber(
        filter: &[&str],
        shutdown: Option<CancellationToken>,
    ) -> (
        broadcast::Sender<Arc<BusEvent>>,
        Subscriber,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let (bus, receiver) = broadcast::channel(4);
        let attached = BusEvent::new(
            Event::StreamAttached { remote: "x".into() },
            Timestamp::from_millis(1),
        );
        bus.send(attached.clone()).unwrap();
        let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = detached.clone();
        let s = Subscriber::new(
            receiver,
            Filter::new(filter.iter().copied()),
            attached,
            shutdown,
            Span::none(),
            Box::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)),
        );
        (bus, s, detached)
    }

    fn terminated(app: &str) -> Arc<BusEvent> {
        let app =
            crate::state::app::PathId::parse(app, &crate::state::app::PathId::root()).unwrap();
        BusEvent::new(Event::AppTerminated(app), Timestamp::from_millis(1))
    }

    #[tokio::test]
    async fn a_stream_starts_with_its_attachment_and_skips_its_echo() {
        let (bus, mut s, detached) = subscriber(&[], None);
        assert!(s.next().await.is_some(), "attached first");
        assert_eq!(s.sent, 1);
        bus.send(terminated("/a")).unwrap();
        assert!(s.next().await.is_some());
        assert_eq!(s.sent, 2, "the echo of its own attachment was skipped");
        drop(bus);
        assert!(s.next().await.is_none(), "a closed bus ends the stream");
        drop(s);
        assert!(detached.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_filtered_stream_sends_only_what_it_asked_for() {
        let (bus, mut s, _) = subscriber(&["app_terminated_event"], None);
        let deployment = Arc::new(crate::reconcile::view::Deployment {
            id: "d".into(),
            version: Timestamp::from_millis(1),
            steps: vec![],
            current_step: 0,
            started_at: Timestamp::from_millis(1),
            step_started_at: None,
            failure: None,
            pods: Default::default(),
        });
        bus.send(BusEvent::new(
            Event::DeploymentInfo {
                deployment,
                step: 0,
            },
            Timestamp::from_millis(1),
        ))
        .unwrap();
        bus.send(terminated("/a")).unwrap();
        assert!(s.next().await.is_some());
        assert_eq!(s.sent, 1, "neither its attachment nor deployment_info");
        assert!(s.receiver.is_empty());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_disconnected() {
        let (bus, mut s, detached) = subscriber(&[], None);
        for i in 0..10 {
            bus.send(terminated(&format!("/a{i}"))).unwrap();
        }
        assert!(s.next().await.is_some(), "its attachment was kept aside");
        assert!(s.next().await.is_none(), "then it is told it lagged");
        assert_eq!(s.ended, "subscriber too slow");
        drop(s);
        assert!(detached.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn streams_end_when_the_server_shuts_down() {
        let token = CancellationToken::new();
        let (_bus, mut s, _) = subscriber(&[], Some(token.clone()));
        assert!(s.next().await.is_some());
        token.cancel();
        assert!(s.next().await.is_none());
        assert_eq!(s.ended, "server shutting down");
    }

    #[tokio::test]
    async fn events_are_written_as_sse_with_their_type_and_one_data_line() {
        use futures::StreamExt;
        let e = terminated("/a");
        let body = Sse::new(futures::stream::iter([Ok::<_, Infallible>(sse_event(&e))]))
            .into_response()
            .into_body();
        let mut bytes = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            format!(
                "event: app_terminated_event\ndata: {}\n\n",
                super::super::event_json::render(&e)
            )
        );
    }
}
