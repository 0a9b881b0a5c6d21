//! Typed errors of the Mesos client, mapped from HTTP answers the way
//! mesos-go's `apierrors` does, so the session can tell "retry", "follow the
//! leader" and "resubscribe" apart.

use mesos_proto::recordio::StreamError;

/// What went wrong talking to a Mesos master.
#[derive(Debug, thiserror::Error)]
pub enum MesosError {
    /// No TCP connection, a reset, or a timeout before an answer.
    #[error("master {endpoint} unreachable: {source}")]
    Transport {
        /// The master URL we tried.
        endpoint: String,
        /// What reqwest saw.
        #[source]
        source: reqwest::Error,
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
    #[error("master requires authentication (401): {0}")]
    Unauthorized(String),
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
    Stream(#[from] StreamError<reqwest::Error>),
    /// The event stream ended.
    #[error("event stream closed by master")]
    StreamClosed,
    /// No event (not even a HEARTBEAT) for too long: the connection is dead.
    #[error("no event from master for {0:?}; assuming the connection is dead")]
    HeartbeatTimeout(std::time::Duration),
    /// The master sent an ERROR event (e.g. "Framework failed over").
    #[error("master sent ERROR: {0}")]
    ErrorEvent(String),
    /// A call was attempted while no subscription is live.
    #[error("not subscribed to a master")]
    NotSubscribed,
    /// A call could not be encoded.
    #[error(transparent)]
    Codec(#[from] mesos_proto::CodecError),
}

impl MesosError {
    /// Whether this error means the subscription is gone and the session
    /// must subscribe again (403, a new leader, a master that forgot us).
    pub fn subscription_lost(&self) -> bool {
        match self {
            MesosError::Forbidden(_) | MesosError::NotLeader { .. } | MesosError::NotSubscribed => {
                true
            }
            // After a master failover the new master may not know the framework
            // until it resubscribes (mesos-go #239), and a stale stream id gets
            // 400 too.
            MesosError::BadRequest(body) => {
                body.contains("Framework cannot be found") || body.contains("Mesos-Stream-Id")
            }
            _ => false,
        }
    }

    /// Maps a non-success HTTP status and body to an error.
    pub fn from_status(status: u16, location: Option<String>, body: String) -> MesosError {
        match status {
            307 | 301 | 302 | 308 => MesosError::NotLeader {
                location: location.unwrap_or_default(),
            },
            400 => MesosError::BadRequest(body),
            401 => MesosError::Unauthorized(body),
            403 => MesosError::Forbidden(body),
            406 => MesosError::NotAcceptable(body),
            415 => MesosError::UnsupportedMediaType(body),
            429 | 500..=599 => MesosError::Unavailable { status, body },
            _ => MesosError::UnexpectedStatus { status, body },
        }
    }
}
