//! The agents' `/state` and `/files/read`, `/files/browse`: a task's
//! sandbox found the way the Mesos CLIs find it (the master's task → its
//! agent → the agent's executor `directory`) and read as a Mesos 1.12
//! agent serves it — the statuses, bodies and shapes were taken from a
//! real 1.12 agent with curl.

use super::common;

use std::time::Duration;

use common::*;
use mesos_proto::Encoding;
use mesos_proto::v1::TaskState;
use serde_json::Value;

/// Acknowledges `task_id`'s updates until it reaches `state`.
async fn until_state(s: &mut Sched, task_id: &str, state: TaskState) {
    loop {
        let u = s.update(task_id).await;
        if u.uuid.is_some() {
            s.ack(&u).await;
        }
        if u.state() == state {
            return;
        }
        assert!(
            !mesos_proto::util::is_terminal(u.state()),
            "{task_id} ended in {:?} ({})",
            u.state(),
            u.message()
        );
    }
}

/// `GET url` → (status, Content-Type, body).
async fn get(url: &str) -> (u16, String, String) {
    let r = http().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, r.text().await.unwrap())
}

/// The agent (`http://ip:port`) and executor sandbox of `task_id`, found
/// through the master's `/master/state` and the agent's `/state`.
async fn sandbox_of(cluster: &mesos_local::LocalCluster, task_id: &str) -> (String, String) {
    let state = cluster.state();
    let fw = &state["frameworks"][0];
    let task = fw["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(fw["completed_tasks"].as_array().unwrap())
        .find(|t| t["id"] == task_id)
        .unwrap_or_else(|| panic!("{task_id} in {state}"))
        .clone();
    // A command task has no executor id at the master: its executor's id
    // is the task's.
    assert_eq!(task["executor_id"], "");
    let agent = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == task["slave_id"])
        .unwrap();
    let pid = agent["pid"].as_str().unwrap();
    let agent_url = format!("http://{}", pid.split_once('@').unwrap().1);
    let (status, _, body) = get(&format!("{agent_url}/state")).await;
    assert_eq!(status, 200, "{body}");
    let agent_state: Value = serde_json::from_str(&body).unwrap();
    let same: Value =
        serde_json::from_str(&get(&format!("{agent_url}/slave(1)/state")).await.2).unwrap();
    assert_eq!(same["id"], agent_state["id"]);
    let executor = agent_state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(agent_state["completed_frameworks"].as_array().unwrap())
        .filter(|f| f["id"] == task["framework_id"])
        .flat_map(|f| {
            f["executors"]
                .as_array()
                .unwrap()
                .iter()
                .chain(f["completed_executors"].as_array().unwrap())
        })
        .find(|e| e["id"] == task_id)
        .unwrap_or_else(|| panic!("executor of {task_id} in {agent_state}"))
        .clone();
    (
        agent_url,
        executor["directory"].as_str().unwrap().to_string(),
    )
}

fn read_url(agent: &str, path: &str, query: &str) -> String {
    format!("{agent}/files/read?path={}{query}", url_escape(path))
}

fn url_escape(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_string()
}

#[tokio::test]
async fn a_running_tasks_sandbox_is_read_and_browsed_as_a_mesos_agent_serves_it() {
    ensure_baton_executor();
    let (cluster, dir) = start(42700).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Protobuf,
        framework_info("files", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    let cmd = "i=0; while :; do echo line $i; echo oops $i >&2; i=$((i+1)); sleep 0.1; done";
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![command_task("ticker", &offer, cmd)])],
        None,
    )
    .await;
    until_state(&mut s, "ticker", TaskState::TaskRunning).await;
    let (agent, sandbox) = sandbox_of(&cluster, "ticker").await;
    let stdout = format!("{sandbox}/stdout");

    // offset -1 (and no offset): the size, no data.
    let mut size = 0;
    for query in ["&offset=-1", ""] {
        let (status, ct, body) = get(&read_url(&agent, &stdout, query)).await;
        assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"], "");
        size = v["offset"].as_u64().unwrap();
    }
    // Wait for a few lines, then read them from the start.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, _, body) = get(&read_url(&agent, &stdout, "&offset=0&length=14")).await;
        if body == r#"{"data":"line 0\nline 1\n","offset":0}"# {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "two lines: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, body) = get(&read_url(&agent, &stdout, "&offset=5&length=3")).await;
    assert_eq!(
        body, r#"{"data":"0\nl","offset":5}"#,
        "Mesos's key order too"
    );
    // Past the end: no data, the offset asked for.
    let (_, _, body) = get(&read_url(&agent, &stdout, "&offset=999999999&length=10")).await;
    assert_eq!(body, r#"{"data":"","offset":999999999}"#);
    // No length: to the end.
    let (_, _, body) = get(&read_url(&agent, &stdout, "&offset=0")).await;
    let all: Value = serde_json::from_str(&body).unwrap();
    assert!(all["data"].as_str().unwrap().len() as u64 >= size.max(14));
    // The virtual path of the executor's latest run reads the same file.
    let state = cluster.state();
    let fid = state["frameworks"][0]["id"].as_str().unwrap();
    let latest = format!("/frameworks/{fid}/executors/ticker/runs/latest/stdout");
    let (_, _, body) = get(&read_url(&agent, &latest, "&offset=0&length=7")).await;
    assert_eq!(body, r#"{"data":"line 0\n","offset":0}"#);
    // jsonp.
    let (status, ct, body) = get(&read_url(&agent, &stdout, "&offset=0&length=4&jsonp=cb")).await;
    assert_eq!((status, ct.as_str()), (200, "text/javascript"));
    assert_eq!(body, r#"cb({"data":"line","offset":0})"#);
    // /files/download: the file itself, as an attachment; not a directory.
    let download = http()
        .get(format!(
            "{agent}/files/download?path={}",
            url_escape(&stdout)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-disposition"],
        "attachment; filename=\"stdout\""
    );
    assert_eq!(
        download.headers()["content-type"],
        "application/octet-stream"
    );
    let bytes = download.text().await.unwrap();
    assert!(bytes.starts_with("line 0\nline 1\n"), "{bytes}");
    let (status, _, body) = get(&format!(
        "{agent}/files/download?path={}",
        url_escape(&sandbox)
    ))
    .await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Cannot download a directory.\n")
    );
    let (status, _, _) = get(&format!(
        "{agent}/files/download?path={}",
        url_escape(&format!("{sandbox}/nope"))
    ))
    .await;
    assert_eq!(status, 404);

    // Refusals, with Mesos's statuses and texts.
    let refused = [
        (
            format!("{agent}/files/read"),
            400,
            "Expecting 'path=value' in query.\n".to_string(),
        ),
        (
            format!("{agent}/files/read?path="),
            400,
            "Expecting 'path=value' in query.\n".into(),
        ),
        (
            read_url(&agent, &stdout, "&offset=-5"),
            400,
            "Negative offset provided: -5.\n".into(),
        ),
        (
            read_url(&agent, &stdout, "&offset=abc"),
            400,
            "Failed to parse offset: Failed to convert 'abc' to number.\n".into(),
        ),
        (
            read_url(&agent, &stdout, "&offset=0&length=-2"),
            400,
            "Negative length provided: -2.\n".into(),
        ),
        (
            read_url(&agent, &sandbox, "&offset=0"),
            400,
            "Cannot read a directory.\n".into(),
        ),
        (
            read_url(&agent, &format!("{sandbox}/nope"), ""),
            404,
            String::new(),
        ),
        (
            read_url(&agent, "/etc/passwd", "&offset=0"),
            404,
            String::new(),
        ),
        (read_url(&agent, "stdout", "&offset=0"), 404, String::new()),
        (
            read_url(&agent, &dir.path().display().to_string(), "&offset=0"),
            404,
            String::new(),
        ),
    ];
    for (url, status, text) in refused {
        let (got, ct, body) = get(&url).await;
        assert_eq!((got, body.as_str()), (status, text.as_str()), "{url}");
        assert_eq!(ct, "text/plain; charset=utf-8", "{url}");
    }
    // Nothing outside the sandbox, by `..` or by a symlink.
    let outside = dir.path().join("secret");
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, format!("{sandbox}/link")).unwrap();
    std::os::unix::fs::symlink(dir.path(), format!("{sandbox}/linkdir")).unwrap();
    let up = "/..".repeat(20);
    for path in [
        format!("{sandbox}{up}{}", outside.display()),
        format!("{sandbox}/link"),
        format!("{sandbox}/linkdir/secret"),
    ] {
        let (status, _, body) = get(&read_url(&agent, &path, "&offset=0")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body, format!("'{path}' is inaccessible.\n"));
        assert!(!body.contains("secret\n"));
    }

    // browse: the sandbox's entries, sorted, with Mesos's fields.
    let (status, ct, body) = get(&format!(
        "{agent}/files/browse?path={}",
        url_escape(&sandbox)
    ))
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
    let listing: Vec<Value> = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = listing
        .iter()
        .map(|e| e["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    for name in ["stdout", "stderr", "link", "linkdir"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let out = listing
        .iter()
        .find(|e| e["path"] == stdout.as_str())
        .unwrap();
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["gid", "mode", "mtime", "nlink", "path", "size", "uid"]
    );
    assert!(out["mode"].as_str().unwrap().starts_with("-rw"), "{out}");
    assert!(out["size"].as_u64().unwrap() > 0 && out["nlink"] == 1);
    assert!(out["mtime"].is_f64() && out["uid"].is_string() && out["gid"].is_string());
    let linkdir = listing
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("/linkdir"))
        .unwrap();
    assert!(
        linkdir["mode"].as_str().unwrap().starts_with('d'),
        "followed"
    );
    // A file browses as [], a missing path is 404, a way out is 400.
    let browse = |path: &str| format!("{agent}/files/browse?path={}", url_escape(path));
    assert_eq!(get(&browse(&stdout)).await.2, "[]");
    assert_eq!(get(&browse(&format!("{sandbox}/nope"))).await.0, 404);
    assert_eq!(get(&browse("/etc")).await.0, 404);
    assert_eq!(get(&browse(&format!("{sandbox}/linkdir"))).await.0, 400);
    assert_eq!(get(&format!("{agent}/files/browse")).await.0, 400);
    // /files/debug names the attached paths.
    let (_, _, body) = get(&format!("{agent}/files/debug")).await;
    let debug: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        debug[format!("/frameworks/{fid}/executors/ticker/runs/latest")],
        sandbox.as_str()
    );

    s.kill("ticker").await;
    until_state(&mut s, "ticker", TaskState::TaskKilled).await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn an_ended_tasks_sandbox_stays_readable() {
    ensure_baton_executor();
    let (cluster, dir) = start(43000).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("ended", true, 60.0),
    )
    .await;
    let offer = s.offers_from(1).await.remove(0);
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![command_task(
            "quick",
            &offer,
            "echo bye; echo why >&2",
        )])],
        None,
    )
    .await;
    until_state(&mut s, "quick", TaskState::TaskFinished).await;
    // The executor ends after its task: its run moves to the completed
    // executors and its files stay served.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let (agent, run) = loop {
        assert!(tokio::time::Instant::now() < deadline, "the ended run");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let state = cluster.state();
        let Some(slave) = state["frameworks"][0]["completed_tasks"][0]["slave_id"].as_str() else {
            continue;
        };
        let agent = state["slaves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == slave)
            .unwrap()["pid"]
            .as_str()
            .unwrap()
            .split_once('@')
            .unwrap()
            .1
            .to_string();
        let agent_state: Value =
            serde_json::from_str(&get(&format!("http://{agent}/state")).await.2).unwrap();
        let run = agent_state["completed_frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .chain(agent_state["frameworks"].as_array().unwrap())
            .flat_map(|f| f["completed_executors"].as_array().unwrap())
            .find(|e| e["id"] == "quick")
            .cloned();
        if let Some(run) = run {
            break (agent, run);
        }
    };
    assert_eq!(run["completed_tasks"][0]["id"], "quick", "{run}");
    let sandbox = run["directory"].as_str().unwrap();
    let url = read_url(
        &format!("http://{agent}"),
        &format!("{sandbox}/stdout"),
        "&offset=0",
    );
    assert_eq!(get(&url).await.2, r#"{"data":"bye\n","offset":0}"#);
    stop(cluster, dir.path()).await;
}
