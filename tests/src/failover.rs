//! Measuring a failover between `baton` processes sharing a ZooKeeper:
//! who leads, and how long after a leader's death the survivors answer
//! again. Shared by the HA tests and the `failover` benchmark, so that both
//! measure the same thing:
//!
//! - **first write**: from the kill to the first write (`POST /v2/apps` of
//!   an app without instances) that a survivor acknowledges — what a
//!   client sees. Writes are sent every [`WRITE_EVERY`], each on its own
//!   connection, so one held by a standby that waits for a leader does not
//!   hide the others;
//! - **leads and subscribed**: from the kill to the survivor's
//!   `/v2/leader` naming itself while its `/metrics` says the Mesos
//!   subscription is live.

use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::baton::BatonProcess;

/// How often [`first_acknowledged_write`] sends a write.
pub const WRITE_EVERY: Duration = Duration::from_millis(25);
/// How long one of those writes may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a look at who leads may take: a standby proxies to a leader
/// that may be stopped, and such a look must not hold up the next.
const LOOK_TIMEOUT: Duration = Duration::from_millis(500);

/// A client for short looks, one connection each.
fn looks() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(LOOK_TIMEOUT)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// `host:port` of a baton's API, as the election publishes it.
pub fn address(baton: &BatonProcess) -> String {
    baton.url.trim_start_matches("http://").to_string()
}

/// The leader as `baton` reports it (proxied when it is a standby); none
/// without an answer within a second.
pub async fn leader_of(baton: &BatonProcess) -> Option<String> {
    let reply = looks()
        .get(format!("{}/v2/leader", baton.url))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = reply.json().await.ok()?;
    body["leader"].as_str().map(str::to_string)
}

/// Whether `baton` says it leads and its Mesos subscription is live.
pub async fn leads_and_subscribed(baton: &BatonProcess) -> bool {
    if leader_of(baton).await.as_deref() != Some(address(baton).as_str()) {
        return false;
    }
    let metrics = looks().get(format!("{}/metrics", baton.url)).send().await;
    match metrics {
        Ok(reply) => reply
            .text()
            .await
            .is_ok_and(|m| m.contains("marathon_mesos_connected 1")),
        Err(_) => false,
    }
}

/// The app a write of [`first_acknowledged_write`] creates.
pub fn write_body(id: &str) -> serde_json::Value {
    json!({"id": id, "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 0})
}

/// Sends a write creating `{prefix}/w<n>` to `url` every [`WRITE_EVERY`]
/// until one is acknowledged (2xx); returns the time from `since` to that
/// acknowledgement and the app it created. Panics after `deadline`.
pub async fn first_acknowledged_write(
    url: &str,
    prefix: &str,
    since: Instant,
    deadline: Duration,
) -> (Duration, String) {
    let http = reqwest::Client::builder()
        .timeout(WRITE_TIMEOUT)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .expect("HTTP client");
    let mut writes = JoinSet::new();
    let mut ticks = tokio::time::interval(WRITE_EVERY);
    let give_up = since + deadline;
    for n in 0u64.. {
        tokio::select! {
            _ = ticks.tick() => {
                assert!(
                    Instant::now() < give_up,
                    "no write acknowledged by {url} within {deadline:?}"
                );
                let (http, id) = (http.clone(), format!("{prefix}/w{n}"));
                let target = format!("{url}/v2/apps");
                writes.spawn(async move {
                    let reply = http.post(target).json(&write_body(&id)).send().await;
                    let acknowledged = reply.is_ok_and(|r| r.status().is_success());
                    acknowledged.then(|| (since.elapsed(), id))
                });
            }
            Some(done) = writes.join_next() => {
                if let Ok(Some(first)) = done {
                    // The others are dropped unanswered (one a standby
                    // forwarded may still land: nobody counts on it).
                    writes.abort_all();
                    return first;
                }
            }
        }
    }
    unreachable!("the loop only ends by returning")
}

/// Polls every 20 ms until `baton` leads with a live Mesos subscription;
/// the time from `since`. Panics after `deadline`.
pub async fn until_leading(baton: &BatonProcess, since: Instant, deadline: Duration) -> Duration {
    crate::wait::until(deadline, "the survivor to lead and subscribe", || async {
        leads_and_subscribed(baton).await.then(|| since.elapsed())
    })
    .await
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}
