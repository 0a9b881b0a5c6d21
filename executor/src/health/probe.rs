//! The I/O of health checks: running one [`Probe`] under its timeout
//! ([`check`]), and [`Probes`], the checks in flight for the event loop.
//!
//! - HTTP: `GET` with reqwest (no proxy, no connection reuse, redirects
//!   followed as `curl -L` in the built-in executors); the body is not read.
//! - HTTPS: the same over TLS (`https::HttpsClient`: rustls with ring,
//!   any certificate accepted as with `curl -k`), redirects followed up to
//!   [`MAX_REDIRECTS`] (to an `http` URL, reqwest takes over).
//! - TCP: a connect, closed at once.
//! - COMMAND: the command in a new process group, output to the executor's
//!   stderr; the whole group is SIGKILLed when the check ends, times out or
//!   is cancelled.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::{StatusCode, Url};
use tokio::task::{AbortHandle, JoinSet};

use super::{Action, Finished, Probe};
use crate::task::{self, CommandSpec, Termination};
use baton_probe::{HttpsClient, error_chain as chain};

/// Redirects an `https` check follows, as many as reqwest's default policy
/// lets an `http` one follow.
pub const MAX_REDIRECTS: usize = 10;

/// The clients of checks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    /// For HTTP: no proxy (the target is the loopback), no idle connections
    /// kept (each check opens its own, as curl does), HTTP/1.
    http: reqwest::Client,
    /// For HTTPS: one connection per request, HTTP/1.1.
    https: HttpsClient,
}

impl Clients {
    /// Fails only if reqwest cannot build its client.
    pub fn new() -> Result<Clients, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .http1_only()
            .build()?;
        Ok(Clients {
            http,
            https: HttpsClient::new(),
        })
    }
}

/// The longest a TCP connect may take when the check sets no timeout.
const TCP_BOUND: Duration = Duration::from_secs(24 * 3600);

/// Runs `probe` once, bounded by `timeout`: `Ok` when it passes, else the
/// cause of the failure.
pub async fn check(
    clients: &Clients,
    probe: &Probe,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let run = async {
        match probe {
            Probe::Http { url, statuses } => http(&clients.http, url, statuses).await,
            Probe::Https { url, statuses } => https(clients, url, statuses).await,
            // The whole check is bounded below; this bound only keeps the
            // connect from outliving a check without one.
            Probe::Tcp { addr } => baton_probe::tcp(&addr.ip().to_string(), addr.port(), TCP_BOUND)
                .await
                .map_err(|e| e.to_string()),
            Probe::Command(spec) => command(spec).await,
        }
    };
    match timeout {
        // Dropping the check on timeout closes its socket or kills its
        // process group.
        Some(limit) => tokio::time::timeout(limit, run)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {}s", limit.as_secs_f64()))),
        None => run.await,
    }
}

async fn http(client: &reqwest::Client, url: &str, statuses: &[u32]) -> Result<(), String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url} failed: {}", chain(&e)))?;
    verdict(statuses, response.status())
}

/// `GET url` over TLS, following redirects as reqwest does for [`http`]
/// (301, 302, 303, 307 and 308 with a usable `Location`; at most
/// [`MAX_REDIRECTS`]). A redirect to an `http` URL goes on with [`http`].
async fn https(clients: &Clients, url: &str, statuses: &[u32]) -> Result<(), String> {
    let mut current = Url::parse(url).map_err(|e| format!("GET {url} failed: {e}"))?;
    for _ in 0..=MAX_REDIRECTS {
        if current.scheme() == "http" {
            return http(&clients.http, current.as_str(), statuses).await;
        }
        let response = clients
            .https
            .get(&current, 0)
            .await
            .map_err(|e| format!("GET {current} failed: {}", chain(&e)))?;
        let status = response.status();
        let next = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
            .then(|| response.headers().get(reqwest::header::LOCATION))
            .flatten()
            .and_then(|location| location.to_str().ok())
            .and_then(|location| current.join(location).ok())
            .filter(|next| matches!(next.scheme(), "http" | "https"));
        match next {
            Some(next) => current = next,
            None => return verdict(statuses, status),
        }
    }
    Err(format!(
        "GET {url} failed: more than {MAX_REDIRECTS} redirects"
    ))
}

/// Whether an answer with `status` passes a check with these `statuses`.
fn verdict(statuses: &[u32], status: StatusCode) -> Result<(), String> {
    if Probe::http_status_passes(statuses, status.as_u16()) {
        Ok(())
    } else {
        Err(format!("Unexpected HTTP response code: {status}"))
    }
}

async fn command(spec: &CommandSpec) -> Result<(), String> {
    let mut command = task::process_command(spec);
    command.stdout(executor_stderr()).stderr(executor_stderr());
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {:?} failed: {e}", spec.program))?;
    // The check is over when this returns or is dropped: nothing it forked
    // may outlive it.
    let _group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(KillGroupOnDrop);
    let termination = match child.wait().await {
        Ok(status) => Termination::from(status),
        Err(e) => Termination::Unknown(e.to_string()),
    };
    if termination.success() {
        Ok(())
    } else {
        Err(termination.describe())
    }
}

/// The executor's stderr (the sandbox's `stderr` file under Mesos), or
/// nothing if it cannot be shared.
fn executor_stderr() -> Stdio {
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from)
}

/// SIGKILLs a process group when dropped.
struct KillGroupOnDrop(i32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        task::signal_group(self.0, Signal::SIGKILL);
    }
}

/// The checks in flight, at most one per task. Dropping it cancels them
/// all (killing their commands).
#[derive(Debug)]
pub struct Probes {
    clients: Clients,
    running: JoinSet<Finished>,
    /// Per task: the attempt in flight and its handle.
    by_task: HashMap<String, (u64, AbortHandle)>,
}

impl Probes {
    /// No checks yet; fails only if the HTTP client cannot be built.
    pub fn new() -> Result<Probes, reqwest::Error> {
        Ok(Probes {
            clients: Clients::new()?,
            running: JoinSet::new(),
            by_task: HashMap::new(),
        })
    }

    /// Starts or cancels a check. Needs a tokio runtime.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Run {
                task_id,
                attempt,
                probe,
                timeout,
            } => {
                let clients = self.clients.clone();
                let id = task_id.clone();
                let handle = self.running.spawn(async move {
                    let result = check(&clients, &probe, timeout).await;
                    Finished {
                        task_id: id,
                        attempt,
                        result,
                    }
                });
                if let Some((_, previous)) = self.by_task.insert(task_id, (attempt, handle)) {
                    previous.abort();
                }
            }
            Action::Cancel { task_id } => {
                if let Some((_, handle)) = self.by_task.remove(&task_id) {
                    handle.abort();
                }
            }
        }
    }

    /// How many checks are in flight.
    pub fn len(&self) -> usize {
        self.by_task.len()
    }

    /// Whether no check is in flight.
    pub fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }

    /// The next check to finish; pending while none runs. Cancel-safe.
    pub async fn next(&mut self) -> Finished {
        loop {
            let Some(joined) = self.running.join_next().await else {
                return std::future::pending().await;
            };
            match joined {
                Ok(finished) => {
                    if self
                        .by_task
                        .get(&finished.task_id)
                        .is_some_and(|(attempt, _)| *attempt == finished.attempt)
                    {
                        self.by_task.remove(&finished.task_id);
                    }
                    return finished;
                }
                // Cancelled: nobody waits for it.
                Err(e) if e.is_cancelled() => {}
                Err(e) => {
                    let id = e.id();
                    let Some(task_id) = self
                        .by_task
                        .iter()
                        .find(|(_, (_, handle))| handle.id() == id)
                        .map(|(task_id, _)| task_id.clone())
                    else {
                        continue;
                    };
                    let (attempt, _) = self.by_task.remove(&task_id).expect("just found");
                    return Finished {
                        task_id,
                        attempt,
                        result: Err(format!("the health check crashed: {e}")),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::path::Path;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;
    use tokio::time::Instant;

    const LONG: Option<Duration> = Some(Duration::from_secs(10));

    /// A port nothing listens on (bound, then released).
    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    /// Answers every connection with `status` (HTTP/1.0, then closes).
    async fn http_server(status: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    let response = format!(
                        "HTTP/1.0 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        (addr, server)
    }

    /// An HTTPS server with a self-signed certificate made now, for
    /// `localhost` (checks go to 127.0.0.1: it would fail verification
    /// twice). Request `n` (from 0) gets `answers[n]`, or the last one, as a
    /// status line and extra header lines. It counts requests; aborting the
    /// handle stops it and its connections.
    async fn https_server(
        answers: &[(&str, &str)],
    ) -> (
        SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::AsyncReadExt;
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let answers: Arc<Vec<(String, String)>> = Arc::new(
            answers
                .iter()
                .map(|&(status, headers)| (status.to_string(), headers.to_string()))
                .collect(),
        );
        let server = tokio::spawn(async move {
            // Dropped with the server: its connections end too.
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                let (acceptor, counted, answers) =
                    (acceptor.clone(), Arc::clone(&counted), Arc::clone(&answers));
                connections.spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let n = counted.fetch_add(1, Ordering::SeqCst);
                    let (status, headers) = &answers[n.min(answers.len() - 1)];
                    let response = format!(
                        "HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (addr, hits, server)
    }

    fn https_probe(addr: SocketAddr, statuses: Vec<u32>) -> Probe {
        Probe::Https {
            url: format!("https://{addr}/health"),
            statuses,
        }
    }

    fn http_probe(addr: SocketAddr, statuses: Vec<u32>) -> Probe {
        Probe::Http {
            url: format!("http://{addr}/health"),
            statuses,
        }
    }

    fn shell(script: &str, dir: &Path) -> Probe {
        Probe::Command(CommandSpec {
            program: "/bin/sh".into(),
            arg0: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("CHECK_VAR".into(), "yes".into())],
            dir: dir.to_path_buf(),
            volumes: Vec::new(),
        })
    }

    #[tokio::test]
    async fn http_passes_on_2xx_3xx_or_the_listed_statuses() {
        let client = Clients::new().unwrap();
        let (ok, a) = http_server("200 OK").await;
        let (moved, b) = http_server("304 Not Modified").await;
        let (broken, c) = http_server("503 Service Unavailable").await;
        assert_eq!(check(&client, &http_probe(ok, vec![]), LONG).await, Ok(()));
        assert_eq!(
            check(&client, &http_probe(moved, vec![]), LONG).await,
            Ok(())
        );
        let failed = check(&client, &http_probe(broken, vec![]), LONG).await;
        assert_eq!(
            failed,
            Err("Unexpected HTTP response code: 503 Service Unavailable".into())
        );
        assert_eq!(
            check(&client, &http_probe(broken, vec![503]), LONG).await,
            Ok(())
        );
        assert!(
            check(&client, &http_probe(ok, vec![204]), LONG)
                .await
                .is_err()
        );
        for server in [a, b, c] {
            server.abort();
        }
    }

    #[tokio::test]
    async fn http_to_a_closed_port_fails_with_the_cause() {
        let client = Clients::new().unwrap();
        let addr = closed_port().await;
        let cause = check(&client, &http_probe(addr, vec![]), LONG)
            .await
            .unwrap_err();
        assert!(
            cause.contains(&format!("GET http://{addr}/health failed")),
            "{cause}"
        );
        assert!(cause.to_lowercase().contains("refused"), "{cause}");
    }

    #[tokio::test]
    async fn http_is_bounded_by_the_timeout() {
        // Accepts (through the backlog) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Clients::new().unwrap();
        let start = Instant::now();
        let cause = check(
            &client,
            &http_probe(addr, vec![]),
            Some(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
        assert_eq!(cause, "timed out after 0.2s");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[tokio::test]
    async fn tcp_passes_when_something_listens() {
        let client = Clients::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(
            check(&client, &Probe::Tcp { addr: open }, LONG).await,
            Ok(())
        );
        drop(listener);
        let closed = closed_port().await;
        let cause = check(&client, &Probe::Tcp { addr: closed }, LONG)
            .await
            .unwrap_err();
        assert!(
            cause.starts_with(&format!("connecting to {closed} failed")),
            "{cause}"
        );
    }

    #[tokio::test]
    async fn https_passes_on_2xx_3xx_or_the_listed_statuses_whatever_the_certificate() {
        use std::sync::atomic::Ordering;
        let client = Clients::new().unwrap();
        let (ok, _, a) = https_server(&[("200 OK", "")]).await;
        let (moved, _, b) = https_server(&[("304 Not Modified", "")]).await;
        let (broken, hits, c) = https_server(&[("503 Service Unavailable", "")]).await;
        assert_eq!(check(&client, &https_probe(ok, vec![]), LONG).await, Ok(()));
        assert_eq!(
            check(&client, &https_probe(moved, vec![]), LONG).await,
            Ok(())
        );
        assert_eq!(
            check(&client, &https_probe(broken, vec![]), LONG).await,
            Err("Unexpected HTTP response code: 503 Service Unavailable".into())
        );
        assert_eq!(
            check(&client, &https_probe(broken, vec![503]), LONG).await,
            Ok(())
        );
        assert!(
            check(&client, &https_probe(ok, vec![204]), LONG)
                .await
                .is_err()
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2, "one request per check");
        for server in [a, b, c] {
            server.abort();
        }
    }

    #[tokio::test]
    async fn https_follows_redirects_over_https_and_to_http() {
        use std::sync::atomic::Ordering;
        let client = Clients::new().unwrap();
        let (plain, plain_server) = http_server("503 Service Unavailable").await;
        let to_plain = format!("Location: http://{plain}/health\r\n");
        let (addr, hits, server) = https_server(&[
            ("302 Found", "Location: /elsewhere\r\n"),
            ("200 OK", ""),
            ("301 Moved Permanently", &to_plain),
        ])
        .await;
        // Redirected once, then 200.
        assert_eq!(
            check(&client, &https_probe(addr, vec![]), LONG).await,
            Ok(())
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // Redirected to plain HTTP, which answers 503.
        assert_eq!(
            check(&client, &https_probe(addr, vec![]), LONG).await,
            Err("Unexpected HTTP response code: 503 Service Unavailable".into())
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        server.abort();
        plain_server.abort();
    }

    #[tokio::test]
    async fn https_fails_with_the_cause_on_a_closed_port_or_a_plain_server() {
        let client = Clients::new().unwrap();
        let closed = closed_port().await;
        let cause = check(&client, &https_probe(closed, vec![]), LONG)
            .await
            .unwrap_err();
        assert!(
            cause.starts_with(&format!(
                "GET https://{closed}/health failed: cannot connect to {closed}: "
            )),
            "{cause}"
        );
        let (plain, server) = http_server("200 OK").await;
        let cause = check(&client, &https_probe(plain, vec![]), LONG)
            .await
            .unwrap_err();
        assert!(
            cause.starts_with(&format!(
                "GET https://{plain}/health failed: TLS handshake failed: "
            )),
            "{cause}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn https_is_bounded_by_the_timeout() {
        // Accepts (through the backlog) but never answers the handshake.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Clients::new().unwrap();
        let cause = check(
            &client,
            &https_probe(addr, vec![]),
            Some(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
        assert_eq!(cause, "timed out after 0.2s");
        drop(listener);
    }

    #[tokio::test]
    async fn commands_pass_on_exit_zero_in_their_directory_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ready"), "").unwrap();
        let client = Clients::new().unwrap();
        let pass = shell("[ -e ready ] && [ \"$CHECK_VAR\" = yes ]", dir.path());
        assert_eq!(check(&client, &pass, LONG).await, Ok(()));
        let fail = shell("exit 4", dir.path());
        assert_eq!(
            check(&client, &fail, LONG).await,
            Err("Command exited with status 4".into())
        );
    }

    #[tokio::test]
    async fn a_command_that_times_out_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let client = Clients::new().unwrap();
        let probe = shell("echo $$ > pid; sleep 30 & wait", dir.path());
        let cause = check(&client, &probe, Some(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert_eq!(cause, "timed out after 0.3s");
        let pgid: i32 = std::fs::read_to_string(dir.path().join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while task::live_group_members(pgid) > 0 {
            assert!(Instant::now() < deadline, "the check's group survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn probes_report_results_and_cancel_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut probes = Probes::new().unwrap();
        assert!(probes.is_empty());
        probes.apply(Action::Run {
            task_id: "a".into(),
            attempt: 1,
            probe: shell("exit 0", dir.path()),
            timeout: LONG,
        });
        probes.apply(Action::Run {
            task_id: "b".into(),
            attempt: 7,
            probe: shell("echo $$ > pid; exec sleep 30", dir.path()),
            timeout: None,
        });
        assert_eq!(probes.len(), 2);
        let finished = tokio::time::timeout(Duration::from_secs(10), probes.next())
            .await
            .expect("a finishes");
        assert_eq!(
            finished,
            Finished {
                task_id: "a".into(),
                attempt: 1,
                result: Ok(()),
            }
        );
        assert_eq!(probes.len(), 1);

        // Cancelling b kills its command, and b never reports.
        let pid = dir.path().join("pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        let pgid: i32 = loop {
            if let Some(pgid) = std::fs::read_to_string(&pid)
                .ok()
                .and_then(|s| s.strip_suffix('\n').and_then(|s| s.parse().ok()))
            {
                break pgid;
            }
            assert!(Instant::now() < deadline, "b did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        probes.apply(Action::Cancel {
            task_id: "b".into(),
        });
        assert!(probes.is_empty());
        let deadline = Instant::now() + Duration::from_secs(10);
        while task::live_group_members(pgid) > 0 {
            assert!(Instant::now() < deadline, "the cancelled check survived");
            // Lets the runtime drop the aborted check.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            futures::FutureExt::now_or_never(probes.next()),
            None,
            "nothing left to report"
        );
    }
}
