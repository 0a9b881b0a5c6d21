//! The v1 scheduler API over raw HTTP, in both encodings: subscription,
//! offers, status codes, filters, invalid ACCEPTs, reconciliation, state.

use super::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use mesos_proto::scheduler::{call, event};
use mesos_proto::v1::{self, TaskState, task_status::Reason};
use mesos_proto::{Encoding, util};
use reqwest::StatusCode;

async fn subscribed_heartbeats_and_offers_from_every_agent(encoding: Encoding, ports: u16) {
    let (cluster, dir) = start(ports).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        encoding,
        framework_info("t", false, 0.0),
    )
    .await;
    assert!(s.framework_id.ends_with("-0000"), "{}", s.framework_id);

    let offers = s.offers_from(3).await;
    let hosts: Vec<&str> = offers.iter().map(|o| o.hostname.as_str()).collect();
    assert_eq!(hosts, vec!["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    let mut ranges = Vec::new();
    for (i, o) in offers.iter().enumerate() {
        let idx = i + 1;
        let rack = o
            .attributes
            .iter()
            .find(|a| a.name == "rack_id")
            .and_then(|a| a.text.as_ref())
            .map(|t| t.value.clone());
        assert_eq!(
            rack.as_deref(),
            Some(if idx == 2 { "rack-2" } else { "rack-1" })
        );
        let url = o.url.as_ref().unwrap();
        assert_eq!(
            url.address.port,
            i32::from(cluster.agent_endpoint(idx).port())
        );
        assert_eq!(cluster.agent_endpoint(idx).ip().to_string(), o.hostname);
        assert!(o.allocation_info.is_none());
        let names: BTreeSet<&str> = o.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, BTreeSet::from(["cpus", "disk", "mem", "ports"]));
        let ports = o.resources.iter().find(|r| r.name == "ports").unwrap();
        let r = &ports.ranges.as_ref().unwrap().range[0];
        ranges.push((r.begin, r.end));
    }
    let p = u64::from(ports);
    assert_eq!(
        ranges,
        vec![(p, p + 99), (p + 100, p + 199), (p + 200, p + 299)]
    );

    // Heartbeats keep coming every 200 ms.
    for _ in 0..3 {
        s.expect("HEARTBEAT", |e| e.r#type() == event::Type::Heartbeat)
            .await;
    }
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn subscribe_gets_subscribed_heartbeat_and_offers_json() {
    subscribed_heartbeats_and_offers_from_every_agent(Encoding::Json, 20000).await;
}

#[tokio::test]
async fn subscribe_gets_subscribed_heartbeat_and_offers_protobuf() {
    subscribed_heartbeats_and_offers_from_every_agent(Encoding::Protobuf, 20300).await;
}

#[tokio::test]
async fn bad_requests_get_mesos_status_codes() {
    let (cluster, dir) = start(20600).await;
    let api = format!("{}/api/v1/scheduler", cluster.master_url());
    let info = framework_info("codes", false, 60.0);
    let sub_json = Encoding::Json.encode(&subscribe_call(&info)).unwrap();

    let get = http().get(&api).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = raw_post(&api, None, None, None, sub_json.clone()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = raw_post(
        &api,
        Some("application/json; charset=utf-8"),
        None,
        None,
        sub_json.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = raw_post(&api, Some("text/plain"), None, None, sub_json.clone()).await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        None,
        b"{\"type\":".to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        None,
        br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"name":"x"}}}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("user"));
    let r = raw_post(
        &api,
        Some("application/x-protobuf"),
        None,
        None,
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = raw_post(
        &api,
        Some("application/json"),
        Some("text/html"),
        None,
        sub_json.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        Some("abc"),
        sub_json.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut mismatched = subscribe_call(&info);
    mismatched.framework_id = Some(util::framework_id("other"));
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        None,
        Encoding::Json.encode(&mismatched).unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("differs"));

    // Non-subscribe calls.
    let revive = |fw: &str| mesos_proto::scheduler::Call {
        r#type: Some(call::Type::Revive as i32),
        framework_id: Some(util::framework_id(fw)),
        ..Default::default()
    };
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        Some("x"),
        Encoding::Json.encode(&revive("nope")).unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.text().await.unwrap(), "Framework cannot be found");

    let mut s = Sched::subscribe(&cluster.master_url(), Encoding::Json, info).await;
    let body = Encoding::Json.encode(&revive(&s.framework_id)).unwrap();
    let r = raw_post(&api, Some("application/json"), None, None, body.clone()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("Mesos-Stream-Id"));
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        Some("wrong"),
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        Some(&s.stream_id),
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.text().await.unwrap().is_empty());

    let mut ack = s.call(call::Type::Acknowledge);
    ack.acknowledge = Some(call::Acknowledge {
        agent_id: util::agent_id("a"),
        task_id: util::task_id("t"),
        uuid: vec![1, 2, 3],
    });
    assert_eq!(s.post(&ack).await.0, StatusCode::BAD_REQUEST);
    // An ACK for an unknown uuid is accepted and ignored.
    ack.acknowledge.as_mut().unwrap().uuid = util::new_status_uuid();
    assert_eq!(s.post(&ack).await.0, StatusCode::ACCEPTED);

    // Disconnected (failover timeout 60 s): 403.
    cluster.faults().cut_framework_streams();
    while s.next().await.is_some() {}
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        Some(&s.stream_id),
        body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.text().await.unwrap(), "Framework is not subscribed");
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn second_subscribe_fails_over_the_old_stream_and_teardown_removes() {
    let (cluster, dir) = start(20900).await;
    let faults = cluster.faults();
    let url = cluster.master_url();
    let mut a = Sched::subscribe(&url, Encoding::Protobuf, framework_info("f", true, 3600.0)).await;
    let mut info = a.info.clone();
    info.name = "f2".into();
    let mut b = Sched::subscribe(&url, Encoding::Json, info).await;
    assert_eq!(a.framework_id, b.framework_id);
    assert_ne!(a.stream_id, b.stream_id);
    let err = a
        .expect("ERROR", |e| e.r#type() == event::Type::Error)
        .await;
    assert_eq!(err.error.unwrap().message, "Framework failed over");
    assert!(a.next().await.is_none(), "old stream closed");
    assert_eq!(faults.subscribe_count(), 2);
    // The old stream id is now wrong.
    assert_eq!(
        a.post(&a.call(call::Type::Revive)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        cluster.state()["frameworks"][0]["name"].as_str(),
        Some("f2")
    );

    b.send(b.call(call::Type::Teardown)).await;
    while b.next().await.is_some() {}
    eventually("framework completed", || {
        cluster.state()["completed_frameworks"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    // A removed id cannot come back: 200, one ERROR, close.
    let api = format!("{url}/api/v1/scheduler");
    let r = raw_post(
        &api,
        Some("application/json"),
        None,
        None,
        Encoding::Json.encode(&subscribe_call(&b.info)).unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    let records =
        mesos_proto::recordio::decode_chunked(&body, &[body.len().max(1)], 1 << 20).unwrap();
    assert_eq!(records.len(), 1);
    let ev: mesos_proto::scheduler::Event = Encoding::Json.decode(&records[0]).unwrap();
    assert_eq!(ev.error.unwrap().message, "Framework has been removed");
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn decline_filter_is_honoured_until_revive_and_suppress_stops_offers() {
    let (cluster, dir) = start(21200).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("d", false, 0.0),
    )
    .await;
    let offers = s.offers_from(3).await;
    s.decline(offers.iter().map(|o| o.id.clone()).collect(), Some(3600.0))
        .await;
    assert!(
        !s.sees(NO_OFFER_WINDOW, |e| e.r#type() == event::Type::Offers)
            .await
    );
    s.send(s.call(call::Type::Revive)).await;
    let again = s.offers_from(3).await;
    assert!(
        again.iter().all(|o| !offers.iter().any(|p| p.id == o.id)),
        "fresh offer ids"
    );

    // Default filter (5 s) then an explicit 0: offers come back at once.
    s.decline(again.iter().map(|o| o.id.clone()).collect(), Some(0.0))
        .await;
    let third = s.offers_from(3).await;
    s.send(s.call(call::Type::Suppress)).await;
    s.decline(third.iter().map(|o| o.id.clone()).collect(), Some(0.0))
        .await;
    assert!(
        !s.sees(NO_OFFER_WINDOW, |e| e.r#type() == event::Type::Offers)
            .await
    );
    s.send(s.call(call::Type::Revive)).await;
    s.offers_from(3).await;
    stop(cluster, dir.path()).await;
}

async fn invalid_accepts(encoding: Encoding, ports: u16) {
    let (cluster, dir) = start(ports).await;
    let url = cluster.master_url();
    let mut lost = Sched::subscribe(&url, encoding, framework_info("lost", false, 0.0)).await;
    let offers = lost.offers_from(3).await;
    let task = command_task("t-bad-offer", &offers[0], "sleep 30");
    lost.accept(
        vec![util::offer_id("no-such-offer")],
        vec![launch(vec![task])],
        None,
    )
    .await;
    let s = lost.update("t-bad-offer").await;
    assert_eq!(s.state(), TaskState::TaskLost);
    assert_eq!(s.reason(), Reason::InvalidOffers);
    assert_eq!(s.source(), v1::task_status::Source::Master);
    assert!(s.uuid.is_none());

    // Too many resources: TASK_ERROR; the rest of the offer is declined.
    let mut big = command_task("t-big", &offers[1], "sleep 30");
    big.resources[0] = util::scalar_resource("cpus", 100.0);
    let mut bad_port = command_task("t-port", &offers[1], "sleep 30");
    bad_port.resources[2] = util::ranges_resource("ports", &[(1, 1)]);
    let dup_a = command_task("t-dup", &offers[1], "sleep 30");
    lost.accept(
        vec![offers[1].id.clone()],
        vec![launch(vec![big, bad_port, dup_a.clone(), dup_a])],
        Some(0.0),
    )
    .await;
    for id in ["t-big", "t-port"] {
        let s = lost.update(id).await;
        assert_eq!(s.state(), TaskState::TaskError, "{id}");
        assert_eq!(s.reason(), Reason::TaskInvalid);
        assert!(s.uuid.is_none());
    }
    let dup = lost.update("t-dup").await;
    assert_eq!(dup.state(), TaskState::TaskError);
    assert!(dup.message().contains("duplicate"), "{}", dup.message());
    drop(lost);

    let mut pa = Sched::subscribe(&url, encoding, framework_info("pa", true, 0.0)).await;
    let offers = pa.offers_from(1).await;
    let task = command_task("t-dropped", &offers[0], "sleep 30");
    // The same offer twice.
    pa.accept(
        vec![offers[0].id.clone(), offers[0].id.clone()],
        vec![launch(vec![task])],
        None,
    )
    .await;
    let s = pa.update("t-dropped").await;
    assert_eq!(s.state(), TaskState::TaskDropped);
    assert_eq!(s.reason(), Reason::InvalidOffers);
    // The offer is gone now: using it again is invalid too.
    let task = command_task("t-again", &offers[0], "sleep 30");
    pa.accept(vec![offers[0].id.clone()], vec![launch(vec![task])], None)
        .await;
    assert_eq!(pa.update("t-again").await.state(), TaskState::TaskDropped);
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn invalid_accept_gives_task_lost_error_and_dropped_json() {
    invalid_accepts(Encoding::Json, 21500).await;
}

#[tokio::test]
async fn invalid_accept_gives_task_lost_error_and_dropped_protobuf() {
    invalid_accepts(Encoding::Protobuf, 21800).await;
}

#[tokio::test]
async fn reconcile_answers_unknown_tasks_by_agent_and_capability() {
    let (cluster, dir) = start(22100).await;
    let url = cluster.master_url();
    let mut pa = Sched::subscribe(&url, Encoding::Protobuf, framework_info("pa", true, 0.0)).await;
    let offers = pa.offers_from(1).await;
    let agent = offers[0].agent_id.value.clone();
    pa.reconcile(vec![
        ("ghost", Some(&agent)),
        ("ghost2", Some("no-such-agent")),
        ("ghost3", None),
    ])
    .await;
    let gone = pa.update("ghost").await;
    assert_eq!(gone.state(), TaskState::TaskGone);
    assert_eq!(gone.reason(), Reason::Reconciliation);
    assert_eq!(gone.source(), v1::task_status::Source::Master);
    assert!(gone.uuid.is_none());
    assert_eq!(pa.update("ghost2").await.state(), TaskState::TaskUnknown);
    assert_eq!(pa.update("ghost3").await.state(), TaskState::TaskUnknown);
    // KILL of an unknown task is answered by reconciliation.
    pa.kill("ghost4").await;
    assert_eq!(pa.update("ghost4").await.state(), TaskState::TaskUnknown);
    // Implicit reconciliation with no tasks: nothing. Calls are handled in
    // order and the stream is FIFO, so the answer to a later explicit
    // reconciliation is the next update if the implicit one sent none.
    pa.reconcile(vec![]).await;
    pa.reconcile(vec![("sentinel", None)]).await;
    let next = pa.expect("UPDATE", |e| e.update.is_some()).await;
    assert_eq!(next.update.unwrap().status.task_id.value, "sentinel");
    drop(pa);

    let mut old = Sched::subscribe(&url, Encoding::Json, framework_info("old", false, 0.0)).await;
    old.reconcile(vec![
        ("ghost", Some(&agent)),
        ("ghost2", Some("no-such-agent")),
    ])
    .await;
    assert_eq!(old.update("ghost").await.state(), TaskState::TaskLost);
    assert_eq!(old.update("ghost2").await.state(), TaskState::TaskLost);
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn master_state_describes_frameworks_agents_and_offers() {
    let (cluster, dir) = start(22400).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("stateful", true, 10.0),
    )
    .await;
    s.offers_from(3).await;
    let body: serde_json::Value = http()
        .get(format!("{}/master/state", cluster.master_url()))
        .send()
        .await
        .unwrap()
        .json_or_panic()
        .await;
    assert_eq!(body["activated_slaves"], 3);
    assert_eq!(body["leader"], body["pid"]);
    let slaves = body["slaves"].as_array().unwrap();
    assert_eq!(slaves.len(), 3);
    assert_eq!(slaves[1]["hostname"], "127.0.0.2");
    assert_eq!(slaves[1]["attributes"]["rack_id"], "rack-2");
    assert_eq!(slaves[0]["resources"]["ports"], "[22400-22499]");
    assert_eq!(slaves[0]["resources"]["cpus"], 4.0);
    let fw = &body["frameworks"][0];
    assert_eq!(fw["name"], "stateful");
    assert_eq!(fw["hostname"], "localhost");
    assert_eq!(fw["active"], true);
    assert_eq!(fw["connected"], true);
    assert_eq!(fw["failover_timeout"], 10.0);
    assert!(
        fw["capabilities"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("PARTITION_AWARE"))
    );
    assert_eq!(fw["offers"].as_array().unwrap().len(), 3);
    assert_eq!(fw["offered_resources"]["cpus"], 12.0);
    assert_eq!(cluster.state()["id"], body["id"]);

    let r = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/master/redirect", cluster.master_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("//{}", cluster.master_addr())
    );
    let r = http()
        .get(format!("{}/health", cluster.master_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn restart_master_requires_resubscription() {
    let (cluster, dir) = start(22700).await;
    let faults = cluster.faults();
    let url = cluster.master_url();
    let mut s = Sched::subscribe(&url, Encoding::Protobuf, framework_info("r", true, 3600.0)).await;
    let old_master = cluster.state()["id"].clone();
    faults.restart_master();
    // The stream ends; a call on it is refused (no tasks: the new master
    // does not know the framework).
    while s.next().await.is_some() {}
    assert_eq!(
        s.post(&s.call(call::Type::Revive)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_ne!(cluster.state()["id"], old_master);
    // Re-subscribing with the same id works and gets offers again.
    let mut again = Sched::subscribe(&url, Encoding::Protobuf, s.info.clone()).await;
    assert_eq!(again.framework_id, s.framework_id);
    again.offers_from(3).await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn paused_heartbeats_make_a_silent_stream() {
    let (cluster, dir) = start(23000).await;
    let faults = cluster.faults();
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Json,
        framework_info("p", false, 60.0),
    )
    .await;
    s.offers_from(3).await;
    faults.pause_heartbeats(true);
    // What was in flight still arrives, then the stream falls silent: a
    // gap of three heartbeat intervals (200 ms) cannot happen on a live
    // stream, so seeing one within the deadline proves the pause.
    let three_heartbeats = Duration::from_millis(600);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while s.sees(three_heartbeats, |_| true).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never fell silent"
        );
    }
    faults.pause_heartbeats(false);
    s.expect("HEARTBEAT", |e| e.r#type() == event::Type::Heartbeat)
        .await;
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn redirector_sends_scheme_less_location() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let leader: std::net::SocketAddr = "127.0.0.1:5999".parse().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mesos_local::serve_redirector(listener, leader, async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("http://{addr}/api/v1/scheduler"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.headers()["location"], "//127.0.0.1:5999/api/v1/scheduler");
    let r = client
        .get(format!("http://{addr}/master/redirect"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "//127.0.0.1:5999");
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

trait JsonOrPanic {
    async fn json_or_panic(self) -> serde_json::Value;
}

impl JsonOrPanic for reqwest::Response {
    async fn json_or_panic(self) -> serde_json::Value {
        assert_eq!(self.status(), StatusCode::OK);
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

#[tokio::test]
async fn an_offer_goes_to_one_framework_at_a_time() {
    let (cluster, dir) = start(23300).await;
    let url = cluster.master_url();
    let mut a = Sched::subscribe(&url, Encoding::Json, framework_info("a", false, 0.0)).await;
    let offers_a = a.offers_from(3).await;
    let mut b = Sched::subscribe(&url, Encoding::Protobuf, framework_info("b", false, 0.0)).await;
    let held_by = |cluster: &mesos_local::LocalCluster, name: &str| {
        let state = cluster.state();
        let fw = state["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap();
        fw["offers"].as_array().unwrap().len()
    };
    // While A holds every agent, nothing is left to offer B.
    assert_eq!((held_by(&cluster, "a"), held_by(&cluster, "b")), (3, 0));
    // A refuses everything for an hour: B gets the agents, A nothing.
    a.decline(
        offers_a.iter().map(|o| o.id.clone()).collect(),
        Some(3600.0),
    )
    .await;
    let offers_b = b.offers_from(3).await;
    assert!(
        offers_b
            .iter()
            .all(|o| o.framework_id.value == b.framework_id)
    );
    // B holds all three agents at once, so no offer can have gone to A
    // (it would still hold it): its stream has none queued either.
    assert_eq!((held_by(&cluster, "a"), held_by(&cluster, "b")), (0, 3));
    while let Ok(ev) = a.events.try_recv() {
        assert_ne!(ev.r#type(), event::Type::Offers, "{ev:?}");
    }
    stop(cluster, dir.path()).await;
}

#[tokio::test]
async fn reconciling_thousands_of_tasks_keeps_the_framework_connected() {
    let (cluster, dir) = start(23600).await;
    let mut s = Sched::subscribe(
        &cluster.master_url(),
        Encoding::Protobuf,
        framework_info("many", true, 60.0),
    )
    .await;
    const N: usize = 20_000;
    let ids: Vec<String> = (0..N).map(|i| format!("ghost-{i}")).collect();
    s.reconcile(ids.iter().map(|id| (id.as_str(), None)).collect())
        .await;
    for id in &ids {
        assert_eq!(s.update(id).await.state(), TaskState::TaskUnknown);
    }
    assert_eq!(cluster.state()["frameworks"][0]["connected"], true);
    stop(cluster, dir.path()).await;
}
