//! A `/v2/events` subscriber that records every event, for tests that
//! check what happened and in which order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::wait;

/// Events received so far, in order, recorded by a background task.
pub struct EventLog {
    events: Arc<Mutex<Vec<Value>>>,
    reader: tokio::task::JoinHandle<()>,
}

/// Subscribes to `base_url/v2/events` and hands every event, parsed, to
/// `sink` in the order the stream delivers them, from a background task
/// that ends with the stream.
pub async fn follow(
    base_url: &str,
    mut sink: impl FnMut(Value) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let response = reqwest::Client::new()
        .get(format!("{base_url}/v2/events"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("connect to /v2/events");
    assert_eq!(response.status().as_u16(), 200, "/v2/events");
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                for line in block.lines() {
                    if let Some(data) = line.strip_prefix("data:")
                        && let Ok(v) = serde_json::from_str::<Value>(data.trim())
                    {
                        sink(v);
                    }
                }
            }
        }
    })
}

impl EventLog {
    /// Subscribes to `base_url/v2/events` and waits until the stream is
    /// attached (`event_stream_attached`).
    pub async fn attach(base_url: &str) -> EventLog {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let reader = follow(base_url, move |v| sink.lock().unwrap().push(v)).await;
        let log = EventLog { events, reader };
        log.wait_for("the stream to attach", |e| {
            e["eventType"] == "event_stream_attached"
        })
        .await;
        log
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits (60 s at most) until an event matching `predicate` arrived;
    /// returns it.
    pub async fn wait_for(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        wait::until(Duration::from_secs(60), what, || {
            let found = self.all().into_iter().find(|e| predicate(e));
            async move { found }
        })
        .await
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
