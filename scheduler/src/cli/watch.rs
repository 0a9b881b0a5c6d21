//! Following a deployment to its end.
//!
//! The CLI subscribes to `/v2/events` (deployment, status and health
//! events only) and re-reads `/v2/deployments` and the current step's
//! apps when an event concerns the deployment or its apps, bursts of
//! events coalesced. Without an event stream (a server or proxy that
//! refuses it, or a stream that broke) it polls every
//! [`FALLBACK_POLL`]; with one, it still looks every [`SAFETY_POLL`].
//!
//! The deployment is done when `deployment_success` names it or it leaves
//! `/v2/deployments` without a failure; it failed when `deployment_failed`
//! names it or its entry carries Baton's `failure` (the reason is printed;
//! Baton keeps the deployment going, so a rollback is the operator's
//! call). Ctrl-C stops following, never the deployment.
//!
//! Progress shows as one bar per step on a terminal (instances there of
//! wanted over the step's apps, the step's actions), as plain lines (one
//! per change, [`progress::changes`]) otherwise, and not at all with
//! `--json`.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::Ctx;
use super::client::{Client, Events, Reply};
use super::error::CliError;
use super::progress::{self, StepProgress};
use super::sse::SseEvent;

/// How often to look without an event stream.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);
/// How often to look even with one (an event may have been missed).
pub const SAFETY_POLL: Duration = Duration::from_secs(10);
/// How long to keep collecting a burst of events before looking.
const COALESCE: Duration = Duration::from_millis(100);

/// The events that can move a deployment on.
pub const EVENT_TYPES: [&str; 8] = [
    "deployment_info",
    "deployment_step_success",
    "deployment_step_failure",
    "deployment_success",
    "deployment_failed",
    "status_update_event",
    "health_status_changed_event",
    "instance_changed_event",
];

/// What an event means for the deployment followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// It succeeded.
    Finished,
    /// It failed, for this reason if the event gives one.
    Failed(Option<String>),
    /// Something it waits for changed: look again.
    Look,
    /// Unrelated.
    Ignore,
}

/// What `event` means for deployment `id`, which touches `apps`.
pub fn meaning(event: &SseEvent, id: &str, apps: &[String]) -> Meaning {
    let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
        return Meaning::Ignore;
    };
    let text = |p: &str| data.pointer(p).and_then(Value::as_str);
    let ours = text("/id") == Some(id) || text("/plan/id") == Some(id);
    let about_app = |p: &str| text(p).is_some_and(|a| apps.iter().any(|x| x == a));
    let kind = text("/eventType").unwrap_or(event.event.as_str());
    match kind {
        "deployment_success" if ours => Meaning::Finished,
        "deployment_failed" if ours => Meaning::Failed(text("/reason").map(str::to_string)),
        "deployment_info" | "deployment_step_success" | "deployment_step_failure" if ours => {
            Meaning::Look
        }
        "status_update_event" | "health_status_changed_event" if about_app("/appId") => {
            Meaning::Look
        }
        "instance_changed_event" if about_app("/runSpecId") => Meaning::Look,
        _ => Meaning::Ignore,
    }
}

/// Baton's stated reason in a `/v2/deployments` entry.
pub fn failure_reason(deployment: &Value) -> Option<String> {
    let failure = deployment.get("failure")?;
    let reason = failure.get("reason").and_then(Value::as_str)?;
    Some(match failure.get("appId").and_then(Value::as_str) {
        Some(app) => format!("{reason} (app {app})"),
        None => reason.to_string(),
    })
}

/// How progress is shown.
enum Display {
    /// Bars on a terminal.
    Bars {
        multi: MultiProgress,
        bars: Vec<ProgressBar>,
    },
    /// One line per change.
    Lines(Vec<StepProgress>),
    /// Nothing (`--json`).
    Quiet,
}

impl Display {
    fn new(ctx: &Ctx, id: &str) -> Display {
        if ctx.json {
            return Display::Quiet;
        }
        println!("deployment {id}");
        if ctx.tty {
            return Display::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                bars: Vec::new(),
            };
        }
        Display::Lines(Vec::new())
    }

    fn show(&mut self, steps: &[StepProgress]) {
        match self {
            Display::Quiet => {}
            Display::Lines(before) => {
                for line in progress::changes(before, steps) {
                    println!("{line}");
                }
                *before = steps.to_vec();
            }
            Display::Bars { multi, bars } => {
                let style = ProgressStyle::with_template("[{bar:24}] {pos:>3}/{len:<3} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                while bars.len() < steps.len() {
                    let bar = multi.add(ProgressBar::new(1));
                    bar.set_style(style.clone());
                    bars.push(bar);
                }
                for (bar, step) in bars.iter().zip(steps) {
                    let (done, wanted) = step.counts();
                    bar.set_length(wanted.max(1));
                    bar.set_position(if wanted == 0 {
                        u64::from(step.state == progress::StepState::Done)
                    } else {
                        done
                    });
                    bar.set_message(step.summary());
                }
            }
        }
    }

    fn end(&mut self) {
        if let Display::Bars { bars, .. } = self {
            for bar in bars.iter() {
                bar.abandon();
            }
        }
    }
}

/// What one look at the API found.
enum Look {
    /// Not in `/v2/deployments` any more.
    Gone,
    /// In progress (failed too, with Baton's reason).
    Listed {
        steps: Vec<StepProgress>,
        apps: Vec<String>,
        failure: Option<String>,
    },
}

/// The app as `/v2/apps/{id}` shows it with its tasks, or for a pod's
/// action (`StartPod`, …) the pod's status read as an app for `action`;
/// `None` when it does not exist (or the caller may not see it).
async fn fetch_app(client: &Client, id: &str, action: &str) -> Result<Option<Value>, CliError> {
    let pod = action.ends_with("Pod");
    let path = match pod {
        true => format!("/v2/pods{}::status", super::id_path(id)),
        false => format!(
            "/v2/apps{}?embed=app.tasks&embed=app.counts&embed=app.readiness",
            super::id_path(id)
        ),
    };
    let reply = client.send(Method::GET, &path, None).await?;
    match reply.status {
        200 if pod => Ok(Some(progress::pod_as_app(&reply.json()?, action))),
        200 => Ok(reply.json()?.get("app").cloned()),
        403 | 404 => Ok(None),
        status => Err(CliError::Api {
            status,
            body: reply.text(),
        }),
    }
}

/// Reads `/v2/deployments` and the apps of the current step (the others
/// once, kept in `apps`).
async fn look(
    client: &Client,
    id: &str,
    apps: &mut BTreeMap<String, Option<Value>>,
) -> Result<Look, CliError> {
    let list = client.get_json("/v2/deployments").await?;
    let Some(deployment) = list.as_array().and_then(|l| {
        l.iter()
            .find(|d| d.get("id").and_then(Value::as_str) == Some(id))
    }) else {
        return Ok(Look::Gone);
    };
    let current = progress::current_step(deployment);
    for (i, step) in progress::steps_of(deployment).iter().enumerate() {
        for (action, app) in step {
            if i + 1 == current || !apps.contains_key(app) {
                let shown = fetch_app(client, app, action).await?;
                apps.insert(app.clone(), shown);
            }
        }
    }
    Ok(Look::Listed {
        steps: progress::progress(deployment, apps),
        apps: progress::affected_apps(deployment),
        failure: failure_reason(deployment),
    })
}

/// The next event, or never when there is no stream.
async fn next_event(events: &mut Option<Events>) -> Option<SseEvent> {
    match events {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

/// Follows deployment `id` to its end. Ctrl-C returns
/// [`CliError::Interrupted`], saying that the deployment goes on.
pub async fn follow(ctx: &Ctx, id: &str) -> Result<(), CliError> {
    let note = format!("stopped waiting; deployment {id} goes on (baton deployment watch {id})");
    // Listening before anything is shown: a Ctrl-C right after the first
    // line must still say that the deployment goes on (`ctrl_c()` would
    // only listen once first polled).
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| CliError::Usage(format!("cannot listen for Ctrl-C: {e}")))?;
    // Also for the process's own Ctrl-C listener, which may see it first.
    super::set_interrupt_note(Some(note.clone()));
    let mut display = Display::new(ctx, id);
    let outcome = tokio::select! {
        biased;
        outcome = follow_until_end(ctx, id, &mut display) => outcome,
        _ = interrupt.recv() => Err(CliError::Interrupted(Some(note))),
    };
    super::set_interrupt_note(None);
    display.end();
    if outcome.is_ok() && !ctx.json {
        println!("deployment {id} finished");
    }
    outcome
}

async fn follow_until_end(ctx: &Ctx, id: &str, display: &mut Display) -> Result<(), CliError> {
    let client = &ctx.client;
    // Subscribed before the first look, so no change falls between them.
    let mut events = match client.events(&EVENT_TYPES).await {
        Ok(events) => Some(events),
        Err(e) => {
            tracing::debug!(error = %e, "no event stream; polling /v2/deployments");
            None
        }
    };
    let mut apps = BTreeMap::new();
    let mut last: Vec<StepProgress> = Vec::new();
    let mut affected: Vec<String>;
    let mut failed_event: Option<Option<String>> = None;
    loop {
        match look(client, id, &mut apps).await? {
            Look::Gone => {
                if let Some(reason) = failed_event {
                    return Err(failed(id, reason, false));
                }
                display.show(&progress::completed(&last));
                return Ok(());
            }
            Look::Listed {
                steps,
                apps: touched,
                failure,
            } => {
                display.show(&steps);
                last = steps;
                affected = touched;
                if let Some(reason) = failure.or_else(|| failed_event.clone().flatten()) {
                    return Err(failed(id, Some(reason), true));
                }
                if let Some(reason) = failed_event {
                    return Err(failed(id, reason, true));
                }
            }
        }
        let poll = if events.is_some() {
            SAFETY_POLL
        } else {
            FALLBACK_POLL
        };
        // Wait for a relevant event (then a little more, for the rest of
        // its burst) or the next poll.
        let mut until = Box::pin(tokio::time::sleep(poll));
        let mut coalescing = false;
        loop {
            tokio::select! {
                event = next_event(&mut events) => match event {
                    None => {
                        tracing::debug!("event stream ended; polling /v2/deployments");
                        events = None;
                        break;
                    }
                    Some(event) => match meaning(&event, id, &affected) {
                        Meaning::Finished => {
                            display.show(&progress::completed(&last));
                            return Ok(());
                        }
                        Meaning::Failed(reason) => {
                            failed_event = Some(reason);
                            break;
                        }
                        Meaning::Look if !coalescing => {
                            coalescing = true;
                            until = Box::pin(tokio::time::sleep(COALESCE));
                        }
                        Meaning::Look | Meaning::Ignore => {}
                    },
                },
                _ = &mut until => break,
            }
        }
    }
}

/// The failure, saying what to do about one still in progress.
fn failed(id: &str, reason: Option<String>, still_listed: bool) -> CliError {
    let mut reason = reason.unwrap_or_else(|| "no reason given".into());
    if still_listed {
        reason.push_str(&format!(
            "\n  it is still in progress; revert it with: baton deployment rollback {id}"
        ));
    }
    CliError::DeploymentFailed {
        id: id.to_string(),
        reason,
    }
}

/// The deployment a write started: the `Marathon-Deployment-Id` header,
/// the body's `deploymentId`, or the first of its `deployments` (an app
/// just created).
pub fn deployment_of(reply: &Reply, body: &Value) -> Option<String> {
    reply
        .deployment_id
        .clone()
        .or_else(|| {
            body.get("deploymentId")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            body.pointer("/deployments/0/id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

/// The end of every write: print what was accepted (`what`, or the JSON
/// with `--json`), then follow its deployment unless `--no-wait`.
pub async fn written(ctx: &Ctx, reply: Reply, what: &str) -> Result<(), CliError> {
    let body = if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()?
    };
    let deployment = deployment_of(&reply, &body);
    if ctx.json {
        ctx.print_json(&body);
    } else {
        match &deployment {
            Some(id) => println!("{what} (deployment {id})"),
            None => println!("{what}"),
        }
    }
    match deployment {
        Some(id) if ctx.wait => follow(ctx, &id).await,
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, data: Value) -> SseEvent {
        SseEvent {
            event: kind.into(),
            data: data.to_string(),
        }
    }

    #[test]
    fn events_about_the_deployment_or_its_apps_matter() {
        let apps = vec!["/web".to_string()];
        let m = |kind: &str, data: Value| meaning(&event(kind, data), "d1", &apps);
        assert_eq!(
            m("deployment_success", json!({"id": "d1"})),
            Meaning::Finished
        );
        assert_eq!(
            m("deployment_success", json!({"id": "d2"})),
            Meaning::Ignore
        );
        assert_eq!(
            m(
                "deployment_failed",
                json!({"id": "d1", "reason": "task failed"})
            ),
            Meaning::Failed(Some("task failed".into()))
        );
        assert_eq!(
            m("deployment_step_failure", json!({"plan": {"id": "d1"}})),
            Meaning::Look
        );
        assert_eq!(
            m("deployment_info", json!({"plan": {"id": "d1"}})),
            Meaning::Look
        );
        assert_eq!(
            m(
                "status_update_event",
                json!({"appId": "/web", "taskStatus": "TASK_RUNNING"})
            ),
            Meaning::Look
        );
        assert_eq!(
            m("status_update_event", json!({"appId": "/db"})),
            Meaning::Ignore
        );
        assert_eq!(
            m("instance_changed_event", json!({"runSpecId": "/web"})),
            Meaning::Look
        );
        assert_eq!(
            m("health_status_changed_event", json!({"appId": "/web"})),
            Meaning::Look
        );
        assert_eq!(
            meaning(
                &SseEvent {
                    event: "x".into(),
                    data: "not json".into()
                },
                "d1",
                &apps
            ),
            Meaning::Ignore
        );
    }

    #[test]
    fn failures_name_their_app() {
        assert_eq!(
            failure_reason(&json!({"failure": {"appId": "/web", "reason": "exited with 1"}})),
            Some("exited with 1 (app /web)".into())
        );
        assert_eq!(failure_reason(&json!({"id": "d"})), None);
    }
}
