//! The HTTP caller: one streaming SUBSCRIBE connection, other calls on a
//! separate client, exact `Content-Type`/`Accept`, typed errors. It knows
//! nothing of sessions or retries; [`super::session`] does.

use std::time::Duration;

use futures::{Stream, StreamExt};
use mesos_proto::scheduler::{Call, Event};
use mesos_proto::{Encoding, recordio};
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};

use super::error::MesosError;
use super::masters::MasterEndpoint;

/// Header carrying the subscription's stream id.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";
/// Mesos caps stream ids at 128 bytes.
const MAX_STREAM_ID_LEN: usize = 128;
/// How much of an error body we keep.
const MAX_ERROR_BODY: usize = 4096;

/// A live SUBSCRIBE response.
pub struct Subscription {
    /// The value of `Mesos-Stream-Id` to send on every other call.
    pub stream_id: String,
    /// The decoded events; ends or errs when the connection does.
    pub events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, MesosError>> + Send>>,
}

/// Talks HTTP to masters.
#[derive(Clone)]
pub struct HttpCaller {
    stream_client: reqwest::Client,
    call_client: reqwest::Client,
    encoding: Encoding,
    max_record_size: usize,
}

impl HttpCaller {
    /// A caller using `encoding`; `call_timeout` bounds non-streaming calls
    /// and the wait for SUBSCRIBE's response headers.
    pub fn new(encoding: Encoding, call_timeout: Duration) -> HttpCaller {
        let builder = || {
            reqwest::Client::builder()
                // 307s carry leadership information; the session follows them.
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(call_timeout)
                .tcp_nodelay(true)
        };
        HttpCaller {
            // The stream has no overall timeout (it never ends); the
            // heartbeat watchdog detects a dead one.
            stream_client: builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("static reqwest config is valid"),
            call_client: builder()
                .timeout(call_timeout)
                .build()
                .expect("static reqwest config is valid"),
            encoding,
            max_record_size: recordio::DEFAULT_MAX_RECORD_SIZE,
        }
    }

    /// The encoding of calls and events.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Sends SUBSCRIBE and returns the stream once the master answered 200.
    pub async fn subscribe(
        &self,
        master: &MasterEndpoint,
        call: &Call,
    ) -> Result<Subscription, MesosError> {
        let response = self.post(&self.stream_client, master, None, call).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if Encoding::from_content_type(content_type) != Some(self.encoding) {
            return Err(MesosError::Protocol(format!(
                "SUBSCRIBE answered with Content-Type {content_type:?}, expected {:?}",
                self.encoding.media_type()
            )));
        }
        let stream_id = response
            .headers()
            .get(STREAM_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(|id| !id.is_empty() && id.len() <= MAX_STREAM_ID_LEN)
            .ok_or_else(|| {
                MesosError::Protocol("SUBSCRIBE answer has no valid Mesos-Stream-Id".into())
            })?;
        let events = recordio::decode_stream::<Event, _, _>(
            Box::pin(response.bytes_stream()),
            self.encoding,
            self.max_record_size,
        )
        .map(|item| item.map_err(MesosError::from));
        Ok(Subscription {
            stream_id,
            events: Box::pin(events),
        })
    }

    /// Sends any call but SUBSCRIBE on the given stream; Ok on 202 (or 200).
    pub async fn call(
        &self,
        master: &MasterEndpoint,
        stream_id: &str,
        call: &Call,
    ) -> Result<(), MesosError> {
        self.post(&self.call_client, master, Some(stream_id), call)
            .await
            .map(drop)
    }

    /// POSTs a call with the exact media types (and the stream id when
    /// given); a non-2xx answer becomes a typed error.
    async fn post(
        &self,
        client: &reqwest::Client,
        master: &MasterEndpoint,
        stream_id: Option<&str>,
        call: &Call,
    ) -> Result<reqwest::Response, MesosError> {
        let mut request = client
            .post(master.scheduler_url())
            .header(CONTENT_TYPE, self.encoding.media_type())
            .header(ACCEPT, self.encoding.media_type())
            .body(self.encoding.encode(call)?);
        if let Some(id) = stream_id {
            request = request.header(STREAM_ID_HEADER, id);
        }
        let response = request
            .send()
            .await
            .map_err(|source| MesosError::Transport {
                endpoint: master.to_string(),
                source,
            })?;
        check_status(response).await
    }
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, MesosError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_error_body(response).await;
    Err(MesosError::from_status(status, location, body))
}

async fn read_error_body(response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    // Bounded in size and time: a hostile master cannot hold us here.
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    body.truncate(MAX_ERROR_BODY);
    String::from_utf8_lossy(&body).trim().to_string()
}
