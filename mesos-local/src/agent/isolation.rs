//! Resource isolation of containers, as Mesos's isolators do it.
//!
//! `cgroups/cpu,cgroups/mem`: every container (an executor and its tasks)
//! gets a cgroup of its own under `<hierarchy>/<controller>/<root>/<container
//! id>` (cgroup v1, as on many older hosts) or `<hierarchy>/<root>/<container
//! id>` (cgroup v2), detected at start:
//!
//! - memory: the hard limit is the container's `mem` (the executor's and its
//!   tasks' together), at least Mesos's 32 MB minimum. Going over it gets a
//!   process OOM-killed by the kernel; the agent then reports the container's
//!   tasks `TASK_FAILED` with `REASON_CONTAINER_LIMITATION_MEMORY` and
//!   destroys the container, as Mesos's `cgroups/mem` isolator does.
//! - cpu: `cpu.shares` (v1) or `cpu.weight` (v2) of 1024 per CPU, and, with
//!   `cgroups_enable_cfs` (Mesos's `--cgroups_enable_cfs`), a hard CFS
//!   quota of `cpus` per 100 ms period.
//!
//! Processes join the cgroups before the executor's program starts: the
//! executor is started through `/bin/sh`, which writes its own pid into each
//! cgroup's `cgroup.procs` and then execs it, so no child escapes.
//!
//! `posix/cpu,posix/mem`, or when cgroups cannot be written (no permission,
//! no controllers): a watchdog. Usage is read from `/proc` for the
//! container's session; a container whose processes' resident memory adds
//! up to more than its limit is killed with the same reason. CPU is only
//! measured, not capped (as Mesos's `posix/cpu`).
//!
//! Usage for `/monitor/statistics` comes from the cgroup (`cpuacct.stat`,
//! `cpu.stat`, `memory.stat`) or from `/proc`.

use std::path::{Path, PathBuf};

use super::containers;
use crate::config::{Isolation, IsolationConfig};

/// Mesos's `cgroups/mem` minimum: no container is limited below 32 MB.
pub const MIN_MEMORY_BYTES: u64 = 32 << 20;
/// Mesos's minimum CPU for a CFS quota.
pub const MIN_CPUS: f64 = 0.01;
/// `cpu.shares` per CPU (Mesos's `CPU_SHARES_PER_CPU`).
const CPU_SHARES_PER_CPU: f64 = 1024.0;
/// The smallest `cpu.shares` the kernel takes.
const MIN_CPU_SHARES: u64 = 2;
/// The CFS period (Mesos's `CPU_CFS_PERIOD`).
const CFS_PERIOD_US: u64 = 100_000;
/// The kernel's clock ticks per second for `cpuacct.stat` (USER_HZ).
const USER_HZ: f64 = 100.0;

/// Why isolation could not be set up or parsed.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// A cgroup file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: std::io::Error,
    },
}

/// A container's limits: what its executor and tasks hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// CPUs.
    pub cpus: f64,
    /// Memory, MB.
    pub mem_mb: f64,
}

impl Limits {
    /// The memory limit as enforced: at least [`MIN_MEMORY_BYTES`].
    pub fn mem_bytes(&self) -> u64 {
        ((self.mem_mb.max(0.0) * 1024.0 * 1024.0) as u64).max(MIN_MEMORY_BYTES)
    }

    /// `cpu.shares` for these CPUs.
    fn cpu_shares(&self) -> u64 {
        ((self.cpus.max(0.0) * CPU_SHARES_PER_CPU) as u64).max(MIN_CPU_SHARES)
    }

    /// The CFS quota per [`CFS_PERIOD_US`].
    fn cfs_quota_us(&self) -> u64 {
        (self.cpus.max(MIN_CPUS) * CFS_PERIOD_US as f64) as u64
    }
}

/// What a container used, as `/monitor/statistics` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// CPU time in user mode, seconds.
    pub cpus_user_time_secs: f64,
    /// CPU time in the kernel, seconds.
    pub cpus_system_time_secs: f64,
    /// CFS periods, periods throttled, time throttled (seconds), with a
    /// quota.
    pub throttling: Option<(u64, u64, f64)>,
    /// Resident memory, bytes.
    pub mem_rss_bytes: u64,
    /// All memory charged (with page cache), bytes.
    pub mem_total_bytes: u64,
    /// Page cache, bytes.
    pub mem_cache_bytes: u64,
    /// Page cache of mapped files, bytes.
    pub mem_mapped_file_bytes: u64,
    /// Swapped out, bytes.
    pub mem_swap_bytes: u64,
    /// Unevictable, bytes.
    pub mem_unevictable_bytes: u64,
}

/// Where the cgroup controllers are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backend {
    /// cgroup v1: one hierarchy per controller (cpuacct possibly absent).
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
        cpuacct: Option<PathBuf>,
    },
    /// cgroup v2: one hierarchy; `root` has memory and cpu enabled for its
    /// children.
    V2 { root: PathBuf },
    /// No cgroups: the `/proc` watchdog.
    Watchdog,
}

/// The cluster's isolator: detected once, shared by its agents.
#[derive(Debug)]
pub struct Isolator {
    backend: Backend,
    enable_cfs: bool,
    /// Why cgroups were not used although asked for.
    pub fallback: Option<String>,
    /// Cgroups of destroyed containers that could not be removed yet (a
    /// process that just died may hold one a moment longer); tried again
    /// at every later destroy, and when the isolator goes.
    leftovers: std::sync::Mutex<Vec<PathBuf>>,
}

/// Empty cgroups under the root older than this are a crashed cluster's
/// and removed at start; younger ones may be another running cluster's
/// container that is about to be joined.
const STALE_CGROUP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

impl Isolator {
    /// Detects what `config` can have on this host: cgroups where they can
    /// be written (v1 first, as the controllers are found), else the
    /// watchdog, with the reason in [`Isolator::fallback`].
    pub fn new(config: &IsolationConfig) -> Isolator {
        let watchdog = |fallback| Isolator {
            backend: Backend::Watchdog,
            enable_cfs: false,
            fallback,
            leftovers: std::sync::Mutex::default(),
        };
        if config.isolation == Isolation::Posix {
            return watchdog(None);
        }
        match detect(&config.hierarchy, &config.root) {
            Ok(backend) => {
                let isolator = Isolator {
                    backend,
                    enable_cfs: config.enable_cfs,
                    fallback: None,
                    leftovers: std::sync::Mutex::default(),
                };
                isolator.remove_stale();
                isolator
            }
            Err(why) => watchdog(Some(why)),
        }
    }

    /// The isolation in effect, Mesos-style.
    pub fn active(&self) -> Isolation {
        match self.backend {
            Backend::Watchdog => Isolation::Posix,
            _ => Isolation::Cgroups,
        }
    }

    /// For humans: the isolation, the cgroup version, CFS.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::V1 { .. } => format!(
                "cgroups/cpu,cgroups/mem (cgroup v1, cfs={})",
                self.enable_cfs
            ),
            Backend::V2 { .. } => format!(
                "cgroups/cpu,cgroups/mem (cgroup v2, cfs={})",
                self.enable_cfs
            ),
            Backend::Watchdog => {
                "posix/cpu,posix/mem (watchdog: memory over the limit is killed, CPU only measured)"
                    .into()
            }
        }
    }

    fn dirs(&self, container_id: &str) -> Vec<PathBuf> {
        match &self.backend {
            Backend::V1 {
                memory,
                cpu,
                cpuacct,
            } => {
                let mut dirs = vec![memory.join(container_id), cpu.join(container_id)];
                dirs.extend(cpuacct.as_ref().map(|c| c.join(container_id)));
                dirs
            }
            Backend::V2 { root } => vec![root.join(container_id)],
            Backend::Watchdog => Vec::new(),
        }
    }

    /// Creates the container's cgroups with `limits`; gives the
    /// `cgroup.procs` files its first process must join (none for the
    /// watchdog).
    pub fn prepare(
        &self,
        container_id: &str,
        limits: Limits,
    ) -> Result<Vec<PathBuf>, IsolationError> {
        let dirs = self.dirs(container_id);
        for dir in &dirs {
            std::fs::create_dir_all(dir).map_err(|source| IsolationError::Write {
                path: dir.clone(),
                source,
            })?;
        }
        self.update(container_id, limits)?;
        Ok(dirs.iter().map(|d| d.join("cgroup.procs")).collect())
    }

    /// Sets the container's limits (at launch, and as tasks join it).
    pub fn update(&self, container_id: &str, limits: Limits) -> Result<(), IsolationError> {
        match &self.backend {
            Backend::V1 { memory, cpu, .. } => {
                let mem = memory.join(container_id);
                let bytes = limits.mem_bytes().to_string();
                // The soft limit too, as Mesos sets both; swap is not
                // limited (no `--cgroups_limit_swap`).
                write(&mem.join("memory.soft_limit_in_bytes"), &bytes)?;
                write_limit_v1(&mem.join("memory.limit_in_bytes"), &bytes)?;
                let cpu = cpu.join(container_id);
                write(&cpu.join("cpu.shares"), &limits.cpu_shares().to_string())?;
                if self.enable_cfs {
                    write(&cpu.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
                    write(
                        &cpu.join("cpu.cfs_quota_us"),
                        &limits.cfs_quota_us().to_string(),
                    )?;
                }
            }
            Backend::V2 { root } => {
                let dir = root.join(container_id);
                write(&dir.join("memory.max"), &limits.mem_bytes().to_string())?;
                // cpu.weight is 1..10000 with 100 the default (= 1024 shares).
                let weight = (limits.cpu_shares() * 100 / 1024).clamp(1, 10_000);
                write(&dir.join("cpu.weight"), &weight.to_string())?;
                let max = if self.enable_cfs {
                    format!("{} {CFS_PERIOD_US}", limits.cfs_quota_us())
                } else {
                    format!("max {CFS_PERIOD_US}")
                };
                write(&dir.join("cpu.max"), &max)?;
            }
            Backend::Watchdog => {}
        }
        Ok(())
    }

    /// What the container has used so far; `session` is its executor's
    /// session (for the watchdog, and for what cgroups do not count).
    pub fn usage(&self, container_id: &str, session: u32) -> Usage {
        match &self.backend {
            Backend::V1 {
                memory,
                cpu,
                cpuacct,
            } => {
                let mut usage = Usage::default();
                let stat = read_keyed(&memory.join(container_id).join("memory.stat"));
                // The hierarchy's totals where the kernel keeps them.
                let total = |k: &str| {
                    stat.get(&format!("total_{k}"))
                        .or(stat.get(k))
                        .copied()
                        .unwrap_or(0)
                };
                usage.mem_rss_bytes = total("rss");
                usage.mem_cache_bytes = total("cache");
                usage.mem_mapped_file_bytes = total("mapped_file");
                usage.mem_swap_bytes = total("swap");
                usage.mem_unevictable_bytes = total("unevictable");
                usage.mem_total_bytes =
                    read_number(&memory.join(container_id).join("memory.usage_in_bytes"))
                        .unwrap_or(0);
                match cpuacct {
                    Some(acct) => {
                        let ticks = read_keyed(&acct.join(container_id).join("cpuacct.stat"));
                        usage.cpus_user_time_secs =
                            ticks.get("user").copied().unwrap_or(0) as f64 / USER_HZ;
                        usage.cpus_system_time_secs =
                            ticks.get("system").copied().unwrap_or(0) as f64 / USER_HZ;
                    }
                    None => {
                        let (user, system) = session_cpu(session);
                        usage.cpus_user_time_secs = user;
                        usage.cpus_system_time_secs = system;
                    }
                }
                if self.enable_cfs {
                    let s = read_keyed(&cpu.join(container_id).join("cpu.stat"));
                    usage.throttling = Some((
                        s.get("nr_periods").copied().unwrap_or(0),
                        s.get("nr_throttled").copied().unwrap_or(0),
                        s.get("throttled_time").copied().unwrap_or(0) as f64 / 1e9,
                    ));
                }
                usage
            }
            Backend::V2 { root } => {
                let dir = root.join(container_id);
                let cpu = read_keyed(&dir.join("cpu.stat"));
                let mem = read_keyed(&dir.join("memory.stat"));
                Usage {
                    cpus_user_time_secs: cpu.get("user_usec").copied().unwrap_or(0) as f64 / 1e6,
                    cpus_system_time_secs: cpu.get("system_usec").copied().unwrap_or(0) as f64
                        / 1e6,
                    throttling: self.enable_cfs.then(|| {
                        (
                            cpu.get("nr_periods").copied().unwrap_or(0),
                            cpu.get("nr_throttled").copied().unwrap_or(0),
                            cpu.get("throttled_usec").copied().unwrap_or(0) as f64 / 1e6,
                        )
                    }),
                    mem_rss_bytes: mem.get("anon").copied().unwrap_or(0),
                    mem_cache_bytes: mem.get("file").copied().unwrap_or(0),
                    mem_total_bytes: read_number(&dir.join("memory.current")).unwrap_or(0),
                    mem_mapped_file_bytes: mem.get("file_mapped").copied().unwrap_or(0),
                    mem_swap_bytes: read_number(&dir.join("memory.swap.current")).unwrap_or(0),
                    mem_unevictable_bytes: mem.get("unevictable").copied().unwrap_or(0),
                }
            }
            Backend::Watchdog => {
                let (user, system) = session_cpu(session);
                let rss = session_rss(session);
                Usage {
                    cpus_user_time_secs: user,
                    cpus_system_time_secs: system,
                    mem_rss_bytes: rss,
                    mem_total_bytes: rss,
                    ..Usage::default()
                }
            }
        }
    }

    /// Whether the container went over its memory limit: the kernel
    /// OOM-killed one of its processes (cgroups), or its processes' resident
    /// memory is over the limit (the watchdog, whose caller then kills it).
    /// The message is Mesos's.
    pub fn memory_limitation(
        &self,
        container_id: &str,
        session: u32,
        limits: Limits,
    ) -> Option<String> {
        let limit = limits.mem_bytes();
        let (over, max_used, stat) = match &self.backend {
            Backend::V1 { memory, .. } => {
                let dir = memory.join(container_id);
                let oom = read_keyed(&dir.join("memory.oom_control"));
                let killed = oom.get("oom_kill").copied().unwrap_or(0) > 0
                    || oom.get("under_oom").copied().unwrap_or(0) > 0;
                let max = read_number(&dir.join("memory.max_usage_in_bytes")).unwrap_or(limit);
                (killed, max, Some(dir.join("memory.stat")))
            }
            Backend::V2 { root } => {
                let dir = root.join(container_id);
                let events = read_keyed(&dir.join("memory.events"));
                let killed = events.get("oom_kill").copied().unwrap_or(0) > 0;
                let max = read_number(&dir.join("memory.peak")).unwrap_or(limit);
                (killed, max, Some(dir.join("memory.stat")))
            }
            Backend::Watchdog => {
                let rss = session_rss(session);
                (rss > limit, rss, None)
            }
        };
        over.then(|| {
            // Worded as Mesos's memory isolator words it, with the cgroup's
            // statistics after it.
            let mut message = format!(
                "Memory limit exceeded: Requested: {}MB Maximum Used: {}MB",
                limit >> 20,
                max_used.max(limit) >> 20
            );
            if let Some(stat) = stat.and_then(|p| std::fs::read_to_string(p).ok()) {
                message.push_str("\n\nMEMORY STATISTICS: \n");
                message.push_str(&stat);
                message.push('\n');
            }
            message
        })
    }

    /// Whether the kernel OOM-killed a process of the container (cgroups
    /// only: a couple of small files read, no `/proc` scan, so it may run
    /// under the agent's lock); the message is Mesos's.
    pub fn oom_killed(&self, container_id: &str, limits: Limits) -> Option<String> {
        match self.backend {
            Backend::Watchdog => None,
            // The session is only read by the watchdog.
            _ => self.memory_limitation(container_id, 0, limits),
        }
    }

    /// Kills whatever is left in the container's cgroups and removes them
    /// (after its session was killed; best effort, the kernel may take a
    /// moment to empty a cgroup).
    pub fn destroy(&self, container_id: &str) {
        let mut left = Vec::new();
        for dir in self.dirs(container_id) {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                containers::kill_process(pid);
            }
            if !remove_cgroup(&dir) {
                left.push(dir);
            }
        }
        let mut leftovers = self.leftovers.lock().unwrap_or_else(|e| e.into_inner());
        leftovers.retain(|dir| !remove_once(dir));
        leftovers.extend(left);
    }

    /// Removes the empty container cgroups under the root that a cluster
    /// killed long ago (a `kill -9`) left behind.
    fn remove_stale(&self) {
        let roots: Vec<PathBuf> = match &self.backend {
            Backend::V1 {
                memory,
                cpu,
                cpuacct,
            } => [Some(memory), Some(cpu), cpuacct.as_ref()]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            Backend::V2 { root } => vec![root.clone()],
            Backend::Watchdog => Vec::new(),
        };
        for root in roots {
            let Ok(entries) = std::fs::read_dir(&root) else {
                continue;
            };
            for dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
                let old = std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_CGROUP_AGE);
                // rmdir refuses a cgroup with processes: only empty ones go.
                if old {
                    remove_once(&dir);
                }
            }
        }
    }
}

/// Finds writable controllers under `hierarchy` and makes `root` in them.
fn detect(hierarchy: &Path, root: &str) -> Result<Backend, String> {
    let v1_memory = hierarchy.join("memory");
    let v1_cpu = hierarchy.join("cpu");
    if v1_memory.join("memory.limit_in_bytes").exists() && v1_cpu.join("cpu.shares").exists() {
        let memory = v1_memory.join(root);
        let cpu = v1_cpu.join(root);
        let cpuacct = Some(hierarchy.join("cpuacct"))
            .filter(|a| a.join("cpuacct.stat").exists())
            .map(|a| a.join(root));
        for dir in [Some(&memory), Some(&cpu), cpuacct.as_ref()]
            .into_iter()
            .flatten()
        {
            probe(dir)?;
        }
        return Ok(Backend::V1 {
            memory,
            cpu,
            cpuacct,
        });
    }
    let controllers =
        std::fs::read_to_string(hierarchy.join("cgroup.controllers")).map_err(|e| {
            format!(
                "no cgroup v1 memory and cpu controllers, and no cgroup v2 at {}: {e}",
                hierarchy.display()
            )
        })?;
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    if !(has("memory") && has("cpu")) {
        return Err(format!(
            "cgroup v2 at {} has no memory and cpu controllers ({})",
            hierarchy.display(),
            controllers.trim()
        ));
    }
    let dir = hierarchy.join(root);
    enable_controllers(&hierarchy.join("cgroup.subtree_control"))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    enable_controllers(&dir.join("cgroup.subtree_control"))?;
    probe(&dir)?;
    Ok(Backend::V2 { root: dir })
}

fn enable_controllers(subtree_control: &Path) -> Result<(), String> {
    let enabled = std::fs::read_to_string(subtree_control).unwrap_or_default();
    if ["memory", "cpu"]
        .iter()
        .all(|c| enabled.split_whitespace().any(|x| x == *c))
    {
        return Ok(());
    }
    std::fs::write(subtree_control, "+memory +cpu").map_err(|e| {
        format!(
            "cannot enable memory and cpu in {}: {e}",
            subtree_control.display()
        )
    })
}

/// Makes `dir` and checks a child cgroup can be made in it.
fn probe(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Unique per call: clusters in one process detect concurrently.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let child = dir.join(format!("probe-{}-{n}", std::process::id()));
    std::fs::create_dir(&child)
        .map_err(|e| format!("cannot create a cgroup in {}: {e}", dir.display()))?;
    let _ = std::fs::remove_dir(&child);
    Ok(())
}

/// Removes a cgroup, waiting up to ~200 ms for its last processes to be
/// gone; whether it is gone.
fn remove_cgroup(dir: &Path) -> bool {
    for _ in 0..20 {
        if remove_once(dir) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// One `rmdir` of a cgroup; whether it is gone (or was).
fn remove_once(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

impl Drop for Isolator {
    /// The cluster is gone: its last cgroups, once more.
    fn drop(&mut self) {
        let leftovers = std::mem::take(self.leftovers.get_mut().unwrap_or_else(|e| e.into_inner()));
        for dir in leftovers {
            remove_cgroup(&dir);
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), IsolationError> {
    std::fs::write(path, value).map_err(|source| IsolationError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// `memory.limit_in_bytes` refuses a limit below the current usage
/// (EBUSY): lowering it on a running container is retried once the kernel
/// reclaimed, else left as it was.
fn write_limit_v1(path: &Path, bytes: &str) -> Result<(), IsolationError> {
    match write(path, bytes) {
        Err(IsolationError::Write { source, .. }) if source.raw_os_error() == Some(16) => Ok(()),
        other => other,
    }
}

/// A file holding one number.
fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `key value` file (`memory.stat`, `cpu.stat`, `memory.oom_control`).
fn read_keyed(path: &Path) -> std::collections::BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// User and system CPU seconds of a session's live processes.
fn session_cpu(session: u32) -> (f64, f64) {
    let ticks = containers::session_members(session as i32)
        .into_iter()
        .filter_map(containers::proc_cpu_ticks)
        .fold((0u64, 0u64), |(u, s), (pu, ps)| (u + pu, s + ps));
    (ticks.0 as f64 / USER_HZ, ticks.1 as f64 / USER_HZ)
}

/// Resident bytes of a session's live processes.
fn session_rss(session: u32) -> u64 {
    containers::session_members(session as i32)
        .into_iter()
        .filter_map(containers::proc_rss_bytes)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_mesos_minimums() {
        let small = Limits {
            cpus: 0.001,
            mem_mb: 8.0,
        };
        assert_eq!(small.mem_bytes(), MIN_MEMORY_BYTES);
        assert_eq!(small.cpu_shares(), MIN_CPU_SHARES);
        assert_eq!(small.cfs_quota_us(), 1_000);
        let app = Limits {
            cpus: 0.2,
            mem_mb: 96.0,
        };
        assert_eq!(app.mem_bytes(), 96 << 20);
        assert_eq!(app.cpu_shares(), 204);
        assert_eq!(app.cfs_quota_us(), 20_000);
    }

    /// A fake v1 hierarchy in a directory: limits written where the kernel
    /// reads them, an OOM kill noticed, usage read from the stat files.
    #[test]
    fn cgroup_v1_files_are_written_and_read_as_the_kernel_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path();
        std::fs::create_dir_all(h.join("memory")).unwrap();
        std::fs::create_dir_all(h.join("cpu")).unwrap();
        std::fs::create_dir_all(h.join("cpuacct")).unwrap();
        std::fs::write(h.join("memory/memory.limit_in_bytes"), "0").unwrap();
        std::fs::write(h.join("cpu/cpu.shares"), "1024").unwrap();
        std::fs::write(h.join("cpuacct/cpuacct.stat"), "").unwrap();
        let isolator = Isolator::new(&IsolationConfig {
            isolation: Isolation::Cgroups,
            hierarchy: h.to_path_buf(),
            root: "ml".into(),
            enable_cfs: true,
        });
        assert_eq!(isolator.fallback, None);
        assert_eq!(isolator.active(), Isolation::Cgroups);
        let limits = Limits {
            cpus: 0.5,
            mem_mb: 64.0,
        };
        let procs = isolator.prepare("c1", limits).unwrap();
        assert_eq!(procs.len(), 3);
        let read = |p: &str| std::fs::read_to_string(h.join(p)).unwrap();
        assert_eq!(
            read("memory/ml/c1/memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(read("cpu/ml/c1/cpu.shares"), "512");
        assert_eq!(read("cpu/ml/c1/cpu.cfs_quota_us"), "50000");
        assert_eq!(isolator.memory_limitation("c1", 0, limits), None);
        std::fs::write(
            h.join("memory/ml/c1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(
            h.join("memory/ml/c1/memory.max_usage_in_bytes"),
            (64u64 << 20).to_string(),
        )
        .unwrap();
        std::fs::write(
            h.join("memory/ml/c1/memory.stat"),
            "cache 4096\nrss 8192\ntotal_cache 4096\ntotal_rss 8192\ntotal_mapped_file 1024\n",
        )
        .unwrap();
        assert_eq!(
            isolator.memory_limitation("c1", 0, limits).as_deref(),
            Some(
                "Memory limit exceeded: Requested: 64MB Maximum Used: 64MB\n\nMEMORY STATISTICS: \n\
                 cache 4096\nrss 8192\ntotal_cache 4096\ntotal_rss 8192\ntotal_mapped_file 1024\n\n"
            )
        );
        std::fs::write(
            h.join("cpuacct/ml/c1/cpuacct.stat"),
            "user 250\nsystem 50\n",
        )
        .unwrap();
        std::fs::write(
            h.join("cpu/ml/c1/cpu.stat"),
            "nr_periods 10\nnr_throttled 4\nthrottled_time 2000000000\n",
        )
        .unwrap();
        let usage = isolator.usage("c1", 0);
        assert_eq!(usage.cpus_user_time_secs, 2.5);
        assert_eq!(usage.cpus_system_time_secs, 0.5);
        assert_eq!(usage.mem_rss_bytes, 8192);
        assert_eq!(usage.mem_mapped_file_bytes, 1024);
        assert_eq!(usage.throttling, Some((10, 4, 2.0)));
    }

    #[test]
    fn without_controllers_it_falls_back_to_the_watchdog_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let isolator = Isolator::new(&IsolationConfig {
            hierarchy: dir.path().to_path_buf(),
            ..IsolationConfig::default()
        });
        assert_eq!(isolator.active(), Isolation::Posix);
        assert!(
            isolator
                .fallback
                .as_deref()
                .unwrap()
                .contains("no cgroup v1"),
            "{:?}",
            isolator.fallback
        );
        let posix = Isolator::new(&IsolationConfig {
            isolation: Isolation::Posix,
            ..IsolationConfig::default()
        });
        assert_eq!(
            (posix.active(), posix.fallback.as_deref()),
            (Isolation::Posix, None)
        );
    }
}
