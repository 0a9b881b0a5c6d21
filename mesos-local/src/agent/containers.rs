//! Containers are sessions. Every executor is started through `setsid`
//! (spawned without a process group of its own, so `setsid` does not fork
//! and the executor's pid becomes the session id); executors put their
//! tasks in process groups inside that session. Stopping one politely is a
//! SIGTERM to the executor alone ([`terminate`]; `baton-executor` treats it
//! as SHUTDOWN and kills its tasks under their kill policy); destroying it
//! SIGKILLs every process whose session id (field 6 of `/proc/<pid>/stat`)
//! is the executor's pid ([`kill_session`]). Zombies are not counted as
//! members: an orphan that exits is reparented to PID 1, which on some
//! machines never reaps it.
//!
//! Also here: the sandbox fetcher (`CommandInfo.uris`, with the Mesos
//! fetcher cache for URIs marked `cache`) and the executor environment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use baton_probe::error_chain;
use baton_probe::https::HttpsClient;
use mesos_proto::v1;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tracing::{debug, warn};

/// Why a container could not be prepared or started.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Creating the sandbox or its files failed.
    #[error("sandbox {path}: {source}")]
    Sandbox {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A URI could not be fetched.
    #[error("failed to fetch '{uri}': {reason}")]
    Fetch {
        /// The URI.
        uri: String,
        /// Why.
        reason: String,
    },
    /// The executor could not be started.
    #[error("failed to start '{program}': {source}")]
    Spawn {
        /// What was run.
        program: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The executor's command has nothing to run.
    #[error("the executor's CommandInfo has no value")]
    NoCommand,
    /// The container's cgroups could not be set up.
    #[error("{0}")]
    Isolation(String),
    /// A persistent volume could not be linked into the sandbox.
    #[error("{0}")]
    Volume(String),
}

impl ContainerError {
    /// The message of the tasks' `TASK_FAILED` (after "Failed to launch
    /// container: "). A fetch failure is worded as a Mesos agent words it,
    /// without the URI (that is in the sandbox's `stderr`, as the Mesos
    /// fetcher writes it), so schedulers see what they would on Mesos.
    pub fn launch_message(&self, container_id: &str) -> String {
        match self {
            ContainerError::Fetch { .. } => format!(
                "Failed to fetch all URIs for container '{container_id}': exited with status 1"
            ),
            other => other.to_string(),
        }
    }
}

/// What to run as the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A binary with arguments (`baton-executor`, or `shell: false`).
    Argv(String, Vec<String>),
    /// `/bin/sh -c <value>`.
    Shell(String),
}

impl Program {
    /// From an executor's CommandInfo: shell (the default) or argv, where
    /// `arguments` includes argv\[0\].
    pub fn from_command(cmd: &v1::CommandInfo) -> Result<Program, ContainerError> {
        let value = cmd
            .value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or(ContainerError::NoCommand)?;
        if cmd.shell.unwrap_or(true) {
            Ok(Program::Shell(value))
        } else {
            Ok(Program::Argv(
                value,
                cmd.arguments.iter().skip(1).cloned().collect(),
            ))
        }
    }
}

/// Creates the sandbox and fetches `uris` into it. As the Mesos fetcher
/// does, a URI marked `cache` is downloaded once into `cache_dir` (keyed by
/// the URI) and copied from there into every later sandbox.
pub async fn prepare_sandbox(
    dir: &Path,
    uris: &[v1::command_info::Uri],
    cache_dir: &Path,
    https: &HttpsClient,
) -> Result<(), ContainerError> {
    for path in [dir, cache_dir] {
        tokio::fs::create_dir_all(path)
            .await
            .map_err(|source| ContainerError::Sandbox {
                path: path.to_path_buf(),
                source,
            })?;
    }
    for uri in uris {
        if let Err(e) = fetch(dir, uri, cache_dir, https).await {
            // Where the Mesos fetcher's own output goes.
            let _ = tokio::fs::write(dir.join("stderr"), format!("{e}\n")).await;
            warn!(sandbox = %dir.display(), error = %e, "fetch failed");
            return Err(e);
        }
    }
    Ok(())
}

/// The cache file of a URI: a stable hash of it (FNV-1a) and its basename.
fn cache_key(uri: &str) -> String {
    let hash = uri.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let name: String = basename(uri)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{hash:016x}-{name}")
}

fn basename(uri: &str) -> String {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    path.rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("download")
        .to_string()
}

/// Copies a fetched file into the cache: written aside, then renamed, so a
/// concurrent fetch of the same URI never copies half a file. The sandbox
/// has its copy already: a cache that cannot be filled only costs later
/// downloads.
async fn fill_cache(fetched: &Path, cache_dir: &Path, entry: &Path) {
    let partial = cache_dir.join(format!(".{}.partial", uuid::Uuid::new_v4()));
    let filled = match tokio::fs::copy(fetched, &partial).await {
        Ok(_) => tokio::fs::rename(&partial, entry).await,
        Err(e) => Err(e),
    };
    if let Err(e) = filled {
        warn!(entry = %entry.display(), error = %e, "cannot fill the fetcher cache");
        let _ = tokio::fs::remove_file(&partial).await;
    }
}

fn is_archive(name: &str) -> bool {
    [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

async fn fetch(
    dir: &Path,
    uri: &v1::command_info::Uri,
    cache_dir: &Path,
    https: &HttpsClient,
) -> Result<(), ContainerError> {
    let value = uri.value.as_str();
    let name = uri
        .output_file
        .clone()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| basename(value));
    if name.contains('/') || name == ".." || name == "." {
        return Err(ContainerError::Fetch {
            uri: value.into(),
            reason: format!("invalid output file '{name}'"),
        });
    }
    let dest = dir.join(&name);
    let fail = |reason: String| ContainerError::Fetch {
        uri: value.into(),
        reason,
    };
    let cached = uri
        .cache
        .unwrap_or(false)
        .then(|| cache_dir.join(cache_key(value)));
    let from_cache = match cached.as_ref().filter(|path| path.is_file()) {
        Some(hit) => match tokio::fs::copy(hit, &dest).await {
            Ok(_) => true,
            // As the Mesos fetcher does: a cache that fails costs a
            // download, not the launch.
            Err(e) => {
                warn!(uri = value, error = %e, "cannot copy from the fetcher cache; downloading");
                false
            }
        },
        None => false,
    };
    if from_cache {
        debug!(uri = value, "fetched from the cache");
    } else if value.starts_with("http://") || value.starts_with("https://") {
        if let Err(e) = download(value, &dest, https).await {
            // Nothing half-downloaded is left in the sandbox.
            let _ = tokio::fs::remove_file(&dest).await;
            return Err(fail(e));
        }
    } else {
        let src = value.strip_prefix("file://").unwrap_or(value);
        if !src.starts_with('/') {
            return Err(fail(
                "only http(s)://, file:// and absolute paths are supported".into(),
            ));
        }
        tokio::fs::copy(src, &dest)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    if let Some(entry) = cached.filter(|_| !from_cache) {
        fill_cache(&dest, cache_dir, &entry).await;
    }
    if uri.executable.unwrap_or(false) {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(|e| fail(e.to_string()))?;
    } else if uri.extract.unwrap_or(true) && is_archive(&name) {
        // As the Mesos fetcher extracts: `unzip` for zip files, `tar`
        // (which tells gzip, bzip2 and xz apart) for the rest.
        let mut extract = if name.ends_with(".zip") {
            let mut unzip = Command::new("unzip");
            unzip.arg("-o").arg("-q").arg(&dest).arg("-d").arg(dir);
            unzip
        } else {
            let mut tar = Command::new("tar");
            tar.arg("-xf").arg(&dest).arg("-C").arg(dir);
            tar
        };
        let tool = if name.ends_with(".zip") {
            "unzip"
        } else {
            "tar"
        };
        let output = extract
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| fail(format!("cannot run {tool}: {e}")))?;
        if !output.status.success() {
            return Err(fail(format!(
                "{tool} exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    debug!(uri = value, dest = %dest.display(), "fetched");
    Ok(())
}

/// How many redirects a download follows, as `curl -L` would (bounded).
const MAX_REDIRECTS: usize = 10;

/// Downloads `uri` (http or https, following redirects, https verified
/// against the cluster's trust roots) into `dest`, streamed to disk: a
/// fetch costs a chunk of memory, not the file (agents run in Baton's
/// process in local mode).
async fn download(uri: &str, dest: &Path, https: &HttpsClient) -> Result<(), String> {
    let mut url = reqwest::Url::parse(uri).map_err(|e| format!("invalid URI: {e}"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    for _ in 0..=MAX_REDIRECTS {
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| e.to_string())?;
        let (status, location) = match url.scheme() {
            "https" => {
                let head =
                    tokio::time::timeout(Duration::from_secs(300), https.get_into(&url, &mut file))
                        .await
                        .map_err(|_| "timed out after 300 s".to_string())?
                        .map_err(|e| error_chain(&e))?;
                (
                    head.status(),
                    head.headers().get(reqwest::header::LOCATION).cloned(),
                )
            }
            "http" => {
                let mut resp = http
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| error_chain(&e))?;
                let status = resp.status();
                if status.is_success() {
                    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
                        file.write_all(&chunk).await.map_err(|e| e.to_string())?;
                    }
                }
                (
                    status,
                    resp.headers().get(reqwest::header::LOCATION).cloned(),
                )
            }
            other => return Err(format!("unsupported scheme '{other}'")),
        };
        file.flush().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            return Ok(());
        }
        let next = location
            .filter(|_| status.is_redirection())
            .and_then(|l| l.to_str().ok().and_then(|l| url.join(l).ok()));
        match next {
            Some(next) => url = next,
            None => return Err(format!("HTTP {status} from {url}")),
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// Starts `program` in a new session with the sandbox as working directory
/// and `stdout`/`stderr` files there, opened for appending: the executor's
/// tasks append to the same files, and a shared write offset would let
/// the executor's own lines overwrite theirs.
///
/// With `join` (cgroups' `cgroup.procs` files), the process first writes
/// its own pid into each, through `/bin/sh`, and only then becomes the
/// program: nothing it starts runs outside the container's cgroups.
pub fn spawn(
    program: &Program,
    dir: &Path,
    env: &[(String, String)],
    join: &[PathBuf],
) -> Result<Child, ContainerError> {
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .map_err(|source| ContainerError::Sandbox {
                path: dir.join(name),
                source,
            })
    };
    let stdout = open("stdout")?;
    let stderr = open("stderr")?;
    let mut cmd = if join.is_empty() {
        Command::new("setsid")
    } else {
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c")
            .arg(JOIN_CGROUPS_SCRIPT)
            .arg("mesos-local-isolate")
            .args(join)
            .arg("--")
            .arg("setsid");
        sh
    };
    let shown = match program {
        Program::Argv(bin, args) => {
            cmd.arg(bin).args(args);
            bin.clone()
        }
        Program::Shell(value) => {
            cmd.arg("/bin/sh").arg("-c").arg(value);
            value.clone()
        }
    };
    cmd.current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        // The handle is only dropped when the cluster shuts down (the reaper
        // task is cancelled); the session is killed then too, this covers a
        // child that has not reached setsid(2) yet.
        .kill_on_drop(true);
    cmd.spawn().map_err(|source| ContainerError::Spawn {
        program: shown,
        source,
    })
}

/// Writes the shell's pid into each file before `--`, then execs what
/// follows (same pid: no fork). Exit 126 if a cgroup refuses it.
const JOIN_CGROUPS_SCRIPT: &str =
    r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@""#;

/// What `/proc/<pid>/stat` says of a process that we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `Z`, ...
    pub state: char,
    /// Field 6: the session id.
    pub session: i32,
    /// Field 22: when it started, in clock ticks since boot (with the pid,
    /// it names one process: pids are reused, start times are not).
    pub start_time: u64,
    /// Fields 14 and 15: CPU time in user and kernel mode, clock ticks.
    pub cpu_ticks: (u64, u64),
}

/// Reads `/proc/<pid>/stat`, if the process exists.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces;
    // field 3 is the first after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        session: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
        cpu_ticks: (field(14)?.parse().ok()?, field(15)?.parse().ok()?),
    })
}

/// User and kernel CPU time of a process, clock ticks.
pub fn proc_cpu_ticks(pid: i32) -> Option<(u64, u64)> {
    proc_stat(pid).map(|s| s.cpu_ticks)
}

/// Resident memory of a process, bytes (`/proc/<pid>/statm`).
pub fn proc_rss_bytes(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    Some(pages * page)
}

/// Every live (non-zombie) process with its session id.
fn live_processes() -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| match proc_stat(pid) {
            Some(s) if s.state != 'Z' && s.state != 'X' => Some((pid, s.session)),
            _ => None,
        })
        .collect()
}

/// Live (non-zombie) processes of session `sid`.
pub fn session_members(sid: i32) -> Vec<i32> {
    live_processes()
        .into_iter()
        .filter(|&(_, s)| s == sid)
        .map(|(pid, _)| pid)
        .collect()
}

/// Which of `sids` still have a live (non-zombie) member, in one scan.
pub fn live_sessions(sids: &[u32]) -> BTreeSet<u32> {
    live_processes()
        .into_iter()
        .filter_map(|(_, sid)| u32::try_from(sid).ok())
        .filter(|sid| sids.contains(sid))
        .collect()
}

/// A session id we may signal: never 0 or 1 (nor anything negative, which
/// `kill(2)` would read as a process group).
fn signallable(pid: u32) -> Option<i32> {
    i32::try_from(pid).ok().filter(|&p| p > 1)
}

/// SIGKILLs one process (one left in a destroyed container's cgroup).
pub fn kill_process(pid: u32) {
    if let Some(pid) = signallable(pid) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// SIGTERMs the executor (the session leader) only; it stops its tasks
/// itself. The session is destroyed later if it does not empty in time.
pub fn terminate(pid: u32) {
    if let Some(pid) = signallable(pid) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// SIGKILLs every process of session `sid`, rescanning until none is left
/// (a process may fork between a scan and its kill; a killed one cannot).
/// It blocks for up to ~100 ms: call it off the async workers, and never
/// under a lock others wait for.
pub fn kill_session(sid: u32) {
    kill_session_members(sid, |_| true);
}

/// [`kill_session`], for the members `ours` accepts only.
pub fn kill_session_members(sid: u32, ours: impl Fn(i32) -> bool) {
    let Some(sid) = signallable(sid) else {
        return;
    };
    // Bounded: at most ~100 ms when something refuses to die (a process
    // in uninterruptible sleep).
    for attempt in 0..50 {
        let members: Vec<i32> = session_members(sid)
            .into_iter()
            .filter(|&p| ours(p))
            .collect();
        if members.is_empty() {
            return;
        }
        for pid in members {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    warn!(sid, "processes survive in a destroyed container");
}

/// How often [`stop_sessions`] looks at what is left.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Waits until every session of `sessions` has no live process, SIGKILLing
/// each one whose grace (from now) has passed. Returns within the longest
/// grace plus the time the kills take.
pub async fn stop_sessions(sessions: Vec<(u32, Duration)>) {
    let start = tokio::time::Instant::now();
    let mut left: Vec<(u32, tokio::time::Instant)> = sessions
        .into_iter()
        .map(|(sid, grace)| (sid, start + grace))
        .collect();
    while !left.is_empty() {
        let sids: Vec<u32> = left.iter().map(|&(sid, _)| sid).collect();
        let alive = tokio::task::spawn_blocking(move || live_sessions(&sids))
            .await
            .unwrap_or_default();
        let now = tokio::time::Instant::now();
        let mut overdue = Vec::new();
        left.retain(|&(sid, deadline)| {
            let due = alive.contains(&sid) && now >= deadline;
            if due {
                overdue.push(sid);
            }
            alive.contains(&sid) && !due
        });
        if !overdue.is_empty() {
            warn!(sessions = ?overdue, "containers still running after their shutdown grace; destroying them");
            let _ = tokio::task::spawn_blocking(move || overdue.into_iter().for_each(kill_session))
                .await;
        }
        if !left.is_empty() {
            tokio::time::sleep(STOP_POLL).await;
        }
    }
}

/// The executor environment of `src/slave/slave.cpp`'s
/// `executorEnvironment`.
#[derive(Debug, Clone)]
pub struct ExecutorEnv<'a> {
    /// Framework id.
    pub framework_id: &'a str,
    /// Executor id.
    pub executor_id: &'a str,
    /// Sandbox.
    pub directory: &'a Path,
    /// `127.0.0.<i>:<port>`.
    pub agent_endpoint: std::net::SocketAddr,
    /// Agent id.
    pub agent_id: &'a str,
    /// Framework checkpointing.
    pub checkpoint: bool,
    /// Shutdown grace.
    pub shutdown_grace: Duration,
    /// Re-registration window (`MESOS_SUBSCRIPTION_BACKOFF_MAX`).
    pub reregistration_timeout: Duration,
    /// Extra variables (cluster-wide, then CommandInfo.environment).
    pub extra: Vec<(String, String)>,
}

impl ExecutorEnv<'_> {
    /// The variables.
    pub fn vars(&self) -> Vec<(String, String)> {
        let dir = self.directory.display().to_string();
        let mut v: Vec<(String, String)> = vec![
            ("MESOS_FRAMEWORK_ID".into(), self.framework_id.into()),
            ("MESOS_EXECUTOR_ID".into(), self.executor_id.into()),
            ("MESOS_DIRECTORY".into(), dir.clone()),
            ("MESOS_SANDBOX".into(), dir),
            (
                "MESOS_AGENT_ENDPOINT".into(),
                self.agent_endpoint.to_string(),
            ),
            ("MESOS_SLAVE_ID".into(), self.agent_id.into()),
            (
                "MESOS_SLAVE_PID".into(),
                format!("slave(1)@{}", self.agent_endpoint),
            ),
            (
                "MESOS_CHECKPOINT".into(),
                if self.checkpoint { "1" } else { "0" }.into(),
            ),
            ("MESOS_HTTP_COMMAND_EXECUTOR".into(), "1".into()),
            (
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".into(),
                mesos_proto::util::format_duration(self.shutdown_grace),
            ),
            ("LIBPROCESS_IP".into(), self.agent_endpoint.ip().to_string()),
            ("LIBPROCESS_PORT".into(), "0".into()),
        ];
        if self.checkpoint {
            v.push(("MESOS_RECOVERY_TIMEOUT".into(), "15mins".into()));
            v.push((
                "MESOS_SUBSCRIPTION_BACKOFF_MAX".into(),
                mesos_proto::util::format_duration(self.reregistration_timeout),
            ));
        }
        v.extend(self.extra.iter().cloned());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_from_command_info() {
        let shell = v1::CommandInfo {
            value: Some("echo hi".into()),
            ..Default::default()
        };
        assert_eq!(
            Program::from_command(&shell).unwrap(),
            Program::Shell("echo hi".into())
        );
        let argv = v1::CommandInfo {
            value: Some("/bin/echo".into()),
            shell: Some(false),
            arguments: vec!["echo".into(), "a".into()],
            ..Default::default()
        };
        assert_eq!(
            Program::from_command(&argv).unwrap(),
            Program::Argv("/bin/echo".into(), vec!["a".into()])
        );
        assert!(Program::from_command(&v1::CommandInfo::default()).is_err());
    }

    #[test]
    fn uri_names() {
        assert_eq!(basename("http://h/a/b/app.tgz?x=1"), "app.tgz");
        assert_eq!(basename("/opt/bin/tool"), "tool");
        assert!(is_archive("app.tar.gz"));
        assert!(!is_archive("app.jar"));
    }

    #[test]
    fn environment_has_mesos_variables() {
        let env = ExecutorEnv {
            framework_id: "f",
            executor_id: "e",
            directory: Path::new("/tmp/sb"),
            agent_endpoint: "127.0.0.2:1234".parse().unwrap(),
            agent_id: "m-S2",
            checkpoint: true,
            shutdown_grace: Duration::from_secs(5),
            reregistration_timeout: Duration::from_secs(2),
            extra: vec![("X".into(), "y".into())],
        };
        let vars: std::collections::HashMap<_, _> = env.vars().into_iter().collect();
        assert_eq!(vars["MESOS_AGENT_ENDPOINT"], "127.0.0.2:1234");
        assert_eq!(vars["MESOS_SANDBOX"], "/tmp/sb");
        assert_eq!(vars["MESOS_CHECKPOINT"], "1");
        assert_eq!(vars["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"], "5secs");
        assert_eq!(vars["MESOS_SUBSCRIPTION_BACKOFF_MAX"], "2secs");
        assert_eq!(vars["MESOS_RECOVERY_TIMEOUT"], "15mins");
        assert_eq!(vars["MESOS_SLAVE_PID"], "slave(1)@127.0.0.2:1234");
        assert_eq!(vars["X"], "y");
    }

    #[tokio::test]
    async fn terminate_signals_only_the_session_leader() {
        let dir = tempfile::tempdir().unwrap();
        // The leader traps TERM and reports it; its child ignores nothing
        // but must survive, since only the leader is signalled.
        let mut child = spawn(
            &Program::Shell(
                "trap 'echo term > got-term; exit 0' TERM; sleep 300 & echo $! > child; wait"
                    .into(),
            ),
            dir.path(),
            &[],
            &[],
        )
        .unwrap();
        let sid = child.id().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let child_pid: i32 = loop {
            if let Ok(s) = std::fs::read_to_string(dir.path().join("child"))
                && let Ok(pid) = s.trim().parse()
            {
                break pid;
            }
            assert!(tokio::time::Instant::now() < deadline, "no child");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        terminate(sid);
        assert!(child.wait().await.unwrap().success());
        assert!(dir.path().join("got-term").exists());
        assert_eq!(session_members(sid as i32), vec![child_pid]);
        assert_eq!(live_sessions(&[sid, 1]), BTreeSet::from([sid]));
        kill_session(sid);
        assert!(live_sessions(&[sid]).is_empty());
    }

    #[test]
    fn init_and_nonsense_pids_are_never_signalled() {
        assert_eq!(signallable(0), None);
        assert_eq!(signallable(1), None);
        assert_eq!(signallable(u32::MAX), None);
        assert_eq!(signallable(42), Some(42));
        // Neither call may signal anything (pid 0 is our own group).
        terminate(0);
        kill_session(1);
    }

    #[tokio::test]
    async fn sessions_are_killed_whole() {
        let dir = tempfile::tempdir().unwrap();
        // The session leader forks a child that outlives it in the session.
        let mut child = spawn(
            &Program::Shell("sleep 300 & sleep 300".into()),
            dir.path(),
            &[],
            &[],
        )
        .unwrap();
        let sid = child.id().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while session_members(sid as i32).len() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "children did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        kill_session(sid);
        child.wait().await.unwrap();
        assert!(session_members(sid as i32).is_empty());
    }

    #[tokio::test]
    async fn local_files_are_fetched_and_made_executable() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("tool.sh");
        std::fs::write(&file, "#!/bin/sh\necho ok\n").unwrap();
        let sandbox = tempfile::tempdir().unwrap();
        let uris = vec![v1::command_info::Uri {
            value: file.display().to_string(),
            executable: Some(true),
            output_file: Some("run.sh".into()),
            ..Default::default()
        }];
        let cache = tempfile::tempdir().unwrap();
        prepare_sandbox(sandbox.path(), &uris, cache.path(), &HttpsClient::new())
            .await
            .unwrap();
        let meta = std::fs::metadata(sandbox.path().join("run.sh")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        let bad = vec![v1::command_info::Uri {
            value: "relative/path".into(),
            ..Default::default()
        }];
        assert!(
            prepare_sandbox(sandbox.path(), &bad, cache.path(), &HttpsClient::new())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_cached_uri_is_fetched_once_and_then_copied_from_the_cache() {
        let served = tempfile::tempdir().unwrap();
        std::fs::write(served.path().join("tool"), b"build one").unwrap();
        let cache = tempfile::tempdir().unwrap();
        let uri = |cache: bool| v1::command_info::Uri {
            value: served.path().join("tool").display().to_string(),
            cache: Some(cache),
            ..Default::default()
        };
        let first = tempfile::tempdir().unwrap();
        prepare_sandbox(
            first.path(),
            &[uri(true)],
            cache.path(),
            &HttpsClient::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read(first.path().join("tool")).unwrap(),
            b"build one"
        );
        // The source goes away (its server restarting, say): the cache
        // still fills the next sandbox; an uncached fetch fails.
        std::fs::remove_file(served.path().join("tool")).unwrap();
        let second = tempfile::tempdir().unwrap();
        prepare_sandbox(
            second.path(),
            &[uri(true)],
            cache.path(),
            &HttpsClient::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read(second.path().join("tool")).unwrap(),
            b"build one"
        );
        let third = tempfile::tempdir().unwrap();
        assert!(
            prepare_sandbox(
                third.path(),
                &[uri(false)],
                cache.path(),
                &HttpsClient::new()
            )
            .await
            .is_err()
        );
        assert_ne!(cache_key("http://a/x/tool"), cache_key("http://a/y/tool"));
    }

    #[tokio::test]
    async fn a_cache_that_cannot_be_filled_costs_no_launch() {
        let served = tempfile::tempdir().unwrap();
        std::fs::write(served.path().join("tool"), b"build one").unwrap();
        let value = served.path().join("tool").display().to_string();
        let cache = tempfile::tempdir().unwrap();
        // The entry's place is taken: renaming into it fails.
        std::fs::create_dir_all(cache.path().join(cache_key(&value)).join("x")).unwrap();
        let sandbox = tempfile::tempdir().unwrap();
        let uri = v1::command_info::Uri {
            value,
            cache: Some(true),
            ..Default::default()
        };
        prepare_sandbox(sandbox.path(), &[uri], cache.path(), &HttpsClient::new())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(sandbox.path().join("tool")).unwrap(),
            b"build one"
        );
        let partials: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".partial"))
            .collect();
        assert!(partials.is_empty(), "left behind: {partials:?}");
    }
}
