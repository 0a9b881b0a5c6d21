//! The master's security, as an Apache Mesos 1.12 master has it with
//! `--authenticate_http_frameworks --http_framework_authenticators=basic
//! --authenticate_http_readwrite --authenticate_http_readonly
//! --credentials --acls` and `LIBPROCESS_SSL_*`:
//!
//! - [`credentials`]: HTTP Basic authentication against `--credentials`.
//! - [`acl`]: `--acls` — `register_frameworks`, `register_agents`,
//!   `run_tasks` and the `view_*` kinds — and their pure decisions.
//! - [`tls`]: https for the master's endpoints.
//!
//! Off by default ([`crate::ClusterConfig::security`] is `None`). Only the
//! master is secured: the agents' executor API (`/api/v1/executor` on
//! `127.0.0.<i>`) stays plain, unauthenticated HTTP, reachable only from
//! this machine, so `baton-executor` needs no certificate or credential.

pub mod acl;
pub mod credentials;
pub mod tls;

pub use acl::Acls;
pub use credentials::Credentials;
pub use tls::TlsConfig;

/// Authentication, authorization and TLS of the master.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// `--authenticate_http_frameworks`: every `/api/v1/scheduler` request
    /// must carry HTTP Basic credentials from [`Self::credentials`].
    pub authenticate_http_frameworks: bool,
    /// `--authenticate_http_readwrite`: so must requests to the read-write
    /// endpoints (`/master/teardown`).
    pub authenticate_http_readwrite: bool,
    /// `--authenticate_http_readonly`: so must requests to the read-only
    /// endpoints (`/master/state` and its aliases). `/health` and
    /// `/redirect` are always open, as in Mesos.
    pub authenticate_http_readonly: bool,
    /// `--credentials`: who may authenticate.
    pub credentials: Credentials,
    /// `--acls`: who may register frameworks with which roles, register
    /// agents, run tasks as which users, and see what in `/master/state`;
    /// `None` authorizes everything (no authorizer).
    pub acls: Option<Acls>,
    /// TLS for the master's API; `None` is plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// The authentication realms of Mesos's master endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// `/api/v1/scheduler`.
    Scheduler,
    /// `/master/state` and the other read-only endpoints.
    ReadOnly,
    /// `/master/teardown` and the other read-write endpoints.
    ReadWrite,
}

impl Realm {
    /// The realm's name, sent in `WWW-Authenticate: Basic realm="..."`
    /// (Mesos's `src/master/constants.hpp`).
    pub fn name(self) -> &'static str {
        match self {
            Realm::Scheduler => "mesos-master-scheduler",
            Realm::ReadOnly => "mesos-master-readonly",
            Realm::ReadWrite => "mesos-master-readwrite",
        }
    }
}

impl SecurityConfig {
    /// Whether requests in `realm` must authenticate.
    pub fn requires_authentication(&self, realm: Realm) -> bool {
        match realm {
            Realm::Scheduler => self.authenticate_http_frameworks,
            Realm::ReadOnly => self.authenticate_http_readonly,
            Realm::ReadWrite => self.authenticate_http_readwrite,
        }
    }

    /// Whether any realm needs credentials.
    pub fn authenticates(&self) -> bool {
        self.authenticate_http_frameworks
            || self.authenticate_http_readwrite
            || self.authenticate_http_readonly
    }
}

/// Who a request in `realm` comes from: `Ok(None)` when the realm is open
/// (as in libprocess, credentials sent to an open realm are not looked
/// at), `Ok(Some(principal))` when authenticated, `Err(())` for 401.
pub(crate) fn authenticate(
    security: Option<&SecurityConfig>,
    realm: Realm,
    authorization: Option<&[u8]>,
) -> Result<Option<String>, ()> {
    match security {
        Some(s) if s.requires_authentication(realm) => s
            .credentials
            .authenticate(authorization)
            .map(Some)
            .ok_or(()),
        _ => Ok(None),
    }
}
