//! Acceptance: the Python `marathon` client from PyPI
//! (thefactory/marathon-python) can create, list, get with tasks, scale,
//! kill tasks with `scale=true`, and delete apps against the real `baton`
//! binary in local mode. The client is driven by
//! `tests/python/marathon_client_check.py`; this test starts Baton, runs
//! the script, proves the deletion ended the app's processes while Baton
//! still runs, then stops Baton and proves nothing it started outlives it.
//!
//! The client is installed by `scripts/test.sh`; without it this test fails
//! and says so (it never skips).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use baton_e2e::binaries::binary;
use baton_e2e::ports::{PORTS_PER_AGENT, free_port, port_range_start};
use baton_e2e::procs;

/// Time for the embedded cluster to come up and Baton to subscribe.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Time the whole Python scenario may take (its own waits are 30 s each).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(240);

/// The `baton` binary in local mode as a child process. Its stdout and
/// stderr go to a log file that is printed when the test fails. Its data
/// directory's name carries the test's marker, so Baton, the agents'
/// executors (run from sandboxes under it) and the tasks are all found by
/// [`procs::with_marker`].
struct Baton {
    child: Option<std::process::Child>,
    url: String,
    log: PathBuf,
    marker: String,
    _dir: tempfile::TempDir,
}

impl Baton {
    async fn start(marker: &str) -> Baton {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{marker}-"))
            .tempdir()
            .expect("temporary directory");
        let log = dir.path().join("baton.log");
        let out = std::fs::File::create(&log).expect("create the log file");
        let err = out.try_clone().expect("clone the log file");
        let port = free_port();
        let child = std::process::Command::new(binary("baton"))
            .args(["--master", "local", "--local_master_port", "0"])
            .args(["--http_port", &port.to_string()])
            .args(["--hostname", "127.0.0.1", "--http_address", "127.0.0.1"])
            .arg("--data_dir")
            .arg(dir.path().join("data"))
            .args(["--local_agents", "3", "--local_racks", "2"])
            // Agent ports no other test of this run uses (ignored by a
            // baton without these flags).
            .env(
                "BATON_LOCAL_PORT_RANGE_START",
                port_range_start().to_string(),
            )
            .env("BATON_LOCAL_PORTS_PER_AGENT", PORTS_PER_AGENT.to_string())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,baton=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start baton");
        let mut baton = Baton {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            log,
            marker: marker.to_string(),
            _dir: dir,
        };
        baton.wait_ready().await;
        baton
    }

    /// Polls until `/ping` answers 200 and `/metrics` says the Mesos
    /// subscription is live; fails early if the process exits.
    async fn wait_ready(&mut self) {
        let client = client();
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
            let ping = client.get(format!("{}/ping", self.url)).send().await;
            if ping.is_ok_and(|r| r.status() == 200) {
                let metrics = client.get(format!("{}/metrics", self.url)).send().await;
                if let Ok(r) = metrics {
                    let text = r.text().await.unwrap_or_default();
                    if text.contains("marathon_mesos_connected 1") {
                        return;
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "baton did not answer /ping and subscribe within {START_DEADLINE:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn pid(&self) -> Option<nix::unistd::Pid> {
        self.child
            .as_ref()
            .map(|c| nix::unistd::Pid::from_raw(c.id() as i32))
    }

    /// The last lines Baton logged.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(80);
        format!(
            "--- last baton log lines ({}) ---\n{}",
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    /// SIGTERM (local mode then shuts its cluster down, killing the
    /// tasks), and waits; asserts Baton exited by itself, successfully.
    async fn stop(mut self) {
        let pid = self.pid().expect("baton is running");
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM baton");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            let child = self.child.as_mut().expect("baton child");
            if let Some(status) = child.try_wait().expect("wait for baton") {
                break Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let tail = self.log_tail();
        let Some(status) = status else {
            // Drop sends SIGKILL and cleans up.
            panic!("baton did not exit within 30 s of SIGTERM\n{tail}");
        };
        self.child = None;
        assert!(
            status.success(),
            "baton exited with {status} after SIGTERM\n{tail}"
        );
    }
}

impl Drop for Baton {
    /// On a failed test: stop Baton (SIGTERM, then SIGKILL), kill whatever
    /// it left behind, and print its log.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            for pid in procs::with_marker(&self.marker) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// Pids whose environment holds `marker` (the app's tasks carry it in
/// `BATON_E2E_MARKER`, children included, whatever their command line).
fn with_env_marker(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| String::from_utf8_lossy(&env).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// Every process carrying `marker` in its command line or environment.
fn carrying(marker: &str) -> Vec<i32> {
    let mut pids = procs::with_marker(marker);
    pids.extend(with_env_marker(marker));
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Polls (with a deadline) until no process carries `marker`.
async fn wait_all_gone(marker: &str, timeout: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = carrying(marker);
        if left.is_empty() {
            return;
        }
        let described: Vec<String> = left
            .iter()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                    .unwrap_or_default();
                format!("{pid}: {cmd}")
            })
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: processes carrying {marker} still run after {timeout:?}: {described:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails (never skips) when `python3` cannot import the client.
fn require_python_client() {
    let fix = "install it with scripts/test.sh (it runs `python3 -m pip install 'marathon>=0.13'`)";
    let output = std::process::Command::new("python3")
        .args(["-c", "import marathon"])
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot be run ({e}); {fix}"));
    assert!(
        output.status.success(),
        "the Python `marathon` client is not importable by python3: {}\n{fix}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

fn script() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/marathon_client_check.py");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_marathon_client_creates_lists_scales_kills_and_deletes_apps() {
    require_python_client();
    let marker = procs::marker("pyclient");
    let task_marker = format!("{marker}-task");
    let mut baton = Baton::start(&marker).await;

    let run = tokio::process::Command::new("python3")
        .arg(script())
        .arg(&baton.url)
        .arg(&task_marker)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_DEADLINE, run)
        .await
        .unwrap_or_else(|_| panic!("the Python client scenario took over {SCRIPT_DEADLINE:?}"))
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("--- marathon_client_check.py stdout ---\n{stdout}");
    println!("--- marathon_client_check.py stderr ---\n{stderr}");
    assert!(
        output.status.success(),
        "the Python client scenario failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("[marathon_client_check] OK"),
        "the script did not reach its end:\n{stdout}"
    );

    // The delete, not the shutdown, ended the app's processes.
    wait_all_gone(
        &task_marker,
        Duration::from_secs(30),
        "after delete_app, with baton still running",
    )
    .await;
    assert!(
        baton.alive(),
        "baton died during the scenario\n{}",
        baton.log_tail()
    );
    let ping = client()
        .get(format!("{}/ping", baton.url))
        .send()
        .await
        .expect("ping baton");
    assert_eq!(ping.status(), 200);

    baton.stop().await;
    procs::assert_all_gone(&marker).await;
    wait_all_gone(&marker, Duration::from_secs(10), "after baton stopped").await;
}
