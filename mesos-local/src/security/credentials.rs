//! `--credentials`: the principals and secrets HTTP Basic authentication is
//! checked against, and the check itself, decided as libprocess's `basic`
//! authenticator decides it (`3rdparty/libprocess/src/authenticator.cpp`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::hmac;

/// The longest `Authorization` header looked at: a longer one cannot hold
/// credentials anyone configured and is refused without decoding it.
const MAX_AUTHORIZATION: usize = 8 * 1024;

/// A credentials file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read credentials file '{path}': {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is JSON (it starts with `{`) but not Mesos's `Credentials`.
    #[error("invalid credentials JSON: {0}")]
    Json(String),
    /// A line of the text format is not `principal secret`.
    #[error("line {0}: expected 'principal secret'")]
    Line(usize),
    /// Nothing to authenticate against: every request would be refused.
    #[error("no credentials")]
    Empty,
    /// One of the above, in this file.
    #[error("credentials file '{path}': {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<CredentialsError>,
    },
}

/// Principals and their secrets. Only an HMAC of each secret, under a key
/// made at random when the credentials are loaded, is kept: no secret can
/// end up in a log, a `Debug` print or a core dump, and checking one is
/// `hmac::verify`, which compares in constant time whatever the lengths.
#[derive(Clone)]
pub struct Credentials {
    key: hmac::Key,
    tags: HashMap<String, hmac::Tag>,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials::new(std::iter::empty::<(String, String)>())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut principals: Vec<&str> = self.tags.keys().map(String::as_str).collect();
        principals.sort_unstable();
        f.debug_struct("Credentials")
            .field("principals", &principals)
            .finish_non_exhaustive()
    }
}

/// Mesos's `Credentials` message as JSON.
#[derive(serde::Deserialize)]
struct JsonCredentials {
    credentials: Vec<JsonCredential>,
}

#[derive(serde::Deserialize)]
struct JsonCredential {
    principal: String,
    #[serde(default)]
    secret: String,
}

impl Credentials {
    /// Credentials from `(principal, secret)` pairs; a principal given twice
    /// keeps its last secret, as Mesos's map of them does.
    pub fn new<P, S>(pairs: impl IntoIterator<Item = (P, S)>) -> Credentials
    where
        P: Into<String>,
        S: AsRef<[u8]>,
    {
        let rng = ring::rand::SystemRandom::new();
        // Only fails if the OS has no randomness, and then nothing works.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .expect("the system random number generator works");
        let tags = pairs
            .into_iter()
            .map(|(p, s)| (p.into(), hmac::sign(&key, s.as_ref())))
            .collect();
        Credentials { key, tags }
    }

    /// Parses a credentials file's text: Mesos's JSON
    /// (`{"credentials":[{"principal":"p","secret":"s"}]}`) when it starts
    /// with `{`, else the older text format, one `principal secret` a line
    /// (blank lines skipped).
    pub fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        let pairs: Vec<(String, String)> = if text.trim_start().starts_with('{') {
            let parsed: JsonCredentials =
                serde_json::from_str(text).map_err(|e| CredentialsError::Json(e.to_string()))?;
            parsed
                .credentials
                .into_iter()
                .map(|c| (c.principal, c.secret))
                .collect()
        } else {
            let mut pairs = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    [] => {}
                    [p, s] => pairs.push((p.to_string(), s.to_string())),
                    _ => return Err(CredentialsError::Line(i + 1)),
                }
            }
            pairs
        };
        if pairs.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Ok(Credentials::new(pairs))
    }

    /// Reads and parses a credentials file (`file://` prefix allowed, as
    /// Mesos's flag parsing allows it).
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let path = strip_file_scheme(path);
        let text = std::fs::read_to_string(&path).map_err(|source| CredentialsError::Read {
            path: path.clone(),
            source,
        })?;
        Credentials::parse(&text).map_err(|e| CredentialsError::InFile {
            path,
            source: Box::new(e),
        })
    }

    /// Whether there is no principal at all.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The principal an `Authorization` header proves, or `None` (answered
    /// with 401). As libprocess: exactly `Basic <base64>` (one space, scheme
    /// case-sensitive), decoding to exactly one `principal:secret` pair, so
    /// a secret containing `:` never authenticates there either.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Option<String> {
        let header = authorization.filter(|h| h.len() <= MAX_AUTHORIZATION)?;
        let header = std::str::from_utf8(header).ok()?;
        let mut parts = header.split(' ');
        let (Some("Basic"), Some(encoded), None) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let mut fields = decoded.split(|&b| b == b':');
        let (Some(principal), Some(secret), None) = (fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let principal = std::str::from_utf8(principal).ok()?;
        let tag = self.tags.get(principal)?;
        hmac::verify(&self.key, secret, tag.as_ref()).ok()?;
        Some(principal.to_string())
    }
}

/// `file:///etc/x` → `/etc/x`; anything else unchanged.
pub(crate) fn strip_file_scheme(path: &Path) -> PathBuf {
    match path.to_str().and_then(|s| s.strip_prefix("file://")) {
        Some(rest) => PathBuf::from(rest),
        None => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(userpass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(userpass)
        )
    }

    #[test]
    fn credentials_file_parses_json_and_text_formats() {
        let json = Credentials::parse(
            r#"{"credentials":[{"principal":"baton","secret":"s3"},{"principal":"ops","secret":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(
            json.authenticate(Some(basic("baton:s3").as_bytes())),
            Some("baton".into())
        );
        assert_eq!(
            json.authenticate(Some(basic("ops:x").as_bytes())),
            Some("ops".into())
        );
        let text = Credentials::parse("baton s3\n\n  ops   x  \n").unwrap();
        assert_eq!(
            text.authenticate(Some(basic("ops:x").as_bytes())),
            Some("ops".into())
        );
        // The last secret of a principal given twice wins.
        let twice = Credentials::parse("a 1\na 2\n").unwrap();
        assert_eq!(twice.authenticate(Some(basic("a:1").as_bytes())), None);
        assert_eq!(
            twice.authenticate(Some(basic("a:2").as_bytes())),
            Some("a".into())
        );
    }

    #[test]
    fn bad_credentials_files_are_errors() {
        assert!(matches!(
            Credentials::parse(r#"{"credentials":[{"secret":"s"}]}"#),
            Err(CredentialsError::Json(m)) if m.contains("principal")
        ));
        assert!(matches!(
            Credentials::parse("{not json"),
            Err(CredentialsError::Json(_))
        ));
        assert!(matches!(
            Credentials::parse("a b\nonly-a-principal\n"),
            Err(CredentialsError::Line(2))
        ));
        assert!(matches!(
            Credentials::parse("a b c"),
            Err(CredentialsError::Line(1))
        ));
        assert!(matches!(
            Credentials::parse(" \n"),
            Err(CredentialsError::Empty)
        ));
        assert!(matches!(
            Credentials::parse(r#"{"credentials":[]}"#),
            Err(CredentialsError::Empty)
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "x").unwrap();
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("line 1"),
            "{err}"
        );
        let missing = dir.path().join("missing");
        let err = Credentials::load(&missing).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::write(&path, "p s").unwrap();
        let url = PathBuf::from(format!("file://{}", path.display()));
        assert!(Credentials::load(&url).is_ok());
    }

    #[test]
    fn malformed_authorization_headers_authenticate_nobody() {
        let c = Credentials::new([("p", "s"), ("q", "")]);
        assert_eq!(
            c.authenticate(Some(basic("p:s").as_bytes())),
            Some("p".into())
        );
        assert_eq!(
            c.authenticate(Some(basic("q:").as_bytes())),
            Some("q".into())
        );
        let huge = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION));
        for bad in [
            None,
            Some(basic("p:wrong")),
            Some(basic("p:s:extra")),
            Some(basic("nobody:s")),
            Some(basic("p")),
            Some(basic("p:s").replace("Basic", "basic")),
            Some(basic("p:s").replace("Basic ", "Basic  ")),
            Some(basic("p:s").replace("Basic", "Bearer")),
            Some("Basic !!!not-base64!!!".into()),
            Some("Basic".into()),
            Some(String::new()),
            Some(huge),
        ] {
            assert_eq!(
                c.authenticate(bad.as_deref().map(str::as_bytes)),
                None,
                "{bad:?}"
            );
        }
        assert_eq!(c.authenticate(Some(b"Basic \xff\xfe")), None);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let c = Credentials::new([("p", "hunter2")]);
        let shown = format!("{c:?}");
        assert!(shown.contains('p') && !shown.contains("hunter2"), "{shown}");
    }
}
