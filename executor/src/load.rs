//! Load reports for load-aware balancing.
//!
//! Every `BATON_LOAD_REPORT_INTERVAL` the executor measures what each of
//! its running tasks uses — CPU (cores, over the interval) and resident
//! memory, summed over the task's whole process group, so children count —
//! and the host's one-minute load average, and sends that to the framework
//! in an executor MESSAGE call. MESSAGE is best effort (no acknowledgement,
//! no retry beyond the caller's): a lost report is superseded by the next.
//!
//! The parsing of `/proc` text and the report's JSON are pure; only
//! [`sample_groups`] and [`host_load`] read `/proc`.

use std::collections::HashMap;
use std::fs;

use serde_json::{Value, json};
use tokio::time::Instant;

/// The `kind` of a report, so the framework can tell it from other
/// messages (and from later formats).
pub const REPORT_KIND: &str = "baton.load.v1";

/// `USER_HZ`, the unit of CPU times in `/proc/<pid>/stat`: 100 on every
/// Linux ABI (the kernel's own HZ may differ; the exported unit does not).
const TICKS_PER_SEC: f64 = 100.0;

/// A task the executor runs, as measuring needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningTask {
    /// The Mesos task id.
    pub task_id: String,
    /// Its process group.
    pub pgid: i32,
    /// CPUs it was given (its `cpus` resource).
    pub cpus: f64,
    /// Memory it was given, MB.
    pub mem_mb: f64,
}

/// What one process group uses right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupSample {
    /// User + system CPU time of its live processes, in ticks.
    pub cpu_ticks: u64,
    /// Their resident memory, bytes.
    pub rss_bytes: u64,
}

/// The host's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostLoad {
    /// One-minute load average.
    pub load1: f64,
    /// CPUs online.
    pub cpus: usize,
}

/// From `/proc/<pid>/stat`: (process group, user + system ticks), for a
/// process that is not a zombie. `comm` may hold spaces and parentheses,
/// so fields are counted after the last `)`.
pub fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After comm: state(0) ppid(1) pgrp(2) … utime(11) stime(12).
    if matches!(*fields.first()?, "Z" | "X") {
        return None;
    }
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

/// `VmRSS` from `/proc/<pid>/status`, in bytes (kernel threads have none).
pub fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The one-minute load average from `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// One pass over `/proc`: what each group in `pgids` uses.
pub fn sample_groups(pgids: &[i32]) -> HashMap<i32, GroupSample> {
    let mut samples: HashMap<i32, GroupSample> =
        pgids.iter().map(|p| (*p, GroupSample::default())).collect();
    let Ok(entries) = fs::read_dir("/proc") else {
        return samples;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some((pgrp, ticks)) = fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        else {
            continue;
        };
        let Some(sample) = samples.get_mut(&pgrp) else {
            continue;
        };
        sample.cpu_ticks += ticks;
        sample.rss_bytes += fs::read_to_string(dir.join("status"))
            .ok()
            .and_then(|s| parse_rss(&s))
            .unwrap_or(0);
    }
    samples
}

/// The host's load, from `/proc/loadavg` and the CPUs online.
pub fn host_load() -> Option<HostLoad> {
    let load1 = parse_loadavg(&fs::read_to_string("/proc/loadavg").ok()?)?;
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    Some(HostLoad { load1, cpus })
}

/// CPU use between two samples: cores busy on average. A group's total can
/// shrink when a process exits (its ticks leave with it): that reads as 0.
pub fn cores_used(before: (Instant, u64), after: (Instant, u64)) -> Option<f64> {
    let secs = after.0.checked_duration_since(before.0)?.as_secs_f64();
    (secs > 0.0).then(|| after.1.saturating_sub(before.1) as f64 / TICKS_PER_SEC / secs)
}

/// Remembers each task's previous CPU sample, to turn totals into rates.
#[derive(Debug, Default)]
pub struct Meter {
    previous: HashMap<String, (Instant, u64)>,
}

impl Meter {
    /// The report for `tasks` given their groups' `samples` taken at `now`,
    /// or `None` when there is nothing to report. A task's first
    /// measurement has no CPU rate yet (`cpusUsed` is omitted).
    pub fn report(
        &mut self,
        tasks: &[RunningTask],
        samples: &HashMap<i32, GroupSample>,
        host: Option<HostLoad>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        self.previous
            .retain(|id, _| tasks.iter().any(|t| &t.task_id == id));
        if tasks.is_empty() {
            return None;
        }
        let entries: Vec<Value> = tasks
            .iter()
            .map(|task| {
                let sample = samples.get(&task.pgid).copied().unwrap_or_default();
                let current = (now, sample.cpu_ticks);
                let used = self
                    .previous
                    .insert(task.task_id.clone(), current)
                    .and_then(|before| cores_used(before, current));
                let mut entry = json!({
                    "taskId": task.task_id,
                    "cpusAllocated": task.cpus,
                    "memAllocatedBytes": (task.mem_mb * 1024.0 * 1024.0) as u64,
                    "memRssBytes": sample.rss_bytes,
                });
                if let Some(used) = used {
                    entry["cpusUsed"] = json!((used * 1000.0).round() / 1000.0);
                }
                entry
            })
            .collect();
        let mut report = json!({ "kind": REPORT_KIND, "tasks": entries });
        if let Some(host) = host {
            report["host"] = json!({ "load1": host.load1, "cpus": host.cpus });
        }
        serde_json::to_vec(&report).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stat_lines_with_odd_command_names() {
        let stat = "4242 (my (odd) srv) S 1 4240 4240 0 -1 4194560 500 0 0 0 \
                    150 25 0 0 20 0 3 0 12345 100000000 2000 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((4240, 175)));
        let zombie = "77 (gone) Z 1 77 77 0 -1 0 0 0 0 0 9 9 0 0 20 0 1 0 1 0 0 0";
        assert_eq!(parse_stat(zombie), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn rss_and_loadavg() {
        let status = "Name:\tpython3\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\nThreads:\t1\n";
        assert_eq!(parse_rss(status), Some(2 * 1024 * 1024));
        assert_eq!(parse_rss("Name:\tkthreadd\n"), None);
        assert_eq!(parse_loadavg("1.50 0.80 0.40 2/345 6789\n"), Some(1.5));
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn cpu_rate_from_two_samples() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        // 300 ticks in 2 s: 1.5 cores.
        assert_eq!(cores_used((t0, 1000), (t1, 1300)), Some(1.5));
        // A process left the group: not negative.
        assert_eq!(cores_used((t0, 1000), (t1, 900)), Some(0.0));
        assert_eq!(cores_used((t1, 0), (t0, 10)), None);
    }

    #[test]
    fn reports_rate_from_the_second_sample_on_and_forget_ended_tasks() {
        let t0 = Instant::now();
        let task = RunningTask {
            task_id: "web.1".into(),
            pgid: 10,
            cpus: 0.5,
            mem_mb: 64.0,
        };
        let mut meter = Meter::default();
        let samples = |ticks| {
            HashMap::from([(
                10,
                GroupSample {
                    cpu_ticks: ticks,
                    rss_bytes: 4096,
                },
            )])
        };
        let host = Some(HostLoad {
            load1: 0.5,
            cpus: 4,
        });
        let first: Value = serde_json::from_slice(
            &meter
                .report(std::slice::from_ref(&task), &samples(100), host, t0)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first["kind"], REPORT_KIND);
        assert!(first["tasks"][0].get("cpusUsed").is_none(), "{first}");
        assert_eq!(first["tasks"][0]["memAllocatedBytes"], 64 * 1024 * 1024);
        assert_eq!(first["host"]["cpus"], 4);

        let t1 = t0 + Duration::from_secs(1);
        let second: Value =
            serde_json::from_slice(&meter.report(&[task], &samples(150), None, t1).unwrap())
                .unwrap();
        assert_eq!(second["tasks"][0]["cpusUsed"], 0.5);
        assert_eq!(second["tasks"][0]["memRssBytes"], 4096);
        assert!(second.get("host").is_none());

        assert!(meter.report(&[], &HashMap::new(), host, t1).is_none());
        assert!(meter.previous.is_empty());
    }

    #[test]
    fn samples_this_process_group() {
        let pgid = nix::unistd::getpgrp().as_raw();
        let samples = sample_groups(&[pgid, -5]);
        assert!(samples[&pgid].rss_bytes > 0, "{samples:?}");
        assert_eq!(samples[&-5], GroupSample::default());
        assert!(host_load().is_some_and(|h| h.cpus >= 1));
    }
}
