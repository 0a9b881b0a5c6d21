//! Test harness: a fake Mesos agent serving the executor API on
//! 127.0.0.1, and the real `baton-executor` binary run against it.
//!
//! The fake agent checks what a real one would reject (content types,
//! call validation) and records every call; tests push events into the
//! current SUBSCRIBE stream and poll the recorded calls with deadlines.

#![allow(dead_code)] // each test binary uses a different part

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mesos_proto::executor::{Call, Event, call, event};
use mesos_proto::v1::{self, TaskState, framework_info, task_status::Source};
use mesos_proto::{Encoding, recordio, util};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub const FRAMEWORK_ID: &str = "fw-test";
pub const EXECUTOR_ID: &str = "ex-test";

/// Polls `check` every 20 ms until it returns `Some`, or panics after
/// `timeout` naming `what`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Default)]
struct Inner {
    encoding: Option<Encoding>,
    /// Every accepted call, in arrival order.
    calls: Mutex<Vec<Call>>,
    /// What a real agent would have answered 4xx to.
    violations: Mutex<Vec<String>>,
    /// The current SUBSCRIBE stream; replacing it closes the old one.
    stream: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
    auto_ack: AtomicBool,
    task_killing: AtomicBool,
    /// Answer SUBSCRIBE with this status instead of 200 (0 = accept).
    refuse_subscribe: Mutex<Option<StatusCode>>,
    refused_subscribes: AtomicUsize,
    /// The bearer token every call must carry.
    token: Mutex<Option<String>>,
}

/// A fake agent; see the module documentation.
#[derive(Clone)]
pub struct FakeAgent {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeAgent {
    /// Starts serving on an ephemeral port. The agent acknowledges every
    /// update unless told otherwise.
    pub async fn start(encoding: Encoding) -> FakeAgent {
        let inner = Arc::new(Inner {
            encoding: Some(encoding),
            auto_ack: AtomicBool::new(true),
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/api/v1/executor", axum::routing::post(executor_api))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeAgent { addr, inner }
    }

    pub fn encoding(&self) -> Encoding {
        self.inner.encoding.unwrap_or_default()
    }

    pub fn set_auto_ack(&self, on: bool) {
        self.inner.auto_ack.store(on, Ordering::SeqCst);
    }

    /// Whether SUBSCRIBED advertises the TASK_KILLING_STATE capability.
    pub fn set_task_killing(&self, on: bool) {
        self.inner.task_killing.store(on, Ordering::SeqCst);
    }

    /// Answer SUBSCRIBE with `status` (e.g. 503 while "recovering").
    pub fn refuse_subscribe(&self, status: Option<StatusCode>) {
        *self.inner.refuse_subscribe.lock().unwrap() = status;
    }

    /// Require `Authorization: Bearer <token>` on every call.
    pub fn expect_token(&self, token: &str) {
        *self.inner.token.lock().unwrap() = Some(token.to_string());
    }

    pub fn refused_subscribes(&self) -> usize {
        self.inner.refused_subscribes.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    pub fn subscribes(&self) -> Vec<call::Subscribe> {
        self.calls()
            .into_iter()
            .filter(|c| c.r#type() == call::Type::Subscribe)
            .filter_map(|c| c.subscribe)
            .collect()
    }

    /// Statuses of all UPDATE calls, in order.
    pub fn updates(&self) -> Vec<v1::TaskStatus> {
        self.calls()
            .into_iter()
            .filter(|c| c.r#type() == call::Type::Update)
            .filter_map(|c| c.update.map(|u| u.status))
            .collect()
    }

    pub fn assert_no_violations(&self) {
        let violations = self.inner.violations.lock().unwrap().clone();
        assert!(
            violations.is_empty(),
            "protocol violations: {violations:#?}"
        );
    }

    /// Waits for the `n`th accepted SUBSCRIBE (1-based).
    pub async fn wait_subscribe(&self, n: usize) -> call::Subscribe {
        wait_for(&format!("SUBSCRIBE #{n}"), Duration::from_secs(20), || {
            self.subscribes().into_iter().nth(n - 1)
        })
        .await
    }

    /// Waits for an UPDATE of `task` in `state`.
    pub async fn wait_update(&self, task: &str, state: TaskState) -> v1::TaskStatus {
        self.wait_update_within(task, state, Duration::from_secs(20))
            .await
    }

    pub async fn wait_update_within(
        &self,
        task: &str,
        state: TaskState,
        timeout: Duration,
    ) -> v1::TaskStatus {
        let what = format!("{task} {}", state.as_str_name());
        wait_for(&what, timeout, || {
            self.updates()
                .into_iter()
                .find(|s| s.task_id.value == task && s.state() == state)
        })
        .await
    }

    /// Pushes an event into the current stream.
    pub fn send(&self, event: &Event) {
        let inner = &self.inner;
        let stream = inner.stream.lock().unwrap();
        let stream = stream.as_ref().expect("no SUBSCRIBE stream is open");
        stream
            .send(frame(inner.encoding.unwrap_or_default(), event))
            .expect("the stream was closed");
    }

    /// Ends the current stream, as an agent that goes away would.
    pub fn drop_stream(&self) {
        self.inner.stream.lock().unwrap().take();
    }

    pub fn launch(&self, task: v1::TaskInfo) {
        self.send(&Event {
            r#type: Some(event::Type::Launch as i32),
            launch: Some(event::Launch { task }),
            ..Default::default()
        });
    }

    pub fn launch_group(&self, tasks: Vec<v1::TaskInfo>) {
        self.send(&Event {
            r#type: Some(event::Type::LaunchGroup as i32),
            launch_group: Some(event::LaunchGroup {
                task_group: v1::TaskGroupInfo { tasks },
            }),
            ..Default::default()
        });
    }

    pub fn kill(&self, task: &str, grace: Option<Duration>) {
        self.send(&Event {
            r#type: Some(event::Type::Kill as i32),
            kill: Some(event::Kill {
                task_id: util::task_id(task),
                kill_policy: grace.map(kill_policy),
            }),
            ..Default::default()
        });
    }

    pub fn shutdown(&self) {
        self.send(&Event {
            r#type: Some(event::Type::Shutdown as i32),
            ..Default::default()
        });
    }

    pub fn ack(&self, status: &v1::TaskStatus) {
        self.send(&ack_event(status));
    }
}

fn frame(encoding: Encoding, event: &Event) -> Bytes {
    recordio::encode_to_bytes(&encoding.encode(event).expect("event encodes"))
}

fn ack_event(status: &v1::TaskStatus) -> Event {
    Event {
        r#type: Some(event::Type::Acknowledged as i32),
        acknowledged: Some(event::Acknowledged {
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone().unwrap_or_default(),
        }),
        ..Default::default()
    }
}

pub fn kill_policy(grace: Duration) -> v1::KillPolicy {
    v1::KillPolicy {
        grace_period: Some(util::duration_info(grace)),
    }
}

fn violation(inner: &Inner, status: StatusCode, what: String) -> Response {
    inner.violations.lock().unwrap().push(what.clone());
    (status, what).into_response()
}

/// `POST /api/v1/executor`, answering as `Http::executor` in
/// `src/slave/http.cpp` does for the cases the executor can get wrong.
async fn executor_api(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = inner.encoding.unwrap_or_default();
    let media = encoding.media_type();
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if header(header::CONTENT_TYPE) != Some(media) {
        let got = header(header::CONTENT_TYPE).map(str::to_string);
        return violation(
            &inner,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {got:?}"),
        );
    }
    if header(header::ACCEPT) != Some(media) {
        let got = header(header::ACCEPT).map(str::to_string);
        return violation(
            &inner,
            StatusCode::NOT_ACCEPTABLE,
            format!("Accept {got:?}"),
        );
    }
    let token = inner.token.lock().unwrap().clone();
    if let Some(token) = token {
        let expected = format!("Bearer {token}");
        if header(header::AUTHORIZATION) != Some(expected.as_str()) {
            return violation(
                &inner,
                StatusCode::UNAUTHORIZED,
                "missing bearer token".into(),
            );
        }
    }
    if headers.contains_key("mesos-stream-id") {
        return violation(
            &inner,
            StatusCode::BAD_REQUEST,
            "Mesos-Stream-Id sent".into(),
        );
    }
    let call: Call = match encoding.decode(&body) {
        Ok(call) => call,
        Err(e) => {
            return violation(
                &inner,
                StatusCode::BAD_REQUEST,
                format!("undecodable call: {e}"),
            );
        }
    };
    if let Err(why) = validate(&call) {
        return violation(&inner, StatusCode::BAD_REQUEST, why);
    }

    match call.r#type() {
        call::Type::Subscribe => {
            let refusal = *inner.refuse_subscribe.lock().unwrap();
            if let Some(status) = refusal {
                inner.refused_subscribes.fetch_add(1, Ordering::SeqCst);
                return (status, "refused by the test").into_response();
            }
            inner.calls.lock().unwrap().push(call);
            let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
            let mut capabilities = Vec::new();
            if inner.task_killing.load(Ordering::SeqCst) {
                capabilities.push(framework_info::Capability {
                    r#type: Some(framework_info::capability::Type::TaskKillingState as i32),
                });
            }
            let subscribed = Event {
                r#type: Some(event::Type::Subscribed as i32),
                subscribed: Some(event::Subscribed {
                    executor_info: v1::ExecutorInfo {
                        executor_id: util::executor_id(EXECUTOR_ID),
                        ..Default::default()
                    },
                    framework_info: v1::FrameworkInfo {
                        user: "test".into(),
                        name: "test".into(),
                        id: Some(util::framework_id(FRAMEWORK_ID)),
                        capabilities,
                        ..Default::default()
                    },
                    agent_info: v1::AgentInfo {
                        hostname: "127.0.0.1".into(),
                        ..Default::default()
                    },
                    container_id: None,
                }),
                ..Default::default()
            };
            let _ = tx.send(frame(encoding, &subscribed));
            // A new subscription closes the previous one, as on an agent.
            *inner.stream.lock().unwrap() = Some(tx);
            let body = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, media)
                .body(Body::from_stream(body))
                .unwrap()
        }
        call::Type::Update => {
            let status = call.update.as_ref().map(|u| u.status.clone());
            inner.calls.lock().unwrap().push(call);
            if let Some(status) = status
                && inner.auto_ack.load(Ordering::SeqCst)
                && let Some(stream) = inner.stream.lock().unwrap().as_ref()
            {
                let _ = stream.send(frame(encoding, &ack_event(&status)));
            }
            StatusCode::ACCEPTED.into_response()
        }
        _ => {
            inner.calls.lock().unwrap().push(call);
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// `validateExecutorCall` for what Baton's executor sends.
fn validate(call: &Call) -> Result<(), String> {
    if call.r#type.is_none() {
        return Err("call without type".into());
    }
    if call.framework_id.value != FRAMEWORK_ID || call.executor_id.value != EXECUTOR_ID {
        return Err(format!("unknown ids in {call:?}"));
    }
    match call.r#type() {
        call::Type::Subscribe if call.subscribe.is_none() => Err("SUBSCRIBE without body".into()),
        call::Type::Update => {
            let Some(update) = &call.update else {
                return Err("UPDATE without body".into());
            };
            validate_status(&update.status)
        }
        _ => Ok(()),
    }
}

pub fn validate_status(status: &v1::TaskStatus) -> Result<(), String> {
    let uuid_ok = status
        .uuid
        .as_ref()
        .is_some_and(|u| uuid::Uuid::from_slice(u).is_ok());
    if !uuid_ok {
        return Err(format!("status without a 16-byte uuid: {status:?}"));
    }
    if status.source() != Source::Executor || status.source.is_none() {
        return Err(format!("status source is not SOURCE_EXECUTOR: {status:?}"));
    }
    if status.state() == TaskState::TaskStaging {
        return Err("executors must not send TASK_STAGING".into());
    }
    if status
        .executor_id
        .as_ref()
        .is_some_and(|id| id.value != EXECUTOR_ID)
    {
        return Err(format!("wrong executor_id: {status:?}"));
    }
    Ok(())
}

/// Settings of one executor run.
pub struct Options {
    pub checkpoint: bool,
    pub shutdown_grace: &'static str,
    pub backoff_max: &'static str,
    pub recovery_timeout: &'static str,
    pub auth_token: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            checkpoint: false,
            shutdown_grace: "5secs",
            backoff_max: "300ms",
            recovery_timeout: "1mins",
            auth_token: None,
        }
    }
}

/// The `baton-executor` binary running against a [`FakeAgent`]. Dropping
/// it kills the executor and every process that inherited its marker, so
/// no task outlives a test.
pub struct Executor {
    child: tokio::process::Child,
    marker: String,
    log: PathBuf,
    sandbox: tempfile::TempDir,
}

impl Executor {
    pub fn spawn(agent: &FakeAgent, options: Options) -> Executor {
        let sandbox = tempfile::tempdir().unwrap();
        let log = sandbox.path().join("executor.log");
        let marker = uuid::Uuid::new_v4().to_string();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton-executor"));
        if let Some(token) = options.auth_token {
            command.env("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", token);
        }
        let child = command
            .env("MESOS_FRAMEWORK_ID", FRAMEWORK_ID)
            .env("MESOS_EXECUTOR_ID", EXECUTOR_ID)
            .env("MESOS_AGENT_ENDPOINT", agent.addr.to_string())
            .env("MESOS_SANDBOX", sandbox.path())
            .env("MESOS_DIRECTORY", sandbox.path())
            .env(
                "MESOS_CHECKPOINT",
                if options.checkpoint { "1" } else { "0" },
            )
            .env(
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
                options.shutdown_grace,
            )
            .env("MESOS_SUBSCRIPTION_BACKOFF_MAX", options.backoff_max)
            .env("MESOS_RECOVERY_TIMEOUT", options.recovery_timeout)
            .env("BATON_EXECUTOR_ENCODING", agent.encoding().to_string())
            .env("BATON_EXECUTOR_LOG", "info,baton_executor=debug")
            .env("BATON_TEST_MARKER", &marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Executor {
            child,
            marker,
            log,
            sandbox,
        }
    }

    pub fn sandbox(&self) -> &Path {
        self.sandbox.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the executor to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("executor still running after {timeout:?}"),
        }
    }

    /// Whether the executor is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Reads a file the task writes in the sandbox once it is complete
    /// (ends with a newline).
    pub async fn read_line_file(&self, relative: &str) -> String {
        let path = self.sandbox().join(relative);
        wait_for(
            &format!("{}", path.display()),
            Duration::from_secs(20),
            || {
                std::fs::read_to_string(&path)
                    .ok()
                    .filter(|s| s.ends_with('\n'))
            },
        )
        .await
    }

    /// The process group id a task wrote to `relative` (`echo $$ > pid`).
    pub async fn task_pgid(&self, relative: &str) -> i32 {
        self.read_line_file(relative).await.trim().parse().unwrap()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        kill_marked(&self.marker);
        if std::thread::panicking() {
            eprintln!("---- executor log ----\n{}", self.log());
        }
    }
}

/// SIGKILLs every process whose environment holds the marker.
fn kill_marked(marker: &str) {
    let needle = format!("BATON_TEST_MARKER={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits until no live process is left in group `pgid`.
pub async fn wait_group_gone(pgid: i32) {
    wait_for(
        &format!("process group {pgid} to die"),
        Duration::from_secs(10),
        || (baton_executor::task::live_group_members(pgid) == 0).then_some(()),
    )
    .await;
}

/// A shell-form command task.
pub fn shell_task(id: &str, command: &str) -> v1::TaskInfo {
    v1::TaskInfo {
        name: id.into(),
        task_id: util::task_id(id),
        agent_id: util::agent_id("agent-1"),
        command: Some(v1::CommandInfo {
            value: Some(command.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
