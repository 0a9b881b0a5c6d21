//! Where the Mesos masters are: parsing `--master` and following redirects.
//!
//! `--master` takes `http://host:5050`, `host:5050`, or a comma list of
//! either; `zk://` detection comes with the HA work. A 307 from a
//! non-leading master carries a scheme-less `Location` (`//host:5050/...`),
//! so the scheme of the request that was redirected is reused.

use std::fmt;

/// The scheduler API path on a master.
pub const SCHEDULER_PATH: &str = "/api/v1/scheduler";

/// A master's base URL, such as `http://127.0.0.1:5050`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MasterEndpoint {
    scheme: String,
    authority: String,
}

/// `--master` could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterSpecError {
    /// Nothing was given.
    #[error("--master is empty")]
    Empty,
    /// An entry is not `[http[s]://]host:port`.
    #[error("--master entry {0:?} is not of the form [http://]host:port")]
    Invalid(String),
    /// A `zk://` URL that does not parse.
    #[error("--master: {0}")]
    ZooKeeper(String),
}

impl MasterEndpoint {
    /// Parses one `--master` entry.
    pub fn parse(entry: &str) -> Result<MasterEndpoint, MasterSpecError> {
        let entry = entry.trim();
        let (scheme, rest) = match entry.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
            Some(("zk", _)) => {
                return Err(MasterSpecError::ZooKeeper(format!(
                    "{entry:?}: a zk:// URL must be the whole --master value"
                )));
            }
            Some(_) => return Err(MasterSpecError::Invalid(entry.to_string())),
            None => ("http", entry),
        };
        let authority = rest.split('/').next().unwrap_or("");
        let valid = authority.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid || authority.contains(char::is_whitespace) {
            return Err(MasterSpecError::Invalid(entry.to_string()));
        }
        Ok(MasterEndpoint {
            scheme: scheme.to_string(),
            authority: authority.to_string(),
        })
    }

    /// Parses a comma list of masters, tried in turn.
    pub fn parse_list(spec: &str) -> Result<Vec<MasterEndpoint>, MasterSpecError> {
        let entries: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(MasterSpecError::Empty);
        }
        entries.into_iter().map(MasterEndpoint::parse).collect()
    }

    /// The master a 307 points at. `location` is usually `//host:port/path`;
    /// a full URL is accepted too. Our own scheme is kept when it has none.
    pub fn redirected(&self, location: &str) -> Option<MasterEndpoint> {
        let (scheme, rest) = if let Some(rest) = location.strip_prefix("//") {
            (self.scheme.as_str(), rest)
        } else if let Some((scheme @ ("http" | "https"), rest)) = location.split_once("://") {
            // Never from https down to http: the credentials would follow
            // in clear text.
            let scheme = if self.scheme == "https" {
                "https"
            } else {
                scheme
            };
            (scheme, rest)
        } else {
            return None;
        };
        let authority = rest.split('/').next().unwrap_or("");
        MasterEndpoint::parse(&format!("{scheme}://{authority}")).ok()
    }

    /// `http://host:port/api/v1/scheduler`.
    pub fn scheduler_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, SCHEDULER_PATH)
    }

    /// Whether calls to it travel over TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

impl fmt::Display for MasterEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_never_downgrades_https() {
        let tls = MasterEndpoint::parse("https://m1:5050").unwrap();
        assert_eq!(
            tls.redirected("http://m2:5050/api/v1/scheduler")
                .unwrap()
                .to_string(),
            "https://m2:5050"
        );
        let plain = MasterEndpoint::parse("http://m1:5050").unwrap();
        assert_eq!(
            plain.redirected("https://m2:5050/x").unwrap().to_string(),
            "https://m2:5050"
        );
    }

    #[test]
    fn parses_the_master_forms_marathon_accepts() {
        assert_eq!(
            MasterEndpoint::parse("host:5050").unwrap().to_string(),
            "http://host:5050"
        );
        assert_eq!(
            MasterEndpoint::parse("http://10.0.0.1:5050")
                .unwrap()
                .scheduler_url(),
            "http://10.0.0.1:5050/api/v1/scheduler"
        );
        assert_eq!(
            MasterEndpoint::parse("https://m:443/").unwrap().to_string(),
            "https://m:443"
        );
        let list = MasterEndpoint::parse_list("a:5050, http://b:5051").unwrap();
        assert_eq!(list.len(), 2);
        assert!(matches!(
            MasterEndpoint::parse_list(""),
            Err(MasterSpecError::Empty)
        ));
        assert!(matches!(
            MasterEndpoint::parse("host"),
            Err(MasterSpecError::Invalid(_))
        ));
        assert!(matches!(
            MasterEndpoint::parse("ftp://h:1"),
            Err(MasterSpecError::Invalid(_))
        ));
        assert!(matches!(
            MasterEndpoint::parse("zk://z:2181/mesos"),
            Err(MasterSpecError::ZooKeeper(_))
        ));
    }

    #[test]
    fn scheme_less_location_keeps_our_scheme() {
        let here = MasterEndpoint::parse("https://m1:5050").unwrap();
        let there = here.redirected("//m2:5050/api/v1/scheduler").unwrap();
        assert_eq!(there.to_string(), "https://m2:5050");
        assert_eq!(here.redirected("garbage"), None);
        assert_eq!(here.redirected(""), None);
    }
}
