//! `baton task list|kill` (and `logs`, in [`super::logs`]): `/v2/tasks`,
//! `/v2/apps/{id}/tasks`, `/v2/tasks/delete`.

use hyper::Method;
use serde_json::{Value, json};

use super::apps::tasks_table;
use super::args::TaskAction;
use super::error::CliError;
use super::{Ctx, id_path, logs, watch};

/// The query of a kill: `scale` and `wipe` when set.
pub fn kill_query(scale: bool, wipe: bool) -> String {
    let mut params = Vec::new();
    if scale {
        params.push("scale=true");
    }
    if wipe {
        params.push("wipe=true");
    }
    if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    }
}

/// `baton task ...`.
pub async fn run(ctx: &Ctx, action: TaskAction) -> Result<(), CliError> {
    let client = &ctx.client;
    match action {
        TaskAction::List { app } => {
            let path = match &app {
                Some(app) => format!("/v2/apps{}/tasks", id_path(app)),
                None => "/v2/tasks".to_string(),
            };
            let body = client.get_json(&path).await?;
            if ctx.json {
                ctx.print_json(&body);
            } else {
                let tasks = body
                    .get("tasks")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                print!("{}", tasks_table(&tasks));
            }
            Ok(())
        }
        TaskAction::Kill { ids, scale, wipe } => {
            let body = json!({ "ids": ids }).to_string().into_bytes();
            let path = format!("/v2/tasks/delete{}", kill_query(scale, wipe));
            let reply = client.call(Method::POST, &path, Some(body)).await?;
            if scale {
                return watch::written(ctx, reply, &format!("killed {}", ids.join(", "))).await;
            }
            let answer = reply.json()?;
            if ctx.json {
                ctx.print_json(&answer);
                return Ok(());
            }
            let killed: Vec<&str> = answer
                .get("tasks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("id").and_then(Value::as_str))
                .collect();
            if killed.is_empty() {
                println!("no task killed");
            }
            for id in killed {
                println!("killed {id}");
            }
            Ok(())
        }
        TaskAction::Logs {
            id,
            follow,
            stderr,
            lines,
            master,
        } => {
            let file = if stderr { "stderr" } else { "stdout" };
            logs::run(ctx, &id, file, lines, follow, master.as_deref()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_say_scale_and_wipe_only_when_asked() {
        assert_eq!(kill_query(false, false), "");
        assert_eq!(kill_query(true, false), "?scale=true");
        assert_eq!(kill_query(true, true), "?scale=true&wipe=true");
        assert_eq!(kill_query(false, true), "?wipe=true");
    }
}
