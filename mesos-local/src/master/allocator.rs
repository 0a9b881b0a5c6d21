//! Who gets which agent's free resources, and what the offer looks like.
//! Pure functions over values; the master calls them every allocation
//! interval.
//!
//! The policy is a small version of Mesos's hierarchical allocator: each
//! agent's free remainder goes, as one offer, to the active framework with
//! the smallest dominant share that has not refused it; of it, only the
//! unreserved resources and those reserved to the framework's role. What a
//! role's reservation leaves is offered the same way to the next framework. A refusal
//! (DECLINE, or resources left unused by an ACCEPT) installs a filter for
//! that framework and agent which only holds back offers that are a subset
//! of what was refused, and expires after `max(refuse_seconds,
//! allocation_interval)`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use mesos_proto::v1;
use tokio::time::Instant;

use crate::resources::{Format, Resources};

/// Mesos caps `refuse_seconds` at a year.
const MAX_REFUSE: Duration = Duration::from_secs(365 * 24 * 3600);
/// `Filters.refuse_seconds` default.
pub const DEFAULT_REFUSE_SECONDS: f64 = 5.0;

/// Resources a framework refused on one agent, until `expires`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefuseFilter {
    /// What was refused.
    pub resources: Resources,
    /// When the filter stops applying.
    pub expires: Instant,
}

/// How long a refusal filter lasts, `None` for no filter (`refuse_seconds`
/// of 0). Negative or non-numbers mean the default; very large values are
/// capped at a year; a filter never lasts less than one allocation interval.
pub fn filter_duration(
    refuse_seconds: Option<f64>,
    allocation_interval: Duration,
) -> Option<Duration> {
    let mut secs = refuse_seconds.unwrap_or(DEFAULT_REFUSE_SECONDS);
    if !secs.is_finite() && secs > 0.0 {
        secs = MAX_REFUSE.as_secs_f64();
    }
    if secs.is_nan() || secs < 0.0 {
        secs = DEFAULT_REFUSE_SECONDS;
    }
    if secs == 0.0 {
        return None;
    }
    let d = Duration::from_secs_f64(secs.min(MAX_REFUSE.as_secs_f64()));
    Some(d.max(allocation_interval))
}

/// Whether `filter` holds back an offer of `available` at `now`.
pub fn is_filtered(filter: Option<&RefuseFilter>, available: &Resources, now: Instant) -> bool {
    filter.is_some_and(|f| f.expires > now && f.resources.contains(available))
}

/// Mesos's default `--min_allocatable_resources=cpus:0.01|mem:32`: an offer
/// is worth making if it has either.
pub fn is_allocatable(r: &Resources) -> bool {
    r.total_scalar("cpus") >= 0.01 || r.total_scalar("mem") >= 32.0
}

/// One agent's free resources.
#[derive(Debug, Clone)]
pub struct AgentSlot {
    /// 1-based agent index.
    pub index: usize,
    /// Total minus used minus offered.
    pub available: Resources,
}

/// A framework that may receive offers.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Its id.
    pub framework_id: &'a str,
    /// The role offers are made to.
    pub role: &'a str,
    /// Dominant share of what it holds now (used + offered).
    pub share: f64,
    /// Its refusal filters by (role, agent index).
    pub filters: &'a HashMap<(String, usize), RefuseFilter>,
    /// It has RESERVATION_REFINEMENT (may be offered refined reservations).
    pub refinement: bool,
}

/// An offer to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// To whom.
    pub framework_id: String,
    /// For which role.
    pub role: String,
    /// Which agent.
    pub agent: usize,
    /// What.
    pub resources: Resources,
}

/// Decides this round's offers: each agent's free resources go to the
/// unfiltered candidate with the smallest share (ties by id), as far as
/// its role may have them; what is left to the next one.
pub fn allocate(
    agents: &[AgentSlot],
    candidates: &mut [Candidate<'_>],
    cluster_total: &Resources,
    now: Instant,
) -> Vec<Allocation> {
    let mut out = Vec::new();
    for slot in agents {
        let mut available = slot.available.clone();
        let mut served: Vec<usize> = Vec::new();
        loop {
            if !is_allocatable(&available) {
                break;
            }
            let best = candidates
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| !served.contains(i))
                .map(|(i, c)| {
                    let offerable = available.offerable_to(c.role, c.refinement);
                    (i, c, offerable)
                })
                .filter(|(_, c, offerable)| {
                    is_allocatable(offerable)
                        && !is_filtered(
                            c.filters.get(&(c.role.to_string(), slot.index)),
                            offerable,
                            now,
                        )
                })
                .min_by(|(_, a, _), (_, b, _)| {
                    a.share
                        .total_cmp(&b.share)
                        .then_with(|| a.framework_id.cmp(b.framework_id))
                });
            let Some((i, c, offerable)) = best else {
                break;
            };
            served.push(i);
            c.share += offerable.dominant_share(cluster_total);
            available.subtract(&offerable);
            out.push(Allocation {
                framework_id: c.framework_id.to_string(),
                role: c.role.to_string(),
                agent: slot.index,
                resources: offerable,
            });
        }
    }
    out
}

/// What an offer describes about its agent.
#[derive(Debug, Clone)]
pub struct AgentView<'a> {
    /// `<master>-S<i>`.
    pub agent_id: &'a str,
    /// `127.0.0.<i>`.
    pub hostname: &'a str,
    /// The agent's HTTP address.
    pub endpoint: SocketAddr,
    /// `rack_id`.
    pub attributes: &'a [v1::Attribute],
}

/// Builds the `mesos.v1.Offer`. `allocation_info` (on the offer and each
/// resource) only for MULTI_ROLE frameworks, as Mesos strips it otherwise.
pub fn build_offer(
    offer_id: &str,
    framework_id: &str,
    agent: &AgentView<'_>,
    resources: &Resources,
    multi_role: Option<&str>,
    format: Format,
    executor_ids: Vec<String>,
) -> v1::Offer {
    v1::Offer {
        id: mesos_proto::util::offer_id(offer_id),
        framework_id: mesos_proto::util::framework_id(framework_id),
        agent_id: mesos_proto::util::agent_id(agent.agent_id),
        hostname: agent.hostname.to_string(),
        url: Some(v1::Url {
            scheme: "http".into(),
            address: v1::Address {
                hostname: Some(agent.hostname.to_string()),
                ip: Some(agent.endpoint.ip().to_string()),
                port: i32::from(agent.endpoint.port()),
            },
            path: Some("/slave(1)".into()),
            ..Default::default()
        }),
        resources: resources.to_protos(multi_role, format),
        attributes: agent.attributes.to_vec(),
        executor_ids: executor_ids
            .into_iter()
            .map(mesos_proto::util::executor_id)
            .collect(),
        allocation_info: multi_role.map(|role| v1::resource::AllocationInfo {
            role: Some(role.to_string()),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_res(cpus: f64, mem: f64) -> Resources {
        Resources::agent(cpus, mem, 1000.0, (31000, 31099))
    }

    #[test]
    fn refuse_durations_follow_mesos() {
        let ai = Duration::from_secs(1);
        assert_eq!(filter_duration(None, ai), Some(Duration::from_secs(5)));
        assert_eq!(filter_duration(Some(0.0), ai), None);
        assert_eq!(
            filter_duration(Some(-3.0), ai),
            Some(Duration::from_secs(5))
        );
        assert_eq!(filter_duration(Some(0.2), ai), Some(ai));
        assert_eq!(filter_duration(Some(1e12), ai), Some(MAX_REFUSE));
        assert_eq!(filter_duration(Some(f64::INFINITY), ai), Some(MAX_REFUSE));
        assert_eq!(
            filter_duration(Some(3600.0), ai),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn filters_hold_back_subsets_until_they_expire() {
        let now = Instant::now();
        let refused = agent_res(4.0, 4096.0);
        let f = RefuseFilter {
            resources: refused.clone(),
            expires: now + Duration::from_secs(5),
        };
        assert!(is_filtered(Some(&f), &refused, now));
        assert!(is_filtered(Some(&f), &agent_res(1.0, 100.0), now));
        // More resources freed up: the filter no longer covers the offer.
        assert!(!is_filtered(Some(&f), &agent_res(5.0, 4096.0), now));
        assert!(!is_filtered(
            Some(&f),
            &refused,
            now + Duration::from_secs(5)
        ));
        assert!(!is_filtered(None, &refused, now));
    }

    #[test]
    fn min_allocatable_is_cpus_or_mem() {
        assert!(is_allocatable(&agent_res(0.01, 0.0)));
        assert!(is_allocatable(&agent_res(0.0, 32.0)));
        assert!(!is_allocatable(&agent_res(0.009, 31.0)));
    }

    #[test]
    fn each_agent_goes_to_one_framework_by_share_and_filters() {
        let now = Instant::now();
        let total = agent_res(12.0, 12288.0);
        let slots: Vec<AgentSlot> = (1..=3)
            .map(|i| AgentSlot {
                index: i,
                available: agent_res(4.0, 4096.0),
            })
            .collect();
        let no_filters = HashMap::new();
        let mut b_filters = HashMap::new();
        b_filters.insert(
            ("*".to_string(), 1),
            RefuseFilter {
                resources: agent_res(4.0, 4096.0),
                expires: now + Duration::from_secs(5),
            },
        );
        let mut cands = vec![
            Candidate {
                framework_id: "a",
                role: "*",
                share: 0.5,
                filters: &no_filters,
                refinement: false,
            },
            Candidate {
                framework_id: "b",
                role: "*",
                share: 0.0,
                filters: &b_filters,
                refinement: false,
            },
        ];
        let out = allocate(&slots, &mut cands, &total, now);
        let who: Vec<(&str, usize)> = out
            .iter()
            .map(|a| (a.framework_id.as_str(), a.agent))
            .collect();
        // Agent 1: b refused it, so a. Agent 2: b has the smaller share.
        // Agent 3: b now holds 1/3, a 0.5+1/3: b again.
        assert_eq!(who, vec![("a", 1), ("b", 2), ("b", 3)]);

        let mut none: Vec<Candidate<'_>> = Vec::new();
        assert!(allocate(&slots, &mut none, &total, now).is_empty());
    }

    #[test]
    fn offers_describe_the_agent() {
        let attrs = vec![mesos_proto::util::text_attribute("rack_id", "rack-2")];
        let view = AgentView {
            agent_id: "m-S2",
            hostname: "127.0.0.2",
            endpoint: "127.0.0.2:4242".parse().unwrap(),
            attributes: &attrs,
        };
        let o = build_offer(
            "m-O1",
            "m-0000",
            &view,
            &agent_res(1.0, 64.0),
            None,
            Format::Pre,
            vec!["e1".into()],
        );
        assert_eq!(o.hostname, "127.0.0.2");
        assert_eq!(o.attributes, attrs);
        assert_eq!(o.executor_ids[0].value, "e1");
        assert!(o.allocation_info.is_none());
        assert!(o.resources.iter().all(|r| r.allocation_info.is_none()));
        assert_eq!(o.url.unwrap().address.port, 4242);
        let o = build_offer(
            "m-O2",
            "m-0000",
            &view,
            &agent_res(1.0, 64.0),
            Some("web"),
            Format::Pre,
            vec![],
        );
        assert_eq!(o.allocation_info.unwrap().role.as_deref(), Some("web"));
        assert!(o.resources.iter().all(|r| r.allocation_info.is_some()));
    }

    #[test]
    fn a_refusal_holds_back_only_the_role_it_was_made_for() {
        let now = Instant::now();
        let total = agent_res(4.0, 4096.0);
        let slots = vec![AgentSlot {
            index: 1,
            available: agent_res(4.0, 4096.0),
        }];
        let mut filters = HashMap::new();
        filters.insert(
            ("*".to_string(), 1),
            RefuseFilter {
                resources: agent_res(4.0, 4096.0),
                expires: now + Duration::from_secs(5),
            },
        );
        // One framework, two roles: "*" refused the agent, "db" did not.
        let mut cands: Vec<Candidate<'_>> = ["*", "db"]
            .into_iter()
            .map(|role| Candidate {
                framework_id: "a",
                role,
                share: 0.0,
                filters: &filters,
                refinement: false,
            })
            .collect();
        let out = allocate(&slots, &mut cands, &total, now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].role, "db");
    }

    #[test]
    fn a_roles_reservation_is_offered_to_that_role_only() {
        let now = Instant::now();
        // 2 cpus reserved for web, and unreserved memory.
        let mut reserved = mesos_proto::util::scalar_resource("cpus", 2.0);
        reserved.reservations = vec![v1::resource::ReservationInfo {
            r#type: Some(v1::resource::reservation_info::Type::Dynamic as i32),
            role: Some("web".into()),
            ..Default::default()
        }];
        let available =
            Resources::from_protos(&[reserved, mesos_proto::util::scalar_resource("mem", 1024.0)])
                .unwrap();
        let slots = vec![AgentSlot {
            index: 1,
            available: available.clone(),
        }];
        let none = HashMap::new();
        // db comes first (ties go by id), yet gets no cpus: they are web's.
        let mut cands: Vec<Candidate<'_>> = [("a", "db"), ("b", "web")]
            .into_iter()
            .map(|(framework_id, role)| Candidate {
                framework_id,
                role,
                share: 0.0,
                filters: &none,
                refinement: true,
            })
            .collect();
        let out = allocate(&slots, &mut cands, &available, now);
        let by_role = |role: &str| {
            out.iter()
                .find(|a| a.role == role)
                .map(|a| a.resources.clone())
        };
        let db = by_role("db").expect("db is offered the unreserved memory");
        assert_eq!(db.total_scalar("cpus"), 0.0);
        assert_eq!(db.total_scalar("mem"), 1024.0);
        let web = by_role("web").expect("web is offered its reservation");
        assert_eq!(web.total_scalar("cpus"), 2.0);
    }
}
