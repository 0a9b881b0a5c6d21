//! The agent's `/files/read`, `/files/browse` and `/files/debug`, as a
//! Mesos 1.12 agent answers them (`src/files/files.cpp`; statuses, bodies
//! and shapes checked with curl against a real 1.12 agent):
//!
//! - `path` names a file under a virtual path the agent attached
//!   ([`super::sandboxes`]): the longest attached prefix is replaced by its
//!   sandbox and the result canonicalized. A path that does not exist is
//!   404 (empty body); one that resolves outside its sandbox (`..`, a
//!   symlink out) is 400 `'<path>' is inaccessible.`; a missing or empty
//!   `path` is 400 `Expecting 'path=value' in query.`. Error bodies are
//!   `text/plain`, ending in a newline.
//! - `read`: `{"data": "...", "offset": N}`. `offset` defaults to -1,
//!   which answers the file's size with no data; below -1 or not a number
//!   is 400. `length` (-1 or absent: to the end) is capped at 16 pages; an
//!   offset at or past the end answers no data and the offset asked for.
//!   A directory is 400 `Cannot read a directory.`.
//! - `browse`: a JSON array, sorted by path, of `{path, nlink, size, mtime,
//!   mode, uid, gid}` per entry (symlinks followed; `mode` as `ls -l`
//!   prints it, `uid`/`gid` as names); a file lists as `[]`.
//! - `jsonp=f` wraps an answer as `f(<json>)` (`text/javascript`).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::Agent;
use super::sandboxes::normalize;

/// The most bytes one read answers: 16 pages, as Mesos caps it.
pub const MAX_READ: u64 = 16 * 4096;

/// The `/files/*` routes.
pub fn routes() -> Router<Arc<Agent>> {
    Router::new()
        .route("/files/read", get(read))
        .route("/files/download", get(download))
        .route("/files/browse", get(browse))
        .route("/files/debug", get(debug))
}

/// Why a request is refused, as Mesos answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400 with this text (newline included).
    BadRequest(String),
    /// 404, empty body.
    NotFound,
    /// 500 with this text.
    Internal(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::BadRequest(t) => (StatusCode::BAD_REQUEST, t),
            Refusal::NotFound => (StatusCode::NOT_FOUND, String::new()),
            Refusal::Internal(t) => (StatusCode::INTERNAL_SERVER_ERROR, t),
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    }
}

/// The query as Mesos reads it: one value per key (the first).
fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        map.entry(k).or_insert(v);
    }
    map
}

fn path_param(q: &BTreeMap<String, String>) -> Result<String, Refusal> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.clone()),
        _ => Err(Refusal::BadRequest(
            "Expecting 'path=value' in query.\n".into(),
        )),
    }
}

/// A parsed `/files/read` request: `offset` -1 asks for the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    /// -1 (the default) or a byte offset.
    pub offset: i64,
    /// `None` reads to the end (as `-1` or no `length` do).
    pub length: Option<u64>,
}

/// Reads `offset` and `length` as Mesos does.
pub fn parse_read(q: &BTreeMap<String, String>) -> Result<ReadRequest, Refusal> {
    let number = |name: &str, text: &str| {
        text.parse::<i64>().map_err(|_| {
            Refusal::BadRequest(format!(
                "Failed to parse {name}: Failed to convert '{text}' to number.\n"
            ))
        })
    };
    let offset = match q.get("offset") {
        None => -1,
        Some(t) => {
            let n = number("offset", t)?;
            if n < -1 {
                return Err(Refusal::BadRequest(format!(
                    "Negative offset provided: {n}.\n"
                )));
            }
            n
        }
    };
    let length = match q.get("length") {
        None => None,
        Some(t) => {
            let n = number("length", t)?;
            if n < -1 {
                return Err(Refusal::BadRequest(format!(
                    "Negative length provided: {n}.\n"
                )));
            }
            u64::try_from(n).ok()
        }
    };
    Ok(ReadRequest { offset, length })
}

/// What to read of a file of `size` bytes: `(start, bytes)`, and the
/// offset the answer reports.
pub fn read_window(request: ReadRequest, size: u64) -> ((u64, u64), u64) {
    let (start, length) = match u64::try_from(request.offset) {
        Ok(offset) => (offset, request.length),
        // -1: the size, no data.
        Err(_) => (0, Some(0)),
    };
    let reported = u64::try_from(request.offset).unwrap_or(size);
    if start >= size {
        return ((start, 0), reported);
    }
    let length = length.unwrap_or(size - start).min(MAX_READ);
    ((start, length), reported)
}

/// Where a virtual `path` leads: the longest attached prefix replaced by
/// its sandbox, canonicalized. `Ok(None)` when nothing is there (404),
/// `Err` when it leads outside its sandbox (400).
pub fn resolve(
    attachments: &BTreeMap<String, PathBuf>,
    path: &str,
) -> Result<Option<PathBuf>, Refusal> {
    let requested = normalize(path);
    let absolute = requested.starts_with('/');
    let tokens: Vec<&str> = requested.split('/').filter(|s| !s.is_empty()).collect();
    for k in (0..=tokens.len()).rev() {
        let joined = tokens[..k].join("/");
        let prefix = if absolute {
            format!("/{joined}")
        } else {
            joined
        };
        let Some(sandbox) = attachments.get(&prefix) else {
            continue;
        };
        let suffix = tokens[k..].join("/");
        // A sandbox not created yet (or gone) has nothing to serve.
        let Some(root) = canonical(sandbox)? else {
            return Ok(None);
        };
        if !root.is_dir() {
            return Ok(if suffix.is_empty() { Some(root) } else { None });
        }
        let joined_path = sandbox.join(&suffix);
        let Some(real) = canonical(&joined_path)? else {
            return Ok(None);
        };
        if !real.starts_with(&root) {
            return Err(Refusal::BadRequest(format!(
                "'{}' is inaccessible.\n",
                if suffix.is_empty() {
                    sandbox.display().to_string()
                } else {
                    format!("{}/{suffix}", sandbox.display())
                }
            )));
        }
        return Ok(Some(real));
    }
    Ok(None)
}

/// `realpath`: `None` when a component does not exist or is not a
/// directory.
fn canonical(path: &Path) -> Result<Option<PathBuf>, Refusal> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(Some(p)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(nix::libc::ENOTDIR) =>
        {
            Ok(None)
        }
        Err(e) => Err(Refusal::BadRequest(format!(
            "Failed to determine canonical path of '{}': {e}.\n",
            path.display()
        ))),
    }
}

/// The longest prefix of `bytes` that is whole UTF-8, unless that is
/// empty: a character cut by the read's end is left for the next read.
fn text(bytes: &[u8], at_end: bool) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) if e.error_len().is_none() && !at_end && e.valid_up_to() > 0 => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Reads the file at a resolved path.
fn read_file(path: &Path, request: ReadRequest) -> Result<Value, Refusal> {
    if path.is_dir() {
        return Err(Refusal::BadRequest("Cannot read a directory.\n".into()));
    }
    let failed = |what: &str, e: std::io::Error| {
        Refusal::Internal(format!(
            "Failed to {what} file at '{}': {e}.\n",
            path.display()
        ))
    };
    let mut file = std::fs::File::open(path).map_err(|e| failed("open", e))?;
    let size = file.metadata().map_err(|e| failed("open", e))?.len();
    let ((start, length), reported) = read_window(request, size);
    let mut data = Vec::new();
    if length > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| failed("seek", e))?;
        file.take(length)
            .read_to_end(&mut data)
            .map_err(|e| failed("read", e))?;
    }
    let at_end = start + data.len() as u64 >= size;
    Ok(json!({"data": text(&data, at_end), "offset": reported}))
}

/// `ls -l`'s mode column, as Mesos writes `mode` (type, then rwx × 3).
pub fn mode_string(meta: &std::fs::Metadata) -> String {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_socket() {
        's'
    } else {
        '-'
    };
    let mode = meta.mode();
    let mut out = String::from(kind);
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ] {
        out.push(if mode & bit != 0 { c } else { '-' });
    }
    out
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// The listing of a resolved directory; `asked` is the path as requested,
/// which each entry's `path` extends.
fn list(dir: &Path, asked: &str) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = BTreeMap::new();
    for entry in entries.flatten() {
        let full = dir.join(entry.file_name());
        // Followed, as stat(2) does; a dangling link is left out.
        let Ok(meta) = std::fs::metadata(&full) else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{}/{name}", asked.trim_end_matches('/'));
        files.insert(
            full,
            json!({
                "path": path,
                "nlink": meta.nlink(),
                "size": meta.size(),
                "mtime": meta.mtime() as f64,
                "mode": mode_string(&meta),
                "uid": user_name(meta.uid()),
                "gid": group_name(meta.gid()),
            }),
        );
    }
    files.into_values().collect()
}

fn ok_json(value: &Value, jsonp: Option<&String>) -> Response {
    match jsonp {
        Some(f) => (
            [(header::CONTENT_TYPE, "text/javascript")],
            format!("{f}({value})"),
        )
            .into_response(),
        None => (
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response(),
    }
}

fn attachments(agent: &Agent) -> BTreeMap<String, PathBuf> {
    agent
        .lock()
        .sandboxes
        .attachments(&agent.config.work_dir, &agent.id)
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Refusal::Internal(format!("{e}\n"))))
}

async fn read(State(agent): State<Arc<Agent>>, RawQuery(query): RawQuery) -> Response {
    let q = query_map(query.as_deref());
    let parsed = path_param(&q).and_then(|p| Ok((p, parse_read(&q)?)));
    let (path, request) = match parsed {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let roots = attachments(&agent);
    let answer = blocking(move || {
        let real = resolve(&roots, &path)?.ok_or(Refusal::NotFound)?;
        read_file(&real, request)
    })
    .await;
    match answer {
        Ok(v) => ok_json(&v, q.get("jsonp")),
        Err(r) => r.into_response(),
    }
}

async fn browse(State(agent): State<Arc<Agent>>, RawQuery(query): RawQuery) -> Response {
    let q = query_map(query.as_deref());
    let path = match path_param(&q) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let roots = attachments(&agent);
    let answer = blocking(move || {
        let real = resolve(&roots, &path)?.ok_or(Refusal::NotFound)?;
        Ok(Value::Array(list(&real, &path)))
    })
    .await;
    match answer {
        Ok(v) => ok_json(&v, q.get("jsonp")),
        Err(r) => r.into_response(),
    }
}

/// `GET /files/download?path=`: the file itself, streamed, as an
/// attachment named after it (what the Mesos UI's download links fetch);
/// a directory is refused as Mesos refuses it.
async fn download(State(agent): State<Arc<Agent>>, RawQuery(query): RawQuery) -> Response {
    let q = query_map(query.as_deref());
    let path = match path_param(&q) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let roots = attachments(&agent);
    let found = blocking(move || {
        let real = resolve(&roots, &path)?.ok_or(Refusal::NotFound)?;
        if real.is_dir() {
            return Err(Refusal::BadRequest("Cannot download a directory.\n".into()));
        }
        Ok(real)
    })
    .await;
    let real = match found {
        Ok(real) => real,
        Err(r) => return r.into_response(),
    };
    let file = match tokio::fs::File::open(&real).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Refusal::NotFound.into_response();
        }
        Err(e) => return Refusal::Internal(format!("{e}\n")).into_response(),
    };
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\'], "_"))
        .unwrap_or_default();
    // 64 KiB at a time: a large log costs a chunk of memory, not the file.
    let chunks = futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// The virtual paths and the sandboxes they stand for.
async fn debug(State(agent): State<Arc<Agent>>, RawQuery(query): RawQuery) -> Response {
    let q = query_map(query.as_deref());
    let map: serde_json::Map<String, Value> = attachments(&agent)
        .into_iter()
        .map(|(k, v)| (k, json!(v.display().to_string())))
        .collect();
    ok_json(&Value::Object(map), q.get("jsonp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn read_parameters_follow_mesos() {
        assert_eq!(
            parse_read(&q(&[])),
            Ok(ReadRequest {
                offset: -1,
                length: None
            })
        );
        assert_eq!(
            parse_read(&q(&[("offset", "5"), ("length", "-1")])),
            Ok(ReadRequest {
                offset: 5,
                length: None
            })
        );
        assert_eq!(
            parse_read(&q(&[("offset", "-5")])),
            Err(Refusal::BadRequest(
                "Negative offset provided: -5.\n".into()
            ))
        );
        assert_eq!(
            parse_read(&q(&[("offset", "abc")])),
            Err(Refusal::BadRequest(
                "Failed to parse offset: Failed to convert 'abc' to number.\n".into()
            ))
        );
        assert_eq!(
            parse_read(&q(&[("offset", "0"), ("length", "-2")])),
            Err(Refusal::BadRequest(
                "Negative length provided: -2.\n".into()
            ))
        );
    }

    #[test]
    fn read_windows_follow_mesos() {
        let r = |offset, length| ReadRequest { offset, length };
        // -1: the size, nothing read.
        assert_eq!(read_window(r(-1, Some(10)), 550), ((0, 0), 550));
        assert_eq!(read_window(r(0, Some(30)), 550), ((0, 30), 0));
        assert_eq!(read_window(r(5, None), 550), ((5, 545), 5));
        // Past the end: nothing, and the offset asked for.
        assert_eq!(
            read_window(r(999_999_999, Some(10)), 550),
            ((999_999_999, 0), 999_999_999)
        );
        assert_eq!(read_window(r(0, Some(0)), 550), ((0, 0), 0));
        // Capped at 16 pages.
        assert_eq!(read_window(r(10, None), 1 << 20), ((10, MAX_READ), 10));
    }

    #[test]
    fn a_character_cut_by_the_read_is_left_for_the_next_one() {
        let bytes = "aé".as_bytes();
        assert_eq!(text(&bytes[..2], false), "a");
        assert_eq!(text(bytes, false), "aé");
        assert_eq!(text(&bytes[..1], false), "a");
    }

    #[test]
    fn paths_resolve_inside_their_sandbox_only() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = dir.path().join("runs").join("c1");
        std::fs::create_dir_all(sandbox.join("sub")).unwrap();
        std::fs::write(sandbox.join("stdout"), "hello\n").unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), sandbox.join("out")).unwrap();
        let s = sandbox.display().to_string();
        let roots = BTreeMap::from([
            (s.clone(), sandbox.clone()),
            (
                "/frameworks/f/executors/e/runs/latest".into(),
                sandbox.clone(),
            ),
        ]);
        let real = std::fs::canonicalize(&sandbox).unwrap();
        assert_eq!(
            resolve(&roots, &format!("{s}/stdout")),
            Ok(Some(real.join("stdout")))
        );
        assert_eq!(
            resolve(&roots, &format!("{s}//./stdout/")),
            Ok(Some(real.join("stdout")))
        );
        assert_eq!(
            resolve(&roots, "/frameworks/f/executors/e/runs/latest/stdout"),
            Ok(Some(real.join("stdout")))
        );
        assert_eq!(resolve(&roots, &format!("{s}/missing")), Ok(None));
        assert_eq!(resolve(&roots, &format!("{s}/stdout/x")), Ok(None));
        assert_eq!(resolve(&roots, "/etc/passwd"), Ok(None));
        assert_eq!(resolve(&roots, "stdout"), Ok(None));
        for escape in [format!("{s}/../../secret"), format!("{s}/out")] {
            let Err(Refusal::BadRequest(text)) = resolve(&roots, &escape) else {
                panic!("{escape} must be refused");
            };
            assert!(text.ends_with("' is inaccessible.\n"), "{text}");
        }
    }

    #[test]
    fn listings_say_what_ls_says() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("stdout"), "12345").unwrap();
        let listed = list(dir.path(), "/v/");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["path"], "/v/stdout");
        assert_eq!(listed[0]["size"], 5);
        assert_eq!(listed[0]["nlink"], 1);
        assert!(listed[0]["mode"].as_str().unwrap().starts_with("-rw"));
        assert_eq!(listed[1]["path"], "/v/sub");
        assert!(listed[1]["mode"].as_str().unwrap().starts_with('d'));
        assert!(listed[1]["mtime"].as_f64().unwrap() > 0.0);
        assert!(listed[1]["uid"].is_string() && listed[1]["gid"].is_string());
        assert!(list(&dir.path().join("stdout"), "/v/stdout").is_empty());
    }
}
