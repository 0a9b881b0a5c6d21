//! Serving the `baton-executor` binary, which agents fetch (through the
//! Mesos fetcher) before starting a task under Baton's executor; see
//! [`crate::offers::executor`].
//!
//! `GET /executor/<version>/baton-executor` answers the binary whose
//! SHA-256 starts with `<version>` as `application/octet-stream`. The
//! version in the path makes the URL change with the binary, so agents
//! fetch it with the Mesos fetcher cache on: each agent downloads a build
//! once, and a Baton restart while an agent downloads costs later launches
//! nothing. `GET /executor/baton-executor` answers the current binary too
//! (for operators, and when the binary could not be read at start). Errors
//! are 404 with Marathon's `{"message": …}` body.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::offers::executor::EXECUTOR_NAME;

/// The unversioned path agents fetch the executor from.
pub const EXECUTOR_PATH: &str = "/executor/baton-executor";

/// Hex digits of the SHA-256 that name a version: enough that two builds
/// never share one.
const VERSION_DIGITS: usize = 16;

/// The executor binary on Baton's disk, read once (at start, or on first
/// use) and then kept in memory with its version: every task launch may
/// fetch it, and `Bytes` clones are cheap.
#[derive(Debug)]
pub struct ExecutorFile {
    path: PathBuf,
    loaded: OnceCell<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    bytes: Bytes,
    version: String,
}

impl ExecutorFile {
    /// The binary at `path`; nothing is read until [`load`](Self::load) or
    /// [`bytes`](Self::bytes).
    pub fn new(path: PathBuf) -> Self {
        ExecutorFile {
            path,
            loaded: OnceCell::new(),
        }
    }

    /// Where the binary is read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn loaded(&self) -> Result<&Loaded, String> {
        self.loaded
            .get_or_try_init(|| async {
                let bytes = tokio::fs::read(&self.path)
                    .await
                    .map(Bytes::from)
                    .map_err(|e| format!("{}: {e}", self.path.display()))?;
                let hashed = bytes.clone();
                let digest = tokio::task::spawn_blocking(move || {
                    ring::digest::digest(&ring::digest::SHA256, &hashed)
                })
                .await
                .map_err(|e| format!("hashing {}: {e}", self.path.display()))?;
                let version: String = digest
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()[..VERSION_DIGITS]
                    .to_string();
                Ok(Loaded { bytes, version })
            })
            .await
    }

    /// Reads the binary now (Baton does at start, so that the URL agents
    /// fetch carries its version); `None`, logged, when it cannot be read
    /// — the next fetch tries again.
    pub async fn load(&self) -> Option<&str> {
        match self.loaded().await {
            Ok(loaded) => Some(&loaded.version),
            Err(reason) => {
                tracing::warn!(%reason, "cannot read the executor binary; agents fetch it unversioned, without their cache, until Baton restarts");
                None
            }
        }
    }

    /// The binary's contents, read once.
    ///
    /// # Errors
    ///
    /// Why the file could not be read. Failures are not cached, so a binary
    /// installed after Baton started is served from the next fetch on.
    pub async fn bytes(&self) -> Result<Bytes, String> {
        self.loaded().await.map(|l| l.bytes.clone())
    }

    /// The path agents fetch: versioned once the binary has been read.
    pub fn fetch_path(&self) -> String {
        match self.loaded.get() {
            Some(loaded) => format!("/executor/{}/{EXECUTOR_NAME}", loaded.version),
            None => EXECUTOR_PATH.to_string(),
        }
    }
}

/// `GET /executor/baton-executor` and `GET /executor/<version>/baton-executor`
/// serving `file`. Needs no state, so it merges into a router of any state
/// type.
pub fn routes<S>(file: Arc<ExecutorFile>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let versioned = Arc::clone(&file);
    Router::new()
        .route(
            EXECUTOR_PATH,
            get(move || {
                let file = Arc::clone(&file);
                async move { serve_executor(&file, None).await }
            }),
        )
        .route(
            &format!("/executor/{{version}}/{EXECUTOR_NAME}"),
            get(move |UrlPath(version): UrlPath<String>| {
                let file = Arc::clone(&versioned);
                async move { serve_executor(&file, Some(version)).await }
            }),
        )
}

fn not_found(message: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "message": message })),
    )
        .into_response()
}

async fn serve_executor(file: &ExecutorFile, version: Option<String>) -> Response {
    match (file.loaded().await, version) {
        (Ok(loaded), Some(asked)) if asked != loaded.version => {
            tracing::warn!(%asked, current = %loaded.version, "an agent asked for another executor build");
            not_found(format!(
                "executor version {asked} is not served here (this Baton serves {})",
                loaded.version
            ))
        }
        (Ok(loaded), _) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            loaded.bytes.clone(),
        )
            .into_response(),
        (Err(reason), _) => {
            // The agent's fetcher only reports the status, so say why here.
            tracing::warn!(%reason, "cannot serve the executor binary");
            not_found(format!("executor binary not available: {reason}"))
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
    async fn the_versioned_path_serves_the_build_it_names_only() {
        let mut binary = tempfile::NamedTempFile::new().unwrap();
        binary.write_all(b"build one").unwrap();
        let file = Arc::new(ExecutorFile::new(binary.path().to_path_buf()));
        assert_eq!(file.fetch_path(), EXECUTOR_PATH, "unversioned until read");
        let version = file.load().await.unwrap().to_string();
        assert_eq!(version.len(), VERSION_DIGITS);
        let path = file.fetch_path();
        assert_eq!(path, format!("/executor/{version}/baton-executor"));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app: Router = routes(file);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let got = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(got.status(), reqwest::StatusCode::OK);
        assert_eq!(got.bytes().await.unwrap(), Bytes::from_static(b"build one"));
        let other = reqwest::get(format!("{base}/executor/0123456789abcdef/baton-executor"))
            .await
            .unwrap();
        assert_eq!(other.status(), reqwest::StatusCode::NOT_FOUND);
        let body: serde_json::Value = other.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(&version),
            "{body}"
        );
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
