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

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::procs;

/// Time the whole Python scenario may take (its own waits are 30 s each).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(240);

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
    // The data directory's name carries the marker, so Baton, the agents'
    // executors (run from sandboxes under it) and the tasks are all found
    // by `procs`.
    let dir = tempfile::Builder::new()
        .prefix(&format!("{marker}-"))
        .tempdir()
        .expect("temporary directory");
    let mut baton = BatonProcess::start(Master::Local, &dir.path().join("data"), &[]).await;

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
    procs::assert_none_carrying(
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
    let ping = baton.try_get("/ping").await.expect("ping baton");
    assert_eq!(ping.status, 200);

    baton.stop().await;
    procs::assert_all_gone(&marker).await;
    procs::assert_none_carrying(&marker, Duration::from_secs(10), "after baton stopped").await;
}
