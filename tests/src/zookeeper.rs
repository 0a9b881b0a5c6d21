//! A standalone ZooKeeper server as a child process, for tests of the
//! ZooKeeper-backed store, leader election and master detection.
//!
//! It runs Debian's `zookeeper` package (`apt-get install zookeeper`: the
//! jars in `/usr/share/java`) directly with `java`, without root and
//! without the system's `/etc/zookeeper` configuration or init scripts:
//! every server gets its own temporary directory holding `zoo.cfg`,
//! `log4j.properties`, the data directory and `zookeeper.log` (its log and
//! the JVM's stdout and stderr; [`ZooKeeper::log_tail`] quotes the end, and
//! a failing test prints it when the server is dropped).
//!
//! The server listens on a free port of 127.0.0.1 only, with a 100 ms tick
//! so that sessions can be as short as 200 ms ([`MIN_SESSION_TIMEOUT`]) and
//! expire promptly; clients may ask for up to a minute. The admin server
//! (Jetty on port 8080) is off; the four-letter words in
//! [`FOUR_LETTER_WORDS`] answer on the client port.
//!
//! [`ZooKeeper::start_stock`] runs it with ZooKeeper's stock timing
//! instead (tickTime 2000, sessions of 4 s to 40 s), for failover tests
//! and benchmarks that must not profit from the short tick.
//!
//! [`ZooKeeper::stop`] and [`ZooKeeper::start_again`] keep the port and the
//! data directory, so what clients wrote survives a restart; dropping the
//! value kills the server and removes the directory.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::ports::free_port;
use crate::procs;

/// The server's jar; its manifest's `Class-Path` names its dependencies.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An SLF4J binding and log4j 1.2 (both dependencies of Debian's
/// `libzookeeper-java`): without them the server logs nothing.
const LOGGING_JARS: [&str; 2] = [
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];
const MAIN_CLASS: &str = "org.apache.zookeeper.server.ZooKeeperServerMain";

/// The server's tick: the unit of its session timeouts and of its checks
/// for expired sessions.
pub const TICK: Duration = Duration::from_millis(100);
/// The shortest session timeout the server grants (2 ticks); clients
/// asking for less get this.
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_millis(200);
/// The longest session timeout the server grants.
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// The four-letter words the server answers ([`ZooKeeper::four_letter_word`]).
pub const FOUR_LETTER_WORDS: &str = "ruok,srvr,stat,mntr,cons,dump,wchs,envi,conf";

/// Time for the server to answer `srvr` after it is started.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Time for the server to exit after SIGTERM, before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How long one four-letter-word exchange may take.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one `srvr` probe may take while the server starts: a word sent
/// just after the port is bound, before the server is set up, may get no
/// answer at all, so probes give up quickly and try again.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// How many log lines [`ZooKeeper::log_tail`] quotes.
const TAIL_LINES: usize = 60;

/// A standalone ZooKeeper server on 127.0.0.1; killed, and its directory
/// removed, when dropped.
pub struct ZooKeeper {
    /// `None` while stopped.
    child: Option<Child>,
    port: u16,
    /// Holds `zoo.cfg`, `log4j.properties`, `data/` and `zookeeper.log`.
    dir: tempfile::TempDir,
    /// How long the last start took until the server answered.
    startup: Duration,
}

impl ZooKeeper {
    /// Starts a server on a free port with a fresh data directory, and
    /// waits until it answers `srvr` as a standalone server.
    ///
    /// # Panics
    ///
    /// If ZooKeeper is not installed (naming `apt-get install zookeeper`),
    /// or it does not answer within a minute.
    pub async fn start() -> ZooKeeper {
        Self::start_with(false).await
    }

    /// [`ZooKeeper::start`] with ZooKeeper's stock timing: tickTime 2000
    /// and the default session bounds (2 to 20 ticks), as an operator's
    /// server runs.
    pub async fn start_stock() -> ZooKeeper {
        Self::start_with(true).await
    }

    async fn start_with(stock: bool) -> ZooKeeper {
        let jars = installed_jars();
        let dir = tempfile::Builder::new()
            .prefix("baton-e2e-zookeeper-")
            .tempdir()
            .expect("create ZooKeeper's temporary directory");
        let port = free_port();
        write_config(dir.path(), port, stock);
        let mut zk = ZooKeeper {
            child: None,
            port,
            dir,
            startup: Duration::ZERO,
        };
        zk.spawn(&jars).await;
        zk
    }

    /// Starts the stopped server again on the same port with the same data
    /// directory (stopping it first if it still runs), and waits until it
    /// answers.
    pub async fn start_again(&mut self) {
        if self.child.is_some() {
            self.stop().await;
        }
        self.spawn(&installed_jars()).await;
    }

    /// Stops the server: SIGTERM, then SIGKILL if it has not exited within
    /// 10 s; returns once it is reaped. Its port and data stay for
    /// [`ZooKeeper::start_again`].
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("ZooKeeper on port {} is not running", self.port);
        };
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(STOP_DEADLINE, child.wait())
            .await
            .is_err()
        {
            child.kill().await.expect("SIGKILL ZooKeeper");
        }
    }

    /// `127.0.0.1:PORT`, the connect string for ZooKeeper clients.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `zk://127.0.0.1:PORT/path` (`path` with or without its leading `/`),
    /// as Mesos and Marathon spell ZooKeeper URLs.
    pub fn url(&self, path: &str) -> String {
        format!(
            "zk://{}/{}",
            self.connect_string(),
            path.trim_start_matches('/')
        )
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (`zoo.cfg`, `data/`, `zookeeper.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How long the last (re)start took until the server answered `srvr`.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Whether the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends a four-letter word (one of [`FOUR_LETTER_WORDS`], e.g. `ruok`,
    /// `srvr`, `cons`, `dump`) and returns the answer; `None` if the server
    /// does not answer within 2 s (e.g. while stopped).
    pub async fn four_letter_word(&self, word: &str) -> Option<String> {
        self.four_letter_word_within(word, FOUR_LETTER_TIMEOUT)
            .await
    }

    async fn four_letter_word_within(&self, word: &str, timeout: Duration) -> Option<String> {
        let exchange = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
            stream.write_all(word.as_bytes()).await.ok()?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.ok()?;
            Some(answer)
        };
        tokio::time::timeout(timeout, exchange).await.ok().flatten()
    }

    /// Whether the server is up and serving clients: `srvr` answers with
    /// its mode (a server that is still starting answers that it is "not
    /// currently serving requests").
    pub async fn is_serving(&self) -> bool {
        self.four_letter_word_within("srvr", FOUR_LETTER_TIMEOUT)
            .await
            .is_some_and(|a| a.contains("Mode: standalone"))
    }

    /// [`ZooKeeper::is_serving`] with a short timeout, while starting.
    async fn probe(&self) -> bool {
        self.four_letter_word_within("srvr", PROBE_TIMEOUT)
            .await
            .is_some_and(|a| a.contains("Mode: standalone"))
    }

    /// The last lines of the server's log, with the log file's path.
    pub fn log_tail(&self) -> String {
        procs::log_tail("ZooKeeper", &self.log(), TAIL_LINES)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    /// Starts `java` on the configuration in the directory and waits until
    /// the server serves; fails early if it exits.
    async fn spawn(&mut self, jars: &str) {
        // Appended to, so that after a restart the tail shows both runs.
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open ZooKeeper's log file");
        let err = out.try_clone().expect("clone ZooKeeper's log file");
        let dir = self.dir.path();
        let started = Instant::now();
        let child = Command::new("java")
            .args(["-Xmx1g", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            // No hsperfdata files in /tmp.
            .arg("-XX:-UsePerfData")
            .arg(format!(
                "-Dlog4j.configuration=file:{}",
                dir.join("log4j.properties").display()
            ))
            .arg(format!("-Djava.io.tmpdir={}", dir.display()))
            .args(["-cp", jars, MAIN_CLASS])
            .arg(dir.join("zoo.cfg"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `java` for ZooKeeper ({e}): install it with \
                     `apt-get install zookeeper` (which pulls in a Java runtime)"
                )
            });
        self.child = Some(child);
        let deadline = started + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "ZooKeeper exited while starting on port {}: {status}\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            if self.probe().await {
                self.startup = started.elapsed();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper did not answer `srvr` on port {} within {START_DEADLINE:?}\n{}",
                self.port,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ZooKeeper {
    /// Kills a still running server (SIGKILL: its data goes with the
    /// directory anyway), and prints its log if the test is failing.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// The class path for the server; panics naming the package if ZooKeeper
/// is not installed.
fn installed_jars() -> String {
    assert!(
        Path::new(ZOOKEEPER_JAR).exists(),
        "ZooKeeper is not installed ({ZOOKEEPER_JAR} is missing): these tests \
         need a ZooKeeper server; install it with `apt-get install zookeeper`"
    );
    let mut jars = vec![ZOOKEEPER_JAR];
    jars.extend(LOGGING_JARS.iter().filter(|jar| Path::new(jar).exists()));
    jars.join(":")
}

/// ZooKeeper's default tick.
const STOCK_TICK: Duration = Duration::from_millis(2000);

/// Writes `zoo.cfg` and `log4j.properties` into `dir`: the short test
/// tick, or ZooKeeper's stock timing when `stock`.
fn write_config(dir: &Path, port: u16, stock: bool) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("create ZooKeeper's data directory");
    let timing = if stock {
        // ZooKeeper's defaults otherwise, fsync of its log included.
        format!("tickTime={}\n", STOCK_TICK.as_millis())
    } else {
        format!(
            "tickTime={tick}\nminSessionTimeout={min}\nmaxSessionTimeout={max}\n\
             # Written, not fsynced: data survives the process, not the machine.\n\
             forceSync=no\n",
            tick = TICK.as_millis(),
            min = MIN_SESSION_TIMEOUT.as_millis(),
            max = MAX_SESSION_TIMEOUT.as_millis(),
        )
    };
    let config = format!(
        "{timing}\
         dataDir={data}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist={words}\n\
         maxClientCnxns=0\n",
        data = data.display(),
        words = FOUR_LETTER_WORDS,
    );
    std::fs::write(dir.join("zoo.cfg"), config).expect("write zoo.cfg");
    let log4j = "log4j.rootLogger=INFO, CONSOLE\n\
                 log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
                 log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
                 log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n\n";
    std::fs::write(dir.join("log4j.properties"), log4j).expect("write log4j.properties");
}
