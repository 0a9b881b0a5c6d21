//! The HTTP side of the executor API: `POST /api/v1/executor` on the agent.
//!
//! SUBSCRIBE answers 200 with a RecordIO stream of events that lives as long
//! as the connection; every other call (UPDATE, MESSAGE, HEARTBEAT) answers
//! 202 with no body. The two kinds go through separate clients so a call is
//! never queued behind, or sent down, the long-lived stream's connection.
//! The executor API has no `Mesos-Stream-Id`; calls carry the framework and
//! executor ids instead.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use mesos_proto::executor::{Call, Event};
use mesos_proto::recordio::{self, StreamError};
use mesos_proto::{CodecError, Encoding};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

/// Connecting to an agent on the same host takes far less; a longer wait
/// means it is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on a whole non-SUBSCRIBE call and on SUBSCRIBE's response headers.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Agent heartbeats come every 30 minutes, so a silently dead peer (host
/// gone, no RST) is noticed through TCP keepalive instead: after about
/// 30 s + 3 × 10 s of silence.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// The events of one subscription, in order; ends when the connection does.
pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<Event, StreamError<reqwest::Error>>> + Send>>;

/// A call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The HTTP client could not be set up.
    #[error("building the HTTP client failed: {0}")]
    Client(#[source] reqwest::Error),
    /// The call could not be encoded.
    #[error("encoding the {call} call failed: {source}")]
    Encode {
        /// The call's type.
        call: &'static str,
        /// The codec's complaint.
        #[source]
        source: CodecError,
    },
    /// No HTTP response: refused, reset or timed out.
    #[error("{call} call to the agent failed: {source}")]
    Transport {
        /// The call's type.
        call: &'static str,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// The agent did not answer within the bound.
    #[error("agent did not answer {call} within {timeout:?}")]
    Timeout {
        /// The call's type.
        call: &'static str,
        /// How long we waited.
        timeout: Duration,
    },
    /// The agent answered with an unexpected status.
    #[error("agent answered {call} with {status}: {body}")]
    Status {
        /// The call's type.
        call: &'static str,
        /// The HTTP status.
        status: StatusCode,
        /// The start of the response body (the agent's explanation).
        body: String,
    },
}

impl AgentError {
    /// Whether trying again later can help: the agent is unreachable,
    /// recovering (503) or restarting and does not route us yet (404).
    /// A 4xx for a bad call or an unknown executor will not get better.
    pub fn is_retryable(&self) -> bool {
        match self {
            AgentError::Client(_) | AgentError::Encode { .. } => false,
            AgentError::Transport { .. } | AgentError::Timeout { .. } => true,
            AgentError::Status { status, .. } => {
                *status == StatusCode::SERVICE_UNAVAILABLE || *status == StatusCode::NOT_FOUND
            }
        }
    }
}

/// The executor's client for one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    url: String,
    encoding: Encoding,
    auth_token: Option<String>,
    /// Carries SUBSCRIBE only; never reuses a connection, so a re-SUBSCRIBE
    /// does not land on the one the agent just closed.
    stream_client: reqwest::Client,
    /// Carries UPDATE, MESSAGE and HEARTBEAT.
    call_client: reqwest::Client,
}

impl AgentClient {
    /// A client for the executor API at `url`
    /// (`http://ip:port/api/v1/executor`).
    pub fn new(
        url: String,
        encoding: Encoding,
        auth_token: Option<String>,
    ) -> Result<AgentClient, AgentError> {
        Ok(AgentClient {
            url,
            encoding,
            auth_token,
            stream_client: builder()
                .pool_max_idle_per_host(0)
                .build()
                .map_err(AgentError::Client)?,
            call_client: builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .map_err(AgentError::Client)?,
        })
    }

    /// The encoding of calls and events.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Sends SUBSCRIBE and returns the event stream once the agent answered
    /// 200.
    pub async fn subscribe(&self, call: &Call) -> Result<EventStream, AgentError> {
        let name = call_name(call);
        let request = self.request(&self.stream_client, call)?;
        // The stream client has no total timeout (the body is endless), so
        // bound the wait for the response headers here.
        let response = tokio::time::timeout(CALL_TIMEOUT, request.send())
            .await
            .map_err(|_| AgentError::Timeout {
                call: name,
                timeout: CALL_TIMEOUT,
            })?
            .map_err(|source| AgentError::Transport { call: name, source })?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(AgentError::Status {
                call: name,
                status,
                body: body_excerpt(response).await,
            });
        }
        let bytes = Box::pin(response.bytes_stream());
        Ok(
            recordio::decode_stream(bytes, self.encoding, recordio::DEFAULT_MAX_RECORD_SIZE)
                .boxed(),
        )
    }

    /// Sends a non-SUBSCRIBE call; the agent accepts it with 202.
    pub async fn call(&self, call: &Call) -> Result<(), AgentError> {
        let name = call_name(call);
        let response = self
            .request(&self.call_client, call)?
            .send()
            .await
            .map_err(|source| AgentError::Transport { call: name, source })?;
        let status = response.status();
        if status == StatusCode::ACCEPTED || status == StatusCode::OK {
            return Ok(());
        }
        Err(AgentError::Status {
            call: name,
            status,
            body: body_excerpt(response).await,
        })
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, AgentError> {
        let body = self
            .encoding
            .encode(call)
            .map_err(|source| AgentError::Encode {
                call: call_name(call),
                source,
            })?;
        let media_type = self.encoding.media_type();
        let mut request = client
            .post(&self.url)
            .header(CONTENT_TYPE, media_type)
            .header(ACCEPT, media_type)
            .body(body);
        if let Some(token) = &self.auth_token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        Ok(request)
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        // The agent is addressed by ip:port on this host's network; an
        // HTTP_PROXY meant for the task's traffic must not capture it.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE)
        .tcp_keepalive_interval(TCP_KEEPALIVE_INTERVAL)
        .tcp_keepalive_retries(TCP_KEEPALIVE_RETRIES)
        .http1_only()
}

fn call_name(call: &Call) -> &'static str {
    use mesos_proto::executor::call::Type;
    match call.r#type() {
        Type::Unknown => "UNKNOWN",
        Type::Subscribe => "SUBSCRIBE",
        Type::Update => "UPDATE",
        Type::Message => "MESSAGE",
        Type::Heartbeat => "HEARTBEAT",
    }
}

/// Enough of an error body to log, read with a bound on time and size.
async fn body_excerpt(response: reqwest::Response) -> String {
    const MAX: usize = 512;
    match tokio::time::timeout(Duration::from_secs(2), response.bytes()).await {
        Ok(Ok(bytes)) => {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
            text.trim().to_string()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        let status = |status| AgentError::Status {
            call: "SUBSCRIBE",
            status,
            body: String::new(),
        };
        assert!(status(StatusCode::SERVICE_UNAVAILABLE).is_retryable());
        assert!(status(StatusCode::NOT_FOUND).is_retryable());
        assert!(!status(StatusCode::BAD_REQUEST).is_retryable());
        assert!(!status(StatusCode::FORBIDDEN).is_retryable());
        assert!(!status(StatusCode::UNSUPPORTED_MEDIA_TYPE).is_retryable());
    }
}
