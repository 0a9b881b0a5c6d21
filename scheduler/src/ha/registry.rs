//! The service registry in ZooKeeper: every running, healthy instance at
//! `<zk>/services/<app id>/<version>/<task id>` as JSON
//! `{"host","ports","healthy"}` ([`View::services`] decides which).
//!
//! The leader keeps it: at the start of a term it reads what is there (a
//! previous leader may have left entries behind), then after every new
//! snapshot of the state writes the difference — entries of instances that
//! died, turned unhealthy, are being drained, or whose app was deleted
//! are removed; new ones created. Entries are persistent znodes, so they
//! outlive a leader's death until the next leader reconciles them; every
//! write is fenced by the leader's election znode, so a deposed leader
//! changes nothing. Parent directories are created as needed and pruned
//! when they empty (best effort).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zookeeper_client as zk;

use crate::reconcile::View;

/// Where the registry lives under the `--zk` path.
pub const SERVICES_DIR: &str = "/services";
/// Changes are written at most this often.
const SETTLE: Duration = Duration::from_millis(100);
/// After a failed write, the next attempt.
const RETRY: Duration = Duration::from_secs(1);
/// How deep the registry is read at start: app ids have few segments.
const MAX_DEPTH: usize = 16;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Registry path → entry bytes, as the view wants it.
pub fn desired(view: &View) -> BTreeMap<String, Vec<u8>> {
    view.services()
        .into_iter()
        .map(|entry| (entry.path(), entry.json().to_string().into_bytes()))
        .collect()
}

/// Keeps the registry equal to the leader's view until `cancel`.
pub async fn run(
    client: zk::Client,
    fence: String,
    mut views: watch::Receiver<Arc<View>>,
    cancel: CancellationToken,
) {
    let mut written = loop {
        match read_registry(&client).await {
            Ok(existing) => break existing,
            Err(e) => {
                warn!(error = %e, "cannot read the service registry; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    };
    loop {
        let wanted = desired(&views.borrow_and_update());
        if let Err(e) = sync(&client, &fence, &mut written, &wanted).await {
            warn!(error = %e, "service registry write failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(RETRY) => continue,
                () = cancel.cancelled() => return,
            }
        }
        tokio::select! {
            changed = views.changed() => if changed.is_err() { return },
            () = cancel.cancelled() => return,
        }
        // Many snapshots come in bursts: write their sum.
        tokio::select! {
            () = tokio::time::sleep(SETTLE) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// Writes the difference between `written` and `wanted`, updating
/// `written` as it goes.
async fn sync(
    client: &zk::Client,
    fence: &str,
    written: &mut BTreeMap<String, Vec<u8>>,
    wanted: &BTreeMap<String, Vec<u8>>,
) -> Result<(), zk::Error> {
    let gone: Vec<String> = written
        .keys()
        .filter(|path| !wanted.contains_key(*path))
        .cloned()
        .collect();
    for path in gone {
        let mut writer = client.new_check_writer(fence, None)?;
        writer.add_delete(&path, None)?;
        match writer.commit().await {
            Ok(_) => {}
            Err(zk::CheckWriteError::OperationFailed {
                source: zk::Error::NoNode,
                ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
        written.remove(&path);
        debug!(%path, "deregistered");
        prune_parents(client, fence, &path).await;
    }
    for (path, data) in wanted {
        if written.get(path) == Some(data) {
            continue;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            match client.mkdir(parent, &persistent()).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        let mut writer = client.new_check_writer(fence, None)?;
        if written.contains_key(path) {
            writer.add_set_data(path, data, None)?;
        } else {
            writer.add_create(path, data, &persistent())?;
        }
        match writer.commit().await {
            Ok(_) => {}
            // Left by an earlier leader and not read: take it over.
            Err(zk::CheckWriteError::OperationFailed {
                source: zk::Error::NodeExists,
                ..
            }) => {
                let mut writer = client.new_check_writer(fence, None)?;
                writer.add_set_data(path, data, None)?;
                writer.commit().await.map_err(zk::Error::from)?;
            }
            Err(e) => return Err(e.into()),
        }
        written.insert(path.clone(), data.clone());
        debug!(%path, "registered");
    }
    Ok(())
}

/// Removes the now empty directories above `path` (best effort), fenced
/// like every other write: a deposed leader removes nothing.
async fn prune_parents(client: &zk::Client, fence: &str, path: &str) {
    let mut dir = path;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        if parent == SERVICES_DIR || parent.is_empty() {
            return;
        }
        let Ok(mut writer) = client.new_check_writer(fence, None) else {
            return;
        };
        if writer.add_delete(parent, None).is_err() || writer.commit().await.is_err() {
            return;
        }
        dir = parent;
    }
}

/// Every entry under [`SERVICES_DIR`]: znodes with data (directories
/// have none).
async fn read_registry(client: &zk::Client) -> Result<BTreeMap<String, Vec<u8>>, zk::Error> {
    let mut entries = BTreeMap::new();
    let mut frontier = vec![(SERVICES_DIR.to_string(), 0)];
    while let Some((dir, depth)) = frontier.pop() {
        let children = match client.list_children(&dir).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(e),
        };
        for child in children {
            let path = format!("{dir}/{child}");
            match client.get_data(&path).await {
                Ok((data, _)) if !data.is_empty() => {
                    entries.insert(path, data);
                }
                Ok(_) if depth < MAX_DEPTH => frontier.push((path, depth + 1)),
                Ok(_) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(entries)
}
