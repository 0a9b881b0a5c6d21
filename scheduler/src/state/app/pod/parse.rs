//! Reading a pod from a JSON value: type checks with play-json's codes,
//! Marathon's defaults (`raml/PodConversion.scala`) and normalization
//! (`api/v2/PodNormalization.scala`: default host ports outside container
//! networks, resident defaults for pods with persistent volumes, the
//! server's role). Every problem is collected, then reported at once.

use std::collections::BTreeMap;

use serde_json::Value;

use super::validate;
use super::{
    DiskType, Endpoint, HttpScheme, ImageKind, Lifecycle, PersistentVolumeInfo, PodBackoff,
    PodCheck, PodCommand, PodConstraint, PodContainer, PodDefinition, PodExec, PodHealthCheck,
    PodImage, PodResources, PodVolume, PullConfig, VolumeMount,
};
use crate::state::app::json::{Obj, Problems, as_string};
use crate::state::app::parse::{read_resource_limits, read_unreachable};
use crate::state::app::{
    AppDefaults, AppError, EnvValue, ExecutorResources, FetchUri, KillSelection, Labels, Network,
    NetworkMode, PathId, Secret, UnreachableStrategy, UpgradeStrategy, VersionInfo,
};

/// Reads and normalizes a pod; with `validate`, also checks Marathon's
/// rules (off for stored pods, so that rules added later do not make them
/// unreadable).
pub(super) fn read_pod(
    value: &Value,
    base: &PathId,
    defaults: &AppDefaults,
    validate: bool,
) -> Result<PodDefinition, AppError> {
    let mut problems = Problems::default();
    let p = &mut problems;
    let Some(o) = Obj::new(value, String::new(), p) else {
        return problems.finish(PodDefinition::new(PathId::root(), defaults));
    };

    let id = o
        .required_string("id", p)
        .and_then(|s| match PathId::parse_pod(&s, base) {
            Ok(id) => Some(id),
            Err(e) => {
                p.invalid("/id", e.to_string());
                None
            }
        });
    let mut pod = PodDefinition::new(id.unwrap_or_else(PathId::root), defaults);

    pod.labels = Labels::from(o.string_map("labels", p).unwrap_or_default());
    pod.version = o.timestamp("version", p);
    // Bookkeeping of the server, not of the request: only stored pods
    // carry it.
    let version_info = if validate {
        None
    } else {
        o.obj("versionInfo", p)
    };
    pod.version_info = version_info.and_then(|vi| {
        let last_scaling_at = vi.timestamp("lastScalingAt", p);
        let last_config_change_at = vi.timestamp("lastConfigChangeAt", p);
        Some(VersionInfo {
            last_scaling_at: last_scaling_at?,
            last_config_change_at: last_config_change_at?,
        })
    });
    pod.user = o.string("user", p);
    pod.environment = read_env(&o, "environment", p);
    pod.secrets = read_secrets(&o, p);
    if o.require("containers", p).is_some() {
        pod.containers = o.list("containers", p, read_container).unwrap_or_default();
    }
    pod.volumes = o.list("volumes", p, read_volume).unwrap_or_default();
    pod.networks = o.list("networks", p, read_network).unwrap_or_default();
    if let Some(scaling) = o.obj("scaling", p) {
        // `kind` is a discriminator with one value; absent means fixed.
        scaling.enumeration("kind", p, |s| (s == "fixed").then_some(()));
        if let Some(n) = scaling.u32("instances", p) {
            pod.instances = n;
        }
        pod.max_instances = scaling.u32("maxInstances", p);
    }
    let scheduling = o.obj("scheduling", p);
    let mut upgrade_given = false;
    let mut unreachable = None;
    if let Some(s) = &scheduling {
        if let Some(b) = s.obj("backoff", p) {
            let d = PodBackoff::DEFAULT;
            pod.backoff = PodBackoff {
                backoff: b.number("backoff", p).unwrap_or(d.backoff),
                backoff_factor: b.number("backoffFactor", p).unwrap_or(d.backoff_factor),
                max_launch_delay: b.number("maxLaunchDelay", p).unwrap_or(d.max_launch_delay),
            };
        }
        if let Some(u) = s.obj("upgrade", p) {
            upgrade_given = true;
            let d = UpgradeStrategy::DEFAULT;
            pod.upgrade_strategy = UpgradeStrategy {
                minimum_health_capacity: u
                    .number("minimumHealthCapacity", p)
                    .unwrap_or(d.minimum_health_capacity),
                maximum_over_capacity: u
                    .number("maximumOverCapacity", p)
                    .unwrap_or(d.maximum_over_capacity),
            };
        }
        if let Some(placement) = s.obj("placement", p) {
            let constraints = placement
                .list("constraints", p, read_constraint)
                .unwrap_or_default();
            // A set in Marathon: repeats collapse.
            for c in constraints {
                if !pod.constraints.contains(&c) {
                    pod.constraints.push(c);
                }
            }
            for role in placement
                .strings("acceptedResourceRoles", p)
                .unwrap_or_default()
            {
                if !pod.accepted_resource_roles.contains(&role) {
                    pod.accepted_resource_roles.push(role);
                }
            }
        }
        if let Some(k) = s.enumeration("killSelection", p, |s| match s {
            "YOUNGEST_FIRST" => Some(KillSelection::YoungestFirst),
            "OLDEST_FIRST" => Some(KillSelection::OldestFirst),
            _ => None,
        }) {
            pod.kill_selection = k;
        }
        unreachable = read_unreachable(s, p);
    }
    if let Some(er) = o.obj("executorResources", p) {
        let d = ExecutorResources {
            cpus: 0.1,
            mem: 32.0,
            disk: 10.0,
        };
        pod.executor_resources = ExecutorResources {
            cpus: er.number("cpus", p).unwrap_or(d.cpus),
            mem: er.number("mem", p).unwrap_or(d.mem),
            disk: er.number("disk", p).unwrap_or(d.disk),
        };
    }
    if let Some(role) = o.string("role", p) {
        if validate && !defaults.allowed_roles.is_empty() && !defaults.allowed_roles.contains(&role)
        {
            p.invalid(
                "/role",
                format!(
                    "got '{role}', expected one of the framework's roles: {} (--mesos_role)",
                    defaults.allowed_roles.join(", ")
                ),
            );
        }
        pod.role = role;
    }
    pod.linux_info = o.raw_object("linuxInfo", p).map(Box::new);
    pod.legacy_shared_cgroups = o.bool("legacySharedCgroups", p).unwrap_or(false);

    // Outside container networks every endpoint gets a host port, any
    // offered one unless given (PodNormalization.Containers).
    if !pod
        .networks
        .iter()
        .any(|n| n.mode == NetworkMode::Container)
    {
        for endpoint in pod.containers.iter_mut().flat_map(|c| &mut c.endpoints) {
            endpoint.host_port.get_or_insert(0);
        }
    }
    // Resident pods keep their instances where their volumes are: no
    // over-capacity by default, and no replacement of unreachable ones.
    let resident = pod.is_resident();
    if resident && !upgrade_given {
        pod.upgrade_strategy = UpgradeStrategy::RESIDENT;
    }
    pod.unreachable_strategy = unreachable.unwrap_or(if resident {
        UnreachableStrategy::Disabled
    } else {
        UnreachableStrategy::DEFAULT
    });

    if validate {
        validate::validate(&pod, defaults, p);
    }
    problems.finish(pod)
}

fn read_env(o: &Obj<'_>, key: &str, p: &mut Problems) -> BTreeMap<String, EnvValue> {
    let mut out = BTreeMap::new();
    for (name, path, v) in o.members(key, p).unwrap_or_default() {
        let value = match v {
            Value::String(s) => EnvValue::Value(s.clone()),
            Value::Object(_) => {
                let Some(secret) =
                    Obj::new(v, path, p).and_then(|s| s.required_string("secret", p))
                else {
                    continue;
                };
                EnvValue::Secret { secret }
            }
            _ => {
                p.wrong_type(&path, "error.expected.jsstring");
                continue;
            }
        };
        out.insert(name.clone(), value);
    }
    out
}

fn read_secrets(o: &Obj<'_>, p: &mut Problems) -> BTreeMap<String, Secret> {
    o.members("secrets", p)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, path, v)| {
            let source = Obj::new(v, path, p)?.required_string("source", p)?;
            Some((name.clone(), Secret { source }))
        })
        .collect()
}

fn read_constraint(v: &Value, path: &str, p: &mut Problems) -> Option<PodConstraint> {
    let o = Obj::new(v, path.to_string(), p)?;
    let field_name = o.required_string("fieldName", p);
    let operator = o.required_string("operator", p);
    let value = o.string("value", p);
    Some(PodConstraint {
        field_name: field_name?,
        operator: operator?,
        value,
    })
}

fn read_network(v: &Value, path: &str, p: &mut Problems) -> Option<Network> {
    let o = Obj::new(v, path.to_string(), p)?;
    Some(Network {
        mode: o
            .enumeration("mode", p, |s| match s {
                "host" => Some(NetworkMode::Host),
                "container" => Some(NetworkMode::Container),
                "container/bridge" => Some(NetworkMode::ContainerBridge),
                _ => None,
            })
            .unwrap_or(NetworkMode::Container),
        name: o.string("name", p),
        labels: Labels::from(o.string_map("labels", p).unwrap_or_default()),
    })
}

fn read_command(o: &Obj<'_>, p: &mut Problems) -> Option<PodCommand> {
    let shell = o.string("shell", p);
    let argv = o.strings("argv", p);
    match (shell, argv) {
        (Some(shell), None) => Some(PodCommand::Shell(shell)),
        (None, Some(argv)) => Some(PodCommand::Argv(argv)),
        (Some(_), Some(_)) => {
            p.invalid(o.own_path(), "specify either shell or argv, never both");
            None
        }
        (None, None) => {
            // Unless a member was there with the wrong type (recorded).
            if !o.has("shell") && !o.has("argv") {
                p.wrong_type(&o.path("shell"), "error.path.missing");
            }
            None
        }
    }
}

fn read_required_command(o: &Obj<'_>, p: &mut Problems) -> Option<PodCommand> {
    o.require("command", p)?;
    read_command(&o.obj("command", p)?, p)
}

fn read_container(v: &Value, path: &str, p: &mut Problems) -> Option<PodContainer> {
    let o = Obj::new(v, path.to_string(), p)?;
    let name = o.required_string("name", p);
    let mut c = PodContainer::new(name.clone().unwrap_or_default());
    c.exec = o.obj("exec", p).and_then(|e| {
        let command = read_required_command(&e, p);
        let override_entrypoint = e.bool("overrideEntrypoint", p);
        Some(PodExec {
            command: command?,
            override_entrypoint,
        })
    });
    // `resources` is required by the RAML but every member has a default.
    if let Some(r) = o.obj("resources", p) {
        let d = PodResources::DEFAULT;
        c.resources = PodResources {
            cpus: r.number("cpus", p).unwrap_or(d.cpus),
            mem: r.number("mem", p).unwrap_or(d.mem),
            disk: r.number("disk", p).unwrap_or(d.disk),
            gpus: r.u32("gpus", p).unwrap_or(d.gpus),
        };
    }
    c.resource_limits = read_resource_limits(&o, p);
    c.endpoints = o.list("endpoints", p, read_endpoint).unwrap_or_default();
    c.linux_info = o.raw_object("linuxInfo", p).map(Box::new);
    c.image = o.obj("image", p).and_then(|i| {
        let kind = i.require("kind", p).and_then(|_| {
            i.enumeration("kind", p, |s| match s {
                "DOCKER" => Some(ImageKind::Docker),
                "APPC" => Some(ImageKind::Appc),
                _ => None,
            })
        });
        let id = i.required_string("id", p);
        let pull_config = i
            .obj("pullConfig", p)
            .and_then(|pc| pc.required_string("secret", p))
            .map(|secret| PullConfig { secret });
        Some(Box::new(PodImage {
            kind: kind?,
            id: id?,
            pull_config,
            force_pull: i.bool("forcePull", p),
            labels: Labels::from(i.string_map("labels", p).unwrap_or_default()),
        }))
    });
    c.environment = read_env(&o, "environment", p);
    c.user = o.string("user", p);
    c.health_check = o
        .obj("healthCheck", p)
        .and_then(|h| read_health_check(&h, p))
        .map(Box::new);
    c.check = o.raw_object("check", p).map(Box::new);
    c.volume_mounts = o
        .list("volumeMounts", p, |v, path, p| {
            let m = Obj::new(v, path.to_string(), p)?;
            let name = m.required_string("name", p);
            let mount_path = m.required_string("mountPath", p);
            Some(VolumeMount {
                name: name?,
                mount_path: mount_path?,
                read_only: m.bool("readOnly", p).unwrap_or(false),
            })
        })
        .unwrap_or_default();
    c.artifacts = o
        .list("artifacts", p, |v, path, p| {
            let a = Obj::new(v, path.to_string(), p)?;
            Some(FetchUri {
                uri: a.required_string("uri", p)?,
                extract: a.bool("extract", p).unwrap_or(true),
                executable: a.bool("executable", p).unwrap_or(false),
                cache: a.bool("cache", p).unwrap_or(false),
                dest_path: a.string("destPath", p),
            })
        })
        .unwrap_or_default();
    c.labels = Labels::from(o.string_map("labels", p).unwrap_or_default());
    c.lifecycle = o.obj("lifecycle", p).map(|l| Lifecycle {
        kill_grace_period_seconds: l.number("killGracePeriodSeconds", p),
    });
    c.tty = o.bool("tty", p);
    name.map(|_| c)
}

fn read_endpoint(v: &Value, path: &str, p: &mut Problems) -> Option<Endpoint> {
    let o = Obj::new(v, path.to_string(), p)?;
    let name = o.required_string("name", p);
    Some(Endpoint {
        name: name?,
        container_port: o.port("containerPort", p),
        host_port: o.port("hostPort", p),
        protocol: o.strings("protocol", p).unwrap_or_default(),
        labels: Labels::from(o.string_map("labels", p).unwrap_or_default()),
        network_names: o.strings("networkNames", p).unwrap_or_default(),
    })
}

fn read_health_check(o: &Obj<'_>, p: &mut Problems) -> Option<PodHealthCheck> {
    let http = o.obj("http", p).and_then(|h| {
        let endpoint = h.required_string("endpoint", p);
        let path = h.string("path", p);
        let scheme = h
            .enumeration("scheme", p, |s| match s {
                "HTTP" => Some(HttpScheme::Http),
                "HTTPS" => Some(HttpScheme::Https),
                _ => None,
            })
            .unwrap_or(HttpScheme::Http);
        Some(PodCheck::Http {
            endpoint: endpoint?,
            path,
            scheme,
        })
    });
    let tcp = o.obj("tcp", p).and_then(|t| {
        Some(PodCheck::Tcp {
            endpoint: t.required_string("endpoint", p)?,
        })
    });
    let exec = o
        .obj("exec", p)
        .and_then(|e| read_required_command(&e, p))
        .map(PodCheck::Exec);
    let given = ["http", "tcp", "exec"].iter().filter(|k| o.has(k)).count();
    if given != 1 {
        // Structural: without exactly one there is no check to keep.
        p.invalid(
            o.own_path(),
            "Only one of http, tcp, or command may be specified",
        );
    }
    let check = http.or(tcp).or(exec)?;
    Some(PodHealthCheck {
        check,
        grace_period_seconds: o.u32("gracePeriodSeconds", p).unwrap_or(300),
        interval_seconds: o.u32("intervalSeconds", p).unwrap_or(60),
        max_consecutive_failures: o.u32("maxConsecutiveFailures", p).unwrap_or(3),
        timeout_seconds: o.u32("timeoutSeconds", p).unwrap_or(20),
        delay_seconds: o.u32("delaySeconds", p).unwrap_or(15),
    })
}

fn read_volume(v: &Value, path: &str, p: &mut Problems) -> Option<PodVolume> {
    let o = Obj::new(v, path.to_string(), p)?;
    let name = o.required_string("name", p);
    // A union told apart by which member is present.
    let volume = if o.has("persistent") {
        let pv = o.obj("persistent", p)?;
        let size = pv.require("size", p).and_then(|_| pv.u64("size", p));
        let profile_name = pv.string("profileName", p);
        let disk_type = pv
            .enumeration("type", p, |s| match s {
                "root" => Some(DiskType::Root),
                "path" => Some(DiskType::Path),
                "mount" => Some(DiskType::Mount),
                _ => None,
            })
            // Marathon's defaultDiskTypeForProfile.
            .unwrap_or(if profile_name.is_some() {
                DiskType::Mount
            } else {
                DiskType::Root
            });
        let constraints = pv
            .list("constraints", p, |v, path, p| match v {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| as_string(item, &format!("{path}({i})"), p))
                    .collect(),
                _ => {
                    p.wrong_type(path, "error.expected.jsarray");
                    None
                }
            })
            .unwrap_or_default();
        PodVolume::Persistent {
            name: name.clone()?,
            persistent: Box::new(PersistentVolumeInfo {
                disk_type,
                size: size?,
                max_size: pv.u64("maxSize", p),
                profile_name,
                constraints,
            }),
        }
    } else if o.has("secret") {
        PodVolume::Secret {
            name: name.clone()?,
            secret: o.string("secret", p)?,
        }
    } else if o.has("host") {
        PodVolume::Host {
            name: name.clone()?,
            host: o.string("host", p)?,
        }
    } else {
        PodVolume::Ephemeral { name: name? }
    };
    Some(volume)
}
