//! Typed errors of the Mesos client, mapped from HTTP answers the way
//! mesos-go's `apierrors` does, so the session can tell "retry", "follow the
//! leader" and "resubscribe" apart.

use mesos_proto::recordio::StreamError;

/// What went wrong talking to a Mesos master.
#[derive(Debug, thiserror::Error)]
pub enum MesosError {
    /// No TCP connection, a reset, or a timeout before an answer.
    #[error("master {endpoint} unreachable: {detail}")]
    Transport {
        /// The master URL we tried.
        endpoint: String,
        /// What the connection saw, with its causes.
        detail: String,
    },
    /// The TLS handshake failed, usually on the master's certificate.
    #[error(
        "TLS with master {endpoint} failed: {detail} (its certificate must be valid for that host and signed by a system root or by --mesos_ca_file)"
    )]
    Tls {
        /// The master URL we tried.
        endpoint: String,
        /// rustls's reason, with its causes.
        detail: String,
    },
    /// 307: this master is not the leader. `location` is the raw header,
    /// usually scheme-less (`//host:5050/api/v1/scheduler`).
    #[error("not the leading master; leader is at {location:?}")]
    NotLeader {
        /// The `Location` header.
        location: String,
    },
    /// 400: the master refused the call as malformed.
    #[error("master rejected the call (400): {0}")]
    BadRequest(String),
    /// 401: authentication required or failed.
    #[error("{}", unauthorized_message(*sent_credentials, body))]
    Unauthorized {
        /// Whether we sent credentials (else none are configured).
        sent_credentials: bool,
        /// Start of the body.
        body: String,
    },
    /// 403 on SUBSCRIBE: the master refuses this framework (a principal
    /// not allowed to register with one of our roles, a principal that
    /// does not match the authenticated one).
    #[error(
        "master refused the subscription (403): {0}; check --mesos_role and --mesos_authentication_principal against the master's ACLs"
    )]
    SubscriptionRefused(String),
    /// The framework's credentials could not be loaded.
    #[error(transparent)]
    Credentials(#[from] super::auth::AuthError),
    /// 403: the framework's subscription is gone; resubscribe.
    #[error("framework is not subscribed (403): {0}")]
    Forbidden(String),
    /// 406: the master cannot answer in the media type we accept.
    #[error("master cannot answer in the accepted media type (406): {0}")]
    NotAcceptable(String),
    /// 415: the master does not take our Content-Type.
    #[error("master does not accept the content type (415): {0}")]
    UnsupportedMediaType(String),
    /// 503 (no leader yet, still recovering), 429, or another 5xx.
    #[error("master unavailable ({status}): {body}")]
    Unavailable {
        /// HTTP status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// Any other status.
    #[error("unexpected answer {status} from master: {body}")]
    UnexpectedStatus {
        /// HTTP status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// The master's answer broke the protocol: no `Mesos-Stream-Id`, a
    /// content type we did not ask for, a first event other than SUBSCRIBED.
    #[error("protocol violation by master: {0}")]
    Protocol(String),
    /// The event stream was not valid RecordIO, or an event did not decode.
    #[error("event stream broken: {0}")]
    Stream(#[from] StreamError<hyper::Error>),
    /// The event stream ended.
    #[error("event stream closed by master")]
    StreamClosed,
    /// No event (not even a HEARTBEAT) for too long: the connection is dead.
    #[error("no event from master for {0:?}; assuming the connection is dead")]
    HeartbeatTimeout(std::time::Duration),
    /// The master sent an ERROR event (e.g. "Framework failed over").
    #[error("{}", error_event_message(.0))]
    ErrorEvent(String),
    /// A call was attempted while no subscription is live.
    #[error("not subscribed to a master")]
    NotSubscribed,
    /// This process's leadership lease refused the call or subscription:
    /// it no longer leads (nothing was sent).
    #[error("not sent: {0}")]
    NotLeading(String),
    /// A call could not be encoded.
    #[error(transparent)]
    Codec(#[from] mesos_proto::CodecError),
}

impl MesosError {
    /// Whether this error means the subscription is gone and the session
    /// must subscribe again (403, a new leader, a master that forgot us).
    pub fn subscription_lost(&self) -> bool {
        match self {
            // A 401 on a call: the master's credentials changed under a
            // live subscription; subscribing again re-reads the secret.
            MesosError::Forbidden(_)
            | MesosError::NotLeader { .. }
            | MesosError::NotSubscribed
            | MesosError::Unauthorized { .. } => true,
            // After a master failover the new master may not know the framework
            // until it resubscribes (mesos-go #239), and a stale stream id gets
            // 400 too.
            MesosError::BadRequest(body) => {
                body.contains("Framework cannot be found") || body.contains("Mesos-Stream-Id")
            }
            _ => false,
        }
    }

    /// A failed connection or request, told apart as TLS trouble when
    /// rustls is among its causes.
    pub fn transport(
        master: &impl std::fmt::Display,
        error: &(dyn std::error::Error + 'static),
    ) -> MesosError {
        let detail = baton_probe::error_chain(error);
        let endpoint = master.to_string();
        let mut cause = Some(error);
        while let Some(e) = cause {
            // tokio-rustls wraps rustls's error in an io::Error, whose
            // `source` skips it: look inside too.
            let inner = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|i| i.downcast_ref::<rustls::Error>());
            if e.downcast_ref::<rustls::Error>().is_some() || inner.is_some() {
                return MesosError::Tls { endpoint, detail };
            }
            cause = e.source();
        }
        // hyper-rustls may hand the handshake's failure over as text only.
        if detail.contains("invalid peer certificate") || detail.contains("TLS handshake") {
            return MesosError::Tls { endpoint, detail };
        }
        MesosError::Transport { endpoint, detail }
    }

    /// No answer within `limit`.
    pub fn timed_out(master: &impl std::fmt::Display, limit: std::time::Duration) -> MesosError {
        MesosError::Transport {
            endpoint: master.to_string(),
            detail: format!("no answer within {limit:?}"),
        }
    }

    /// SUBSCRIBE's own reading of a 403: not a lost subscription (there
    /// was none) but a refusal.
    pub fn refusing_subscription(self) -> MesosError {
        match self {
            MesosError::Forbidden(body) => MesosError::SubscriptionRefused(body),
            other => other,
        }
    }

    /// Maps a non-success HTTP status and body to an error.
    pub fn from_status(
        status: u16,
        location: Option<String>,
        body: String,
        sent_credentials: bool,
    ) -> MesosError {
        match status {
            307 | 301 | 302 | 308 => MesosError::NotLeader {
                location: location.unwrap_or_default(),
            },
            400 => MesosError::BadRequest(body),
            401 => MesosError::Unauthorized {
                sent_credentials,
                body,
            },
            403 => MesosError::Forbidden(body),
            406 => MesosError::NotAcceptable(body),
            415 => MesosError::UnsupportedMediaType(body),
            429 | 500..=599 => MesosError::Unavailable { status, body },
            _ => MesosError::UnexpectedStatus { status, body },
        }
    }
}

fn unauthorized_message(sent_credentials: bool, body: &str) -> String {
    // Mesos answers "401 Unauthorized."; the hint follows its sentence.
    let body = body.trim_end_matches('.');
    if sent_credentials {
        format!(
            "master refused our credentials (401): {body}; check --mesos_authentication_principal and --mesos_authentication_secret_file"
        )
    } else {
        format!(
            "master requires authentication (401): {body}; set --mesos_authentication_principal and --mesos_authentication_secret_file"
        )
    }
}

fn error_event_message(message: &str) -> String {
    if message.contains("Not authorized") {
        format!(
            "master sent ERROR: {message}; check --mesos_role and --mesos_authentication_principal against the master's ACLs"
        )
    } else {
        format!("master sent ERROR: {message}")
    }
}
