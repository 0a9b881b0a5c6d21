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

/// The working directory of a task. The first task an executor runs gets
/// the sandbox itself, as under the Mesos command executor; later ones (a
/// task group, or more tasks sent to the same executor) get
/// `<sandbox>/tasks/<task_id>/`, as under the default executor, so their
/// `stdout` and `stderr` do not mix.
pub fn task_dir(sandbox: &Path, first: bool, task_id: &str) -> PathBuf {
    if first {
        return sandbox.to_path_buf();
    }
    // Mesos rejects such ids, but a path must never escape the sandbox.
    let name: String = match task_id {
        "" | "." | ".." => "_".to_string(),
        id => id
            .chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c })
            .collect(),
    };
    sandbox.join("tasks").join(name)
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
    })
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
        assert_eq!(task_dir(sb, true, "a"), PathBuf::from("/sb"));
        assert_eq!(task_dir(sb, false, "a"), PathBuf::from("/sb/tasks/a"));
        assert_eq!(
            task_dir(sb, false, "../../etc"),
            PathBuf::from("/sb/tasks/.._.._etc")
        );
        assert_eq!(task_dir(sb, false, ".."), PathBuf::from("/sb/tasks/_"));
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
}
