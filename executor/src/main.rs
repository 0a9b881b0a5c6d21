//! `baton-executor`: reads the executor environment the Mesos agent sets and
//! runs the executor (see the library documentation).

use std::process::ExitCode;

use anyhow::Context;
use baton_executor::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // The sandbox captures stderr; colours would only clutter the file.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_env("BATON_EXECUTOR_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let config = match Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    match execute(config) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(config: Config) -> anyhow::Result<ExitCode> {
    // One thread is plenty for a handful of processes and one connection.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let outcome = runtime.block_on(baton_executor::run(config))?;
    match &outcome {
        baton_executor::Outcome::AgentLost(reason) => tracing::error!(%reason, "exiting"),
        other => tracing::info!(outcome = ?other, "exiting"),
    }
    Ok(ExitCode::from(outcome.exit_code()))
}
