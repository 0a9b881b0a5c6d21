//! `baton task logs`: a task's `stdout` or `stderr`, read from its Mesos
//! sandbox the way the Mesos CLIs read it.
//!
//! 1. The master: `--master`, else `marathon_config.master` of the
//!    server's `/v2/info` (Baton in local mode reports its embedded
//!    master's URL there). A comma list is tried in turn; a non-leading
//!    master's redirect is followed.
//! 2. The master's `/master/state`: the task (running or ended) gives its
//!    framework, agent and executor (a command task's executor has the
//!    task's id), and its container; the agent's `pid` gives its address.
//! 3. The agent's `/state`: the executor run's sandbox `directory` (a
//!    Mesos master does not report it). Without it, the agent's virtual
//!    path `/frameworks/<fid>/executors/<eid>/runs/latest` is used.
//! 4. The agent's `/files/read?path=<dir>/<file>&offset=&length=`:
//!    `offset=-1` gives the size, the last `--lines` lines are read
//!    backwards in chunks, and `--follow` then reads new bytes every
//!    [`FOLLOW_POLL`] until Ctrl-C.

use std::io::Write as _;
use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use super::Ctx;
use super::client::Client;
use super::error::CliError;

/// How often `--follow` asks for new bytes.
pub const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// The most bytes asked for at once (what a Mesos agent answers at most).
const CHUNK: u64 = 64 * 1024;

/// The masters to try for `master` as `/v2/info` or `--master` gives it.
pub fn master_candidates(master: &str) -> Result<Vec<String>, CliError> {
    let master = master.trim();
    if master.is_empty() || master == "local" {
        return Err(CliError::Usage(
            "the server does not say where its Mesos master is; pass --master http://host:5050"
                .into(),
        ));
    }
    if master.starts_with("zk://") {
        return Err(CliError::Usage(format!(
            "the Mesos master is found through ZooKeeper ({master}); pass --master http://host:5050"
        )));
    }
    Ok(master
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            let m = m.trim_end_matches('/');
            if m.starts_with("http://") || m.starts_with("https://") {
                m.to_string()
            } else {
                format!("http://{m}")
            }
        })
        .collect())
}

/// `http[s]://ip:port` of an agent from its libprocess `pid`
/// (`slave(1)@ip:port`), in the master's scheme.
pub fn agent_url(pid: &str, scheme: &str) -> Option<String> {
    let (_, address) = pid.split_once('@')?;
    (!address.is_empty()).then(|| format!("{scheme}://{address}"))
}

/// Where a task runs (or ran).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPlace {
    /// The task's full id.
    pub task_id: String,
    /// Its framework.
    pub framework_id: String,
    /// Its executor (the task's id for a command task).
    pub executor_id: String,
    /// Its agent.
    pub agent_id: String,
    /// The agent's `pid`, if the master still lists it.
    pub agent_pid: Option<String>,
    /// Its container, from its last status that names one.
    pub container_id: Option<String>,
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Finds `task_id` (or the one task whose id starts with it) in the
/// master's `/master/state`, preferring `framework`'s tasks.
pub fn find_task(
    state: &Value,
    task_id: &str,
    framework: Option<&str>,
) -> Result<TaskPlace, String> {
    let frameworks: Vec<&Value> = list(state, "frameworks")
        .chain(list(state, "completed_frameworks"))
        .collect();
    let tasks: Vec<(&Value, &Value)> = frameworks
        .iter()
        .flat_map(|f| {
            list(f, "tasks")
                .chain(list(f, "unreachable_tasks"))
                .chain(list(f, "completed_tasks"))
                .map(move |t| (*f, t))
        })
        .collect();
    let ours = |fw: &Value| framework.is_none_or(|id| str_of(fw, "id") == id);
    let exact: Vec<&(&Value, &Value)> = tasks
        .iter()
        .filter(|(_, t)| str_of(t, "id") == task_id)
        .collect();
    let found = match exact.iter().find(|(f, _)| ours(f)).or(exact.first()) {
        Some(found) => **found,
        None => {
            let mut prefixed: Vec<&(&Value, &Value)> = tasks
                .iter()
                .filter(|(f, t)| ours(f) && str_of(t, "id").starts_with(task_id))
                .collect();
            prefixed.dedup_by(|a, b| str_of(a.1, "id") == str_of(b.1, "id"));
            match prefixed.as_slice() {
                [one] => **one,
                [] => return Err(format!("task {task_id} is not known to the Mesos master")),
                many => {
                    let ids: Vec<&str> = many.iter().map(|(_, t)| str_of(t, "id")).collect();
                    return Err(format!(
                        "{task_id} names more than one task: {}",
                        ids.join(", ")
                    ));
                }
            }
        }
    };
    let (fw, task) = found;
    let id = str_of(task, "id").to_string();
    let executor = match str_of(task, "executor_id") {
        "" => id.clone(),
        e => e.to_string(),
    };
    let agent_id = str_of(task, "slave_id").to_string();
    let agent_pid = list(state, "slaves")
        .chain(list(state, "recovered_slaves"))
        .find(|a| str_of(a, "id") == agent_id)
        .map(|a| str_of(a, "pid").to_string())
        .filter(|p| !p.is_empty());
    let container_id = list(task, "statuses")
        .filter_map(|s| {
            s.pointer("/container_status/container_id/value")
                .and_then(Value::as_str)
        })
        .last()
        .map(str::to_string);
    Ok(TaskPlace {
        task_id: id,
        framework_id: str_of(fw, "id").to_string(),
        executor_id: executor,
        agent_id,
        agent_pid,
        container_id,
    })
}

/// The sandbox of `place`'s executor run in the agent's `/state`: the run
/// of its container, else the one that ran the task, else the latest.
pub fn find_directory(agent_state: &Value, place: &TaskPlace) -> Option<String> {
    let runs: Vec<&Value> = list(agent_state, "frameworks")
        .chain(list(agent_state, "completed_frameworks"))
        .filter(|f| str_of(f, "id") == place.framework_id)
        .flat_map(|f| list(f, "completed_executors").chain(list(f, "executors")))
        .filter(|e| str_of(e, "id") == place.executor_id)
        .collect();
    let ran_task = |e: &&Value| {
        list(e, "tasks")
            .chain(list(e, "completed_tasks"))
            .any(|t| str_of(t, "id") == place.task_id)
    };
    let run = place
        .container_id
        .as_deref()
        .and_then(|c| runs.iter().find(|e| str_of(e, "container") == c))
        .or_else(|| runs.iter().rev().find(|e| ran_task(e)))
        .or(runs.last())?;
    Some(str_of(run, "directory").to_string()).filter(|d| !d.is_empty())
}

/// Where the last `lines` lines of `bytes` start (a final newline ends
/// the last line; it does not start an empty one).
pub fn tail_start(bytes: &[u8], lines: usize) -> Option<usize> {
    if lines == 0 {
        return Some(bytes.len());
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The master's `/master/state` from the first of `masters` that answers,
/// following a non-leader's redirect; with the URL that answered.
async fn master_state(base: &Client, masters: &[String]) -> Result<(Value, String), CliError> {
    let mut last = None;
    for master in masters {
        let mut url = master.clone();
        for _ in 0..3 {
            let reply = match base.at(&url).send(Method::GET, "/master/state", None).await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(e);
                    break;
                }
            };
            match (reply.status, reply.location.as_deref()) {
                (200, _) => return Ok((reply.json()?, url)),
                (301 | 302 | 307 | 308, Some(location)) => {
                    let scheme = url.split("://").next().unwrap_or("http");
                    let absolute = match location.strip_prefix("//") {
                        Some(rest) => format!("{scheme}://{rest}"),
                        None => location.to_string(),
                    };
                    url = absolute
                        .trim_end_matches("/master/state")
                        .trim_end_matches('/')
                        .to_string();
                }
                (status, _) => {
                    last = Some(CliError::Api {
                        status,
                        body: reply.text(),
                    });
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| CliError::Usage("no Mesos master to ask".into())))
}

/// One `/files/read`: the data and the offset the agent reports.
async fn read_at(
    agent: &Client,
    path: &str,
    offset: i64,
    length: u64,
) -> Result<(String, u64), CliError> {
    let query = serde_urlencoded::to_string([
        ("path", path.to_string()),
        ("offset", offset.to_string()),
        ("length", length.to_string()),
    ])
    .unwrap_or_default();
    let reply = agent
        .send(Method::GET, &format!("/files/read?{query}"), None)
        .await?;
    match reply.status {
        200 => {
            let body = reply.json()?;
            Ok((
                str_of(&body, "data").to_string(),
                body.get("offset").and_then(Value::as_u64).unwrap_or(0),
            ))
        }
        404 => Err(CliError::NotFound(format!(
            "{path} is not on the agent at {} (its sandbox may have been removed)",
            agent.base()
        ))),
        status => Err(CliError::Api {
            status,
            body: reply.text(),
        }),
    }
}

fn print_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// Prints the last `lines` lines of the task's `file`, then (`follow`)
/// what it writes next, until Ctrl-C.
pub async fn run(
    ctx: &Ctx,
    task_id: &str,
    file: &str,
    lines: usize,
    follow: bool,
    master: Option<&str>,
) -> Result<(), CliError> {
    let client = &ctx.client;
    let info = client.get_json("/v2/info").await;
    let framework = info.as_ref().ok().and_then(|i| {
        i.get("frameworkId")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let master_text = match master {
        Some(m) => m.to_string(),
        None => {
            let info = info?;
            info.pointer("/marathon_config/master")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        }
    };
    let (state, master_url) = master_state(client, &master_candidates(&master_text)?).await?;
    let place = find_task(&state, task_id, framework.as_deref())
        .map_err(|e| CliError::NotFound(format!("{e} at {master_url}")))?;
    let scheme = master_url.split("://").next().unwrap_or("http");
    let agent = place
        .agent_pid
        .as_deref()
        .and_then(|pid| agent_url(pid, scheme))
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "the agent {} of task {} is no longer known to the master",
                place.agent_id, place.task_id
            ))
        })?;
    let agent = client.at(&agent);
    let directory = match agent.get_json("/state").await {
        Ok(agent_state) => find_directory(&agent_state, &place),
        Err(e) => {
            tracing::debug!(error = %e, "no agent /state; using the latest run's virtual path");
            None
        }
    }
    .unwrap_or_else(|| {
        format!(
            "/frameworks/{}/executors/{}/runs/latest",
            place.framework_id, place.executor_id
        )
    });
    // A task of a group (a pod's container) has a directory of its own in
    // its executor's sandbox, `tasks/<task id>`, as under Mesos's default
    // executor; any other task writes in the sandbox itself.
    let nested = format!("{directory}/tasks/{}/{file}", place.task_id);
    let (path, size) = match read_at(&agent, &nested, -1, 0).await {
        Ok((_, size)) => (nested, size),
        Err(_) => {
            let path = format!("{directory}/{file}");
            let (_, size) = read_at(&agent, &path, -1, 0).await?;
            (path, size)
        }
    };
    tracing::debug!(task = %place.task_id, agent = %agent.base(), %path, "reading the sandbox");

    let mut start = size;
    let mut tail: Vec<u8> = Vec::new();
    while start > 0 && tail_start(&tail, lines).is_none() {
        let want = CHUNK.min(start);
        let from = start - want;
        let mut chunk: Vec<u8> = Vec::new();
        while (chunk.len() as u64) < want {
            let at = from + chunk.len() as u64;
            let (data, _) = read_at(&agent, &path, at as i64, want - chunk.len() as u64).await?;
            if data.is_empty() {
                break;
            }
            chunk.extend_from_slice(data.as_bytes());
        }
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
    }
    let from = tail_start(&tail, lines).unwrap_or(0);
    print_bytes(&tail[from..]);
    if !follow {
        return Ok(());
    }
    let mut offset = size;
    loop {
        let (data, _) = read_at(&agent, &path, offset as i64, CHUNK).await?;
        if data.is_empty() {
            tokio::time::sleep(FOLLOW_POLL).await;
            continue;
        }
        print_bytes(data.as_bytes());
        offset += data.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masters_are_urls_to_try_in_turn() {
        assert_eq!(
            master_candidates("m1:5050, http://m2:5050/").unwrap(),
            vec!["http://m1:5050", "http://m2:5050"]
        );
        assert_eq!(
            master_candidates("https://m:5050").unwrap(),
            vec!["https://m:5050"]
        );
        assert!(matches!(
            master_candidates("local"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            master_candidates("zk://zk:2181/mesos"),
            Err(CliError::Usage(_))
        ));
        assert_eq!(
            agent_url("slave(1)@127.0.0.2:5051", "http").as_deref(),
            Some("http://127.0.0.2:5051")
        );
        assert_eq!(agent_url("nonsense", "http"), None);
    }

    fn master_state() -> Value {
        json!({
            "slaves": [{"id": "S1", "pid": "slave(1)@127.0.0.1:5051"}],
            "frameworks": [{
                "id": "F1",
                "tasks": [{"id": "web.instance-1._app.1", "slave_id": "S1",
                           "executor_id": "baton-executor.web.instance-1._app.1",
                           "statuses": [{"state": "TASK_RUNNING",
                             "container_status": {"container_id": {"value": "C2"}}}]}],
                "completed_tasks": [{"id": "cmd-task", "slave_id": "S1", "executor_id": ""}],
            }, {
                "id": "F2",
                "tasks": [{"id": "web.instance-1._app.1", "slave_id": "S9", "executor_id": ""}],
            }],
        })
    }

    #[test]
    fn tasks_are_found_with_their_agent_executor_and_container() {
        let state = master_state();
        let place = find_task(&state, "web.instance-1._app.1", Some("F1")).unwrap();
        assert_eq!(place.framework_id, "F1");
        assert_eq!(place.executor_id, "baton-executor.web.instance-1._app.1");
        assert_eq!(place.agent_pid.as_deref(), Some("slave(1)@127.0.0.1:5051"));
        assert_eq!(place.container_id.as_deref(), Some("C2"));
        let other = find_task(&state, "web.instance-1._app.1", Some("F2")).unwrap();
        assert_eq!(
            (other.agent_pid, other.executor_id.as_str()),
            (None, "web.instance-1._app.1")
        );
        let ended = find_task(&state, "cmd-task", None).unwrap();
        assert_eq!(ended.executor_id, "cmd-task", "a command task's executor");
        let prefixed = find_task(&state, "web.instance-1", Some("F1")).unwrap();
        assert_eq!(prefixed.task_id, "web.instance-1._app.1");
        assert!(find_task(&state, "nope", None).is_err());
    }

    #[test]
    fn the_run_of_the_tasks_container_gives_the_directory() {
        let place = find_task(&master_state(), "web.instance-1._app.1", Some("F1")).unwrap();
        let agent = json!({"frameworks": [{"id": "F1",
            "executors": [{"id": place.executor_id, "container": "C2", "directory": "/w/C2", "tasks": []}],
            "completed_executors": [{"id": place.executor_id, "container": "C1", "directory": "/w/C1",
                                      "completed_tasks": [{"id": place.task_id}]}]}]});
        assert_eq!(find_directory(&agent, &place).as_deref(), Some("/w/C2"));
        let mut no_container = place.clone();
        no_container.container_id = None;
        assert_eq!(
            find_directory(&agent, &no_container).as_deref(),
            Some("/w/C1"),
            "the run that ran the task"
        );
        assert_eq!(find_directory(&json!({"frameworks": []}), &place), None);
    }

    #[test]
    fn the_tail_starts_after_the_nth_last_newline() {
        assert_eq!(tail_start(b"a\nb\nc\n", 2), Some(2));
        assert_eq!(tail_start(b"a\nb\nc", 2), Some(2));
        assert_eq!(tail_start(b"a\nb\nc\n", 3), None, "needs more of the file");
        assert_eq!(tail_start(b"\nb\nc\n", 2), Some(1));
        assert_eq!(tail_start(b"abc", 0), Some(3));
        assert_eq!(tail_start(b"", 1), None);
    }
}
