//! What Baton proves to a master and what it trusts: the framework's
//! principal and secret (HTTP Basic on every call, as Mesos's `basic` HTTP
//! framework authenticator expects) and the roots that verify an `https://`
//! master's certificate (the system's plus `--mesos_ca_file`).
//!
//! The secret is read from its file at every SUBSCRIBE, so an operator who
//! fixes a wrong secret file sees Baton recover without a restart. It never
//! appears in logs or errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use reqwest::header::HeaderValue;

/// Why credentials or trust roots could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The secret file could not be read.
    #[error("cannot read --mesos_authentication_secret_file {path}: {reason}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// The OS's reason.
        reason: String,
    },
    /// The secret file is empty (after its trailing newline).
    #[error("--mesos_authentication_secret_file {0} is empty")]
    EmptySecret(PathBuf),
    /// A principal with a `:` cannot be sent with HTTP Basic.
    #[error("--mesos_authentication_principal must not contain ':'")]
    PrincipalWithColon,
    /// The CA file could not be read or holds no certificate.
    #[error("--mesos_ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// `--mesos_authentication_principal` and `--mesos_authentication_secret_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MesosCredentials {
    /// The principal (also set as `FrameworkInfo.principal`).
    pub principal: String,
    /// The file holding the secret; `None` sends the principal alone
    /// (for masters that authorize by principal without authenticating).
    pub secret_file: Option<PathBuf>,
}

impl MesosCredentials {
    /// The `Authorization` header, with the secret as the file holds it now
    /// (one trailing newline removed: `echo secret > file` is the norm).
    pub fn authorization(&self) -> Result<HeaderValue, AuthError> {
        if self.principal.contains(':') {
            return Err(AuthError::PrincipalWithColon);
        }
        let secret = match &self.secret_file {
            Some(path) => read_secret(path)?,
            None => String::new(),
        };
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{secret}", self.principal));
        let mut value = HeaderValue::from_str(&format!("Basic {token}"))
            .expect("base64 is a valid header value");
        value.set_sensitive(true);
        Ok(value)
    }
}

fn read_secret(path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuthError::SecretFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let secret = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(AuthError::EmptySecret(path.to_path_buf()));
    }
    Ok(secret.to_string())
}

/// The TLS client settings for `https://` masters: the system's roots plus
/// those in `ca_file` (PEM), verified with rustls on ring.
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, AuthError> {
    let roots = baton_probe::https::trust_roots(ca_file).map_err(|e| AuthError::CaFile {
        path: e.path,
        reason: e.reason,
    })?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(value: &HeaderValue) -> String {
        let token = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(token)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_secret_is_read_from_its_file_at_every_use_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "wrong\n").unwrap();
        let creds = MesosCredentials {
            principal: "baton".into(),
            secret_file: Some(path.clone()),
        };
        let first = creds.authorization().unwrap();
        assert!(first.is_sensitive(), "kept out of debug output");
        assert_eq!(decoded(&first), "baton:wrong");
        std::fs::write(&path, "right\r\n").unwrap();
        assert_eq!(decoded(&creds.authorization().unwrap()), "baton:right");
    }

    #[test]
    fn unreadable_or_empty_secret_files_are_errors_that_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let missing = MesosCredentials {
            principal: "baton".into(),
            secret_file: Some(dir.path().join("nope")),
        };
        let e = missing.authorization().unwrap_err().to_string();
        assert!(e.contains("--mesos_authentication_secret_file"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = MesosCredentials {
            principal: "baton".into(),
            secret_file: Some(empty),
        }
        .authorization()
        .unwrap_err();
        assert!(matches!(e, AuthError::EmptySecret(_)));
        let colon = MesosCredentials {
            principal: "a:b".into(),
            secret_file: None,
        };
        assert_eq!(colon.authorization(), Err(AuthError::PrincipalWithColon));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let e = tls_client_config(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("--mesos_ca_file") && e.contains("ca.pem"), "{e}");
        let e = tls_client_config(Some(&dir.path().join("missing.pem")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn a_generated_ca_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&path, cert.cert.pem()).unwrap();
        tls_client_config(Some(&path)).unwrap();
    }
}
