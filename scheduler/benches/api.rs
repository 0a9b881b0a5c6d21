//! Many apps: `cargo bench -p baton --bench api`.
//!
//! Marathon's `GET /v2/apps` grew slow with thousands of apps, and every
//! status update contended with it. Baton's readers render immutable
//! snapshots; this measures, for 10,000 apps × 10 running instances (each
//! task as it is after its first updates: its agent's fields, its last
//! status, three update uuids):
//!
//! - the memory the state takes (RSS growth while building it);
//! - rendering `GET /v2/apps` (counts, deployments) and
//!   `GET /v2/apps?embed=apps.tasks` to JSON bytes, as the handler does;
//! - publishing a snapshot after a status update (update one instance in the
//!   persistent maps, clone the view), which the loop does after every event;
//! - the peak RSS of all of it, including while a reader streams
//!   `embed=apps.tasks` (as the server does: in chunks) from snapshots that a
//!   storm of status updates keeps replacing.
//!
//! A plain `main`, no harness; the fastest of a few runs is reported.
// A benchmark measures wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::api::lists::{self, ListKey};
use baton::api::render::Now;
use baton::reconcile::View;
use baton::state::StatusRecord;
use baton::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};
use baton::state::instance::{Condition, Instance, InstanceTask, UpdateUuid, shared_fields};
use common::{mib, proc_status_mib};

const APPS: usize = 10_000;
const INSTANCES: usize = 10;
const RUNS: usize = 3;

fn build_view() -> View {
    let mut view = View::default();
    let defaults = AppDefaults::default();
    for a in 0..APPS {
        let app = AppDefinition::from_value(
            &serde_json::json!({
                "id": format!("/team-{}/app-{a}", a % 100),
                "cmd": format!("python3 -m http.server $PORT0 # {a}"),
                "cpus": 0.1, "mem": 64, "instances": INSTANCES,
                "labels": {"team": format!("team-{}", a % 100), "HAPROXY_0_VHOST": format!("app-{a}.example.com")},
                "constraints": [["hostname", "UNIQUE"]],
            }),
            &PathId::root(),
            &defaults,
        )
        .expect("valid app")
        .with_version(Timestamp::from_millis(1_700_000_000_000), false);
        let version = app.version.expect("versioned");
        let mut instances = baton::state::InstanceMap::new();
        for i in 0..INSTANCES {
            let mut instance = Instance::schedule(app.id.clone(), version, version);
            let task_id = instance.next_task_id();
            instance.incarnation = 1;
            // As a running task is after its first updates: on one of
            // 1,000 agents (its hostname and rack as constraints see them),
            // its last status and the uuids of STARTING, RUNNING and a
            // health change.
            let agent = (a + i) % 1000;
            let hostname = format!("10.0.{}.{}", agent / 250, agent % 250);
            let fields = BTreeMap::from([
                ("@hostname".to_string(), hostname.clone()),
                ("rack_id".to_string(), format!("rack-{}", agent % 20)),
            ]);
            instance.task = Some(InstanceTask {
                condition: Condition::Running,
                started_at: Some(version.plus_millis(1500)),
                fields: shared_fields(fields),
                last_status: Some(StatusRecord::from_status(&running_status(&task_id))),
                recent_update_uuids: (0..3u128)
                    .map(|n| UpdateUuid(n << 64 | a as u128))
                    .collect(),
                healthy: Some(true),
                ..InstanceTask::launched(
                    task_id,
                    format!("3f2b9a0e-5c1d-4e8a-9b7f-2a6c4d8e1f00-S{agent}"),
                    hostname,
                    vec![31_000 + i as u64],
                    version,
                )
            });
            instances.insert(instance.uuid, Arc::new(instance));
        }
        view.instances.insert(app.id.clone(), instances);
        view.apps.insert(app.id.clone(), Arc::new(app));
    }
    view
}

/// A TASK_RUNNING from the executor, healthy, as Mesos forwards it.
fn running_status(task_id: &str) -> mesos_proto::v1::TaskStatus {
    let mut status = mesos_proto::util::status(
        mesos_proto::util::task_id(task_id),
        mesos_proto::v1::TaskState::TaskRunning,
        mesos_proto::v1::task_status::Source::Executor,
    );
    status.healthy = Some(true);
    status.timestamp = Some(1_700_000_001.5);
    status
}

/// Renders `GET {path}?{query}` as the server sends a large body: written
/// in chunks that leave (here: are counted and dropped) as they fill, so
/// the body is never held whole.
fn render(view: &View, path: &str, query: &str) -> usize {
    struct Sink {
        chunk: Vec<u8>,
        sent: usize,
    }
    impl std::io::Write for Sink {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.chunk.extend_from_slice(data);
            if self.chunk.len() >= 64 * 1024 {
                self.sent += self.chunk.len();
                self.chunk.clear();
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let key = ListKey::parse(path, Some(query)).expect("a valid query");
    let mut sink = Sink {
        chunk: Vec::with_capacity(64 * 1024),
        sent: 0,
    };
    lists::render(view, &key, &Now::new(Timestamp::now()), &mut sink).expect("rendered");
    sink.sent + sink.chunk.len()
}

fn best_of(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        out = black_box(f());
        best = best.min(start.elapsed());
    }
    (best, out)
}

fn main() {
    let before = proc_status_mib("VmRSS:");
    let started = Instant::now();
    let view = build_view();
    let built_in = started.elapsed();
    let after = proc_status_mib("VmRSS:");
    println!(
        "state: {APPS} apps x {INSTANCES} instances built in {built_in:?}; RSS {} -> {} (+{})",
        mib(before),
        mib(after),
        mib(after.zip(before).map(|(a, b)| a - b)),
    );

    let (t, bytes) = best_of(|| {
        render(
            &view,
            "/v2/apps",
            "embed=apps.counts&embed=apps.deployments",
        )
    });
    println!("GET /v2/apps:                  {t:?} ({bytes} bytes)");
    println!("peak RSS so far: {}", mib(proc_status_mib("VmHWM:")));
    let (t, bytes) = best_of(|| {
        render(
            &view,
            "/v2/apps",
            "embed=apps.counts&embed=apps.deployments&embed=apps.tasks",
        )
    });
    println!("GET /v2/apps?embed=apps.tasks: {t:?} ({bytes} bytes, streamed)");
    println!("peak RSS so far: {}", mib(proc_status_mib("VmHWM:")));

    // Status updates, each replacing one instance and publishing a
    // snapshot, as the loop does after every event; first alone, then
    // while a reader streams `embed=apps.tasks` from the latest snapshot
    // (holding it, and what it shares, while it renders).
    let ids: Vec<PathId> = view.apps.keys().cloned().collect();
    let latest = Arc::new(Mutex::new(Arc::new(view)));
    let updates = 100_000;
    let alone = apply_updates(&latest, &ids, 0..updates);
    println!(
        "status update + publish:       {:?} each ({updates} updates)",
        alone / updates as u32
    );
    let serving = AtomicBool::new(true);
    let (during, renders) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut renders = 0;
            while serving.load(Ordering::Relaxed) {
                let snapshot = latest.lock().expect("unpoisoned").clone();
                black_box(render(&snapshot, "/v2/apps", "embed=apps.tasks"));
                renders += 1;
            }
            renders
        });
        let mut during = Duration::ZERO;
        // At least a few whole renders against a state that keeps changing.
        for round in 0..4 {
            let from = updates * (round + 1);
            during += apply_updates(&latest, &ids, from..from + updates);
        }
        serving.store(false, Ordering::Relaxed);
        (during, reader.join().expect("reader"))
    });
    println!(
        "status update + publish while serving embed=apps.tasks: {:?} each ({} updates, {renders} renders)",
        during / (4 * updates) as u32,
        4 * updates
    );
    println!("peak RSS: {}", mib(proc_status_mib("VmHWM:")));
}

/// Applies status updates `numbers` (each bumps the first instance of one
/// app in turn) to the latest state, publishing after each; gives the time.
fn apply_updates(
    latest: &Mutex<Arc<View>>,
    ids: &[PathId],
    numbers: std::ops::Range<usize>,
) -> Duration {
    let mut working = (**latest.lock().expect("unpoisoned")).clone();
    let start = Instant::now();
    for n in numbers {
        let id = &ids[n % ids.len()];
        if let Some(instances) = working.instances.get_mut(id) {
            let first = instances.iter().next().map(|(u, i)| (*u, i.clone()));
            if let Some((uuid, instance)) = first {
                let mut next = (*instance).clone();
                if let Some(task) = next.task.as_mut() {
                    task.recent_update_uuids.push(UpdateUuid(n as u128));
                    task.recent_update_uuids.remove(0);
                }
                instances.insert(uuid, Arc::new(next));
            }
        }
        *latest.lock().expect("unpoisoned") = Arc::new(working.clone());
    }
    start.elapsed()
}
