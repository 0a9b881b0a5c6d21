//! Acknowledged app writes per second: `cargo bench -p baton --bench writes`.
//!
//! Starts the release `baton` binary with `--master local` on a fresh data
//! directory (the embedded redb store, fsync on, as in production) and
//! measures, with 1 client and with 16 concurrent clients (reqwest,
//! keep-alive), how many writes per second are answered 2xx — each answer
//! coming only once its change is durable:
//!
//! - `POST /v2/apps` of distinct apps with `instances: 0`;
//! - `PUT /v2/apps/{id}` changing each of those apps once.
//!
//! While the 16 clients create apps, one more client reads one app over and
//! over (`GET /v2/apps/{id}`), to show that reads are not starved by a
//! write burst (their latency is printed next to the same reads when idle).
//!
//! Each run starts a new Baton on a new data directory; the median of
//! [`RUNS`] runs is printed. Numbers are printed, not asserted. With a
//! baseline, the two binaries take turns run by run, so that a change in
//! the machine's load (other builds) weighs on both alike.
//!
//! Environment:
//! - `BATON_BIN`: the binary to measure (default: the one this bench was
//!   built with);
//! - `BATON_BASELINE_BIN`: another binary (an older build, say) measured
//!   the same way and printed next to it;
//! - `BENCH_WRITES`: writes per phase (default 2000).
// A benchmark measures wall time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

const RUNS: usize = 3;
const CLIENTS: [usize; 2] = [1, 16];
const START_DEADLINE: Duration = Duration::from_secs(60);

/// One phase's result.
#[derive(Debug, Clone, Copy, Default)]
struct Phase {
    writes_per_s: f64,
    /// Non-2xx answers or failed requests (should be 0).
    failures: usize,
}

/// One run's results: per client count, creates and updates; and reads.
#[derive(Debug, Clone, Default)]
struct Run {
    creates: Vec<Phase>,
    updates: Vec<Phase>,
    /// Read latency (p50, p99, ms) when idle and during the 16-client burst,
    /// and reads done during the burst.
    reads_idle: (f64, f64),
    reads_busy: (f64, f64),
    reads_during_burst: usize,
}

/// A `baton` child process on its own data directory; killed on drop.
struct Baton {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Baton {
    fn drop(&mut self) {
        // SIGTERM: in local mode it stops its embedded cluster too.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start(binary: &Path, http: &reqwest::Client) -> Baton {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("baton.log")).expect("log file");
    let child = Command::new(binary)
        .args(["--master", "local", "--local_master_port", "0"])
        .args(["--local_agents", "1", "--local_racks", "1"])
        .args(["--local_port_range_start", "47000"])
        .args(["--executor", "command"])
        .args(["--http_address", "127.0.0.1", "--hostname", "127.0.0.1"])
        .args(["--http_port", &port.to_string()])
        .arg("--data_dir")
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let baton = Baton {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    // Ready once it answers and is subscribed (deployments then finish as
    // they do in production, in the pass after each write).
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let metrics = http
            .get(format!("{}/metrics", baton.url))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if let Some(r) = metrics
            && r.text()
                .await
                .is_ok_and(|t| t.contains("marathon_mesos_connected 1"))
        {
            return baton;
        }
        assert!(
            Instant::now() < deadline,
            "baton did not start within {START_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn app(id: &str, cmd: &str) -> serde_json::Value {
    json!({"id": id, "cmd": cmd, "cpus": 0.01, "mem": 8, "instances": 0})
}

/// `writes` requests spread over `clients` concurrent clients, each sending
/// its next as soon as the previous is answered; writes per second from the
/// first request to the last answer.
async fn burst(
    http: &reqwest::Client,
    url: &str,
    prefix: &str,
    writes: usize,
    clients: usize,
    update: bool,
) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, prefix) = (http.clone(), url.to_string(), prefix.to_string());
            let (next, failures) = (next.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= writes {
                        break;
                    }
                    let id = format!("{prefix}/app-{i}");
                    let request = if update {
                        http.put(format!("{url}/v2/apps{id}"))
                            .json(&app(&id, "sleep 2"))
                    } else {
                        http.post(format!("{url}/v2/apps"))
                            .json(&app(&id, "sleep 1"))
                    };
                    let ok = match request.send().await {
                        Ok(r) => {
                            let ok = r.status().is_success();
                            let _ = r.bytes().await;
                            ok
                        }
                        Err(_) => false,
                    };
                    if !ok {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    Phase {
        writes_per_s: writes as f64 / started.elapsed().as_secs_f64(),
        failures: failures.load(Ordering::SeqCst),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Reads one app until `stop`; latencies in ms, sorted.
async fn reads(http: reqwest::Client, url: String, id: String, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut latencies = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        if let Ok(r) = http.get(format!("{url}/v2/apps{id}")).send().await {
            let _ = r.bytes().await;
        }
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

async fn run(binary: &Path, writes: usize, http: &reqwest::Client) -> Run {
    let baton = start(binary, http).await;
    let mut out = Run::default();
    // One app to read, and idle read latencies.
    let read_id = "/bench/read-me".to_string();
    let created = http
        .post(format!("{}/v2/apps", baton.url))
        .json(&app(&read_id, "sleep 1"))
        .send()
        .await
        .expect("create the app to read");
    assert!(created.status().is_success(), "{}", created.status());
    let stop = Arc::new(AtomicBool::new(false));
    let idle = tokio::spawn(reads(
        http.clone(),
        baton.url.clone(),
        read_id.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let idle = idle.await.expect("reader");
    out.reads_idle = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    for clients in CLIENTS {
        let prefix = format!("/bench/c{clients}");
        let reader = (clients > 1).then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(reads(
                http.clone(),
                baton.url.clone(),
                read_id.clone(),
                stop.clone(),
            ));
            (stop, task)
        });
        out.creates
            .push(burst(http, &baton.url, &prefix, writes, clients, false).await);
        if let Some((stop, task)) = reader {
            stop.store(true, Ordering::SeqCst);
            let busy = task.await.expect("reader");
            out.reads_busy = (percentile(&busy, 0.5), percentile(&busy, 0.99));
            out.reads_during_burst = busy.len();
        }
        out.updates
            .push(burst(http, &baton.url, &prefix, writes, clients, true).await);
    }
    drop(baton);
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Prints one run's results.
fn report(label: &str, n: usize, r: &Run) {
    let line: Vec<String> = CLIENTS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{c:>2} client(s): create {:>5.0}/s update {:>5.0}/s",
                r.creates[i].writes_per_s, r.updates[i].writes_per_s
            )
        })
        .collect();
    let failures: usize = r.creates.iter().chain(&r.updates).map(|p| p.failures).sum();
    println!(
        "  {label} run {n}: {} | failures {failures} | reads p50/p99 idle {:.2}/{:.2} ms, during the 16-client creates {:.2}/{:.2} ms ({} reads)",
        line.join(" | "),
        r.reads_idle.0,
        r.reads_idle.1,
        r.reads_busy.0,
        r.reads_busy.1,
        r.reads_during_burst,
    );
}

/// The median writes/s of each phase over `runs`.
fn medians(runs: &[Run]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (i, clients) in CLIENTS.iter().enumerate() {
        let creates = runs.iter().map(|r| r.creates[i].writes_per_s).collect();
        out.push((format!("create, {clients:>2} client(s)"), median(creates)));
        let updates = runs.iter().map(|r| r.updates[i].writes_per_s).collect();
        out.push((format!("update, {clients:>2} client(s)"), median(updates)));
    }
    out
}

/// Measures each binary [`RUNS`] times, taking turns (the machine's load
/// changes over minutes: turns spread it over both); prints every run and
/// the medians, and with two binaries the ratio.
async fn measure(binaries: &[(&str, PathBuf)], writes: usize) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    for (label, binary) in binaries {
        println!("{label}: {}", binary.display());
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); binaries.len()];
    for n in 1..=RUNS {
        for ((label, binary), runs) in binaries.iter().zip(&mut runs) {
            let r = run(binary, writes, &http).await;
            report(label, n, &r);
            runs.push(r);
        }
    }
    let all: Vec<Vec<(String, f64)>> = runs.iter().map(|r| medians(r)).collect();
    for ((label, _), medians) in binaries.iter().zip(&all) {
        println!("median of {RUNS} runs, {label}:");
        for (what, m) in medians {
            println!("  {what}: {m:>6.0} acknowledged writes/s");
        }
    }
    if let [after, before] = &all[..] {
        println!("{} → {} (median writes/s):", binaries[1].0, binaries[0].0);
        for ((what, b), (_, a)) in before.iter().zip(after) {
            println!("  {what}: {b:>6.0} → {a:>6.0}  (×{:.1})", a / b);
        }
    }
}

fn binary_from(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from)
}

fn main() {
    let writes: usize = std::env::var("BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let binary = binary_from("BATON_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_baton").into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "acknowledged app writes/s, {writes} writes per phase, {RUNS} runs (bench RSS {})",
        common::mib(common::proc_status_mib("VmRSS:"))
    );
    let mut binaries = vec![("this build", binary)];
    if let Some(baseline) = binary_from("BATON_BASELINE_BIN") {
        binaries.push(("baseline", baseline));
    }
    runtime.block_on(measure(&binaries, writes));
}
