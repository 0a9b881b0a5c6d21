//! Tests of the app model: parsing, defaults, deprecated fields, every
//! validation rule, updates, versions, task ids and the task environment.
//! Fixtures live in `scheduler/tests/fixtures/`, all written by hand for
//! Baton in the shapes Marathon and its clients use.

use serde_json::{Value, json};
use uuid::Uuid;

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $name
        ))
    };
}

fn parse(v: &Value) -> Result<AppDefinition, AppError> {
    AppDefinition::from_value(v, &PathId::root(), &AppDefaults::default())
}

fn app(v: Value) -> AppDefinition {
    match parse(&v) {
        Ok(app) => app,
        Err(e) => panic!("{v} should parse, got {}", e.body()),
    }
}

fn id(s: &str) -> PathId {
    match PathId::parse(s, &PathId::root()) {
        Ok(id) => id,
        Err(e) => panic!("{s}: {e}"),
    }
}

/// Asserts `v` is refused with 422 and `message` at `path`.
fn assert_invalid(v: Value, path: &str, message: &str) {
    match parse(&v) {
        Err(e @ AppError::Invalid(_)) => {
            assert_eq!(e.status(), 422);
            assert!(
                e.violations()
                    .iter()
                    .any(|d| d.path == path && d.errors.iter().any(|m| m == message)),
                "{v}: expected {path}: {message}, got {}",
                e.body()
            );
        }
        other => panic!("{v}: expected 422 at {path}, got {other:?}"),
    }
}

/// Asserts `v` is refused with 400 and `code` at `path`.
fn assert_wrong_type(v: Value, path: &str, code: &str) {
    match parse(&v) {
        Err(e @ AppError::WrongType { .. }) => {
            assert_eq!(e.status(), 400);
            assert_eq!(e.body()["message"], "Invalid JSON");
            assert!(
                e.violations()
                    .iter()
                    .any(|d| d.path == path && d.errors.iter().any(|m| m == code)),
                "{v}: expected {path}: {code}, got {}",
                e.body()
            );
        }
        other => panic!("{v}: expected 400 at {path}, got {other:?}"),
    }
}

fn to_json(app: &AppDefinition) -> Value {
    serde_json::to_value(app).expect("an app serializes")
}

/// serialize → parse gives the same app, through both entry points.
fn assert_round_trips(app: &AppDefinition) {
    let json = to_json(app);
    assert_eq!(&self::app(json.clone()), app, "from_value of {json}");
    let stored: AppDefinition = serde_json::from_value(json.clone()).expect("deserializes");
    assert_eq!(&stored, app, "Deserialize of {json}");
}

fn sleeper() -> Value {
    json!({"id": "/sleep", "cmd": "sleep 1000"})
}

fn with(mut base: Value, patch: Value) -> Value {
    if let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

// ---------------------------------------------------------------- defaults

#[test]
fn minimal_app_gets_marathon_defaults() {
    let a = app(serde_json::from_str(fixture!("app-minimal.json")).expect("json"));
    assert_eq!(a.id.as_str(), "/sleep");
    assert_eq!(a.cmd.as_deref(), Some("sleep 1000"));
    assert_eq!(
        (a.cpus, a.mem, a.disk, a.gpus, a.instances),
        (1.0, 128.0, 0.0, 0, 1)
    );
    assert_eq!(a.networks, vec![Network::host()]);
    assert_eq!(
        a.port_definitions,
        vec![PortDefinition::default_definition()]
    );
    assert_eq!(
        (
            a.backoff_seconds,
            a.backoff_factor,
            a.max_launch_delay_seconds
        ),
        (1, 1.15, 300)
    );
    assert_eq!(a.upgrade_strategy, UpgradeStrategy::DEFAULT);
    assert_eq!(a.unreachable_strategy, UnreachableStrategy::DEFAULT);
    assert_eq!(a.kill_selection, KillSelection::YoungestFirst);
    assert_eq!(a.role, "*");
    assert!(!a.require_ports);
    assert_eq!(a.executor, "");

    assert_eq!(
        to_json(&a),
        json!({
            "id": "/sleep", "cmd": "sleep 1000",
            "instances": 1, "cpus": 1.0, "mem": 128.0, "disk": 0.0, "gpus": 0,
            "executor": "", "role": "*",
            "networks": [{"mode": "host"}],
            "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "default"}],
            "ports": [0],
            "requirePorts": false, "labels": {}, "uris": [],
            "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
            "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 300,
            "killSelection": "YOUNGEST_FIRST",
            "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
        })
    );
    assert_round_trips(&a);
}

#[test]
fn role_default_comes_from_the_server() {
    let defaults = AppDefaults {
        role: "marathon".into(),
        ..AppDefaults::default()
    };
    let a = AppDefinition::from_value(&sleeper(), &PathId::root(), &defaults).expect("valid");
    assert_eq!(a.role, "marathon");
    let own = AppDefinition::from_value(
        &with(sleeper(), json!({"role": "web"})),
        &PathId::root(),
        &defaults,
    )
    .expect("valid");
    assert_eq!(own.role, "web");
}

#[test]
fn typical_app_parses_and_round_trips() {
    let a = app(serde_json::from_str(fixture!("app-typical.json")).expect("json"));
    assert_eq!(a.id, id("/prod/web"));
    assert_eq!((a.instances, a.cpus, a.mem), (3, 0.25, 256.0));
    assert_eq!(a.env["LOG_LEVEL"], EnvValue::Value("info".into()));
    assert_eq!(
        a.env["DB_PASSWORD"],
        EnvValue::Secret {
            secret: "dbpass".into()
        }
    );
    assert_eq!(a.secrets["dbpass"].source, "/prod/db/password");
    assert_eq!(a.constraints[1], vec!["rack_id", "GROUP_BY", "3"]);
    assert_eq!(a.labels.get("HAPROXY_GROUP"), Some("external"));
    assert_eq!(a.port_names(), vec!["http"]);
    assert!(a.fetch[0].extract);
    let hc = &a.health_checks[0];
    assert_eq!(hc.protocol, HealthCheckProtocol::MesosHttp);
    assert_eq!(
        (hc.port_index, hc.delay_seconds, hc.interval_seconds),
        (Some(0), 15, 10)
    );
    let rc = &a.readiness_checks[0];
    assert_eq!((rc.name.as_str(), rc.port_name.as_str()), ("ready", "http"));
    assert!(!rc.preserve_last_response);
    assert_eq!(a.upgrade_strategy.minimum_health_capacity, 0.5);
    assert_eq!(
        a.unreachable_strategy,
        UnreachableStrategy::Enabled {
            inactive_after_seconds: 300,
            expunge_after_seconds: 600
        }
    );
    assert_eq!(a.kill_selection, KillSelection::OldestFirst);
    assert_eq!(a.task_kill_grace_period_seconds, Some(30));
    assert_eq!(a.dependencies, vec![id("/prod/db")]);

    let out = to_json(&a);
    assert_eq!(out["env"]["DB_PASSWORD"], json!({"secret": "dbpass"}));
    assert_eq!(out["ports"], json!([0]));
    assert_eq!(out["uris"], json!(["https://example.com/app.tgz"]));
    assert_eq!(out["healthChecks"][0]["path"], "/health");
    assert_eq!(out["killSelection"], "OLDEST_FIRST");
    assert_round_trips(&a);
}

#[test]
fn docker_bridge_app_parses_with_port_mappings() {
    let a = app(serde_json::from_str(fixture!("app-docker-bridge.json")).expect("json"));
    let c = a.container.as_ref().expect("container");
    assert_eq!(c.kind, ContainerType::Docker);
    let d = c.docker.as_ref().expect("docker");
    assert_eq!(
        (d.image.as_str(), d.force_pull_image, d.privileged),
        ("nginx:1.25", true, false)
    );
    assert_eq!(d.parameters[0].key, "log-driver");
    assert_eq!(c.volumes[1].mode, Some(VolumeMode::ReadOnly));
    // Bridge networking: a missing hostPort means 0 (any).
    let host_ports: Vec<Option<u16>> = c.port_mappings.iter().map(|m| m.host_port).collect();
    assert_eq!(host_ports, vec![Some(0), Some(0), Some(31999)]);
    assert_eq!(c.port_mappings[0].protocol, "tcp");
    assert_eq!(c.port_mappings[2].service_port, 10555);
    assert!(
        a.port_definitions.is_empty(),
        "no port definitions off host networking"
    );
    assert_eq!(a.port_names(), vec!["http", "https", "metrics"]);
    assert_eq!(a.docker_image(), Some("nginx:1.25"));
    assert_eq!(
        a.upgrade_strategy.maximum_over_capacity, 1.0,
        "partial object keeps defaults"
    );
    assert_eq!(a.readiness_checks[0].name, "readinessCheck");
    assert_eq!(a.readiness_checks[0].http_status_codes_for_ready, vec![200]);
    assert_eq!(a.health_checks[1].path, None, "TCP checks have no path");

    let out = to_json(&a);
    assert_eq!(out["networks"], json!([{"mode": "container/bridge"}]));
    assert_eq!(out["container"]["portMappings"][0]["hostPort"], 0);
    assert_eq!(out["portDefinitions"], json!([]));
    assert_eq!(out["ports"], json!([]));
    assert_round_trips(&a);
}

#[test]
fn container_network_app_gets_a_default_mapping_without_host_port() {
    let a = app(json!({
        "id": "/svc", "cmd": "serve",
        "networks": [{"mode": "container", "name": "overlay", "labels": {"a": "b"}}]
    }));
    let c = a.container.as_ref().expect("implicit MESOS container");
    assert_eq!(c.kind, ContainerType::Mesos);
    assert_eq!(c.port_mappings, vec![PortMapping::default_mapping()]);
    assert_eq!(a.declared_ports()[0].host_port, None);
    assert_round_trips(&a);

    let bridge = app(json!({"id": "/b", "cmd": "x", "networks": [{"mode": "container/bridge"}]}));
    let mapping = &bridge.container.as_ref().expect("container").port_mappings[0];
    assert_eq!(mapping.host_port, Some(0));

    let none = app(json!({
        "id": "/n", "cmd": "x", "networks": [{"name": "overlay"}],
        "container": {"type": "MESOS", "portMappings": []}
    }));
    assert_eq!(
        none.networks[0].mode,
        NetworkMode::Container,
        "mode defaults to container"
    );
    assert!(
        none.container
            .as_ref()
            .expect("container")
            .port_mappings
            .is_empty()
    );
}

#[test]
fn output_omits_empty_optional_fields_and_writes_the_rest() {
    let a = app(json!({"id": "/x", "args": ["run"], "portDefinitions": []}));
    let out = to_json(&a);
    let object = out.as_object().expect("object");
    for absent in [
        "cmd",
        "user",
        "env",
        "constraints",
        "dependencies",
        "fetch",
        "healthChecks",
        "readinessChecks",
        "secrets",
        "container",
        "acceptedResourceRoles",
        "version",
        "versionInfo",
        "check",
        "tty",
        "taskKillGracePeriodSeconds",
        "resourceLimits",
    ] {
        assert!(
            !object.contains_key(absent),
            "{absent} should be omitted: {out}"
        );
    }
    assert_eq!(out["args"], json!(["run"]));
    assert_eq!(out["portDefinitions"], json!([]));
    assert_eq!(out["ports"], json!([]));
    assert_eq!(out["labels"], json!({}));
    assert_eq!(out["networks"], json!([{"mode": "host"}]));
}

#[test]
fn unknown_fields_are_ignored() {
    let a = app(with(
        sleeper(),
        json!({"tasksRunning": 3, "storeUrls": [], "residency": {"x": 1}, "fooBar": {"deep": [1]}}),
    ));
    assert_eq!(a, app(sleeper()));
}

#[test]
fn every_field_round_trips() {
    let a = app(json!({
        "id": "/full/app", "cmd": "run", "user": "nobody",
        "env": {"A": "1", "S": {"secret": "s"}},
        "secrets": {"s": {"source": "/vault/s"}},
        "instances": 0, "cpus": 0.001, "mem": 1, "disk": 10.5, "gpus": 1,
        "executor": "//cmd",
        "constraints": [["@region", "IS", "eu-1"], ["hostname", "LIKE", "a.*"]],
        "acceptedResourceRoles": ["*"], "role": "prod",
        "container": {"type": "MESOS", "docker": {"image": "busybox", "pullConfig": {"secret": "s"}},
                      "volumes": [{"containerPath": "data", "persistent": {"size": 100}},
                                  {"containerPath": "/run/secret", "secret": "s"}],
                      "linuxInfo": {"seccomp": {"unconfined": true}}},
        "portDefinitions": [{"port": 10000, "name": "web", "protocol": "udp,tcp", "labels": {"x": "y"}},
                            {"port": 0}],
        "requirePorts": true,
        "labels": {"weird key!": "värde", "MARATHON_SINGLE_INSTANCE_APP": "false"},
        "fetch": [{"uri": "http://x/y.zip", "extract": false, "executable": true, "cache": true, "destPath": "z"}],
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}},
                         {"protocol": "HTTPS", "port": 8443, "ignoreHttp1xx": true}],
        "readinessChecks": [{"protocol": "HTTPS", "portName": "web", "preserveLastResponse": true,
                             "httpStatusCodesForReady": [200, 204]}],
        "dependencies": ["../other"],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
        "backoffSeconds": 5, "backoffFactor": 2, "maxLaunchDelaySeconds": 60,
        "taskKillGracePeriodSeconds": 0, "killSelection": "OLDEST_FIRST",
        "unreachableStrategy": "disabled",
        "check": {"http": {"portIndex": 0, "path": "/"}},
        "tty": false,
        "resourceLimits": {"cpus": "unlimited", "mem": 2048},
        "executorResources": {"cpus": 0.2},
        "version": "2021-03-01T10:00:00.000Z",
        "versionInfo": {"lastScalingAt": "2021-03-01T10:00:00.000Z",
                        "lastConfigChangeAt": "2021-02-20T09:00:00.000Z"}
    }));
    assert!(a.is_resident());
    assert_eq!(
        a.dependencies,
        vec![id("/other")],
        "relative to the app's base"
    );
    assert_eq!(
        a.health_checks[0].port_index, None,
        "COMMAND checks get no port index"
    );
    assert_eq!(a.health_checks[1].path.as_deref(), Some("/"));
    assert_eq!(a.unreachable_strategy, UnreachableStrategy::Disabled);
    assert_eq!(
        a.executor_resources,
        Some(ExecutorResources {
            cpus: 0.2,
            mem: 32.0,
            disk: 10.0
        })
    );
    assert_eq!(a.container.as_ref().expect("c").volumes[1].mode, None);
    let out = to_json(&a);
    assert_eq!(out["unreachableStrategy"], "disabled");
    assert_eq!(
        out["resourceLimits"],
        json!({"cpus": "unlimited", "mem": 2048.0})
    );
    assert_eq!(out["labels"]["weird key!"], "värde");
    assert_round_trips(&a);
}

// ---------------------------------------------------------------- ids

#[test]
fn app_ids_are_resolved_and_checked() {
    let root = PathId::root();
    let parse_app = |s: &str| PathId::parse_app(s, &root);
    assert_eq!(parse_app("app").map(|p| p.to_string()), Ok("/app".into()));
    assert_eq!(parse_app("/app").map(|p| p.to_string()), Ok("/app".into()));
    assert_eq!(parse_app("/a/../b").map(|p| p.to_string()), Ok("/b".into()));
    assert_eq!(
        parse_app("/a/./b/").map(|p| p.to_string()),
        Ok("/a/b".into())
    );
    assert_eq!(
        parse_app("//a//b").map(|p| p.to_string()),
        Ok("/a/b".into())
    );
    assert_eq!(
        parse_app("/a.b-c/d1").map(|p| p.to_string()),
        Ok("/a.b-c/d1".into())
    );
    assert_eq!(
        parse_app("/App"),
        Err(PathIdError::InvalidSegment("App".into()))
    );
    assert_eq!(
        parse_app("/-x"),
        Err(PathIdError::InvalidSegment("-x".into()))
    );
    assert_eq!(
        parse_app("/x-"),
        Err(PathIdError::InvalidSegment("x-".into()))
    );
    assert_eq!(
        parse_app("/a_b"),
        Err(PathIdError::InvalidSegment("a_b".into()))
    );
    assert_eq!(
        parse_app("/a..b"),
        Err(PathIdError::InvalidSegment("a..b".into()))
    );
    assert_eq!(
        parse_app("/g/restart"),
        Err(PathIdError::Reserved("restart".into()))
    );
    assert_eq!(
        parse_app("tasks"),
        Err(PathIdError::Reserved("tasks".into()))
    );
    assert_eq!(
        parse_app("/versions"),
        Err(PathIdError::Reserved("versions".into()))
    );
    assert_eq!(parse_app("/"), Err(PathIdError::Root));
    assert_eq!(parse_app("/a/.."), Err(PathIdError::Root));
    assert_eq!(parse_app(".."), Err(PathIdError::Root));

    let group = id("/prod");
    assert_eq!(
        PathId::parse_app("web", &group).map(|p| p.to_string()),
        Ok("/prod/web".into())
    );
    assert_eq!(
        PathId::parse_app("../dev/web", &group),
        Err(PathIdError::NotChildOf("/prod".into()))
    );
    assert_eq!(
        PathId::parse_app("/prod/a/b", &group).map(|p| p.to_string()),
        Ok("/prod/a/b".into())
    );
}

#[test]
fn path_id_helpers() {
    let p = id("/group/sub/app");
    assert_eq!(p.as_str(), "/group/sub/app");
    assert_eq!(p.safe(), "group_sub_app");
    assert_eq!(PathId::from_safe("group_sub_app"), Some(p.clone()));
    assert_eq!(p.hostname(), "app.sub.group");
    assert_eq!(p.name(), Some("app"));
    assert_eq!(p.parent(), id("/group/sub"));
    assert_eq!(PathId::root().parent(), PathId::root());
    assert!(p.is_child_of(&id("/group/sub")));
    assert!(!p.is_child_of(&id("/group")));
    assert!(p.is_descendant_of(&id("/group")));
    assert!(p.is_descendant_of(&PathId::root()));
    assert!(!id("/groupx/app").is_descendant_of(&id("/group")));
    assert!(!id("/group").is_descendant_of(&id("/group")));
    assert_eq!(id("/a").child("b"), Some(id("/a/b")));
    assert_eq!(id("/a").child("B"), None);
    assert!(
        id("/a/b") < id("/a-b"),
        "segment order keeps groups together"
    );
    assert_eq!(
        serde_json::to_value(&p).expect("ser"),
        json!("/group/sub/app")
    );
    assert_eq!(
        serde_json::from_value::<PathId>(json!("x/y")).expect("de"),
        id("/x/y")
    );
    assert!(serde_json::from_value::<PathId>(json!("/X")).is_err());
}

#[test]
fn id_errors_are_reported_at_the_id_path() {
    let pattern = format!(
        "must fully match regular expression '{}'",
        path::SEGMENT_PATTERN
    );
    assert_invalid(json!({"id": "/My-App", "cmd": "x"}), "/id", &pattern);
    assert_invalid(json!({"id": "/-x", "cmd": "x"}), "/id", &pattern);
    assert_invalid(
        json!({"id": "/a/restart", "cmd": "x"}),
        "/id",
        "must not end with any of the following reserved keywords: restart, tasks, versions",
    );
    assert_invalid(
        json!({"id": "/", "cmd": "x"}),
        "/id",
        "Path must contain at least one path element",
    );
    assert_wrong_type(json!({"cmd": "x"}), "/id", "error.path.missing");
    assert_wrong_type(
        json!({"id": 5, "cmd": "x"}),
        "/id",
        "error.expected.jsstring",
    );
    let relative = app(json!({"id": "a/../b", "cmd": "x"}));
    assert_eq!(relative.id, id("/b"));
    let in_group = AppDefinition::from_value(
        &json!({"id": "web", "cmd": "x"}),
        &id("/prod"),
        &AppDefaults::default(),
    )
    .expect("valid");
    assert_eq!(in_group.id, id("/prod/web"));
    let outside = AppDefinition::from_value(
        &json!({"id": "/dev/web", "cmd": "x"}),
        &id("/prod"),
        &AppDefaults::default(),
    );
    assert_eq!(
        outside.map_err(|e| e.body()),
        Err(json!({"message": "Object is not valid",
                   "details": [{"path": "/id", "errors": ["Identifier is not child of '/prod'"]}]}))
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn syntax_errors_are_400_with_a_string_detail() {
    let err =
        AppDefinition::from_json(b"{\"id\": \"/x\"", &PathId::root(), &AppDefaults::default())
            .expect_err("not JSON");
    assert_eq!(err.status(), 400);
    let body = err.body();
    assert_eq!(body["message"], "Invalid JSON");
    assert!(
        body["details"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    let ok = AppDefinition::from_json(
        fixture!("app-minimal.json").as_bytes(),
        &PathId::root(),
        &AppDefaults::default(),
    );
    assert!(ok.is_ok());
}

#[test]
fn wrong_types_are_400_with_paths() {
    assert_wrong_type(
        with(sleeper(), json!({"cpus": "x"})),
        "/cpus",
        "error.expected.jsnumber",
    );
    assert_wrong_type(
        with(sleeper(), json!({"instances": 1.5})),
        "/instances",
        "error.expected.int",
    );
    assert_wrong_type(
        with(sleeper(), json!({"args": "x"})),
        "/args",
        "error.expected.jsarray",
    );
    assert_wrong_type(
        with(sleeper(), json!({"args": [1]})),
        "/args(0)",
        "error.expected.jsstring",
    );
    assert_wrong_type(
        with(sleeper(), json!({"requirePorts": "yes"})),
        "/requirePorts",
        "error.expected.jsboolean",
    );
    assert_wrong_type(
        with(sleeper(), json!({"labels": {"a": 1}})),
        "/labels/a",
        "error.expected.jsstring",
    );
    assert_wrong_type(
        with(sleeper(), json!({"labels": []})),
        "/labels",
        "error.expected.jsobject",
    );
    assert_wrong_type(
        with(sleeper(), json!({"env": {"A": 1}})),
        "/env/A",
        "error.expected.jsstring",
    );
    assert_wrong_type(
        with(sleeper(), json!({"env": {"A": {"secret": 1}}})),
        "/env/A/secret",
        "error.expected.jsstring",
    );
    assert_wrong_type(
        with(sleeper(), json!({"killSelection": "RANDOM"})),
        "/killSelection",
        "error.unknown.enum.literal",
    );
    assert_wrong_type(
        with(sleeper(), json!({"healthChecks": [{"protocol": "GRPC"}]})),
        "/healthChecks(0)/protocol",
        "error.unknown.enum.literal",
    );
    assert_wrong_type(
        with(sleeper(), json!({"constraints": [["a", 1]]})),
        "/constraints(0)(1)",
        "error.expected.jsstring",
    );
    assert_wrong_type(
        with(sleeper(), json!({"fetch": [{}]})),
        "/fetch(0)/uri",
        "error.path.missing",
    );
    assert_wrong_type(
        with(
            sleeper(),
            json!({"container": {"docker": {"image": "x", "network": "OVERLAY"}}}),
        ),
        "/container/docker/network",
        "error.unknown.enum.literal",
    );
    assert_wrong_type(
        with(sleeper(), json!({"version": "yesterday"})),
        "/version",
        "error.expected.date.isoformat",
    );
    assert_wrong_type(json!([1]), "/", "error.expected.jsobject");
    assert_wrong_type(
        with(sleeper(), json!({"unreachableStrategy": "sometimes"})),
        "/unreachableStrategy",
        "error.unknown.enum.literal",
    );

    // Every wrong type at once, and type errors before rule violations.
    let err =
        parse(&json!({"id": "/x", "cpus": "1", "mem": [], "instances": -1})).expect_err("bad");
    let body = err.body();
    assert_eq!(
        body,
        json!({"message": "Invalid JSON", "details": [
            {"path": "/cpus", "errors": ["error.expected.jsnumber"]},
            {"path": "/mem", "errors": ["error.expected.jsnumber"]}
        ]})
    );
}

#[test]
fn null_means_default() {
    let a = app(with(
        sleeper(),
        json!({"cpus": null, "labels": null, "user": null, "args": null, "container": null, "ipAddress": null}),
    ));
    assert_eq!(a, app(sleeper()));
}

#[test]
fn every_violation_is_reported_at_once() {
    let err = parse(&json!({
        "id": "/x", "cpus": -1, "mem": -2,
        "upgradeStrategy": {"minimumHealthCapacity": 1.5, "maximumOverCapacity": -0.5},
        "backoffFactor": 0.5,
        "constraints": [["hostname", "UNIQUE", "x"]]
    }))
    .expect_err("invalid");
    assert_eq!(
        err.body(),
        json!({"message": "Object is not valid", "details": [
            {"path": "/", "errors": [
                "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]},
            {"path": "/cpus", "errors": ["got -1.0, expected 0.0 or more"]},
            {"path": "/mem", "errors": ["got -2.0, expected 0.0 or more"]},
            {"path": "/backoffFactor", "errors": ["got 0.5, expected 1.0 or more"]},
            {"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["is greater than 1"]},
            {"path": "/upgradeStrategy/maximumOverCapacity", "errors": ["is less than 0"]},
            {"path": "/constraints(0)", "errors": ["UNIQUE does not accept a value"]}
        ]})
    );
    assert_eq!(err.status(), 422);
}

#[test]
fn legacy_marathon_output_sent_back_parses() {
    // A hand-written app in the shape Marathon 1.1–1.4 returned from
    // GET /v2/apps (nulls, `ports`, `uris`, `storeUrls`, docker.network and
    // docker.portMappings, read-only counters), which tools send back on PUT.
    let v: Value = serde_json::from_str(fixture!("app-legacy-output.json")).expect("json");
    for v in v["apps"].as_array().expect("apps") {
        let a = match parse(v) {
            Ok(a) => a,
            Err(e) => panic!("{}: {}", v["id"], e.body()),
        };
        assert_eq!(
            a.networks[0].mode,
            NetworkMode::ContainerBridge,
            "from docker.network"
        );
        let mapping = &a.container.as_ref().expect("container").port_mappings[0];
        assert_eq!(mapping.host_port, Some(0));
        assert_eq!(mapping.service_port, 10010);
        assert_eq!(
            mapping.name.as_deref(),
            Some("web"),
            "from docker.portMappings"
        );
        assert!(
            a.port_definitions.is_empty(),
            "bare service ports dropped under bridge"
        );
        assert_eq!(a.fetch.len(), 1, "uris became fetch");
        assert_eq!(
            a.accepted_resource_roles,
            Some(vec!["*".into(), "public".into()])
        );
        assert_eq!(
            a.labels.get("HAPROXY_0_VHOST"),
            Some("shop.example.invalid")
        );
        assert!(a.version.is_some());
        assert_round_trips(&a);
    }
}

// ---------------------------------------------------------------- rules

#[test]
fn cmd_args_or_container_rule() {
    let msg = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.";
    assert_invalid(json!({"id": "/x"}), "/", msg);
    assert_invalid(json!({"id": "/x", "cmd": "a", "args": ["b"]}), "/", msg);
    assert_invalid(
        json!({"id": "/x", "container": {"type": "DOCKER"}}),
        "/",
        msg,
    );
    assert_invalid(
        json!({"id": "/x", "cmd": ""}),
        "/cmd",
        "must not be an empty string",
    );
    app(json!({"id": "/x", "container": {"docker": {"image": "nginx"}}}));
    app(json!({"id": "/x", "container": {"type": "MESOS"}}));
    app(json!({"id": "/x", "args": ["sleep", "1"]}));
}

#[test]
fn resource_rules() {
    assert_invalid(
        with(sleeper(), json!({"cpus": -0.5})),
        "/cpus",
        "got -0.5, expected 0.0 or more",
    );
    assert_invalid(
        with(sleeper(), json!({"mem": -1})),
        "/mem",
        "got -1.0, expected 0.0 or more",
    );
    assert_invalid(
        with(sleeper(), json!({"disk": -1})),
        "/disk",
        "got -1.0, expected 0.0 or more",
    );
    assert_invalid(
        with(sleeper(), json!({"gpus": -1})),
        "/gpus",
        "got -1, expected 0 or more",
    );
    assert_invalid(
        with(sleeper(), json!({"instances": -1})),
        "/instances",
        "got -1, expected 0 or more",
    );
    assert_invalid(
        with(sleeper(), json!({"instances": 3_000_000_000_u64})),
        "/instances",
        "got 3000000000, expected 2147483647 or less",
    );
    assert_invalid(
        json!({"id": "/x", "gpus": 1, "container": {"docker": {"image": "x"}}}),
        "/",
        "GPU resources only work with the Mesos containerizer",
    );
    assert_invalid(
        with(sleeper(), json!({"resourceLimits": {"cpus": 0.5}})),
        "/resourceLimits/cpus",
        "resource limit must be greater than or equal to requested resource (1.0)",
    );
    assert_invalid(
        with(sleeper(), json!({"resourceLimits": {"mem": "lots"}})),
        "/resourceLimits/mem",
        "'lots' is an invalid resource limit. It must be 'unlimited' or a number",
    );
    assert_invalid(
        with(sleeper(), json!({"executor": "a//b"})),
        "/executor",
        "must fully match regular expression '^(//cmd)|(/?[^/]+(/[^/]+)*)|$'",
    );
    app(with(sleeper(), json!({"executor": "/opt/exec/run"})));
    assert_invalid(
        with(sleeper(), json!({"role": ""})),
        "/role",
        "must not be empty",
    );
    assert_invalid(
        with(sleeper(), json!({"acceptedResourceRoles": []})),
        "/acceptedResourceRoles",
        "must not be empty",
    );
    assert_invalid(
        json!({"id": "/x", "container": {"docker": {"image": "x"}}, "check": {"tcp": {"portIndex": 0}}}),
        "/",
        "AppDefinition must not use 'checks' if using docker",
    );
}

#[test]
fn scheduling_rules() {
    assert_invalid(
        with(
            sleeper(),
            json!({"upgradeStrategy": {"minimumHealthCapacity": 1.1}}),
        ),
        "/upgradeStrategy/minimumHealthCapacity",
        "is greater than 1",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"upgradeStrategy": {"maximumOverCapacity": -0.1}}),
        ),
        "/upgradeStrategy/maximumOverCapacity",
        "is less than 0",
    );
    assert_invalid(
        with(sleeper(), json!({"backoffFactor": 0.99})),
        "/backoffFactor",
        "got 0.99, expected 1.0 or more",
    );
    assert_invalid(
        with(sleeper(), json!({"backoffSeconds": -1})),
        "/backoffSeconds",
        "got -1, expected 0 or more",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 5}}),
        ),
        "/unreachableStrategy/inactiveAfterSeconds",
        "inactiveAfterSeconds (10) must be less or equal to expungeAfterSeconds, which is 5",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}, "instances": 2,
                               "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}),
        ),
        "/",
        "Single instance app may only have one instance",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}}),
        ),
        "/upgradeStrategy/minimumHealthCapacity",
        "got 1.0, expected 0.0",
    );
    assert_invalid(
        json!({"id": "/db", "cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": 1, "expungeAfterSeconds": 2},
               "container": {"type": "MESOS", "volumes": [{"containerPath": "data", "persistent": {"size": 1}}]}}),
        "/",
        "unreachableStrategy must be disabled for resident tasks",
    );
    assert_invalid(
        json!({"id": "/db", "cmd": "x",
               "container": {"type": "MESOS", "volumes": [{"containerPath": "data", "persistent": {"size": 1}}]}}),
        "/role",
        "resident apps need a role other than '*': Mesos reserves their resources and volumes for a role",
    );
    let resident = app(json!({"id": "/db", "cmd": "x", "role": "db",
        "container": {"type": "MESOS", "volumes": [{"containerPath": "data", "persistent": {"size": 1}}]}}));
    assert_eq!(resident.upgrade_strategy, UpgradeStrategy::RESIDENT);
    assert_eq!(resident.unreachable_strategy, UnreachableStrategy::Disabled);
}

#[test]
fn constraint_rules_use_the_constraints_module() {
    for (constraint, message) in [
        (
            json!(["hostname", "SOMETIMES"]),
            super::constraint::ConstraintError::UnknownOperator.to_string(),
        ),
        (
            json!(["hostname"]),
            "Each constraint must have either 2 or 3 fields".to_string(),
        ),
        (
            json!(["hostname", "UNIQUE", "x"]),
            "UNIQUE does not accept a value".to_string(),
        ),
        (
            json!(["rack", "MAX_PER", "two"]),
            "Value was not a valid integer".to_string(),
        ),
        (json!(["rack", "IS"]), "IS requires a value".to_string()),
    ] {
        assert_invalid(
            with(
                sleeper(),
                json!({"constraints": [["hostname", "UNIQUE"], constraint]}),
            ),
            "/constraints(1)",
            &message,
        );
    }
    let ok = app(with(
        sleeper(),
        json!({"constraints": [["hostname", "UNIQUE"], ["rack_id", "GROUP_BY"], ["rack_id", "CLUSTER", "r1"]]}),
    ));
    assert_eq!(ok.constraints.len(), 3);
}

#[test]
fn port_rules() {
    assert_invalid(
        with(
            sleeper(),
            json!({"portDefinitions": [{"port": 0, "name": "a"}, {"port": 0, "name": "a"}]}),
        ),
        "/portDefinitions",
        "Port names must be unique.",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"portDefinitions": [{"port": 8080}, {"port": 8080}]}),
        ),
        "/portDefinitions",
        "Ports must be unique.",
    );
    app(with(
        sleeper(),
        json!({"portDefinitions": [{"port": 0}, {"port": 0}]}),
    ));
    assert_invalid(
        with(
            sleeper(),
            json!({"portDefinitions": [{"port": 1, "protocol": "sctp"}]}),
        ),
        "/portDefinitions(0)/protocol",
        "Invalid protocol. Only 'udp', 'tcp' and 'udp,tcp' are allowed.",
    );
    assert_invalid(
        with(sleeper(), json!({"portDefinitions": [{"port": 70000}]})),
        "/portDefinitions(0)/port",
        "got 70000, expected 65535 or less",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"networks": [{"mode": "container/bridge"}], "portDefinitions": [{"port": 0, "name": "http"}]}),
        ),
        "/",
        "portDefinitions are only allowed with host-networking",
    );
    assert_invalid(
        json!({"id": "/x", "container": {"docker": {"image": "x"}, "portMappings": [{"containerPort": 80}]}}),
        "/",
        "portMappings are not allowed with host-networking",
    );
    assert_invalid(
        json!({"id": "/x", "networks": [{"mode": "container/bridge"}],
               "container": {"docker": {"image": "x"}, "portMappings": [{"containerPort": 80, "name": "a"}, {"containerPort": 81, "name": "a"}]}}),
        "/container/portMappings",
        "Port names must be unique.",
    );
    assert_invalid(
        json!({"id": "/x", "networks": [{"mode": "container", "name": "a"}],
               "container": {"type": "MESOS", "portMappings": [{"containerPort": 80, "networkNames": ["b"]}]}}),
        "/container/portMappings(0)/networkNames(0)",
        "got \"b\", expected one of: [\"a\"]",
    );
    assert_invalid(
        json!({"id": "/x", "networks": [{"mode": "container", "name": "a"}, {"mode": "container", "name": "b"}],
               "container": {"type": "MESOS", "portMappings": [{"containerPort": 80, "hostPort": 0}]}}),
        "/container/portMappings(0)",
        "networkNames must be a single item list when hostPort is specified and more than 1 container network is defined",
    );
}

#[test]
fn network_rules() {
    assert_invalid(
        with(
            sleeper(),
            json!({"networks": [{"mode": "host", "name": "x"}]}),
        ),
        "/networks",
        "Host networks may not have names or labels",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"networks": [{"mode": "container/bridge", "name": "x"}]}),
        ),
        "/networks",
        "Bridge networks may not have names",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"networks": [{"mode": "host"}, {"mode": "container/bridge"}]}),
        ),
        "/networks",
        "May specify a single host network, single bridge network, or else 1-to-n container networks",
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"networks": [{"mode": "container", "name": "a"}, {"mode": "container", "name": "a"}]}),
        ),
        "/networks",
        "Duplicate networks are not allowed",
    );
    assert_invalid(
        with(sleeper(), json!({"networks": [{"mode": "container"}]})),
        "/networks",
        "Network name must be specified when container network is selected.",
    );
    assert_invalid(
        json!({"id": "/x", "networks": [{"mode": "container", "name": "a"}, {"mode": "container", "name": "b"}],
               "container": {"docker": {"image": "x"}}}),
        "/networks",
        "may only specify a single container network when using the Docker container engine",
    );
}

#[test]
fn container_rules() {
    assert_invalid(
        json!({"id": "/x", "cmd": "a", "container": {"type": "DOCKER"}}),
        "/container/docker",
        "not defined",
    );
    assert_invalid(
        json!({"id": "/x", "container": {"docker": {"image": ""}}}),
        "/container/docker/image",
        "must not be empty",
    );
    assert_wrong_type(
        json!({"id": "/x", "container": {"docker": {}}}),
        "/container/docker/image",
        "error.path.missing",
    );
    assert_invalid(
        json!({"id": "/x", "container": {"docker": {"image": "x", "pullConfig": {"secret": "s"}}}}),
        "/container/docker/pullConfig",
        "pullConfig is not supported with Docker containerizer",
    );
    assert_invalid(
        json!({"id": "/x", "container": {"type": "MESOS", "docker": {"image": "x", "pullConfig": {"secret": "s"}}}}),
        "/container/docker/pullConfig",
        "pullConfig.secret must refer to an existing secret",
    );
    assert_invalid(
        json!({"id": "/x", "container": {"type": "MESOS", "docker": {"image": "x", "parameters": [{"key": "a", "value": "b"}]}}}),
        "/container/docker/parameters",
        "must be empty",
    );
    assert_invalid(
        json!({"id": "/x", "cmd": "a", "container": {"type": "MESOS", "volumes": [{"containerPath": "/a"}]}}),
        "/container/volumes(0)",
        "a volume needs exactly one of hostPath, persistent, external or secret",
    );
    assert_invalid(
        json!({"id": "/x", "cmd": "a", "container": {"type": "MESOS", "volumes": [{"containerPath": "", "hostPath": "/h"}]}}),
        "/container/volumes(0)/containerPath",
        "must not be empty",
    );
    assert_invalid(
        json!({"id": "/x", "cmd": "a", "container": {"type": "MESOS", "volumes": [{"containerPath": "/s", "secret": "nope"}]}}),
        "/container/volumes(0)/secret",
        "volume.secret must refer to an existing secret",
    );
}

#[test]
fn persistent_volumes_need_a_size_a_sandbox_name_and_the_root_disk() {
    // Judged when an app becomes resident (the driver calls this), not
    // when it is parsed: a resident app stored before these rules stays
    // scalable.
    let refused = |volume: Value, path: &str, message: &str| {
        let v = json!({"id": "/db", "cmd": "a", "role": "db",
            "container": {"type": "MESOS", "volumes": [volume]}});
        let app = parse(&v).expect("parses");
        match validate::persistent_volumes(&app) {
            Err(e @ AppError::Invalid(_)) => assert!(
                e.violations()
                    .iter()
                    .any(|d| d.path == path && d.errors.iter().any(|m| m == message)),
                "{v}: expected {path}: {message}, got {}",
                e.body()
            ),
            other => panic!("{v}: expected 422 at {path}, got {other:?}"),
        }
    };
    let size = "must be a whole number of MB greater than 0";
    for persistent in [json!({}), json!({"size": 0}), json!({"size": 1.5})] {
        refused(
            json!({"containerPath": "data", "mode": "RW", "persistent": persistent}),
            "/container/volumes(0)/persistent/size",
            size,
        );
    }
    for path in ["var/data", "..", "."] {
        refused(
            json!({"containerPath": path, "mode": "RW", "persistent": {"size": 8}}),
            "/container/volumes(0)/containerPath",
            "a persistent volume's containerPath must be a name directly in the sandbox (no '/', not '.' or '..')",
        );
    }
    for persistent in [
        json!({"size": 8, "type": "mount"}),
        json!({"size": 8, "profileName": "ssd"}),
        json!({"size": 8, "type": "path", "constraints": [["path", "LIKE", "ssd"]]}),
    ] {
        refused(
            json!({"containerPath": "data", "mode": "RW", "persistent": persistent}),
            "/container/volumes(0)/persistent",
            "only root-disk persistent volumes are supported yet (no type path or mount, profileName, maxSize or constraints)",
        );
    }
    // What Marathon users send for the root disk passes.
    for persistent in [
        json!({"size": 8, "type": "root", "constraints": []}),
        json!({"size": 8.0, "type": null, "maxSize": null, "profileName": null}),
    ] {
        let v = json!({"id": "/db", "cmd": "a", "role": "db", "container": {"type": "MESOS",
            "volumes": [{"containerPath": "data", "mode": "RW", "persistent": persistent}]}});
        assert!(
            validate::persistent_volumes(&parse(&v).unwrap()).is_ok(),
            "{v}"
        );
    }
}

#[test]
fn health_check_rules() {
    let hc = |checks: Value| with(sleeper(), json!({"healthChecks": checks}));
    let msg = "Health check port indices must address an element of the ports array or container port mappings.";
    assert_invalid(
        hc(json!([{"protocol": "HTTP", "portIndex": 1}])),
        "/healthChecks(0)",
        msg,
    );
    assert_invalid(
        with(
            sleeper(),
            json!({"portDefinitions": [], "healthChecks": [{"protocol": "TCP"}]}),
        ),
        "/healthChecks(0)",
        msg,
    );
    let by_port = app(with(
        sleeper(),
        json!({"portDefinitions": [], "healthChecks": [{"protocol": "TCP", "port": 8080}]}),
    ));
    assert_eq!(by_port.health_checks[0].port_index, None);
    let defaulted = app(hc(json!([{}])));
    assert_eq!(
        defaulted.health_checks[0].port_index,
        Some(0),
        "portIndex defaults to 0"
    );
    assert_eq!(
        defaulted.health_checks[0].protocol,
        HealthCheckProtocol::Http
    );
    assert_eq!(defaulted.health_checks[0].path.as_deref(), Some("/"));
    assert_eq!(
        (
            defaulted.health_checks[0].grace_period_seconds,
            defaulted.health_checks[0].interval_seconds,
            defaulted.health_checks[0].timeout_seconds,
            defaulted.health_checks[0].max_consecutive_failures
        ),
        (300, 60, 20, 3)
    );
    let command = app(hc(json!([{"command": {"value": "curl -f localhost"}}])));
    assert_eq!(
        command.health_checks[0].protocol,
        HealthCheckProtocol::Command,
        "command implies COMMAND"
    );
    assert_invalid(
        hc(json!([{"protocol": "COMMAND"}])),
        "/healthChecks(0)/command",
        "not defined",
    );
    assert_invalid(
        hc(json!([{"protocol": "MESOS_HTTP"}, {"protocol": "MESOS_TCP"}])),
        "/",
        "AppDefinition can contain at most one Mesos health check",
    );
    app(hc(
        json!([{"protocol": "MESOS_HTTP"}, {"protocol": "COMMAND", "command": {"value": "true"}}, {"protocol": "HTTP"}]),
    ));
    assert_invalid(
        hc(json!([{"protocol": "HTTP", "ipProtocol": "IPv6"}])),
        "/healthChecks(0)",
        "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks",
    );
}

#[test]
fn readiness_check_rules() {
    let base = with(
        sleeper(),
        json!({"portDefinitions": [{"port": 0, "name": "http"}]}),
    );
    assert_invalid(
        with(
            base.clone(),
            json!({"readinessChecks": [{"portName": "http"}, {"portName": "http"}]}),
        ),
        "/readinessChecks",
        "got 2, expected 1 or less",
    );
    assert_invalid(
        with(
            base.clone(),
            json!({"readinessChecks": [{"portName": "http", "intervalSeconds": 5, "timeoutSeconds": 5}]}),
        ),
        "/readinessChecks(0)/timeoutSeconds",
        "got 5, expected less than 5",
    );
    assert_invalid(
        with(
            base.clone(),
            json!({"readinessChecks": [{"portName": "admin"}]}),
        ),
        "/readinessChecks(0)/portName",
        "No port definition reference for portName admin",
    );
    assert_invalid(
        with(
            base.clone(),
            json!({"readinessChecks": [{"portName": "http", "httpStatusCodesForReady": [42]}]}),
        ),
        "/readinessChecks(0)/httpStatusCodesForReady(0)",
        "got 42, expected 100 or more",
    );
    let ok = app(with(
        base,
        json!({"readinessChecks": [{"portName": "http"}]}),
    ));
    assert_eq!(
        (
            ok.readiness_checks[0].interval_seconds,
            ok.readiness_checks[0].timeout_seconds
        ),
        (30, 10)
    );
}

#[test]
fn dependency_env_secret_and_fetch_rules() {
    assert_invalid(
        with(sleeper(), json!({"dependencies": ["/ok", "/Bad"]})),
        "/dependencies(1)",
        &format!(
            "must fully match regular expression '{}'",
            path::SEGMENT_PATTERN
        ),
    );
    assert_invalid(
        with(sleeper(), json!({"env": {"P": {"secret": "missing"}}})),
        "/env/P/secret",
        "references an undefined secret",
    );
    assert_invalid(
        with(sleeper(), json!({"secrets": {"s": {"source": ""}}})),
        "/secrets/s/source",
        "must not be empty",
    );
    assert_invalid(
        with(sleeper(), json!({"fetch": [{"uri": "http://a b"}]})),
        "/fetch(0)/uri",
        "URI has invalid syntax.",
    );
    assert_invalid(
        with(sleeper(), json!({"fetch": [{"uri": ""}]})),
        "/fetch(0)/uri",
        "must not be empty",
    );
}

// ---------------------------------------------------------------- deprecated

#[test]
fn deprecated_ports_become_port_definitions() {
    let a = app(with(sleeper(), json!({"ports": [0, 8080]})));
    let ports: Vec<u16> = a.port_definitions.iter().map(|d| d.port).collect();
    assert_eq!(ports, vec![0, 8080]);
    assert!(
        a.port_definitions
            .iter()
            .all(|d| d.protocol == "tcp" && d.name.is_none())
    );
    assert_eq!(to_json(&a)["ports"], json!([0, 8080]));
    assert_invalid(
        with(
            sleeper(),
            json!({"ports": [1], "portDefinitions": [{"port": 2}]}),
        ),
        "/",
        "cannot specify both ports and port definitions",
    );
    // Equivalent (as our own output is) is fine, and the definitions win.
    let same = app(with(
        sleeper(),
        json!({"ports": [2], "portDefinitions": [{"port": 2, "name": "x"}]}),
    ));
    assert_eq!(same.port_definitions[0].name.as_deref(), Some("x"));
    let empty = app(with(sleeper(), json!({"ports": []})));
    assert!(empty.port_definitions.is_empty());
}

#[test]
fn deprecated_uris_become_fetch() {
    let a = app(with(
        sleeper(),
        json!({"uris": ["http://x/a.tgz", "http://x/b.tar.gz?sig=1", "http://x/c.zip", "http://x/run.sh", "http://x/d.tar.xz"]}),
    ));
    let extract: Vec<bool> = a.fetch.iter().map(|f| f.extract).collect();
    assert_eq!(extract, vec![true, true, true, false, true]);
    assert!(a.fetch.iter().all(|f| !f.executable && !f.cache));
    assert_invalid(
        with(
            sleeper(),
            json!({"uris": ["http://a"], "fetch": [{"uri": "http://b"}]}),
        ),
        "/uris",
        "may not be set in conjunction with fetch",
    );
    let fetched = app(with(
        sleeper(),
        json!({"uris": [], "fetch": [{"uri": "http://b", "extract": false}]}),
    ));
    assert!(!fetched.fetch[0].extract);
}

#[test]
fn deprecated_ip_address_becomes_networks() {
    let a = app(with(
        sleeper(),
        json!({"ipAddress": {"networkName": "dcos", "labels": {"l": "v"},
                             "discovery": {"ports": [{"number": 8080, "name": "http", "protocol": "tcp"}]}}}),
    ));
    assert_eq!(a.networks.len(), 1);
    assert_eq!(a.networks[0].mode, NetworkMode::Container);
    assert_eq!(a.networks[0].name.as_deref(), Some("dcos"));
    assert_eq!(a.networks[0].labels.get("l"), Some("v"));
    let c = a.container.as_ref().expect("implicit MESOS container");
    assert_eq!(c.kind, ContainerType::Mesos);
    assert_eq!(c.port_mappings[0].container_port, 8080);
    assert_eq!(c.port_mappings[0].host_port, None);
    assert!(a.port_definitions.is_empty());

    let bridge = app(with(
        sleeper(),
        json!({"ipAddress": {"networkName": "mesos-bridge"}}),
    ));
    assert_eq!(bridge.networks[0].mode, NetworkMode::ContainerBridge);
    assert_invalid(
        with(
            sleeper(),
            json!({"ipAddress": {"networkName": "a"}, "networks": [{"mode": "container", "name": "a"}]}),
        ),
        "/",
        "must not specify both networks and ipAddress",
    );
}

#[test]
fn deprecated_docker_network_and_port_mappings_move() {
    let a = app(
        json!({"id": "/d", "container": {"type": "DOCKER", "docker": {
        "image": "nginx", "network": "BRIDGE",
        "portMappings": [{"containerPort": 80, "servicePort": 10000}]}}}),
    );
    assert_eq!(
        a.networks,
        vec![Network {
            mode: NetworkMode::ContainerBridge,
            name: None,
            labels: Default::default()
        }]
    );
    let c = a.container.as_ref().expect("container");
    assert_eq!(c.port_mappings[0].container_port, 80);
    assert_eq!(c.port_mappings[0].host_port, Some(0));
    let out = to_json(&a);
    assert!(
        out["container"]["docker"].get("network").is_none(),
        "never written back"
    );
    assert!(out["container"]["docker"].get("portMappings").is_none());

    let host =
        app(json!({"id": "/d", "container": {"docker": {"image": "nginx", "network": "HOST"}}}));
    assert!(host.is_host_networking());
    assert_eq!(
        host.port_definitions,
        vec![PortDefinition::default_definition()]
    );
    assert_invalid(
        json!({"id": "/d", "container": {"docker": {"image": "x", "network": "NONE"}}}),
        "/container/docker/network",
        "unsupported docker network type NONE",
    );
    assert_invalid(
        json!({"id": "/d", "networks": [{"mode": "container/bridge"}], "container": {"docker": {"image": "x", "network": "BRIDGE"}}}),
        "/",
        "must not specify both container.docker.network and networks",
    );
    assert_invalid(
        json!({"id": "/d", "networks": [{"mode": "container/bridge"}],
               "container": {"portMappings": [{"containerPort": 1}],
                             "docker": {"image": "x", "portMappings": [{"containerPort": 2}]}}}),
        "/container",
        "cannot specify both portMappings and docker.portMappings",
    );
}

// ---------------------------------------------------------------- updates

fn typical() -> AppDefinition {
    app(serde_json::from_str(fixture!("app-typical.json")).expect("json"))
        .with_version(Timestamp::from_millis(1_000), false)
}

fn merge(app: &AppDefinition, body: Value) -> Result<AppDefinition, AppError> {
    app.merge_update(&body, &AppDefaults::default())
}

#[test]
fn scaling_is_scale_only() {
    let old = typical();
    let new = merge(&old, json!({"instances": 5})).expect("valid");
    assert_eq!(new.instances, 5);
    assert!(is_scale_only_change(&old, &new));
    assert!(!is_upgrade(&old, &new));
    let same = merge(&old, json!({"id": "/prod/web", "instances": 3})).expect("valid");
    assert!(!is_scale_only_change(&old, &same), "nothing changed");
    assert!(!is_upgrade(&old, &same));
    // The scale leaves everything else untouched, mirrors included.
    let mut expected = old.clone();
    expected.instances = 5;
    assert_eq!(new, expected);
}

#[test]
fn other_changes_are_upgrades() {
    let old = typical();
    for body in [
        json!({"env": {"LOG_LEVEL": "debug", "DB_PASSWORD": {"secret": "dbpass"}}}),
        json!({"labels": {"owner": "team-b"}}),
        json!({"upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0}}),
        json!({"backoffSeconds": 2}),
        json!({"killSelection": "YOUNGEST_FIRST"}),
        json!({"unreachableStrategy": "disabled"}),
        json!({"instances": 4, "cmd": "python3 -m http.server $PORT0 --bind 0.0.0.0"}),
    ] {
        let new = merge(&old, body.clone()).unwrap_or_else(|e| panic!("{body}: {}", e.body()));
        assert!(is_upgrade(&old, &new), "{body} is an upgrade");
        assert!(
            !is_scale_only_change(&old, &new),
            "{body} is not scale-only"
        );
    }
}

#[test]
fn merge_replaces_whole_fields_and_null_resets() {
    let old = typical();
    let new = merge(
        &old,
        json!({"labels": {"only": "this"}, "cpus": null, "env": null,
                                 "secrets": null, "dependencies": null}),
    )
    .expect("valid");
    assert_eq!(new.labels.len(), 1);
    assert_eq!(new.cpus, 1.0, "null resets to the default");
    assert!(new.env.is_empty());
    assert!(new.dependencies.is_empty());
    assert_eq!(new.mem, 256.0, "untouched fields stay");
    assert_eq!(
        new.version, old.version,
        "version bookkeeping is the caller's"
    );

    let relaxed = merge(
        &old,
        json!({"upgradeStrategy": {"minimumHealthCapacity": 0}}),
    )
    .expect("valid");
    assert_eq!(
        relaxed.upgrade_strategy.maximum_over_capacity, 1.0,
        "a replaced object gets its own defaults"
    );

    let ports = merge(&old, json!({"ports": [9000], "readinessChecks": null})).expect("valid");
    assert_eq!(ports.port_definitions[0].port, 9000);
    let uris = merge(&old, json!({"uris": ["http://x/y.zip"]})).expect("valid");
    assert_eq!(uris.fetch, vec![FetchUri::from_uri("http://x/y.zip")]);
}

#[test]
fn merge_accepts_a_get_response_sent_back() {
    let old = typical();
    let get = || {
        let mut body = to_json(&old);
        let o = body.as_object_mut().expect("object");
        o.remove("version");
        o.remove("versionInfo");
        o.insert("tasksRunning".into(), json!(3));
        body
    };
    assert_eq!(merge(&old, get()), Ok(old.clone()), "unchanged: no change");

    // Edited canonical fields win over the stale deprecated mirrors.
    let mut edited = get();
    let o = edited.as_object_mut().expect("object");
    o.insert(
        "portDefinitions".into(),
        json!([{"port": 0, "name": "http"}, {"port": 0, "name": "admin"}]),
    );
    o.insert(
        "fetch".into(),
        json!([{"uri": "https://example.com/v2.tgz"}]),
    );
    let new = merge(&old, edited).expect("valid");
    assert_eq!(new.port_names(), vec!["http", "admin"]);
    assert_eq!(new.fetch[0].uri, "https://example.com/v2.tgz");
    assert!(is_upgrade(&old, &new));

    // A changed mirror next to a changed canonical field is ambiguous.
    let mut both = get();
    let o = both.as_object_mut().expect("object");
    o.insert("ports".into(), json!([9000]));
    o.insert("portDefinitions".into(), json!([{"port": 9001}]));
    assert_eq!(merge(&old, both).map_err(|e| e.status()), Err(422));
}

#[test]
fn merge_validates_the_result_and_the_id() {
    let old = typical();
    let err = merge(&old, json!({"cpus": -1, "backoffFactor": 0})).expect_err("invalid");
    assert_eq!(err.violations().len(), 2);
    let err = merge(&old, json!({"id": "/prod/other", "instances": 1})).expect_err("wrong id");
    assert_eq!(err.violations()[0].path, "/id");
    assert_eq!(
        merge(&old, json!({"id": "prod/web", "instances": 4})).map(|a| a.instances),
        Ok(4)
    );
    let err = merge(
        &old,
        json!({"version": "2021-03-01T10:00:00.000Z", "cmd": "x"}),
    )
    .expect_err("mixed");
    assert_eq!(
        err.body(),
        json!({"message": "Object is not valid", "details": [{"path": "/",
               "errors": ["The 'version' field may only be combined with the 'id' field."]}]})
    );
    assert_wrong_type(json!(["not an object"]), "/", "error.expected.jsobject");
    assert_eq!(merge(&old, json!("x")).map_err(|e| e.status()), Err(400));
    assert!(merge(&old, json!({"cpus": "many"})).is_err());
}

#[test]
fn merge_switching_networks_moves_the_ports() {
    let old = app(sleeper()).with_version(Timestamp::from_millis(1), false);
    let bridged = merge(
        &old,
        json!({"networks": [{"mode": "container/bridge"}],
                                     "container": {"docker": {"image": "nginx"}}}),
    )
    .expect("valid");
    assert!(
        bridged.port_definitions.is_empty(),
        "old host ports dropped"
    );
    assert_eq!(
        bridged.container.as_ref().expect("c").port_mappings[0].host_port,
        Some(0)
    );
    let back = merge(&bridged, json!({"networks": [{"mode": "host"}]})).expect("valid");
    assert_eq!(
        back.port_definitions,
        vec![PortDefinition::default_definition()]
    );
    assert!(back.container.as_ref().expect("c").port_mappings.is_empty());
    let docker = merge(
        &old,
        json!({"container": {"docker": {"image": "x", "network": "BRIDGE"}}}),
    )
    .expect("valid");
    assert_eq!(docker.networks[0].mode, NetworkMode::ContainerBridge);
}

#[test]
fn rollback_bodies_are_recognised() {
    let v = "2021-03-01T10:00:00.000Z";
    assert_eq!(
        rollback_version(&json!({"version": v})),
        Ok(Some(v.parse().expect("ts")))
    );
    assert_eq!(
        rollback_version(&json!({"id": "/x", "version": v})),
        Ok(Some(v.parse().expect("ts")))
    );
    assert_eq!(rollback_version(&json!({"instances": 2})), Ok(None));
    assert_eq!(
        rollback_version(&json!({"version": null, "instances": 2})),
        Ok(None)
    );
    assert_eq!(
        rollback_version(&json!({"version": v, "instances": 2})).map_err(|e| e.status()),
        Err(422)
    );
    assert_eq!(
        rollback_version(&json!({"version": "soon"})).map_err(|e| e.status()),
        Err(400)
    );
}

#[test]
fn versions_follow_marathon() {
    let t1 = Timestamp::from_millis(1_000);
    let t2 = Timestamp::from_millis(2_000);
    let t3 = Timestamp::from_millis(3_000);
    let created = app(sleeper()).with_version(t1, false);
    assert_eq!(created.version, Some(t1));
    assert_eq!(
        created.version_info,
        Some(VersionInfo {
            last_scaling_at: t1,
            last_config_change_at: t1
        })
    );
    let scaled = created.clone().with_version(t2, true);
    assert_eq!(
        scaled.version_info,
        Some(VersionInfo {
            last_scaling_at: t2,
            last_config_change_at: t1
        })
    );
    assert_eq!(scaled.last_config_change(), Some(t1));
    let changed = scaled.with_version(t3, false);
    assert_eq!(
        changed.version_info,
        Some(VersionInfo {
            last_scaling_at: t3,
            last_config_change_at: t3
        })
    );
    let legacy = AppDefinition {
        version: Some(t1),
        version_info: None,
        ..app(sleeper())
    };
    assert_eq!(
        legacy.with_version(t2, true).version_info,
        Some(VersionInfo {
            last_scaling_at: t2,
            last_config_change_at: t1
        })
    );
    let out = to_json(&changed);
    assert_eq!(out["version"], "1970-01-01T00:00:03.000Z");
    assert_eq!(
        out["versionInfo"]["lastConfigChangeAt"],
        "1970-01-01T00:00:03.000Z"
    );
}

// ---------------------------------------------------------------- tasks

#[test]
fn task_ids_round_trip() {
    let app_id = id("/prod/web");
    let uuid = Uuid::parse_str("c0caec0a-863a-11e9-915b-c610fee06dff").expect("uuid");
    let task = marathon_task_id(&app_id, uuid, 2);
    assert_eq!(
        task,
        "prod_web.instance-c0caec0a-863a-11e9-915b-c610fee06dff._app.2"
    );
    assert_eq!(
        instance_id(&app_id, uuid),
        "prod_web.instance-c0caec0a-863a-11e9-915b-c610fee06dff"
    );
    let parts = parse_task_id(&task).expect("parses");
    assert_eq!(parts.app_id, app_id);
    assert_eq!(parts.uuid, uuid.to_string());
    assert_eq!(parts.container.as_deref(), Some("_app"));
    assert_eq!(parts.incarnation, Some(2));
    assert_eq!(parts.instance_id(), instance_id(&app_id, uuid));
}

#[test]
fn legacy_task_ids_parse() {
    let v17 = parse_task_id("prod_web.instance-c0caec0a-863a-11e9-915b-c610fee06dff._app")
        .expect("1.4-1.7");
    assert_eq!(v17.app_id, id("/prod/web"));
    assert_eq!(v17.incarnation, None);
    assert_eq!(v17.container.as_deref(), Some("_app"));

    let legacy = parse_task_id("pywebserver.8cad6a69-6ca8-11e7-beb2-0e2beceebfcc").expect("legacy");
    assert_eq!(legacy.app_id, id("/pywebserver"));
    assert_eq!(legacy.uuid, "8cad6a69-6ca8-11e7-beb2-0e2beceebfcc");
    assert_eq!(legacy.prefix, None);
    assert_eq!(
        legacy.instance_id(),
        "pywebserver.marathon-8cad6a69-6ca8-11e7-beb2-0e2beceebfcc"
    );

    let marathon = parse_task_id("a_b.marathon-1234._app.7").expect("marathon- prefix");
    assert_eq!(
        (marathon.app_id, marathon.incarnation),
        (id("/a/b"), Some(7))
    );

    let resident = parse_task_id("db.8cad6a69-6ca8-11e7-beb2-0e2beceebfcc.3").expect("resident");
    assert_eq!(
        (resident.app_id, resident.incarnation),
        (id("/db"), Some(3))
    );

    assert!(matches!(
        parse_task_id("nodots"),
        Err(TaskIdError::Unrecognized(_))
    ));
    assert!(matches!(
        parse_task_id("Bad_App.1234"),
        Err(TaskIdError::BadAppId(_))
    ));
    assert!(parse_task_id("").is_err());
}

fn env_map(env: &[(String, String)]) -> std::collections::BTreeMap<&str, &str> {
    let map: std::collections::BTreeMap<&str, &str> =
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(map.len(), env.len(), "every key once");
    map
}

#[test]
fn task_env_for_host_networking() {
    let a = app(json!({
        "id": "/prod/web", "cmd": "serve", "cpus": 0.25, "mem": 256,
        "portDefinitions": [{"port": 10001, "name": "http"}, {"port": 0, "name": "admin-api"}],
        "labels": {"owner": "team-a", "haproxy.group": "ext", "big": "x".repeat(600)},
        "env": {"HOST": "overridden", "LOG": "debug", "SECRET": {"secret": "s"}},
        "secrets": {"s": {"source": "/s"}}
    }));
    let version = Timestamp::from_millis(1_443_194_028_343);
    let env = task_env(
        &a,
        version,
        "10.0.0.7",
        &[31000, 31001],
        "prod_web.instance-x._app.1",
    );
    let m = env_map(&env);
    assert_eq!(m["MESOS_TASK_ID"], "prod_web.instance-x._app.1");
    assert_eq!(m["MARATHON_APP_ID"], "/prod/web");
    assert_eq!(m["MARATHON_APP_VERSION"], "2015-09-25T15:13:48.343Z");
    assert!(!m.contains_key("MARATHON_APP_DOCKER_IMAGE"));
    assert_eq!(m["MARATHON_APP_RESOURCE_CPUS"], "0.25");
    assert_eq!(m["MARATHON_APP_RESOURCE_MEM"], "256.0");
    assert_eq!(m["MARATHON_APP_RESOURCE_DISK"], "0.0");
    assert_eq!(m["MARATHON_APP_RESOURCE_GPUS"], "0");
    assert_eq!(
        m["MARATHON_APP_LABELS"], "HAPROXY_GROUP OWNER",
        "too-long values are left out"
    );
    assert_eq!(m["MARATHON_APP_LABEL_OWNER"], "team-a");
    assert_eq!(m["MARATHON_APP_LABEL_HAPROXY_GROUP"], "ext");
    assert!(!m.contains_key("MARATHON_APP_LABEL_BIG"));
    assert_eq!(m["PORT0"], "31000");
    assert_eq!(m["PORT1"], "31001");
    assert_eq!(m["PORT"], "31000");
    assert_eq!(m["PORTS"], "31000,31001");
    assert_eq!(m["PORT_10001"], "31000", "the definition's port number");
    assert_eq!(
        m["PORT_31001"], "31001",
        "port 0: named after the host port"
    );
    assert_eq!(m["PORT_HTTP"], "31000");
    assert_eq!(m["PORT_ADMIN-API"], "31001", "names are upper-cased as is");
    assert_eq!(m["HOST"], "overridden", "the app's env wins");
    assert_eq!(m["LOG"], "debug");
    assert!(
        !m.contains_key("SECRET"),
        "secret references are the launcher's job"
    );
    // The layering order: context first, the app's own env last.
    assert_eq!(env[0].0, "MESOS_TASK_ID");
    assert_eq!(env.last().map(|(k, _)| k.as_str()), Some("LOG"));
}

#[test]
fn task_env_for_docker_bridge_and_container_networks() {
    let a = app(serde_json::from_str(fixture!("app-docker-bridge.json")).expect("json"));
    let env = task_env(
        &a,
        Timestamp::from_millis(0),
        "agent1",
        &[31000, 31001, 31999],
        "t",
    );
    let m = env_map(&env);
    assert_eq!(m["MARATHON_APP_DOCKER_IMAGE"], "nginx:1.25");
    assert_eq!(m["PORT0"], "31000");
    assert_eq!(m["PORT_80"], "31000", "named after the container port");
    assert_eq!(m["PORT_443"], "31001");
    assert_eq!(m["PORT_9113"], "31999");
    assert_eq!(m["PORT_HTTPS"], "31001");
    assert_eq!(m["PORTS"], "31000,31001,31999");

    let overlay = app(json!({
        "id": "/svc", "cmd": "x", "networks": [{"mode": "container", "name": "overlay"}],
        "container": {"type": "MESOS", "portMappings": [
            {"containerPort": 8080, "name": "web"},
            {"containerPort": 9000, "hostPort": 0, "name": "metrics"},
            {"containerPort": 0, "name": "dyn"}]}
    }));
    let env = task_env(&overlay, Timestamp::from_millis(0), "agent1", &[31500], "t");
    let m = env_map(&env);
    assert_eq!(m["PORT0"], "8080", "no host port: the container port");
    assert_eq!(m["PORT_WEB"], "8080");
    assert_eq!(m["PORT1"], "31500");
    assert_eq!(m["PORT_9000"], "31500");
    assert_eq!(m["PORT_METRICS"], "31500");
    assert!(
        !m.contains_key("PORT2"),
        "container port 0 without a host port exports nothing"
    );
    assert_eq!(m["PORT"], "31500");
    assert_eq!(m["PORTS"], "31500");

    let portless = app(with(sleeper(), json!({"portDefinitions": []})));
    let m_env = task_env(&portless, Timestamp::from_millis(0), "h", &[], "t");
    let m = env_map(&m_env);
    assert!(!m.contains_key("PORTS") && !m.contains_key("PORT"));
    assert_eq!(m["MARATHON_APP_LABELS"], "");
    assert_eq!(m["HOST"], "h");
}

#[test]
fn declared_ports_follow_networking() {
    let host = app(with(
        sleeper(),
        json!({"requirePorts": true, "portDefinitions": [{"port": 8080, "name": "web"}]}),
    ));
    assert_eq!(
        host.declared_ports(),
        vec![DeclaredPort {
            name: Some("web"),
            protocol: "tcp",
            port: 8080,
            host_port: Some(8080),
            service_port: 8080
        }]
    );
    let bridge = app(
        json!({"id": "/b", "cmd": "x", "requirePorts": true, "networks": [{"mode": "container/bridge"}]}),
    );
    assert!(
        !bridge.require_ports,
        "requirePorts only applies to host networking"
    );
    assert_eq!(bridge.declared_ports()[0].host_port, Some(0));
}

// ---------------------------------------------------------------- properties

pub(crate) mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::super::*;

    /// Member names the reader knows, so random objects reach deep into it.
    const KEYS: [&str; 48] = [
        "id",
        "cmd",
        "args",
        "user",
        "env",
        "instances",
        "cpus",
        "mem",
        "disk",
        "gpus",
        "executor",
        "constraints",
        "acceptedResourceRoles",
        "role",
        "container",
        "docker",
        "image",
        "network",
        "portMappings",
        "volumes",
        "networks",
        "mode",
        "name",
        "portDefinitions",
        "port",
        "ports",
        "requirePorts",
        "labels",
        "fetch",
        "uri",
        "uris",
        "healthChecks",
        "protocol",
        "portIndex",
        "command",
        "readinessChecks",
        "portName",
        "dependencies",
        "upgradeStrategy",
        "minimumHealthCapacity",
        "unreachableStrategy",
        "secrets",
        "secret",
        "ipAddress",
        "discovery",
        "version",
        "versionInfo",
        "type",
    ];

    /// How big [`json_like`]'s documents grow.
    pub(crate) struct JsonSizes {
        /// Nesting levels at most.
        pub depth: u32,
        /// Nodes wanted in all.
        pub nodes: u32,
        /// Array lengths.
        pub array: std::ops::Range<usize>,
        /// Random text that strings and keys are otherwise (regexes).
        pub text: &'static str,
        /// Random member names besides `keys`.
        pub key: &'static str,
    }

    /// Arbitrary JSON for a model's reader: objects keyed mostly by `keys`
    /// (member names it knows, so random documents reach deep into it),
    /// strings mostly from `strings` (values it reads specially). The app
    /// and the pod fuzzers both use it.
    pub(crate) fn json_like(
        keys: &'static [&'static str],
        strings: &'static [&'static str],
        sizes: JsonSizes,
    ) -> impl Strategy<Value = Value> {
        let known = u32::try_from(strings.len()).unwrap_or(u32::MAX);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![
                known => prop::sample::select(strings).prop_map(String::from),
                1 => sizes.text,
            ]
            .prop_map(Value::String),
        ];
        let (array, key) = (sizes.array, sizes.key);
        leaf.prop_recursive(sizes.depth, sizes.nodes, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), array.clone()).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![prop::sample::select(keys).prop_map(String::from), key],
                        inner
                    ),
                    0..8
                )
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn json_value() -> impl Strategy<Value = Value> {
        const STRINGS: &[&str] = &[
            "/a",
            "DOCKER",
            "container/bridge",
            "disabled",
            "2015-09-25T15:13:48.343Z",
        ];
        json_like(
            &KEYS,
            STRINGS,
            JsonSizes {
                depth: 5,
                nodes: 64,
                array: 0..6,
                text: ".{0,12}",
                key: ".{0,6}",
            },
        )
    }

    /// Plausible values per member: random combinations of these are often
    /// valid apps, which then must round-trip and merge cleanly.
    fn plausible_member() -> impl Strategy<Value = (String, Value)> {
        use serde_json::json;
        let table: Vec<(&str, Vec<Value>)> = vec![
            ("cmd", vec![json!("sleep 1"), Value::Null]),
            ("args", vec![json!(["a", "b"]), json!([])]),
            ("cpus", vec![json!(0.5), json!(2)]),
            ("mem", vec![json!(64), json!(1e3)]),
            ("instances", vec![json!(0), json!(3)]),
            (
                "networks",
                vec![
                    json!([{"mode": "host"}]),
                    json!([{"mode": "container/bridge"}]),
                    json!([{"mode": "container", "name": "n"}]),
                ],
            ),
            (
                "container",
                vec![
                    json!({"docker": {"image": "x"}}),
                    json!({"type": "MESOS"}),
                    json!({"type": "MESOS", "portMappings": []}),
                    json!({"docker": {"image": "x", "network": "BRIDGE", "portMappings": [{"containerPort": 80, "name": "a"}]}}),
                    json!({"type": "MESOS", "volumes": [{"containerPath": "d", "persistent": {"size": 1}}]}),
                ],
            ),
            (
                "portDefinitions",
                vec![
                    json!([]),
                    json!([{"port": 0, "name": "a"}]),
                    json!([{"port": 8080}]),
                ],
            ),
            ("ports", vec![json!([0]), json!([1, 2])]),
            ("requirePorts", vec![json!(true)]),
            ("uris", vec![json!(["http://x/a.tgz"])]),
            ("fetch", vec![json!([{"uri": "http://x/b"}])]),
            (
                "healthChecks",
                vec![
                    json!([{}]),
                    json!([{"protocol": "MESOS_TCP"}]),
                    json!([{"command": {"value": "true"}}]),
                ],
            ),
            ("readinessChecks", vec![json!([{"portName": "a"}])]),
            ("labels", vec![json!({"k": "v"})]),
            (
                "env",
                vec![json!({"A": "1"}), json!({"S": {"secret": "s"}})],
            ),
            ("secrets", vec![json!({"s": {"source": "/s"}})]),
            (
                "unreachableStrategy",
                vec![
                    json!("disabled"),
                    json!({"inactiveAfterSeconds": 1, "expungeAfterSeconds": 2}),
                ],
            ),
            (
                "upgradeStrategy",
                vec![json!({"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0})],
            ),
            (
                "ipAddress",
                vec![
                    json!({"networkName": "n"}),
                    json!({"networkName": "mesos-bridge"}),
                ],
            ),
            ("dependencies", vec![json!(["/a", "b"])]),
            ("constraints", vec![json!([["hostname", "UNIQUE"]])]),
            ("killSelection", vec![json!("OLDEST_FIRST")]),
        ];
        prop::sample::select(table).prop_flat_map(|(key, values)| {
            prop::sample::select(values).prop_map(move |v| (key.to_string(), v))
        })
    }

    fn plausible_app() -> impl Strategy<Value = Value> {
        prop::collection::vec(plausible_member(), 0..7).prop_map(|members| {
            let mut app = Map::new();
            app.insert("id".into(), Value::from("/g/p"));
            app.insert("cmd".into(), Value::from("run"));
            for (k, v) in members {
                app.insert(k, v);
            }
            Value::Object(app)
        })
    }

    proptest! {
        #[test]
        fn plausible_apps_round_trip_and_merge(
            body in plausible_app(),
            update in prop::collection::vec(plausible_member(), 0..4),
        ) {
            let defaults = AppDefaults::default();
            let Ok(app) = AppDefinition::from_value(&body, &PathId::root(), &defaults) else {
                return Ok(());
            };
            let json = serde_json::to_value(&app).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let again = AppDefinition::from_value(&json, &PathId::root(), &defaults);
            prop_assert_eq!(again.as_ref().ok(), Some(&app), "{}", json);
            // Merging nothing changes nothing; merging anything valid
            // round-trips too.
            prop_assert_eq!(app.merge_update(&serde_json::json!({}), &defaults).ok(), Some(app.clone()));
            let update = Value::Object(update.into_iter().collect());
            if let Ok(merged) = app.merge_update(&update, &defaults) {
                let json = serde_json::to_value(&merged).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let again = AppDefinition::from_value(&json, &PathId::root(), &defaults);
                prop_assert_eq!(again.as_ref().ok(), Some(&merged), "{}", json);
                prop_assert_eq!(is_upgrade(&app, &merged) || merged == app || is_scale_only_change(&app, &merged), true);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = AppDefinition::from_json(&bytes, &PathId::root(), &AppDefaults::default());
            let text = String::from_utf8_lossy(&bytes);
            let _ = PathId::parse(&text, &PathId::root());
            let _ = parse_task_id(&text);
            let _ = text.parse::<Timestamp>();
        }

        #[test]
        fn arbitrary_json_never_panics(mut value in json_value(), with_id in any::<bool>()) {
            if with_id && let Some(o) = value.as_object_mut() {
                o.insert("id".into(), Value::from("/p"));
            }
            let parsed = AppDefinition::from_value(&value, &PathId::root(), &AppDefaults::default());
            if let Err(e) = &parsed {
                prop_assert!(e.status() == 400 || e.status() == 422);
                prop_assert!(e.body().get("message").is_some());
            }
            let base = AppDefinition::from_value(
                &serde_json::json!({"id": "/p", "cmd": "x"}), &PathId::root(), &AppDefaults::default());
            prop_assert!(base.is_ok());
            if let Ok(base) = base
                && let Ok(merged) = base.merge_update(&value, &AppDefaults::default()) {
                    let _ = is_scale_only_change(&base, &merged);
                }
            let _ = rollback_version(&value);
            // Whatever parses, round-trips.
            if let Ok(app) = parsed {
                let json = serde_json::to_value(&app).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let again = AppDefinition::from_value(&json, &PathId::root(), &AppDefaults::default());
                prop_assert_eq!(again.as_ref().ok(), Some(&app), "{}", json);
                let _ = task_env(&app, Timestamp::from_millis(0), "h", &[1, 2, 3], "t");
            }
        }

        #[test]
        fn segment_check_matches_marathons_regex(s in "[a-z0-9.\\-_A]{0,10}") {
            let re = regex::Regex::new(
                r"^(?:(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9]))$",
            ).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(path::is_valid_segment(&s), re.is_match(&s));
        }

        #[test]
        fn timestamps_round_trip(ms in -62_135_596_800_000_i64..253_402_300_799_999) {
            let t = Timestamp::from_millis(ms);
            prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }

        #[test]
        fn task_ids_round_trip(segments in prop::collection::vec("[a-z0-9]([a-z0-9.-]{0,6}[a-z0-9])?", 1..4),
                               bytes in any::<[u8; 16]>(), n in any::<u64>()) {
            if let Ok(app) = PathId::parse(&segments.join("/"), &PathId::root())
                && !app.is_root() {
                    let uuid = uuid::Uuid::from_bytes(bytes);
                    let parts = parse_task_id(&marathon_task_id(&app, uuid, n))
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(parts.app_id, app);
                    prop_assert_eq!(parts.uuid, uuid.to_string());
                    prop_assert_eq!(parts.incarnation, Some(n));
                }
        }
    }
}

#[test]
fn a_pod_is_stored_as_its_own_definition_and_read_back() {
    use crate::state::app::pod::PodDefinition;
    let pod = PodDefinition::from_value(
        &json!({"id": "/shop/web", "scaling": {"instances": 2},
                "scheduling": {"placement": {"constraints": [
                    {"fieldName": "hostname", "operator": "UNIQUE"}]}},
                "containers": [
                    {"name": "a", "resources": {"cpus": 0.1, "mem": 32},
                     "exec": {"command": {"shell": "true"}}},
                    {"name": "b", "resources": {"cpus": 0.2, "mem": 64},
                     "exec": {"command": {"shell": "true"}}}]}),
        &PathId::root(),
        &AppDefaults::default(),
    )
    .unwrap();
    let app = AppDefinition::for_pod(pod).with_version(Timestamp::from_millis(5), false);
    // What the scheduler reads is derived from the pod.
    assert!(app.is_pod());
    assert_eq!(app.instances, 2);
    assert_eq!((app.cpus, app.mem), (0.3, 96.0));
    assert_eq!(
        app.constraints,
        vec![vec!["hostname".to_string(), "UNIQUE".into()]]
    );
    let stored = serde_json::to_value(&app).unwrap();
    assert_eq!(stored["pod"]["id"], "/shop/web");
    let back: AppDefinition = serde_json::from_value(stored).unwrap();
    assert_eq!(back.pod_definition(), app.pod_definition());
    assert_eq!(back.version_info, app.version_info);
    assert_eq!((back.instances, back.cpus, back.mem), (2, 0.3, 96.0));
    // A scale on the app side shows in the pod.
    let mut scaled = back;
    scaled.instances = 3;
    assert_eq!(scaled.pod_definition().unwrap().instances, 3);
}
