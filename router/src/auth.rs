//! Per-app HTTP basic authentication: `labels.BATON_AUTH_FILE` names a
//! credentials file, `labels.BATON_AUTH_REALM` the realm browsers show.
//!
//! The file is htpasswd-like, one `user:password` per line (split at the
//! first `:`, so passwords may contain colons; nothing is trimmed but the
//! line ending). Blank lines and lines starting with `#` are skipped. A
//! password is plain text, `{PLAIN}text`, or `{SHA256}` followed by the
//! base64 of the password's SHA-256 digest. Other hash schemes (`$apr1$`,
//! bcrypt `$2y$`, `{SHA}`, crypt `$1$`/`$5$`/`$6$`) are refused line by
//! line rather than taken for plain-text passwords. A bad line is logged by
//! number, never by content, and skipped; the others apply.
//!
//! The label's path should be absolute (a relative one is resolved
//! against the router's working directory). The file is read when a
//! table naming it is built and re-read when its
//! modification time, size or inode changes ([`CredentialFile::refresh`],
//! polled by `sync`); requests never touch the disk. A file that cannot
//! be read (missing, unreadable, too large) denies everyone: the gate
//! fails closed, never open.
//!
//! Secrets are compared in constant time: every password is kept as an
//! HMAC (process-random key) of its SHA-256 digest, and a candidate is
//! checked with [`ring::hmac::verify`], whose comparison is constant time;
//! an unknown user is checked against a dummy tag, so that the time taken
//! does not tell users apart. Passwords and `Authorization` headers are
//! never logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac};
use serde_json::{Value, json};
use tracing::{info, warn};

/// Credentials files larger than this are refused (denying everyone).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// `Authorization` values longer than this are refused without decoding.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// The realm when `BATON_AUTH_REALM` is not set.
pub const DEFAULT_REALM: &str = "Restricted";

/// Why a credentials file, one of its lines, or a request's credentials
/// are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    /// One line of the file is skipped.
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    /// The request's `Authorization` header is missing or malformed.
    #[error("{0}")]
    Malformed(&'static str),
}

/// The users of one credentials file, each password kept as an HMAC tag
/// of its SHA-256 digest.
pub struct Credentials {
    users: HashMap<Vec<u8>, hmac::Tag>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tags are derived from secrets: show how many, not what.
        f.debug_struct("Credentials")
            .field("users", &self.users.len())
            .finish()
    }
}

/// The process's HMAC key, random once per process (a fixed key if the
/// system has no randomness: the comparison stays constant time).
fn key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"baton-router"))
    })
}

fn sha256(bytes: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA256, bytes)
}

/// A tag that no candidate matches in practice: checked against for
/// unknown users so that they take as long as known ones.
fn dummy_tag() -> &'static hmac::Tag {
    static DUMMY: OnceLock<hmac::Tag> = OnceLock::new();
    DUMMY.get_or_init(|| hmac::sign(key(), &[0xa5; 32]))
}

/// Password prefixes of hash schemes this file format does not support.
const UNSUPPORTED_SCHEMES: [&str; 8] = [
    "$apr1$", "$2y$", "$2a$", "$2b$", "$1$", "$5$", "$6$", "{SHA}",
];

/// The SHA-256 digest a password field stands for.
fn password_digest(field: &str) -> Result<[u8; 32], &'static str> {
    if let Some(encoded) = field.strip_prefix("{SHA256}") {
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| "{SHA256} password is not valid base64")?;
        return bytes
            .try_into()
            .map_err(|_| "{SHA256} password is not a 32-byte digest");
    }
    if UNSUPPORTED_SCHEMES.iter().any(|s| field.starts_with(s)) {
        return Err("unsupported password hash scheme (use plain text or {SHA256})");
    }
    let plain = field.strip_prefix("{PLAIN}").unwrap_or(field);
    let mut out = [0u8; 32];
    out.copy_from_slice(sha256(plain.as_bytes()).as_ref());
    Ok(out)
}

impl Credentials {
    /// Parses a credentials file's text. Bad lines are returned as errors
    /// (by number) and skipped; a user listed twice keeps its last line.
    pub fn parse(text: &str) -> (Credentials, Vec<Error>) {
        let mut users = HashMap::new();
        let mut errors = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason| Error::Line {
                line: index + 1,
                reason,
            };
            let Some((user, password)) = line.split_once(':') else {
                errors.push(bad("no ':' between user and password"));
                continue;
            };
            if user.is_empty() {
                errors.push(bad("empty user name"));
                continue;
            }
            match password_digest(password) {
                Ok(digest) => {
                    users.insert(user.as_bytes().to_vec(), hmac::sign(key(), &digest));
                }
                Err(reason) => errors.push(bad(reason)),
            }
        }
        (Credentials { users }, errors)
    }

    /// How many users can log in.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no one can log in.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `user` exists and `password` is theirs, in constant time
    /// over the password (and about the same time for unknown users).
    pub fn verify(&self, user: &[u8], password: &[u8]) -> bool {
        let candidate = sha256(password);
        let (tag, known) = match self.users.get(user) {
            Some(tag) => (tag, true),
            None => (dummy_tag(), false),
        };
        let matches = hmac::verify(key(), candidate.as_ref(), tag.as_ref()).is_ok();
        matches && known
    }
}

/// The user name and password of an `Authorization: Basic` value.
/// Pure; every malformed value is an error, never a panic.
pub fn basic_credentials(value: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(Error::Malformed("Authorization header too long"));
    }
    let value = value.trim_ascii();
    let split = value
        .iter()
        .position(|b| *b == b' ')
        .ok_or(Error::Malformed("Authorization header has no credentials"))?;
    let (scheme, token) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(Error::Malformed("Authorization scheme is not Basic"));
    }
    let decoded = BASE64
        .decode(token.trim_ascii())
        .map_err(|_| Error::Malformed("Basic credentials are not valid base64"))?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or(Error::Malformed("Basic credentials have no ':'"))?;
    let password = decoded[colon + 1..].to_vec();
    let mut user = decoded;
    user.truncate(colon);
    Ok((user, password))
}

/// What a request for a gated app gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid credentials: proxy it (without its `Authorization`).
    Allow,
    /// 401 with a challenge; the reason is for debug logs only.
    Challenge(&'static str),
    /// The credentials file is not available: everyone is denied.
    Unavailable,
}

/// The verdict for a request with `authorization` (its header value, if
/// any) against the file's current state. Pure.
pub fn decide(state: &FileState, authorization: Option<&[u8]>) -> Verdict {
    let credentials = match state {
        FileState::Loaded { credentials, .. } => credentials,
        FileState::Unread | FileState::Failed { .. } => return Verdict::Unavailable,
    };
    let Some(value) = authorization else {
        return Verdict::Challenge("no credentials");
    };
    match basic_credentials(value) {
        Ok((user, password)) if credentials.verify(&user, &password) => Verdict::Allow,
        Ok(_) => Verdict::Challenge("unknown user or wrong password"),
        Err(Error::Malformed(reason)) => Verdict::Challenge(reason),
        Err(_) => Verdict::Challenge("malformed credentials"),
    }
}

/// The `WWW-Authenticate` value for `realm`: quotes and backslashes
/// escaped, control characters dropped (it comes from a label).
pub fn challenge(realm: &str) -> String {
    let mut escaped = String::with_capacity(realm.len() + 32);
    escaped.push_str("Basic realm=\"");
    for c in realm.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push_str("\", charset=\"UTF-8\"");
    escaped
}

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode: metadata.ino(),
        }
    }
}

/// A credentials file as last read.
#[derive(Debug)]
pub enum FileState {
    /// Not read yet (denies everyone).
    Unread,
    /// Read; `skipped` lines were not usable.
    Loaded {
        credentials: Credentials,
        skipped: usize,
        stamp: Stamp,
    },
    /// Not readable (denies everyone).
    Failed { error: Error, stamp: Option<Stamp> },
}

/// One app's credentials file: its path and what was last read from it.
/// Kept across table generations while the app names the same path.
#[derive(Debug)]
pub struct CredentialFile {
    path: PathBuf,
    state: RwLock<Arc<FileState>>,
}

impl CredentialFile {
    /// A file not read yet.
    pub fn new(path: impl Into<PathBuf>) -> CredentialFile {
        CredentialFile {
            path: path.into(),
            state: RwLock::new(Arc::new(FileState::Unread)),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was last read (per request: no disk access).
    pub fn current(&self) -> Arc<FileState> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, state: FileState) {
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
    }

    /// Reads the file again if it changed since it was last read (or was
    /// never read). Blocking file I/O: run it off the request path.
    /// Returns whether the state changed.
    pub fn refresh(&self) -> bool {
        let current = self.current();
        let path = &self.path;
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return self.fail(&current, None, read_error(path, &e)),
        };
        let stamp = Stamp::of(&metadata);
        let unchanged = match &*current {
            FileState::Loaded { stamp: s, .. } => *s == stamp,
            FileState::Failed { stamp: s, .. } => *s == Some(stamp),
            FileState::Unread => false,
        };
        if unchanged {
            return false;
        }
        if metadata.len() > MAX_FILE_BYTES {
            let error = Error::TooLarge { path: path.clone() };
            return self.fail(&current, Some(stamp), error);
        }
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return self.fail(&current, Some(stamp), read_error(path, &e)),
        };
        let (credentials, errors) = Credentials::parse(&text);
        for error in &errors {
            warn!(file = %path.display(), %error, "credentials file: line skipped");
        }
        info!(
            file = %path.display(),
            users = credentials.len(),
            skipped = errors.len(),
            "credentials file read"
        );
        self.set(FileState::Loaded {
            credentials,
            skipped: errors.len(),
            stamp,
        });
        true
    }

    /// Records a failure (logged when it differs from the last one).
    fn fail(&self, current: &FileState, stamp: Option<Stamp>, error: Error) -> bool {
        if let FileState::Failed {
            error: previous,
            stamp: s,
        } = current
            && *previous == error
            && *s == stamp
        {
            return false;
        }
        warn!(%error, "credentials file unusable: its app denies every request");
        self.set(FileState::Failed { error, stamp });
        true
    }

    /// The file's state as `/_router/table` shows it (no secrets).
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "file": self.path.display().to_string() });
        match &*self.current() {
            FileState::Unread => v["state"] = json!("unread"),
            FileState::Loaded {
                credentials,
                skipped,
                ..
            } => {
                v["state"] = json!("loaded");
                v["users"] = json!(credentials.len());
                v["skippedLines"] = json!(skipped);
            }
            FileState::Failed { error, .. } => {
                v["state"] = json!("failed");
                v["error"] = json!(error.to_string());
            }
        }
        v
    }
}

fn read_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// An app's basic-auth gate: the realm and the credentials file.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    /// Shown by browsers in the login prompt.
    pub realm: String,
    /// The users allowed in.
    pub file: Arc<CredentialFile>,
}

impl BasicAuth {
    /// As `/_router/table` shows it.
    pub fn to_json(&self) -> Value {
        let mut v = self.file.to_json();
        v["realm"] = json!(self.realm);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> Vec<u8> {
        format!("Basic {}", BASE64.encode(user_password)).into_bytes()
    }

    fn loaded(text: &str) -> FileState {
        let (credentials, _) = Credentials::parse(text);
        FileState::Loaded {
            credentials,
            skipped: 0,
            stamp: Stamp {
                modified: None,
                len: 0,
                inode: 0,
            },
        }
    }

    #[test]
    fn files_parse_plain_and_sha256_passwords_and_skip_bad_lines() {
        let sha = BASE64.encode(sha256(b"hashed secret").as_ref());
        let text = format!(
            "# users\r\nalice:wonder:land\r\n\nbob:{{SHA256}}{sha}\ncarol:{{PLAIN}}{{x}}\n\
             nocolon\n:nouser\ndave:$apr1$abc$def\neve:{{SHA256}}!!!\nfrank:{{SHA256}}YWJj\n"
        );
        let (credentials, errors) = Credentials::parse(&text);
        assert_eq!(credentials.len(), 3, "{credentials:?}");
        assert!(
            credentials.verify(b"alice", b"wonder:land"),
            "split at the first colon"
        );
        assert!(!credentials.verify(b"alice", b"wonder"));
        assert!(credentials.verify(b"bob", b"hashed secret"));
        assert!(
            !credentials.verify(b"bob", sha.as_bytes()),
            "the hash is not the password"
        );
        assert!(credentials.verify(b"carol", b"{x}"));
        assert!(
            !credentials.verify(b"dave", b"$apr1$abc$def"),
            "never taken as plain text"
        );
        assert!(!credentials.verify(b"mallory", b""));
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "line 6: no ':' between user and password",
                "line 7: empty user name",
                "line 8: unsupported password hash scheme (use plain text or {SHA256})",
                "line 9: {SHA256} password is not valid base64",
                "line 10: {SHA256} password is not a 32-byte digest",
            ]
        );
        assert!(
            !format!("{credentials:?}").contains("wonder"),
            "no secrets in Debug"
        );
    }

    #[test]
    fn basic_headers_parse_and_every_malformed_one_is_an_error() {
        assert_eq!(
            basic_credentials(&basic("u:p:q")).unwrap(),
            (b"u".to_vec(), b"p:q".to_vec())
        );
        assert_eq!(
            basic_credentials(format!("bAsIc   {}  ", BASE64.encode("u:")).as_bytes()).unwrap(),
            (b"u".to_vec(), Vec::new())
        );
        let malformed = |value: &[u8]| match basic_credentials(value) {
            Err(Error::Malformed(reason)) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            malformed(b"Bearer abc"),
            "Authorization scheme is not Basic"
        );
        assert_eq!(
            malformed(b"Basic"),
            "Authorization header has no credentials"
        );
        assert_eq!(malformed(b""), "Authorization header has no credentials");
        assert_eq!(
            malformed(b"Basic %%%"),
            "Basic credentials are not valid base64"
        );
        let no_colon = format!("Basic {}", BASE64.encode("justuser"));
        assert_eq!(
            malformed(no_colon.as_bytes()),
            "Basic credentials have no ':'"
        );
        let huge = basic(&format!("u:{}", "x".repeat(MAX_AUTHORIZATION_BYTES)));
        assert_eq!(malformed(&huge), "Authorization header too long");
        assert_eq!(
            malformed(&[b'B', b'a', b's', b'i', b'c', b' ', 0xff, 0xfe]),
            "Basic credentials are not valid base64"
        );
    }

    #[test]
    fn decisions_allow_only_valid_credentials_and_fail_closed() {
        let state = loaded("alice:secret\n");
        assert_eq!(decide(&state, Some(&basic("alice:secret"))), Verdict::Allow);
        assert_eq!(decide(&state, None), Verdict::Challenge("no credentials"));
        assert_eq!(
            decide(&state, Some(&basic("alice:wrong"))),
            Verdict::Challenge("unknown user or wrong password")
        );
        assert_eq!(
            decide(&state, Some(&basic("bob:secret"))),
            Verdict::Challenge("unknown user or wrong password")
        );
        assert_eq!(
            decide(&state, Some(b"Digest x")),
            Verdict::Challenge("Authorization scheme is not Basic")
        );
        // No file read, or a file that cannot be read: nobody gets in.
        assert_eq!(
            decide(&FileState::Unread, Some(&basic("alice:secret"))),
            Verdict::Unavailable
        );
        let failed = FileState::Failed {
            error: Error::Malformed("x"),
            stamp: None,
        };
        assert_eq!(
            decide(&failed, Some(&basic("alice:secret"))),
            Verdict::Unavailable
        );
        // An empty file lets no one in.
        assert_eq!(
            decide(&loaded("# nobody\n"), Some(&basic(":"))),
            Verdict::Challenge("unknown user or wrong password")
        );
    }

    #[test]
    fn challenges_quote_the_realm() {
        assert_eq!(challenge("Web"), "Basic realm=\"Web\", charset=\"UTF-8\"");
        assert_eq!(
            challenge("a \"b\" \\ c\r\n"),
            "Basic realm=\"a \\\"b\\\" \\\\ c\", charset=\"UTF-8\""
        );
    }

    #[test]
    fn a_file_is_reread_only_when_it_changes_and_a_missing_one_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let file = CredentialFile::new(&path);
        assert!(matches!(*file.current(), FileState::Unread));
        assert!(file.refresh(), "missing: failed");
        assert!(matches!(*file.current(), FileState::Failed { .. }));
        assert!(!file.refresh(), "still missing: unchanged");

        std::fs::write(&path, "alice:one\n").unwrap();
        assert!(file.refresh());
        assert_eq!(
            decide(&file.current(), Some(&basic("alice:one"))),
            Verdict::Allow
        );
        assert!(!file.refresh(), "same file: not read again");

        // Replaced (new inode, other size): read again.
        let next = dir.path().join("users.new");
        std::fs::write(&next, "alice:second\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(file.refresh());
        assert_eq!(
            decide(&file.current(), Some(&basic("alice:second"))),
            Verdict::Allow
        );
        assert_eq!(file.to_json()["users"], 1);

        std::fs::remove_file(&path).unwrap();
        assert!(file.refresh());
        assert_eq!(
            decide(&file.current(), Some(&basic("alice:second"))),
            Verdict::Unavailable
        );
        assert_eq!(file.to_json()["state"], "failed");
    }
}
