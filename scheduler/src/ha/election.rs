//! Leader election over ZooKeeper: the lock recipe on ephemeral sequential
//! znodes under `<zk>/leader`, named as Curator's `LeaderLatch` names them
//! (`_c_<uuid>-latch-<seq>`, as Marathon's `leader-curator`), each holding
//! its process's `host:port`. The lowest sequence leads; the others watch
//! the children and publish who leads, so standbys know where to proxy.
//!
//! Leadership ends — and [`Role::Electing`] is published *at once*, so the
//! term stops before anything else — when the session is disconnected or
//! expires, when our znode disappears, on abdication, or on shutdown. The
//! session is then dropped (its znode goes with it) and a new one contends
//! again, after a backoff while ZooKeeper is unreachable. The process never
//! exits for any of this.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zookeeper_client as zk;

use super::Role;
use crate::zk::ZkUrl;

/// The election directory under the `--zk` path.
pub const LEADER_DIR: &str = "/leader";
/// Curator's latch name.
const LATCH: &str = "latch-";
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Attempts at reading the leader while contenders come and go.
const LEADER_READ_ATTEMPTS: usize = 10;

/// What a leading term writes with: its session and the znode that proves
/// it still leads (the fence of [`crate::state::ZkStore`]).
#[derive(Clone)]
pub struct Lease {
    /// The term this lease is for.
    pub term: u64,
    /// The session (chrooted at the `--zk` path).
    pub client: zk::Client,
    /// Our election znode.
    pub lock_path: String,
}

/// A running election.
pub struct Election {
    /// This process's role.
    pub roles: watch::Receiver<Role>,
    /// The current lease, while leading.
    pub lease: watch::Receiver<Option<Lease>>,
    /// Ends a leading term (`DELETE /v2/leader`).
    pub abdicate: mpsc::Sender<()>,
}

/// Starts contending as `me` (`host:port`) until `shutdown`.
pub fn spawn(
    url: ZkUrl,
    me: String,
    session_timeout: Duration,
    shutdown: CancellationToken,
) -> Election {
    let (roles_tx, roles) = watch::channel(Role::Electing);
    let (lease_tx, lease) = watch::channel(None);
    let (abdicate, abdications) = mpsc::channel(4);
    let contender = Contender {
        url,
        me,
        session_timeout,
        roles: roles_tx,
        lease: lease_tx,
        abdications,
        term: 0,
    };
    tokio::spawn(contender.run(shutdown));
    Election {
        roles,
        lease,
        abdicate,
    }
}

struct Contender {
    url: ZkUrl,
    me: String,
    session_timeout: Duration,
    roles: watch::Sender<Role>,
    lease: watch::Sender<Option<Lease>>,
    abdications: mpsc::Receiver<()>,
    term: u64,
}

/// Why a session's part in the election ended.
enum Ended {
    Shutdown,
    Lost(String),
}

/// `Lost` from a ZooKeeper error.
fn lost(what: &str, e: zk::Error) -> Ended {
    Ended::Lost(format!("{what}: {e}"))
}

impl Contender {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            self.step_down();
            let connected = tokio::select! {
                c = self.url.connect(self.session_timeout) => c,
                () = shutdown.cancelled() => return,
            };
            let client = match connected {
                Ok(client) => client,
                Err(e) => {
                    warn!(zk = %self.url, error = %e, ?backoff, "cannot reach ZooKeeper; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            backoff = BACKOFF_MIN;
            match self.session(&client, &shutdown).await {
                Ended::Shutdown => {
                    self.step_down();
                    return;
                }
                Ended::Lost(why) => {
                    self.step_down();
                    warn!(%why, "out of the election; contending again with a new session");
                }
            }
            // Dropping the last handle closes the session (when reachable),
            // which removes its znode.
            drop(client);
            tokio::select! {
                () = tokio::time::sleep(BACKOFF_MIN) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Stops acting: published before anything else happens.
    fn step_down(&self) {
        self.lease.send_replace(None);
        self.roles.send_if_modified(|role| {
            let was = role.clone();
            if matches!(was, Role::Leading { .. }) {
                *role = Role::Electing;
                return true;
            }
            false
        });
    }

    async fn session(&mut self, client: &zk::Client, shutdown: &CancellationToken) -> Ended {
        let mut states = client.state_watcher();
        let prefix = match zk::LockPrefix::new_curator(LEADER_DIR, LATCH) {
            Ok(prefix) => prefix,
            Err(e) => return lost("election path", e),
        };
        let options = match zk::LockOptions::new(zk::Acls::anyone_all())
            .with_ancestor_options(zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()))
        {
            Ok(options) => options,
            Err(e) => return lost("election options", e),
        };
        info!(
            session = %client.session_id(),
            timeout = ?client.session_timeout(),
            "contending for leadership"
        );
        let contend = client.lock(prefix, self.me.as_bytes(), options);
        tokio::pin!(contend);
        let lock = loop {
            let (leader, children_changed) = match current_leader(client).await {
                Ok(found) => found,
                Err(e) => return lost("reading the leader", e),
            };
            let role = match leader {
                Some(leader) => Role::Following { leader },
                None => Role::Electing,
            };
            self.roles.send_if_modified(|current| {
                let changed = *current != role;
                *current = role.clone();
                changed
            });
            tokio::select! {
                locked = &mut contend => match locked {
                    Ok(lock) => break lock,
                    Err(e) => return lost("contending", e),
                },
                _ = children_changed.changed() => {}
                state = states.changed() => if state != zk::SessionState::SyncConnected {
                    return Ended::Lost(format!("session {state:?}"));
                },
                // Not leading: nothing to give up.
                Some(()) = self.abdications.recv() => {}
                () = shutdown.cancelled() => return Ended::Shutdown,
            }
        };
        let lock_path = lock.lock_path().to_string();
        let own_node = match client.get_and_watch_data(&lock_path).await {
            Ok((_, _, watcher)) => watcher,
            Err(e) => return lost("watching our election znode", e),
        };
        self.term += 1;
        self.lease.send_replace(Some(Lease {
            term: self.term,
            client: client.clone(),
            lock_path: lock_path.clone(),
        }));
        self.roles.send_replace(Role::Leading { term: self.term });
        info!(term = self.term, znode = %lock_path, "elected leader");
        let ended = tokio::select! {
            state = disconnected(&mut states) => Ended::Lost(format!("session {state:?}")),
            event = own_node.changed() => Ended::Lost(format!("our election znode: {:?}", event.event_type)),
            Some(()) = self.abdications.recv() => Ended::Lost("abdicated".into()),
            () = shutdown.cancelled() => Ended::Shutdown,
        };
        // Before releasing anything: stop the term.
        self.step_down();
        drop(lock);
        ended
    }
}

/// Resolves when the session is no longer connected.
async fn disconnected(states: &mut zk::StateWatcher) -> zk::SessionState {
    loop {
        let state = states.changed().await;
        if state != zk::SessionState::SyncConnected {
            return state;
        }
    }
}

/// The sequence number ending a contender's znode name.
fn sequence(name: &str) -> Option<u64> {
    name.rsplit_once(LATCH)?.1.parse().ok()
}

/// The contender that leads among `names`: the lowest sequence.
pub fn leading_contender(names: &[String]) -> Option<&str> {
    names
        .iter()
        .filter_map(|n| Some((sequence(n)?, n.as_str())))
        .min()
        .map(|(_, n)| n)
}

/// The leader's `host:port` (none without contenders) and a watcher that
/// fires when the contenders change.
async fn current_leader(
    client: &zk::Client,
) -> Result<(Option<String>, zk::OneshotWatcher), zk::Error> {
    if let Err(e) = client
        .mkdir(
            LEADER_DIR,
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await
        && e != zk::Error::NodeExists
    {
        return Err(e);
    }
    let mut attempts = 0;
    loop {
        let (names, _, watcher) = client.get_and_watch_children(LEADER_DIR).await?;
        let Some(first) = leading_contender(&names) else {
            return Ok((None, watcher));
        };
        match client.get_data(&format!("{LEADER_DIR}/{first}")).await {
            Ok((data, _)) => {
                return Ok((Some(String::from_utf8_lossy(&data).into_owned()), watcher));
            }
            // It left between the listing and the read: look again.
            Err(zk::Error::NoNode) if attempts < LEADER_READ_ATTEMPTS => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_sequence_leads_and_other_nodes_are_ignored() {
        let names: Vec<String> = [
            "_c_8d1e-latch-0000000012",
            "_c_aa02-latch-0000000009",
            "_c_31bc-latch-0000000010",
            "not-a-contender",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(leading_contender(&names), Some("_c_aa02-latch-0000000009"));
        assert_eq!(leading_contender(&[]), None);
        assert_eq!(leading_contender(&names[3..]), None);
    }
}
