//! The blue/green switch, driven: `POST /_router/switch` starts one (see
//! [`crate::split`] for how a switch record routes), `GET /_router/switch`
//! shows each one's progress.
//!
//! 1. Wait until the new app has all its instances routable (and at
//!    least one).
//! 2. Write the switch record (`PUT /v2/apps/<record>`, an app of 0
//!    instances: its labels name the live app, keeping the vhosts and
//!    other labels it had), then wait until this router routes by it.
//!    From that table generation on every new request of the group goes
//!    to the new app; those already sent finish where they are.
//! 3. Wait until the group's other apps have no request in flight here
//!    (with several routers, each drains its own; the timeout bounds the
//!    rest).
//! 4. Scale the others to 0 (`PUT /v2/apps/<id>` `{"instances": 0}`).
//!
//! A step that does not happen in time fails the switch with the reason;
//! nothing after it is done (a record already written stays: traffic
//! stays switched, and the old apps keep running).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::shared::Shared;
use crate::split::{self, Phase, SwitchRequest};
use crate::table::Table;

/// How often progress is looked at.
const POLL: Duration = Duration::from_millis(50);

/// Starts a switch on the background runtime; its number, or the number of
/// the one already running for the vhost.
pub fn start(shared: &Arc<Shared>, mut request: SwitchRequest) -> Result<u64, u64> {
    // The vhost as the table keys hosts: no port, no trailing dot.
    request.vhost = crate::table::normalize_host(&request.vhost);
    let id = shared
        .switches
        .start(request.clone(), shared.clock.now_ms())?;
    let driver = shared.clone();
    shared.background.spawn(async move {
        let outcome = run(&driver, id, &request).await;
        let now = driver.clock.now_ms();
        match outcome {
            Ok(()) => {
                info!(id, vhost = %request.vhost, to = %request.to, "switch done");
                driver
                    .switches
                    .update(id, now, Some("done".into()), |s| s.phase = Phase::Done);
            }
            Err(why) => {
                warn!(id, vhost = %request.vhost, to = %request.to, %why, "switch failed");
                driver
                    .switches
                    .update(id, now, Some(why), |s| s.phase = Phase::Failed);
            }
        }
    });
    Ok(id)
}

/// Polls `check` on each new table (and every [`POLL`]) until it gives a
/// value or `timeout` passes.
async fn wait_for<T>(
    shared: &Shared,
    timeout: Duration,
    mut check: impl FnMut(&Table) -> Option<T>,
) -> Option<T> {
    let mut tables = shared.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let table = tables.borrow_and_update().clone();
        if let Some(value) = check(&table) {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + POLL),
            tables.changed(),
        )
        .await;
    }
}

async fn run(shared: &Arc<Shared>, id: u64, request: &SwitchRequest) -> Result<(), String> {
    let note = |phase: Option<Phase>, event: String| {
        shared
            .switches
            .update(id, shared.clock.now_ms(), Some(event), |s| {
                if let Some(phase) = phase {
                    s.phase = phase;
                }
            });
    };
    let to = request.to.as_str();
    let vhost = request.vhost.as_str();
    let path = {
        let table = shared.table();
        let route = table
            .app(to)
            .ok_or_else(|| format!("the router knows no app {to}"))?;
        if !route.vhosts.iter().any(|h| h == vhost) {
            return Err(format!(
                "{to} does not serve {vhost} (its vhosts: {:?})",
                route.vhosts
            ));
        }
        route.path.clone()
    };
    let probe = path.as_deref().unwrap_or("/");

    // 1. Every instance of the new app routable.
    let ready = wait_for(shared, request.ready_timeout, |table| {
        let route = table.app(to)?;
        (route.instances > 0 && route.upstreams.len() as u64 >= route.instances)
            .then(|| route.upstreams.len())
    })
    .await
    .ok_or_else(|| {
        format!(
            "{to} did not have all its instances routable within {:?}",
            request.ready_timeout
        )
    })?;
    note(
        Some(Phase::Switching),
        format!("{to} ready: {ready} instances routable"),
    );

    // 2. The record, then routing by it.
    let table = shared.table();
    let group = table
        .group(vhost, probe)
        .ok_or_else(|| format!("no group serves {vhost}{probe}"))?;
    let from: Vec<String> = group
        .members
        .iter()
        .map(|r| r.app_id.clone())
        .filter(|a| a != to)
        .collect();
    let record = request
        .record
        .clone()
        .or_else(|| group.record.clone())
        .unwrap_or_else(|| request.default_record());
    shared
        .switches
        .update(id, shared.clock.now_ms(), None, |s| {
            s.record = Some(record.clone());
            s.from = from.clone();
        });
    let body = record_body(shared, &record, vhost, to).await?;
    shared
        .marathon
        .put_app(&record, &body)
        .await
        .map_err(|e| format!("writing the switch record {record}: {e}"))?;
    note(
        None,
        format!("switch record {record} written: {vhost} → {to}"),
    );
    let generation = wait_for(shared, Duration::from_secs(30), |table| {
        let group = table.group(vhost, probe)?;
        (group.source == split::SplitSource::Live && group.pick().app_id == to)
            .then_some(table.generation)
    })
    .await
    .ok_or_else(|| {
        format!(
            "the switch record {record} was written but this router did not route by it within 30 s"
        )
    })?;
    // The generation and the phase change together: a reader never sees
    // the one without the other.
    shared.switches.update(
        id,
        shared.clock.now_ms(),
        Some(format!(
            "routing {vhost} to {to} from table generation {generation}"
        )),
        |s| {
            s.switched_at_generation = Some(generation);
            s.phase = Phase::Draining;
        },
    );

    // 3. The others' requests in flight end.
    let in_flight = |table: &Table| -> u64 {
        from.iter()
            .filter_map(|a| table.app(a))
            .flat_map(|r| r.upstreams.iter())
            .map(|u| u.state.outstanding())
            .sum()
    };
    if wait_for(shared, request.drain_timeout, |table| {
        (in_flight(table) == 0).then_some(())
    })
    .await
    .is_none()
    {
        return Err(format!(
            "{} requests still in flight at {from:?} after {:?}: not scaled down",
            in_flight(&shared.table()),
            request.drain_timeout
        ));
    }
    note(None, format!("drained: no request in flight at {from:?}"));

    // 4. The others to 0.
    if !request.scale_down {
        return Ok(());
    }
    note(Some(Phase::ScalingDown), format!("scaling {from:?} to 0"));
    for app in &from {
        shared
            .marathon
            .put_app(app, &json!({"instances": 0}))
            .await
            .map_err(|e| format!("scaling {app} to 0: {e}"))?;
        note(None, format!("{app} scaled to 0"));
    }
    Ok(())
}

/// The record's app: what it was (its vhosts and labels kept) with `vhost`
/// governed and `to` live; a new one runs nothing.
async fn record_body(
    shared: &Shared,
    record: &str,
    vhost: &str,
    to: &str,
) -> Result<Value, String> {
    let current = shared
        .marathon
        .app(record)
        .await
        .map_err(|e| format!("reading the switch record {record}: {e}"))?;
    let mut labels = current
        .as_ref()
        .and_then(|app| app["labels"].as_object().cloned())
        .unwrap_or_default();
    let mut vhosts: Vec<String> = labels
        .get(split::LABEL_SWITCH)
        .and_then(Value::as_str)
        .map(|v| {
            v.split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !vhosts.iter().any(|h| h.eq_ignore_ascii_case(vhost)) {
        vhosts.push(vhost.to_string());
    }
    labels.insert(split::LABEL_SWITCH.into(), json!(vhosts.join(",")));
    labels.insert(split::LABEL_LIVE.into(), json!(to));
    let mut body = json!({"labels": labels});
    if current.is_none() {
        // A record runs nothing: 0 instances of the smallest command.
        body["id"] = json!(record);
        body["cmd"] = json!("sleep 1000000");
        body["instances"] = json!(0);
        body["cpus"] = json!(0.01);
        body["mem"] = json!(16);
    }
    Ok(body)
}
