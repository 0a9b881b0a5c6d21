//! Offer matching: pure functions from offers and task specs to placements.
//! No I/O; the reconcile loop feeds offers in and sends the ACCEPTs out.
//!
//! [`resources`] tracks what is left of an offer while tasks are carved out
//! of it; [`task_info`] builds the `TaskInfo` Mesos launches.

pub mod constraints;
pub mod resources;
pub mod task_info;

pub use resources::{Allocation, Remaining};
pub use task_info::build_task_info;
