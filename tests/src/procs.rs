//! Processes by a marker string in their command line or environment (from
//! `/proc`), and stopping a child process from a `Drop`.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Stops `child` where nothing can be awaited (a `Drop`): SIGTERM, up to
/// `grace` for it to exit (so that it can stop what it started), then
/// SIGKILL and up to 5 s more. Returns at once if it has exited already.
pub fn stop_child(child: &mut tokio::process::Child, grace: Duration) {
    let exits_within = |child: &mut tokio::process::Child, limit: Duration| {
        let deadline = std::time::Instant::now() + limit;
        while matches!(child.try_wait(), Ok(None)) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    };
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    if !exits_within(child, grace) {
        let _ = child.start_kill();
        exits_within(child, Duration::from_secs(5));
    }
}

/// Pids whose command line contains `marker`, excluding this process.
pub fn with_marker(marker: &str) -> Vec<i32> {
    // Zombies have an empty command line, so they never match.
    matching("cmdline", marker)
}

/// Pids whose environment contains `marker`, excluding this process (a
/// task's children inherit it, whatever their command line).
pub fn with_env_marker(marker: &str) -> Vec<i32> {
    matching("environ", marker)
}

/// Every process carrying `marker` in its command line or environment.
pub fn carrying(marker: &str) -> Vec<i32> {
    let mut pids = with_marker(marker);
    pids.extend(with_env_marker(marker));
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Pids whose `/proc/<pid>/<file>` contains `marker`, excluding this
/// process.
fn matching(file: &str, marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/{file}"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// A process's command line, its arguments separated by spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// A unique marker to embed in a test task's command.
pub fn marker(test: &str) -> String {
    format!("baton-e2e-{test}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// Polls `find` every 20 ms until it finds nothing; the survivors if it
/// still finds some after `timeout`.
async fn none_left(find: impl Fn() -> Vec<i32>, timeout: Duration) -> Result<(), Vec<i32>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = find();
        if left.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(left);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (polling, 10 s at most) until no process carries `marker` in its
/// command line; panics naming the survivors otherwise. Tests end with it
/// to prove they leave nothing behind.
pub async fn assert_all_gone(marker: &str) {
    if let Err(left) = none_left(|| with_marker(marker), Duration::from_secs(10)).await {
        panic!("processes {left:?} carrying {marker} outlived the test");
    }
}

/// Waits (polling, `timeout` at most) until no process carries `marker` in
/// its command line or environment; panics otherwise, saying `what` and
/// listing the survivors' command lines.
pub async fn assert_none_carrying(marker: &str, timeout: Duration, what: &str) {
    if let Err(left) = none_left(|| carrying(marker), timeout).await {
        let described: Vec<String> = left
            .iter()
            .map(|pid| format!("{pid}: {}", cmdline(*pid)))
            .collect();
        panic!("{what}: processes carrying {marker} still run after {timeout:?}: {described:#?}");
    }
}

/// The last `lines` lines of a child process's log file, headed by what it
/// is and where the file is (for failure messages).
pub fn log_tail(what: &str, log: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    format!(
        "--- last {what} log lines ({}) ---\n{}",
        log.display(),
        all[from..].join("\n")
    )
}
