//! Access logs per app: one line per request, in the combined log format
//! of Apache and nginx or as one JSON object, to a file per app in a
//! directory (rotated by size) or to standard output.
//!
//! The request path only fills an [`Entry`] and offers it to a bounded
//! queue ([`AccessLog::log`]), never waiting: when the queue is full the
//! line is dropped and counted. One background task ([`run`]) takes what
//! is queued in batches (what gathered in the last 10 ms, up to 1,024
//! lines), renders the lines and writes them on the blocking pool, one
//! write per file and batch; it stops with the server, writing what is
//! still queued.
//!
//! Combined lines are exactly
//! `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`: the client
//! address, `-`, the Basic user name the client sent (or `-`), the
//! arrival time in UTC, the request line, the status, the response body's
//! bytes (a number, as nginx's `$body_bytes_sent`), the `Referer` and the
//! `User-Agent` (`-` when absent). Quotes and backslashes in the quoted
//! fields and the user are escaped with a backslash, other control and
//! non-ASCII bytes as `\xhh`, whitespace controls as `\n`, `\t`, … — as
//! Apache does — so that a line always parses.
//!
//! Files are named after the app id, `/` turned into `_` and the leading
//! one dropped (`/shop/web` → `shop_web.log`). A line that would take a
//! file past its size bound first rotates it: `app.log.{keep-1}` →
//! `app.log.{keep}`, …, `app.log` → `app.log.1`, so at most `keep` old
//! files are kept next to the current one, each within the bound (a
//! single longer line gets a file of its own).

use std::collections::HashMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use hyper::header::HeaderValue;
use hyper::{Method, Uri, Version};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Lines queued for the writer at most; more are dropped.
pub const QUEUE_CAPACITY: usize = 16_384;

/// Lines written per batch at most.
const BATCH: usize = 1024;

/// How long the writer lets lines gather after each batch. While it
/// waits no request wakes it (one wake-up per line costs more than
/// writing the line); the queue holds far more than arrives meanwhile.
const GATHER: Duration = Duration::from_millis(10);

/// Log files kept open at most; the least recently written is closed
/// first (and reopened when needed).
const MAX_OPEN_FILES: usize = 128;

/// Why a setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not `combined` or `json`.
    #[error("unknown access log format {0:?}: combined or json")]
    UnknownFormat(String),
}

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Apache's and nginx's combined log format.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Format, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "combined" => Ok(Format::Combined),
            "json" => Ok(Format::Json),
            _ => Err(Error::UnknownFormat(s.to_string())),
        }
    }
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard output, every app's lines together (`-`).
    Stdout,
    /// One file per app in this directory.
    Directory(PathBuf),
}

impl Destination {
    /// `-` for standard output, else a directory.
    pub fn parse(s: &str) -> Destination {
        match s {
            "-" => Destination::Stdout,
            dir => Destination::Directory(PathBuf::from(dir)),
        }
    }
}

/// The access log's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where lines go.
    pub destination: Destination,
    /// How they are written.
    pub format: Format,
    /// A file is rotated before it would pass this size (0: never).
    pub max_bytes: u64,
    /// Rotated files kept per app.
    pub keep: usize,
}

impl Settings {
    /// Combined lines to `destination`, files rotated at 100 MiB, five kept.
    pub fn new(destination: Destination) -> Settings {
        Settings {
            destination,
            format: Format::Combined,
            max_bytes: 100 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// One request, as logged.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The app's id.
    pub app: String,
    /// When the request arrived.
    pub time: SystemTime,
    /// The client's address (the TCP peer).
    pub client: IpAddr,
    /// The user name of the `Authorization: Basic` the client sent.
    pub user: Option<String>,
    /// The request's method.
    pub method: Method,
    /// The request target as received.
    pub target: Uri,
    /// The request's HTTP version.
    pub version: Version,
    /// The `Host` header.
    pub host: Option<HeaderValue>,
    /// The `Referer` header.
    pub referer: Option<HeaderValue>,
    /// The `User-Agent` header.
    pub user_agent: Option<HeaderValue>,
    /// The response status.
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: u64,
    /// From arrival to the end of the response.
    pub duration: Duration,
    /// The instance that answered (none for the router's own answers).
    pub upstream: Option<Arc<str>>,
}

/// The log's file name for app `id`.
pub fn file_name(app_id: &str) -> String {
    let name: String = app_id
        .trim_start_matches('/')
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' => c,
            _ => '_',
        })
        .collect();
    format!("{name}.log")
}

/// Whether a line of `line` bytes must go to a fresh file, given the
/// current one's `size` and the bound `max` (0: none). An empty file
/// takes any line.
pub fn must_rotate(size: u64, line: u64, max: u64) -> bool {
    max > 0 && size > 0 && size + line > max
}

/// The renames that rotate `base` keeping `keep` old files, in order:
/// the oldest moved up first, `base` itself last. With `keep` 0 there
/// are none (the file is removed instead).
pub fn rotation_renames(base: &Path, keep: usize) -> Vec<(PathBuf, PathBuf)> {
    let numbered = |n: usize| {
        let mut name = base.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    let mut renames: Vec<(PathBuf, PathBuf)> = (1..keep)
        .rev()
        .map(|n| (numbered(n), numbered(n + 1)))
        .collect();
    if keep > 0 {
        renames.push((base.to_path_buf(), numbered(1)));
    }
    renames
}

/// Appends `entry`'s line (newline included) to `out`.
pub fn render(format: Format, entry: &Entry, out: &mut Vec<u8>) {
    Renderer::new(format).render(entry, out);
}

/// Renders lines in one format, the combined format's time formatted
/// once per second.
#[derive(Debug)]
struct Renderer {
    format: Format,
    /// The last second formatted for `%t`, and its text.
    clf_second: Option<(u64, String)>,
}

impl Renderer {
    fn new(format: Format) -> Renderer {
        Renderer {
            format,
            clf_second: None,
        }
    }

    fn render(&mut self, entry: &Entry, out: &mut Vec<u8>) {
        match self.format {
            Format::Combined => {
                let second = entry
                    .time
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let time = match &self.clf_second {
                    Some((cached, text)) if *cached == second => text,
                    _ => &self.clf_second.insert((second, clf_time(entry.time))).1,
                };
                combined(entry, time, out);
            }
            Format::Json => json_line(entry, out),
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `time` in RFC 3339, UTC, to the millisecond (the epoch for earlier
/// times).
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time.max(SystemTime::UNIX_EPOCH)).to_string()
}

/// `time` as the combined format's `%t`: `[10/Oct/2000:13:55:36 +0000]`,
/// taken from its RFC 3339 form (`2000-10-10T13:55:36.000Z`, fixed width).
pub fn clf_time(time: SystemTime) -> String {
    let t = rfc3339(time);
    let month: usize = t[5..7].parse().unwrap_or(1);
    format!(
        "[{}/{}/{}:{} +0000]",
        &t[8..10],
        MONTHS[month.clamp(1, 12) - 1],
        &t[0..4],
        &t[11..19]
    )
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Appends `bytes` escaped as Apache escapes log items.
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\x0b' => out.extend_from_slice(b"\\v"),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// A quoted header field: its escaped value, or `-` when absent.
fn quoted_header(out: &mut Vec<u8>, value: Option<&HeaderValue>) {
    out.push(b'"');
    match value {
        Some(v) => escape_into(out, v.as_bytes()),
        None => out.push(b'-'),
    }
    out.push(b'"');
}

/// The request target as received: origin form without a copy.
fn target(uri: &Uri) -> std::borrow::Cow<'_, str> {
    match (uri.authority(), uri.path_and_query()) {
        (None, Some(origin)) => origin.as_str().into(),
        _ => uri.to_string().into(),
    }
}

/// The combined line, with `%t` already formatted as `time`.
fn combined(entry: &Entry, time: &str, out: &mut Vec<u8>) {
    let _ = write!(out, "{} - ", entry.client);
    match entry.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => escape_into(out, user.as_bytes()),
        None => out.push(b'-'),
    }
    let _ = write!(out, " {time} \"");
    escape_into(out, entry.method.as_str().as_bytes());
    out.push(b' ');
    escape_into(out, target(&entry.target).as_bytes());
    let _ = write!(
        out,
        " {}\" {} {} ",
        version_name(entry.version),
        entry.status,
        entry.bytes
    );
    quoted_header(out, entry.referer.as_ref());
    out.push(b' ');
    quoted_header(out, entry.user_agent.as_ref());
    out.push(b'\n');
}

fn json_line(entry: &Entry, out: &mut Vec<u8>) {
    let text = |v: &Option<HeaderValue>| {
        v.as_ref()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let line = json!({
        "time": rfc3339(entry.time),
        "app": entry.app,
        "client": entry.client.to_string(),
        "user": entry.user,
        "method": entry.method.as_str(),
        "uri": target(&entry.target),
        "protocol": version_name(entry.version),
        "status": entry.status,
        "bytes": entry.bytes,
        "referer": text(&entry.referer),
        "userAgent": text(&entry.user_agent),
        "host": text(&entry.host),
        "durationMs": entry.duration.as_secs_f64() * 1000.0,
        "upstream": entry.upstream.as_deref(),
    });
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

/// The log's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Lines written.
    pub written: AtomicU64,
    /// Lines dropped because the queue was full (or the writer gone).
    pub dropped: AtomicU64,
    /// Lines lost to a file that could not be opened or written.
    pub failed: AtomicU64,
}

/// The request path's side of the access log: offers lines to the
/// writer without waiting.
#[derive(Debug, Clone)]
pub struct AccessLog {
    queue: Option<mpsc::Sender<Entry>>,
    counters: Arc<Counters>,
}

impl AccessLog {
    /// A log that writes nothing.
    pub fn disabled() -> AccessLog {
        AccessLog {
            queue: None,
            counters: Arc::default(),
        }
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues `entry`'s line; drops (and counts) it when the queue is full.
    pub fn log(&self, entry: Entry) {
        if let Some(queue) = &self.queue
            && queue.try_send(entry).is_err()
        {
            self.counters.dropped.fetch_add(1, Relaxed);
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// For `/_router/stats`.
    pub fn to_json(&self) -> Value {
        json!({
            "enabled": self.enabled(),
            "written": self.counters.written.load(Relaxed),
            "dropped": self.counters.dropped.load(Relaxed),
            "failed": self.counters.failed.load(Relaxed),
        })
    }
}

/// The writer's side, for [`run`].
#[derive(Debug)]
pub struct Writer {
    queue: mpsc::Receiver<Entry>,
    settings: Settings,
    counters: Arc<Counters>,
}

/// The access log for `settings` (none: disabled) and, when enabled, the
/// writer to [`run`].
pub fn open(settings: Option<Settings>) -> (AccessLog, Option<Writer>) {
    let Some(settings) = settings else {
        return (AccessLog::disabled(), None);
    };
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let counters = Arc::new(Counters::default());
    let log = AccessLog {
        queue: Some(sender),
        counters: counters.clone(),
    };
    let writer = Writer {
        queue: receiver,
        settings,
        counters,
    };
    (log, Some(writer))
}

/// Writes queued lines until `stop`, then what is still queued.
pub async fn run(writer: Writer, stop: CancellationToken) {
    let Writer {
        mut queue,
        settings,
        counters,
    } = writer;
    let mut sink = Sink::new(&settings);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let open = tokio::select! {
            received = queue.recv_many(&mut batch, BATCH) => received > 0,
            () = stop.cancelled() => false,
        };
        if !batch.is_empty() {
            (sink, batch) = write(sink, batch, &settings, &counters).await;
        }
        if !open {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(GATHER) => {}
            () = stop.cancelled() => break,
        }
    }
    queue.close();
    loop {
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        (sink, batch) = write(sink, batch, &settings, &counters).await;
    }
}

/// Writes `batch` on the blocking pool; the sink and the emptied batch
/// come back.
async fn write(
    sink: Sink,
    batch: Vec<Entry>,
    settings: &Settings,
    counters: &Arc<Counters>,
) -> (Sink, Vec<Entry>) {
    let lines = batch.len() as u64;
    let shared = counters.clone();
    let written = tokio::task::spawn_blocking(move || {
        let (mut sink, mut batch) = (sink, batch);
        sink.write(&batch, &shared);
        batch.clear();
        (sink, batch)
    })
    .await;
    match written {
        Ok(done) => done,
        Err(e) => {
            warn!(error = %e, "the access log writer failed; reopening its files");
            counters.failed.fetch_add(lines, Relaxed);
            (Sink::new(settings), Vec::with_capacity(BATCH))
        }
    }
}

/// Where the writer puts lines.
#[derive(Debug)]
enum Sink {
    Stdout(Renderer),
    Files(Files),
}

impl Sink {
    fn new(settings: &Settings) -> Sink {
        match &settings.destination {
            Destination::Stdout => Sink::Stdout(Renderer::new(settings.format)),
            Destination::Directory(dir) => Sink::Files(Files::new(dir, settings)),
        }
    }

    fn write(&mut self, batch: &[Entry], counters: &Counters) {
        match self {
            Sink::Stdout(renderer) => {
                let mut out = Vec::with_capacity(batch.len() * 160);
                for entry in batch {
                    renderer.render(entry, &mut out);
                }
                let mut stdout = std::io::stdout().lock();
                let lines = batch.len() as u64;
                match stdout.write_all(&out).and_then(|()| stdout.flush()) {
                    Ok(()) => counters.written.fetch_add(lines, Relaxed),
                    Err(_) => counters.failed.fetch_add(lines, Relaxed),
                };
            }
            Sink::Files(files) => files.write(batch, counters),
        }
    }
}

/// One app's open log file.
#[derive(Debug)]
struct LogFile {
    file: std::fs::File,
    /// Bytes in the file, written or pending.
    size: u64,
    /// Lines rendered but not yet written, and their count.
    pending: Vec<u8>,
    pending_lines: u64,
    /// The batch that last wrote here (for closing the least recent).
    used: u64,
}

/// One file per app in a directory, rotated by size.
#[derive(Debug)]
struct Files {
    dir: PathBuf,
    renderer: Renderer,
    max_bytes: u64,
    keep: usize,
    open: HashMap<String, LogFile>,
    batches: u64,
}

impl Files {
    fn new(dir: &Path, settings: &Settings) -> Files {
        Files {
            dir: dir.to_path_buf(),
            renderer: Renderer::new(settings.format),
            max_bytes: settings.max_bytes,
            keep: settings.keep,
            open: HashMap::new(),
            batches: 0,
        }
    }

    /// Writes each entry to its app's file, one write per file.
    fn write(&mut self, batch: &[Entry], counters: &Counters) {
        self.batches += 1;
        let mut errors: HashMap<&str, std::io::Error> = HashMap::new();
        let mut line = Vec::with_capacity(512);
        for entry in batch {
            line.clear();
            self.renderer.render(entry, &mut line);
            if let Err(e) = self.append(&entry.app, &line, counters) {
                counters.failed.fetch_add(1, Relaxed);
                errors.entry(&entry.app).or_insert(e);
            }
        }
        let apps: Vec<String> = self.open.keys().cloned().collect();
        for app in apps {
            if let Err(e) = self.flush(&app, counters) {
                warn!(%app, error = %e, "cannot write the access log");
            }
        }
        for (app, e) in errors {
            warn!(%app, error = %e, "cannot write the access log");
        }
    }

    fn path(&self, app: &str) -> PathBuf {
        self.dir.join(file_name(app))
    }

    /// Adds `line` to `app`'s pending lines, rotating first if it would
    /// take the file past its bound.
    fn append(&mut self, app: &str, line: &[u8], counters: &Counters) -> std::io::Result<()> {
        if !self.open.contains_key(app) {
            self.make_room(counters);
            let file = open_append(&self.path(app))?;
            let size = file.metadata()?.len();
            let used = self.batches;
            let log = LogFile {
                file,
                size,
                pending: Vec::new(),
                pending_lines: 0,
                used,
            };
            self.open.insert(app.to_string(), log);
        }
        let (max, batches) = (self.max_bytes, self.batches);
        let size = self.open.get(app).map_or(0, |log| log.size);
        if must_rotate(size, line.len() as u64, max) {
            self.flush(app, counters)?;
            self.open.remove(app);
            let path = self.path(app);
            rotate(&path, self.keep)?;
            let log = LogFile {
                file: open_append(&path)?,
                size: 0,
                pending: Vec::new(),
                pending_lines: 0,
                used: batches,
            };
            self.open.insert(app.to_string(), log);
        }
        if let Some(log) = self.open.get_mut(app) {
            log.pending.extend_from_slice(line);
            log.pending_lines += 1;
            log.size += line.len() as u64;
            log.used = batches;
        }
        Ok(())
    }

    /// Writes `app`'s pending lines; a file that fails is closed (and
    /// reopened by the next line).
    fn flush(&mut self, app: &str, counters: &Counters) -> std::io::Result<()> {
        let Some(log) = self.open.get_mut(app) else {
            return Ok(());
        };
        if log.pending.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut log.pending_lines);
        let written = log.file.write_all(&log.pending);
        log.pending.clear();
        match written {
            Ok(()) => {
                counters.written.fetch_add(lines, Relaxed);
                Ok(())
            }
            Err(e) => {
                counters.failed.fetch_add(lines, Relaxed);
                self.open.remove(app);
                Err(e)
            }
        }
    }

    /// Closes the least recently written file when too many are open.
    fn make_room(&mut self, counters: &Counters) {
        if self.open.len() < MAX_OPEN_FILES {
            return;
        }
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, log)| log.used)
            .map(|(app, _)| app.clone());
        if let Some(app) = oldest {
            if let Err(e) = self.flush(&app, counters) {
                warn!(%app, error = %e, "cannot write the access log");
            }
            self.open.remove(&app);
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        // Logs name clients and URLs: not for every local user.
        .mode(0o640)
        .open(path)
}

/// Rotates `path`, keeping `keep` old files (none: removes it).
fn rotate(path: &Path, keep: usize) -> std::io::Result<()> {
    let ignore_missing = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    if keep == 0 {
        return ignore_missing(std::fs::remove_file(path));
    }
    for (from, to) in rotation_renames(path, keep) {
        ignore_missing(std::fs::rename(from, to))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            app: "/shop/web".into(),
            // 2000-10-10T13:55:36.250Z
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(971_186_136_250),
            client: "192.0.2.7".parse().unwrap(),
            user: None,
            method: Method::GET,
            target: "/apache_pb.gif?x=1".parse().unwrap(),
            version: Version::HTTP_11,
            host: Some(HeaderValue::from_static("shop.test")),
            referer: None,
            user_agent: None,
            status: 200,
            bytes: 2326,
            duration: Duration::from_micros(1500),
            upstream: Some("127.0.0.1:31000".into()),
        }
    }

    fn line(format: Format, entry: &Entry) -> String {
        let mut out = Vec::new();
        render(format, entry, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_combined_line_has_every_field_and_dashes_for_missing_ones() {
        assert_eq!(
            line(Format::Combined, &entry()),
            "192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?x=1 HTTP/1.1\" 200 2326 \"-\" \"-\"\n"
        );
        let mut full = entry();
        full.user = Some("frank".into());
        full.referer = Some(HeaderValue::from_static(
            "http://www.example.com/start.html",
        ));
        full.user_agent = Some(HeaderValue::from_static(
            "Mozilla/4.08 [en] (Win98; I ;Nav)",
        ));
        full.client = "2001:db8::1".parse().unwrap();
        full.version = Version::HTTP_10;
        full.status = 404;
        full.bytes = 0;
        assert_eq!(
            line(Format::Combined, &full),
            "2001:db8::1 - frank [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?x=1 HTTP/1.0\" 404 0 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\"\n"
        );
    }

    #[test]
    fn quotes_backslashes_and_control_bytes_are_escaped_as_apache_does() {
        let mut e = entry();
        e.user = Some("ev\"il user".into());
        e.user_agent = Some(HeaderValue::from_bytes(b"say \"hi\" \\ \t\xe9").unwrap());
        e.referer = Some(HeaderValue::from_static(""));
        let text = line(Format::Combined, &e);
        assert!(
            text.contains(" ev\\\"il user ["),
            "the user escaped: {text}"
        );
        assert!(
            text.ends_with(" \"\" \"say \\\"hi\\\" \\\\ \\t\\xe9\"\n"),
            "{text}"
        );
        // One line, whatever came in.
        assert_eq!(text.matches('\n').count(), 1);
        let mut out = Vec::new();
        escape_into(&mut out, b"a\"b\\c\nd\x01\x7f\xe9 e");
        assert_eq!(out, b"a\\\"b\\\\c\\nd\\x01\\x7f\\xe9 e");
    }

    #[test]
    fn a_json_line_parses_and_names_missing_fields_null() {
        let text = line(Format::Json, &entry());
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["time"], "2000-10-10T13:55:36.250Z");
        assert_eq!(v["app"], "/shop/web");
        assert_eq!(v["client"], "192.0.2.7");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["uri"], "/apache_pb.gif?x=1");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 2326);
        assert_eq!(v["host"], "shop.test");
        assert_eq!(v["upstream"], "127.0.0.1:31000");
        assert_eq!(v["durationMs"], 1.5);
        for missing in ["user", "referer", "userAgent"] {
            assert!(v[missing].is_null(), "{missing}");
        }
    }

    #[test]
    fn a_renderer_formats_each_second_anew_and_keeps_absolute_targets_whole() {
        let mut renderer = Renderer::new(Format::Combined);
        let mut e = entry();
        let mut out = Vec::new();
        renderer.render(&e, &mut out);
        e.time += Duration::from_millis(800); // the next second
        e.target = "http://shop.test:8080/x?y".parse().unwrap();
        renderer.render(&e, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("[10/Oct/2000:13:55:36 +0000]"), "{text}");
        assert!(lines[1].contains("[10/Oct/2000:13:55:37 +0000]"), "{text}");
        assert!(
            lines[1].contains("\"GET http://shop.test:8080/x?y HTTP/1.1\""),
            "{text}"
        );
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(clf_time(at(0)), "[01/Jan/1970:00:00:00 +0000]");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(clf_time(at(1_709_251_199)), "[29/Feb/2024:23:59:59 +0000]");
        assert_eq!(rfc3339(at(4_102_444_800)), "2100-01-01T00:00:00.000Z");
        let earlier = SystemTime::UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(rfc3339(earlier), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn file_names_come_from_app_ids_and_never_leave_the_directory() {
        assert_eq!(file_name("/web"), "web.log");
        assert_eq!(file_name("/shop/api-v2"), "shop_api-v2.log");
        assert_eq!(file_name("/../etc/passwd"), ".._etc_passwd.log");
        assert!(!file_name("/a/\0b").contains(['/', '\0']));
    }

    #[test]
    fn rotation_moves_the_oldest_first_and_keeps_the_bound() {
        assert!(!must_rotate(0, 500, 100), "an empty file takes any line");
        assert!(!must_rotate(60, 40, 100));
        assert!(must_rotate(61, 40, 100));
        assert!(!must_rotate(1 << 40, 1, 0), "0: never");
        let base = Path::new("/logs/web.log");
        let renames: Vec<(String, String)> = rotation_renames(base, 3)
            .into_iter()
            .map(|(a, b)| (a.display().to_string(), b.display().to_string()))
            .collect();
        let expected = [
            ("/logs/web.log.2", "/logs/web.log.3"),
            ("/logs/web.log.1", "/logs/web.log.2"),
            ("/logs/web.log", "/logs/web.log.1"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(renames, expected);
        assert!(rotation_renames(base, 0).is_empty());
    }

    #[test]
    fn files_rotate_by_size_and_keep_only_so_many() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(Destination::Directory(dir.path().into()));
        settings.max_bytes = 1000;
        settings.keep = 2;
        let mut files = Files::new(dir.path(), &settings);
        let counters = Counters::default();
        let one = line(Format::Combined, &entry()).len() as u64;
        let mut other = entry();
        other.app = "/other".into();
        for _ in 0..10 {
            let batch: Vec<Entry> = (0..7).map(|_| entry()).chain([other.clone()]).collect();
            files.write(&batch, &counters);
        }
        assert_eq!(counters.written.load(Relaxed), 80);
        assert_eq!(counters.failed.load(Relaxed), 0);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "other.log",
                "shop_web.log",
                "shop_web.log.1",
                "shop_web.log.2"
            ]
        );
        let per_file = 1000 / one;
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.len() <= 1000, "{name}: {}", text.len());
            assert!(text.ends_with('\n') && text.lines().all(|l| l.ends_with("\"-\"")));
            if name.starts_with("shop_web.log.") {
                assert_eq!(text.lines().count() as u64, per_file, "{name} full");
            }
        }
        // 70 lines: the two kept old files full, the rest in the current.
        let current = std::fs::read_to_string(dir.path().join("shop_web.log")).unwrap();
        assert_eq!(current.lines().count() as u64, (70 - 1) % per_file + 1);

        // Reopened later, the file's size is known and rotation goes on.
        let mut again = Files::new(dir.path(), &settings);
        let batch: Vec<Entry> = (0..per_file).map(|_| entry()).collect();
        again.write(&batch, &counters);
        let old = std::fs::read_to_string(dir.path().join("shop_web.log.1")).unwrap();
        assert_eq!(old, current, "the current file moved to .1");
    }

    #[test]
    fn a_file_that_cannot_be_opened_counts_its_lines_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "").unwrap();
        let settings = Settings::new(Destination::Directory(blocker.clone()));
        let mut files = Files::new(&blocker, &settings);
        let counters = Counters::default();
        files.write(&[entry(), entry()], &counters);
        assert_eq!(counters.failed.load(Relaxed), 2);
        assert_eq!(counters.written.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn the_queue_drops_and_counts_when_full_and_the_writer_flushes_at_stop() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(Destination::Directory(dir.path().into()));
        settings.format = Format::Json;
        let (log, writer) = open(Some(settings));
        let writer = writer.unwrap();
        // The writer is not running yet: the queue fills, then drops.
        for _ in 0..QUEUE_CAPACITY + 5 {
            log.log(entry());
        }
        assert_eq!(log.counters().dropped.load(Relaxed), 5);
        let stop = CancellationToken::new();
        stop.cancel();
        run(writer, stop).await;
        assert_eq!(log.counters().written.load(Relaxed), QUEUE_CAPACITY as u64);
        let text = std::fs::read_to_string(dir.path().join("shop_web.log")).unwrap();
        assert_eq!(text.lines().count(), QUEUE_CAPACITY);
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["status"], 200);
        }
        let disabled = AccessLog::disabled();
        disabled.log(entry());
        assert_eq!(disabled.to_json()["enabled"], false);
        assert_eq!(disabled.counters().dropped.load(Relaxed), 0);
    }
}
