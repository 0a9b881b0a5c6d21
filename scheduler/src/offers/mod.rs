//! Offer matching: pure functions from offers and apps to placements.
//! No I/O; the reconcile loop feeds offers in and sends the ACCEPTs out.
//!
//! [`resources`] tracks what is left of an offer while tasks are carved out
//! of it; [`constraints`] judges one offer against Marathon's constraints;
//! [`placement`] decides, for a whole batch of offers, which waiting
//! instances go where and why the rest could not; [`task_info`] builds the
//! `TaskInfo` Mesos launches, and [`executor`] wraps it for `baton-executor`;
//! [`task_group`] builds a pod instance's LAUNCH_GROUP;
//! [`known`] remembers which agents may still offer, for GROUP_BY;
//! [`reservation`] reserves resources and persistent volumes for resident
//! instances and finds them again in later offers.

pub mod constraints;
pub mod executor;
pub mod known;
pub mod placement;
pub mod reservation;
pub mod resources;
pub mod task_group;
pub mod task_info;

pub use executor::{ExecutorError, ExecutorSettings, with_baton_executor};
pub use placement::{Demand, PlacementOptions, Plan, RejectReason, place};
pub use resources::{Allocation, PortRequest, Remaining, ResourceRequest};
pub use task_info::build_app_task_info;
