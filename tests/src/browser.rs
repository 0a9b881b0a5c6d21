//! A real headless Chromium driven over WebDriver, for the web UI's tests:
//! Debian's `chromedriver` (which starts `chromium`) on a free loopback
//! port, in its own process group and with its own profile directory.
//! [`Browser::stop`] ends the session and the driver; dropping a browser
//! (a failing test) kills the process group and whatever still names the
//! profile directory, so no browser outlives its test.
//!
//! Chromium runs with its background services off (no update checks,
//! metrics, sync or safe-browsing lookups): the tests talk to loopback
//! only. Helpers poll with a deadline ([`Browser::wait_js`]), never sleep a
//! fixed time, and a timeout quotes what the page said and the script
//! errors it caught (`window.batonErrors`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::ports::free_port;
use crate::procs;

/// Time for chromedriver to answer `/status` and start a session.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Time for chromedriver to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Chromium's flags: headless, as root (no sandbox), nothing contacted but
/// the pages the test opens.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
];

/// A headless Chromium and its chromedriver.
pub struct Browser {
    client: Option<Client>,
    driver: Option<Child>,
    profile: PathBuf,
    log: PathBuf,
}

/// Whether a value from the page counts as "there": not null, false, 0 or "".
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port (logging into `dir`) and
    /// a Chromium session with a `width`×`height` window.
    pub async fn start(dir: &Path, width: u32, height: u32) -> Browser {
        std::fs::create_dir_all(dir).expect("create the browser's directory");
        let profile = dir.join("chromium-profile");
        let log = dir.join("chromedriver.log");
        let out = std::fs::File::create(&log).expect("create chromedriver's log");
        let err = out.try_clone().expect("clone chromedriver's log");
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start chromedriver ({e}): install Debian's chromium and chromium-driver (./scripts/test.sh does)")
            });
        let mut browser = Browser {
            client: None,
            driver: Some(driver),
            profile,
            log,
        };
        let url = format!("http://127.0.0.1:{port}");
        browser.wait_driver(&url).await;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--window-size={width},{height}"));
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"args": args},
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start a Chromium session: {e}\n{}",
                    browser.log_tail()
                )
            });
        browser.client = Some(client);
        browser
    }

    async fn wait_driver(&mut self, url: &str) {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if let Some(driver) = self.driver.as_mut()
                && let Ok(Some(status)) = driver.try_wait()
            {
                panic!("chromedriver exited with {status}\n{}", self.log_tail());
            }
            if let Ok(reply) = http.get(format!("{url}/status")).send().await
                && let Ok(status) = reply.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not get ready within {START_DEADLINE:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// The end of chromedriver's log.
    pub fn log_tail(&self) -> String {
        procs::log_tail("chromedriver", &self.log, 30)
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// What the page shows and the script errors it caught, for failure
    /// messages.
    pub async fn page_state(&self) -> String {
        let state = self
            .client()
            .execute(
                "return {url: location.href, status: (document.getElementById('status') || {}).textContent, \
                 alert: (document.getElementById('alert') || {}).textContent, \
                 main: (document.getElementById('main') || document.body).innerText.slice(0, 3000), \
                 errors: window.batonErrors || []}",
                vec![],
            )
            .await;
        match state {
            Ok(state) => serde_json::to_string_pretty(&state).unwrap_or_default(),
            Err(e) => format!("(cannot read the page: {e})"),
        }
    }

    /// Polls `script` until it returns something truthy (or `timeout`
    /// passes: then panics naming `what`, with the page's state).
    pub async fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.client().execute(script, vec![]).await {
                Ok(value) if truthy(&value) => return value,
                Ok(_) => {}
                Err(e) => panic!("script failed while waiting for {what}: {e}\n{script}"),
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\npage: {}",
                    self.page_state().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element `css` is in the page; returns its text.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? (e.innerText || e.value || ' ') : null",
            json!(css)
        );
        let text = self
            .wait_js(&format!("element {css}"), timeout, &script)
            .await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// Waits until the element `css` shows text containing `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let script = format!(
            "const e = document.querySelector({}); const t = e ? (e.innerText || e.textContent) : ''; \
             return t.includes({}) ? t : null",
            json!(css),
            json!(needle)
        );
        let text = self
            .wait_js(&format!("{css} to show {needle:?}"), timeout, &script)
            .await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// The text of the element `css` ("" when absent).
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? (e.innerText || e.textContent) : ''",
            json!(css)
        );
        self.js(&script, vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Clicks the element `css`, as a user would (it must be visible). The
    /// page re-renders as events arrive, so an element found may be
    /// replaced before the click lands: it is then found again (a few
    /// times, within a bounded time).
    pub async fn click(&self, css: &str) {
        const ATTEMPTS: usize = 10;
        for attempt in 1..=ATTEMPTS {
            let element = self
                .client()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("find {css}: {e}"));
            match element.click().await {
                Ok(()) => return,
                Err(e) if attempt < ATTEMPTS && replaced(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("click {css}: {e}\npage: {}", self.page_state().await),
            }
        }
    }

    /// Replaces the value of the field `css` with `text`, typed.
    /// Like [`Browser::click`], a field replaced by a re-render meanwhile
    /// is found again and filled anew.
    pub async fn fill(&self, css: &str, text: &str) {
        const ATTEMPTS: usize = 10;
        for attempt in 1..=ATTEMPTS {
            let element = self
                .client()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("find {css}: {e}"));
            let typed = match element.clear().await {
                Ok(()) => element.send_keys(text).await,
                Err(e) => Err(e),
            };
            match typed {
                Ok(()) => return,
                Err(e) if attempt < ATTEMPTS && replaced(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("type into {css}: {e}\npage: {}", self.page_state().await),
            }
        }
    }

    /// Picks the option `value` of the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let element = self
            .client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        element
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// Resizes the window (narrow-screen checks).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client()
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resize the window: {e}"));
    }

    /// Saves a PNG of the window as `<dir>/<name>.png`; returns its path.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self
            .client()
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        std::fs::create_dir_all(dir).expect("create the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    /// Ends the session (Chromium exits) and chromedriver.
    pub async fn stop(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
        }
        self.kill_all();
    }

    /// Stops chromedriver's process group (SIGTERM, then SIGKILL), then
    /// whatever still names the profile directory.
    fn kill_all(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            let group = Pid::from_raw(driver.id() as i32);
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = std::time::Instant::now() + STOP_GRACE;
            while matches!(driver.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = killpg(group, Signal::SIGKILL);
            let _ = driver.kill();
            let _ = driver.wait();
        }
        if self.profile.is_absolute() {
            for pid in procs::with_marker(&self.profile.to_string_lossy()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Browser {
    /// Kills chromedriver and Chromium, and prints chromedriver's log if
    /// the test is failing.
    fn drop(&mut self) {
        // The session cannot be closed without awaiting: kill instead.
        drop(self.client.take());
        self.kill_all();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Where the UI tests write their screenshots: `target/ui-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    crate::binaries::target_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("ui-screenshots")
}

/// Whether a WebDriver error says the element found was replaced by a
/// re-render before it was used: gone from the document ("stale element
/// reference"), or detached and not yet its successor ("element not
/// interactable").
fn replaced(error: &fantoccini::error::CmdError) -> bool {
    let text = error.to_string();
    text.contains("stale element") || text.contains("not interactable")
}
