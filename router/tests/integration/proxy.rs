//! The router in-process against a fake Marathon (`/v2/apps`, `/v2/apps/{id}`,
//! `/v2/events`) and small upstream servers on loopback: retries after a
//! refused connect (bodies included) with ejection of the dead instance,
//! no resend of a non-idempotent request that reached its instance, 503 /
//! 404 answers, events updating the table, least-outstanding-requests
//! steering around a slow instance, load weights steering around a busy
//! one, deny lists, requests held while a sleeping app wakes (or
//! answered 503 when it does not wake in time), and WebSocket upgrades
//! tunnelled both ways (or answered normally when the instance declines),
//! client connections spread over the serving threads, and an event that
//! arrives while its app is being read is followed by another read.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_router::Config;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot, watch};

pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

/// Serves `handler` on a fresh loopback port until the test ends.
pub(crate) async fn http_server<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A fake Marathon: the apps it lists, an event stream fed by `emit`,
/// Baton's load list when set, and the `PUT /v2/apps/{id}` bodies it got
/// (answered 200, applied by the test). Like a real Marathon it has no
/// `/v2/routers` (404): each router decides alone.
pub(crate) struct FakeMarathon {
    pub(crate) url: String,
    apps: Arc<Mutex<Vec<Value>>>,
    loads: Arc<Mutex<Option<Vec<Value>>>>,
    pub(crate) puts: Arc<Mutex<Vec<(String, Value)>>>,
    events: broadcast::Sender<Bytes>,
    /// Reads of one app (`GET /v2/apps/{id}`) so far.
    app_reads: Arc<AtomicUsize>,
    /// While `false`, a read of one app answers what the app was when the
    /// read arrived, but only once this turns `true` again.
    app_reads_open: watch::Sender<bool>,
}

impl FakeMarathon {
    pub(crate) async fn start(apps: Vec<Value>) -> FakeMarathon {
        let apps = Arc::new(Mutex::new(apps));
        let loads = Arc::new(Mutex::new(None::<Vec<Value>>));
        let puts = Arc::new(Mutex::new(Vec::new()));
        let (events, _) = broadcast::channel(64);
        let app_reads = Arc::new(AtomicUsize::new(0));
        let (app_reads_open, open) = watch::channel(true);
        let (state, tx) = (apps.clone(), events.clone());
        let (load_list, put_log) = (loads.clone(), puts.clone());
        let reads = app_reads.clone();
        let addr = http_server(move |req: Request<Incoming>| {
            let (apps, events) = (state.clone(), tx.clone());
            let (loads, puts) = (load_list.clone(), put_log.clone());
            let (reads, mut open) = (reads.clone(), open.clone());
            async move {
                let path = req.uri().path().to_string();
                if path.starts_with("/v2/routers/") {
                    // A Marathon, not a Baton: no shared router rates.
                    return Response::builder()
                        .status(404)
                        .body(full(r#"{"message":"not found"}"#))
                        .unwrap();
                }
                if req.method() == hyper::Method::PUT {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    puts.lock().unwrap().push((path, body));
                    return Response::new(full(r#"{"deploymentId":"d","version":"v"}"#));
                }
                if path == "/v2/tasks/load" {
                    return match loads.lock().unwrap().clone() {
                        Some(tasks) => Response::new(full(json!({ "tasks": tasks }).to_string())),
                        None => Response::builder().status(404).body(full("{}")).unwrap(),
                    };
                }
                if path == "/v2/events" {
                    let attached = futures::stream::once(async { Bytes::from(":attached\n\n") });
                    let rx = events.subscribe();
                    let later = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.ok().map(|b| (b, rx))
                    });
                    let body = StreamBody::new(
                        attached
                            .chain(later)
                            .map(|b| Ok::<_, Infallible>(Frame::data(b))),
                    );
                    return Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(BodyExt::boxed(body))
                        .unwrap();
                }
                let apps = apps.lock().unwrap().clone();
                if path == "/v2/apps" {
                    return Response::new(full(json!({ "apps": apps }).to_string()));
                }
                let id = path.strip_prefix("/v2/apps").unwrap_or_default();
                reads.fetch_add(1, Ordering::SeqCst);
                let _ = open.wait_for(|open| *open).await;
                match apps.iter().find(|a| a["id"] == id) {
                    Some(app) => Response::new(full(json!({ "app": app }).to_string())),
                    None => Response::builder()
                        .status(404)
                        .body(full(r#"{"message":"not found"}"#))
                        .unwrap(),
                }
            }
        })
        .await;
        FakeMarathon {
            url: format!("http://{addr}"),
            apps,
            loads,
            puts,
            events,
            app_reads,
            app_reads_open,
        }
    }

    pub(crate) fn set_apps(&self, apps: Vec<Value>) {
        *self.apps.lock().unwrap() = apps;
    }

    pub(crate) fn emit(&self, event_type: &str, data: Value) {
        let mut data = data;
        data["eventType"] = json!(event_type);
        let frame = format!("event: {event_type}\ndata: {data}\n\n");
        let _ = self.events.send(Bytes::from(frame));
    }
}

/// An instance answering `name` to GET, and `name got <n> bytes` to a body.
pub(crate) async fn upstream(name: &'static str) -> SocketAddr {
    http_server(move |req: Request<Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let text = if body.is_empty() {
            name.to_string()
        } else {
            format!("{name} got {} bytes", body.len())
        };
        Response::new(full(text))
    })
    .await
}

/// An instance that takes `delay` for every answer.
async fn slow_upstream(name: &'static str, delay: Duration) -> SocketAddr {
    http_server(move |_req: Request<Incoming>| async move {
        tokio::time::sleep(delay).await;
        Response::new(full(name))
    })
    .await
}

/// An instance that reads a request and hangs up without answering.
async fn rude_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            drop(stream);
        }
    });
    addr
}

/// An instance that switches every request to an echo protocol: it
/// answers `101` (with the request head's lines echoed in a header, to
/// show what arrived) and a greeting in the new protocol, then sends back
/// what it reads, upper-cased, until the other side closes.
async fn upgrading_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                let seen = head.to_ascii_lowercase().replace("\r\n", "|");
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: accepted\r\n\
                     X-Seen: {seen}\r\n\r\nhello"
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
                let mut buf = [0u8; 1024];
                // Bounded by the test: it closes its side.
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let upper = buf[..n].to_ascii_uppercase();
                            if stream.write_all(&upper).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Reads up to the end of an HTTP head (a byte at a time: nothing past it
/// is consumed).
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(DEADLINE, stream.read_u8())
            .await
            .expect("a head in time")
            .expect("a complete head");
        head.push(byte);
        assert!(head.len() < 64 * 1024, "head too long");
    }
    String::from_utf8(head).unwrap()
}

/// Reads exactly `n` bytes, within the deadline.
async fn read_exactly(stream: &mut tokio::net::TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut buf))
        .await
        .expect("bytes in time")
        .unwrap();
    String::from_utf8(buf).unwrap()
}

/// `GET /` for `host` over a raw connection, answered 200 with `body`.
async fn get_over(client: &mut tokio::net::TcpStream, host: &str, body: &str) {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(client).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(read_exactly(client, body.len()).await, body);
}

const WEBSOCKET_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: ws.test\r\n\
    Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A loopback port nothing listens on.
async fn refused_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub(crate) fn app(id: &str, labels: Value, tasks: &[(&str, SocketAddr)]) -> Value {
    json!({
        "id": id,
        "instances": tasks.len(),
        "labels": labels,
        "tasks": tasks.iter().map(|(task, addr)| json!({
            "id": task, "appId": id, "host": addr.ip().to_string(),
            "ports": [addr.port()], "state": "TASK_RUNNING", "healthCheckResults": [],
        })).collect::<Vec<_>>(),
    })
}

/// A router running in-process.
pub(crate) struct Router {
    pub(crate) url: String,
    /// The TLS listener's address, when it has one.
    pub(crate) https: Option<SocketAddr>,
    pub(crate) http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), baton_router::Error>>,
}

impl Router {
    pub(crate) async fn start(config: Config) -> Router {
        Router::start_with(config, None).await
    }

    /// A router with a TLS listener too when given `certificates`.
    pub(crate) async fn start_with(
        config: Config,
        certificates: Option<Arc<baton_router::tls::Certificates>>,
    ) -> Router {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut https = None;
        let mut tls = None;
        if let Some(certificates) = certificates {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            https = Some(listener.local_addr().unwrap());
            tls = Some((listener, certificates));
        }
        let listeners = baton_router::Listeners {
            http: listener,
            https: tls,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(baton_router::serve_on(listeners, config, async move {
            let _ = stopped.await;
        }));
        let router = Router {
            url,
            https,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            stop: Some(stop),
            task,
        };
        router
            .until("the table to load", |t| t["loaded"] == true)
            .await;
        router
    }

    /// A raw connection to the router, for bytes a client library would
    /// not send.
    async fn connect(&self) -> tokio::net::TcpStream {
        let address = self.url.strip_prefix("http://").unwrap();
        tokio::net::TcpStream::connect(address).await.unwrap()
    }

    pub(crate) async fn admin(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.url)).send().await;
        r.unwrap().json().await.unwrap()
    }

    /// Polls `/_router/table` until `check` holds.
    pub(crate) async fn until(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let table = self.admin("/_router/table").await;
            if check(&table) {
                return table;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {table:#}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn send(
        &self,
        method: &str,
        host: &str,
        body: Option<&str>,
    ) -> (u16, String, Option<String>) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}/", self.url))
            .header("Host", host);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, response.text().await.unwrap(), retry_after)
    }

    async fn get(&self, host: &str) -> (u16, String) {
        let (status, text, _) = self.send("GET", host, None).await;
        (status, text)
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("the router stops")
            .unwrap()
            .unwrap();
    }
}

pub(crate) fn config(marathon: &FakeMarathon) -> Config {
    let mut config = Config::new(marathon.url.clone());
    // Only events (and reconnects) refresh the table in these tests.
    config.resync_interval = Duration::from_secs(3600);
    config
}

fn upstream_json<'a>(table: &'a Value, app: &str, task: &str) -> &'a Value {
    table["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == app)
        .and_then(|a| {
            a["upstreams"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["taskId"] == task)
        })
        .unwrap_or_else(|| panic!("{app} {task} in {table:#}"))
}

#[tokio::test]
async fn a_refused_instance_is_retried_elsewhere_and_then_ejected() {
    let live = upstream("live").await;
    let dead = refused_port().await;
    let marathon = FakeMarathon::start(vec![app(
        "/web",
        json!({"BATON_VHOST": "web.test"}),
        &[("web.dead", dead), ("web.live", live)],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;

    for _ in 0..10 {
        assert_eq!(router.get("web.test").await, (200, "live".to_string()));
    }
    // A body is sent again too (it was buffered).
    let (status, text, _) = router.send("POST", "web.test", Some("hello")).await;
    assert_eq!((status, text.as_str()), (200, "live got 5 bytes"));

    let stats = router.admin("/_router/stats").await;
    let web = &stats["apps"]["/web"];
    assert_eq!(web["retries"], 3, "{web:#}");
    assert_eq!(web["upstreamFailures"], 3, "{web:#}");
    assert_eq!(web["responses"]["2xx"], 11, "{web:#}");
    let table = router.admin("/_router/table").await;
    let dead_json = upstream_json(&table, "/web", "web.dead");
    assert_eq!(dead_json["ejected"], true, "{dead_json}");
    assert_eq!(dead_json["ejections"], 1, "{dead_json}");
    assert_eq!(dead_json["failures"], 3, "ejected: no more attempts");
    let metrics = reqwest::get(format!("{}/_router/metrics", router.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ejected = format!(
        "baton_router_upstream_ejected{{app=\"/web\",task=\"web.dead\",address=\"{dead}\"}} 1"
    );
    assert!(metrics.contains(&ejected), "{metrics}");
    router.stop().await;
}

#[tokio::test]
async fn a_non_idempotent_request_that_reached_its_instance_is_not_sent_again() {
    let live = upstream("live").await;
    let rude = rude_upstream().await;
    let marathon = FakeMarathon::start(vec![app(
        "/web",
        json!({"BATON_VHOST": "web.test"}),
        &[("web.live", live), ("web.rude", rude)],
    )])
    .await;
    let mut config = config(&marathon);
    config.eject_after_failures = 0; // never: keep the rude one in turn
    let router = Router::start(config).await;

    // Round-robin alternates: one POST meets the rude instance and fails.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(router.send("POST", "web.test", Some("x")).await.0);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 502, 502]);
    // GET is idempotent: retried on the other instance, never fails.
    for _ in 0..4 {
        assert_eq!(router.get("web.test").await, (200, "live".to_string()));
    }
    router.stop().await;
}

#[tokio::test]
async fn no_instance_is_503_with_retry_after_and_no_app_is_404() {
    let marathon = FakeMarathon::start(vec![app(
        "/empty",
        json!({"BATON_VHOST": "empty.test"}),
        &[],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;
    let (status, _, retry_after) = router.send("GET", "empty.test", None).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("1")));
    let (status, text, _) = router.send("GET", "nowhere.test", None).await;
    assert_eq!(status, 404, "{text}");
    let ping = reqwest::get(format!("{}/_router/ping", router.url))
        .await
        .unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    let other = reqwest::get(format!("{}/_router/other", router.url))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let stats = router.admin("/_router/stats").await;
    assert_eq!(stats["unmatched"], 1);
    assert_eq!(stats["apps"]["/empty"]["unavailable"], 1);
    assert_eq!(stats["apps"]["/empty"]["responses"]["5xx"], 1);
    router.stop().await;
}

#[tokio::test]
async fn events_change_the_table_without_a_restart() {
    let one = upstream("one").await;
    let two = upstream("two").await;
    let labels = json!({"BATON_VHOST": "web.test"});
    let marathon = FakeMarathon::start(vec![app("/web", labels.clone(), &[("web.1", one)])]).await;
    let router = Router::start(config(&marathon)).await;
    assert_eq!(router.get("web.test").await, (200, "one".to_string()));

    // A second instance starts: its status update refreshes the app.
    marathon.set_apps(vec![app(
        "/web",
        labels.clone(),
        &[("web.1", one), ("web.2", two)],
    )]);
    marathon.emit(
        "status_update_event",
        json!({"appId": "/web", "taskId": "web.2", "taskStatus": "TASK_RUNNING"}),
    );
    router
        .until("two upstreams", |t| {
            t["apps"][0]["upstreams"].as_array().map(Vec::len) == Some(2)
        })
        .await;
    let mut answers: Vec<String> = Vec::new();
    for _ in 0..4 {
        answers.push(router.get("web.test").await.1);
    }
    answers.sort();
    assert_eq!(answers, ["one", "one", "two", "two"]);

    // The first one is being killed: shown as TASK_KILLING, no longer routed.
    let mut killing = app("/web", labels.clone(), &[("web.1", one), ("web.2", two)]);
    killing["tasks"][0]["state"] = json!("TASK_KILLING");
    marathon.set_apps(vec![killing]);
    marathon.emit(
        "status_update_event",
        json!({"appId": "/web", "taskId": "web.1", "taskStatus": "TASK_KILLING"}),
    );
    let table = router
        .until("one upstream", |t| {
            t["apps"][0]["upstreams"].as_array().map(Vec::len) == Some(1)
        })
        .await;
    assert_eq!(table["apps"][0]["excluded"][0]["reason"], "TASK_KILLING");
    for _ in 0..3 {
        assert_eq!(router.get("web.test").await, (200, "two".to_string()));
    }

    // The app is deleted.
    marathon.set_apps(vec![]);
    marathon.emit("app_terminated_event", json!({"appId": "/web"}));
    router
        .until("no apps", |t| {
            t["apps"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    assert_eq!(router.get("web.test").await.0, 404);
    router.stop().await;
}

/// Baton announces a change only once a read shows it; the router must
/// then read the app again even when a read of it is already under way
/// (one that may have started before the change).
#[tokio::test]
async fn an_event_during_a_read_of_its_app_is_followed_by_another_read() {
    let one = upstream("one").await;
    let two = upstream("two").await;
    let labels = json!({"BATON_VHOST": "web.test"});
    let marathon = FakeMarathon::start(vec![app("/web", labels.clone(), &[("web.1", one)])]).await;
    let router = Router::start(config(&marathon)).await;
    assert_eq!(router.get("web.test").await, (200, "one".to_string()));

    // A read starts and is held: it will answer the app as it is now.
    marathon.app_reads_open.send_replace(false);
    let before = marathon.app_reads.load(Ordering::SeqCst);
    marathon.emit(
        "status_update_event",
        json!({"appId": "/web", "taskId": "web.1", "taskStatus": "TASK_RUNNING"}),
    );
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while marathon.app_reads.load(Ordering::SeqCst) == before {
        assert!(tokio::time::Instant::now() < deadline, "no read of /web");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Meanwhile the app changes and its event arrives.
    marathon.set_apps(vec![app("/web", labels.clone(), &[("web.2", two)])]);
    marathon.emit(
        "status_update_event",
        json!({"appId": "/web", "taskId": "web.2", "taskStatus": "TASK_RUNNING"}),
    );
    marathon.app_reads_open.send_replace(true);
    router
        .until("only web.2 routed", |t| {
            t["apps"][0]["upstreams"]
                .as_array()
                .is_some_and(|u| u.len() == 1 && u[0]["taskId"] == "web.2")
        })
        .await;
    assert!(marathon.app_reads.load(Ordering::SeqCst) >= before + 2);
    assert_eq!(router.get("web.test").await, (200, "two".to_string()));
    router.stop().await;
}

#[tokio::test]
async fn least_conn_sends_fewer_requests_to_a_slow_instance() {
    let fast = slow_upstream("fast", Duration::from_millis(5)).await;
    let slow = slow_upstream("slow", Duration::from_millis(150)).await;
    let marathon = FakeMarathon::start(vec![app(
        "/web",
        json!({"BATON_VHOST": "web.test", "BATON_BALANCE": "least_conn"}),
        &[("web.fast", fast), ("web.slow", slow)],
    )])
    .await;
    let router = Arc::new(Router::start(config(&marathon)).await);
    // Four clients, each sending requests one after another for a while.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..25 {
                    answers.push(router.get("web.test").await.1);
                }
                answers
            })
        })
        .collect();
    let mut fast_count = 0;
    let mut slow_count = 0;
    for client in clients {
        for answer in client.await.unwrap() {
            match answer.as_str() {
                "fast" => fast_count += 1,
                "slow" => slow_count += 1,
                other => panic!("unexpected answer {other}"),
            }
        }
    }
    println!("least_conn: fast {fast_count}, slow {slow_count}");
    assert!(
        slow_count * 4 < fast_count,
        "the slow instance got {slow_count}, the fast one {fast_count}"
    );
    let Ok(router) = Arc::try_unwrap(router) else {
        panic!("clients are done");
    };
    router.stop().await;
}

/// Counts which instance answered each of `n` GETs for `host`.
async fn spread(
    router: &Router,
    host: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let (status, body) = router.get(host).await;
        assert_eq!(status, 200, "{body}");
        *counts.entry(body).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn the_load_policy_sends_fewer_requests_to_a_busy_instance() {
    let (idle, busy) = (upstream("idle").await, upstream("busy").await);
    let marathon = FakeMarathon::start(vec![app(
        "/work",
        json!({"BATON_VHOST": "work.test", "BATON_BALANCE": "load"}),
        &[("work.idle", idle), ("work.busy", busy)],
    )])
    .await;
    // As Baton reports them: the busy task uses 4× its CPUs, the idle one
    // a tenth; same host.
    *marathon.loads.lock().unwrap() = Some(vec![
        json!({"taskId": "work.idle", "cpusUsed": 0.05, "cpusAllocated": 0.5,
               "hostLoad1": 1.0, "hostCpus": 4, "ageMs": 100}),
        json!({"taskId": "work.busy", "cpusUsed": 2.0, "cpusAllocated": 0.5,
               "hostLoad1": 1.0, "hostCpus": 4, "ageMs": 100}),
    ]);
    let mut cfg = config(&marathon);
    cfg.load_interval = Duration::from_millis(20);
    let router = Router::start(cfg).await;
    router
        .until("the busy instance's weight to drop", |t| {
            upstream_json(t, "/work", "work.busy")["weight"].as_u64() < Some(500)
        })
        .await;
    let counts = spread(&router, "work.test", 400).await;
    let (idle_n, busy_n) = (counts["idle"], counts["busy"]);
    println!("load policy: idle {idle_n}, busy {busy_n} of 400");
    // Weights 727 and 160: the busy one gets about 18 %.
    assert!(busy_n * 3 < idle_n, "idle {idle_n}, busy {busy_n}");
    assert!(busy_n > 0, "a busy instance still gets a trickle");

    // Its load gone, it gets its share back.
    *marathon.loads.lock().unwrap() = Some(vec![]);
    router
        .until("the weight to be full again", |t| {
            upstream_json(t, "/work", "work.busy")["weight"] == 1000
        })
        .await;
    let counts = spread(&router, "work.test", 100).await;
    // Equal weights: an even split, give or take the scattering.
    let busy_n = counts["busy"];
    assert!((35..=65).contains(&busy_n), "{counts:?}");
    router.stop().await;
}

#[tokio::test]
async fn denied_networks_get_403_per_app_and_router_wide() {
    let web = upstream("web").await;
    let marathon = FakeMarathon::start(vec![
        app(
            "/web",
            json!({"BATON_VHOST": "web.test", "BATON_DENY": "127.0.0.5/32, bogus"}),
            &[("web.1", web)],
        ),
        app(
            "/open",
            json!({"BATON_VHOST": "open.test"}),
            &[("open.1", web)],
        ),
    ])
    .await;
    let mut cfg = config(&marathon);
    cfg.deny = baton_router::access::DenyList::parse("127.0.0.6").0;
    let router = Router::start(cfg).await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .no_proxy()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let get = |client: reqwest::Client, host: &'static str| {
        let url = format!("{}/", router.url);
        async move {
            let r = client.get(url).header("Host", host).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get(from([127, 0, 0, 5]), "web.test").await.0, 403);
    // The same client reaches an app that does not deny it.
    assert_eq!(
        get(from([127, 0, 0, 5]), "open.test").await,
        (200, "web".into())
    );
    assert_eq!(
        get(from([127, 0, 0, 7]), "web.test").await,
        (200, "web".into())
    );
    // Router-wide: every app, and the admin endpoints too.
    assert_eq!(get(from([127, 0, 0, 6]), "open.test").await.0, 403);
    let admin = from([127, 0, 0, 6])
        .get(format!("{}/_router/ping", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status().as_u16(), 403);

    let table = router.admin("/_router/table").await;
    let web_route = table["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "/web")
        .unwrap();
    assert_eq!(web_route["deny"], json!(["127.0.0.5/32"]));
    assert!(
        web_route["denyErrors"][0]
            .as_str()
            .unwrap()
            .contains("bogus")
    );
    let stats = router.admin("/_router/stats").await;
    assert_eq!(stats["apps"]["/web"]["denied"], 1);
    assert_eq!(stats["denied"], 2);
    router.stop().await;
}

fn sleeping_app(wake_timeout: &str) -> Value {
    app(
        "/nap",
        json!({"BATON_VHOST": "nap.test", "BATON_SLEEP_AFTER": "1h",
               "BATON_WAKE_TIMEOUT": wake_timeout, "BATON_SLEEPING": "2"}),
        &[],
    )
}

#[tokio::test]
async fn a_request_for_a_sleeping_app_wakes_it_and_is_held_until_an_instance_routes() {
    let nap = upstream("nap").await;
    let marathon = FakeMarathon::start(vec![sleeping_app("30s")]).await;
    let router = Router::start(config(&marathon)).await;
    let held = tokio::spawn({
        let (http, url) = (router.http.clone(), router.url.clone());
        async move {
            let r = http
                .get(format!("{url}/"))
                .header("Host", "nap.test")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    // The router asks Marathon for the count the label remembers, without
    // the label.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let put = loop {
        if let Some(put) = marathon.puts.lock().unwrap().first().cloned() {
            break put;
        }
        assert!(tokio::time::Instant::now() < deadline, "no wake-up PUT");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(put.0, "/v2/apps/nap");
    assert_eq!(put.1["instances"], 2);
    assert!(put.1["labels"].get("BATON_SLEEPING").is_none(), "{}", put.1);
    assert_eq!(put.1["labels"]["BATON_VHOST"], "nap.test");
    assert!(!held.is_finished(), "the request waits for an instance");

    // Marathon starts it; the held request goes through.
    let mut woken = app("/nap", put.1["labels"].clone(), &[("nap.1", nap)]);
    woken["instances"] = json!(2);
    marathon.set_apps(vec![woken]);
    marathon.emit(
        "status_update_event",
        json!({"appId": "/nap", "taskId": "nap.1", "taskStatus": "TASK_RUNNING"}),
    );
    let (status, body) = tokio::time::timeout(DEADLINE, held).await.unwrap().unwrap();
    assert_eq!((status, body.as_str()), (200, "nap"));
    assert_eq!(marathon.puts.lock().unwrap().len(), 1, "one wake-up");
    let stats = router.admin("/_router/stats").await;
    assert_eq!(stats["apps"]["/nap"]["held"], 1);
    assert_eq!(stats["apps"]["/nap"]["wakes"], 1);
    let decisions = router.admin("/_router/autoscale").await;
    assert_eq!(decisions["decisions"][0]["kind"], "wake");
    assert_eq!(decisions["decisions"][0]["outcome"], "applied");
    router.stop().await;
}

#[tokio::test]
async fn an_app_that_does_not_wake_in_time_is_503_with_retry_after_and_a_page_for_browsers() {
    let marathon = FakeMarathon::start(vec![sleeping_app("300ms")]).await;
    let router = Router::start(config(&marathon)).await;
    let (status, body, retry_after) = router.send("GET", "nap.test", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(body.contains("starting"), "{body}");
    let page = router
        .http
        .get(format!("{}/", router.url))
        .header("Host", "nap.test")
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 503);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("http-equiv=\"refresh\""), "{html}");
    // The first request's wake-up is still under way: no second PUT.
    assert_eq!(marathon.puts.lock().unwrap().len(), 1);
    router.stop().await;
}

#[tokio::test]
async fn a_websocket_upgrade_is_tunnelled_both_ways_and_outstanding_while_open() {
    let echo = upgrading_upstream().await;
    let dead = refused_port().await;
    let marathon = FakeMarathon::start(vec![app(
        "/ws",
        json!({"BATON_VHOST": "ws.test"}),
        &[("ws.dead", dead), ("ws.echo", echo)],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;

    // Twice: round-robin sends the first (at least) to the refused port,
    // and the upgrade is retried on the live instance like any GET.
    for _ in 0..2 {
        let mut client = router.connect().await;
        client
            .write_all(WEBSOCKET_REQUEST.as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut client).await;
        let lower = head.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 101 "), "{head}");
        assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
        assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
        assert!(
            lower.contains("\r\nsec-websocket-accept: accepted\r\n"),
            "{head}"
        );
        // The instance saw the upgrade asked for, the key, and the hop.
        let seen = lower
            .lines()
            .find_map(|l| l.strip_prefix("x-seen: "))
            .unwrap();
        assert!(seen.starts_with("get /chat http/1.1|"), "{seen}");
        for line in [
            "|connection: upgrade|",
            "|upgrade: websocket|",
            "|sec-websocket-key: dghlihnhbxbszsbub25jzq==|",
            "|x-forwarded-for: 127.0.0.1|",
        ] {
            assert!(seen.contains(line), "{line} in {seen}");
        }
        assert!(!seen.contains("keep-alive"), "{seen}");

        // What the instance sent right after its 101, then an exchange.
        assert_eq!(read_exactly(&mut client, 5).await, "hello");
        client.write_all(b"ping").await.unwrap();
        assert_eq!(read_exactly(&mut client, 4).await, "PING");
        client.write_all(b"twice").await.unwrap();
        assert_eq!(read_exactly(&mut client, 5).await, "TWICE");

        let table = router.admin("/_router/table").await;
        let open = upstream_json(&table, "/ws", "ws.echo");
        assert_eq!(open["outstanding"], 1, "the open tunnel counts: {open}");
        drop(client);
        router
            .until("the closed tunnel to end", |t| {
                upstream_json(t, "/ws", "ws.echo")["outstanding"] == 0
            })
            .await;
    }

    let stats = router.admin("/_router/stats").await;
    let ws = &stats["apps"]["/ws"];
    assert_eq!(ws["responses"]["1xx"], 2, "{ws:#}");
    // Each upgrade that met the refused port was retried on the echo.
    assert!(ws["retries"].as_u64().unwrap() >= 1, "{ws:#}");
    assert_eq!(ws["retries"], ws["upstreamFailures"], "{ws:#}");
    assert_eq!(ws["bytesIn"], 2 * (4 + 5), "{ws:#}");
    assert_eq!(ws["bytesOut"], 2 * (5 + 4 + 5), "{ws:#}");
    router.stop().await;
}

#[tokio::test]
async fn an_upgrade_the_instance_declines_is_answered_as_usual() {
    let plain = upstream("plain").await;
    let marathon = FakeMarathon::start(vec![app(
        "/ws",
        json!({"BATON_VHOST": "ws.test"}),
        &[("ws.plain", plain)],
    )])
    .await;
    let router = Router::start(config(&marathon)).await;
    let mut client = router.connect().await;
    client
        .write_all(WEBSOCKET_REQUEST.as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 5"),
        "{head}"
    );
    assert_eq!(read_exactly(&mut client, 5).await, "plain");
    // The client's connection still serves plain HTTP afterwards.
    get_over(&mut client, "ws.test", "plain").await;
    router.stop().await;
}

#[tokio::test]
async fn client_connections_opened_together_are_spread_over_the_workers() {
    let one = upstream("one").await;
    let marathon = FakeMarathon::start(vec![app(
        "/web",
        json!({"BATON_VHOST": "web.test"}),
        &[("web.1", one)],
    )])
    .await;
    let mut config = config(&marathon);
    config.workers = 2;
    let router = Router::start(config).await;

    // Each connection is opened and served (so accepted) before the next.
    let mut clients = Vec::new();
    for _ in 0..16 {
        let mut client = router.connect().await;
        get_over(&mut client, "web.test", "one").await;
        clients.push(client);
    }
    let open = |stats: &Value| -> Vec<u64> {
        let workers = stats["workers"].as_array().unwrap();
        workers
            .iter()
            .map(|w| w["openConnections"].as_u64().unwrap())
            .collect()
    };
    let stats = router.admin("/_router/stats").await;
    let counts = open(&stats);
    // The 16 and the admin client's own (one or more).
    assert_eq!(counts.len(), 2, "{stats:#}");
    assert!(counts.iter().sum::<u64>() >= 17, "{counts:?}");
    assert!(counts[0].abs_diff(counts[1]) <= 2, "{counts:?}");

    drop(clients);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let counts = open(&router.admin("/_router/stats").await);
        if counts.iter().sum::<u64>() <= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed connections still counted: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    router.stop().await;
}
