//! HTTP → HTTPS redirects for apps labelled `BATON_REDIRECT_TO_HTTPS=true`
//! (or marathon-lb's `HAPROXY_0_REDIRECT_TO_HTTPS=true`). Pure.
//!
//! A plain-HTTP request to such an app gets `301 Moved Permanently` for
//! `GET` and `HEAD`, and `308 Permanent Redirect` for every other method:
//! a 301 lets clients turn a `POST` into a `GET` and drop its body, a 308
//! keeps method and body. The `Location` is `https://<host>[:<port>]<path
//! and query>`: the request's host without its plain-HTTP port, and the
//! HTTPS port (`--https-redirect-port`, by default the TLS listener's)
//! unless it is 443. Whether a request came over TLS is the connection's
//! fact, never a header's (`X-Forwarded-Proto` can be written by anyone).

/// Why a request cannot be redirected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The Host is missing or not a plain host name or IP literal (a
    /// redirect must not point wherever a forged Host says).
    #[error("the request's host {0:?} cannot be redirected to")]
    BadHost(String),
}

/// A redirect to HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301 or 308.
    pub status: u16,
    /// The absolute `https://` URL.
    pub location: String,
}

/// The redirect for a plain-HTTP request: `method` (as written),
/// `host` (normalized: lower case, no port; `[v6]` in brackets),
/// `path_and_query` (origin form), towards HTTPS `port`.
pub fn to_https(
    method: &str,
    host: &str,
    path_and_query: &str,
    port: u16,
) -> Result<Redirect, Error> {
    if !valid_host(host) {
        return Err(Error::BadHost(host.to_string()));
    }
    let status = match method {
        "GET" | "HEAD" => 301,
        _ => 308,
    };
    let path = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    let location = match port {
        443 => format!("https://{host}{path}"),
        port => format!("https://{host}:{port}{path}"),
    };
    Ok(Redirect { status, location })
}

/// A DNS name (letters, digits, `-`, `_`, `.`) or a bracketed IPv6
/// literal; nothing that could end the authority (`/`, `@`, `?`, `#`).
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(method: &str, host: &str, path: &str, port: u16) -> (u16, String) {
        let r = to_https(method, host, path, port).unwrap();
        (r.status, r.location)
    }

    #[test]
    fn get_and_head_are_301_others_308_with_the_exact_location() {
        assert_eq!(
            location("GET", "web.test", "/a/b?x=1&y=%20", 443),
            (301, "https://web.test/a/b?x=1&y=%20".into())
        );
        assert_eq!(
            location("HEAD", "web.test", "/", 443),
            (301, "https://web.test/".into())
        );
        assert_eq!(
            location("POST", "web.test", "/form", 8443),
            (308, "https://web.test:8443/form".into())
        );
        assert_eq!(
            location("DELETE", "[::1]", "/x", 443),
            (308, "https://[::1]/x".into())
        );
        assert_eq!(
            location("GET", "127.0.0.1", "", 443),
            (301, "https://127.0.0.1/".into())
        );
    }

    #[test]
    fn hosts_that_would_redirect_elsewhere_are_refused() {
        for host in [
            "",
            "evil.test/x",
            "user@evil.test",
            "a b",
            "a?b",
            "[]",
            "[::1",
            "é.test",
        ] {
            assert_eq!(
                to_https("GET", host, "/", 443),
                Err(Error::BadHost(host.to_string())),
                "{host}"
            );
        }
    }
}
