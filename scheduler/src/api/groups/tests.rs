//! Unit tests of group reads and writes.

use super::body::join;
use super::*;
use crate::state::app::AppDefaults;

fn id(s: &str) -> PathId {
    PathId::parse(s, &PathId::root()).unwrap()
}

fn app(s: &str, instances: u32, version_ms: i64) -> Arc<AppDefinition> {
    let mut a = AppDefinition::new(id(s), &AppDefaults::default());
    a.cmd = Some("sleep 100".into());
    a.instances = instances;
    Arc::new(a.with_version(Timestamp::from_millis(version_ms), false))
}

fn view(apps: &[Arc<AppDefinition>]) -> View {
    let mut v = View::default();
    for a in apps {
        v.apps.insert(a.id.clone(), a.clone());
        v.versions.insert(a.id.clone(), Arc::new(vec![a.clone()]));
    }
    v
}

fn desired(
    body: Value,
    group: &str,
    current: &View,
) -> Result<BTreeMap<PathId, Option<AppDefinition>>, AppError> {
    desired_apps(&body, &id(group), &current.apps, &AppDefaults::default())
}

fn changes(d: &BTreeMap<PathId, Option<AppDefinition>>) -> Vec<(String, bool)> {
    d.iter()
        .map(|(k, v)| (k.to_string(), v.is_some()))
        .collect()
}

#[test]
fn get_paths_split_off_apps_versions_and_a_version() {
    assert_eq!(target("").unwrap(), Target::Group(PathId::root()));
    assert_eq!(target("proj/db").unwrap(), Target::Group(id("/proj/db")));
    assert_eq!(target("apps").unwrap(), Target::Apps(PathId::root()));
    assert_eq!(target("proj/apps").unwrap(), Target::Apps(id("/proj")));
    assert_eq!(
        target("versions").unwrap(),
        Target::Versions(PathId::root())
    );
    assert_eq!(
        target("proj/versions").unwrap(),
        Target::Versions(id("/proj"))
    );
    assert_eq!(
        target("proj/versions/2020-01-01T00:00:00.000Z").unwrap(),
        Target::Version(id("/proj"), "2020-01-01T00:00:00.000Z".into())
    );
    assert_eq!(
        target("Bad").unwrap_err().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[test]
fn embed_defaults_to_apps_and_groups_and_otherwise_takes_what_is_named() {
    let e = GroupEmbed::parse([]);
    assert!(e.apps && e.groups && e.app == Embed::default());
    let e = GroupEmbed::parse(["group.groups"]);
    assert!(!e.apps && e.groups);
    let e = GroupEmbed::parse(["group.apps", "group.apps.counts", "group.apps.tasks"]);
    assert!(e.apps && !e.groups);
    assert!(e.app.counts && e.app.tasks && e.app.deployments);
}

#[test]
fn a_group_is_its_apps_arranged_by_id() {
    let v = view(&[
        app("/other", 1, 1),
        app("/proj/db", 1, 5),
        app("/proj/web/api", 2, 9),
        app("/proj/web/ui", 1, 3),
        app("/proj-x/a", 1, 20),
    ]);
    let apps: Vec<&AppDefinition> = subtree(&v.apps, &id("/proj"))
        .into_iter()
        .map(|(_, a)| &**a)
        .collect();
    assert_eq!(apps.len(), 3, "only apps strictly below /proj");
    let embed = GroupEmbed::parse([]);
    let info = serde_json::to_value(group_info(
        &v,
        id("/proj"),
        &apps,
        &embed,
        &Now::new(Timestamp::from_millis(100)),
    ))
    .unwrap();
    assert_eq!(info["id"], "/proj");
    assert_eq!(info["apps"][0]["id"], "/proj/db");
    assert_eq!(info["groups"][0]["id"], "/proj/web");
    assert_eq!(info["groups"][0]["apps"].as_array().unwrap().len(), 2);
    assert_eq!(info["version"], json!(Timestamp::from_millis(9)));
    assert_eq!(
        info["groups"][0]["version"],
        json!(Timestamp::from_millis(9))
    );
    assert_eq!(info["pods"], json!([]));
    assert_eq!(info["dependencies"], json!([]));
    assert_eq!(info["enforceRole"], false);
    assert!(info["apps"][0].get("tasksRunning").is_none());

    let only_groups = GroupEmbed::parse(["group.groups"]);
    let info = serde_json::to_value(group_info(
        &v,
        id("/proj"),
        &apps,
        &only_groups,
        &Now::new(Timestamp::from_millis(100)),
    ))
    .unwrap();
    assert_eq!(info["apps"], json!([]));
    assert_eq!(info["groups"][0]["apps"], json!([]));
}

#[test]
fn a_put_writes_what_it_lists_and_removes_what_its_lists_leave_out() {
    let v = view(&[
        app("/proj/old", 1, 1),
        app("/proj/sub/x", 1, 1),
        app("/proj/gone/y", 1, 1),
        app("/elsewhere", 1, 1),
    ]);
    let body = json!({
        "id": "/proj",
        "apps": [{"id": "db", "cmd": "sleep 1"}, {"id": "web", "cmd": "sleep 1", "dependencies": ["db"]}],
        "groups": [{"id": "sub", "apps": [{"id": "z", "cmd": "sleep 1"}]}],
    });
    let d = desired(body, "/proj", &v).unwrap();
    assert_eq!(
        changes(&d),
        [
            ("/proj/db".to_string(), true),
            ("/proj/gone/y".into(), false),
            ("/proj/old".into(), false),
            ("/proj/sub/x".into(), false),
            ("/proj/sub/z".into(), true),
            ("/proj/web".into(), true),
        ]
    );
    assert_eq!(
        d[&id("/proj/web")].as_ref().unwrap().dependencies,
        [id("/proj/db")],
        "dependencies are relative to the group"
    );

    // Without `groups`, subgroups are left alone; without `apps`, the
    // group's own apps are.
    let d = desired(
        json!({"apps": [{"id": "old", "cmd": "sleep 1"}]}),
        "/proj",
        &v,
    )
    .unwrap();
    assert_eq!(changes(&d), [("/proj/old".to_string(), true)]);
    let d = desired(json!({"groups": []}), "/proj", &v).unwrap();
    assert_eq!(
        changes(&d),
        [
            ("/proj/gone/y".to_string(), false),
            ("/proj/sub/x".into(), false)
        ]
    );
}

#[test]
fn unchanged_apps_are_not_written_and_scales_keep_their_configuration() {
    let current = app("/proj/db", 1, 1);
    let v = view(std::slice::from_ref(&current));
    let same = desired(
        json!({"apps": [{"id": "db", "cmd": "sleep 100"}]}),
        "/proj",
        &v,
    )
    .unwrap();
    assert!(plan_writes(&v, same, false).is_empty());

    let more = desired(
        json!({"apps": [{"id": "db", "cmd": "sleep 100", "instances": 3}]}),
        "/proj",
        &v,
    )
    .unwrap();
    let planned = plan_writes(&v, more, false);
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].action, DeploymentAction::ScaleApplication);
    let mut next = AppDefinition::new(id("/proj/db"), &AppDefaults::default());
    next.cmd = Some("sleep 100".into());
    next.instances = 3;
    let now = Timestamp::from_millis(50);
    let written = next.next_version_of(Some(&current), now);
    assert_eq!(written.version, Some(now));
    assert_eq!(
        written.config_version(),
        current.config_version(),
        "a scale does not replace instances"
    );

    let changed = desired(
        json!({"apps": [{"id": "db", "cmd": "sleep 5"}]}),
        "/proj",
        &v,
    )
    .unwrap();
    assert_eq!(
        plan_writes(&v, changed, false)[0].action,
        DeploymentAction::RestartApplication
    );
}

#[test]
fn errors_name_the_member_from_the_bodys_root() {
    let v = view(&[]);
    let e = desired(
        json!({"apps": [{"id": "ok", "cmd": "x"}, {"id": "bad", "cmd": "x", "cpus": -1}],
               "groups": [{"id": "sub", "apps": [{"id": "/elsewhere/x", "cmd": "x"}]}]}),
        "/proj",
        &v,
    )
    .unwrap_err();
    assert_eq!(e.status(), 422);
    let paths: Vec<&str> = e.violations().iter().map(|v| v.path.as_str()).collect();
    assert!(paths.contains(&"/apps(1)/cpus"), "{paths:?}");
    assert!(paths.contains(&"/groups(0)/apps(0)/id"), "{paths:?}");

    let e = desired(json!({"apps": {"id": "x"}}), "/proj", &v).unwrap_err();
    assert_eq!(e.status(), 400);
    assert_eq!(e.violations()[0].path, "/apps");

    let e = desired(json!({"groups": [{"apps": []}]}), "/proj", &v).unwrap_err();
    assert_eq!(e.violations()[0].path, "/groups(0)/id");

    let e = desired(
        json!({"apps": [{"id": "a", "cmd": "x"}, {"id": "/proj/a", "cmd": "x"}]}),
        "/proj",
        &v,
    )
    .unwrap_err();
    assert_eq!(e.violations()[0].path, "/apps(1)/id");

    let e = desired(json!({"dependencies": ["/x"]}), "/proj", &v).unwrap_err();
    assert_eq!(e.violations()[0].path, "/dependencies");
}

#[test]
fn no_app_may_end_up_below_another() {
    let v = view(&[app("/proj/db", 1, 1)]);
    let e = desired(
        json!({"groups": [{"id": "db", "apps": [{"id": "x", "cmd": "x"}]}]}),
        "/proj",
        &v,
    );
    // `groups` leaves /proj/db alone (it is the group's own app), so
    // /proj/db/x would be nested under it.
    assert_eq!(e.unwrap_err().status(), 422);
    // Replacing the app by a group in the same change is fine.
    let d = desired(
        json!({"apps": [], "groups": [{"id": "db", "apps": [{"id": "x", "cmd": "x"}]}]}),
        "/proj",
        &v,
    )
    .unwrap();
    assert_eq!(
        changes(&d),
        [("/proj/db".to_string(), false), ("/proj/db/x".into(), true)]
    );
}

#[test]
fn scale_by_rounds_up_and_version_rolls_back_to_the_newest_at_or_before() {
    assert_eq!(scaled(3, 1.5), Some(5));
    assert_eq!(scaled(1, 2.0), Some(2));
    assert_eq!(scaled(0, 2.0), Some(0));
    assert_eq!(scaled(u32::MAX, 2.0), None);
    assert!(scale_factor(&json!({"scaleBy": -1})).is_err());
    assert!(scale_factor(&json!({"scaleBy": "2"})).is_err());
    assert_eq!(scale_factor(&json!({"scaleBy": 2})).unwrap(), Some(2.0));

    let v1 = app("/proj/db", 1, 10);
    let mut v2 = (*v1).clone();
    v2.instances = 4;
    let v2 = Arc::new(v2.with_version(Timestamp::from_millis(20), true));
    let mut v = view(std::slice::from_ref(&v2));
    v.versions
        .insert(id("/proj/db"), Arc::new(vec![v1.clone(), v2.clone()]));
    let planned = rollback(&v, &id("/proj"), Timestamp::from_millis(15)).unwrap();
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].action, DeploymentAction::ScaleApplication);
    assert!(
        rollback(&v, &id("/proj"), Timestamp::from_millis(25))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        rollback(&v, &id("/proj"), Timestamp::from_millis(5))
            .err()
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let scaled_up = scale(&v, &id("/proj"), 2.0).unwrap();
    assert_eq!(scaled_up.len(), 1);
    assert!(scale(&v, &id("/nothing"), 2.0).is_err());
}

#[test]
fn a_dry_run_shows_dependency_steps() {
    let v = view(&[app("/proj/old", 1, 1)]);
    let d = desired(
        json!({"apps": [{"id": "db", "cmd": "x"}, {"id": "web", "cmd": "x", "dependencies": ["db"]}]}),
        "/proj",
        &v,
    )
    .unwrap();
    let planned = plan_writes(&v, d, false);
    let actions: Vec<(PathId, DeploymentAction)> =
        planned.iter().map(|p| (p.id.clone(), p.action)).collect();
    let deps: BTreeMap<&PathId, &Vec<PathId>> =
        planned.iter().map(|p| (&p.id, &p.dependencies)).collect();
    let steps = plan::steps(&actions, |i| {
        deps.get(i).map(|d| d.to_vec()).unwrap_or_default()
    })
    .unwrap();
    let names: Vec<Vec<&str>> = steps
        .iter()
        .map(|s| s.iter().map(|(a, _)| a.as_str()).collect())
        .collect();
    assert_eq!(
        names,
        [vec!["/proj/old"], vec!["/proj/db"], vec!["/proj/web"]]
    );
    assert!(dry_run(&planned).is_ok());
}

#[test]
fn violation_paths_are_joined_below_their_member() {
    assert_eq!(join("", "/"), "/");
    assert_eq!(join("/apps(0)", "/"), "/apps(0)");
    assert_eq!(join("/apps(0)", "/cpus"), "/apps(0)/cpus");
    assert_eq!(join("/groups(1)", "/apps(0)"), "/groups(1)/apps(0)");
    assert_eq!(join("/apps(0)", "id"), "/apps(0)/id");
}
