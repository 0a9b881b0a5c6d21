//! Leading-master detection through ZooKeeper (`--master
//! zk://h:2181/mesos`), as Mesos's own detector does (mesos-v1-api.md §6):
//! every master is an ephemeral sequential znode `<path>/json.info_<seq>`
//! holding its `MasterInfo` as JSON; the lowest sequence leads; other
//! children (`log_replicas`, …) are ignored. The detector watches the
//! children and publishes the leader's endpoint (`None` while there is no
//! leader, or no session); the Mesos session resubscribes when it changes.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zookeeper_client as zk;

use super::masters::MasterEndpoint;
use crate::zk::ZkUrl;

/// The label of JSON `MasterInfo` znodes.
const LABEL: &str = "json.info";
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Session timeout of the detector's session (Mesos uses 10 s).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The sequence of a master's znode name, if it is one.
fn sequence(name: &str) -> Option<u64> {
    let (label, seq) = name.rsplit_once('_')?;
    (label == LABEL).then(|| seq.parse().ok())?
}

/// The leading master's znode among `names`: the lowest sequence.
pub fn leading_znode(names: &[String]) -> Option<&str> {
    names
        .iter()
        .filter_map(|n| Some((sequence(n)?, n.as_str())))
        .min()
        .map(|(_, n)| n)
}

/// The master's API endpoint from its `MasterInfo` JSON: `address.ip` (or
/// `address.hostname`) and `address.port`, else `hostname`/`port`, else
/// the `pid` (`master@ip:port`). Mesos 1.12's `MasterInfo` has no scheme,
/// so `https` comes from the operator (`--mesos_ssl`, or
/// `LIBPROCESS_SSL_ENABLED` as for Mesos's own tools) unless the JSON names
/// a `scheme` (at its top or in `address`).
pub fn endpoint_of(info: &Value, https: bool) -> Option<MasterEndpoint> {
    let address = &info["address"];
    let host_port = match (
        address["ip"].as_str().or(address["hostname"].as_str()),
        address["port"].as_u64(),
    ) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        _ => match (info["hostname"].as_str(), info["port"].as_u64()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => info["pid"].as_str()?.split_once('@')?.1.to_string(),
        },
    };
    let scheme = match info["address"]["scheme"]
        .as_str()
        .or(info["scheme"].as_str())
    {
        Some(scheme @ ("http" | "https")) => scheme,
        _ if https => "https",
        _ => "http",
    };
    MasterEndpoint::parse(&format!("{scheme}://{host_port}")).ok()
}

/// Follows the leading master under `url` until `shutdown`.
/// Masters are spoken to over `https` when `https` is set or their
/// `MasterInfo` says so.
pub fn spawn(
    url: ZkUrl,
    https: bool,
    shutdown: CancellationToken,
) -> watch::Receiver<Option<MasterEndpoint>> {
    let (leader_tx, leader) = watch::channel(None);
    tokio::spawn(async move {
        let mut backoff = BACKOFF_MIN;
        loop {
            let followed = tokio::select! {
                ended = follow(&url, https, &leader_tx) => ended,
                () = shutdown.cancelled() => return,
            };
            leader_tx.send_replace(None);
            if let Err(e) = followed {
                warn!(zk = %url, error = %e, ?backoff, "Mesos master detection lost ZooKeeper; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
    leader
}

/// One session: publishes the leader at every change of the children.
async fn follow(
    url: &ZkUrl,
    https: bool,
    leader: &watch::Sender<Option<MasterEndpoint>>,
) -> Result<(), zk::Error> {
    let client = url.connect(SESSION_TIMEOUT).await?;
    let mut states = client.state_watcher();
    loop {
        let (names, _, changed) = client.get_and_watch_children("/").await?;
        let found = match leading_znode(&names) {
            Some(name) => match client.get_data(&format!("/{name}")).await {
                Ok((data, _)) => serde_json::from_slice::<Value>(&data)
                    .ok()
                    .and_then(|info| endpoint_of(&info, https)),
                // Gone between the listing and the read: the watch fires.
                Err(zk::Error::NoNode) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        leader.send_if_modified(|current| {
            if *current == found {
                return false;
            }
            info!(leader = ?found.as_ref().map(ToString::to_string), "leading Mesos master detected");
            *current = found.clone();
            true
        });
        tokio::select! {
            _ = changed.changed() => {}
            state = states.changed() => if state != zk::SessionState::SyncConnected {
                return Err(zk::Error::ConnectionLoss);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_lowest_json_info_leads() {
        let names: Vec<String> = [
            "json.info_0000000007",
            "log_replicas",
            "json.info_0000000003",
            "info_0000000001",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(leading_znode(&names), Some("json.info_0000000003"));
        assert_eq!(leading_znode(&names[1..2]), None);
    }

    #[test]
    fn endpoints_from_master_info() {
        let full = json!({"address": {"hostname": "m1", "ip": "10.0.0.1", "port": 5050},
                          "hostname": "m1", "port": 5050, "pid": "master@10.0.0.1:5050"});
        assert_eq!(
            endpoint_of(&full, false).unwrap().to_string(),
            MasterEndpoint::parse("10.0.0.1:5050").unwrap().to_string()
        );
        let old = json!({"hostname": "m2", "port": 5051});
        assert_eq!(
            endpoint_of(&old, false).unwrap().to_string(),
            MasterEndpoint::parse("m2:5051").unwrap().to_string()
        );
        let pid_only = json!({"pid": "master@10.0.0.3:5052"});
        assert_eq!(
            endpoint_of(&pid_only, false).unwrap().to_string(),
            MasterEndpoint::parse("10.0.0.3:5052").unwrap().to_string()
        );
        assert!(endpoint_of(&json!({}), false).is_none());
    }

    #[test]
    fn https_masters_come_from_the_flag_or_a_scheme_in_master_info() {
        let info = json!({"address": {"ip": "10.0.0.1", "port": 5050}});
        assert_eq!(
            endpoint_of(&info, true).unwrap().to_string(),
            "https://10.0.0.1:5050"
        );
        let said = json!({"address": {"ip": "10.0.0.1", "port": 5050, "scheme": "https"}});
        assert_eq!(
            endpoint_of(&said, false).unwrap().to_string(),
            "https://10.0.0.1:5050"
        );
        let top = json!({"scheme": "https", "hostname": "m", "port": 5050});
        assert_eq!(
            endpoint_of(&top, false).unwrap().to_string(),
            "https://m:5050"
        );
    }
}
