//! TLS termination: the certificates served on `--tls-listen`, chosen per
//! handshake by the client's SNI, and reloaded without dropping
//! connections.
//!
//! Where certificates come from:
//!
//! - `--tls-cert-dir`: one certificate per file stem. `<name>.crt` (or
//!   `<name>.pem`) holds the chain in PEM, leaf first; the private key (PEM:
//!   PKCS#8, PKCS#1 or SEC1) is `<name>.key`, or else in that same file.
//!   The stem only pairs files: the host names served are the leaf
//!   certificate's DNS subjectAltNames, wildcards (`*.example.com`)
//!   included. Hidden entries (`.x`, as Kubernetes' `..data`) and other
//!   extensions are ignored; symbolic links are followed.
//! - `--tls-default-cert` (with `--tls-default-key`, or the key in the
//!   same file): served when the SNI matches nothing or is absent. Without
//!   one such handshakes fail.
//!
//! Selection ([`NameIndex::select`], pure): the exact name first, then a
//! wildcard covering exactly one label (`*.example.com` serves
//! `a.example.com`, neither `example.com` nor `a.b.example.com`, as RFC
//! 6125 says), then the default. Names compare case-insensitively; when
//! two files claim a name, the first file by name keeps it (logged).
//!
//! Reloading ([`Certificates::reload`]): on SIGHUP (the binary) and when
//! the files' modification times, sizes or inodes change ([`watch`]
//! polls every `--tls-reload-interval`). The new set is built aside and
//! swapped in whole: handshakes under way and open connections keep what
//! they had, new handshakes get the new set. A file that does not load
//! (bad PEM, no key, a key that does not fit, no DNS names, too large) is
//! logged with its path and reason and skipped; if that file loaded
//! before, its previous certificate stays (a half-written pair never
//! takes a host offline). A directory that cannot be listed keeps the
//! whole previous set. Only a bad default at startup is fatal.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Certificate and key files larger than this are refused.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Entries of the certificate directory looked at, at most (the poll
/// stats each one).
pub const MAX_DIR_ENTRIES: usize = 4096;

/// Why certificates cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TLS was asked for with nothing to serve.
    #[error("TLS needs a certificate directory or a default certificate")]
    NothingToServe,
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The certificate directory cannot be listed.
    #[error("cannot list {path}: {source}")]
    ListDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    /// The PEM certificates cannot be decoded.
    #[error("{path}: bad PEM certificate: {reason}")]
    Pem { path: PathBuf, reason: String },
    /// No `CERTIFICATE` block.
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    /// No private key block (or one that cannot be decoded; its details
    /// are not shown, being the key's).
    #[error("{path}: no readable PEM private key in it")]
    NoKey { path: PathBuf },
    /// A `.key` without a certificate next to it.
    #[error("{path}: a key without a certificate (<name>.crt or <name>.pem)")]
    OrphanKey { path: PathBuf },
    /// The key is not supported or does not fit the certificate.
    #[error("{path}: the private key is unusable: {reason}")]
    Key { path: PathBuf, reason: String },
    /// The leaf certificate cannot be parsed.
    #[error("{path}: the certificate cannot be parsed: {reason}")]
    Certificate { path: PathBuf, reason: String },
    /// The leaf certificate names no DNS host.
    #[error("{path}: the certificate has no DNS name in its subjectAltName")]
    NoNames { path: PathBuf },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where certificates come from, and how often to look for changes.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Per-vhost certificates (see the module's header).
    pub cert_dir: Option<PathBuf>,
    /// Served when the SNI matches nothing or is absent.
    pub default_cert: Option<PathBuf>,
    /// The default certificate's key (else in `default_cert` itself).
    pub default_key: Option<PathBuf>,
    /// How often files are checked for changes (zero: only on reload).
    pub reload_interval: Duration,
}

/// Host names → values (certificates): exact names, one-label wildcards,
/// and a default. Pure; generic so that it is tested without keys.
#[derive(Debug, Clone)]
pub struct NameIndex<T> {
    exact: HashMap<String, T>,
    /// By the wildcard's parent: `*.example.com` under `example.com`.
    wildcard: HashMap<String, T>,
    default: Option<T>,
}

impl<T> NameIndex<T> {
    /// An index serving `default` for every name until names are added.
    pub fn new(default: Option<T>) -> NameIndex<T> {
        NameIndex {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
        }
    }

    /// Adds `name` (`*.parent` for a wildcard). The first value added
    /// for a name keeps it: `false` when the name was taken.
    pub fn insert(&mut self, name: &str, value: T) -> bool {
        let name = normalize(name);
        let (map, key) = match name.strip_prefix("*.") {
            Some(parent) => (&mut self.wildcard, parent.to_string()),
            None => (&mut self.exact, name),
        };
        match map.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
                true
            }
        }
    }

    /// The value for a handshake's SNI: exact, wildcard, default.
    pub fn select(&self, sni: Option<&str>) -> Option<&T> {
        let Some(name) = sni.map(normalize).filter(|n| !n.is_empty()) else {
            return self.default.as_ref();
        };
        self.exact
            .get(&name)
            .or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
            .or(self.default.as_ref())
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// One loaded certificate: where from, the names it serves, the key.
#[derive(Debug)]
struct Entry {
    file: PathBuf,
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// The certificates served, built whole and swapped whole.
#[derive(Debug)]
struct CertSet {
    /// By file stem.
    entries: BTreeMap<String, Arc<Entry>>,
    default: Option<Arc<Entry>>,
    index: NameIndex<Arc<CertifiedKey>>,
}

impl CertSet {
    fn new(entries: BTreeMap<String, Arc<Entry>>, default: Option<Arc<Entry>>) -> CertSet {
        let mut index = NameIndex::new(default.as_ref().map(|d| d.key.clone()));
        for entry in entries.values() {
            for name in &entry.names {
                if !index.insert(name, entry.key.clone()) {
                    warn!(
                        file = %entry.file.display(),
                        name,
                        "TLS: another certificate file already serves this name; this one does not"
                    );
                }
            }
        }
        CertSet {
            entries,
            default,
            index,
        }
    }
}

/// What a (re)load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Certificate files served from the directory.
    pub certificates: usize,
    /// Every name served, sorted.
    pub names: Vec<String>,
    /// Whether a default certificate is served.
    pub default: bool,
    /// The files that did not load, with why.
    pub problems: Vec<String>,
}

/// The certificates served, and the rustls resolver choosing among them
/// per handshake. Shared between the listener and whatever reloads it.
#[derive(Debug)]
pub struct Certificates {
    settings: Settings,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertSet>>,
    /// Held while reloading (one at a time); the files' stamps as the
    /// last reload found them, taken before it read them.
    stamps: Mutex<Stamps>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current();
        let chosen = set.index.select(hello.server_name()).cloned();
        if chosen.is_none() {
            debug!(sni = ?hello.server_name(), "TLS: no certificate for this name and no default");
        }
        chosen
    }
}

impl Certificates {
    /// Loads the certificates (blocking file I/O). Fails when there is
    /// nothing to serve, the default does not load, or the directory
    /// cannot be listed; a bad file in the directory is logged and
    /// skipped.
    pub fn load(settings: Settings) -> Result<Arc<Certificates>, Error> {
        if settings.cert_dir.is_none() && settings.default_cert.is_none() {
            return Err(Error::NothingToServe);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = stamps(&settings);
        let default = load_default(&settings, &provider)?;
        let mut problems = Vec::new();
        let mut entries = BTreeMap::new();
        if let Some(dir) = &settings.cert_dir {
            for (stem, loaded) in load_dir(dir, &provider)? {
                match loaded {
                    Ok(entry) => {
                        entries.insert(stem, Arc::new(entry));
                    }
                    Err(error) => {
                        warn!(%error, "TLS: certificate file skipped");
                        problems.push(error.to_string());
                    }
                }
            }
        }
        let certificates = Certificates {
            current: RwLock::new(Arc::new(CertSet::new(entries, default))),
            settings,
            provider,
            stamps: Mutex::new(stamps),
        };
        let summary = certificates.summary(problems);
        info!(
            certificates = summary.certificates,
            names = ?summary.names,
            default = summary.default,
            "TLS certificates loaded"
        );
        Ok(Arc::new(certificates))
    }

    fn current(&self) -> Arc<CertSet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn summary(&self, problems: Vec<String>) -> Summary {
        let set = self.current();
        let mut names: Vec<String> = set
            .entries
            .values()
            .flat_map(|e| e.names.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        Summary {
            certificates: set.entries.len(),
            names,
            default: set.default.is_some(),
            problems,
        }
    }

    /// Reads every file again and swaps the new set in (blocking file
    /// I/O). Never fails: what does not load is logged and its previous
    /// version, if any, kept.
    pub fn reload(&self) -> Summary {
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        self.reload_locked(&mut stamps)
    }

    /// [`Certificates::reload`] when a file changed since the last one;
    /// `None` when none did.
    pub fn reload_if_changed(&self) -> Option<Summary> {
        let mut last = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        if *last == stamps(&self.settings) {
            return None;
        }
        Some(self.reload_locked(&mut last))
    }

    fn reload_locked(&self, last: &mut Stamps) -> Summary {
        // Stamped before reading: a change during the read shows at the
        // next poll.
        *last = stamps(&self.settings);
        let previous = self.current();
        let mut problems = Vec::new();
        let mut problem = |error: &Error, kept: bool| {
            warn!(%error, kept_previous = kept, "TLS: certificate file skipped");
            problems.push(error.to_string());
        };
        let default = match load_default(&self.settings, &self.provider) {
            Ok(default) => default,
            Err(error) => {
                problem(&error, previous.default.is_some());
                previous.default.clone()
            }
        };
        let entries = match &self.settings.cert_dir {
            None => BTreeMap::new(),
            Some(dir) => match load_dir(dir, &self.provider) {
                Err(error) => {
                    problem(&error, true);
                    previous.entries.clone()
                }
                Ok(loaded) => {
                    let mut entries = BTreeMap::new();
                    for (stem, result) in loaded {
                        match result {
                            Ok(entry) => {
                                entries.insert(stem, Arc::new(entry));
                            }
                            Err(error) => {
                                let before = previous.entries.get(&stem);
                                problem(&error, before.is_some());
                                if let Some(before) = before {
                                    entries.insert(stem, before.clone());
                                }
                            }
                        }
                    }
                    entries
                }
            },
        };
        let next = Arc::new(CertSet::new(entries, default));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        let summary = self.summary(problems);
        info!(
            certificates = summary.certificates,
            names = ?summary.names,
            default = summary.default,
            skipped = summary.problems.len(),
            "TLS certificates reloaded"
        );
        summary
    }

    /// A rustls server configuration choosing among these certificates,
    /// offering by ALPN `h2` (when `http2`) and `http/1.1`.
    pub fn server_config(self: &Arc<Self>, http2: bool) -> Result<Arc<ServerConfig>, Error> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Arc::new(config))
    }
}

/// Reloads `certificates` whenever their files change, every
/// `reload_interval`, until `stop`.
pub async fn watch(certificates: Arc<Certificates>, stop: CancellationToken) {
    let interval = certificates.settings.reload_interval;
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
        let certificates = certificates.clone();
        let _ = tokio::task::spawn_blocking(move || certificates.reload_if_changed()).await;
    }
}

/// What identifies the files' versions: path → (mtime, size, inode).
type Stamps = Vec<(PathBuf, Option<(Option<SystemTime>, u64, u64)>)>;

fn stamp(path: &Path) -> Option<(Option<SystemTime>, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len(), m.ino()))
}

/// The stamps of every file that a load would read.
fn stamps(settings: &Settings) -> Stamps {
    let mut out: Stamps = Vec::new();
    for path in [&settings.default_cert, &settings.default_key]
        .into_iter()
        .flatten()
    {
        out.push((path.clone(), stamp(path)));
    }
    if let Some(dir) = &settings.cert_dir {
        match list_dir(dir) {
            Ok(files) => out.extend(files.into_iter().map(|p| {
                let s = stamp(&p);
                (p, s)
            })),
            Err(_) => out.push((dir.clone(), None)),
        }
    }
    out
}

/// The directory's certificate and key files (`.crt`, `.pem`, `.key`;
/// not hidden; regular files, links followed), sorted, at most
/// [`MAX_DIR_ENTRIES`].
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let list_error = |source| Error::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for (seen, entry) in std::fs::read_dir(dir).map_err(list_error)?.enumerate() {
        if seen == MAX_DIR_ENTRIES {
            warn!(dir = %dir.display(), max = MAX_DIR_ENTRIES, "TLS: too many files; the rest are ignored");
            break;
        }
        let path = entry.map_err(list_error)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let wanted = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("crt" | "pem" | "key")
        );
        if name.starts_with('.') || !wanted || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// One file stem's certificate, or why it did not load.
type Loaded = Result<Entry, Error>;

/// The certificate (and key) of each stem in `dir`, loaded; keys alone
/// are errors.
fn load_dir(dir: &Path, provider: &CryptoProvider) -> Result<Vec<(String, Loaded)>, Error> {
    #[derive(Default)]
    struct Files {
        crt: Option<PathBuf>,
        pem: Option<PathBuf>,
        key: Option<PathBuf>,
    }
    let mut stems: BTreeMap<String, Files> = BTreeMap::new();
    for path in list_dir(dir)? {
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        let files = stems.entry(stem.to_string()).or_default();
        match ext {
            "crt" => files.crt = Some(path),
            "pem" => files.pem = Some(path),
            _ => files.key = Some(path),
        }
    }
    Ok(stems
        .into_iter()
        .map(|(stem, files)| {
            let loaded = match (files.crt.or(files.pem), files.key) {
                (Some(cert), key) => {
                    let key = key.unwrap_or_else(|| cert.clone());
                    load_pair(&cert, &key, provider, true)
                }
                (None, Some(key)) => Err(Error::OrphanKey { path: key }),
                (None, None) => unreachable!("a stem comes from a file"),
            };
            (stem, loaded)
        })
        .collect())
}

fn load_default(
    settings: &Settings,
    provider: &CryptoProvider,
) -> Result<Option<Arc<Entry>>, Error> {
    let Some(cert) = &settings.default_cert else {
        return Ok(None);
    };
    let key = settings.default_key.as_ref().unwrap_or(cert);
    load_pair(cert, key, provider, false).map(|entry| Some(Arc::new(entry)))
}

fn read_limited(path: &Path) -> Result<Vec<u8>, Error> {
    let read_error = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
        });
    }
    std::fs::read(path).map_err(read_error)
}

/// One certificate chain and its key, checked to fit together, with the
/// names the leaf serves (which only the default may lack).
fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    names_required: bool,
) -> Result<Entry, Error> {
    let pem = read_limited(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(Error::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    };
    let names = dns_names(leaf).map_err(|reason| Error::Certificate {
        path: cert_path.to_path_buf(),
        reason,
    })?;
    if names.is_empty() && names_required {
        return Err(Error::NoNames {
            path: cert_path.to_path_buf(),
        });
    }
    let key_pem = if key_path == cert_path {
        pem
    } else {
        read_limited(key_path)?
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| Error::NoKey {
        path: key_path.to_path_buf(),
    })?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| Error::Key {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(Entry {
        file: cert_path.to_path_buf(),
        names,
        key: Arc::new(key),
    })
}

/// The leaf's DNS subjectAltNames (wildcards included), lower case.
fn dns_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let parsed = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = parsed.valid_dns_names().map(normalize).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_picks_the_exact_name_then_one_label_wildcards_then_the_default() {
        let mut index = NameIndex::new(Some("default"));
        assert!(index.insert("a.example.com", "a"));
        assert!(index.insert("*.example.com", "wild"));
        assert!(index.insert("B.Example.com", "b"));
        assert!(
            !index.insert("a.example.com", "again"),
            "the first keeps it"
        );
        let pick = |sni: Option<&str>| index.select(sni).copied();
        assert_eq!(pick(Some("a.example.com")), Some("a"));
        assert_eq!(pick(Some("A.EXAMPLE.COM.")), Some("a"));
        assert_eq!(pick(Some("b.example.com")), Some("b"));
        assert_eq!(pick(Some("c.example.com")), Some("wild"));
        assert_eq!(
            pick(Some("x.c.example.com")),
            Some("default"),
            "one label only"
        );
        assert_eq!(pick(Some("example.com")), Some("default"));
        assert_eq!(pick(Some("other.test")), Some("default"));
        assert_eq!(pick(None), Some("default"));
        assert_eq!(pick(Some("")), Some("default"));
        let bare: NameIndex<&str> = NameIndex::new(None);
        assert_eq!(bare.select(Some("a.example.com")), None);
        assert_eq!(bare.select(None), None);
    }

    fn write_pair(dir: &Path, stem: &str, names: &[&str]) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{stem}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }

    #[test]
    fn a_directory_loads_by_san_skips_bad_files_and_keeps_what_loaded_before() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "a", &["a.example.com", "*.wild.example.com"]);
        write_pair(dir.path(), "b", &["B.example.com"]);
        std::fs::write(dir.path().join("garbage.pem"), "not a certificate").unwrap();
        std::fs::write(dir.path().join("lonely.key"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden.crt"), "x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let settings = Settings {
            cert_dir: Some(dir.path().to_path_buf()),
            ..Settings::default()
        };
        let certs = Certificates::load(settings).unwrap();
        let summary = certs.reload();
        assert_eq!(summary.certificates, 2, "{summary:?}");
        assert_eq!(
            summary.names,
            ["*.wild.example.com", "a.example.com", "b.example.com"]
        );
        assert_eq!(summary.problems.len(), 2, "{summary:?}");
        assert!(summary.problems[0].contains("garbage.pem: no PEM certificate"));
        assert!(summary.problems[1].contains("lonely.key: a key without a certificate"));
        assert!(certs.reload_if_changed().is_none(), "nothing changed");

        // b's key replaced by one that does not fit: b keeps its old pair.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("b.key"), other.serialize_pem()).unwrap();
        let summary = certs.reload_if_changed().expect("a file changed");
        assert_eq!(summary.certificates, 2, "{summary:?}");
        assert!(summary.names.contains(&"b.example.com".to_string()));
        assert!(
            summary
                .problems
                .iter()
                .any(|p| p.contains("b.key: the private key is unusable")),
            "{summary:?}"
        );
        // A file removed is no longer served.
        std::fs::remove_file(dir.path().join("a.crt")).unwrap();
        std::fs::remove_file(dir.path().join("a.key")).unwrap();
        let summary = certs.reload_if_changed().unwrap();
        assert_eq!(summary.names, ["b.example.com"]);
    }

    #[test]
    fn nothing_to_serve_and_a_bad_default_fail_at_startup() {
        assert!(matches!(
            Certificates::load(Settings::default()),
            Err(Error::NothingToServe)
        ));
        let dir = tempfile::tempdir().unwrap();
        let missing = Settings {
            default_cert: Some(dir.path().join("none.pem")),
            ..Settings::default()
        };
        let error = Certificates::load(missing).unwrap_err().to_string();
        assert!(error.contains("none.pem"), "{error}");
        // Without subjectAltNames a certificate in the directory serves
        // nothing; as the default (one file, key included) it is fine.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let combined = dir.path().join("nameless.pem");
        std::fs::write(&combined, cert.pem() + &key.serialize_pem()).unwrap();
        let with_default = Settings {
            cert_dir: Some(dir.path().to_path_buf()),
            default_cert: Some(combined),
            ..Settings::default()
        };
        let summary = Certificates::load(with_default).unwrap().reload();
        assert!(summary.default, "{summary:?}");
        assert_eq!(summary.certificates, 0, "{summary:?}");
        assert!(summary.problems[0].contains("no DNS name"), "{summary:?}");
    }
}
