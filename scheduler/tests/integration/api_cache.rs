//! Kept and streamed list bodies are byte for byte what the handlers
//! rendered before: every list endpoint, with many queries, over a varied
//! snapshot (apps in nested groups with labels, running, staging, killed
//! and waiting instances, health and readiness results, a deployment, a
//! launch delay, offer statistics, a task failure), answered through the
//! cache (first request, second request, gzip decoded, restricted caller)
//! and without it (streamed, in small and large chunks). Then the HTTP
//! side over a real server: `ETag` and 304 (with Marathon's headers),
//! `Vary`, gzip's ratio on 1,000 apps, and a write changing the tag and
//! the answer.
//
// Waits in real time for the server, so reads the real clock.
#![allow(clippy::disallowed_methods)]

use super::support;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use baton::api::cache::CacheLimits;
use baton::api::lists::{self, ListKey, ResponseCache};
use baton::api::render::Now;
use baton::api::shapes::{AppInfo, Embed, TaskJson};
use baton::auth::{Acl, Caller, HttpSecurity};
use baton::health::{CheckState, HttpResponse, ReadinessResult};
use baton::reconcile::backoff::LaunchDelay;
use baton::reconcile::{CheckResults, Deployment, DeploymentAction, OfferStats, TaskFailure, View};
use baton::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};
use baton::state::instance::{Condition, Goal, Instance, InstanceTask};
use serde_json::{Value, json};

/// The clock every rendering is given: fixed, so bodies that show the
/// time are comparable too.
const NOW_MS: i64 = 1_700_000_100_000;

fn now() -> Timestamp {
    Timestamp::from_millis(NOW_MS)
}

fn id(s: &str) -> PathId {
    PathId::parse(s, &PathId::root()).unwrap()
}

fn app(definition: Value, version_ms: i64) -> Arc<AppDefinition> {
    Arc::new(
        AppDefinition::from_value(&definition, &PathId::root(), &AppDefaults::default())
            .unwrap()
            .with_version(Timestamp::from_millis(version_ms), false),
    )
}

/// An instance of `app` whose task is in `condition` (`None`: waiting
/// for an offer), on agent `n`.
fn instance(
    app: &AppDefinition,
    condition: Option<Condition>,
    healthy: Option<bool>,
    n: u64,
) -> Instance {
    let version = app.version.unwrap();
    let mut i = Instance::schedule(app.id.clone(), version, version);
    if let Some(condition) = condition {
        let task_id = i.next_task_id();
        i.incarnation = 1;
        i.task = Some(InstanceTask {
            condition,
            healthy,
            started_at: (condition == Condition::Running).then(|| version.plus_millis(1_500)),
            ..InstanceTask::launched(
                task_id,
                format!("agent-{n}"),
                format!("127.0.0.{n}"),
                vec![31_000 + n, 32_000 + n],
                version.plus_millis(500),
            )
        });
    }
    i
}

fn add(view: &mut View, instance: Instance) -> Option<String> {
    let task_id = instance.task.as_ref().map(|t| t.task_id.clone());
    view.instances
        .entry(instance.app_id.clone())
        .or_default()
        .insert(instance.uuid, Arc::new(instance));
    task_id
}

/// A snapshot with a bit of everything the lists show.
fn varied_view() -> View {
    let mut view = View {
        loaded: true,
        subscribed: true,
        framework_id: Some("fw-cache".into()),
        ..View::default()
    };
    let web_v1 = app(
        json!({"id": "/prod/web", "cmd": "python3 -m http.server $PORT0", "instances": 3,
               "cpus": 0.25, "mem": 128,
               "labels": {"env": "prod", "tier": "web", "HAPROXY_0_VHOST": "web.example.com"},
               "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0}],
               "readinessChecks": [{"name": "warmup", "path": "/ready", "portName": "http"}],
               "portDefinitions": [{"port": 10000, "name": "http"}, {"port": 10001}],
               "constraints": [["hostname", "UNIQUE"]]}),
        1_700_000_000_000,
    );
    let web = Arc::new(
        AppDefinition::from_value(
            &json!({"id": "/prod/web", "cmd": "python3 -m http.server $PORT0 --bind 0.0.0.0",
                    "instances": 3, "cpus": 0.25, "mem": 128,
                    "labels": {"env": "prod", "tier": "web", "HAPROXY_0_VHOST": "web.example.com"},
                    "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0}],
                    "readinessChecks": [{"name": "warmup", "path": "/ready", "portName": "http"}],
                    "portDefinitions": [{"port": 10000, "name": "http"}, {"port": 10001}],
                    "constraints": [["hostname", "UNIQUE"]]}),
            &PathId::root(),
            &AppDefaults::default(),
        )
        .unwrap()
        .next_version_of(Some(&*web_v1), Timestamp::from_millis(1_700_000_050_000)),
    );
    let db = app(
        json!({"id": "/prod/db", "cmd": "postgres -D /data", "instances": 1, "mem": 1024,
               "labels": {"env": "prod", "tier": "db"}}),
        1_700_000_010_000,
    );
    let api = app(
        json!({"id": "/staging/web/api", "cmd": "./api --port $PORT0", "instances": 2,
               "labels": {"env": "staging", "tier": "web"}, "backoffSeconds": 30,
               "maxLaunchDelaySeconds": 3600}),
        1_700_000_020_000,
    );
    let ui = app(
        json!({"id": "/staging/web/ui", "cmd": "nginx -g 'daemon off;'", "instances": 1,
               "labels": {"env": "staging", "tier": "web", "owner": "ui-team"}}),
        1_700_000_030_000,
    );
    let cron = app(
        json!({"id": "/tools/cron", "cmd": "sleep 3600", "instances": 4,
               "constraints": [["rack_id", "LIKE", "rack-9"]]}),
        1_700_000_040_000,
    );
    let solo = app(
        json!({"id": "/solo", "container": {"type": "DOCKER", "docker": {"image": "busybox"}},
               "args": ["sleep", "1000"], "instances": 0, "labels": {"solo": ""}}),
        1_700_000_045_000,
    );
    for a in [&web, &db, &api, &ui, &cron, &solo] {
        view.apps.insert(a.id.clone(), a.clone());
        view.versions
            .insert(a.id.clone(), Arc::new(vec![a.clone()]));
    }
    view.versions
        .insert(web.id.clone(), Arc::new(vec![web_v1.clone(), web.clone()]));

    // /prod/web: healthy, unhealthy, and one of the old version staging.
    let healthy = add(
        &mut view,
        instance(&web, Some(Condition::Running), Some(true), 1),
    )
    .unwrap();
    let sick = add(
        &mut view,
        instance(&web, Some(Condition::Running), Some(false), 2),
    )
    .unwrap();
    let mut old = instance(&web_v1, Some(Condition::Staging), None, 3);
    old.app_version = web_v1.version.unwrap();
    add(&mut view, old);
    // /prod/db: running, with a killed task of before that is kept.
    add(&mut view, instance(&db, Some(Condition::Running), None, 2));
    let mut killed = instance(&db, Some(Condition::Killed), None, 3);
    killed.goal = Goal::Decommissioned;
    add(&mut view, killed);
    // /staging/web/api: one starting, one waiting behind a launch delay.
    add(
        &mut view,
        instance(&api, Some(Condition::Starting), None, 1),
    );
    add(&mut view, instance(&api, None, None, 0));
    // /staging/web/ui: killing.
    add(&mut view, instance(&ui, Some(Condition::Killing), None, 2));
    // /tools/cron: two waiting, two not created yet.
    add(&mut view, instance(&cron, None, None, 0));
    add(&mut view, instance(&cron, Some(Condition::Failed), None, 1));

    let check = |task_id: &str, alive: bool| CheckResults {
        instance_id: task_id.split("._app").next().unwrap().to_string(),
        task_id: task_id.to_string(),
        state: CheckState {
            consecutive_failures: u32::from(!alive) * 3,
            first_success: Some(Timestamp::from_millis(1_700_000_060_000)),
            last_success: Some(Timestamp::from_millis(1_700_000_090_000)),
            last_failure: (!alive).then(|| Timestamp::from_millis(1_700_000_095_000)),
            last_failure_cause: (!alive).then(|| "503 Service Unavailable".to_string()),
            alive: Some(alive),
        },
    };
    view.health
        .insert(healthy.clone(), Arc::new(vec![check(&healthy, true)]));
    view.health
        .insert(sick.clone(), Arc::new(vec![check(&sick, false)]));
    view.readiness.insert(
        web.id.clone(),
        Arc::new(vec![
            ReadinessResult {
                task_id: healthy.clone(),
                check_index: 0,
                name: "warmup".into(),
                ready: true,
                last_response: Some(HttpResponse {
                    status: 200,
                    content_type: "application/json".into(),
                    body: r#"{"warm":true,"note":"a \"quoted\" body"}"#.into(),
                }),
                cause: None,
                at: Timestamp::from_millis(1_700_000_070_000),
            },
            ReadinessResult {
                task_id: sick.clone(),
                check_index: 0,
                name: "warmup".into(),
                ready: false,
                last_response: None,
                cause: Some("connection refused".into()),
                at: Timestamp::from_millis(1_700_000_071_000),
            },
        ]),
    );
    let deployment = Deployment {
        id: "5ea7c2d5-0000-4000-8000-000000000001".into(),
        version: web.version.unwrap(),
        steps: vec![
            vec![(web.id.clone(), DeploymentAction::RestartApplication)],
            vec![
                (api.id.clone(), DeploymentAction::ScaleApplication),
                (ui.id.clone(), DeploymentAction::StartApplication),
            ],
        ],
        current_step: 0,
        started_at: web.version.unwrap(),
        step_started_at: web.version,
        pods: Default::default(),
        failure: Some(baton::reconcile::DeploymentFailure {
            app_id: web.id.clone(),
            reason: "1 of 3 instances not healthy after 600 s".into(),
            at: Timestamp::from_millis(1_700_000_099_000),
        }),
    };
    view.deployments
        .insert(deployment.id.clone(), Arc::new(deployment));
    view.delays.insert(
        api.id.clone(),
        LaunchDelay {
            config_version: api.config_version(),
            delay_ms: 30_000,
            until: Timestamp::from_millis(NOW_MS + 12_345),
            last_failure: Timestamp::from_millis(NOW_MS - 17_655),
        },
    );
    let mut stats = OfferStats {
        since: Some(Timestamp::from_millis(1_700_000_041_000)),
        processed_offers: 42,
        unused_offers: 40,
        last_unused_offer_at: Some(Timestamp::from_millis(1_700_000_098_000)),
        last_used_offer_at: Some(Timestamp::from_millis(1_700_000_042_000)),
        ..OfferStats::default()
    };
    stats.last_cycle.processed_offers = 3;
    stats.last_cycle.constraints = vec![baton::offers::placement::ConstraintRejections {
        constraint: "rack_id:LIKE:rack-9".into(),
        declined: 3,
    }];
    view.offer_stats.insert(cron.id.clone(), Arc::new(stats));
    view.last_failures.insert(
        db.id.clone(),
        Arc::new(TaskFailure {
            app_id: db.id.clone(),
            host: "127.0.0.3".into(),
            message: "Command exited with status 1".into(),
            state: "TASK_FAILED".into(),
            task_id: "prod_db.instance-x._app.1".into(),
            timestamp: Timestamp::from_millis(1_700_000_080_000),
            version: db.version.unwrap(),
            slave_id: "agent-3".into(),
        }),
    );
    view
}

/// Every list request checked, as `(path, query)`.
fn requests() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![];
    for q in [
        "",
        "embed=apps.tasks",
        "embed=apps.counts",
        "embed=apps.deployments",
        "embed=apps.lastTaskFailure",
        "embed=apps.taskStats",
        "embed=apps.readiness",
        "embed=apps.failures",
        "embed=app.tasks&embed=apps.lastTaskFailure&embed=apps.readiness",
        "embed=apps.readiness&embed=app.tasks&embed=apps.lastTaskFailure&embed=apps.tasks",
        "embed=apps.unknown",
        "cmd=http",
        "cmd=HTTP.SERVER",
        "id=prod",
        "id=/Staging/WEB",
        "id=nothing-matches",
        "label=env",
        "label=env==prod",
        "label=env!=prod",
        "label=tier in (web, db)",
        "label=env notin (prod)",
        "label=solo",
        "label=env==staging,tier==web",
        "id=web&label=tier==web&embed=apps.tasks&embed=apps.taskStats",
        "cmd=sleep&embed=apps.counts&unrelated=1",
    ] {
        all.push(("/v2/apps", q));
    }
    for path in [
        "/v2/groups",
        "/v2/groups/",
        "/v2/groups/prod",
        "/v2/groups/staging",
        "/v2/groups/staging/web",
    ] {
        for q in [
            "",
            "embed=group.apps",
            "embed=group.groups",
            "embed=group.apps&embed=group.groups&embed=group.apps.tasks",
            "embed=group.apps&embed=group.groups&embed=group.apps.counts&embed=group.apps.deployments",
            "embed=group.apps&embed=group.apps.lastTaskFailure&embed=group.apps.readiness",
            "embed=group.apps&embed=group.groups&embed=group.apps.taskStats",
            "embed=group.pods",
        ] {
            all.push((path, q));
        }
    }
    for (path, q) in [
        ("/v2/groups/apps", ""),
        ("/v2/groups/prod/apps", ""),
        ("/v2/groups/prod/apps", "embed=group.apps.tasks"),
        (
            "/v2/groups/staging/apps",
            "embed=group.apps.counts&embed=group.apps.deployments",
        ),
        ("/v2/groups/versions", ""),
        ("/v2/groups/prod/versions", ""),
        ("/v2/groups/prod/versions/2023-11-14T22:14:10.000Z", ""),
        (
            "/v2/groups/prod/versions/2023-11-14T22:13:20.000Z",
            "embed=group.apps.tasks",
        ),
        ("/v2/groups/versions/2023-11-14T22:13:30.000Z", ""),
        ("/v2/groups/prod/versions/not-a-time", ""),
        ("/v2/groups/prod/versions/1999-01-01T00:00:00.000Z", ""),
        ("/v2/groups/nothing/here", ""),
        ("/v2/tasks", ""),
        ("/v2/tasks", "status=running"),
        ("/v2/tasks", "status=staging"),
        ("/v2/tasks", "status=running&status=staging"),
        ("/v2/tasks", "status=staging&status=running&status=running"),
        ("/v2/tasks", "status=other"),
        ("/v2/queue", ""),
        ("/v2/deployments", ""),
    ] {
        all.push((path, q));
    }
    all
}

/// A status and a body, gzip decoded when it came gzipped.
async fn read(response: axum::response::Response) -> (StatusCode, Vec<u8>, HeaderMap) {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip")
    {
        gunzip(&bytes)
    } else {
        bytes.to_vec()
    };
    (status, body, headers)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn accept(coding: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_str(coding).unwrap(),
    );
    headers
}

/// `(path, query)` answered through `cache` for `caller`.
async fn answer(
    cache: &Arc<ResponseCache>,
    view: &Arc<View>,
    caller: &Caller,
    (path, query): (&str, &str),
    headers: &HeaderMap,
) -> (StatusCode, Vec<u8>, HeaderMap) {
    match ListKey::parse(path, Some(query)) {
        Ok(key) => {
            read(lists::respond(cache, view.clone(), caller, now(), key, headers).await).await
        }
        Err(e) => {
            let status = e.status();
            (status, e.body().to_string().into_bytes(), HeaderMap::new())
        }
    }
}

/// A caller the ACL lets see `/prod` only.
fn prod_viewer() -> Caller {
    let acl = Acl::parse(
        r#"{"rules": [{"principals": ["pat"], "actions": ["view"], "paths": ["/prod"]}]}"#,
    )
    .unwrap();
    let security = HttpSecurity {
        user_header: Some("x-user".into()),
        acl: Some(acl),
        ..HttpSecurity::default()
    };
    let caller = security.authenticate(None, Some(b"pat")).unwrap();
    assert!(!caller.is_unrestricted());
    caller
}

/// `view` with every map rebuilt: the same content, but no map the same,
/// as after a change that changed nothing.
fn renewed(view: &View) -> View {
    fn copy<K: Ord + Clone, V: Clone>(map: &imbl::OrdMap<K, V>) -> imbl::OrdMap<K, V> {
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    View {
        apps: copy(&view.apps),
        versions: copy(&view.versions),
        instances: copy(&view.instances),
        deployments: copy(&view.deployments),
        health: copy(&view.health),
        readiness: copy(&view.readiness),
        last_failures: copy(&view.last_failures),
        delays: copy(&view.delays),
        offer_stats: copy(&view.offer_stats),
        ..view.clone()
    }
}

/// One request's answers through every path must be the same bytes; the
/// answers compared and the bytes of the references.
async fn check_all_paths(view: &Arc<View>, caller: &Caller) -> (usize, usize) {
    let caches = [
        Arc::new(ResponseCache::new(CacheLimits::DEFAULT)),
        // Every body past 2 KiB is too large to keep: streamed, then
        // streamed and copied.
        Arc::new(ResponseCache::new(CacheLimits {
            max_entry_bytes: 2 * 1024,
            ..CacheLimits::DEFAULT
        })),
        // Room for two bodies: entries evicted while in use.
        Arc::new(ResponseCache::new(CacheLimits {
            max_entries: 2,
            max_bytes: 16 * 1024,
            max_entry_bytes: 8 * 1024,
        })),
    ];
    let uncached = Arc::new(ResponseCache::new(CacheLimits::disabled()));
    let plain = HeaderMap::new();
    let renewed = Arc::new(renewed(view));
    let (mut compared, mut bytes) = (0, 0);
    for request in requests() {
        let reference = answer(&uncached, view, caller, request, &plain).await;
        bytes += reference.1.len();
        // The uncached path is the renderer itself, written whole.
        if reference.0 == StatusCode::OK {
            let key = ListKey::parse(request.0, Some(request.1)).unwrap();
            let whole = lists::visible(view, caller);
            let mut rendered = Vec::new();
            lists::render(&whole, &key, &Now::new(now()), &mut rendered).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&rendered),
                String::from_utf8_lossy(&reference.1),
                "{request:?}: streamed differs from rendered"
            );
            serde_json::from_slice::<Value>(&reference.1)
                .unwrap_or_else(|e| panic!("{request:?}: not JSON: {e}"));
        }
        let gzip_uncached = answer(&uncached, view, caller, request, &accept("gzip")).await;
        assert_eq!(gzip_uncached.0, reference.0, "{request:?}");
        assert_eq!(gzip_uncached.1, reference.1, "{request:?}: streamed gzip");
        for (n, cache) in caches.iter().enumerate() {
            for round in ["first", "second", "third"] {
                // The third round is of a new snapshot with the same
                // content: a new entry, streamed and copied where the
                // body was too large before.
                let view = if round == "third" { &renewed } else { view };
                for coding in ["identity", "gzip", "gzip;q=0.5, identity;q=0.1"] {
                    let got = answer(cache, view, caller, request, &accept(coding)).await;
                    assert_eq!(got.0, reference.0, "{request:?} cache {n} {round} {coding}");
                    assert_eq!(
                        String::from_utf8_lossy(&got.1),
                        String::from_utf8_lossy(&reference.1),
                        "{request:?} cache {n} {round} {coding}"
                    );
                    compared += 1;
                }
            }
        }
    }
    (compared, bytes)
}

/// The varied snapshot and `n` more apps of 3 running instances under
/// `/prod/fleet`: lists of several streamed chunks.
fn large_view(n: usize) -> View {
    let mut view = varied_view();
    for a in 0..n {
        let fleet = app(
            json!({"id": format!("/prod/fleet/app-{a:04}"), "cmd": format!("serve --shard {a}"),
                   "instances": 3, "labels": {"env": "prod", "tier": "web", "shard": a.to_string()},
                   "healthChecks": [{"protocol": "TCP"}]}),
            1_700_000_000_000 + a as i64,
        );
        view.apps.insert(fleet.id.clone(), fleet.clone());
        view.versions
            .insert(fleet.id.clone(), Arc::new(vec![fleet.clone()]));
        for i in 0..3 {
            add(
                &mut view,
                instance(&fleet, Some(Condition::Running), Some(i != 1), 1 + i),
            );
        }
    }
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_is_the_same_bytes_kept_streamed_and_gzipped() {
    let view = Arc::new(varied_view());
    let everyone = Caller::unrestricted(None);
    let (compared, bytes) = check_all_paths(&view, &everyone).await;
    assert!(compared > 1000, "{compared}");
    assert!(bytes > 100_000, "the lists show something: {bytes}");
    check_all_paths(&view, &prod_viewer()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_lists_stream_in_chunks_with_the_same_bytes() {
    let view = Arc::new(large_view(150));
    let key = ListKey::parse("/v2/apps", Some("embed=apps.tasks")).unwrap();
    let mut whole = Vec::new();
    lists::render(&view, &key, &Now::new(now()), &mut whole).unwrap();
    assert!(
        whole.len() > 3 * lists::CHUNK_BYTES,
        "several chunks: {}",
        whole.len()
    );
    check_all_paths(&view, &Caller::unrestricted(None)).await;
    check_all_paths(&view, &prod_viewer()).await;
}

/// The handlers' renderings before bodies were kept (commit 29c3ed6),
/// where they can be written with public parts: the kept and streamed
/// bodies must equal them, not only each other.
#[tokio::test]
async fn lists_are_what_the_handlers_wrote_before() {
    let view = Arc::new(varied_view());
    let everyone = Caller::unrestricted(None);
    let cache = Arc::new(ResponseCache::new(CacheLimits::DEFAULT));
    let plain = HeaderMap::new();

    // GET /v2/apps: `Apps { apps: Vec<AppInfo> }` through axum::Json.
    #[derive(serde::Serialize)]
    struct Apps<'a> {
        apps: Vec<AppInfo<'a>>,
    }
    for (query, extra) in [
        ("", Embed::default()),
        ("embed=apps.tasks", Embed::parse(["apps.tasks"])),
        (
            "embed=apps.lastTaskFailure&embed=apps.readiness&embed=apps.taskStats",
            Embed::parse(["apps.lastTaskFailure", "apps.readiness", "apps.taskStats"]),
        ),
    ] {
        let embed = Embed {
            counts: true,
            deployments: true,
            ..extra
        };
        let before = serde_json::to_vec(&Apps {
            apps: view
                .apps
                .values()
                .map(|a| AppInfo::new(&view, a, &embed, now()))
                .collect(),
        })
        .unwrap();
        for _ in 0..2 {
            let (_, body, _) = answer(&cache, &view, &everyone, ("/v2/apps", query), &plain).await;
            assert_eq!(
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&before)
            );
        }
    }

    // GET /v2/tasks: `json!({"tasks": Vec<TaskJson>})`.
    let tasks: Vec<TaskJson> = view
        .all_instances()
        .filter(|i| i.is_active())
        .filter_map(|i| {
            let mut task = TaskJson::of(i)?.with_health(&view);
            task.service_ports = Some(
                view.apps[&i.app_id]
                    .declared_ports()
                    .iter()
                    .map(|p| p.port)
                    .collect(),
            );
            Some(task)
        })
        .collect();
    let before = serde_json::to_vec(&json!({ "tasks": tasks })).unwrap();
    let (_, body, _) = answer(&cache, &view, &everyone, ("/v2/tasks", ""), &plain).await;
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&before)
    );

    // GET /v2/deployments: `Vec<Value>` of deployment_json.
    let before = serde_json::to_vec(
        &view
            .deployments
            .values()
            .map(|d| baton::api::deployments::deployment_json(d, &view))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let (_, body, _) = answer(&cache, &view, &everyone, ("/v2/deployments", ""), &plain).await;
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&before)
    );
}

#[tokio::test]
async fn a_new_snapshot_is_a_new_body_and_tag_and_an_unrelated_change_is_not() {
    let cache = Arc::new(ResponseCache::new(CacheLimits::DEFAULT));
    let everyone = Caller::unrestricted(None);
    let plain = HeaderMap::new();
    let view = Arc::new(varied_view());
    let (_, first, headers) = answer(&cache, &view, &everyone, ("/v2/apps", ""), &plain).await;
    let tag = headers[header::ETAG].clone();

    // Counters and load reports are not in the list: same body, same tag.
    let mut next = (*view).clone();
    next.stats.offers_received += 7;
    next.offer_stats = imbl::OrdMap::new();
    let next = Arc::new(next);
    let (_, again, headers) = answer(&cache, &next, &everyone, ("/v2/apps", ""), &plain).await;
    assert_eq!(headers[header::ETAG], tag);
    assert_eq!(again, first);
    assert_eq!(
        cache
            .counters
            .hits
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "served from the cache, not rendered again"
    );

    // A scaled app: another body and tag; the old tag gets a 200.
    let mut scaled = (*next).clone();
    let mut web = (*scaled.apps[&id("/prod/web")]).clone();
    web.instances = 5;
    scaled.apps.insert(web.id.clone(), Arc::new(web));
    let scaled = Arc::new(scaled);
    let mut conditional = HeaderMap::new();
    conditional.insert(header::IF_NONE_MATCH, tag.clone());
    let (status, changed, headers) =
        answer(&cache, &scaled, &everyone, ("/v2/apps", ""), &conditional).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(headers[header::ETAG], tag);
    assert_ne!(changed, first);
    let apps: Value = serde_json::from_slice(&changed).unwrap();
    assert_eq!(apps["apps"][1]["instances"], 5, "{apps}");
    // And the cache holds only what the new snapshot shows.
    cache.sweep(&scaled);
    assert_eq!(cache.size().0, 1);
}

/// A change of a snapshot, named.
type Change = (&'static str, fn(&mut View));

/// Each map of a snapshot changed in a way some list shows.
fn changes() -> Vec<Change> {
    vec![
        ("an app scaled", |v| {
            let mut db = (*v.apps[&id("/prod/db")]).clone();
            db.instances = 2;
            v.apps.insert(db.id.clone(), Arc::new(db));
        }),
        ("a version added", |v| {
            let mut old = (*v.versions[&id("/prod/db")][0]).clone();
            old.version = Some(Timestamp::from_millis(1_700_000_005_000));
            let current = v.versions[&id("/prod/db")][0].clone();
            v.versions
                .insert(id("/prod/db"), Arc::new(vec![Arc::new(old), current]));
        }),
        ("an instance started", |v| {
            let db = v.apps[&id("/prod/db")].clone();
            add(v, instance(&db, Some(Condition::Running), Some(true), 3));
        }),
        ("a deployment over", |v| v.deployments = imbl::OrdMap::new()),
        ("a health check passed", |v| {
            for (task, results) in v.health.clone() {
                let mut changed = (*results).clone();
                for r in &mut changed {
                    r.state.alive = Some(true);
                    r.state.consecutive_failures = 0;
                }
                v.health.insert(task, Arc::new(changed));
            }
        }),
        ("a readiness check passed", |v| {
            for (app, results) in v.readiness.clone() {
                let mut changed = (*results).clone();
                for r in &mut changed {
                    r.ready = true;
                }
                v.readiness.insert(app, Arc::new(changed));
            }
        }),
        ("another task failure", |v| {
            let mut failure = (*v.last_failures[&id("/prod/db")]).clone();
            failure.message = "Killed by the OOM killer".into();
            v.last_failures
                .insert(failure.app_id.clone(), Arc::new(failure));
        }),
        ("a launch delay over", |v| v.delays = imbl::OrdMap::new()),
        ("more offers seen", |v| {
            for (app, stats) in v.offer_stats.clone() {
                let mut changed = (*stats).clone();
                changed.processed_offers += 1;
                v.offer_stats.insert(app, Arc::new(changed));
            }
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_a_list_shows_renews_it() {
    let everyone = Caller::unrestricted(None);
    let uncached = Arc::new(ResponseCache::new(CacheLimits::disabled()));
    let plain = HeaderMap::new();
    let before = Arc::new(varied_view());
    for (change, apply) in changes() {
        let cache = Arc::new(ResponseCache::new(CacheLimits::DEFAULT));
        for request in requests() {
            answer(&cache, &before, &everyone, request, &plain).await;
        }
        let mut after = (*before).clone();
        apply(&mut after);
        let after = Arc::new(after);
        let mut differing = 0;
        for request in requests() {
            let fresh = answer(&uncached, &after, &everyone, request, &plain).await;
            let got = answer(&cache, &after, &everyone, request, &plain).await;
            assert_eq!(
                String::from_utf8_lossy(&got.1),
                String::from_utf8_lossy(&fresh.1),
                "{request:?} after {change}"
            );
            let old = answer(&uncached, &before, &everyone, request, &plain).await;
            differing += usize::from(old.1 != fresh.1);
        }
        assert!(differing > 0, "{change} shows in some list");
    }
}

#[tokio::test]
async fn a_list_that_was_too_large_is_kept_once_it_fits() {
    let cache = Arc::new(ResponseCache::new(CacheLimits {
        max_entry_bytes: 64 * 1024,
        ..CacheLimits::DEFAULT
    }));
    let everyone = Caller::unrestricted(None);
    let plain = HeaderMap::new();
    let hits = || {
        cache
            .counters
            .hits
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let request = ("/v2/apps", "embed=apps.tasks");
    let large = Arc::new(large_view(150));
    let (_, big, headers) = answer(&cache, &large, &everyone, request, &plain).await;
    assert!(big.len() > 64 * 1024);
    assert!(headers.get(header::ETAG).is_none(), "streamed");
    // Scaled down: streamed once more (it was too large), copied, kept.
    let small = Arc::new(varied_view());
    let (_, streamed, headers) = answer(&cache, &small, &everyone, request, &plain).await;
    assert!(headers.get(header::ETAG).is_none(), "streamed");
    let (_, kept, headers) = answer(&cache, &small, &everyone, request, &plain).await;
    assert!(headers.get(header::ETAG).is_some(), "kept");
    assert_eq!(kept, streamed);
    assert_eq!(hits(), 1);
}

#[tokio::test]
async fn a_body_that_shows_the_time_is_rendered_for_each_request() {
    let cache = Arc::new(ResponseCache::new(CacheLimits::DEFAULT));
    let everyone = Caller::unrestricted(None);
    let view = Arc::new(varied_view());
    for request in [("/v2/queue", ""), ("/v2/apps", "embed=apps.taskStats")] {
        let key = ListKey::parse(request.0, Some(request.1)).unwrap();
        let at = |ms| {
            let (view, key, cache, everyone) =
                (view.clone(), key.clone(), cache.clone(), everyone.clone());
            async move {
                let response = lists::respond(
                    &cache,
                    view,
                    &everyone,
                    Timestamp::from_millis(NOW_MS + ms),
                    key,
                    &HeaderMap::new(),
                )
                .await;
                assert!(response.headers().get(header::ETAG).is_none());
                read(response).await.1
            }
        };
        let early = at(0).await;
        let later = at(5_000).await;
        assert_ne!(early, later, "{request:?} shows the time");
    }
}

// ---- over HTTP ------------------------------------------------------------

use support::fake_master::FakeMaster;

async fn start() -> (
    baton::config::Running,
    FakeMaster,
    tempfile::TempDir,
    String,
) {
    let b = support::BatonOnFakeMaster::start("fw-cache", |_| {}).await;
    (b.running, b.master, b.dir, b.base)
}

/// 1,000 apps in 10 groups, no instances, with labels: one group write.
fn thousand_apps() -> Value {
    let groups: Vec<Value> = (0..10)
        .map(|g| {
            let apps: Vec<Value> = (0..100)
                .map(|a| {
                    json!({
                        "id": format!("app-{a}"),
                        "cmd": format!("python3 -m http.server $PORT0 # {g}-{a}"),
                        "cpus": 0.1, "mem": 64, "instances": 0,
                        "labels": {"team": format!("team-{g}"), "HAPROXY_0_VHOST": format!("app-{a}.team-{g}.example.com")},
                        "healthChecks": [{"protocol": "HTTP", "path": "/health"}],
                    })
                })
                .collect();
            json!({"id": format!("team-{g}"), "apps": apps})
        })
        .collect();
    json!({"id": "/", "groups": groups})
}

#[tokio::test]
async fn over_http_tags_304s_vary_and_gzip() {
    let (running, master, _dir, base) = start().await;
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{base}/v2/groups"))
        .json(&thousand_apps())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let scheduler = running.scheduler().unwrap();
    scheduler
        .wait_for(Duration::from_secs(30), |v| {
            v.apps.len() == 1000 && v.deployments.is_empty()
        })
        .await
        .expect("1,000 apps deployed");
    let get = |headers: Vec<(header::HeaderName, String)>| {
        let mut request = http.get(format!("{base}/v2/apps"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap();
            (status, headers, body)
        }
    };
    let marathon_headers = |headers: &reqwest::header::HeaderMap| {
        assert_eq!(
            headers["cache-control"],
            "no-cache, no-store, must-revalidate"
        );
        assert_eq!(headers["pragma"], "no-cache");
        assert_eq!(headers["expires"], "0");
        assert!(headers.contains_key("x-marathon-leader"));
        assert_eq!(headers["vary"], "Accept-Encoding");
    };

    let (status, headers, plain) = get(vec![]).await;
    assert_eq!(status, 200);
    marathon_headers(&headers);
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(headers["content-length"], plain.len().to_string().as_str());
    let tag = headers["etag"].to_str().unwrap().to_string();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
    assert!(plain.len() > 500_000, "{}", plain.len());
    let parsed: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(parsed["apps"].as_array().unwrap().len(), 1000);

    let (_, headers, again) = get(vec![]).await;
    assert_eq!(headers["etag"], tag.as_str());
    assert_eq!(again, plain);

    // 304 with the tag, weak or among others, with Marathon's headers.
    for condition in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", {tag}"),
        "*".into(),
    ] {
        let (status, headers, body) = get(vec![(header::IF_NONE_MATCH, condition.clone())]).await;
        assert_eq!(status, 304, "{condition}");
        assert!(body.is_empty());
        marathon_headers(&headers);
        assert_eq!(headers["etag"], tag.as_str());
    }
    let (status, _, _) = get(vec![(header::IF_NONE_MATCH, "\"other\"".into())]).await;
    assert_eq!(status, 200);

    // gzip: at most a tenth, the same bytes decoded, its own tag.
    let (status, headers, packed) =
        get(vec![(header::ACCEPT_ENCODING, "gzip, deflate, br".into())]).await;
    assert_eq!(status, 200);
    marathon_headers(&headers);
    assert_eq!(headers["content-encoding"], "gzip");
    let gzip_tag = headers["etag"].to_str().unwrap().to_string();
    assert_ne!(gzip_tag, tag);
    assert_eq!(gunzip(&packed), plain);
    assert!(
        packed.len() * 10 <= plain.len(),
        "gzip {} of {} bytes",
        packed.len(),
        plain.len()
    );
    let (status, _, _) = get(vec![
        (header::ACCEPT_ENCODING, "gzip".into()),
        (header::IF_NONE_MATCH, gzip_tag.clone()),
    ])
    .await;
    assert_eq!(status, 304);
    let (status, _, _) = get(vec![(header::IF_NONE_MATCH, gzip_tag.clone())]).await;
    assert_eq!(status, 200, "the gzip tag does not name the plain body");

    // A write: a new tag and the new app in the answer; the old tag 200.
    let created = http
        .post(format!("{base}/v2/apps"))
        .json(&json!({"id": "/zz/new", "cmd": "sleep 1", "instances": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let (status, headers, after) = get(vec![(header::IF_NONE_MATCH, tag.clone())]).await;
    assert_eq!(status, 200);
    assert_ne!(headers["etag"], tag.as_str());
    let parsed: Value = serde_json::from_slice(&after).unwrap();
    let apps = parsed["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 1001);
    assert_eq!(apps[1000]["id"], "/zz/new");

    running.stop().await;
    master.stop();
}

#[tokio::test]
async fn over_http_kept_bodies_equal_those_of_an_api_that_keeps_none() {
    let (running, master, _dir, base) = start().await;
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{base}/v2/groups"))
        .json(&json!({"id": "/", "groups": [
            {"id": "a", "apps": [{"id": "x", "cmd": "sleep 1", "instances": 0, "labels": {"k": "v"}}]},
            {"id": "b", "groups": [{"id": "c", "apps": [{"id": "y", "cmd": "sleep 2", "instances": 0}]}]},
        ]}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let scheduler = running.scheduler().unwrap();
    scheduler
        .wait_for(Duration::from_secs(30), |v| {
            v.apps.len() == 2 && v.deployments.is_empty()
        })
        .await
        .expect("deployed");

    // A second API over the same scheduler, keeping nothing.
    let (abdicate, _abdications) = tokio::sync::mpsc::channel(1);
    let state = baton::api::ApiState {
        scheduler: scheduler.clone(),
        identity: Arc::new(baton::api::Identity {
            framework_name: "marathon".into(),
            leader: running.http_addr.to_string(),
            http_port: running.http_addr.port(),
            master: master.url(),
            mesos_roles: vec!["*".into()],
            mesos_user: "nobody".into(),
            failover_timeout_seconds: 60,
            zk: None,
            max_instances_per_app: 10_000,
        }),
        requests: Arc::default(),
        executor_file: Arc::new(baton::api::files::ExecutorFile::new("/nonexistent".into())),
        abdicate,
        guard: Arc::new(baton::api::guard::Guard::new(
            HttpSecurity::default(),
            baton::api::guard::HttpPolicy::default(),
        )),
        cache: Arc::new(ResponseCache::new(CacheLimits::disabled())),
        router_loads: Arc::new(baton::api::routers::RouterLoads::new(scheduler.now())),
    };
    let (_serving, current) = tokio::sync::watch::channel(baton::api::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(baton::api::serve(
        listener,
        current,
        stop.clone().cancelled_owned(),
    ));

    for path in [
        "/v2/apps",
        "/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure",
        "/v2/apps?label=k==v",
        "/v2/groups",
        "/v2/groups?embed=group.apps&embed=group.apps.counts",
        "/v2/groups/b",
        "/v2/groups/b/c/apps",
        "/v2/groups/versions",
        "/v2/groups/nope",
        "/v2/tasks",
        "/v2/queue",
        "/v2/deployments",
    ] {
        for coding in ["identity", "gzip"] {
            let fetch = |base: String| {
                let request = http
                    .get(format!("{base}{path}"))
                    .header(header::ACCEPT_ENCODING, coding);
                async move {
                    let response = request.send().await.unwrap();
                    let status = response.status();
                    let gzipped = response
                        .headers()
                        .get("content-encoding")
                        .is_some_and(|v| v == "gzip");
                    let body = response.bytes().await.unwrap();
                    (
                        status,
                        if gzipped {
                            gunzip(&body)
                        } else {
                            body.to_vec()
                        },
                    )
                }
            };
            let kept = fetch(base.clone()).await;
            let kept_again = fetch(base.clone()).await;
            let fresh = fetch(other.clone()).await;
            assert_eq!(kept.0, fresh.0, "{path} {coding}");
            assert_eq!(
                String::from_utf8_lossy(&kept.1),
                String::from_utf8_lossy(&fresh.1),
                "{path} {coding}"
            );
            assert_eq!(kept_again, kept, "{path} {coding}");
        }
    }
    stop.cancel();
    let _ = server.await;
    running.stop().await;
    master.stop();
}
