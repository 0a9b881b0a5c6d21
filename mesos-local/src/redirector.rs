//! A non-leading master: every scheduler call (and `/master/redirect`) is
//! answered with a 307 to the leader, with the scheme-less `Location`
//! (`//host:port/path`) Mesos sends since 0.23.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tokio::net::TcpListener;

fn redirect_to(location: String) -> Response {
    let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn to_path(State(leader): State<SocketAddr>, uri: Uri) -> Response {
    redirect_to(format!("//{leader}{}", uri.path()))
}

async fn to_root(State(leader): State<SocketAddr>) -> Response {
    redirect_to(format!("//{leader}"))
}

/// Serves the redirecting master on `listener` until `shutdown` resolves.
pub async fn serve_redirector(
    listener: TcpListener,
    leader: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Router::new()
        .route("/api/v1/scheduler", any(to_path))
        .route("/master/api/v1/scheduler", any(to_path))
        .route("/master/state", any(to_path))
        .route("/state", any(to_path))
        .route("/master/redirect", any(to_root))
        .route("/redirect", any(to_root))
        .with_state(leader);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
