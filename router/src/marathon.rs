//! The client for Marathon's REST API (or Baton's, which serves the same
//! paths plus `GET /v2/tasks/load`): the app list and single apps, load
//! reports, partial app updates (`PUT /v2/apps/{id}`), and opening the
//! event stream. Requests other than the stream are bounded by a timeout;
//! answers are checked for status and shape, and every failure says which
//! request it was ([`Error`]).
//!
//! It knows nothing of the rest of the router. A [`Marathon`] is a cheap
//! handle: its clones share one connection pool.

use std::time::Duration;

use serde_json::Value;

/// Failures talking to Marathon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for Marathon")]
    Client(#[source] reqwest::Error),
    /// No answer.
    #[error("{what}: no answer from Marathon")]
    Request {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// An unexpected status.
    #[error("{what}: Marathon answered {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    /// An answer of the wrong shape.
    #[error("{what}: unexpected answer from Marathon: {reason}")]
    Shape { what: String, reason: String },
    /// The event stream was silent for too long.
    #[error("the event stream was idle for {0:?}")]
    Idle(Duration),
    /// The event stream ended.
    #[error("the event stream ended")]
    Ended,
}

/// A small client for the parts of Marathon's API the router reads.
#[derive(Debug, Clone)]
pub struct Marathon {
    /// Base URL without a trailing slash.
    base: String,
    http: reqwest::Client,
    /// Bound on each list or app request (not on the stream).
    request_timeout: Duration,
}

impl Marathon {
    /// A client for Marathon at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(
        base: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Marathon, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .no_proxy()
            .build()
            .map_err(Error::Client)?;
        Ok(Marathon {
            base: base.trim_end_matches('/').to_string(),
            http,
            request_timeout,
        })
    }

    async fn get_json(&self, path: &str) -> Result<Option<Value>, Error> {
        let what = format!("GET {path}");
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Accept", "application/json")
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|source| Error::Request {
                what: what.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        let body = response.text().await.map_err(|source| Error::Request {
            what: what.clone(),
            source,
        })?;
        if status != 200 {
            return Err(Error::Status {
                what,
                status,
                body: body.chars().take(200).collect(),
            });
        }
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| Error::Shape {
                what,
                reason: e.to_string(),
            })
    }

    /// `field` of the JSON object at `path`, when it is an array (`array`)
    /// or an object; `None` on 404.
    async fn get_field(
        &self,
        path: &str,
        field: &str,
        array: bool,
    ) -> Result<Option<Value>, Error> {
        let shape = |reason: String| Error::Shape {
            what: format!("GET {path}"),
            reason,
        };
        match self.get_json(path).await? {
            None => Ok(None),
            Some(Value::Object(mut body)) => match body.remove(field) {
                Some(v @ Value::Array(_)) if array => Ok(Some(v)),
                Some(v @ Value::Object(_)) if !array => Ok(Some(v)),
                _ => Err(shape(format!(
                    "no `{field}` {}",
                    if array { "array" } else { "object" }
                ))),
            },
            Some(_) => Err(shape("not a JSON object".into())),
        }
    }

    /// Every app with its tasks.
    pub async fn apps(&self) -> Result<Vec<Value>, Error> {
        let path = "/v2/apps?embed=apps.tasks";
        match self.get_field(path, "apps", true).await? {
            Some(Value::Array(apps)) => Ok(apps),
            _ => Err(Error::Shape {
                what: format!("GET {path}"),
                reason: "not found".into(),
            }),
        }
    }

    /// One app with its tasks; `None` when Marathon does not know it.
    pub async fn app(&self, id: &str) -> Result<Option<Value>, Error> {
        let path = format!("/v2/apps/{}?embed=apps.tasks", id.trim_start_matches('/'));
        self.get_field(&path, "app", false).await
    }

    /// Baton's `GET /v2/tasks/load` list; `None` when Marathon has no such
    /// endpoint.
    pub async fn task_loads(&self) -> Result<Option<Vec<Value>>, Error> {
        match self.get_field("/v2/tasks/load", "tasks", true).await? {
            Some(Value::Array(tasks)) => Ok(Some(tasks)),
            _ => Ok(None),
        }
    }

    /// `PUT /v2/apps/{id}` with `body` (a partial app: only the fields
    /// given change). Without `force`, so a running deployment of the app
    /// is answered 409 ([`Error::Status`]) rather than cancelled.
    pub async fn put_app(&self, id: &str, body: &Value) -> Result<(), Error> {
        self.put_json(&format!("/v2/apps/{}", id.trim_start_matches('/')), body)
            .await
    }

    /// Baton's `PUT /v2/routers/{id}/load`: this router's request rates,
    /// shared with the other routers.
    pub async fn put_router_load(&self, router_id: &str, body: &Value) -> Result<(), Error> {
        self.put_json(&format!("/v2/routers/{router_id}/load"), body)
            .await
    }

    /// Baton's `GET /v2/routers/load`: every router's rates summed; `None`
    /// when Marathon has no such endpoint.
    pub async fn router_loads(&self) -> Result<Option<Value>, Error> {
        self.get_json("/v2/routers/load").await
    }

    async fn put_json(&self, path: &str, body: &Value) -> Result<(), Error> {
        let what = format!("PUT {path}");
        let response = self
            .http
            .put(format!("{}{path}", self.base))
            .header("Accept", "application/json")
            .json(body)
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|source| Error::Request {
                what: what.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(Error::Status {
            what,
            status,
            body: body.chars().take(200).collect(),
        })
    }

    /// Opens the event stream, asking for `event_types` only.
    pub(crate) async fn events(&self, event_types: &[&str]) -> Result<reqwest::Response, Error> {
        let mut url = format!("{}/v2/events?plan-format=light", self.base);
        for t in event_types {
            url.push_str("&event_type=");
            url.push_str(t);
        }
        let what = "GET /v2/events".to_string();
        let response = self
            .http
            .get(url)
            .header("Accept", "text/event-stream")
            .send()
            .await
            .map_err(|source| Error::Request {
                what: what.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Status {
                what,
                status,
                body: body.chars().take(200).collect(),
            });
        }
        Ok(response)
    }
}
