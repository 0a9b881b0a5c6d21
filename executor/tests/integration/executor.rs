//! The real `baton-executor` binary against a fake agent, over both
//! encodings: each scenario below is an `async fn(Encoding)` and the
//! `both_encodings!` list at the end turns it into a `protobuf` and a
//! `json` test.

use super::common;

use std::collections::HashSet;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Executor, FakeAgent, Options, kill_policy, shell_task, wait_for, wait_group_gone};
use mesos_proto::Encoding;
use mesos_proto::v1::{self, TaskState, environment::Variable, task_status::Source};
use tokio::time::Instant;

const EXIT: Duration = Duration::from_secs(20);

/// A task that records its process group id and then runs until killed;
/// `on_term` is its SIGTERM trap.
fn looping_task(id: &str, on_term: &str) -> v1::TaskInfo {
    shell_task(
        id,
        &format!("trap '{on_term}' TERM; echo $$ > pid; while :; do sleep 0.1; done"),
    )
}

async fn launch_reports_starting_then_running(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    let subscribe = agent.wait_subscribe(1).await;
    assert!(subscribe.unacknowledged_tasks.is_empty());
    assert!(subscribe.unacknowledged_updates.is_empty());

    agent.launch(looping_task("t1", "exit 0"));
    let starting = agent.wait_update("t1", TaskState::TaskStarting).await;
    let running = agent.wait_update("t1", TaskState::TaskRunning).await;
    let states: Vec<_> = agent.updates().iter().map(|s| s.state()).collect();
    assert_eq!(states, [TaskState::TaskStarting, TaskState::TaskRunning]);
    for status in [&starting, &running] {
        assert_eq!(status.uuid.as_ref().map(Vec::len), Some(16));
        assert_eq!(status.source(), Source::Executor);
        assert_eq!(
            status.executor_id.as_ref().unwrap().value,
            common::EXECUTOR_ID
        );
        assert!(status.timestamp.is_some());
    }
    assert_ne!(starting.uuid, running.uuid);

    // Acknowledged RUNNING is not enough to exit: the task still runs.
    let pgid = executor.task_pgid("pid").await;
    assert!(executor.running());
    agent.kill("t1", None);
    agent.wait_update("t1", TaskState::TaskKilled).await;
    assert!(executor.wait_exit(EXIT).await.success());
    wait_group_gone(pgid).await;
    agent.assert_no_violations();
}

async fn failing_command_reports_its_exit_status(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    agent.launch(shell_task("t1", "exit 3"));
    let failed = agent.wait_update("t1", TaskState::TaskFailed).await;
    let message = failed.message.unwrap_or_default();
    assert!(message.contains('3'), "{message}");
    // The agent acknowledged the terminal update: the executor is done.
    assert!(executor.wait_exit(EXIT).await.success());
    let states: Vec<_> = agent.updates().iter().map(|s| s.state()).collect();
    assert_eq!(
        states,
        [
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskFailed
        ]
    );
    agent.assert_no_violations();
}

async fn kill_of_a_task_that_traps_sigterm_is_prompt(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    agent.set_task_killing(true);
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    let mut task = looping_task("t1", "exit 0");
    task.kill_policy = Some(kill_policy(Duration::from_secs(30)));
    agent.launch(task);
    let pgid = executor.task_pgid("pid").await;

    let start = Instant::now();
    agent.kill("t1", None);
    let killed = agent
        .wait_update_within("t1", TaskState::TaskKilled, Duration::from_secs(10))
        .await;
    assert!(start.elapsed() < Duration::from_secs(10));
    // The framework has TASK_KILLING_STATE, so KILLING came first.
    let states: Vec<_> = agent.updates().iter().map(|s| s.state()).collect();
    assert_eq!(
        states,
        [
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskKilling,
            TaskState::TaskKilled
        ]
    );
    assert!(killed.message.unwrap_or_default().contains("status 0"));
    wait_group_gone(pgid).await;
    assert!(executor.wait_exit(EXIT).await.success());
    agent.assert_no_violations();
}

async fn kill_escalates_to_sigkill_after_the_grace(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    // The KILL's policy (1 s) overrides the task's (30 s).
    let mut task = looping_task("t1", "");
    task.kill_policy = Some(kill_policy(Duration::from_secs(30)));
    agent.launch(task);
    let pgid = executor.task_pgid("pid").await;

    let start = Instant::now();
    agent.kill("t1", Some(Duration::from_secs(1)));
    let killed = agent
        .wait_update_within("t1", TaskState::TaskKilled, Duration::from_secs(10))
        .await;
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    let message = killed.message.unwrap_or_default();
    assert!(message.contains("signal 9"), "{message}");
    // No TASK_KILLING: the framework lacks the capability.
    assert!(
        !agent
            .updates()
            .iter()
            .any(|s| s.state() == TaskState::TaskKilling)
    );
    wait_group_gone(pgid).await;
    assert!(executor.wait_exit(EXIT).await.success());
    agent.assert_no_violations();
}

async fn output_and_environment_reach_the_sandbox(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    agent.expect_token("secret-jwt");
    let mut executor = Executor::spawn(
        &agent,
        Options {
            auth_token: Some("secret-jwt"),
            ..Default::default()
        },
    );
    agent.wait_subscribe(1).await;
    let mut task = shell_task(
        "t1",
        "echo \"greeting=$GREETING\"; echo \"task=$MESOS_TASK_ID\"; echo \"pwd=$(pwd)\"; \
         echo oops >&2; [ -z \"$MESOS_EXECUTOR_AUTHENTICATION_TOKEN\" ]",
    );
    task.command.as_mut().unwrap().environment = Some(v1::Environment {
        variables: vec![Variable {
            name: "GREETING".into(),
            value: Some("hello world".into()),
            r#type: None,
        }],
    });
    agent.launch(task);
    agent.wait_update("t1", TaskState::TaskFinished).await;
    assert!(executor.wait_exit(EXIT).await.success());

    let sandbox = executor.sandbox().canonicalize().unwrap();
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert_eq!(
        stdout,
        format!("greeting=hello world\ntask=t1\npwd={}\n", sandbox.display())
    );
    let stderr = std::fs::read_to_string(sandbox.join("stderr")).unwrap();
    assert_eq!(stderr, "oops\n");
    // The task did not see the executor's token (it exited 0 on `-z`).
    agent.assert_no_violations();
}

async fn argv_form_runs_without_a_shell(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    let mut task = shell_task("t1", "printf");
    let command = task.command.as_mut().unwrap();
    command.shell = Some(false);
    command.arguments = ["printf", "%s|%s\n", "$HOME", "a b"]
        .map(String::from)
        .to_vec();
    agent.launch(task);
    agent.wait_update("t1", TaskState::TaskFinished).await;
    assert!(executor.wait_exit(EXIT).await.success());
    let stdout = std::fs::read_to_string(executor.sandbox().join("stdout")).unwrap();
    assert_eq!(stdout, "$HOME|a b\n");
    agent.assert_no_violations();
}

async fn reconnect_resends_unacknowledged_updates(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    agent.set_auto_ack(false);
    let mut executor = Executor::spawn(
        &agent,
        Options {
            checkpoint: true,
            ..Default::default()
        },
    );
    agent.wait_subscribe(1).await;
    agent.launch(shell_task(
        "t1",
        "echo $$ > pid; while [ ! -e release ]; do sleep 0.05; done",
    ));
    agent.wait_update("t1", TaskState::TaskRunning).await;
    let pgid = executor.task_pgid("pid").await;

    // The agent goes away (and answers 503 while "recovering") without
    // having acknowledged anything.
    agent.refuse_subscribe(Some(StatusCode::SERVICE_UNAVAILABLE));
    agent.drop_stream();
    wait_for("a refused re-SUBSCRIBE", EXIT, || {
        (agent.refused_subscribes() >= 1).then_some(())
    })
    .await;
    // The task finishes while the executor is disconnected.
    std::fs::write(executor.sandbox().join("release"), "").unwrap();
    wait_group_gone(pgid).await;
    // Two more attempts: the exit has been seen before the last one began.
    let seen = agent.refused_subscribes();
    wait_for("two more re-SUBSCRIBEs", EXIT, || {
        (agent.refused_subscribes() >= seen + 2).then_some(())
    })
    .await;
    assert!(executor.running(), "the executor must wait for the agent");
    agent.refuse_subscribe(None);

    let subscribe = agent.wait_subscribe(2).await;
    let tasks: Vec<_> = subscribe
        .unacknowledged_tasks
        .iter()
        .map(|t| t.task_id.value.as_str())
        .collect();
    assert_eq!(tasks, ["t1"]);
    let resent: Vec<_> = subscribe
        .unacknowledged_updates
        .iter()
        .map(|u| u.status.clone())
        .collect();
    let states: Vec<_> = resent.iter().map(|s| s.state()).collect();
    assert_eq!(
        states,
        [
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskFinished
        ]
    );
    for status in &resent {
        common::validate_status(status).unwrap();
    }
    // The same updates (same uuids) as the first connection saw.
    let sent_before: HashSet<_> = agent.updates().iter().map(|s| s.uuid.clone()).collect();
    assert!(sent_before.contains(&resent[0].uuid));
    assert!(sent_before.contains(&resent[1].uuid));

    // Acknowledging the terminal update lets the executor finish; it never
    // sent FINISHED as a separate UPDATE.
    agent.ack(&resent[2]);
    assert!(executor.wait_exit(EXIT).await.success());
    assert!(
        !agent
            .updates()
            .iter()
            .any(|s| s.state() == TaskState::TaskFinished)
    );
    agent.assert_no_violations();
}

async fn disconnect_without_checkpoint_kills_tasks_and_exits(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    agent.launch(looping_task("t1", "exit 0"));
    agent.wait_update("t1", TaskState::TaskRunning).await;
    let pgid = executor.task_pgid("pid").await;

    agent.drop_stream();
    let status = executor.wait_exit(EXIT).await;
    assert_eq!(status.code(), Some(1));
    wait_group_gone(pgid).await;
    // No reconnection attempt without checkpointing.
    assert_eq!(agent.subscribes().len(), 1);
    agent.assert_no_violations();
}

async fn recovery_timeout_kills_tasks_and_exits(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(
        &agent,
        Options {
            checkpoint: true,
            recovery_timeout: "2secs",
            shutdown_grace: "2secs",
            ..Default::default()
        },
    );
    agent.wait_subscribe(1).await;
    agent.launch(looping_task("t1", "exit 0"));
    let pgid = executor.task_pgid("pid").await;

    // The agent never comes back.
    agent.refuse_subscribe(Some(StatusCode::SERVICE_UNAVAILABLE));
    let start = Instant::now();
    agent.drop_stream();
    let status = executor.wait_exit(EXIT).await;
    assert_eq!(status.code(), Some(1));
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert!(agent.refused_subscribes() >= 1);
    wait_group_gone(pgid).await;
    agent.assert_no_violations();
}

async fn a_missing_program_fails_the_task(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    let mut task = shell_task("t1", "/nonexistent/program");
    task.command.as_mut().unwrap().shell = Some(false);
    agent.launch(task);
    let failed = agent.wait_update("t1", TaskState::TaskFailed).await;
    let message = failed.message.unwrap_or_default();
    assert!(message.contains("/nonexistent/program"), "{message}");
    let states: Vec<_> = agent.updates().iter().map(|s| s.state()).collect();
    assert_eq!(states, [TaskState::TaskStarting, TaskState::TaskFailed]);
    assert!(executor.wait_exit(EXIT).await.success());
    agent.assert_no_violations();
}

async fn shutdown_kills_tasks_and_exits(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(
        &agent,
        Options {
            shutdown_grace: "2secs",
            ..Default::default()
        },
    );
    agent.wait_subscribe(1).await;
    agent.launch(looping_task("polite", "exit 0"));
    let polite = executor.task_pgid("pid").await;
    // The second task of an executor runs in tasks/<id>/.
    agent.launch(looping_task("stubborn", ""));
    let stubborn = executor.task_pgid("tasks/stubborn/pid").await;

    let start = Instant::now();
    agent.shutdown();
    agent.wait_update("polite", TaskState::TaskKilled).await;
    agent.wait_update("stubborn", TaskState::TaskKilled).await;
    assert!(executor.wait_exit(EXIT).await.success());
    // Within the shutdown grace (SIGKILL after grace − 1 s).
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    wait_group_gone(polite).await;
    wait_group_gone(stubborn).await;
    agent.assert_no_violations();
}

async fn a_failing_group_member_kills_the_rest(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    let mut executor = Executor::spawn(&agent, Options::default());
    agent.wait_subscribe(1).await;
    agent.launch_group(vec![
        looping_task("server", "exit 0"),
        shell_task(
            "sidecar",
            "while [ ! -e ../../fail ]; do sleep 0.05; done; exit 7",
        ),
    ]);
    // Every task of a group has a directory of its own, as under Mesos's
    // default executor.
    let server = executor.task_pgid("tasks/server/pid").await;
    agent.wait_update("sidecar", TaskState::TaskRunning).await;
    std::fs::write(executor.sandbox().join("fail"), "").unwrap();

    let failed = agent.wait_update("sidecar", TaskState::TaskFailed).await;
    assert!(failed.message.unwrap_or_default().contains('7'));
    agent.wait_update("server", TaskState::TaskKilled).await;
    wait_group_gone(server).await;
    assert!(executor.wait_exit(EXIT).await.success());
    agent.assert_no_violations();
}

async fn a_refused_subscribe_ends_the_executor(encoding: Encoding) {
    let agent = FakeAgent::start(encoding).await;
    agent.refuse_subscribe(Some(StatusCode::BAD_REQUEST));
    let mut executor = Executor::spawn(&agent, Options::default());
    let status = executor.wait_exit(EXIT).await;
    assert_eq!(status.code(), Some(1));
    // 400 will not get better: one attempt only.
    assert_eq!(agent.refused_subscribes(), 1);
    assert!(executor.log().contains("400"), "{}", executor.log());
}

#[tokio::test]
async fn invalid_environment_is_reported_at_once() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton-executor"))
        .env_clear()
        .env("MESOS_CHECKPOINT", "yes")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "MESOS_FRAMEWORK_ID",
        "MESOS_EXECUTOR_ID",
        "MESOS_AGENT_ENDPOINT",
        "MESOS_SANDBOX",
        "MESOS_CHECKPOINT",
    ] {
        assert!(stderr.contains(name), "{name} missing from {stderr}");
    }
}

macro_rules! both_encodings {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn protobuf() {
                super::$scenario(mesos_proto::Encoding::Protobuf).await;
            }
            #[tokio::test]
            async fn json() {
                super::$scenario(mesos_proto::Encoding::Json).await;
            }
        }
    )*};
}

both_encodings!(
    launch_reports_starting_then_running,
    failing_command_reports_its_exit_status,
    kill_of_a_task_that_traps_sigterm_is_prompt,
    kill_escalates_to_sigkill_after_the_grace,
    output_and_environment_reach_the_sandbox,
    argv_form_runs_without_a_shell,
    reconnect_resends_unacknowledged_updates,
    disconnect_without_checkpoint_kills_tasks_and_exits,
    recovery_timeout_kills_tasks_and_exits,
    a_missing_program_fails_the_task,
    shutdown_kills_tasks_and_exits,
    a_failing_group_member_kills_the_rest,
    a_refused_subscribe_ends_the_executor,
);
