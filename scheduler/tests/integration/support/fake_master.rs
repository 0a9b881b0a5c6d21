//! A scripted fake Mesos master (kube-rs's `Scenario` pattern): each
//! SUBSCRIBE takes the next [`Answer`] from a script, so tests can make a
//! master redirect, go silent, or answer with garbage, and then check how the
//! client coped. Only for client-side tests; the real protocol double is
//! mesos-local.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use mesos_proto::scheduler::{Call, Event, call, event};
use mesos_proto::{Encoding, recordio};
use tokio_util::sync::CancellationToken;

/// How the fake answers one SUBSCRIBE.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 307 to another master, with a scheme-less Location as Mesos sends.
    Redirect(SocketAddr),
    /// 200 with SUBSCRIBED; then HEARTBEATs every `heartbeat` if `beat`,
    /// otherwise silence with the connection left open.
    Subscribed {
        framework_id: String,
        stream_id: String,
        heartbeat: Duration,
        beat: bool,
    },
    /// 200 with the right headers but a body that is not RecordIO.
    Garbage,
    /// 200 with a record announcing an absurd length, then silence.
    HugeLength,
    /// 200 with `Content-Type: text/html`.
    WrongContentType,
    /// 200 without a Mesos-Stream-Id header.
    NoStreamId,
    /// 200 whose first event is a HEARTBEAT, not SUBSCRIBED.
    HeartbeatFirst,
    /// 503, as a master still recovering.
    Unavailable,
}

/// What the fake saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Decoded SUBSCRIBE calls, in order.
    pub subscribes: Vec<Call>,
    /// Other calls with the Mesos-Stream-Id they carried.
    pub calls: Vec<(Call, Option<String>)>,
}

struct Inner {
    script: Mutex<VecDeque<Answer>>,
    seen: Mutex<Seen>,
    encoding: Encoding,
    /// Answer to give non-SUBSCRIBE calls.
    call_status: Mutex<StatusCode>,
    /// Closed to end every open stream.
    streams: Mutex<CancellationToken>,
}

/// A running fake master.
#[derive(Clone)]
pub struct FakeMaster {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl FakeMaster {
    /// Serves on a fresh loopback port; the last answer of the script repeats.
    pub async fn start(encoding: Encoding, script: Vec<Answer>) -> FakeMaster {
        let inner = Arc::new(Inner {
            script: Mutex::new(script.into()),
            seen: Mutex::new(Seen::default()),
            encoding,
            call_status: Mutex::new(StatusCode::ACCEPTED),
            streams: Mutex::new(CancellationToken::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = axum::Router::new()
            .route("/api/v1/scheduler", post(handle))
            .with_state(inner.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        FakeMaster {
            inner,
            addr,
            shutdown,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was seen so far (a copy).
    pub fn subscribes(&self) -> Vec<Call> {
        self.inner.seen.lock().unwrap().subscribes.clone()
    }

    /// Non-subscribe calls so far, with their stream ids.
    pub fn calls(&self) -> Vec<(Call, Option<String>)> {
        self.inner.seen.lock().unwrap().calls.clone()
    }

    /// Sets the status non-subscribe calls get.
    pub fn answer_calls_with(&self, status: StatusCode) {
        *self.inner.call_status.lock().unwrap() = status;
    }

    /// Ends every open event stream (the connection drops).
    pub fn cut_streams(&self) {
        let mut token = self.inner.streams.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.shutdown.cancel();
        self.cut_streams();
    }
}

fn record(encoding: Encoding, event: &Event) -> Bytes {
    recordio::encode_to_bytes(&encoding.encode(event).unwrap())
}

fn subscribed_event(framework_id: &str, heartbeat: Duration) -> Event {
    Event {
        r#type: Some(event::Type::Subscribed as i32),
        subscribed: Some(event::Subscribed {
            framework_id: mesos_proto::util::framework_id(framework_id),
            heartbeat_interval_seconds: Some(heartbeat.as_secs_f64()),
            master_info: None,
        }),
        ..Default::default()
    }
}

fn heartbeat_event() -> Event {
    Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let encoding = inner.encoding;
    let Ok(call) = encoding.decode::<Call>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "Failed to parse body into Call protobuf",
        )
            .into_response();
    };
    if call.r#type != Some(call::Type::Subscribe as i32) {
        let stream_id = headers
            .get("Mesos-Stream-Id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        inner.seen.lock().unwrap().calls.push((call, stream_id));
        return (*inner.call_status.lock().unwrap(), "").into_response();
    }
    inner.seen.lock().unwrap().subscribes.push(call);
    let answer = {
        let mut script = inner.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().unwrap()
        }
    };
    let cut = inner.streams.lock().unwrap().clone();
    let ok = |content_type: &str, stream_id: Option<&str>, body: Body| {
        let mut response = Response::new(body);
        response
            .headers_mut()
            .insert("Content-Type", content_type.parse().unwrap());
        if let Some(id) = stream_id {
            response
                .headers_mut()
                .insert("Mesos-Stream-Id", id.parse().unwrap());
        }
        response
    };
    // A body that yields `first` and then stays open until the stream is cut.
    let open_body = move |first: Vec<Bytes>, beat: Option<Duration>| {
        let head = futures::stream::iter(first.into_iter().map(Ok::<Bytes, std::io::Error>));
        let tail = futures::stream::unfold((), move |()| {
            let cut = cut.clone();
            async move {
                match beat {
                    Some(every) => {
                        tokio::select! {
                            () = cut.cancelled() => None,
                            () = tokio::time::sleep(every) => Some((Ok(record(encoding, &heartbeat_event())), ())),
                        }
                    }
                    None => {
                        cut.cancelled().await;
                        None
                    }
                }
            }
        });
        Body::from_stream(head.chain(tail))
    };
    let media = encoding.media_type();
    match answer {
        Answer::Redirect(to) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            r.headers_mut().insert(
                "Location",
                format!("//{to}/api/v1/scheduler").parse().unwrap(),
            );
            r
        }
        Answer::Subscribed {
            framework_id,
            stream_id,
            heartbeat,
            beat,
        } => {
            let first = vec![
                record(encoding, &subscribed_event(&framework_id, heartbeat)),
                record(encoding, &heartbeat_event()),
            ];
            ok(
                media,
                Some(&stream_id),
                open_body(first, beat.then_some(heartbeat)),
            )
        }
        Answer::Garbage => ok(
            media,
            Some("s-garbage"),
            open_body(vec![Bytes::from_static(b"<html>oops</html>\n")], None),
        ),
        Answer::HugeLength => ok(
            media,
            Some("s-huge"),
            open_body(vec![Bytes::from_static(b"999999999999\n")], None),
        ),
        Answer::WrongContentType => ok(
            "text/html",
            Some("s-ct"),
            open_body(vec![record(encoding, &heartbeat_event())], None),
        ),
        Answer::NoStreamId => ok(
            media,
            None,
            open_body(
                vec![record(
                    encoding,
                    &subscribed_event("fw", Duration::from_secs(15)),
                )],
                None,
            ),
        ),
        Answer::HeartbeatFirst => ok(
            media,
            Some("s-hb"),
            open_body(vec![record(encoding, &heartbeat_event())], None),
        ),
        Answer::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Master has not finished recovery",
        )
            .into_response(),
    }
}
