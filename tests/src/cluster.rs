//! `mesos-local` as a child process, and Baton's scheduler against it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use baton::config::{MasterSpec, Settings};
use baton::mesos::MasterEndpoint;
use mesos_proto::Encoding;
use tokio::process::{Child, Command};

use crate::binaries::binary;
use crate::ports::{PORTS_PER_AGENT, free_port, port_range_start};
use crate::wait;

/// A `mesos-local` process; killed (SIGTERM, then SIGKILL) when dropped.
pub struct MesosLocalProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl MesosLocalProcess {
    /// Starts `mesos-local` with 3 agents over 2 racks, a 1 s heartbeat, and
    /// executors that speak `executor_encoding`; waits until it answers.
    pub async fn start(work_dir: &Path, executor_encoding: Encoding) -> MesosLocalProcess {
        Self::start_with(work_dir, executor_encoding, &[]).await
    }

    /// [`MesosLocalProcess::start`] with `extra` flags (e.g. `--zk`).
    pub async fn start_with(
        work_dir: &Path,
        executor_encoding: Encoding,
        extra: &[&str],
    ) -> MesosLocalProcess {
        let port = free_port();
        let child = Command::new(binary("mesos-local"))
            .args(extra)
            .args(["--port", &port.to_string(), "--agents", "3", "--racks", "2"])
            .args(["--port_range_start", &port_range_start().to_string()])
            .args(["--ports_per_agent", &PORTS_PER_AGENT.to_string()])
            .args(["--heartbeat_interval_secs", "1"])
            .arg("--work_dir")
            .arg(work_dir)
            .arg("--executor_path")
            .arg(binary("baton-executor"))
            .env("BATON_EXECUTOR_ENCODING", executor_encoding.to_string())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start mesos-local");
        let url = format!("http://127.0.0.1:{port}");
        let state_url = format!("{url}/master/state");
        wait::until(
            Duration::from_secs(30),
            "mesos-local to answer /master/state",
            || {
                let state_url = state_url.clone();
                async move {
                    reqwest::get(&state_url)
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await;
        MesosLocalProcess { child, url }
    }

    /// `/master/state` as JSON.
    pub async fn state(&self) -> serde_json::Value {
        reqwest::get(format!("{}/master/state", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The ids of the tasks the master holds as not yet ended (staging,
    /// starting, running or being killed), of every framework.
    pub async fn live_task_ids(&self) -> std::collections::BTreeSet<String> {
        self.state().await["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
            .filter(|t| {
                matches!(
                    t["state"].as_str(),
                    Some("TASK_STAGING" | "TASK_STARTING" | "TASK_RUNNING" | "TASK_KILLING")
                )
            })
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect()
    }

    /// `kill -9` and wait: nothing of it says goodbye (its ZooKeeper
    /// registration, say, lasts until its session expires).
    pub async fn kill9(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM and wait: mesos-local destroys its containers on the way out.
    /// (Dropping it does the same, without waiting in an async context.)
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Settings for a scheduler against `master`, storing under `data_dir`.
pub fn settings(master: &str, data_dir: &Path, encoding: Encoding) -> Settings {
    let mut settings = Settings::new(
        MasterSpec::Masters(vec![MasterEndpoint::parse(master).unwrap()]),
        data_dir.to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
    );
    settings.failover_timeout = Duration::from_secs(3600);
    settings.mesos_encoding = encoding;
    settings.executor_path = Some(binary("baton-executor"));
    settings
}

/// Session tuning for tests: quick reconnects.
pub fn fast_session(session: &mut baton::mesos::SessionConfig) {
    session.backoff_min = Duration::from_millis(50);
    session.backoff_max = Duration::from_millis(500);
    session.call_timeout = Duration::from_secs(5);
}

impl Drop for MesosLocalProcess {
    /// SIGTERM (it destroys its containers), then SIGKILL after a while: a
    /// failing test leaves no executor behind. Nothing to do after
    /// [`MesosLocalProcess::stop`] or [`MesosLocalProcess::kill9`].
    fn drop(&mut self) {
        crate::procs::stop_child(&mut self.child, Duration::from_secs(20));
    }
}

/// Every file (or, with `dirs`, directory) named `name` under `root` (a
/// cluster's work dir), searched at most 12 deep, not through links: a
/// persistent volume is found once, where it lives, not again through a
/// sandbox's link to it.
pub fn find_named(root: &Path, name: &str, dirs: bool) -> Vec<std::path::PathBuf> {
    fn walk(
        root: &Path,
        name: &str,
        dirs: bool,
        depth: usize,
        found: &mut Vec<std::path::PathBuf>,
    ) {
        let Ok(entries) = std::fs::read_dir(root) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let wanted = if dirs { kind.is_dir() } else { kind.is_file() };
            if entry.file_name() == name && wanted {
                found.push(entry.path());
            } else if kind.is_dir() && depth < 12 {
                walk(&entry.path(), name, dirs, depth + 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(root, name, dirs, 0, &mut found);
    found
}

/// The lines of `file` in the persistent volume `persistence_id` somewhere
/// under the cluster's `work_dir` (none while it does not exist).
pub fn volume_lines(work_dir: &Path, persistence_id: &str, file: &str) -> Vec<String> {
    find_named(work_dir, persistence_id, true)
        .into_iter()
        .next()
        .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The disk reserved for `role` on all agents of a master's `/master/state`.
pub fn reserved_disk(state: &serde_json::Value, role: &str) -> f64 {
    state["slaves"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["reserved_resources"][role]["disk"].as_f64())
        .sum()
}

/// Waits (at most `deadline`) until `file` in the persistent volume
/// `persistence_id` under `work_dir` holds exactly the lines `want`.
pub async fn wait_volume_lines(
    work_dir: &Path,
    persistence_id: &str,
    file: &str,
    want: &[String],
    deadline: Duration,
    what: &str,
) {
    crate::wait::until(deadline, what, || {
        let got = volume_lines(work_dir, persistence_id, file);
        async move { (got == want).then_some(()) }
    })
    .await;
}
