//! Who may use Baton's API, and for what.
//!
//! # Layout
//!
//! - [`basic`]: `--http_credentials` users and HTTP Basic headers, with
//!   constant-time password checks.
//! - [`acl`]: the `--acl_file`: actions (`view`, `create`, `update`,
//!   `delete`, `kill`) granted to users and groups on app paths.
//! - Here: [`HttpSecurity`], what the flags become, and [`Caller`], who a
//!   request comes from and what they may do. Pure: the API's middleware
//!   (`api::guard`) applies it to requests.
//!
//! A request is authenticated by Basic credentials, or — in the front-proxy
//! mode (`--http_user_header`), off by default — by the user a trusted
//! proxy names in a header. A standby proxies requests with their headers
//! untouched and the leader authenticates them itself, so the hop adds no
//! identity a client could forge.

pub mod acl;
pub mod basic;

use std::sync::Arc;

pub use acl::{Acl, AclError, Action, Permissions};
pub use basic::{BasicError, CredentialsError, Users};

use crate::state::app::PathId;

/// The longest user name a front proxy may set.
const MAX_PROXY_USER_LEN: usize = 256;

/// How the API authenticates and authorizes (all off by default).
#[derive(Debug, Clone)]
pub struct HttpSecurity {
    /// `--http_credentials`: Basic authentication against these users.
    pub users: Option<Users>,
    /// `--http_realm`, named in `WWW-Authenticate`.
    pub realm: String,
    /// `--http_user_header`: the header a front proxy sets to the
    /// authenticated user (lower-case).
    pub user_header: Option<String>,
    /// `--http_trusted_proxies`: the peers whose user header is believed
    /// (the front proxy, and the standbys that forward its requests);
    /// from anyone else the header is dropped unread.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `--acl_file`: without it, every authenticated user may do anything.
    pub acl: Option<Acl>,
    /// `--http_open_events`: `/v2/events` without authentication.
    pub open_events: bool,
    /// `--http_open_metrics`: `/metrics` without authentication.
    pub open_metrics: bool,
}

impl Default for HttpSecurity {
    fn default() -> HttpSecurity {
        HttpSecurity {
            users: None,
            realm: "Mesosphere".into(),
            user_header: None,
            trusted_proxies: default_trusted_proxies(),
            acl: None,
            open_events: false,
            open_metrics: false,
        }
    }
}

/// Loopback only: a front proxy on the same host.
pub fn default_trusted_proxies() -> Vec<ipnet::IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .map(|c| c.parse().expect("valid CIDR"))
        .collect()
}

/// The security flags contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// An ACL names users, but nothing authenticates them.
    #[error(
        "--acl_file needs --http_credentials or --http_user_header: it grants actions to users"
    )]
    AclWithoutAuthentication,
    /// `--http_user_header` is not a valid header name.
    #[error("--http_user_header {0:?} is not a valid header name")]
    BadUserHeader(String),
    /// `--http_realm` cannot go into a `WWW-Authenticate` header.
    #[error("--http_realm must be printable text without quotes or backslashes")]
    BadRealm,
}

impl HttpSecurity {
    /// Whether requests must be authenticated.
    pub fn authenticates(&self) -> bool {
        self.users.is_some() || self.user_header.is_some()
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), SecurityError> {
        if let Some(header) = &self.user_header
            && axum::http::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            return Err(SecurityError::BadUserHeader(header.clone()));
        }
        if self.acl.is_some() && !self.authenticates() {
            return Err(SecurityError::AclWithoutAuthentication);
        }
        if self.realm.is_empty()
            || self
                .realm
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(SecurityError::BadRealm);
        }
        Ok(())
    }

    /// Whether `peer` may name the user in `--http_user_header`.
    pub fn trusts_proxy(&self, peer: Option<std::net::IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|net| net.contains(&ip)))
    }

    /// Who a request comes from, from its `Authorization` header (or the
    /// user header of a trusted front proxy: the caller passes it only
    /// from such a peer).
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        proxy_user: Option<&[u8]>,
    ) -> Result<Caller, BasicError> {
        if !self.authenticates() {
            return Ok(Caller::unrestricted(None));
        }
        let proxied = self.user_header.as_ref().and(proxy_user).and_then(|v| {
            std::str::from_utf8(v)
                .ok()
                .map(str::trim)
                .filter(|u| !u.is_empty() && u.len() <= MAX_PROXY_USER_LEN)
                .filter(|u| u.chars().all(|c| c.is_ascii_graphic()))
                .map(str::to_string)
        });
        let user = match (proxied, &self.users) {
            (Some(user), _) => user,
            (None, Some(users)) => users.authenticate(authorization)?,
            (None, None) => return Err(BasicError::Missing),
        };
        Ok(match &self.acl {
            Some(acl) => Caller {
                user: Some(user.clone()),
                permissions: Some(Arc::new(acl.permissions(&user))),
            },
            None => Caller::unrestricted(Some(user)),
        })
    }
}

/// Who a request comes from and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated user (`None`: authentication is off).
    pub user: Option<String>,
    /// `None`: anything.
    permissions: Option<Arc<Permissions>>,
}

impl Caller {
    /// A caller that may do anything.
    pub fn unrestricted(user: Option<String>) -> Caller {
        Caller {
            user,
            permissions: None,
        }
    }

    /// A caller who may do nothing to any app (an anonymous reader of an
    /// endpoint opened without credentials, when an ACL is in force).
    pub fn nobody() -> Caller {
        Caller {
            user: None,
            permissions: Some(Arc::new(Permissions::default())),
        }
    }

    /// Whether every action on every app is allowed.
    pub fn is_unrestricted(&self) -> bool {
        self.permissions.is_none()
    }

    /// Whether `action` on `app` is allowed.
    pub fn may(&self, action: Action, app: &PathId) -> bool {
        self.permissions
            .as_ref()
            .is_none_or(|p| p.allows(action, app))
    }

    /// `Ok` if `action` on `app` is allowed, else the message for a 403.
    pub fn check(&self, action: Action, app: &PathId) -> Result<(), String> {
        if self.may(action, app) {
            return Ok(());
        }
        Err(format!(
            "User '{}' is not authorized to {} {}",
            self.user.as_deref().unwrap_or("anonymous"),
            action.name(),
            if app.is_root() {
                "Baton itself (the action on '/' is needed)".to_string()
            } else {
                format!("'{app}'")
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn basic(credentials: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
        .into_bytes()
    }

    fn id(text: &str) -> PathId {
        PathId::parse(text, &PathId::root()).unwrap()
    }

    #[test]
    fn without_credentials_configured_everyone_may_do_anything() {
        let security = HttpSecurity::default();
        let caller = security.authenticate(None, None).unwrap();
        assert!(caller.is_unrestricted());
        assert!(caller.may(Action::Delete, &id("/x")));
    }

    #[test]
    fn with_an_acl_callers_get_their_grants_only() {
        let security = HttpSecurity {
            users: Some(Users::parse("alice:a,root:r").unwrap()),
            acl: Some(
                Acl::parse(
                    r#"{"rules": [
                        {"principals": ["alice"], "actions": ["*"], "paths": ["/team-a/"]},
                        {"principals": ["root"], "actions": ["*"], "paths": ["/"]}]}"#,
                )
                .unwrap(),
            ),
            ..HttpSecurity::default()
        };
        security.validate().unwrap();
        let alice = security
            .authenticate(Some(&basic("alice:a")), None)
            .unwrap();
        assert_eq!(alice.user.as_deref(), Some("alice"));
        assert!(alice.may(Action::Create, &id("/team-a/x")));
        let denied = alice.check(Action::Create, &id("/team-b/x")).unwrap_err();
        assert_eq!(
            denied,
            "User 'alice' is not authorized to create '/team-b/x'"
        );
        assert!(alice.check(Action::Update, &PathId::root()).is_err());
        let root = security.authenticate(Some(&basic("root:r")), None).unwrap();
        assert!(root.may(Action::Update, &PathId::root()));
        assert_eq!(
            security.authenticate(Some(&basic("alice:r")), None),
            Err(BasicError::Invalid)
        );
    }

    #[test]
    fn the_proxy_header_counts_only_in_front_proxy_mode() {
        let basic_only = HttpSecurity {
            users: Some(Users::parse("alice:a").unwrap()),
            ..HttpSecurity::default()
        };
        assert_eq!(
            basic_only.authenticate(None, Some(b"root")),
            Err(BasicError::Missing)
        );
        let proxied = HttpSecurity {
            user_header: Some("x-forwarded-user".into()),
            ..HttpSecurity::default()
        };
        assert_eq!(
            proxied
                .authenticate(None, Some(b"carol"))
                .unwrap()
                .user
                .as_deref(),
            Some("carol")
        );
        assert_eq!(proxied.authenticate(None, None), Err(BasicError::Missing));
        assert_eq!(
            proxied.authenticate(None, Some(b"bad user\n")),
            Err(BasicError::Missing)
        );
    }

    #[test]
    fn an_acl_without_authentication_is_refused() {
        let security = HttpSecurity {
            acl: Some(Acl::default()),
            ..HttpSecurity::default()
        };
        assert_eq!(
            security.validate(),
            Err(SecurityError::AclWithoutAuthentication)
        );
        let bad = HttpSecurity {
            user_header: Some("bad header".into()),
            ..HttpSecurity::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(SecurityError::BadUserHeader(_))
        ));
    }
}
