//! Dynamic reservations and persistent volumes through the v1 scheduler
//! API: RESERVE + CREATE in one ACCEPT, tasks writing and reading the
//! volume (by the real `baton-executor`), an agent restart in between,
//! then DESTROY + UNRESERVE; and invalid operations dropped.

use super::common;

use common::*;
use mesos_proto::Encoding;
use mesos_proto::v1::{self, TaskState, offer::operation};

const ROLE: &str = "pv";
const PRINCIPAL: &str = "pv-principal";

/// A framework of role `pv` with a principal; `refinement` adds
/// RESERVATION_REFINEMENT.
fn pv_framework(refinement: bool) -> v1::FrameworkInfo {
    let mut info = framework_info("pv", true, 3600.0);
    info.role = Some(ROLE.into());
    info.principal = Some(PRINCIPAL.into());
    if refinement {
        info.capabilities.push(capability(
            v1::framework_info::capability::Type::ReservationRefinement,
        ));
    }
    info
}

/// `r` dynamically reserved for `pv`, in the pre-refinement format.
#[allow(deprecated)]
fn reserved(mut r: v1::Resource) -> v1::Resource {
    r.role = Some(ROLE.into());
    r.reservation = Some(v1::resource::ReservationInfo {
        principal: Some(PRINCIPAL.into()),
        ..Default::default()
    });
    r
}

/// Reserved disk made the volume `id` at `data`.
fn volume(id: &str, mb: f64) -> v1::Resource {
    let mut r = reserved(mesos_proto::util::scalar_resource("disk", mb));
    r.disk = Some(v1::resource::DiskInfo {
        persistence: Some(v1::resource::disk_info::Persistence {
            id: id.into(),
            principal: Some(PRINCIPAL.into()),
        }),
        volume: Some(v1::Volume {
            container_path: "data".into(),
            mode: v1::volume::Mode::Rw as i32,
            ..Default::default()
        }),
    });
    r
}

fn reservation() -> Vec<v1::Resource> {
    use mesos_proto::util::scalar_resource;
    vec![
        reserved(scalar_resource("cpus", 0.5)),
        reserved(scalar_resource("mem", 64.0)),
        reserved(scalar_resource("disk", 64.0)),
    ]
}

fn op(ty: operation::Type, resources: Vec<v1::Resource>) -> v1::offer::Operation {
    let mut o = v1::offer::Operation {
        r#type: Some(ty as i32),
        ..Default::default()
    };
    match ty {
        operation::Type::Reserve => o.reserve = Some(operation::Reserve { resources }),
        operation::Type::Unreserve => o.unreserve = Some(operation::Unreserve { resources }),
        operation::Type::Create => o.create = Some(operation::Create { volumes: resources }),
        _ => o.destroy = Some(operation::Destroy { volumes: resources }),
    }
    o
}

/// The offer's persistent volumes, as offered.
fn volumes_of(offer: &v1::Offer) -> Vec<v1::Resource> {
    offer
        .resources
        .iter()
        .filter(|r| r.disk.as_ref().is_some_and(|d| d.persistence.is_some()))
        .cloned()
        .collect()
}

/// Whether any resource of the offer is reserved (either format).
#[allow(deprecated)]
fn any_reserved(offer: &v1::Offer) -> bool {
    offer
        .resources
        .iter()
        .any(|r| !r.reservations.is_empty() || r.role.as_deref().is_some_and(|x| x != "*"))
}

/// Offers until one passes `pred`; the others are declined without a filter.
async fn offer_where(s: &mut Sched, pred: impl Fn(&v1::Offer) -> bool) -> v1::Offer {
    loop {
        for o in s.offers().await {
            if pred(&o) {
                return o;
            }
            s.decline(vec![o.id.clone()], Some(0.0)).await;
        }
    }
}

/// Acknowledges `task_id`'s updates until a terminal one; returns it.
async fn until_terminal(s: &mut Sched, task_id: &str) -> v1::TaskStatus {
    loop {
        let u = s.update(task_id).await;
        if u.uuid.is_some() {
            s.ack(&u).await;
        }
        if mesos_proto::util::is_terminal(u.state()) {
            return u;
        }
    }
}

async fn until_running(s: &mut Sched, task_id: &str) {
    loop {
        let u = s.update(task_id).await;
        if u.uuid.is_some() {
            s.ack(&u).await;
        }
        assert!(
            !mesos_proto::util::is_terminal(u.state()),
            "{task_id} ended: {:?} {}",
            u.state(),
            u.message()
        );
        if u.state() == TaskState::TaskRunning {
            return;
        }
    }
}

/// A command task on the reserved cpus and mem and the volume.
fn volume_task(id: &str, offer: &v1::Offer, vol: &v1::Resource, cmd: &str) -> v1::TaskInfo {
    use mesos_proto::util::scalar_resource;
    v1::TaskInfo {
        name: id.into(),
        task_id: mesos_proto::util::task_id(id),
        agent_id: offer.agent_id.clone(),
        resources: vec![
            reserved(scalar_resource("cpus", 0.5)),
            reserved(scalar_resource("mem", 64.0)),
            vol.clone(),
        ],
        command: Some(v1::CommandInfo {
            value: Some(cmd.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_keeps_its_data_across_tasks_and_an_agent_restart() {
    ensure_baton_executor();
    let (cluster, dir) = start_with(43900, |c| c.agents = 1).await;
    let mut s = Sched::subscribe(&cluster.master_url(), Encoding::Json, pv_framework(false)).await;

    // RESERVE + CREATE in one ACCEPT.
    let offer = offer_where(&mut s, |_| true).await;
    s.accept(
        vec![offer.id.clone()],
        vec![
            op(operation::Type::Reserve, reservation()),
            op(operation::Type::Create, vec![volume("vol1", 32.0)]),
        ],
        Some(0.0),
    )
    .await;
    let offer = offer_where(&mut s, |o| !volumes_of(o).is_empty()).await;
    let vol = volumes_of(&offer).remove(0);
    // Pre-refinement format for a framework without RESERVATION_REFINEMENT.
    #[allow(deprecated)]
    {
        assert_eq!(vol.role.as_deref(), Some(ROLE));
        assert!(vol.reservations.is_empty());
        assert_eq!(
            vol.reservation
                .as_ref()
                .and_then(|r| r.principal.as_deref()),
            Some(PRINCIPAL)
        );
    }
    let volume_dir = dir.path().join("volumes/agent-1/roles/pv/vol1");
    eventually("CREATE makes the volume's directory", || {
        volume_dir.is_dir()
    })
    .await;
    let state = cluster.state();
    let slave = &state["slaves"][0];
    assert_eq!(slave["reserved_resources"]["pv"]["disk"], 64.0);
    assert_eq!(slave["reserved_resources"]["pv"]["cpus"], 0.5);

    // A task writes into the volume through its sandbox's `data` link.
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![volume_task(
            "writer",
            &offer,
            &vol,
            "echo hello > data/f && sleep 600",
        )])],
        Some(0.0),
    )
    .await;
    until_running(&mut s, "writer").await;
    let written = volume_dir.join("f");
    eventually("the writer wrote into the volume", || {
        std::fs::read_to_string(&written).is_ok_and(|t| t == "hello\n")
    })
    .await;
    let sandbox_dir = sandbox(dir.path(), "writer").await;
    assert_eq!(
        std::fs::read_link(sandbox_dir.join("data")).unwrap(),
        volume_dir
    );
    s.kill("writer").await;
    assert_eq!(
        until_terminal(&mut s, "writer").await.state(),
        TaskState::TaskKilled
    );
    // Its end took the volume out of its container before the update was
    // forwarded, as a real agent does: the link is gone, the volume stays.
    assert!(
        std::fs::symlink_metadata(sandbox_dir.join("data")).is_err(),
        "the ended task's sandbox still links the volume"
    );
    assert!(written.is_file());

    // The agent restarts: reservations and the volume come back from its
    // checkpoint and are offered again.
    let faults = cluster.faults();
    faults.stop_agent(1).await;
    faults.start_agent(1).await;
    let offer = offer_where(&mut s, |o| !volumes_of(o).is_empty()).await;
    assert_eq!(volumes_of(&offer), vec![vol.clone()]);
    s.accept(
        vec![offer.id.clone()],
        vec![launch(vec![volume_task(
            "reader",
            &offer,
            &vol,
            r#"test "$(cat data/f)" = hello"#,
        )])],
        Some(0.0),
    )
    .await;
    let end = until_terminal(&mut s, "reader").await;
    assert_eq!(end.state(), TaskState::TaskFinished, "{}", end.message());

    // DESTROY + UNRESERVE: plain resources again, the directory gone.
    let offer = offer_where(&mut s, |o| !volumes_of(o).is_empty()).await;
    s.accept(
        vec![offer.id.clone()],
        vec![
            op(operation::Type::Destroy, vec![vol.clone()]),
            op(operation::Type::Unreserve, reservation()),
        ],
        Some(0.0),
    )
    .await;
    let offer = offer_where(&mut s, |o| !any_reserved(o)).await;
    let disk: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "disk")
        .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
        .sum();
    assert_eq!(disk, cluster_disk());
    eventually("DESTROY removes the volume", || !volume_dir.exists()).await;
    assert_eq!(
        cluster.state()["slaves"][0]["reserved_resources"],
        serde_json::json!({})
    );
    stop(cluster, dir.path()).await;
}

fn cluster_disk() -> f64 {
    mesos_local::ClusterConfig::default().disk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_operations_are_dropped_and_refinement_frameworks_read_stacks() {
    let (cluster, dir) = start_with(44200, |c| c.agents = 1).await;
    let mut s = Sched::subscribe(&cluster.master_url(), Encoding::Json, pv_framework(true)).await;
    let offer = offer_where(&mut s, |_| true).await;
    // Unreserved resources carry no `role` for a RESERVATION_REFINEMENT
    // framework.
    #[allow(deprecated)]
    {
        assert!(offer.resources.iter().all(|r| r.role.is_none()));
    }
    let mut other = reserved(mesos_proto::util::scalar_resource("cpus", 0.1));
    #[allow(deprecated)]
    {
        other.role = Some("other".into());
    }
    let mut by_someone = reserved(mesos_proto::util::scalar_resource("cpus", 0.1));
    by_someone.reservation = Some(v1::resource::ReservationInfo {
        principal: Some("someone".into()),
        ..Default::default()
    });
    // All dropped: another role, another principal, a volume on unreserved
    // disk, an UNRESERVE of nothing reserved.
    let mut unreserved_volume = volume("v", 16.0);
    #[allow(deprecated)]
    {
        unreserved_volume.role = None;
        unreserved_volume.reservation = None;
    }
    s.accept(
        vec![offer.id.clone()],
        vec![
            op(operation::Type::Reserve, vec![other]),
            op(operation::Type::Reserve, vec![by_someone]),
            op(operation::Type::Create, vec![unreserved_volume]),
            op(operation::Type::Unreserve, reservation()),
            // Valid: applied after the invalid ones.
            op(operation::Type::Reserve, reservation()),
            op(operation::Type::Create, vec![volume("vol1", 32.0)]),
            // A second volume with the same id on the rest: dropped.
            op(operation::Type::Create, vec![volume("vol1", 32.0)]),
        ],
        Some(0.0),
    )
    .await;
    let offer = offer_where(&mut s, |o| !volumes_of(o).is_empty()).await;
    let vols = volumes_of(&offer);
    assert_eq!(vols.len(), 1);
    // The post-refinement stack.
    #[allow(deprecated)]
    {
        assert!(vols[0].role.is_none() && vols[0].reservation.is_none());
    }
    assert_eq!(vols[0].reservations.len(), 1);
    assert_eq!(vols[0].reservations[0].role.as_deref(), Some(ROLE));
    let reserved_plain: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "disk" && !r.reservations.is_empty() && r.disk.is_none())
        .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
        .sum();
    assert_eq!(reserved_plain, 32.0);
    // The reservations for another role and by another principal were
    // dropped: the only reserved cpus are the valid RESERVE's.
    let reserved_cpus: Vec<(Option<&str>, Option<&str>, f64)> = offer
        .resources
        .iter()
        .filter(|r| r.name == "cpus" && !r.reservations.is_empty())
        .map(|r| {
            let last = r.reservations.last().expect("reserved");
            (
                last.role.as_deref(),
                last.principal.as_deref(),
                r.scalar.as_ref().map_or(0.0, |s| s.value),
            )
        })
        .collect();
    assert_eq!(reserved_cpus, [(Some(ROLE), Some(PRINCIPAL), 0.5)]);

    // /master/slaves and the agent's /state show the volume.
    let slaves: serde_json::Value = http()
        .get(format!("{}/master/slaves", cluster.master_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let full = slaves["slaves"][0]["reserved_resources_full"]["pv"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        full.iter()
            .any(|r| r["disk"]["persistence"]["id"] == "vol1"),
        "{full:?}"
    );
    let agent: serde_json::Value = http()
        .get(format!("http://{}/state", cluster.agent_endpoint(1)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(agent["reserved_resources"]["pv"]["disk"], 64.0);
    assert!(agent["reserved_resources_full"]["pv"].is_array());

    // UNRESERVE cannot take a volume; a second DESTROY finds nothing.
    s.accept(
        vec![offer.id.clone()],
        vec![
            op(operation::Type::Unreserve, vols.clone()),
            op(operation::Type::Destroy, vols.clone()),
            op(operation::Type::Destroy, vols.clone()),
        ],
        Some(0.0),
    )
    .await;
    let offer = offer_where(&mut s, |o| volumes_of(o).is_empty()).await;
    let reserved_plain: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "disk" && !r.reservations.is_empty())
        .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
        .sum();
    assert_eq!(reserved_plain, 64.0);
    // The first DESTROY was applied, the second found nothing.
    let vol1 = dir.path().join("volumes/agent-1/roles/pv/vol1");
    eventually("the first DESTROY removes vol1", || !vol1.exists()).await;
    stop(cluster, dir.path()).await;
}
