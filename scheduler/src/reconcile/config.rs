//! How the scheduler runs: its settings and which executor runs tasks.

use std::time::Duration;

use super::decide::Limits;
use crate::clock::Clock;
use crate::mesos::session::SessionConfig;
use crate::offers::executor::ExecutorSettings;
use crate::offers::placement::PlacementOptions;

/// Which executor runs app tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorChoice {
    /// `baton-executor`, fetched by agents from Baton's HTTP server.
    Baton(ExecutorSettings),
    /// Mesos's built-in command executor (`--executor command`).
    Command,
}

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How to reach Mesos and who we are.
    pub session: SessionConfig,
    /// The role whose resources we use.
    pub role: String,
    /// Refuse seconds for offers declined while tasks wait (short: we want
    /// them back soon).
    pub refuse_seconds_while_waiting: f64,
    /// Refuse seconds for offers declined with nothing to launch.
    pub refuse_seconds_idle: f64,
    /// Launch timeout and kill retry.
    pub limits: Limits,
    /// `--reconciliation_interval`: how often every task is reconciled.
    pub reconciliation_interval: Duration,
    /// Which executor runs tasks.
    pub executor: ExecutorChoice,
    /// Placement knobs.
    pub placement: PlacementOptions,
    /// How many versions of each app are kept.
    pub max_versions: usize,
    /// First retry of an unanswered explicit reconciliation; doubles up to
    /// a minute (the Mesos reconciliation algorithm).
    pub reconcile_retry: Duration,
    /// How long a healthy task is drained (shown as TASK_KILLING, still
    /// running) before Baton kills it for a scale-down, an upgrade or a
    /// delete; the `BATON_DRAIN_SECONDS` label overrides it per app.
    pub drain: Duration,
    /// Marathon-level health checks in flight at most
    /// (`--max_concurrent_marathon_health_checks`).
    pub max_concurrent_health_checks: usize,
    /// What one "second" of a health check's timing lasts (tests shrink it).
    pub health_check_second: Duration,
    /// Where the loop reads the time.
    pub clock: Clock,
    /// `--max_instances_per_app`: no write may ask for more.
    pub max_instances_per_app: u32,
    /// `--pod_executor baton`: pods run under `baton-executor` as a custom
    /// executor rather than Mesos's default executor.
    pub pods_under_baton_executor: bool,
}

impl SchedulerConfig {
    /// Defaults around a session.
    pub fn new(session: SessionConfig, role: String, executor: ExecutorChoice) -> SchedulerConfig {
        SchedulerConfig {
            session,
            role,
            refuse_seconds_while_waiting: 5.0,
            refuse_seconds_idle: 120.0,
            limits: Limits::default(),
            reconciliation_interval: Duration::from_secs(600),
            executor,
            placement: PlacementOptions::default(),
            max_versions: 50,
            reconcile_retry: Duration::from_secs(5),
            drain: Duration::from_secs(2),
            max_concurrent_health_checks: 256,
            health_check_second: Duration::from_secs(1),
            clock: Clock::wall(),
            max_instances_per_app: crate::state::app::DEFAULT_MAX_INSTANCES_PER_APP,
            pods_under_baton_executor: false,
        }
    }
}

impl SchedulerConfig {
    /// The executor a pod's task groups run under.
    pub fn pod_executor(&self) -> crate::offers::task_group::PodExecutor<'_> {
        use crate::offers::task_group::PodExecutor;
        match &self.executor {
            ExecutorChoice::Baton(settings) if self.pods_under_baton_executor => {
                PodExecutor::Baton(settings)
            }
            _ => PodExecutor::Default,
        }
    }
}

impl ExecutorChoice {
    /// The `baton-executor` settings when it runs `app`'s tasks: with
    /// `--executor baton`, for apps without a container of their own or an
    /// executor they name (those keep Mesos's).
    pub fn baton_for(&self, app: &crate::state::app::AppDefinition) -> Option<&ExecutorSettings> {
        match self {
            ExecutorChoice::Baton(settings)
                if app.container.is_none() && app.executor.is_empty() && !app.is_pod() =>
            {
                Some(settings)
            }
            _ => None,
        }
    }
}
