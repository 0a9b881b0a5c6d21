//! The HTTP caller: one streaming SUBSCRIBE connection, other calls on a
//! separate client, exact `Content-Type`/`Accept`, typed errors. It knows
//! nothing of sessions or retries; [`super::session`] does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyDataStream, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mesos_proto::scheduler::{Call, Event};
use mesos_proto::{Encoding, recordio};

use super::auth::MesosCredentials;
use super::error::MesosError;
use super::masters::MasterEndpoint;

/// Header carrying the subscription's stream id.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";
/// Mesos caps stream ids at 128 bytes.
const MAX_STREAM_ID_LEN: usize = 128;
/// How much of an error body we keep.
const MAX_ERROR_BODY: usize = 4096;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;
type Response = hyper::Response<Incoming>;

/// A live SUBSCRIBE response.
pub struct Subscription {
    /// The value of `Mesos-Stream-Id` to send on every other call.
    pub stream_id: String,
    /// The decoded events; ends or errs when the connection does.
    pub events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, MesosError>> + Send>>,
}

/// How a caller reaches masters: trust roots for `https://` ones and the
/// framework's credentials, if any.
#[derive(Debug, Clone)]
pub struct CallerSecurity {
    /// Verifies `https://` masters.
    pub tls: Arc<rustls::ClientConfig>,
    /// Sent as HTTP Basic on every call.
    pub credentials: Option<MesosCredentials>,
}

impl Default for CallerSecurity {
    /// The system's roots (loaded once per process), no credentials.
    fn default() -> CallerSecurity {
        static SYSTEM_ROOTS: std::sync::OnceLock<Arc<rustls::ClientConfig>> =
            std::sync::OnceLock::new();
        CallerSecurity {
            tls: SYSTEM_ROOTS
                .get_or_init(|| super::auth::tls_client_config(None).expect("no CA file to load"))
                .clone(),
            credentials: None,
        }
    }
}

/// Talks HTTP (or HTTPS) to masters.
#[derive(Clone)]
pub struct HttpCaller {
    stream_client: HttpsClient,
    call_client: HttpsClient,
    encoding: Encoding,
    call_timeout: Duration,
    max_record_size: usize,
    credentials: Option<MesosCredentials>,
    /// The `Authorization` of the latest SUBSCRIBE, sent on every other
    /// call of that subscription.
    authorization: Arc<Mutex<Option<HeaderValue>>>,
}

impl HttpCaller {
    /// A caller using `encoding`; `call_timeout` bounds non-streaming calls
    /// and the wait for SUBSCRIBE's response headers.
    pub fn new(encoding: Encoding, call_timeout: Duration, security: CallerSecurity) -> HttpCaller {
        let client = |max_idle: usize| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(call_timeout));
            http.set_nodelay(true);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*security.tls).clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            // 307s carry leadership information: nothing follows them here;
            // the session does.
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(max_idle)
                .build(https)
        };
        HttpCaller {
            // The stream never ends; the heartbeat watchdog detects a dead
            // one. Its connection is never pooled.
            stream_client: client(0),
            call_client: client(usize::MAX),
            encoding,
            call_timeout,
            max_record_size: recordio::DEFAULT_MAX_RECORD_SIZE,
            credentials: security.credentials,
            authorization: Arc::default(),
        }
    }

    /// The encoding of calls and events.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Sends SUBSCRIBE and returns the stream once the master answered 200.
    /// The credentials are read afresh for it.
    pub async fn subscribe(
        &self,
        master: &MasterEndpoint,
        call: &Call,
    ) -> Result<Subscription, MesosError> {
        let authorization = self
            .credentials
            .as_ref()
            .map(MesosCredentials::authorization)
            .transpose()?;
        if authorization.is_some() && !master.is_https() {
            tracing::warn!(%master, "sending the framework's credentials to a master over plain HTTP; use an https:// master");
        }
        *self.authorization.lock().expect("never poisoned") = authorization;
        let response = self
            .post(&self.stream_client, master, None, call)
            .await
            .map_err(MesosError::refusing_subscription)?;
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
            BodyDataStream::new(response.into_body()),
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
        let call = self.post(&self.call_client, master, Some(stream_id), call);
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(answer) => answer.map(drop),
            Err(_) => Err(MesosError::timed_out(master, self.call_timeout)),
        }
    }

    /// POSTs a call with the exact media types, the stream id when given
    /// and the credentials when configured; a non-2xx answer becomes a
    /// typed error. The wait for the answer's head is bounded.
    async fn post(
        &self,
        client: &HttpsClient,
        master: &MasterEndpoint,
        stream_id: Option<&str>,
        call: &Call,
    ) -> Result<Response, MesosError> {
        let media_type = HeaderValue::from_static(self.encoding.media_type());
        let mut request = Request::post(master.scheduler_url())
            .header(CONTENT_TYPE, media_type.clone())
            .header(ACCEPT, media_type);
        if let Some(id) = stream_id {
            request = request.header(STREAM_ID_HEADER, id);
        }
        let authorization = self.authorization.lock().expect("never poisoned").clone();
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(self.encoding.encode(call)?)))
            .map_err(|e| {
                MesosError::Protocol(format!("cannot build a request to {master}: {e}"))
            })?;
        let response = match tokio::time::timeout(self.call_timeout, client.request(request)).await
        {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(MesosError::transport(master, &error)),
            Err(_) => return Err(MesosError::timed_out(master, self.call_timeout)),
        };
        check_status(response, self.credentials.is_some()).await
    }
}

async fn check_status(response: Response, sent_credentials: bool) -> Result<Response, MesosError> {
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
    Err(MesosError::from_status(
        status,
        location,
        body,
        sent_credentials,
    ))
}

async fn read_error_body(response: Response) -> String {
    let mut body = Vec::new();
    let mut stream = BodyDataStream::new(response.into_body());
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
