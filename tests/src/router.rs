//! The `baton-router` binary as a child process, and a client that sends
//! requests through it with a chosen Host and cookie.
//!
//! Its stdout and stderr go to a log file ([`RouterProcess::log_tail`]
//! quotes the end; a failing test prints it when the process is dropped).
//! [`RouterProcess::stop`] sends SIGTERM and asserts a clean exit; dropping
//! a running router kills it.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::binaries::binary;
use crate::ports::free_port;

/// The command of a small HTTP/1.1 (keep-alive, threaded) app server on
/// `$HOST:$PORT0` for router tests: `/health` answers `ok`; `/burn` starts
/// a CPU-burning child process in the task's process group for 60 s (so
/// the executor's load report shows the task busy) and answers `burning`;
/// every other path answers `$MESOS_TASK_ID`, prefixed with `$VERSION `
/// when that is set. The marker rides along as an ignored argument, after
/// the port and host.
pub fn task_server(marker: &str) -> String {
    let script = [
        "import http.server, os, subprocess, sys",
        "BURN = \"import time\\nend = time.time() + 60\\nwhile time.time() < end: pass\"",
        "class H(http.server.BaseHTTPRequestHandler):",
        "    protocol_version = \"HTTP/1.1\"",
        "    def do_GET(self):",
        "        if self.path == \"/health\":",
        "            body = b\"ok\"",
        "        elif self.path == \"/burn\":",
        "            subprocess.Popen([sys.executable, \"-c\", BURN])",
        "            body = b\"burning\"",
        "        else:",
        "            version = os.environ.get(\"VERSION\")",
        "            body = ((version + \" \") if version else \"\") + os.environ[\"MESOS_TASK_ID\"]",
        "            body = body.encode()",
        "        self.send_response(200)",
        "        self.send_header(\"Content-Length\", str(len(body)))",
        "        self.end_headers()",
        "        self.wfile.write(body)",
        "    def log_message(self, *args): pass",
        "http.server.ThreadingHTTPServer((sys.argv[2], int(sys.argv[1])), H).serve_forever()",
    ]
    .join("\n");
    format!("exec python3 -c '{script}' $PORT0 $HOST {marker}")
}

/// An app of `instances` [`task_server`]s with an HTTP health check on
/// `/health` (every second, 10 s grace, 5 failures) and a 1 s launch
/// backoff; `extra` fields are merged over it (`labels`, `env`,
/// `upgradeStrategy`, …).
pub fn task_app(id: &str, marker: &str, instances: u32, extra: Value) -> Value {
    let mut app = serde_json::json!({
        "id": id,
        "cmd": task_server(marker),
        "cpus": 0.05, "mem": 32, "instances": instances,
        "healthChecks": [{
            "protocol": "HTTP", "path": "/health", "portIndex": 0,
            "gracePeriodSeconds": 10, "intervalSeconds": 1, "timeoutSeconds": 2,
            "maxConsecutiveFailures": 5,
        }],
        "backoffSeconds": 1,
    });
    if let (Some(app), Value::Object(extra)) = (app.as_object_mut(), extra) {
        app.extend(extra);
    }
    app
}

/// Time for the router to answer and load its table.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Time for the router to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// How many log lines [`RouterProcess::log_tail`] quotes.
const TAIL_LINES: usize = 60;

/// A running `baton-router`; killed when dropped.
pub struct RouterProcess {
    /// `None` once it has stopped.
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
    /// Pooled, like a browser: keep-alive connections to the router.
    http: reqwest::Client,
}

/// An answer through the router.
#[derive(Debug, Clone)]
pub struct RouterReply {
    pub status: u16,
    /// `Set-Cookie` headers.
    pub set_cookies: Vec<String>,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
    pub text: String,
}

impl RouterReply {
    /// The `BATON_STICKY` value a `Set-Cookie` sets, if any.
    pub fn sticky_cookie(&self) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            c.split(';')
                .next()?
                .trim()
                .strip_prefix("BATON_STICKY=")
                .map(str::to_string)
        })
    }
}

impl RouterProcess {
    /// Starts `baton-router --marathon <marathon>` on a free loopback port
    /// with `extra` flags, logging into `dir`, and waits until it has
    /// loaded its routing table.
    pub async fn start(marathon: &str, dir: &Path, extra: &[&str]) -> RouterProcess {
        Self::start_on(free_port(), marathon, dir, extra).await
    }

    /// Like [`RouterProcess::start`], on a port chosen beforehand (for a
    /// Baton started first with `--router_url` naming it).
    pub async fn start_on(port: u16, marathon: &str, dir: &Path, extra: &[&str]) -> RouterProcess {
        std::fs::create_dir_all(dir).expect("create the router's directory");
        let log = dir.join("baton-router.log");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the router's log file");
        let err = out.try_clone().expect("clone the router's log file");
        let child = Command::new(binary("baton-router"))
            .args(["--marathon", marathon])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,baton_router=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start baton-router");
        let mut router = RouterProcess {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()
                .expect("HTTP client"),
        };
        router.wait_ready().await;
        router
    }

    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            assert!(
                self.alive(),
                "baton-router exited while starting\n{}",
                self.log_tail()
            );
            if let Ok(table) = self.try_admin("/_router/table").await
                && table["loaded"] == true
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "baton-router did not load its table within {START_DEADLINE:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines the router logged.
    pub fn log_tail(&self) -> String {
        crate::procs::log_tail("baton-router", &self.log, TAIL_LINES)
    }

    /// `GET /_router/<path>` as JSON.
    pub async fn try_admin(&self, path: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        response
            .json()
            .await
            .map_err(|e| format!("GET {path}: {e}"))
    }

    /// `GET /_router/table`.
    pub async fn table(&self) -> Value {
        self.try_admin("/_router/table")
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail()))
    }

    /// The task ids the table routes `app` to.
    pub async fn upstreams(&self, app: &str) -> Vec<String> {
        let table = self.table().await;
        table["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["id"] == app)
            .flat_map(|a| a["upstreams"].as_array().cloned().unwrap_or_default())
            .filter_map(|u| u["taskId"].as_str().map(str::to_string))
            .collect()
    }

    /// `GET /_router/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/_router/metrics", self.url))
            .send()
            .await
            .expect("GET /_router/metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// `GET path` with `Host: host` (and a cookie) through the router.
    pub async fn get(
        &self,
        host: &str,
        path: &str,
        cookie: Option<&str>,
    ) -> Result<RouterReply, String> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.url))
            .header("Host", host);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GET {host}{path}: {e}"))?;
        let status = response.status().as_u16();
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response
            .text()
            .await
            .map_err(|e| format!("GET {host}{path}: body: {e}"))?;
        Ok(RouterReply {
            status,
            set_cookies,
            retry_after,
            text,
        })
    }

    /// SIGTERM, and waits; asserts the router exited by itself, cleanly.
    pub async fn stop(mut self) {
        let child = self.child.as_mut().expect("baton-router is running");
        let pid = child.id().expect("baton-router is running");
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM baton-router");
        let waited = tokio::time::timeout(STOP_DEADLINE, child.wait()).await;
        let tail = self.log_tail();
        let Ok(status) = waited else {
            panic!("baton-router did not exit within {STOP_DEADLINE:?} of SIGTERM\n{tail}");
        };
        let status = status.expect("wait for baton-router");
        self.child = None;
        assert!(
            status.success(),
            "baton-router exited with {status} after SIGTERM\n{tail}"
        );
    }
}

impl Drop for RouterProcess {
    /// Kills a still running router, and prints its log if the test is
    /// failing.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}
