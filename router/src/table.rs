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
use crate::runtime::AppRuntime;

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
    /// The app's own visitor cookie (`BATON_UV_COOKIE`).
    pub uv_cookie: Option<String>,
    /// Whether its requests go to the access log (`BATON_ACCESS_LOG`).
    pub access_log: bool,
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
            "uvCookie": self.uv_cookie,
            "accessLog": self.access_log,
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
        uv_cookie: label(&labels, &[LABEL_UV_COOKIE]).map(str::to_string),
        access_log: label(&labels, &[LABEL_ACCESS_LOG])
            .is_none_or(|v| !v.eq_ignore_ascii_case("off") && !v.eq_ignore_ascii_case("false")),
        health_checked,
        instances: app["instances"].as_u64().unwrap_or(0),
        labels,
        upstreams,
        excluded,
        runtime: prev.map(|p| p.runtime.clone()).unwrap_or_default(),
    })
}

/// Every app and the indexes to find one for a request.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// By app id.
    apps: BTreeMap<String, Arc<Route>>,
    /// Exposed apps by vhost; longest path first, then by id.
    by_host: HashMap<String, Vec<Arc<Route>>>,
    /// Exposed apps without vhosts; longest path first, then by id.
    any_host: Vec<Arc<Route>>,
    /// Changes applied so far (0: never loaded).
    pub generation: u64,
    /// Whether a full list from Marathon has been loaded.
    pub loaded: bool,
}

impl Table {
    fn indexed(apps: BTreeMap<String, Arc<Route>>, generation: u64, loaded: bool) -> Table {
        let mut by_host: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
        let mut any_host = Vec::new();
        for route in apps.values().filter(|r| r.exposed()) {
            if route.vhosts.is_empty() {
                any_host.push(route.clone());
            }
            for host in &route.vhosts {
                by_host.entry(host.clone()).or_default().push(route.clone());
            }
        }
        let order = |a: &Arc<Route>, b: &Arc<Route>| {
            b.path_len()
                .cmp(&a.path_len())
                .then_with(|| a.app_id.cmp(&b.app_id))
        };
        any_host.sort_by(order);
        for routes in by_host.values_mut() {
            routes.sort_by(order);
        }
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
        Table::indexed(routes, prev.generation + 1, true)
    }

    /// This table with one app added or replaced.
    pub fn with_app(&self, app: &Value) -> Table {
        let prev = app["id"].as_str().and_then(|id| self.apps.get(id));
        let Some(route) = parse_app(app, prev.map(|r| &**r)) else {
            return self.clone();
        };
        let mut apps = self.apps.clone();
        apps.insert(route.app_id.clone(), Arc::new(route));
        Table::indexed(apps, self.generation + 1, self.loaded)
    }

    /// This table without app `id`.
    pub fn without_app(&self, id: &str) -> Table {
        let mut apps = self.apps.clone();
        apps.remove(id);
        Table::indexed(apps, self.generation + 1, self.loaded)
    }

    /// The app serving a request for `host` (normalized, see
    /// [`normalize_host`]) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.by_host
            .get(host)
            .and_then(|routes| routes.iter().find(|r| r.matches_path(path)))
            .or_else(|| self.any_host.iter().find(|r| r.matches_path(path)))
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
        })
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
}
