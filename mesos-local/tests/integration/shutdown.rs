//! Stopping: `LocalCluster::shutdown` and the `mesos-local` binary's
//! SIGTERM path give every executor SIGTERM and its shutdown grace, then
//! destroy what is left, and leave no process behind. The executors here
//! are shell scripts that report the SIGTERM they get in their sandbox.

use super::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use mesos_proto::{Encoding, v1};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Stops within its grace: on SIGTERM it takes 300 ms to clean up, then
/// writes `stopped` and exits.
const POLITE: &str = "trap 'sleep 0.3; echo done > stopped; kill $!; exit 0' TERM; \
     echo $$ > pid.tmp && mv pid.tmp pid; sleep 600 & wait";

/// Notes the SIGTERM in `got-term` and carries on regardless.
const STUBBORN: &str = "trap 'echo term > got-term' TERM; \
     echo $$ > pid.tmp && mv pid.tmp pid; while :; do sleep 0.1; done";

/// A task whose executor runs `script` and has `grace` to shut down.
fn task(id: &str, offer: &v1::Offer, script: &str, grace: Duration) -> v1::TaskInfo {
    let mut t = custom_task(id, offer, &format!("exec-{id}"), script);
    if let Some(e) = t.executor.as_mut() {
        e.shutdown_grace_period = Some(v1::DurationInfo {
            nanoseconds: i64::try_from(grace.as_nanos()).unwrap(),
        });
    }
    t
}

/// Launches `tasks` on one offer and waits until each executor script runs;
/// returns each executor's pid and sandbox.
async fn launch_scripts(
    s: &mut Sched,
    work_dir: &Path,
    tasks: &[(&str, &str, Duration)],
) -> Vec<(i32, std::path::PathBuf)> {
    let offer = s.offers_from(1).await.remove(0);
    let infos = tasks
        .iter()
        .map(|(id, script, grace)| task(id, &offer, script, *grace))
        .collect();
    s.accept(vec![offer.id.clone()], vec![launch(infos)], None)
        .await;
    let mut out = Vec::new();
    for (id, _, _) in tasks {
        let sandbox = sandbox(work_dir, &format!("exec-{id}")).await;
        let pid = file_content(&sandbox.join("pid"))
            .await
            .trim()
            .parse()
            .unwrap();
        out.push((pid, sandbox));
    }
    out
}

#[tokio::test]
async fn shutdown_gives_each_executor_sigterm_and_its_own_grace() {
    let (cluster, dir) = start(34000).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("stop", true, 60.0),
    )
    .await;
    let started = launch_scripts(
        &mut s,
        dir.path(),
        &[
            ("polite", POLITE, Duration::from_secs(10)),
            ("stubborn", STUBBORN, Duration::from_secs(1)),
        ],
    )
    .await;
    let (polite_pid, polite) = &started[0];
    let (stubborn_pid, stubborn) = &started[1];

    let t0 = tokio::time::Instant::now();
    stop(cluster, dir.path()).await;
    let took = t0.elapsed();
    // The polite one was let finish its cleanup...
    assert!(polite.join("stopped").exists(), "killed before its grace");
    // ...the stubborn one was asked, then destroyed after its own grace
    // (1 s), not after the longest one (10 s).
    assert!(stubborn.join("got-term").exists(), "no SIGTERM first");
    assert!(!alive(*polite_pid) && !alive(*stubborn_pid));
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

/// A `mesos-local` process; SIGKILLed, with every process under its work
/// directory, if the test ends before it does.
struct Binary {
    child: tokio::process::Child,
    url: String,
    work_dir: tempfile::TempDir,
}

impl Binary {
    async fn start(port_range_start: u16) -> Binary {
        let work_dir = tempfile::tempdir().unwrap();
        let (child, url) = Self::spawn(port_range_start, work_dir.path()).await;
        Binary {
            child,
            url,
            work_dir,
        }
    }

    /// Starts `mesos-local` on `work_dir`; returns it with its master URL.
    async fn spawn(port_range_start: u16, work_dir: &Path) -> (tokio::process::Child, String) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(work_dir.join("mesos-local.log"))
            .unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mesos-local"))
            .args(["--port", "0", "--agents", "1", "--racks", "1"])
            .args(["--port_range_start", &port_range_start.to_string()])
            .args([
                "--ports_per_agent",
                "100",
                "--heartbeat_interval_secs",
                "0.2",
            ])
            .arg("--work_dir")
            .arg(work_dir)
            .arg("--executor_path")
            .arg(baton_executor_path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("mesos-local prints its address")
            .unwrap()
            .unwrap();
        let url = first
            .strip_prefix("mesos-local master at ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        (child, url)
    }

    /// Starts it again on the same work directory (once it has exited).
    async fn restart(&mut self, port_range_start: u16) {
        let (child, url) = Self::spawn(port_range_start, self.work_dir.path()).await;
        self.child = child;
        self.url = url;
    }

    fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id().unwrap()).unwrap();
        kill(Pid::from_raw(pid), signal).unwrap();
    }

    async fn exits(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("mesos-local exits")
            .unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for pid in processes_under(self.work_dir.path()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

#[tokio::test]
async fn the_binary_stops_its_executors_gracefully_on_sigterm() {
    let mut bin = Binary::start(34300).await;
    let mut s = Sched::subscribe(
        &bin.url,
        Encoding::Protobuf,
        framework_info("b", true, 60.0),
    )
    .await;
    let work_dir = bin.work_dir.path().to_path_buf();
    let started = launch_scripts(
        &mut s,
        &work_dir,
        &[("polite", POLITE, Duration::from_secs(10))],
    )
    .await;
    let (pid, sandbox) = &started[0];
    bin.signal(Signal::SIGTERM);
    assert!(bin.exits().await.success());
    assert!(sandbox.join("stopped").exists(), "killed before its grace");
    assert!(!alive(*pid));
    assert_eq!(processes_under(&work_dir), Vec::<i32>::new());
}

/// A `mesos-local` binary running one [`STUBBORN`] executor whose grace is
/// far longer than a test may take; with the subscription that launched it,
/// the executor's pid and its sandbox.
async fn binary_with_a_stubborn_executor(
    port_range_start: u16,
) -> (Binary, Sched, i32, std::path::PathBuf) {
    let bin = Binary::start(port_range_start).await;
    let mut s = Sched::subscribe(&bin.url, Encoding::Json, framework_info("b", true, 60.0)).await;
    let work_dir = bin.work_dir.path().to_path_buf();
    let (pid, sandbox) = launch_scripts(
        &mut s,
        &work_dir,
        &[("stubborn", STUBBORN, Duration::from_secs(600))],
    )
    .await
    .remove(0);
    (bin, s, pid, sandbox)
}

#[tokio::test]
async fn a_second_signal_destroys_every_container_at_once() {
    let (mut bin, _s, pid, sandbox) = binary_with_a_stubborn_executor(34600).await;
    let work_dir = bin.work_dir.path().to_path_buf();
    bin.signal(Signal::SIGTERM);
    file_content(&sandbox.join("got-term")).await;
    bin.signal(Signal::SIGINT);
    assert!(bin.exits().await.success());
    assert!(!alive(pid));
    assert_eq!(processes_under(&work_dir), Vec::<i32>::new());
}

#[tokio::test]
async fn a_start_on_the_same_work_dir_destroys_what_a_kill_9_left_running() {
    let (mut bin, _s, pid, _) = binary_with_a_stubborn_executor(34900).await;
    let work_dir = bin.work_dir.path().to_path_buf();
    bin.signal(Signal::SIGKILL);
    assert!(!bin.exits().await.success());
    // Orphaned: its agent is gone for good, it runs on.
    assert!(alive(pid), "the executor died with mesos-local");

    bin.restart(34900).await;
    eventually("the orphaned executor and its task destroyed", || {
        !alive(pid) && processes_under(&work_dir).is_empty()
    })
    .await;
    // The new cluster works and forgot the old container.
    let mut s = Sched::subscribe(&bin.url, Encoding::Json, framework_info("c", true, 60.0)).await;
    assert!(!s.offers_from(1).await.is_empty());
    assert_eq!(
        std::fs::read_dir(work_dir.join("meta").join("containers"))
            .unwrap()
            .count(),
        0
    );
}
