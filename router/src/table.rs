//! The routing table: Marathon's apps JSON (`GET /v2/apps?embed=apps.tasks`,
//! `GET /v2/apps/{id}`) → which instances serve which Host and path, and
//! the lookup for a request. Pure: no I/O, no clock (the time comes in as
//! `now_ms` where state is shown); the refresher in `sync` fetches and
//! publishes, everything else reads the published table.
//!
//! - An app is exposed by its labels: `BATON_VHOST` (or marathon-lb's
//!   `HAPROXY_0_VHOST`) — a comma-separated list of host names — and/or
//!   `BATON_PATH` (or `HAPROXY_0_PATH`) — a path prefix. An app with
//!   neither is listed but never matched.
//! - Its routable instances ([`Route::upstreams`]) are the tasks that are
//!   `TASK_RUNNING` (a task Baton drains before a kill shows as
//!   `TASK_KILLING`), not `draining`, with a port, and — when the app has
//!   health checks — with health results that are all `alive`. The others
//!   are kept in [`Route::excluded`] with the reason, for
//!   `/_router/table`.
//! - A request's Host (port and case ignored) selects the apps with that
//!   vhost; among them the longest matching path prefix wins (an app
//!   without a path matches every path). When none of them matches, the
//!   apps without vhosts are tried by path the same way. Prefixes match
//!   whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.
//! - `BATON_REDIRECT_TO_HTTPS=true` (or marathon-lb's
//!   `HAPROXY_0_REDIRECT_TO_HTTPS`) sends plain-HTTP clients to HTTPS
//!   ([`crate::redirect`]); `BATON_AUTH_FILE` (with `BATON_AUTH_REALM`)
//!   puts the app behind basic authentication ([`crate::auth`]). The
//!   label's presence turns authentication on: an empty path names no
//!   readable file and so denies everyone.
//! - `BATON_UV_COOKIE` names the app's own cookie that tells its visitors
//!   apart ([`crate::visitors`]); `BATON_ACCESS_LOG=off` keeps the app out
//!   of the access log ([`crate::access_log`]).
//! - `BATON_CACHE` (with `BATON_CACHE_MAX_TTL`, `BATON_CACHE_PRIVATE`)
//!   caches the app's responses ([`crate::cache_rules`]); the route
//!   carries the settings and the app's version (its last configuration
//!   change), whose change drops its cached responses. Wrong labels
//!   leave the app uncached, the error shown in `/_router/table`.
//! - A table is immutable; a change builds the next one
//!   ([`Table::from_apps`], [`Table::with_app`], [`Table::without_app`]),
//!   carrying over by app id the app's [`AppRuntime`] (counters, balancer
//!   turn, scaling state) and by task id each instance's
//!   [`UpstreamState`], so rebuilding loses neither statistics nor
//!   passive-health state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::access::DenyList;
use crate::auth::{self, BasicAuth, CredentialFile};
use crate::balance::{Policy, Upstream, UpstreamState};
use crate::cache_rules;
use crate::cache_store::AppCache;
use crate::runtime::AppRuntime;
use crate::split::{self, Split, SplitError, SplitSource, SwitchRecord};

/// Label: host names (comma-separated).
pub const LABEL_VHOST: &str = "BATON_VHOST";
/// marathon-lb's label for the first port's host names.
pub const LABEL_HAPROXY_VHOST: &str = "HAPROXY_0_VHOST";
/// Label: path prefix.
pub const LABEL_PATH: &str = "BATON_PATH";
/// marathon-lb's label for the first port's path prefix.
pub const LABEL_HAPROXY_PATH: &str = "HAPROXY_0_PATH";
/// Label: balancing policy (`round_robin`, `least_conn`).
pub const LABEL_BALANCE: &str = "BATON_BALANCE";
/// Label: `true` for sticky sessions.
pub const LABEL_STICKY: &str = "BATON_STICKY";
/// Label: client networks refused (comma-separated CIDR blocks).
pub const LABEL_DENY: &str = "BATON_DENY";
/// Label: `true` to redirect plain-HTTP requests to HTTPS.
pub const LABEL_REDIRECT_TO_HTTPS: &str = "BATON_REDIRECT_TO_HTTPS";
/// marathon-lb's label for the same.
pub const LABEL_HAPROXY_REDIRECT_TO_HTTPS: &str = "HAPROXY_0_REDIRECT_TO_HTTPS";
/// Label: the basic-auth credentials file (`user:password` lines).
pub const LABEL_AUTH_FILE: &str = "BATON_AUTH_FILE";
/// Label: the basic-auth realm.
pub const LABEL_AUTH_REALM: &str = "BATON_AUTH_REALM";
/// Label: the app's own cookie that tells its visitors apart (then the
/// router issues none).
pub const LABEL_UV_COOKIE: &str = "BATON_UV_COOKIE";
/// Label: `h2` (or `grpc`) to speak HTTP/2 to the app's instances.
pub const LABEL_BACKEND_PROTOCOL: &str = "BATON_BACKEND_PROTOCOL";
/// Label: `off` (or `false`) to keep the app out of the access log.
pub const LABEL_ACCESS_LOG: &str = "BATON_ACCESS_LOG";

/// A task that is not routed to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    /// The Mesos task id.
    pub task_id: String,
    /// Why it is not routable.
    pub reason: String,
}

/// One app as the router sees it.
#[derive(Debug)]
pub struct Route {
    /// Marathon app id (`/group/app`).
    pub app_id: String,
    /// Host names, lower case, without ports.
    pub vhosts: Vec<String>,
    /// Path prefix.
    pub path: Option<String>,
    /// How requests are spread.
    pub policy: Policy,
    /// Whether clients are pinned by cookie.
    pub sticky: bool,
    /// Client networks refused (`BATON_DENY`).
    pub deny: DenyList,
    /// `BATON_DENY` entries that do not parse (the others apply).
    pub deny_errors: Vec<String>,
    /// Whether plain-HTTP requests are redirected to HTTPS.
    pub redirect_to_https: bool,
    /// Basic authentication, when `BATON_AUTH_FILE` is set.
    pub auth: Option<BasicAuth>,
    /// Its response cache, when `BATON_CACHE` asks for one.
    pub cache: Option<AppCache>,
    /// The app's own visitor cookie (`BATON_UV_COOKIE`).
    pub uv_cookie: Option<String>,
    /// Whether its requests go to the access log (`BATON_ACCESS_LOG`).
    pub access_log: bool,
    /// Whether its instances are spoken to over HTTP/2
    /// (`BATON_BACKEND_PROTOCOL=h2` or `grpc`, [`crate::pool_h2`]).
    pub backend_h2: bool,
    /// Its weight in its group (`BATON_WEIGHT`, [`crate::split`]).
    pub weight: Option<u32>,
    /// Its colour (`BATON_COLOR`), shown only.
    pub color: Option<String>,
    /// What it says as a switch record (`BATON_SWITCH`): the vhosts it
    /// governs and how, or why its labels are wrong.
    pub switch: Option<(Vec<String>, Result<SwitchRecord, SplitError>)>,
    /// Whether the app has health checks (then only healthy tasks route).
    pub health_checked: bool,
    /// Desired instances (`instances`), for the autoscaler and sleep/wake.
    pub instances: u64,
    /// All labels, as given.
    pub labels: BTreeMap<String, String>,
    /// Routable instances, ordered by task id.
    pub upstreams: Vec<Upstream>,
    /// Tasks that are not routable.
    pub excluded: Vec<Excluded>,
    /// Counters and balancer state, shared across generations.
    pub runtime: Arc<AppRuntime>,
}

impl Route {
    /// Whether the app is reachable at all (has a vhost or a path).
    pub fn exposed(&self) -> bool {
        !self.vhosts.is_empty() || self.path.is_some()
    }

    /// Whether `path` falls under the app's prefix (any path without one).
    pub fn matches_path(&self, path: &str) -> bool {
        self.path.as_deref().is_none_or(|p| path_matches(p, path))
    }

    /// The sticky cookie's `Path`: the app's prefix, or `/`.
    pub fn cookie_path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }

    fn path_len(&self) -> usize {
        self.path.as_deref().map_or(0, str::len)
    }

    /// The route as `/_router/table` shows it.
    pub fn to_json(&self, now_ms: u64) -> Value {
        json!({
            "id": self.app_id,
            "vhosts": self.vhosts,
            "path": self.path,
            "balance": self.policy.name(),
            "sticky": self.sticky,
            "deny": self.deny.networks(),
            "denyErrors": self.deny_errors,
            "redirectToHttps": self.redirect_to_https,
            "auth": self.auth.as_ref().map(BasicAuth::to_json),
            "cache": cache_json(self.cache.as_ref(), &self.labels),
            "uvCookie": self.uv_cookie,
            "accessLog": self.access_log,
            "backendProtocol": if self.backend_h2 { "h2" } else { "http/1.1" },
            "weight": self.weight,
            "color": self.color,
            "switch": self.switch.as_ref().map(|(vhosts, record)| match record {
                Ok(r) => json!({"vhosts": vhosts, "live": r.live, "weights": r.weights}),
                Err(e) => json!({"vhosts": vhosts, "error": e.to_string()}),
            }),
            "healthChecks": self.health_checked,
            "instances": self.instances,
            "upstreams": self.upstreams.iter().map(|u| {
                let mut v = u.state.to_json(now_ms);
                v["taskId"] = json!(u.task_id);
                v["address"] = json!(&*u.authority);
                v["stickyKey"] = json!(u.sticky_key);
                v
            }).collect::<Vec<_>>(),
            "excluded": self.excluded.iter().map(|e| json!({
                "taskId": e.task_id,
                "reason": e.reason,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Whether `prefix` covers `path`, by whole segments.
pub fn path_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

/// A Host header or URI authority as a vhost: lower case, without port
/// or trailing dot.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']')
            .next()
            .map_or(host.to_string(), |v6| format!("[{v6}]"))
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
            .to_string()
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn label<'a>(labels: &'a BTreeMap<String, String>, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| labels.get(*n))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// Why a task of an app is not routable; `None` when it is.
fn exclusion(task: &Value, health_checked: bool) -> Option<String> {
    let state = task["state"].as_str().unwrap_or("");
    if state != "TASK_RUNNING" {
        return Some(if state.is_empty() {
            "no state".to_string()
        } else {
            state.to_string()
        });
    }
    if task["draining"].as_bool() == Some(true) {
        return Some("draining".into());
    }
    if health_checked {
        let results = task["healthCheckResults"].as_array();
        match results {
            None => return Some("no health check result yet".into()),
            Some(r) if r.is_empty() => return Some("no health check result yet".into()),
            Some(r) if !r.iter().all(|h| h["alive"].as_bool() == Some(true)) => {
                return Some("unhealthy".into());
            }
            Some(_) => {}
        }
    }
    None
}

/// What an app's labels say as a switch record, if it is one.
fn switch_record(
    app_id: &str,
    labels: &BTreeMap<String, String>,
) -> Option<(Vec<String>, Result<SwitchRecord, SplitError>)> {
    let vhosts: Vec<String> = labels
        .get(split::LABEL_SWITCH)?
        .split(',')
        .map(normalize_host)
        .filter(|h| !h.is_empty())
        .collect();
    let record = label(labels, &[split::LABEL_WEIGHTS])
        .map_or_else(|| Ok(BTreeMap::new()), split::parse_weights)
        .map(|weights| SwitchRecord {
            record_id: app_id.to_string(),
            live: label(labels, &[split::LABEL_LIVE]).map(split::normalize_id),
            weights,
        });
    Some((vhosts, record))
}

/// An app's cache from its labels, for its version: its last
/// configuration change (`versionInfo.lastConfigChangeAt`; a scale
/// changes only `version`), else its `version`.
fn app_cache(app: &Value, labels: &BTreeMap<String, String>) -> Option<AppCache> {
    let settings = cache_rules::settings(labels).ok()??;
    let version = app["versionInfo"]["lastConfigChangeAt"]
        .as_str()
        .or_else(|| app["version"].as_str())
        .unwrap_or("");
    Some(AppCache {
        settings,
        version: version.into(),
    })
}

/// The cache as `/_router/table` shows it: its settings and version, the
/// labels' error, or null.
fn cache_json(cache: Option<&AppCache>, labels: &BTreeMap<String, String>) -> Value {
    match (cache, cache_rules::settings(labels)) {
        (Some(cache), _) => {
            let mut shown = cache.settings.to_json();
            shown["version"] = json!(&*cache.version);
            shown
        }
        (None, Err(e)) => json!({ "error": e.to_string() }),
        (None, Ok(_)) => Value::Null,
    }
}

/// One app's route from its JSON, carrying state over from `prev` (the
/// same app in the previous table). `None` without an `id`.
pub fn parse_app(app: &Value, prev: Option<&Route>) -> Option<Route> {
    let app_id = app["id"].as_str()?.to_string();
    let labels: BTreeMap<String, String> = app["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let mut vhosts: Vec<String> = [LABEL_VHOST, LABEL_HAPROXY_VHOST]
        .iter()
        .filter_map(|name| labels.get(*name))
        .flat_map(|list| list.split(','))
        .map(normalize_host)
        .filter(|h| !h.is_empty())
        .collect();
    vhosts.sort();
    vhosts.dedup();
    let path = label(&labels, &[LABEL_PATH, LABEL_HAPROXY_PATH]).map(|p| {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        }
    });
    let health_checked = app["healthChecks"]
        .as_array()
        .is_some_and(|h| !h.is_empty());
    let previous_state: HashMap<&str, &Arc<UpstreamState>> = prev
        .map(|p| {
            p.upstreams
                .iter()
                .map(|u| (u.task_id.as_str(), &u.state))
                .collect()
        })
        .unwrap_or_default();

    let mut upstreams = Vec::new();
    let mut excluded = Vec::new();
    for task in app["tasks"].as_array().into_iter().flatten() {
        let Some(task_id) = task["id"].as_str() else {
            continue;
        };
        let exclude = |reason: String| Excluded {
            task_id: task_id.to_string(),
            reason,
        };
        if let Some(reason) = exclusion(task, health_checked) {
            excluded.push(exclude(reason));
            continue;
        }
        let host = task["host"].as_str().filter(|h| !h.is_empty());
        let port = task["ports"][0]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        match (host, port) {
            (Some(host), Some(port)) => upstreams.push(Upstream::new(
                task_id,
                host,
                port,
                previous_state.get(task_id).map(|s| Arc::clone(s)),
            )),
            (None, _) => excluded.push(exclude("no host".into())),
            (_, None) => excluded.push(exclude("no port".into())),
        }
    }
    upstreams.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    excluded.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    let (deny, deny_errors) = DenyList::parse(labels.get(LABEL_DENY).map_or("", String::as_str));
    let redirect_to_https = [LABEL_REDIRECT_TO_HTTPS, LABEL_HAPROXY_REDIRECT_TO_HTTPS]
        .iter()
        .filter_map(|name| labels.get(*name))
        .any(|v| v.trim().eq_ignore_ascii_case("true"));
    let auth = labels.get(LABEL_AUTH_FILE).map(|path| {
        let path = path.trim();
        // The same file keeps what was read from it.
        let file = prev
            .and_then(|p| p.auth.as_ref())
            .filter(|a| a.file.path().as_os_str() == path)
            .map_or_else(|| Arc::new(CredentialFile::new(path)), |a| a.file.clone());
        BasicAuth {
            realm: label(&labels, &[LABEL_AUTH_REALM])
                .unwrap_or(auth::DEFAULT_REALM)
                .to_string(),
            file,
        }
    });

    let switch = switch_record(&app_id, &labels);
    Some(Route {
        app_id,
        vhosts,
        path,
        policy: Policy::from_label(labels.get(LABEL_BALANCE).map(String::as_str)),
        sticky: labels
            .get(LABEL_STICKY)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        deny,
        deny_errors: deny_errors.iter().map(ToString::to_string).collect(),
        redirect_to_https,
        auth,
        cache: app_cache(app, &labels),
        uv_cookie: label(&labels, &[LABEL_UV_COOKIE]).map(str::to_string),
        access_log: label(&labels, &[LABEL_ACCESS_LOG])
            .is_none_or(|v| !v.eq_ignore_ascii_case("off") && !v.eq_ignore_ascii_case("false")),
        backend_h2: label(&labels, &[LABEL_BACKEND_PROTOCOL])
            .is_some_and(|v| v.eq_ignore_ascii_case("h2") || v.eq_ignore_ascii_case("grpc")),
        weight: label(&labels, &[split::LABEL_WEIGHT]).and_then(split::parse_weight),
        color: label(&labels, &[split::LABEL_COLOR]).map(str::to_string),
        switch,
        health_checked,
        instances: app["instances"].as_u64().unwrap_or(0),
        labels,
        upstreams,
        excluded,
        runtime: prev.map(|p| p.runtime.clone()).unwrap_or_default(),
    })
}

/// The apps that share a vhost (or none) and a path prefix, and how they
/// share its requests ([`crate::split`]).
#[derive(Debug)]
pub struct Group {
    /// Sorted by id.
    pub members: Vec<Arc<Route>>,
    /// How the next request picks one.
    pub split: Split,
    /// Where the split comes from.
    pub source: SplitSource,
    /// The switch record governing the vhost, if any.
    pub record: Option<String>,
}

impl Group {
    fn new(members: Vec<Arc<Route>>, record: Option<&SwitchRecord>) -> Group {
        let ids: Vec<&str> = members.iter().map(|r| r.app_id.as_str()).collect();
        let weights: Vec<Option<u32>> = members.iter().map(|r| r.weight).collect();
        let (split, source) = split::decide(&ids, &weights, record);
        Group {
            split,
            source,
            record: record.map(|r| r.record_id.clone()),
            members,
        }
    }

    fn matches_path(&self, path: &str) -> bool {
        self.members[0].matches_path(path)
    }

    fn path_len(&self) -> usize {
        self.members[0].path_len()
    }

    /// The app for the next request.
    pub fn pick(&self) -> &Arc<Route> {
        let i = self.split.pick(|i| !self.members[i].upstreams.is_empty());
        &self.members[i]
    }

    /// The group as `/_router/table` shows it.
    fn to_json(&self, host: Option<&str>) -> Value {
        json!({
            "vhost": host,
            "path": self.members[0].path,
            "apps": self.members.iter().map(|r| r.app_id.as_str()).collect::<Vec<_>>(),
            "split": self.source.name(),
            "weights": self.split.weights(),
            "live": match self.split {
                Split::Fixed(i) if self.source == SplitSource::Live => Some(self.members[i].app_id.as_str()),
                _ => None,
            },
            "record": self.record,
        })
    }
}

/// Every app and the indexes to find one for a request.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// By app id.
    apps: BTreeMap<String, Arc<Route>>,
    /// Exposed apps by vhost, grouped by path; longest path first.
    by_host: HashMap<String, Vec<Arc<Group>>>,
    /// Exposed apps without vhosts, grouped by path; longest path first.
    any_host: Vec<Arc<Group>>,
    /// Changes applied so far (0: never loaded).
    pub generation: u64,
    /// Whether a full list from Marathon has been loaded.
    pub loaded: bool,
}

impl Table {
    /// The table of `apps`; groups that `prev` had with the same members
    /// and weights continue its weighted rotation.
    fn indexed(
        apps: BTreeMap<String, Arc<Route>>,
        generation: u64,
        loaded: bool,
        prev: &Table,
    ) -> Table {
        // The switch records by the vhosts they govern; of two for one
        // vhost, the first by id (the other is shown, unused).
        let mut records: HashMap<&str, &SwitchRecord> = HashMap::new();
        for route in apps.values() {
            if let Some((vhosts, Ok(record))) = &route.switch {
                for host in vhosts {
                    records.entry(host.as_str()).or_insert(record);
                }
            }
        }
        let mut by_host: HashMap<&str, BTreeMap<Option<&str>, Vec<Arc<Route>>>> = HashMap::new();
        let mut any_host: BTreeMap<Option<&str>, Vec<Arc<Route>>> = BTreeMap::new();
        // By id (the map's order), so members are sorted by id.
        for route in apps.values().filter(|r| r.exposed()) {
            if route.vhosts.is_empty() {
                any_host
                    .entry(route.path.as_deref())
                    .or_default()
                    .push(route.clone());
            }
            for host in &route.vhosts {
                by_host
                    .entry(host.as_str())
                    .or_default()
                    .entry(route.path.as_deref())
                    .or_default()
                    .push(route.clone());
            }
        }
        let groups = |paths: BTreeMap<Option<&str>, Vec<Arc<Route>>>,
                      record: Option<&SwitchRecord>,
                      before: &[Arc<Group>]| {
            let mut groups: Vec<Arc<Group>> = paths
                .into_values()
                .map(|members| {
                    let mut group = Group::new(members, record);
                    let same_members = |g: &&Arc<Group>| {
                        g.members.len() == group.members.len()
                            && g.members
                                .iter()
                                .zip(&group.members)
                                .all(|(a, b)| a.app_id == b.app_id)
                    };
                    if let Some(previous) = before.iter().find(same_members) {
                        group.split.carry_over(&previous.split);
                    }
                    Arc::new(group)
                })
                .collect();
            // Longest path first; then by the first member's id.
            groups.sort_by(|a, b| {
                b.path_len()
                    .cmp(&a.path_len())
                    .then_with(|| a.members[0].app_id.cmp(&b.members[0].app_id))
            });
            groups
        };
        let by_host = by_host
            .into_iter()
            .map(|(host, paths)| {
                let record = records.get(host).copied();
                let before = prev.by_host.get(host).map_or(&[][..], Vec::as_slice);
                (host.to_string(), groups(paths, record, before))
            })
            .collect();
        let any_host = groups(any_host, None, &prev.any_host);
        Table {
            apps,
            by_host,
            any_host,
            generation,
            loaded,
        }
    }

    /// The table of a full app list, replacing `prev` (whose per-app and
    /// per-instance state carries over).
    pub fn from_apps(apps: &[Value], prev: &Table) -> Table {
        let routes = apps
            .iter()
            .filter_map(|app| {
                let prev_route = app["id"].as_str().and_then(|id| prev.apps.get(id));
                parse_app(app, prev_route.map(|r| &**r))
            })
            .map(|r| (r.app_id.clone(), Arc::new(r)))
            .collect();
        Table::indexed(routes, prev.generation + 1, true, prev)
    }

    /// This table with one app added or replaced.
    pub fn with_app(&self, app: &Value) -> Table {
        let prev = app["id"].as_str().and_then(|id| self.apps.get(id));
        let Some(route) = parse_app(app, prev.map(|r| &**r)) else {
            return self.clone();
        };
        let mut apps = self.apps.clone();
        apps.insert(route.app_id.clone(), Arc::new(route));
        Table::indexed(apps, self.generation + 1, self.loaded, self)
    }

    /// This table without app `id`.
    pub fn without_app(&self, id: &str) -> Table {
        let mut apps = self.apps.clone();
        apps.remove(id);
        Table::indexed(apps, self.generation + 1, self.loaded, self)
    }

    /// The app serving a request for `host` (normalized, see
    /// [`normalize_host`]) and `path`.
    /// Among apps sharing the vhost and prefix, the group's split picks.
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.group(host, path).map(|g| g.pick())
    }

    /// The group serving a request for `host` and `path`.
    pub fn group(&self, host: &str, path: &str) -> Option<&Arc<Group>> {
        self.by_host
            .get(host)
            .and_then(|groups| groups.iter().find(|g| g.matches_path(path)))
            .or_else(|| self.any_host.iter().find(|g| g.matches_path(path)))
    }

    /// The credentials files of every app behind basic authentication.
    pub fn credential_files(&self) -> Vec<Arc<CredentialFile>> {
        self.apps
            .values()
            .filter_map(|r| r.auth.as_ref().map(|a| a.file.clone()))
            .collect()
    }

    /// Every app, by id.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.apps.values()
    }

    /// App `id`.
    pub fn app(&self, id: &str) -> Option<&Arc<Route>> {
        self.apps.get(id)
    }

    /// `/_router/table`.
    pub fn to_json(&self, now_ms: u64) -> Value {
        json!({
            "generation": self.generation,
            "loaded": self.loaded,
            "apps": self.apps.values().map(|r| r.to_json(now_ms)).collect::<Vec<_>>(),
            "groups": self.groups_json(),
        })
    }

    /// The groups of more than one app, by vhost then path.
    fn groups_json(&self) -> Vec<Value> {
        let mut hosts: Vec<&String> = self.by_host.keys().collect();
        hosts.sort();
        let shared = |g: &&Arc<Group>| g.members.len() > 1 || g.record.is_some();
        hosts
            .into_iter()
            .flat_map(|h| {
                self.by_host[h]
                    .iter()
                    .filter(shared)
                    .map(move |g| g.to_json(Some(h)))
            })
            .chain(self.any_host.iter().filter(shared).map(|g| g.to_json(None)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn task(id: &str, state: &str, port: u64, alive: Option<bool>) -> Value {
        let mut t = json!({
            "id": id, "appId": "/x", "host": "127.0.0.2", "state": state, "ports": [port],
            "healthCheckResults": [],
        });
        if let Some(alive) = alive {
            t["healthCheckResults"] = json!([{"alive": alive, "consecutiveFailures": 0}]);
        }
        t
    }

    fn app(id: &str, labels: Value, tasks: Vec<Value>) -> Value {
        json!({"id": id, "instances": tasks.len(), "labels": labels, "tasks": tasks})
    }

    fn ids(route: &Route) -> Vec<&str> {
        route.upstreams.iter().map(|u| u.task_id.as_str()).collect()
    }

    #[test]
    fn running_tasks_become_upstreams_on_their_first_port() {
        let a = app(
            "/web",
            json!({"BATON_VHOST": "web.test"}),
            vec![
                task("web.b", "TASK_RUNNING", 31001, None),
                task("web.a", "TASK_RUNNING", 31000, None),
                task("web.c", "TASK_STAGING", 31002, None),
                task("web.d", "TASK_KILLING", 31003, None),
            ],
        );
        let route = parse_app(&a, None).unwrap();
        assert_eq!(ids(&route), ["web.a", "web.b"], "ordered by task id");
        assert_eq!(&*route.upstreams[0].authority, "127.0.0.2:31000");
        assert_eq!(
            route.excluded,
            [
                Excluded {
                    task_id: "web.c".into(),
                    reason: "TASK_STAGING".into()
                },
                Excluded {
                    task_id: "web.d".into(),
                    reason: "TASK_KILLING".into()
                },
            ]
        );
        assert!(!route.health_checked);
        assert!(!route.sticky);
        assert_eq!(route.policy, Policy::RoundRobin);
        assert_eq!(route.instances, 4);
    }

    #[test]
    fn with_health_checks_only_healthy_tasks_route() {
        let mut a = app(
            "/web",
            json!({"BATON_VHOST": "web.test"}),
            vec![
                task("t.ok", "TASK_RUNNING", 1, Some(true)),
                task("t.sick", "TASK_RUNNING", 2, Some(false)),
                task("t.new", "TASK_RUNNING", 3, None),
            ],
        );
        a["healthChecks"] = json!([{"protocol": "HTTP", "path": "/health"}]);
        let mut mixed = task("t.mixed", "TASK_RUNNING", 4, None);
        mixed["healthCheckResults"] = json!([{"alive": true}, {"alive": false}]);
        a["tasks"].as_array_mut().unwrap().push(mixed);
        let route = parse_app(&a, None).unwrap();
        assert!(route.health_checked);
        assert_eq!(ids(&route), ["t.ok"]);
        let reasons: Vec<(&str, &str)> = route
            .excluded
            .iter()
            .map(|e| (e.task_id.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("t.mixed", "unhealthy"),
                ("t.new", "no health check result yet"),
                ("t.sick", "unhealthy"),
            ]
        );
        // Without health checks, results do not matter.
        a["healthChecks"] = json!([]);
        assert_eq!(parse_app(&a, None).unwrap().upstreams.len(), 4);
    }

    #[test]
    fn draining_and_portless_tasks_are_excluded() {
        let mut draining = task("t.drain", "TASK_RUNNING", 1, None);
        draining["draining"] = json!(true);
        let mut portless = task("t.noport", "TASK_RUNNING", 1, None);
        portless["ports"] = json!([]);
        let route = parse_app(&app("/x", json!({}), vec![draining, portless]), None).unwrap();
        assert!(route.upstreams.is_empty());
        let reasons: Vec<&str> = route.excluded.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["draining", "no port"]);
    }

    #[test]
    fn labels_vhosts_path_policy_sticky() {
        let route = parse_app(
            &app(
                "/web",
                json!({
                    "BATON_VHOST": "Web.Test, www.web.test:8080,",
                    "HAPROXY_0_VHOST": "legacy.test,web.test",
                    "BATON_PATH": "api",
                    "BATON_BALANCE": "least_conn",
                    "BATON_STICKY": "TRUE",
                }),
                vec![],
            ),
            None,
        )
        .unwrap();
        assert_eq!(route.vhosts, ["legacy.test", "web.test", "www.web.test"]);
        assert_eq!(route.path.as_deref(), Some("/api"));
        assert_eq!(route.cookie_path(), "/api");
        assert_eq!(route.policy, Policy::LeastConn);
        assert!(route.sticky);
        assert_eq!(route.labels["BATON_BALANCE"], "least_conn");
    }

    #[test]
    fn redirect_and_auth_labels_and_the_credentials_file_carries_over() {
        let labels = json!({
            "BATON_VHOST": "web.test",
            "HAPROXY_0_REDIRECT_TO_HTTPS": "True",
            "BATON_AUTH_FILE": " /etc/users ",
        });
        let route = parse_app(&app("/web", labels.clone(), vec![]), None).unwrap();
        assert!(route.redirect_to_https);
        let gate = route.auth.as_ref().unwrap();
        assert_eq!(gate.realm, auth::DEFAULT_REALM);
        assert_eq!(gate.file.path(), std::path::Path::new("/etc/users"));
        // Rebuilt with the same file: what was read is kept.
        let mut relabelled = labels.clone();
        relabelled["BATON_AUTH_REALM"] = json!("Staff");
        let next = parse_app(&app("/web", relabelled, vec![]), Some(&route)).unwrap();
        let next_gate = next.auth.as_ref().unwrap();
        assert!(Arc::ptr_eq(&gate.file, &next_gate.file));
        assert_eq!(next_gate.realm, "Staff");
        // Another file is a new one.
        let mut moved = labels;
        moved["BATON_AUTH_FILE"] = json!("/etc/other");
        let other = parse_app(&app("/web", moved, vec![]), Some(&route)).unwrap();
        assert!(!Arc::ptr_eq(&gate.file, &other.auth.as_ref().unwrap().file));
        // Without the labels: neither; an empty file label still gates.
        let plain = parse_app(
            &app("/web", json!({"BATON_REDIRECT_TO_HTTPS": "no"}), vec![]),
            None,
        )
        .unwrap();
        assert!(!plain.redirect_to_https && plain.auth.is_none());
        let empty = parse_app(&app("/web", json!({"BATON_AUTH_FILE": ""}), vec![]), None).unwrap();
        assert!(empty.auth.is_some(), "fails closed");
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("Web.Test:8000"), "web.test");
        assert_eq!(normalize_host("web.test."), "web.test");
        assert_eq!(normalize_host("[::1]:8000"), "[::1]");
        assert_eq!(normalize_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(normalize_host(""), "");
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/v1"));
        assert!(path_matches("/api/", "/api/v1"));
        assert!(!path_matches("/api", "/apix"));
        assert!(!path_matches("/api", "/"));
        assert!(path_matches("/", "/anything"));
    }

    fn table() -> Table {
        let t = |id: &str| vec![task(&format!("{id}.1"), "TASK_RUNNING", 1, None)];
        Table::from_apps(
            &[
                app("/web", json!({"BATON_VHOST": "web.test"}), t("web")),
                app(
                    "/web-api",
                    json!({"BATON_VHOST": "web.test", "BATON_PATH": "/api"}),
                    t("api"),
                ),
                app(
                    "/web-api-v2",
                    json!({"BATON_VHOST": "web.test", "BATON_PATH": "/api/v2"}),
                    t("v2"),
                ),
                app(
                    "/legacy",
                    json!({"HAPROXY_0_VHOST": "old.test,older.test"}),
                    t("legacy"),
                ),
                app("/static", json!({"BATON_PATH": "/static"}), t("static")),
                app("/hidden", json!({}), t("hidden")),
            ],
            &Table::default(),
        )
    }

    fn routed(table: &Table, host: &str, path: &str) -> Option<String> {
        table
            .route(&normalize_host(host), path)
            .map(|r| r.app_id.clone())
    }

    #[test]
    fn requests_find_their_app_by_host_then_longest_prefix() {
        let t = table();
        assert!(t.loaded);
        assert_eq!(t.generation, 1);
        assert_eq!(routed(&t, "web.test", "/").as_deref(), Some("/web"));
        assert_eq!(routed(&t, "WEB.test:8000", "/x").as_deref(), Some("/web"));
        assert_eq!(routed(&t, "web.test", "/api").as_deref(), Some("/web-api"));
        assert_eq!(
            routed(&t, "web.test", "/api/v1").as_deref(),
            Some("/web-api")
        );
        assert_eq!(
            routed(&t, "web.test", "/api/v2/x").as_deref(),
            Some("/web-api-v2")
        );
        assert_eq!(routed(&t, "older.test", "/").as_deref(), Some("/legacy"));
        // Path-only apps serve any host...
        assert_eq!(
            routed(&t, "whatever", "/static/a.css").as_deref(),
            Some("/static")
        );
        // ...and a vhost's paths that none of its apps cover.
        assert_eq!(
            routed(&t, "old.test", "/static/a.css").as_deref(),
            Some("/legacy"),
            "a vhost app without path covers all its paths"
        );
        assert_eq!(routed(&t, "whatever", "/"), None);
        assert_eq!(
            routed(&t, "hidden", "/"),
            None,
            "unexposed apps never match"
        );
        assert!(t.app("/hidden").is_some(), "but are listed");
    }

    #[test]
    fn apps_sharing_a_vhost_and_path_form_a_group_a_switch_record_governs() {
        let blue = app(
            "/shop/blue",
            json!({"BATON_VHOST": "shop.test", "BATON_COLOR": "blue"}),
            vec![task("b1", "TASK_RUNNING", 1, None)],
        );
        let green = app(
            "/shop/green",
            json!({"BATON_VHOST": "shop.test"}),
            vec![task("g1", "TASK_RUNNING", 2, None)],
        );
        let api = app(
            "/shop/api",
            json!({"BATON_VHOST": "shop.test", "BATON_PATH": "/api"}),
            vec![task("a1", "TASK_RUNNING", 3, None)],
        );
        let table = Table::from_apps(
            &[blue.clone(), green.clone(), api.clone()],
            &Table::default(),
        );
        // The first by id, as before groups; another path is its own group.
        assert_eq!(table.route("shop.test", "/").unwrap().app_id, "/shop/blue");
        assert_eq!(
            table.route("shop.test", "/api/x").unwrap().app_id,
            "/shop/api"
        );
        let shown = table.to_json(0);
        assert_eq!(shown["groups"].as_array().unwrap().len(), 1, "{shown}");
        assert_eq!(shown["groups"][0]["split"], "first");
        // A record naming green moves the group, and only it.
        let record = app(
            "/baton-switch/shop.test",
            json!({"BATON_SWITCH": "shop.test", "BATON_LIVE": "shop/green"}),
            vec![],
        );
        let table = Table::from_apps(&[blue, green, api, record], &table);
        assert_eq!(table.route("shop.test", "/").unwrap().app_id, "/shop/green");
        assert_eq!(
            table.route("shop.test", "/api").unwrap().app_id,
            "/shop/api"
        );
        let group = table.group("shop.test", "/").unwrap();
        assert_eq!(group.source, SplitSource::Live);
        assert_eq!(group.record.as_deref(), Some("/baton-switch/shop.test"));
        let record = table.app("/baton-switch/shop.test").unwrap();
        assert!(!record.exposed(), "a record routes nothing itself");
        // A record with bad weights is shown with its error and ignored.
        let bad = app(
            "/baton-switch/bad",
            json!({"BATON_SWITCH": "shop.test", "BATON_WEIGHTS": "/shop/blue:lots"}),
            vec![],
        );
        let table = Table::from_apps(&[bad], &Table::default());
        let shown = table.to_json(0);
        assert!(
            shown["apps"][0]["switch"]["error"]
                .as_str()
                .unwrap()
                .contains("BATON_WEIGHTS entry '/shop/blue:lots'"),
            "{shown}"
        );
    }

    #[test]
    fn vhost_apps_with_paths_fall_back_to_path_only_apps() {
        let t = Table::from_apps(
            &[
                app(
                    "/api",
                    json!({"BATON_VHOST": "web.test", "BATON_PATH": "/api"}),
                    vec![],
                ),
                app("/static", json!({"BATON_PATH": "/static"}), vec![]),
            ],
            &Table::default(),
        );
        assert_eq!(
            routed(&t, "web.test", "/static/x").as_deref(),
            Some("/static")
        );
        assert_eq!(routed(&t, "web.test", "/other"), None);
    }

    #[test]
    fn updates_keep_runtime_and_instance_state() {
        let t1 = table();
        let web = t1.app("/web").unwrap().clone();
        web.runtime.stats.requests.fetch_add(5, Relaxed);
        let in_flight = web.upstreams[0].state.begin();

        // One app updated: a second task joins, the first keeps its state.
        let t2 = t1.with_app(&app(
            "/web",
            json!({"BATON_VHOST": "web.test"}),
            vec![
                task("web.1", "TASK_RUNNING", 1, None),
                task("web.2", "TASK_RUNNING", 2, None),
            ],
        ));
        assert_eq!(t2.generation, 2);
        let web2 = t2.app("/web").unwrap();
        assert!(Arc::ptr_eq(&web.runtime, &web2.runtime));
        assert_eq!(web2.runtime.stats.requests.load(Relaxed), 5);
        assert!(Arc::ptr_eq(
            &web.upstreams[0].state,
            &web2.upstreams[0].state
        ));
        assert_eq!(web2.upstreams[0].state.outstanding(), 1);
        assert_eq!(web2.upstreams[1].state.outstanding(), 0);
        drop(in_flight);

        // A full resync keeps it too.
        let t3 = Table::from_apps(
            &[app(
                "/web",
                json!({"BATON_VHOST": "web.test"}),
                vec![task("web.2", "TASK_RUNNING", 2, None)],
            )],
            &t2,
        );
        let web3 = t3.app("/web").unwrap();
        assert!(Arc::ptr_eq(&web.runtime, &web3.runtime));
        assert!(Arc::ptr_eq(
            &web2.upstreams[1].state,
            &web3.upstreams[0].state
        ));
        assert!(t3.app("/static").is_none(), "apps not listed are gone");

        // Removal.
        let t4 = t3.without_app("/web");
        assert_eq!(routed(&t4, "web.test", "/"), None);
        assert_eq!(t4.generation, 4);
    }

    #[test]
    fn the_table_as_json() {
        let t = table();
        let v = t.to_json(0);
        assert_eq!(v["generation"], 1);
        let web = v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "/web")
            .unwrap();
        assert_eq!(web["vhosts"], json!(["web.test"]));
        assert_eq!(web["upstreams"][0]["taskId"], "web.1");
        assert_eq!(web["upstreams"][0]["address"], "127.0.0.2:1");
        assert_eq!(web["upstreams"][0]["ejected"], false);
        assert_eq!(web["balance"], "round_robin");
    }

    #[test]
    fn visitor_cookie_and_access_log_come_from_labels() {
        let plain = parse_app(&app("/a", json!({}), vec![]), None).unwrap();
        assert_eq!((plain.uv_cookie.as_deref(), plain.access_log), (None, true));
        let labelled = app(
            "/b",
            json!({"BATON_UV_COOKIE": " sid ", "BATON_ACCESS_LOG": "OFF"}),
            vec![],
        );
        let route = parse_app(&labelled, None).unwrap();
        assert_eq!(
            (route.uv_cookie.as_deref(), route.access_log),
            (Some("sid"), false)
        );
        assert_eq!(route.to_json(0)["uvCookie"], "sid");
        assert_eq!(route.to_json(0)["accessLog"], false);
        for (value, logged) in [("false", false), ("on", true), ("", true)] {
            let a = app("/c", json!({ "BATON_ACCESS_LOG": value }), vec![]);
            assert_eq!(parse_app(&a, None).unwrap().access_log, logged, "{value:?}");
        }
        let empty = app("/d", json!({"BATON_UV_COOKIE": ""}), vec![]);
        assert_eq!(parse_app(&empty, None).unwrap().uv_cookie, None);
    }

    #[test]
    fn apps_without_an_id_are_skipped() {
        let t = Table::from_apps(&[json!({"labels": {}})], &Table::default());
        assert_eq!(t.routes().count(), 0);
        assert_eq!(t.with_app(&json!({})).routes().count(), 0);
    }

    #[test]
    fn a_table_change_continues_the_weighted_rotation() {
        // 99:1 between two apps of one vhost: the canary's turn comes once
        // every 100 requests, counted across tables.
        let member = |id: &str, weight: &str, port: u64| {
            app(
                id,
                json!({"BATON_VHOST": "shop.test", "BATON_WEIGHT": weight}),
                vec![task(&format!("{id}.t"), "TASK_RUNNING", port, None)],
            )
        };
        let mut table = Table::default()
            .with_app(&member("/stable", "99", 1))
            .with_app(&member("/canary", "1", 2));
        let mut canary = 0;
        for round in 0..20 {
            // Any other app's event makes a new table every 50 requests.
            table = table.with_app(&app(
                "/other",
                json!({"BATON_VHOST": "other.test", "ROUND": round.to_string()}),
                vec![],
            ));
            for _ in 0..50 {
                let picked = table.route("shop.test", "/").expect("routed");
                canary += usize::from(picked.app_id == "/canary");
            }
        }
        assert_eq!(canary, 10, "1 in 100 of 1000 requests");
    }
}
