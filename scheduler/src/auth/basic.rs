//! HTTP Basic authentication: the users of `--http_credentials` and the
//! reading of an `Authorization` header.
//!
//! Passwords are kept only as SHA-256 digests and compared in constant time,
//! digest against digest, so neither a password's content nor its length
//! shows in the answer's timing; an unknown user costs the same comparison.

use std::collections::BTreeMap;

use base64::Engine;
use ring::digest::{SHA256, digest};

/// The longest `Authorization` value read; longer ones are refused unread.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;

/// `--http_credentials` is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// An entry is not `user:password`.
    #[error(
        "--http_credentials entry {index} is not user:password (a user without ':' and a non-empty password)"
    )]
    Malformed {
        /// 1-based position in the comma list.
        index: usize,
    },
    /// The same user twice.
    #[error("--http_credentials names user {0:?} twice")]
    Duplicate(String),
    /// Nothing was given.
    #[error("--http_credentials is empty")]
    Empty,
}

/// Why an `Authorization` header was not accepted. The messages never
/// repeat what the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BasicError {
    /// No `Authorization` header.
    #[error("authentication required")]
    Missing,
    /// Not `Basic <base64 of user:password>`, or too long.
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// Unknown user or wrong password (not told apart).
    #[error("invalid username or password")]
    Invalid,
}

/// The users allowed in, with their passwords' digests.
#[derive(Clone, PartialEq, Eq)]
pub struct Users {
    by_name: BTreeMap<String, [u8; 32]>,
}

impl std::fmt::Debug for Users {
    /// Names only: digests stay out of logs too.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("names", &self.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Every byte is looked at whatever differs first.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

impl Users {
    /// Parses `user:password[,user:password]` (a password may hold `:`).
    pub fn parse(spec: &str) -> Result<Users, CredentialsError> {
        let mut by_name = BTreeMap::new();
        for (i, entry) in spec.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (user, password) = entry
                .split_once(':')
                .filter(|(u, p)| !u.is_empty() && !p.is_empty())
                .ok_or(CredentialsError::Malformed { index: i + 1 })?;
            if by_name
                .insert(user.to_string(), sha256(password.as_bytes()))
                .is_some()
            {
                return Err(CredentialsError::Duplicate(user.to_string()));
            }
        }
        if by_name.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Ok(Users { by_name })
    }

    /// The user an `Authorization` header proves, if it does.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<String, BasicError> {
        let (user, password) = parse_basic(header.ok_or(BasicError::Missing)?)?;
        // Compare against something even for an unknown user: the time
        // must not say whether the user exists.
        let unknown = [0u8; 32];
        let expected = self.by_name.get(&user).unwrap_or(&unknown);
        let matches = digests_equal(expected, &sha256(password.as_bytes()));
        if matches && self.by_name.contains_key(&user) {
            Ok(user)
        } else {
            Err(BasicError::Invalid)
        }
    }
}

/// Reads `Basic <base64(user:password)>` (scheme case-insensitive, as
/// RFC 7617 says).
pub fn parse_basic(value: &[u8]) -> Result<(String, String), BasicError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(BasicError::Malformed("too long"));
    }
    let value = std::str::from_utf8(value).map_err(|_| BasicError::Malformed("not text"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(BasicError::Malformed("expected 'Basic <credentials>'"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicError::Malformed("only the Basic scheme is supported"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| BasicError::Malformed("credentials are not base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| BasicError::Malformed("credentials are not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or(BasicError::Malformed("credentials are not user:password"))?;
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
        .into_bytes()
    }

    #[test]
    fn users_parse_from_a_comma_list_and_passwords_may_hold_colons() {
        let users = Users::parse("alice:s3cret, bob:a:b:c").unwrap();
        assert_eq!(
            users.authenticate(Some(&basic("alice:s3cret"))),
            Ok("alice".into())
        );
        assert_eq!(
            users.authenticate(Some(&basic("bob:a:b:c"))),
            Ok("bob".into())
        );
        assert!(!format!("{users:?}").contains("s3cret"));
    }

    #[test]
    fn bad_credential_lists_name_the_entry() {
        assert_eq!(
            Users::parse("alice:x,bob"),
            Err(CredentialsError::Malformed { index: 2 })
        );
        assert_eq!(
            Users::parse("alice:"),
            Err(CredentialsError::Malformed { index: 1 })
        );
        assert_eq!(
            Users::parse(":pw"),
            Err(CredentialsError::Malformed { index: 1 })
        );
        assert_eq!(
            Users::parse("a:1,a:2"),
            Err(CredentialsError::Duplicate("a".into()))
        );
        assert_eq!(Users::parse(" , "), Err(CredentialsError::Empty));
    }

    #[test]
    fn wrong_passwords_and_unknown_users_are_one_error() {
        let users = Users::parse("alice:s3cret").unwrap();
        assert_eq!(
            users.authenticate(Some(&basic("alice:wrong"))),
            Err(BasicError::Invalid)
        );
        assert_eq!(
            users.authenticate(Some(&basic("mallory:s3cret"))),
            Err(BasicError::Invalid)
        );
        assert_eq!(
            users.authenticate(Some(&basic("alice:s3cret\0"))),
            Err(BasicError::Invalid)
        );
        assert_eq!(users.authenticate(None), Err(BasicError::Missing));
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let users = Users::parse("alice:s3cret").unwrap();
        let huge = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_LEN));
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"Basic".to_vec(),
            b"Bearer abc".to_vec(),
            b"Digest username=\"alice\"".to_vec(),
            b"Basic !!!notbase64".to_vec(),
            basic("no-colon"),
            b"Basic \xff\xfe".to_vec(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b':', b'x'])
            )
            .into_bytes(),
            huge.into_bytes(),
        ];
        for case in cases {
            assert!(
                matches!(
                    users.authenticate(Some(&case)),
                    Err(BasicError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(&case)
            );
        }
        // The scheme is case-insensitive.
        let lower = basic("alice:s3cret");
        let lower = [b"basic".as_slice(), &lower[5..]].concat();
        assert_eq!(users.authenticate(Some(&lower)), Ok("alice".into()));
    }
}
