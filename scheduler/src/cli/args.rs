//! The CLI's commands and flags (clap derive). `baton <command> ...`; the
//! binary's scheduler flags stay on the top level, and a command excludes
//! them (`args_conflicts_with_subcommands` in `main.rs`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Where the server is and how to talk to it; accepted after any command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server: Baton, or Marathon.
    #[arg(
        long,
        env = "BATON_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// User for HTTP Basic (Baton's --http_credentials).
    #[arg(long, env = "BATON_USER", global = true)]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(long, env = "BATON_PASSWORD", hide_env_values = true, global = true)]
    pub password: Option<String>,
    /// File holding the password of --user (one trailing newline ignored).
    #[arg(long = "password_file", env = "BATON_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// PEM certificates trusted for https:// servers, besides the system's.
    #[arg(long = "ca_file", env = "BATON_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Print the API's JSON (for scripts) instead of tables; waiting for a
    /// deployment prints nothing more.
    #[arg(long, global = true)]
    pub json: bool,
    /// Return as soon as a change is accepted; do not wait for its
    /// deployment.
    #[arg(long = "no-wait", global = true)]
    pub no_wait: bool,
}

/// A CLI command.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apps: list, show, add, update, scale, restart, suspend, remove.
    App {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        action: AppAction,
    },
    /// Pods: list, show, add, update, scale, remove, kill an instance.
    Pod {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        action: PodAction,
    },
    /// Groups of apps: list, show, add, update, remove, scale.
    Group {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        action: GroupAction,
    },
    /// Deployments in progress: list, watch, cancel, rollback.
    Deployment {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        action: DeploymentAction,
    },
    /// Tasks: list, kill, logs.
    Task {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        action: TaskAction,
    },
    /// Instances waiting for offers, and why offers were declined.
    Queue {
        #[command(flatten)]
        connection: Connection,
    },
    /// The leading Baton (or Marathon).
    Leader {
        #[command(flatten)]
        connection: Connection,
    },
    /// The server's identity and configuration.
    Info {
        #[command(flatten)]
        connection: Connection,
    },
    /// Move a vhost to another app at once through a baton-router
    /// (blue/green), wait until the old apps drained, scale them to 0.
    Switch {
        #[command(flatten)]
        connection: Connection,
        #[command(flatten)]
        args: SwitchArgs,
    },
}

/// `baton switch`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct SwitchArgs {
    /// The vhost whose apps share it (e.g. shop.example.com).
    pub vhost: String,
    /// The app that takes every new request of it.
    #[arg(long)]
    pub to: String,
    /// The baton-router that drives the switch (any router following the
    /// same Baton: every one moves at once).
    #[arg(
        long,
        env = "BATON_ROUTER_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub router: String,
    /// The switch record's app id (default: the one governing the vhost,
    /// else `/baton-switch/<vhost>`).
    #[arg(long)]
    pub record: Option<String>,
    /// Seconds the new app may take to have all its instances routable
    /// (router's default 300).
    #[arg(long = "ready-timeout")]
    pub ready_timeout: Option<u64>,
    /// Seconds the old apps' requests in flight may take to end (router's
    /// default 60).
    #[arg(long = "drain-timeout")]
    pub drain_timeout: Option<u64>,
    /// Leave the old apps running (not scaled to 0).
    #[arg(long = "keep-old")]
    pub keep_old: bool,
}

impl Command {
    /// The connection flags every command has.
    pub fn connection(&self) -> &Connection {
        match self {
            Command::App { connection, .. }
            | Command::Pod { connection, .. }
            | Command::Group { connection, .. }
            | Command::Deployment { connection, .. }
            | Command::Task { connection, .. }
            | Command::Queue { connection }
            | Command::Leader { connection }
            | Command::Info { connection }
            | Command::Switch { connection, .. } => connection,
        }
    }
}

/// `--force`: override a deployment holding the app.
#[derive(Debug, Clone, Copy, Args)]
pub struct Force {
    /// Change it even while a deployment holds it (that deployment is
    /// cancelled).
    #[arg(long)]
    pub force: bool,
}

/// `baton app ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AppAction {
    /// Every app with its instances, health and deployment.
    List,
    /// One app, with its tasks.
    Show {
        /// The app id, e.g. /team-a/web.
        id: String,
    },
    /// Create an app from a JSON definition (`-` reads stdin).
    Add {
        /// The app definition.
        file: String,
        #[command(flatten)]
        force: Force,
    },
    /// Change an app (merged into its definition; created if missing).
    Update {
        /// The app id.
        id: String,
        /// The changes, JSON (`-` reads stdin).
        file: String,
        #[command(flatten)]
        force: Force,
    },
    /// Set an app's number of instances.
    Scale {
        /// The app id.
        id: String,
        /// Instances wanted.
        instances: u32,
        #[command(flatten)]
        force: Force,
    },
    /// Replace every instance (rolling, within the upgrade strategy).
    Restart {
        /// The app id.
        id: String,
        #[command(flatten)]
        force: Force,
    },
    /// Scale an app to 0 instances, keeping its definition.
    Suspend {
        /// The app id.
        id: String,
        #[command(flatten)]
        force: Force,
    },
    /// Delete an app and stop its instances.
    Remove {
        /// The app id.
        id: String,
    },
}

/// `baton pod ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum PodAction {
    /// Every pod with its status, instances and containers.
    List,
    /// One pod, with each instance and its containers.
    Show {
        /// The pod id, e.g. /shop/web.
        id: String,
    },
    /// Create a pod from a JSON definition (`-` reads stdin).
    Add {
        /// The pod definition.
        file: String,
        #[command(flatten)]
        force: Force,
    },
    /// Replace a pod's definition (created if missing).
    Update {
        /// The pod id.
        id: String,
        /// The whole pod definition, JSON (`-` reads stdin).
        file: String,
        #[command(flatten)]
        force: Force,
    },
    /// Set a pod's number of instances.
    Scale {
        /// The pod id.
        id: String,
        /// Instances wanted.
        instances: u32,
        #[command(flatten)]
        force: Force,
    },
    /// Delete a pod and stop its instances.
    Remove {
        /// The pod id.
        id: String,
        #[command(flatten)]
        force: Force,
    },
    /// Kill instances of a pod; they are relaunched unless --wipe.
    Kill {
        /// The pod id.
        id: String,
        /// Instance ids (`<pod>.instance-<uuid>`).
        #[arg(required = true)]
        instances: Vec<String>,
        /// Also forget the instances (a resident one gives up its volumes).
        #[arg(long)]
        wipe: bool,
    },
}

/// `baton group ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum GroupAction {
    /// Every group with its apps and instances.
    List,
    /// One group as a tree of its groups and apps.
    Show {
        /// The group id (`/` for the root).
        id: String,
    },
    /// Create a group from a JSON definition (`-` reads stdin).
    Add {
        /// The group definition.
        file: String,
        #[command(flatten)]
        force: Force,
    },
    /// Replace a group's subtree (apps it no longer lists are removed).
    Update {
        /// The group id.
        id: String,
        /// The group definition (`-` reads stdin).
        file: String,
        #[command(flatten)]
        force: Force,
    },
    /// Delete a group and everything in it.
    Remove {
        /// The group id.
        id: String,
        #[command(flatten)]
        force: Force,
    },
    /// Multiply the instances of every app in a group.
    Scale {
        /// The group id.
        id: String,
        /// The factor (e.g. 2, 0.5).
        factor: f64,
        #[command(flatten)]
        force: Force,
    },
}

/// `baton deployment ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum DeploymentAction {
    /// Deployments in progress, with their step and any failure.
    List,
    /// Follow a deployment to its end, with its progress.
    Watch {
        /// The deployment id.
        id: String,
    },
    /// Stop a deployment where it is, without rolling back
    /// (`DELETE /v2/deployments/ID?force=true`).
    Cancel {
        /// The deployment id.
        id: String,
    },
    /// Revert a deployment's changes (a new deployment; waited for).
    Rollback {
        /// The deployment id.
        id: String,
    },
}

/// `baton task ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TaskAction {
    /// Running and staging tasks (of one app, or all).
    List {
        /// Only this app's tasks.
        app: Option<String>,
    },
    /// Kill tasks; their instances are replaced unless --scale or --wipe.
    Kill {
        /// Task ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Also lower the app's instances (a deployment, waited for).
        #[arg(long)]
        scale: bool,
        /// Also forget the instances (no replacement with the same id).
        #[arg(long)]
        wipe: bool,
    },
    /// A task's stdout (or stderr), read from its Mesos sandbox.
    Logs {
        /// The task id (also an ended task the master still knows).
        id: String,
        /// Keep printing what the task writes, until Ctrl-C.
        #[arg(short = 'f', long)]
        follow: bool,
        /// The task's stderr instead of its stdout.
        #[arg(long)]
        stderr: bool,
        /// How many of the last lines to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// The Mesos master (`http://host:5050`); default: the one the
        /// server reports in /v2/info.
        #[arg(long)]
        master: Option<String>,
    },
}
