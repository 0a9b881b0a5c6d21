//! Registering the master in ZooKeeper the way a Mesos master does, so
//! frameworks find it with `--master zk://host:2181/mesos`: an ephemeral
//! sequential znode `<path>/json.info_<seq>` holding the master's
//! `MasterInfo` as JSON. The lowest sequence leads. The registration lives
//! as long as its session; [`Registration`] re-registers after a session
//! is lost, and removes the znode when dropped.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zookeeper_client as zk;

const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(1);

/// A `zk://hosts/path` that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid --zk {0:?}: expected zk://host:2181[,host:2181]/path")]
pub struct ZkUrlError(String);

/// `zk://hosts/path` → (hosts, path).
fn split(url: &str) -> Result<(String, String), ZkUrlError> {
    let rest = url
        .strip_prefix("zk://")
        .ok_or_else(|| ZkUrlError(url.into()))?;
    let (hosts, path) = rest.split_once('/').ok_or_else(|| ZkUrlError(url.into()))?;
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    let path = format!("/{}", path.trim_end_matches('/'));
    if hosts.is_empty() || path == "/" {
        return Err(ZkUrlError(url.into()));
    }
    Ok((hosts.to_string(), path))
}

/// The `MasterInfo` JSON a Mesos master writes (the fields detectors
/// read: `address`, `hostname`, `port`, `pid`, `id`).
pub fn master_info_json(master_id: &str, addr: SocketAddr, version: &str) -> Value {
    let ip = addr.ip().to_string();
    let ip_number = match addr.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from_le_bytes(v4.octets())),
        std::net::IpAddr::V6(_) => 0,
    };
    json!({
        "id": master_id,
        "ip": ip_number,
        "port": addr.port(),
        "pid": format!("master@{addr}"),
        "hostname": ip,
        "version": version,
        "address": {"hostname": ip, "ip": ip, "port": addr.port()},
    })
}

/// A master's registration, kept until [`Registration::close`] (or drop).
pub struct Registration {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Registration {
    /// Removes the znode (so frameworks move on at once) and ends the
    /// session.
    pub async fn close(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Registers `info` under `url` now (so the caller knows it worked), then
/// keeps it registered in the background.
pub async fn register(
    url: &str,
    info: Value,
) -> Result<Registration, Box<dyn std::error::Error + Send + Sync>> {
    let (hosts, path) = split(url)?;
    let data = serde_json::to_vec(&info)?;
    let first = register_once(&hosts, &path, &data).await?;
    let stop = CancellationToken::new();
    let keep = stop.clone();
    let task = tokio::spawn(async move {
        let mut session = Some(first);
        loop {
            if let Some((client, znode)) = session.take() {
                let mut states = client.state_watcher();
                tokio::select! {
                    state = wait_terminated(&mut states) => warn!(?state, %znode, "ZooKeeper registration lost; registering again"),
                    () = keep.cancelled() => {
                        // Close the session now: the znode goes with it.
                        let _ = client.delete(&znode, None).await;
                        return;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                () = keep.cancelled() => return,
            }
            match register_once(&hosts, &path, &data).await {
                Ok(registered) => session = Some(registered),
                Err(e) => warn!(error = %e, "cannot register in ZooKeeper; retrying"),
            }
        }
    });
    Ok(Registration {
        stop,
        task: Some(task),
    })
}

async fn wait_terminated(states: &mut zk::StateWatcher) -> zk::SessionState {
    loop {
        let state = states.changed().await;
        if state.is_terminated() {
            return state;
        }
    }
}

async fn register_once(
    hosts: &str,
    path: &str,
    data: &[u8],
) -> Result<(zk::Client, String), zk::Error> {
    let client = zk::Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .connect(hosts)
        .await?;
    match client
        .mkdir(
            path,
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await
    {
        Ok(()) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(e),
    }
    let (_, sequence) = client
        .create(
            &format!("{path}/json.info_"),
            data,
            &zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all()),
        )
        .await?;
    let znode = format!("{path}/json.info_{sequence}");
    info!(%znode, "registered in ZooKeeper");
    Ok((client, znode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_master_info() {
        assert_eq!(
            split("zk://a:2181,b:2181/mesos/").unwrap(),
            ("a:2181,b:2181".to_string(), "/mesos".to_string())
        );
        assert!(split("zk://a:2181").is_err());
        assert!(split("http://a/mesos").is_err());
        let info = master_info_json("m1", "127.0.0.1:5050".parse().unwrap(), "1.11.0");
        assert_eq!(info["address"]["ip"], "127.0.0.1");
        assert_eq!(info["address"]["port"], 5050);
        assert_eq!(info["pid"], "master@127.0.0.1:5050");
    }
}
