//! `GET /v2/apps` over HTTP: the release `baton` binary against nginx
//! serving the very same bytes as a static file.
//!
//! ```sh
//! apt-get install wrk nginx-light
//! cargo bench -p baton --bench api_http
//! BENCH_APPS=1000 BENCH_DURATION=10s BENCH_WARMUP=3s BENCH_ROUNDS=5 \
//!     BENCH_CONNECTIONS=16 BENCH_THREADS=2 cargo bench -p baton --bench api_http
//! ```
//!
//! Everything runs on 127.0.0.1 in this process's care:
//!
//! - `baton --master local` (the embedded cluster; the apps have no
//!   instances, so nothing is launched) on a free port, with its own data
//!   directory; `BENCH_APPS` apps (default 1,000) are created by one
//!   `PUT /v2/groups` (in 10 groups, with labels, ports and a health check
//!   each, as real apps have), and the bench waits until their deployment
//!   is over;
//! - `GET /v2/apps` is fetched once, and those exact bytes are written to
//!   a file that nginx (`daemon off`, one worker per CPU, `sendfile on`,
//!   access log off) serves at the same path; its gzipped copy (gzip -6)
//!   is served with `gzip_static on`. Both servers' answers are checked to
//!   be the same bytes before anything is measured.
//!
//! `BENCH_BATON=/path/to/baton` measures another build of the binary
//! instead (an older one, say) against the same nginx.
//!
//! Then `wrk --latency` loads each in turn (a warm-up run each, then
//! `BENCH_ROUNDS` alternating rounds), first plainly, then with
//! `Accept-Encoding: gzip`. The tables show requests/s, the 99th
//! percentile and each server's CPU time per request (user + system of its
//! processes, from `/proc`) per round, their medians and Baton/nginx
//! ratios against the goals (throughput >= 0.5x nginx, p99 <= 2x nginx; with
//! gzip, the body at most 10 % of its size and the rate no lower than
//! plain). Numbers are printed, not asserted; a run with non-2xx answers
//! fails after printing. Baton inherits `RUST_LOG` (default `info`, as
//! deployed). wrk, Baton and nginx share the machine's CPUs, so compare
//! ratios, not absolute numbers across machines.
//!
//! Last, in this process (no HTTP): `GET /v2/apps?embed=apps.tasks` for
//! `BENCH_STREAM_APPS` apps (default 10,000; 0 skips it) with 10 running
//! tasks each — about 49 MB — answered by `api::lists::respond`, which
//! streams it (it is over the cache's entry size) in 64 KiB chunks that
//! are dropped as they come, against the same list rendered into one
//! buffer as the handler did before: the rate, and the peak memory each
//! adds (`VmHWM`, reset through `/proc/self/clear_refs` before each).
// A benchmark measures wall time.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Bound on each child becoming ready, on the apps' deployment, and on
/// each child stopping.
const DEADLINE: Duration = Duration::from_secs(60);

const INSTALL_HINT: &str = "apt-get install wrk nginx-light";
const NGINX: &str = "/usr/sbin/nginx";
const PATH: &str = "/v2/apps";

fn main() {
    let settings = Settings::from_env();
    let wrk = find_in_path("wrk")
        .unwrap_or_else(|| panic!("`wrk` is not installed (not on PATH); run `{INSTALL_HINT}`"));
    assert!(
        Path::new(NGINX).is_file(),
        "nginx is not installed ({NGINX} is missing); run `{INSTALL_HINT}`"
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Children stop first (declared last), then the directory goes.
    let dir = tempfile::Builder::new()
        .prefix("baton-api-http-bench-")
        .tempdir()
        .expect("creating a temporary directory");

    let baton = Baton::start(dir.path());
    create_apps(baton.addr, settings.apps);
    let plain = fetch(baton.addr, PATH, None);
    assert_eq!(plain.status, 200, "GET {PATH}: {}", plain.status);
    assert!(
        plain.header("content-encoding").is_none(),
        "asked without Accept-Encoding, got {:?}",
        plain.header("content-encoding")
    );
    let listed = serde_json::from_slice::<Value>(&plain.body)
        .ok()
        .and_then(|v| v["apps"].as_array().map(Vec::len));
    assert_eq!(listed, Some(settings.apps), "GET {PATH} lists every app");
    let gzipped = fetch(baton.addr, PATH, Some("gzip"));
    // An older build (BENCH_BATON) may not compress.
    if gzipped.header("content-encoding") == Some("gzip") {
        assert_eq!(
            gunzip(&gzipped.body),
            plain.body,
            "Baton's gzip decodes to the body"
        );
    } else {
        assert_eq!(gzipped.body, plain.body);
        println!("This Baton does not gzip: Accept-Encoding: gzip gets the plain body.");
    }

    let nginx = Nginx::start(&plain.body, cpus, dir.path());
    let from_nginx = fetch(nginx.addr, PATH, None);
    assert_eq!(from_nginx.body, plain.body, "nginx serves Baton's bytes");
    let nginx_gzipped = fetch(nginx.addr, PATH, Some("gzip"));
    assert_eq!(nginx_gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&nginx_gzipped.body), plain.body);

    println!(
        "Baton vs nginx: GET {PATH} with {} apps ({} bytes; gzipped: Baton {} bytes = {:.1} %, nginx's gzip -6 file {} bytes = {:.1} %)",
        settings.apps,
        plain.body.len(),
        gzipped.body.len(),
        100.0 * gzipped.body.len() as f64 / plain.body.len() as f64,
        nginx_gzipped.body.len(),
        100.0 * nginx_gzipped.body.len() as f64 / plain.body.len() as f64,
    );
    println!(
        "CPUs: {cpus}; wrk {}; {} rounds alternating Baton/nginx, warm-up {}",
        settings.wrk_args(&settings.duration).join(" "),
        settings.rounds,
        settings.warmup,
    );
    println!("{}, {cpus} worker processes\n", nginx.version);

    let mut all_2xx = true;
    let mut medians = Vec::new();
    for coding in [None, Some("gzip")] {
        println!(
            "{}",
            match coding {
                None => "plain:".to_string(),
                Some(c) => format!("with Accept-Encoding: {c}:"),
            }
        );
        let header: Vec<String> = coding
            .map(|c| vec!["-H".into(), format!("Accept-Encoding: {c}")])
            .unwrap_or_default();
        if settings.warmup != "0" {
            for (addr, pid) in [(baton.addr, baton.pid()), (nginx.addr, nginx.pid())] {
                run_wrk(&wrk, &settings, &settings.warmup, &header, addr, pid);
            }
        }
        let mut rounds = Vec::new();
        for _ in 0..settings.rounds {
            let b = run_wrk(
                &wrk,
                &settings,
                &settings.duration,
                &header,
                baton.addr,
                baton.pid(),
            );
            let n = run_wrk(
                &wrk,
                &settings,
                &settings.duration,
                &header,
                nginx.addr,
                nginx.pid(),
            );
            rounds.push((b, n));
        }
        all_2xx &= rounds.iter().all(|(b, n)| b.non_2xx == 0 && n.non_2xx == 0);
        // The goals against nginx are for the same bytes; with gzip the
        // goal is Baton's own rate (below), nginx's is for reference.
        medians.push(report(&rounds, coding.is_none()));
        println!();
    }
    if let [plain_rate, gzip_rate] = medians[..] {
        println!(
            "Baton with gzip / plain: {:.2}x the requests/s (goal >= 1.00x: {}); body {:.1} % of its size (goal <= 10 %: {})",
            gzip_rate / plain_rate,
            verdict(gzip_rate >= plain_rate),
            100.0 * gzipped.body.len() as f64 / plain.body.len() as f64,
            verdict(gzipped.body.len() * 10 <= plain.body.len()),
        );
    }
    println!("{}", baton.metrics());
    let stream_apps = settings.stream_apps;
    if stream_apps > 0 {
        println!();
        streaming(stream_apps);
    }
    assert!(
        all_2xx,
        "results are not comparable, some answers were not 2xx; Baton's log: {}",
        tail(&baton.log)
    );
    drop((nginx, baton));
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Run parameters, from `BENCH_*` variables.
struct Settings {
    apps: usize,
    /// Apps of the in-process streaming measurement (0: none).
    stream_apps: usize,
    /// wrk's `-d` per measured run.
    duration: String,
    /// wrk's `-d` for the one warm-up run per target and coding (`0`: none).
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
            apps: var("BENCH_APPS", 1000),
            stream_apps: var("BENCH_STREAM_APPS", 10_000),
            duration: var("BENCH_DURATION", "10s".to_string()),
            warmup: var("BENCH_WARMUP", "3s".to_string()),
            connections: var("BENCH_CONNECTIONS", 16),
            threads: var("BENCH_THREADS", 2),
            rounds: var("BENCH_ROUNDS", 5),
        };
        assert!(settings.rounds > 0, "BENCH_ROUNDS must be at least 1");
        assert!(settings.apps > 0, "BENCH_APPS must be at least 1");
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

/// A child process that is stopped when dropped (also while unwinding):
/// SIGTERM first so it can shut down cleanly, SIGKILL if it is still there
/// after `DEADLINE`.
struct Guard {
    name: &'static str,
    child: Child,
}

impl Guard {
    fn spawn(name: &'static str, command: &mut Command) -> Guard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Guard { name, child }
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
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release `baton` binary on the embedded local cluster.
struct Baton {
    addr: SocketAddr,
    log: PathBuf,
    process: Guard,
}

impl Baton {
    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    fn start(dir: &Path) -> Baton {
        let addr = free_port();
        let log = dir.join("baton.log");
        let mut process = Guard::spawn(
            "baton",
            Command::new(
                std::env::var_os("BENCH_BATON")
                    .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_baton")), PathBuf::from),
            )
            .args(["--master", "local", "--local_master_port", "0"])
            .args(["--hostname", "127.0.0.1", "--http_address", "127.0.0.1"])
            .arg("--http_port")
            .arg(addr.port().to_string())
            .arg("--data_dir")
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log)),
        );
        wait_until(&mut process, &log, "Baton to answer GET /v2/info", || {
            http(addr, "GET", "/v2/info", &[], b"").is_some_and(|r| r.status == 200)
        });
        Baton { addr, log, process }
    }

    /// The API cache's counters from `/metrics`, for the record.
    fn metrics(&self) -> String {
        let text = http(self.addr, "GET", "/metrics", &[], b"")
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("baton_api_cache"))
            .collect();
        format!("Baton's API cache: {}", lines.join("; "))
    }
}

/// `apps` apps with no instances, in 10 groups, created by one group
/// write; returns once their deployment is over.
fn create_apps(addr: SocketAddr, apps: usize) {
    let groups: Vec<Value> = (0..10)
        .map(|g| {
            let members: Vec<Value> = (0..apps)
                .filter(|a| a % 10 == g)
                .map(|a| {
                    json!({
                        "id": format!("app-{a:05}"),
                        "cmd": format!("python3 -m http.server $PORT0 # app {a}"),
                        "cpus": 0.1, "mem": 64, "instances": 0,
                        "labels": {
                            "team": format!("team-{g}"),
                            "HAPROXY_GROUP": "external",
                            "HAPROXY_0_VHOST": format!("app-{a}.team-{g}.example.com"),
                        },
                        "portDefinitions": [{"port": 0, "name": "http"}],
                        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0}],
                    })
                })
                .collect();
            json!({"id": format!("team-{g}"), "apps": members})
        })
        .filter(|g| !g["apps"].as_array().is_some_and(Vec::is_empty))
        .collect();
    let body = serde_json::to_vec(&json!({"id": "/", "groups": groups})).expect("JSON");
    let answer = http(
        addr,
        "PUT",
        "/v2/groups",
        &[("Content-Type", "application/json")],
        &body,
    )
    .expect("PUT /v2/groups answered");
    assert!(
        (200..300).contains(&answer.status),
        "PUT /v2/groups: {} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let done = http(addr, "GET", "/v2/deployments", &[], b"")
            .is_some_and(|r| r.status == 200 && r.body.as_slice() == b"[]");
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the apps' deployment did not finish in {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// nginx serving `body` (and its gzip -6 copy) at [`PATH`].
struct Nginx {
    addr: SocketAddr,
    version: String,
    process: Guard,
}

impl Nginx {
    /// The master's; its workers are found as its children.
    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    fn start(body: &[u8], workers: usize, dir: &Path) -> Nginx {
        let addr = free_port();
        let root = dir.join("www");
        let file = root.join(PATH.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("creating the web root");
        std::fs::write(&file, body).expect("writing the list");
        let mut packed = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        packed.write_all(body).expect("gzipping");
        std::fs::write(
            file.with_file_name("apps.gz"),
            packed.finish().expect("gzipped"),
        )
        .expect("writing the gzipped list");
        let d = dir.display();
        // Temp paths are set because Debian's compiled-in ones are under
        // /var/lib/nginx. keepalive_requests is raised: by default nginx
        // closes a connection after 1000 requests, so wrk would measure
        // reconnects (hyper, in Baton, has no such limit).
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
    sendfile on;
    tcp_nopush on;
    default_type application/json;
    server {{
        listen {addr};
        root {root};
        location = {PATH} {{
            gzip_static on;
            gzip_vary on;
        }}
    }}
}}
",
            root = root.display(),
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
                .arg("-e")
                .arg(dir.join("nginx-error.log"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(log_file(&log))
                .stderr(log_file(&log)),
        );
        wait_until(&mut process, &log, "nginx to answer", || {
            http(addr, "GET", PATH, &[], b"").is_some_and(|r| r.status == 200)
        });
        let version = Command::new(NGINX)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_else(|_| "nginx".into());
        Nginx {
            addr,
            version,
            process,
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

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path`, with `Accept-Encoding: coding` if given; panics when no
/// answer comes.
fn fetch(addr: SocketAddr, path: &str, coding: Option<&str>) -> Answer {
    let headers: Vec<(&str, &str)> = coding.map(|c| ("Accept-Encoding", c)).into_iter().collect();
    http(addr, "GET", path, &headers, b"").unwrap_or_else(|| panic!("no answer from {addr}{path}"))
}

/// One request on a fresh connection (`Connection: close`); `None` when
/// it fails. Chunked bodies are decoded.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    let timeout = Duration::from_secs(30);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let raw = answer[split + 4..].to_vec();
    let mut response = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        dechunk(&raw)?
    } else {
        raw
    };
    Some(response)
}

/// A chunked body's content.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
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
    /// CPU time (user + system) the server's processes spent per request.
    cpu_us_per_request: f64,
    p99_us: f64,
    /// Bytes read per second, as wrk counts them (headers included).
    transfer_mb_per_sec: f64,
    non_2xx: u64,
}

/// Runs wrk against `target` for `duration` with `extra` arguments, noting
/// the CPU time that the server (process `pid` and its children) used
/// meanwhile.
fn run_wrk(
    wrk: &Path,
    settings: &Settings,
    duration: &str,
    extra: &[String],
    target: SocketAddr,
    pid: u32,
) -> Sample {
    let cpu_before = cpu_ticks(pid);
    let mut process = Guard::spawn(
        "wrk",
        Command::new(wrk)
            .args(settings.wrk_args(duration))
            .args(extra)
            .arg(format!("http://{target}{PATH}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
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
    // Fields after the parenthesised command name: ppid is the 2nd,
    // utime the 12th, stime the 13th.
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

/// Requests/sec, the 99% line, transfer/sec and the non-2xx count of
/// `wrk --latency`, and the number of requests completed.
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
    let transfer_mb_per_sec = field("Transfer/sec:").map_or(0.0, parse_megabytes);
    let non_2xx = field("Non-2xx or 3xx responses:")
        .map_or(Ok(0), |v| v.parse().map_err(|e| format!("Non-2xx: {e}")))?;
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
        transfer_mb_per_sec,
        non_2xx,
    };
    Ok((sample, requests))
}

/// wrk's sizes (`512.00KB`, `3.21GB`) in MB.
fn parse_megabytes(text: &str) -> f64 {
    let units = [
        ("KB", 1.0 / 1024.0),
        ("MB", 1.0),
        ("GB", 1024.0),
        ("B", 1.0 / 1048576.0),
    ];
    units
        .iter()
        .find_map(|(unit, scale)| Some(text.strip_suffix(unit)?.parse::<f64>().ok()? * scale))
        .unwrap_or(0.0)
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

/// Prints the rounds, their medians and the ratios (against the goals
/// when `goals`); returns Baton's median requests/s.
fn report(rounds: &[(Sample, Sample)], goals: bool) -> f64 {
    let ms = |us: f64| format!("{:.2} ms", us / 1e3);
    let us = |v: f64| format!("{v:.0} us");
    let mbs = |v: f64| format!("{v:.0} MB/s");
    let errors = |name: &str, s: &Sample| match s.non_2xx {
        0 => String::new(),
        n => format!("  ({name}: {n} non-2xx)"),
    };
    println!(
        "{:<8}{:>13}{:>11}{:>10}{:>12}{:>13}{:>11}{:>10}{:>12}",
        "round",
        "Baton req/s",
        "Baton p99",
        "Baton CPU",
        "Baton read",
        "nginx req/s",
        "nginx p99",
        "nginx CPU",
        "nginx read",
    );
    for (i, (b, n)) in rounds.iter().enumerate() {
        println!(
            "{:<8}{:>13.0}{:>11}{:>10}{:>12}{:>13.0}{:>11}{:>10}{:>12}{}{}",
            i + 1,
            b.requests_per_sec,
            ms(b.p99_us),
            us(b.cpu_us_per_request),
            mbs(b.transfer_mb_per_sec),
            n.requests_per_sec,
            ms(n.p99_us),
            us(n.cpu_us_per_request),
            mbs(n.transfer_mb_per_sec),
            errors("Baton", b),
            errors("nginx", n),
        );
    }
    let m = |f: fn(&(Sample, Sample)) -> f64| median(rounds.iter().map(f));
    let baton_rps = m(|(b, _)| b.requests_per_sec);
    let baton_p99 = m(|(b, _)| b.p99_us);
    let nginx_rps = m(|(_, n)| n.requests_per_sec);
    let nginx_p99 = m(|(_, n)| n.p99_us);
    let baton_cpu = m(|(b, _)| b.cpu_us_per_request);
    let nginx_cpu = m(|(_, n)| n.cpu_us_per_request);
    println!(
        "{:<8}{:>13.0}{:>11}{:>10}{:>12}{:>13.0}{:>11}{:>10}{:>12}",
        "median",
        baton_rps,
        ms(baton_p99),
        us(baton_cpu),
        mbs(m(|(b, _)| b.transfer_mb_per_sec)),
        nginx_rps,
        ms(nginx_p99),
        us(nginx_cpu),
        mbs(m(|(_, n)| n.transfer_mb_per_sec)),
    );
    let throughput = baton_rps / nginx_rps;
    let p99 = baton_p99 / nginx_p99;
    if goals {
        println!(
            "Baton/nginx throughput: {throughput:.2}x (goal >= 0.50x: {}); p99: {p99:.2}x (goal <= 2.00x: {}); CPU per request: {:.2}x",
            verdict(throughput >= 0.5),
            verdict(p99 <= 2.0),
            baton_cpu / nginx_cpu,
        );
    } else {
        println!(
            "Baton/nginx throughput: {throughput:.2}x; p99: {p99:.2}x; CPU per request: {:.2}x",
            baton_cpu / nginx_cpu,
        );
    }
    baton_rps
}

// ---- streaming, in process ------------------------------------------------

/// `apps` apps of 10 running instances each, as `benches/api.rs` builds
/// them.
fn big_view(apps: usize) -> baton::reconcile::View {
    use baton::state::app::{AppDefaults, AppDefinition, PathId, Timestamp};
    use baton::state::instance::{Condition, Instance, InstanceTask};
    use std::sync::Arc;
    let mut view = baton::reconcile::View::default();
    let defaults = AppDefaults::default();
    for a in 0..apps {
        let app = AppDefinition::from_value(
            &json!({
                "id": format!("/team-{}/app-{a}", a % 100),
                "cmd": format!("python3 -m http.server $PORT0 # {a}"),
                "cpus": 0.1, "mem": 64, "instances": 10,
                "labels": {"team": format!("team-{}", a % 100), "HAPROXY_0_VHOST": format!("app-{a}.example.com")},
                "constraints": [["hostname", "UNIQUE"]],
            }),
            &PathId::root(),
            &defaults,
        )
        .expect("valid app")
        .with_version(Timestamp::from_millis(1_700_000_000_000), false);
        let version = app.version.expect("versioned");
        for i in 0..10 {
            let mut instance = Instance::schedule(app.id.clone(), version, version);
            let task_id = instance.next_task_id();
            instance.incarnation = 1;
            instance.task = Some(InstanceTask {
                condition: Condition::Running,
                started_at: Some(version.plus_millis(1500)),
                ..InstanceTask::launched(
                    task_id,
                    format!("agent-{}", (a + i) % 1000),
                    format!("10.0.{}.{}", (a + i) % 250, i),
                    vec![31_000 + i as u64],
                    version,
                )
            });
            view.instances
                .entry(app.id.clone())
                .or_default()
                .insert(instance.uuid, Arc::new(instance));
        }
        view.apps.insert(app.id.clone(), Arc::new(app));
    }
    view
}

/// A `/proc/self/status` field (`VmRSS:`, `VmHWM:`) in bytes.
fn proc_status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(key))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resets the peak RSS to the current RSS (Linux 4.0 and later); the
/// RSS then.
fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    proc_status_bytes("VmRSS:")
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The 49 MB list streamed, and rendered into one buffer as before.
fn streaming(apps: usize) {
    use baton::api::cache::CacheLimits;
    use baton::api::lists::{self, ListKey, ResponseCache};
    use baton::api::shapes::{AppInfo, Embed};
    use std::sync::Arc;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let view = Arc::new(big_view(apps));
    let key = ListKey::parse(PATH, Some("embed=apps.tasks")).expect("a list");
    let cache = Arc::new(ResponseCache::new(CacheLimits::DEFAULT));
    let caller = baton::auth::Caller::unrestricted(None);
    let now = baton::state::app::Timestamp::from_millis(1_700_000_100_000);
    println!("GET {PATH}?embed=apps.tasks, {apps} apps x 10 tasks, in process:");
    // The first request tries to keep the list, rendering it up to the
    // cache's entry limit before it knows that it is too large; later ones
    // stream at once.
    for (name, coding) in [
        ("streamed, first", None),
        ("streamed", None),
        ("streamed, gzip", Some("gzip")),
    ] {
        let mut headers = axum::http::HeaderMap::new();
        if coding.is_some() {
            headers.insert(
                axum::http::header::ACCEPT_ENCODING,
                axum::http::HeaderValue::from_static("gzip"),
            );
        }
        let before = reset_peak();
        let started = Instant::now();
        let (bytes, chunks) = runtime.block_on(async {
            use futures::StreamExt;
            let response =
                lists::respond(&cache, view.clone(), &caller, now, key.clone(), &headers).await;
            let mut body = response.into_body().into_data_stream();
            let (mut bytes, mut chunks) = (0u64, 0u64);
            while let Some(chunk) = body.next().await {
                bytes += chunk.expect("a chunk").len() as u64;
                chunks += 1;
            }
            (bytes, chunks)
        });
        let took = started.elapsed();
        let peak = proc_status_bytes("VmHWM:").saturating_sub(before);
        println!(
            "  {name:<17} {} in {chunks} chunks, {took:.2?} ({:.0} MB/s of output); peak memory +{}",
            mb(bytes),
            bytes as f64 / 1e6 / took.as_secs_f64(),
            mb(peak),
        );
    }
    let before = reset_peak();
    let started = Instant::now();
    let embed = Embed {
        counts: true,
        deployments: true,
        tasks: true,
        ..Embed::default()
    };
    #[derive(serde::Serialize)]
    struct Apps<'a> {
        apps: Vec<AppInfo<'a>>,
    }
    let whole = serde_json::to_vec(&Apps {
        apps: view
            .apps
            .values()
            .map(|a| AppInfo::new(&view, a, &embed, now))
            .collect(),
    })
    .expect("serializable");
    let took = started.elapsed();
    let peak = proc_status_bytes("VmHWM:").saturating_sub(before);
    println!(
        "  {:<17} {} as one buffer, {took:.2?} ({:.0} MB/s); peak memory +{}",
        "one buffer",
        mb(whole.len() as u64),
        whole.len() as f64 / 1e6 / took.as_secs_f64(),
        mb(peak),
    );
}
