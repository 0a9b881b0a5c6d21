//! The `baton` binary as a child process, and a small JSON client for its
//! REST API.
//!
//! Its stdout and stderr go to `baton.log` in its data directory
//! ([`BatonProcess::log_tail`] quotes the end for failure messages; a
//! failing test prints it when the process is dropped). Dropping a running
//! process stops it as [`BatonProcess::stop`] does (SIGTERM, so that in
//! local mode it shuts its cluster and tasks down), escalates to SIGKILL
//! after a while, and then kills whatever still carries the data
//! directory's path in its command line or environment: the embedded
//! agents' executors and tasks run in sandboxes below it.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::binaries::binary;
use crate::ports::{PORTS_PER_AGENT, free_port, port_range_start};
use crate::procs;

/// Time for `baton` to answer `/ping` and subscribe.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Time for `baton` to exit after SIGTERM in [`BatonProcess::stop`].
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// Time for `baton` to exit after SIGTERM when dropped, before SIGKILL.
const DROP_DEADLINE: Duration = Duration::from_secs(20);
/// How many log lines [`BatonProcess::log_tail`] quotes.
const TAIL_LINES: usize = 80;

/// Where a `baton` process gets its Mesos from.
#[derive(Debug, Clone)]
pub enum Master {
    /// `--master local`: its own embedded cluster (3 agents, 2 racks), on
    /// agent ports no other test uses.
    Local,
    /// A master URL, e.g. a standalone `mesos-local`.
    Url(String),
}

/// A running `baton`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct BatonProcess {
    /// `None` once it has stopped.
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its `--data_dir`.
    pub data_dir: PathBuf,
    /// Its stdout and stderr: `baton.log` in the data directory.
    log: PathBuf,
    http_port: u16,
    master: Master,
    extra: Vec<String>,
    /// No pooled connections: every request stands on its own.
    http: reqwest::Client,
    /// Whether dropping it kills what carries the data directory; not when
    /// [`BatonProcess::restart`] hands the directory on.
    sweep_on_drop: bool,
}

/// An HTTP answer, for tests that check more than status and JSON.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The `Content-Type` header ("" without one).
    pub content_type: String,
    /// The `Marathon-Deployment-Id` header.
    pub deployment_id: Option<String>,
    pub text: String,
    /// The body, if it is JSON.
    pub json: Option<Value>,
}

impl BatonProcess {
    /// Starts `baton` and waits until `/ping` answers and it is subscribed
    /// (`/metrics` says `marathon_mesos_connected 1`).
    pub async fn start(master: Master, data_dir: &Path, extra: &[&str]) -> BatonProcess {
        let http_port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(master, data_dir.to_path_buf(), http_port, extra).await
    }

    async fn spawn(
        master: Master,
        data_dir: PathBuf,
        http_port: u16,
        extra: Vec<String>,
    ) -> BatonProcess {
        std::fs::create_dir_all(&data_dir).expect("create baton's data directory");
        let log = data_dir.join("baton.log");
        // Appended to, so that after a restart the tail shows both runs.
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open baton's log file");
        let err = out.try_clone().expect("clone baton's log file");
        let mut command = Command::new(binary("baton"));
        command
            .args(["--http_port", &http_port.to_string()])
            .args(["--http_address", "127.0.0.1", "--hostname", "127.0.0.1"])
            .arg("--data_dir")
            .arg(&data_dir);
        if !extra.iter().any(|a| a == "--executor_path") {
            command.arg("--executor_path").arg(binary("baton-executor"));
        }
        command
            .args(&extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,baton=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        match &master {
            Master::Local => {
                command
                    .args(["--master", "local", "--local_master_port", "0"])
                    .args(["--local_agents", "3", "--local_racks", "2"])
                    .args([
                        "--local_port_range_start",
                        &port_range_start().to_string(),
                        "--local_ports_per_agent",
                        &PORTS_PER_AGENT.to_string(),
                    ]);
            }
            Master::Url(url) => {
                command.args(["--master", url]);
            }
        }
        let child = command.spawn().expect("start baton");
        let mut process = BatonProcess {
            child: Some(child),
            url: format!("http://127.0.0.1:{http_port}"),
            data_dir,
            log,
            http_port,
            master,
            extra,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(0)
                .build()
                .expect("HTTP client"),
            sweep_on_drop: true,
        };
        process.wait_ready().await;
        process
    }

    /// Polls until `/ping` answers 200 and `/metrics` says the Mesos
    /// subscription is live; fails early if the process exits.
    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            assert!(
                self.alive(),
                "baton exited while starting: {:?}\n{}",
                self.child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten()),
                self.log_tail()
            );
            if self.try_get("/ping").await.is_ok_and(|r| r.status == 200)
                && self
                    .try_get("/metrics")
                    .await
                    .is_ok_and(|r| r.text.contains("marathon_mesos_connected 1"))
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "baton did not answer /ping and subscribe within {START_DEADLINE:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The most resident memory it has had (VmHWM, the kernel's
    /// high-water mark) in bytes, while it runs: no spike between two
    /// looks escapes it.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines Baton logged, with the log file's path.
    pub fn log_tail(&self) -> String {
        crate::procs::log_tail("baton", &self.log, TAIL_LINES)
    }

    /// A counter or gauge from `/metrics` (0 when absent or unreadable).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self
            .try_get("/metrics")
            .await
            .map(|r| r.text)
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// How many lines of its log (over all its restarts) contain `text`.
    pub fn log_lines_with(&self, text: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(text))
            .count()
    }

    /// Sends `signal` (SIGSTOP and SIGCONT, say) to the process, while it
    /// runs.
    pub fn signal(&self, signal: Signal) {
        let pid = self.pid().expect("baton is running");
        kill(Pid::from_raw(pid as i32), signal).expect("signal baton");
    }

    /// `kill -9`, and wait for the process to be reaped.
    pub async fn kill9(&mut self) {
        let child = self.child.as_mut().expect("baton is running");
        child.kill().await.expect("SIGKILL baton");
    }

    /// Starts it again with the same flags and data, on the same port
    /// (after `kill -9` if it still runs).
    pub async fn restart(mut self) -> BatonProcess {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        let master = self.master.clone();
        let data_dir = self.data_dir.clone();
        let extra = self.extra.clone();
        let http_port = self.http_port;
        self.sweep_on_drop = false;
        drop(self);
        Self::spawn(master, data_dir, http_port, extra).await
    }

    /// Starts it again with the same master, data and port but other extra
    /// flags (after `kill -9` if it still runs).
    pub async fn restart_with(mut self, extra: &[&str]) -> BatonProcess {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart().await
    }

    /// SIGTERM (in local mode it then stops its cluster and tasks), and
    /// waits; asserts Baton exited by itself, successfully.
    pub async fn stop(mut self) {
        let child = self.child.as_mut().expect("baton is running");
        let pid = child.id().expect("baton is running");
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM baton");
        let waited = tokio::time::timeout(STOP_DEADLINE, child.wait()).await;
        let tail = self.log_tail();
        let Ok(status) = waited else {
            // Drop sends SIGKILL and cleans up.
            panic!("baton did not exit within {STOP_DEADLINE:?} of SIGTERM\n{tail}");
        };
        let status = status.expect("wait for baton");
        self.child = None;
        assert!(
            status.success(),
            "baton exited with {status} after SIGTERM\n{tail}"
        );
    }

    /// A request with an optional body (sent as JSON) → what came back, or
    /// why nothing did.
    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: no response: {e:?}"))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let deployment_id = header("marathon-deployment-id");
        let text = response
            .text()
            .await
            .map_err(|e| format!("{method} {path}: reading the body: {e:?}"))?;
        let json = serde_json::from_str(&text).ok();
        Ok(Reply {
            status,
            content_type,
            deployment_id,
            text,
            json,
        })
    }

    /// `GET path` → what came back, or why nothing did.
    pub async fn try_get(&self, path: &str) -> Result<Reply, String> {
        self.try_request(Method::GET, path, None).await
    }

    /// A request with a JSON body → what came back, or why nothing did.
    pub async fn try_send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Reply, String> {
        self.try_request(method, path, Some(body.to_string().into_bytes()))
            .await
    }

    /// `GET path` → (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(Method::GET, path, None).await
    }

    /// A request with an optional JSON body → (status, JSON body or Null).
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string().into_bytes());
        let reply = self
            .try_request(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("request to baton: {e}"));
        (reply.status, reply.json.unwrap_or(Value::Null))
    }

    /// The ids of the deployments in progress (`GET /v2/deployments`);
    /// `None` when it does not answer 200.
    pub async fn deployment_ids(&self) -> Option<Vec<String>> {
        let reply = self.try_get("/v2/deployments").await.ok()?;
        let list = reply.json.filter(|_| reply.status == 200)?;
        Some(
            list.as_array()?
                .iter()
                .filter_map(|d| d["id"].as_str().map(str::to_string))
                .collect(),
        )
    }

    /// Waits until no deployment is in progress.
    pub async fn wait_no_deployments(&self, timeout: Duration) {
        crate::wait::until(timeout, "no deployment in progress", || async {
            self.deployment_ids()
                .await
                .is_some_and(|ids| ids.is_empty())
                .then_some(())
        })
        .await;
    }

    /// The tasks of an app (`GET /v2/apps/{id}/tasks`).
    pub async fn tasks(&self, app: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v2/apps{app}/tasks")).await;
        assert_eq!(status, 200, "tasks of {app}: {body}");
        body["tasks"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `app` has exactly `n` TASK_RUNNING tasks; returns them.
    pub async fn wait_running(&self, app: &str, n: usize, timeout: Duration) -> Vec<Value> {
        crate::wait::until(timeout, &format!("{n} running tasks of {app}"), || async {
            let tasks = self.tasks(app).await;
            let running: Vec<Value> = tasks
                .into_iter()
                .filter(|t| t["state"] == "TASK_RUNNING")
                .collect();
            (running.len() == n).then_some(running)
        })
        .await
    }
}

impl Drop for BatonProcess {
    /// Stops a still running Baton (SIGTERM, then SIGKILL), kills whatever
    /// it left behind, and prints its log if the test is failing.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            procs::stop_child(&mut child, DROP_DEADLINE);
        }
        // Also after a clean stop: what an earlier generation left when it
        // was killed with -9. A relative path could match anything; tests
        // pass absolute ones.
        if self.sweep_on_drop && self.data_dir.is_absolute() {
            for pid in procs::carrying(&self.data_dir.to_string_lossy()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}
