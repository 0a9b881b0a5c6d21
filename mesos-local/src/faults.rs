//! Fault injection for tests: what a real cluster does to a framework when
//! machines, links and masters fail.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::agent::Agent;
use crate::master::Master;

/// A cloneable handle on a running [`crate::LocalCluster`]'s faults.
#[derive(Debug, Clone)]
pub struct Faults {
    pub(crate) master: Arc<Master>,
    pub(crate) agents: Vec<Arc<Agent>>,
}

impl Faults {
    fn agent(&self, i: usize) -> Option<&Arc<Agent>> {
        i.checked_sub(1).and_then(|i| self.agents.get(i))
    }

    /// Agent `i` (1-based) goes down: its HTTP server stops, executor
    /// streams drop, its state is kept (as if checkpointed). The master
    /// rescinds its offers at once and, after `agent_unreachable_timeout`,
    /// marks it unreachable: PARTITION_AWARE frameworks get TASK_UNREACHABLE
    /// (REASON_AGENT_REMOVED, `unreachable_time`), others TASK_LOST; no
    /// uuid on these. Executors keep running and try to reconnect.
    pub async fn stop_agent(&self, i: usize) {
        if let Some(a) = self.agent(i) {
            a.stop().await;
        }
    }

    /// Agent `i` comes back on the same address and recovers: executors get
    /// `executor_reregistration_timeout` to re-SUBSCRIBE, the others are
    /// destroyed (their tasks TASK_GONE, or TASK_LOST, with
    /// REASON_EXECUTOR_REREGISTRATION_TIMEOUT). It reregisters with the
    /// master, which sends REASON_AGENT_REREGISTERED updates for tasks it
    /// had reported unreachable; pending unacknowledged updates resume.
    pub async fn start_agent(&self, i: usize) {
        if let Some(a) = self.agent(i)
            && let Err(e) = a.start(None).await
        {
            tracing::error!(agent = i, error = %e, "agent could not be restarted");
        }
    }

    /// Closes every scheduler SUBSCRIBE stream: the frameworks are
    /// disconnected and their failover timers start.
    pub fn cut_framework_streams(&self) {
        self.master.with_state(|st| st.cut_streams());
    }

    /// Simulates a master failover: streams close, stream ids and offers
    /// are forgotten, the master id changes; schedulers must re-SUBSCRIBE
    /// (calls on old streams get 403 or 400). Tasks survive; agents
    /// reregister at once.
    pub fn restart_master(&self) {
        self.master.with_state(|st| st.restart());
    }

    /// Keeps streams open but stops HEARTBEATs and every other event (a
    /// silent dead connection), or resumes them.
    pub fn pause_heartbeats(&self, paused: bool) {
        self.master.paused.store(paused, Ordering::Relaxed);
    }

    /// The next agent status update the master would forward is dropped;
    /// the agent's retry must deliver it.
    pub fn drop_next_status_update(&self) {
        self.master.with_state(|st| st.drop_updates += 1);
    }

    /// The next agent status update is delivered twice (same uuid).
    pub fn duplicate_next_status_update(&self) {
        self.master.with_state(|st| st.duplicate_updates += 1);
    }

    /// SUBSCRIBE calls accepted so far.
    pub fn subscribe_count(&self) -> u64 {
        self.master.lock().subscribe_count
    }
}
