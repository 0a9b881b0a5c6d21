//! The operator CLI (`baton app|group|deployment|task|queue|leader|info`)
//! through the real binary against a real local Baton: every command,
//! `--json` parsed, deployments followed to their end with their plain
//! progress lines (stdout is a pipe here, not a TTY), a failing deployment
//! and its reason, Ctrl-C while watching, `task logs --follow` reading a
//! task's sandbox through the Mesos agent's `/files/read`, Baton's error
//! messages, and HTTP Basic with an ACL.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_e2e::baton::{BatonProcess, Master};
use baton_e2e::binaries::binary;
use baton_e2e::{procs, wait};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const DEADLINE: Duration = Duration::from_secs(60);
/// The longest one CLI command may run in these tests.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// What a finished CLI command printed.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

/// `baton <args> --url <baton>` with nothing from the environment.
fn command(url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(binary("baton"));
    c.args(args)
        .args(["--url", url])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for var in [
        "BATON_URL",
        "BATON_USER",
        "BATON_PASSWORD",
        "BATON_PASSWORD_FILE",
        "BATON_CA_FILE",
    ] {
        c.env_remove(var);
    }
    c
}

/// Runs a CLI command to its end, feeding it `stdin`.
async fn run_with(url: &str, args: &[&str], stdin: Option<&str>) -> Out {
    let mut c = command(url, args);
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("start the baton CLI");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(COMMAND_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("baton {args:?} did not end within {COMMAND_DEADLINE:?}"))
        .unwrap();
    let out = Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    println!(
        "$ baton {}\n{}{}[exit {}]",
        args.join(" "),
        out.stdout,
        out.stderr,
        out.code
    );
    out
}

async fn run(baton: &BatonProcess, args: &[&str]) -> Out {
    run_with(&baton.url, args, None).await
}

/// A CLI command left running, its stdout collected line by line.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(url: &str, args: &[&str]) -> Running {
        let mut c = command(url, args);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("start the baton CLI");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    async fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait::until(DEADLINE, what, || async {
            self.lines().into_iter().find(|l| pred(l))
        })
        .await
    }

    /// Ctrl-C, then its exit code and stderr.
    async fn interrupt(mut self) -> (i32, String) {
        let pid = self.child.id().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("the CLI ends after Ctrl-C")
            .unwrap();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut stderr).await;
        }
        (status.code().unwrap_or(-1), stderr)
    }
}

/// A process that runs until killed and whose command line carries `marker`.
fn sleeper(marker: &str) -> String {
    format!("while :; do sleep 1; done # {marker}")
}

fn write_file(dir: &std::path::Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

/// The deployment id a non-TTY write printed (`... (deployment <id>)`).
fn deployment_in(out: &Out) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.split("(deployment ").nth(1))
        .map(|rest| rest.trim_end_matches(')').to_string())
        .unwrap_or_else(|| panic!("no deployment id in {out:?}"))
}

async fn running_count(baton: &BatonProcess, app: &str) -> usize {
    baton
        .tasks(app)
        .await
        .iter()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_groups_and_tasks_through_the_cli_wait_for_their_deployments() {
    baton_e2e::init_tracing();
    let marker = procs::marker("cli-apps");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, &dir.path().join("baton"), &[]).await;

    // info and leader.
    let info = run(&baton, &["info", "--json"]).await.ok().json();
    assert_eq!(info["name"], "baton");
    let master = info["marathon_config"]["master"].as_str().unwrap();
    assert!(
        master.starts_with("http://127.0.0.1:"),
        "local mode names its embedded master: {info}"
    );
    let text = run(&baton, &["info"]).await.ok().stdout;
    assert!(
        text.contains(&format!("mesos master    {master}")),
        "{text}"
    );
    let leader = run(&baton, &["leader"]).await.ok().stdout;
    let port = baton.url.rsplit(':').next().unwrap();
    assert_eq!(leader.trim(), format!("127.0.0.1:{port}"));
    assert_eq!(
        run(&baton, &["leader", "--json"]).await.ok().json()["leader"],
        format!("127.0.0.1:{port}")
    );

    // app add: waits, one plain line per change, then "finished".
    let app = json!({"id": "/cli/web", "cmd": sleeper(&marker), "cpus": 0.1, "mem": 32,
                     "instances": 2});
    let file = write_file(dir.path(), "web.json", &app);
    let added = run(&baton, &["app", "add", &file]).await.ok();
    let id = deployment_in(&added);
    let lines: Vec<&str> = added.stdout.lines().collect();
    assert_eq!(lines[0], format!("app /cli/web created (deployment {id})"));
    assert_eq!(lines[1], format!("deployment {id}"));
    assert!(
        lines.contains(&"step 1/1 StartApplication /cli/web 2/2 running"),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), &format!("deployment {id} finished"));
    assert_eq!(
        running_count(&baton, "/cli/web").await,
        2,
        "done means running"
    );

    // app list / show, as JSON and as tables.
    let apps = run(&baton, &["app", "list", "--json"]).await.ok().json();
    let web = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "/cli/web")
        .unwrap();
    assert_eq!(
        (web["instances"].as_u64(), web["tasksRunning"].as_u64()),
        (Some(2), Some(2))
    );
    let table = run(&baton, &["app", "list"]).await.ok().stdout;
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("/cli/web") && l.contains(" 2/2 ")),
        "{table}"
    );
    let shown = run(&baton, &["app", "show", "cli/web", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(shown["app"]["id"], "/cli/web");
    assert_eq!(shown["app"]["tasks"].as_array().unwrap().len(), 2);
    let shown = run(&baton, &["app", "show", "/cli/web"]).await.ok().stdout;
    assert!(
        shown.contains("TASK_RUNNING") && shown.contains("instances"),
        "{shown}"
    );

    // scale, restart: waited for.
    let scaled = run(&baton, &["app", "scale", "/cli/web", "3"]).await.ok();
    assert!(
        scaled.stdout.contains("StartApplication") || scaled.stdout.contains("ScaleApplication"),
        "{scaled:?}"
    );
    assert!(scaled.stdout.contains("/cli/web 3/3 running"), "{scaled:?}");
    assert_eq!(running_count(&baton, "/cli/web").await, 3);
    let before: Vec<String> = baton
        .tasks("/cli/web")
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let restarted = run(&baton, &["app", "restart", "/cli/web"]).await.ok();
    assert!(
        restarted
            .stdout
            .contains("RestartApplication /cli/web 3/3 running"),
        "{restarted:?}"
    );
    let after = baton.wait_running("/cli/web", 3, DEADLINE).await;
    assert!(
        after
            .iter()
            .all(|t| !before.contains(&t["id"].as_str().unwrap().to_string())),
        "every instance replaced"
    );

    // task list and kill.
    let tasks = run(&baton, &["task", "list", "/cli/web", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 3);
    let all = run(&baton, &["task", "list"]).await.ok().stdout;
    assert!(
        all.lines().filter(|l| l.contains("/cli/web")).count() == 3,
        "{all}"
    );
    let victim = tasks["tasks"][0]["id"].as_str().unwrap().to_string();
    let killed = run(&baton, &["task", "kill", &victim]).await.ok();
    assert_eq!(killed.stdout.trim(), format!("killed {victim}"));
    let other = tasks["tasks"][1]["id"].as_str().unwrap().to_string();
    let scaled_down = run(&baton, &["task", "kill", &other, "--scale"]).await.ok();
    assert!(scaled_down.stdout.contains("finished"), "{scaled_down:?}");
    let (_, app_now) = baton.get("/v2/apps/cli/web").await;
    assert_eq!(app_now["app"]["instances"], 2);
    // --wipe: the instance is forgotten; a new one takes its place.
    let left = baton.wait_running("/cli/web", 2, DEADLINE).await;
    let wiped = left[0]["id"].as_str().unwrap().to_string();
    let instance = wiped
        .rsplit_once('.')
        .unwrap()
        .0
        .rsplit_once('.')
        .unwrap()
        .0
        .to_string();
    let out = run(&baton, &["task", "kill", &wiped, "--wipe"]).await.ok();
    assert_eq!(out.stdout.trim(), format!("killed {wiped}"));
    wait::until(
        DEADLINE,
        "a new instance instead of the wiped one",
        || async {
            let running = baton.wait_running("/cli/web", 2, DEADLINE).await;
            running
                .iter()
                .all(|t| !t["id"].as_str().unwrap().starts_with(&instance))
                .then_some(())
        },
    )
    .await;

    // suspend, then update from stdin.
    run(&baton, &["app", "suspend", "/cli/web"]).await.ok();
    assert_eq!(running_count(&baton, "/cli/web").await, 0);
    let updated = run_with(
        &baton.url,
        &["app", "update", "/cli/web", "-"],
        Some(r#"{"instances": 1}"#),
    )
    .await
    .ok();
    assert!(
        updated.stdout.contains("/cli/web 1/1 running"),
        "{updated:?}"
    );

    // --no-wait returns at once; --json prints the API's answer.
    let quick = run(
        &baton,
        &["app", "scale", "/cli/web", "2", "--no-wait", "--json"],
    )
    .await
    .ok();
    let answer = quick.json();
    assert!(answer["deploymentId"].is_string(), "{answer}");
    baton.wait_no_deployments(DEADLINE).await;

    // Groups.
    let group = json!({"id": "/cli/team", "apps": [
        {"id": "db", "cmd": sleeper(&marker), "cpus": 0.1, "mem": 32, "instances": 1},
        {"id": "api", "cmd": sleeper(&marker), "cpus": 0.1, "mem": 32, "instances": 1,
         "dependencies": ["/cli/team/db"]}]});
    let file = write_file(dir.path(), "team.json", &group);
    let created = run(&baton, &["group", "add", &file]).await.ok();
    assert!(
        created
            .stdout
            .contains("step 1/2 StartApplication /cli/team/db 1/1 running")
            && created
                .stdout
                .contains("step 2/2 StartApplication /cli/team/api 1/1 running"),
        "a step per dependency level: {created:?}"
    );
    let groups = run(&baton, &["group", "list", "--json"]).await.ok().json();
    assert_eq!(groups["id"], "/");
    let listed = run(&baton, &["group", "list"]).await.ok().stdout;
    assert!(
        listed.lines().any(|l| l.starts_with("/cli/team ")),
        "{listed}"
    );
    let tree = run(&baton, &["group", "show", "/cli"]).await.ok().stdout;
    assert!(tree.contains("  /cli/team/db  1 instance"), "{tree}");
    run(&baton, &["group", "scale", "/cli/team", "2"])
        .await
        .ok();
    assert_eq!(running_count(&baton, "/cli/team/api").await, 2);
    let mut smaller = group.clone();
    smaller["apps"].as_array_mut().unwrap().truncate(1);
    let file = write_file(dir.path(), "team2.json", &smaller);
    run(&baton, &["group", "update", "/cli/team", &file])
        .await
        .ok();
    assert_eq!(
        baton.get("/v2/apps/cli/team/api").await.0,
        404,
        "not listed, removed"
    );
    run(&baton, &["group", "remove", "/cli/team"]).await.ok();
    assert_eq!(baton.get("/v2/apps/cli/team/db").await.0, 404);

    // remove: waited for, every process gone.
    let removed = run(&baton, &["app", "remove", "/cli/web"]).await.ok();
    assert!(
        removed.stdout.contains("StopApplication /cli/web stopped"),
        "{removed:?}"
    );
    assert_eq!(baton.get("/v2/apps/cli/web").await.0, 404);
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_fail_with_their_reason_and_can_be_watched_cancelled_and_rolled_back() {
    baton_e2e::init_tracing();
    let marker = procs::marker("cli-deploy");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, &dir.path().join("baton"), &[]).await;

    // A health check that never passes (nothing listens on the port):
    // past its deadline the CLI says why and exits 1.
    let broken = json!({"id": "/cli/broken", "cmd": sleeper(&marker),
        "cpus": 0.1, "mem": 32, "instances": 1,
        "healthChecks": [{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 300,
                          "intervalSeconds": 1, "timeoutSeconds": 1,
                          "maxConsecutiveFailures": 0}],
        "labels": {"BATON_DEPLOYMENT_TIMEOUT_SECONDS": "3"}});
    let file = write_file(dir.path(), "broken.json", &broken);
    let failed = run(&baton, &["app", "add", &file]).await;
    assert_eq!(failed.code, 1, "{failed:?}");
    let id = deployment_in(&failed);
    assert!(
        failed
            .stderr
            .contains(&format!("error: deployment {id} failed: ")),
        "{failed:?}"
    );
    assert!(failed.stderr.contains("(app /cli/broken)"), "{failed:?}");
    assert!(
        failed.stderr.contains("baton deployment rollback"),
        "{failed:?}"
    );
    let listed = run(&baton, &["deployment", "list", "--json"])
        .await
        .ok()
        .json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.as_str())
        .expect("Baton keeps the failed deployment listed");
    let reason = entry["failure"]["reason"].as_str().unwrap();
    assert!(
        failed.stderr.contains(reason),
        "the stated reason: {reason} / {failed:?}"
    );
    // watch says the same.
    let watched = run(&baton, &["deployment", "watch", &id]).await;
    assert_eq!(watched.code, 1, "{watched:?}");
    assert!(watched.stderr.contains(reason), "{watched:?}");
    // rollback: a new deployment (removing the app), waited for.
    let rolled = run(&baton, &["deployment", "rollback", &id]).await.ok();
    assert!(rolled.stdout.contains("finished"), "{rolled:?}");
    assert_eq!(baton.get("/v2/apps/cli/broken").await.0, 404);

    // Four instances on three hosts, one per host: the fourth waits, and
    // the queue says which constraint declines the offers.
    let stuck = json!({"id": "/cli/stuck", "cmd": sleeper(&marker), "cpus": 0.1, "mem": 32,
        "instances": 4, "constraints": [["hostname", "UNIQUE"]]});
    let file = write_file(dir.path(), "stuck.json", &stuck);
    let started = run(&baton, &["app", "add", &file, "--no-wait"]).await.ok();
    let id = deployment_in(&started);
    wait::until(DEADLINE, "offers declined by the constraint", || async {
        let (_, queue) = baton.get("/v2/queue").await;
        let by = &queue["queue"][0]["processedOffersSummary"]["rejectedByConstraint"];
        by.to_string().contains("hostname:UNIQUE").then_some(())
    })
    .await;
    let queue = run(&baton, &["queue"]).await.ok();
    assert!(
        queue.stdout.contains("constraint hostname:UNIQUE declined"),
        "{queue:?}"
    );
    assert!(queue.stdout.contains("/cli/stuck: 1 waiting"), "{queue:?}");
    assert!(queue.stdout.contains("UnfulfilledConstraint"), "{queue:?}");
    let queue_json = run(&baton, &["queue", "--json"]).await.ok().json();
    assert_eq!(queue_json["queue"][0]["app"]["id"], "/cli/stuck");
    let table = run(&baton, &["deployment", "list"]).await.ok().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("StartApplication /cli/stuck")),
        "{table}"
    );

    // Ctrl-C while watching stops waiting, not the deployment.
    let watching = Running::start(&baton.url, &["deployment", "watch", &id]);
    watching
        .wait_line("the progress line", |l| {
            l.contains("StartApplication /cli/stuck 3/4 running")
        })
        .await;
    let (code, stderr) = watching.interrupt().await;
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains(&format!("deployment {id} goes on")),
        "{stderr}"
    );
    assert!(baton.deployment_ids().await.unwrap().contains(&id));

    // cancel: stops it where it is, the app keeps its three instances.
    let cancelled = run(&baton, &["deployment", "cancel", &id]).await.ok();
    assert!(cancelled.stdout.contains("cancelled"), "{cancelled:?}");
    assert!(!baton.deployment_ids().await.unwrap().contains(&id));
    assert_eq!(running_count(&baton, "/cli/stuck").await, 3);
    let missing = run(&baton, &["deployment", "watch", &id]).await;
    assert_eq!(missing.code, 1, "{missing:?}");

    // Errors: Baton's message, a non-zero exit.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"id": "/cli/bad", "#).unwrap();
    let out = run(&baton, &["app", "add", &bad.display().to_string()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: Invalid JSON (HTTP 400)"),
        "{out:?}"
    );
    let invalid = write_file(
        dir.path(),
        "invalid.json",
        &json!({"id": "/cli/x", "cmd": "x", "cpus": -1}),
    );
    let out = run(&baton, &["app", "add", &invalid]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("(HTTP 422)") && out.stderr.contains("\n  /cpus: "),
        "{out:?}"
    );
    let out = run(&baton, &["app", "show", "/cli/nope"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "error: App '/cli/nope' does not exist (HTTP 404)"
    );
    let out = run(&baton, &["app", "add", "/no/such/file.json"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = run_with("http://127.0.0.1:1", &["app", "list"], None).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: cannot reach http://127.0.0.1:1/v2/apps"),
        "{out:?}"
    );
    let out = run(&baton, &["app", "scale", "/cli/stuck"]).await;
    assert_eq!(out.code, 2, "usage: {out:?}");

    run(&baton, &["app", "remove", "/cli/stuck"]).await.ok();
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_logs_read_the_sandbox_and_follow_what_the_task_prints_next() {
    baton_e2e::init_tracing();
    let marker = procs::marker("cli-logs");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, &dir.path().join("baton"), &[]).await;
    let app = json!({"id": "/cli/ticker",
        "cmd": format!("i=0; while :; do echo tick-$i; echo tock-$i >&2; i=$((i+1)); sleep 0.2; done # {marker}"),
        "cpus": 0.1, "mem": 32, "instances": 1});
    let file = write_file(dir.path(), "ticker.json", &app);
    run(&baton, &["app", "add", &file]).await.ok();
    let task = baton.wait_running("/cli/ticker", 1, DEADLINE).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The last lines.
    let tail = wait::until(DEADLINE, "three lines printed", || async {
        let out = run(&baton, &["task", "logs", &task, "--lines", "2"]).await;
        (out.code == 0 && out.stdout.lines().count() == 2).then_some(out)
    })
    .await;
    let numbers: Vec<u64> = tail
        .stdout
        .lines()
        .map(|l| l.strip_prefix("tick-").unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers[1], numbers[0] + 1, "{tail:?}");
    let errors = run(&baton, &["task", "logs", &task, "--stderr", "-n", "400"])
        .await
        .ok();
    let tocks: Vec<&str> = errors
        .stdout
        .lines()
        .filter(|l| l.starts_with("tock-"))
        .collect();
    assert_eq!(
        tocks.first(),
        Some(&"tock-0"),
        "nothing overwritten: {errors:?}"
    );
    assert!(
        !errors.stdout.lines().any(|l| l.starts_with("tick-")),
        "{errors:?}"
    );
    // A prefix of the task id is enough when it names one task.
    let instance = task.rsplit_once('.').unwrap().0;
    run(&baton, &["task", "logs", instance, "-n", "1"])
        .await
        .ok();

    // --follow: lines printed after the command started.
    let following = Running::start(&baton.url, &["task", "logs", &task, "--follow", "-n", "1"]);
    let first = following
        .wait_line("the last line", |l| l.starts_with("tick-"))
        .await;
    let first: u64 = first.strip_prefix("tick-").unwrap().parse().unwrap();
    following
        .wait_line("lines printed later", |l| {
            l.strip_prefix("tick-")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= first + 5)
        })
        .await;
    let seen: Vec<u64> = following
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix("tick-")?.parse().ok())
        .collect();
    let expected: Vec<u64> = (first..first + seen.len() as u64).collect();
    assert_eq!(seen, expected, "every line once, in order");
    let (code, _) = following.interrupt().await;
    assert_eq!(code, 130);

    // A pod's container writes in its own directory of the group's
    // sandbox: its logs are read there.
    let pod = json!({"id": "/cli/pod", "containers": [{"name": "talker",
        "resources": {"cpus": 0.05, "mem": 32},
        "exec": {"command": {"shell": format!("echo said-by-talker; while :; do sleep 1; done # {marker}")}}}]});
    let (status, body) = baton
        .request(reqwest::Method::POST, "/v2/pods", Some(&pod))
        .await;
    assert_eq!(status, 201, "{body}");
    let talker = wait::until(DEADLINE, "the pod's container to run", || async {
        let (_, status) = baton.get("/v2/pods/cli/pod::status").await;
        let c = &status["instances"][0]["containers"][0];
        (c["status"] == "TASK_RUNNING").then(|| c["containerId"].as_str().map(str::to_string))?
    })
    .await;
    let said = wait::until(DEADLINE, "the container's line", || async {
        let out = run(&baton, &["task", "logs", &talker, "-n", "5"]).await;
        (out.code == 0 && out.stdout.contains("said-by-talker")).then_some(out)
    })
    .await;
    assert_eq!(said.stdout.trim(), "said-by-talker", "{said:?}");
    let (status, _) = baton
        .request(reqwest::Method::DELETE, "/v2/pods/cli/pod", None)
        .await;
    assert_eq!(status, 202);

    // An unknown task: the master does not know it.
    let out = run(&baton, &["task", "logs", "cli_nope.instance-x._app.1"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("not known to the Mesos master"),
        "{out:?}"
    );

    run(&baton, &["app", "remove", "/cli/ticker"]).await.ok();
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_acl_are_honoured_and_a_refusal_prints_batons_message() {
    baton_e2e::init_tracing();
    let marker = procs::marker("cli-acl");
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl.json");
    std::fs::write(
        &acl,
        json!({"rules": [
            {"principals": ["alice"], "actions": ["*"], "paths": ["/team-a/"]},
            {"principals": ["root"], "actions": ["*"], "paths": ["/"]},
        ]})
        .to_string(),
    )
    .unwrap();
    let acl = acl.display().to_string();
    let baton = BatonProcess::start(
        Master::Local,
        &dir.path().join("baton"),
        &[
            "--http_credentials",
            "alice:pw,root:pw2",
            "--acl_file",
            &acl,
            "--http_open_metrics",
        ],
    )
    .await;
    let alice = ["--user", "alice", "--password", "pw"];
    let with = |who: &[&str], args: &[&str]| -> Vec<String> {
        args.iter().chain(who).map(|s| s.to_string()).collect()
    };
    let call = |args: Vec<String>| {
        let url = baton.url.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_with(&url, &args, None).await
        }
    };

    // Without credentials, or with a wrong password: 401's message.
    let out = run(&baton, &["app", "list"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("(HTTP 401)"), "{out:?}");
    let out = call(with(
        &["--user", "alice", "--password", "nope"],
        &["app", "list"],
    ))
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("(HTTP 401)"), "{out:?}");

    // alice deploys in /team-a and waits (her event stream sees her app).
    let web = json!({"id": "/team-a/web", "cmd": sleeper(&marker), "cpus": 0.1, "mem": 32,
                     "instances": 1});
    let file = write_file(dir.path(), "web.json", &web);
    let out = call(with(&alice, &["app", "add", &file])).await.ok();
    assert!(
        out.stdout
            .contains("StartApplication /team-a/web 1/1 running"),
        "{out:?}"
    );
    assert!(out.stdout.contains("finished"), "{out:?}");

    // root creates /team-b/db, with its password in a file.
    let password = dir.path().join("root-password");
    std::fs::write(&password, "pw2\n").unwrap();
    let password = password.display().to_string();
    let root = ["--user", "root", "--password_file", password.as_str()];
    let db = json!({"id": "/team-b/db", "cmd": sleeper(&marker), "cpus": 0.1, "mem": 32,
                    "instances": 1});
    let file = write_file(dir.path(), "db.json", &db);
    call(with(&root, &["app", "add", &file])).await.ok();

    // alice may not touch /team-b: Baton's 403 message, exit 1.
    let out = call(with(&alice, &["app", "scale", "/team-b/db", "2"])).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("User 'alice' is not authorized to update '/team-b/db' (HTTP 403)"),
        "{out:?}"
    );
    let out = call(with(&alice, &["app", "add", &file])).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("User 'alice' is not authorized"),
        "{out:?}"
    );
    // She sees only her apps; root sees both.
    let mine = call(with(&alice, &["app", "list", "--json"]))
        .await
        .ok()
        .json();
    let ids: Vec<&str> = mine["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["/team-a/web"]);
    let all = call(with(&root, &["app", "list", "--json"]))
        .await
        .ok()
        .json();
    assert_eq!(all["apps"].as_array().unwrap().len(), 2);

    call(with(&root, &["group", "remove", "/", "--force"]))
        .await
        .ok();
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

/// The body `GET /` through `router` answers for `host` (the task's id:
/// its app shows in it).
async fn through(router: &baton_e2e::router::RouterProcess, host: &str) -> String {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    match http
        .get(format!("{}/", router.url))
        .header("Host", host)
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
        Ok(r) => format!("status {}", r.status()),
        Err(e) => format!("error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_switch_moves_a_vhost_to_green_through_a_router_and_scales_blue_to_zero() {
    baton_e2e::init_tracing();
    let marker = procs::marker("cli-switch");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, dir.path(), &[]).await;
    let router =
        baton_e2e::router::RouterProcess::start(&baton.url, &dir.path().join("router"), &[]).await;
    for colour in ["blue", "green"] {
        let app = baton_e2e::router::task_app(
            &format!("/shop/{colour}"),
            &marker,
            1,
            json!({"labels": {"BATON_VHOST": "shop.test", "BATON_COLOR": colour}}),
        );
        let (status, body) = baton
            .request(reqwest::Method::POST, "/v2/apps", Some(&app))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // Both routable; blue (first by id) serves the vhost.
    wait::until(Duration::from_secs(90), "both colours routable", || async {
        let table = router.try_admin("/_router/table").await.ok()?;
        let routable = table["apps"]
            .as_array()?
            .iter()
            .filter(|a| a["upstreams"].as_array().is_some_and(|u| u.len() == 1))
            .count();
        (routable == 2).then_some(())
    })
    .await;
    assert!(through(&router, "shop.test").await.contains("shop_blue."));

    let out = run(
        &baton,
        &[
            "switch",
            "shop.test",
            "--to",
            "/shop/green",
            "--router",
            &router.url,
            "--drain-timeout",
            "10",
        ],
    )
    .await
    .ok();
    assert!(
        out.stdout
            .contains("routing shop.test to /shop/green from table generation")
            && out.stdout.contains("/shop/blue scaled to 0"),
        "{out:?}"
    );
    assert!(through(&router, "shop.test").await.contains("shop_green."));
    // Baton keeps the record (0 instances, nothing run) and blue at 0.
    let (_, record) = baton.get("/v2/apps/baton-switch/shop.test").await;
    assert_eq!(record["app"]["instances"], 0, "{record}");
    assert_eq!(
        record["app"]["labels"]["BATON_LIVE"], "/shop/green",
        "{record}"
    );
    let (_, blue) = baton.get("/v2/apps/shop/blue").await;
    assert_eq!(blue["app"]["instances"], 0, "{blue}");
    // A switch to an app the router does not know fails, and says why.
    let out = run(
        &baton,
        &[
            "switch",
            "shop.test",
            "--to",
            "/nope",
            "--router",
            &router.url,
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("the router knows no app /nope"),
        "{out:?}"
    );

    router.stop().await;
    for app in ["/shop/blue", "/shop/green", "/baton-switch/shop.test"] {
        baton
            .request(reqwest::Method::DELETE, &format!("/v2/apps{app}"), None)
            .await;
    }
    baton.stop().await;
    procs::assert_all_gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_through_the_cli_are_added_listed_scaled_killed_and_removed() {
    baton_e2e::init_tracing();
    let marker = procs::marker("cli-pods");
    let dir = tempfile::tempdir().unwrap();
    let baton = BatonProcess::start(Master::Local, &dir.path().join("baton"), &[]).await;
    let pod = json!({"id": "/cli/pod", "scaling": {"kind": "fixed", "instances": 1},
        "containers": [{"name": "main", "resources": {"cpus": 0.05, "mem": 16},
                        "exec": {"command": {"shell": sleeper(&marker)}}}]});
    let file = write_file(dir.path(), "pod.json", &pod);

    // add: waited for, its progress read from the pod's status.
    let added = run(&baton, &["pod", "add", &file]).await.ok();
    let id = deployment_in(&added);
    let lines: Vec<&str> = added.stdout.lines().collect();
    assert_eq!(lines[0], format!("pod /cli/pod created (deployment {id})"));
    assert!(
        lines.contains(&"step 1/1 StartPod /cli/pod 1/1 running"),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), &format!("deployment {id} finished"));

    // list and show.
    let table = run(&baton, &["pod", "list"]).await.ok().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("/cli/pod") && l.contains(" 1/1 ") && l.ends_with("main")),
        "{table}"
    );
    let shown = run(&baton, &["pod", "show", "cli/pod"]).await.ok().stdout;
    assert!(
        shown.contains("main") && shown.contains("TASK_RUNNING"),
        "{shown}"
    );

    // scale: the definition read back and written with 2 instances.
    let scaled = run(&baton, &["pod", "scale", "cli/pod", "2"]).await.ok();
    assert!(
        scaled
            .stdout
            .starts_with("pod /cli/pod scaled to 2 (deployment "),
        "{scaled:?}"
    );
    // Both instances count, the one the scale kept too.
    assert!(
        scaled
            .stdout
            .lines()
            .any(|l| l == "step 1/1 ScalePod /cli/pod 2/2 running"),
        "{scaled:?}"
    );
    let status = run(&baton, &["pod", "show", "/cli/pod", "--json"])
        .await
        .ok()
        .json();
    let stable: Vec<String> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "STABLE")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stable.len(), 2, "{status}");

    // kill one instance: it is relaunched (same instance, a new task).
    let killed = run(&baton, &["pod", "kill", "cli/pod", &stable[0]])
        .await
        .ok();
    assert_eq!(killed.stdout.trim(), format!("killed {}", stable[0]));
    wait::until(DEADLINE, "the killed instance back as STABLE", || async {
        let (_, status) = baton.get("/v2/pods/cli/pod::status").await;
        let instances = status["instances"].as_array()?.clone();
        let again = instances.iter().find(|i| i["id"] == stable[0].as_str())?;
        (again["status"] == "STABLE"
            && again["containers"][0]["containerId"]
                .as_str()
                .is_some_and(|t| t.ends_with(".2")))
        .then_some(())
    })
    .await;

    // remove: waited for, nothing left.
    let removed = run(&baton, &["pod", "remove", "cli/pod"]).await.ok();
    assert!(
        removed
            .stdout
            .starts_with("pod /cli/pod removed (deployment "),
        "{removed:?}"
    );
    assert_eq!(
        run(&baton, &["pod", "list", "--json"]).await.ok().json(),
        json!([])
    );
    procs::assert_all_gone(&marker).await;
    baton.stop().await;
}
