//! Leadership terms: the scheduler runs only while this process leads.
//!
//! [`run`] watches the [`Role`]. When it becomes `Leading`, a term starts:
//! `start` loads state and starts the scheduler, and the REST API switches
//! to it. When the role changes away from that term, or the scheduler
//! stops on its own, the term ends: the scheduler is cancelled and awaited
//! *first* (so this process sends and writes nothing more), then the API
//! switches back to the standby router. A start that fails (the store is
//! unreachable, say) is retried with a pause while the role still leads.
//!
//! While a term starts (loading the state can take seconds), requests are
//! held and handed to whichever router comes next — the term's, or the
//! standby's if the start failed — rather than to the standby router,
//! which has no leader to proxy to (this process leads) and would answer
//! 502 after waiting for one: clients see a new leader as soon as it
//! serves.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use super::Role;
use crate::reconcile::SchedulerHandle;

/// Pause before retrying a term that could not start.
const RETRY_START: Duration = Duration::from_secs(1);
/// The longest a request is held while a term starts.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// What is served while a term starts: each request waits until `next`
/// names the router that follows (the term's, or the standby's if the
/// start failed), and is handed to it.
fn holding(next: watch::Receiver<Option<Router>>) -> Router {
    Router::new().fallback(move |request: Request| {
        let mut next = next.clone();
        async move {
            let router = tokio::time::timeout(HOLD_LIMIT, next.wait_for(Option::is_some))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|router| router.clone());
            match router {
                Some(router) => serve_with(router, request).await,
                // Marathon's error shape, written here: `ha` sits below `api`.
                None => (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(
                        serde_json::json!({"message": "Leadership is being taken over; try again"}),
                    ),
                )
                    .into_response(),
            }
        }
    })
}

async fn serve_with(router: Router, request: Request) -> Response {
    use tower::ServiceExt;
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// A running term.
pub struct Term<H = SchedulerHandle> {
    /// The API served while it lasts.
    pub router: Router,
    /// Its scheduler.
    pub scheduler: H,
    /// Ends when its scheduler has stopped.
    pub stopped: JoinHandle<()>,
}

/// Runs terms as `roles` say until `shutdown`: `start(role, cancel)`
/// starts one, `serving` gets the API to serve (`standby` between terms),
/// `current` the scheduler of the term in progress. A start that fails is
/// retried when `retry_failed_start`, else it ends the run with its error.
pub async fn run<H, S, F, E>(
    mut roles: watch::Receiver<Role>,
    start: S,
    serving: watch::Sender<Router>,
    standby: Router,
    current: watch::Sender<Option<H>>,
    shutdown: CancellationToken,
    retry_failed_start: bool,
) -> Result<(), String>
where
    S: Fn(Role, CancellationToken) -> F,
    F: Future<Output = Result<Term<H>, E>>,
    E: std::fmt::Display,
{
    loop {
        let _ = serving.send_replace(standby.clone());
        // Wait for a term.
        let role = loop {
            let role = roles.borrow_and_update().clone();
            if role.is_leading() {
                break role;
            }
            info!(%role, "not leading");
            tokio::select! {
                changed = roles.changed() => if changed.is_err() { return Ok(()) },
                () = shutdown.cancelled() => return Ok(()),
            }
        };
        let span = info_span!("term", %role);
        let cancel = shutdown.child_token();
        // Requests wait for the term (or the standby again) meanwhile.
        let (next, held) = watch::channel(None);
        let _ = serving.send_replace(holding(held));
        let term = match start(role.clone(), cancel.clone())
            .instrument(span.clone())
            .await
        {
            Ok(term) => term,
            Err(e) if !retry_failed_start => return Err(e.to_string()),
            Err(e) => {
                next.send_replace(Some(standby.clone()));
                span.in_scope(|| error!(error = %e, "cannot start leading; retrying"));
                tokio::select! {
                    () = tokio::time::sleep(RETRY_START) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
                continue;
            }
        };
        span.in_scope(|| info!("leading: scheduler started, serving the API"));
        next.send_replace(Some(term.router.clone()));
        let _ = serving.send_replace(term.router);
        current.send_replace(Some(term.scheduler));
        let mut stopped = term.stopped;
        let ended_by_itself = tokio::select! {
            () = still(&mut roles, &role) => false,
            _ = &mut stopped => true,
            () = shutdown.cancelled() => false,
        };
        // Fence first: the scheduler stops before anything else happens.
        cancel.cancel();
        if !ended_by_itself && let Err(e) = stopped.await {
            span.in_scope(|| error!(error = %e, "scheduler ended abnormally"));
        }
        current.send_replace(None);
        span.in_scope(|| {
            if ended_by_itself {
                warn!("scheduler stopped on its own; term over")
            } else {
                info!(now = %*roles.borrow(), "term over: scheduler stopped")
            }
        });
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Resolves once the role is no longer `role` (or its sender is gone).
async fn still(roles: &mut watch::Receiver<Role>, role: &Role) {
    loop {
        if *roles.borrow_and_update() != *role {
            return;
        }
        if roles.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_term_runs_only_while_leading_and_is_stopped_before_the_next() {
        let (roles_tx, roles) = watch::channel(Role::Electing);
        let running = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        // A term's "scheduler" is a task that runs until cancelled.
        let start = {
            let (running, started) = (running.clone(), started.clone());
            move |_role: Role, cancel: CancellationToken| {
                started.fetch_add(1, Ordering::SeqCst);
                running.fetch_add(1, Ordering::SeqCst);
                let running = running.clone();
                let stopped = tokio::spawn(async move {
                    cancel.cancelled().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                });
                std::future::ready(Ok::<_, String>(Term {
                    router: Router::new(),
                    scheduler: (),
                    stopped,
                }))
            }
        };
        let (serving, _serving_rx) = watch::channel(Router::new());
        let (current, current_rx) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let terms = tokio::spawn(run(
            roles,
            start,
            serving,
            Router::new(),
            current,
            shutdown.clone(),
            true,
        ));
        let running_now = || running.load(Ordering::SeqCst);
        // Polls (bounded) until `check` holds.
        async fn until(what: &str, check: impl Fn() -> bool) {
            for _ in 0..1000 {
                if check() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("timed out waiting for {what}");
        }

        tokio::task::yield_now().await;
        assert_eq!(running_now(), 0, "electing: no term");
        roles_tx.send_replace(Role::Leading { term: 1 });
        until("a term", || {
            running_now() == 1 && current_rx.borrow().is_some()
        })
        .await;
        roles_tx.send_replace(Role::Following {
            leader: "b:1".into(),
        });
        until("deposed: stopped", || {
            running_now() == 0 && current_rx.borrow().is_none()
        })
        .await;
        roles_tx.send_replace(Role::Leading { term: 2 });
        until("the second term", || started.load(Ordering::SeqCst) == 2).await;
        // A new term straight after another: the old one stops first.
        roles_tx.send_replace(Role::Leading { term: 3 });
        until("the third term", || started.load(Ordering::SeqCst) == 3).await;
        assert_eq!(running_now(), 1, "never two terms at once");
        shutdown.cancel();
        terms.await.unwrap().unwrap();
        assert_eq!(running_now(), 0, "shutdown stops the term");
    }

    #[tokio::test]
    async fn a_request_during_a_term_start_is_served_by_the_term() {
        use axum::routing::get;
        use tower::ServiceExt;

        let (roles_tx, roles) = watch::channel(Role::Electing);
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let gates = Arc::new(std::sync::Mutex::new(Some((started_tx, released))));
        // A start that takes until released (loading a big state, say).
        let start = move |_role: Role, cancel: CancellationToken| {
            let gate = gates.lock().unwrap().take();
            async move {
                if let Some((started, released)) = gate {
                    let _ = started.send(());
                    let _ = released.await;
                }
                let stopped = tokio::spawn(async move { cancel.cancelled().await });
                Ok::<_, String>(Term {
                    router: Router::new().route("/who", get(|| async { "term" })),
                    scheduler: (),
                    stopped,
                })
            }
        };
        let standby = Router::new().route("/who", get(|| async { "standby" }));
        let (serving, serving_rx) = watch::channel(standby.clone());
        let (current, _current_rx) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let terms = tokio::spawn(run(
            roles,
            start,
            serving,
            standby,
            current,
            shutdown.clone(),
            true,
        ));
        roles_tx.send_replace(Role::Leading { term: 1 });
        started.await.unwrap();
        // What is served now: the request waits.
        let router = serving_rx.borrow().clone();
        let request = axum::http::Request::get("/who")
            .body(axum::body::Body::empty())
            .unwrap();
        let answer = tokio::spawn(router.oneshot(request));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!answer.is_finished(), "held while the term starts");
        release.send(()).unwrap();
        let response = answer.await.unwrap().unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"term");
        shutdown.cancel();
        terms.await.unwrap().unwrap();
    }
}
