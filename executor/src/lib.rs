//! `baton-executor`: Baton's Mesos v1 executor. It subscribes to the agent
//! over the executor HTTP API, runs command tasks as process groups in the
//! sandbox, reports their status updates reliably and kills them under
//! their kill policy. In local mode it is also the command executor for
//! tasks that carry no ExecutorInfo.
//!
//! # Layout
//!
//! - [`config`]: the `MESOS_*` environment (plus `BATON_EXECUTOR_ENCODING`)
//!   read into a [`Config`], every problem reported at once.
//! - [`agent`]: the HTTP caller: SUBSCRIBE and its RecordIO event stream on
//!   one client, UPDATE/HEARTBEAT on another, typed [`agent::AgentError`]s
//!   that know whether a retry can help.
//! - [`task`]: command tasks as processes: the pure [`task::CommandSpec`]
//!   (shell or argv form, environment, working directory), spawning in a
//!   new process group with output to `stdout`/`stderr` files, exit
//!   statuses, signalling whole groups.
//! - [`health`]: health checks per `TaskInfo.health_check`: the pure
//!   per-task [`health::Checker`] (delay, interval, grace period, what to
//!   report, when to kill) and, in [`health::probe`], running one HTTP, TCP
//!   or COMMAND check under its timeout.
//! - [`load`]: load reports (each task's CPU and memory from `/proc`,
//!   summed over its process group, and the host's load average) sent to
//!   the framework as MESSAGE calls, for load-aware balancing.
//! - [`executor`]: the state machine, free of I/O: tasks by id,
//!   unacknowledged tasks and updates, what each event does, kill grace,
//!   health verdicts, when to reconnect and when to exit.
//! - [`run`](mod@run): the event loop joining them: connection with
//!   backoff, process exits, health checks, timers and signals.
//!
//! `main.rs` only reads the environment, sets up logging to stderr (which
//! the sandbox captures) and calls [`run()`].
//!
//! # Exit codes
//!
//! 0 when every task ended and its terminal update was acknowledged, or
//! after SHUTDOWN (or SIGTERM/SIGINT); 1 when the agent was lost (no
//! checkpointing, recovery timeout, or a SUBSCRIBE it refused) and the tasks
//! were killed; 2 when the environment is invalid.

pub mod agent;
pub mod config;
pub mod executor;
pub mod health;
pub mod load;
pub mod run;
pub mod task;

pub use config::Config;
pub use executor::Outcome;
pub use run::{RunError, run};
