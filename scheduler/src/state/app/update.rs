//! Changing an app: PUT/PATCH merges, rollback bodies, scale-only versus
//! upgrade, and version bookkeeping (`AppDefinition.isUpgrade`,
//! `state/VersionInfo.scala`).

use serde_json::{Map, Value};

use super::json::Problems;
use super::parse::{self, Options};
use super::{AppDefaults, AppDefinition, AppError, PathId, Timestamp, VersionInfo};

const VERSION_ONLY_WITH_ID: &str = "The 'version' field may only be combined with the 'id' field.";

/// Members an update body may not change: the server keeps them.
const SERVER_SET: [&str; 2] = ["version", "versionInfo"];

/// Whether a `PUT /v2/apps/{id}` body is a rollback: `{"version": v}`,
/// optionally with `id`. Returns the version to roll back to, `None` for an
/// ordinary update, or a 422 when `version` comes with other fields (400
/// when it is not a timestamp).
pub fn rollback_version(body: &Value) -> Result<Option<Timestamp>, AppError> {
    let Some(map) = body.as_object() else {
        return Ok(None);
    };
    let Some(version) = map.get("version").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if map
        .iter()
        .any(|(k, v)| k != "version" && k != "id" && !v.is_null())
    {
        return Err(AppError::invalid("/", VERSION_ONLY_WITH_ID));
    }
    let wrong = || AppError::WrongType {
        details: vec![super::Violation {
            path: "/version".into(),
            errors: vec!["error.expected.date.isoformat".into()],
        }],
    };
    let s = version.as_str().ok_or_else(wrong)?;
    s.parse().map(Some).map_err(|_| wrong())
}

/// True when `new` differs from `old` in `instances` only (and version
/// bookkeeping): a scale, which starts or kills instances without
/// restarting the others. Every other difference is an upgrade.
pub fn is_scale_only_change(old: &AppDefinition, new: &AppDefinition) -> bool {
    old.instances != new.instances && !is_upgrade(old, new)
}

/// True when `new` changes anything but `instances`, `version` and
/// `versionInfo` — labels, env, upgradeStrategy, backoff, killSelection and
/// unreachableStrategy included: the running tasks must be replaced.
pub fn is_upgrade(old: &AppDefinition, new: &AppDefinition) -> bool {
    let mut comparable = new.clone();
    comparable.instances = old.instances;
    comparable.version = old.version;
    comparable.version_info = old.version_info;
    comparable != *old
}

impl AppDefinition {
    /// Applies a PUT (`partialUpdate=true`) or PATCH body: every member the
    /// body has replaces the app's (a whole-field replace, not a deep
    /// merge), `null` resets a member to its default, and the result is
    /// normalized and validated like a new app. `id`, if given, must name
    /// this app; `version`/`versionInfo` stay the server's (call
    /// [`rollback_version`] first to recognise rollbacks — a body with
    /// `version` and other fields is refused here too).
    ///
    /// Deprecated members work as on create (`ports` replaces
    /// `portDefinitions`, `uris` replaces `fetch`, …). When the body
    /// switches networking and does not restate the ports, the old port
    /// definitions or mappings that no longer apply are dropped (a new
    /// default takes their place).
    pub fn merge_update(
        &self,
        body: &Value,
        defaults: &AppDefaults,
    ) -> Result<AppDefinition, AppError> {
        let Some(update) = body.as_object() else {
            return Err(AppError::WrongType {
                details: vec![super::Violation {
                    path: "/".into(),
                    errors: vec!["error.expected.jsobject".into()],
                }],
            });
        };
        if update.get("version").is_some_and(|v| !v.is_null()) {
            rollback_version(body)?;
        }
        let mut problems = Problems::default();
        if let Some(id) = update.get("id").filter(|v| !v.is_null()) {
            match id.as_str() {
                None => problems.wrong_type("/id", "error.expected.jsstring"),
                Some(s) => match PathId::parse(s, &PathId::root()) {
                    Ok(given) if given == self.id => {}
                    _ => problems.invalid(
                        "/id",
                        format!(
                            "The id in the body ('{s}') does not match the app's id ('{}')",
                            self.id
                        ),
                    ),
                },
            }
        }
        problems.finish(())?;

        let mut merged = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        // The deprecated mirrors are output only; the canonical fields hold
        // the truth. A body that sends back the mirror unchanged next to the
        // canonical field (a GET response, edited and PUT back) means the
        // canonical field.
        let mut update = update.clone();
        for (deprecated, canonical) in [("ports", "portDefinitions"), ("uris", "fetch")] {
            if let Some(mirror) = merged.remove(deprecated)
                && update.contains_key(canonical)
                && update.get(deprecated) == Some(&mirror)
            {
                update.remove(deprecated);
            }
        }
        // A deprecated member replaces its canonical one unless the body
        // states that too.
        for (deprecated, canonical) in [
            ("ports", "portDefinitions"),
            ("uris", "fetch"),
            ("ipAddress", "networks"),
        ] {
            if update.get(deprecated).is_some_and(|v| !v.is_null())
                && !update.contains_key(canonical)
            {
                merged.remove(canonical);
            }
        }
        for (key, value) in &update {
            if key == "id" || SERVER_SET.contains(&key.as_str()) {
                continue;
            }
            if value.is_null() {
                merged.remove(key);
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
        let docker_network = update
            .get("container")
            .and_then(|c| c.get("docker"))
            .and_then(|d| d.get("network"))
            .is_some_and(|n| !n.is_null());
        if docker_network && !update.contains_key("networks") {
            merged.remove("networks");
        }
        let options = Options {
            validate: true,
            inherited_port_definitions: !update.contains_key("portDefinitions")
                && !update.contains_key("ports"),
            inherited_port_mappings: !update.contains_key("container"),
        };
        // A non-host app has no port definitions of its own: let the new
        // networking pick the default.
        if options.inherited_port_definitions && !self.is_host_networking() {
            merged.remove("portDefinitions");
        }
        parse::read_app(&Value::Object(merged), &PathId::root(), defaults, options)
    }

    /// This app stamped as the version after `current` (absent for a new
    /// app): when it differs from `current` in `instances` at most, it
    /// keeps `current`'s configuration time (a scale: no instance is
    /// replaced); otherwise it is a new configuration from `now`.
    pub fn next_version_of(
        mut self,
        current: Option<&AppDefinition>,
        now: Timestamp,
    ) -> AppDefinition {
        match current {
            Some(c) if !is_upgrade(c, &self) => {
                self.version = c.version;
                self.version_info = c.version_info;
                self.with_version(now, true)
            }
            _ => self.with_version(now, false),
        }
    }

    /// A stored version brought back at `now` (a rollback): a new
    /// `version`, but the configuration keeps its `lastConfigChangeAt`, so
    /// instances still running that configuration count as current and are
    /// not restarted.
    pub fn restored_at(mut self, now: Timestamp) -> AppDefinition {
        let config = self.last_config_change().unwrap_or(now);
        self.version = Some(now);
        self.version_info = Some(VersionInfo {
            last_scaling_at: now,
            last_config_change_at: config,
        });
        self
    }

    /// This app stamped with a new version, as Marathon does on every
    /// change: `version = now`; for a scale-only change `lastScalingAt =
    /// now` and `lastConfigChangeAt` kept; for anything else (including a
    /// restart) both become `now`.
    pub fn with_version(mut self, now: Timestamp, scale_only: bool) -> AppDefinition {
        let info = match (scale_only, self.version_info, self.version) {
            (true, Some(info), _) => VersionInfo {
                last_scaling_at: now,
                last_config_change_at: info.last_config_change_at,
            },
            (true, None, Some(previous)) => VersionInfo {
                last_scaling_at: now,
                last_config_change_at: previous,
            },
            _ => VersionInfo {
                last_scaling_at: now,
                last_config_change_at: now,
            },
        };
        self.version = Some(now);
        self.version_info = Some(info);
        self
    }
}
