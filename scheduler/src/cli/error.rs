//! What can go wrong in a CLI command, how it is told to the user (one
//! readable message, never a backtrace) and the exit code it becomes
//! ([`EXIT_CODES`]).

use serde_json::Value;

/// The exit codes, as `baton --help` and the README list them.
pub const EXIT_CODES: &str = "\
Exit codes of the CLI commands:
  0    done (a deployment it waited for finished)
  1    the server refused the request (its message is printed), a deployment
       failed (its reason is printed), or what was asked for is not there
  2    usage: bad arguments, an unreadable file or credentials
  3    the server (or a Mesos master or agent) could not be reached
  130  interrupted (Ctrl-C): waiting stops, a deployment keeps going";

/// A failed CLI command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or input the command cannot use (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Nothing answered at `url` (exit 3).
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// What was called.
        url: String,
        /// Why it failed, causes included.
        reason: String,
    },
    /// The server answered with an error (exit 1).
    #[error("{}", api_message(*.status, .body))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The body: Marathon's `{"message", "details"}`, or text.
        body: String,
    },
    /// The answer was not what the API promises (exit 1).
    #[error("unexpected answer from {url}: {reason}")]
    Protocol {
        /// What was called.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// A deployment the command waited for failed (exit 1).
    #[error("deployment {id} failed: {reason}")]
    DeploymentFailed {
        /// The deployment.
        id: String,
        /// Baton's (or Marathon's) stated reason.
        reason: String,
    },
    /// Something asked for does not exist (exit 1).
    #[error("{0}")]
    NotFound(String),
    /// Ctrl-C (exit 130); says what keeps going.
    #[error("interrupted{}", .0.as_deref().map(|n| format!(": {n}")).unwrap_or_default())]
    Interrupted(Option<String>),
}

impl CliError {
    /// The process's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Connect { .. } => 3,
            CliError::Interrupted(_) => 130,
            CliError::Api { .. }
            | CliError::Protocol { .. }
            | CliError::DeploymentFailed { .. }
            | CliError::NotFound(_) => 1,
        }
    }
}

/// An error answer as a person reads it: Marathon's `message`, then each
/// `details` entry (`/path: error`) on its own line; the status last.
/// Bodies that are not Marathon's JSON are shown as text.
pub fn api_message(status: u16, body: &str) -> String {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let message = json
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = body.trim();
            if text.is_empty() {
                "no message".to_string()
            } else {
                text.chars().take(500).collect()
            }
        });
    let mut out = format!("{message} (HTTP {status})");
    match json.as_ref().and_then(|v| v.get("details")) {
        Some(Value::Array(details)) => {
            for d in details {
                let path = d.get("path").and_then(Value::as_str).unwrap_or("/");
                let errors: Vec<&str> = d
                    .get("errors")
                    .and_then(Value::as_array)
                    .map(|e| e.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                out.push_str(&format!("\n  {path}: {}", errors.join("; ")));
            }
        }
        Some(Value::String(detail)) => out.push_str(&format!("\n  {detail}")),
        _ => {}
    }
    if let Some(Value::Array(held)) = json.as_ref().and_then(|v| v.get("deployments")) {
        let ids: Vec<&str> = held
            .iter()
            .filter_map(|d| d.get("id").and_then(Value::as_str))
            .collect();
        if !ids.is_empty() {
            out.push_str(&format!(
                "\n  held by deployment {} (wait for it, or use --force)",
                ids.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_list_each_field() {
        let body = r#"{"message":"Object is not valid","details":[
            {"path":"/id","errors":["must fully match"]},
            {"path":"/cpus","errors":["got -1.0, expected 0.0 or more","x"]}]}"#;
        assert_eq!(
            api_message(422, body),
            "Object is not valid (HTTP 422)\n  /id: must fully match\n  /cpus: got -1.0, expected 0.0 or more; x"
        );
    }

    #[test]
    fn plain_messages_string_details_and_text_bodies_read_well() {
        assert_eq!(
            api_message(
                403,
                r#"{"message":"User 'alice' is not authorized to update '/team-b/db'"}"#
            ),
            "User 'alice' is not authorized to update '/team-b/db' (HTTP 403)"
        );
        assert_eq!(
            api_message(
                400,
                r#"{"message":"Invalid JSON","details":"EOF at line 1"}"#
            ),
            "Invalid JSON (HTTP 400)\n  EOF at line 1"
        );
        assert_eq!(api_message(502, "Bad gateway\n"), "Bad gateway (HTTP 502)");
        assert_eq!(api_message(404, ""), "no message (HTTP 404)");
        assert_eq!(
            api_message(
                409,
                r#"{"message":"App is locked","deployments":[{"id":"d1"}]}"#
            ),
            "App is locked (HTTP 409)\n  held by deployment d1 (wait for it, or use --force)"
        );
    }

    #[test]
    fn exit_codes_are_as_documented() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        let connect = CliError::Connect {
            url: "u".into(),
            reason: "r".into(),
        };
        assert_eq!(connect.exit_code(), 3);
        let api = CliError::Api {
            status: 404,
            body: String::new(),
        };
        assert_eq!(api.exit_code(), 1);
        assert_eq!(CliError::Interrupted(None).exit_code(), 130);
        for code in ["0 ", "1 ", "2 ", "3 ", "130 "] {
            assert!(EXIT_CODES.contains(code));
        }
    }
}
