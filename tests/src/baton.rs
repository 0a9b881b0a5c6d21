//! The `baton` binary as a child process, and a small JSON client for its
//! REST API.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::binaries::binary;
use crate::ports::{PORTS_PER_AGENT, free_port, port_range_start};
use crate::wait;

/// Where a `baton` process gets its Mesos from.
#[derive(Debug, Clone)]
pub enum Master {
    /// `--master local`: its own embedded cluster (3 agents, 2 racks), on
    /// agent ports no other test uses.
    Local,
    /// A master URL, e.g. a standalone `mesos-local`.
    Url(String),
}

/// A running `baton`; killed when dropped.
pub struct BatonProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its `--data_dir`.
    pub data_dir: PathBuf,
    http_port: u16,
    master: Master,
    extra: Vec<String>,
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
        let mut command = Command::new(binary("baton"));
        command
            .args(["--http_port", &http_port.to_string()])
            .args(["--http_address", "127.0.0.1", "--hostname", "127.0.0.1"])
            .arg("--data_dir")
            .arg(&data_dir)
            .arg("--executor_path")
            .arg(binary("baton-executor"))
            .args(&extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
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
        let url = format!("http://127.0.0.1:{http_port}");
        let process = BatonProcess {
            child,
            url,
            data_dir,
            http_port,
            master,
            extra,
        };
        let metrics = format!("{}/metrics", process.url);
        wait::until(Duration::from_secs(60), "baton to subscribe", || {
            let metrics = metrics.clone();
            async move {
                let text = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
                text.contains("marathon_mesos_connected 1").then_some(())
            }
        })
        .await;
        process
    }

    /// `kill -9`, and wait for the process to be reaped.
    pub async fn kill9(&mut self) {
        self.child.kill().await.expect("SIGKILL baton");
    }

    /// Starts it again with the same flags and data, on the same port.
    pub async fn restart(self) -> BatonProcess {
        let BatonProcess {
            mut child,
            data_dir,
            http_port,
            master,
            extra,
            ..
        } = self;
        let _ = child.kill().await;
        Self::spawn(master, data_dir, http_port, extra).await
    }

    /// SIGTERM and wait (in local mode it stops its cluster and tasks).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// `GET path` → (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// A request with an optional JSON body → (status, JSON body or Null).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut request = client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request to baton");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The tasks of an app (`GET /v2/apps/{id}/tasks`).
    pub async fn tasks(&self, app: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v2/apps{app}/tasks")).await;
        assert_eq!(status, 200, "tasks of {app}: {body}");
        body["tasks"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `app` has exactly `n` TASK_RUNNING tasks; returns them.
    pub async fn wait_running(&self, app: &str, n: usize, timeout: Duration) -> Vec<Value> {
        wait::until(timeout, &format!("{n} running tasks of {app}"), || async {
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
