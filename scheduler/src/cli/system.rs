//! `baton queue`, `baton leader`, `baton info`: `/v2/queue` (with the
//! reasons offers were declined: `processedOffersSummary`, Baton's
//! `rejectedByConstraint`, Marathon's `lastUnusedOffers`), `/v2/leader`,
//! `/v2/info`.

use serde_json::Value;

use super::error::CliError;
use super::{Ctx, table};

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn num(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// `reason declined` for each reason of a reject summary that declined
/// offers.
fn declined(summary: Option<&Value>) -> Vec<String> {
    summary
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("declined").and_then(Value::as_u64).unwrap_or(0) > 0)
        .map(|r| {
            format!(
                "{} {}",
                r.get("reason").and_then(Value::as_str).unwrap_or("?"),
                r.get("declined").and_then(Value::as_u64).unwrap_or(0)
            )
        })
        .collect()
}

/// `baton queue`'s text for a `/v2/queue` answer: per waiting app, how
/// many wait, the launch delay, and why offers were not used.
pub fn queue_text(body: &Value) -> String {
    let entries = body
        .get("queue")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        return "nothing waits for offers\n".into();
    }
    let mut out = String::new();
    for e in &entries {
        let id = e
            .pointer("/app/id")
            .or_else(|| e.pointer("/pod/id"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        out.push_str(&format!(
            "{id}: {} waiting since {}, launch delay {}s{}\n",
            num(e, "/count"),
            text(e, "/since"),
            num(e, "/delay/timeLeftSeconds"),
            if e.pointer("/delay/overdue") == Some(&Value::Bool(true)) {
                " (overdue)"
            } else {
                ""
            }
        ));
        let summary = e.get("processedOffersSummary");
        if let Some(s) = summary {
            out.push_str(&format!(
                "  offers: {} processed, {} unused{}\n",
                num(s, "/processedOffersCount"),
                num(s, "/unusedOffersCount"),
                s.get("lastUnusedOfferAt")
                    .and_then(Value::as_str)
                    .map(|t| format!(" (last unused at {t})"))
                    .unwrap_or_default()
            ));
            let last = declined(s.get("rejectSummaryLastOffers"));
            if !last.is_empty() {
                out.push_str(&format!("  declined (last offers): {}\n", last.join(", ")));
            }
            let all = declined(s.get("rejectSummaryLaunchAttempt"));
            if !all.is_empty() && all != last {
                out.push_str(&format!("  declined (since waiting): {}\n", all.join(", ")));
            }
            for c in s
                .get("rejectedByConstraint")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let constraint = c
                    .get("constraint")
                    .map(|v| match v {
                        Value::Array(parts) => parts
                            .iter()
                            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(":"),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  constraint {constraint} declined {}\n",
                    c.get("declined").and_then(Value::as_u64).unwrap_or(0)
                ));
            }
        }
        for offer in e
            .get("lastUnusedOffers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let reasons: Vec<&str> = offer
                .get("reason")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(&format!(
                "  offer from {} at {}: {}\n",
                text(offer, "/offer/hostname"),
                text(offer, "/timestamp"),
                reasons.join(", ")
            ));
        }
        if let Some(failure) = e.get("lastTaskFailure").filter(|f| f.is_object()) {
            out.push_str(&format!(
                "  last launch failure: {} {}\n",
                text(failure, "/state"),
                text(failure, "/message")
            ));
        }
    }
    out
}

/// `baton queue`.
pub async fn queue(ctx: &Ctx) -> Result<(), CliError> {
    let body = ctx
        .client
        .get_json("/v2/queue?embed=lastUnusedOffers")
        .await?;
    if ctx.json {
        ctx.print_json(&body);
    } else {
        print!("{}", queue_text(&body));
    }
    Ok(())
}

/// `baton leader`.
pub async fn leader(ctx: &Ctx) -> Result<(), CliError> {
    let body = ctx.client.get_json("/v2/leader").await?;
    if ctx.json {
        ctx.print_json(&body);
    } else {
        println!("{}", text(&body, "/leader"));
    }
    Ok(())
}

/// `baton info`'s text for a `/v2/info` answer.
pub fn info_text(body: &Value) -> String {
    let mut items = vec![
        ("name", text(body, "/name").to_string()),
        ("version", text(body, "/version").to_string()),
        ("leader", text(body, "/leader").to_string()),
        ("framework id", text(body, "/frameworkId").to_string()),
        (
            "mesos master",
            text(body, "/marathon_config/master").to_string(),
        ),
        (
            "framework name",
            text(body, "/marathon_config/framework_name").to_string(),
        ),
        (
            "mesos role",
            text(body, "/marathon_config/mesos_role").to_string(),
        ),
        ("http port", num(body, "/http_config/http_port").to_string()),
    ];
    let zk = text(body, "/zookeeper_config/zk");
    if !zk.is_empty() {
        items.push(("zookeeper", zk.to_string()));
    }
    table::pairs(&items)
}

/// `baton info`.
pub async fn info(ctx: &Ctx) -> Result<(), CliError> {
    let body = ctx.client.get_json("/v2/info").await?;
    if ctx.json {
        ctx.print_json(&body);
    } else {
        print!("{}", info_text(&body));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_queue_says_which_reason_declined_offers() {
        let body = json!({"queue": [{
            "app": {"id": "/web"}, "count": 2, "since": "t0",
            "delay": {"timeLeftSeconds": 3, "overdue": false},
            "processedOffersSummary": {
                "processedOffersCount": 6, "unusedOffersCount": 6, "lastUnusedOfferAt": "t1",
                "rejectSummaryLastOffers": [
                    {"reason": "UnfulfilledRole", "declined": 0, "processed": 3},
                    {"reason": "UnfulfilledConstraint", "declined": 3, "processed": 3}],
                "rejectSummaryLaunchAttempt": [
                    {"reason": "UnfulfilledConstraint", "declined": 5, "processed": 6},
                    {"reason": "InsufficientCpus", "declined": 1, "processed": 1}],
                "rejectedByConstraint": [{"constraint": ["hostname", "UNIQUE"], "declined": 3}],
            },
            "lastUnusedOffers": [{"offer": {"hostname": "127.0.0.2"}, "timestamp": "t2",
                                   "reason": ["UnfulfilledConstraint"]}],
            "lastTaskFailure": {"state": "TASK_FAILED", "message": "no image"},
        }]});
        assert_eq!(
            queue_text(&body),
            "/web: 2 waiting since t0, launch delay 3s\n\
             \x20 offers: 6 processed, 6 unused (last unused at t1)\n\
             \x20 declined (last offers): UnfulfilledConstraint 3\n\
             \x20 declined (since waiting): UnfulfilledConstraint 5, InsufficientCpus 1\n\
             \x20 constraint hostname:UNIQUE declined 3\n\
             \x20 offer from 127.0.0.2 at t2: UnfulfilledConstraint\n\
             \x20 last launch failure: TASK_FAILED no image\n"
        );
        assert_eq!(
            queue_text(&json!({"queue": []})),
            "nothing waits for offers\n"
        );
    }

    #[test]
    fn info_names_the_master_and_framework() {
        let body = json!({"name": "baton", "version": "1.10.0", "leader": "h:8080",
            "frameworkId": "F1", "marathon_config": {"master": "http://127.0.0.1:5050"},
            "http_config": {"http_port": 8080}, "zookeeper_config": {}});
        let text = info_text(&body);
        assert!(
            text.contains("mesos master    http://127.0.0.1:5050\n"),
            "{text}"
        );
        assert!(!text.contains("zookeeper"));
    }
}
