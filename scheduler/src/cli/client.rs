//! The CLI's HTTP client: one hyper client for `http://` and `https://`
//! alike (rustls on ring; the system's roots plus `--ca_file`, as Baton
//! trusts masters), HTTP Basic when a user is given, a deadline on every
//! call, and `/v2/events` as a stream of [`SseEvent`]s. The workspace's
//! reqwest is built without TLS on purpose, so it is not used here.
//!
//! Connection failures (refused, DNS, TLS, deadline) become
//! [`CliError::Connect`]; error answers [`CliError::Api`] with the body,
//! which [`super::error::api_message`] makes readable.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::error::CliError;
use super::sse::{SseEvent, SseParser};
use crate::mesos::auth::{AuthError, tls_client_config};

/// How long a call may take, answer included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read (a big `/v2/apps` or `/master/state`).
const MAX_BODY: usize = 256 * 1024 * 1024;

type Https = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A server to call: its base URL, the client, the credentials.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: Https,
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("authorization", &self.authorization.is_some())
            .finish()
    }
}

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    /// What was called.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// `Marathon-Deployment-Id`.
    pub deployment_id: Option<String>,
    /// `Location` (redirects).
    pub location: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, CliError> {
        serde_json::from_slice(&self.body).map_err(|e| CliError::Protocol {
            url: self.url.clone(),
            reason: format!("not JSON ({e})"),
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An error and its causes on one line; hyper's generic `client error
/// (Connect)` is left out when a cause says more.
fn causes(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    if out.starts_with("client error")
        && let Some(cause) = source
    {
        out = cause.to_string();
        source = cause.source();
    }
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

impl Client {
    /// A client of `base` (`http[s]://host:port[/prefix]`), sending
    /// `credentials` (user, password) as HTTP Basic, trusting the system's
    /// roots plus `ca_file`.
    pub fn new(
        base: &str,
        credentials: Option<(&str, &str)>,
        ca_file: Option<&Path>,
    ) -> Result<Client, CliError> {
        let tls = tls_client_config(ca_file).map_err(|e| match e {
            AuthError::CaFile { path, reason } => {
                CliError::Usage(format!("--ca_file {}: {reason}", path.display()))
            }
            other => CliError::Usage(other.to_string()),
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CALL_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let authorization = credentials
            .map(|(user, password)| {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                HeaderValue::from_str(&format!("Basic {token}"))
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                    .map_err(|_| CliError::Usage("--user or --password is not valid text".into()))
            })
            .transpose()?;
        let client = Client {
            base: base.trim_end_matches('/').to_string(),
            http: HyperClient::builder(TokioExecutor::new()).build(https),
            authorization,
        };
        client.uri("/")?;
        Ok(client)
    }

    /// The same client (TLS roots included) for another server, without
    /// credentials: Mesos masters and agents.
    pub fn at(&self, base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http: self.http.clone(),
            authorization: None,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` (with its query) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn uri(&self, path: &str) -> Result<Uri, CliError> {
        let url = self.url(path);
        let uri: Uri = url
            .parse()
            .map_err(|e| CliError::Usage(format!("{url} is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.authority().is_some() => Ok(uri),
            _ => Err(CliError::Usage(format!(
                "{} is not an http:// or https:// URL",
                self.base
            ))),
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        accept: &'static str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, CliError> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.uri(path)?)
            .header(ACCEPT, HeaderValue::from_static(accept));
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| {
                CliError::Usage(format!("cannot build a request to {}: {e}", self.url(path)))
            })
    }

    fn connect_error(&self, path: &str, error: &dyn std::error::Error) -> CliError {
        CliError::Connect {
            url: self.url(path),
            reason: causes(error),
        }
    }

    /// Sends a request and reads the whole answer, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, CliError> {
        let request = self.request(method.clone(), path, "application/json", body)?;
        tracing::debug!(%method, url = %self.url(path), "calling");
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| self.connect_error(path, &e))?;
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
                    .map(str::to_string)
            };
            let status = response.status().as_u16();
            let deployment_id = header("marathon-deployment-id");
            let location = header(LOCATION.as_str());
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| CliError::Connect {
                    url: self.url(path),
                    reason: format!("reading the answer: {e}"),
                })?
                .to_bytes();
            Ok(Reply {
                url: self.url(path),
                status,
                deployment_id,
                location,
                body,
            })
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(reply) => reply,
            Err(_) => Err(CliError::Connect {
                url: self.url(path),
                reason: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
            }),
        }
    }

    /// [`send`](Self::send), with an error answer (not 2xx) as
    /// [`CliError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, CliError> {
        let reply = self.send(method, path, body).await?;
        if (200..300).contains(&reply.status) {
            Ok(reply)
        } else {
            Err(CliError::Api {
                status: reply.status,
                body: reply.text(),
            })
        }
    }

    /// `GET path` as JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, CliError> {
        self.call(Method::GET, path, None).await?.json()
    }

    /// Subscribes to `/v2/events`, only the `types` given.
    pub async fn events(&self, types: &[&str]) -> Result<Events, CliError> {
        let query: String = types
            .iter()
            .map(|t| format!("event_type={t}"))
            .collect::<Vec<_>>()
            .join("&");
        let path = format!("/v2/events?{query}");
        let request = self.request(Method::GET, &path, "text/event-stream", None)?;
        let response = match tokio::time::timeout(CALL_TIMEOUT, self.http.request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.connect_error(&path, &e)),
            Err(_) => {
                return Err(CliError::Connect {
                    url: self.url(&path),
                    reason: "no answer".into(),
                });
            }
        };
        let status = response.status().as_u16();
        if status != 200 {
            return Err(CliError::Api {
                status,
                body: String::new(),
            });
        }
        Ok(Events {
            body: response.into_body(),
            parser: SseParser::default(),
            ready: VecDeque::new(),
        })
    }
}

/// An open `/v2/events` stream.
pub struct Events {
    body: Incoming,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
}

impl Events {
    /// The next event; `None` once the stream has ended or broken.
    /// Cancel-safe: nothing read is lost if the future is dropped.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.ready.extend(self.parser.push(&data));
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "event stream broke");
                    return None;
                }
                None => return None,
            }
        }
    }
}
