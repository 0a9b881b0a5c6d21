//! Shared helpers: a cluster on port 0 with fast timers, and raw-HTTP
//! scheduler and executor clients speaking the v1 APIs with reqwest.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use mesos_local::{ClusterConfig, LocalCluster};
use mesos_proto::scheduler::{Call, Event, call, event};
use mesos_proto::v1::{self, TaskState};
use mesos_proto::{Encoding, executor, util};
use reqwest::StatusCode;
use tokio::sync::mpsc;

/// How long any expected event may take.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// The window of a check that something does *not* happen, used only where
/// no later event can stand in for it: five allocation intervals of
/// [`config`] (100 ms), enough for a broken filter or SUPPRESS to show as an
/// offer.
pub const NO_OFFER_WINDOW: Duration = Duration::from_millis(500);

/// A cluster config for tests: port 0, 200 ms heartbeats, fast timers.
pub fn config(port_range_start: u16, work_dir: &Path) -> ClusterConfig {
    ClusterConfig {
        master_addr: "127.0.0.1:0".parse().unwrap(),
        port_range_start,
        ports_per_agent: 100,
        heartbeat_interval: Duration::from_millis(200),
        allocation_interval: Duration::from_millis(100),
        agent_unreachable_timeout: Duration::from_secs(1),
        status_update_retry: Duration::from_millis(300),
        executor_reregistration_timeout: Duration::from_secs(2),
        executor_shutdown_grace_period: Duration::from_secs(1),
        work_dir: work_dir.to_path_buf(),
        executor_path: baton_executor_path(),
        ..Default::default()
    }
}

/// Starts a cluster with [`config`] in a fresh temporary directory.
pub async fn start(port_range_start: u16) -> (LocalCluster, tempfile::TempDir) {
    start_with(port_range_start, |_| {}).await
}

/// Same, with a tweak.
pub async fn start_with(
    port_range_start: u16,
    tweak: impl FnOnce(&mut ClusterConfig),
) -> (LocalCluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(port_range_start, dir.path());
    tweak(&mut c);
    let cluster = LocalCluster::start(c).await.expect("cluster starts");
    (cluster, dir)
}

/// Shuts the cluster down and checks that it left nothing running: no
/// live process has its working directory under `work_dir` (every
/// executor and task runs in a sandbox there).
pub async fn stop(cluster: LocalCluster, work_dir: &Path) {
    cluster.shutdown().await;
    let left = processes_under(work_dir);
    assert!(left.is_empty(), "processes {left:?} outlived the cluster");
}

/// Live (non-zombie) processes whose working directory is under `dir`.
pub fn processes_under(dir: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(dir))
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// Whether `pid` exists and is not a zombie (an orphan that exited is
/// reparented to PID 1, which here never reaps it).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// `target/<profile>/baton-executor`, next to the directory of this test
/// binary (`target/<profile>/deps`).
pub fn baton_executor_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    deps.parent().unwrap().join("baton-executor")
}

/// Builds `baton-executor` if it is missing (a lone `cargo test -p
/// mesos-local` does not build other packages' binaries). Panics if that
/// fails: a test never passes by skipping.
pub fn ensure_baton_executor() {
    assert!(build_baton_executor(), "baton-executor could not be built");
}

fn build_baton_executor() -> bool {
    static BUILT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *BUILT.get_or_init(|| {
        let path = baton_executor_path();
        if path.is_file() {
            return true;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "baton-executor", "--bin", "baton-executor"])
            .status();
        matches!(status, Ok(s) if s.success()) && path.is_file()
    })
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn streaming_http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A POST with exactly these headers.
pub async fn raw_post(
    url: &str,
    content_type: Option<&str>,
    accept: Option<&str>,
    stream_id: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = http().post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    if let Some(s) = stream_id {
        req = req.header("Mesos-Stream-Id", s);
    }
    req.send().await.expect("request is answered")
}

pub fn capability(t: v1::framework_info::capability::Type) -> v1::framework_info::Capability {
    v1::framework_info::Capability {
        r#type: Some(t as i32),
    }
}

/// A FrameworkInfo; `pa` adds PARTITION_AWARE.
pub fn framework_info(name: &str, pa: bool, failover_timeout: f64) -> v1::FrameworkInfo {
    let mut caps = vec![capability(
        v1::framework_info::capability::Type::TaskKillingState,
    )];
    if pa {
        caps.push(capability(
            v1::framework_info::capability::Type::PartitionAware,
        ));
    }
    v1::FrameworkInfo {
        user: "root".into(),
        name: name.into(),
        failover_timeout: Some(failover_timeout),
        checkpoint: Some(true),
        hostname: Some("localhost".into()),
        capabilities: caps,
        ..Default::default()
    }
}

pub fn subscribe_call(info: &v1::FrameworkInfo) -> Call {
    Call {
        r#type: Some(call::Type::Subscribe as i32),
        framework_id: info.id.clone(),
        subscribe: Some(call::Subscribe {
            framework_info: info.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A scheduler speaking raw HTTP.
pub struct Sched {
    pub url: String,
    pub encoding: Encoding,
    pub info: v1::FrameworkInfo,
    pub framework_id: String,
    pub stream_id: String,
    /// `Authorization` sent with every call, if the master authenticates.
    pub auth: Option<String>,
    pub events: mpsc::UnboundedReceiver<Event>,
    reader: tokio::task::JoinHandle<()>,
}

/// An `Authorization: Basic` value.
pub fn basic(principal: &str, secret: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{principal}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

impl Drop for Sched {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads a RecordIO body into a channel until it ends.
fn spawn_reader<M>(
    resp: reqwest::Response,
    encoding: Encoding,
) -> (mpsc::UnboundedReceiver<M>, tokio::task::JoinHandle<()>)
where
    M: prost::Message + prost::Name + Default + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut events = Box::pin(mesos_proto::recordio::decode_stream::<M, _, _>(
            Box::pin(resp.bytes_stream()),
            encoding,
            16 << 20,
        ));
        while let Some(item) = events.next().await {
            match item {
                Ok(ev) => {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    (rx, reader)
}

impl Sched {
    /// SUBSCRIBEs and checks the 200, the headers and the first two events.
    pub async fn subscribe(url: &str, encoding: Encoding, info: v1::FrameworkInfo) -> Sched {
        Sched::subscribe_as(url, encoding, info, None).await
    }

    /// Same, sending `auth` as `Authorization` on the SUBSCRIBE and every
    /// later call.
    pub async fn subscribe_as(
        url: &str,
        encoding: Encoding,
        info: v1::FrameworkInfo,
        auth: Option<String>,
    ) -> Sched {
        let api = format!("{url}/api/v1/scheduler");
        let body = encoding.encode(&subscribe_call(&info)).unwrap();
        let mut req = streaming_http()
            .post(&api)
            .header("Content-Type", encoding.media_type())
            .header("Accept", encoding.media_type())
            .body(body);
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            encoding.media_type()
        );
        let stream_id = resp.headers()["mesos-stream-id"]
            .to_str()
            .unwrap()
            .to_string();
        let (events, reader) = spawn_reader::<Event>(resp, encoding);
        let mut s = Sched {
            url: url.to_string(),
            encoding,
            info,
            framework_id: String::new(),
            stream_id,
            auth,
            events,
            reader,
        };
        let first = s.next().await.expect("SUBSCRIBED");
        assert_eq!(first.r#type(), event::Type::Subscribed, "{first:?}");
        s.framework_id = first.subscribed.unwrap().framework_id.value;
        s.info.id = Some(util::framework_id(&s.framework_id));
        let second = s.next().await.expect("HEARTBEAT");
        assert_eq!(second.r#type(), event::Type::Heartbeat);
        s
    }

    /// The next event of any type, `None` if the stream ends or the
    /// deadline passes.
    pub async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(DEADLINE, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next event matching `pred`, skipping the rest.
    pub async fn expect(&mut self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return ev,
                Ok(Some(_)) => {}
                Ok(None) => panic!("stream ended while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Whether an event matching `pred` arrives within `within`.
    pub async fn sees(&mut self, within: Duration, mut pred: impl FnMut(&Event) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return true,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return false,
            }
        }
    }

    /// The next OFFERS event's offers.
    pub async fn offers(&mut self) -> Vec<v1::Offer> {
        let ev = self
            .expect("OFFERS", |e| e.r#type() == event::Type::Offers)
            .await;
        ev.offers.unwrap().offers
    }

    /// Collects offers until one from each of `n` agents is held.
    pub async fn offers_from(&mut self, n: usize) -> Vec<v1::Offer> {
        let mut by_agent = std::collections::BTreeMap::new();
        while by_agent.len() < n {
            for o in self.offers().await {
                by_agent.insert(o.hostname.clone(), o);
            }
        }
        by_agent.into_values().collect()
    }

    /// The next UPDATE for `task_id`.
    pub async fn update(&mut self, task_id: &str) -> v1::TaskStatus {
        let ev = self
            .expect(&format!("UPDATE for {task_id}"), |e| {
                e.update
                    .as_ref()
                    .is_some_and(|u| u.status.task_id.value == task_id)
            })
            .await;
        ev.update.unwrap().status
    }

    /// The next UPDATE for `task_id` in `state`.
    pub async fn update_in(&mut self, task_id: &str, state: TaskState) -> v1::TaskStatus {
        let ev = self
            .expect(&format!("{state:?} for {task_id}"), |e| {
                e.update
                    .as_ref()
                    .is_some_and(|u| u.status.task_id.value == task_id && u.status.state() == state)
            })
            .await;
        ev.update.unwrap().status
    }

    pub fn call(&self, ty: call::Type) -> Call {
        Call {
            r#type: Some(ty as i32),
            framework_id: Some(util::framework_id(&self.framework_id)),
            ..Default::default()
        }
    }

    /// POSTs a call on this stream; returns the status and body.
    pub async fn post(&self, c: &Call) -> (StatusCode, String) {
        let mut req = http()
            .post(format!("{}/api/v1/scheduler", self.url))
            .header("Content-Type", self.encoding.media_type())
            .header("Mesos-Stream-Id", &self.stream_id)
            .body(self.encoding.encode(c).unwrap());
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.expect("request is answered");
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }

    /// POSTs and asserts 202.
    pub async fn send(&self, c: Call) {
        let (status, body) = self.post(&c).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    pub async fn accept(
        &self,
        offer_ids: Vec<v1::OfferId>,
        operations: Vec<v1::offer::Operation>,
        refuse: Option<f64>,
    ) {
        let mut c = self.call(call::Type::Accept);
        c.accept = Some(call::Accept {
            offer_ids,
            operations,
            filters: refuse.map(|r| v1::Filters {
                refuse_seconds: Some(r),
            }),
        });
        self.send(c).await;
    }

    pub async fn decline(&self, offer_ids: Vec<v1::OfferId>, refuse: Option<f64>) {
        let mut c = self.call(call::Type::Decline);
        c.decline = Some(call::Decline {
            offer_ids,
            filters: refuse.map(|r| v1::Filters {
                refuse_seconds: Some(r),
            }),
        });
        self.send(c).await;
    }

    pub async fn ack(&self, status: &v1::TaskStatus) {
        let mut c = self.call(call::Type::Acknowledge);
        c.acknowledge = Some(call::Acknowledge {
            agent_id: status.agent_id.clone().unwrap(),
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone().unwrap(),
        });
        self.send(c).await;
    }

    pub async fn reconcile(&self, tasks: Vec<(&str, Option<&str>)>) {
        let mut c = self.call(call::Type::Reconcile);
        c.reconcile = Some(call::Reconcile {
            tasks: tasks
                .into_iter()
                .map(|(t, a)| call::reconcile::Task {
                    task_id: util::task_id(t),
                    agent_id: a.map(util::agent_id),
                })
                .collect(),
        });
        self.send(c).await;
    }

    pub async fn kill(&self, task_id: &str) {
        let mut c = self.call(call::Type::Kill);
        c.kill = Some(call::Kill {
            task_id: util::task_id(task_id),
            ..Default::default()
        });
        self.send(c).await;
    }
}

pub fn launch(tasks: Vec<v1::TaskInfo>) -> v1::offer::Operation {
    v1::offer::Operation {
        r#type: Some(v1::offer::operation::Type::Launch as i32),
        launch: Some(v1::offer::operation::Launch { task_infos: tasks }),
        ..Default::default()
    }
}

/// The first port of an offer's `ports` range.
/// Which local agent made an offer: agent *i* is `127.0.0.<i>`.
pub fn agent_index(offer: &v1::Offer) -> usize {
    offer
        .hostname
        .rsplit('.')
        .next()
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("offer from unexpected host {}", offer.hostname))
}

pub fn first_port(offer: &v1::Offer) -> u64 {
    offer
        .resources
        .iter()
        .find(|r| r.name == "ports")
        .and_then(|r| r.ranges.as_ref())
        .map(|r| r.range[0].begin)
        .unwrap()
}

/// A command task with a port from the offer.
pub fn command_task(id: &str, offer: &v1::Offer, cmd: &str) -> v1::TaskInfo {
    let port = first_port(offer);
    v1::TaskInfo {
        name: id.into(),
        task_id: util::task_id(id),
        agent_id: offer.agent_id.clone(),
        resources: vec![
            util::scalar_resource("cpus", 0.1),
            util::scalar_resource("mem", 32.0),
            util::ranges_resource("ports", &[(port, port)]),
        ],
        command: Some(v1::CommandInfo {
            value: Some(cmd.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A task for a custom executor run by `sh -c <executor_cmd>`; the test
/// itself then plays the executor over HTTP.
pub fn custom_task(
    id: &str,
    offer: &v1::Offer,
    executor_id: &str,
    executor_cmd: &str,
) -> v1::TaskInfo {
    v1::TaskInfo {
        name: id.into(),
        task_id: util::task_id(id),
        agent_id: offer.agent_id.clone(),
        resources: vec![
            util::scalar_resource("cpus", 0.1),
            util::scalar_resource("mem", 32.0),
        ],
        executor: Some(v1::ExecutorInfo {
            executor_id: util::executor_id(executor_id),
            command: Some(v1::CommandInfo {
                value: Some(executor_cmd.into()),
                ..Default::default()
            }),
            resources: vec![
                util::scalar_resource("cpus", 0.1),
                util::scalar_resource("mem", 32.0),
            ],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The sandbox of `executor_id` under `work_dir`, once it exists.
pub async fn sandbox(work_dir: &Path, executor_id: &str) -> PathBuf {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(p) = find_sandbox(work_dir, executor_id) {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no sandbox for {executor_id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn find_sandbox(work_dir: &Path, executor_id: &str) -> Option<PathBuf> {
    let agents = std::fs::read_dir(work_dir.join("agents")).ok()?;
    for agent in agents.flatten() {
        let Ok(fws) = std::fs::read_dir(agent.path().join("frameworks")) else {
            continue;
        };
        for fw in fws.flatten() {
            let runs = fw.path().join("executors").join(executor_id).join("runs");
            if let Ok(mut runs) = std::fs::read_dir(runs)
                && let Some(Ok(run)) = runs.next()
            {
                return Some(run.path());
            }
        }
    }
    None
}

/// Waits until `path` exists and has content.
pub async fn file_content(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.is_empty()
        {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never filled",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `cond` until it holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The test playing an executor against an agent.
pub struct Exec {
    pub url: String,
    pub encoding: Encoding,
    pub framework_id: String,
    pub executor_id: String,
    pub events: mpsc::UnboundedReceiver<executor::Event>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Exec {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Exec {
    pub fn call(framework_id: &str, executor_id: &str, ty: executor::call::Type) -> executor::Call {
        executor::Call {
            executor_id: util::executor_id(executor_id),
            framework_id: util::framework_id(framework_id),
            r#type: Some(ty as i32),
            ..Default::default()
        }
    }

    /// SUBSCRIBEs; `Err` carries a non-200 answer.
    pub async fn subscribe(
        endpoint: std::net::SocketAddr,
        encoding: Encoding,
        framework_id: &str,
        executor_id: &str,
        subscribe: executor::call::Subscribe,
    ) -> Result<Exec, (StatusCode, String)> {
        let url = format!("http://{endpoint}/api/v1/executor");
        let mut c = Exec::call(framework_id, executor_id, executor::call::Type::Subscribe);
        c.subscribe = Some(subscribe);
        let resp = streaming_http()
            .post(&url)
            .header("Content-Type", encoding.media_type())
            .header("Accept", encoding.media_type())
            .body(encoding.encode(&c).unwrap())
            .send()
            .await
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            return Err((status, resp.text().await.unwrap_or_default()));
        }
        let (events, reader) = spawn_reader::<executor::Event>(resp, encoding);
        Ok(Exec {
            url,
            encoding,
            framework_id: framework_id.into(),
            executor_id: executor_id.into(),
            events,
            reader,
        })
    }

    /// SUBSCRIBEs, retrying until the agent knows the executor.
    pub async fn subscribe_retry(
        endpoint: std::net::SocketAddr,
        encoding: Encoding,
        framework_id: &str,
        executor_id: &str,
    ) -> Exec {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match Exec::subscribe(
                endpoint,
                encoding,
                framework_id,
                executor_id,
                Default::default(),
            )
            .await
            {
                Ok(e) => return e,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "SUBSCRIBE of {executor_id}: {e:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The next event matching `pred`.
    pub async fn expect(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&executor::Event) -> bool,
    ) -> executor::Event {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return ev,
                Ok(Some(_)) => {}
                Ok(None) => panic!("executor stream ended while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Whether the stream ends within the deadline.
    pub async fn ends(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    pub async fn post(&self, c: &executor::Call) -> (StatusCode, String) {
        let resp = raw_post(
            &self.url,
            Some(self.encoding.media_type()),
            None,
            None,
            self.encoding.encode(c).unwrap(),
        )
        .await;
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Sends an UPDATE; returns its uuid.
    pub async fn update(&self, task_id: &str, state: TaskState) -> Vec<u8> {
        let uuid = util::new_status_uuid();
        let mut status = util::status(
            util::task_id(task_id),
            state,
            v1::task_status::Source::Executor,
        );
        status.uuid = Some(uuid.clone());
        let mut c = Exec::call(
            &self.framework_id,
            &self.executor_id,
            executor::call::Type::Update,
        );
        c.update = Some(executor::call::Update { status });
        let (code, body) = self.post(&c).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        uuid
    }
}
