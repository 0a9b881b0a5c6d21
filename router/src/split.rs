//! Pure. How the apps that share a vhost and path prefix share its
//! requests: blue/green and canary.
//!
//! Apps with the same vhost and the same path prefix form a *group*.
//! Without more, the first by id takes every request (as before groups).
//! Two things change that:
//!
//! - A *switch record*: an app with `instances: 0` (it runs nothing, so
//!   changing its labels restarts nothing) labelled
//!   `BATON_SWITCH=<vhost>[,<vhost>...]` and `BATON_LIVE=<app id>`. The
//!   named app takes every new request of the group; the others get none
//!   (requests already sent finish where they are). One write to one
//!   record moves all traffic at once, in every router that follows the
//!   same Marathon. The same record may instead carry
//!   `BATON_WEIGHTS=<app id>:<weight>,...` (when `BATON_LIVE` is empty or
//!   absent), changed without restarting anything.
//! - Per-app `BATON_WEIGHT=<n>` labels, when no record speaks for the
//!   group.
//!
//! Weights split requests by smooth weighted round-robin (nginx's): over
//! any run of requests each app's share is within one request of its
//! weight's, interleaved. An app without routable instances, or with
//! weight 0, gets none while others can take them. `BATON_COLOR`
//! (`blue`, `green`, any name) is shown, not used to route.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// Label on a switch record: the vhosts it governs (comma-separated).
pub const LABEL_SWITCH: &str = "BATON_SWITCH";
/// Label on a switch record: the app that takes the group's requests.
pub const LABEL_LIVE: &str = "BATON_LIVE";
/// Label on a switch record: `<app id>:<weight>,...`.
pub const LABEL_WEIGHTS: &str = "BATON_WEIGHTS";
/// Label on an app: its weight in its group (no record speaking).
pub const LABEL_WEIGHT: &str = "BATON_WEIGHT";
/// Label on an app: its colour, for people.
pub const LABEL_COLOR: &str = "BATON_COLOR";

/// What a switch record says about its vhosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchRecord {
    /// The record's own app id.
    pub record_id: String,
    /// The live app, if one is named.
    pub live: Option<String>,
    /// Weights by app id (used without a live app).
    pub weights: BTreeMap<String, u32>,
}

/// Why a switch record's labels, or a switch asked for, are wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A `BATON_WEIGHTS` entry is not `<app id>:<weight>`.
    #[error("BATON_WEIGHTS entry '{0}' is not <app id>:<weight 0-1000000>")]
    Weight(String),
    /// A field of a switch request is missing or wrong.
    #[error("{field}: {problem}")]
    Request {
        /// The field, as in the JSON.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Reads `<app id>:<weight>,...`.
pub fn parse_weights(text: &str) -> Result<BTreeMap<String, u32>, SplitError> {
    let mut weights = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, weight) = entry
            .rsplit_once(':')
            .ok_or_else(|| SplitError::Weight(entry.to_string()))?;
        let weight = parse_weight(weight).ok_or_else(|| SplitError::Weight(entry.to_string()))?;
        weights.insert(normalize_id(id), weight);
    }
    Ok(weights)
}

/// A weight: an integer 0..=1,000,000.
pub fn parse_weight(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|w| *w <= 1_000_000)
}

/// An app id as Marathon writes it: with its leading `/`.
pub fn normalize_id(id: &str) -> String {
    let id = id.trim();
    if id.starts_with('/') {
        id.to_string()
    } else {
        format!("/{id}")
    }
}

/// How a group picks the app for a request.
#[derive(Debug)]
pub enum Split {
    /// Always this member (the first by id, or the live one).
    Fixed(usize),
    /// Smooth weighted round-robin over the members' weights.
    Weighted {
        /// Per member.
        weights: Vec<u32>,
        /// The algorithm's running scores, per member; shared with the
        /// same group of the next table while its members and weights stay
        /// ([`Split::carry_over`]), so that a table change (any app event)
        /// does not restart the rotation from zero.
        scores: Arc<Mutex<Vec<i64>>>,
    },
}

/// Where a group's split comes from, for `/_router/table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitSource {
    /// One app, or no rule: the first by id.
    First,
    /// A switch record's `BATON_LIVE`.
    Live,
    /// A switch record's `BATON_WEIGHTS`.
    RecordWeights,
    /// The apps' `BATON_WEIGHT` labels.
    AppWeights,
}

impl SplitSource {
    /// For `/_router/table`.
    pub fn name(self) -> &'static str {
        match self {
            SplitSource::First => "first",
            SplitSource::Live => "live",
            SplitSource::RecordWeights => "recordWeights",
            SplitSource::AppWeights => "appWeights",
        }
    }
}

/// The split of a group whose members (sorted by id) are `ids`, with
/// their own `BATON_WEIGHT`s, under `record` if one governs the vhost.
pub fn decide(
    ids: &[&str],
    app_weights: &[Option<u32>],
    record: Option<&SwitchRecord>,
) -> (Split, SplitSource) {
    if let Some(record) = record {
        if let Some(live) = &record.live {
            if let Some(i) = ids.iter().position(|id| id == live) {
                return (Split::Fixed(i), SplitSource::Live);
            }
        } else if ids.iter().any(|id| record.weights.contains_key(*id)) {
            let weights = ids
                .iter()
                .map(|id| record.weights.get(*id).copied().unwrap_or(0))
                .collect();
            return (weighted(weights), SplitSource::RecordWeights);
        }
    }
    if ids.len() > 1 && app_weights.iter().any(Option::is_some) {
        let weights = app_weights.iter().map(|w| w.unwrap_or(0)).collect();
        return (weighted(weights), SplitSource::AppWeights);
    }
    (Split::Fixed(0), SplitSource::First)
}

fn weighted(weights: Vec<u32>) -> Split {
    let scores = Arc::new(Mutex::new(vec![0; weights.len()]));
    Split::Weighted { weights, scores }
}

impl Split {
    /// Continues `previous`'s rotation when it split the same way (same
    /// weights, for the same members: the caller checks those).
    pub fn carry_over(&mut self, previous: &Split) {
        if let (
            Split::Weighted { weights, scores },
            Split::Weighted {
                weights: before,
                scores: running,
            },
        ) = (self, previous)
            && weights == before
        {
            *scores = running.clone();
        }
    }

    /// The member for the next request, among those `eligible` (routable
    /// instances) says; when none with weight is eligible, the heaviest
    /// (or first) member, which answers as it can (503 without instances).
    pub fn pick(&self, eligible: impl Fn(usize) -> bool) -> usize {
        match self {
            Split::Fixed(i) => *i,
            Split::Weighted { weights, scores } => {
                let mut scores = scores.lock().unwrap_or_else(|e| e.into_inner());
                let mut total = 0i64;
                let mut best: Option<usize> = None;
                for (i, &w) in weights.iter().enumerate() {
                    if w == 0 || !eligible(i) {
                        continue;
                    }
                    scores[i] += i64::from(w);
                    total += i64::from(w);
                    if best.is_none_or(|b| scores[i] > scores[b]) {
                        best = Some(i);
                    }
                }
                match best {
                    Some(b) => {
                        scores[b] -= total;
                        b
                    }
                    None => weights
                        .iter()
                        .enumerate()
                        .max_by_key(|(i, w)| (**w, std::cmp::Reverse(*i)))
                        .map_or(0, |(i, _)| i),
                }
            }
        }
    }

    /// The weights, for `/_router/table` (`None` for a fixed pick).
    pub fn weights(&self) -> Option<&[u32]> {
        match self {
            Split::Fixed(_) => None,
            Split::Weighted { weights, .. } => Some(weights),
        }
    }
}

/// A blue/green switch asked of a router (`POST /_router/switch`): move
/// `vhost` to the app `to` once it is ready, through a switch record, then
/// scale the group's other apps to 0 once their requests ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchRequest {
    /// The vhost whose group moves.
    pub vhost: String,
    /// The app that takes it.
    pub to: String,
    /// The switch record's app id (default: the record already governing
    /// the vhost, else `/baton-switch/<vhost>`).
    pub record: Option<String>,
    /// How long `to` may take to have all its instances routable.
    pub ready_timeout: Duration,
    /// How long the others' requests in flight may take to end.
    pub drain_timeout: Duration,
    /// Whether the others are scaled to 0 once drained.
    pub scale_down: bool,
}

impl SwitchRequest {
    /// From `{"vhost", "to", "record"?, "readyTimeoutSeconds"?,
    /// "drainTimeoutSeconds"?, "scaleDown"?}`.
    pub fn from_json(v: &Value) -> Result<SwitchRequest, SplitError> {
        let text = |field: &'static str| {
            v[field]
                .as_str()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(SplitError::Request {
                    field,
                    problem: "a non-empty string is required",
                })
        };
        let seconds = |field: &'static str, default: u64| match &v[field] {
            Value::Null => Ok(Duration::from_secs(default)),
            n => n
                .as_u64()
                .filter(|s| *s <= 86_400)
                .map(Duration::from_secs)
                .ok_or(SplitError::Request {
                    field,
                    problem: "whole seconds from 0 to 86400 are required",
                }),
        };
        let record = match &v["record"] {
            Value::Null => None,
            _ => Some(normalize_id(text("record")?)),
        };
        Ok(SwitchRequest {
            vhost: text("vhost")?.to_ascii_lowercase(),
            to: normalize_id(text("to")?),
            record,
            ready_timeout: seconds("readyTimeoutSeconds", 300)?,
            drain_timeout: seconds("drainTimeoutSeconds", 60)?,
            scale_down: match &v["scaleDown"] {
                Value::Null => true,
                b => b.as_bool().ok_or(SplitError::Request {
                    field: "scaleDown",
                    problem: "true or false is required",
                })?,
            },
        })
    }

    /// The record's id when none is named and none governs the vhost:
    /// `/baton-switch/<vhost>`, with what an app id may not hold as `-`.
    pub fn default_record(&self) -> String {
        let name: String = self
            .vhost
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!(
            "/baton-switch/{}",
            name.trim_matches(|c| c == '-' || c == '.')
        )
    }
}

/// Where a switch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the new app's instances to be routable.
    WaitingForReady,
    /// Writing the switch record and waiting to route by it.
    Switching,
    /// Routing to the new app; the others' requests in flight end.
    Draining,
    /// Scaling the others to 0.
    ScalingDown,
    /// Done.
    Done,
    /// Stopped; the events say why.
    Failed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::WaitingForReady => "waitingForReady",
            Phase::Switching => "switching",
            Phase::Draining => "draining",
            Phase::ScalingDown => "scalingDown",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }

    /// Whether it has ended.
    pub fn ended(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }
}

/// One switch's progress.
#[derive(Debug, Clone)]
pub struct SwitchProgress {
    /// Its number in this router.
    pub id: u64,
    /// What was asked.
    pub request: SwitchRequest,
    /// Where it is.
    pub phase: Phase,
    /// The record written.
    pub record: Option<String>,
    /// The apps it moved traffic from.
    pub from: Vec<String>,
    /// The first table generation routing by the record.
    pub switched_at_generation: Option<u64>,
    /// What happened, with the router clock's milliseconds.
    pub events: Vec<(u64, String)>,
}

impl SwitchProgress {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "vhost": self.request.vhost,
            "to": self.request.to,
            "from": self.from,
            "record": self.record,
            "phase": self.phase.name(),
            "switchedAtGeneration": self.switched_at_generation,
            "events": self.events.iter().map(|(ms, text)| json!({"atMs": ms, "event": text})).collect::<Vec<_>>(),
        })
    }
}

/// How many ended switches are kept for `/_router/switch`.
const KEPT_SWITCHES: usize = 32;

/// The router's switches, newest last.
#[derive(Debug, Default)]
pub struct SwitchLog {
    switches: Mutex<(u64, VecDeque<SwitchProgress>)>,
}

impl SwitchLog {
    /// Records a new switch, unless one for the same vhost still runs.
    pub fn start(&self, request: SwitchRequest, now_ms: u64) -> Result<u64, u64> {
        let mut guard = self.switches.lock().unwrap_or_else(|e| e.into_inner());
        let (next, switches) = &mut *guard;
        if let Some(running) = switches
            .iter()
            .find(|s| s.request.vhost == request.vhost && !s.phase.ended())
        {
            return Err(running.id);
        }
        *next += 1;
        let id = *next;
        let event = format!("asked to move {} to {}", request.vhost, request.to);
        switches.push_back(SwitchProgress {
            id,
            request,
            phase: Phase::WaitingForReady,
            record: None,
            from: Vec::new(),
            switched_at_generation: None,
            events: vec![(now_ms, event)],
        });
        while switches.len() > KEPT_SWITCHES {
            match switches.iter().position(|s| s.phase.ended()) {
                Some(i) => {
                    switches.remove(i);
                }
                None => break,
            }
        }
        Ok(id)
    }

    /// Changes switch `id` (and notes `event` at `now_ms`, if any).
    pub fn update(
        &self,
        id: u64,
        now_ms: u64,
        event: Option<String>,
        f: impl FnOnce(&mut SwitchProgress),
    ) {
        let mut guard = self.switches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.1.iter_mut().find(|s| s.id == id) {
            f(s);
            if let Some(event) = event {
                s.events.push((now_ms, event));
            }
        }
    }

    /// Switch `id`.
    pub fn get(&self, id: u64) -> Option<SwitchProgress> {
        let guard = self.switches.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.iter().find(|s| s.id == id).cloned()
    }

    /// `/_router/switch`.
    pub fn to_json(&self) -> Value {
        let guard = self.switches.lock().unwrap_or_else(|e| e.into_inner());
        json!({"switches": guard.1.iter().map(SwitchProgress::to_json).collect::<Vec<_>>()})
    }

    /// One switch as `/_router/switch/{id}` shows it.
    pub fn one_json(&self, id: u64) -> Option<Value> {
        self.get(id).map(|s| s.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(live: Option<&str>, weights: &str) -> SwitchRecord {
        SwitchRecord {
            record_id: "/switch".into(),
            live: live.map(str::to_string),
            weights: parse_weights(weights).unwrap(),
        }
    }

    #[test]
    fn a_live_app_takes_every_request_of_its_group() {
        let ids = ["/shop/blue", "/shop/green"];
        let (split, source) = decide(&ids, &[None, None], Some(&record(Some("/shop/green"), "")));
        assert_eq!(source, SplitSource::Live);
        assert!((0..100).all(|_| split.pick(|_| true) == 1));
        // Even without instances: the switch is what the operator said.
        assert_eq!(split.pick(|_| false), 1);
        // A record naming an app outside the group leaves it as it was.
        let (split, source) = decide(&ids, &[None, None], Some(&record(Some("/other"), "")));
        assert_eq!((split.pick(|_| true), source), (0, SplitSource::First));
    }

    #[test]
    fn weights_split_exactly_and_interleave() {
        let ids = ["/shop/blue", "/shop/green"];
        let (split, source) = decide(&ids, &[Some(90), Some(10)], None);
        assert_eq!(source, SplitSource::AppWeights);
        let picks: Vec<usize> = (0..2000).map(|_| split.pick(|_| true)).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 200);
        // Interleaved: never more than 9 blue in a row.
        let longest_blue = picks.split(|&p| p == 1).map(<[usize]>::len).max().unwrap();
        assert!(longest_blue <= 9, "{longest_blue}");
    }

    #[test]
    fn record_weights_override_app_weights_and_skip_apps_without_instances() {
        let ids = ["/a", "/b", "/c"];
        let (split, source) = decide(
            &ids,
            &[Some(1), Some(1), Some(1)],
            Some(&record(None, "/a:1,b:3")),
        );
        assert_eq!(source, SplitSource::RecordWeights);
        assert_eq!(split.weights(), Some(&[1, 3, 0][..]));
        let picks: Vec<usize> = (0..400).map(|_| split.pick(|_| true)).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 300);
        assert!(!picks.contains(&2), "weight 0 gets nothing");
        // /b has no instances: /a takes everything meanwhile.
        assert!((0..50).all(|_| split.pick(|i| i != 1) == 0));
        // Nobody eligible: the heaviest answers.
        assert_eq!(split.pick(|_| false), 1);
    }

    #[test]
    fn a_single_app_or_no_rule_picks_the_first_by_id() {
        let (split, source) = decide(&["/a"], &[Some(5)], None);
        assert_eq!((split.pick(|_| true), source), (0, SplitSource::First));
        let (split, source) = decide(&["/a", "/b"], &[None, None], None);
        assert_eq!((split.pick(|_| true), source), (0, SplitSource::First));
    }

    #[test]
    fn switch_requests_are_read_with_defaults_and_named_errors() {
        let r = SwitchRequest::from_json(&json!({"vhost": "Shop.Example.com", "to": "shop/green"}))
            .unwrap();
        assert_eq!(
            (r.vhost.as_str(), r.to.as_str()),
            ("shop.example.com", "/shop/green")
        );
        assert_eq!(
            (
                r.ready_timeout.as_secs(),
                r.drain_timeout.as_secs(),
                r.scale_down
            ),
            (300, 60, true)
        );
        assert_eq!(r.default_record(), "/baton-switch/shop.example.com");
        for (body, message) in [
            (json!({"to": "/a"}), "vhost: a non-empty string is required"),
            (
                json!({"vhost": "x", "to": ""}),
                "to: a non-empty string is required",
            ),
            (
                json!({"vhost": "x", "to": "/a", "drainTimeoutSeconds": -1}),
                "drainTimeoutSeconds: whole seconds from 0 to 86400 are required",
            ),
            (
                json!({"vhost": "x", "to": "/a", "scaleDown": "yes"}),
                "scaleDown: true or false is required",
            ),
        ] {
            assert_eq!(
                SwitchRequest::from_json(&body).unwrap_err().to_string(),
                message
            );
        }
    }

    #[test]
    fn one_switch_per_vhost_runs_at_a_time() {
        let log = SwitchLog::default();
        let request = SwitchRequest::from_json(&json!({"vhost": "x", "to": "/a"})).unwrap();
        let id = log.start(request.clone(), 1).unwrap();
        assert_eq!(log.start(request.clone(), 2), Err(id));
        log.update(id, 3, Some("done".into()), |s| s.phase = Phase::Done);
        let again = log.start(request, 4).unwrap();
        assert_ne!(again, id);
        let shown = log.to_json();
        assert_eq!(shown["switches"][0]["phase"], "done");
        assert_eq!(shown["switches"][0]["events"][1]["event"], "done");
        assert_eq!(shown["switches"][1]["phase"], "waitingForReady");
    }

    #[test]
    fn bad_weights_are_named() {
        assert_eq!(
            parse_weights("/a:1,/b").unwrap_err().to_string(),
            "BATON_WEIGHTS entry '/b' is not <app id>:<weight 0-1000000>"
        );
        assert!(parse_weights("/a:-1").is_err());
        assert!(parse_weights("/a:2000000").is_err());
        assert_eq!(parse_weights(" a:1 , /b:2 ").unwrap().len(), 2);
    }
}
