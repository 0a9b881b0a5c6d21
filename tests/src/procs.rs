//! Processes by a marker string in their command line (from `/proc`).

/// Pids whose command line contains `marker`, excluding this process.
pub fn with_marker(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        // Zombies have an empty command line, so they never match.
        .collect()
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

/// Waits (polling, 10 s at most) until no process carries `marker`; panics
/// naming the survivors otherwise. Tests end with it to prove they leave
/// nothing behind.
pub async fn assert_all_gone(marker: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = with_marker(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "processes {left:?} carrying {marker} outlived the test"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
