//! Gateway throughput and tail latency: the real `baton-router` binary
//! against nginx, both proxying `GET /` to the same three upstreams.
//!
//! Everything runs on 127.0.0.1 in this process's care:
//!
//! - three hyper upstreams answering `GET /` with a fixed ~100-byte body
//!   (keep-alive), on a one-thread tokio runtime so they stay cheap;
//! - a minimal Marathon (`/v2/apps`, `/v2/apps/bench`, and a `/v2/events`
//!   stream that only sends keepalive comments) listing them as the running
//!   tasks of app `/bench` with `BATON_PATH=/`;
//! - `baton-router --marathon <fixture>`, used once its table shows the
//!   three instances and `GET /` answers 200;
//! - nginx (`daemon off`, one worker per CPU, an `upstream` block with
//!   `keepalive 64`, HTTP/1.1 and an empty `Connection` header towards the
//!   upstreams, access log off).
//!
//! `wrk --latency` then loads each in turn with the same parameters, for
//! several alternating rounds after a warm-up. The table shows requests/s,
//! the 99th percentile and each proxy's CPU time per request (user +
//! system of its processes, from `/proc`) per round, their medians, and
//! router/nginx ratios against the goal (throughput >= 0.9x nginx, p99 <=
//! 1.2x nginx).
//! Every run must be all 2xx: otherwise the bench fails after printing.
//!
//! ```sh
//! apt-get install wrk nginx-light
//! cargo bench -p baton-router --bench gateway
//! BENCH_DURATION=30s BENCH_CONNECTIONS=256 BENCH_THREADS=4 BENCH_ROUNDS=5 \
//!     cargo bench -p baton-router --bench gateway
//! ```
//!
//! Also `BENCH_WARMUP` (default `2s`, `0` for none). The router inherits
//! `RUST_LOG` (default `info`, as deployed). wrk, the router, nginx and
//! the upstreams share the machine's CPUs, so compare ratios, not absolute
//! numbers across machines.

use std::convert::Infallible;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What each upstream answers: 100 bytes, so the proxies' per-request
/// work dominates, not copying.
const BODY: &[u8; 100] =
    b"hello from a baton bench upstream; a fixed body so that only proxying is measured................ok\n";

/// Bound on each child becoming ready and on each child stopping.
const DEADLINE: Duration = Duration::from_secs(30);

/// How often the Marathon fixture's event stream speaks (well under the
/// router's 60 s idle timeout, so the stream is never reopened).
const KEEPALIVE: Duration = Duration::from_secs(5);

const INSTALL_HINT: &str = "apt-get install wrk nginx-light";
const NGINX: &str = "/usr/sbin/nginx";

fn main() {
    let settings = Settings::from_env();
    let wrk = find_in_path("wrk")
        .unwrap_or_else(|| panic!("`wrk` is not installed (not on PATH); run `{INSTALL_HINT}`"));
    assert!(
        Path::new(NGINX).is_file(),
        "nginx is not installed ({NGINX} is missing); run `{INSTALL_HINT}`"
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Declaration order is drop order reversed: children stop first, then
    // the fixtures they talk to, then the directory with their logs.
    let dir = tempfile::Builder::new()
        .prefix("baton-gateway-bench-")
        .tempdir()
        .expect("creating a temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-fixtures")
        .enable_all()
        .build()
        .expect("building the fixtures' runtime");
    let upstreams: Vec<SocketAddr> = (0..3).map(|_| runtime.block_on(upstream())).collect();
    let marathon = runtime.block_on(marathon_fixture(&upstreams));

    let router = Router::start(marathon, dir.path());
    let nginx = Nginx::start(&upstreams, cpus, dir.path());

    println!(
        "baton-router vs nginx: GET / over 3 upstreams ({}-byte body)",
        BODY.len()
    );
    println!(
        "CPUs: {cpus}; wrk {}; {} rounds alternating router/nginx, warm-up {}",
        settings.wrk_args(&settings.duration).join(" "),
        settings.rounds,
        settings.warmup,
    );
    println!("{}, {cpus} worker processes\n", nginx.version);

    if settings.warmup != "0" {
        // Fills both proxies' upstream pools and wakes their threads.
        for (target, pid) in [(router.addr, router.pid()), (nginx.addr, nginx.pid())] {
            run_wrk(&wrk, &settings, &settings.warmup, target, pid);
        }
    }
    let mut rounds: Vec<(Sample, Sample)> = Vec::new();
    for _ in 0..settings.rounds {
        let r = run_wrk(
            &wrk,
            &settings,
            &settings.duration,
            router.addr,
            router.pid(),
        );
        let n = run_wrk(&wrk, &settings, &settings.duration, nginx.addr, nginx.pid());
        rounds.push((r, n));
    }
    report(&rounds);

    let failed: Vec<String> = rounds
        .iter()
        .enumerate()
        .flat_map(|(i, (r, n))| [("router", i, r), ("nginx", i, n)])
        .filter(|(_, _, s)| s.non_2xx > 0)
        .map(|(name, i, s)| format!("{name} round {}: {} non-2xx", i + 1, s.non_2xx))
        .collect();
    assert!(
        failed.is_empty(),
        "results are not comparable, some answers were not 2xx: {}; router log: {}",
        failed.join(", "),
        tail(&router.log),
    );
    drop((router, nginx));
}

/// Run parameters, from `BENCH_*` variables.
struct Settings {
    /// wrk's `-d` per measured run.
    duration: String,
    /// wrk's `-d` for the one warm-up run per target (`0`: none).
    warmup: String,
    connections: u32,
    threads: u32,
    rounds: usize,
}

impl Settings {
    fn from_env() -> Settings {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
                Err(_) => default,
            }
        }
        let settings = Settings {
            duration: var("BENCH_DURATION", "10s".to_string()),
            warmup: var("BENCH_WARMUP", "2s".to_string()),
            connections: var("BENCH_CONNECTIONS", 64),
            threads: var("BENCH_THREADS", 2),
            rounds: var("BENCH_ROUNDS", 3),
        };
        assert!(settings.rounds > 0, "BENCH_ROUNDS must be at least 1");
        assert!(
            settings.threads > 0 && settings.connections >= settings.threads,
            "wrk needs BENCH_CONNECTIONS >= BENCH_THREADS >= 1"
        );
        settings
    }

    fn wrk_args(&self, duration: &str) -> Vec<String> {
        vec![
            format!("-t{}", self.threads),
            format!("-c{}", self.connections),
            format!("-d{duration}"),
            "--latency".into(),
        ]
    }
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves `handler` on a fresh loopback port, on the current runtime.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        let http = hyper::server::conn::http1::Builder::new();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors: let some connections close.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let service = service_fn(move |req| {
                let response = handler(req);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
    addr
}

/// An upstream instance: `BODY` for every request.
async fn upstream() -> SocketAddr {
    serve(|_req| async { Response::new(Full::new(Bytes::from_static(BODY)).boxed()) }).await
}

/// Just enough of Marathon for the router: app `/bench` with `upstreams`
/// as its running tasks, and an event stream that stays open.
async fn marathon_fixture(upstreams: &[SocketAddr]) -> SocketAddr {
    let tasks: Vec<Value> = upstreams
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            json!({
                "id": format!("bench.instance-{i}"),
                "appId": "/bench",
                "host": addr.ip().to_string(),
                "ports": [addr.port()],
                "state": "TASK_RUNNING",
                "healthCheckResults": [],
            })
        })
        .collect();
    let app = json!({
        "id": "/bench",
        "instances": tasks.len(),
        "labels": {"BATON_PATH": "/"},
        "healthChecks": [],
        "tasks": tasks,
    });
    let list = Bytes::from(json!({ "apps": [app] }).to_string());
    let one = Bytes::from(json!({ "app": app }).to_string());
    serve(move |req: Request<Incoming>| {
        let (list, one) = (list.clone(), one.clone());
        async move {
            let json = |body: Bytes| {
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(body).boxed())
                    .expect("a valid response")
            };
            match req.uri().path() {
                "/v2/apps" => json(list),
                "/v2/apps/bench" => json(one),
                "/v2/events" => {
                    // A comment at once (so the stream is seen as open),
                    // then one per KEEPALIVE; never an event.
                    let comments = futures::stream::unfold(true, |first| async move {
                        if !first {
                            tokio::time::sleep(KEEPALIVE).await;
                        }
                        let frame = Frame::data(Bytes::from_static(b": keepalive\n\n"));
                        Some((Ok::<_, Infallible>(frame), false))
                    });
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .header("cache-control", "no-cache")
                        .body(StreamBody::new(comments).boxed())
                        .expect("a valid response")
                }
                // Includes /v2/tasks/load: "no load endpoint", as Marathon.
                _ => Response::builder()
                    .status(404)
                    .body(Full::new(Bytes::from_static(b"{}")).boxed())
                    .expect("a valid response"),
            }
        }
    })
    .await
}

/// A child process that is stopped when dropped (also while unwinding):
/// `signal` first so it can shut down cleanly (nginx's master must take
/// its workers along), SIGKILL if it is still there after `DEADLINE`.
struct Guard {
    name: &'static str,
    child: Child,
    signal: Signal,
}

impl Guard {
    fn spawn(name: &'static str, command: &mut Command, signal: Signal) -> Guard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Guard {
            name,
            child,
            signal,
        }
    }

    /// Panics with `log`'s tail when the child has exited.
    fn assert_running(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}); its log: {}", self.name, tail(log));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), self.signal);
        }
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on {}; killing it", self.name, self.signal);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `baton-router` binary, routing `/` to the fixture's app.
struct Router {
    addr: SocketAddr,
    log: PathBuf,
    _process: Guard,
}

impl Router {
    fn pid(&self) -> u32 {
        self._process.child.id()
    }

    fn start(marathon: SocketAddr, dir: &Path) -> Router {
        let addr = free_port();
        let log = dir.join("router.log");
        let mut process = Guard::spawn(
            "baton-router",
            Command::new(env!("CARGO_BIN_EXE_baton-router"))
                .arg("--marathon")
                .arg(format!("http://{marathon}"))
                .arg("--listen")
                .arg(addr.to_string())
                // wrk's connections are gone by then; do not wait for them.
                .args(["--shutdown-grace", "1s"])
                .stdin(Stdio::null())
                .stdout(log_file(&log))
                .stderr(log_file(&log)),
            Signal::SIGTERM,
        );
        wait_until(
            &mut process,
            &log,
            "baton-router to route to 3 instances",
            || {
                let Some((200, table)) = http_get(addr, "/_router/table") else {
                    return false;
                };
                let table: Value = serde_json::from_slice(&table).unwrap_or_default();
                let routed = table["apps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["id"] == "/bench")
                    .and_then(|a| a["upstreams"].as_array())
                    .map_or(0, Vec::len);
                routed == 3 && http_get(addr, "/").is_some_and(|(status, _)| status == 200)
            },
        );
        check_body("baton-router", addr);
        Router {
            addr,
            log,
            _process: process,
        }
    }
}

/// nginx as a reverse proxy to the same upstreams.
struct Nginx {
    addr: SocketAddr,
    version: String,
    _process: Guard,
}

impl Nginx {
    /// The master's; its workers are found as its children.
    fn pid(&self) -> u32 {
        self._process.child.id()
    }

    fn start(upstreams: &[SocketAddr], workers: usize, dir: &Path) -> Nginx {
        let addr = free_port();
        let d = dir.display();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("        server {u};\n"))
            .collect();
        // Temp paths are set because Debian's compiled-in ones are under
        // /var/lib/nginx, which a non-root user cannot create.
        // keepalive_requests is raised on both sides: by default nginx
        // closes a connection after 1000 requests, so wrk would measure
        // reconnects (hyper, in the router, has no such limit).
        let config = format!(
            "worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    upstream bench {{
{servers}        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("writing nginx.conf");
        let log = dir.join("nginx.out");
        let mut process = Guard::spawn(
            "nginx",
            Command::new(NGINX)
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                // The error log before the config is read (else /var/log).
                .arg("-e")
                .arg(dir.join("nginx-error.log"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(log_file(&log))
                .stderr(log_file(&log)),
            // Fast shutdown: the master stops its workers, then exits.
            Signal::SIGTERM,
        );
        wait_until(&mut process, &log, "nginx to answer GET /", || {
            http_get(addr, "/").is_some_and(|(status, _)| status == 200)
        });
        check_body("nginx", addr);
        let version = Command::new(NGINX)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_else(|_| "nginx".into());
        Nginx {
            addr,
            version,
            _process: process,
        }
    }
}

/// Polls `ready` until it holds, failing if the child exits or `DEADLINE`
/// passes.
fn wait_until(process: &mut Guard, log: &Path, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        process.assert_running(log);
        if ready() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}; log: {}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails unless `GET /` through `addr` returns the upstreams' body, so
/// both proxies are known to do the same work.
fn check_body(name: &str, addr: SocketAddr) {
    let answer = http_get(addr, "/");
    assert!(
        matches!(&answer, Some((200, body)) if body.as_slice() == BODY),
        "{name} at {addr} does not proxy GET / to the upstreams: {answer:?}"
    );
}

/// One request on a fresh connection (`Connection: close`); `None` when
/// it fails. Only for readiness checks, so no chunked bodies.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..split]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, answer[split + 4..].to_vec()))
}

/// A loopback address whose port was free a moment ago (the children bind
/// it themselves, so it cannot be held for them).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free loopback port")
}

fn log_file(path: &Path) -> File {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The last lines of a log, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    format!("{}:\n{}", path.display(), lines[from..].join("\n"))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// One wrk run's result.
#[derive(Debug, Clone, Copy)]
struct Sample {
    requests_per_sec: f64,
    /// CPU time (user + system) the proxy's processes spent per request.
    cpu_us_per_request: f64,
    p99_us: f64,
    non_2xx: u64,
    socket_errors: u64,
}

/// Runs wrk against `target` for `duration`, noting the CPU time that the
/// proxy (process `pid` and its children) used meanwhile.
fn run_wrk(
    wrk: &Path,
    settings: &Settings,
    duration: &str,
    target: SocketAddr,
    pid: u32,
) -> Sample {
    let cpu_before = cpu_ticks(pid);
    let mut process = Guard::spawn(
        "wrk",
        Command::new(wrk)
            .args(settings.wrk_args(duration))
            .arg(format!("http://{target}/"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
        Signal::SIGTERM,
    );
    let mut output = String::new();
    if let Some(mut stdout) = process.child.stdout.take() {
        stdout
            .read_to_string(&mut output)
            .expect("reading wrk's output");
    }
    let status = process.child.wait().expect("waiting for wrk");
    let cpu_ticks_used = cpu_ticks(pid).saturating_sub(cpu_before);
    assert!(status.success(), "wrk failed ({status}):\n{output}");
    let (mut sample, requests) =
        parse_wrk(&output).unwrap_or_else(|e| panic!("cannot read wrk's output ({e}):\n{output}"));
    sample.cpu_us_per_request = cpu_ticks_used as f64 * 1e6 / USER_HZ / requests.max(1) as f64;
    sample
}

/// The unit of `/proc/<pid>/stat`'s times: fixed at 100 by Linux's ABI.
const USER_HZ: f64 = 100.0;

/// User plus system clock ticks of `pid` and its direct children (nginx's
/// workers), from `/proc`.
fn cpu_ticks(pid: u32) -> u64 {
    // Fields after the parenthesised command name: state is 3rd, ppid
    // 4th, utime 14th, stime 15th.
    fn stat(path: &Path) -> Option<(u32, u64)> {
        let text = std::fs::read_to_string(path).ok()?;
        let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
        let ppid = fields.get(1)?.parse().ok()?;
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((ppid, utime + stime))
    }
    let own = stat(&PathBuf::from(format!("/proc/{pid}/stat"))).map_or(0, |(_, t)| t);
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| stat(&e.path().join("stat")))
        .filter(|(ppid, _)| *ppid == pid)
        .map(|(_, ticks)| ticks)
        .sum();
    own + children
}

/// Requests/sec, the 99% line and the error lines of `wrk --latency`, and
/// the number of requests completed.
fn parse_wrk(output: &str) -> Result<(Sample, u64), String> {
    let field = |prefix: &str| {
        output
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_sec = field("Requests/sec:")
        .ok_or("no Requests/sec line")?
        .parse()
        .map_err(|e| format!("Requests/sec: {e}"))?;
    let p99_us = parse_latency_us(field("99%").ok_or("no 99% line (was --latency given?)")?)?;
    let non_2xx = field("Non-2xx or 3xx responses:")
        .map_or(Ok(0), |v| v.parse().map_err(|e| format!("Non-2xx: {e}")))?;
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket_errors = field("Socket errors:").map_or(0, |v| {
        v.split(',')
            .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    });
    // "  240386 requests in 10.00s, 51.12MB read"
    let requests = output
        .lines()
        .find_map(|line| {
            let (count, rest) = line.trim().split_once(' ')?;
            rest.starts_with("requests in")
                .then(|| count.parse().ok())?
        })
        .ok_or("no \"N requests in\" line")?;
    let sample = Sample {
        requests_per_sec,
        cpu_us_per_request: 0.0,
        p99_us,
        non_2xx,
        socket_errors,
    };
    Ok((sample, requests))
}

/// wrk's time format (`812.00us`, `1.53ms`, `2.01s`, `1.00m`) in µs.
fn parse_latency_us(text: &str) -> Result<f64, String> {
    let units = [
        ("us", 1.0),
        ("ms", 1e3),
        ("s", 1e6),
        ("m", 60e6),
        ("h", 3600e6),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, *scale)))
        .ok_or_else(|| format!("unknown latency unit in {text:?}"))?;
    number
        .parse::<f64>()
        .map(|n| n * scale)
        .map_err(|e| format!("latency {text:?}: {e}"))
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

fn report(rounds: &[(Sample, Sample)]) {
    let ms = |us: f64| format!("{:.2} ms", us / 1e3);
    let errors = |s: &Sample| match (s.non_2xx, s.socket_errors) {
        (0, 0) => String::new(),
        (n, e) => format!("  ({n} non-2xx, {e} socket errors)"),
    };
    let us = |v: f64| format!("{v:.1} us");
    println!(
        "{:<8}{:>14}{:>12}{:>12}{:>14}{:>12}{:>12}",
        "round",
        "router req/s",
        "router p99",
        "router CPU",
        "nginx req/s",
        "nginx p99",
        "nginx CPU"
    );
    for (i, (r, n)) in rounds.iter().enumerate() {
        println!(
            "{:<8}{:>14.0}{:>12}{:>12}{:>14.0}{:>12}{:>12}{}{}",
            i + 1,
            r.requests_per_sec,
            ms(r.p99_us),
            us(r.cpu_us_per_request),
            n.requests_per_sec,
            ms(n.p99_us),
            us(n.cpu_us_per_request),
            errors(r).replace("  (", "  (router: "),
            errors(n).replace("  (", "  (nginx: "),
        );
    }
    let router_rps = median(rounds.iter().map(|(r, _)| r.requests_per_sec));
    let router_p99 = median(rounds.iter().map(|(r, _)| r.p99_us));
    let router_cpu = median(rounds.iter().map(|(r, _)| r.cpu_us_per_request));
    let nginx_rps = median(rounds.iter().map(|(_, n)| n.requests_per_sec));
    let nginx_p99 = median(rounds.iter().map(|(_, n)| n.p99_us));
    let nginx_cpu = median(rounds.iter().map(|(_, n)| n.cpu_us_per_request));
    println!(
        "{:<8}{:>14.0}{:>12}{:>12}{:>14.0}{:>12}{:>12}",
        "median",
        router_rps,
        ms(router_p99),
        us(router_cpu),
        nginx_rps,
        ms(nginx_p99),
        us(nginx_cpu)
    );
    let throughput = router_rps / nginx_rps;
    let p99 = router_p99 / nginx_p99;
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!();
    println!(
        "router/nginx throughput: {throughput:.2}x  (goal >= 0.90x: {})",
        verdict(throughput >= 0.9)
    );
    println!(
        "router/nginx p99:        {p99:.2}x  (goal <= 1.20x: {})",
        verdict(p99 <= 1.2)
    );
    // The proxies share the CPUs with wrk and the upstreams, so their CPU
    // cost per request is what sets the throughput ratio, and it varies
    // less between runs than requests/s on a shared machine.
    println!(
        "router/nginx CPU per request: {:.2}x  (proxy processes' user + system time / requests)",
        router_cpu / nginx_cpu
    );
}
