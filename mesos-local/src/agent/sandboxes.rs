//! The sandboxes an agent knows: one per executor run (container), from its
//! launch until long after it ended, as a Mesos agent keeps them attached
//! to its `/files` endpoints until they are garbage-collected. The agent's
//! `/files/*` serve only paths inside these, and its `/state` lists them
//! with their `directory`.
//!
//! Each run is reachable under three virtual paths, as on a Mesos 1.12
//! agent (checked against its `/files/debug`): the sandbox's real path,
//! `<work_dir>/agents/<agent>/frameworks/<fid>/executors/<eid>/runs/latest`
//! and `/frameworks/<fid>/executors/<eid>/runs/latest` (the last two name
//! the executor's latest run).
//!
//! Pure bookkeeping: no I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Ended runs kept per framework, as Mesos's
/// `--max_completed_executors_per_framework` default.
pub const MAX_COMPLETED_PER_FRAMEWORK: usize = 150;

/// One executor run and its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Its framework.
    pub framework_id: String,
    /// The framework's name, kept for `/state` after the framework left.
    pub framework_name: String,
    /// The executor.
    pub executor_id: String,
    /// `ExecutorInfo.name`.
    pub executor_name: String,
    /// `ExecutorInfo.source`.
    pub source: String,
    /// The container (the run's id).
    pub container_id: String,
    /// The sandbox, as the agent created it.
    pub directory: PathBuf,
    /// The tasks sent to it, in order.
    pub tasks: Vec<String>,
    /// The executor has ended.
    pub completed: bool,
}

/// Every run the agent knows, oldest first.
#[derive(Debug, Default)]
pub struct Sandboxes {
    runs: Vec<Run>,
}

impl Sandboxes {
    /// A new run starts (its sandbox is about to be created).
    pub fn launched(&mut self, run: Run) {
        self.runs.push(run);
    }

    /// Tasks were sent to the executor's latest run.
    pub fn add_tasks<'a>(
        &mut self,
        framework_id: &str,
        executor_id: &str,
        tasks: impl IntoIterator<Item = &'a str>,
    ) {
        let Some(run) = self
            .runs
            .iter_mut()
            .rev()
            .find(|r| r.framework_id == framework_id && r.executor_id == executor_id)
        else {
            return;
        };
        for task in tasks {
            if !run.tasks.iter().any(|t| t == task) {
                run.tasks.push(task.to_string());
            }
        }
    }

    /// The run ended; the oldest ended runs of its framework beyond
    /// [`MAX_COMPLETED_PER_FRAMEWORK`] are forgotten (their files are no
    /// longer served).
    pub fn exited(&mut self, framework_id: &str, container_id: &str) {
        if let Some(run) = self
            .runs
            .iter_mut()
            .find(|r| r.framework_id == framework_id && r.container_id == container_id)
        {
            run.completed = true;
        }
        let completed = self
            .runs
            .iter()
            .filter(|r| r.completed && r.framework_id == framework_id)
            .count();
        let mut excess = completed.saturating_sub(MAX_COMPLETED_PER_FRAMEWORK);
        self.runs.retain(|r| {
            let drop = excess > 0 && r.completed && r.framework_id == framework_id;
            if drop {
                excess -= 1;
            }
            !drop
        });
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The virtual paths served and the sandbox each stands for; a later
    /// run of the same executor takes over its `latest` paths.
    pub fn attachments(&self, work_dir: &Path, agent_id: &str) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        for run in &self.runs {
            let latest = |base: &str| {
                format!(
                    "{base}/frameworks/{}/executors/{}/runs/latest",
                    run.framework_id, run.executor_id
                )
            };
            out.insert(
                normalize(&run.directory.to_string_lossy()),
                run.directory.clone(),
            );
            let agent_dir = work_dir.join("agents").join(agent_id);
            out.insert(
                normalize(&latest(&agent_dir.to_string_lossy())),
                run.directory.clone(),
            );
            out.insert(latest(""), run.directory.clone());
        }
        out
    }
}

/// A path with repeated and trailing slashes removed, as virtual paths are
/// compared (`/a//b/` is `/a/b`).
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let joined = path
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fid: &str, eid: &str, container: &str) -> Run {
        Run {
            framework_id: fid.into(),
            framework_name: "fw".into(),
            executor_id: eid.into(),
            executor_name: "e".into(),
            source: String::new(),
            container_id: container.into(),
            directory: PathBuf::from(format!(
                "/w/agents/S1/frameworks/{fid}/executors/{eid}/runs/{container}"
            )),
            tasks: Vec::new(),
            completed: false,
        }
    }

    #[test]
    fn every_run_is_attached_under_its_path_and_latest_names_the_last_run() {
        let mut s = Sandboxes::default();
        s.launched(run("f", "e", "c1"));
        s.exited("f", "c1");
        s.launched(run("f", "e", "c2"));
        let a = s.attachments(Path::new("/w"), "S1");
        let c1 = PathBuf::from("/w/agents/S1/frameworks/f/executors/e/runs/c1");
        let c2 = PathBuf::from("/w/agents/S1/frameworks/f/executors/e/runs/c2");
        assert_eq!(
            a[&c1.display().to_string()],
            c1,
            "an ended run stays readable"
        );
        assert_eq!(a[&c2.display().to_string()], c2);
        assert_eq!(a["/frameworks/f/executors/e/runs/latest"], c2);
        assert_eq!(a["/w/agents/S1/frameworks/f/executors/e/runs/latest"], c2);
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn tasks_are_added_once_to_the_latest_run() {
        let mut s = Sandboxes::default();
        s.launched(run("f", "e", "c1"));
        s.add_tasks("f", "e", ["t1", "t2", "t1"]);
        s.add_tasks("f", "other", ["t3"]);
        assert_eq!(s.runs()[0].tasks, vec!["t1", "t2"]);
    }

    #[test]
    fn ended_runs_beyond_the_limit_are_forgotten_oldest_first() {
        let mut s = Sandboxes::default();
        s.launched(run("g", "keep", "live"));
        for i in 0..MAX_COMPLETED_PER_FRAMEWORK + 2 {
            let c = format!("c{i}");
            s.launched(run("f", &format!("e{i}"), &c));
            s.exited("f", &c);
        }
        let f_runs: Vec<&str> = s
            .runs()
            .iter()
            .filter(|r| r.framework_id == "f")
            .map(|r| r.container_id.as_str())
            .collect();
        assert_eq!(f_runs.len(), MAX_COMPLETED_PER_FRAMEWORK);
        assert_eq!(f_runs[0], "c2");
        assert!(s.runs().iter().any(|r| r.container_id == "live"));
    }

    #[test]
    fn paths_are_compared_without_repeated_or_trailing_slashes() {
        assert_eq!(normalize("/a//b/"), "/a/b");
        assert_eq!(normalize("a/b"), "a/b");
        assert_eq!(normalize("/"), "/");
    }
}
