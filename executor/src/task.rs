//! Command tasks as processes: what to run ([`CommandSpec`], pure), starting
//! it in its own process group ([`ProcessLauncher`]), and how it ended
//! ([`Termination`]).
//!
//! Every task is the leader of a new process group, so one `killpg` reaches
//! the whole tree a shell command forks, and nothing of it survives the task.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use mesos_proto::v1::{self, environment::variable};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::mpsc;

/// The executor's own secret; tasks must not inherit it (the C++ executor
/// library erases it from the environment for the same reason).
const AUTH_TOKEN_VAR: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// A task's command, resolved to a program, argv and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The executable (`/bin/sh` for shell commands, else `CommandInfo.value`).
    pub program: String,
    /// `argv[0]`.
    pub arg0: String,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// Set on top of the executor's inherited environment, in order.
    pub env: Vec<(String, String)>,
    /// Working directory; `stdout` and `stderr` are written here too.
    pub dir: PathBuf,
    /// Links to make before the start: the sandbox volumes to link into
    /// `dir`, and a nested container's `tasks/<task_id>` link to `dir`.
    pub volumes: Vec<VolumeLink>,
}

/// A sandbox volume of a task (a pod's volume, shared by its containers):
/// `link`, in the task's directory, points at `target`, a directory in the
/// executor's sandbox. Without a mount namespace a symlink is what Mesos's
/// `filesystem/posix` isolator makes too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeLink {
    /// `<task dir>/<container_path>`.
    pub link: PathBuf,
    /// `<sandbox>/<path>` (PARENT) or `<task dir>/<path>` (SELF).
    pub target: PathBuf,
}

/// A task cannot be turned into a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// TaskInfo has no CommandInfo, or it has no `value`.
    #[error("task has no command to run")]
    NoCommand,
}

/// Starting a task's process failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The task description does not say what to run.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A volume this executor cannot provide.
    #[error("volume {container_path:?}: {why}")]
    Volume {
        /// The volume's `container_path`.
        container_path: String,
        /// Why not.
        why: &'static str,
    },
    /// Creating the working directory or the output files failed.
    #[error("preparing {path}: {source}")]
    Sandbox {
        /// The directory or file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `fork`/`exec` failed, e.g. the program does not exist.
    #[error("starting {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The working directory of a task, and the link to make to it. The first
/// task an executor runs gets the sandbox itself, as under the Mesos
/// command executor; later ones (a task group, or more tasks sent to the
/// same executor) get a nested container's sandbox,
/// `<sandbox>/containers/<container>/`, reached by the link
/// `<sandbox>/tasks/<task_id>`, as Mesos's default executor lays them out
/// (so their `stdout` and `stderr` do not mix, and tools find them by task
/// id).
pub fn task_dir(
    sandbox: &Path,
    first: bool,
    task_id: &str,
    container: &str,
) -> (PathBuf, Option<VolumeLink>) {
    if first {
        return (sandbox.to_path_buf(), None);
    }
    // Mesos rejects such ids, but a path must never escape the sandbox.
    let safe = |id: &str| -> String {
        match id {
            "" | "." | ".." => "_".to_string(),
            id => id
                .chars()
                .map(|c| if c == '/' || c == '\0' { '_' } else { c })
                .collect(),
        }
    };
    let dir = sandbox.join("containers").join(safe(container));
    let link = VolumeLink {
        link: sandbox.join("tasks").join(safe(task_id)),
        target: dir.clone(),
    };
    (dir, Some(link))
}

/// The command of `task`: its `CommandInfo`, or — for a task sent to this
/// executor as a custom executor, where Mesos allows no `CommandInfo` next
/// to the `ExecutorInfo` — a protobuf `CommandInfo` in `TaskInfo.data`, as
/// Baton's scheduler puts it there.
pub fn task_command(task: &v1::TaskInfo) -> Option<v1::CommandInfo> {
    use prost::Message;
    match (&task.command, &task.data) {
        (Some(command), _) => Some(command.clone()),
        (None, Some(data)) => v1::CommandInfo::decode(data.as_slice()).ok(),
        (None, None) => None,
    }
}

/// What to run for `task` in `dir`: `/bin/sh -c value` when `shell` is
/// unset or true (the proto default), else `value` with `arguments` as argv
/// (argv\[0\] included). The environment adds `MESOS_SANDBOX` (the task's
/// directory) and `MESOS_TASK_ID`, then the VALUE variables of
/// `CommandInfo.environment`, which win.
pub fn command_spec(task: &v1::TaskInfo, dir: &Path) -> Result<CommandSpec, SpecError> {
    let command = task_command(task).ok_or(SpecError::NoCommand)?;
    let (program, arg0, args) = program_and_args(&command)?;
    let mut env = vec![
        ("MESOS_SANDBOX".to_string(), dir.display().to_string()),
        ("MESOS_TASK_ID".to_string(), task.task_id.value.clone()),
    ];
    env.extend(value_variables(&command));
    Ok(CommandSpec {
        program,
        arg0,
        args,
        env,
        dir: dir.to_path_buf(),
        volumes: Vec::new(),
    })
}

/// A relative path that stays where it is put: no `..`, not absolute.
fn contained(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.is_relative()
        && p.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

/// The sandbox volumes of `task` (`SANDBOX_PATH` sources in its
/// `ContainerInfo`), to link into its directory `dir`: `PARENT` ones point
/// into the executor's `sandbox` (where a task group shares them), `SELF`
/// ones into `dir`. Other volume kinds are the agent's business and are
/// left alone. Container paths must be relative: without a mount
/// namespace there is nowhere else to put them.
pub fn sandbox_volumes(
    task: &v1::TaskInfo,
    sandbox: &Path,
    dir: &Path,
) -> Result<Vec<VolumeLink>, LaunchError> {
    use v1::volume::source::{Type, sandbox_path};
    let Some(container) = &task.container else {
        return Ok(Vec::new());
    };
    let mut links = Vec::new();
    for volume in &container.volumes {
        let Some(source) = &volume.source else {
            continue;
        };
        if source.r#type() != Type::SandboxPath {
            continue;
        }
        let fail = |why| LaunchError::Volume {
            container_path: volume.container_path.clone(),
            why,
        };
        let sandbox_path = source
            .sandbox_path
            .as_ref()
            .ok_or_else(|| fail("SANDBOX_PATH without sandbox_path"))?;
        if !contained(&volume.container_path) {
            return Err(fail(
                "the container path must be relative to the sandbox (no filesystem isolation here)",
            ));
        }
        if !contained(&sandbox_path.path) {
            return Err(fail(
                "the sandbox path must be relative and stay inside the sandbox",
            ));
        }
        let base = match sandbox_path.r#type() {
            sandbox_path::Type::Parent => sandbox,
            _ => dir,
        };
        links.push(VolumeLink {
            link: dir.join(&volume.container_path),
            target: base.join(&sandbox_path.path),
        });
    }
    Ok(links)
}

/// What to run for a COMMAND health check of the task that runs `task`: the
/// check's command (shell or argv form, as for a task), in the task's
/// directory, with the task's environment plus the VALUE variables of the
/// check's own `CommandInfo.environment`, which win.
pub fn check_command_spec(
    check: &v1::CommandInfo,
    task: &CommandSpec,
) -> Result<CommandSpec, SpecError> {
    let (program, arg0, args) = program_and_args(check)?;
    let mut env = task.env.clone();
    env.extend(value_variables(check));
    Ok(CommandSpec {
        program,
        arg0,
        args,
        env,
        dir: task.dir.clone(),
        volumes: Vec::new(),
    })
}

/// `(program, argv[0], argv[1..])` of a command.
fn program_and_args(command: &v1::CommandInfo) -> Result<(String, String, Vec<String>), SpecError> {
    let value = command
        .value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or(SpecError::NoCommand)?;
    Ok(if command.shell() {
        (
            "/bin/sh".to_string(),
            "sh".to_string(),
            vec!["-c".to_string(), value.to_string()],
        )
    } else {
        let mut argv = command.arguments.iter().cloned();
        let arg0 = argv.next().unwrap_or_else(|| value.to_string());
        (value.to_string(), arg0, argv.collect())
    })
}

/// The VALUE variables of a command's environment; secrets are skipped
/// (with a warning).
fn value_variables(command: &v1::CommandInfo) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for var in command.environment.iter().flat_map(|e| &e.variables) {
        match var.r#type() {
            variable::Type::Value | variable::Type::Unknown => {
                env.push((var.name.clone(), var.value.clone().unwrap_or_default()));
            }
            variable::Type::Secret => {
                tracing::warn!(name = %var.name, "secret environment variables are not supported; skipped");
            }
        }
    }
    env
}

/// How a task's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
    /// Waiting for the process failed; its fate is unknown.
    Unknown(String),
}

impl Termination {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        *self == Termination::Exited(0)
    }

    /// The status message Mesos frameworks expect, e.g.
    /// "Command exited with status 3".
    pub fn describe(&self) -> String {
        match self {
            Termination::Exited(code) => format!("Command exited with status {code}"),
            Termination::Signaled(sig) => match Signal::try_from(*sig) {
                Ok(name) => format!("Command terminated by signal {sig} ({name})"),
                Err(_) => format!("Command terminated by signal {sig}"),
            },
            Termination::Unknown(why) => format!("Command status unknown: {why}"),
        }
    }
}

impl From<ExitStatus> for Termination {
    fn from(status: ExitStatus) -> Termination {
        match (status.code(), status.signal()) {
            (Some(code), _) => Termination::Exited(code),
            (None, Some(sig)) => Termination::Signaled(sig),
            (None, None) => Termination::Unknown(format!("{status}")),
        }
    }
}

/// Starts and signals task processes. The executor's state machine talks to
/// this trait so that its logic can be tested without processes.
pub trait Launcher {
    /// Starts the command in a new process group and returns the group id.
    /// The process's end is reported out of band (see [`ProcessLauncher`]).
    fn launch(&mut self, task_id: &str, spec: &CommandSpec) -> Result<i32, LaunchError>;
    /// Sends `signal` to every process of the group; a group that is gone
    /// already is not an error.
    fn signal(&mut self, pgid: i32, signal: Signal);
}

/// A finished task process: its task id and how it ended.
pub type Exit = (String, Termination);

/// The real [`Launcher`]: one tokio task per process waits for it and sends
/// its [`Exit`] down a channel.
#[derive(Debug)]
pub struct ProcessLauncher {
    exits: mpsc::UnboundedSender<Exit>,
}

impl ProcessLauncher {
    /// A launcher reporting exits to `exits`.
    pub fn new(exits: mpsc::UnboundedSender<Exit>) -> ProcessLauncher {
        ProcessLauncher { exits }
    }
}

impl Launcher for ProcessLauncher {
    fn launch(&mut self, task_id: &str, spec: &CommandSpec) -> Result<i32, LaunchError> {
        let mut child = spawn(spec)?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| LaunchError::Spawn {
                program: spec.program.clone(),
                source: std::io::Error::other("the process has no id"),
            })?;
        let exits = self.exits.clone();
        let task_id = task_id.to_string();
        tokio::spawn(async move {
            let termination = match child.wait().await {
                Ok(status) => Termination::from(status),
                Err(e) => Termination::Unknown(e.to_string()),
            };
            // The receiver is gone only when the executor is exiting.
            let _ = exits.send((task_id, termination));
        });
        Ok(pgid)
    }

    fn signal(&mut self, pgid: i32, signal: Signal) {
        signal_group(pgid, signal);
    }
}

/// `killpg(pgid, signal)`, ignoring a group that no longer exists.
pub fn signal_group(pgid: i32, signal: Signal) {
    // 0 would mean our own group and 1 init's; neither is ever a task's.
    if pgid <= 1 {
        tracing::error!(
            pgid,
            "refusing to signal a process group that is not a task's"
        );
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid, %signal, error = %e, "signalling the task's process group failed")
        }
    }
}

fn spawn(spec: &CommandSpec) -> Result<tokio::process::Child, LaunchError> {
    let sandbox_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LaunchError::Sandbox { path, source }
    };
    fs::create_dir_all(&spec.dir).map_err(sandbox_err(&spec.dir))?;
    for volume in &spec.volumes {
        fs::create_dir_all(&volume.target).map_err(sandbox_err(&volume.target))?;
        if let Some(parent) = volume.link.parent() {
            fs::create_dir_all(parent).map_err(sandbox_err(parent))?;
        }
        // A relaunch in the same sandbox finds its link already there; one
        // pointing elsewhere is replaced (a link only, never a directory).
        match fs::read_link(&volume.link) {
            Ok(target) if target == volume.target => continue,
            Ok(_) => fs::remove_file(&volume.link).map_err(sandbox_err(&volume.link))?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&volume.target, &volume.link)
            .map_err(sandbox_err(&volume.link))?;
    }
    // Append: under Mesos the executor's own output may share these files.
    let output = |name: &str| {
        let path = spec.dir.join(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(sandbox_err(&path))
    };
    let stdout = output("stdout")?;
    let stderr = output("stderr")?;

    let mut command = process_command(spec);
    command.stdout(stdout).stderr(stderr);
    command.spawn().map_err(|source| LaunchError::Spawn {
        program: spec.program.clone(),
        source,
    })
}

/// The process for `spec`, leader of a new process group, in `spec.dir`,
/// with `spec.env` on top of the executor's environment minus its secret,
/// stdin from `/dev/null`. The caller sets stdout and stderr.
pub(crate) fn process_command(spec: &CommandSpec) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .arg0(&spec.arg0)
        .args(&spec.args)
        .env_remove(AUTH_TOKEN_VAR)
        .envs(
            spec.env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .process_group(0)
        // A safety net only: the executor kills whole groups itself.
        .kill_on_drop(true);
    command
}

/// How many live (non-zombie) processes are in group `pgid`, from
/// `/proc`. `killpg(pgid, 0)` cannot tell: an orphaned zombie stays in its
/// group until its new parent reaps it, and not every PID 1 does. Used to
/// prove that a killed task's whole group is gone.
pub fn live_group_members(pgid: i32) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| crate::load::parse_stat(stat).is_some_and(|(pgrp, _)| pgrp == pgid))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::util;
    use mesos_proto::v1::environment::Variable;

    fn task(command: v1::CommandInfo) -> v1::TaskInfo {
        v1::TaskInfo {
            name: "t".into(),
            task_id: util::task_id("t1"),
            command: Some(command),
            ..Default::default()
        }
    }

    #[test]
    fn shell_is_the_default() {
        let spec = command_spec(
            &task(v1::CommandInfo {
                value: Some("echo hi && exit 3".into()),
                arguments: vec!["ignored".into()],
                ..Default::default()
            }),
            Path::new("/sb"),
        )
        .unwrap();
        assert_eq!(spec.program, "/bin/sh");
        assert_eq!(spec.arg0, "sh");
        assert_eq!(spec.args, ["-c", "echo hi && exit 3"]);
        assert_eq!(spec.dir, PathBuf::from("/sb"));
    }

    #[test]
    fn argv_form_keeps_argv0() {
        let spec = command_spec(
            &task(v1::CommandInfo {
                value: Some("/bin/echo".into()),
                shell: Some(false),
                arguments: vec!["my-echo".into(), "a b".into(), "c".into()],
                ..Default::default()
            }),
            Path::new("/sb"),
        )
        .unwrap();
        assert_eq!(spec.program, "/bin/echo");
        assert_eq!(spec.arg0, "my-echo");
        assert_eq!(spec.args, ["a b", "c"]);

        let bare = command_spec(
            &task(v1::CommandInfo {
                value: Some("true".into()),
                shell: Some(false),
                ..Default::default()
            }),
            Path::new("/sb"),
        )
        .unwrap();
        assert_eq!(bare.arg0, "true");
        assert!(bare.args.is_empty());
    }

    #[test]
    fn environment_adds_sandbox_task_id_and_values_but_not_secrets() {
        let var = |name: &str, value: &str, ty: variable::Type| Variable {
            name: name.into(),
            value: Some(value.into()),
            r#type: Some(ty as i32),
        };
        let spec = command_spec(
            &task(v1::CommandInfo {
                value: Some("env".into()),
                environment: Some(v1::Environment {
                    variables: vec![
                        var("GREETING", "hello", variable::Type::Value),
                        var("PASSWORD", "hunter2", variable::Type::Secret),
                        var("MESOS_SANDBOX", "/elsewhere", variable::Type::Value),
                    ],
                }),
                ..Default::default()
            }),
            Path::new("/sb/tasks/t1"),
        )
        .unwrap();
        let env: Vec<(&str, &str)> = spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("MESOS_SANDBOX", "/sb/tasks/t1"),
                ("MESOS_TASK_ID", "t1"),
                ("GREETING", "hello"),
                // Later entries win when the command is built.
                ("MESOS_SANDBOX", "/elsewhere"),
            ]
        );
    }

    #[test]
    fn a_task_without_command_is_rejected() {
        let mut t = task(v1::CommandInfo::default());
        assert_eq!(
            command_spec(&t, Path::new("/sb")),
            Err(SpecError::NoCommand)
        );
        t.command = None;
        assert_eq!(
            command_spec(&t, Path::new("/sb")),
            Err(SpecError::NoCommand)
        );
    }

    #[test]
    fn a_custom_executor_task_carries_its_command_in_data() {
        use prost::Message;
        let command = v1::CommandInfo {
            value: Some("echo hi".into()),
            ..Default::default()
        };
        let mut t = task(v1::CommandInfo::default());
        t.command = None;
        t.data = Some(command.encode_to_vec());
        let spec = command_spec(&t, Path::new("/sb")).unwrap();
        assert_eq!(spec.args, vec!["-c".to_string(), "echo hi".to_string()]);
    }

    #[test]
    fn task_dirs_stay_inside_the_sandbox() {
        let sb = Path::new("/sb");
        assert_eq!(task_dir(sb, true, "a", "c"), (PathBuf::from("/sb"), None));
        let (dir, link) = task_dir(sb, false, "a", "c");
        assert_eq!(dir, PathBuf::from("/sb/containers/c"));
        let link = link.unwrap();
        assert_eq!(
            (link.link, link.target),
            (PathBuf::from("/sb/tasks/a"), dir)
        );
        let escaping = |id: &str| task_dir(sb, false, id, "..").1.unwrap().link;
        assert_eq!(escaping("../../etc"), PathBuf::from("/sb/tasks/.._.._etc"));
        assert_eq!(escaping(".."), PathBuf::from("/sb/tasks/_"));
        assert_eq!(
            task_dir(sb, false, "a", "..").0,
            PathBuf::from("/sb/containers/_")
        );
    }

    #[test]
    fn terminations_are_described_like_mesos() {
        assert_eq!(
            Termination::Exited(3).describe(),
            "Command exited with status 3"
        );
        assert_eq!(
            Termination::Signaled(9).describe(),
            "Command terminated by signal 9 (SIGKILL)"
        );
        assert!(Termination::Exited(0).success());
        assert!(!Termination::Signaled(15).success());
        assert_eq!(
            Termination::from(ExitStatus::from_raw(3 << 8)),
            Termination::Exited(3)
        );
        assert_eq!(
            Termination::from(ExitStatus::from_raw(9)),
            Termination::Signaled(9)
        );
    }

    #[tokio::test]
    async fn a_launched_group_writes_output_and_can_be_killed() {
        let sandbox = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut launcher = ProcessLauncher::new(tx);
        let spec = command_spec(
            &task(v1::CommandInfo {
                value: Some("echo \"$MESOS_TASK_ID\"; sleep 30 & wait".into()),
                ..Default::default()
            }),
            sandbox.path(),
        )
        .unwrap();
        let pgid = launcher.launch("t1", &spec).unwrap();
        let stdout = sandbox.path().join("stdout");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs::read_to_string(&stdout).unwrap_or_default() != "t1\n" {
            assert!(tokio::time::Instant::now() < deadline, "no output");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        launcher.signal(pgid, Signal::SIGKILL);
        let (id, termination) = rx.recv().await.unwrap();
        assert_eq!(id, "t1");
        assert_eq!(termination, Termination::Signaled(9));
        // The background `sleep` was in the group and is gone too.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while live_group_members(pgid) > 0 {
            assert!(tokio::time::Instant::now() < deadline, "group survived");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A task with these `(container_path, source)` volumes.
    fn with_volumes(
        command: &str,
        id: &str,
        volumes: &[(&str, Option<v1::volume::Source>)],
    ) -> v1::TaskInfo {
        let mut t = task(v1::CommandInfo {
            value: Some(command.into()),
            ..Default::default()
        });
        t.task_id = util::task_id(id);
        t.container = Some(v1::ContainerInfo {
            r#type: v1::container_info::Type::Mesos as i32,
            volumes: volumes
                .iter()
                .map(|(path, source)| v1::Volume {
                    mode: v1::volume::Mode::Rw as i32,
                    container_path: path.to_string(),
                    source: source.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        t
    }

    fn sandbox_source(
        kind: v1::volume::source::sandbox_path::Type,
        path: &str,
    ) -> Option<v1::volume::Source> {
        Some(v1::volume::Source {
            r#type: Some(v1::volume::source::Type::SandboxPath as i32),
            sandbox_path: Some(v1::volume::source::SandboxPath {
                r#type: Some(kind as i32),
                path: path.into(),
            }),
            ..Default::default()
        })
    }

    #[test]
    fn sandbox_volumes_link_into_the_parent_or_the_task_itself() {
        use v1::volume::source::sandbox_path::Type;
        let t = with_volumes(
            "true",
            "t1",
            &[
                ("shared", sandbox_source(Type::Parent, "volumes/shared")),
                ("cache", sandbox_source(Type::Self_, "scratch")),
                ("host", None),
            ],
        );
        let links = sandbox_volumes(&t, Path::new("/sb"), Path::new("/sb/tasks/t1")).unwrap();
        assert_eq!(
            links,
            vec![
                VolumeLink {
                    link: PathBuf::from("/sb/tasks/t1/shared"),
                    target: PathBuf::from("/sb/volumes/shared"),
                },
                VolumeLink {
                    link: PathBuf::from("/sb/tasks/t1/cache"),
                    target: PathBuf::from("/sb/tasks/t1/scratch"),
                },
            ]
        );
        for (path, source, named) in [
            ("/abs", sandbox_source(Type::Parent, "v"), "container path"),
            (
                "ok",
                sandbox_source(Type::Parent, "../../etc"),
                "sandbox path",
            ),
            ("../up", sandbox_source(Type::Parent, "v"), "container path"),
        ] {
            let t = with_volumes("true", "t1", &[(path, source)]);
            let err = sandbox_volumes(&t, Path::new("/sb"), Path::new("/sb/tasks/t1"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{path}: {err}");
        }
    }

    #[tokio::test]
    async fn a_stale_link_in_the_way_of_a_volume_is_replaced() {
        use v1::volume::source::sandbox_path::Type;
        let sandbox = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut launcher = ProcessLauncher::new(tx);
        let t = with_volumes(
            "echo hi > out/x",
            "t",
            &[("out", sandbox_source(Type::Parent, "volumes/v"))],
        );
        let (dir, _) = task_dir(sandbox.path(), false, "t", "c");
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.join("out")).unwrap();
        let mut spec = command_spec(&t, &dir).unwrap();
        spec.volumes = sandbox_volumes(&t, sandbox.path(), &dir).unwrap();
        launcher.launch("t", &spec).unwrap();
        let (_, termination) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("it ends")
            .unwrap();
        assert_eq!(termination, Termination::Exited(0));
        assert_eq!(
            fs::read_to_string(sandbox.path().join("volumes/v/x")).unwrap(),
            "hi\n"
        );
    }

    #[tokio::test]
    async fn two_tasks_of_a_group_share_a_parent_sandbox_volume() {
        use v1::volume::source::sandbox_path::Type;
        let sandbox = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut launcher = ProcessLauncher::new(tx);
        let shared = sandbox_source(Type::Parent, "volumes/shared");
        let mut pids = Vec::new();
        for (id, command, mount) in [
            ("writer", "echo hello > out/greeting", "out"),
            (
                "reader",
                "until [ -s in/greeting ]; do sleep 0.05; done; cat in/greeting",
                "in",
            ),
        ] {
            let t = with_volumes(command, id, &[(mount, shared.clone())]);
            let (dir, task_link) = task_dir(sandbox.path(), false, id, &format!("c-{id}"));
            let mut spec = command_spec(&t, &dir).unwrap();
            spec.volumes = sandbox_volumes(&t, sandbox.path(), &dir).unwrap();
            spec.volumes.extend(task_link);
            pids.push(launcher.launch(id, &spec).unwrap());
        }
        for _ in 0..2 {
            let (_, termination) =
                tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                    .await
                    .expect("both end")
                    .unwrap();
            assert_eq!(termination, Termination::Exited(0));
        }
        // Each ran in its own container sandbox, found by task id too.
        let read = fs::read_to_string(sandbox.path().join("tasks/reader/stdout")).unwrap();
        assert_eq!(read, "hello\n");
        assert_eq!(
            fs::read_link(sandbox.path().join("tasks/reader")).unwrap(),
            sandbox.path().join("containers/c-reader")
        );
        assert_eq!(
            fs::read_to_string(sandbox.path().join("volumes/shared/greeting")).unwrap(),
            "hello\n"
        );
    }
}
