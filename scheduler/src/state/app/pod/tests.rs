//! Tests of the pod model: defaults, the Marathon output shape, round
//! trips, every validation rule with its path, and the derived accessors.

use serde_json::{Value, json};

use super::*;
use crate::state::app::constraint::Constraint;
use crate::state::app::{AppDefaults, AppError, PathId, Timestamp};

fn parse(v: &Value) -> Result<PodDefinition, AppError> {
    PodDefinition::from_value(v, &PathId::root(), &AppDefaults::default())
}

fn pod(v: Value) -> PodDefinition {
    match parse(&v) {
        Ok(pod) => pod,
        Err(e) => panic!("{v} should be valid: {:?}", e.body()),
    }
}

fn to_json(pod: &PodDefinition) -> Value {
    serde_json::to_value(pod).expect("serializes")
}

/// parse(write(pod)) == pod, through the API shape (which, like
/// Marathon's, has no `versionInfo`) and the stored shape.
fn assert_round_trips(pod: &PodDefinition) {
    let json = to_json(pod);
    let without_info = PodDefinition {
        version_info: None,
        ..pod.clone()
    };
    assert_eq!(parse(&json).ok(), Some(without_info), "API shape: {json}");
    let stored = serde_json::to_value(pod.stored()).expect("serializes");
    let back: PodDefinition = serde_json::from_value(stored.clone()).expect("reads back");
    assert_eq!(&back, pod, "stored shape: {stored}");
}

fn assert_invalid(v: Value, path: &str, message: &str) {
    match parse(&v) {
        Ok(_) => panic!("{v} should be invalid at {path}"),
        Err(e) => {
            assert_eq!(e.status(), 422, "{:?}", e.body());
            let found = e
                .violations()
                .iter()
                .any(|viol| viol.path == path && viol.errors.iter().any(|m| m.contains(message)));
            assert!(found, "expected {path}: {message}, got {:?}", e.body());
        }
    }
}

fn assert_wrong_type(v: Value, path: &str, code: &str) {
    match parse(&v) {
        Ok(_) => panic!("{v} should be refused at {path}"),
        Err(e) => {
            assert_eq!(e.status(), 400, "{:?}", e.body());
            let found = e
                .violations()
                .iter()
                .any(|viol| viol.path == path && viol.errors.iter().any(|m| m == code));
            assert!(found, "expected {path}: {code}, got {:?}", e.body());
        }
    }
}

/// The smallest valid pod.
fn minimal() -> Value {
    json!({"id": "/p", "containers": [{"name": "c", "exec": {"command": {"shell": "sleep 1"}}}]})
}

/// `base` with `patch`'s members replacing its own.
fn with(mut base: Value, patch: Value) -> Value {
    if let (Some(b), Value::Object(p)) = (base.as_object_mut(), patch) {
        b.extend(p);
    }
    base
}

/// `minimal()` whose one container gets `patch`'s members.
fn with_container(patch: Value) -> Value {
    let mut v = minimal();
    if let (Some(c), Value::Object(p)) = (v["containers"][0].as_object_mut(), patch) {
        c.extend(p);
    }
    v
}

/// The typical pod of Marathon's docs: two containers sharing a volume,
/// a health check, an artifact, container networking.
fn typical() -> Value {
    json!({
        "id": "/prod/web",
        "labels": {"owner": "zeus"},
        "user": "nobody",
        "environment": {"XPS1": "Test", "DB_PASSWORD": {"secret": "db"}},
        "secrets": {"db": {"source": "/db/password"}},
        "volumes": [{"name": "shared"}, {"name": "etc", "host": "/etc/app"}],
        "networks": [{"mode": "container", "name": "dcos", "labels": {"a": "b"}}],
        "scaling": {"kind": "fixed", "instances": 3, "maxInstances": 5},
        "scheduling": {
            "backoff": {"backoff": 2, "backoffFactor": 1.5, "maxLaunchDelay": 60},
            "upgrade": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25},
            "placement": {
                "constraints": [{"fieldName": "hostname", "operator": "UNIQUE"},
                                {"fieldName": "rack_id", "operator": "GROUP_BY", "value": "2"}],
                "acceptedResourceRoles": ["*"]
            },
            "killSelection": "OLDEST_FIRST",
            "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120}
        },
        "containers": [
            {
                "name": "web",
                "exec": {"command": {"shell": "nginx -g 'daemon off;'"}, "overrideEntrypoint": true},
                "resources": {"cpus": 0.5, "mem": 256, "disk": 10, "gpus": 0},
                "resourceLimits": {"cpus": "unlimited", "mem": 512},
                "endpoints": [{"name": "http", "containerPort": 80, "hostPort": 0,
                               "protocol": ["tcp"], "labels": {"VIP_0": "/web:80"}}],
                "image": {"kind": "DOCKER", "id": "nginx:1.25", "forcePull": true},
                "environment": {"MODE": "prod"},
                "user": "www",
                "healthCheck": {"http": {"endpoint": "http", "path": "/health", "scheme": "HTTP"},
                                "gracePeriodSeconds": 30, "intervalSeconds": 5,
                                "maxConsecutiveFailures": 2, "timeoutSeconds": 2, "delaySeconds": 1},
                "volumeMounts": [{"name": "shared", "mountPath": "/usr/share/nginx/html"},
                                 {"name": "etc", "mountPath": "/mnt/etc", "readOnly": true}],
                "artifacts": [{"uri": "https://example.com/site.tgz", "destPath": "site.tgz"}],
                "labels": {"tier": "front"},
                "lifecycle": {"killGracePeriodSeconds": 20.5},
                "tty": false
            },
            {
                "name": "sidecar",
                "exec": {"command": {"argv": ["/bin/fetcher", "--into", "/data"]}},
                "resources": {"cpus": 0.25, "mem": 64},
                "endpoints": [{"name": "admin", "containerPort": 9000}],
                "healthCheck": {"tcp": {"endpoint": "admin"}},
                "volumeMounts": [{"name": "shared", "mountPath": "/data"}]
            }
        ],
        "executorResources": {"cpus": 0.2, "mem": 64, "disk": 50},
        "role": "web"
    })
}

// ---------------------------------------------------------------- defaults

#[test]
fn minimal_pod_gets_marathons_defaults() {
    let p = pod(minimal());
    assert_eq!(p.id.as_str(), "/p");
    assert_eq!(p.instances, 1);
    assert_eq!(p.role, "*");
    assert_eq!(p.backoff, PodBackoff::DEFAULT);
    assert_eq!(p.upgrade_strategy, UpgradeStrategy::DEFAULT);
    assert_eq!(p.unreachable_strategy, UnreachableStrategy::DEFAULT);
    assert_eq!(p.kill_selection, KillSelection::YoungestFirst);
    assert_eq!(p.executor_resources, DEFAULT_EXECUTOR_RESOURCES);
    assert!(p.networks.is_empty() && p.is_host_networking());
    let c = &p.containers[0];
    assert_eq!(c.resources, PodResources::DEFAULT);
    assert_eq!(
        c.exec.as_ref().map(|e| &e.command),
        Some(&PodCommand::Shell("sleep 1".into()))
    );
}

#[test]
fn minimal_pod_is_written_as_marathon_returns_it() {
    let p = pod(minimal()).with_version(Timestamp::from_millis(1_443_194_028_343), false);
    assert_eq!(
        to_json(&p),
        json!({
            "id": "/p",
            "version": "2015-09-25T15:13:48.343Z",
            "containers": [{
                "name": "c",
                "exec": {"command": {"shell": "sleep 1"}},
                "resources": {"cpus": 1.0, "mem": 128.0, "disk": 0.0, "gpus": 0}
            }],
            "scaling": {"kind": "fixed", "instances": 1},
            "scheduling": {
                "backoff": {"backoff": 1.0, "backoffFactor": 1.15, "maxLaunchDelay": 300.0},
                "upgrade": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
                "killSelection": "YOUNGEST_FIRST",
                "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
            },
            "executorResources": {"cpus": 0.1, "mem": 32.0, "disk": 10.0},
            "role": "*"
        })
    );
    // The stored form adds the version bookkeeping, nothing else.
    let stored = serde_json::to_value(p.stored()).unwrap();
    assert_eq!(
        stored["versionInfo"],
        json!({"lastScalingAt": "2015-09-25T15:13:48.343Z", "lastConfigChangeAt": "2015-09-25T15:13:48.343Z"})
    );
    assert_round_trips(&p);
}

#[test]
fn typical_pod_parses_writes_and_round_trips() {
    let p = pod(typical());
    assert_eq!(p.id.as_str(), "/prod/web");
    assert_eq!(p.instances, 3);
    assert_eq!(p.max_instances, Some(5));
    assert_eq!(p.role, "web");
    assert_eq!(p.kill_selection, KillSelection::OldestFirst);
    assert_eq!(p.backoff.backoff, 2.0);
    assert_eq!(p.backoff.max_launch_delay, 60.0);
    let web = p.container("web").expect("web");
    assert_eq!(web.kill_grace_period_seconds(), Some(20.5));
    assert!(web.artifacts[0].extract, "artifacts extract by default");
    assert!(!web.volume_mounts[0].read_only);
    let hc = web.health_check.as_ref().expect("health check");
    assert_eq!(hc.endpoint(), Some("http"));
    let sidecar = p.container("sidecar").expect("sidecar");
    let tcp = sidecar.health_check.as_ref().expect("tcp check");
    assert_eq!(
        (
            tcp.grace_period_seconds,
            tcp.interval_seconds,
            tcp.timeout_seconds
        ),
        (300, 60, 20),
        "health check defaults"
    );
    // Container networking: no host port unless asked for.
    assert_eq!(sidecar.endpoints[0].host_port, None);

    let json = to_json(&p);
    assert_eq!(
        json["containers"][0]["healthCheck"]["http"]["scheme"],
        "HTTP"
    );
    assert_eq!(json["containers"][0]["volumeMounts"][0]["readOnly"], false);
    assert_eq!(json["containers"][0]["artifacts"][0]["cache"], false);
    assert_eq!(json["containers"][1]["healthCheck"]["delaySeconds"], 15);
    assert_eq!(
        json["containers"][1]["exec"]["command"]["argv"][1],
        "--into"
    );
    assert_eq!(json["environment"]["DB_PASSWORD"], json!({"secret": "db"}));
    assert_eq!(
        json["scheduling"]["placement"]["constraints"][1],
        json!({"fieldName": "rack_id", "operator": "GROUP_BY", "value": "2"})
    );
    assert_eq!(
        json["scaling"],
        json!({"kind": "fixed", "instances": 3, "maxInstances": 5})
    );
    assert_eq!(
        json["volumes"],
        json!([{"name": "shared"}, {"name": "etc", "host": "/etc/app"}])
    );
    assert_eq!(
        json["networks"],
        json!([{"mode": "container", "name": "dcos", "labels": {"a": "b"}}])
    );
    assert!(json.get("versionInfo").is_none());
    assert_round_trips(&p);
}

#[test]
fn marathons_example_pod_parses() {
    // docs/docs/rest-api/public/api/v2/examples/pod.json, trimmed of nothing.
    let example = json!({
        "id": "/foo",
        "labels": {"owner": "zeus", "note": "Away from olympus"},
        "user": "root",
        "environment": {"XPS1": "Test", "XPS2": "Rest"},
        "volumes": [{"name": "etc", "host": "/hdd/tools/docker/registry"}],
        "networks": [{"name": "my-network", "mode": "container", "labels": {}}],
        "scaling": {"kind": "fixed", "instances": 1, "maxInstances": 888},
        "scheduling": {
            "backoff": {"backoff": 1, "backoffFactor": 1.15, "maxLaunchDelay": 3600},
            "upgrade": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
            "placement": {"constraints": [], "acceptedResourceRoles": []}
        },
        "containers": [{
            "name": "container1",
            "exec": {"command": {"shell": "sleep 100"}, "overrideEntrypoint": true},
            "resources": {"cpus": 1, "mem": 128, "disk": 0, "gpus": 0},
            "endpoints": [{"name": "httpendpoint", "containerPort": 80, "hostPort": 0,
                           "protocol": ["tcp"], "labels": {}}],
            "image": {"id": "mesosphere/marathon:latest", "kind": "DOCKER", "forcePull": false},
            "environment": {},
            "user": "root",
            "healthCheck": {"gracePeriodSeconds": 30, "intervalSeconds": 2, "maxConsecutiveFailures": 3,
                            "timeoutSeconds": 1, "delaySeconds": 2,
                            "http": {"path": "/health", "scheme": "HTTP", "endpoint": "httpendpoint"}},
            "volumeMounts": [{"name": "etc", "mountPath": "/mnt/etc", "readOnly": true}],
            "artifacts": [{"uri": "https://foo.com/archive.zip", "executable": false, "extract": true,
                           "cache": true, "destPath": "newname.zip"}],
            "labels": {"owner": "zeus", "note": "Away from olympus"},
            "lifecycle": {"killGracePeriodSeconds": 60}
        }],
        "executorResources": {"cpus": 0.2, "mem": 64, "disk": 50}
    });
    let p = pod(example);
    assert_eq!(p.backoff.max_launch_delay, 3600.0);
    // Empty placement is omitted, as Marathon's omitEmpty does.
    assert!(to_json(&p)["scheduling"].get("placement").is_none());
    assert_round_trips(&p);
}

#[test]
fn host_ports_default_outside_container_networks() {
    let endpoint = json!({"endpoints": [{"name": "http"}, {"name": "fixed", "hostPort": 8080}]});
    // No networks: the host's.
    let p = pod(with_container(endpoint.clone()));
    let ports: Vec<_> = p
        .host_port_endpoints()
        .iter()
        .map(|e| e.host_port)
        .collect();
    assert_eq!(ports, [0, 8080]);
    // Bridge: host ports mapped to container ports, also defaulted.
    let mut v = with_container(json!({"endpoints": [{"name": "http", "containerPort": 80}]}));
    v["networks"] = json!([{"mode": "container/bridge"}]);
    assert_eq!(pod(v).containers[0].endpoints[0].host_port, Some(0));
    // Container network: none unless asked for.
    let mut v = with_container(json!({"endpoints": [
        {"name": "a", "containerPort": 80},
        {"name": "b", "containerPort": 81, "hostPort": 0}
    ]}));
    v["networks"] = json!([{"mode": "container", "name": "n"}]);
    let p = pod(v);
    let ports: Vec<_> = p
        .host_port_endpoints()
        .iter()
        .map(|e| (e.container, e.endpoint.name.as_str(), e.host_port))
        .collect();
    assert_eq!(ports, [("c", "b", 0)]);
}

#[test]
fn persistent_volumes_make_a_pod_resident_with_its_defaults() {
    let mut v = with_container(json!({"volumeMounts": [{"name": "data", "mountPath": "data"}]}));
    v["volumes"] = json!([{"name": "data", "persistent": {"size": 100}}]);
    v["role"] = json!("db");
    let p = pod(v.clone());
    assert!(p.has_persistent_volumes() && p.is_resident());
    assert_eq!(p.upgrade_strategy, UpgradeStrategy::RESIDENT);
    assert_eq!(p.unreachable_strategy, UnreachableStrategy::Disabled);
    assert!(
        matches!(&p.volumes[0], PodVolume::Persistent { persistent, .. } if persistent.size == 100)
    );
    let json = to_json(&p);
    assert_eq!(
        json["volumes"][0],
        json!({"name": "data", "persistent": {"type": "root", "size": 100, "constraints": []}})
    );
    assert_eq!(json["scheduling"]["unreachableStrategy"], "disabled");
    assert_round_trips(&p);
    // A storage profile means a mount disk.
    v["volumes"] = json!([{"name": "data", "persistent": {"size": 100, "profileName": "fast"}}]);
    let p = pod(v);
    assert!(
        matches!(&p.volumes[0], PodVolume::Persistent { persistent, .. }
        if persistent.disk_type == DiskType::Mount)
    );
}

#[test]
fn null_and_absent_mean_default_and_unknown_fields_are_ignored() {
    let v = with(
        minimal(),
        json!({"scaling": null, "labels": null, "fooBar": 1, "scheduling": {"backoff": {}}}),
    );
    let p = pod(v);
    assert_eq!(p.instances, 1);
    assert_eq!(p.backoff, PodBackoff::DEFAULT);
}

#[test]
fn ids_are_resolved_against_the_base() {
    let v = with(minimal(), json!({"id": "web"}));
    let p = PodDefinition::from_value(
        &v,
        &PathId::parse("/prod", &PathId::root()).unwrap(),
        &AppDefaults::default(),
    )
    .expect("valid");
    assert_eq!(p.id.as_str(), "/prod/web");
    // Pods may end in words that are app suffixes.
    assert_eq!(
        pod(with(minimal(), json!({"id": "/a/versions"})))
            .id
            .as_str(),
        "/a/versions"
    );
    assert_invalid(
        with(minimal(), json!({"id": "/"})),
        "/id",
        "at least one path element",
    );
    assert_invalid(
        with(minimal(), json!({"id": "/Bad"})),
        "/id",
        "must fully match",
    );
    let err = PodDefinition::from_value(
        &with(minimal(), json!({"id": "/other/x"})),
        &PathId::parse("/prod", &PathId::root()).unwrap(),
        &AppDefaults::default(),
    )
    .unwrap_err();
    assert_eq!(err.violations()[0].path, "/id");
}

// ---------------------------------------------------------------- errors

#[test]
fn syntax_errors_and_wrong_types_are_400() {
    let err = PodDefinition::from_json(b"{", &PathId::root(), &AppDefaults::default()).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.body()["details"].is_string());
    assert_wrong_type(json!([]), "/", "error.expected.jsobject");
    assert_wrong_type(json!({"containers": []}), "/id", "error.path.missing");
    assert_wrong_type(json!({"id": "/p"}), "/containers", "error.path.missing");
    assert_wrong_type(
        json!({"id": "/p", "containers": {}}),
        "/containers",
        "error.expected.jsarray",
    );
    assert_wrong_type(
        with_container(json!({"name": 1})),
        "/containers(0)/name",
        "error.expected.jsstring",
    );
    assert_wrong_type(
        with_container(json!({"resources": {"cpus": "1"}})),
        "/containers(0)/resources/cpus",
        "error.expected.jsnumber",
    );
    assert_wrong_type(
        with_container(json!({"resources": {"gpus": 0.5}})),
        "/containers(0)/resources/gpus",
        "error.expected.int",
    );
    assert_wrong_type(
        with_container(json!({"image": {"kind": "RKT", "id": "x"}})),
        "/containers(0)/image/kind",
        "error.unknown.enum.literal",
    );
    assert_wrong_type(
        with_container(json!({"image": {"id": "x"}})),
        "/containers(0)/image/kind",
        "error.path.missing",
    );
    assert_wrong_type(
        with_container(json!({"exec": {}})),
        "/containers(0)/exec/command",
        "error.path.missing",
    );
    assert_wrong_type(
        with_container(json!({"exec": {"command": {}}})),
        "/containers(0)/exec/command/shell",
        "error.path.missing",
    );
    assert_wrong_type(
        with_container(json!({"endpoints": [{"containerPort": 80}]})),
        "/containers(0)/endpoints(0)/name",
        "error.path.missing",
    );
    assert_wrong_type(
        with(minimal(), json!({"scaling": {"kind": "elastic"}})),
        "/scaling/kind",
        "error.unknown.enum.literal",
    );
    assert_wrong_type(
        with(
            minimal(),
            json!({"scheduling": {"unreachableStrategy": "never"}}),
        ),
        "/scheduling/unreachableStrategy",
        "error.unknown.enum.literal",
    );
    assert_wrong_type(
        with(minimal(), json!({"networks": [{"mode": "overlay"}]})),
        "/networks(0)/mode",
        "error.unknown.enum.literal",
    );
    assert_wrong_type(
        with(
            minimal(),
            json!({"volumes": [{"name": "v", "persistent": {}}]}),
        ),
        "/volumes(0)/persistent/size",
        "error.path.missing",
    );
    assert_wrong_type(
        with(
            minimal(),
            json!({"volumes": [{"name": "v", "persistent": 3}]}),
        ),
        "/volumes(0)/persistent",
        "error.expected.jsobject",
    );
    assert_wrong_type(
        with(minimal(), json!({"environment": {"A": 1}})),
        "/environment/A",
        "error.expected.jsstring",
    );
    assert_wrong_type(
        with(minimal(), json!({"version": "yesterday"})),
        "/version",
        "error.expected.date.isoformat",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let v = json!({
        "id": "/p",
        "containers": [
            {"name": "Bad_Name", "resources": {"cpus": 0, "mem": -1}},
            {"name": "ok", "resources": {"disk": -1}}
        ],
        "scaling": {"instances": 2, "maxInstances": 1}
    });
    let err = parse(&v).unwrap_err();
    let paths: Vec<&str> = err.violations().iter().map(|v| v.path.as_str()).collect();
    for path in [
        "/containers(0)/name",
        "/containers(0)/resources/cpus",
        "/containers(0)/resources/mem",
        "/containers(1)/resources/disk",
        "/scaling/instances",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    assert_eq!(err.body()["message"], "Object is not valid");
}

// ---------------------------------------------------------------- rules

#[test]
fn container_rules() {
    assert_invalid(
        json!({"id": "/p", "containers": []}),
        "/containers",
        "must not be empty",
    );
    let two = |a: &str, b: &str| json!({"id": "/p", "containers": [{"name": a}, {"name": b}]});
    assert_invalid(
        two("c", "c"),
        "/containers",
        "container names must be unique",
    );
    for bad in ["C", "-c", "c-", "c_d", "", &"c".repeat(64)] {
        assert_invalid(
            two(bad, "d"),
            "/containers(0)/name",
            "must fully match regular expression",
        );
    }
    for good in ["c", "c-1", "0", &"c".repeat(63)] {
        pod(two(good, "other"));
    }
    assert_invalid(
        with_container(json!({"exec": {"command": {"shell": ""}}})),
        "/containers(0)/exec/command/shell",
        "must not be empty",
    );
    assert_invalid(
        with_container(json!({"exec": {"command": {"argv": []}}})),
        "/containers(0)/exec/command/argv",
        "must not be empty",
    );
    assert_invalid(
        with_container(json!({"exec": {"command": {"shell": "a", "argv": ["a"]}}})),
        "/containers(0)/exec/command",
        "either shell or argv",
    );
    assert_invalid(
        with_container(json!({"exec": {"command": {"shell": "a"}, "overrideEntrypoint": false}})),
        "/containers(0)/exec/overrideEntrypoint",
        "must not be false",
    );
    assert_invalid(
        with_container(json!({"user": ""})),
        "/containers(0)/user",
        "must not be empty",
    );
    assert_invalid(
        with_container(json!({"lifecycle": {"killGracePeriodSeconds": -1}})),
        "/containers(0)/lifecycle/killGracePeriodSeconds",
        "expected 0.0 or more",
    );
    assert_invalid(
        with_container(json!({"artifacts": [{"uri": ""}]})),
        "/containers(0)/artifacts(0)/uri",
        "expected between 1 and 1024",
    );
    assert_invalid(
        with_container(json!({"artifacts": [{"uri": "http://x", "destPath": ""}]})),
        "/containers(0)/artifacts(0)/destPath",
        "expected between 1 and 1024",
    );
    assert_invalid(
        with_container(json!({"image": {"kind": "DOCKER", "id": ""}})),
        "/containers(0)/image/id",
        "must not be empty",
    );
    assert_invalid(
        with_container(
            json!({"image": {"kind": "DOCKER", "id": "x", "pullConfig": {"secret": "nope"}}}),
        ),
        "/containers(0)/image/pullConfig",
        "pullConfig.secret must refer to an existing secret",
    );
    let mut v = with_container(
        json!({"image": {"kind": "DOCKER", "id": "x", "pullConfig": {"secret": "s"}}}),
    );
    v["secrets"] = json!({"s": {"source": "/registry"}});
    assert_round_trips(&pod(v));
}

#[test]
fn resource_rules() {
    assert_invalid(
        with_container(json!({"resources": {"cpus": 0}})),
        "/containers(0)/resources/cpus",
        "got 0.0, expected 0.001 or more",
    );
    assert_invalid(
        with_container(json!({"resources": {"mem": 0}})),
        "/containers(0)/resources/mem",
        "expected 0.001 or more",
    );
    assert_invalid(
        with_container(json!({"resources": {"disk": -1}})),
        "/containers(0)/resources/disk",
        "expected 0.0 or more",
    );
    assert_invalid(
        with_container(json!({"resources": {"gpus": -1}})),
        "/containers(0)/resources/gpus",
        "expected 0 or more",
    );
    assert_invalid(
        with_container(json!({"resources": {"cpus": 1}, "resourceLimits": {"cpus": 0.5}})),
        "/containers(0)/resourceLimits/cpus",
        "resource limit must be greater than or equal to requested resource",
    );
    assert_invalid(
        with_container(json!({"resourceLimits": {"mem": "lots"}})),
        "/containers(0)/resourceLimits/mem",
        "invalid resource limit",
    );
    assert_invalid(
        with(
            with_container(json!({"resourceLimits": {"mem": "unlimited"}})),
            json!({"legacySharedCgroups": true}),
        ),
        "/containers(0)/resourceLimits",
        "cannot be defined if legacySharedCgroups is enabled",
    );
    for (key, value, min) in [
        ("cpus", 0.05, "0.1"),
        ("mem", 16.0, "32.0"),
        ("disk", 1.0, "10.0"),
    ] {
        assert_invalid(
            with(minimal(), json!({"executorResources": {key: value}})),
            &format!("/executorResources/{key}"),
            &format!("expected {min} or more"),
        );
    }
}

#[test]
fn environment_and_secret_rules() {
    assert_invalid(
        with(minimal(), json!({"environment": {"1BAD": "x"}})),
        "/environment/1BAD",
        "must contain only alphanumeric chars or underscore",
    );
    assert_invalid(
        with_container(json!({"environment": {"A-B": "x"}})),
        "/containers(0)/environment/A-B",
        "must contain only alphanumeric chars",
    );
    assert_invalid(
        with(minimal(), json!({"environment": {"S": {"secret": "nope"}}})),
        "/environment/S/secret",
        "references an undefined secret",
    );
    assert_invalid(
        with_container(json!({"environment": {"S": {"secret": "nope"}}})),
        "/containers(0)/environment/S/secret",
        "references an undefined secret",
    );
    assert_invalid(
        with(minimal(), json!({"secrets": {"s": {"source": ""}}})),
        "/secrets/s/source",
        "must not be empty",
    );
    assert_invalid(
        with(minimal(), json!({"user": ""})),
        "/user",
        "must not be empty",
    );
}

#[test]
fn volume_rules() {
    let mount =
        |name: &str| with_container(json!({"volumeMounts": [{"name": name, "mountPath": "/m"}]}));
    assert_invalid(
        mount("v"),
        "/containers(0)/volumeMounts(0)/name",
        "Referenced Volume in VolumeMount should exist",
    );
    assert_invalid(
        with(
            mount("v"),
            json!({"volumes": [{"name": "v"}, {"name": "v"}]}),
        ),
        "/volumes",
        "volume names must be unique",
    );
    assert_invalid(
        with(
            mount("v"),
            json!({"volumes": [{"name": "v"}, {"name": "w"}]}),
        ),
        "/volumes(1)",
        "volume must be referenced by at least one container",
    );
    assert_invalid(
        with(mount("V"), json!({"volumes": [{"name": "V"}]})),
        "/volumes(0)/name",
        "must fully match regular expression",
    );
    assert_invalid(
        with(mount("v"), json!({"volumes": [{"name": "v", "host": ""}]})),
        "/volumes(0)/host",
        "must not be empty",
    );
    assert_invalid(
        with(
            mount("v"),
            json!({"volumes": [{"name": "v", "secret": "nope"}]}),
        ),
        "/volumes(0)/secret",
        "volume.secret must refer to an existing secret",
    );
    assert_invalid(
        with(
            with_container(json!({"volumeMounts": [{"name": "v", "mountPath": ""}]})),
            json!({"volumes": [{"name": "v"}]}),
        ),
        "/containers(0)/volumeMounts(0)/mountPath",
        "expected between 1 and 1024",
    );
    assert_invalid(
        with(
            mount("v"),
            json!({"role": "r", "volumes": [{"name": "v", "persistent": {"size": 10, "maxSize": 5}}]}),
        ),
        "/volumes(0)/persistent/maxSize",
        "expected 10 or more",
    );
    let p = pod(with(
        mount("v"),
        json!({"secrets": {"s": {"source": "/s"}}, "volumes": [{"name": "v", "secret": "s"}]}),
    ));
    assert_eq!(
        p.volumes[0],
        PodVolume::Secret {
            name: "v".into(),
            secret: "s".into()
        }
    );
    assert_round_trips(&p);
}

#[test]
fn endpoint_and_network_rules() {
    let endpoints = |eps: Value, networks: Value| {
        with(
            with_container(json!({"endpoints": eps})),
            json!({"networks": networks}),
        )
    };
    assert_invalid(
        endpoints(
            json!([{"name": "http", "containerPort": 80}]),
            json!([{"mode": "host"}]),
        ),
        "/containers(0)/endpoints(0)/containerPort",
        "is not allowed when using host-mode networking",
    );
    // Without networks Marathon lets a container port through.
    pod(endpoints(
        json!([{"name": "http", "containerPort": 80}]),
        json!([]),
    ));
    assert_invalid(
        endpoints(
            json!([{"name": "http"}]),
            json!([{"mode": "container", "name": "n"}]),
        ),
        "/containers(0)/endpoints(0)/containerPort",
        "is required when using container-mode networking",
    );
    assert_invalid(
        endpoints(json!([{"name": "Http"}]), json!([])),
        "/containers(0)/endpoints(0)/name",
        "must fully match regular expression",
    );
    assert_invalid(
        endpoints(
            json!([{"name": "a", "protocol": ["tcp", "tcp"]}]),
            json!([]),
        ),
        "/containers(0)/endpoints(0)/protocol",
        "Duplicate protocols within the same endpoint are not allowed",
    );
    assert_invalid(
        endpoints(
            json!([{"name": "a", "containerPort": 1, "networkNames": ["m"]}]),
            json!([{"mode": "container", "name": "n"}]),
        ),
        "/containers(0)/endpoints(0)/networkNames(0)",
        "expected one of",
    );
    assert_invalid(
        endpoints(
            json!([{"name": "a", "containerPort": 1, "hostPort": 0}]),
            json!([{"mode": "container", "name": "n"}, {"mode": "container", "name": "m"}]),
        ),
        "/containers(0)/endpoints(0)",
        "networkNames must be a single item list",
    );
    pod(endpoints(
        json!([{"name": "a", "containerPort": 1, "hostPort": 0, "networkNames": ["m"]}]),
        json!([{"mode": "container", "name": "n"}, {"mode": "container", "name": "m"}]),
    ));
    assert_invalid(
        endpoints(json!([{"name": "a", "hostPort": 70000}]), json!([])),
        "/containers(0)/endpoints(0)/hostPort",
        "expected 65535 or less",
    );

    // Across the pod.
    let two = |a: Value, b: Value| json!({"id": "/p", "containers": [{"name": "a", "endpoints": [a]}, {"name": "b", "endpoints": [b]}]});
    assert_invalid(
        two(json!({"name": "x"}), json!({"name": "x"})),
        "/",
        "endpoint names nust be unique",
    );
    assert_invalid(
        two(
            json!({"name": "x", "hostPort": 80}),
            json!({"name": "y", "hostPort": 80}),
        ),
        "/",
        "host ports must be unique across all containers",
    );
    pod(two(
        json!({"name": "x", "hostPort": 0}),
        json!({"name": "y", "hostPort": 0}),
    ));
    let mut v = two(
        json!({"name": "x", "containerPort": 80}),
        json!({"name": "y", "containerPort": 80}),
    );
    v["networks"] = json!([{"mode": "container", "name": "n"}]);
    assert_invalid(
        v,
        "/",
        "container ports must be unique across all containers",
    );

    // The networks themselves.
    let nets = |n: Value| with(minimal(), json!({"networks": n}));
    assert_invalid(
        nets(json!([{"mode": "host", "name": "x"}])),
        "/networks",
        "Host networks may not have names or labels",
    );
    assert_invalid(
        nets(json!([{"mode": "container/bridge", "name": "x"}])),
        "/networks",
        "Bridge networks may not have names",
    );
    assert_invalid(
        nets(json!([{"mode": "container", "name": "x"}, {"mode": "container", "name": "x"}])),
        "/networks",
        "Duplicate networks are not allowed",
    );
    assert_invalid(
        nets(json!([{"mode": "host"}, {"mode": "container", "name": "x"}])),
        "/networks",
        "May specify a single host network",
    );
    assert_invalid(
        nets(json!([{"mode": "container"}])),
        "/networks",
        "Network name must be specified",
    );
    assert_invalid(
        nets(json!([{"name": "Bad"}])),
        "/networks(0)/name",
        "must fully match regular expression",
    );
    assert_eq!(
        pod(nets(json!([{"name": "dcos_1"}]))).networks[0].mode,
        NetworkMode::Container
    );
}

#[test]
fn health_check_rules() {
    let hc = |check: Value| {
        with_container(json!({"endpoints": [{"name": "http"}], "healthCheck": check}))
    };
    assert_invalid(
        hc(json!({"http": {"endpoint": "nope"}})),
        "/containers(0)/healthCheck/http/endpoint",
        "contained in the container endpoints",
    );
    assert_invalid(
        hc(json!({"tcp": {"endpoint": "nope"}})),
        "/containers(0)/healthCheck/tcp/endpoint",
        "contained in the container endpoints",
    );
    assert_invalid(
        hc(json!({"http": {"endpoint": "http"}, "tcp": {"endpoint": "http"}})),
        "/containers(0)/healthCheck",
        "Only one of http, tcp, or command may be specified",
    );
    assert_invalid(
        hc(json!({})),
        "/containers(0)/healthCheck",
        "Only one of http, tcp, or command",
    );
    assert_invalid(
        hc(json!({"tcp": {"endpoint": "http"}, "timeoutSeconds": 60})),
        "/containers(0)/healthCheck/timeoutSeconds",
        "got 60, expected less than 60",
    );
    assert_invalid(
        hc(json!({"tcp": {"endpoint": "http"}, "gracePeriodSeconds": -1})),
        "/containers(0)/healthCheck/gracePeriodSeconds",
        "expected 0 or more",
    );
    assert_invalid(
        hc(json!({"http": {"endpoint": "http", "path": ""}})),
        "/containers(0)/healthCheck/http/path",
        "expected between 1 and 1024",
    );
    assert_invalid(
        hc(json!({"exec": {"command": {"shell": ""}}})),
        "/containers(0)/healthCheck/exec/command/shell",
        "must not be empty",
    );
    // Another container's endpoint does not count.
    let v = json!({"id": "/p", "containers": [
        {"name": "a", "endpoints": [{"name": "http"}]},
        {"name": "b", "healthCheck": {"tcp": {"endpoint": "http"}}}
    ]});
    assert_invalid(
        v,
        "/containers(1)/healthCheck/tcp/endpoint",
        "contained in the container endpoints",
    );
    let p = pod(hc(json!({"exec": {"command": {"argv": ["true"]}}})));
    assert_round_trips(&p);
    let p = pod(hc(json!({"http": {"endpoint": "http", "scheme": "HTTPS"}})));
    assert_eq!(
        to_json(&p)["containers"][0]["healthCheck"]["http"],
        json!({"endpoint": "http", "scheme": "HTTPS"})
    );
}

#[test]
fn scheduling_rules() {
    let sched = |s: Value| with(minimal(), json!({"scheduling": s}));
    assert_invalid(
        with(
            minimal(),
            json!({"scaling": {"kind": "fixed", "instances": 3, "maxInstances": 2}}),
        ),
        "/scaling/instances",
        "got 3, expected 2 or less",
    );
    assert_invalid(
        with(minimal(), json!({"scaling": {"instances": -1}})),
        "/scaling/instances",
        "expected 0 or more",
    );
    assert_invalid(
        with(minimal(), json!({"scaling": {"instances": 20000}})),
        "/scaling/instances",
        "--max_instances_per_app",
    );
    for key in ["backoff", "backoffFactor", "maxLaunchDelay"] {
        assert_invalid(
            sched(json!({"backoff": {key: -1}})),
            &format!("/scheduling/backoff/{key}"),
            "expected 0.0 or more",
        );
    }
    assert_invalid(
        sched(json!({"backoff": {"maxLaunchDelay": 1e300}})),
        "/scheduling/backoff/maxLaunchDelay",
        "or less",
    );
    // A factor below 1 is allowed for pods.
    assert_eq!(
        pod(sched(json!({"backoff": {"backoffFactor": 0.5}})))
            .backoff
            .backoff_factor,
        0.5
    );
    assert_invalid(
        sched(json!({"upgrade": {"minimumHealthCapacity": 1.5}})),
        "/scheduling/upgrade/minimumHealthCapacity",
        "expected 1.0 or less",
    );
    assert_invalid(
        sched(json!({"upgrade": {"maximumOverCapacity": -0.5}})),
        "/scheduling/upgrade/maximumOverCapacity",
        "expected 0.0 or more",
    );
    assert_invalid(
        sched(
            json!({"unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 5}}),
        ),
        "/scheduling/unreachableStrategy/inactiveAfterSeconds",
        "must be less or equal to expungeAfterSeconds",
    );
    assert_invalid(
        sched(json!({"placement": {"acceptedResourceRoles": ["other"]}})),
        "/scheduling/placement/acceptedResourceRoles",
        "acceptedResourceRoles can only contain *",
    );
    assert_invalid(
        with(
            minimal(),
            json!({"role": "web", "scheduling": {"placement": {"acceptedResourceRoles": ["x"]}}}),
        ),
        "/scheduling/placement/acceptedResourceRoles",
        "acceptedResourceRoles can only contain * and web",
    );
    assert_invalid(
        sched(json!({"placement": {"acceptedResourceRoles": ["a b"]}})),
        "/scheduling/placement/acceptedResourceRoles",
        "must not include a space",
    );
    assert_invalid(
        with(minimal(), json!({"role": ""})),
        "/role",
        "must not be empty",
    );
    let limited = AppDefaults {
        allowed_roles: vec!["a".into()],
        ..AppDefaults::default()
    };
    let err = PodDefinition::from_value(
        &with(minimal(), json!({"role": "b"})),
        &PathId::root(),
        &limited,
    )
    .unwrap_err();
    assert_eq!(err.violations()[0].path, "/role");
}

#[test]
fn constraint_rules_follow_marathon_and_the_offer_matcher() {
    let constraint = |c: Value| {
        with(
            minimal(),
            json!({"scheduling": {"placement": {"constraints": [c]}}}),
        )
    };
    let path = "/scheduling/placement/constraints(0)";
    let cases = [
        (
            json!({"fieldName": "", "operator": "UNIQUE"}),
            "missing field for constraint declaration",
        ),
        (
            json!({"fieldName": "h", "operator": "UNIQUE", "value": "x"}),
            "UNIQUE does not accept a value",
        ),
        (
            json!({"fieldName": "h", "operator": "GROUP_BY", "value": "x"}),
            "GROUP BY must define an integer value",
        ),
        (
            json!({"fieldName": "h", "operator": "MAX_PER"}),
            "MAX_PER requires an integer value",
        ),
        (
            json!({"fieldName": "h", "operator": "LIKE"}),
            "LIKE and UNLIKE require a non-empty, regular expression value",
        ),
        (
            json!({"fieldName": "h", "operator": "UNLIKE", "value": "("}),
            "is not a valid regular expression",
        ),
        (
            json!({"fieldName": "h", "operator": "IS", "value": "{a,b}"}),
            "IS only supports Mesos text and float values",
        ),
        // Marathon lets IS go without a value; the offer matcher cannot.
        (
            json!({"fieldName": "h", "operator": "IS"}),
            "IS requires a value",
        ),
    ];
    for (c, message) in cases {
        assert_invalid(constraint(c), path, message);
    }
    assert_invalid(
        constraint(json!({"fieldName": "h", "operator": "NEAR"})),
        &format!("{path}/operator"),
        "operator must be one of the following",
    );
    assert_wrong_type(
        constraint(json!({"operator": "UNIQUE"})),
        &format!("{path}/fieldName"),
        "error.path.missing",
    );
    // Repeats collapse, as in Marathon's set.
    let c = json!({"fieldName": "hostname", "operator": "MAX_PER", "value": "2"});
    let p = pod(with(
        minimal(),
        json!({"scheduling": {"placement": {"constraints": [c.clone(), c]}}}),
    ));
    assert_eq!(p.constraints.len(), 1);
    assert_eq!(
        p.constraint_parts(),
        [vec!["hostname".to_string(), "MAX_PER".into(), "2".into()]]
    );
    let parsed = Constraint::parse(&p.constraint_parts()[0]).expect("parses");
    assert_eq!(parsed.to_string(), "hostname:MAX_PER:2");
}

#[test]
fn resident_rules() {
    let resident = |extra: Value| {
        with(
            with(
                with_container(json!({"volumeMounts": [{"name": "data", "mountPath": "data"}]})),
                json!({"role": "db", "volumes": [{"name": "data", "persistent": {"size": 10}}]}),
            ),
            extra,
        )
    };
    pod(resident(json!({})));
    assert_invalid(
        resident(json!({"scheduling": {"upgrade": {"maximumOverCapacity": 0.5}}})),
        "/scheduling/upgrade/maximumOverCapacity",
        "got 0.5, expected 0.0",
    );
    assert_invalid(
        resident(
            json!({"scheduling": {"unreachableStrategy": {"inactiveAfterSeconds": 1, "expungeAfterSeconds": 2}}}),
        ),
        "/",
        "unreachableStrategy must be disabled for pods with persistent volumes",
    );
    assert_invalid(
        resident(json!({"scheduling": {"placement": {"acceptedResourceRoles": ["db"]}}})),
        "/scheduling/placement/acceptedResourceRoles",
        "A resident pod must have `acceptedResourceRoles = [\"*\"]`.",
    );
    assert_invalid(
        resident(json!({"role": "*"})),
        "/role",
        "Resident pods cannot have the role *",
    );
}

// ---------------------------------------------------------------- accessors

#[test]
fn container_resources_sum_exactly_without_the_executor() {
    let v = json!({"id": "/p", "containers": [
        {"name": "a", "resources": {"cpus": 0.1, "mem": 32.5, "disk": 1, "gpus": 1}},
        {"name": "b", "resources": {"cpus": 0.2, "mem": 64, "gpus": 2}}
    ]});
    let r = pod(v).container_resources();
    assert_eq!(
        r,
        PodResources {
            cpus: 0.3,
            mem: 96.5,
            disk: 1.0,
            gpus: 3
        }
    );
    assert!(!pod(typical()).has_persistent_volumes());
}

#[test]
fn upgrades_scaling_and_versions() {
    let p = pod(typical()).with_version(Timestamp::from_millis(1000), false);
    let mut scaled = p.clone();
    scaled.instances = 5;
    assert!(!p.is_upgrade(&scaled));
    let scaled = scaled.with_version(Timestamp::from_millis(2000), true);
    assert_eq!(scaled.config_version(), Timestamp::from_millis(1000));
    assert_eq!(scaled.version, Some(Timestamp::from_millis(2000)));
    let mut changed = scaled.clone();
    changed.containers[0].resources.mem = 512.0;
    assert!(scaled.is_upgrade(&changed));
    let changed = changed.with_version(Timestamp::from_millis(3000), false);
    assert_eq!(changed.config_version(), Timestamp::from_millis(3000));
    assert_round_trips(&changed);
    // Requests carry no version bookkeeping.
    let with_info = with(
        minimal(),
        json!({"versionInfo": {"lastScalingAt": "2015-09-25T15:13:48.343Z",
        "lastConfigChangeAt": "2015-09-25T15:13:48.343Z"}}),
    );
    assert_eq!(pod(with_info).version_info, None);
}

#[test]
fn pods_stay_small() {
    // Kept per pod in every snapshot; rarely used parts are boxed.
    assert!(
        std::mem::size_of::<PodContainer>() <= 320,
        "{}",
        std::mem::size_of::<PodContainer>()
    );
    assert!(
        std::mem::size_of::<PodDefinition>() <= 400,
        "{}",
        std::mem::size_of::<PodDefinition>()
    );
}

// ---------------------------------------------------------------- properties

mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::super::*;
    use crate::state::app::tests::properties::{JsonSizes, json_like};
    use crate::state::app::{AppDefaults, PathId};

    const KEYS: [&str; 40] = [
        "id",
        "containers",
        "name",
        "exec",
        "command",
        "shell",
        "argv",
        "resources",
        "cpus",
        "mem",
        "endpoints",
        "containerPort",
        "hostPort",
        "protocol",
        "image",
        "kind",
        "healthCheck",
        "http",
        "tcp",
        "endpoint",
        "volumeMounts",
        "mountPath",
        "volumes",
        "persistent",
        "size",
        "host",
        "secret",
        "networks",
        "mode",
        "scaling",
        "instances",
        "scheduling",
        "placement",
        "constraints",
        "fieldName",
        "operator",
        "upgrade",
        "environment",
        "secrets",
        "unreachableStrategy",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        const STRINGS: &[&str] = &["c", "DOCKER", "container", "disabled", "UNIQUE"];
        json_like(
            &KEYS,
            STRINGS,
            JsonSizes {
                depth: 6,
                nodes: 96,
                array: 0..4,
                text: ".{0,8}",
                key: ".{0,5}",
            },
        )
    }

    /// Plausible container members: random combinations are often valid.
    fn container_member() -> impl Strategy<Value = (String, Value)> {
        let table: Vec<(&str, Vec<Value>)> = vec![
            (
                "exec",
                vec![
                    json!({"command": {"shell": "x"}}),
                    json!({"command": {"argv": ["a"]}, "overrideEntrypoint": false}),
                ],
            ),
            (
                "resources",
                vec![
                    json!({"cpus": 0.25, "mem": 32}),
                    json!({"disk": 5, "gpus": 1}),
                ],
            ),
            (
                "endpoints",
                vec![
                    json!([{"name": "e", "hostPort": 0}]),
                    json!([{"name": "f", "containerPort": 80, "protocol": ["udp", "tcp"]}]),
                ],
            ),
            (
                "image",
                vec![
                    json!({"kind": "DOCKER", "id": "x", "forcePull": true}),
                    json!({"kind": "APPC", "id": "y", "labels": {"a": "b"}}),
                ],
            ),
            (
                "healthCheck",
                vec![
                    json!({"tcp": {"endpoint": "e"}}),
                    json!({"http": {"endpoint": "f", "path": "/"}, "intervalSeconds": 5, "timeoutSeconds": 1}),
                ],
            ),
            (
                "volumeMounts",
                vec![
                    json!([{"name": "v", "mountPath": "/v"}]),
                    json!([{"name": "pv", "mountPath": "d", "readOnly": true}]),
                ],
            ),
            (
                "artifacts",
                vec![json!([{"uri": "http://x/y.tgz", "extract": false}])],
            ),
            (
                "environment",
                vec![json!({"A": "1"}), json!({"S": {"secret": "s"}})],
            ),
            (
                "lifecycle",
                vec![json!({}), json!({"killGracePeriodSeconds": 3})],
            ),
            (
                "resourceLimits",
                vec![json!({"cpus": "unlimited"}), json!({"mem": 4096})],
            ),
            ("labels", vec![json!({"k": "v"})]),
            ("tty", vec![json!(true)]),
            ("user", vec![json!("u")]),
            ("linuxInfo", vec![json!({"seccomp": {"unconfined": true}})]),
        ];
        prop::sample::select(table)
            .prop_flat_map(|(k, vs)| prop::sample::select(vs).prop_map(move |v| (k.to_string(), v)))
    }

    fn pod_member() -> impl Strategy<Value = (String, Value)> {
        let table: Vec<(&str, Vec<Value>)> = vec![
            (
                "volumes",
                vec![
                    json!([{"name": "v"}]),
                    json!([{"name": "v", "host": "/h"}]),
                    json!([{"name": "pv", "persistent": {"size": 5, "type": "mount", "maxSize": 10}}]),
                ],
            ),
            (
                "networks",
                vec![
                    json!([{"mode": "host"}]),
                    json!([{"mode": "container/bridge"}]),
                    json!([{"name": "n"}]),
                ],
            ),
            (
                "scaling",
                vec![
                    json!({"kind": "fixed", "instances": 0}),
                    json!({"instances": 4, "maxInstances": 9}),
                ],
            ),
            (
                "scheduling",
                vec![
                    json!({"backoff": {"backoff": 0.5}, "killSelection": "OLDEST_FIRST"}),
                    json!({"upgrade": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}, "unreachableStrategy": "disabled"}),
                    json!({"placement": {"constraints": [{"fieldName": "hostname", "operator": "CLUSTER", "value": "a"}], "acceptedResourceRoles": ["*"]}}),
                ],
            ),
            ("secrets", vec![json!({"s": {"source": "/s"}})]),
            ("environment", vec![json!({"B": "2"})]),
            ("labels", vec![json!({"team": "x"})]),
            ("role", vec![json!("r")]),
            ("executorResources", vec![json!({"cpus": 0.5})]),
            ("user", vec![json!("nobody")]),
            ("legacySharedCgroups", vec![json!(true), json!(false)]),
            ("version", vec![json!("2015-09-25T15:13:48.343Z")]),
        ];
        prop::sample::select(table)
            .prop_flat_map(|(k, vs)| prop::sample::select(vs).prop_map(move |v| (k.to_string(), v)))
    }

    fn plausible_pod() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(prop::collection::vec(container_member(), 0..6), 1..3),
            prop::collection::vec(pod_member(), 0..6),
        )
            .prop_map(|(containers, members)| {
                let containers: Vec<Value> = containers
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let mut c: Map<String, Value> = m.into_iter().collect();
                        c.insert("name".into(), Value::from(format!("c{i}")));
                        Value::Object(c)
                    })
                    .collect();
                let mut pod: Map<String, Value> = members.into_iter().collect();
                pod.insert("id".into(), Value::from("/g/p"));
                pod.insert("containers".into(), Value::from(containers));
                Value::Object(pod)
            })
    }

    fn round_trips(pod: &PodDefinition) -> Result<(), TestCaseError> {
        let json = serde_json::to_value(pod).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again = PodDefinition::from_value(&json, &PathId::root(), &AppDefaults::default());
        let without_info = PodDefinition {
            version_info: None,
            ..pod.clone()
        };
        prop_assert_eq!(again.ok(), Some(without_info), "{}", json);
        let stored =
            serde_json::to_value(pod.stored()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Result<PodDefinition, _> = serde_json::from_value(stored);
        let back = back.ok();
        prop_assert_eq!(back.as_ref(), Some(pod));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn plausible_pods_round_trip(body in plausible_pod()) {
            if let Ok(pod) = PodDefinition::from_value(&body, &PathId::root(), &AppDefaults::default()) {
                round_trips(&pod)?;
                let r = pod.container_resources();
                prop_assert!(r.cpus >= 0.0);
                let _ = pod.host_port_endpoints();
            }
        }

        #[test]
        fn arbitrary_json_never_panics(mut value in json_value(), with_id in any::<bool>()) {
            if with_id && let Some(o) = value.as_object_mut() {
                o.insert("id".into(), Value::from("/p"));
            }
            match PodDefinition::from_value(&value, &PathId::root(), &AppDefaults::default()) {
                Ok(pod) => round_trips(&pod)?,
                Err(e) => {
                    prop_assert!(e.status() == 400 || e.status() == 422);
                    prop_assert!(!e.violations().is_empty());
                }
            }
            // The stored reader neither panics.
            let _: Result<PodDefinition, _> = serde_json::from_value(value);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = PodDefinition::from_json(&bytes, &PathId::root(), &AppDefaults::default());
        }

        #[test]
        fn name_check_matches_marathons_regex(s in "[a-z0-9_A-]{0,66}") {
            let re = regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(super::super::validate::is_valid_name(&s), re.is_match(&s) && s.len() <= 63);
        }
    }
}
