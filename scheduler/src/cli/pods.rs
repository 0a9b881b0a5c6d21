//! `baton pod ...`: the pods of `/v2/pods`. Writes send the file's bytes
//! as they are (the server judges them); `scale` reads the pod, sets
//! `scaling.instances` and writes it back, which restarts nothing.

use hyper::Method;
use serde_json::Value;

use super::args::PodAction;
use super::error::CliError;
use super::table;
use super::{Ctx, id_path, read_input, watch};

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A number as people write it (`32`, not `32.0`); `-` when absent.
fn number(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .map_or_else(|| "-".into(), |n| format!("{n}"))
}

/// What one instance of `spec` takes: its containers' resources summed.
fn per_instance(spec: &Value, resource: &str) -> String {
    let total: f64 = list(spec, "/containers")
        .iter()
        .filter_map(|c| c.pointer(&format!("/resources/{resource}"))?.as_f64())
        .sum();
    format!("{}", (total * 1000.0).round() / 1000.0)
}

/// `stable/wanted` of a `::status` answer.
fn instances_of(status: &Value) -> String {
    let stable = list(status, "/instances")
        .iter()
        .filter(|i| i["status"] == "STABLE")
        .count();
    let wanted = status
        .pointer("/spec/scaling/instances")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    format!("{stable}/{wanted}")
}

/// The `pod list` table of a `/v2/pods/::status` answer.
pub fn pods_table(statuses: &Value) -> String {
    let rows: Vec<Vec<String>> = statuses
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|s| {
            let spec = &s["spec"];
            let containers: Vec<&str> = list(spec, "/containers")
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            vec![
                text(s, "/id").to_string(),
                text(s, "/status").to_string(),
                instances_of(s),
                per_instance(spec, "cpus"),
                per_instance(spec, "mem"),
                table::truncate(&containers.join(","), 40),
            ]
        })
        .collect();
    table::render(
        &["ID", "STATUS", "STABLE", "CPUS", "MEM", "CONTAINERS"],
        &rows,
    )
}

/// `pod show`'s text for a `/v2/pods/{id}::status` answer: the pod, then
/// a line per container of each instance.
pub fn pod_text(status: &Value) -> String {
    let spec = &status["spec"];
    let mut items = vec![
        ("id", text(status, "/id").to_string()),
        ("status", text(status, "/status").to_string()),
        ("instances", instances_of(status) + " stable"),
        (
            "per instance",
            format!(
                "cpus {}, mem {} (containers), executor cpus {}, mem {}",
                per_instance(spec, "cpus"),
                per_instance(spec, "mem"),
                number(spec, "/executorResources/cpus"),
                number(spec, "/executorResources/mem"),
            ),
        ),
        ("version", text(status, "/spec/version").to_string()),
    ];
    let volumes: Vec<String> = list(spec, "/volumes")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap_or("");
            match v.pointer("/persistent/size") {
                Some(size) => format!("{name} (persistent, {size} MB)"),
                None if v.get("host").is_some() => format!("{name} (host {})", v["host"]),
                None => format!("{name} (ephemeral)"),
            }
        })
        .collect();
    if !volumes.is_empty() {
        items.push(("volumes", volumes.join(", ")));
    }
    let mut out = table::pairs(&items);
    let rows: Vec<Vec<String>> = list(status, "/instances")
        .iter()
        .flat_map(|i| {
            list(i, "/containers").iter().map(move |c| {
                let ports: Vec<String> = list(c, "/endpoints")
                    .iter()
                    .filter_map(|e| {
                        Some(format!(
                            "{}:{}",
                            e["name"].as_str()?,
                            e["allocatedHostPort"].as_u64()?
                        ))
                    })
                    .collect();
                let healthy = list(c, "/conditions")
                    .iter()
                    .find(|k| k["name"] == "healthy")
                    .map_or("-", |k| match k["value"].as_str() {
                        Some("true") => "healthy",
                        _ => "unhealthy",
                    });
                vec![
                    text(i, "/id").to_string(),
                    text(i, "/status").to_string(),
                    text(i, "/agentHostname").to_string(),
                    text(c, "/name").to_string(),
                    text(c, "/status").to_string(),
                    healthy.to_string(),
                    if ports.is_empty() {
                        "-".into()
                    } else {
                        ports.join(",")
                    },
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table::render(
            &[
                "INSTANCE",
                "STATUS",
                "HOST",
                "CONTAINER",
                "STATE",
                "HEALTH",
                "ENDPOINTS",
            ],
            &rows,
        ));
    }
    out
}

/// `pod`, as `GET /v2/pods/{id}` wrote it, ready to be written back with
/// `instances` (its versions are the server's to set).
pub fn scaled(mut pod: Value, instances: u32) -> Value {
    if let Some(o) = pod.as_object_mut() {
        o.remove("version");
        o.remove("versionInfo");
    }
    match pod.pointer_mut("/scaling") {
        Some(Value::Object(scaling)) => {
            scaling.insert("instances".into(), instances.into());
        }
        _ => pod["scaling"] = serde_json::json!({"kind": "fixed", "instances": instances}),
    }
    pod
}

fn force_query(force: bool) -> &'static str {
    if force { "?force=true" } else { "" }
}

/// `baton pod ...`.
pub async fn run(ctx: &Ctx, action: PodAction) -> Result<(), CliError> {
    let client = &ctx.client;
    match action {
        PodAction::List => {
            let body = client.get_json("/v2/pods/::status").await?;
            if ctx.json {
                ctx.print_json(&body);
            } else {
                print!("{}", pods_table(&body));
            }
            Ok(())
        }
        PodAction::Show { id } => {
            let body = client
                .get_json(&format!("/v2/pods{}::status", id_path(&id)))
                .await?;
            if ctx.json {
                ctx.print_json(&body);
            } else {
                print!("{}", pod_text(&body));
            }
            Ok(())
        }
        PodAction::Add { file, force } => {
            let body = read_input(&file)?;
            let path = format!("/v2/pods{}", force_query(force.force));
            let reply = client.call(Method::POST, &path, Some(body)).await?;
            let id = reply
                .json()
                .ok()
                .and_then(|b| b.get("id").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default();
            watch::written(ctx, reply, &format!("pod {id} created")).await
        }
        PodAction::Update { id, file, force } => {
            let body = read_input(&file)?;
            let path = format!("/v2/pods{}{}", id_path(&id), force_query(force.force));
            let reply = client.call(Method::PUT, &path, Some(body)).await?;
            watch::written(ctx, reply, &format!("pod {} updated", id_path(&id))).await
        }
        PodAction::Scale {
            id,
            instances,
            force,
        } => {
            let pod = client
                .get_json(&format!("/v2/pods{}", id_path(&id)))
                .await?;
            let body = scaled(pod, instances).to_string().into_bytes();
            let path = format!("/v2/pods{}{}", id_path(&id), force_query(force.force));
            let reply = client.call(Method::PUT, &path, Some(body)).await?;
            watch::written(
                ctx,
                reply,
                &format!("pod {} scaled to {instances}", id_path(&id)),
            )
            .await
        }
        PodAction::Remove { id, force } => {
            let path = format!("/v2/pods{}{}", id_path(&id), force_query(force.force));
            let reply = client.call(Method::DELETE, &path, None).await?;
            watch::written(ctx, reply, &format!("pod {} removed", id_path(&id))).await
        }
        PodAction::Kill {
            id,
            instances,
            wipe,
        } => {
            let path = format!(
                "/v2/pods{}::instances{}",
                id_path(&id),
                if wipe { "?wipe=true" } else { "" }
            );
            let body =
                serde_json::to_vec(&instances).map_err(|e| CliError::Usage(e.to_string()))?;
            let reply = client.call(Method::DELETE, &path, Some(body)).await?;
            let killed = reply.json()?;
            if ctx.json {
                ctx.print_json(&killed);
            } else {
                for instance in killed.as_array().map_or(&[][..], Vec::as_slice) {
                    println!("killed {}", text(instance, "/id"));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status() -> Value {
        json!({"id": "/shop/web", "status": "DEGRADED",
            "spec": {"id": "/shop/web", "version": "v1", "scaling": {"kind": "fixed", "instances": 2},
                "executorResources": {"cpus": 0.1, "mem": 32},
                "volumes": [{"name": "shared"}, {"name": "data", "persistent": {"size": 64}}],
                "containers": [
                    {"name": "writer", "resources": {"cpus": 0.1, "mem": 32}},
                    {"name": "server", "resources": {"cpus": 0.2, "mem": 64}}]},
            "instances": [
                {"id": "shop_web.instance-1", "status": "STABLE", "agentHostname": "h1",
                 "containers": [
                    {"name": "writer", "status": "TASK_RUNNING", "endpoints": [], "conditions": []},
                    {"name": "server", "status": "TASK_RUNNING",
                     "endpoints": [{"name": "http", "allocatedHostPort": 31005}],
                     "conditions": [{"name": "healthy", "value": "true"}]}]},
                {"id": "shop_web.instance-2", "status": "PENDING", "containers": []}]})
    }

    #[test]
    fn the_pod_table_shows_status_stable_instances_and_resources() {
        assert_eq!(
            pods_table(&json!([status()])),
            "ID         STATUS    STABLE  CPUS  MEM  CONTAINERS\n\
             /shop/web  DEGRADED  1/2     0.3   96   writer,server\n"
        );
    }

    #[test]
    fn a_pod_shows_its_volumes_and_each_instances_containers() {
        let text = pod_text(&status());
        assert!(
            text.contains("volumes       shared (ephemeral), data (persistent, 64 MB)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "shop_web.instance-1  STABLE  h1    server     TASK_RUNNING  healthy  http:31005\n"
            ),
            "{text}"
        );
        assert!(text.contains("instances     1/2 stable\n"), "{text}");
        assert!(
            text.contains("cpus 0.3, mem 96 (containers), executor cpus 0.1, mem 32\n"),
            "{text}"
        );
    }

    #[test]
    fn scaling_keeps_the_definition_and_drops_the_versions() {
        let pod = json!({"id": "/p", "version": "v", "versionInfo": {}, "labels": {"a": "b"},
            "scaling": {"kind": "fixed", "instances": 1, "maxInstances": 5}});
        assert_eq!(
            scaled(pod, 3),
            json!({"id": "/p", "labels": {"a": "b"},
                "scaling": {"kind": "fixed", "instances": 3, "maxInstances": 5}})
        );
        assert_eq!(
            scaled(json!({"id": "/p"}), 0)["scaling"],
            json!({"kind": "fixed", "instances": 0})
        );
    }
}
