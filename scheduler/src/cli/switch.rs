//! `baton switch VHOST --to APP`: a blue/green switch through a
//! `baton-router` (`POST /_router/switch`), followed to its end
//! (`GET /_router/switch/{id}`): each event as a line, exit 0 when done,
//! 1 with the router's reason when it failed.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use super::Ctx;
use super::args::SwitchArgs;
use super::error::CliError;

/// How often the switch's progress is read.
const POLL: Duration = Duration::from_millis(500);
/// The longest a switch is followed: its ready and drain timeouts, and
/// this much for the rest.
const SLACK: Duration = Duration::from_secs(120);

/// The body `POST /_router/switch` takes for `args`.
pub fn request(args: &SwitchArgs) -> Value {
    let mut body = json!({"vhost": args.vhost, "to": args.to, "scaleDown": !args.keep_old});
    if let Some(record) = &args.record {
        body["record"] = json!(record);
    }
    if let Some(s) = args.ready_timeout {
        body["readyTimeoutSeconds"] = json!(s);
    }
    if let Some(s) = args.drain_timeout {
        body["drainTimeoutSeconds"] = json!(s);
    }
    body
}

/// The events of `progress` after the first `shown`, as lines.
pub fn new_events(progress: &Value, shown: usize) -> Vec<String> {
    progress["events"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(shown)
        .map(|e| e["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Runs `baton switch`.
pub async fn run(ctx: &Ctx, args: &SwitchArgs) -> Result<(), CliError> {
    let router = ctx.client.at(&args.router);
    let body = serde_json::to_vec(&request(args)).map_err(|e| CliError::Usage(e.to_string()))?;
    let started = router
        .call(Method::POST, "/_router/switch", Some(body))
        .await?
        .json()?;
    let id = started["id"].as_u64().ok_or_else(|| CliError::Protocol {
        url: router.url("/_router/switch"),
        reason: "no switch id in the answer".into(),
    })?;
    if !ctx.wait {
        if ctx.json {
            println!("{started}");
        } else {
            println!("switch {id} started: {} → {}", args.vhost, args.to);
        }
        return Ok(());
    }
    let limit = SLACK
        + Duration::from_secs(args.ready_timeout.unwrap_or(300) + args.drain_timeout.unwrap_or(60));
    let path = format!("/_router/switch/{id}");
    match tokio::time::timeout(limit, follow(ctx, &router, id, &path)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(CliError::Protocol {
            url: router.url(&path),
            reason: format!("switch {id} still running after {}s", limit.as_secs()),
        }),
    }
}

/// Prints switch `id`'s events as they come, until it ends.
async fn follow(
    ctx: &Ctx,
    router: &super::client::Client,
    id: u64,
    path: &str,
) -> Result<(), CliError> {
    let mut shown = 0;
    loop {
        let progress = router.get_json(path).await?;
        if !ctx.json {
            for line in new_events(&progress, shown) {
                println!("{line}");
                shown += 1;
            }
        }
        match progress["phase"].as_str() {
            Some("done") => {
                if ctx.json {
                    println!("{progress}");
                }
                return Ok(());
            }
            Some("failed") => {
                if ctx.json {
                    println!("{progress}");
                }
                let why = progress["events"]
                    .as_array()
                    .and_then(|e| e.last())
                    .and_then(|e| e["event"].as_str())
                    .unwrap_or("no reason given");
                return Err(CliError::Api {
                    status: 409,
                    body: json!({"message": format!("switch {id} failed: {why}")}).to_string(),
                });
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_says_what_the_flags_say() {
        let args = SwitchArgs {
            vhost: "shop.example.com".into(),
            to: "/shop/green".into(),
            router: "http://127.0.0.1:8000".into(),
            record: None,
            ready_timeout: None,
            drain_timeout: Some(5),
            keep_old: true,
        };
        assert_eq!(
            request(&args),
            json!({"vhost": "shop.example.com", "to": "/shop/green", "scaleDown": false, "drainTimeoutSeconds": 5})
        );
        let progress = json!({"events": [{"event": "a"}, {"event": "b"}, {"event": "c"}]});
        assert_eq!(new_events(&progress, 1), ["b", "c"]);
    }
}
