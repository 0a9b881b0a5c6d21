//! Serving the `baton-executor` binary, which agents fetch (through the
//! Mesos fetcher) before starting a task under Baton's executor; see
//! [`crate::offers::executor`].
//!
//! `GET /executor/baton-executor` answers the binary as
//! `application/octet-stream`, or 404 with Marathon's `{"message": …}` body
//! when the file cannot be read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::OnceCell;

/// The path agents fetch the executor from.
pub const EXECUTOR_PATH: &str = "/executor/baton-executor";

/// The executor binary on Baton's disk, read on first use and then kept in
/// memory: every task launch fetches it, and `Bytes` clones are cheap.
#[derive(Debug)]
pub struct ExecutorFile {
    path: PathBuf,
    cached: OnceCell<Bytes>,
}

impl ExecutorFile {
    /// The binary at `path`; nothing is read until [`bytes`](Self::bytes).
    pub fn new(path: PathBuf) -> Self {
        ExecutorFile {
            path,
            cached: OnceCell::new(),
        }
    }

    /// Where the binary is read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The binary's contents, read once.
    ///
    /// # Errors
    ///
    /// Why the file could not be read. Failures are not cached, so a binary
    /// installed after Baton started is served from the next fetch on.
    pub async fn bytes(&self) -> Result<Bytes, String> {
        self.cached
            .get_or_try_init(|| async {
                tokio::fs::read(&self.path)
                    .await
                    .map(Bytes::from)
                    .map_err(|e| format!("{}: {e}", self.path.display()))
            })
            .await
            .cloned()
    }
}

/// `GET /executor/baton-executor` serving `file`. Needs no state, so it
/// merges into a router of any state type.
pub fn routes<S>(file: Arc<ExecutorFile>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        EXECUTOR_PATH,
        get(move || {
            let file = Arc::clone(&file);
            async move { serve_executor(&file).await }
        }),
    )
}

async fn serve_executor(file: &ExecutorFile) -> Response {
    match file.bytes().await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(reason) => {
            // The agent's fetcher only reports the status, so say why here.
            tracing::warn!(%reason, "cannot serve the executor binary");
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({
                    "message": format!("executor binary not available: {reason}")
                })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// Serves `routes(file)` on an ephemeral port and returns its base URL.
    async fn serve(file: ExecutorFile) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app: Router = routes(Arc::new(file));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn agents_fetch_the_binarys_exact_bytes() {
        let contents: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let mut binary = tempfile::NamedTempFile::new().unwrap();
        binary.write_all(&contents).unwrap();
        let base = serve(ExecutorFile::new(binary.path().to_path_buf())).await;

        let response = reqwest::get(format!("{base}{EXECUTOR_PATH}"))
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            "application/octet-stream"
        );
        assert_eq!(response.bytes().await.unwrap(), contents);
    }

    #[tokio::test]
    async fn missing_binary_is_404_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let base = serve(ExecutorFile::new(dir.path().join("baton-executor"))).await;

        let response = reqwest::get(format!("{base}{EXECUTOR_PATH}"))
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
        let body: serde_json::Value = response.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("executor binary not available: "),
            "{message}"
        );
    }

    #[tokio::test]
    async fn binary_is_read_once_and_a_failed_read_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baton-executor");
        let file = ExecutorFile::new(path.clone());
        assert!(file.bytes().await.is_err());

        std::fs::write(&path, b"v1").unwrap();
        assert_eq!(file.bytes().await.unwrap(), Bytes::from_static(b"v1"));
        // Later changes on disk are not picked up: the first read is kept.
        std::fs::write(&path, b"v2").unwrap();
        assert_eq!(file.bytes().await.unwrap(), Bytes::from_static(b"v1"));
    }
}
