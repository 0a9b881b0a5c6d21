//! What the benchmarks share: memory readings from /proc (the workspace
//! forbids unsafe code, so no counting allocator).

/// A `/proc/self/status` field (`VmRSS:`, `VmHWM:`) in MiB.
pub fn proc_status_mib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A reading for humans.
pub fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.1} MiB"))
}
