//! `baton deployment ...`: `/v2/deployments`. Cancel is Marathon's
//! `DELETE ?force=true` (stop where it is, 202); rollback is the plain
//! `DELETE`, which answers a new, reverting deployment that is followed
//! like any other.

use hyper::Method;
use serde_json::Value;

use super::args::DeploymentAction;
use super::error::CliError;
use super::{Ctx, table, watch};

/// The `deployment list` table.
pub fn deployments_table(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let actions: Vec<String> = d
                .get("currentActions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|a| {
                    format!(
                        "{} {}",
                        a.get("action").and_then(Value::as_str).unwrap_or("?"),
                        a.get("app").and_then(Value::as_str).unwrap_or("?")
                    )
                })
                .collect();
            vec![
                d.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                format!(
                    "{}/{}",
                    d.get("currentStep").and_then(Value::as_u64).unwrap_or(0),
                    d.get("totalSteps").and_then(Value::as_u64).unwrap_or(0)
                ),
                actions.join(", "),
                watch::failure_reason(d).map_or_else(|| "-".into(), |r| table::truncate(&r, 60)),
            ]
        })
        .collect();
    table::render(&["ID", "STEP", "CURRENT ACTIONS", "FAILURE"], &rows)
}

/// `baton deployment ...`.
pub async fn run(ctx: &Ctx, action: DeploymentAction) -> Result<(), CliError> {
    let client = &ctx.client;
    match action {
        DeploymentAction::List => {
            let body = client.get_json("/v2/deployments").await?;
            if ctx.json {
                ctx.print_json(&body);
            } else {
                print!("{}", deployments_table(&body));
            }
            Ok(())
        }
        DeploymentAction::Watch { id } => {
            let listed = client.get_json("/v2/deployments").await?;
            let known = listed.as_array().is_some_and(|l| {
                l.iter()
                    .any(|d| d.get("id").and_then(Value::as_str) == Some(&id))
            });
            if !known {
                return Err(CliError::NotFound(format!(
                    "deployment {id} is not in progress (finished, or never was)"
                )));
            }
            watch::follow(ctx, &id).await
        }
        DeploymentAction::Cancel { id } => {
            let path = format!("/v2/deployments/{id}?force=true");
            let reply = client.call(Method::DELETE, &path, None).await?;
            if ctx.json {
                ctx.print_json(&reply.json().unwrap_or(Value::Null));
            } else {
                println!("deployment {id} cancelled (its changes stay as far as they got)");
            }
            Ok(())
        }
        DeploymentAction::Rollback { id } => {
            let path = format!("/v2/deployments/{id}");
            let reply = client.call(Method::DELETE, &path, None).await?;
            watch::written(ctx, reply, &format!("deployment {id} rolling back")).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_show_their_step_actions_and_failure() {
        let list = json!([{
            "id": "d1", "currentStep": 1, "totalSteps": 2,
            "currentActions": [{"action": "StartApplication", "app": "/web"}],
            "failure": {"appId": "/web", "reason": "exited with 1"},
        }]);
        assert_eq!(
            deployments_table(&list),
            "ID  STEP  CURRENT ACTIONS        FAILURE\n\
             d1  1/2   StartApplication /web  exited with 1 (app /web)\n"
        );
    }
}
