//! `baton app ...` and `baton group ...`: the apps and groups of
//! `/v2/apps` and `/v2/groups`. Writes send the file's bytes as they are,
//! so the server judges them and its message (`Invalid JSON`, a 422's
//! fields) is what the user reads.

use hyper::Method;
use serde_json::{Value, json};

use super::args::{AppAction, GroupAction};
use super::error::CliError;
use super::table;
use super::{Ctx, id_path, read_input, watch};

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn float(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_f64)
        .map_or_else(|| "-".into(), |f| format!("{f}"))
}

/// The app's command line as shown: `cmd`, else `args`, else its image.
fn command_of(app: &Value) -> String {
    if let Some(cmd) = app.get("cmd").and_then(Value::as_str) {
        return cmd.to_string();
    }
    if let Some(args) = app.get("args").and_then(Value::as_array) {
        let words: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
        if !words.is_empty() {
            return words.join(" ");
        }
    }
    app.pointer("/container/docker/image")
        .and_then(Value::as_str)
        .map(|i| format!("image {i}"))
        .unwrap_or_default()
}

fn has_health_checks(app: &Value) -> bool {
    app.get("healthChecks")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
}

fn deployments_of(app: &Value) -> String {
    let ids: Vec<&str> = app
        .get("deployments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("id").and_then(Value::as_str))
        .collect();
    if ids.is_empty() {
        "-".into()
    } else {
        ids.join(",")
    }
}

/// The `app list` table of a `/v2/apps` answer.
pub fn apps_table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = body
        .get("apps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            let health = if has_health_checks(a) {
                format!("{}/{}", num(a, "tasksHealthy"), num(a, "instances"))
            } else {
                "-".into()
            };
            vec![
                text(a, "id").to_string(),
                format!("{}/{}", num(a, "tasksRunning"), num(a, "instances")),
                health,
                float(a, "cpus"),
                float(a, "mem"),
                deployments_of(a),
                table::truncate(&command_of(a), 48),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "RUNNING",
            "HEALTHY",
            "CPUS",
            "MEM",
            "DEPLOYMENT",
            "CMD",
        ],
        &rows,
    )
}

/// The tasks table shared by `app show` and `task list`.
pub fn tasks_table(tasks: &[Value]) -> String {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let ports: Vec<String> = t
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(ToString::to_string)
                .collect();
            let results = t
                .get("healthCheckResults")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let health = if results.is_empty() {
                "-"
            } else if results.iter().all(|r| r["alive"] == true) {
                "healthy"
            } else {
                "unhealthy"
            };
            vec![
                text(t, "id").to_string(),
                text(t, "appId").to_string(),
                text(t, "host").to_string(),
                if ports.is_empty() {
                    "-".into()
                } else {
                    ports.join(",")
                },
                text(t, "state").to_string(),
                health.to_string(),
                text(t, "startedAt").to_string(),
            ]
        })
        .collect();
    table::render(
        &["ID", "APP", "HOST", "PORTS", "STATE", "HEALTH", "STARTED"],
        &rows,
    )
}

/// `app show`'s text for a `/v2/apps/{id}` answer.
pub fn app_text(body: &Value) -> String {
    let app = body.get("app").unwrap_or(body);
    let mut items = vec![
        ("id", text(app, "id").to_string()),
        (
            "instances",
            format!(
                "{} (running {}, healthy {}, unhealthy {}, staged {})",
                num(app, "instances"),
                num(app, "tasksRunning"),
                num(app, "tasksHealthy"),
                num(app, "tasksUnhealthy"),
                num(app, "tasksStaged")
            ),
        ),
        (
            "resources",
            format!(
                "cpus {}, mem {}, disk {}",
                float(app, "cpus"),
                float(app, "mem"),
                float(app, "disk")
            ),
        ),
        ("command", command_of(app)),
        ("version", text(app, "version").to_string()),
        ("deployments", deployments_of(app)),
    ];
    if let Some(constraints) = app
        .get("constraints")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        let shown: Vec<String> = constraints
            .iter()
            .map(|c| {
                c.as_array()
                    .map(|parts| {
                        parts
                            .iter()
                            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(":")
                    })
                    .unwrap_or_default()
            })
            .collect();
        items.push(("constraints", shown.join(", ")));
    }
    if let Some(failure) = app.get("lastTaskFailure").filter(|f| f.is_object()) {
        items.push((
            "last failure",
            format!(
                "{} {} at {}: {}",
                text(failure, "taskId"),
                text(failure, "state"),
                text(failure, "timestamp"),
                text(failure, "message")
            ),
        ));
    }
    let mut out = table::pairs(&items);
    let tasks = app
        .get("tasks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !tasks.is_empty() {
        out.push('\n');
        out.push_str(&tasks_table(&tasks));
    }
    out
}

fn force_query(force: bool) -> &'static str {
    if force { "?force=true" } else { "" }
}

/// `baton app ...`.
pub async fn app(ctx: &Ctx, action: AppAction) -> Result<(), CliError> {
    let client = &ctx.client;
    match action {
        AppAction::List => {
            let body = client.get_json("/v2/apps").await?;
            if ctx.json {
                ctx.print_json(&body);
            } else {
                print!("{}", apps_table(&body));
            }
            Ok(())
        }
        AppAction::Show { id } => {
            let body = client
                .get_json(&format!(
                    "/v2/apps{}?embed=app.tasks&embed=app.counts&embed=app.deployments&embed=app.lastTaskFailure",
                    id_path(&id)
                ))
                .await?;
            if ctx.json {
                ctx.print_json(&body);
            } else {
                print!("{}", app_text(&body));
            }
            Ok(())
        }
        AppAction::Add { file, force } => {
            let body = read_input(&file)?;
            let reply = client
                .call(
                    Method::POST,
                    &format!("/v2/apps{}", force_query(force.force)),
                    Some(body),
                )
                .await?;
            let id = reply
                .json()
                .ok()
                .and_then(|b| b.get("id").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default();
            watch::written(ctx, reply, &format!("app {id} created")).await
        }
        AppAction::Update { id, file, force } => {
            let body = read_input(&file)?;
            let path = format!("/v2/apps{}{}", id_path(&id), force_query(force.force));
            let reply = client.call(Method::PUT, &path, Some(body)).await?;
            watch::written(ctx, reply, &format!("app {} updated", id_path(&id))).await
        }
        AppAction::Scale {
            id,
            instances,
            force,
        } => scale(ctx, &id, instances, force.force).await,
        AppAction::Suspend { id, force } => scale(ctx, &id, 0, force.force).await,
        AppAction::Restart { id, force } => {
            let path = format!(
                "/v2/apps{}/restart{}",
                id_path(&id),
                force_query(force.force)
            );
            let reply = client.call(Method::POST, &path, None).await?;
            watch::written(ctx, reply, &format!("app {} restarting", id_path(&id))).await
        }
        AppAction::Remove { id } => {
            let reply = client
                .call(Method::DELETE, &format!("/v2/apps{}", id_path(&id)), None)
                .await?;
            watch::written(ctx, reply, &format!("app {} removed", id_path(&id))).await
        }
    }
}

async fn scale(ctx: &Ctx, id: &str, instances: u32, force: bool) -> Result<(), CliError> {
    let body = json!({ "instances": instances }).to_string().into_bytes();
    let path = format!("/v2/apps{}{}", id_path(id), force_query(force));
    let reply = ctx.client.call(Method::PUT, &path, Some(body)).await?;
    watch::written(
        ctx,
        reply,
        &format!("app {} scaled to {instances}", id_path(id)),
    )
    .await
}

/// `/v2/groups/<id>`, or `/v2/groups` for the root.
fn group_path(id: &str) -> String {
    match id.trim_matches('/') {
        "" => "/v2/groups".into(),
        trimmed => format!("/v2/groups/{trimmed}"),
    }
}

/// Every group of a `/v2/groups` tree, depth first: id, apps directly in
/// it, groups directly in it, the instances its apps want.
fn group_rows(group: &Value, rows: &mut Vec<Vec<String>>) {
    let apps = group
        .get("apps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let groups = group
        .get("groups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    rows.push(vec![
        text(group, "id").to_string(),
        apps.len().to_string(),
        groups.len().to_string(),
        apps.iter()
            .map(|a| num(a, "instances"))
            .sum::<u64>()
            .to_string(),
    ]);
    for g in &groups {
        group_rows(g, rows);
    }
}

/// The `group list` table.
pub fn groups_table(root: &Value) -> String {
    let mut rows = Vec::new();
    group_rows(root, &mut rows);
    table::render(&["ID", "APPS", "GROUPS", "INSTANCES"], &rows)
}

/// `group show`: the tree, two spaces per level.
pub fn group_tree(group: &Value) -> String {
    fn walk(group: &Value, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        out.push_str(&format!("{pad}{}\n", text(group, "id")));
        for app in group
            .get("apps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&format!(
                "{pad}  {}  {} instance{}\n",
                text(app, "id"),
                num(app, "instances"),
                if num(app, "instances") == 1 { "" } else { "s" }
            ));
        }
        for g in group
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(g, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(group, 0, &mut out);
    out
}

/// `baton group ...`.
pub async fn group(ctx: &Ctx, action: GroupAction) -> Result<(), CliError> {
    let client = &ctx.client;
    match action {
        GroupAction::List => {
            let body = client.get_json("/v2/groups").await?;
            if ctx.json {
                ctx.print_json(&body);
            } else {
                print!("{}", groups_table(&body));
            }
            Ok(())
        }
        GroupAction::Show { id } => {
            let body = client.get_json(&group_path(&id)).await?;
            if ctx.json {
                ctx.print_json(&body);
            } else {
                print!("{}", group_tree(&body));
            }
            Ok(())
        }
        GroupAction::Add { file, force } => {
            let body = read_input(&file)?;
            let path = format!("/v2/groups{}", force_query(force.force));
            let reply = client.call(Method::POST, &path, Some(body)).await?;
            watch::written(ctx, reply, "group created").await
        }
        GroupAction::Update { id, file, force } => {
            let body = read_input(&file)?;
            let path = format!("{}{}", group_path(&id), force_query(force.force));
            let reply = client.call(Method::PUT, &path, Some(body)).await?;
            watch::written(ctx, reply, &format!("group {} updated", id_path(&id))).await
        }
        GroupAction::Remove { id, force } => {
            let path = format!("{}{}", group_path(&id), force_query(force.force));
            let reply = client.call(Method::DELETE, &path, None).await?;
            watch::written(ctx, reply, &format!("group {} removed", id_path(&id))).await
        }
        GroupAction::Scale { id, factor, force } => {
            if !factor.is_finite() || factor < 0.0 {
                return Err(CliError::Usage(format!(
                    "the factor must be a number of 0 or more, not {factor}"
                )));
            }
            let body = json!({ "scaleBy": factor }).to_string().into_bytes();
            let path = format!("{}{}", group_path(&id), force_query(force.force));
            let reply = client.call(Method::PUT, &path, Some(body)).await?;
            watch::written(
                ctx,
                reply,
                &format!("group {} scaled by {factor}", id_path(&id)),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_table_shows_counts_health_and_deployments() {
        let body = json!({"apps": [
            {"id": "/web", "instances": 3, "tasksRunning": 2, "tasksHealthy": 1,
             "healthChecks": [{}], "cpus": 0.1, "mem": 64.0, "cmd": "python3 -m http.server",
             "deployments": [{"id": "d1"}]},
            {"id": "/job", "instances": 0, "args": ["sleep", "9"], "cpus": 1, "mem": 128,
             "deployments": []},
        ]});
        assert_eq!(
            apps_table(&body),
            "ID    RUNNING  HEALTHY  CPUS  MEM  DEPLOYMENT  CMD\n\
             /web  2/3      1/3      0.1   64   d1          python3 -m http.server\n\
             /job  0/0      -        1     128  -           sleep 9\n"
        );
    }

    #[test]
    fn tasks_show_ports_and_health() {
        let tasks = vec![json!({"id": "web.1", "appId": "/web", "host": "127.0.0.1",
            "ports": [31000, 31001], "state": "TASK_RUNNING",
            "healthCheckResults": [{"alive": true}], "startedAt": "2024"})];
        let text = tasks_table(&tasks);
        assert!(
            text.ends_with("web.1  /web  127.0.0.1  31000,31001  TASK_RUNNING  healthy  2024\n"),
            "{text}"
        );
    }

    #[test]
    fn groups_list_and_show_as_a_tree() {
        let root = json!({"id": "/", "apps": [], "groups": [
            {"id": "/team-a", "apps": [{"id": "/team-a/web", "instances": 2},
                                        {"id": "/team-a/db", "instances": 1}],
             "groups": [{"id": "/team-a/jobs", "apps": [], "groups": []}]}]});
        assert_eq!(
            groups_table(&root),
            "ID            APPS  GROUPS  INSTANCES\n\
             /             0     1       0\n\
             /team-a       2     1       3\n\
             /team-a/jobs  0     0       0\n"
        );
        assert_eq!(
            group_tree(&root["groups"][0]),
            "/team-a\n  /team-a/web  2 instances\n  /team-a/db  1 instance\n  /team-a/jobs\n"
        );
        assert_eq!(group_path("/"), "/v2/groups");
        assert_eq!(group_path("team-a/"), "/v2/groups/team-a");
    }

    #[test]
    fn an_app_shows_its_failure_and_constraints() {
        let body = json!({"app": {"id": "/web", "instances": 1, "cmd": "x",
            "constraints": [["hostname", "UNIQUE"], ["rack_id", "GROUP_BY", "2"]],
            "lastTaskFailure": {"taskId": "web.1", "state": "TASK_FAILED",
                                "timestamp": "t", "message": "exited with 1"}}});
        let text = app_text(&body);
        assert!(
            text.contains("constraints   hostname:UNIQUE, rack_id:GROUP_BY:2\n"),
            "{text}"
        );
        assert!(
            text.contains("last failure  web.1 TASK_FAILED at t: exited with 1\n"),
            "{text}"
        );
    }
}
