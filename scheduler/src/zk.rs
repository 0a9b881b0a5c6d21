//! ZooKeeper URLs (`zk://[user:pass@]h1:2181,h2:2181/path`) and sessions
//! chrooted at their path, shared by the store, the election, the service
//! registry and Mesos master detection.

use std::fmt;
use std::time::Duration;

use zookeeper_client as zk;

/// A parsed `zk://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// `h1:2181,h2:2181`.
    pub hosts: String,
    /// The path everything lives under, e.g. `/baton` (never `/`-ended;
    /// `/` alone for the root).
    pub path: String,
}

/// A `zk://` URL that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ZooKeeper URL {url:?}: {reason} (expected zk://host:2181[,host:2181]/path)")]
pub struct ZkUrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl ZkUrl {
    /// Parses `zk://hosts/path`. Credentials (`user:pass@`) are accepted
    /// and dropped: digest authentication is not supported.
    pub fn parse(url: &str) -> Result<ZkUrl, ZkUrlError> {
        let error = |reason| ZkUrlError {
            url: url.to_string(),
            reason,
        };
        let rest = url
            .trim()
            .strip_prefix("zk://")
            .ok_or_else(|| error("it does not start with zk://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if hosts.is_empty()
            || hosts
                .split(',')
                .any(|h| h.is_empty() || h.contains(char::is_whitespace))
        {
            return Err(error("no host list"));
        }
        let path = path.trim_end_matches('/');
        if path.split('/').skip(1).any(|segment| segment.is_empty()) {
            return Err(error("empty path segment"));
        }
        Ok(ZkUrl {
            hosts: hosts.to_string(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        })
    }

    /// A session chrooted at the path, which is created if missing.
    pub async fn connect(&self, session_timeout: Duration) -> Result<zk::Client, zk::Error> {
        let client = zk::Client::connector()
            .with_session_timeout(session_timeout)
            .connect(&self.hosts)
            .await?;
        if self.path == "/" {
            return Ok(client);
        }
        match client
            .mkdir(
                &self.path,
                &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
            )
            .await
        {
            Ok(()) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
        client
            .chroot(self.path.clone())
            .map_err(|_| zk::Error::BadArguments(&"chroot path"))
    }
}

impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zk://{}{}", self.hosts, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_hosts_paths_and_credentials() {
        let url = ZkUrl::parse("zk://h1:2181,h2:2181/baton").unwrap();
        assert_eq!(
            (url.hosts.as_str(), url.path.as_str()),
            ("h1:2181,h2:2181", "/baton")
        );
        assert_eq!(url.to_string(), "zk://h1:2181,h2:2181/baton");
        let url = ZkUrl::parse("zk://user:secret@h:2181/mesos/").unwrap();
        assert_eq!(
            (url.hosts.as_str(), url.path.as_str()),
            ("h:2181", "/mesos")
        );
        assert_eq!(ZkUrl::parse("zk://h:2181").unwrap().path, "/");
        for bad in [
            "http://h:2181/x",
            "zk:///x",
            "zk://h:2181,/x",
            "zk://h:2181//x",
        ] {
            assert!(ZkUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(
            ZkUrl::parse("h:2181/x")
                .unwrap_err()
                .to_string()
                .contains("zk://")
        );
    }
}
