//! `baton-router`: the HTTP gateway in front of apps run by Baton (or by
//! Marathon: it reads only Marathon's public API, as marathon-lb does).
//! It follows the apps and their tasks live, routes requests by Host and
//! path to instances that are running, healthy and not being killed,
//! balances, keeps sessions sticky, retries and ejects failing instances,
//! and counts. It terminates TLS (certificates chosen by SNI, reloaded
//! live), redirects apps' plain-HTTP clients to HTTPS, guards apps with
//! basic authentication, and caches apps' responses, each as the app's
//! labels ask.
//!
//! # Layout
//!
//! Modules in layers, bottom to top. Each imports only modules listed
//! before it, so the imports form no circle; the crate root only declares
//! them, re-exports [`Config`], [`Clock`] and [`Shared`], and wires them
//! together in [`serve`] and [`serve_on`].
//!
//! 1. Leaves, importing no other module of the router:
//!    - [`clock`]: the router's one clock, milliseconds since start.
//!    - [`access`]: pure. CIDR deny lists, router-wide (`--deny`) and per
//!      app (`BATON_DENY`).
//!    - [`auth`]: per-app basic authentication (`BATON_AUTH_FILE`,
//!      `BATON_AUTH_REALM`): the credentials file's format and parsing,
//!      `Authorization: Basic` parsing and the verdict (pure, constant-time
//!      comparison), and the file's last-read state, re-read when its
//!      stamp changes (never per request), failing closed.
//!    - [`redirect`]: pure. The HTTP → HTTPS redirect (301 or 308, the
//!      `Location`) for apps labelled `BATON_REDIRECT_TO_HTTPS`.
//!    - [`tls`]: TLS termination's certificates: loaded from a directory
//!      (host names from each certificate's subjectAltNames) and a
//!      default, chosen per handshake by SNI (exact, wildcard, default;
//!      the choice is pure), swapped whole on reload (SIGHUP, or files
//!      changed), bad files skipped and the previous good ones kept.
//!    - [`stats`]: pure counters, per app and router-wide (lock-free
//!      atomics: requests, status classes, bytes, latency histogram,
//!      request rates), each showing itself as JSON.
//!    - [`visitors`]: pure. Page views and unique visitors per UTC
//!      minute, hour and day (tumbling: the current window and the last
//!      complete one's totals), counted with a HyperLogLog (precision 14,
//!      sparse while small); who a request's visitor is (the app's cookie,
//!      `BATON_UV_COOKIE`, the router's `baton_uv`, or the address).
//!    - [`top_paths`]: pure. An app's busiest paths, space-saving over 32
//!      counters.
//!    - [`access_log`]: per-app access logs (`--access-log`): lines in
//!      the combined format or JSON (pure), a bounded queue the request
//!      path offers lines to without waiting (dropped and counted when
//!      full), and the writer task that batches them to files rotated by
//!      size, or to standard output.
//!    - [`marathon`]: the HTTP client for Marathon's (and Baton's) API:
//!      app list, single apps, load reports, `PUT /v2/apps/{id}`, the
//!      event stream; its errors.
//!    - [`pool`]: HTTP/1.1 towards instances, run in the request's own
//!      task (head out in one write, response head parsed with
//!      `httparse`, body read as the client takes it), over keep-alive
//!      connections pooled per serving thread; tells a request that never
//!      went out from one that failed.
//!    - [`pool_h2`]: HTTP/2 towards the instances of apps that speak it
//!      (gRPC): one multiplexed cleartext connection per instance.
//!    - [`cache_rules`]: pure. The response cache's rules (RFC 9111, a
//!      shared cache's practical subset): the `BATON_CACHE*` labels, which
//!      requests use the cache, which responses are stored and for how
//!      long, `Vary` variants, ages, and 304s to conditional requests.
//! 2. Pure rules, state and settings:
//!    - [`split`]: how apps sharing a vhost and path share its requests:
//!      a switch record's live app (blue/green) or weights (canary), by
//!      smooth weighted round-robin.
//!    - [`balance`]: per-instance state (in flight, failure streak,
//!      ejection, load weight) kept across table generations, the policies
//!      (round-robin, least outstanding requests, load-weighted), sticky
//!      cookies, and [`balance::pick`].
//!    - [`scale`]: autoscaling by request rate and sleep/wake, from
//!      `BATON_AUTOSCALE_*`, `BATON_SLEEP_AFTER` and `BATON_WAKE_TIMEOUT`:
//!      the rules and verdicts, the controller's per-app state, and the
//!      decision log behind `/_router/autoscale`.
//!    - [`runtime`]: what the router keeps per app across table
//!      generations ([`runtime::AppRuntime`]: counters, audience (page
//!      views, visitors, top paths, behind one lock), balancer turn, last
//!      request, scaling state).
//!    - [`cache_store`]: pure. The response cache's memory: stored
//!      responses in one LRU bounded in bytes router-wide and per app,
//!      behind one mutex shared by the serving threads; bodies collected
//!      as they stream; entries dropped when their app's version changes;
//!      per-app counters.
//!    - [`config`]: [`Config`], what the router needs to run.
//! 3. [`table`]: pure. Apps JSON → the routing table (which instances are
//!    routable and why not, vhosts, path prefixes, labels) and the lookup
//!    of a request's app by Host and longest path prefix. Tables are
//!    immutable; each change publishes the next generation, carrying over
//!    each app's runtime and each instance's state.
//! 4. Over the table:
//!    - [`cache`]: the response cache in a request's path: a request to
//!      a cached app answered from a stored response (with `Age`,
//!      `X-Cache: HIT`, or a 304), or forwarded with what to do with the
//!      response (store it as its body streams, or drop its URL's entries
//!      after an unsafe request).
//!    - [`report`]: the counters over a whole table (and the access
//!      log's and the response cache's), rendered as JSON
//!      (`/_router/stats`) and Prometheus text (`/_router/metrics`).
//!    - [`shared`]: [`Shared`], what every task shares: the current table,
//!      router-wide counters, clock, configuration, Marathon client,
//!      decision log, the access log's queue, the response cache.
//! 5. Background work, each a task on [`Shared`]:
//!    - [`sync`]: follows Marathon. `GET /v2/apps?embed=apps.tasks` on
//!      every (re)connect and periodically, and the `/v2/events` stream
//!      whose events trigger per-app re-reads; publishes each table once
//!      the credentials files it names are read, and re-reads those
//!      files when they change.
//!    - [`load`]: load-aware weights: reads Baton's `/v2/tasks/load` (what
//!      each task's executor reported) and turns CPU use and host load
//!      into each instance's weight for the `load` policy.
//!    - [`scaler`]: the one-second controller applying [`scale`]'s rules
//!      through `PUT /v2/apps/{id}`, waking sleeping apps on request, and
//!      `/_router/autoscale`.
//!    - [`switch`]: blue/green switches driven to the end: the new app
//!      ready, the switch record written and routed by, the old apps
//!      drained, then scaled to 0; `/_router/switch`.
//! 6. [`proxy`]: the hyper server, one single-threaded runtime per CPU
//!    (new connections handed to the least busy), on the plain listener
//!    and the TLS one (handshakes in the connection's task): admin
//!    endpoints under `/_router/`, deny lists, redirects to HTTPS, basic
//!    authentication, answers from the response cache, forwarding
//!    (bodies of cached apps' responses collected for the cache as they
//!    stream), bodies that can be replayed,
//!    one retry on another instance, passive health, counted responses,
//!    page views and visitors (issuing the visitor cookie), access-log
//!    lines, requests held while a sleeping app wakes, and WebSocket
//!    tunnels.
//!
//! The binary (`src/main.rs`) only parses flags, binds the listeners,
//! loads the certificates, reloads them on SIGHUP and calls [`serve_on`].
//! Background work (following Marathon, reading loads, scaling, watching
//! certificate files, writing the access log) runs as tasks that stop
//! with the server; the access log's writer last, once the serving
//! threads are done, writing what is still queued.

pub mod access;
pub mod access_log;
pub mod auth;
pub mod balance;
pub mod cache;
pub mod cache_rules;
pub mod cache_store;
pub mod clock;
pub mod config;
pub mod load;
pub mod marathon;
pub mod pool;
pub mod pool_h2;
pub mod proxy;
pub mod redirect;
pub mod report;
pub mod runtime;
pub mod scale;
pub mod scaler;
pub mod shared;
pub mod split;
pub mod stats;
pub mod switch;
pub mod sync;
pub mod table;
pub mod tls;
pub mod top_paths;
pub mod visitors;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::clock::Clock;
pub use crate::config::Config;
use crate::marathon::Marathon;
pub use crate::shared::Shared;

/// Why the router could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client for Marathon could not be set up.
    #[error("cannot set up the Marathon client")]
    Marathon(#[from] marathon::Error),
    /// The serving threads could not be started.
    #[error("cannot start the serving threads")]
    Workers(#[source] std::io::Error),
    /// TLS could not be set up.
    #[error("cannot set up TLS")]
    Tls(#[from] tls::Error),
}

/// Where the router serves: plain HTTP, and HTTPS with its certificates.
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP.
    pub http: TcpListener,
    /// TLS, terminated here with these certificates (the caller keeps a
    /// handle to reload them).
    pub https: Option<(TcpListener, Arc<tls::Certificates>)>,
}

/// Runs the router on `listener` until `shutdown` completes: follows
/// Marathon at `config.marathon` and proxies requests. On shutdown it stops
/// accepting, lets open requests finish (within `shutdown_grace`), and
/// stops following Marathon.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let listeners = Listeners {
        http: listener,
        https: None,
    };
    serve_on(listeners, config, shutdown).await
}

/// [`serve`] on plain HTTP and, when given, HTTPS: requests arriving over
/// TLS are proxied alike (with `X-Forwarded-Proto: https`), and the
/// certificates' files are watched for changes while the server runs.
pub async fn serve_on(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let https = match listeners.https {
        Some((listener, certificates)) => {
            let acceptor =
                tokio_rustls::TlsAcceptor::from(certificates.server_config(config.http2)?);
            Some((listener, acceptor, certificates))
        }
        None => None,
    };
    let marathon = Marathon::new(
        &config.marathon,
        config.connect_timeout,
        config.marathon_timeout,
    )?;
    let (access_log, log_writer) = access_log::open(config.access_log.clone());
    let shared = Arc::new(Shared::new(config, marathon.clone(), access_log));
    let stop = CancellationToken::new();
    let mut background = vec![
        tokio::spawn(sync::run(shared.clone(), marathon.clone(), stop.clone())),
        tokio::spawn(load::run(shared.clone(), marathon.clone(), stop.clone())),
        tokio::spawn(scaler::run(shared.clone(), marathon, stop.clone())),
    ];
    // Stopped only once the serving threads are done, so that it writes
    // the last requests' lines too.
    if let Some(writer) = log_writer {
        background.push(tokio::spawn(access_log::run(writer, stop.clone())));
    }
    let https = https.map(|(listener, acceptor, certificates)| {
        background.push(tokio::spawn(tls::watch(certificates, stop.clone())));
        (listener, acceptor)
    });
    let served = proxy::run(listeners.http, https, shared, shutdown)
        .await
        .map_err(Error::Workers);
    stop.cancel();
    for task in background {
        let _ = task.await;
    }
    served
}
