//! Container checkpoints: one file per running executor session under
//! `<work_dir>/meta/containers/`, so that the next cluster started on the
//! same work directory destroys what a `kill -9` of this process left
//! running ([`destroy_orphans`]).
//!
//! A Mesos agent restarted on its work directory recovers its executors.
//! mesos-local cannot: its master and agents are new (new ids, new ports),
//! so an orphaned executor would only retry for its recovery timeout (15
//! minutes) while its tasks hold ports and CPU. Destroying it is what a
//! Mesos agent does with a container it cannot recover.
//!
//! A file reads `<session id> <leader start time> <owner pid> <owner start
//! time>` (start times from `/proc/<pid>/stat`, field 22), so a reused pid
//! is never taken for the executor or for a still-living owner. Without
//! its leader, a session's members are only killed if they work below the
//! work directory (tasks start in their sandboxes): its id may since have
//! been taken by a process that called `setsid` and left children behind.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::containers::{kill_session, kill_session_members, proc_stat};

/// Where the checkpoints of the clusters on `work_dir` live.
fn dir(work_dir: &Path) -> PathBuf {
    work_dir.join("meta").join("containers")
}

/// The start time of `pid`, if it runs.
fn start_time(pid: u32) -> Option<u64> {
    proc_stat(i32::try_from(pid).ok()?).map(|s| s.start_time)
}

/// Whether `pid` works below `dir`.
fn works_below(pid: i32, dir: &Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
}

/// Notes that this process started container `container_id` as session
/// `sid`. Written before the session can outlive us unnoticed; a failure
/// only costs the cleanup after a crash, so it is logged, not fatal.
pub fn record(work_dir: &Path, container_id: &str, sid: u32) {
    let written = (|| {
        let dir = dir(work_dir);
        std::fs::create_dir_all(&dir)?;
        let me = std::process::id();
        let line = format!(
            "{sid} {} {me} {}\n",
            start_time(sid).unwrap_or(0),
            start_time(me).unwrap_or(0)
        );
        let tmp = dir.join(format!("{container_id}.tmp"));
        std::fs::write(&tmp, line)?;
        std::fs::rename(&tmp, dir.join(container_id))
    })();
    if let Err(e) = written {
        warn!(container = container_id, error = %e, "cannot checkpoint the container");
    }
}

/// Forgets container `container_id` once it is destroyed.
pub fn forget(work_dir: &Path, container_id: &str) {
    let _ = std::fs::remove_file(dir(work_dir).join(container_id));
}

/// What a checkpoint file says.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    sid: u32,
    leader_start: u64,
    owner: u32,
    owner_start: u64,
}

fn parse(text: &str) -> Option<Entry> {
    let mut numbers = text.split_whitespace();
    let mut next = || numbers.next()?.parse::<u64>().ok();
    Some(Entry {
        sid: u32::try_from(next()?).ok()?,
        leader_start: next()?,
        owner: u32::try_from(next()?).ok()?,
        owner_start: next()?,
    })
}

/// What to do with a checkpointed session, given the start times of the
/// processes now running under its pids (`None`: no such process).
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Its cluster still runs (another mesos-local on this work directory).
    Owned,
    /// Its cluster is gone and its leader runs: kill the whole session.
    Destroy,
    /// Its cluster and its leader are gone: kill what is left of the
    /// session below the work directory.
    DestroyLeaderless,
    /// The pid now belongs to another session leader: the old session is
    /// gone entirely, there is nothing to kill.
    Gone,
}

fn verdict(entry: &Entry, owner_now: Option<u64>, leader_now: Option<u64>) -> Verdict {
    if owner_now == Some(entry.owner_start) {
        return Verdict::Owned;
    }
    match leader_now {
        // A live process with the session's pid but another start time is
        // a new process; while any member of the old session lived, Linux
        // would not have handed out its id again.
        Some(start) if start != entry.leader_start => Verdict::Gone,
        Some(_) => Verdict::Destroy,
        None => Verdict::DestroyLeaderless,
    }
}

/// Destroys every container that a cluster which no longer runs left on
/// `work_dir`, and forgets it; `also` is called with each one's container
/// id (its cgroups go too). Returns how many sessions it destroyed.
/// Blocks (it scans `/proc`): call it off the async workers.
pub fn destroy_orphans(work_dir: &Path, also: impl Fn(&str)) -> usize {
    let Ok(entries) = std::fs::read_dir(dir(work_dir)) else {
        return 0;
    };
    let mut destroyed = 0;
    for path in entries.filter_map(|e| Some(e.ok()?.path())) {
        let Some(entry) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse(&text))
        else {
            // A torn temp file or something that is not ours to judge.
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        };
        match verdict(&entry, start_time(entry.owner), start_time(entry.sid)) {
            Verdict::Owned => continue,
            Verdict::Destroy => {
                kill_session(entry.sid);
                destroyed += 1;
            }
            Verdict::DestroyLeaderless => {
                kill_session_members(entry.sid, |pid| works_below(pid, work_dir));
                destroyed += 1;
            }
            Verdict::Gone => {}
        }
        if let Some(container_id) = path.file_name().and_then(|n| n.to_str()) {
            also(container_id);
        }
        let _ = std::fs::remove_file(&path);
    }
    if destroyed > 0 {
        info!(
            sessions = destroyed,
            "destroyed the containers an earlier mesos-local left running"
        );
    }
    destroyed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            sid: 4242,
            leader_start: 100,
            owner: 17,
            owner_start: 50,
        }
    }

    #[test]
    fn checkpoint_lines_parse_and_nonsense_does_not() {
        assert_eq!(parse("4242 100 17 50\n"), Some(entry()));
        assert_eq!(parse("4242 100 17"), None);
        assert_eq!(parse("-1 100 17 50"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn a_living_owner_keeps_its_containers() {
        assert_eq!(verdict(&entry(), Some(50), Some(100)), Verdict::Owned);
    }

    #[test]
    fn a_dead_owners_containers_are_destroyed_even_without_their_leader() {
        assert_eq!(verdict(&entry(), None, Some(100)), Verdict::Destroy);
        assert_eq!(verdict(&entry(), None, None), Verdict::DestroyLeaderless);
        // A reused owner pid is not the owner.
        assert_eq!(verdict(&entry(), Some(51), Some(100)), Verdict::Destroy);
    }

    #[test]
    fn a_reused_session_pid_is_left_alone() {
        assert_eq!(verdict(&entry(), None, Some(101)), Verdict::Gone);
    }

    #[test]
    fn this_process_start_time_is_read() {
        assert!(start_time(std::process::id()).is_some_and(|t| t > 0));
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn a_recorded_container_of_a_living_owner_survives_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        // Our own pid as the "session": the owner (us) lives, so nothing
        // may be killed and the file stays.
        record(dir.path(), "c1", std::process::id());
        assert_eq!(destroy_orphans(dir.path(), |_| {}), 0);
        assert!(super::dir(dir.path()).join("c1").exists());
        forget(dir.path(), "c1");
        assert!(!super::dir(dir.path()).join("c1").exists());
    }

    use super::super::containers::session_members;
    use std::time::{Duration, Instant};

    /// Runs `script` as a session leader in a sandbox below `work_dir`
    /// and checkpoints it for an owner that no longer runs; returns the
    /// leader and its session id.
    fn orphaned_session(work_dir: &Path, script: &str) -> (std::process::Child, i32) {
        let sandbox = work_dir.join("sandbox");
        std::fs::create_dir_all(&sandbox).unwrap();
        // Not a group leader, so `setsid` does not fork: its pid is the
        // session id.
        let leader = std::process::Command::new("setsid")
            .args(["sh", "-c", script])
            .current_dir(&sandbox)
            .spawn()
            .unwrap();
        let sid = leader.id();
        std::fs::create_dir_all(dir(work_dir)).unwrap();
        let dead_owner = u32::MAX;
        std::fs::write(
            dir(work_dir).join("c"),
            format!("{sid} {} {dead_owner} 1\n", start_time(sid).unwrap()),
        )
        .unwrap();
        (leader, i32::try_from(sid).unwrap())
    }

    /// Polls `done` every 10 ms for up to 5 s.
    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_dead_owners_running_session_is_destroyed_whole() {
        let work_dir = tempfile::tempdir().unwrap();
        let (mut leader, sid) = orphaned_session(work_dir.path(), "sleep 60 & wait");
        eventually("the session has its task", || {
            session_members(sid).len() == 2
        });
        assert_eq!(destroy_orphans(work_dir.path(), |_| {}), 1);
        eventually("the leader is killed", || {
            leader.try_wait().unwrap().is_some()
        });
        eventually("the session is empty", || session_members(sid).is_empty());
        assert!(!dir(work_dir.path()).join("c").exists(), "forgotten");
    }

    #[test]
    fn a_leaderless_session_loses_only_its_members_below_the_work_dir() {
        let work_dir = tempfile::tempdir().unwrap();
        let (mut leader, sid) = orphaned_session(
            work_dir.path(),
            "sleep 60 & (cd / && exec sleep 61) & exit 0",
        );
        leader.wait().unwrap();
        // The subshell exists before it has changed directory: wait for
        // the `cd`, not only for the process.
        eventually("both members run, one of them in /", || {
            let members = session_members(sid);
            members.len() == 2
                && members
                    .iter()
                    .filter(|&&p| !works_below(p, work_dir.path()))
                    .count()
                    == 1
        });
        let elsewhere: Vec<i32> = session_members(sid)
            .into_iter()
            .filter(|&p| !works_below(p, work_dir.path()))
            .collect();
        assert_eq!(elsewhere.len(), 1, "one member works in /");
        assert_eq!(destroy_orphans(work_dir.path(), |_| {}), 1);
        eventually("the sandbox's member is killed", || {
            session_members(sid) == elsewhere
        });
        kill_session(u32::try_from(sid).unwrap());
        eventually("cleaned up", || session_members(sid).is_empty());
    }
}
