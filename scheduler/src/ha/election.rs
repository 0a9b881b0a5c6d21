//! Leader election over ZooKeeper: the lock recipe on ephemeral sequential
//! znodes under `<zk>/leader`, named as Curator's `LeaderLatch` names them
//! (`_c_<uuid>-latch-<seq>`, as Marathon's `leader-curator`), each holding
//! its process's `host:port`. The lowest sequence leads; the others watch
//! the children and publish who leads, so standbys know where to proxy.
//!
//! Leadership ends — and [`Role::Electing`] is published *at once*, and the
//! term's [`LeaseGate`] ended, so the term stops before anything else —
//! when the session is disconnected or expires, when our znode disappears
//! (a standby deposed us: see [`super::probe`]), when the lease finds it
//! gone, on abdication, or on shutdown. The session is then dropped (its
//! znode goes with it) and a new one contends again, after a backoff while
//! ZooKeeper is unreachable. The process never exits for any of this.
//!
//! While waiting, a contender knows the leader's znode and `host:port` and
//! its own place in line, and probes the leader ([`super::probe::run`]);
//! while leading, it renews its lease ([`LeaseGate::keep_renewing`]).

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zookeeper_client as zk;

use super::Role;
use super::probe::{self, ProbeSettings, Target};
use crate::clock::Clock;
use crate::lease::LeaseGate;
use crate::zk::ZkUrl;

/// The election directory under the `--zk` path.
pub const LEADER_DIR: &str = "/leader";
/// Curator's latch name.
const LATCH: &str = "latch-";
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Attempts at reading the leader while contenders come and go.
const LEADER_READ_ATTEMPTS: usize = 10;

pub use super::Lease;

/// A running election.
pub struct Election {
    /// This process's role.
    pub roles: watch::Receiver<Role>,
    /// The current lease, while leading.
    pub lease: watch::Receiver<Option<Lease>>,
    /// Ends a leading term (`DELETE /v2/leader`).
    pub abdicate: mpsc::Sender<()>,
}

/// Starts contending as `me` (`host:port`) until `shutdown`; standbys
/// probe the leader as `probing` says.
pub fn spawn(
    url: ZkUrl,
    me: String,
    session_timeout: Duration,
    probing: ProbeSettings,
    shutdown: CancellationToken,
) -> Election {
    let (roles_tx, roles) = watch::channel(Role::Electing);
    let (lease_tx, lease) = watch::channel(None);
    let (abdicate, abdications) = mpsc::channel(4);
    let contender = Contender {
        url,
        me,
        session_timeout,
        probing,
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
    probing: ProbeSettings,
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
            self.step_down("contending again");
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
                    self.step_down("shutting down");
                    return;
                }
                Ended::Lost(why) => {
                    self.step_down(&why);
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

    /// Stops acting: the lease ends and the role is published before
    /// anything else happens.
    fn step_down(&self, why: &str) {
        if let Some(lease) = self.lease.send_replace(None) {
            lease.gate.end(why);
        }
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
        // While waiting: probe the leader (ends with this phase).
        let (targets_tx, targets) = watch::channel(None);
        let probing = shutdown.child_token();
        let _stop_probing = probing.clone().drop_guard();
        tokio::spawn(probe::run(
            client.clone(),
            self.probing,
            targets,
            probing.clone(),
        ));
        let lock = loop {
            let (line, children_changed) = match contenders(client).await {
                Ok(found) => found,
                Err(e) => return lost("reading the leader", e),
            };
            let role = match &line.leader {
                Some(leader) => Role::Following {
                    leader: leader.address.clone(),
                },
                None => Role::Electing,
            };
            targets_tx.send_replace(line.target());
            // First in line: the lock is about to say we lead; we do not
            // "follow" ourselves meanwhile.
            if line.mine != Some(0) {
                self.roles.send_if_modified(|current| {
                    let changed = *current != role;
                    *current = role.clone();
                    changed
                });
            }
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
        probing.cancel();
        let lock_path = lock.lock_path().to_string();
        // The lease counts from before the read that proves the znode is
        // ours and there.
        let confirmed_at = Clock::wall().instant();
        let mut own_node = match client.get_and_watch_data(&lock_path).await {
            Ok((_, _, watcher)) => watcher,
            Err(e) => return lost("watching our election znode", e),
        };
        let gate = LeaseGate::new(
            client.clone(),
            lock_path.clone(),
            self.me.as_bytes().to_vec(),
            self.probing.lease(self.session_timeout),
            confirmed_at,
        );
        tokio::spawn(
            gate.clone()
                .keep_renewing(self.probing.renew_every(self.session_timeout)),
        );
        self.term += 1;
        self.lease.send_replace(Some(Lease {
            term: self.term,
            client: client.clone(),
            lock_path: lock_path.clone(),
            gate: gate.clone(),
        }));
        self.roles.send_replace(Role::Leading { term: self.term });
        info!(term = self.term, znode = %lock_path, lease = ?gate.valid_for(), "elected leader");
        let ended = loop {
            tokio::select! {
                state = disconnected(&mut states) => break Ended::Lost(format!("session {state:?}")),
                event = own_node.changed() => {
                    if event.event_type != zk::EventType::NodeDataChanged {
                        break Ended::Lost(format!("our election znode: {:?} (deposed)", event.event_type));
                    }
                    // Our own heartbeat (the lease's renewal): watch again.
                    match client.get_and_watch_data(&lock_path).await {
                        Ok((_, _, watcher)) => own_node = watcher,
                        Err(zk::Error::NoNode) => {
                            break Ended::Lost("our election znode: gone (deposed)".into());
                        }
                        Err(e) => break lost("watching our election znode", e),
                    }
                }
                () = gate.ended() => break Ended::Lost(gate.lost().unwrap_or_default()),
                Some(()) = self.abdications.recv() => break Ended::Lost("abdicated".into()),
                () = shutdown.cancelled() => break Ended::Shutdown,
            }
        };
        // Before releasing anything: stop the term.
        match &ended {
            Ended::Lost(why) => self.step_down(why),
            Ended::Shutdown => self.step_down("shutting down"),
        }
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

/// The contenders in line, as one read saw them.
#[derive(Debug, Default)]
struct Line {
    /// The leader: the lowest sequence.
    leader: Option<Leader>,
    /// Our place in line (0: first), once our znode is there.
    mine: Option<usize>,
}

/// The contender that leads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leader {
    /// Its election znode.
    znode: String,
    /// Its `host:port`.
    address: String,
}

impl Line {
    /// What the prober watches: the leader, while we wait in line.
    fn target(&self) -> Option<Target> {
        let leader = self.leader.as_ref()?;
        Some(Target {
            znode: leader.znode.clone(),
            address: leader.address.clone(),
            position: self.mine?,
        })
    }
}

/// The contenders in line — the leader's znode and `host:port`, our place —
/// and a watcher that fires when they change.
async fn contenders(client: &zk::Client) -> Result<(Line, zk::OneshotWatcher), zk::Error> {
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
    let me = client.session_id().0;
    let mut attempts = 0;
    loop {
        let (names, _, watcher) = client.get_and_watch_children(LEADER_DIR).await?;
        let names = in_line(&names);
        if names.is_empty() {
            return Ok((Line::default(), watcher));
        }
        let mut reader = client.new_multi_reader();
        for name in &names {
            reader.add_get_data(&format!("{LEADER_DIR}/{name}"))?;
        }
        let mut present = Vec::with_capacity(names.len());
        for (name, result) in names.iter().zip(reader.commit().await?) {
            match result {
                zk::MultiReadResult::Data { data, stat } => {
                    present.push((name, data, stat.ephemeral_owner));
                }
                zk::MultiReadResult::Error {
                    err: zk::Error::NoNode,
                } => {}
                zk::MultiReadResult::Error { err } => return Err(err),
                _ => {
                    return Err(zk::Error::UnexpectedError("no data in the answer".into()));
                }
            }
        }
        // The first left between the listing and the read: look again.
        if present.first().map(|p| p.0) != names.first() && attempts < LEADER_READ_ATTEMPTS {
            attempts += 1;
            continue;
        }
        let line = Line {
            leader: present.first().map(|(name, data, _)| Leader {
                znode: format!("{LEADER_DIR}/{name}"),
                address: String::from_utf8_lossy(data).into_owned(),
            }),
            mine: present.iter().position(|(_, _, owner)| *owner == me),
        };
        return Ok((line, watcher));
    }
}

/// The contenders among `names`, lowest sequence (the leader) first.
fn in_line(names: &[String]) -> Vec<&String> {
    let mut line: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|n| Some((sequence(n)?, n)))
        .collect();
    line.sort();
    line.into_iter().map(|(_, n)| n).collect()
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
        assert_eq!(
            in_line(&names),
            [
                "_c_aa02-latch-0000000009",
                "_c_31bc-latch-0000000010",
                "_c_8d1e-latch-0000000012"
            ]
        );
    }

    #[test]
    fn a_standby_probes_the_leader_once_its_own_place_is_known() {
        let leader = Leader {
            znode: "/leader/_c_a-latch-0000000001".into(),
            address: "10.0.0.1:8080".into(),
        };
        let waiting = Line {
            leader: Some(leader.clone()),
            mine: None,
        };
        assert_eq!(waiting.target(), None, "our znode is not there yet");
        let next = Line {
            leader: Some(leader),
            mine: Some(1),
        };
        assert_eq!(
            next.target(),
            Some(Target {
                znode: "/leader/_c_a-latch-0000000001".into(),
                address: "10.0.0.1:8080".into(),
                position: 1,
            })
        );
        assert_eq!(Line::default().target(), None);
    }
}
