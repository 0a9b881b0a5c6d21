//! The operator CLI: `baton app|pod|group|deployment|task|queue|leader|info|switch`.
//! It speaks only the REST API (and, for `task logs`, the Mesos master's
//! and agents' HTTP endpoints), so it works against a real Marathon too.
//!
//! # Layout
//!
//! - [`args`]: the commands and flags (clap); `main.rs` parses them next
//!   to the scheduler's flags and hands a [`Command`] to [`run`].
//! - [`client`]: the HTTP client (hyper + rustls for `https://`, HTTP
//!   Basic, deadlines) and the `/v2/events` stream.
//! - [`sse`]: the Server-Sent Events parser (pure).
//! - [`error`]: [`CliError`], readable error answers, the exit codes
//!   ([`EXIT_CODES`]).
//! - [`table`]: text tables (pure).
//! - [`progress`]: how far a deployment is, per step and app (pure).
//! - [`watch`]: following a deployment to its end — from `/v2/events`,
//!   re-reading `/v2/deployments` and the apps on relevant events, with a
//!   slow poll as a fallback — as progress bars on a TTY, plain lines
//!   otherwise; and the common end of every write that starts one.
//! - [`apps`] (apps and groups), [`pods`], [`deployments`], [`tasks`] (list,
//!   kill), [`logs`] (a task's sandbox files through the Mesos agent's
//!   `/files/read`), [`system`] (queue, leader, info), [`switch`] (a
//!   blue/green switch through a `baton-router`): the commands.
//!
//! Output: tables and sentences for people; `--json` prints the API's
//! JSON unchanged. Progress bars only when stdout is a terminal; otherwise
//! one plain line per change. Diagnostics go through `tracing` to stderr
//! (`RUST_LOG=baton=debug`). Ctrl-C stops waiting, never a deployment.

pub mod apps;
pub mod args;
pub mod client;
pub mod deployments;
pub mod error;
pub mod logs;
pub mod pods;
pub mod progress;
pub mod sse;
pub mod switch;
pub mod system;
pub mod table;
pub mod tasks;
pub mod watch;

use std::io::IsTerminal;
use std::path::Path;

pub use args::Command;
pub use error::{CliError, EXIT_CODES};

use args::Connection;
use client::Client;

/// What every command works with.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The server.
    pub client: Client,
    /// `--json`.
    pub json: bool,
    /// Wait for deployments (not `--no-wait`).
    pub wait: bool,
    /// stdout is a terminal: progress bars rather than lines.
    pub tty: bool,
}

impl Ctx {
    /// Prints `value` as the JSON answer (`--json`), pretty on a terminal.
    pub fn print_json(&self, value: &serde_json::Value) {
        let text = if self.tty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        };
        println!("{}", text.unwrap_or_default());
    }
}

/// The password from `--password` or `--password_file` (one trailing
/// newline dropped).
fn password(connection: &Connection) -> Result<Option<String>, CliError> {
    match (&connection.password, &connection.password_file) {
        (Some(_), Some(_)) => Err(CliError::Usage(
            "--password and --password_file exclude each other".into(),
        )),
        (Some(p), None) => Ok(Some(p.clone())),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                CliError::Usage(format!(
                    "cannot read --password_file {}: {e}",
                    file.display()
                ))
            })?;
            let text = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            Ok(Some(text.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// The context the connection flags describe.
pub fn context(connection: &Connection) -> Result<Ctx, CliError> {
    let password = password(connection)?;
    let credentials = match (&connection.user, &password) {
        (Some(user), Some(password)) => Some((user.as_str(), password.as_str())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(CliError::Usage(
                "--user needs --password or --password_file (or BATON_PASSWORD)".into(),
            ));
        }
        (None, Some(_)) => return Err(CliError::Usage("a password needs --user".into())),
    };
    let client = Client::new(
        &connection.url,
        credentials,
        connection.ca_file.as_deref().map(Path::new),
    )?;
    Ok(Ctx {
        client,
        json: connection.json,
        wait: !connection.no_wait,
        tty: std::io::stdout().is_terminal(),
    })
}

/// A file's bytes, or stdin's for `-`.
pub fn read_input(file: &str) -> Result<Vec<u8>, CliError> {
    if file == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
        return Ok(bytes);
    }
    std::fs::read(file).map_err(|e| CliError::Usage(format!("cannot read {file}: {e}")))
}

/// `/<id>` for an app or group id given with or without its slashes.
pub fn id_path(id: &str) -> String {
    format!("/{}", id.trim_matches('/'))
}

async fn execute(command: Command) -> Result<(), CliError> {
    let ctx = context(command.connection())?;
    match command {
        Command::App { action, .. } => apps::app(&ctx, action).await,
        Command::Pod { action, .. } => pods::run(&ctx, action).await,
        Command::Group { action, .. } => apps::group(&ctx, action).await,
        Command::Deployment { action, .. } => deployments::run(&ctx, action).await,
        Command::Task { action, .. } => tasks::run(&ctx, action).await,
        Command::Queue { .. } => system::queue(&ctx).await,
        Command::Leader { .. } => system::leader(&ctx).await,
        Command::Info { .. } => system::info(&ctx).await,
        Command::Switch { args, .. } => switch::run(&ctx, &args).await,
    }
}

/// What an interrupted command says besides "interrupted" while it
/// applies (a deployment being watched goes on): whichever listener sees
/// the Ctrl-C first, the user gets the same words.
static INTERRUPT_NOTE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Sets (or, with `None`, clears) what an interruption says from now on.
pub(crate) fn set_interrupt_note(note: Option<String>) {
    if let Ok(mut slot) = INTERRUPT_NOTE.lock() {
        *slot = note;
    }
}

fn interrupt_note() -> Option<String> {
    INTERRUPT_NOTE.lock().ok().and_then(|mut slot| slot.take())
}

/// Runs a CLI command to its end and returns the process's exit code
/// ([`EXIT_CODES`]), having told the user what went wrong.
pub async fn run(command: Command) -> i32 {
    let outcome = tokio::select! {
        biased;
        outcome = execute(command) => outcome,
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted(interrupt_note())),
    };
    match outcome {
        Ok(()) => 0,
        Err(e @ CliError::Interrupted(_)) => {
            eprintln!("{e}");
            e.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The CLI as `main.rs` nests it: a subcommand of `baton`.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("baton").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn connection_flags_go_after_any_command() {
        let c = parse(&["app", "list", "--json", "--url", "http://h:1", "--no-wait"]).unwrap();
        let conn = c.connection();
        assert!(conn.json && conn.no_wait);
        assert_eq!(conn.url, "http://h:1");
        let c = parse(&["app", "--user", "alice", "scale", "/web", "3", "--force"]).unwrap();
        assert_eq!(c.connection().user.as_deref(), Some("alice"));
        let Command::App {
            action:
                args::AppAction::Scale {
                    id,
                    instances,
                    force,
                },
            ..
        } = c
        else {
            panic!("{c:?}");
        };
        assert_eq!((id.as_str(), instances, force.force), ("/web", 3, true));
    }

    #[test]
    fn task_logs_and_kill_arguments() {
        let c = parse(&["task", "logs", "t1", "-f", "-n", "5", "--stderr"]).unwrap();
        let Command::Task {
            action:
                args::TaskAction::Logs {
                    id,
                    follow,
                    stderr,
                    lines,
                    master,
                },
            ..
        } = c
        else {
            panic!("{c:?}");
        };
        assert_eq!((id.as_str(), follow, stderr, lines), ("t1", true, true, 5));
        assert_eq!(master, None);
        assert!(parse(&["task", "kill"]).is_err(), "needs a task id");
        assert!(parse(&["app", "scale", "/web", "many"]).is_err());
        assert!(parse(&["group", "scale", "/g", "0.5"]).is_ok());
    }

    #[test]
    fn credentials_need_a_user_and_a_password() {
        let conn = |user: Option<&str>, password: Option<&str>| Connection {
            url: "http://127.0.0.1:1".into(),
            user: user.map(str::to_string),
            password: password.map(str::to_string),
            password_file: None,
            ca_file: None,
            json: false,
            no_wait: false,
        };
        assert!(context(&conn(Some("alice"), Some("pw"))).is_ok());
        assert!(context(&conn(None, None)).is_ok());
        assert!(matches!(
            context(&conn(Some("alice"), None)),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            context(&conn(None, Some("pw"))),
            Err(CliError::Usage(_))
        ));
        let mut bad = conn(None, None);
        bad.url = "ftp://x".into();
        assert!(matches!(context(&bad), Err(CliError::Usage(_))));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "secret\n").unwrap();
        let mut from_file = conn(Some("alice"), None);
        from_file.password_file = Some(file);
        assert_eq!(password(&from_file).unwrap().as_deref(), Some("secret"));
    }

    #[test]
    fn ids_get_one_leading_slash() {
        assert_eq!(id_path("web"), "/web");
        assert_eq!(id_path("/team-a/web/"), "/team-a/web");
        assert_eq!(id_path("/"), "/");
    }
}
