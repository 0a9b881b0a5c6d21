//! What a running deployment becomes when its apps are looked at, as a
//! pure function of the deployment, which apps have converged, and the
//! time.
//!
//! - Every step whose apps have all converged is completed, one after
//!   another; the next step's apps are then no longer held, and its
//!   deadline counts from now. After the last step the deployment is
//!   finished.
//! - A deployment that completed no step is past its deadline once its
//!   current step has run longer than the first unconverged app allows
//!   ([`timeout_of`]: the `BATON_DEPLOYMENT_TIMEOUT_SECONDS` label, else
//!   [`DEFAULT_DEPLOYMENT_TIMEOUT`]). That is reported once (the caller
//!   stores the failure with its reason); the deployment keeps going, and
//!   a rollback is the operator's call.

use std::time::Duration;

use super::Deployment;
use crate::state::app::{AppDefinition, PathId, Timestamp};

/// The app label that sets how long its deployments may take before they
/// are reported as failed (seconds).
pub const DEPLOYMENT_TIMEOUT_LABEL: &str = "BATON_DEPLOYMENT_TIMEOUT_SECONDS";

/// How long a deployment step may take without a label saying otherwise.
pub const DEFAULT_DEPLOYMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a step holding `app` may take: its label, else the default.
pub fn timeout_of(app: Option<&AppDefinition>) -> Duration {
    app.and_then(|a| a.labels.get(DEPLOYMENT_TIMEOUT_LABEL))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(DEFAULT_DEPLOYMENT_TIMEOUT, Duration::from_secs)
}

/// What became of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Advance {
    /// Nothing to change.
    Unchanged,
    /// Steps were completed (their indexes, in order); `next` is the
    /// deployment now, `finished` when no step is left.
    Stepped {
        /// The deployment with its current step moved on.
        next: Deployment,
        /// The steps completed, in order.
        completed: Vec<usize>,
        /// No step is left: the deployment is over.
        finished: bool,
    },
    /// The current step is past its deadline; `app` is its first app that
    /// has not converged.
    PastDeadline {
        /// The app holding the step up.
        app: PathId,
    },
}

/// Moves `deployment` on: `converged` says whether an app is done, and
/// `timeout` how long a step holding it may take.
pub fn advance(
    deployment: &Deployment,
    converged: impl Fn(&PathId) -> bool,
    timeout: impl Fn(&PathId) -> Duration,
    now: Timestamp,
) -> Advance {
    // The current step's first app that has not converged, if any.
    let holding_up = deployment
        .current_actions()
        .iter()
        .map(|(app, _)| app)
        .find(|app| !converged(app));
    let Some(app) = holding_up else {
        if deployment.current_step >= deployment.steps.len() {
            return Advance::Unchanged;
        }
        // The step is done: move on through every step that is.
        let mut next = deployment.clone();
        let mut completed = Vec::new();
        while next.current_step < next.steps.len()
            && next.current_actions().iter().all(|(app, _)| converged(app))
        {
            completed.push(next.current_step);
            next.current_step += 1;
            next.step_started_at = Some(now);
        }
        let finished = next.current_step >= next.steps.len();
        return Advance::Stepped {
            next,
            completed,
            finished,
        };
    };
    if deployment.failure.is_some() {
        return Advance::Unchanged;
    }
    let step_start = deployment.step_started_at.unwrap_or(deployment.started_at);
    let elapsed = u128::try_from(now.as_millis() - step_start.as_millis()).unwrap_or(0);
    if elapsed < timeout(app).as_millis() {
        return Advance::Unchanged;
    }
    Advance::PastDeadline { app: app.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::DeploymentAction::{RestartApplication, StartApplication};

    fn id(s: &str) -> PathId {
        PathId::parse(s, &PathId::root()).unwrap()
    }

    fn two_steps() -> Deployment {
        Deployment {
            id: "d".into(),
            version: Timestamp::from_millis(0),
            steps: vec![
                vec![(id("/db"), StartApplication)],
                vec![(id("/web"), RestartApplication)],
            ],
            current_step: 0,
            started_at: Timestamp::from_millis(1_000),
            step_started_at: None,
            failure: None,
            pods: Default::default(),
        }
    }

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    #[test]
    fn converged_steps_complete_one_after_another_until_the_end() {
        let d = two_steps();
        let now = Timestamp::from_millis(5_000);
        assert_eq!(
            advance(&d, |_| false, |_| TEN_MINUTES, now),
            Advance::Unchanged
        );
        let Advance::Stepped {
            next,
            completed,
            finished,
        } = advance(&d, |a| a.as_str() == "/db", |_| TEN_MINUTES, now)
        else {
            panic!("the first step is done");
        };
        assert_eq!((completed, finished), (vec![0], false));
        assert_eq!(next.current_step, 1);
        assert_eq!(next.step_started_at, Some(now));
        let Advance::Stepped {
            completed,
            finished,
            ..
        } = advance(&d, |_| true, |_| TEN_MINUTES, now)
        else {
            panic!("both steps are done");
        };
        assert_eq!((completed, finished), (vec![0, 1], true));
    }

    #[test]
    fn a_step_past_its_deadline_names_its_first_unconverged_app_once() {
        let mut d = two_steps();
        d.current_step = 1;
        d.step_started_at = Some(Timestamp::from_millis(10_000));
        let short = |_: &PathId| Duration::from_secs(5);
        assert_eq!(
            advance(&d, |_| false, short, Timestamp::from_millis(14_999)),
            Advance::Unchanged,
            "the deadline counts from the step's start"
        );
        assert_eq!(
            advance(&d, |_| false, short, Timestamp::from_millis(15_000)),
            Advance::PastDeadline { app: id("/web") }
        );
        d.failure = Some(crate::deploy::DeploymentFailure {
            app_id: id("/web"),
            reason: "stuck".into(),
            at: Timestamp::from_millis(15_000),
        });
        assert_eq!(
            advance(&d, |_| false, short, Timestamp::from_millis(99_000)),
            Advance::Unchanged,
            "reported once"
        );
    }

    #[test]
    fn the_timeout_label_overrides_the_default() {
        let mut app = AppDefinition::new(id("/a"), &crate::state::app::AppDefaults::default());
        assert_eq!(timeout_of(Some(&app)), DEFAULT_DEPLOYMENT_TIMEOUT);
        app.labels.insert(DEPLOYMENT_TIMEOUT_LABEL, "30");
        assert_eq!(timeout_of(Some(&app)), Duration::from_secs(30));
        app.labels.insert(DEPLOYMENT_TIMEOUT_LABEL, "soon");
        assert_eq!(timeout_of(Some(&app)), DEFAULT_DEPLOYMENT_TIMEOUT);
        assert_eq!(timeout_of(None), DEFAULT_DEPLOYMENT_TIMEOUT);
    }
}
