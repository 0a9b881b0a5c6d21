//! Deployment plans as pure values: which apps a change touches, in which
//! steps (Marathon's `DeploymentPlan`, shared/reference/marathon-api.md §4.1).
//!
//! - apps that are removed stop first, all in one step;
//! - the others follow in dependency layers: an app whose `dependencies`
//!   name apps of the same change comes in a later step than each of them
//!   (the length of its longest dependency path decides its step), so a
//!   database is up and healthy before the web app that needs it starts;
//! - steps run strictly one after another; an app of a later step is held
//!   (neither started nor upgraded) until every earlier step converged.

use std::collections::{BTreeMap, BTreeSet};

use super::DeploymentAction;
use crate::state::app::PathId;

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The apps' dependencies form a cycle through this app.
    #[error("dependency cycle through {0}")]
    Cycle(PathId),
}

/// The steps of a change: `actions` in the order given, each app's
/// dependencies from `dependencies_of` (only those among `actions` order
/// anything; others are already deployed).
pub fn steps(
    actions: &[(PathId, DeploymentAction)],
    dependencies_of: impl Fn(&PathId) -> Vec<PathId>,
) -> Result<Vec<Vec<(PathId, DeploymentAction)>>, PlanError> {
    let (stops, rest): (Vec<_>, Vec<_>) = actions
        .iter()
        .cloned()
        .partition(|(_, a)| *a == DeploymentAction::StopApplication);
    let in_change: Vec<&PathId> = rest.iter().map(|(id, _)| id).collect();
    // A dependency names an app, or a group: then every app under it.
    let deps: BTreeMap<&PathId, Vec<PathId>> = rest
        .iter()
        .map(|(id, _)| {
            let within: BTreeSet<PathId> = dependencies_of(id)
                .iter()
                .flat_map(|d| {
                    in_change
                        .iter()
                        .filter(move |a| *a == &d || a.is_descendant_of(d))
                        .map(|a| (*a).clone())
                })
                .filter(|a| a != id)
                .collect();
            (id, within.into_iter().collect())
        })
        .collect();
    let mut layer: BTreeMap<PathId, usize> = BTreeMap::new();
    for (id, _) in &rest {
        layer_of(id, &deps, &mut layer, &mut BTreeSet::new())?;
    }
    let mut out: Vec<Vec<(PathId, DeploymentAction)>> = Vec::new();
    if !stops.is_empty() {
        out.push(stops);
    }
    let layers = layer.values().copied().max().map_or(0, |m| m + 1);
    for l in 0..layers {
        let step: Vec<_> = rest
            .iter()
            .filter(|(id, _)| layer.get(id) == Some(&l))
            .cloned()
            .collect();
        if !step.is_empty() {
            out.push(step);
        }
    }
    Ok(out)
}

fn layer_of(
    id: &PathId,
    deps: &BTreeMap<&PathId, Vec<PathId>>,
    layer: &mut BTreeMap<PathId, usize>,
    visiting: &mut BTreeSet<PathId>,
) -> Result<usize, PlanError> {
    if let Some(&l) = layer.get(id) {
        return Ok(l);
    }
    if !visiting.insert(id.clone()) {
        return Err(PlanError::Cycle(id.clone()));
    }
    let mut l = 0;
    for dep in deps.get(id).into_iter().flatten() {
        l = l.max(layer_of(dep, deps, layer, visiting)? + 1);
    }
    visiting.remove(id);
    layer.insert(id.clone(), l);
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentAction::*;

    fn id(s: &str) -> PathId {
        PathId::parse(s, &PathId::root()).unwrap()
    }

    #[test]
    fn dependencies_order_steps_and_stops_come_first() {
        let actions = vec![
            (id("/p/web"), StartApplication),
            (id("/p/db"), StartApplication),
            (id("/p/cache"), RestartApplication),
            (id("/old"), StopApplication),
        ];
        let deps = |a: &PathId| match a.as_str() {
            "/p/web" => vec![id("/p/db"), id("/p/cache")],
            "/p/cache" => vec![id("/p/db"), id("/elsewhere")],
            _ => vec![],
        };
        let plan = steps(&actions, deps).unwrap();
        let names: Vec<Vec<&str>> = plan
            .iter()
            .map(|s| s.iter().map(|(a, _)| a.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["/old"],
                vec!["/p/db"],
                vec!["/p/cache"],
                vec!["/p/web"]
            ]
        );
    }

    #[test]
    fn a_dependency_on_a_group_waits_for_every_app_in_it() {
        let actions = vec![
            (id("/p/web"), StartApplication),
            (id("/p/data/db"), StartApplication),
            (id("/p/data/cache"), StartApplication),
        ];
        let deps = |a: &PathId| match a.as_str() {
            "/p/web" => vec![id("/p/data")],
            _ => vec![],
        };
        let plan = steps(&actions, deps).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1], vec![(id("/p/web"), StartApplication)]);
    }

    #[test]
    fn independent_apps_share_one_step() {
        let actions = vec![(id("/a"), ScaleApplication), (id("/b"), StartApplication)];
        let plan = steps(&actions, |_| vec![]).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].len(), 2);
    }

    #[test]
    fn a_dependency_cycle_is_refused() {
        let actions = vec![(id("/a"), StartApplication), (id("/b"), StartApplication)];
        let deps = |a: &PathId| match a.as_str() {
            "/a" => vec![id("/b")],
            _ => vec![id("/a")],
        };
        assert!(matches!(steps(&actions, deps), Err(PlanError::Cycle(_))));
    }
}
